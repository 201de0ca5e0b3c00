"""Builds and runs the fill-model benchmark (bench/fill_bench.c): the cost of
three venues' fill probabilities for one order, as the router asks for them,
one decision at a time beside an empty call timed the same way, and per
decision in blocks of 16; with --before REF the evaluator of that git
revision timed on the same inputs in the same run (alternate stretches of
1,024 decisions), its answers checked equal and the ratios printed.

    .venv/bin/python bench/run_fill_bench.py --before 61b0834   # before/after
    .venv/bin/python bench/run_fill_bench.py --scalar           # without AVX-512
    .venv/bin/python bench/run_fill_bench.py --smoke             # small run

The earlier cdefs/fill_model.c is taken with `git show REF:cdefs/...` into a
temporary directory (with its own headers), compiled with its symbols
renamed before_*, and linked next to the current one; the functions the
benchmark does not call are dropped by the linker (--gc-sections)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CFLAGS = ["-std=gnu11", "-O2", "-march=native", "-Wall", "-Wextra", "-Werror",
          "-ffunction-sections", "-fdata-sections"]
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
                        "-I", str(old), "-c", str(old / "fill_model.c"), "-o", str(obj)],
                       check=True)
        objs.append(obj)
    subprocess.run([cc, "-Wl,--gc-sections", "-o", str(out), *map(str, objs)], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decisions", type=int, default=2_000_000)
    ap.add_argument("--before", metavar="REF", help="git revision whose evaluator to compare")
    ap.add_argument("--scalar", action="store_true",
                    help="build the current evaluator without AVX-512 (its scalar path)")
    ap.add_argument("--smoke", action="store_true", help="small run")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fill_bench.") as tmp:
        exe = Path(tmp) / "fill_bench"
        build(exe, args.before, Path(tmp), args.scalar)
        r = subprocess.run([str(exe), str(20_000 if args.smoke else args.decisions)],
                           capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    if r.returncode:
        sys.stderr.write(r.stderr)
    print(f"load_avg_1m {os.getloadavg()[0]:.1f}")
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
