"""Simulated sessions sized for the fill-probability model (docs/fill-model.md).

    python -m pcaps.make_fill_sessions OUT [--train 3] [--train-orders 60000]
        [--eval-orders 200000] [--train-paths 1] [--eval-paths 8] [--jobs 2]

The sessions of pcaps/make_sim_sessions.py (same simulator, client and
seeds: session k starts on day k), but sized separately: the model's
training sessions need outcomes, not truth, so they run with one Monte Carlo
path; the held-out session (the last, in time order) needs the true
probabilities, so it runs with more.  Sessions are independent, so each runs
in its own process.  Writes sessionNN.orders.jsonl / .truth.jsonl and
manifest.json (train and eval session numbers) as make_sim_sessions does."""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from dataplane.venue_profiles import PROFILES
from pcaps.make_sim_sessions import simulate_session


def one_session(out: str, k: int, seed: int, orders: int, paths: int, rate_hz: float,
                horizon_ms: int, profiles: list[str]) -> dict:
    op = Path(out) / f"session{k:02d}.orders.jsonl"
    tp = Path(out) / f"session{k:02d}.truth.jsonl"
    with open(op, "w", encoding="utf-8") as fo, open(tp, "w", encoding="utf-8") as ft:
        return simulate_session(k, seed=seed, orders=orders, rate_hz=rate_hz, paths=paths,
                                horizon_ms=horizon_ms, profiles=profiles, orders_out=fo,
                                truth_out=ft)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pcaps.make_fill_sessions", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--train", type=int, default=3)
    ap.add_argument("--train-orders", type=int, default=60_000)
    ap.add_argument("--eval-orders", type=int, default=200_000)
    ap.add_argument("--train-paths", type=int, default=1)
    ap.add_argument("--eval-paths", type=int, default=8)
    ap.add_argument("--rate-hz", type=float, default=20.0)
    ap.add_argument("--horizon-ms", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    profiles = sorted(PROFILES)
    a.out.mkdir(parents=True, exist_ok=True)
    ev = a.train + 1
    plan = [(k, a.train_orders, a.train_paths) for k in range(1, a.train + 1)]
    plan.insert(0, (ev, a.eval_orders, a.eval_paths))  # the longest first
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        futs = {k: pool.submit(one_session, str(a.out), k, a.seed, n, p, a.rate_hz,
                               a.horizon_ms, profiles) for k, n, p in plan}
        summaries = {k: f.result() for k, f in futs.items()}
    manifest = {"seed": a.seed, "rate_hz": a.rate_hz, "horizon_ms": a.horizon_ms,
                "venues": profiles, "train": list(range(1, a.train + 1)), "eval": [ev],
                "truth_paths": {"train": a.train_paths, "eval": a.eval_paths},
                "sessions": [summaries[k] for k in sorted(summaries)]}
    (a.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    print(f"sessions -> {a.out} (train {manifest['train']}, eval {manifest['eval']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
