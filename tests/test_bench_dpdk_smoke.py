"""The DPDK benchmark runs small in every test run, so it cannot rot: built
with pkg-config's libdpdk, EAL on two lcores, on ordinary pages and on
hugepages as deployed, the null pipeline, the core alone and the full
pipeline on the generator's traffic, then paced runs.  Every frame offered
must be received, every frame to send sent and drained, with no system
reject; the full figures live in bench/results/."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import run_dpdk_bench  # noqa: E402


def dpdk_available() -> bool:
    return shutil.which("pkg-config") is not None and subprocess.run(
        ["pkg-config", "--exists", "libdpdk"]).returncode == 0


pytestmark = pytest.mark.skipif(not dpdk_available(), reason="libdpdk not found by pkg-config")


def test_the_eal_memory_arguments():
    assert "--no-huge" in run_dpdk_bench.eal_args(512, huge=False)
    huge = run_dpdk_bench.eal_args(1024, huge=True)
    assert "--no-huge" not in huge and "--in-memory" in huge
    assert huge[huge.index("-m") + 1] == "1024"
    assert run_dpdk_bench.memory_mb(4096) == 512 and run_dpdk_bench.memory_mb(8192) == 1024


def test_dpdk_bench_smoke():
    assert run_smoke([])["eal_hugepages"] == "0"


def test_dpdk_bench_smoke_on_hugepages(hugepages):
    fig = run_smoke(["--hugepages", "yes"])
    # EAL itself says its memory is on hugepages
    assert fig["eal_hugepages"] == "1"
    assert fig["hugepages"] == "pass" and fig["memory"].startswith("DPDK_memory_on_2_MiB")


def test_hugepages_used_when_enough_are_free_or_asked_for(monkeypatch):
    monkeypatch.setattr(run_dpdk_bench, "hugepages_free_mb", lambda: 1000)
    assert run_dpdk_bench.use_hugepages("auto", 512)
    assert not run_dpdk_bench.use_hugepages("auto", 1024)
    assert not run_dpdk_bench.use_hugepages("no", 512)
    with pytest.raises(SystemExit, match=r"1024 MiB of hugepages wanted, 1000 free "
                       r"\(bash deploy/hugepages.sh 512\)"):
        run_dpdk_bench.use_hugepages("yes", 1024)


def run_smoke(extra: list[str]) -> dict:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "bench/run_dpdk_bench.py", "--smoke", *extra], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert elapsed < 60
    fig = dict(line.split(maxsplit=1) for line in r.stdout.splitlines())
    runs = ["null", "core", "full", "r250000_full", "r250000_null", "r1000000_full",
            "r1000000_null"]
    for p in runs:
        if p != "core":
            # offered == received by the worker == (null: transmitted) and the
            # port's counters agree; nothing missed, dropped or left over
            assert int(fig[f"{p}_loss"]) == 0, p
            assert int(fig[f"{p}_frames"]) == int(fig[f"{p}_worker_rx"]) == int(
                fig[f"{p}_port_ipackets"]), p
            assert int(fig[f"{p}_worker_tx"]) == int(fig[f"{p}_drained"]) == int(
                fig[f"{p}_port_opackets"]), p
            assert int(fig[f"{p}_rx_missed"]) == 0 and int(fig[f"{p}_tx_dropped"]) == 0, p
            assert int(fig[f"{p}_port_imissed"]) == 0 and int(fig[f"{p}_port_oerrors"]) == 0, p
        if not p.endswith("null"):
            assert int(fig[f"{p}_system_rejects"]) == 0, p
            assert int(fig[f"{p}_drops"]) == 0, p
            # everything the core produced went out
            assert int(fig[f"{p}_frames_out"]) > 0, p
            if p != "core":
                assert int(fig[f"{p}_frames_out"]) == int(fig[f"{p}_worker_tx"]), p
    assert int(fig["full_orders"]) == int(fig["core_orders"]) == 20_000
    assert int(fig["problems"]) == 0
    for k in ["null_orders_per_s_median", "core_orders_per_s_median",
              "full_orders_per_s_median", "ratio_full_to_core", "r1000000_full_lat_order_p99_ns"]:
        assert float(fig[k]) > 0, k
    assert fig["gate_zero_loss"] == "pass" and fig["gate_zero_system_rejects"] == "pass"
    # the typed mode (five lcores, time-shared here): the I/O lcore sorted
    # the generator's Modifies and Cancels into their workers' lanes, the
    # checkers found them well formed, and the placement worker's core
    # carried the traffic as the full pipeline did, frame for frame
    for p in ("sharded", "typed"):
        assert int(fig[f"{p}_loss"]) == 0 and int(fig[f"{p}_drops"]) == 0, p
        assert int(fig[f"{p}_system_rejects"]) == 0, p
    assert int(fig["typed_frames_out"]) == int(fig["full_frames_out"])
    assert int(fig["typed_lane_modify"]) > 0 and int(fig["typed_lane_cancel"]) > 0
    assert int(fig["typed_checked"]) == int(fig["typed_lane_modify"]) + int(
        fig["typed_lane_cancel"])
    assert fig["typed_label"] == "time-shared,_not_representative" or \
        int(fig["typed_time_shared"]) == 0
    return fig
