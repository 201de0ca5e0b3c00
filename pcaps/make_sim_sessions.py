"""Simulated trading sessions against venues with hidden behaviour, for the
fill-probability work of issue 9 (docs/venue-sim.md "Sessions").

    python -m pcaps.make_sim_sessions out/sim_sessions [--sessions 5] [--eval 2]
        [--orders 2000] [--paths 32] [--horizon-ms 1000] [--seed 1]

Each session is one simulated day (session k starts on day k, so they are
in time order): one simulator per venue profile in
dataplane/venue_profiles.py (venue name = profile name, every venue seeded
alike, so the opening displayed books are identical), and a seeded client
sending ``--orders`` orders, Poisson in time (``--rate-hz``), each to a
venue, symbol and side drawn uniformly, priced ``-1 .. +3`` ticks from the
venue's displayed touch on its side (so some rest behind, some join,
some improve, some cross), 1-5 lots, 4 in 5 day orders and 1 in 5 IOC; a
resting order is cancelled when the horizon has passed since the venue's
matching engine took it (the Accepted message's timestamp: on a slow venue
that is later than the send).

Per session ``sessionNN.orders.jsonl`` (one line per order: what the
client saw at decision time -- the venue's displayed top of book -- what it
sent, and what happened: shares filled, first fill time, filled within the
horizon of the venue's entry, as the truth is) and
``sessionNN.truth.jsonl`` (the simulators' true fill probabilities, for
evaluation only).  ``manifest.json`` names the split:
the first sessions train, the last ``--eval`` evaluate (time order, never
shuffled).  The outputs are not committed; ``SHA256SUMS`` in the output
directory lists them, and pcaps/sim_sessions.SHA256SUMS pins the default
run's (tests/test_venue_hidden.py regenerates a small run and checks its
pinned sums)."""
from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import random
import sys
from pathlib import Path

from control.config import Appliance, Venue
from dataplane.venue_client import SimClient
from dataplane.venue_profiles import PROFILES
from dataplane.venue_sim import VenueSim

SYMBOLS = ["AAPL", "MSFT", "NVDA"]
TICK = 100
DAY_NS = 86_400_000_000_000
OPEN_NS = 34_200 * 1_000_000_000
APP = Appliance(mac="02:00:00:00:00:01", ip="10.0.0.1", strategy_port=7000, venue_port=7001)


def venue_of(k: int, name: str) -> Venue:
    return Venue(id=k + 1, name=name.upper(), session=f"SIM{k + 1:02d}", ip=f"10.0.1.{k + 1}",
                 port=9000, mac=f"02:00:00:00:01:{k + 1:02x}")


def simulate_session(index: int, *, seed: int, orders: int, rate_hz: float, paths: int,
                     horizon_ms: int, profiles: list[str], orders_out, truth_out) -> dict:
    """Run one session; write its two JSONL files; return its summary."""
    day0 = index * DAY_NS + OPEN_NS
    sess_seed = seed * 1000 + index
    sims, clients = {}, {}
    for k, name in enumerate(profiles):
        sims[name] = VenueSim(venue_of(k, name), APP, symbols=SYMBOLS, seed=sess_seed,
                              profile=name, truth_log=truth_out, truth_paths=paths,
                              truth_horizon_ms=horizon_ms)
        clients[name] = SimClient(sims[name])
    rng = random.Random(f"client:{sess_seed}")
    horizon = horizon_ms * 1_000_000
    now = day0
    # (when to look, order number, venue, order, row): cancel and report
    pending: list[tuple[int, int, str, object, dict]] = []
    done: dict[int, dict] = {}
    filled_any = 0

    def settle(until: int) -> None:
        nonlocal filled_any
        while pending and pending[0][0] <= until:
            t, i, name, o, row = heapq.heappop(pending)
            c = clients[name]
            c.tick(t)
            day = t - t % DAY_NS
            if not o.accepted and not o.done:
                heapq.heappush(pending, (t + horizon, i, name, o, row))  # still on its way
                continue
            if not o.done and day + o.accepted_ns + horizon > t:
                heapq.heappush(pending, (day + o.accepted_ns + horizon, i, name, o, row))
                continue
            if not o.done:
                c.cancel(t, o.ref)
            first, entry = o.first_fill_ns, o.accepted_ns
            row.update(filled=o.filled, entry_delay_ms=(entry - row["t_ns"] % DAY_NS) / 1e6,
                       first_fill_ms=None if first < 0 else (first - entry) / 1e6,
                       filled_in_horizon=0 <= first - entry <= horizon)
            filled_any += row["filled_in_horizon"]
            done[i] = row
        while next_out[0] in done:  # rows in the order the orders were sent
            orders_out.write(json.dumps(done.pop(next_out[0]), separators=(",", ":")) + "\n")
            next_out[0] += 1

    next_out = [0]

    for i in range(orders):
        now += max(1, int(rng.expovariate(rate_hz) * 1e9))
        settle(now)
        name = rng.choice(profiles)
        sym = rng.choice(SYMBOLS)
        side = rng.choice("BS")
        offset = rng.randint(-1, 3)
        lots = rng.randint(1, 5)
        tif = "3" if rng.random() < 0.2 else "0"
        c = clients[name]
        c.tick(now)  # the venue's book as of now: what its feed shows
        bid_px, bid_q, ask_px, ask_q = sims[name].displayed_top(sym)
        touch = bid_px if side == "B" else ask_px
        if not touch:
            touch = (ask_px - TICK) if side == "B" and ask_px else (bid_px + TICK) if bid_px \
                else sims[name]._ref_prices[sym]
        price = touch + offset * TICK if side == "B" else touch - offset * TICK
        row = {"session": index, "seq": i, "t_ns": now, "venue": name.upper(), "symbol": sym,
               "side": side, "price": price, "qty": lots * 100, "tif": tif,
               "offset_ticks": offset, "bid_px": bid_px, "bid_qty": bid_q, "ask_px": ask_px,
               "ask_qty": ask_q}
        o = c.enter(now, side, lots * 100, sym, price, tif)
        row["user_ref"] = o.ref
        heapq.heappush(pending, (now + horizon, i, name, o, row))
    settle(1 << 62)
    return {"session": index, "orders": orders, "filled_in_horizon": filled_any,
            "start_ns": day0, "end_ns": now}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_sessions(out: Path, *, sessions: int, eval_sessions: int, seed: int, orders: int,
                  rate_hz: float, paths: int, horizon_ms: int,
                  profiles: list[str] | None = None) -> dict:
    if not 0 < eval_sessions < sessions:
        raise ValueError("--eval must leave at least one training session")
    profiles = sorted(PROFILES) if profiles is None else profiles
    out.mkdir(parents=True, exist_ok=True)
    summaries, files = [], []
    for k in range(1, sessions + 1):
        op, tp = out / f"session{k:02d}.orders.jsonl", out / f"session{k:02d}.truth.jsonl"
        with open(op, "w", encoding="utf-8") as fo, open(tp, "w", encoding="utf-8") as ft:
            summaries.append(simulate_session(k, seed=seed, orders=orders, rate_hz=rate_hz,
                                              paths=paths, horizon_ms=horizon_ms,
                                              profiles=profiles, orders_out=fo, truth_out=ft))
        files += [op, tp]
    manifest = {"seed": seed, "orders_per_session": orders, "rate_hz": rate_hz,
                "truth_paths": paths, "horizon_ms": horizon_ms, "venues": profiles,
                "symbols": SYMBOLS,
                "train": [s["session"] for s in summaries[:sessions - eval_sessions]],
                "eval": [s["session"] for s in summaries[sessions - eval_sessions:]],
                "sessions": summaries}
    mp = out / "manifest.json"
    mp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    files.append(mp)
    sums = "".join(f"{sha256(f)}  {f.name}\n" for f in files)
    (out / "SHA256SUMS").write_text(sums, encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pcaps.make_sim_sessions", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--eval", type=int, default=2, dest="eval_sessions")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--rate-hz", type=float, default=20.0)
    ap.add_argument("--paths", type=int, default=32)
    ap.add_argument("--horizon-ms", type=int, default=1000)
    ap.add_argument("--profiles", default=None,
                    help="comma-separated profile names (default: all)")
    a = ap.parse_args(argv)
    profiles = a.profiles.split(",") if a.profiles else None
    try:
        m = make_sessions(a.out, sessions=a.sessions, eval_sessions=a.eval_sessions,
                          seed=a.seed, orders=a.orders, rate_hz=a.rate_hz, paths=a.paths,
                          horizon_ms=a.horizon_ms, profiles=profiles)
    except (ValueError, OSError) as e:
        print(f"make_sim_sessions: {e}", file=sys.stderr)
        return 1
    print(f"{len(m['sessions'])} sessions -> {a.out} (train {m['train']}, eval {m['eval']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
