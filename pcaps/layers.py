"""Scapy layers for the appliance's two wire protocols.

Strategy protocol (``cdefs/sp_wire.h``, ``docs/protocol.md``): little-endian,
a 24-byte ``SPHeader`` followed by the body of one message type.  A UDP
datagram holds several messages back to back and dissection walks them all
(``SPHeader / SPNewOrder / SPHeader / SPCancel / ...``), each body bounded by
its header's ``length``.

Venue protocol (``cdefs/ouch_wire.h``, ``docs/venue-protocol.md``): a
MoldUDP64-style ``UFOHeader`` (session, sequence number of the first message,
count) followed by ``count`` ``UFOBlock`` layers (a u16 length and one OUCH
5.0 message), all big-endian.

A retransmission request packet (MoldUDP64's request packet, sent to a
request port in either direction) is the ``UFOHeader`` alone: session,
sequence number and a count of messages asked for (count 0: a hello).

Both are bound to the default configuration's ports (strategy 9000, venue
9100, venue request port 9101) in both directions; ``bind_ports`` binds
other ports.

The helpers at the bottom (``sp_message``, ``ouch_message``, ``ufo_packet``,
``decode_sp``, ``decode_venue``, ``price_to_fixed``, ``fixed_to_str``,
``clordid``) are what the pcap builder, tests and reports use.
"""
from __future__ import annotations

import struct
from decimal import Decimal, InvalidOperation

from scapy.fields import (
    ByteEnumField,
    ByteField,
    Field,
    FieldLenField,
    FlagsField,
    IntField,
    LEIntField,
    LELongField,
    LEShortEnumField,
    LEShortField,
    LESignedLongField,
    LongField,
    ShortField,
    StrFixedLenField,
    StrLenField,
)
from scapy.layers.inet import UDP
from scapy.packet import NoPayload, Packet, Raw, bind_layers

# --------------------------------------------------------------------------
# Constants (mirroring cdefs/sp_wire.h and cdefs/ouch_wire.h)

SP_VERSION = 1
SP_HEADER_LEN = 24
SP_PRICE_SCALE = 100_000_000
SP_PRICE_DECIMALS = 8
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1

STRATEGY_PORT = 9000  # default config's appliance.strategy_port
VENUE_PORT = 9100  # default config's appliance.venue_port
VENUE_REQUEST_PORT = 9101  # default appliance.venue_request_port (venue_port + 1)

SP_TYPES = {
    0x01: "Login",
    0x02: "Logout",
    0x03: "Heartbeat",
    0x04: "RetransmitRequest",
    0x10: "NewOrder",
    0x11: "Modify",
    0x12: "Cancel",
    0x13: "MassCancel",
    0x81: "LoginAccepted",
    0x82: "LoginRejected",
    0x84: "RetransmitReject",
    0x90: "Accepted",
    0x91: "Rejected",
    0x92: "Replaced",
    0x93: "Canceled",
    0x94: "Fill",
    0x9F: "SessionReject",
}
SP_TYPE_CODES = {v: k for k, v in SP_TYPES.items()}
# session level (not sequenced); Logout, Heartbeat and RetransmitRequest go
# both ways
SP_SESSION_TYPES = frozenset({0x01, 0x02, 0x03, 0x04, 0x81, 0x82, 0x84})

SP_SIDES = {1: "buy", 2: "sell", 3: "sell_short"}
SP_ORD_TYPES = {1: "limit", 2: "market"}
SP_TIFS = {1: "day", 2: "ioc"}
SP_FLAG_PRIORITY = 0x01
SP_FLAG_LOCATE = 0x02
SP_FLAG_NAMES = ["PRIORITY", "LOCATE"]  # bit 0, bit 1

SP_REJECT_REASONS = {
    1: "DUPLICATE_ID",
    2: "BAD_SIDE",
    3: "BAD_ORD_TYPE",
    4: "BAD_TIF",
    5: "BAD_QTY",
    6: "UNKNOWN_SYMBOL",
    7: "BAD_PRICE",
    8: "UNKNOWN_VENUE",
    9: "PRICE_UNREPRESENTABLE",
    10: "LOCATE_REQUIRED",
    11: "UNKNOWN_ORDER",
    12: "TOO_LATE",
    13: "ORDER_PENDING",
    14: "VENUE_REJECTED",
    15: "THROTTLED",
    16: "UNKNOWN_ACCOUNT",
    17: "KILL_SWITCH",
    18: "SYMBOL_HALTED",
    19: "SYMBOL_RESTRICTED",
    20: "VENUE_NOT_ALLOWED",
    21: "ORD_TYPE_NOT_ALLOWED",
    22: "TIF_NOT_ALLOWED",
    23: "NO_POSITION_LIMIT",
    24: "QTY_LIMIT",
    25: "LOT_SIZE",
    26: "TICK_SIZE",
    27: "PRICE_BAND",
    28: "NOTIONAL_LIMIT",
    29: "OPEN_ORDERS_LIMIT",
    30: "CREDIT_LIMIT",
    31: "POSITION_LIMIT",
    1000: "SYS_TABLE_FULL",
    1001: "SYS_TX_FULL",
    1002: "SYS_REF_EXHAUSTED",
}
SP_CANCEL_REASONS = {1: "USER", 2: "IOC", 3: "VENUE"}
SP_SESSION_REJECT_REASONS = {1: "UNKNOWN_TYPE", 2: "BAD_LENGTH"}
SP_LOGIN_REJECT_REASONS = {1: "DISABLED", 2: "BAD_SEQ"}
SP_RETRANSMIT_REJECT_REASONS = {1: "TOO_OLD", 2: "NOT_SENT"}

UFO_SESSION_LEN = 10
UFO_HEADER_LEN = 20
UFO_COUNT_END_OF_SESSION = 0xFFFF
OUCH_PRICE_DECIMALS = 4
OUCH_MAX_PRICE = 1_999_999_900
OUCH_MARKET_PRICE = 0x7FFFFFFF
OUCH_MAX_QTY = 999_999
OUCH_CLORDID_LEN = 14
OUCH_TAG_SHARES_LOCATED = 25
# the one appendage the appliance sends: tag 25 SharesLocated = 'Y'
SHARES_LOCATED_APPENDAGE = bytes([2, OUCH_TAG_SHARES_LOCATED, ord("Y")])


# --------------------------------------------------------------------------
# Field helpers


class SpacePaddedField(StrFixedLenField):
    """Fixed-length alpha field, left-justified and space padded (OUCH
    alpha, SP symbol).  Accepts str or bytes; dissects to the raw bytes so
    a round trip is exact."""

    def i2m(self, pkt, x):
        if x is None:
            x = b""
        if isinstance(x, str):
            x = x.encode("ascii")
        n = self.length_from(pkt)
        return bytes(x[:n]).ljust(n, b" ")


def _body_len(layer: Packet, stop: type) -> int:
    """Bytes built by the layers after ``layer`` up to the next ``stop``
    layer (the next message of the datagram)."""
    n = 0
    p = layer.payload
    while not isinstance(p, (NoPayload, stop)):
        n += len(p.self_build())
        p = p.payload
    return n


class OptAppendageLengthField(Field):
    """OUCH Appendage Length where the spec makes it optional (Canceled,
    Rejected, Cancel Reject, Cancel Order): absent when the message ends
    before it (dissects to None), not built when None and no appendage."""

    def __init__(self, name: str):
        super().__init__(name, None, fmt="!H")

    def i2m(self, pkt, x):
        if x is None and pkt.appendage:
            return len(pkt.appendage)
        return x

    def addfield(self, pkt, s, val):
        val = self.i2m(pkt, val)
        if val is None:
            return s
        return s + struct.pack("!H", val)

    def getfield(self, pkt, s):
        if len(s) < 2:
            return s, None
        return s[2:], struct.unpack("!H", s[:2])[0]


def _appendage_fields(optional: bool = False) -> list:
    if optional:
        length = OptAppendageLengthField("appendage_length")
    else:
        length = FieldLenField("appendage_length", None, length_of="appendage", fmt="!H")
    return [
        length,
        StrLenField("appendage", b"", length_from=lambda p: p.appendage_length or 0),
    ]


# --------------------------------------------------------------------------
# Strategy protocol


class SPHeader(Packet):
    """struct sp_header.  ``length`` (whole message) is computed when left
    None; dissection frames each message by it and decodes the rest of the
    datagram as the next SPHeader."""

    name = "SP Header"
    fields_desc = [
        ByteField("version", SP_VERSION),
        ByteEnumField("type", 0, SP_TYPES),
        LEShortField("length", None),
        LEIntField("session_id", 0),
        LELongField("seq", 0),
        LELongField("timestamp_ns", 0),
    ]

    def post_build(self, pkt, pay):
        if self.length is None:
            n = SP_HEADER_LEN + _body_len(self, SPHeader)
            pkt = pkt[:2] + struct.pack("<H", n) + pkt[4:]
        return pkt + pay

    def dissect(self, s):
        s = self.pre_dissect(s)
        s = self.do_dissect(s)
        s = self.post_dissect(s)
        if self.length < SP_HEADER_LEN:
            # SP_BAD_LENGTH: the rest of the datagram cannot be framed
            if s:
                self.add_payload(Raw(s, _internal=1, _underlayer=self))
            return
        body, rest = s[: self.length - SP_HEADER_LEN], s[self.length - SP_HEADER_LEN :]
        self.do_dissect_payload(body)
        if rest:
            last = self.lastlayer()
            if len(rest) >= SP_HEADER_LEN:
                nxt = SPHeader(rest, _internal=1, _underlayer=last)
            else:  # SP_TRUNCATED
                nxt = Raw(rest, _internal=1, _underlayer=last)
            self.add_payload(nxt)

    def mysummary(self):
        return self.sprintf("SP %type% session=%session_id% seq=%seq%")


class _SPBody(Packet):
    """Base of the message bodies: what follows the body's fields (only
    when a header's length is larger than the type's) is Raw."""

    def guess_payload_class(self, payload):
        return Raw


def _price(name: str) -> LESignedLongField:
    return LESignedLongField(name, 0)


class SPLogin(_SPBody):
    name = "SP Login"
    fields_desc = [LELongField("next_expected_seq", 1)]


class SPLogout(_SPBody):
    name = "SP Logout"
    fields_desc = []


class SPHeartbeat(_SPBody):
    name = "SP Heartbeat"
    fields_desc = []


class SPRetransmitRequest(_SPBody):
    """Both directions: send messages from_seq .. from_seq + count - 1
    again.  Session level: the header's seq is the sender's next number."""

    name = "SP RetransmitRequest"
    fields_desc = [
        LELongField("from_seq", 1),
        LEIntField("count", 0),
        LEIntField("reserved", 0),
    ]


class SPNewOrder(_SPBody):
    name = "SP NewOrder"
    fields_desc = [
        LELongField("cl_ord_id", 0),
        LEIntField("account", 1),
        ByteEnumField("side", 1, SP_SIDES),
        ByteEnumField("ord_type", 1, SP_ORD_TYPES),
        ByteEnumField("tif", 1, SP_TIFS),
        FlagsField("flags", 0, 8, SP_FLAG_NAMES),
        SpacePaddedField("symbol", b"", 8),
        _price("price"),
        LEIntField("qty", 0),
        LEShortField("venue", 0),
        LEShortField("reserved", 0),
    ]


class SPModify(_SPBody):
    name = "SP Modify"
    fields_desc = [
        LELongField("cl_ord_id", 0),
        _price("new_price"),
        LEIntField("new_qty", 0),
        LEIntField("reserved", 0),
    ]


class SPCancel(_SPBody):
    name = "SP Cancel"
    fields_desc = [LELongField("cl_ord_id", 0)]


class SPMassCancel(_SPBody):
    name = "SP MassCancel"
    fields_desc = [LEIntField("account", 1), LEIntField("reserved", 0)]


class SPLoginAccepted(_SPBody):
    name = "SP LoginAccepted"
    fields_desc = [LELongField("next_expected_seq", 1)]


class SPLoginRejected(_SPBody):
    name = "SP LoginRejected"
    fields_desc = [
        ByteEnumField("reason", 1, SP_LOGIN_REJECT_REASONS),
        StrFixedLenField("reserved", b"\0" * 7, 7),
    ]


class SPRetransmitReject(_SPBody):
    """Appliance -> strategy: a RetransmitRequest (or a Login's replay) that
    cannot be served; from_seq and count as asked."""

    name = "SP RetransmitReject"
    fields_desc = [
        LELongField("from_seq", 1),
        LEIntField("count", 0),
        ByteEnumField("reason", 1, SP_RETRANSMIT_REJECT_REASONS),
        StrFixedLenField("reserved", b"\0" * 3, 3),
    ]


class SPAccepted(_SPBody):
    name = "SP Accepted"
    fields_desc = [
        LELongField("cl_ord_id", 0),
        _price("price"),
        LEIntField("qty", 0),
        LEShortField("venue", 0),
        LEShortField("reserved", 0),
    ]


class SPRejected(_SPBody):
    name = "SP Rejected"
    fields_desc = [
        LELongField("cl_ord_id", 0),
        LEShortEnumField("reason", 1, SP_REJECT_REASONS),
        ByteEnumField("ref_type", 0x10, SP_TYPES),
        ByteField("venue_code", 0),
        LEIntField("reserved", 0),
    ]


class SPReplaced(_SPBody):
    name = "SP Replaced"
    fields_desc = [
        LELongField("cl_ord_id", 0),
        _price("price"),
        LEIntField("qty", 0),
        LEIntField("leaves_qty", 0),
    ]


class SPCanceled(_SPBody):
    name = "SP Canceled"
    fields_desc = [
        LELongField("cl_ord_id", 0),
        LEIntField("canceled_qty", 0),
        LEIntField("leaves_qty", 0),
        ByteEnumField("reason", 1, SP_CANCEL_REASONS),
        StrFixedLenField("reserved", b"\0" * 7, 7),
    ]


class SPFill(_SPBody):
    name = "SP Fill"
    fields_desc = [
        LELongField("cl_ord_id", 0),
        _price("last_price"),
        LEIntField("last_qty", 0),
        LEIntField("cum_qty", 0),
        LEIntField("leaves_qty", 0),
        LEIntField("reserved", 0),
        LELongField("match_number", 0),
    ]


class SPSessionReject(_SPBody):
    name = "SP SessionReject"
    fields_desc = [
        LELongField("ref_seq", 0),
        ByteEnumField("reason", 1, SP_SESSION_REJECT_REASONS),
        ByteField("ref_type", 0),
        StrFixedLenField("reserved", b"\0" * 6, 6),
    ]


# type name -> body class; every message is SPHeader / <class>
SP_CLASSES: dict[str, type[Packet]] = {
    "Login": SPLogin,
    "Logout": SPLogout,
    "Heartbeat": SPHeartbeat,
    "RetransmitRequest": SPRetransmitRequest,
    "NewOrder": SPNewOrder,
    "Modify": SPModify,
    "Cancel": SPCancel,
    "MassCancel": SPMassCancel,
    "LoginAccepted": SPLoginAccepted,
    "LoginRejected": SPLoginRejected,
    "RetransmitReject": SPRetransmitReject,
    "Accepted": SPAccepted,
    "Rejected": SPRejected,
    "Replaced": SPReplaced,
    "Canceled": SPCanceled,
    "Fill": SPFill,
    "SessionReject": SPSessionReject,
}
# whole message length of each type (the struct sizes of sp_wire.h)
SP_LENGTHS = {name: SP_HEADER_LEN + len(bytes(cls())) for name, cls in SP_CLASSES.items()}

for _name, _cls in SP_CLASSES.items():
    bind_layers(SPHeader, _cls, type=SP_TYPE_CODES[_name])


# --------------------------------------------------------------------------
# Venue protocol: framing


class UFOHeader(Packet):
    """MoldUDP64 downstream header, used in both directions; alone, with
    ``count`` = messages asked for, it is a request packet (to a request
    port).  ``count`` is computed from the UFOBlock layers when left None.
    Dissection reads ``count`` blocks (none for a heartbeat, count 0, or end
    of session, 0xFFFF); it stops where the datagram does (a request packet
    has no blocks); a block running past the datagram and bytes after the
    last block are Raw."""

    name = "UFO Header"
    fields_desc = [
        SpacePaddedField("session", b"", UFO_SESSION_LEN),
        LongField("seq", 1),
        ShortField("count", None),
    ]

    def post_build(self, pkt, pay):
        if self.count is None:
            n = 0
            p = self.payload
            while not isinstance(p, NoPayload):
                n += isinstance(p, UFOBlock)
                p = p.payload
            pkt = pkt[:18] + struct.pack("!H", n)
        return pkt + pay

    def dissect(self, s):
        s = self.pre_dissect(s)
        s = self.do_dissect(s)
        s = self.post_dissect(s)
        count = 0 if self.count == UFO_COUNT_END_OF_SESSION else self.count
        for _ in range(count):
            if len(s) < 2 or len(s) < 2 + struct.unpack("!H", s[:2])[0]:
                break  # UFO_BAD_BLOCK
            n = 2 + struct.unpack("!H", s[:2])[0]
            self.add_payload(UFOBlock(s[:n], _internal=1, _underlayer=self.lastlayer()))
            s = s[n:]
        if s:
            self.add_payload(Raw(s, _internal=1, _underlayer=self.lastlayer()))

    def mysummary(self):
        return self.sprintf("UFO session=%session% seq=%seq% count=%count%")


def _from_venue(layer: Packet) -> bool | None:
    """True if the UDP datagram carrying ``layer`` goes venue -> appliance
    (destination port is the appliance's venue port), False if appliance ->
    venue, None if unknown (no UDP underneath, or both ports are venue
    ports)."""
    p = layer.underlayer
    while p is not None and not isinstance(p, UDP):
        p = p.underlayer
    if p is None:
        return None
    to_app, from_app = p.dport in _VENUE_PORTS, p.sport in _VENUE_PORTS
    if to_app != from_app:
        return to_app
    return None


class UFOBlock(Packet):
    """One message block: u16 length, then one OUCH message."""

    name = "UFO Block"
    fields_desc = [ShortField("length", None)]

    def post_build(self, pkt, pay):
        if self.length is None:
            pkt = struct.pack("!H", _body_len(self, UFOBlock))
        return pkt + pay

    def extract_padding(self, s):
        return s[: self.length], s[self.length :]

    def guess_payload_class(self, payload):
        return ouch_class(payload, _from_venue(self))


# --------------------------------------------------------------------------
# Venue protocol: OUCH 5.0 messages (offsets: cdefs/ouch_wire.h)


def _alpha(name: str, default: bytes | str, n: int = 1) -> SpacePaddedField:
    return SpacePaddedField(name, default, n)


class _Ouch(Packet):
    """Base of the OUCH messages: bytes beyond the message's fields and
    appendage are Raw."""

    def guess_payload_class(self, payload):
        return Raw


class OuchEnterOrder(_Ouch):
    """Enter Order 'O' (§2.1), 47 bytes + appendage.  Appliance -> venue."""

    name = "OUCH EnterOrder"
    fields_desc = [
        _alpha("type", b"O"),
        IntField("user_ref", 0),
        _alpha("side", b"B"),
        IntField("qty", 0),
        _alpha("symbol", b"", 8),
        LongField("price", 0),
        _alpha("tif", b"0"),
        _alpha("display", b"Y"),
        _alpha("capacity", b"A"),
        _alpha("iso", b"N"),
        _alpha("cross_type", b"N"),
        _alpha("cl_ord_id", b"", OUCH_CLORDID_LEN),
        *_appendage_fields(),
    ]


class OuchReplaceOrder(_Ouch):
    """Replace Order Request 'U' (§2.2), 40 bytes + appendage.  Appliance
    -> venue."""

    name = "OUCH ReplaceOrder"
    fields_desc = [
        _alpha("type", b"U"),
        IntField("orig_user_ref", 0),
        IntField("user_ref", 0),
        IntField("qty", 0),
        LongField("price", 0),
        _alpha("tif", b"0"),
        _alpha("display", b"Y"),
        _alpha("iso", b"N"),
        _alpha("cl_ord_id", b"", OUCH_CLORDID_LEN),
        *_appendage_fields(),
    ]


class OuchCancelOrder(_Ouch):
    """Cancel Order Request 'X' (§2.3), 9 bytes (appendage optional; the
    appliance sends none).  Appliance -> venue."""

    name = "OUCH CancelOrder"
    fields_desc = [
        _alpha("type", b"X"),
        IntField("user_ref", 0),
        IntField("qty", 0),
        *_appendage_fields(optional=True),
    ]


class OuchSystemEvent(_Ouch):
    """System Event 'S' (§3.1), 10 bytes."""

    name = "OUCH SystemEvent"
    fields_desc = [_alpha("type", b"S"), LongField("timestamp", 0), _alpha("event_code", b"S")]


class OuchAccepted(_Ouch):
    """Order Accepted 'A' (§3.2), 64 bytes + appendage."""

    name = "OUCH Accepted"
    fields_desc = [
        _alpha("type", b"A"),
        LongField("timestamp", 0),
        IntField("user_ref", 0),
        _alpha("side", b"B"),
        IntField("qty", 0),
        _alpha("symbol", b"", 8),
        LongField("price", 0),
        _alpha("tif", b"0"),
        _alpha("display", b"Y"),
        LongField("order_ref", 0),
        _alpha("capacity", b"A"),
        _alpha("iso", b"N"),
        _alpha("cross_type", b"N"),
        _alpha("state", b"L"),
        _alpha("cl_ord_id", b"", OUCH_CLORDID_LEN),
        *_appendage_fields(),
    ]


class OuchReplaced(_Ouch):
    """Order Replaced 'U' (§3.3), 68 bytes + appendage.  ``qty`` is the
    shares outstanding."""

    name = "OUCH Replaced"
    fields_desc = [
        _alpha("type", b"U"),
        LongField("timestamp", 0),
        IntField("orig_user_ref", 0),
        IntField("user_ref", 0),
        _alpha("side", b"B"),
        IntField("qty", 0),
        _alpha("symbol", b"", 8),
        LongField("price", 0),
        _alpha("tif", b"0"),
        _alpha("display", b"Y"),
        LongField("order_ref", 0),
        _alpha("capacity", b"A"),
        _alpha("iso", b"N"),
        _alpha("cross_type", b"N"),
        _alpha("state", b"L"),
        _alpha("cl_ord_id", b"", OUCH_CLORDID_LEN),
        *_appendage_fields(),
    ]


class OuchCanceled(_Ouch):
    """Order Canceled 'C' (§3.4), 18 bytes, appendage optional.  ``qty``
    is the decrement."""

    name = "OUCH Canceled"
    fields_desc = [
        _alpha("type", b"C"),
        LongField("timestamp", 0),
        IntField("user_ref", 0),
        IntField("qty", 0),
        _alpha("reason", b"U"),
        *_appendage_fields(optional=True),
    ]


class OuchExecuted(_Ouch):
    """Order Executed 'E' (§3.6), 36 bytes + appendage."""

    name = "OUCH Executed"
    fields_desc = [
        _alpha("type", b"E"),
        LongField("timestamp", 0),
        IntField("user_ref", 0),
        IntField("qty", 0),
        LongField("price", 0),
        _alpha("liquidity", b"A"),
        LongField("match", 0),
        *_appendage_fields(),
    ]


class OuchRejected(_Ouch):
    """Rejected 'J' (§3.8), 29 bytes, appendage optional."""

    name = "OUCH Rejected"
    fields_desc = [
        _alpha("type", b"J"),
        LongField("timestamp", 0),
        IntField("user_ref", 0),
        ShortField("reason", 1),
        _alpha("cl_ord_id", b"", OUCH_CLORDID_LEN),
        *_appendage_fields(optional=True),
    ]


class OuchCancelReject(_Ouch):
    """Cancel Reject 'I' (§3.10), 13 bytes, appendage optional."""

    name = "OUCH CancelReject"
    fields_desc = [
        _alpha("type", b"I"),
        LongField("timestamp", 0),
        IntField("user_ref", 0),
        *_appendage_fields(optional=True),
    ]


# (direction, type letter) -> class; direction True = venue -> appliance
OUCH_TO_VENUE = {"O": OuchEnterOrder, "U": OuchReplaceOrder, "X": OuchCancelOrder}
OUCH_FROM_VENUE = {
    "S": OuchSystemEvent,
    "A": OuchAccepted,
    "U": OuchReplaced,
    "C": OuchCanceled,
    "E": OuchExecuted,
    "J": OuchRejected,
    "I": OuchCancelReject,
}
OUCH_CLASSES: dict[str, type[Packet]] = {
    "EnterOrder": OuchEnterOrder,
    "ReplaceOrder": OuchReplaceOrder,
    "CancelOrder": OuchCancelOrder,
    "SystemEvent": OuchSystemEvent,
    "Accepted": OuchAccepted,
    "Replaced": OuchReplaced,
    "Canceled": OuchCanceled,
    "Executed": OuchExecuted,
    "Rejected": OuchRejected,
    "CancelReject": OuchCancelReject,
}


def _guess_from_venue(msg: bytes) -> bool:
    """Direction of an OUCH message from its bytes alone, for the letters
    both directions use (U, X, C, E): the length that fits wins."""
    t, n = msg[:1], len(msg)
    if t == b"U":  # Replaced: 68 + AppLen at 66; Replace Order: 40 + AppLen at 38
        return n >= 68 and struct.unpack("!H", msg[66:68])[0] == n - 68
    if t == b"X":  # Cancel Order: 9 or 11+; Mass Cancel Response: 27+
        return n >= 27 and struct.unpack("!H", msg[25:27])[0] == n - 27
    if t == b"E":  # Executed: 36+; Enable Order Entry: 11+
        return n >= 36
    if t == b"C":  # Canceled: 18 or 20+; Mass Cancel: 19+
        return n == 18 or (n >= 20 and struct.unpack("!H", msg[18:20])[0] == n - 20)
    return t not in (b"O", b"M", b"D", b"Q")


def ouch_class(msg: bytes, from_venue: bool | None = None) -> type[Packet]:
    """The layer for one OUCH message; ``from_venue`` None guesses the
    direction from the bytes.  Unknown types give Raw."""
    if from_venue is None:
        from_venue = _guess_from_venue(msg)
    table = OUCH_FROM_VENUE if from_venue else OUCH_TO_VENUE
    return table.get(msg[:1].decode("latin-1"), Raw)


_STRATEGY_PORTS: set[int] = set()
_VENUE_PORTS: set[int] = set()
_REQUEST_PORTS: set[int] = set()


def bind_ports(strategy_port: int = STRATEGY_PORT, venue_port: int = VENUE_PORT,
               request_port: int | None = None) -> None:
    """Decode UDP traffic to or from these appliance ports as the strategy
    protocol and the venue framing (a config with other ports than the
    default's calls this once).  ``request_port`` is the appliance's venue
    request port (None: venue_port + 1, as the config's default); packets
    to or from it are request packets, a bare UFOHeader."""
    if strategy_port not in _STRATEGY_PORTS:
        _STRATEGY_PORTS.add(strategy_port)
        bind_layers(UDP, SPHeader, dport=strategy_port)
        bind_layers(UDP, SPHeader, sport=strategy_port)
    if venue_port not in _VENUE_PORTS:
        _VENUE_PORTS.add(venue_port)
        bind_layers(UDP, UFOHeader, dport=venue_port)
        bind_layers(UDP, UFOHeader, sport=venue_port)
    if request_port is None:
        request_port = venue_port + 1
    if request_port not in _REQUEST_PORTS:
        _REQUEST_PORTS.add(request_port)
        bind_layers(UDP, UFOHeader, dport=request_port)
        bind_layers(UDP, UFOHeader, sport=request_port)


bind_ports()


# --------------------------------------------------------------------------
# Prices


def price_to_fixed(value: str | Decimal | int) -> int:
    """A decimal price as the strategy protocol's i64 with 8 implied
    decimals.  Never goes through float: a float argument is a TypeError.
    More than 8 significant decimals, a non-finite value, or a result
    outside i64 is a ValueError (trailing zeros beyond 8 decimals are
    fine: they lose nothing)."""
    if isinstance(value, (float, bool)):
        kind = type(value).__name__
        raise TypeError(f"price must be a decimal string, Decimal or int, not {kind}")
    try:
        d = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a decimal number: {value!r}") from exc
    if not d.is_finite():
        raise ValueError(f"not a finite price: {value!r}")
    scaled = d.scaleb(SP_PRICE_DECIMALS)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price {value} has more than {SP_PRICE_DECIMALS} decimals")
    n = int(scaled)
    if not I64_MIN <= n <= I64_MAX:
        raise ValueError(f"price {value} does not fit a signed 64-bit integer at scale 1e-8")
    return n


def fixed_to_str(n: int) -> str:
    """The inverse of price_to_fixed, exact, with at least 2 decimals:
    15025000000 -> '150.25', 15100000000 -> '151.00', 1 -> '0.00000001'."""
    sign = "-" if n < 0 else ""
    whole, frac = divmod(abs(n), SP_PRICE_SCALE)
    digits = f"{frac:08d}".rstrip("0").ljust(2, "0")
    return f"{sign}{whole}.{digits}"


# --------------------------------------------------------------------------
# Builders


def _type_code(type_name: str | int) -> int:
    if isinstance(type_name, int):
        return type_name
    if type_name in SP_TYPE_CODES:
        return SP_TYPE_CODES[type_name]
    folded = type_name.replace("_", "").lower()
    for name, code in SP_TYPE_CODES.items():
        if name.lower() == folded:
            return code
    raise ValueError(f"unknown strategy message type {type_name!r}")


_HEADER_FIELDS = frozenset(f.name for f in SPHeader.fields_desc) - {"type"}


def sp_layer(type_name: str | int, **fields) -> Packet:
    """SPHeader / body for one strategy message.  Header fields (version,
    length, session_id, seq, timestamp_ns) and body fields are given
    together; an unknown type code gives a header-only message."""
    code = _type_code(type_name)
    hdr = {k: v for k, v in fields.items() if k in _HEADER_FIELDS}
    body = {k: v for k, v in fields.items() if k not in _HEADER_FIELDS}
    pkt = SPHeader(type=code, **hdr)
    cls = SP_CLASSES.get(SP_TYPES.get(code, ""))
    if cls is None:
        if body:
            raise ValueError(f"type {code:#x} has no body fields: {sorted(body)}")
        return pkt
    return pkt / cls(**body)


def sp_message(type_name: str | int, **fields) -> bytes:
    """The bytes of one strategy message, e.g.
    ``sp_message("NewOrder", session_id=1, seq=1, cl_ord_id=7, symbol="AAPL",
    price=price_to_fixed("150.25"), qty=100)``."""
    return bytes(sp_layer(type_name, **fields))


def base36(n: int) -> str:
    """Upper-case base 36, as the appliance writes cl_ord_id into ClOrdID."""
    if n < 0:
        raise ValueError("negative id")
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def clordid(cl_ord_id: int) -> bytes:
    """The 14-byte OUCH ClOrdID for a strategy cl_ord_id: base 36,
    left-justified, space padded."""
    return base36(cl_ord_id).encode("ascii").ljust(OUCH_CLORDID_LEN, b" ")


def ouch_message(name: str, **fields) -> bytes:
    """The bytes of one OUCH message; ``name`` is a key of OUCH_CLASSES
    (EnterOrder, ReplaceOrder, CancelOrder, SystemEvent, Accepted, ...)."""
    return bytes(OUCH_CLASSES[name](**fields))


def ufo_packet(
    session: str | bytes, seq: int, messages: list[bytes], count: int | None = None
) -> bytes:
    """A venue-framing packet: header, then one block per message.
    ``count`` defaults to len(messages) (0 is a heartbeat; pass 0xFFFF
    for end of session)."""
    if isinstance(session, str):
        session = session.encode("ascii")
    n = len(messages) if count is None else count
    out = [session[:UFO_SESSION_LEN].ljust(UFO_SESSION_LEN, b" "), struct.pack("!QH", seq, n)]
    for m in messages:
        out.append(struct.pack("!H", len(m)) + m)
    return b"".join(out)


# --------------------------------------------------------------------------
# Decoders to plain dicts (for reports and tests)


def _field_value(layer: Packet, f: Field):
    v = layer.getfieldval(f.name)
    if isinstance(v, bytes):
        if isinstance(f, SpacePaddedField):
            return v.decode("latin-1").rstrip(" ")
        return v.hex()  # reserved bytes
    if isinstance(f, FlagsField):
        return int(v)
    enum = getattr(f, "i2s", None)
    if enum is not None and v in enum:
        return enum[v]
    return v


def _layer_dict(layer: Packet) -> dict:
    return {f.name: _field_value(layer, f) for f in layer.fields_desc}


def decode_sp(payload: bytes) -> list[dict]:
    """Every message of a strategy datagram as a dict: header fields
    (``type`` as its name when known, else the number) then body fields
    (enums as names, prices as the fixed-point integers, symbol as str).
    A message that cannot be decoded carries ``error`` and ``raw`` (hex):
    'truncated' (under 24 bytes left), 'bad_length' (length < 24 or past
    the datagram), 'unknown_type' or 'wrong_length' (length is not the
    type's).  Logout, Heartbeat and RetransmitRequest read the same in both
    directions (the appliance's Logout and Heartbeat are the header alone,
    as the strategy's)."""
    out: list[dict] = []
    off = 0
    while off < len(payload):
        left = len(payload) - off
        if left < SP_HEADER_LEN:
            out.append({"error": "truncated", "raw": payload[off:].hex()})
            break
        (length,) = struct.unpack_from("<H", payload, off + 2)
        if length < SP_HEADER_LEN or length > left:
            hdr = SPHeader(payload[off : off + SP_HEADER_LEN])
            out.append({**_layer_dict(hdr), "error": "bad_length", "raw": payload[off:].hex()})
            break
        layer = SPHeader(payload[off : off + length])
        d = _layer_dict(layer)
        name = SP_TYPES.get(layer.type)
        if name is None:
            d["error"] = "unknown_type"
        elif length != SP_LENGTHS[name]:
            d["error"] = "wrong_length"
        body = layer.payload
        if isinstance(body, _SPBody):
            d.update(_layer_dict(body))
            body = body.payload
        if isinstance(body, Raw):
            d["raw"] = body.load.hex()
        out.append(d)
        off += length
    return out


def decode_ouch(msg: bytes, from_venue: bool | None = None) -> dict:
    """One OUCH message as a dict (``msg`` is the class's short name,
    ``type`` the letter; alpha fields as str, prices as the 4-decimal
    integers, the appendage as hex)."""
    cls = ouch_class(msg, from_venue)
    if cls is Raw:
        return {"msg": "Unknown", "type": msg[:1].decode("latin-1"), "raw": msg.hex()}
    pkt = cls(msg)
    d = {"msg": next(k for k, v in OUCH_CLASSES.items() if v is cls)}
    d.update(_layer_dict(pkt))
    d["appendage"] = bytes(pkt.appendage).hex() if "appendage" in d else None
    if d["appendage"] is None:
        del d["appendage"]
    applen = getattr(pkt, "appendage_length", None)
    if isinstance(pkt.payload, Raw):
        d["error"] = "bad_length"
        d["raw"] = pkt.payload.load.hex()
    elif applen is not None and len(pkt.appendage) != applen:
        d["error"] = "bad_length"
    return d


_DIRECTIONS = {None: None, "from_venue": True, "to_venue": False, "request": None}


def decode_venue(
    payload: bytes, from_venue: bool | None = None, *, direction: str | None = None
) -> list[dict]:
    """A venue-framing packet as one dict per block, each with the packet's
    ``ufo_session`` and the block's ``ufo_seq`` (first + i) merged with the
    OUCH fields (see decode_ouch).  A heartbeat or end of session gives one
    dict with ``msg`` 'Heartbeat' / 'EndOfSession'.  A block that runs past
    the datagram gives ``error`` 'bad_block'.  ``from_venue`` chooses
    between the two meanings of U, X, C and E; None guesses from lengths.
    ``direction`` says the same in words: "from_venue" or "to_venue"; or
    "request" for a packet to or from a request port: one dict with ``msg``
    'Request' (``ufo_seq`` the first asked for, ``count`` how many) or
    'Hello' (count 0).  A packet that is the header alone with a count of
    1..0xFFFE (no room for a single block) is read as a Request whatever the
    direction."""
    if direction is not None:
        if direction not in _DIRECTIONS:
            raise ValueError(
                f"direction must be 'from_venue', 'to_venue' or 'request', not {direction!r}")
        from_venue = _DIRECTIONS[direction]
    if len(payload) < UFO_HEADER_LEN:
        return [{"error": "truncated", "raw": payload.hex()}]
    session = payload[:UFO_SESSION_LEN].decode("latin-1").rstrip(" ")
    seq, count = struct.unpack_from("!QH", payload, UFO_SESSION_LEN)
    base = {"ufo_session": session, "ufo_seq": seq}
    bare = len(payload) == UFO_HEADER_LEN
    if direction == "request":
        d = {**base, "msg": "Hello" if count == 0 else "Request", "count": count}
        if not bare:
            d["raw"] = payload[UFO_HEADER_LEN:].hex()
        return [d]
    if count == 0:
        return [{**base, "msg": "Heartbeat", "count": 0}]
    if count == UFO_COUNT_END_OF_SESSION:
        return [{**base, "msg": "EndOfSession", "count": count}]
    if bare:
        return [{**base, "msg": "Request", "count": count}]
    out: list[dict] = []
    off = UFO_HEADER_LEN
    for i in range(count):
        d = {"ufo_session": session, "ufo_seq": seq + i}
        if off + 2 > len(payload):
            out.append({**d, "error": "bad_block", "raw": payload[off:].hex()})
            break
        (n,) = struct.unpack_from("!H", payload, off)
        if off + 2 + n > len(payload):
            out.append({**d, "error": "bad_block", "raw": payload[off:].hex()})
            break
        d.update(decode_ouch(payload[off + 2 : off + 2 + n], from_venue))
        out.append(d)
        off += 2 + n
    return out
