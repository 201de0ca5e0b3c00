"""Replay with market data (docs/semantics.md "Market data in the core",
"Smart order routing"): a capture that interleaves two venues' ITCH
multicast with a strategy's orders goes through the pcap backend with the
venue simulators answering and the reference model beside it (--verify);
the feeds take their frames, the core routes by their quotes, and the
report explains every routed order."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import wire
from test_sor import GROUP, LOCATE, VENUES, px
from wire import from_strategy, login, new_order

from control.config import SOR, FeedSubscription, MarketData, Routing
from dataplane.replay import Replayer, report_lines
from pcaps import itch_gen

MS = 1_000_000
ROOT = Path(__file__).resolve().parent.parent


def dpdk_built() -> bool:
    try:
        import dataplane._oms_dpdk  # noqa: F401
    except ImportError:
        return False
    return True


def run_dpdk(code: str) -> dict:
    """EAL starts once per process: each DPDK run is a subprocess."""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def feed_lines(venue: int, ticks: list[tuple[int, str, int]]) -> list[str]:
    """A venue's ITCH session: the directory, then at each (t_ms, ask,
    size) a new best ask for AAPL (the previous one deleted)."""
    lines = [json.dumps({"feed": {"session": f"SESSION{venue:03d}", "group": GROUP[venue],
                                  "port": 26400, "source": f"10.10.2.{venue}",
                                  "locates": LOCATE}}),
             json.dumps({"t_ms": 1, "msgs": [{"type": "S", "code": "O"}] + [
                 {"type": "R", "stock": s} for s in LOCATE] + [
                 {"type": "A", "stock": "AAPL", "ref": 1, "side": "B", "shares": 500,
                  "price": "150.10"}]})]
    for k, (t, ask, size) in enumerate(ticks):
        msgs = [{"type": "A", "stock": "AAPL", "ref": 100 + k, "side": "S", "shares": size,
                 "price": ask}]
        if k:
            msgs.insert(0, {"type": "D", "stock": "AAPL", "ref": 99 + k})
        lines.append(json.dumps({"t_ms": t, "msgs": msgs}))
    return lines


def capture() -> list[tuple[int, bytes]]:
    md = itch_gen.build_frames(feed_lines(1, [(2, "150.30", 100), (25, "150.24", 100)]))
    md += itch_gen.build_frames(feed_lines(2, [(2, "150.26", 300), (25, "150.28", 300)]))
    # a group nobody subscribed: the software filter drops it
    other = itch_gen.build_frames([
        '{"feed": {"group": "239.9.9.9", "port": 26400, "locates": {"AAPL": 1}}}',
        '{"t_ms": 3, "msgs": [{"type": "S", "code": "O"}]}'])
    orders = [(0, from_strategy(1, login(1)))]
    for k, t in enumerate((10, 11, 30, 31)):
        orders.append((t * MS, from_strategy(1, new_order(1, k + 1, k + 1,
                                                          price=px("150.40")))))
    # DMA: named venue 1, no decision
    orders.append((40 * MS, from_strategy(1, new_order(1, 5, 5, venue=1, price=px("150.40")))))
    return sorted(md + other + orders, key=lambda r: r[0])


def config():
    subs = tuple(FeedSubscription(venue=v, group=GROUP[v], port=26400) for v in (1, 2))
    return replace(wire.config(), venues=VENUES, routing=Routing(default_venue=SOR),
                   market_data=MarketData(symbols=("AAPL", "MSFT", "SPY"),
                                          subscriptions=subs, stale_after_ms=1000))


def test_replay_routes_by_the_captured_quotes_and_explains_every_routed_order():
    cfg = config()
    rp = Replayer(cfg, venue_sim=True, verify=True)
    out, res = rp.run(capture())
    assert res.verified  # the reference model sent the same, decided the same
    lines = report_lines(cfg, out, res.stats, res.route_decisions)
    routes = [x for x in lines if x.get("to") == "router"]
    enters = [x for x in lines if x.get("to") == "venue" and x.get("msg") == "EnterOrder"]
    # every order naming no venue has its decision: venue 2 while it shows
    # 150.26, venue 1 once it shows 150.24
    assert [(r["cl_ord_id"], r["venue"]) for r in routes] == [(1, 2), (2, 2), (3, 1), (4, 1)]
    assert routes[0]["seen"] == [
        {"venue": 1, "px": px("150.30"), "qty": 100, "cost": 0, "rtt_ewma_ns": 0,
         "verdict": "worse"},
        {"venue": 2, "px": px("150.26"), "qty": 300, "cost": 0, "rtt_ewma_ns": 0,
         "verdict": "chosen"},
        {"venue": 3, "px": 0, "qty": 0, "cost": 0, "rtt_ewma_ns": 0, "verdict": "no_feed"}]
    assert routes[0]["reason"].startswith("best ask 150.2600 x 300")
    # the second order to venue 2 saw the first one's round trip (20 us)
    assert routes[1]["seen"][1]["rtt_ewma_ns"] == 20_000
    assert [e["venue"] for e in enters] == [2, 2, 1, 1, 1]
    # each decision line comes before the Enter Order it caused
    for r in routes:
        i = lines.index(r)
        nxt = next(x for x in lines[i + 1:] if x.get("msg") == "EnterOrder")
        assert nxt["venue"] == r["venue"]
    assert res.stats["event"]["ORDERS_ROUTED"] == 4
    md = res.market_data
    assert md["filtered"] == 1 and md["filter_drops"] == {"NO_GROUP": 1}
    assert md["to_feed"] == 6


def test_without_market_data_configured_nothing_is_split():
    cfg = replace(config(), market_data=MarketData(), routing=Routing(default_venue=1))
    rp = Replayer(cfg, venue_sim=True, verify=True)
    _, res = rp.run(capture())
    assert res.market_data is None and res.route_decisions == []
    # the feed frames reach the core, which counts them as not for us
    assert res.stats["drop"]["NOT_FOR_US"] == 7


DPDK_RUN = """
import json, sys
sys.path.insert(0, "tests")
from test_sor_replay import capture, config
from dataplane.replay import Replayer
cfg = config()
p_out, p_res = Replayer(cfg, venue_sim=True, verify=True).run(capture())
d_out, d_res = Replayer(cfg, venue_sim=True, verify=True, backend="dpdk").run(capture())
print(json.dumps({"same_out": d_out == p_out, "frames": len(d_out),
                  "same_decisions": d_res.route_decisions == p_res.route_decisions,
                  "decisions": len(d_res.route_decisions), "verified": d_res.verified,
                  "md": d_res.market_data, "capture": d_res.worker_stats["capture_frames"]}))
"""


@pytest.mark.skipif(not dpdk_built(), reason="DPDK extension not built")
def test_dpdk_replay_splits_market_data_on_the_worker_as_the_pcap_backend_does():
    """The replay loop on a DPDK worker lcore (cdefs/replay_loop.c) runs the
    same dispatcher before its core: same frames, same decisions.  EAL
    starts once per process: a subprocess of its own."""
    got = run_dpdk(DPDK_RUN)
    assert got["same_out"] and got["same_decisions"] and got["verified"]
    assert got["decisions"] == 4 and got["frames"] == 12
    assert got["md"] == {"to_feed": 6, "to_core": 12, "filtered": 1,
                         "filter_drops": {"NO_GROUP": 1}}
    assert got["capture"] == len(capture())


WORKER_RUN = """
import json, sys
sys.path.insert(0, "tests")
from test_sor_replay import capture, config
from dataplane.core import Core
from dataplane.dpdk import RingPortCore
from dataplane.market_data import CMarketData
from dataplane.replay import Replayer, schedule
cfg, recs = config(), capture()
sims = Replayer(cfg, venue_sim=True)._new_sims
w = RingPortCore(cfg, market_data=True)
try:
    dec_w = []
    out_w = schedule(w, recs, sims(), 20_000, decisions=dec_w)
    md_w = w.md.stats()
finally:
    w.close()
core, md = Core(cfg), CMarketData(cfg)
md.attach(core)
dec_c = []
out_c = schedule(core, recs, sims(), 20_000, md=md, decisions=dec_c)
print(json.dumps({"same_out": out_w == out_c, "frames": len(out_w),
                  "same_decisions": dec_w == dec_c, "decisions": len(dec_w), "md": md_w}))
"""


@pytest.mark.skipif(not dpdk_built(), reason="DPDK extension not built")
def test_dpdk_worker_splits_market_data_before_its_core():
    """The DPDK worker loop (cdefs/worker.c) on a ring port, fed the same
    bursts: it hands the market data to the feeds and the rest to its core,
    which routes as the core beside a dispatcher in this process does."""
    got = run_dpdk(WORKER_RUN)
    assert got["same_out"] and got["same_decisions"]
    assert got["decisions"] == 4 and got["frames"] == 12
    assert got["md"]["to_feed"] == 6 and got["md"]["filtered"] == 1


def test_the_feed_to_book_stage_times_every_market_data_packet():
    """Issue 7's feed stage: with timing on, FEED_TO_BOOK counts one value
    per packet the dispatcher handed a feed, in the core on its thread."""
    cfg = config()
    rp = Replayer(cfg, venue_sim=True, timings=True)
    _, res = rp.run(capture())
    h = rp.core.lib.oms_core_stage(rp.core._core, rp.core.lib.OMS_STAGE_FEED_TO_BOOK)
    assert h.count == res.market_data["to_feed"] == 6
    assert 0 < h.sum and h.max < 10**9  # cycles, never a decision or a frame
