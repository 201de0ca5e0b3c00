"""The ITCH 5.0 / MoldUDP64 layouts: the scapy layers against the C header
(cdefs/itch_wire.h, through cffi) field by field, and both against hex
vectors written by hand from the specifications' tables (TotalView-ITCH
5.0 section 4, MoldUDP64 1.00), one per message type."""
from __future__ import annotations

import pytest

from dataplane.core import lib
from pcaps.itch_layers import (
    ITCH_CLASSES,
    MoldBlock,
    MoldHeader,
    decode_itch,
    field_offsets,
    itch_message,
    mold_packet,
    price4,
)

C_LEN = {"S": "SYSTEM_EVENT_LEN", "R": "DIRECTORY_LEN", "H": "TRADING_ACTION_LEN",
         "Y": "REG_SHO_LEN", "A": "ADD_LEN", "F": "ADD_MPID_LEN", "E": "EXEC_LEN",
         "C": "EXEC_PRICE_LEN", "X": "CANCEL_LEN", "D": "DELETE_LEN", "U": "REPLACE_LEN",
         "P": "TRADE_LEN", "Q": "CROSS_LEN", "B": "BROKEN_LEN"}
HEADER_FIELDS = {"type": "ITCH_OFF_TYPE", "locate": "ITCH_OFF_LOCATE",
                 "tracking": "ITCH_OFF_TRACKING", "timestamp": "ITCH_OFF_TIMESTAMP"}


def c_offsets(prefix: str) -> dict[str, int]:
    head = f"ITCH_{prefix}_OFF_"
    return {k[len(head):].lower(): getattr(lib, k) for k in dir(lib) if k.startswith(head)}


@pytest.mark.parametrize("code", sorted(ITCH_CLASSES))
def test_layer_offsets_and_lengths_match_the_c_header(code):
    cls = ITCH_CLASSES[code]
    offs = field_offsets(cls)
    assert offs.pop("_len") == getattr(lib, "ITCH_" + C_LEN[code])
    for name, const in HEADER_FIELDS.items():
        assert offs.pop(name) == getattr(lib, const)
    c = c_offsets(cls.c_prefix)
    for name, off in offs.items():
        assert c[name] == off, (code, name)
    # C fields the layer lacks belong to the sibling message (A/F, E/C)
    missing = set(c) - set(offs)
    assert all(c[m] >= offs_len for m in missing
               for offs_len in [field_offsets(cls)["_len"]]), missing


def test_every_c_offset_is_covered_by_a_layer():
    covered = set()
    for cls in ITCH_CLASSES.values():
        covered |= {(cls.c_prefix, n) for n in field_offsets(cls)}
    for k in dir(lib):
        if k.startswith("ITCH_") and "_OFF_" in k and not k.startswith("ITCH_OFF_"):
            prefix, name = k[5:].split("_OFF_")
            assert (prefix, name.lower()) in covered, k


def test_mold_header_offsets():
    assert (lib.MOLD_OFF_SESSION, lib.MOLD_OFF_SEQ, lib.MOLD_OFF_COUNT, lib.MOLD_HLEN) == (
        0, 10, 18, 20)
    offs = field_offsets(MoldHeader)
    assert offs == {"session": 0, "seq": 10, "count": 18, "_len": 20}
    assert field_offsets(MoldBlock) == {"length": 0, "_len": lib.MOLD_BLOCK_HLEN}


# Hand-written from the specification tables: type, locate 0x0102, tracking
# 0x0304, timestamp 0x00000badcafe (6 bytes), then the message's fields.
H = "0102" "0304" "00000badcafe"
SPEC_VECTORS = [
    ("S", "53" + H + "51", dict(code="Q")),
    ("R", "52" + H + "4141504c20202020" "51" "4e" "00000064" "4e" "43" "5a20" "50" "4e" "4e"
     "31" "4e" "00000000" "4e", dict(stock="AAPL")),
    ("H", "48" + H + "4141504c20202020" "48" "20" "49504f31", dict(state="H", reason="IPO1")),
    ("Y", "59" + H + "4141504c20202020" "31", dict(action="1")),
    ("A", "41" + H + "0000000000000457" "42" "00000064" "4141504c20202020" "0016ed24",
     dict(ref=0x457, side="B", shares=100, price=1502500)),
    ("F", "46" + H + "0000000000000457" "53" "000000c8" "4141504c20202020" "0016ed2e" "4e534454",
     dict(ref=0x457, side="S", shares=200, price=1502510, attribution="NSDT")),
    ("E", "45" + H + "0000000000000457" "0000000a" "000000000000beef",
     dict(ref=0x457, shares=10, match=0xBEEF)),
    ("C", "43" + H + "0000000000000457" "0000000a" "000000000000beef" "59" "0016ed38",
     dict(ref=0x457, shares=10, match=0xBEEF, printable="Y", price=1502520)),
    ("X", "58" + H + "0000000000000457" "00000005", dict(ref=0x457, shares=5)),
    ("D", "44" + H + "0000000000000457", dict(ref=0x457)),
    ("U", "55" + H + "0000000000000457" "0000000000000458" "0000012c" "0016ed42",
     dict(orig_ref=0x457, new_ref=0x458, shares=300, price=1502530)),
    ("P", "50" + H + "0000000000000000" "42" "00000032" "4141504c20202020" "0016ed24"
     "000000000000c0de", dict(ref=0, side="B", shares=50, price=1502500, match=0xC0DE)),
    ("Q", "51" + H + "00000000000f4240" "4141504c20202020" "0016ed24" "000000000000c0df" "4f",
     dict(shares=1_000_000, price=1502500, match=0xC0DF, cross_type="O")),
    ("B", "42" + H + "000000000000c0de", dict(match=0xC0DE)),
]


def _fields(code: str, extra: dict) -> dict:
    d = dict(locate=0x0102, tracking=0x0304, timestamp=0xBADCAFE)
    if code in "RHYAFPQ":
        d["stock"] = "AAPL"
    d.update(extra)
    return d


@pytest.mark.parametrize("code,hexstr,extra", SPEC_VECTORS, ids=[v[0] for v in SPEC_VECTORS])
def test_spec_vectors_build_and_decode(code, hexstr, extra):
    raw = bytes.fromhex(hexstr)
    assert len(raw) == getattr(lib, "ITCH_" + C_LEN[code])
    assert itch_message(code, **_fields(code, extra)) == raw
    d = decode_itch(raw)
    for k, v in _fields(code, extra).items():
        assert d[k] == v, k


def test_mold_packet_vectors():
    # session "TESTSESS01", sequence 0x10, 2 blocks of 0x13 bytes (Order Delete)
    d = bytes.fromhex("44" + H + "0000000000000457")
    pkt = bytes.fromhex("5445535453455353303100000000000000100002" "0013") + d + \
        bytes.fromhex("0013") + d
    assert mold_packet("TESTSESS01", 0x10, [d, d]) == pkt
    p = MoldHeader(pkt)
    assert (p.seq, p.count) == (0x10, 2)
    assert p[MoldBlock].length == 0x13 and p[ITCH_CLASSES["D"]].ref == 0x457
    # heartbeat and end of session: the header alone, count 0 and 0xFFFF
    assert mold_packet("TESTSESS01", 0x11, [], count=0).hex().endswith("00000000000000110000")
    assert mold_packet("TESTSESS01", 0x11, [], count=0xFFFF).hex().endswith("ffff")


def test_price4_is_exact():
    assert price4("150.25") == 1502500
    assert price4("0.0001") == 1
    with pytest.raises(ValueError):
        price4("1.00001")
    assert lib.ITCH_PRICE_TO_FIXED * price4("150.25") == 15_025_000_000
