"""The ITCH scenario generator: pcaps/itch_scenarios/itch_day.jsonl becomes a
MoldUDP64 multicast pcap that, replayed through the C feed, builds the
books, trades, halt, gap and end of session the scenario describes; bad
scenarios are refused with file, line and key."""
from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from dataplane.feed import Feed
from pcaps.builder import read_pcap_ns
from pcaps.itch_gen import ScenarioError, build_frames, build_pcap
from pcaps.itch_layers import MoldHeader

ROOT = Path(__file__).resolve().parent.parent
DAY = ROOT / "pcaps" / "itch_scenarios" / "itch_day.jsonl"
D = 100_000_000  # 8-decimal fixed point


def replay(path: Path) -> tuple[Feed, dict[int, dict]]:
    f = Feed(ip="10.0.0.1", group="239.1.1.1", group_port=26400, source="10.0.0.7")
    f.subscribe("AAPL", 0)
    f.subscribe("MSFT", 1)
    seen = {}
    for t, frame in read_pcap_ns(path):
        f.process([frame], t)
        seen[t // 1_000_000] = {"AAPL": f.tob(0), "MSFT": f.tob(1)}
    return f, seen


def test_generated_day_replays_through_the_feed(tmp_path):
    pcap = tmp_path / "day.pcap"
    assert build_pcap(DAY, pcap) == 10  # 11 packet lines, one lost
    first = Ether(read_pcap_ns(pcap)[0][1])
    assert (first[IP].dst, first[IP].src, first[UDP].dport) == ("239.1.1.1", "10.0.0.7", 26400)
    assert first[Ether].dst == "01:00:5e:01:01:01"
    assert MoldHeader(bytes(first[UDP].payload)).count == 6

    f, at = replay(pcap)
    a = at[1]["AAPL"]
    assert (a["bid_px"], a["bid_qty"], a["ask_px"], a["ask_qty"]) == (
        15025 * D // 100, 100, 15026 * D // 100, 50)
    a = at[3]["AAPL"]
    assert (a["ask_px"], a["ask_qty"], a["last_px"], a["last_qty"]) == (
        15027 * D // 100, 200, 15026 * D // 100, 25)
    a = at[4]["AAPL"]
    assert (a["bid_px"], a["bid_qty"]) == (15026 * D // 100, 120)
    assert at[5]["MSFT"]["halted"] and not at[7]["MSFT"]["halted"]
    assert at[7]["MSFT"]["ask_qty"] == 0 and at[7]["MSFT"]["bid_qty"] == 500
    assert at[7]["AAPL"]["stale"] == 0
    assert at[9]["AAPL"]["stale"] == 2  # the lost packet: a gap, no server to ask
    assert at[10]["AAPL"]["stale"] == 2 | 8  # and the session ended
    ev = f.events()
    assert ev["GAPS"] == 1 and ev["GAP_MSGS"] == 1 and ev["END_OF_SESSION"] == 1
    assert ev["HEARTBEATS"] == 1 and ev["UNSUBSCRIBED"] == 1  # the IBM add: no book
    assert f.drops() == {}


@pytest.mark.parametrize("lines,where", [
    (['{"t_ms": 0, "msgs": [{"type": "A", "stock": "ZZZ"}]}'], "<memory>:1: stock"),
    (['{"feed": {"locates": {"A": 1}}}', '{"t_ms": 0, "msgs": [{"type": "A", "stock": "A", '
      '"colour": 1}]}'], "<memory>:2: colour"),
    (['{"feed": {"locates": {"A": 1}}}', '{"t_ms": 0, "msgs": [{"type": "A", "stock": "A", '
      '"price": "1.00001"}]}'], "<memory>:2: price"),
    (['{"t_ms": -1, "heartbeat": true}'], "<memory>:1: t_ms"),
    (['{"t_ms": 0, "msgs": [{"type": "?"}]}'], "<memory>:1: msgs"),
    (['{"t_ms": 0, "heartbeat": true}', '{"feed": {}}'], "<memory>:2: feed"),
])
def test_bad_scenarios_name_file_line_and_key(lines, where):
    with pytest.raises(ScenarioError, match=where):
        build_frames(lines)
