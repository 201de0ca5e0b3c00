"""Replay through the DPDK data plane - the capture read by a net_pcap port
on a worker lcore, venue answers and output through a ring port - gives the
same frames and report as the pcap backend, and the ports' own counters
show the frames went through them.  EAL starts once per process, so each
DPDK run is a subprocess of its own."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataplane.pcap_backend import read_pcap

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "pcaps" / "golden"
OMSCTL = Path(sys.executable).parent / "omsctl"
T0 = 1638247400_000_000_000


def dpdk_built() -> bool:
    try:
        import dataplane._oms_dpdk  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = pytest.mark.skipif(not dpdk_built(), reason="DPDK extension not built")


def replay(tmp_path: Path, backend: str, pcap: Path, *extra: str) -> tuple[bytes, bytes, dict]:
    out, rep = tmp_path / f"{backend}.pcap", tmp_path / f"{backend}.jsonl"
    r = subprocess.run([OMSCTL, "replay", pcap, "-o", out, "--report", rep, "--verify",
                        "--backend", backend, *extra], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    return out.read_bytes(), rep.read_bytes(), json.loads(r.stdout)


def build(tmp_path: Path, lines: list[dict] | Path) -> Path:
    if isinstance(lines, list):
        src = tmp_path / "scenario.jsonl"
        src.write_text("".join(json.dumps(d) + "\n" for d in lines))
    else:
        src = lines
    pcap = tmp_path / "orders.pcap"
    subprocess.run([OMSCTL, "pcap", "build", src, "-o", pcap], check=True, capture_output=True)
    return pcap


def bursts_and_timers() -> list[dict]:
    """110 orders at one instant (more than a port's burst, across two
    sessions), cancels later, a venue heartbeat at an odd time whose timeout
    falls between capture frames, and junk ten seconds on."""
    lines = [{"timestamp_ns": T0 + 5000, "session": 1 + (i >= 70), "order_id": 100 + i,
              "symbol": "AAPL" if i < 70 else "MSFT", "price": 150.25, "volume": 100}
             for i in range(110)]
    lines.append({"timestamp_ns": T0 + 1_234_567_000, "venue": 1, "venue_msg": "heartbeat"})
    lines += [{"timestamp_ns": T0 + 1_500_000_007, "session": 1, "action": "cancel",
               "order_id": 100 + i} for i in range(5)]
    lines.append({"timestamp_ns": T0 + 10_000_000_123, "action": "junk", "kind": "random"})
    return lines


def assert_same(tmp_path: Path, pcap: Path, *extra: str) -> dict:
    p_out, p_rep, p_sum = replay(tmp_path, "pcap", pcap, *extra)
    d_out, d_rep, d_sum = replay(tmp_path, "dpdk", pcap, *extra)
    assert d_out == p_out
    assert d_rep == p_rep
    assert d_sum["verified_against_reference_model"] is True
    ports, loop = d_sum["dpdk_ports"], d_sum["dpdk_replay_loop"]
    # every frame of the capture came through the net_pcap port, every
    # answer and every frame sent through the ring port
    assert ports["capture"]["ipackets"] == len(read_pcap(pcap)) == loop["capture_frames"]
    assert ports["venue"]["ipackets"] == loop["answer_frames"]
    assert (ports["capture"]["ipackets"] + ports["venue"]["ipackets"]
            == d_sum["events"]["FRAMES_IN"])
    assert ports["venue"]["opackets"] == d_sum["frames_out"] == p_sum["frames_out"]
    assert loop["tx_dropped"] == loop["stuck_timers"] == loop["time_backwards"] == 0
    assert d_sum["dpdk_mbufs_in_use_after"] == 0
    return d_sum


def test_golden_capture_read_as_is_gives_the_golden_output(tmp_path):
    pcap = GOLDEN / "brief_example.orders.pcap"
    assert_same(tmp_path, pcap, "--venue-sim")
    assert (tmp_path / "dpdk.pcap").read_bytes() == (GOLDEN / "brief_example.out.pcap").read_bytes()
    assert (tmp_path / "dpdk.jsonl").read_bytes() == (
        GOLDEN / "brief_example.report.jsonl").read_bytes()


@pytest.mark.parametrize("venue_sim", [True, False])
def test_bursts_larger_than_a_port_burst_and_timer_only_calls(tmp_path, venue_sim):
    pcap = build(tmp_path, bursts_and_timers())
    d_sum = assert_same(tmp_path, pcap, *(["--venue-sim"] if venue_sim else []))
    loop = d_sum["dpdk_replay_loop"]
    # 110 frames at one instant: more calls than bursts of 32 could hide
    assert loop["calls"] >= 4
    if not venue_sim:
        # nothing answers the venue: its timeout fires between capture frames
        assert loop["timer_calls"] >= 1
        assert d_sum["events"]["VENUE_TIMEOUTS"] >= 1


@pytest.mark.parametrize("change, reason", [
    ("unsorted", "frame 1 is older than frame 0"),
    ("jumbo", "frame 3 has 3000 bytes"),
])
def test_captures_net_pcap_cannot_replay_are_refused_with_the_reason(tmp_path, change, reason):
    from dataplane.pcap_backend import write_pcap

    records = read_pcap(GOLDEN / "brief_example.orders.pcap")
    if change == "unsorted":
        records = [records[-1], *records[:-1]]
    else:
        records[3] = (records[3][0], records[3][1].ljust(3000, b"\0"))
    pcap = tmp_path / f"{change}.pcap"
    write_pcap(pcap, records)
    r = subprocess.run([OMSCTL, "replay", pcap, "-o", tmp_path / "o.pcap", "--backend", "dpdk"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert reason in r.stderr and "--backend pcap" in r.stderr
    assert not (tmp_path / "o.pcap").exists()


def test_the_main_job_replays_the_bundled_scenario_through_net_pcap(tmp_path):
    """`omsctl run` without a configuration (the README's first command):
    the bundled scenario, whose times have nanoseconds (net_pcap reads a
    dilated copy), through the net_pcap port, checked by the model, and the
    same bytes as the pcap backend."""
    r = subprocess.run([OMSCTL, "run", "--outdir", tmp_path], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "net_pcap port" in r.stdout
    d_sum = json.loads(r.stdout[r.stdout.index("{"):])
    assert d_sum["backend"] == "dpdk" and d_sum["verified_against_reference_model"]
    pcap = tmp_path / "orders.pcap"
    records = read_pcap(pcap)
    assert any(ts % 1000 for ts, _ in records)
    p_out, p_rep, p_sum = replay(tmp_path, "pcap", pcap, "--venue-sim")
    assert (tmp_path / "out.pcap").read_bytes() == p_out
    assert (tmp_path / "report.jsonl").read_bytes() == p_rep
    ports = d_sum["dpdk_ports"]
    assert ports["capture"]["ipackets"] == len(records) == d_sum["frames_in"]
    assert ports["capture"]["ipackets"] + ports["venue"]["ipackets"] == d_sum["events"]["FRAMES_IN"]
    assert ports["venue"]["ipackets"] > 1000  # the venue simulator's answers
    assert ports["venue"]["opackets"] == d_sum["frames_out"] == p_sum["frames_out"]
    assert d_sum["dpdk_mbufs_in_use_after"] == 0
