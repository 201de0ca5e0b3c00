"""Builds and runs the feed-handler benchmark (bench/feed_bench.c) and
records its figures.

    .venv/bin/python bench/run_feed_bench.py              # full run, appended to results
    .venv/bin/python bench/run_feed_bench.py --smoke      # small run, nothing recorded

cdefs/feed.c and book.c are compiled with the cffi build's flags and linked
straight into the benchmark.  Figures: ns per ITCH message from arrival to
published top of book (p50/p99, one message per packet, TSC), messages per
second on one core (16 messages per packet; the wall-clock total and the
median and best 65,536-message stretch, since other work on a shared
machine takes whole stretches), the cost of one top-of-book read, and the
cost of one smart-routing decision from the worker (bench/route_bench.c,
linked with the whole core: route_ns_p50/p99 over 3 venues; fill_ns_p50/p99,
the fill-probability model evaluated for the 3 venues, and route_fill_ns_p50/p99,
both together).  Full
runs append one JSON line to bench/results/feed_bench.jsonl with the
machine, its load and the commit."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from run_core_bench import OPTIMIZE, ROOT, commit, machine, parse_figures

RESULTS = ROOT / "bench" / "results" / "feed_bench.jsonl"
SOURCES = ["feed.c", "book.c", "net.c"]


def build(out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-std=gnu11", *OPTIMIZE, "-Wall", "-Wextra", "-Werror",
                    "-I", str(ROOT / "cdefs"), "-o", str(out),
                    str(ROOT / "bench" / "feed_bench.c"),
                    *[str(ROOT / "cdefs" / s) for s in SOURCES]], check=True)


def build_route(out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    core = [w for w in (ROOT / "cdefs" / "core_sources.txt").read_text().splitlines()
            if w and not w.startswith("#")]
    subprocess.run([cc, "-std=gnu11", *OPTIMIZE, "-Wall", "-Wextra", "-Werror",
                    "-I", str(ROOT / "cdefs"), "-o", str(out),
                    str(ROOT / "bench" / "route_bench.c"),
                    *[str(ROOT / "cdefs" / s) for s in core]], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=8_000_000)
    ap.add_argument("--smoke", action="store_true", help="small run for CI; nothing recorded")
    args = ap.parse_args(argv)
    messages = 200_000 if args.smoke else args.messages
    exe = ROOT / "bench" / "work" / "feed_bench"
    build(exe)
    load = os.getloadavg()[0]
    r = subprocess.run([str(exe), str(messages)], check=True, capture_output=True, text=True)
    fig = parse_figures(r.stdout)
    route_exe = ROOT / "bench" / "work" / "route_bench"
    build_route(route_exe)
    r = subprocess.run([str(route_exe), str(20_000 if args.smoke else 1_000_000)], check=True,
                       capture_output=True, text=True)
    fig.update(parse_figures(r.stdout))
    for k, v in fig.items():
        print(f"{k} {v}")
    if not args.smoke:
        row = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(),
               "machine": machine(), "load_before": round(load, 2), **fig}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 1 if fig["latency_drops"] or fig["throughput_drops"] else 0


if __name__ == "__main__":
    sys.exit(main())
