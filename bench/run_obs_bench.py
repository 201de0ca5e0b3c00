"""Observability overhead: the core with its stage histograms off and on,
on the benchmark traffic, interleaved runs, medians (bench/obs_bench.c).
The gate: the histograms cost under 5 %.

    .venv/bin/python bench/run_obs_bench.py            # full run, appended to results
    .venv/bin/python bench/run_obs_bench.py --smoke    # small, nothing recorded
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_core_bench import OPTIMIZE, SOURCES, commit, machine, parse_figures  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "obs_bench.jsonl"
EXE = ROOT / "bench" / "work" / "obs_bench"
GATE_PCT = 5.0


def build() -> None:
    EXE.parent.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-std=gnu11", *OPTIMIZE, "-Wall", "-Wextra", "-Werror",
                    "-I", str(ROOT / "cdefs"), "-o", str(EXE), str(ROOT / "bench" / "obs_bench.c"),
                    str(ROOT / "bench" / "gen.c"), *[str(ROOT / "cdefs" / s) for s in SOURCES]],
                   check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=300_000)
    ap.add_argument("--capacity", type=int, default=65536)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="small run for CI; nothing recorded")
    args = ap.parse_args(argv)
    orders, runs, cap = (20_000, 3, 4096) if args.smoke else (args.orders, args.runs,
                                                              args.capacity)
    build()
    r = subprocess.run([str(EXE), str(orders), str(cap), str(runs)], check=True,
                       capture_output=True, text=True)
    fig = parse_figures(r.stdout)
    for k, v in fig.items():
        print(f"{k} {v}")
    if not args.smoke:
        row = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(),
               "machine": machine(), "orders": orders, "capacity": cap, **fig}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
        if fig["overhead_pct"] >= GATE_PCT:
            print(f"overhead {fig['overhead_pct']} % is over the {GATE_PCT} % gate")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
