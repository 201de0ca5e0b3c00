"""Sharded mode, live (docs/dataplane.md "Threading"): an I/O lcore feeds two
workers through SPSC rings; worker 0 owns session 1, venue 1 and account 1,
worker 1 owns session 2, venue 2 and account 2.  Two strategies and two
venues talk kernel UDP from their namespaces.  Each worker's core sees only
its own traffic, orders flow end to end on both, the I/O lcore's counters
account for every frame, and nothing is left in flight.  (That a worker
rejects another worker's account: tests/test_sharding.py.)"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import netns
import pytest
import wire
from live_run import LiveRun, report_of, stop, wait_ready

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


def config_text(h: netns.Hosts) -> str:
    a = wire.APPLIANCE
    # the second session and venue share the first's host, so its MAC
    smac, vmac = wire.SESSIONS[0].mac, wire.VENUES[0].mac
    sessions = "\n".join(
        f'  - {{id: {s.id}, ip: {s.ip}, port: {s.port}, mac: "{smac}", heartbeat_ms: 500,'
        f" timeout_ms: 20000}}" for s in wire.SESSIONS[:2])
    venues = "\n".join(
        f"  - {{id: {v.id}, name: {v.name}, session: {v.session}, ip: {v.ip}, port: {v.port},"
        f' mac: "{vmac}", heartbeat_ms: 1000, timeout_ms: 20000}}' for v in wire.VENUES)
    return f"""
appliance: {{mac: "{a.mac}", ip: {a.ip}, strategy_port: {a.strategy_port},
             venue_port: {a.venue_port}}}
sessions:
{sessions}
venues:
{venues}
routing: {{default_venue: 1}}
instruments: [{{symbol: AAPL}}, {{symbol: MSFT}}, {{symbol: SPY}}]
risk:
  account_defaults: {{max_order_qty: 999999, max_order_notional: 1000000000,
                     max_open_orders: 100000, credit_limit: 1000000000,
                     max_position: {{AAPL: 1000000000, MSFT: 1000000000, SPY: 1000000000}}}}
accounts: [{{id: 1}}, {{id: 2}}]
dataplane:
  lcores: "0@0,1@1,2@0,3@1"
  vdevs: ["net_af_packet0,iface={h.oms_strategy_if}", "net_af_packet1,iface={h.oms_venue_if}"]
  ports: {{strategy: net_af_packet0, venue: net_af_packet1}}
  idle_sleep_us: 50
  threading:
    mode: sharded
    workers:
      - {{sessions: [1], venues: [1], accounts: [1]}}
      - {{sessions: [2], venues: [2], accounts: [2]}}
"""


def second_hosts(h: netns.Hosts) -> None:
    """Session 2 and venue 2 live on the same hosts as session 1 and venue
    1, at a second address."""
    for ns, dev, ip in ((h.strategy, f"{h.prefix}s0", wire.SESSIONS[1].ip),
                        (h.venue, f"{h.prefix}v0", wire.VENUES[1].ip)):
        netns.run("ip", "-n", ns, "addr", "add", f"{ip}/16", "dev", dev)


def trade_both_sessions(run: LiveRun, tmp_path: Path, extra_config: str = "",
                        args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, list]:
    """The sharded appliance (its ready file written) and both venues, then
    both strategies to their end; the appliance and the venues are left
    running."""
    second_hosts(run.h)
    cfg = tmp_path / "sharded.yaml"
    cfg.write_text(config_text(run.h) + extra_config)
    ready = tmp_path / "ready.json"
    app = run.appliance(cfg, ready, duration=60, args=args)
    venues = [run.venue(tmp_path / f"venue{i}.json", duration=60, args=("--index", str(i)))
              for i in (0, 1)]
    wait_ready(app, ready, written=True)
    time.sleep(0.5)
    # session 1 trades account 1 (its worker's), session 2 account 2
    strats = [run.strategy("--index", str(i), "--account", str(acct), "--orders", "20",
                           "--timeout", "15", "--out", str(tmp_path / f"strat{i}.json"))
              for i, acct in ((0, 1), (1, 2))]
    for s in strats:
        _, err = s.communicate(timeout=40)
        assert s.returncode == 0, err[-3000:]
    return app, venues


def test_two_workers_each_own_their_sessions_venues_and_accounts(tmp_path):
    with netns.three_hosts() as h, LiveRun(h) as run:
        app, venues = trade_both_sessions(run, tmp_path)
        out, _ = stop(app)
        for v in venues:
            stop(v, check=False)
        report = report_of(out)
        results = [json.loads((tmp_path / f"strat{i}.json").read_text()) for i in (0, 1)]
        ledgers = [json.loads((tmp_path / f"venue{i}.json").read_text()) for i in (0, 1)]

    assert report["threading"] == "sharded"
    for i, res in enumerate(results):
        orders = {int(k): v for k, v in res["orders"].items()}
        assert sorted(orders) == list(range(1000, 1020)), i
        assert {c for c, o in orders.items() if o["state"] == "Filled"} == \
            set(range(1000, 1020, 2)), (i, orders)
        assert {c for c, o in orders.items() if o["state"] == "Canceled"} == \
            set(range(1001, 1020, 2)), i
    # each worker's core handled its own session and venue only
    w0, w1 = (w["core"] for w in report["workers"])
    for core in (w0, w1):
        assert core["event"]["ORDERS_ACCEPTED_INTERNAL"] == 20
        assert core["event"]["LOGINS"] == 1
        assert core["reject_system"] == {} and core["reject_business"] == {}
    assert len(ledgers[0]["orders"]) == len(ledgers[1]["orders"]) == 20
    # the I/O lcore: every frame received went to a worker or was ARP/ICMP
    io = report["io"]
    link = report["link"]
    link_rx = (link["arp_replies"] + link["arp_ignored"] + link["arp_bad"]
               + link["icmp_echo_replies"] + link["icmp_ignored"])
    assert io["rx_frames"] == sum(io["to_worker"]) + link_rx
    assert io["to_worker"] == [w0["event"]["FRAMES_IN"], w1["event"]["FRAMES_IN"]]
    assert io["worker_ring_full"] == 0 and io["tx_dropped"] == 0
    assert io["tx_frames"] == report["core"]["event"]["FRAMES_OUT"] + link["arp_replies"] + \
        link["icmp_echo_replies"] + len(report["ports"])  # + one gratuitous ARP per port
    assert report["live_orders"] == 0
    assert report["mbufs_in_use"] == report["mbufs_in_use_at_start"]
