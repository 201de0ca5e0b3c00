"""Market data in the journal (docs/durability.md "Market data"): the frames
the dispatcher hands to the feeds are MARKET records, in their order
relative to the core's bursts, so a journal replayed into a fresh core with
fresh feeds rebuilds the books and re-executes the same routing decisions
and splits - the same order tables, children, counters and decisions -
while one replayed without market data does not; `omsctl journal
info/verify/replay` count and use the records."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import wire
from test_sor import enters, px
from test_sor_replay import feed_lines
from wire import (
    VENUES,
    from_strategy,
    login,
    new_order,
    ouch_accepted,
    ouch_executed,
    udp_frame,
    ufo,
)

from control.config import load_config_text, load_default_config
from dataplane import journal as jn
from dataplane.core import Core
from dataplane.market_data import CMarketData
from pcaps import itch_gen

MS = 1_000_000
ROOT = Path(__file__).resolve().parent.parent


def config_text(path) -> str:
    """Two venues' feeds, the router splitting across both, a journal."""
    text = load_default_config().text.replace("orders: 65536", "orders: 64")
    text = text.replace("routing:\n  default_venue: 1\n",
                        "routing:\n  default_venue: sor\n  split_max_children: 2\n")
    return text + f"""
market_data:
  symbols: [AAPL, MSFT]
  stale_after_ms: 1000
  subscriptions:
    - {{venue: 1, group: 239.1.1.1, port: 26400}}
    - {{venue: 2, group: 239.1.1.2, port: 26400}}
journal: {{path: {path}, durability: none, segment_mb: 1}}
"""


def config(path):
    return load_config_text(config_text(path), "md-journal.yaml")


def capture() -> list[tuple[int, bytes]]:
    """Quotes that change under a stream of routed orders: venue 2 best at
    first, venue 1 from 25 ms, both short of 300 shares now and then."""
    md = itch_gen.build_frames(feed_lines(1, [(2, "150.30", 100), (25, "150.24", 100),
                                              (45, "150.27", 200)]))
    md += itch_gen.build_frames(feed_lines(2, [(2, "150.26", 300), (25, "150.28", 50),
                                               (45, "150.25", 100)]))
    orders = [(0, from_strategy(1, login(1)))]
    for k, t in enumerate((10, 11, 30, 31, 50, 51)):
        orders.append((t * MS, from_strategy(1, new_order(
            1, k + 1, k + 1, price=px("150.40"), qty=(100, 300)[k % 2]))))
    return sorted(md + orders, key=lambda r: r[0])


class Run:
    """A core with its feeds, driven as a poll loop drives them: at each
    time the frames go to the dispatcher first (market data to the feeds),
    the rest to the core; the venues accept every Enter Order 20 us later
    and fill the first 50 shares of each."""

    def __init__(self, cfg, journal=None):
        self.core, self.md = Core(cfg), CMarketData(cfg)
        self.md.attach(self.core)
        if journal is not None:
            self.core.journal = journal
            self.md.set_journal(journal)
            journal.attach(self.core)
        self.vseq = {v.id: 1 for v in VENUES}

    def step(self, frames: list[bytes], now: int) -> list[bytes]:
        out = self.core.process_burst(self.md.split(frames, now), now)
        answers = []
        for vid, ref, _qty in enters(out):
            v = next(x for x in VENUES if x.id == vid)
            for msg in (ouch_accepted(ref), ouch_executed(ref, 50, match=ref)):
                answers.append(udp_frame(v.mac, wire.APPLIANCE.mac, v.ip, wire.APPLIANCE.ip,
                                         v.port, wire.APPLIANCE.venue_port,
                                         ufo(v.session, self.vseq[vid], msg)))
                self.vseq[vid] += 1
        if answers:
            self.core.process_burst(self.md.split(answers, now + 20_000), now + 20_000)
        return out

    def run(self, records):
        """`records` (time, frame) sorted by time: each time's frames are
        one step."""
        for t, group in itertools.groupby(records, key=lambda r: r[0]):
            self.step([f for _, f in group], t + MS)


def state(core: Core, md: CMarketData | None = None) -> dict:
    tobs = {(v, i): md.feeds[v].tob(i) for v in (1, 2) for i in (0, 1)} if md else None
    return {"tobs": tobs, "stats": core.stats(), "decisions": core.route_decisions(),
            "live": core.live_orders(),
            "orders": {c: core.order(1, c) for c in range(1, 7)},
            "children": {c: core.order_children(1, c) for c in range(1, 7)},
            "position": core.position(1, "AAPL"), "account": core.account(1)}


def journaled_run(tmp_path):
    path = tmp_path / "md.jnl"
    cfg = config(path)
    journal = jn.Journal(cfg.journal, cfg)
    run = Run(cfg, journal)
    run.run(capture())
    stats = journal.stats()
    journal.close()
    return cfg, path, state(run.core, run.md), stats


def test_a_replayed_journal_rebuilds_the_books_and_the_same_routing(tmp_path):
    cfg, path, ran, jstats = journaled_run(tmp_path)
    decisions = ran["decisions"]
    # the quotes moved the router mid-stream, and it split orders
    assert [d["venue"] for d in decisions] == [2, 2, 1, 1, 2, 2]
    assert [d["children"] for d in decisions] == [0, 0, 0, 2, 0, 2]
    md_frames = sum(1 for _, f in capture() if f[36:38] == (26400).to_bytes(2, "big"))
    assert jstats["markets"] > 0 and jstats["market_frames"] == md_frames == 8

    fresh = Core(cfg)
    md = CMarketData(cfg)
    md.rebuild_with(fresh)
    s = jn.recover(fresh, str(path), cut=False)
    assert s["markets"] == jstats["markets"] and s["markets_skipped"] == 0
    # the same books (tops of book), orders, children, counters, decisions
    assert state(fresh, md) == ran
    assert ran["tobs"][1, 0]["ask_px"] == px("150.27")  # venue 1, AAPL


def test_without_its_market_data_the_journal_does_not_route_the_same(tmp_path):
    """Why the records are needed: the same journal replayed into a core
    whose feeds are not rebuilt finds no quotes."""
    cfg, path, ran, _ = journaled_run(tmp_path)
    bare = Core(cfg)
    s = jn.recover(bare, str(path), cut=False)
    assert s["markets_skipped"] == s["markets"] > 0
    assert [d["venue"] for d in bare.route_decisions()] == [0] * 6  # NO_ROUTE
    assert state(bare)["orders"] != ran["orders"]


def test_omsctl_journal_tools_count_and_replay_market_records(tmp_path):
    cfg, path, ran, jstats = journaled_run(tmp_path)

    def omsctl(*args):
        r = subprocess.run([sys.executable, "-m", "control.cli", "journal", *args],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    info = omsctl("info", str(path))
    assert info["markets"] == jstats["markets"] and info["record_types"]["4"] == "market"
    assert omsctl("verify", str(path))["market_frames"] == jstats["market_frames"]
    rep = omsctl("replay", str(path))  # from the journal's first configuration
    assert rep["journal"]["markets_skipped"] == 0
    assert rep["route_decisions"] == len(ran["decisions"])
    assert rep["core"] == json.loads(json.dumps(ran["stats"]))

