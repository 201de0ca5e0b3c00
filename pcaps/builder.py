"""Build replayable pcaps from JSON Lines scenarios.

One JSON object per line (blank lines and lines starting with ``#`` are
skipped).  The product brief's messages are accepted verbatim::

    {"timestamp": 1638247400000, "order_id": 12345, "symbol": "AAPL",
     "price": 150.25, "volume": 100, "type": "LIMIT"}
    {"timestamp": 1638247410000, "order_id": 12345, "new_price": 151.00,
     "new_volume": 50}

What a line is:

- ``venue_msg`` present: a venue -> appliance message (below);
- ``action`` present: ``new``, ``modify``, ``cancel``, ``mass_cancel``,
  ``login``, ``logout``, ``heartbeat`` or ``junk`` (below);
- else ``new_price`` or ``new_volume`` present: a Modify (new_volume is the
  new total quantity; the one not given is the order's current value as
  this builder tracks it);
- else a NewOrder.

Keys of every strategy line: ``timestamp`` (ms since the epoch) or
``timestamp_ns``; ``session`` (default 1); ``same_datagram`` (append to the
previous datagram of the same session); ``seq`` (force this message's
sequence number; later ones continue from it); ``src_ip``, ``src_port``,
``src_mac`` (send from another address than the session's); ``comment``.
NewOrder: ``order_id``, ``symbol``, ``volume`` (required), ``price`` (required
for limit orders), ``type`` (LIMIT/MARKET, default LIMIT), ``side``
(buy/sell/sell_short), ``account`` (1), ``venue`` (0), ``tif`` (day/ioc;
day, market orders ioc), ``locate``, ``priority``.  Enum keys also take the
wire number, so a scenario can send values the appliance must reject.
Modify: ``order_id``, ``new_price``, ``new_volume``.  Cancel: ``order_id``.
MassCancel: ``account`` (1).  Login: ``next_expected_seq`` (1).

Venue lines: ``{"venue": 1, "venue_msg": "executed", "ref": 1, "qty": 100,
"price": 150.25, "match": 7}``.  ``venue_msg`` is accepted, replaced,
executed, canceled, rejected, cancel_reject, system_event, heartbeat or
end_of_session.  Fields: ``ref`` (UserRefNum; for replaced the new one),
``orig_ref``, ``qty``, ``price`` (dollars, at most 4 decimals), ``match``,
``reason`` (canceled: a letter, default U; rejected: a number, default 1),
``state`` (L/D), ``event`` (system_event, default S), ``side``, ``symbol``,
``tif``, ``liquidity``, ``order_ref``, ``cl_ord_id``; ``order_id`` (with
``session``) fills side, symbol, price, qty, tif and ClOrdID from that
order as tracked here.  Also ``timestamp``/``timestamp_ns``,
``same_datagram``, ``seq``, ``ufo_session``, ``src_*``, ``comment``.

Timing: a line without a timestamp is the previous one + 1000 ns (the
first: 1000 ns); timestamps must not go backwards.  A datagram's capture
time is its first message's time; an SP header's ``timestamp_ns`` and an
OUCH Timestamp (ns since UTC midnight) are the message's time.

Sequencing: per session, application messages get 1, 2, 3...; session-level
messages carry the next one without consuming it; a Login
(next_expected_seq 1) is sent automatically before a session's first
message unless that is a Login.  Per venue, blocks get 1, 2, 3...

Values the appliance must reject (zero volume, absurd prices, unknown
symbols, sessions or venues...) are built as asked; a line that cannot be
encoded at all is a ScenarioError naming the file, the line and the key.

Junk: ``{"action": "junk", "kind": K, ...}`` is one frame toward the
appliance that it must drop and count (cdefs/oms_core.h OMS_DROP_LIST).
Junk consumes no sequence number, sends no automatic Login and does not
count as the session speaking (no heartbeat is held back for it).  Keys:
``timestamp``/``timestamp_ns``, ``comment``, ``kind`` and, for every kind
but ``random``, ``session`` (default 1: whose address it comes from and
whose next sequence number it carries), ``src_ip``, ``src_port``,
``src_mac`` and ``order_id`` (default 0).  Those kinds are built from one
NewOrder -- ``order_id``, buy 100 of the first configured symbol at 1.00,
the session's next sequence number -- in a datagram from the session's
address to the appliance's strategy port, then spoilt:

- ``random``: ``seed`` (default 0) seeds ``random.Random``, which draws the
  length (0..100) and the bytes; if the bytes happen to carry the IPv4 or
  802.1Q ethertype at offset 12, its first byte is flipped.  So it is
  ``RUNT`` (shorter than 14 bytes) or else ``NOT_IPV4``.
- ``bad_ip_checksum``: the IP header checksum is wrong: ``IP_CHECKSUM``.
- ``bad_udp_checksum``: the UDP checksum is wrong (and not 0, which would
  mean "none"): ``UDP_CHECKSUM``.
- ``truncated``: only the first ``length`` bytes of the message are sent
  (default 16; IP and UDP lengths and checksums are right): 1..23 is
  ``SP_TRUNCATED``; 24 up to the message's length - 1 is ``SP_BAD_LENGTH``.
- ``wrong_port``: sent to UDP ``port`` (default: the first port after
  strategy_port that is none of the appliance's), which must not be the
  strategy, venue or venue request port: ``UNKNOWN_PORT``.
- ``not_for_us``: IP destination ``dst_ip`` (default 192.0.2.1), which must
  not be the appliance's: ``NOT_FOR_US``.
- ``unknown_session``: from the session's address but with ``session_id``
  (default: the largest configured id + 1), which must not be configured:
  ``SP_UNKNOWN_SESSION``.
- ``bad_version``: header version ``version`` (default 2, not 1):
  ``SP_BAD_VERSION``.

Re-sending an already used sequence number is not junk but an ordinary line
with ``seq`` (``SP_DUPLICATE_SEQ``); mind that later lines of that session
continue from it unless they give ``seq`` themselves.

CLI: ``python -m pcaps.builder SCENARIO.jsonl OUT.pcap [--config FILE]``.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import random
import re
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from dataplane import frames
from pcaps import layers as L

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
DEFAULT_STEP_NS = 1000  # a line without a timestamp: previous + 1 µs
NS_PER_DAY = 86_400 * NS_PER_S
MAX_TS_NS = (1 << 32) * NS_PER_S - 1  # classic pcap seconds are u32
U8, U16, U32, U64 = (1 << 8) - 1, (1 << 16) - 1, (1 << 32) - 1, (1 << 64) - 1

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
PCAP_SNAPLEN = 65535


class ScenarioError(ValueError):
    """A scenario line that cannot be built: str() is
    "FILE:LINE: FIELD: REASON" (FIELD left out when the whole line is
    wrong)."""

    def __init__(self, file: str, line: int, field: str, reason: str):
        super().__init__(file, line, field, reason)
        self.file = file
        self.line = line
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        if self.field:
            return f"{self.file}:{self.line}: {self.field}: {self.reason}"
        return f"{self.file}:{self.line}: {self.reason}"


class _LineError(Exception):
    """Raised inside one line's handling; becomes a ScenarioError."""

    def __init__(self, field: str, reason: str):
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


# --------------------------------------------------------------------------
# Keys per kind of line

_COMMON = {"timestamp", "timestamp_ns", "same_datagram", "seq", "comment",
           "src_ip", "src_port", "src_mac"}
_SP_COMMON = _COMMON | {"session", "action"}
_KEYS = {
    "new": _SP_COMMON | {"order_id", "symbol", "price", "volume", "type", "side", "account",
                         "venue", "tif", "locate", "priority"},
    "modify": _SP_COMMON | {"order_id", "new_price", "new_volume"},
    "cancel": _SP_COMMON | {"order_id"},
    "mass_cancel": _SP_COMMON | {"account"},
    "login": _SP_COMMON | {"next_expected_seq"},
    "logout": _SP_COMMON,
    "heartbeat": _SP_COMMON,
}

_JUNK_COMMON = {"timestamp", "timestamp_ns", "comment", "action", "kind"}
_JUNK_SP = _JUNK_COMMON | {"session", "src_ip", "src_port", "src_mac", "order_id"}
_JUNK_KEYS = {
    "random": _JUNK_COMMON | {"seed"},
    "bad_ip_checksum": _JUNK_SP,
    "bad_udp_checksum": _JUNK_SP,
    "truncated": _JUNK_SP | {"length"},
    "wrong_port": _JUNK_SP | {"port"},
    "not_for_us": _JUNK_SP | {"dst_ip"},
    "unknown_session": _JUNK_SP | {"session_id"},
    "bad_version": _JUNK_SP | {"version"},
}
JUNK_KINDS = tuple(_JUNK_KEYS)
JUNK_MAX_RANDOM_LEN = 100
JUNK_NOT_FOR_US_IP = "192.0.2.1"  # TEST-NET-1

_SIDES = {"buy": 1, "sell": 2, "sell_short": 3}
_ORD_TYPES = {"limit": 1, "market": 2}
_TIFS = {"day": 1, "ioc": 2}
_OUCH_SIDE = {1: "B", 2: "S", 3: "T"}
_OUCH_TIF = {1: "0", 2: "3"}
_VENUE_COMMON = _COMMON | {"venue", "venue_msg", "ufo_session", "order_id", "session"}
_VENUE_FIELDS = {
    "accepted": {"ref", "side", "symbol", "tif", "state", "order_ref", "price", "qty",
                 "cl_ord_id"},
    "replaced": {"ref", "orig_ref", "side", "symbol", "tif", "state", "order_ref", "price",
                 "qty", "cl_ord_id"},
    "executed": {"ref", "qty", "price", "match", "liquidity"},
    "canceled": {"ref", "qty", "reason"},
    "rejected": {"ref", "reason", "cl_ord_id"},
    "cancel_reject": {"ref"},
    "system_event": {"event"},
    "heartbeat": set(),
    "end_of_session": set(),
}
_VENUE_MSGS = {
    "accepted": "Accepted",
    "replaced": "Replaced",
    "executed": "Executed",
    "canceled": "Canceled",
    "rejected": "Rejected",
    "cancel_reject": "CancelReject",
    "system_event": "SystemEvent",
    "heartbeat": None,
    "end_of_session": None,
}


# --------------------------------------------------------------------------
# Value readers: each raises _LineError naming the key


def _int(d: dict, key: str, lo: int, hi: int, default: int | None = None) -> int:
    if key not in d:
        if default is None:
            raise _LineError(key, "missing")
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise _LineError(key, f"must be an integer, not {json.dumps(v, default=str)}")
    if not lo <= v <= hi:
        raise _LineError(key, f"{v} is outside {lo}..{hi}")
    return v


def _bool(d: dict, key: str) -> bool:
    v = d.get(key, False)
    if not isinstance(v, bool):
        raise _LineError(key, f"must be true or false, not {json.dumps(v, default=str)}")
    return v


def _str(d: dict, key: str, max_len: int, default: str | None = None) -> str:
    if key not in d:
        if default is None:
            raise _LineError(key, "missing")
        return default
    v = d[key]
    if not isinstance(v, str):
        raise _LineError(key, f"must be a string, not {json.dumps(v, default=str)}")
    if len(v) > max_len or not v.isascii():
        raise _LineError(key, f"{v!r} is not at most {max_len} ASCII characters")
    return v


def _enum(d: dict, key: str, names: dict[str, int], default: int) -> int:
    """A name (case-insensitive) or the raw wire byte."""
    if key not in d:
        return default
    v = d[key]
    if isinstance(v, str):
        code = names.get(v.lower())
        if code is None:
            raise _LineError(key, f"{v!r} is not one of {', '.join(names)} (or a number)")
        return code
    return _int(d, key, 0, U8)


def _price(d: dict, key: str) -> int:
    """A price (JSON number read as Decimal, an integer, or a decimal
    string) as the strategy protocol's fixed point, 8 decimals."""
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, Decimal, str)):
        raise _LineError(key, f"must be a number, not {json.dumps(v, default=str)}")
    try:
        return L.price_to_fixed(v)
    except ValueError as exc:
        raise _LineError(key, str(exc)) from None


def _ouch_price(d: dict, key: str) -> int:
    """A venue price in dollars as OUCH's 4-decimal unsigned integer."""
    fixed = _price(d, key)
    scale = 10 ** (L.SP_PRICE_DECIMALS - L.OUCH_PRICE_DECIMALS)
    if fixed % scale:
        raise _LineError(key, f"{d[key]} has more than {L.OUCH_PRICE_DECIMALS} decimals (OUCH)")
    if not 0 <= fixed // scale <= U64:
        raise _LineError(key, f"{d[key]} is not an OUCH price (0..2^64-1 at scale 1e-4)")
    return fixed // scale


# --------------------------------------------------------------------------
# The builder


@dataclass
class _Order:
    """What the builder knows of an order it has sent."""

    price: int
    qty: int
    symbol: str
    side: int
    ord_type: int
    tif: int


@dataclass
class _Datagram:
    time_ns: int
    src: tuple[str, str, int]  # mac, ip, port
    dst: tuple[str, str, int]
    messages: list[bytes] = field(default_factory=list)
    ufo: tuple[bytes, int] | None = None  # venue packets: (session, first seq)
    count: int | None = None  # venue packets: fixed count (heartbeat, end)

    def payload(self) -> bytes:
        if self.ufo is None:
            return b"".join(self.messages)
        return L.ufo_packet(self.ufo[0], self.ufo[1], self.messages, self.count)

    def frame(self) -> bytes:
        return udp_frame(self.src, self.dst, self.payload())


_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}\Z")
_IP_RE = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.|\Z)){4}\Z")


def udp_frame(src: tuple[str, str, int], dst: tuple[str, str, int], payload: bytes) -> bytes:
    """The bytes of scapy's ``Ether(src, dst) / IP(src, dst, id=0,
    flags="DF", ttl=64) / UDP(sport, dport) / payload`` (IHL 5, TOS 0, both
    checksums computed, a UDP checksum of 0 sent as 0xFFFF), built with
    struct: scapy costs ~0.5 ms a frame.  Addresses that are not plain
    aa:bb:cc:dd:ee:ff MACs or dotted quads go to scapy, which reads more
    forms."""
    (smac, sip, sport), (dmac, dip, dport) = src, dst
    if not (_MAC_RE.match(smac) and _MAC_RE.match(dmac) and _IP_RE.match(sip)
            and _IP_RE.match(dip) and len(payload) <= 65535 - 28):
        pkt = (Ether(src=smac, dst=dmac) / IP(src=sip, dst=dip, id=0, flags="DF", ttl=64)
               / UDP(sport=sport, dport=dport) / Raw(payload))
        return bytes(pkt)
    return frames.udp_frame(frames.mac(smac), frames.mac(dmac),
                            bytes(int(x) for x in sip.split(".")),
                            bytes(int(x) for x in dip.split(".")), sport, dport, payload)


@dataclass
class _Junk:
    """A junk frame, bytes as they go on the wire."""

    time_ns: int
    data: bytes

    def frame(self) -> bytes:
        return self.data


class ScenarioBuilder:
    """Turns scenario lines into frames.  ``add(lineno, text)`` per line,
    then ``frames()``."""

    def __init__(self, cfg, source: str = "<memory>"):
        self.cfg = cfg
        self.source = source
        L.bind_ports(cfg.appliance.strategy_port, cfg.appliance.venue_port)
        self.now = 0
        self.datagrams: list[_Datagram | _Junk] = []
        self.last_dgram: dict[tuple[str, int], _Datagram] = {}
        self.sp_next_seq: dict[int, int] = {}  # session -> next inbound seq
        self.ufo_next_seq: dict[int, int] = {}  # venue -> next seq
        self.orders: dict[tuple[int, int], _Order] = {}
        # a real strategy heartbeats when it has nothing to say, or the
        # appliance times its session out: when the builder last sent on
        # each logged-in session
        self.sp_last_sent: dict[int, int] = {}

    # -- entry points

    def add(self, lineno: int, text: str) -> None:
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            return
        try:
            d = json.loads(stripped, parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, json.JSONDecodeError) as exc:
            raise ScenarioError(self.source, lineno, "", f"not valid JSON: {exc}") from None
        if not isinstance(d, dict):
            raise ScenarioError(self.source, lineno, "", "a line must be a JSON object")
        try:
            self._line(d)
        except _LineError as exc:
            raise ScenarioError(self.source, lineno, exc.field, exc.reason) from None

    def frames(self) -> list[tuple[int, bytes]]:
        # heartbeats of one session are made when a later line shows time
        # has passed, after other sessions' frames: a stable sort puts the
        # capture back in time order
        ordered = sorted(self.datagrams, key=lambda g: g.time_ns)
        return [(g.time_ns, g.frame()) for g in ordered]

    # -- one line

    def _line(self, d: dict) -> None:
        kind = self._kind(d)
        if kind == "venue":
            vkind = d["venue_msg"]
            if not isinstance(vkind, str) or vkind not in _VENUE_MSGS:
                known = ", ".join(_VENUE_MSGS)
                raise _LineError("venue_msg", "unknown venue message "
                                 f"{json.dumps(vkind, default=str)} (one of {known})")
            allowed, what = _VENUE_COMMON | _VENUE_FIELDS[vkind], f"venue {vkind}"
        elif kind == "junk":
            if "kind" not in d:
                raise _LineError("kind", "missing (one of " + ", ".join(JUNK_KINDS) + ")")
            jkind = d["kind"]
            if not isinstance(jkind, str) or jkind not in _JUNK_KEYS:
                raise _LineError("kind", "unknown junk kind "
                                 f"{json.dumps(jkind, default=str)} (one of "
                                 f"{', '.join(JUNK_KINDS)})")
            allowed, what = _JUNK_KEYS[jkind], f"junk {jkind}"
        else:
            allowed, what = _KEYS[kind], kind
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise _LineError(unknown[0], f"unknown key for a {what} line")
        if "comment" in d and not isinstance(d["comment"], str):
            raise _LineError("comment", "must be a string")
        t = self._time(d)
        self._all_heartbeats(t)
        if kind == "venue":
            self._venue(d, t)
        elif kind == "junk":
            self.datagrams.append(_Junk(t, self._junk(d["kind"], d, t)))
        else:
            self._strategy(kind, d, t)
        self.now = t

    @staticmethod
    def _kind(d: dict) -> str:
        if "venue_msg" in d:
            return "venue"
        if "action" in d:
            a = d["action"]
            if a == "junk":
                return a
            if not isinstance(a, str) or a not in _KEYS or a == "venue":
                raise _LineError("action", f"unknown action {json.dumps(a, default=str)}")
            return a
        if "new_price" in d or "new_volume" in d:
            return "modify"
        return "new"

    def _time(self, d: dict) -> int:
        if "timestamp" in d and "timestamp_ns" in d:
            raise _LineError("timestamp_ns", "give timestamp (ms) or timestamp_ns, not both")
        if "timestamp" in d:
            key, t = "timestamp", _int(d, "timestamp", 0, MAX_TS_NS // NS_PER_MS) * NS_PER_MS
        elif "timestamp_ns" in d:
            key, t = "timestamp_ns", _int(d, "timestamp_ns", 0, MAX_TS_NS)
        else:
            key, t = "timestamp", self.now + DEFAULT_STEP_NS
        if t < self.now:
            raise _LineError(key, f"goes backwards ({t} ns < previous {self.now} ns)")
        return t

    def _src(self, d: dict, mac: str | None, ip: str | None, port: int | None, what: str):
        mac = _str(d, "src_mac", 17, mac or "")
        ip = _str(d, "src_ip", 15, ip or "")
        port = _int(d, "src_port", 0, U16, port if port is not None else -1)
        if not mac or not ip or port < 0:
            missing = "src_mac" if not mac else "src_ip" if not ip else "src_port"
            raise _LineError(what, f"not configured (or give {missing} and the other src_ keys)")
        return mac, ip, port

    def _place(self, key: tuple[str, int], d: dict, t: int, make) -> _Datagram:
        """The datagram a message goes in: the previous one of the same
        session/venue when same_datagram, else a new one from make()."""
        if _bool(d, "same_datagram"):
            g = self.last_dgram.get(key)
            if g is None:
                raise _LineError("same_datagram", f"no earlier datagram of {key[0]} {key[1]}")
            return g
        g = make()
        self.datagrams.append(g)
        self.last_dgram[key] = g
        return g

    # -- strategy messages

    def _strategy(self, kind: str, d: dict, t: int) -> None:
        sid = _int(d, "session", 0, U32, 1)
        app = self.cfg.appliance
        sess = self.cfg.session(sid)
        src = self._src(d, sess and sess.mac, sess and sess.ip, sess and sess.port, "session")
        dst = (app.mac, app.ip, app.strategy_port)
        key = ("session", sid)

        def make():
            return _Datagram(t, src, dst)

        if sess is not None and sid in self.sp_last_sent:
            self._heartbeats(sid, sess, src, dst, t)
        if sid not in self.sp_next_seq:
            self.sp_next_seq[sid] = 1
            if kind != "login":
                login = L.sp_message("Login", session_id=sid, seq=1, timestamp_ns=t,
                                     next_expected_seq=1)
                g = _Datagram(t, src, dst, [login])
                self.datagrams.append(g)
                self.last_dgram[key] = g

        body = getattr(self, f"_sp_{kind}")(d, sid)
        type_name = body.pop("type")
        sequenced = L.SP_TYPE_CODES[type_name] not in L.SP_SESSION_TYPES
        seq = _int(d, "seq", 0, U64, self.sp_next_seq[sid])
        if sequenced:
            self.sp_next_seq[sid] = seq + 1
        msg = L.sp_message(type_name, session_id=sid, seq=seq, timestamp_ns=t, **body)
        self._place(key, d, t, make).messages.append(msg)
        if kind == "logout":
            self.sp_last_sent.pop(sid, None)
        else:
            self.sp_last_sent[sid] = t

    def _all_heartbeats(self, t: int) -> None:
        """Every logged-in session heartbeats through silences up to t, as a
        real strategy would, whoever else is talking meanwhile."""
        app = self.cfg.appliance
        for sid in list(self.sp_last_sent):
            sess = self.cfg.session(sid)
            if sess is not None:
                self._heartbeats(sid, sess, (sess.mac, sess.ip, sess.port),
                                 (app.mac, app.ip, app.strategy_port), t)

    def _heartbeats(self, sid: int, sess, src, dst, t: int) -> None:
        """Heartbeats every heartbeat_ms of silence before a message at t."""
        step = sess.heartbeat_ms * NS_PER_MS
        hb = self.sp_last_sent[sid] + step
        while hb < t:
            msg = L.sp_message("Heartbeat", session_id=sid, seq=self.sp_next_seq[sid],
                               timestamp_ns=hb)
            self.datagrams.append(_Datagram(hb, src, dst, [msg]))
            self.sp_last_sent[sid] = hb
            hb += step

    def _sp_new(self, d: dict, sid: int) -> dict:
        oid = _int(d, "order_id", 0, U64)
        symbol = _str(d, "symbol", 8)
        qty = _int(d, "volume", 0, U32)
        ord_type = _enum(d, "type", _ORD_TYPES, 1)
        if "price" in d:
            price = _price(d, "price")
        elif ord_type == 2:
            price = 0
        else:
            raise _LineError("price", "missing (required for a limit order)")
        side = _enum(d, "side", _SIDES, 1)
        tif = _enum(d, "tif", _TIFS, 2 if ord_type == 2 else 1)
        flags = (L.SP_FLAG_LOCATE if _bool(d, "locate") else 0) | (
            L.SP_FLAG_PRIORITY if _bool(d, "priority") else 0
        )
        account = _int(d, "account", 0, U32, 1)
        venue = _int(d, "venue", 0, U16, 0)
        self.orders.setdefault((sid, oid), _Order(price, qty, symbol, side, ord_type, tif))
        return dict(type="NewOrder", cl_ord_id=oid, account=account, side=side,
                    ord_type=ord_type, tif=tif, flags=flags, symbol=symbol, price=price,
                    qty=qty, venue=venue)

    def _sp_modify(self, d: dict, sid: int) -> dict:
        oid = _int(d, "order_id", 0, U64)
        order = self.orders.get((sid, oid))
        for key in ("new_price", "new_volume"):
            if key not in d and order is None:
                raise _LineError(key, f"missing, and order {oid} of session {sid} was not "
                                      "sent earlier in this scenario to take it from")
        price = _price(d, "new_price") if "new_price" in d else order.price
        qty = _int(d, "new_volume", 0, U32) if "new_volume" in d else order.qty
        if order is not None:
            order.price, order.qty = price, qty
        return dict(type="Modify", cl_ord_id=oid, new_price=price, new_qty=qty)

    def _sp_cancel(self, d: dict, sid: int) -> dict:
        return dict(type="Cancel", cl_ord_id=_int(d, "order_id", 0, U64))

    def _sp_mass_cancel(self, d: dict, sid: int) -> dict:
        return dict(type="MassCancel", account=_int(d, "account", 0, U32, 1))

    def _sp_login(self, d: dict, sid: int) -> dict:
        return dict(type="Login", next_expected_seq=_int(d, "next_expected_seq", 0, U64, 1))

    def _sp_logout(self, d: dict, sid: int) -> dict:
        return dict(type="Logout")

    def _sp_heartbeat(self, d: dict, sid: int) -> dict:
        return dict(type="Heartbeat")

    # -- junk

    def _junk(self, kind: str, d: dict, t: int) -> bytes:
        """The bytes of one junk frame (see the module docstring)."""
        if kind == "random":
            rng = random.Random(_int(d, "seed", 0, U64, 0))
            data = bytearray(rng.getrandbits(8) for _ in range(rng.randint(0, JUNK_MAX_RANDOM_LEN)))
            if data[12:14] in (b"\x08\x00", b"\x81\x00"):
                data[12] ^= 0x40  # never IPv4, never a VLAN tag to look behind
            return bytes(data)

        app = self.cfg.appliance
        sid = _int(d, "session", 0, U32, 1)
        sess = self.cfg.session(sid)
        src = self._src(d, sess and sess.mac, sess and sess.ip, sess and sess.port, "session")
        dst_ip, dport = app.ip, app.strategy_port
        wire_sid, version = sid, L.SP_VERSION
        ports = _appliance_ports(app)
        if kind == "wrong_port":
            free = next(p for p in range(app.strategy_port + 1, app.strategy_port + 4)
                        if p not in ports)
            dport = _int(d, "port", 0, U16, free)
            if dport in ports:
                raise _LineError("port", f"{dport} is one of the appliance's ports")
        elif kind == "not_for_us":
            dst_ip = _str(d, "dst_ip", 15, JUNK_NOT_FOR_US_IP)
            try:
                ipaddress.IPv4Address(dst_ip)
            except ValueError:
                raise _LineError("dst_ip", f"{dst_ip!r} is not an IPv4 address") from None
            if dst_ip == app.ip:
                raise _LineError("dst_ip", "is the appliance's address")
        elif kind == "unknown_session":
            default = max((s.id for s in self.cfg.sessions), default=0) + 1
            wire_sid = _int(d, "session_id", 0, U32, min(default, U32))
            if self.cfg.session(wire_sid) is not None:
                raise _LineError("session_id", f"session {wire_sid} is configured")
        elif kind == "bad_version":
            version = _int(d, "version", 0, U8, 2)
            if version == L.SP_VERSION:
                raise _LineError("version", f"{version} is the valid version")
        symbol = self.cfg.instruments[0].symbol if self.cfg.instruments else "JUNK"
        msg = L.sp_message("NewOrder", version=version, session_id=wire_sid,
                           seq=self.sp_next_seq.get(sid, 1), timestamp_ns=t,
                           cl_ord_id=_int(d, "order_id", 0, U64, 0), account=1, side=1,
                           ord_type=1, tif=1, symbol=symbol, price=L.price_to_fixed("1"),
                           qty=100)
        if kind == "truncated":
            n = _int(d, "length", 1, len(msg) - 1, 16)
            msg = msg[:n]
        frame = bytearray(_Datagram(t, src, (app.mac, dst_ip, dport), [msg]).frame())
        if kind == "bad_ip_checksum":
            # a change by 1..0xFFFE: never the same one's-complement value
            frame[24] ^= 0x55
            frame[25] ^= 0x55
        elif kind == "bad_udp_checksum":
            good = struct.unpack_from("!H", frame, 40)[0]
            bad = good ^ 0x5555 or good ^ 0xAAAA  # 0 would mean "no checksum"
            struct.pack_into("!H", frame, 40, bad)
        return bytes(frame)

    # -- venue messages

    def _venue(self, d: dict, t: int) -> None:
        kind = d["venue_msg"]
        vid = _int(d, "venue", 0, U16)
        venue = self.cfg.venue(vid)
        app = self.cfg.appliance
        src = self._src(d, venue and venue.mac, venue and venue.ip, venue and venue.port, "venue")
        dst = (app.mac, app.ip, app.venue_port)
        session = _str(d, "ufo_session", L.UFO_SESSION_LEN, venue.session if venue else None)
        key = ("venue", vid)
        nxt = self.ufo_next_seq.setdefault(vid, 1)

        if _VENUE_MSGS[kind] is None:  # heartbeat / end of session: a packet, no block
            if d.get("same_datagram"):
                raise _LineError("same_datagram", f"a {kind} is a packet of its own")
            seq = _int(d, "seq", 0, U64, nxt)
            count = 0 if kind == "heartbeat" else L.UFO_COUNT_END_OF_SESSION
            g = _Datagram(t, src, dst, [], (session.encode("ascii"), seq), count)
            self.datagrams.append(g)
            self.last_dgram[key] = g
            return

        msg = self._ouch(kind, d, t)
        if _bool(d, "same_datagram"):
            g = self.last_dgram.get(key)
            if g is None or g.count is not None:
                raise _LineError("same_datagram", f"no earlier packet of venue {vid} with blocks")
            implicit = g.ufo[1] + len(g.messages)
            if _int(d, "seq", 0, U64, implicit) != implicit:
                raise _LineError("seq", f"a block appended to a packet has seq {implicit}")
            seq = implicit
        else:
            seq = _int(d, "seq", 0, U64, nxt)
            g = _Datagram(t, src, dst, [], (session.encode("ascii"), seq))
            self.datagrams.append(g)
            self.last_dgram[key] = g
        g.messages.append(msg)
        self.ufo_next_seq[vid] = seq + 1

    def _ouch(self, kind: str, d: dict, t: int) -> bytes:
        order = None
        if "order_id" in d:
            sid = _int(d, "session", 0, U32, 1)
            oid = _int(d, "order_id", 0, U64)
            order = self.orders.get((sid, oid))
            if order is None:
                raise _LineError("order_id", f"order {oid} of session {sid} was not sent earlier")
        elif "session" in d:
            raise _LineError("session", "only used with order_id")
        f: dict = {"timestamp": t % NS_PER_DAY}
        name = _VENUE_MSGS[kind]
        if name == "SystemEvent":
            f["event_code"] = _str(d, "event", 1, "S")
            return L.ouch_message(name, **f)
        f["user_ref"] = _int(d, "ref", 0, U32)
        if name in ("Accepted", "Replaced"):
            f["side"] = (_str(d, "side", 1) if "side" in d
                         else _OUCH_SIDE.get(order.side, "B") if order else "B")
            f["symbol"] = _str(d, "symbol", 8, order.symbol if order else "")
            f["tif"] = (_str(d, "tif", 1) if "tif" in d
                        else _OUCH_TIF.get(order.tif, "0") if order else "0")
            f["state"] = _str(d, "state", 1, "L")
            f["order_ref"] = _int(d, "order_ref", 0, U64, f["user_ref"])
            f["capacity"] = self.cfg.appliance.capacity
            if name == "Replaced":
                f["orig_user_ref"] = _int(d, "orig_ref", 0, U32, 0)
        if name in ("Accepted", "Replaced", "Executed"):
            f["price"] = self._ouch_price_default(d, order)
        if name in ("Accepted", "Replaced", "Executed", "Canceled"):
            if "qty" in d or order is None:
                f["qty"] = _int(d, "qty", 0, U32)
            else:
                f["qty"] = order.qty
        if name in ("Accepted", "Replaced", "Rejected"):
            if "cl_ord_id" in d:
                f["cl_ord_id"] = L.clordid(_int(d, "cl_ord_id", 0, U64))
            elif order is not None:
                f["cl_ord_id"] = L.clordid(_int(d, "order_id", 0, U64))
        if name == "Executed":
            f["match"] = _int(d, "match", 0, U64, 0)
            f["liquidity"] = _str(d, "liquidity", 1, "A")
        if name == "Canceled":
            f["reason"] = _str(d, "reason", 1, "U")
        if name == "Rejected":
            f["reason"] = _int(d, "reason", 0, U16, 1)
        return L.ouch_message(name, **f)

    @staticmethod
    def _ouch_price_default(d: dict, order: _Order | None) -> int:
        if "price" in d:
            return _ouch_price(d, "price")
        if order is None:
            return 0
        if order.ord_type == 2:
            return L.OUCH_MARKET_PRICE
        return max(order.price, 0) // 10 ** (L.SP_PRICE_DECIMALS - L.OUCH_PRICE_DECIMALS)


def _appliance_ports(app) -> set[int]:
    """The UDP ports the appliance takes frames on."""
    request = getattr(app, "request_port", None)
    return {app.strategy_port, app.venue_port,
            request if request is not None else app.venue_port + 1}


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number")


# --------------------------------------------------------------------------
# Public functions


def build_frames(lines: Iterable[str], cfg, source: str = "<memory>") -> list[tuple[int, bytes]]:
    """(capture time in ns, Ethernet frame) for every datagram of the
    scenario lines, in order."""
    b = ScenarioBuilder(cfg, source)
    for lineno, text in enumerate(lines, 1):
        b.add(lineno, text)
    return b.frames()


def _default_config():
    from control.config import load_default_config

    return load_default_config()


def build_pcap(scenario_path, out_path, cfg=None) -> int:
    """Build the scenario file into a nanosecond pcap at ``out_path``;
    returns the number of frames.  ``cfg`` defaults to the bundled
    default configuration.  Nothing is written if the scenario has an
    error."""
    if cfg is None:
        cfg = _default_config()
    source = str(scenario_path)
    with open(scenario_path, encoding="utf-8") as f:
        frames = build_frames(f, cfg, source)
    write_pcap_ns(out_path, frames)
    return len(frames)


def write_pcap_ns(path, frames: Iterable[tuple[int, bytes]]) -> None:
    """A classic little-endian pcap with the nanosecond magic (0xa1b23c4d),
    Ethernet link type; each record's time is exact to the nanosecond."""
    out = [struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, PCAP_SNAPLEN, LINKTYPE_ETHERNET)]
    for t, frame in frames:
        sec, nsec = divmod(t, NS_PER_S)
        out.append(struct.pack("<IIII", sec, nsec, len(frame), len(frame)))
        out.append(frame)
    Path(path).write_bytes(b"".join(out))


def read_pcap_ns(path) -> list[tuple[int, bytes]]:
    """(time in ns, frame bytes) of every record of a classic pcap, either
    byte order, microsecond or nanosecond magic."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        raise ValueError(f"{path}: not a pcap file (too short)")
    for endian in "<>":
        (magic,) = struct.unpack_from(endian + "I", data, 0)
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            break
    else:
        raise ValueError(f"{path}: not a classic pcap file (magic {data[:4].hex()})")
    frac = 1 if magic == PCAP_MAGIC_NS else 1000
    rec = struct.Struct(endian + "IIII")
    out = []
    off, end = 24, len(data)
    while off + 16 <= end:
        sec, sub, incl, _orig = rec.unpack_from(data, off)
        off += 16
        if off + incl > end:
            raise ValueError(f"{path}: record at byte {off - 16} runs past the end")
        out.append((sec * NS_PER_S + sub * frac, data[off : off + incl]))
        off += incl
    if off != end:
        raise ValueError(f"{path}: {end - off} trailing bytes")
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: build SCENARIO into OUT; errors go to stderr, exit status 1."""
    ap = argparse.ArgumentParser(prog="python -m pcaps.builder", description=main.__doc__)
    ap.add_argument("scenario", help="JSON Lines scenario")
    ap.add_argument("out", help="pcap to write (nanosecond timestamps)")
    ap.add_argument("--config", help="appliance YAML config (default: the bundled one)")
    args = ap.parse_args(argv)
    try:
        if args.config:
            from control.config import load_config

            cfg = load_config(args.config)
        else:
            cfg = _default_config()
        n = build_pcap(args.scenario, args.out, cfg)
    except (ScenarioError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # ConfigError and friends
        if type(exc).__name__ != "ConfigError":
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {n} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
