"""The run-to-completion worker and a port that does not take its output at
once (tests/tx_wait_run.py, a subprocess: EAL once per process).  Output
that outruns the port's transmit ring waits for it instead of being
dropped; a port that takes nothing in a whole wait is stuck and costs the
worker one try per burst, not a wait, until it takes frames again - and
every frame the core built is sent or counted as dropped."""
from __future__ import annotations

import pytest
from ring_rig import run_script
from test_bench_dpdk_smoke import dpdk_available
from test_transcripts import decode_out

N = 1000

pytestmark = pytest.mark.skipif(not dpdk_available(), reason="libdpdk not found by pkg-config")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    res = run_script("tx_wait_run.py", tmp_path_factory.mktemp("txwait") / "out.json", str(N))
    for phase in ("held", "stuck", "recovered"):
        frames = [bytes.fromhex(f) for f in res[phase]]
        res[phase] = [decode_out(f) for f in frames if f[12:14] == b"\x08\x00"]
    return res


def refs(frames: list[dict]) -> list[int]:
    return [o["ref"] for o in frames if o["type"] == "O"]


def test_output_longer_than_the_ring_waits_for_the_port(run):
    st = run["held_stats"]
    assert st["tx_retries"] >= 1
    assert run["held_dropped_while_held"] == 0 and st["tx_dropped"] == 0
    assert refs(run["held"]) == list(range(1, N + 1))
    assert st["tx_frames"] == run["held_built"]


def test_a_stuck_port_costs_one_wait_and_every_frame_is_accounted_for(run):
    held, st = run["held_stats"], run["stuck_stats"]
    dropped = st["tx_dropped"] - held["tx_dropped"]
    sent = st["tx_frames"] - held["tx_frames"]
    assert dropped > 0
    assert sent + dropped == run["stuck_built"] - run["held_built"] >= 3 * N
    # the ring's room, then nothing: the first venue orders of the phase
    assert refs(run["stuck"]) == list(range(N + 1, N + 1 + len(refs(run["stuck"]))))
    # one wait of 100 ms; about 3N/32 bursts, waiting for each would take 9 s
    assert run["stuck_handled_s"] < 2.0


def test_the_port_is_used_again_once_it_takes_frames(run):
    assert len(refs(run["recovered"])) == 5
    assert run["recovered_stats"]["tx_dropped"] == run["stuck_stats"]["tx_dropped"]


def test_no_mbuf_is_left_behind(run):
    assert run["pool_in_use_after"] == run["pool_in_use_before"]
    assert not any(run["core"]["drop"].values())
