"""A sharded worker whose I/O lcore stops draining (tests/out_ring_run.py, a
subprocess: EAL once per process).  While the I/O lcore lags - here 200 ms,
the out ring full - the worker waits and loses nothing: every NewOrder's
venue order comes out once the ring is drained, and the wait is counted.
Only an I/O lcore silent for longer than the worker's bound (500 ms) costs
frames, and every frame the core built is then either sent or counted as
dropped."""
from __future__ import annotations

import pytest
from ring_rig import run_script
from test_bench_dpdk_smoke import dpdk_available
from test_transcripts import decode_out

N = 100

pytestmark = pytest.mark.skipif(not dpdk_available(), reason="libdpdk not found by pkg-config")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    res = run_script("out_ring_run.py", tmp_path_factory.mktemp("outwait") / "out.json", str(N))
    for phase in ("held", "failed"):
        res[phase] = [decode_out(bytes.fromhex(f)) for f in res[phase]]
    return res


def test_a_lagging_io_lcore_costs_nothing(run):
    st = run["held_stats"]
    assert st["out_ring_waits"] >= 1
    assert run["held_dropped_while_held"] == 0 and st["tx_dropped"] == 0
    orders = [o for o in run["held"] if o["type"] == "O"]
    assert [o["ref"] for o in orders] == list(range(1, N + 1))
    assert st["tx_frames"] == len(run["held"]) == run["held_core"]["event"]["FRAMES_OUT"]


def test_a_silent_io_lcore_loses_only_what_is_counted(run):
    held, failed = run["held_stats"], run["failed_stats"]
    dropped = failed["tx_dropped"] - held["tx_dropped"]
    sent = failed["tx_frames"] - held["tx_frames"]
    built = run["failed_core"]["event"]["FRAMES_OUT"] - run["held_core"]["event"]["FRAMES_OUT"]
    assert dropped > 0
    assert sent == len(run["failed"])
    assert sent + dropped == built >= N


def test_no_mbuf_is_left_behind(run):
    assert run["pool_in_use_after"] == run["pool_in_use_before"]
    assert not any(run["core"]["drop"].values())
