"""Journals to learn the fill model from (docs/fill-model.md "Dataset from
journals"): seeded sessions of the what-if strategy sent through the C core
against the seeded venue simulators (control/whatif_sim.py), routed by the
rule router, each kept as the core's journal with a ROUTE record per
routing decision.  Sessions in seed order are in time order: train on the
first, evaluate on the last.

    .venv/bin/python -m pcaps.make_fill_journals OUT --sessions 4 --orders 20000 \\
        [--venues fade,jitter,plain] [--rate-hz 20] [--ioc-share 0.5] [--jobs 2]

Writes OUT/sessionNN.journal and OUT/manifest.json."""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

MS = 1_000_000


def one(out: str, k: int, seed: int, names: list[str], orders: int, rate_hz: float,
        ioc_share: float, horizon_ms: int) -> dict:
    from control.whatif_sim import run_market, sim_config, strategy_session
    cfg = sim_config(names)
    profiles = [n.lower() for n in names]
    t0 = time.time()
    records = strategy_session(cfg, profiles, seed=seed, orders=orders, rate_hz=rate_hz,
                               horizon_ms=horizon_ms, ioc_share=ioc_share)
    path = Path(out) / f"session{k:02d}.journal"
    run = run_market(cfg, records, profiles, seed, records[-1][0] + (horizon_ms + 10) * MS,
                     journal=path)
    return {"session": k, "seed": seed, "journal": path.name, "orders": orders,
            "routed": run["stats"]["event"].get("ORDERS_ROUTED", 0),
            "bytes": path.stat().st_size, "seconds": round(time.time() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--orders", type=int, default=20000, help="orders per session")
    ap.add_argument("--venues", default="fade,jitter,plain")
    ap.add_argument("--rate-hz", type=float, default=20.0)
    ap.add_argument("--ioc-share", type=float, default=0.5)
    ap.add_argument("--horizon-ms", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=101, help="session k gets seed + k - 1")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    names = args.venues.upper().split(",")
    with ProcessPoolExecutor(args.jobs) as ex:
        done = list(ex.map(one, *zip(*[(args.out, k, args.seed + k - 1, names, args.orders,
                                        args.rate_hz, args.ioc_share, args.horizon_ms)
                                       for k in range(1, args.sessions + 1)], strict=True)))
    manifest = {"venues": names, "rate_hz": args.rate_hz, "ioc_share": args.ioc_share,
                "horizon_ms": args.horizon_ms, "sessions": done}
    (Path(args.out) / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for d in done:
        print(json.dumps(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
