"""Live end to end: the appliance on DPDK ports over veths in its own network
namespace, a strategy and a venue in theirs, talking ordinary kernel UDP.
What the strategy receives is checked message by message, and the DPDK
ports' own counters must account for the traffic, so that no kernel
shortcut can pass."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import netns
import pytest
import wire

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
OMSCTL = str(Path(PY).parent / "omsctl")
PEERS = str(ROOT / "tests" / "live_peers.py")

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


def config_text(h: netns.Hosts, driver: str, *, session_hb: int = 500,
                session_timeout: int = 20000, venue_hb: int = 1000,
                venue_timeout: int = 20000) -> str:
    s, v, a = wire.SESSIONS[0], wire.VENUES[0], wire.APPLIANCE
    if driver == "af_packet":
        vdevs = [f"net_af_packet0,iface={h.oms_strategy_if}",
                 f"net_af_packet1,iface={h.oms_venue_if}"]
        ports = ("net_af_packet0", "net_af_packet1")
    else:
        vdevs = [f"net_af_xdp0,iface={h.oms_strategy_if}",
                 f"net_af_xdp1,iface={h.oms_venue_if}"]
        ports = ("net_af_xdp0", "net_af_xdp1")
    return f"""
appliance: {{mac: "{a.mac}", ip: {a.ip}, strategy_port: {a.strategy_port},
             venue_port: {a.venue_port}}}
sessions:
  - {{id: 1, ip: {s.ip}, port: {s.port}, mac: "{s.mac}", heartbeat_ms: {session_hb},
     timeout_ms: {session_timeout}}}
venues:
  - {{id: 1, name: NASDAQ, session: {v.session}, ip: {v.ip}, port: {v.port},
     mac: "{v.mac}", heartbeat_ms: {venue_hb}, timeout_ms: {venue_timeout}}}
routing: {{default_venue: 1}}
instruments: [{{symbol: AAPL}}, {{symbol: MSFT}}, {{symbol: SPY}}]
accounts:
  - {{id: 1, max_order_qty: 999999, max_order_notional: 1000000000, max_open_orders: 100000,
     credit_limit: 1000000000, max_position: {{AAPL: 1000000000, MSFT: 1000000000,
     SPY: 1000000000}}}}
dataplane:
  lcores: "0,1"
  vdevs: {json.dumps(vdevs)}
  ports: {{strategy: {ports[0]}, venue: {ports[1]}}}
  idle_sleep_us: 50
"""


@pytest.mark.parametrize("driver", ["af_packet", "af_xdp"])
def test_orders_flow_through_dpdk_ports_between_namespaces(tmp_path, driver):
    with netns.three_hosts() as h:
        cfg = tmp_path / "live.yaml"
        cfg.write_text(config_text(h, driver))
        ready = tmp_path / "ready.json"
        app = subprocess.Popen(h.exec(h.oms, OMSCTL, "run", "--config", str(cfg), "--duration",
                                      "60", "--ready-file", str(ready)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        venue = subprocess.Popen(h.exec(h.venue, PY, PEERS, "venue", "--duration", "60",
                                        "--out", str(tmp_path / "venue.json")),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while not ready.exists():
                assert app.poll() is None, app.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "the appliance did not start"
                time.sleep(0.05)
            time.sleep(0.5)
            if driver == "af_xdp":
                # the frames must go through the XSK, not a kernel socket
                for dev in (h.oms_strategy_if, h.oms_venue_if):
                    link = subprocess.run(["ip", "-n", h.oms, "-d", "link", "show", dev],
                                          capture_output=True, text=True).stdout
                    assert "prog/xdp" in link or "xdp" in link.split("mtu")[0] + link, link
            r = subprocess.run(h.exec(h.strategy, PY, PEERS, "strategy", "--orders", "20",
                                      "--timeout", "8", "--out", str(tmp_path / "strat.json")),
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr[-3000:]
            # SIGTERM: the appliance stops receiving, flushes, reports
            app.send_signal(signal.SIGTERM)
            out, err = app.communicate(timeout=30)
            assert app.returncode == 0, err[-3000:]
            venue.send_signal(signal.SIGTERM)
            venue.communicate(timeout=30)
        finally:
            for p in (app, venue):
                if p.poll() is None:
                    p.kill()
                    p.wait()
        report = json.loads(out.strip().splitlines()[-1])
        strat = json.loads((tmp_path / "strat.json").read_text())
        ven = json.loads((tmp_path / "venue.json").read_text())

    # the strategy's view, built from the execution reports it received in
    # sequence (its driver recovers anything lost)
    orders = {int(k): v for k, v in strat["orders"].items()}
    assert sorted(orders) == list(range(1000, 1020))
    assert {c for c, o in orders.items() if o["state"] == "Filled"} == set(range(1000, 1020, 2))
    assert {c for c, o in orders.items() if o["state"] == "Canceled"} == \
        set(range(1001, 1020, 2))
    assert all(o["cum_qty"] == 100 for c, o in orders.items() if c % 2 == 0)
    msgs = [m for m in strat["received"] if m["type"] not in
            ("Heartbeat", "RetransmitRequest", "LoginAccepted")]
    # each application message exactly once in sequence, whatever was resent
    seqs = sorted({m["seq"] for m in msgs})
    assert seqs == list(range(1, len(seqs) + 1))
    assert len([m for m in msgs if m["type"] == "Accepted"]) >= 20

    # virtual devices support no rte_flow: the software path was chosen
    assert {p["path"] for p in report["steering"].values()} == {"software"}
    core = report["core"]
    assert core["reject_system"] == {} and core["reject_business"] == {}
    assert core["event"]["ORDERS_ACCEPTED_INTERNAL"] == 20
    # every frame the core handled came in through the DPDK ports, every
    # frame it built left through them
    ports = report["ports"]
    rx = sum(p["ipackets"] for p in ports.values())
    tx = sum(p["opackets"] for p in ports.values())
    link = report["link"]
    link_rx = (link["arp_replies"] + link["arp_ignored"] + link["arp_bad"]
               + link["icmp_echo_replies"] + link["icmp_ignored"])
    assert core["event"]["FRAMES_IN"] + link_rx == rx
    assert tx == core["event"]["FRAMES_OUT"] + link["arp_replies"] + \
        link["icmp_echo_replies"] + len(ports)  # + one gratuitous ARP per port
    assert report["worker"]["tx_dropped"] == 0
    assert link["arp_replies"] >= 2  # both kernel peers resolved us through the worker
    # nothing in flight is left behind: the pool is back at its baseline.
    # AF_XDP gives sent frames' mbufs back lazily, on a later transmit, so
    # there up to a TX ring's worth (1024 descriptors) may still be out
    extra = report["mbufs_in_use"] - report["mbufs_in_use_at_start"]
    assert (extra == 0 if driver == "af_packet" else 0 <= extra <= 1024), report
    assert report["live_orders"] == 0  # every order reached a final state
    assert ven["stats"]["received"]["O"] == 20 and ven["stats"]["received"]["X"] == 10
