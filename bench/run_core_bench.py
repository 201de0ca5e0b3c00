"""Builds and runs the core benchmark (bench/core_bench.c) and records its
figures.

    .venv/bin/python bench/run_core_bench.py              # full run, appended to results
    .venv/bin/python bench/run_core_bench.py --smoke      # small run, nothing recorded

The C core is compiled from cdefs/ with the same flags as the cffi build,
linked straight into the benchmark: no Python runs while it is timed.
Figures are printed one per line and, for full runs, appended as one JSON
line to bench/results/core_bench.jsonl with the machine and the commit, so
the trend shows from one run to the next."""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [w for w in (ROOT / "cdefs" / "core_sources.txt").read_text().splitlines()
           if w and not w.startswith("#")]
# the cffi modules' optimisation flags: what is timed is what runs
OPTIMIZE = [w for w in (ROOT / "cdefs" / "optimize_flags.txt").read_text().splitlines()
            if w and not w.startswith("#")]
RESULTS = ROOT / "bench" / "results" / "core_bench.jsonl"


def build(out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-std=gnu11", *OPTIMIZE, "-Wall", "-Wextra", "-Werror",
           "-I", str(ROOT / "cdefs"), "-o", str(out), str(ROOT / "bench" / "core_bench.c"),
           str(ROOT / "bench" / "gen.c"), *[str(ROOT / "cdefs" / s) for s in SOURCES]]
    subprocess.run(cmd, check=True)


def run(orders: int, capacity: int) -> dict:
    exe = ROOT / "bench" / "work" / "core_bench"
    build(exe)
    r = subprocess.run([str(exe), str(orders), str(capacity)], check=True, capture_output=True,
                       text=True)
    return parse_figures(r.stdout)


def parse_figures(stdout: str) -> dict:
    """The benchmarks print one "name value" line per figure."""
    figures: dict = {}
    for line in stdout.splitlines():
        key, value = line.split()
        figures[key] = float(value) if "." in value else int(value)
    return figures


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()}


def commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                       text=True)
    return r.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=2_000_000)
    ap.add_argument("--capacity", type=int, action="append",
                    help="order table slots (repeatable); default 16384 and 65536")
    ap.add_argument("--smoke", action="store_true", help="small run for CI; nothing recorded")
    args = ap.parse_args(argv)
    capacities = args.capacity or [16384, 65536]
    orders = 20_000 if args.smoke else args.orders
    if args.smoke:
        capacities = [4096]
    rows = []
    for cap in capacities:
        fig = run(orders, cap)
        row = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(),
               "machine": machine(), "orders": orders, "capacity": cap, **fig}
        rows.append(row)
        for k, v in fig.items():
            print(f"capacity={cap} {k} {v}")
    if not args.smoke:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as f:
            for row in rows:
                f.write(json.dumps(row, sort_keys=True) + "\n")
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
    bad = [r for r in rows if r["system_rejects"] or r["drops"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
