"""Typed mode's lanes on DPDK lcores (tests/typed_ring_run.py, a subprocess:
EAL once per process): with 200 normal NewOrders queued ahead of it, a
Cancel reaches the venue first; a Cancel of a NewOrder still queued takes it
back (Canceled to the strategy, nothing to the venue); a Modify that went
through its own worker is still applied after its NewOrder; every frame
went through the lane of its type."""
from __future__ import annotations

import pytest
from ring_rig import run_script
from test_bench_dpdk_smoke import dpdk_available
from test_transcripts import decode_out

N = 200

pytestmark = pytest.mark.skipif(not dpdk_available(), reason="libdpdk not found by pkg-config")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    res = run_script("typed_ring_run.py", tmp_path_factory.mktemp("typed") / "out.json", str(N))
    for step in ("start", "queued_burst"):
        # the I/O lcore's gratuitous ARP at start aside
        frames = [bytes.fromhex(f) for f in res[step]]
        res[step] = [decode_out(f) for f in frames if f[12:14] == b"\x08\x00"]
        res[step] = [o for o in res[step] if o["type"] not in ("Heartbeat", "Request")]
    return res


def test_everything_was_queued_before_the_placement_worker_ran(run):
    assert run["queued"] == N + 5


def test_a_cancel_behind_queued_normal_orders_reaches_the_venue_first(run):
    start = run["start"]
    assert [o["type"] for o in start] == ["LoginAccepted", "O"]
    ref1 = start[1]["ref"]
    out = run["queued_burst"]
    assert out[0]["to"] == "venue" and out[0]["type"] == "X" and out[0]["ref"] == ref1
    enters = [o for o in out if o["type"] == "O"]
    # the 200 queued orders and order 6, in the order they were sent
    assert len(enters) == N + 1
    assert [o["ref"] for o in enters] == sorted(o["ref"] for o in enters)
    assert out.index(enters[0]) > 0


def test_a_cancel_of_a_queued_order_takes_it_back(run):
    out = run["queued_burst"]
    canceled = [o for o in out if o["type"] == "Canceled"]
    assert [(c["cl_ord_id"], c["canceled_qty"], c["leaves_qty"]) for c in canceled] == \
        [(5, 100, 0)]
    # it came before any normal order, and order 5 never went to the venue
    assert out.index(canceled[0]) == 1
    assert run["stats"]["event"]["QUEUED_CANCELS"] == 1
    assert run["stats"]["event"]["ORDERS_ACCEPTED_INTERNAL"] == 1 + N + 1


def test_a_modify_through_its_worker_stays_behind_its_new_order(run):
    out = run["queued_burst"]
    # order 6 entered, then its Modify handled: PendingNew, so ORDER_PENDING
    # - what run to completion answers; never UNKNOWN_ORDER
    assert out[-1]["type"] == "Rejected" and out[-1]["cl_ord_id"] == 6
    assert out[-1]["reason"] == 13 and out[-1]["ref_type"] == 0x11
    assert out[-2]["type"] == "O"


def test_each_kind_went_through_its_lane_and_nothing_is_left(run):
    rep = run["report"]
    assert rep["lanes_in"] == {"normal": 2 + N + 2, "high": 0, "modify": 1, "cancel": 2}
    assert rep["lanes_taken"] == rep["lanes_in"] and rep["in_flight"] == 0
    for name, n in (("modify", 1), ("cancel", 2)):
        assert rep["checkers"][name]["frames"] == rep["checkers"][name]["well_formed"] == n
    assert run["stats"]["reject_system"] == {}
