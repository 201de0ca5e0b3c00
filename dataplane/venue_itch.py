"""The venue simulator's market data: Nasdaq TotalView-ITCH 5.0 for its own
book, in MoldUDP64 packets to a multicast group, with heartbeats when quiet
and a request server that retransmits from its replay buffer
(docs/venue-sim.md "Market data", docs/market-data.md for the wire).

Messages are packed with ``struct`` formats derived, at import, from the
project's one definition of each layout, the scapy layers of
:mod:`pcaps.itch_layers` (themselves tested field by field against
``cdefs/itch_wire.h``); tests/test_venue_itch.py checks every message kind
byte for byte against :func:`pcaps.itch_layers.itch_message`.  Scapy itself
is too slow for a simulator that publishes every book change.
"""
from __future__ import annotations

import ipaddress
import struct
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from scapy.fields import BitField, IntField, LongField, ShortField, StrFixedLenField

from dataplane import frames
from pcaps.itch_layers import (
    ITCH_CLASSES,
    MOLD_COUNT_HEARTBEAT,
    MOLD_HLEN,
    MOLD_SESSION_LEN,
)

NS_PER_DAY = 86_400_000_000_000
MAX_UDP_PAYLOAD = 1472
_MOLD = struct.Struct(">10sQH")


def _struct_of(code: str) -> struct.Struct:
    """The layer's fields as one big-endian struct; the 48-bit timestamp
    is a 6-byte string."""
    fmt = ">"
    for f in ITCH_CLASSES[code].fields_desc:
        if isinstance(f, BitField):
            fmt += f"{f.size // 8}s"
        elif isinstance(f, StrFixedLenField):
            fmt += f"{f.sz if f.sz else f.length_from(None)}s"
        elif isinstance(f, LongField):
            fmt += "Q"
        elif isinstance(f, IntField):
            fmt += "I"
        elif isinstance(f, ShortField):
            fmt += "H"
        else:  # a new field type in the layers must be taught here
            raise TypeError(f"ITCH {code}: field {f.name} of type {type(f).__name__}")
    return struct.Struct(fmt)


_S = {code: _struct_of(code) for code in "SRHAEXDUPC"}


def _ts(now_ns: int) -> bytes:
    return (now_ns % NS_PER_DAY).to_bytes(6, "big")


def _stock(symbol: str) -> bytes:
    return symbol.encode("ascii").ljust(8, b" ")


@dataclass(frozen=True)
class MarketDataConfig:
    """Where and how the simulator publishes.  ``locates`` maps each symbol
    to its stock locate (symbols without one get the next free numbers, in
    sorted order).  ``source_ip`` defaults to the venue's address; the
    request server listens on ``venue.ip:request_port``."""

    group: str = "239.1.1.1"
    port: int = 26400
    session: str = "00000001AA"
    locates: Mapping[str, int] = field(default_factory=dict)
    source_ip: str | None = None
    src_port: int = 26399
    request_port: int = 26401
    heartbeat_ms: int = 1000
    replay_depth: int = 1 << 16


class ItchPublisher:
    """Messages queue up as the book changes; :meth:`flush` numbers them,
    keeps them for retransmission and frames them as MoldUDP64 packets."""

    def __init__(self, cfg: MarketDataConfig, venue_mac: str, venue_ip: str,
                 symbols: list[str]) -> None:
        if len(cfg.session) > MOLD_SESSION_LEN:
            raise ValueError("market data session name longer than 10 characters")
        if cfg.heartbeat_ms <= 0 or cfg.replay_depth <= 0:
            raise ValueError("heartbeat_ms and replay_depth must be positive")
        self.cfg = cfg
        self.session = cfg.session.encode("ascii").ljust(MOLD_SESSION_LEN, b" ")
        self._mac = frames.mac(venue_mac)
        self._src_ip = ipaddress.IPv4Address(cfg.source_ip or venue_ip).packed
        self._venue_ip = ipaddress.IPv4Address(venue_ip).packed
        g = ipaddress.IPv4Address(cfg.group)
        if not g.is_multicast:
            raise ValueError(f"market data group {cfg.group} is not a multicast address")
        self._group = g.packed
        self._group_mac = bytes([0x01, 0x00, 0x5E, self._group[1] & 0x7F, *self._group[2:]])
        self.locates: dict[str, int] = dict(cfg.locates)
        free = max(self.locates.values(), default=0) + 1
        for sym in sorted(symbols):
            if sym not in self.locates:
                self.locates[sym] = free
                free += 1
        self._pending: list[bytes] = []
        self._sent: deque[bytes] = deque(maxlen=cfg.replay_depth)
        self.next_seq = 1
        self._next_ref = 1
        self._last_tx: int | None = None
        self.heartbeat_ns = cfg.heartbeat_ms * 1_000_000
        self.stats = {"messages": {}, "packets": 0, "heartbeats": 0, "requests": 0,
                      "retransmitted": 0, "request_too_old": 0, "bad_requests": 0}

    # --- messages (ITCH 5.0 section numbers in docs/market-data.md) --------

    def _q(self, code: str, *fields) -> None:
        frames.bump(self.stats["messages"], code)
        self._pending.append(_S[code].pack(code.encode(), *fields))

    def new_ref(self) -> int:
        r = self._next_ref
        self._next_ref += 1
        return r

    def system_event(self, code: str, now_ns: int) -> None:
        self._q("S", 0, 0, _ts(now_ns), code.encode())

    def directory(self, symbol: str, now_ns: int) -> None:
        self._q("R", self.locates[symbol], 0, _ts(now_ns), _stock(symbol), b"Q", b"N", 100,
                b"N", b"C", b"Z ", b"P", b"N", b"N", b"1", b"N", 0, b"N")

    def trading_action(self, symbol: str, state: str, reason: str, now_ns: int) -> None:
        self._q("H", self.locates[symbol], 0, _ts(now_ns), _stock(symbol), state.encode(),
                b" ", reason.encode("ascii").ljust(4, b" ")[:4])

    def add(self, symbol: str, ref: int, buy: bool, shares: int, price: int,
            now_ns: int) -> None:
        self._q("A", self.locates[symbol], 0, _ts(now_ns), ref, b"B" if buy else b"S",
                shares, _stock(symbol), price)

    def executed(self, symbol: str, ref: int, shares: int, match: int, now_ns: int) -> None:
        self._q("E", self.locates[symbol], 0, _ts(now_ns), ref, shares, match)

    def cancel(self, symbol: str, ref: int, shares: int, now_ns: int) -> None:
        self._q("X", self.locates[symbol], 0, _ts(now_ns), ref, shares)

    def delete(self, symbol: str, ref: int, now_ns: int) -> None:
        self._q("D", self.locates[symbol], 0, _ts(now_ns), ref)

    def replace(self, symbol: str, orig: int, new: int, shares: int, price: int,
                now_ns: int) -> None:
        self._q("U", self.locates[symbol], 0, _ts(now_ns), orig, new, shares, price)

    def trade(self, symbol: str, buy: bool, shares: int, price: int, match: int,
              now_ns: int) -> None:
        """A non-displayed order traded (Trade 'P': order reference 0)."""
        self._q("P", self.locates[symbol], 0, _ts(now_ns), 0, b"B" if buy else b"S", shares,
                _stock(symbol), price, match)

    # --- MoldUDP64 -----------------------------------------------------------

    def _packet(self, first: int, msgs: list[bytes]) -> bytes:
        return _MOLD.pack(self.session, first, len(msgs)) + b"".join(
            struct.pack(">H", len(m)) + m for m in msgs)

    def _groups(self, msgs: list[bytes]) -> list[list[bytes]]:
        groups: list[list[bytes]] = []
        size = 0
        for m in msgs:
            if not groups or size + 2 + len(m) > MAX_UDP_PAYLOAD:
                groups.append([])
                size = MOLD_HLEN
            groups[-1].append(m)
            size += 2 + len(m)
        return groups

    def flush(self, now_ns: int) -> list[bytes]:
        """The queued messages as numbered packets (as many as fit in each)."""
        out = []
        for g in self._groups(self._pending):
            out.append(self._packet(self.next_seq, g))
            self.next_seq += len(g)
            self._sent.extend(g)
        self._pending = []
        if out:
            self.stats["packets"] += len(out)
            self._last_tx = now_ns
        return out

    def tick(self, now_ns: int) -> list[bytes]:
        """A heartbeat (count 0, the next sequence number) after
        ``heartbeat_ms`` without a packet."""
        if self._last_tx is None or now_ns - self._last_tx < self.heartbeat_ns:
            return []
        self._last_tx = now_ns
        self.stats["heartbeats"] += 1
        return [_MOLD.pack(self.session, self.next_seq, MOLD_COUNT_HEARTBEAT)]

    def next_deadline(self) -> int | None:
        return None if self._last_tx is None else self._last_tx + self.heartbeat_ns

    def serve_request(self, payload: bytes) -> list[bytes]:
        """A MoldUDP64 request (session, first sequence number, count): the
        messages still held from there, grouped into packets; nothing for a
        wrong session, a malformed request or one older than the buffer."""
        if len(payload) != MOLD_HLEN:
            self.stats["bad_requests"] += 1
            return []
        session, first, count = _MOLD.unpack(payload)
        if session != self.session or first == 0:
            self.stats["bad_requests"] += 1
            return []
        self.stats["requests"] += 1
        oldest = self.next_seq - len(self._sent)
        if first < oldest:
            self.stats["request_too_old"] += 1
            return []
        end = min(first + count, self.next_seq)
        msgs = [self._sent[s - oldest] for s in range(first, end)]
        self.stats["retransmitted"] += len(msgs)
        out, seq = [], first
        for g in self._groups(msgs):
            out.append(self._packet(seq, g))
            seq += len(g)
        return out

    # --- frames ----------------------------------------------------------------

    def multicast_frame(self, payload: bytes) -> bytes:
        return frames.udp_frame(self._mac, self._group_mac, self._src_ip, self._group,
                                self.cfg.src_port, self.cfg.port, payload)

    def serve_request_frame(self, frame: bytes) -> list[bytes]:
        """A request frame to ``venue.ip:request_port``: the answers as
        unicast frames back to its sender (other frames: nothing)."""
        got = frames.ipv4_udp(frame)
        if isinstance(got, str) or len(frame) < 14:
            return []
        src, dst, udp = got
        sport, dport = struct.unpack_from(">HH", udp)
        if dst != self._venue_ip or dport != self.cfg.request_port or frames.check_udp(
                src, dst, udp):
            return []
        return [frames.udp_frame(self._mac, frame[6:12], self._venue_ip, src,
                                 self.cfg.request_port, sport, p)
                for p in self.serve_request(udp[8:])]
