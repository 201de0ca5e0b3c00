"""Observability of the live appliance (on DPDK net_af_packet ports and on
the native AF_XDP backend, in network namespaces as the live tests run
it): a scrape during the run passes
`promtool check metrics` and counts what the strategy saw; every metric the
Grafana dashboard queries is in it; `omsctl status`, `omsctl top` and
`omsctl order show` answer over the control socket."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time

import netns
import pytest
import test_live_e2e as live
from live_run import OMSCTL, ROOT, STRATEGY_HEAD, LiveRun, report_of, stop, wait_ready
from prometheus_client.parser import text_string_to_metric_families
from test_control_socket import VENUE

why_not = netns.can_make_namespaces() or (
    None if shutil.which("promtool") else "needs promtool (Debian's prometheus package)")
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")

ORDERS, BAD_EVERY, CANCELS = 20, 5, 4

# Enters ORDERS orders (every BAD_EVERY-th with quantity 0: BAD_QTY), waits
# for every answer, cancels the first CANCELS accepted ones, waits for the
# Canceled, prints what it saw.
STRATEGY = STRATEGY_HEAD + """
def pump(until, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until():
        r, _, _ = select.select([s], [], [], 0.01)
        if r:
            take()
        out(drv.tick(time.time_ns()))
out(drv.login(time.time_ns()))
for i in range({orders}):
    qty = 0 if i % {bad_every} == {bad_every} - 1 else 100
    out(drv.new_order(time.time_ns(), 500 + i, "AAPL", 151_0000_0000, qty, account=1))
o = drv.orders
pump(lambda: all(v.state != "PendingNew" for v in o.values()), 15)
accepted = sorted(c for c, v in o.items() if v.state == "New")
for c in accepted[:{cancels}]:
    out(drv.cancel(time.time_ns(), c))
pump(lambda: all(o[c].state == "Canceled" for c in accepted[:{cancels}]), 15)
print(json.dumps({{"states": {{c: v.state for c, v in o.items()}},
                  "rejects": {{c: v.rejects for c, v in o.items() if v.rejects}}}}))
"""

SCRAPE = ("import sys, urllib.request; "
          "sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=10).read())")


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: dict, name: str, **labels) -> float:
    return m[(name, tuple(sorted(labels.items())))]


def dashboard_metrics() -> set[str]:
    dash = json.loads((ROOT / "deploy" / "grafana" / "oms-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"]]
    return {name for e in exprs for name in re.findall(r"\b(oms_[a-z0-9_]+)", e)}


# what only the DPDK backend has (the AF_XDP sockets have no mempool, rings
# or queue depth of ours)
DPDK_ONLY = {"oms_mempool_mbufs", "oms_ring_entries", "oms_ring_capacity",
             "oms_port_rx_queue_depth", "oms_port_bytes", "oms_port_rx_nombuf", "oms_tsc_hz"}


@pytest.mark.parametrize("driver", ["af_packet", "afxdp"])
def test_live_scrape_status_top_and_order_show(tmp_path, driver):
    ctl_path = str(tmp_path / "control.sock")

    def omsctl(*args, ok=True):
        r = subprocess.run([OMSCTL, *args, "--socket", ctl_path],
                           capture_output=True, text=True, timeout=20)
        assert (r.returncode == 0) == ok, r.stdout + r.stderr
        return r

    with netns.three_hosts() as h, LiveRun(h) as run:
        cfg = tmp_path / "live.yaml"
        cfg.write_text(live.config_text(h, driver)
                       + 'observability: {listen: "127.0.0.1:0"}\n')
        ready = tmp_path / "ready.json"
        app = run.appliance(cfg, ready, duration=60,
                            args=("--control-socket", ctl_path, *live.backend_args(driver)))
        run.spawn(h.venue, sys.executable, "-c", VENUE.format(root=str(ROOT), seconds=40),
                  capture=False)
        wait_ready(app, ready, written=True)
        url = json.loads(ready.read_text())["metrics"]
        assert url.startswith("http://127.0.0.1:")
        strat = subprocess.run(
            h.exec(h.strategy, sys.executable, "-c", STRATEGY.format(
                root=str(ROOT), orders=ORDERS, bad_every=BAD_EVERY, cancels=CANCELS)),
            capture_output=True, text=True, timeout=60)
        assert strat.returncode == 0, strat.stderr[-3000:]
        seen = json.loads(strat.stdout.strip().splitlines()[-1])

        scrape = subprocess.run(h.exec(h.oms, sys.executable, "-c", SCRAPE,
                                       url + "/metrics"),
                                capture_output=True, timeout=20)
        assert scrape.returncode == 0, scrape.stderr[-2000:]
        text = scrape.stdout.decode()
        (tmp_path / "scrape.prom").write_text(text)
        chk = subprocess.run(["promtool", "check", "metrics"], input=text,
                             capture_output=True, text=True, timeout=30)
        assert chk.returncode == 0, chk.stdout + chk.stderr
        page = subprocess.run(h.exec(h.oms, sys.executable, "-c", SCRAPE, url + "/"),
                              capture_output=True, timeout=20)
        assert b"live latency" in page.stdout

        status = json.loads(omsctl("status", "--json").stdout)
        text_status = omsctl("status").stdout
        top = omsctl("top", "--count", "2", "--interval", "0.3").stdout
        canceled = min(int(c) for c, st in seen["states"].items() if st == "Canceled")
        order = json.loads(omsctl("order", "show", "1", str(canceled), "--json").stdout)
        by_token = json.loads(omsctl("order", "show", "--venue", "1", "--venue-token",
                                     str(order["order"]["ref"]), "--json").stdout)
        order_text = omsctl("order", "show", "1", str(canceled)).stdout
        missing = omsctl("order", "show", "1", "999", ok=False)
        # a reload (the same file) is the next configuration generation
        assert json.loads(omsctl("reload").stdout)["generation"] == 2
        # the worker takes it at its next burst (heartbeats come each second)
        deadline = time.monotonic() + 5
        while True:
            after_reload = json.loads(omsctl("status", "--json").stdout)
            if after_reload["config_generation"]["in_force"] == 2:
                break
            assert after_reload["config_generation"]["published"] == 2
            assert time.monotonic() < deadline, after_reload["config_generation"]
            time.sleep(0.1)
        gen2 = subprocess.run(h.exec(h.oms, sys.executable, "-c", SCRAPE,
                                     url + "/metrics"), capture_output=True, timeout=20)
        out, _ = stop(app)

    states = seen["states"]
    n_rejected = ORDERS // BAD_EVERY
    assert list(states.values()).count("Rejected") == n_rejected
    assert list(states.values()).count("Canceled") == CANCELS
    assert all(r == [[0x10, 5, 0]] for r in seen["rejects"].values())  # BAD_QTY

    # the scrape counts what the strategy saw
    m = samples(text)
    assert value(m, "oms_orders_total", type="new_order", result="accepted",
                 reason="") == ORDERS - n_rejected
    assert value(m, "oms_orders_total", type="new_order", result="rejected",
                 reason="bad_qty") == n_rejected
    assert value(m, "oms_orders_total", type="cancel", result="accepted", reason="") == CANCELS
    assert value(m, "oms_routed_orders_total", venue="1") == ORDERS - n_rejected
    for stage in ("rx_to_decision", "decision_to_tx", "in_to_out", "handle"):
        assert value(m, "oms_stage_latency_seconds_count", stage=stage) == ORDERS + CANCELS
    # enter, cancel: each answered by the venue once
    assert value(m, "oms_venue_round_trip_seconds_count", venue="1") == \
        ORDERS - n_rejected + CANCELS
    assert value(m, "oms_venue_up", venue="1") == 1
    rx = sum(v for (name, labels), v in m.items() if name == "oms_port_packets_total"
             and ("direction", "rx") in labels)
    assert rx >= 1 + ORDERS + CANCELS  # login, orders, cancels at least
    assert any(name == "oms_port_xstats_total" for name, _ in m)
    if driver == "af_packet":
        assert value(m, "oms_mempool_mbufs", pool="oms_pool", state="size") > 0
        # both veths are up, at the MTU the configuration's default asks
        assert [v for (name, _), v in m.items() if name == "oms_port_link_up"] == [1, 1]
        assert [v for (name, _), v in m.items() if name == "oms_port_mtu"] == [1500, 1500]
    assert value(m, "oms_kill_switch_engaged", account="1") == 0
    # every metric the Grafana dashboard queries is in the scrape
    names = {name for name, _ in m}
    families = names | {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in names}
    expected = dashboard_metrics() - (set() if driver == "af_packet" else DPDK_ONLY)
    assert expected - families == set()

    # omsctl status: the same counts, one shot
    assert status["orders"] == {"new_order": ORDERS, "modify": 0, "cancel": CANCELS,
                                "mass_cancel": 0}
    assert status["rejects"] == {"business": {"BAD_QTY": n_rejected}, "system": {}}
    assert status["latency_ns"]["in_to_out"]["count"] == ORDERS + CANCELS
    assert 0 < status["latency_ns"]["handle"]["p50"] <= status["latency_ns"]["in_to_out"]["p99"]
    assert status["venues"][0]["up"] and status["venues"][0]["routed"] == ORDERS - n_rejected
    assert status["sessions"][0]["logged_in"]
    assert status["config_generation"] == {"in_force": 1, "published": 1}
    assert status["kill"] == {"1": False}
    assert value(m, "oms_config_generation", state="in_force") == 1
    m2 = samples(gen2.stdout.decode())
    assert value(m2, "oms_config_generation", state="in_force") == 2
    assert value(m2, "oms_config_generation", state="published") == 2
    assert "venue 1 rtt" in text_status and "rejects (business): BAD_QTY 4" in text_status
    if driver == "af_packet":
        assert "net_af_packet  link up" in text_status and "MTU 1500  RX queues 1" in text_status
    assert top.count("uptime") == 2 and "/s)" in top
    # omsctl order show: every transition in order, by cl_ord_id or venue token
    assert order["order"]["state"] == "Canceled" and order["order"]["cl_ord_id"] == canceled
    assert [t["state"] for t in order["transitions"]] == \
        ["PendingNew", "New", "PendingCancel", "Canceled"]
    ts = [t["ts_ns"] for t in order["transitions"]]
    assert ts == sorted(ts) and ts[0] > 0
    assert [v["message"] for v in order["venue_messages"]] == [
        "Enter Order sent", "Order Accepted received", "Cancel Order sent",
        "Order Canceled received"]
    assert by_token["order"] == order["order"]
    assert "PendingCancel" in order_text and "journal" in order_text
    assert "no such order" in missing.stdout + missing.stderr
    report = report_of(out)
    assert report["worker"]["commands"] >= 4  # status snapshots and the order copies
