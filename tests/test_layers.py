"""The scapy layers match the wire definitions byte for byte: the strategy
protocol against cdefs/sp_wire.h (and docs/protocol.md's tables), OUCH
against cdefs/ouch_wire.h and the research notes' worked encodings."""
from __future__ import annotations

import re
import struct
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pcaps import layers as L

ROOT = Path(__file__).resolve().parent.parent
SP_WIRE_H = ROOT / "cdefs" / "sp_wire.h"
OUCH_WIRE_H = ROOT / "cdefs" / "ouch_wire.h"
PROTOCOL_MD = ROOT / "docs" / "protocol.md"

# --------------------------------------------------------------------------
# A small reader of the C header: structs of fixed-width integers and char
# arrays, naturally aligned (what sp_wire.h promises).

_C_TYPES = {"uint8_t": "B", "uint16_t": "H", "uint32_t": "I", "uint64_t": "Q",
            "int64_t": "q", "char": "s"}


def c_structs(text: str) -> dict[str, list[tuple[str, int, int, str]]]:
    """struct name -> [(field, offset, size, struct format)], the header
    struct inlined as its fields."""
    out: dict[str, list[tuple[str, int, int, str]]] = {}
    for name, body in re.findall(r"struct (\w+) \{(.*?)\};", text, re.S):
        fields, off = [], 0
        for line in body.splitlines():
            line = line.split("/*")[0].strip()
            if not line:
                continue
            m = re.fullmatch(r"(struct \w+|\w+) (\w+)(?:\[(\d+)\])?;", line)
            assert m, line
            ctype, fname, count = m.group(1), m.group(2), int(m.group(3) or 1)
            if ctype.startswith("struct "):
                sub = out[ctype.split()[1]]
                fields += [(f, off + o, s, fmt) for f, o, s, fmt in sub]
                off += sum(s for _, _, s, _ in sub)
                continue
            code = _C_TYPES[ctype]
            size = 1 if code == "s" else struct.calcsize(code)
            off = (off + size - 1) // size * size  # natural alignment
            if code == "s" or count > 1:
                fields.append((fname, off, size * count, f"{size * count}s"))
            else:
                fields.append((fname, off, size, "<" + code))
            off += size * count
        out[name] = fields
    return out


def c_enums(text: str) -> dict[str, int]:
    """Enumerators and #defines with a plain number."""
    num = r"(0x[0-9A-Fa-f]+|\d+)"
    pairs = re.findall(r"\b([A-Z][A-Z0-9_]*) = " + num, text)
    pairs += re.findall(r"#define ([A-Z][A-Z0-9_]*) " + num + r"\b", text)
    return {k: int(v, 0) for k, v in pairs}


_SP_TEXT = SP_WIRE_H.read_text()
SP_STRUCTS = c_structs(_SP_TEXT)
SP_ENUMS = c_enums(_SP_TEXT)
SP_SIZES = {k: int(v) for k, v in re.findall(r"SP_STATIC_SIZE\((\w+), (\d+)\)", _SP_TEXT)}


def camel(struct_name: str) -> str:
    return "".join(p.capitalize() for p in struct_name.removeprefix("sp_").split("_"))


MESSAGE_STRUCTS = [s for s in SP_STRUCTS if s != "sp_header"]


def test_every_struct_has_a_layer_and_the_right_size():
    # Logout and Heartbeat are a bare header (semantics.md: length 24)
    header_only = {"Logout", "Heartbeat"}
    assert sorted(camel(s) for s in MESSAGE_STRUCTS) == sorted(set(L.SP_CLASSES) - header_only)
    for name in header_only:
        assert L.SP_LENGTHS[name] == SP_SIZES["sp_header"]
    for s in MESSAGE_STRUCTS:
        assert L.SP_LENGTHS[camel(s)] == SP_SIZES[s] == len(L.sp_message(camel(s)))
    assert SP_SIZES["sp_header"] == L.SP_HEADER_LEN == len(bytes(L.SPHeader()))


def test_type_codes_and_reasons_match_the_header():
    for name, code in L.SP_TYPE_CODES.items():
        c_name = "SP_" + re.sub(r"(?<!^)([A-Z])", r"_\1", name).upper()
        assert SP_ENUMS[c_name] == code, name
    for code, name in L.SP_REJECT_REASONS.items():
        assert SP_ENUMS["SP_REJ_" + name] == code
    for code, name in L.SP_CANCEL_REASONS.items():
        assert SP_ENUMS["SP_CXL_" + name] == code
    for code, name in L.SP_SESSION_REJECT_REASONS.items():
        assert SP_ENUMS["SP_SREJ_" + name] == code
    for code, name in L.SP_LOGIN_REJECT_REASONS.items():
        assert SP_ENUMS["SP_LREJ_" + name] == code
    for code, name in L.SP_RETRANSMIT_REJECT_REASONS.items():
        assert SP_ENUMS["SP_RTX_" + name] == code
    assert {c for c, n in L.SP_TYPES.items() if c < 0x10 or 0x80 <= c < 0x90} == \
        L.SP_SESSION_TYPES
    for code, name in L.SP_SIDES.items():
        assert SP_ENUMS["SP_SIDE_" + name.upper()] == code
    assert SP_ENUMS["SP_FLAG_PRIORITY"] == L.SP_FLAG_PRIORITY
    assert SP_ENUMS["SP_FLAG_LOCATE"] == L.SP_FLAG_LOCATE
    assert SP_ENUMS["SP_VERSION"] == L.SP_VERSION


@pytest.mark.parametrize("struct_name", MESSAGE_STRUCTS)
def test_each_field_lands_at_the_c_offset(struct_name):
    """Give every field a distinct value, build with the layer, read it back
    at the offset the C compiler would use."""
    values = {}
    for i, (fname, _off, size, fmt) in enumerate(SP_STRUCTS[struct_name]):
        if fname == "type":
            continue
        if fname == "reserved":
            values[fname] = b"\0" * size if fmt.endswith("s") else 0
        elif fname == "symbol":
            values[fname] = b"MSFT.X  "
        elif fname == "length":
            values[fname] = SP_SIZES[struct_name]
        elif fmt == "<q":
            values[fname] = -(10 ** 12 + i)  # signed prices
        else:
            values[fname] = (0x5A + i * 0x11) % (1 << (8 * size)) or 1
    raw = L.sp_message(camel(struct_name), **values)
    assert len(raw) == SP_SIZES[struct_name]
    for fname, off, _size, fmt in SP_STRUCTS[struct_name]:
        (got,) = struct.unpack_from(fmt, raw, off)
        if fname == "type":
            assert got == L.SP_TYPE_CODES[camel(struct_name)]
        else:
            assert got == values[fname], fname
    # and dissection gives the same values back
    (d,) = L.decode_sp(raw)
    assert "error" not in d
    for fname, value in values.items():
        if fname not in ("reserved", "symbol") and not isinstance(d[fname], str):
            assert d[fname] == value, fname


def test_several_messages_in_one_datagram_decode_fully():
    msgs = [
        L.sp_message("NewOrder", session_id=1, seq=1, cl_ord_id=1, symbol="AAPL",
                     price=L.price_to_fixed("150.25"), qty=100),
        L.sp_message("Modify", session_id=1, seq=2, cl_ord_id=1, new_price=1, new_qty=5),
        L.sp_message("Heartbeat", session_id=1, seq=3),
        L.sp_message("Cancel", session_id=1, seq=3, cl_ord_id=1),
    ]
    frame = bytes(Ether() / IP(dst="10.10.0.1") / UDP(sport=9001, dport=9000) / b"".join(msgs))
    pkt = Ether(frame)
    headers = [pkt.getlayer(L.SPHeader, i) for i in range(1, 5)]
    assert [h.type for h in headers] == [0x10, 0x11, 0x03, 0x12]
    assert pkt.getlayer(L.SPHeader, 5) is None
    assert pkt[L.SPNewOrder].symbol == b"AAPL    "
    assert pkt[L.SPModify].new_qty == 5
    assert pkt[L.SPCancel].cl_ord_id == 1
    assert bytes(pkt) == frame
    assert [d["type"] for d in L.decode_sp(b"".join(msgs))] == [
        "NewOrder", "Modify", "Heartbeat", "Cancel"]


@given(cl_ord_id=st.integers(0, (1 << 64) - 1), account=st.integers(0, (1 << 32) - 1),
       side=st.integers(0, 255), price=st.integers(L.I64_MIN, L.I64_MAX),
       qty=st.integers(0, (1 << 32) - 1), venue=st.integers(0, 65535),
       symbol=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.", min_size=1, max_size=8))
def test_new_order_round_trips(cl_ord_id, account, side, price, qty, venue, symbol):
    raw = L.sp_message("NewOrder", cl_ord_id=cl_ord_id, account=account, side=side,
                       price=price, qty=qty, venue=venue, symbol=symbol)
    assert struct.unpack_from("<QIB", raw, 24) == (cl_ord_id, account, side)
    (d,) = L.decode_sp(raw)
    assert (d["cl_ord_id"], d["account"], d["price"], d["qty"], d["venue"], d["symbol"]) == (
        cl_ord_id, account, price, qty, venue, symbol)
    assert bytes(L.SPHeader(raw)) == raw


def test_stacked_layers_compute_each_length():
    pkt = (L.SPHeader(session_id=3) / L.SPCancel(cl_ord_id=9)
           / L.SPHeader(session_id=3) / L.SPMassCancel(account=4))
    raw = bytes(pkt)
    assert raw == (L.sp_message("Cancel", session_id=3, cl_ord_id=9)
                   + L.sp_message("MassCancel", session_id=3, account=4))


def test_decode_sp_reports_what_cannot_be_framed():
    ok = L.sp_message("Cancel", cl_ord_id=1)
    assert L.decode_sp(ok + b"abc")[-1] == {"error": "truncated", "raw": "616263"}
    bad = L.sp_message("Cancel", cl_ord_id=1, length=200)
    assert L.decode_sp(ok + bad)[-1]["error"] == "bad_length"
    assert L.decode_sp(L.sp_message(0x20))[0]["error"] == "unknown_type"
    short = L.sp_message("Login", length=28)[:28]
    assert L.decode_sp(short)[0]["error"] == "wrong_length"
    assert L.decode_sp(b"") == []


def test_enum_fields_decode_to_names():
    raw = L.sp_message("NewOrder", side=3, ord_type=2, tif=2, flags=L.SP_FLAG_LOCATE)
    (d,) = L.decode_sp(raw)
    assert (d["side"], d["ord_type"], d["tif"], d["flags"]) == ("sell_short", "market", "ioc", 2)
    (d,) = L.decode_sp(L.sp_message("Rejected", reason=1000, ref_type=0x11))
    assert (d["reason"], d["ref_type"]) == ("SYS_TABLE_FULL", "Modify")
    (d,) = L.decode_sp(L.sp_message("NewOrder", side=9))
    assert d["side"] == 9


def test_session_layer_messages_from_the_protocol_tables():
    """docs/protocol.md: RetransmitRequest (0x04, 40 bytes, both directions),
    RetransmitReject (0x84, 40 bytes), and the appliance's Logout and
    Heartbeat (the header alone, seq = its next outbound number)."""
    req = L.sp_message("RetransmitRequest", session_id=2, seq=9, timestamp_ns=5,
                       from_seq=3, count=4)
    assert req == struct.pack("<BBHIQQQII", 1, 0x04, 40, 2, 9, 5, 3, 4, 0)
    rej = L.sp_message("RetransmitReject", session_id=2, seq=9, from_seq=1, count=7,
                       reason=1)
    assert rej == struct.pack("<BBHIQQQIB3x", 1, 0x84, 40, 2, 9, 0, 1, 7, 1)
    logout = L.sp_message("Logout", session_id=2, seq=9, timestamp_ns=5)
    heartbeat = L.sp_message("Heartbeat", session_id=2, seq=9, timestamp_ns=5)
    assert logout == struct.pack("<BBHIQQ", 1, 0x02, 24, 2, 9, 5)
    assert heartbeat == struct.pack("<BBHIQQ", 1, 0x03, 24, 2, 9, 5)
    got = L.decode_sp(req + rej + logout + heartbeat)
    assert [d["type"] for d in got] == ["RetransmitRequest", "RetransmitReject", "Logout",
                                        "Heartbeat"]
    assert all("error" not in d for d in got)
    assert (got[0]["from_seq"], got[0]["count"], got[0]["seq"]) == (3, 4, 9)
    assert (got[1]["from_seq"], got[1]["count"], got[1]["reason"]) == (1, 7, "TOO_OLD")
    (d,) = L.decode_sp(L.sp_message("RetransmitReject", reason=2))
    assert d["reason"] == "NOT_SENT"
    assert L.decode_sp(L.sp_message("RetransmitRequest", length=32)[:32])[0]["error"] == \
        "wrong_length"
    # as the appliance sends them, in a frame from its strategy port
    frame = bytes(Ether() / IP(src="10.10.0.1") / UDP(sport=9000, dport=9001) / rej)
    pkt = Ether(frame)
    assert pkt[L.SPRetransmitReject].reason == 1 and bytes(pkt) == frame


# --------------------------------------------------------------------------
# Prices


@pytest.mark.parametrize("text,fixed", [
    ("150.25", 15025000000), ("151.00", 15100000000), ("0.00000001", 1), ("-1.5", -150000000),
    ("0", 0), ("92233720368.54775807", (1 << 63) - 1), ("1.000000000", 100000000),
])
def test_price_to_fixed(text, fixed):
    assert L.price_to_fixed(text) == fixed
    assert L.price_to_fixed(Decimal(text)) == fixed


@pytest.mark.parametrize("bad", ["1.000000001", "92233720368.54775808", "NaN", "Infinity", "abc"])
def test_price_to_fixed_rejects(bad):
    with pytest.raises(ValueError):
        L.price_to_fixed(bad)


def test_price_to_fixed_refuses_floats():
    with pytest.raises(TypeError):
        L.price_to_fixed(150.25)


@given(st.integers(min_value=L.I64_MIN, max_value=L.I64_MAX))
def test_fixed_to_str_round_trips(n):
    assert L.price_to_fixed(L.fixed_to_str(n)) == n


def test_fixed_to_str_format():
    assert L.fixed_to_str(15025000000) == "150.25"
    assert L.fixed_to_str(15100000000) == "151.00"
    assert L.fixed_to_str(-1) == "-0.00000001"


# --------------------------------------------------------------------------
# OUCH against cdefs/ouch_wire.h

OUCH_ENUMS = c_enums(OUCH_WIRE_H.read_text())
_OUCH_PREFIXES = {  # longest first
    "CANCEL_REJECT": L.OuchCancelReject, "SYSTEM_EVENT": L.OuchSystemEvent,
    "ACCEPTED": L.OuchAccepted, "REPLACED": L.OuchReplaced, "CANCELED": L.OuchCanceled,
    "EXECUTED": L.OuchExecuted, "REJECTED": L.OuchRejected, "ENTER": L.OuchEnterOrder,
    "REPLACE": L.OuchReplaceOrder, "CANCEL": L.OuchCancelOrder,
}
_OUCH_FIELDS = {"REF": "user_ref", "ORIG_REF": "orig_user_ref", "ORDER_REF": "order_ref",
                "CROSS": "cross_type", "CLORDID": "cl_ord_id", "APPLEN": "appendage_length",
                "TIMESTAMP": "timestamp"}
_OUTBOUND = [L.OuchAccepted, L.OuchReplaced, L.OuchCanceled, L.OuchExecuted, L.OuchRejected,
             L.OuchCancelReject, L.OuchSystemEvent]


def field_offsets(cls) -> tuple[dict[str, int], int]:
    pkt = cls()
    offsets, off = {}, 0
    for f in cls.fields_desc:
        offsets[f.name] = off
        off += len(f.addfield(pkt, b"", pkt.getfieldval(f.name)))
    return offsets, off


def _ouch_constants():
    for name, value in OUCH_ENUMS.items():
        if not name.startswith("OUCH_") or name.startswith(("OUCH_MAX", "OUCH_MARKET",
                                                              "OUCH_CLORDID", "OUCH_TAG")):
            continue
        rest = name.removeprefix("OUCH_")
        if rest.startswith("OFF_"):  # common to the outbound messages...
            for cls in _OUTBOUND:
                if cls is L.OuchSystemEvent and rest != "OFF_TIMESTAMP":
                    continue
                if cls is L.OuchReplaced and rest == "OFF_REF":
                    continue  # ...but Replaced has OrigUserRefNum at 9 (REPLACED_OFF_REF)
                yield name, cls, rest.removeprefix("OFF_"), value
            continue
        for prefix, cls in _OUCH_PREFIXES.items():
            if rest.startswith(prefix + "_"):
                yield name, cls, rest.removeprefix(prefix + "_").removeprefix("OFF_"), value
                break


@pytest.mark.parametrize("cname,cls,what,value", list(_ouch_constants()),
                         ids=lambda x: x if isinstance(x, str) else "")
def test_ouch_offsets_match_the_header(cname, cls, what, value):
    offsets, total = field_offsets(cls)
    if what == "LEN":
        assert total == value  # no appendage: optional AppLen absent
    else:
        assert offsets[_OUCH_FIELDS.get(what, what.lower())] == value, cname


def test_ouch_constants_cover_every_layer():
    assert {cls for _, cls, what, _ in _ouch_constants() if what == "LEN"} == set(
        L.OUCH_CLASSES.values())
    assert OUCH_ENUMS["OUCH_MARKET_PRICE"] == L.OUCH_MARKET_PRICE
    assert OUCH_ENUMS["OUCH_MAX_PRICE"] == L.OUCH_MAX_PRICE
    assert OUCH_ENUMS["UFO_HLEN"] == L.UFO_HEADER_LEN == len(bytes(L.UFOHeader(count=0)))


def test_ouch_worked_encodings_from_the_research_notes():
    enter = L.ouch_message("EnterOrder", user_ref=1, side="B", qty=100, symbol="AAPL",
                           price=1502500, tif="0", display="Y", capacity="A", iso="N",
                           cross_type="N", cl_ord_id="ORDER1")
    assert enter.hex().upper() == (
        "4F00000001420000006441415" "04C20202020000000000016ED24" "3059414E4E"
        "4F5244455231" "2020202020202020" "0000")
    firm = L.ouch_message("EnterOrder", user_ref=1, qty=100, symbol="AAPL", price=1502500,
                          cl_ord_id="ORDER1", appendage=bytes.fromhex("050241424344"))
    assert len(firm) == 53 and firm[-8:].hex() == "0006050241424344"
    assert L.ouch_message("CancelOrder", user_ref=1, qty=0).hex() == "580000000100000000"
    executed = L.ouch_message("Executed", timestamp=0x1F1AD635BD15, user_ref=1, qty=100,
                              price=1502500, liquidity="A", match=42)
    assert executed.hex().upper() == (
        "4500001F1AD635BD15000000010000006400000000" "0016ED2441000000000000002A0000")
    rejected = L.ouch_message("Rejected", timestamp=0x1F1AD635BD15, user_ref=1, reason=0x13,
                              cl_ord_id="ORDER1")
    assert rejected.hex().upper() == (
        "4A00001F1AD635BD15000000010013" "4F5244455231" "2020202020202020")


def test_shares_located_appendage():
    raw = L.ouch_message("EnterOrder", side="T", appendage=L.SHARES_LOCATED_APPENDAGE)
    assert raw[45:] == bytes.fromhex("0003021959")
    d = L.decode_ouch(raw, from_venue=False)
    assert d["appendage_length"] == 3 and d["appendage"] == "021959"


# --------------------------------------------------------------------------
# Venue framing


def _ufo(messages, **kw):
    return L.ufo_packet("NSDQ01", 5, messages, **kw)


def test_ufo_packet_decodes_every_block_with_its_sequence_number():
    msgs = [L.ouch_message("Accepted", user_ref=1, qty=100, symbol="AAPL", price=1502500,
                           cl_ord_id=L.clordid(12345)),
            L.ouch_message("Executed", user_ref=1, qty=40, price=1502500, match=7),
            L.ouch_message("Canceled", user_ref=1, qty=60, reason="U")]
    out = L.decode_venue(_ufo(msgs))
    assert [(d["msg"], d["ufo_seq"], d["ufo_session"]) for d in out] == [
        ("Accepted", 5, "NSDQ01"), ("Executed", 6, "NSDQ01"), ("Canceled", 7, "NSDQ01")]
    assert out[0]["cl_ord_id"] == "9IX" and out[0]["price"] == 1502500
    assert out[2]["appendage_length"] is None


def test_heartbeat_end_of_session_and_bad_block():
    assert L.decode_venue(_ufo([]))[0]["msg"] == "Heartbeat"
    assert L.decode_venue(_ufo([], count=0xFFFF))[0]["msg"] == "EndOfSession"
    raw = _ufo([L.ouch_message("CancelReject", user_ref=3)], count=2)
    out = L.decode_venue(raw)
    assert out[0]["msg"] == "CancelReject" and out[1]["error"] == "bad_block"
    assert L.decode_venue(b"short")[0]["error"] == "truncated"


def test_request_packets_and_hellos():
    """A request packet is the header alone: sequence number = the first
    message asked for, count = how many (0: a hello)."""
    req = L.ufo_packet("NSDQ01", 5, [], count=3)
    hello = L.ufo_packet("NSDQ01", 1, [], count=0)
    assert req == b"NSDQ01    " + bytes.fromhex("0000000000000005" "0003")
    assert L.decode_venue(req) == [{"ufo_session": "NSDQ01", "ufo_seq": 5, "msg": "Request",
                                    "count": 3}]
    assert L.decode_venue(req, direction="request")[0]["msg"] == "Request"
    assert L.decode_venue(hello, direction="request") == [
        {"ufo_session": "NSDQ01", "ufo_seq": 1, "msg": "Hello", "count": 0}]
    # on the data port, count 0 is a heartbeat
    assert L.decode_venue(hello)[0]["msg"] == "Heartbeat"
    with pytest.raises(ValueError):
        L.decode_venue(req, direction="sideways")
    # scapy: packets to and from the request ports are a bare UFOHeader
    for sport, dport in ((9101, 9201), (9200, 9101)):
        frame = bytes(Ether() / IP() / UDP(sport=sport, dport=dport) / req)
        pkt = Ether(frame)
        assert (pkt[L.UFOHeader].seq, pkt[L.UFOHeader].count) == (5, 3)
        assert not pkt.haslayer(L.UFOBlock) and not pkt.haslayer(Raw)
        assert bytes(pkt) == frame
    assert bytes(L.UFOHeader(session="NSDQ01", seq=5, count=3)) == req


def test_u_is_chosen_by_direction():
    replace = L.ouch_message("ReplaceOrder", orig_user_ref=1, user_ref=2, qty=10)
    replaced = L.ouch_message("Replaced", orig_user_ref=1, user_ref=2, qty=10)
    to_venue = Ether(bytes(Ether() / IP() / UDP(sport=9100, dport=9200) / _ufo([replace])))
    from_venue = Ether(bytes(Ether() / IP() / UDP(sport=9200, dport=9100) / _ufo([replaced])))
    assert to_venue.haslayer(L.OuchReplaceOrder) and from_venue.haslayer(L.OuchReplaced)
    assert from_venue[L.OuchReplaced].user_ref == 2
    # a 40-byte Replace sent *from* the venue port is read as the venue's Replaced: too short
    wrong = Ether(bytes(Ether() / IP() / UDP(sport=9200, dport=9100) / _ufo([replace])))
    assert not wrong.haslayer(L.OuchReplaceOrder)
    assert L.decode_venue(_ufo([replace]), direction="to_venue")[0]["msg"] == "ReplaceOrder"
    assert L.decode_venue(_ufo([replaced]), direction="from_venue")[0]["msg"] == "Replaced"
    # without ports, the length decides
    assert L.decode_ouch(replace)["msg"] == "ReplaceOrder"
    assert L.decode_ouch(replaced)["msg"] == "Replaced"


def test_ufo_layers_build_count_and_lengths():
    pkt = (L.UFOHeader(session="BX01", seq=9) / L.UFOBlock() / L.OuchCancelReject(user_ref=4)
           / L.UFOBlock() / L.OuchSystemEvent(event_code="E"))
    raw = bytes(pkt)
    assert raw == L.ufo_packet("BX01", 9, [L.ouch_message("CancelReject", user_ref=4),
                                           L.ouch_message("SystemEvent", event_code="E")])


def test_clordid_is_upper_case_base36():
    assert L.clordid(12345) == b"9IX           "
    assert L.clordid(0) == b"0             "
    assert len(L.base36((1 << 64) - 1)) <= L.OUCH_CLORDID_LEN


# --------------------------------------------------------------------------
# docs/protocol.md agrees with the header


def _doc_tables() -> dict[str, list[tuple[int, int, str]]]:
    """'### Name (...)' -> [(offset, size, field)] from the doc's tables."""
    tables: dict[str, list[tuple[int, int, str]]] = {}
    current = None
    for line in PROTOCOL_MD.read_text().splitlines():
        m = re.match(r"### (\w+) \(", line)
        if m:
            current = tables.setdefault(m.group(1), [])
            continue
        m = re.match(r"\| (\d+) \| (\d+) \| \w+(?:\[\d+\])? \| `(\w+)` \|", line)
        if m and current is not None:
            current.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return tables


def test_protocol_doc_tables_match_the_header():
    tables = _doc_tables()
    hdr = [(o, s, f) for f, o, s, _ in SP_STRUCTS["sp_header"]]
    assert tables["Header"] == hdr
    for s in MESSAGE_STRUCTS:
        body = [(o, sz, f) for f, o, sz, _ in SP_STRUCTS[s]][len(hdr):]
        assert tables[camel(s)] == body, s
