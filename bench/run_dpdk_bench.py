"""Builds and runs the DPDK benchmark (bench/dpdk_bench.c) and records its
figures.

    .venv/bin/python bench/run_dpdk_bench.py              # full run, appended to results
    .venv/bin/python bench/run_dpdk_bench.py --smoke      # small run, nothing recorded

The program is compiled from the core's sources in cdefs/, the DPDK glue
(cdefs/dpdk_io.c), the generator (bench/gen.c) and its own loops, with
pkg-config's libdpdk flags; no Python runs while it is timed.  EAL gets two
lcores - the main one offers traffic and drains, the worker runs the
pipeline - on two CPUs of their own when the machine has them; otherwise
both share one and the figures are labelled "time-shared, not
representative".  No PCI is needed.

Memory (--hugepages): DPDK's memory - the mbufs, the rings - on 2 MiB
hugepages, as the appliance is deployed (deploy/hugepages.sh), when enough
are free and hugetlbfs is mounted (auto), else on ordinary 4 KiB pages
(--no-huge -m 512).  The core's own tables are on transparent hugepages
either way (cdefs/orders.h alloc_lines), so without hugepages the I/O runs
(a) and (c) pay TLB misses on every mbuf that the core alone (b) does not:
the gates are judged as deployed, and every figure says which it was.
    bash deploy/hugepages.sh 512     # 1 GiB, enough for the default ring

Scheduling (--sched): on a machine where the two lcores' CPUs cannot be
isolated from other tasks (isolcpus), a full run as root gives both lcores
SCHED_FIFO priority 1 (`chrt -f 1`), the nearest stand-in for isolated CPUs:
no other task preempts them.  The kernel still takes 5 % of every second
back from real-time tasks (sched_rt_runtime_us), so each run is kept under
that second (--orders 800000, --seconds 0.8) and preceded by a rest
(--rest-ms 1100) that refills the budget.  --sched other runs them as
ordinary tasks, as the smoke run in CI does.

Figures are printed one per line and, for full runs, appended as one JSON
line to bench/results/dpdk_bench.jsonl with the machine and the commit.
The exit status is 1 when a gate fails: frames lost or system rejects in
any run, or, in full runs, 1,000,000 orders/s not carried cleanly or the
full pipeline under 80 % of the core alone."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from run_core_bench import OPTIMIZE, commit, machine  # noqa: E402
from run_core_bench import parse_figures as parse  # noqa: E402

from dataplane.diagnose import hugepages_free_mb  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CORE_SOURCES = [w for w in (ROOT / "cdefs" / "core_sources.txt").read_text().splitlines()
                if w and not w.startswith("#")]
# command.c is a core source
# worker.c is compiled into dpdk_bench.c itself: its run (c) times that loop
DPDK_SOURCES = ["dpdk_io.c", "io_lcore.c", "checker_lcore.c"]
RESULTS = ROOT / "bench" / "results" / "dpdk_bench.jsonl"
EXE = ROOT / "bench" / "work" / "dpdk_bench"
GATE_RATE = 1_000_000
GATE_RATIO = 0.80


def pkg_config(*args: str) -> list[str]:
    r = subprocess.run(["pkg-config", *args, "libdpdk"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("DPDK not found by pkg-config (libdpdk): install libdpdk-dev, dpdk and "
                         "pkg-config (deploy/setup.sh does)")
    return shlex.split(r.stdout)


def build(out: Path = EXE) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    # pkg-config's -march=corei7 comes first; -march=native after it wins, the
    # same code generation as the cffi modules' and the core benchmark's
    cmd = [cc, *pkg_config("--cflags"), "-std=gnu11", *OPTIMIZE, "-Wall",
           "-Wextra", "-Werror", "-Wno-unused-parameter", "-DALLOW_EXPERIMENTAL_API",
           "-I", str(ROOT / "cdefs"), "-I", str(ROOT / "bench"), "-o", str(out),
           str(ROOT / "bench" / "dpdk_bench.c"), str(ROOT / "bench" / "gen.c"),
           *[str(ROOT / "cdefs" / s) for s in CORE_SOURCES + DPDK_SOURCES],
           *pkg_config("--libs"), "-lrte_net_ring"]
    subprocess.run(cmd, check=True)


def lcores() -> tuple[str, bool]:
    """The main and worker lcores on two CPUs of their own when there are two
    to have, otherwise both on one CPU, time-shared; a third lcore for the
    sharded and typed modes' I/O lcore, on a CPU of its own if there is a
    third, else sharing the worker's (time-shared); a fourth and fifth for
    the typed mode's modification and cancellation workers, likewise."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 5:
        return ",".join(f"{i}@{cpus[i]}" for i in range(5)), False
    if len(cpus) >= 3:
        return f"0@{cpus[0]},1@{cpus[1]},2@{cpus[2]},3@{cpus[1]},4@{cpus[2]}", False
    if len(cpus) == 2:
        return f"0@{cpus[0]},1@{cpus[1]},2@{cpus[1]},3@{cpus[1]},4@{cpus[1]}", False
    return ",".join(f"{i}@{cpus[0]}" for i in range(5)), True


def use_hugepages(choice: str, memory_mb: int) -> bool:
    if choice == "no":
        return False
    free = hugepages_free_mb()
    if free >= memory_mb:
        return True
    if choice == "yes":
        raise SystemExit(f"--hugepages yes: {memory_mb} MiB of hugepages wanted, {free} free "
                         "(bash deploy/hugepages.sh 512)")
    return False


def memory_mb(ring_size: int) -> int:
    # the mempool holds 4 x ring_size mbufs of 2 KiB; beyond the default
    # ring that needs more than the usual 512 MB
    return 512 if ring_size <= 4096 else 1024


def eal_args(memory: int = 512, huge: bool = False) -> list[str]:
    spec, _ = lcores()
    # --in-memory: hugepage-backed, but no files left in hugetlbfs
    mem = ["--in-memory"] if huge else ["--no-huge"]
    return ["--lcores", spec, *mem, "-m", str(memory), "--no-pci",
            "--file-prefix", f"dpdkbench{os.getpid()}", "--log-level", "lib.eal:error",
            "--no-telemetry"]


def run(orders: int, capacity: int, seconds: float, rates: list[int], repeat: int,
        attempts: int, ring_size: int, sched: str = "other", rest_ms: int = 0,
        modes: str | None = None, huge: bool = False) -> dict:
    build()
    cmd = [str(EXE), *eal_args(memory_mb(ring_size), huge), "--",
           "--orders", str(orders), "--capacity", str(capacity), "--seconds", str(seconds),
           "--rates", ",".join(str(r) for r in rates),
           "--repeat", str(repeat), "--attempts", str(attempts), "--ring-size", str(ring_size),
           "--rest-ms", str(rest_ms)]
    if modes:
        cmd += ["--modes", modes]
    if sched == "fifo":
        cmd = ["chrt", "-f", "1", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode not in (0, 1):  # 1: the run found problems; figures still come
        raise SystemExit(f"{shlex.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    if r.stderr.strip():
        print(r.stderr.strip(), file=sys.stderr)
    fig = parse(r.stdout)
    fig["label"] = ("time-shared, not representative" if fig["time_shared"]
                    else "main and worker lcores on CPUs of their own")
    if "sharded_time_shared" in fig:
        fig["sharded_label"] = ("time-shared, not representative" if fig["sharded_time_shared"]
                                else "I/O lcore and worker on CPUs of their own")
    if "typed_time_shared" in fig:
        fig["typed_label"] = ("time-shared, not representative" if fig["typed_time_shared"]
                              else "I/O, placement, modification and cancellation lcores on "
                              "CPUs of their own")
    fig.update(ratio_by_placement(fig, repeat))
    fig["rates"] = rates
    fig["hugepages"] = huge
    fig["memory"] = ("DPDK memory on 2 MiB hugepages" if huge
                     else "DPDK memory on 4 KiB pages (--no-huge), not as deployed")
    fig["sched"] = ("SCHED_FIFO 1 (stands in for isolated CPUs), runs under 1 s after a "
                    f"{rest_ms} ms rest" if sched == "fifo" else "SCHED_OTHER")
    return fig


def ratio_by_placement(fig: dict, repeat: int) -> dict:
    """(c)/(b) of the repeats whose two CPUs shared an L3 and of those whose
    CPUs did not, by the core-to-core latency measured before and after
    each; a repeat with one of each saw the host move its vCPUs (which a
    VM's host may do at any time).  Across two L3s every frame and mbuf
    crosses between them twice, which the core alone never pays: the gate
    is judged on every repeat, and these say which placement its figure
    came from; one L3 is a latency under `same_l3_c2c_ns` (dpdk_bench.c)."""
    limit = fig["same_l3_c2c_ns"]
    same, across, moved = [], [], 0
    for r in range(repeat):
        ratio = fig.get(f"rep{r}_ratio_full_to_core")
        c2c = (fig.get(f"rep{r}_c2c_ns"), fig.get(f"rep{r}_c2c_after_ns"))
        if ratio is None or None in c2c:
            continue
        if max(c2c) < limit:
            same.append(ratio)
        elif min(c2c) >= limit:
            across.append(ratio)
        else:
            moved += 1
    out = {"repeats_same_l3": len(same), "repeats_across_l3": len(across),
           "repeats_moved": moved}
    for name, v in (("same_l3", same), ("across_l3", across)):
        if v:
            out[f"ratio_full_to_core_{name}_min"] = min(v)
            out[f"ratio_full_to_core_{name}_max"] = max(v)
    return out


def gates(fig: dict, rates: list[int], smoke: bool) -> dict:
    runs = ["null", "core", "full"] + [f"r{r}_{m}" for r in rates for m in ("full", "null")]
    # the sharded and typed modes too, also time-shared: a stage that
    # waits for its CPU makes the one before it wait, not drop
    runs += ["sharded", "typed"]
    g = {"zero_loss": all(fig.get(f"{p}_loss", 0) == 0 for p in runs),
         "zero_system_rejects": all(fig.get(f"{p}_system_rejects", 0) == 0 for p in runs),
         "zero_core_drops": all(fig.get(f"{p}_drops", 0) == 0 for p in runs)}
    if not smoke:
        p = f"r{GATE_RATE}_full"
        g["rate_1m_clean"] = (GATE_RATE in rates and fig[f"{p}_loss"] == 0
                              and fig[f"{p}_system_rejects"] == 0 and fig[f"{p}_drops"] == 0
                              and fig[f"{p}_offered_orders_per_s"] >= 0.99 * GATE_RATE
                              and fig[f"{p}_offer_burst"] == 0)
        g["full_at_least_80pct_of_core"] = fig["ratio_full_to_core"] >= GATE_RATIO
    return g


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=None,
                    help="NewOrders in each throughput run (2,000,000; 800,000 with --sched fifo)")
    ap.add_argument("--capacity", type=int, default=65536, help="order table slots")
    ap.add_argument("--seconds", type=float, default=None,
                    help="length of each paced run (2.0; 0.8 with --sched fifo)")
    ap.add_argument("--sched", choices=["fifo", "other"], default=None,
                    help="the lcores' scheduling policy (fifo as root, else other; the smoke "
                    "run: other)")
    ap.add_argument("--rest-ms", type=int, default=None,
                    help="idle before each run (1100 with --sched fifo, else 0)")
    ap.add_argument("--rates", default="250000,500000,1000000",
                    help="offered NewOrders per second of the paced runs, comma-separated")
    ap.add_argument("--repeat", type=int, default=3,
                    help="throughput runs of each kind; medians are reported")
    ap.add_argument("--attempts", type=int, default=3,
                    help="tries of each run while other tasks disturb it")
    ap.add_argument("--ring-size", type=int, default=4096, help="the RX ring's entries")
    ap.add_argument("--hugepages", choices=["auto", "yes", "no"], default=None,
                    help="DPDK memory on hugepages: auto (when enough are free; the default), "
                    "yes, or no (--no-huge; the smoke run's default)")
    ap.add_argument("--smoke", action="store_true", help="small run for CI; nothing recorded")
    args = ap.parse_args(argv)
    rates = [int(float(r)) for r in args.rates.split(",") if r]
    if args.sched is None:
        args.sched = "fifo" if os.geteuid() == 0 and not args.smoke else "other"
    fifo = args.sched == "fifo"
    args.orders = args.orders or (800_000 if fifo else 2_000_000)
    args.seconds = args.seconds or (0.8 if fifo else 2.0)
    args.rest_ms = args.rest_ms if args.rest_ms is not None else (1100 if fifo else 0)
    if args.smoke:
        # each paced run fits in the RX ring whole (and what it causes in the
        # TX ring), and the throughput runs hold back when the ring is full:
        # a busy CI machine that takes the lcores' CPUs away for a while
        # cannot make frames drop, so what is checked is that the pipeline
        # carries and accounts for every frame
        args.orders, args.capacity, args.seconds, args.repeat = 20_000, 4096, 0.005, 1
        args.attempts, args.ring_size = 1, 32768
        rates = [250_000, 1_000_000]
    huge = use_hugepages(args.hugepages or ("no" if args.smoke else "auto"),
                         memory_mb(args.ring_size))
    if args.sched == "fifo":
        # (a), (b), (c) and the paced runs under SCHED_FIFO; the sharded and
        # typed modes share the worker's CPU with more lcores here, which
        # real-time priority would starve (one runs until it yields): they
        # run apart, as ordinary tasks, with a (c) of their own to compare
        fig = run(args.orders, args.capacity, args.seconds, rates, args.repeat, args.attempts,
                  args.ring_size, "fifo", args.rest_ms, "null,core,full,paced", huge)
        other = run(args.orders, args.capacity, args.seconds, rates, args.repeat,
                    args.attempts, args.ring_size, "other", 0, "full,sharded,typed", huge)
        for k, v in other.items():
            if k.startswith(("sharded", "typed", "ratio_sharded", "ratio_typed")):
                fig[k] = v
        fig["other_full_orders_per_s_median"] = other["full_orders_per_s_median"]
        fig["sharded_typed_sched"] = "SCHED_OTHER"
        fig["problems"] += other["problems"]
        fig["disturbed_runs"] += other["disturbed_runs"]
    else:
        fig = run(args.orders, args.capacity, args.seconds, rates, args.repeat, args.attempts,
                  args.ring_size, args.sched, args.rest_ms, huge=huge)
    g = gates(fig, rates, args.smoke)
    fig.update({f"gate_{k}": v for k, v in g.items()})
    for k, v in fig.items():
        if isinstance(v, list):
            v = ",".join(str(x) for x in v)
        elif isinstance(v, bool):
            v = "pass" if v else "FAIL"
        elif isinstance(v, str):
            v = v.replace(" ", "_")
        print(f"{k} {v}")
    if not args.smoke:
        row = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(),
               "machine": machine(), "orders": args.orders, "capacity": args.capacity,
               "seconds": args.seconds, "eal": eal_args(memory_mb(args.ring_size), huge)[:5], **fig}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 0 if all(g.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
