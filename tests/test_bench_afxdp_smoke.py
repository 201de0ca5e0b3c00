"""The AF_XDP benchmark runs small in every test run, so it cannot rot: the
appliance on the native backend in namespaces, a strategy sending orders
as fast as it can over kernel UDP, a venue that sinks.  Every order must
leave for the venue, with nothing dropped by the kernel at the XDP socket
and no system reject; the full figures live in bench/results/."""
from __future__ import annotations

import sys
from pathlib import Path

import netns
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import run_afxdp_bench  # noqa: E402

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


def test_afxdp_bench_smoke(tmp_path):
    r = run_afxdp_bench.run_once(2000, 4, 50, tmp_path)
    assert r["orders_out"] == r["accepted"] == 2000
    assert r["datagrams"] == 500 and r["sender_refused"] == 0
    assert r["kernel_rx_dropped"] == 0 and r["reject_system"] == {}
    assert r["orders_per_s"] > 0
    assert all(p["tx_full"] == 0 for p in r["xsk"].values())
