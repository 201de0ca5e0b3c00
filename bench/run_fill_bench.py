"""Builds and runs the fill-model benchmark (bench/fill_bench.c): the cost of
three venues' fill probabilities for one order, as the router asks for them,
one decision at a time beside an empty call timed the same way, and per
decision in blocks of 16; with --before REF the evaluator of that git
revision timed on the same inputs in the same run (alternate stretches of
1,024 decisions), its answers checked equal and the ratios printed.

    .venv/bin/python bench/run_fill_bench.py --before 61b0834   # before/after
    .venv/bin/python bench/run_fill_bench.py --scalar           # both without AVX-512
    .venv/bin/python bench/run_fill_bench.py --smoke             # small run
    .venv/bin/python bench/run_fill_bench.py --before 61b0834 --route --record

--route also times the decision as the worker makes it (bench/route_bench.c:
fill_ns_*, route_model_ns_*), of this tree and with --before of REF's, in
alternate runs (ROUTE_ROUNDS each), medians and ratios printed.  --record
appends one JSON line to bench/results/fill_bench.jsonl with the machine, its
load and the commit.

The earlier cdefs/fill_model.c is taken with `git show REF:cdefs/...` into a
temporary directory (with its own headers), compiled with its symbols
renamed before_*, and linked next to the current one; the functions the
benchmark does not call are dropped by the linker (--gc-sections)."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run_core_bench import commit, machine, parse_figures
from run_feed_bench import build_route

ROOT = Path(__file__).resolve().parent.parent
CFLAGS = ["-std=gnu11", "-O2", "-march=native", "-Wall", "-Wextra", "-Werror",
          "-ffunction-sections", "-fdata-sections"]
RESULTS = ROOT / "bench" / "results" / "fill_bench.jsonl"
ROUTE_ROUNDS = 3
ROUTE_FIGURES = ("fill_ns_p50", "fill_ns_p99", "route_model_ns_p50", "route_model_ns_p99")
RENAME = ["oms_fill_prob", "oms_fill_probs", "oms_fill_features", "oms_fill_model_seal",
          "fill_route_choose"]


def git_cdefs(ref: str, into: Path) -> Path:
    """cdefs/ of revision `ref`, extracted under `into`."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "cdefs"], check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    return into / "cdefs"


def build(out: Path, before: str | None, work: Path, scalar: bool = False) -> None:
    cc = os.environ.get("CC", "cc")
    objs = []
    old = git_cdefs(before, work) if before else None
    bench_defs = []
    if old:
        # an evaluator with the one-call interface is timed through it
        one_call = "oms_fill_probs" in (old / "fill_model.h").read_text()
        bench_defs = ["-DFILL_BEFORE", *(["-DFILL_BEFORE_PROBS"] if one_call else [])]
    for src, extra in ((ROOT / "bench" / "fill_bench.c", bench_defs),
                       (ROOT / "cdefs" / "fill_model.c", ["-mno-avx512f"] if scalar else [])):
        obj = work / (src.stem + ".o")
        subprocess.run([cc, *CFLAGS, *extra, "-I", str(ROOT / "cdefs"), "-c", str(src),
                        "-o", str(obj)], check=True)
        objs.append(obj)
    if old:
        obj = work / "before_fill_model.o"
        subprocess.run([cc, *CFLAGS, "-Wno-error", *[f"-D{s}=before_{s}" for s in RENAME],
                        *(["-mno-avx512f"] if scalar else []),
                        "-I", str(old), "-c", str(old / "fill_model.c"), "-o", str(obj)],
                       check=True)
        objs.append(obj)
    subprocess.run([cc, "-Wl,--gc-sections", "-o", str(out), *map(str, objs)], check=True)


def route_figures(before: str | None, work: Path, decisions: int) -> dict:
    """bench/route_bench.c of this tree, and of `before` (its own cdefs and
    bench), run in turn ROUTE_ROUNDS times each: the medians, and the ratios."""
    exes = {"": work / "route_bench"}
    build_route(exes[""])
    if before:
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", before, "cdefs", "bench"],
                             check=True, capture_output=True).stdout
        old = work / "before_tree"
        old.mkdir()
        subprocess.run(["tar", "-x", "-C", str(old)], input=tar, check=True)
        exes["before_"] = work / "before_route_bench"
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        f"sys.path.insert(0, {str(old / 'bench')!r}); "
                        "import run_feed_bench as b; "
                        f"b.ROOT = Path({str(old)!r}); b.build_route(Path(sys.argv[1]))",
                        str(exes["before_"])], check=True, cwd=str(old / "bench"))
    runs: dict = {k: [] for k in exes}
    for _ in range(ROUTE_ROUNDS):
        for k, exe in exes.items():
            r = subprocess.run([str(exe), str(decisions)], check=True, capture_output=True,
                               text=True)
            runs[k].append(parse_figures(r.stdout))
    fig: dict = {}
    for k, rs in runs.items():
        for name in ROUTE_FIGURES:
            fig[f"route_{k}{name}"] = statistics.median(r[name] for r in rs)
            fig[f"route_{k}{name}_runs"] = [r[name] for r in rs]
    if before:
        for name in ROUTE_FIGURES:
            fig[f"route_ratio_{name}"] = round(fig[f"route_{name}"] / fig[f"route_before_{name}"],
                                               2)
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decisions", type=int, default=2_000_000)
    ap.add_argument("--before", metavar="REF", help="git revision whose evaluator to compare")
    ap.add_argument("--scalar", action="store_true",
                    help="build the evaluators without AVX-512 (their scalar paths)")
    ap.add_argument("--route", action="store_true",
                    help="also time the worker's decision (bench/route_bench.c)")
    ap.add_argument("--record", action="store_true", help=f"append the figures to {RESULTS.name}")
    ap.add_argument("--smoke", action="store_true", help="small run")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fill_bench.") as tmp:
        exe = Path(tmp) / "fill_bench"
        build(exe, args.before, Path(tmp), args.scalar)
        r = subprocess.run([str(exe), str(20_000 if args.smoke else args.decisions)],
                           capture_output=True, text=True)
        if r.returncode:
            sys.stderr.write(r.stdout + r.stderr)
            return r.returncode
        fig = parse_figures(r.stdout)
        if args.route:
            fig.update(route_figures(args.before, Path(tmp),
                                     20_000 if args.smoke else 1_000_000))
    for k, v in fig.items():
        print(f"{k} {v}" if not isinstance(v, list) else f"{k} {','.join(map(str, v))}")
    print(f"load_avg_1m {os.getloadavg()[0]:.1f}")
    if args.record and not args.smoke:
        row = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(),
               "machine": machine(), "load_before": round(load, 2),
               "load_after": round(os.getloadavg()[0], 2), "before": args.before,
               "scalar": args.scalar, **fig}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
