"""Live end to end: the appliance on DPDK ports (net_af_packet, net_af_xdp)
or on the native AF_XDP backend over veths in its own network namespace, a
strategy and a venue in theirs, talking ordinary kernel UDP.  What the
strategy receives is checked message by message, and the ports' (or XDP
sockets') own counters must account for the traffic, so that no kernel
shortcut can pass."""
from __future__ import annotations

import json
import subprocess
import time

import netns
import pytest
import wire
from conftest import HUGETLBFS
from live_run import OMSCTL, PEERS, PY, LiveRun, report_of, stop, wait_ready

from dataplane.diagnose import hugepages_free_mb

# other live tests take these from here
__all__ = ["OMSCTL", "PEERS", "PY", "backend_args", "config_text"]

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


def config_text(h: netns.Hosts, driver: str, *, session_hb: int = 500,
                session_timeout: int = 20000, venue_hb: int = 1000,
                venue_timeout: int = 20000, hugepages: bool = False) -> str:
    s, v, a = wire.SESSIONS[0], wire.VENUES[0], wire.APPLIANCE
    if driver == "afxdp":
        # the native backend: no DPDK, no EAL
        dataplane = f"""
  afxdp: {{strategy_iface: {h.oms_strategy_if}, venue_iface: {h.oms_venue_if}}}
  idle_sleep_us: 50
"""
    elif driver == "af_packet":
        vdevs = [f"net_af_packet0,iface={h.oms_strategy_if}",
                 f"net_af_packet1,iface={h.oms_venue_if}"]
        ports = ("net_af_packet0", "net_af_packet1")
    else:
        vdevs = [f"net_af_xdp0,iface={h.oms_strategy_if}",
                 f"net_af_xdp1,iface={h.oms_venue_if}"]
        ports = ("net_af_xdp0", "net_af_xdp1")
    if driver != "afxdp":
        dataplane = f"""
  lcores: "0,1"
  vdevs: {json.dumps(vdevs)}
  ports: {{strategy: {ports[0]}, venue: {ports[1]}}}
  idle_sleep_us: 50
  hugepages: {json.dumps(hugepages)}
"""
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
dataplane:{dataplane}"""


def xdp_prog(h: netns.Hosts, dev: str) -> dict | None:
    """The XDP program attached to the appliance's `dev`, as iproute2 sees it."""
    out = subprocess.run(["ip", "-n", h.oms, "-j", "-d", "link", "show", "dev", dev],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0].get("xdp")


def backend_args(driver: str) -> list[str]:
    return ["--backend", "afxdp"] if driver == "afxdp" else []


def hugepage_files() -> list[str]:
    return sorted(p.name for p in HUGETLBFS.glob("oms*map_*")) if HUGETLBFS.is_dir() else []


@pytest.mark.parametrize(("driver", "huge"), [("af_packet", False), ("af_xdp", False),
                                              ("afxdp", False), ("af_packet", True)],
                         ids=["af_packet", "af_xdp", "afxdp", "af_packet-hugepages"])
def test_orders_flow_through_the_appliance_between_namespaces(tmp_path, request, driver, huge):
    if huge:  # as deployed: DPDK's memory on hugepages (deploy/hugepages.sh)
        request.getfixturevalue("hugepages")
        free_before, files_before = hugepages_free_mb(), hugepage_files()
    with netns.three_hosts() as h, LiveRun(h) as run:
        cfg = tmp_path / "live.yaml"
        cfg.write_text(config_text(h, driver, hugepages=huge))
        ready = tmp_path / "ready.json"
        app = run.appliance(cfg, ready, duration=60, args=backend_args(driver))
        venue = run.venue(tmp_path / "venue.json", duration=60)
        wait_ready(app, ready)
        time.sleep(0.5)
        if huge:
            # EAL took its memory from the hugepages, and made no file of
            # them that would outlive the appliance
            assert hugepages_free_mb() < free_before
            assert hugepage_files() == files_before
        xdp_during = {dev: xdp_prog(h, dev) for dev in (h.oms_strategy_if, h.oms_venue_if)}
        run.run_strategy("--orders", "20", "--timeout", "8", "--out",
                         str(tmp_path / "strat.json"), timeout=30)
        # SIGTERM: the appliance stops receiving, flushes, reports
        out, _ = stop(app)
        stop(venue, check=False)
        xdp_after = {dev: xdp_prog(h, dev) for dev in (h.oms_strategy_if, h.oms_venue_if)}
        report = report_of(out)
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

    if driver in ("af_xdp", "afxdp"):
        # the frames went through an XDP socket, not a kernel socket: an XDP
        # program was attached to both interfaces while it ran (generic XDP:
        # a veth has no driver mode), and none is left behind
        assert all(x and x["prog"]["id"] > 0 for x in xdp_during.values()), xdp_during
        assert xdp_after == {h.oms_strategy_if: None, h.oms_venue_if: None}, xdp_after
    core = report["core"]
    assert core["reject_system"] == {} and core["reject_business"] == {}
    assert core["event"]["ORDERS_ACCEPTED_INTERNAL"] == 20
    # every frame the core handled came in through the DPDK ports (XDP
    # sockets), every frame it built left through them
    ports = report["ports"]
    if driver == "afxdp":
        rx = sum(p["rx_frames"] for p in ports.values())
        tx = sum(p["tx_frames"] for p in ports.values())
    else:
        rx = sum(p["ipackets"] for p in ports.values())
        tx = sum(p["opackets"] for p in ports.values())
    link = report["link"]
    link_rx = (link["arp_replies"] + link["arp_ignored"] + link["arp_bad"]
               + link["icmp_echo_replies"] + link["icmp_ignored"])
    assert core["event"]["FRAMES_IN"] + link_rx == rx
    assert tx == core["event"]["FRAMES_OUT"] + link["arp_replies"] + \
        link["icmp_echo_replies"] + len(ports)  # + one gratuitous ARP per port
    assert link["arp_replies"] >= 2  # both kernel peers resolved us through the worker
    if driver == "afxdp":
        # nothing refused on our side, nothing dropped or malformed in the kernel's
        for name, p in ports.items():
            assert p["tx_full"] == p["tx_oversize"] == p["tx_kick_errors"] == 0, (name, p)
            assert p["k_rx_dropped"] == p["k_rx_ring_full"] == 0, (name, p)
            assert p["k_rx_invalid_descs"] == p["k_tx_invalid_descs"] == 0, (name, p)
            assert p["k_rx_fill_ring_empty_descs"] == 0, (name, p)
            assert p["xdp_prog_id"] == xdp_during[name]["prog"]["id"]
            assert p["zerocopy"] is False  # a veth: copy mode
            assert p["completions"] == p["tx_frames"]  # every TX buffer came back
    else:
        assert report["worker"]["tx_dropped"] == 0
        # virtual devices support no rte_flow: the software path was chosen
        assert {p["path"] for p in report["steering"].values()} == {"software"}
        # nothing in flight is left behind: the pool is back at its baseline.
        # AF_XDP gives sent frames' mbufs back lazily, on a later transmit, so
        # there up to a TX ring's worth (1024 descriptors) may still be out
        extra = report["mbufs_in_use"] - report["mbufs_in_use_at_start"]
        assert (extra == 0 if driver == "af_packet" else 0 <= extra <= 1024), report
    assert report["live_orders"] == 0  # every order reached a final state
    assert ven["stats"]["received"]["O"] == 20 and ven["stats"]["received"]["X"] == 10
    if huge:
        # every page is back once the appliance has stopped
        assert hugepage_files() == files_before
        assert hugepages_free_mb() == free_before
