"""Observability of the sharded mode (docs/dataplane.md "Threading"): two
workers, each with its own core, sessions, venues and accounts.  The
exporter merges their counters and histograms, `omsctl status` adds up
their snapshots and shows every worker's rings, and `omsctl order show`
finds an order on the worker that owns it."""
from __future__ import annotations

import json
import shutil
import subprocess

import netns
import pytest
import test_live_sharded as sharded
from live_run import OMSCTL, PY, LiveRun, report_of, stop
from test_observability_live import SCRAPE, samples, value

why_not = netns.can_make_namespaces() or (
    None if shutil.which("promtool") else "needs promtool (Debian's prometheus package)")
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


def test_sharded_metrics_status_and_order_show_span_the_workers(tmp_path):
    ctl_path = str(tmp_path / "control.sock")

    def omsctl(*args):
        r = subprocess.run([OMSCTL, *args, "--socket", ctl_path],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    with netns.three_hosts() as h, LiveRun(h) as run:
        app, _ = sharded.trade_both_sessions(
            run, tmp_path, 'observability: {listen: "127.0.0.1:0"}\n',
            args=("--control-socket", ctl_path))
        url = json.loads((tmp_path / "ready.json").read_text())["metrics"]
        scrape = subprocess.run(h.exec(h.oms, PY, "-c", SCRAPE, url + "/metrics"),
                                capture_output=True, timeout=20)
        assert scrape.returncode == 0, scrape.stderr[-2000:]
        text = scrape.stdout.decode()
        chk = subprocess.run(["promtool", "check", "metrics"], input=text,
                             capture_output=True, text=True, timeout=30)
        assert chk.returncode == 0, chk.stdout + chk.stderr
        status = json.loads(omsctl("status", "--json"))
        text_status = omsctl("status")
        order = json.loads(omsctl("order", "show", "2", "1001", "--json"))
        by_token = json.loads(omsctl("order", "show", "--venue", "2", "--venue-token",
                                     str(order["order"]["ref"]), "--json"))
        out, _ = stop(app)
    report = report_of(out)
    w0, w1 = (w["core"] for w in report["workers"])

    m = samples(text)
    # both workers' orders, merged
    assert value(m, "oms_orders_total", type="new_order", result="accepted", reason="") == 40
    handled = sum(status["orders"].values())
    assert handled == sum(w["event"]["SP_MSGS_IN"] for w in (w0, w1))
    for stage in ("rx_to_decision", "decision_to_tx", "in_to_out", "handle"):
        assert value(m, "oms_stage_latency_seconds_count", stage=stage) == handled
    # each venue lives on its own worker, and is counted there
    for v in ("1", "2"):
        assert value(m, "oms_routed_orders_total", venue=v) == 20
        assert value(m, "oms_venue_round_trip_seconds_count", venue=v) > 0
        assert value(m, "oms_venue_up", venue=v) == 1
    # the sharded mode's own queues and the I/O lcore
    for w in ("0", "1"):
        for ring in ("commands", "in", "out"):
            assert value(m, "oms_ring_capacity", ring=ring, worker=w) > 0
        assert value(m, "oms_io_to_worker_total", worker=w) > 0
    assert value(m, "oms_io_total", kind="worker_ring_full") == 0

    assert status["backend"] == "dpdk sharded" and "io" in status["lcores"]
    assert len(status["lcores"]["workers"]) == 2
    assert {s["id"]: s["worker"] for s in status["sessions"]} == {1: 0, 2: 1}
    assert status["orders"]["new_order"] == 40
    assert [v["routed"] for v in status["venues"]] == [20, 20]
    assert set(status["queues"]) >= {"command_rings", "worker_in_rings", "worker_out_rings"}
    assert "worker in rings" in text_status
    # order 1001 of session 2: worker 1's, canceled (live_peers cancels the odd ones)
    assert order["worker"] == 1 and order["order"]["state"] == "Canceled"
    assert by_token["order"] == order["order"]
