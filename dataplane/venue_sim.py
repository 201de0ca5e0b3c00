"""A deterministic Nasdaq OUCH 5.0 venue simulator, for testing the appliance.

Opt-in, and changing nothing when not asked for (docs/venue-sim.md,
dataplane/venue_sim_ext.py): ITCH 5.0 market data for its own book
(``market_data=``), a venue profile's hidden behaviour (``profile=``), an
answer delay (``latency=``) and the true-fill-probability log
(``truth_log=``).  What follows is the simulator without them.

Wire
----
Both directions use the framing of ``cdefs/ouch_wire.h`` (big-endian): a
20-byte header -- session (10 bytes ASCII, space padded), u64 sequence number
of the first message, u16 message count -- then ``count`` blocks of a u16
length and one OUCH message.  Count 0 is a heartbeat, 0xFFFF end of session.

* ``handle_frame(frame, now_ns)`` takes an Ethernet frame (one 802.1Q tag is
  skipped) and returns Ethernet frames: ``venue.mac`` -> ``appliance.mac``,
  IPv4 ``venue.ip`` -> ``appliance.ip`` (IHL 5, TOS 0, ID 0, DF, TTL 64,
  header checksum), UDP (checksum always computed; a computed 0 is sent as
  0xFFFF).  Data packets, heartbeats and retransmissions go from
  ``venue.port`` to ``appliance.venue_port``; request packets from
  ``venue.retransmit_port`` to ``appliance.request_port``.  A frame that is
  not a well-formed IPv4/UDP frame (runt, bad header/length, checksum,
  fragment) is counted in ``stats["bad_packets"]``; a well-formed frame whose
  destination is neither ``venue.ip:venue.port`` (data) nor
  ``venue.ip:venue.retransmit_port`` (requests) is counted in
  ``frames_not_for_venue``.  Both return ``[]``.  The source address is not
  checked.
* ``handle_datagram(payload, now_ns, request_port=False)`` does the same with
  a UDP payload and returns ``(kind, payload)`` pairs, kind ``"data"`` (for
  the appliance's ``venue_port``) or ``"request"`` (for its request port).
  ``handle_payload(payload, now_ns)`` is ``handle_datagram`` on the data port
  keeping only the ``"data"`` payloads: a caller that uses it never sends
  the simulator's requests, so a gap in what it receives is never filled
  (:func:`serve_udp` uses ``handle_datagram``).
* ``tick(now_ns)`` returns the frames the simulator's timers send (below),
  ``tick_datagrams(now_ns)`` the same as ``(kind, payload)`` pairs.
  Like everything else it reads no clock: time is the ``now_ns`` it is given.
* Packets whose session is not ``venue.session`` are dropped
  (``bad_packets["wrong_session"]``), as are packets shorter than 20 bytes
  (``"truncated"``).  A block running past the datagram, or of length 0,
  stops the walk (``bad_packets["bad_block"]``).
* Outbound messages are numbered per session from 1.  By default each message
  is its own packet; with ``batch=True`` all messages produced by one inbound
  packet share one packet (split only if it would exceed 1472 bytes of UDP
  payload).  :meth:`VenueSim.heartbeat` and :meth:`VenueSim.end_of_session`
  build the two special packets (with the next sequence number, which they
  do not consume).

Session layer (MoldUDP64-style recovery, docs/semantics.md)
-----------------------------------------------------------
The simulator is the venue-side peer of the appliance's framing session.

* **Replay buffer.**  The last ``replay_depth`` (4096) outbound messages are
  kept with their sequence numbers; the oldest held is ``next - held``.
* **Requests to the venue** (packets to ``venue.retransmit_port``: header
  only, sequence number = first wanted, count; ``stats["requests_in"]``).
  Count 0 is a "hello" (``hellos_in``): the answer is a heartbeat (count 0,
  sequence number = the venue's next).  Otherwise, with ``from`` the
  sequence number: below the oldest held -> nothing is sent
  (``retransmit_too_old``); at or beyond the next -> a heartbeat; else the
  messages ``from`` .. ``min(from + count, next) - 1`` are sent again, byte
  for byte, one per packet (or grouped as with ``batch=True``, each packet
  numbered by its first message), from ``venue.port`` to the appliance's
  ``venue_port`` (``retransmitted`` counts the messages).
* **Go-back-N on the appliance -> venue stream.**  ``in_expected`` is the
  next sequence number expected (from 1).  A packet whose first sequence
  number is above it is *not processed* (``seq_gaps_in``,
  ``out_of_order_packets``) and the missing messages and the packet's are
  wanted.  Blocks below it are duplicates: skipped, never processed
  (``seq_dup_msgs_in``).  Each block at the expected number is processed and
  advances it.  A heartbeat from the appliance (count 0) whose sequence
  number (the appliance's next) is above ``in_expected`` wants the missing
  ones too; every heartbeat is answered with the venue's own heartbeat
  (``heartbeats_in``, ``heartbeats_out``).  End of session is counted only.
* **Wanting messages** (go-back-N request).  The simulator remembers the
  last sequence number it wants (``wanted_through``).  It sends a request
  packet -- session, sequence number = ``in_expected``, count =
  ``min(wanted_through - in_expected + 1, request_window)`` (32), no blocks --
  from ``venue.retransmit_port`` to ``appliance.ip:appliance.request_port``
  (``requests_out``) if no request is outstanding, or its last one is at
  least ``retransmit_ms`` (50) old, or messages have arrived in order since it
  was sent (the rest of the answer was lost or overtaken); otherwise nothing:
  the request is on its way.  When ``in_expected`` passes the end of the
  window asked for and more is wanted, the next window is asked for at once.
  The request stays outstanding until ``in_expected`` passes
  ``wanted_through``.
* **Timers** (``tick(now_ns)``): an outstanding request at least
  ``retransmit_ms`` old is sent again (from the current ``in_expected``,
  ``requests_out``); and, only if ``heartbeat_ms`` was given, a heartbeat is
  sent when nothing has gone to the appliance's ``venue_port`` for that long
  (the first tick starts that clock).

Reordering (a test knob)
------------------------
With ``reorder=(probability, seed)`` the simulator itself misorders what it
sends, as a reordering network would (:mod:`dataplane.reorder`): each
outgoing datagram (data or request), while none is held, is held back with
that probability (its own ``random.Random(seed)``, one draw per datagram,
apart from the book's generator) and goes out right after the next datagram
the simulator sends (``stats["reordered"]``), or from ``tick`` /
``tick_datagrams`` once it has waited ``reorder_hold_ms`` (20) without one
(``stats["reorder_timeouts"]``).  ``flush_reorder()`` returns a held one at
once.  It applies to ``handle_datagram`` and ``tick_datagrams`` (and so to
``handle_frame``, ``handle_payload`` and ``tick``); without ``reorder`` (the
default) nothing changes.

Book
----
One price-time-priority book per symbol.  At construction it is seeded from
``random.Random(seed)``: for each symbol in sorted order, a reference price
(``ref_prices[symbol]`` in OUCH units, 4 implied decimals, else
:func:`default_ref_price`: AAPL 152.0000, others a CRC32-derived price in
$10.00-$500.00), then ``levels`` (5) synthetic bids at ref - k*tick and then
``levels`` asks at ref + k*tick (k = 1..levels, tick 0.01), each one resting
order of ``rng.randint(100, 1000)`` shares.  Synthetic liquidity is consumed
by executions and never replenished.  The appliance's own resting orders sit
in the same book; an appliance order can therefore trade against another one
(both get an Executed with the same match number, 'R' for the aggressor and
'A' for the resting order).

Inbound OUCH messages
---------------------
A message with a wrong length (shorter than its minimum, or an appendage
length that disagrees with the block length) or a malformed appendage is
ignored (``bad_messages``).  The UserRefNum rules are per port (per
simulator): a new UserRefNum must be greater than the last one consumed.

Enter Order 'O' (47 + appendage).  UserRefNum <= last consumed: ignored
silently (§1.2).  Otherwise the UserRefNum is consumed and the first failing
check gives Rejected 'J' (29 bytes, the order's ClOrdID):
quantity not in 1..999,999 -> 0x0013 Invalid Quantity; symbol not configured
-> 0x0017 Invalid Symbol; price 0, or above 199,999.9900 and not the market
value 0x7FFFFFFF -> 0x001D Invalid Price; side not B/S/T/E -> 0x0009 Invalid
Side; side T without option tag 25 SharesLocated 'Y' -> 0x0027 Risk: Locate
Required.  Otherwise Order Accepted 'A' (64 bytes, appendage length 0, fields
as entered, Order State 'L', a new Order Reference Number counting from 1),
then matching: while the order has shares left and the best contra order's
price crosses (buy: ask <= limit, sell: bid >= limit; a market order crosses
any price), it trades min(leaves, contra leaves) at the resting order's price:
Order Executed 'E' (36 bytes, Liquidity Flag 'R', Match Number counting from
1).  Synthetic liquidity is one order per price level, so that is one
Executed per level crossed.  The remainder then rests, except: TIF '3' (IOC)
-> Order Canceled 'C' reason 'I'; a market order with another TIF -> Canceled
reason 'Z' (market orders never rest).  Every other TIF (0, 5, 6, E, ...)
rests like a day order.  Other options are ignored.

Replace Order 'U' (40 + appendage), §2.2.  OrigUserRefNum not a live order's
current UserRefNum, or the new UserRefNum <= last consumed: ignored silently
(not consumed).  Quantity (the new total, earlier executions included) not in
1..999,999, an invalid price (as for Enter, and the market price too), or a
quantity <= the shares already executed: Order Canceled 'C' of all the
order's leaves, reason 'Z', under the original UserRefNum (rule 2; not
consumed).  A sell-short order replaced without SharesLocated 'Y' (which must
be resent on every Replace, Appendix A): Rejected 0x0027 under the new
UserRefNum, which is consumed; the original is untouched (rule 3).  Otherwise
the new UserRefNum is consumed and Order Replaced 'U' (68 bytes, appendage
length 0, Order State 'L') reports Quantity = shares outstanding = new total
- executed, the new price, TIF, Display, ISO and ClOrdID.  The order loses
time priority (and gets a new Order Reference Number) if the price changes or
the outstanding quantity increases; else it keeps both.  Then it is matched
again at its new price and its remainder handled as for Enter (IOC -> 'I').

Cancel Order 'X' (9 bytes, or 11 + appendage), §2.3.  The UserRefNum is the
order's current one (after a Replace, the replacement's).  Unknown or dead:
ignored silently.  Quantity q is the shares that may still execute: q = 0 or
q < leaves -> Order Canceled 'C' with the decrement leaves - q, reason 'U';
q >= leaves is superfluous and ignored silently.

Account Query 'Q' -> Account Query Response 'Q' (13 bytes, NextUserRefNum =
last consumed + 1).  Other inbound types are ignored (``ignored``).

Timestamps are ``now_ns % 86_400_000_000_000`` (ns since midnight).

Passive fills
-------------
After each inbound OUCH message is processed (whatever its outcome), the
simulator draws ``rng.random()`` exactly once; if it is < ``p_passive`` and
an appliance order is resting, the one with the oldest time priority is
executed for ``rng.randint(1, leaves)`` shares at its own price, Liquidity
Flag 'A', with a new match number.  Heartbeats and end-of-session packets
draw nothing, nor do requests, duplicates and packets not processed
(out of order).  Hence the output is a function of the seed, the constructor
arguments and the sequence of (input, now_ns) alone.
"""
from __future__ import annotations

import ipaddress
import random
import socket
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import IO

from control.config import Appliance, Venue
from dataplane import frames
from dataplane.reorder import Reorder
from dataplane.venue_book import MARKET_PRICE, _Book, _Order
from dataplane.venue_itch import MarketDataConfig
from dataplane.venue_profiles import VenueProfile
from dataplane.venue_sim_ext import VenueSimExtensions

# --- OUCH 5.0 constants (docs/research-ouch-ufo.md, cdefs/ouch_wire.h) ------

MAX_PRICE = 1_999_999_900  # $199,999.9900
MAX_QTY = 999_999
TAG_SHARES_LOCATED = 25

REJ_INVALID_SIDE = 0x0009
REJ_INVALID_QUANTITY = 0x0013
REJ_INVALID_SYMBOL = 0x0017
REJ_INVALID_PRICE = 0x001D
REJ_LOCATE_REQUIRED = 0x0027

NS_PER_DAY = 86_400_000_000_000
HEADER_LEN = 20
COUNT_END_OF_SESSION = 0xFFFF
MAX_REQUEST_COUNT = 65534
MAX_UDP_PAYLOAD = 1472  # 1500-byte MTU - IPv4 - UDP headers

DEFAULT_REF_PRICES = {"AAPL": 1_520_000}

# Inbound
_ENTER = struct.Struct(">cIcI8sQccccc14sH")  # 47
_REPLACE = struct.Struct(">cIIIQccc14sH")  # 40
_CANCEL = struct.Struct(">cII")  # 9
# Outbound
_ACCEPTED = struct.Struct(">cQIcI8sQccQcccc14sH")  # 64
_REPLACED = struct.Struct(">cQIIcI8sQccQcccc14sH")  # 68
_CANCELED = struct.Struct(">cQIIc")  # 18
_EXECUTED = struct.Struct(">cQIIQcQH")  # 36
_REJECTED = struct.Struct(">cQIH14s")  # 29
_QUERY_RESP = struct.Struct(">cQI")  # 13
_SYSTEM_EVENT = struct.Struct(">cQc")  # 10
_HEADER = struct.Struct(">10sQH")


def default_ref_price(symbol: str) -> int:
    """Reference price in OUCH units: DEFAULT_REF_PRICES, else $10.00-$500.00
    derived from the symbol's CRC32 (whole cents)."""
    if symbol in DEFAULT_REF_PRICES:
        return DEFAULT_REF_PRICES[symbol]
    return (1000 + zlib.crc32(symbol.encode("ascii")) % 49001) * 100


def _parse_options(app: bytes) -> dict[int, bytes] | None:
    """TagValue elements (§1.2) -> {tag: value}; None if malformed."""
    opts: dict[int, bytes] = {}
    i = 0
    while i < len(app):
        n = app[i]
        if n < 1 or i + 1 + n > len(app):
            return None
        opts[app[i + 1]] = app[i + 2 : i + 1 + n]
        i += 1 + n
    return opts


class VenueSim(VenueSimExtensions):
    """See the module docstring for the behaviour."""

    def __init__(
        self,
        venue: Venue,
        appliance: Appliance,
        *,
        symbols: Iterable[str],
        seed: int = 1,
        batch: bool = False,
        p_passive: float = 0.2,
        ref_prices: Mapping[str, int] | None = None,
        levels: int = 5,
        tick: int = 100,
        sizes: tuple[int, int] = (100, 1000),
        retransmit_ms: int = 50,
        replay_depth: int = 4096,
        heartbeat_ms: int | None = None,
        request_window: int = 32,
        reorder: tuple[float, int] | None = None,
        reorder_hold_ms: int = 20,
        market_data: MarketDataConfig | None = None,
        profile: VenueProfile | str | None = None,
        latency: tuple[float, float] | None = None,
        truth_log: IO[str] | None = None,
        truth_horizon_ms: int = 1000,
        truth_paths: int = 64,
    ) -> None:
        if not 0.0 <= p_passive <= 1.0:
            raise ValueError("p_passive must be in [0, 1]")
        if min(retransmit_ms, replay_depth, request_window, heartbeat_ms or 1) <= 0:
            raise ValueError("retransmit_ms, replay_depth, request_window and heartbeat_ms "
                             "must be positive")
        self.request_window = min(request_window, MAX_REQUEST_COUNT)
        if len(venue.session) > 10:
            raise ValueError("venue session name longer than 10 characters")
        self.venue = venue
        self.appliance = appliance
        self.batch = batch
        self.p_passive = p_passive
        self.session = venue.session.encode("ascii").ljust(10, b" ")
        self._venue_ip = socket.inet_aton(venue.ip)
        self._app_ip = socket.inet_aton(appliance.ip)
        self._venue_mac = frames.mac(venue.mac)
        self._app_mac = frames.mac(appliance.mac)
        self._rng = random.Random(seed)
        self._books: dict[str, _Book] = {}
        self._live: dict[int, _Order] = {}  # current UserRefNum -> live order
        self._last_ref = 0
        self._next_prio = 1
        self._next_order_ref = 1
        self._next_match = 1
        self._next_seq = 1  # outbound
        self._in_expected = 1  # inbound: next sequence number expected
        self.retransmit_ns = retransmit_ms * 1_000_000
        self.heartbeat_ns = None if heartbeat_ms is None else heartbeat_ms * 1_000_000
        self._sent: deque[bytes] = deque(maxlen=replay_depth)  # last outbound messages
        self._wanted_through = 0  # last inbound seq wanted by a request; 0: none
        self._request_at: int | None = None  # when the outstanding request was sent
        self._request_end = 0  # last seq the outstanding request asked for
        self._progressed = False  # in-order progress since the last request
        self._last_tx: int | None = None  # last packet to the appliance's venue_port
        self.stats: dict = {
            "received": {},  # inbound OUCH type letter -> count
            "sent": {},  # outbound OUCH type letter -> count
            "rejects": {},  # Rejected reason code (int) -> count
            "cancels": {},  # Canceled reason letter -> count
            "ignored": {},  # why a message was silently ignored -> count
            "bad_messages": {},  # malformed OUCH messages, by reason
            "bad_packets": {},  # dropped frames/packets, by reason
            "frames_not_for_venue": 0,
            "packets_in": 0,
            "packets_out": 0,
            "heartbeats_in": 0,
            "end_of_session_in": 0,
            "seq_gaps_in": 0,  # packets beyond the next expected (not processed)
            "seq_dup_msgs_in": 0,  # blocks below the next expected (skipped)
            "out_of_order_packets": 0,
            "heartbeats_out": 0,  # answers to heartbeats and hellos, timer heartbeats
            "requests_in": 0,  # packets to the request port (hellos included)
            "hellos_in": 0,
            "retransmitted": 0,  # messages sent again
            "retransmit_too_old": 0,
            "requests_out": 0,  # go-back-N request packets sent (re-sent ones too)
            "executions": 0,  # Executed messages sent
            "passive_fills": 0,  # random fills of resting appliance orders
        }
        self._reorder: Reorder[tuple[str, bytes]] | None = None
        if reorder is not None:
            self._reorder = Reorder(self.stats, reorder[0], reorder[1],
                                    reorder_hold_ms * 1_000_000)
        ref_prices = dict(ref_prices or {})
        self._ref_prices: dict[str, int] = {}
        lo, hi = sizes
        for sym in sorted(set(symbols)):
            if not sym or len(sym) > 8:
                raise ValueError(f"bad symbol {sym!r}")
            ref = ref_prices.get(sym, default_ref_price(sym))
            self._ref_prices[sym] = ref
            book = _Book()
            for buy in (True, False):
                for k in range(1, levels + 1):
                    price = ref - k * tick if buy else ref + k * tick
                    if price <= 0:
                        continue
                    book.add(_Order(sym, "B" if buy else "S", price,
                                    self._rng.randint(lo, hi), self._take_prio(),
                                    synthetic=True))
            self._books[sym] = book
        self._init_hidden(seed, tick, market_data, profile, latency, truth_log,
                          truth_horizon_ms, truth_paths)

    # --- public helpers ----------------------------------------------------

    def book(self, symbol: str) -> dict[str, list[tuple[int, int]]]:
        """Aggregated levels: {"bids": [(price, shares)...] best first, "asks": ...}."""
        return self._books[symbol].snapshot()

    def live_orders(self) -> dict[int, dict]:
        """The appliance's live orders by current UserRefNum."""
        return {ref: {"symbol": o.symbol, "side": o.side, "price": o.price,
                      "qty": o.qty, "executed": o.executed, "leaves": o.leaves,
                      "order_ref_num": o.order_ref_num}
                for ref, o in sorted(self._live.items())}

    @property
    def in_expected(self) -> int:
        """Next appliance -> venue sequence number expected."""
        return self._in_expected

    @property
    def next_seq(self) -> int:
        """Sequence number of the venue's next outbound message."""
        return self._next_seq

    @property
    def oldest_held(self) -> int:
        """Sequence number of the oldest message in the replay buffer (the
        next one when none is held)."""
        return self._next_seq - len(self._sent)

    @property
    def request_outstanding(self) -> bool:
        return self._request_at is not None

    def heartbeat(self) -> bytes:
        """A heartbeat packet (count 0) carrying the next sequence number."""
        return _HEADER.pack(self.session, self._next_seq, 0)

    def end_of_session(self) -> bytes:
        return _HEADER.pack(self.session, self._next_seq, COUNT_END_OF_SESSION)

    def system_event(self, code: str, now_ns: int) -> list[bytes]:
        """System Event 'S' (§3.1), e.g. 'S' start of day, 'E' end of day."""
        packets = self._packetize([_SYSTEM_EVENT.pack(b"S", now_ns % NS_PER_DAY,
                                                      code.encode("ascii"))])
        self._last_tx = now_ns
        return packets

    def frame(self, payload: bytes) -> bytes:
        """Wrap a UDP payload as an Ethernet frame from ``venue.port`` to the
        appliance's ``venue_port``."""
        return self._udp_frame(self.venue.port, self.appliance.venue_port, payload)

    def request_frame(self, payload: bytes) -> bytes:
        """Wrap a request packet as an Ethernet frame from the venue's
        request port to the appliance's request port."""
        return self._udp_frame(self.venue.retransmit_port, self.appliance.request_port,
                               payload)

    def _udp_frame(self, sport: int, dport: int, payload: bytes) -> bytes:
        return frames.udp_frame(self._venue_mac, self._app_mac, self._venue_ip, self._app_ip,
                                sport, dport, payload)

    def _frames(self, out: list[tuple[str, bytes]]) -> list[bytes]:
        return [self.frame(p) if kind == "data" else self.request_frame(p) for kind, p in out]

    # --- entry points ------------------------------------------------------

    def handle_frame(self, frame: bytes, now_ns: int) -> list[bytes]:
        parsed = self._parse_frame(frame)
        if parsed is None:
            return []
        payload, to_request_port = parsed
        return self._frames(self.handle_datagram(payload, now_ns,
                                                 request_port=to_request_port))

    def handle_payload(self, payload: bytes, now_ns: int) -> list[bytes]:
        """A datagram to the data port; returns the payloads for the
        appliance's ``venue_port`` (request packets are left out)."""
        return [p for kind, p in self.handle_datagram(payload, now_ns) if kind == "data"]

    def handle_datagram(self, payload: bytes, now_ns: int, *,
                        request_port: bool = False) -> list[tuple[str, bytes]]:
        """A datagram to the data port (or, with `request_port`, to the request
        port); returns ``("data" | "request", payload)`` pairs in order."""
        if len(payload) < HEADER_LEN:
            self._bad_packet("truncated")
            return []
        session, first, count = _HEADER.unpack_from(payload)
        if session != self.session:
            self._bad_packet("wrong_session")
            return []
        if self._extended:
            out = self._extended_datagram(payload, first, count, now_ns, request_port)
        else:
            out = (self._serve_request(first, count) if request_port
                   else self._data_packet(payload, first, count, now_ns))
        if any(kind == "data" for kind, _ in out):
            self._last_tx = now_ns
        return out if self._reorder is None else self._reorder.apply(out, now_ns)

    def flush_reorder(self) -> list[tuple[str, bytes]]:
        """A datagram the reorder knob holds, if any, to send now."""
        return [] if self._reorder is None else self._reorder.flush()

    def tick(self, now_ns: int) -> list[bytes]:
        """Timers: re-send an unanswered request after ``retransmit_ms``; with
        ``heartbeat_ms``, a heartbeat after that long without sending."""
        return self._frames(self.tick_datagrams(now_ns))

    def tick_datagrams(self, now_ns: int) -> list[tuple[str, bytes]]:
        """:meth:`tick` as ``(kind, payload)`` pairs, as handle_datagram."""
        out: list[tuple[str, bytes]] = self._extended_tick(now_ns) if self._extended else []
        if self._request_at is not None and now_ns - self._request_at >= self.retransmit_ns:
            out.append(self._send_request(now_ns))
        if self.heartbeat_ns is not None:
            if self._last_tx is None:
                self._last_tx = now_ns
            elif now_ns - self._last_tx >= self.heartbeat_ns:
                out.append(self._heartbeat_out())
                self._last_tx = now_ns
        if self._reorder is not None:
            out = self._reorder.apply(out, now_ns) + self._reorder.due(now_ns)
        return out

    # --- session layer -------------------------------------------------------

    def _heartbeat_out(self) -> tuple[str, bytes]:
        self.stats["heartbeats_out"] += 1
        return ("data", self.heartbeat())

    def _data_packet(self, payload: bytes, first: int, count: int,
                     now_ns: int) -> list[tuple[str, bytes]]:
        self.stats["packets_in"] += 1
        if count == COUNT_END_OF_SESSION:
            self.stats["end_of_session_in"] += 1
            return []
        if count == 0:
            self.stats["heartbeats_in"] += 1
            out = [self._heartbeat_out()]
            if first > self._in_expected:
                out += self._want(first - 1, now_ns)
            return out
        if first > self._in_expected:
            self.stats["seq_gaps_in"] += 1
            self.stats["out_of_order_packets"] += 1
            return self._want(first + count - 1, now_ns)
        ts = now_ns % NS_PER_DAY
        msgs: list[bytes] = []
        off = HEADER_LEN
        for i in range(count):
            if off + 2 > len(payload):
                self._bad_packet("bad_block")
                break
            (n,) = struct.unpack_from(">H", payload, off)
            if n == 0 or off + 2 + n > len(payload):
                self._bad_packet("bad_block")
                break
            msg = payload[off + 2 : off + 2 + n]
            off += 2 + n
            if first + i < self._in_expected:
                self.stats["seq_dup_msgs_in"] += 1
                continue
            self._in_expected = first + i + 1
            self._handle_message(msg, ts, msgs)
            self._passive_fill(ts, msgs)
        out = [("data", p) for p in self._packetize(msgs)]
        return out + self._advanced(now_ns)

    def _advanced(self, now_ns: int) -> list[tuple[str, bytes]]:
        """After in-order progress: the request is done when everything wanted
        has arrived; the next window is asked for when this one has."""
        if self._request_at is None:
            return []
        if self._in_expected > self._wanted_through:
            self._request_at = None
            return []
        self._progressed = True
        if self._in_expected > self._request_end:
            return [self._send_request(now_ns)]
        return []

    def _want(self, through: int, now_ns: int) -> list[tuple[str, bytes]]:
        """Go-back-N: ask for in_expected .. through, unless a request is
        outstanding and younger than the retransmit interval."""
        self._wanted_through = max(self._wanted_through, through)
        if self._request_at is not None and not self._progressed and \
                now_ns - self._request_at < self.retransmit_ns:
            return []  # the request is on its way
        return [self._send_request(now_ns)]

    def _send_request(self, now_ns: int) -> tuple[str, bytes]:
        count = min(max(self._wanted_through - self._in_expected + 1, 1), self.request_window)
        self._request_at = now_ns
        self._request_end = self._in_expected + count - 1
        self._progressed = False
        self.stats["requests_out"] += 1
        return ("request", _HEADER.pack(self.session, self._in_expected, count))

    def _serve_request(self, first: int, count: int) -> list[tuple[str, bytes]]:
        self.stats["requests_in"] += 1
        if count == 0:
            self.stats["hellos_in"] += 1
            return [self._heartbeat_out()]
        oldest = self.oldest_held
        if first < oldest:
            self.stats["retransmit_too_old"] += 1
            return []
        if first >= self._next_seq:
            return [self._heartbeat_out()]
        end = min(first + count, self._next_seq)
        msgs = [self._sent[seq - oldest] for seq in range(first, end)]
        self.stats["retransmitted"] += len(msgs)
        out = []
        seq = first
        for group in self._groups(msgs):
            out.append(("data", self._packet(seq, group)))
            seq += len(group)
        return out

    # --- framing -----------------------------------------------------------

    def _bad_packet(self, reason: str) -> None:
        frames.bump(self.stats["bad_packets"], reason)

    def _parse_frame(self, f: bytes) -> tuple[bytes, bool] | None:
        """(UDP payload, sent to the request port) of a frame for the venue."""
        got = frames.ipv4_udp(f)
        if isinstance(got, str):
            return self._bad_packet(got)
        src, dst, udp = got
        (dport,) = struct.unpack_from(">H", udp, 2)
        if dst != self._venue_ip or dport not in (self.venue.port, self.venue.retransmit_port):
            self.stats["frames_not_for_venue"] += 1
            return None
        bad = frames.check_udp(src, dst, udp)
        if bad:
            return self._bad_packet(bad)
        return udp[8:], dport == self.venue.retransmit_port

    def _groups(self, msgs: list[bytes]) -> list[list[bytes]]:
        """Messages per packet: one each, or with ``batch`` as many as fit."""
        groups: list[list[bytes]] = []
        size = 0
        for m in msgs:
            if not groups or not self.batch or size + 2 + len(m) > MAX_UDP_PAYLOAD:
                groups.append([])
                size = HEADER_LEN
            groups[-1].append(m)
            size += 2 + len(m)
        return groups

    def _packet(self, first: int, msgs: list[bytes]) -> bytes:
        body = b"".join(struct.pack(">H", len(m)) + m for m in msgs)
        return _HEADER.pack(self.session, first, len(msgs)) + body

    def _packetize(self, msgs: list[bytes]) -> list[bytes]:
        """New outbound messages: numbered, kept for retransmission, framed."""
        packets: list[bytes] = []
        for group in self._groups(msgs):
            packets.append(self._packet(self._next_seq, group))
            self._next_seq += len(group)
            self._sent.extend(group)
        for m in msgs:
            frames.bump(self.stats["sent"], chr(m[0]))
        self.stats["packets_out"] += len(packets)
        return packets

    # --- OUCH --------------------------------------------------------------

    def _take_prio(self) -> int:
        p = self._next_prio
        self._next_prio += 1
        return p

    def _ignore(self, reason: str) -> None:
        frames.bump(self.stats["ignored"], reason)

    def _bad_message(self, reason: str) -> None:
        frames.bump(self.stats["bad_messages"], reason)

    def _handle_message(self, msg: bytes, ts: int, out: list[bytes]) -> None:
        kind = chr(msg[0])
        frames.bump(self.stats["received"], kind)
        if kind == "O":
            self._enter(msg, ts, out)
        elif kind == "U":
            self._replace(msg, ts, out)
        elif kind == "X":
            self._cancel(msg, ts, out)
        elif kind == "Q":
            if len(msg) != 1 and (len(msg) < 3 or 3 + int.from_bytes(msg[1:3], "big") != len(msg)):
                return self._bad_message("bad_length")
            out.append(_QUERY_RESP.pack(b"Q", ts, self._last_ref + 1))
        else:
            self._ignore(f"unsupported_type_{kind}")

    def _appendage(self, msg: bytes, fixed: int) -> dict[int, bytes] | None:
        (applen,) = struct.unpack_from(">H", msg, fixed - 2)
        if fixed + applen != len(msg):
            self._bad_message("bad_length")
            return None
        opts = _parse_options(msg[fixed:])
        if opts is None:
            self._bad_message("bad_appendage")
        return opts

    def _reject(self, ref: int, reason: int, clordid: bytes, ts: int, out: list[bytes]) -> None:
        frames.bump(self.stats["rejects"], reason)
        out.append(_REJECTED.pack(b"J", ts, ref, reason, clordid))

    def _canceled(self, o: _Order, dec: int, reason: bytes, ts: int, out: list[bytes]) -> None:
        frames.bump(self.stats["cancels"], reason.decode())
        out.append(_CANCELED.pack(b"C", ts, o.ref, dec, reason))
        if self._extended:
            self._md_canceled(o, dec, ts)
        o.leaves -= dec
        if o.leaves == 0:
            self._kill(o)

    def _kill(self, o: _Order) -> None:
        """Take a dead appliance order off the book and out of the live map."""
        book = self._books[o.symbol]
        if o in book._side(o.is_buy).get(o.price, ()):
            book.remove(o)
        self._live.pop(o.ref, None)

    def _executed(self, o: _Order, qty: int, price: int, flag: bytes, match: int,
                  ts: int, out: list[bytes]) -> None:
        out.append(_EXECUTED.pack(b"E", ts, o.ref, qty, price, flag, match, 0))
        self.stats["executions"] += 1
        if o.first_fill_ts < 0:
            o.first_fill_ts = ts
        o.executed += qty
        o.leaves -= qty

    @staticmethod
    def _price_ok(price: int, market_ok: bool) -> bool:
        return (0 < price <= MAX_PRICE) or (market_ok and price == MARKET_PRICE)

    def _enter(self, msg: bytes, ts: int, out: list[bytes]) -> None:
        if len(msg) < _ENTER.size:
            return self._bad_message("bad_length")
        (_, ref, side, qty, sym, price, tif, display, cap, iso, cross, clordid,
         _applen) = _ENTER.unpack_from(msg)
        opts = self._appendage(msg, _ENTER.size)
        if opts is None:
            return None
        if ref <= self._last_ref:
            return self._ignore("ref_not_increasing")
        self._last_ref = ref
        symbol = sym.rstrip(b" ").decode("ascii", "replace")
        if not 1 <= qty <= MAX_QTY:
            return self._reject(ref, REJ_INVALID_QUANTITY, clordid, ts, out)
        if symbol not in self._books:
            return self._reject(ref, REJ_INVALID_SYMBOL, clordid, ts, out)
        if not self._price_ok(price, market_ok=True):
            return self._reject(ref, REJ_INVALID_PRICE, clordid, ts, out)
        if side not in (b"B", b"S", b"T", b"E"):
            return self._reject(ref, REJ_INVALID_SIDE, clordid, ts, out)
        if side == b"T" and opts.get(TAG_SHARES_LOCATED) != b"Y":
            return self._reject(ref, REJ_LOCATE_REQUIRED, clordid, ts, out)
        o = _Order(symbol, side.decode(), price, qty, self._take_prio(), ref=ref,
                   qty=qty, tif=tif, display=display, capacity=cap, iso=iso,
                   cross=cross, clordid=clordid, order_ref_num=self._next_order_ref)
        self._next_order_ref += 1
        out.append(_ACCEPTED.pack(b"A", ts, ref, side, qty, sym, price, tif, display,
                                  o.order_ref_num, cap, iso, cross, b"L", clordid, 0))
        self._live[ref] = o
        if self._extended:
            self._enter_hidden(o, ts, out)
        else:
            self._match_and_place(o, ts, out)

    def _match_and_place(self, o: _Order, ts: int, out: list[bytes]) -> None:
        book = self._books[o.symbol]
        while o.leaves:
            r = book.best_contra(o.is_buy, o.price)
            if r is None:
                break
            q = min(o.leaves, r.leaves)
            match = self._next_match
            self._next_match += 1
            self._executed(o, q, r.price, b"R", match, ts, out)
            if r.synthetic:
                r.leaves -= q
            else:
                self._executed(r, q, r.price, b"A", match, ts, out)
            if self._extended:
                self._md_traded(r, q, match, ts)
            if r.leaves == 0:
                book.remove(r)
                self._live.pop(r.ref, None)
                if r.hidden:
                    self._reload_if_iceberg(r, ts)
        if o.leaves == 0:
            self._live.pop(o.ref, None)
        elif o.tif == b"3":
            self._canceled(o, o.leaves, b"I", ts, out)
        elif o.price == MARKET_PRICE:
            self._canceled(o, o.leaves, b"Z", ts, out)
        else:
            book.add(o)
            if self._extended:
                self._show(o, ts)

    def _replace(self, msg: bytes, ts: int, out: list[bytes]) -> None:
        if len(msg) < _REPLACE.size:
            return self._bad_message("bad_length")
        (_, orig, ref, qty, price, tif, display, iso, clordid,
         _applen) = _REPLACE.unpack_from(msg)
        opts = self._appendage(msg, _REPLACE.size)
        if opts is None:
            return None
        o = self._live.get(orig)
        if o is None:
            return self._ignore("replace_orig_not_live")
        if ref <= self._last_ref:
            return self._ignore("ref_not_increasing")
        if (not 1 <= qty <= MAX_QTY or not self._price_ok(price, market_ok=False)
                or qty <= o.executed):
            return self._canceled(o, o.leaves, b"Z", ts, out)  # §2.2 rule 2
        self._last_ref = ref
        if o.side == "T" and opts.get(TAG_SHARES_LOCATED) != b"Y":
            return self._reject(ref, REJ_LOCATE_REQUIRED, clordid, ts, out)  # rule 3
        book = self._books[o.symbol]
        book.remove(o)
        del self._live[orig]
        leaves = qty - o.executed
        if self._extended:
            self._md_replacing(o, not (price != o.price or leaves > o.leaves), o.leaves)
        if price != o.price or leaves > o.leaves:
            o.prio = self._take_prio()
            o.order_ref_num = self._next_order_ref
            self._next_order_ref += 1
        o.ref, o.qty, o.leaves, o.price = ref, qty, leaves, price
        o.tif, o.display, o.iso, o.clordid = tif, display, iso, clordid
        self._live[ref] = o
        out.append(_REPLACED.pack(b"U", ts, orig, ref, o.side.encode(), leaves,
                                  o.symbol.encode().ljust(8, b" "), price, tif,
                                  display, o.order_ref_num, o.capacity, iso, o.cross,
                                  b"L", clordid, 0))
        self._match_and_place(o, ts, out)
        if self._extended:
            self._md_replaced(ts)

    def _cancel(self, msg: bytes, ts: int, out: list[bytes]) -> None:
        if len(msg) != _CANCEL.size:
            if len(msg) < _CANCEL.size + 2:
                return self._bad_message("bad_length")
            if self._appendage(msg, _CANCEL.size + 2) is None:
                return None
        _, ref, qty = _CANCEL.unpack_from(msg)
        o = self._live.get(ref)
        if o is None:
            return self._ignore("cancel_not_live")
        if qty != 0 and qty >= o.leaves:
            return self._ignore("cancel_superfluous")
        self._canceled(o, o.leaves - qty, b"U", ts, out)

    def _passive_fill(self, ts: int, out: list[bytes]) -> None:
        if self._rng.random() >= self.p_passive or not self._live:
            return
        o = min(self._live.values(), key=_Order.sort_key)
        q = self._rng.randint(1, o.leaves)
        match = self._next_match
        self._next_match += 1
        self._executed(o, q, o.price, b"A", match, ts, out)
        if self._extended:
            self._md_traded(o, q, match, ts)
        self.stats["passive_fills"] += 1
        if o.leaves == 0:
            self._kill(o)



def serve_udp(
    sim: VenueSim,
    host: str,
    port: int,
    *,
    max_packets: int,
    timeout_s: float,
    on_ready: Callable[[tuple], None] | None = None,
    clock: Callable[[], int] = time.time_ns,
) -> int:
    """Serve `sim` on a loopback UDP socket: each datagram goes through
    ``sim.handle_datagram(data, clock())``; data packets are sent back to the
    datagram's source, request packets to the same host at the appliance's
    ``request_port`` (from this one socket: the appliance tells venues apart
    by IP address only).  The simulator's timers (:meth:`VenueSim.tick`) run
    after every datagram and at least every ``retransmit_ms``, their output
    going to the last source seen.  Stops after `max_packets` datagrams or
    `timeout_s` seconds in total, whichever comes first; returns the number
    of datagrams received.  `port` 0 binds an ephemeral port; `on_ready` is
    called with the bound address before the first receive.  Refuses
    non-loopback hosts."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(f"serve_udp is for loopback only, not {host!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + timeout_s
    received = 0
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, port))
        if on_ready is not None:
            on_ready(s.getsockname())
        peer = None
        while received < max_packets:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            s.settimeout(min(remaining, sim.retransmit_ns / 1e9))
            out: list[tuple[str, bytes]] = []
            try:
                data, peer = s.recvfrom(65535)
            except TimeoutError:
                pass
            else:
                received += 1
                out += sim.handle_datagram(data, clock())
            out += sim.tick_datagrams(clock())
            if peer is None:
                continue
            for kind, payload in out:
                s.sendto(payload, peer if kind == "data"
                         else (peer[0], sim.appliance.request_port))
    return received
