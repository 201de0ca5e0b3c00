"""Scapy layers for market data: Nasdaq TotalView-ITCH 5.0 messages in
MoldUDP64 packets (``cdefs/itch_wire.h``, ``docs/market-data.md``).

``MoldHeader`` (session, sequence number of the first message, count) is
followed by ``count`` ``MoldBlock`` layers (u16 length, one ITCH message);
alone, with count = messages asked for, it is a request packet.  ITCH
messages are big-endian, prices 4 implied decimals.  tests/test_itch_layers.py
checks every field offset and message length here against the C header
through cffi, so the two cannot drift apart.

Helpers: ``itch_message``, ``mold_packet``, ``decode_itch``, ``price4``.
"""
from __future__ import annotations

import struct
from decimal import Decimal

from scapy.fields import (
    BitField,
    IntField,
    LongField,
    ShortField,
    StrFixedLenField,
)
from scapy.packet import NoPayload, Packet, Raw

MOLD_SESSION_LEN = 10
MOLD_HLEN = 20
MOLD_COUNT_HEARTBEAT = 0
MOLD_COUNT_END_OF_SESSION = 0xFFFF
ITCH_PRICE_TO_FIXED = 10_000  # Price(4) -> 8-decimal fixed point


class _Alpha(StrFixedLenField):
    """ITCH Alpha: left justified, space padded."""

    def i2m(self, pkt, x):
        if isinstance(x, str):
            x = x.encode("ascii")
        return (x or b"")[: self.length_from(pkt)].ljust(self.length_from(pkt), b" ")


def _alpha(name: str, n: int = 1, default: str = " ") -> _Alpha:
    return _Alpha(name, default.encode(), n)


class _Itch(Packet):
    """Common part of every ITCH 5.0 message (1.3): type, stock locate,
    tracking number, timestamp (ns since midnight, 6 bytes)."""

    c_prefix = ""  # the message's names in cdefs/itch_wire.h: ITCH_<prefix>_...

    def guess_payload_class(self, payload):
        return Raw


def _header(code: str) -> list:
    return [
        StrFixedLenField("type", code.encode(), 1),
        ShortField("locate", 0),
        ShortField("tracking", 0),
        BitField("timestamp", 0, 48),
    ]


class ItchSystemEvent(_Itch):
    name, c_prefix = "ITCH System Event", "SYSTEM_EVENT"
    fields_desc = _header("S") + [_alpha("code", 1, "O")]


class ItchStockDirectory(_Itch):
    name, c_prefix = "ITCH Stock Directory", "DIRECTORY"
    fields_desc = _header("R") + [
        _alpha("stock", 8),
        _alpha("market_category", 1, "Q"),
        _alpha("financial_status", 1, "N"),
        IntField("round_lot", 100),
        _alpha("round_lots_only", 1, "N"),
        _alpha("issue_classification", 1, "C"),
        _alpha("issue_subtype", 2, "Z"),
        _alpha("authenticity", 1, "P"),
        _alpha("short_sale_threshold", 1, "N"),
        _alpha("ipo_flag", 1, "N"),
        _alpha("luld_tier", 1, "1"),
        _alpha("etp_flag", 1, "N"),
        IntField("etp_leverage", 0),
        _alpha("inverse", 1, "N"),
    ]


class ItchTradingAction(_Itch):
    name, c_prefix = "ITCH Stock Trading Action", "TRADING_ACTION"
    fields_desc = _header("H") + [
        _alpha("stock", 8),
        _alpha("state", 1, "T"),
        _alpha("reserved", 1),
        _alpha("reason", 4),
    ]


class ItchRegSho(_Itch):
    name, c_prefix = "ITCH Reg SHO Restriction", "REG_SHO"
    fields_desc = _header("Y") + [_alpha("stock", 8), _alpha("action", 1, "0")]


class ItchAddOrder(_Itch):
    name, c_prefix = "ITCH Add Order", "ADD"
    fields_desc = _header("A") + [
        LongField("ref", 0),
        _alpha("side", 1, "B"),
        IntField("shares", 0),
        _alpha("stock", 8),
        IntField("price", 0),
    ]


class ItchAddOrderMpid(_Itch):
    name, c_prefix = "ITCH Add Order with MPID", "ADD"
    fields_desc = _header("F") + ItchAddOrder.fields_desc[4:] + [_alpha("attribution", 4)]


class ItchOrderExecuted(_Itch):
    name, c_prefix = "ITCH Order Executed", "EXEC"
    fields_desc = _header("E") + [
        LongField("ref", 0),
        IntField("shares", 0),
        LongField("match", 0),
    ]


class ItchOrderExecutedPrice(_Itch):
    name, c_prefix = "ITCH Order Executed With Price", "EXEC"
    fields_desc = _header("C") + ItchOrderExecuted.fields_desc[4:] + [
        _alpha("printable", 1, "Y"),
        IntField("price", 0),
    ]


class ItchOrderCancel(_Itch):
    name, c_prefix = "ITCH Order Cancel", "CANCEL"
    fields_desc = _header("X") + [LongField("ref", 0), IntField("shares", 0)]


class ItchOrderDelete(_Itch):
    name, c_prefix = "ITCH Order Delete", "DELETE"
    fields_desc = _header("D") + [LongField("ref", 0)]


class ItchOrderReplace(_Itch):
    name, c_prefix = "ITCH Order Replace", "REPLACE"
    fields_desc = _header("U") + [
        LongField("orig_ref", 0),
        LongField("new_ref", 0),
        IntField("shares", 0),
        IntField("price", 0),
    ]


class ItchTrade(_Itch):
    name, c_prefix = "ITCH Trade (Non-Cross)", "TRADE"
    fields_desc = _header("P") + [
        LongField("ref", 0),
        _alpha("side", 1, "B"),
        IntField("shares", 0),
        _alpha("stock", 8),
        IntField("price", 0),
        LongField("match", 0),
    ]


class ItchCrossTrade(_Itch):
    name, c_prefix = "ITCH Cross Trade", "CROSS"
    fields_desc = _header("Q") + [
        LongField("shares", 0),
        _alpha("stock", 8),
        IntField("price", 0),
        LongField("match", 0),
        _alpha("cross_type", 1, "O"),
    ]


class ItchBrokenTrade(_Itch):
    name, c_prefix = "ITCH Broken Trade", "BROKEN"
    fields_desc = _header("B") + [LongField("match", 0)]


ITCH_CLASSES: dict[str, type[_Itch]] = {
    "S": ItchSystemEvent, "R": ItchStockDirectory, "H": ItchTradingAction, "Y": ItchRegSho,
    "A": ItchAddOrder, "F": ItchAddOrderMpid, "E": ItchOrderExecuted,
    "C": ItchOrderExecutedPrice, "X": ItchOrderCancel, "D": ItchOrderDelete,
    "U": ItchOrderReplace, "P": ItchTrade, "Q": ItchCrossTrade, "B": ItchBrokenTrade,
}


class MoldBlock(Packet):
    """One message block: u16 length, then one ITCH message (Raw for a
    type the layers do not know)."""

    name = "MoldUDP64 Block"
    fields_desc = [ShortField("length", None)]

    def post_build(self, pkt, pay):
        if self.length is None:
            pkt = struct.pack("!H", len(pay))
        return pkt + pay

    def extract_padding(self, s):
        return s[: self.length], s[self.length:]

    def guess_payload_class(self, payload):
        return ITCH_CLASSES.get(payload[:1].decode("latin-1"), Raw)


class MoldHeader(Packet):
    """MoldUDP64 downstream packet header (or, alone, a request packet).
    ``count`` is computed from the MoldBlock layers when left None;
    dissection reads ``count`` blocks (none for a heartbeat or the end of
    session); what runs past the datagram is Raw."""

    name = "MoldUDP64"
    fields_desc = [
        _alpha("session", MOLD_SESSION_LEN, ""),
        LongField("seq", 1),
        ShortField("count", None),
    ]

    def post_build(self, pkt, pay):
        if self.count is None:
            n, p = 0, self.payload
            while not isinstance(p, NoPayload):
                n += isinstance(p, MoldBlock)
                p = p.payload
            pkt = pkt[:18] + struct.pack("!H", n)
        return pkt + pay

    def dissect(self, s):
        s = self.pre_dissect(s)
        s = self.do_dissect(s)
        s = self.post_dissect(s)
        count = 0 if self.count == MOLD_COUNT_END_OF_SESSION else self.count
        for _ in range(count):
            if len(s) < 2 or len(s) < 2 + struct.unpack("!H", s[:2])[0]:
                break
            n = 2 + struct.unpack("!H", s[:2])[0]
            self.add_payload(MoldBlock(s[:n], _internal=1, _underlayer=self.lastlayer()))
            s = s[n:]
        if s:
            self.add_payload(Raw(s, _internal=1, _underlayer=self.lastlayer()))


def field_offsets(cls: type[Packet]) -> dict[str, int]:
    """Byte offset of each field of a fixed-size layer."""
    out, off = {}, 0
    for f in cls.fields_desc:
        out[f.name] = off
        off += f.sz if not isinstance(f, BitField) else f.size // 8
    out["_len"] = off
    return out


def price4(text: str | Decimal | int) -> int:
    """A decimal price as ITCH's Price(4) integer, exactly."""
    d = Decimal(str(text)) * 10_000
    if d != d.to_integral_value() or d < 0 or d > 0xFFFFFFFF:
        raise ValueError(f"price {text} is not a Price(4)")
    return int(d)


def itch_message(code: str, /, **fields) -> bytes:
    """The bytes of one ITCH message of type ``code`` ('A', 'E', ...)."""
    if "price" in fields and isinstance(fields["price"], (str, Decimal)):
        fields["price"] = price4(fields["price"])
    return bytes(ITCH_CLASSES[code](**fields))


def mold_packet(session: str | bytes, seq: int, messages: list[bytes],
                count: int | None = None) -> bytes:
    """A downstream packet: header, then one block per message.  ``count``
    defaults to len(messages) (0: heartbeat, 0xFFFF: end of session)."""
    if isinstance(session, str):
        session = session.encode("ascii")
    n = len(messages) if count is None else count
    out = [session[:MOLD_SESSION_LEN].ljust(MOLD_SESSION_LEN, b" "), struct.pack("!QH", seq, n)]
    out += [struct.pack("!H", len(m)) + m for m in messages]
    return b"".join(out)


def decode_itch(msg: bytes) -> dict:
    """One ITCH message as a dict of its fields (Alpha fields stripped)."""
    cls = ITCH_CLASSES.get(msg[:1].decode("latin-1"))
    if cls is None:
        return {"type": msg[:1].decode("latin-1"), "raw": msg.hex()}
    p = cls(msg)
    out = {}
    for f in cls.fields_desc:
        v = p.getfieldval(f.name)
        out[f.name] = v.decode("latin-1").rstrip(" ") if isinstance(v, bytes) else v
    return out
