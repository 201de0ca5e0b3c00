"""What-if against the seeded venue simulators: the rule router against the
fill-probability model, on fill rate (issue 9, "Done when", second point;
docs/fill-model.md "What-if against the simulators").

``omsctl whatif-sim --model MODEL.json [--scenario FILE] [--orders N] ...``
replays a strategy's orders through the C core (the pcap backend's path: the
core in this thread, its C feed handlers fed ITCH) against one *seeded*
venue simulator per venue, each with its profile's hidden behaviour and
publishing its book as ITCH multicast, which the core's feeds read and the
router scores.  Recorded venue answers cannot say what another route would
have got; re-running the simulators can.  The same orders and the same
market (the same simulator seeds) run twice: once with ``routing.model:
off`` (the rule router) and once with the model.  Per order: did it fill
(any share) within the horizon of the moment the strategy sent it.

The difference of the two fill rates (model - rule) gets a seeded
bootstrap 95% interval.  The orders are paired (the same order in both
runs) and dependent: orders close in time meet the same book, the same
venue flow and each other's queue position, and an order's route moves the
book the next orders meet.  So the resampling unit is a block of
consecutive orders (circular block bootstrap of the paired differences,
blocks of ``--block`` orders, several horizons' worth), not single orders.

Negative control: ``--identical PROFILE`` gives every venue the same
profile (names, and so the model's venue slots, unchanged): the model still
routes differently, but no venue is better, so the difference is noise and
the interval should contain 0.

The strategy (``--scenario`` omitted): seeded, Poisson in time
(``--rate-hz``, default 5), symbol and side uniform, a limit at the
consolidated touch (4 in 5) or one tick through it, as the same seeded
simulators show it without the strategy's own orders (so the orders are
fixed before either run), 1-5 lots, ``--ioc-share`` IOC (default all: a
strategy that takes liquidity); a day order is cancelled when the horizon
has passed.  An order no venue can fill at its limit when it arrives is
rejected NO_ROUTE by the router and counts as not filled.  A ``--scenario``
is a pcaps/builder
JSON Lines file of the same kind (venue 0: the router chooses)."""
from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
from pathlib import Path

import numpy as np

from control import subcommand
from control.config import (
    SOR,
    Account,
    Appliance,
    Config,
    FeedSubscription,
    Instrument,
    MarketData,
    Routing,
    Session,
    Tables,
    Venue,
)
from dataplane.venue_itch import MarketDataConfig
from dataplane.venue_profiles import PROFILES
from dataplane.venue_sim import VenueSim, default_ref_price

SYMBOLS = ("AAPL", "MSFT", "NVDA")
OUCH_TO_FIXED = 10**4  # OUCH prices have 4 decimals, the core's 8
TICK = 100  # the simulators' tick, OUCH units ($0.01)
DAY_NS = 86_400_000_000_000
OPEN_NS = 34_200 * 1_000_000_000
MS = 1_000_000
VENUE_LATENCY_NS = 20_000  # the wire each way, on top of a profile's own delay
MD_PORT = 26400
BIG = 90_000_000_000 * 10**8  # limits no order comes near
APP = Appliance(mac="02:00:00:00:00:01", ip="10.0.0.1", strategy_port=7000, venue_port=7001)
STRATEGY = Session(id=1, ip="10.0.2.1", port=7100, mac="02:00:00:00:02:01",
                   timeout_ms=3_600_000)


def venue_of(k: int, name: str) -> Venue:
    """Venue k (0-based) named `name`, addressed as pcaps/make_sim_sessions
    addresses it."""
    return Venue(id=k + 1, name=name.upper(), session=f"SIM{k + 1:02d}", ip=f"10.0.1.{k + 1}",
                 port=9000, mac=f"02:00:00:00:01:{k + 1:02x}", timeout_ms=3_600_000)


def group_of(v: Venue) -> str:
    return f"239.1.1.{v.id}"


def sim_config(names: list[str], *, model_doc: dict | None = None, model_path: str | None = None,
               miss_penalty: int = 0, symbols=SYMBOLS) -> Config:
    """The appliance's configuration for a run: one strategy session, a
    venue per name with its ITCH feed, the smart order router, and the model
    (or none: the rule router)."""
    venues = tuple(venue_of(k, n) for k, n in enumerate(names))
    # the simulators' tick: the model's features count ticks of it
    instruments = tuple(Instrument(s, tick_size=TICK * OUCH_TO_FIXED,
                                   reference_price=default_ref_price(s) * OUCH_TO_FIXED)
                        for s in symbols)
    account = Account(id=1, max_order_qty=1_000_000, max_order_notional=BIG,
                      max_open_orders=1_000_000, credit_limit=BIG,
                      max_position=tuple((s, 10**12) for s in symbols))
    subs = tuple(FeedSubscription(venue=v.id, group=group_of(v), port=MD_PORT, source_ip=v.ip)
                 for v in venues)
    routing = Routing(default_venue=SOR, model=model_path, fill_model=model_doc,
                      miss_penalty=miss_penalty if model_doc is not None else 0)
    return Config(appliance=APP, routing=routing, tables=Tables(orders=65536, tx_frames=8192),
                  sessions=(STRATEGY,), venues=venues, instruments=instruments,
                  accounts=(account,),
                  market_data=MarketData(symbols=tuple(symbols), subscriptions=subs,
                                         stale_after_ms=2000))


def _dec(fixed: int) -> str:
    """A fixed-point (8 decimals) amount as the configuration writes it."""
    from decimal import Decimal
    return format(Decimal(fixed) / 10**8, "f")


def config_yaml(cfg: Config, journal: str, route_records: bool = True) -> str:
    """The YAML of a run's configuration (sim_config's shape) with a journal
    at `journal`: what the journal's GENERATION record holds, so that the
    journal can be re-executed (omsctl journal replay) and its venues named
    (omsctl model dataset).  Limits beyond what the YAML accepts are cut
    to its largest (none that the runs' orders come near)."""
    a, r, md = cfg.appliance, cfg.routing, cfg.market_data
    if r.fill_model is not None and r.model is None:
        raise ValueError("a journaled run with a model needs the model's file (--model)")
    out = [f"appliance: {{mac: \"{a.mac}\", ip: {a.ip}, strategy_port: {a.strategy_port}, "
           f"venue_port: {a.venue_port}}}",
           f"tables: {{orders: {cfg.tables.orders}, tx_frames: {cfg.tables.tx_frames}}}",
           "sessions:"]
    out += [f"  - {{id: {s.id}, ip: {s.ip}, port: {s.port}, mac: \"{s.mac}\", "
            f"timeout_ms: {s.timeout_ms}}}" for s in cfg.sessions]
    out.append("venues:")
    out += [f"  - {{id: {v.id}, name: {v.name}, session: {v.session}, ip: {v.ip}, "
            f"port: {v.port}, mac: \"{v.mac}\", timeout_ms: {v.timeout_ms}}}"
            for v in cfg.venues]
    out.append("routing:\n  default_venue: sor")
    if r.model is not None:
        out.append(f"  model: {Path(r.model).resolve()}\n  miss_penalty: {_dec(r.miss_penalty)}")
    out.append("instruments:")
    out += [f"  - {{symbol: {i.symbol}, tick_size: {_dec(i.tick_size)}, "
            f"reference_price: {_dec(i.reference_price)}}}" for i in cfg.instruments]
    out.append("accounts:")
    for ac in cfg.accounts:
        pos = ", ".join(f"{s}: {n}" for s, n in ac.max_position)
        out.append(f"  - {{id: {ac.id}, max_order_qty: {min(ac.max_order_qty, 999_999)}, "
                   f"max_order_notional: {_dec(ac.max_order_notional)}, "
                   f"max_open_orders: {ac.max_open_orders}, "
                   f"credit_limit: {_dec(ac.credit_limit)}, max_position: {{{pos}}}}}")
    out.append(f"market_data:\n  symbols: [{', '.join(md.symbols)}]\n"
               f"  stale_after_ms: {md.stale_after_ms}\n  subscriptions:")
    out += [f"    - {{venue: {s.venue}, group: {s.group}, port: {s.port}, "
            f"source_ip: {s.source_ip}}}" for s in md.subscriptions]
    out.append(f"journal: {{path: {journal}, durability: none, "
               f"route_records: {str(route_records).lower()}}}")
    return "\n".join(out) + "\n"


def journaled(cfg: Config, path: str | Path, route_records: bool = True) -> Config:
    """`cfg` as its YAML with a journal at `path` (ROUTE records on unless
    asked otherwise; with a model they always are)."""
    from control.config import load_config_text
    text = config_yaml(cfg, str(Path(path).resolve()), route_records)
    return load_config_text(text, f"<whatif-sim {Path(path).name}>")


def new_sims(cfg: Config, profiles: list[str], seed: int) -> dict[str, VenueSim]:
    """One simulator per venue, every one with the same seed (so the opening
    displayed books are identical), publishing its book to its group."""
    symbols = [i.symbol for i in cfg.instruments]
    locates = {s: i + 1 for i, s in enumerate(symbols)}
    sims = {}
    for v, prof in zip(cfg.venues, profiles, strict=True):
        md = MarketDataConfig(group=group_of(v), port=MD_PORT, session=f"MD{v.session}"[:10],
                              locates=locates, heartbeat_ms=200)
        sims[v.ip] = VenueSim(v, cfg.appliance, symbols=symbols, seed=seed, profile=prof,
                              market_data=md)
    return sims


# --------------------------------------------------------------------------
# The strategy
# --------------------------------------------------------------------------

def strategy_lines(*, seed: int, orders: int, rate_hz: float, horizon_ms: int,
                   start_ns: int, market: dict[str, VenueSim], symbols=SYMBOLS,
                   ioc_share: float = 0.5, at_touch: float = 0.8) -> list[str]:
    """A seeded strategy as pcaps/builder scenario lines: new orders to the
    router (venue 0) and the cancel of each day order at its horizon.

    Each order is priced from the consolidated touch (best ask for a buy,
    best bid for a sell, over every venue) that `market` -- fresh
    simulators with the runs' seed, without the strategy's own orders --
    shows at its time: at the touch, or one tick through it.  So the
    orders are fixed before either run (both runs send the same bytes) and
    are marketable, which the smart order router asks of a limit order."""
    rng = random.Random(f"whatif-strategy:{seed}")
    events: list[tuple[int, int, dict]] = []
    now = start_ns
    for i in range(orders):
        now += max(1, int(rng.expovariate(rate_hz) * 1e9))
        sym = rng.choice(symbols)
        buy = rng.random() < 0.5
        through = 0 if rng.random() < at_touch else 1
        lots = rng.randint(1, 5)
        ioc = rng.random() < ioc_share
        touches = []
        for sim in market.values():
            sim.tick(now)
            sim.take_market_data_frames()
            bid, _, ask, _ = sim.displayed_top(sym)
            if ask if buy else bid:
                touches.append(ask if buy else bid)
        ref = default_ref_price(sym)
        touch = (min(touches) if buy else max(touches)) if touches else \
            (ref + TICK if buy else ref - TICK)
        price = touch + through * TICK if buy else touch - through * TICK
        events.append((now, 0, {"timestamp_ns": now, "order_id": i + 1, "symbol": sym,
                                "side": "buy" if buy else "sell", "volume": lots * 100,
                                "price": price / 10**4, "tif": "ioc" if ioc else "day",
                                "venue": 0, "account": 1}))
        if not ioc:
            events.append((now + horizon_ms * MS, 1, {"timestamp_ns": now + horizon_ms * MS,
                                                      "action": "cancel", "order_id": i + 1}))
    events.sort(key=lambda e: (e[0], e[1]))
    return [json.dumps(e[2]) for e in events]


def strategy_session(cfg: Config, profiles: list[str], *, seed: int, orders: int,
                     rate_hz: float, horizon_ms: int, ioc_share: float = 0.5
                     ) -> list[tuple[int, bytes]]:
    """The seeded strategy's frames from the session's open, its orders
    priced against the seeded simulators' own quotes."""
    lines = strategy_lines(seed=seed, orders=orders, rate_hz=rate_hz, horizon_ms=horizon_ms,
                           start_ns=DAY_NS + OPEN_NS, market=new_sims(cfg, profiles, seed),
                           ioc_share=ioc_share)
    return strategy_frames(cfg, lines)


def strategy_frames(cfg: Config, lines: list[str], source: str = "<strategy>"
                    ) -> list[tuple[int, bytes]]:
    from pcaps.builder import build_frames

    return build_frames(lines, cfg, source)


# --------------------------------------------------------------------------
# One run: the core, its feeds and the simulators
# --------------------------------------------------------------------------

TO_VENUE, TO_CORE = 0, 1


def run_market(cfg: Config, records: list[tuple[int, bytes]], profiles: list[str], seed: int,
               end_ns: int, journal: str | Path | None = None,
               route_records: bool = True) -> dict:
    """Run the strategy's frames through the C core against fresh seeded
    simulators until `end_ns`.  Every simulator runs its process up to each
    call's time first; its answers reach the core VENUE_LATENCY_NS later,
    its market data at once; the core's frames reach a simulator
    VENUE_LATENCY_NS after it sent them.  Returns the strategy-bound
    frames with their times, the routing decisions and the counters.
    With `journal`, the core's journal is kept there (a new file): every
    burst, the market data and a ROUTE record per routing decision, as the
    appliance journals them."""
    from dataplane.core import Core
    from dataplane.market_data import CMarketData

    jnl = None
    if journal is not None:
        from dataplane.journal import Journal
        Path(journal).unlink(missing_ok=True)
        cfg = journaled(cfg, journal, route_records)
    core = Core(cfg)
    md = CMarketData(cfg)
    md.attach(core)
    if journal is not None:
        jnl = Journal(cfg.journal, cfg)
        core.journal = jnl
        jnl.attach(core)
        md.set_journal(jnl)
    try:
        return _run(core, md, cfg, records, profiles, seed, end_ns)
    finally:
        if jnl is not None:
            md.set_journal(None)
            core.journal = None
            jnl.close()


def _run(core, md, cfg: Config, records: list[tuple[int, bytes]], profiles: list[str],
         seed: int, end_ns: int) -> dict:
    from dataplane.pcap_backend import MAX_BURST
    from dataplane.replay import _frame_udp

    sims = new_sims(cfg, profiles, seed)
    heap: list[tuple[int, int, int, bytes]] = [(ts, TO_CORE, i, f)
                                               for i, (ts, f) in enumerate(records)]
    heapq.heapify(heap)
    n = len(heap)
    to_strategy: list[tuple[int, bytes]] = []
    decisions: list[dict] = []
    md_requests = 0
    strategy_port = cfg.appliance.strategy_port
    while True:
        due = [s.next_event_ns() for s in sims.values()]
        now = min([t for t in due if t is not None] + [heap[0][0] if heap else end_ns + 1,
                                                       core.next_deadline()])
        if now > end_ns:
            break
        burst: list[bytes] = []
        while heap and heap[0][0] == now:
            _, kind, _, frame = heapq.heappop(heap)
            if kind == TO_CORE:
                burst.append(frame)
                continue
            udp = _frame_udp(frame)
            sim = sims.get(udp[0]) if udp else None
            if sim is not None:
                for a in sim.handle_frame(frame, now):
                    n += 1
                    heapq.heappush(heap, (now + VENUE_LATENCY_NS, TO_CORE, n, a))
        for sim in sims.values():
            for a in sim.tick(now):
                n += 1
                heapq.heappush(heap, (now + VENUE_LATENCY_NS, TO_CORE, n, a))
            burst += sim.take_market_data_frames()
        tx: list[bytes] = []
        for i in range(0, max(1, len(burst)), MAX_BURST):  # as a poll-mode loop sees them
            core_burst = md.split(burst[i:i + MAX_BURST], now)
            md_requests += len(md.take_requests())
            tx += core.process_burst(core_burst, now)
            decisions += core.route_decisions(len(decisions) + 1)
        for frame in tx:
            udp = _frame_udp(frame)
            if udp is not None and udp[1] == strategy_port:
                to_strategy.append((now, frame))
            else:
                n += 1
                heapq.heappush(heap, (now + VENUE_LATENCY_NS, TO_VENUE, n, frame))
    return {"to_strategy": to_strategy, "decisions": decisions, "stats": core.stats(),
            "md_requests": md_requests, "core": core}


def sent_orders(cfg: Config, records: list[tuple[int, bytes]]) -> dict[int, int]:
    """cl_ord_id -> when the strategy sent it (its first NewOrder)."""
    from dataplane.replay import _frame_udp
    from pcaps.layers import decode_sp

    sent: dict[int, int] = {}
    for ts, frame in records:
        udp = _frame_udp(frame)
        if udp is None or udp[2] != cfg.appliance.strategy_port:
            continue
        for m in decode_sp(udp[3]):
            if m.get("type") == "NewOrder":
                sent.setdefault(m["cl_ord_id"], ts)
    return sent


def fills_within(run: dict, sent: dict[int, int], horizon_ns: int) -> dict:
    """Per order (in cl_ord_id order): filled within the horizon of its
    send (0/1), and how the run ended for it."""
    from control.metrics import reason_names
    from dataplane.core import lib
    from dataplane.replay import _frame_udp
    from pcaps.layers import decode_sp

    names = reason_names(lib)
    first_fill: dict[int, int] = {}
    rejected: dict[str, int] = {}
    for ts, frame in run["to_strategy"]:
        for m in decode_sp(_frame_udp(frame)[3]):
            kind, cid = m.get("type"), m.get("cl_ord_id")
            if kind == "Fill" and cid not in first_fill:
                first_fill[cid] = ts
            elif kind == "Rejected" and m.get("ref_type") == "NewOrder":
                reason = names.get(m.get("reason"), str(m.get("reason")))
                rejected[reason] = rejected.get(reason, 0) + 1
    ids = sorted(sent)
    filled = np.array([cid in first_fill and first_fill[cid] - sent[cid] <= horizon_ns
                       for cid in ids], dtype=np.int8)
    venue_of_order = {d["cl_ord_id"]: d["venue"] for d in run["decisions"] if d.get("venue")}
    by_venue: dict[int, list[int]] = {}  # venue -> [orders, filled]
    for cid, f in zip(ids, filled, strict=True):
        if cid in venue_of_order:
            c = by_venue.setdefault(venue_of_order[cid], [0, 0])
            c[0] += 1
            c[1] += int(f)
    by_model = sum(bool(d.get("by_model")) for d in run["decisions"])
    return {"filled": filled, "rejected": rejected, "routed_by_venue": by_venue,
            "decided_by_model": by_model}


# --------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------

def block_bootstrap(diff: np.ndarray, *, block: int, resamples: int, seed: int
                    ) -> tuple[float, float]:
    """95% percentile interval of the mean of `diff` by the circular block
    bootstrap: each resample strings together random blocks of `block`
    consecutive values (wrapping at the end) up to len(diff)."""
    n = len(diff)
    if n == 0:
        return 0.0, 0.0
    block = max(1, min(block, n))
    rng = np.random.default_rng(seed)
    k = -(-n // block)
    wrapped = np.concatenate([diff, diff[:block]])
    csum = np.concatenate([[0.0], np.cumsum(wrapped, dtype=np.float64)])
    starts = rng.integers(0, n, size=(resamples, k))
    sums = (csum[starts + block] - csum[starts])
    # the last block is cut so that every resample has exactly n values
    last = n - (k - 1) * block
    sums[:, -1] = csum[starts[:, -1] + last] - csum[starts[:, -1]]
    means = sums.sum(axis=1) / n
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def compare_routers(*, model_doc: dict, model_path: str | None = None,
                    names: list[str] | None = None, identical: str | None = None,
                    seed: int = 1, orders: int = 1000, rate_hz: float = 5.0,
                    horizon_ms: int = 1000, miss_penalty: int = 5_000_000,
                    scenario: list[str] | None = None, block: int = 50, ioc_share: float = 1.0,
                    resamples: int = 2000, journal_dir: str | Path | None = None) -> dict:
    """Both runs and the comparison (what --json writes)."""
    names = list(model_doc["venues"]) if names is None else names
    profiles = [identical if identical else n.lower() for n in names]
    for p in profiles:
        if p not in PROFILES:
            raise ValueError(f"no venue profile {p!r} (profiles: {', '.join(sorted(PROFILES))})")
    rule_cfg = sim_config(names)
    model_cfg = sim_config(names, model_doc=model_doc, model_path=model_path,
                           miss_penalty=miss_penalty)
    records = strategy_frames(rule_cfg, scenario) if scenario is not None else strategy_session(
        rule_cfg, profiles, seed=seed, orders=orders, rate_hz=rate_hz, horizon_ms=horizon_ms,
        ioc_share=ioc_share)
    if not records:
        raise ValueError("the strategy sends nothing")
    # both runs start the simulators at the same moment, before any order
    end = records[-1][0] + horizon_ms * MS + 10 * MS
    sent = sent_orders(rule_cfg, records)
    horizon = horizon_ms * MS
    runs = {}
    for label, cfg in (("rule", rule_cfg), ("model", model_cfg)):
        jpath = None
        if journal_dir is not None:
            Path(journal_dir).mkdir(parents=True, exist_ok=True)
            jpath = Path(journal_dir) / f"{label}.journal"
        run = run_market(cfg, records, profiles, seed, end, journal=jpath)
        runs[label] = fills_within(run, sent, horizon) | {
            "md_requests": run["md_requests"],
            "orders_routed": run["stats"]["event"]["ORDERS_ROUTED"]}
    rule, model = runs["rule"]["filled"], runs["model"]["filled"]
    diff = model.astype(np.float64) - rule
    lo, hi = block_bootstrap(diff, block=block, resamples=resamples, seed=seed)
    venue_names = {k + 1: n for k, n in enumerate(names)}

    def public(r: dict) -> dict:
        return {"fill_rate": float(r["filled"].mean()), "filled": int(r["filled"].sum()),
                "orders_routed": r["orders_routed"], "decided_by_model": r["decided_by_model"],
                "routed_by_venue": {venue_names[v]: {"orders": c[0], "filled": c[1]}
                                    for v, c in sorted(r["routed_by_venue"].items())},
                "rejected": dict(sorted(r["rejected"].items())),
                "md_retransmission_requests": r["md_requests"]}

    return {
        "model_id": model_doc["model_id"], "seed": seed, "orders": len(sent),
        "horizon_ms": horizon_ms, "miss_penalty": miss_penalty / 10**8,
        "venues": dict(zip(names, profiles, strict=True)),
        "identical_venues": bool(identical),
        "rule": public(runs["rule"]), "model": public(runs["model"]),
        "difference": float(diff.mean()),
        "interval95": [lo, hi],
        "bootstrap": {"method": "circular block bootstrap of paired per-order differences",
                      "block_orders": block, "resamples": resamples, "seed": seed},
        "orders_changed": int((diff != 0).sum()),
    }


def format_text(r: dict) -> str:
    lo, hi = r["interval95"]
    out = [f"what-if against the seeded venue simulators: {r['orders']} orders, seed {r['seed']}, "
           f"horizon {r['horizon_ms']} ms, model {r['model_id']}"
           + (" (negative control: identical venues)" if r["identical_venues"] else ""),
           "venues: " + ", ".join(f"{n}={p}" for n, p in r["venues"].items())]
    for label in ("rule", "model"):
        x = r[label]
        routed = ", ".join(f"{n} {c['filled']}/{c['orders']}"
                           for n, c in x["routed_by_venue"].items())
        rej = ", ".join(f"{k} {v}" for k, v in x["rejected"].items()) or "none"
        out.append(f"  {label:<5} fill rate {x['fill_rate']:.4f} ({x['filled']} filled); "
                   f"{x['decided_by_model']} chosen by the model; filled/routed: {routed}; "
                   f"rejected: {rej}")
    verdict = ("above zero" if lo > 0 else "below zero" if hi < 0 else "contains zero")
    out.append(f"difference model - rule {r['difference']:+.4f}, bootstrap 95% interval "
               f"[{lo:+.4f}, {hi:+.4f}] ({verdict}; blocks of {r['bootstrap']['block_orders']} "
               f"orders, {r['bootstrap']['resamples']} resamples); "
               f"{r['orders_changed']} orders changed outcome")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the fill model's artefact (omsctl model train)")
    p.add_argument("--scenario", help="the strategy as pcaps/builder JSON Lines (default: "
                                      "the seeded strategy below)")
    p.add_argument("--orders", type=int, default=1000)
    p.add_argument("--rate-hz", type=float, default=5.0)
    p.add_argument("--ioc-share", type=float, default=1.0,
                   help="the seeded strategy's share of IOC orders")
    p.add_argument("--seed", type=int, default=1,
                   help="the simulators', the strategy's and the bootstrap's seed")
    p.add_argument("--horizon-ms", type=int, default=1000)
    p.add_argument("--miss-penalty", default="0.05",
                   help="routing.miss_penalty of the model run, dollars a share")
    p.add_argument("--venues", metavar="NAMES",
                   help="comma-separated venue names of the model to simulate (default: all "
                        "of the model's venues, each with the profile of its name)")
    p.add_argument("--identical", metavar="PROFILE",
                   help="negative control: every venue gets this profile")
    p.add_argument("--block", type=int, default=50, help="bootstrap block, orders")
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--json", metavar="FILE", help="write the result here (JSON)")
    p.add_argument("--journal-dir", metavar="DIR",
                   help="keep each run's journal here (rule.journal, model.journal), with a "
                        "ROUTE record per routing decision: input to omsctl model dataset")


def run(args: argparse.Namespace) -> int:
    from decimal import Decimal

    from control import fill_artefact

    try:
        doc = fill_artefact.load(args.model)
    except fill_artefact.ModelError as e:
        raise ValueError(f"{args.model}: {e}") from None
    scenario = None
    if args.scenario:
        scenario = Path(args.scenario).read_text(encoding="utf-8").splitlines()
    result = compare_routers(
        model_doc=doc, model_path=args.model, identical=args.identical, seed=args.seed,
        names=args.venues.upper().split(",") if args.venues else None,
        orders=args.orders, rate_hz=args.rate_hz, horizon_ms=args.horizon_ms,
        miss_penalty=int(Decimal(args.miss_penalty) * 10**8), scenario=scenario,
        block=args.block, resamples=args.resamples, ioc_share=args.ioc_share,
        journal_dir=args.journal_dir)
    sys.stdout.write(format_text(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


def add_subparser(sub) -> argparse.ArgumentParser:
    return subcommand.register(sub, "whatif-sim", "the rule router against the fill model on "
                               "fill rate, against the seeded venue simulators", __doc__,
                               add_arguments, run)


def main(argv: list[str] | None = None) -> int:
    return subcommand.standalone("whatif-sim", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())

