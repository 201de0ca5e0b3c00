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
    udp_frame,
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
    msgs = messages(frames)
    # ten seconds apart: a real strategy heartbeats in between, every
    # heartbeat_ms (1 s), carrying its next sequence number
    beats = [m for m in msgs if m["type"] == "Heartbeat"]
    assert len(beats) == 9 and {m["seq"] for m in beats} == {2}
    login, new, modify = [m for m in msgs if m["type"] != "Heartbeat"]
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
    assert [t for t, _ in frames] == [T0, T0] + [T0 + k * 10**9 for k in range(1, 11)]


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


def beats_dropped(frames):
    """Without the heartbeats the builder adds during a session's silences
    (a datagram holding one strategy Heartbeat, type 0x03)."""
    return [(t, f) for t, f in frames if not (len(f) == 42 + 24 and f[43] == 0x03)]


def test_heartbeats_fill_silences_longer_than_heartbeat_ms(cfg):
    frames = build_frames(lines(
        {"action": "cancel", "order_id": 1, "timestamp_ns": 10**9},
        {"action": "cancel", "order_id": 2, "timestamp_ns": 4 * 10**9 + 500},
    ), cfg)
    beats = [(t, f) for t, f in frames if (t, f) not in beats_dropped(frames)]
    # heartbeat_ms 1000: at 2, 3 and 4 s, each carrying the next seq (2)
    assert [t for t, _ in beats] == [2 * 10**9, 3 * 10**9, 4 * 10**9]
    assert {struct.unpack_from("<Q", f, 42 + 8)[0] for _, f in beats} == {2}


def test_timestamps_default_and_units(cfg):
    frames = build_frames(lines(
        {"action": "cancel", "order_id": 1},
        {"action": "cancel", "order_id": 2, "timestamp_ns": 5_000_000_123},
        {"action": "cancel", "order_id": 3},
        {"action": "cancel", "order_id": 4, "timestamp": 6000},
        {"action": "cancel", "order_id": 5, "timestamp": 6000},
    ), cfg)
    assert [t for t, _ in beats_dropped(frames)] == [1000, 1000, 5_000_000_123, 5_000_001_123,
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
    assert build_pcap(s, tmp_path / "a.pcap", cfg) == 5 + 9  # + heartbeats
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
    assert [t for t, _ in beats_dropped(got)] == [T0, T0, T0 + 123_456_789,
                                                  T0 + 123_457_789, T0 + 10 * 10**9]
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
    assert len(beats_dropped(read_pcap_ns(tmp_path / "c.pcap"))) == 5
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


# --------------------------------------------------------------------------
# Frames without scapy


def _scapy_frame(src, dst, payload: bytes) -> bytes:
    (smac, sip, sport), (dmac, dip, dport) = src, dst
    return bytes(Ether(src=smac, dst=dmac) / IP(src=sip, dst=dip, id=0, flags="DF", ttl=64)
                 / UDP(sport=sport, dport=dport) / payload)


def test_udp_frame_is_byte_for_byte_what_scapy_builds():
    import random

    rng = random.Random(5)
    for _ in range(500):
        def mac():
            return ":".join(f"{rng.randrange(256):02{rng.choice('xX')}}" for _ in range(6))

        def ip():
            return ".".join(str(rng.randrange(256)) for _ in range(4))

        src, dst = (mac(), ip(), rng.randrange(65536)), (mac(), ip(), rng.randrange(65536))
        payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        assert udp_frame(src, dst, payload) == _scapy_frame(src, dst, payload)
    # a UDP checksum that comes out 0 is sent as 0xFFFF
    src, dst = ("02:00:00:00:01:01", "10.10.1.1", 9001), ("02:00:00:00:00:01", "10.10.0.1", 9000)
    base = b"abcdefgh"
    c = Ether(udp_frame(src, dst, base + b"\0\0"))[UDP].chksum
    payload = base + struct.pack("!H", c)
    assert Ether(udp_frame(src, dst, payload))[UDP].chksum == 0xFFFF
    assert udp_frame(src, dst, payload) == _scapy_frame(src, dst, payload)
    # forms only scapy reads go to scapy
    odd = ("2:0:0:0:9:9", "10.9.9.9", 4000)
    assert udp_frame(odd, dst, base) == _scapy_frame(odd, dst, base)


# --------------------------------------------------------------------------
# Junk


def _junk_scenario() -> list[str]:
    """Every junk kind (random with several seeds) between two orders of
    session 1, and a duplicate: each junk line must land in its counter and
    take no sequence number."""
    out = [{"session": 1, "order_id": 1, "symbol": "AAPL", "price": 150, "volume": 100}]
    for kind in ("bad_ip_checksum", "bad_udp_checksum", "truncated", "wrong_port",
                 "not_for_us", "unknown_session", "bad_version"):
        out.append({"action": "junk", "kind": kind})
    out += [{"action": "junk", "kind": "random", "seed": s} for s in range(20)]
    out += [{"action": "junk", "kind": "truncated", "length": 40, "session": 2},
            {"action": "junk", "kind": "wrong_port", "port": 12345},
            {"action": "junk", "kind": "not_for_us", "dst_ip": "10.10.0.2"},
            {"action": "junk", "kind": "unknown_session", "session_id": 4242, "session": 2},
            {"action": "junk", "kind": "bad_version", "version": 0},
            {"session": 1, "order_id": 2, "symbol": "AAPL", "price": 150, "volume": 100}]
    return lines(*out)


def test_junk_takes_no_sequence_number_and_sends_no_login(cfg):
    frames = build_frames(lines(
        {"action": "junk", "kind": "bad_version", "session": 2},
        {"action": "cancel", "order_id": 1},
        {"action": "junk", "kind": "unknown_session"},
        {"action": "cancel", "order_id": 2},
    ), cfg)
    assert len(frames) == 5
    # only the valid frames decode as messages of a configured session
    ok = [m for _, ms in decoded([frames[1], frames[2], frames[4]]) for m in ms]
    assert [(m["type"], m["seq"]) for m in ok] == [("Login", 1), ("Cancel", 1), ("Cancel", 2)]
    junk = L.decode_sp(bytes(Ether(frames[3][1])[UDP].payload))[0]
    assert (junk["session_id"], junk["seq"], junk["type"]) == (3, 2, "NewOrder")
    bad_version = bytes(Ether(frames[0][1])[UDP].payload)
    assert bad_version[0] == 2 and struct.unpack_from("<I", bad_version, 4)[0] == 2


def test_junk_frames_are_spoilt_as_documented(cfg):
    frames = build_frames(_junk_scenario(), cfg)
    assert len(frames) == 1 + 1 + 7 + 20 + 5 + 1
    f = {kind: Ether(frames[2 + i][1]) for i, kind in enumerate(
        ("bad_ip_checksum", "bad_udp_checksum", "truncated", "wrong_port", "not_for_us",
         "unknown_session", "bad_version"))}
    good = IP(bytes(f["bad_ip_checksum"][IP]))
    del good.chksum
    assert IP(bytes(good)).chksum != f["bad_ip_checksum"][IP].chksum
    spoilt = f["bad_udp_checksum"]
    rebuilt = spoilt.copy()
    del rebuilt[UDP].chksum
    assert spoilt[UDP].chksum not in (0, Ether(bytes(rebuilt))[UDP].chksum)
    assert IP(bytes(spoilt[IP])).chksum == f["wrong_port"][IP].chksum  # IP header intact
    assert len(bytes(f["truncated"][UDP].payload)) == 16
    assert f["wrong_port"][UDP].dport not in (9000, 9100, 9101)
    assert f["not_for_us"][IP].dst == "192.0.2.1"
    assert L.decode_sp(bytes(f["unknown_session"][UDP].payload))[0]["session_id"] == 3
    assert f["unknown_session"][IP].src == "10.10.1.1"
    randoms = [fr for _, fr in frames[9:29]]
    assert all(len(r) <= 100 and (len(r) < 14 or r[12:14] not in (b"\x08\x00", b"\x81\x00"))
               for r in randoms)
    assert len(set(randoms)) == 20
    assert build_frames(_junk_scenario(), cfg) == frames  # seeded: reproducible


def test_junk_lands_in_the_documented_counters(cfg):
    from dataplane.replay import Replayer

    rp = Replayer(cfg, venue_sim=True)
    _, res = rp.run(build_frames(_junk_scenario(), cfg))
    drops = res.stats["drop"]
    assert drops.get("RUNT", 0) + drops.get("NOT_IPV4", 0) == 20
    assert {k: v for k, v in drops.items() if k not in ("RUNT", "NOT_IPV4")} == {
        "IP_CHECKSUM": 1, "UDP_CHECKSUM": 1, "SP_TRUNCATED": 1, "SP_BAD_LENGTH": 1,
        "UNKNOWN_PORT": 2, "NOT_FOR_US": 2, "SP_UNKNOWN_SESSION": 2, "SP_BAD_VERSION": 2}
    assert res.stats["event"]["SP_MSGS_IN"] == 2  # both orders, no gap
    assert rp.core.order(1, 2) is not None


@pytest.mark.parametrize("bad_line, field", [
    ('{"action": "junk"}', "kind"),
    ('{"action": "junk", "kind": "gremlins"}', "kind"),
    ('{"action": "junk", "kind": "random", "seed": -1}', "seed"),
    ('{"action": "junk", "kind": "random", "session": 1}', "session"),
    ('{"action": "junk", "kind": "bad_ip_checksum", "seq": 3}', "seq"),
    ('{"action": "junk", "kind": "truncated", "length": 0}', "length"),
    ('{"action": "junk", "kind": "truncated", "length": 64}', "length"),
    ('{"action": "junk", "kind": "wrong_port", "port": 9100}', "port"),
    ('{"action": "junk", "kind": "wrong_port", "port": 9101}', "port"),
    ('{"action": "junk", "kind": "not_for_us", "dst_ip": "10.10.0.1"}', "dst_ip"),
    ('{"action": "junk", "kind": "not_for_us", "dst_ip": "300.1.1.1"}', "dst_ip"),
    ('{"action": "junk", "kind": "unknown_session", "session_id": 2}', "session_id"),
    ('{"action": "junk", "kind": "bad_version", "version": 1}', "version"),
    ('{"action": "junk", "kind": "bad_version", "session": 99}', "session"),
])
def test_bad_junk_lines_name_the_field(cfg, bad_line, field):
    with pytest.raises(ScenarioError) as info:
        build_frames([bad_line], cfg, "j.jsonl")
    assert (info.value.line, info.value.field) == (1, field)


def test_heartbeats_of_a_quiet_session_keep_the_capture_in_time_order(cfg):
    frames = build_frames(lines(
        {"action": "cancel", "order_id": 1, "session": 1, "timestamp_ns": 10**9},
        {"action": "cancel", "order_id": 2, "session": 2, "timestamp_ns": 6 * 10**9},
        {"action": "cancel", "order_id": 3, "session": 1, "timestamp_ns": 6 * 10**9 + 1000},
    ), cfg)
    times = [t for t, _ in frames]
    assert times == sorted(times)
    # session 1 heartbeats at 2..6 s although session 2 spoke in between
    beats1 = [t for t, f in frames if len(f) == 42 + 24 and f[43] == 0x03
              and struct.unpack_from("<I", f, 42 + 4)[0] == 1]
    assert beats1 == [k * 10**9 for k in range(2, 7)]
