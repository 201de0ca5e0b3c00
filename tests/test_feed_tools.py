"""Testers' market-data tools (control/feed_tools.py): `omsctl feed replay`
on a binary ITCH 5.0 file and on the MoldUDP64 pcap `omsctl pcap build
--itch` makes of it give the same top-of-book lines, one per change, and the
reference book (dataplane/book_model.py) fed the same messages agrees line
by line."""
from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path

from control.feed_tools import _udp_payload, mold_units
from dataplane.book_model import FeedModel
from pcaps.itch_gen import build_frames

ROOT = Path(__file__).resolve().parent.parent
OMSCTL = str(Path(sys.executable).parent / "omsctl")
SCENARIO = ROOT / "pcaps" / "itch_scenarios" / "itch_day.jsonl"


def itch_file(path: Path) -> list[bytes]:
    """The scenario's messages (without its lost packet: a file has no gaps)
    as a gzipped length-prefixed binary ITCH file."""
    lines = [ln for ln in SCENARIO.read_text().splitlines() if '"lose"' not in ln]
    msgs = []
    for _, frame in build_frames(lines):
        p = _udp_payload(frame)
        seq, count = struct.unpack_from("!QH", p, 10)
        off = 20
        for _ in range(count if count != 0xFFFF else 0):
            (n,) = struct.unpack_from("!H", p, off)
            msgs.append(p[off + 2:off + 2 + n])
            off += 2 + n
    with gzip.open(path, "wb") as f:
        for m in msgs:
            f.write(struct.pack("!H", len(m)) + m)
    return msgs


def omsctl(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([OMSCTL, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r


def test_feed_replay_of_a_binary_itch_file_and_of_its_pcap_agree(tmp_path):
    msgs = itch_file(tmp_path / "day.itch.gz")
    omsctl("feed", "replay", str(tmp_path / "day.itch.gz"), "-o", str(tmp_path / "a.jsonl"))
    omsctl("pcap", "build", "--itch", str(tmp_path / "day.itch.gz"), "-o",
           str(tmp_path / "day.pcap"), "--group", "239.9.9.9", "--port", "30000")
    omsctl("feed", "replay", str(tmp_path / "day.pcap"), "-o", str(tmp_path / "b.jsonl"))
    a = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert a == b and len(a) > 5
    assert {x["symbol"] for x in a} == {"AAPL", "MSFT", "IBM"}

    # the reference book, one message at a time, publishes the same changes
    model = FeedModel(max_orders=1 << 20, max_levels=1 << 14)
    syms = ["AAPL", "MSFT", "IBM"]
    for i, s in enumerate(syms):
        model.subscribe(s, i)
    expect, last = [], {}
    units = list(mold_units(tmp_path / "day.itch.gz"))
    assert len(units) == len(msgs)
    for t, packet in units:
        model.packet(packet, t)
        for i, s in enumerate(syms):
            tob = model.tobs[i]
            key = (tob.bid_px, tob.bid_qty, tob.ask_px, tob.ask_qty, tob.stale, tob.halted)
            if last.get(s) != key:
                last[s] = key
                expect.append({"symbol": s, "bid_px": tob.bid_px, "bid_qty": tob.bid_qty,
                               "ask_px": tob.ask_px, "ask_qty": tob.ask_qty,
                               "stale": tob.stale, "halted": tob.halted})
    got = [{k: x[k] for k in expect[0]} for x in a]
    assert got == expect
    # the times and sequence numbers are the messages'
    assert a[-1]["seq"] <= len(msgs) and all(x["timestamp"] > 0 for x in a if x["seq"])


def test_a_truncated_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.itch").write_bytes(struct.pack("!H", 40) + b"A" * 10)
    r = subprocess.run([OMSCTL, "feed", "replay", str(tmp_path / "bad.itch"), "-o",
                        str(tmp_path / "x.jsonl"), "--symbols", "AAPL"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "cut short" in r.stderr
