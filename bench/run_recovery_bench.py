"""Builds and runs the recovery benchmark (bench/recovery_bench.c) and
records its figures.

    .venv/bin/python bench/run_recovery_bench.py            # 10,000,000 events, recorded
    .venv/bin/python bench/run_recovery_bench.py --smoke    # 100,000 events, nothing recorded

One core handles the events (bench/gen.c's valid orders and venue answers,
in bursts of 32, a timer call every 64 bursts) and journals every call; a
fresh core then recovers from the journal, from a warm page cache (what a
process restart finds) and a cold one (a machine restart), and its state is
compared with the original's.  The goal: 10 M events recovered in under
5 s on this machine.  Full runs append one JSON line to
bench/results/recovery_bench.jsonl with the machine and the commit."""
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
RESULTS = ROOT / "bench" / "results" / "recovery_bench.jsonl"
GOAL_S = 5.0


def build(out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-std=gnu11", *OPTIMIZE, "-Wall", "-Wextra", "-Werror",
           "-I", str(ROOT / "cdefs"), "-o", str(out), str(ROOT / "bench" / "recovery_bench.c"),
           str(ROOT / "bench" / "gen.c"), *[str(ROOT / "cdefs" / s) for s in SOURCES],
           "-lpthread"]
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--capacity", type=int, default=65536)
    ap.add_argument("--durability", choices=["none", "periodic", "burst"], default="none")
    ap.add_argument("--journal", default=str(ROOT / "bench" / "work" / "recovery.oms"),
                    help="where the journal is written (removed afterwards)")
    ap.add_argument("--smoke", action="store_true", help="small run for CI; nothing recorded")
    args = ap.parse_args(argv)
    events = 100_000 if args.smoke else args.events
    # the machine is shared: how busy it was is part of the figure
    load_before = os.getloadavg()[0]
    exe = ROOT / "bench" / "work" / "recovery_bench"
    build(exe)
    Path(args.journal).parent.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run([str(exe), str(events), str(args.capacity), args.journal,
                            args.durability], capture_output=True, text=True)
    finally:
        Path(args.journal).unlink(missing_ok=True)
    if r.returncode != 0 and not r.stdout:
        print(r.stderr, file=sys.stderr)
        return 1
    fig = parse_figures(r.stdout)
    for k, v in fig.items():
        print(f"{k} {v}")
    if not args.smoke:
        row = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(),
               "machine": machine(), "capacity": args.capacity,
               "durability": args.durability, "goal_s": GOAL_S,
               "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)], **fig}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 0 if fig.get("state_equal") == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
