"""Loss and reordering, live.  The appliance runs on DPDK ports in its own
namespace as in test_live_e2e; the strategy and the venue, in theirs, lose
about 1% of their UDP datagrams both ways (this kernel has no sch_netem, so
nftables drops them: ``numgen random mod 100 < 1``), and their own seeded
reorder knobs swap some of what they send.  At the end the strategy, the
appliance and the venue must agree on every order's final state, no order
may have executed twice, and the counters must show that loss and
reordering really happened and were recovered from."""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import netns
import pytest
import test_live_e2e as live
from live_run import LiveRun, report_of, stop, wait_ready

ORDERS = 300
FIRST_ID = 1000
LOSS_PERCENT = 1

why_not = netns.can_make_namespaces()
if why_not is None and shutil.which("nft") is None:
    why_not = "needs nftables (nft)"
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")

# every UDP datagram counted, then 1 in 100 dropped, on the way in and out
NFT_RULES = f"""
table inet omsloss {{
  chain input {{
    type filter hook input priority 0; policy accept;
    meta l4proto udp counter
    meta l4proto udp numgen random mod 100 < {LOSS_PERCENT} counter drop
  }}
  chain output {{
    type filter hook output priority 0; policy accept;
    meta l4proto udp counter
    meta l4proto udp numgen random mod 100 < {LOSS_PERCENT} counter drop
  }}
}}
"""


def config_text(h: netns.Hosts) -> str:
    # heartbeats often (a lost trailing message is noticed by the next one),
    # timeouts far beyond anything the loss can cause
    return live.config_text(h, "af_packet", session_hb=100, session_timeout=30000,
                            venue_hb=100, venue_timeout=30000)


def nft_counters(h: netns.Hosts, ns: str) -> dict[str, dict[str, int]]:
    """{"input"|"output": {"udp": counted, "dropped": dropped}}."""
    r = netns.run(*h.exec(ns, "nft", "-j", "list", "table", "inet", "omsloss"))
    out: dict[str, dict[str, int]] = {}
    for item in json.loads(r.stdout)["nftables"]:
        rule = item.get("rule")
        if not rule:
            continue
        counter = next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
        dropping = any("drop" in e for e in rule["expr"])
        out.setdefault(rule["chain"], {})["dropped" if dropping else "udp"] = counter
    return out


def test_orders_agree_everywhere_despite_loss_and_reordering(tmp_path):
    t0 = time.monotonic()
    with netns.three_hosts() as h, LiveRun(h) as run:
        for ns in (h.strategy, h.venue):
            subprocess.run(h.exec(ns, "nft", "-f", "-"), input=NFT_RULES, text=True,
                           check=True, capture_output=True)
        cfg = tmp_path / "live.yaml"
        cfg.write_text(config_text(h))
        ready = tmp_path / "ready.json"
        dump = tmp_path / "orders.json"
        app = run.appliance(cfg, ready, duration=75, args=("--dump-orders", str(dump)))
        venue = run.venue(tmp_path / "venue.json", duration=70,
                          args=("--reorder", "0.02", "--seed", "7"))
        wait_ready(app, ready, watch=(venue,))
        time.sleep(0.5)
        run.run_strategy("--scenario", "mixed", "--orders", str(ORDERS), "--reorder", "0.02",
                         "--seed", "11", "--heartbeat-ms", "100", "--timeout", "35",
                         "--linger", "0.5", "--out", str(tmp_path / "strat.json"), timeout=45)
        # SIGTERM: the appliance stops receiving, flushes, reports
        out, _ = stop(app)
        stop(venue)
        nft = {ns: nft_counters(h, ns) for ns in (h.strategy, h.venue)}
        report = report_of(out)
        strat = json.loads((tmp_path / "strat.json").read_text())
        ven = json.loads((tmp_path / "venue.json").read_text())
        dumped = json.loads(dump.read_text())
    elapsed = time.monotonic() - t0
    ids = set(range(FIRST_ID, FIRST_ID + ORDERS))

    # the strategy finished: every order final in its view
    orders = {int(k): v for k, v in strat["orders"].items()}
    assert set(orders) == ids
    unfinished = {c: o["state"] for c, o in orders.items()
                  if o["state"] not in ("Filled", "Canceled", "Expired", "Rejected")}
    assert not unfinished, f"not final after {strat['elapsed_s']:.1f}s: {unfinished}"
    # every kind of ending the plan leads to happened
    states = {o["state"] for o in orders.values()}
    assert {"Filled", "Canceled", "Expired"} <= states, states
    assert any(o["state"] == "Canceled" and o["cum_qty"] for o in orders.values())

    # the appliance holds exactly these orders, in the same states
    app_orders = {o["cl_ord_id"]: o for o in dumped}
    assert all(o["session"] == 1 for o in dumped)
    assert set(app_orders) == ids and len(dumped) == ORDERS
    for c, o in orders.items():
        a = app_orders[c]
        assert (a["state"], a["cum_qty"], a["leaves_qty"]) == \
            (o["state"], o["cum_qty"], o["leaves_qty"]), (c, a, o)
    # the strategy applied each fill once
    for c, o in orders.items():
        assert sum(q for _, q, _ in o["fills"]) == o["cum_qty"], (c, o)
        assert len({m for m, _, _ in o["fills"]}) == len(o["fills"]), (c, o)

    # the venue: each Enter Order acted on once, nothing executed twice, and
    # its executions are the appliance's and the strategy's
    vorders = {int(k): v for k, v in ven["orders"].items()}
    assert set(vorders) == ids
    for c, o in orders.items():
        v = vorders[c]
        assert v["enters"] == 1 and v["enter_rejects"] == 0, (c, v)
        assert v["executed"] <= v["qty"], (c, v)
        assert v["executed"] == o["cum_qty"] == app_orders[c]["cum_qty"], (c, v, o)
    assert ven["live"] == {}  # nothing left resting at the venue
    assert ven["stats"]["received"]["O"] == ORDERS
    assert "ref_not_increasing" not in ven["stats"]["ignored"]

    core = report["core"]
    ev = core["event"]
    assert core["reject_system"] == {}
    assert ev["ORDERS_ACCEPTED_INTERNAL"] == ORDERS
    assert report["mbufs_in_use"] == 0 and report["live_orders"] == 0

    # the loss was on: about 1% of a few thousand datagrams dropped, in both
    # namespaces
    counted = sum(c["udp"] for n in nft.values() for c in n.values())
    dropped = sum(c["dropped"] for n in nft.values() for c in n.values())
    assert counted >= 2500, nft
    assert 0.003 * counted <= dropped <= 0.03 * counted, nft
    assert all(sum(c["dropped"] for c in n.values()) > 0 for n in nft.values()), nft
    # the kernel refused the datagrams dropped on the way out (EPERM): the
    # peers saw them as lost
    assert strat["send_refused"] + ven["send_refused"] == \
        sum(n["output"]["dropped"] for n in nft.values()), (nft, strat["send_refused"],
                                                            ven["send_refused"])
    # ... and the reordering, and both were recovered from
    assert strat["stats"]["reordered"] > 0 and ven["stats"]["reordered"] > 0
    assert ev.get("SP_SEQ_GAPS", 0) > 0 and ev.get("VENUE_SEQ_GAPS", 0) > 0, ev
    assert ev.get("SP_RETRANSMITTED", 0) + ev.get("VENUE_RETRANSMITTED", 0) > 0, ev
    assert strat["stats"]["retransmitted"] > 0 and ven["stats"]["retransmitted"] > 0
    print(json.dumps({
        "elapsed_s": round(elapsed, 1), "strategy_s": round(strat["elapsed_s"], 1),
        "nft": nft, "dropped_pct": round(100 * dropped / counted, 2),
        "appliance": {k: ev.get(k, 0) for k in (
            "SP_SEQ_GAPS", "SP_SEQ_GAP_MSGS", "SP_RETRANSMITTED", "VENUE_SEQ_GAPS",
            "VENUE_SEQ_GAP_MSGS", "VENUE_RETRANSMITTED")} | core["drop"],
        "strategy": {k: strat["stats"][k] for k in (
            "requests_out", "requests_in", "retransmitted", "reordered", "reorder_timeouts",
            "out_of_order", "duplicates", "relogins")},
        "venue": {k: ven["stats"][k] for k in (
            "requests_out", "requests_in", "retransmitted", "reordered", "reorder_timeouts",
            "seq_gaps_in", "seq_dup_msgs_in")},
        "states": {s: sum(o["state"] == s for o in orders.values()) for s in sorted(states)},
    }))
    assert elapsed < 60
