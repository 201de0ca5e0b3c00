"""The scenario builder: the product brief's messages become the expected
strategy messages, frames are addressed and checksummed as configured,
sequence numbers and timestamps are as documented, bad lines are located,
and the output is reproducible to the byte and to the nanosecond."""
from __future__ import annotations

import json
import re
import struct
from decimal import Decimal
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter, rdpcap

from control.config import load_default_config
from pcaps import layers as L
from pcaps.builder import (
    ScenarioError,
    build_frames,
    build_pcap,
    main,
    read_pcap_ns,
    write_pcap_ns,
)

ROOT = Path(__file__).resolve().parent.parent
BRIEF_NEW = ('{"timestamp": 1638247400000, "order_id": 12345, "symbol": "AAPL", '
             '"price": 150.25, "volume": 100, "type": "LIMIT"}')
BRIEF_MODIFY = ('{"timestamp": 1638247410000, "order_id": 12345, "new_price": 151.00, '
                '"new_volume": 50}')
T0 = 1638247400000 * 1_000_000


@pytest.fixture(scope="module")
def cfg():
    return load_default_config()


def lines(*objs) -> list[str]:
    return [o if isinstance(o, str) else json.dumps(o) for o in objs]


def decoded(frames):
    """[(time, [message dicts])] of built frames."""
    out = []
    for t, frame in frames:
        udp = Ether(frame)[UDP]
        payload = bytes(udp.payload)
        if udp.dport == 9000:
            out.append((t, L.decode_sp(payload)))
        else:
            out.append((t, L.decode_venue(payload, from_venue=True)))
    return out


def messages(frames) -> list[dict]:
    return [m for _, ms in decoded(frames) for m in ms]


# --------------------------------------------------------------------------
# The brief's examples


def test_brief_examples_decode_to_the_expected_fields(cfg):
    frames = build_frames([BRIEF_NEW, BRIEF_MODIFY], cfg)
    login, new, modify = messages(frames)
    assert (login["type"], login["seq"], login["next_expected_seq"]) == ("Login", 1, 1)
    assert new["type"] == "NewOrder" and "error" not in new
    assert (new["cl_ord_id"], new["symbol"], new["price"], new["qty"]) == (
        12345, "AAPL", 15025000000, 100)
    assert (new["ord_type"], new["side"], new["tif"], new["account"], new["venue"]) == (
        "limit", "buy", "day", 1, 0)
    assert (new["session_id"], new["seq"], new["timestamp_ns"]) == (1, 1, T0)
    assert modify["type"] == "Modify" and "error" not in modify
    assert (modify["cl_ord_id"], modify["new_price"], modify["new_qty"]) == (
        12345, 15100000000, 50)
    assert (modify["seq"], modify["timestamp_ns"]) == (2, T0 + 10 * 10**9)
    assert [t for t, _ in frames] == [T0, T0, T0 + 10 * 10**9]


def test_modify_takes_the_missing_value_from_the_tracked_order(cfg):
    frames = build_frames(lines(
        BRIEF_NEW,
        {"order_id": 12345, "new_price": 151.00},
        {"order_id": 12345, "new_volume": 70},
    ), cfg)
    _, _, m1, m2 = messages(frames)
    assert (m1["new_price"], m1["new_qty"]) == (15100000000, 100)
    assert (m2["new_price"], m2["new_qty"]) == (15100000000, 70)


def test_cancel_mass_cancel_and_options(cfg):
    frames = build_frames(lines(
        {"order_id": 1, "symbol": "MSFT", "price": 10, "volume": 5, "side": "sell_short",
         "locate": True, "priority": True, "account": 7, "venue": 2, "session": 2},
        {"order_id": 2, "symbol": "MSFT", "volume": 5, "type": "MARKET", "session": 2},
        {"action": "cancel", "order_id": 1, "session": 2},
        {"action": "mass_cancel", "account": 7, "session": 2},
    ), cfg)
    _, new, mkt, cancel, mass = messages(frames)
    assert (new["side"], new["flags"], new["account"], new["venue"], new["session_id"]) == (
        "sell_short", L.SP_FLAG_LOCATE | L.SP_FLAG_PRIORITY, 7, 2, 2)
    assert (mkt["ord_type"], mkt["tif"], mkt["price"]) == ("market", "ioc", 0)
    assert (cancel["type"], cancel["cl_ord_id"], cancel["seq"]) == ("Cancel", 1, 3)
    assert (mass["type"], mass["account"], mass["seq"]) == ("MassCancel", 7, 4)


def test_business_violations_are_built_as_asked(cfg):
    frames = build_frames(lines(
        {"order_id": 1, "symbol": "ZZZZ", "price": -5, "volume": 0, "side": 9, "tif": 7},
        {"order_id": 1, "symbol": "AAPL", "price": 92233720368, "volume": 4294967295},
    ), cfg)
    _, a, b = messages(frames)
    assert (a["symbol"], a["price"], a["qty"], a["side"], a["tif"]) == ("ZZZZ", -500000000, 0, 9, 7)
    assert (b["price"], b["qty"]) == (9223372036800000000, 4294967295)


# --------------------------------------------------------------------------
# Frames, sequencing, timing


def test_frames_are_addressed_and_checksummed_from_the_config(cfg):
    frames = build_frames(lines(BRIEF_NEW, {"action": "cancel", "order_id": 1, "session": 2}),
                          cfg)
    app = cfg.appliance
    for (_, frame), sid in zip(frames, [1, 1, 2, 2], strict=True):
        s = cfg.session(sid)
        pkt = Ether(frame)
        assert (pkt.src, pkt.dst) == (s.mac, app.mac)
        assert (pkt[IP].src, pkt[IP].dst, pkt[UDP].sport, pkt[UDP].dport) == (
            s.ip, app.ip, s.port, app.strategy_port)
        assert (pkt[IP].ttl, pkt[IP].id, str(pkt[IP].flags)) == (64, 0, "DF")
        ip_ck, udp_ck = pkt[IP].chksum, pkt[UDP].chksum
        del pkt[IP].chksum, pkt[UDP].chksum, pkt[IP].len, pkt[UDP].len
        again = Ether(bytes(pkt))
        assert (again[IP].chksum, again[UDP].chksum) == (ip_ck, udp_ck)
        assert bytes(again) == frame


def test_sequence_numbers_per_session_and_session_messages_do_not_consume(cfg):
    frames = build_frames(lines(
        {"action": "cancel", "order_id": 1},
        {"action": "heartbeat"},
        {"action": "cancel", "order_id": 2, "session": 2},
        {"action": "cancel", "order_id": 3},
        {"action": "cancel", "order_id": 4, "seq": 10},
        {"action": "logout"},
        {"action": "login", "next_expected_seq": 5},
        {"action": "cancel", "order_id": 5},
    ), cfg)
    got = [(m["session_id"], m["type"], m["seq"]) for m in messages(frames)]
    assert got == [
        (1, "Login", 1), (1, "Cancel", 1), (1, "Heartbeat", 2),
        (2, "Login", 1), (2, "Cancel", 1),
        (1, "Cancel", 2), (1, "Cancel", 10), (1, "Logout", 11), (1, "Login", 11),
        (1, "Cancel", 11),
    ]
    assert messages(frames)[-2]["next_expected_seq"] == 5


def test_an_explicit_first_login_replaces_the_automatic_one(cfg):
    frames = build_frames(lines({"action": "login", "next_expected_seq": 3},
                                {"action": "cancel", "order_id": 1}), cfg)
    assert [(m["type"], m.get("next_expected_seq")) for m in messages(frames)] == [
        ("Login", 3), ("Cancel", None)]


def test_same_datagram_appends_to_the_sessions_previous_datagram(cfg):
    frames = build_frames(lines(
        {"action": "cancel", "order_id": 1},
        {"action": "cancel", "order_id": 9, "session": 2},
        {"action": "cancel", "order_id": 2, "same_datagram": True},
        {"action": "mass_cancel", "same_datagram": True},
    ), cfg)
    d = decoded(frames)
    assert [[m["type"] for m in ms] for _, ms in d] == [
        ["Login"], ["Cancel", "Cancel", "MassCancel"], ["Login"], ["Cancel"]]
    assert [m["seq"] for m in d[1][1]] == [1, 2, 3]
    times = [m["timestamp_ns"] for m in d[1][1]]
    assert d[1][0] == times[0] and times == [1000, 3000, 4000]


def test_timestamps_default_and_units(cfg):
    frames = build_frames(lines(
        {"action": "cancel", "order_id": 1},
        {"action": "cancel", "order_id": 2, "timestamp_ns": 5_000_000_123},
        {"action": "cancel", "order_id": 3},
        {"action": "cancel", "order_id": 4, "timestamp": 6000},
        {"action": "cancel", "order_id": 5, "timestamp": 6000},
    ), cfg)
    assert [t for t, _ in frames] == [1000, 1000, 5_000_000_123, 5_000_001_123,
                                      6_000_000_000, 6_000_000_000]


def test_venue_messages(cfg):
    frames = build_frames(lines(
        BRIEF_NEW,
        {"venue": 1, "venue_msg": "accepted", "ref": 1, "order_id": 12345},
        {"venue": 1, "venue_msg": "executed", "ref": 1, "qty": 40, "price": 150.25, "match": 77},
        {"venue": 1, "venue_msg": "canceled", "ref": 1, "qty": 60, "reason": "I",
         "same_datagram": True},
        {"venue": 2, "venue_msg": "rejected", "ref": 1, "reason": 19},
        {"venue": 1, "venue_msg": "replaced", "ref": 2, "orig_ref": 1, "qty": 5, "price": 1},
        {"venue": 1, "venue_msg": "cancel_reject", "ref": 2},
        {"venue": 1, "venue_msg": "heartbeat"},
        {"venue": 1, "venue_msg": "system_event", "event": "E", "seq": 9},
        {"venue": 1, "venue_msg": "end_of_session"},
    ), cfg)
    venue_frames = frames[2:]
    app = cfg.appliance
    for (_, frame), vid in zip(venue_frames, [1, 1, 2, 1, 1, 1, 1, 1], strict=True):
        v = cfg.venue(vid)
        pkt = Ether(frame)
        assert (pkt.src, pkt[IP].src, pkt[UDP].sport) == (v.mac, v.ip, v.port)
        assert (pkt.dst, pkt[IP].dst, pkt[UDP].dport) == (app.mac, app.ip, app.venue_port)
        assert pkt.haslayer(L.UFOHeader)
    d = decoded(venue_frames)
    acc = d[0][1][0]
    assert (acc["msg"], acc["ufo_session"], acc["ufo_seq"], acc["user_ref"]) == (
        "Accepted", "NSDQ01", 1, 1)
    assert (acc["symbol"], acc["qty"], acc["price"], acc["cl_ord_id"], acc["side"]) == (
        "AAPL", 100, 1502500, "9IX", "B")
    assert acc["timestamp"] == (T0 + 1000) % (86400 * 10**9)
    ex, cx = d[1][1]
    assert (ex["msg"], ex["ufo_seq"], ex["qty"], ex["price"], ex["match"]) == (
        "Executed", 2, 40, 1502500, 77)
    assert (cx["msg"], cx["ufo_seq"], cx["qty"], cx["reason"]) == ("Canceled", 3, 60, "I")
    rj = d[2][1][0]
    assert (rj["msg"], rj["ufo_session"], rj["ufo_seq"], rj["reason"]) == (
        "Rejected", "BX01", 1, 19)
    rp = d[3][1][0]
    assert (rp["msg"], rp["ufo_seq"], rp["user_ref"], rp["orig_user_ref"], rp["price"]) == (
        "Replaced", 4, 2, 1, 10000)
    assert (d[4][1][0]["msg"], d[4][1][0]["ufo_seq"]) == ("CancelReject", 5)
    assert (d[5][1][0]["msg"], d[5][1][0]["ufo_seq"]) == ("Heartbeat", 6)
    assert (d[6][1][0]["msg"], d[6][1][0]["ufo_seq"], d[6][1][0]["event_code"]) == (
        "SystemEvent", 9, "E")
    assert (d[7][1][0]["msg"], d[7][1][0]["ufo_seq"]) == ("EndOfSession", 10)


# --------------------------------------------------------------------------
# Errors name the file, the line and the field


@pytest.mark.parametrize("bad_line,field", [
    ('{"order_id": 1, "symbol": "AAPL", "price": 1, "volume": 1', ""),  # bad JSON
    ('[1, 2]', ""),
    ('{"order_id": 1, "symbol": "AAPL", "price": 1, "volume": 1, "colour": "red"}', "colour"),
    ('{"order_id": "1", "symbol": "AAPL", "price": 1, "volume": 1}', "order_id"),
    ('{"order_id": 1, "symbol": "AAPL", "price": 1, "volume": 1.5}', "volume"),
    ('{"order_id": 1, "symbol": "AAPL", "price": true, "volume": 1}', "price"),
    ('{"order_id": 1, "symbol": "AAPL", "price": 1, "volume": -1}', "volume"),
    ('{"order_id": 1, "symbol": "TOOLONGSYM", "price": 1, "volume": 1}', "symbol"),
    ('{"order_id": 1, "symbol": "AAPL", "price": 1.000000001, "volume": 1}', "price"),
    ('{"order_id": 1, "symbol": "AAPL", "price": 92233720368.54775808, "volume": 1}', "price"),
    ('{"order_id": 1, "symbol": "AAPL", "price": NaN, "volume": 1}', ""),
    ('{"order_id": 1, "symbol": "AAPL", "volume": 1}', "price"),
    ('{"order_id": 1, "symbol": "AAPL", "price": 1, "volume": 1, "type": "STOP"}', "type"),
    ('{"order_id": 1, "symbol": "AAPL", "price": 1, "volume": 1, "side": "up"}', "side"),
    ('{"order_id": 1, "symbol": "AAPL", "price": 1, "volume": 1, "locate": 1}', "locate"),
    ('{"symbol": "AAPL", "price": 1, "volume": 1}', "order_id"),
    ('{"action": "cancel"}', "order_id"),
    ('{"action": "explode", "order_id": 1}', "action"),
    ('{"order_id": 777, "new_price": 3}', "new_volume"),
    ('{"action": "cancel", "order_id": 1, "timestamp": 1, "timestamp_ns": 1}', "timestamp_ns"),
    ('{"action": "cancel", "order_id": 1, "timestamp": 1}', "timestamp"),  # backwards
    ('{"action": "cancel", "order_id": 1, "session": 99}', "session"),
    ('{"venue": 1, "venue_msg": "executed", "ref": 1, "qty": 1, "same_datagram": true}',
     "same_datagram"),
    ('{"venue": 1, "venue_msg": "teleported", "ref": 1}', "venue_msg"),
    ('{"venue": 1, "venue_msg": "executed", "ref": 1, "qty": 1, "price": 1.00001}', "price"),
    ('{"venue": 1, "venue_msg": "executed", "ref": 1, "qty": 1, "reason": "U"}', "reason"),
    ('{"venue": 1, "venue_msg": "executed", "qty": 1}', "ref"),
    ('{"venue": 9, "venue_msg": "cancel_reject", "ref": 1}', "venue"),
])
def test_bad_lines_name_file_line_and_field(tmp_path, cfg, bad_line, field):
    scenario = tmp_path / "bad.jsonl"
    good = '{"action": "cancel", "order_id": 1, "timestamp": 5}'
    scenario.write_text(f"# a comment\n{good}\n\n{bad_line}\n")
    out = tmp_path / "out.pcap"
    with pytest.raises(ScenarioError) as info:
        build_pcap(scenario, out, cfg)
    err = info.value
    assert (err.file, err.line, err.field) == (str(scenario), 4, field)
    assert str(err).startswith(f"{scenario}:4: {field + ': ' if field else ''}")
    assert not out.exists()


def test_unknown_session_can_be_sent_with_explicit_source(cfg):
    frames = build_frames(lines({"action": "cancel", "order_id": 1, "session": 99,
                                 "src_ip": "10.9.9.9", "src_port": 4000,
                                 "src_mac": "02:00:00:00:09:09"}), cfg)
    pkt = Ether(frames[1][1])
    assert (pkt[IP].src, pkt[UDP].sport, pkt[L.SPHeader].session_id) == ("10.9.9.9", 4000, 99)


# --------------------------------------------------------------------------
# Pcap output


def _scenario(tmp_path) -> Path:
    p = tmp_path / "s.jsonl"
    p.write_text("\n".join(lines(
        BRIEF_NEW,
        {"action": "cancel", "order_id": 12345, "timestamp_ns": T0 + 123_456_789},
        {"venue": 1, "venue_msg": "accepted", "ref": 1, "order_id": 12345},
        BRIEF_MODIFY,
    )) + "\n")
    return p


def test_pcap_is_byte_identical_when_built_twice(tmp_path, cfg):
    s = _scenario(tmp_path)
    assert build_pcap(s, tmp_path / "a.pcap", cfg) == 5
    build_pcap(s, tmp_path / "b.pcap", cfg)
    assert (tmp_path / "a.pcap").read_bytes() == (tmp_path / "b.pcap").read_bytes()


def test_nanosecond_timestamps_survive(tmp_path, cfg):
    s = _scenario(tmp_path)
    out = tmp_path / "a.pcap"
    build_pcap(s, out, cfg)
    assert out.read_bytes()[:4] == struct.pack("<I", 0xA1B23C4D)
    got = read_pcap_ns(out)
    with open(s) as f:
        assert got == build_frames(f, cfg, str(s))
    assert [t for t, _ in got] == [T0, T0, T0 + 123_456_789, T0 + 123_457_789,
                                   T0 + 10 * 10**9]
    # scapy reads the same times and frames
    pkts = rdpcap(str(out))
    assert [int(p.time * 10**9) for p in pkts] == [t for t, _ in got]
    assert [bytes(p) for p in pkts] == [f for _, f in got]


@pytest.mark.parametrize("nano", [False, True])
def test_read_pcap_ns_reads_scapy_written_files(tmp_path, nano):
    path = tmp_path / "x.pcap"
    pkt = Ether() / IP() / UDP() / b"hello"
    frame = bytes(pkt)
    pkt.time = Decimal("1700000000.123456789" if nano else "1700000000.123456")
    with PcapWriter(str(path), linktype=1, nano=nano) as w:
        w.write(pkt)
    want = 1700000000 * 10**9 + (123456789 if nano else 123456000)
    assert read_pcap_ns(path) == [(want, frame)]


def test_read_pcap_ns_big_endian(tmp_path):
    path = tmp_path / "be.pcap"
    body = b"\x00" * 20
    path.write_bytes(struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
                     + struct.pack(">IIII", 3, 7, len(body), len(body)) + body)
    assert read_pcap_ns(path) == [(3 * 10**9 + 7, body)]


def test_write_then_read_round_trip(tmp_path):
    frames = [(0, b"a" * 60), (1, b"b" * 61), ((1 << 32) * 10**9 - 1, b"c" * 62)]
    write_pcap_ns(tmp_path / "r.pcap", frames)
    assert read_pcap_ns(tmp_path / "r.pcap") == frames


def test_cli(tmp_path, capsys):
    s = _scenario(tmp_path)
    assert main([str(s), str(tmp_path / "c.pcap")]) == 0
    assert len(read_pcap_ns(tmp_path / "c.pcap")) == 5
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"action": "nope"}\n')
    assert main([str(bad), str(tmp_path / "d.pcap")]) == 1
    assert f"{bad}:1: action:" in capsys.readouterr().err


def test_protocol_doc_example_is_what_the_builder_sends(cfg):
    text = (ROOT / "docs" / "protocol.md").read_text()
    block = text.split("## Example", 1)[1].split("```")[1]
    want = bytes.fromhex("".join(re.sub(r"\s{3,}.*", "", ln).replace(" ", "")
                                 for ln in block.strip().splitlines()))
    _, (_, frame) = build_frames([BRIEF_NEW], cfg)
    assert bytes(Ether(frame)[UDP].payload) == want
