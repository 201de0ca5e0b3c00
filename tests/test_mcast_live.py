"""The appliance's own multicast membership, live (issue 6 items 2 and 8):
two simulated venues publish ITCH 5.0 over MoldUDP64 multicast into a Linux
bridge with IGMP snooping and an IGMPv3 querier, flooding of unregistered
multicast off on the appliance's port, so that a group reaches the
appliance only once the appliance itself has joined it (its data plane
speaks IGMPv3: cdefs/igmp.c driven by the poll loop through
cdefs/md_dispatch.c).

  - venue 1's group is joined at start (`bridge mdb show` lists it on the
    appliance's port); venue 2's heartbeats flow all along but nothing of
    them arrives (the software filter would count a stray group) until a
    live reload adds its subscription, when it is joined and its book
    builds;
  - both memberships outlive the bridge's membership interval several
    times over while the appliance answers the querier's queries;
  - a live reload removing venue 1's subscription leaves its group: the
    bridge drops it and venue 1's packets stop; at shutdown venue 2's
    group is left too;
  - meanwhile orders that name no venue go to the venue with the better ask:
    venue 1 while only its book is known, venue 2 once its book is better,
    venue 1 after venue 2's ask moves up, venue 2 once venue 1's
    subscription is gone (its book stale, unused by the router)."""
from __future__ import annotations

import contextlib
import json
import os
import time

import netns
import pytest
import wire
from live_run import (
    PY,
    ROOT,
    STRATEGY_HEAD,
    LiveRun,
    Steered,
    eventually,
    report_of,
    stop,
    wait_ready,
)
from netns import run

from control.ctl import request
from control.status import render_status

PUBLISHER = str(ROOT / "tests" / "itch_publisher.py")
GROUPS = {1: "239.1.1.1", 2: "239.1.1.2"}
MD_PORT = 26400
MEMBERSHIP_S = 2.5  # mcast_membership_interval 250 (centiseconds)
BRIDGE_IP = "10.10.255.254"  # the querier's source address

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")

# A strategy steered line by line: "order CID" sends a buy of 100 AAPL at
# 152.05 naming no venue and answers with the order's state once final.
STRATEGY = STRATEGY_HEAD + """
def pump(wait):
    drain(wait)
    out(drv.tick(time.time_ns()))
out(drv.login(time.time_ns()))
end = time.monotonic() + 60
while time.monotonic() < end:
    r, _, _ = select.select([sys.stdin], [], [], 0)
    if not r:
        pump(0.01)
        continue
    line = sys.stdin.readline()
    if not line:
        break
    cid = int(line.split()[1])
    t = time.monotonic() + 5
    while not drv.logged_in and time.monotonic() < t:
        pump(0.01)
    out(drv.new_order(time.time_ns(), cid, "AAPL", 152_0500_0000, 100))
    while drv.orders[cid].state not in TERMINAL and time.monotonic() < t:
        pump(0.01)
    print(json.dumps({{"cid": cid, "state": drv.orders[cid].state}}), flush=True)
"""


def config(h: dict, subs: list[int], driver: str) -> str:
    s, a = wire.SESSIONS[0], wire.APPLIANCE
    venues = "\n".join(
        f"  - {{id: {v.id}, name: {v.name}, session: {v.session}, ip: {v.ip}, port: {v.port},"
        f" mac: \"{v.mac}\", heartbeat_ms: 1000, timeout_ms: 20000}}" for v in wire.VENUES[:2])
    subs_text = "\n".join(f"    - {{venue: {v}, group: {GROUPS[v]}, port: {MD_PORT}}}"
                          for v in subs) or "    []"
    if driver == "afxdp":  # the native backend: no DPDK, no EAL
        dataplane = f"""
  afxdp: {{strategy_iface: {h['oms_s']}, venue_iface: {h['oms_v']}}}
  idle_sleep_us: 50"""
    else:
        vdevs = [f"net_af_packet0,iface={h['oms_s']}", f"net_af_packet1,iface={h['oms_v']}"]
        dataplane = f"""
  lcores: "{'0@0,1@1,2@0,3@1' if driver == 'sharded' else '0,1'}"
  vdevs: {json.dumps(vdevs)}
  ports: {{strategy: net_af_packet0, venue: net_af_packet1}}
  idle_sleep_us: 50"""
    if driver == "sharded":
        # the I/O lcore polls the ports and hands market data, IGMP and the
        # venues' traffic to worker 0, which owns the market data and both
        # venues that publish
        dataplane += """
  threading:
    mode: sharded
    workers:
      - {sessions: [1], venues: [1, 2], accounts: [1]}
      - {sessions: [], venues: [3], accounts: []}"""
        # worker 1's venue: nobody answers there
        venues += ('\n  - {id: 3, name: PSX, session: PSX01, ip: 10.10.2.3, port: 9200, '
                   'mac: "02:00:00:00:02:03", heartbeat_ms: 1000, timeout_ms: 20000}')
    return f"""
appliance: {{mac: "{a.mac}", ip: {a.ip}, strategy_port: {a.strategy_port},
             venue_port: {a.venue_port}}}
sessions:
  - {{id: 1, ip: {s.ip}, port: {s.port}, mac: "{s.mac}", heartbeat_ms: 500, timeout_ms: 20000}}
venues:
{venues}
routing: {{default_venue: sor}}
instruments: [{{symbol: AAPL}}]
accounts:
  - {{id: 1, max_order_qty: 999999, max_order_notional: 1000000000, max_open_orders: 100000,
     credit_limit: 1000000000, max_position: {{AAPL: 1000000000}}}}
observability: {{listen: "127.0.0.1:0"}}
market_data:
  symbols: [AAPL]
  stale_after_ms: 60000
  subscriptions:
{subs_text}
dataplane:{dataplane}
"""


@pytest.fixture
def hosts():
    """strategy <-> appliance (a veth), appliance and two venues on a
    snooping bridge with an IGMPv3 querier in a namespace of its own."""
    p = f"m{os.getpid() % 100000}"
    h = {"st": f"{p}st", "om": f"{p}om", "br": f"{p}br", "v1": f"{p}v1", "v2": f"{p}v2",
         "oms_s": f"{p}s1", "oms_v": f"{p}o1", "br_oms": f"{p}bo"}

    def teardown():
        for ns in ("st", "om", "br", "v1", "v2"):
            run("ip", "netns", "del", h[ns], check=False)
    teardown()
    try:
        for ns in ("st", "om", "br", "v1", "v2"):
            run("ip", "netns", "add", h[ns])
            run("ip", "-n", h[ns], "link", "set", "lo", "up")
        br = h["br"]
        run("ip", "-n", br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "1",
            "mcast_igmp_version", "3", "mcast_query_interval", "100",
            "mcast_query_response_interval", "50", "mcast_membership_interval", "250",
            "mcast_last_member_interval", "10", "mcast_last_member_count", "1",
            "mcast_startup_query_count", "1")
        run("ip", "-n", br, "addr", "add", f"{BRIDGE_IP}/16", "dev", "br0")
        # the querier last: the bridge forwards by its snooped memberships
        # only a query response interval after the querier starts, and with
        # it in the same command that is the default interval (10 s)
        run("ip", "-n", br, "link", "set", "br0", "type", "bridge", "mcast_querier", "1")
        run("ip", "-n", br, "link", "set", "br0", "up")
        sess, app = wire.SESSIONS[0], wire.APPLIANCE
        # strategy <-> appliance
        run("ip", "link", "add", f"{p}s0", "type", "veth", "peer", "name", h["oms_s"])
        run("ip", "link", "set", f"{p}s0", "netns", h["st"])
        run("ip", "link", "set", h["oms_s"], "netns", h["om"])
        # appliance, venues <-> bridge
        legs = [("om", h["oms_v"], h["br_oms"], app.mac)]
        legs += [(f"v{i + 1}", f"{p}e{i + 1}", f"{p}b{i + 1}", v.mac)
                 for i, v in enumerate(wire.VENUES[:2])]
        for ns, end, port, mac in legs:
            run("ip", "link", "add", end, "type", "veth", "peer", "name", port)
            run("ip", "link", "set", end, "netns", h[ns])
            run("ip", "link", "set", port, "netns", br)
            run("ip", "-n", br, "link", "set", port, "master", "br0")
            run("ip", "-n", br, "link", "set", port, "up")
            run("ip", "-n", h[ns], "link", "set", end, "address", mac)
            run("ip", "-n", h[ns], "link", "set", end, "up")
        # unregistered multicast is not flooded to the appliance
        run("bridge", "-n", br, "link", "set", "dev", h["br_oms"], "mcast_flood", "off")
        for i, v in enumerate(wire.VENUES[:2]):
            ns, dev = h[f"v{i + 1}"], f"{p}e{i + 1}"
            run("ip", "-n", ns, "addr", "add", f"{v.ip}/16", "dev", dev)
            run("ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)
            run("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", check=False)
        run("ip", "-n", h["st"], "link", "set", f"{p}s0", "address", sess.mac)
        run("ip", "-n", h["om"], "link", "set", h["oms_s"], "address", app.mac)
        run("ip", "-n", h["st"], "addr", "add", f"{sess.ip}/16", "dev", f"{p}s0")
        run("ip", "-n", h["st"], "link", "set", f"{p}s0", "up")
        run("ip", "-n", h["om"], "link", "set", h["oms_s"], "up")
        run("ip", "netns", "exec", h["st"], "ethtool", "-K", f"{p}s0", "tx", "off", check=False)
        yield h
    finally:
        teardown()


def joined(h: dict) -> set[str]:
    """The groups the bridge has on the appliance's port."""
    out = run("bridge", "-n", h["br"], "mdb", "show").stdout
    return {g for g in GROUPS.values() for line in out.splitlines()
            if f"port {h['br_oms']} grp {g}" in line}


@pytest.mark.parametrize("driver", ["af_packet", "afxdp", "sharded"])
def test_the_appliance_joins_answers_and_leaves_its_feeds(tmp_path, hosts, driver):
    h = hosts
    t0 = time.monotonic()
    sock, ready = str(tmp_path / "ctl.sock"), tmp_path / "ready.json"
    first, second, third = (tmp_path / n for n in ("a.yaml", "b.yaml", "c.yaml"))
    first.write_text(config(h, [1], driver))
    second.write_text(config(h, [1, 2], driver))
    third.write_text(config(h, [2], driver))
    helpers: list = []
    # on the way out the helpers are closed, then the venues stopped
    # (SIGTERM first) and anything left killed
    with LiveRun(None, grace=10) as live, contextlib.ExitStack() as closing:
        closing.callback(lambda: [x.close() for x in helpers])
        for i, v in enumerate(wire.VENUES[:2]):
            ns = h[f"v{i + 1}"]
            helpers.append(Steered(["ip", "netns", "exec", ns, PY, PUBLISHER, GROUPS[v.id],
                                    str(MD_PORT), v.ip, f"ITCH{v.id}", "40"]))
            live.venue(tmp_path / f"venue{v.id}.json", duration=40, args=("--index", str(i)),
                       ns=ns)
        pub1, pub2 = helpers
        app = live.appliance(first, ready, duration=40, ns=h["om"],
                             args=("--control-socket", sock,
                                   *(["--backend", "afxdp"] if driver == "afxdp" else [])))
        wait_ready(app, ready)
        strat = Steered(["ip", "netns", "exec", h["st"], PY, "-c", STRATEGY.format(root=str(ROOT))])
        helpers.append(strat)

        def stats() -> dict:
            return request(sock, {"cmd": "stats"})

        def route(cid: int) -> int:
            assert strat.cmd(f"order {cid}")["state"] == "Filled"
            (d,) = [d for d in stats()["route_decisions"] if d["cl_ord_id"] == cid]
            return d["venue"]

        # venue 1's group is joined at start; venue 2's is not
        assert eventually(lambda: GROUPS[1] in joined(h), 3), "the join was not learned"
        assert GROUPS[2] not in joined(h)
        pub1.cmd("book 150.30 150.50")
        time.sleep(0.5)
        md = stats()["market_data"]
        assert md["feeds"]["1"]["packets"] > 0 and md["feeds"]["1"]["stale"] == 0, md
        # venue 2's heartbeats went by all along: not one reached us (a
        # group we did not join would be counted by the software filter)
        assert md["filtered"] == 0 and "2" not in md["feeds"], md
        assert md["igmp"]["reports_sent"] >= 1, md
        # neither net_af_packet nor an XDP socket has a list to program
        assert md["mc_list"].startswith("software"), md
        assert route(1000) == 1

        # a live reload adds venue 2's subscription: joined, its book builds
        r = request(sock, {"cmd": "reload", "path": str(second)})
        assert r["ok"], r
        assert r["market_data"]["subscriptions"] == {"1": f"{GROUPS[1]}:{MD_PORT}",
                                                     "2": f"{GROUPS[2]}:{MD_PORT}"}
        assert eventually(lambda: GROUPS[2] in joined(h), 3), "venue 2's join was not learned"
        assert eventually(lambda: stats()["market_data"]["feeds"]["2"]["heartbeats"] > 0, 2)
        pub2.cmd("book 150.20 150.40")
        assert eventually(lambda: stats()["market_data"]["feeds"]["2"]["stale"] == 0, 2)
        assert route(1001) == 2  # 150.40 beats 150.50

        # both memberships outlive the membership interval: the appliance
        # answers the querier
        answered = stats()["market_data"]["igmp"]["queries_answered"]
        end = time.monotonic() + MEMBERSHIP_S * 1.6
        while time.monotonic() < end:
            assert joined(h) == set(GROUPS.values()), "a membership lapsed"
            time.sleep(0.1)
        md = stats()["market_data"]
        assert md["igmp"]["queries_answered"] >= answered + 2, md["igmp"]
        # operators see the same in `omsctl status` and the metrics
        status = request(sock, {"cmd": "status"})
        assert status["market_data"]["igmp"]["reports_sent"] >= md["igmp"]["reports_sent"]
        assert "igmp: reports sent" in render_status(status)
        url = json.loads(ready.read_text())["metrics"] + "/metrics"
        metrics = run("ip", "netns", "exec", h["om"], PY, "-c",
                      f"import urllib.request; print(urllib.request.urlopen({url!r}).read()"
                      ".decode())", check=False)
        assert metrics.returncode == 0, metrics.stderr[-3000:]
        metrics = metrics.stdout
        answered_metric = [float(line.split()[-1]) for line in metrics.splitlines()
                           if line.startswith("oms_igmp_queries_answered_total")]
        assert answered_metric and answered_metric[0] >= answered + 2, metrics[-2000:]

        # venue 2's ask moves up past venue 1's
        pub2.cmd("ask 150.60")
        time.sleep(0.3)
        assert route(1002) == 1

        # a live reload removes venue 1's subscription: left, it stops
        r = request(sock, {"cmd": "reload", "path": str(third)})
        assert r["ok"], r
        assert r["market_data"]["subscriptions"] == {"2": f"{GROUPS[2]}:{MD_PORT}"}
        assert eventually(lambda: GROUPS[1] not in joined(h), 2), "the leave was not heard"
        # (what the bridge sent before it heard the leave, the software
        # filter dropped: the feed was no longer subscribed)
        time.sleep(0.3)
        before = stats()["market_data"]
        assert before["feeds"]["1"]["stale"] & 64, before  # OMS_STALE_UNSUBSCRIBED
        time.sleep(1.0)
        md = stats()["market_data"]
        assert md["feeds"]["1"]["packets"] == before["feeds"]["1"]["packets"], \
            "venue 1's feed still arrives"
        assert md["filtered"] == before["filtered"], "venue 1's group still arrives"
        assert md["feeds"]["2"]["packets"] > before["feeds"]["2"]["packets"], md
        assert route(1003) == 2  # venue 1's better ask is stale now

        # shutdown leaves venue 2's group
        out, _ = stop(app, timeout=20)
        assert eventually(lambda: not joined(h), 2), "the leave at shutdown was not heard"
    report = report_of(out)
    md = report["market_data"]
    # add venue 2, subscribe AAPL in its new feed, remove venue 1
    assert md["changes"] == 3 and md["changes_failed"] == 0, md
    counters = md["igmp"]["counters"]
    # joins of 1 and 2, leave of 1, leave of 2: four state changes
    assert counters["STATE_CHANGES"] == 4, counters
    assert report["reloads"] == {"ok": 2, "refused": 0}
    assert [d["venue"] for d in report["route_decisions"]] == [1, 2, 1, 2]
    assert time.monotonic() - t0 < 40
