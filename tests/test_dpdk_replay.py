"""Replay through the DPDK data plane (the core on a worker lcore behind a
DPDK ring port) gives the same frames and report as the pcap backend, and
the port's own counters show the frames went through it.  EAL starts once
per process, so each DPDK run is a subprocess of its own."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OMSCTL = Path(sys.executable).parent / "omsctl"


def dpdk_built() -> bool:
    try:
        import dataplane._oms_dpdk  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = pytest.mark.skipif(not dpdk_built(), reason="DPDK extension not built")


def replay(tmp_path: Path, backend: str, pcap: Path) -> tuple[bytes, bytes, dict]:
    out, rep = tmp_path / f"{backend}.pcap", tmp_path / f"{backend}.jsonl"
    r = subprocess.run([OMSCTL, "replay", pcap, "-o", out, "--report", rep, "--venue-sim",
                        "--verify", "--backend", backend], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    return out.read_bytes(), rep.read_bytes(), json.loads(r.stdout)


@pytest.mark.parametrize("scenario", ["brief_example", "session"])
def test_dpdk_and_pcap_backends_give_the_same_bytes(tmp_path, scenario):
    pcap = tmp_path / "orders.pcap"
    subprocess.run([OMSCTL, "pcap", "build", ROOT / f"pcaps/scenarios/{scenario}.jsonl", "-o",
                    pcap], check=True, capture_output=True)
    p_out, p_rep, p_sum = replay(tmp_path, "pcap", pcap)
    d_out, d_rep, d_sum = replay(tmp_path, "dpdk", pcap)
    assert d_out == p_out
    assert d_rep == p_rep
    # every frame the core saw came through the port, every frame it sent left by it
    assert d_sum["dpdk_port"]["ipackets"] == d_sum["events"]["FRAMES_IN"]
    assert d_sum["dpdk_port"]["opackets"] == d_sum["frames_out"] == p_sum["frames_out"]
    assert d_sum["dpdk_worker"]["tx_dropped"] == 0
    assert d_sum["dpdk_mbufs_in_use_after"] == 0
