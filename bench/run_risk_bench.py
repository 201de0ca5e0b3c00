"""Builds and runs the pre-trade risk benchmark (bench/risk_bench.c) and
records its figures.

    .venv/bin/python bench/run_risk_bench.py              # full run, appended to results
    .venv/bin/python bench/run_risk_bench.py --smoke      # small run, nothing recorded

The core's sources are compiled with the cffi build's flags and linked straight
into the benchmark.  Two runs: every (account, instrument) pair at random (tables
bigger than L2: the cold case), and flow concentrated on 4,096 pairs (warm).
Full runs append one JSON line per run to bench/results/risk_bench.jsonl
with the machine and the commit."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from run_core_bench import OPTIMIZE, ROOT, SOURCES, commit, machine, parse_figures

RESULTS = ROOT / "bench" / "results" / "risk_bench.jsonl"


def build(out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cc", "-std=gnu11", *OPTIMIZE, "-Wall", "-Wextra", "-Werror",
                    "-I", str(ROOT / "cdefs"), "-o", str(out),
                    str(ROOT / "bench" / "risk_bench.c"),
                    *[str(ROOT / "cdefs" / s) for s in SOURCES]],
                   check=True)


def run(orders: int, hot: int) -> dict:
    exe = ROOT / "bench" / "work" / "risk_bench"
    build(exe)
    r = subprocess.run([str(exe), str(orders), str(hot)], check=True, capture_output=True,
                       text=True)
    return parse_figures(r.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=2_000_000)
    ap.add_argument("--smoke", action="store_true", help="small run for CI; nothing recorded")
    args = ap.parse_args(argv)
    orders = 20_000 if args.smoke else args.orders
    rows = []
    for hot in (0, 4096):
        fig = run(orders, hot)
        rows.append({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(),
                     "machine": machine(), **fig})
        for k, v in fig.items():
            print(f"hot={hot} {k} {v}")
    if not args.smoke:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as f:
            for row in rows:
                f.write(json.dumps(row, sort_keys=True) + "\n")
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 1 if any(r["rejects"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
