"""Live market data and smart routing: the appliance in its namespace on
DPDK ports (net_af_packet) or the native AF_XDP backend, a venue that
publishes its ITCH feed by multicast and answers orders, and a strategy
whose orders name no venue.  The worker splits the feed off its bursts
(docs/market-data.md "Wiring"), the router reads the book and sends every
order to the venue whose ask it saw, and the report explains each one.
The run is journaled: the feed's frames are MARKET records, and the
journal replayed into a fresh core with fresh feeds routes every order
the same way (docs/durability.md "Market data")."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import netns
import pytest
from live_run import PEERS, PY, LiveRun, report_of, stop, wait_ready
from test_live_e2e import backend_args, config_text

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")

MARKET = """
market_data:
  symbols: [AAPL]
  stale_after_ms: 60000
  subscriptions:
    - {venue: 1, group: 239.1.1.1, port: 26400}
"""


@pytest.mark.parametrize("driver", ["af_packet", "afxdp"])
def test_orders_are_routed_by_the_live_feed(tmp_path, driver):
    with netns.three_hosts() as h:
        cfg = tmp_path / "live.yaml"
        text = config_text(h, driver).replace("routing: {default_venue: 1}",
                                              "routing: {default_venue: sor}")
        journal = tmp_path / "j.oms"
        cfg.write_text(text + MARKET + f"journal: {{path: {journal}, durability: none}}\n")
        ready = tmp_path / "ready.json"
        # the venue and the feed are stopped on the way out, SIGTERM first
        with LiveRun(h, grace=10) as run:
            app = run.appliance(cfg, ready, duration=60, args=backend_args(driver))
            wait_ready(app, ready)
            run.venue(tmp_path / "venue.json", duration=60)
            run.spawn(h.venue, PY, PEERS, "feed", "--duration", "30", "--ask", "150.50")
            time.sleep(1.0)
            run.run_strategy("--orders", "10", "--timeout", "8", "--out",
                             str(tmp_path / "strat.json"), timeout=30)
            out, _ = stop(app)
        report = report_of(out)
        strat = json.loads((tmp_path / "strat.json").read_text())

    orders = {int(k): v for k, v in strat["orders"].items()}
    assert sorted(orders) == list(range(1000, 1010))
    assert all(o["state"] in ("Filled", "Canceled") for o in orders.values()), orders
    md = report["market_data"]
    assert md["to_feed"] >= 2 and md["filtered"] == 0
    routes = report["route_decisions"]
    assert sorted(r["cl_ord_id"] for r in routes) == list(range(1000, 1010))
    for r in routes:
        assert r["venue"] == 1
        assert r["seen"] == [{"venue": 1, "px": 150_5000_0000, "qty": 5000,
                              "cost": 0, "rtt_ewma_ns": r["seen"][0]["rtt_ewma_ns"],
                              "verdict": "chosen"}]
    assert report["core"]["event"]["ORDERS_ROUTED"] == 10
    assert report["core"]["reject_business"] == {}
    # the journal holds the feed; replayed, it routes the same orders alike
    r = subprocess.run([PY, "-m", "control.cli", "journal", "replay", str(journal)],
                       cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout)
    assert rep["journal"]["markets"] > 0 and rep["journal"]["markets_skipped"] == 0
    assert rep["journal"]["market_frames"] == md["to_feed"]
    assert rep["route_decisions"] == 10
    assert rep["core"]["event"]["ORDERS_ROUTED"] == 10
    assert rep["core"]["reject_business"] == {}
