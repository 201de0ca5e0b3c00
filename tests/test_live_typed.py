"""Typed mode, live (docs/dataplane.md "Threading"): the I/O lcore sorts the
strategy's frames into lanes by type - Modifies through the modification
worker, Cancels through the cancellation worker - and the placement worker's
core takes them back in arrival order.  Five lcores time-share the two CPUs
(with the idle back-off).  The strategy runs the mixed plan (fills, IOC
expiries, modifies, cancels) over kernel UDP: every order ends as it must,
the appliance and the venue agree, each lane carried its kind, the checking
workers found every frame well formed, and nothing is left in flight."""
from __future__ import annotations

import json
import time

import netns
import pytest
import test_live_e2e as live
from live_run import LiveRun, report_of, stop, wait_ready

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")

ORDERS = 60
FIRST_ID = 1000


def config_text(h: netns.Hosts) -> str:
    text = live.config_text(h, "af_packet")
    assert 'lcores: "0,1"' in text
    # main 0@0; I/O, placement, modification, cancellation time-share the
    # two CPUs, with the idle back-off, as the configuration says it means
    return text.replace('lcores: "0,1"', 'lcores: "0@0,1@1,2@0,3@1,4@0"') + \
        "  threading: {mode: typed}\n  allow_shared_cpus: true\n"


def test_typed_lanes_carry_the_mixed_plan_end_to_end(tmp_path):
    with netns.three_hosts() as h, LiveRun(h) as run:
        cfg = tmp_path / "typed.yaml"
        cfg.write_text(config_text(h))
        ready, dump = tmp_path / "ready.json", tmp_path / "orders.json"
        app = run.appliance(cfg, ready, duration=90, args=("--dump-orders", str(dump)))
        venue = run.venue(tmp_path / "venue.json", duration=90)
        wait_ready(app, ready)
        time.sleep(0.5)
        run.run_strategy("--scenario", "mixed", "--orders", str(ORDERS), "--timeout", "30",
                         "--out", str(tmp_path / "strat.json"), timeout=45)
        out, _ = stop(app)
        stop(venue, check=False)
        report = report_of(out)
        strat = json.loads((tmp_path / "strat.json").read_text())
        ven = json.loads((tmp_path / "venue.json").read_text())
        dumped = json.loads(dump.read_text())

    assert report["threading"] == "typed"
    ids = set(range(FIRST_ID, FIRST_ID + ORDERS))
    orders = {int(k): v for k, v in strat["orders"].items()}
    assert set(orders) == ids
    assert all(o["state"] in ("Filled", "Canceled", "Expired") for o in orders.values()), orders
    assert {"Filled", "Canceled", "Expired"} <= {o["state"] for o in orders.values()}
    # the appliance holds the same orders in the same states, and the venue
    # executed what the strategy was told, each order entered once
    app_orders = {o["cl_ord_id"]: o for o in dumped}
    assert set(app_orders) == ids
    vorders = {int(k): v for k, v in ven["orders"].items()}
    for c, o in orders.items():
        a = app_orders[c]
        assert (a["state"], a["cum_qty"], a["leaves_qty"]) == \
            (o["state"], o["cum_qty"], o["leaves_qty"]), (c, a, o)
        assert vorders[c]["enters"] == 1 and vorders[c]["executed"] == o["cum_qty"], c
    assert ven["live"] == {}

    typed = report["typed"]
    lanes = typed["lanes_in"]
    # every Modify went through the modification worker, every Cancel
    # through the cancellation worker; the placement worker took them all
    sp_in = report["core"]["sp_in"]  # by type: 0x11 Modify, 0x12 Cancel
    assert lanes["modify"] == sp_in[str(0x11)] > 0
    assert lanes["cancel"] == sp_in[str(0x12)] > 0
    assert lanes["normal"] > ORDERS and lanes["high"] == 0
    assert typed["lanes_taken"] == lanes and typed["in_flight"] == 0
    for name in ("modify", "cancel"):
        k = typed["checkers"][name]
        assert k["frames"] == lanes[name] == k["well_formed"], (name, k)
        assert k["malformed"] == k["unknown_session"] == k["order_free_rejects"] == 0
    core = report["core"]
    assert core["reject_system"] == {}
    assert core["event"]["ORDERS_ACCEPTED_INTERNAL"] == ORDERS
    io = report["io"]
    assert io["to_worker"] == [sum(lanes.values())] == [core["event"]["FRAMES_IN"]]
    assert io["worker_ring_full"] == 0 and io["tx_dropped"] == 0
    assert report["live_orders"] == 0
    assert report["mbufs_in_use"] == report["mbufs_in_use_at_start"]
