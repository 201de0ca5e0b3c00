"""The core benchmark runs small in every test run, so it cannot rot; the
full figures live in bench/results/."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_core_bench_smoke():
    r = subprocess.run([sys.executable, "bench/run_core_bench.py", "--smoke"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    fig = dict(line.split()[1:] for line in r.stdout.splitlines())
    assert int(fig["orders"]) == 20_000
    assert int(fig["system_rejects"]) == 0 and int(fig["drops"]) == 0
    # every order but the few still in flight when the run stops is accepted
    assert float(fig["accept_ratio"]) > 0.8
    # slots were reused: the run is several times the table's capacity
    assert int(fig["evicted"]) > 10_000
    assert float(fig["orders_per_s"]) > 0 and int(fig["cycles_p99"]) > 0


def test_risk_bench_smoke():
    r = subprocess.run([sys.executable, "bench/run_risk_bench.py", "--smoke"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    fig = {}
    for line in r.stdout.splitlines():
        hot, key, value = line.split()
        fig[hot, key] = value
    for hot in ("hot=0", "hot=4096"):
        assert int(fig[hot, "orders"]) == 20_000 and int(fig[hot, "rejects"]) == 0
        assert int(fig[hot, "new_cycles_p99"]) > 0


def test_feed_bench_smoke():
    r = subprocess.run([sys.executable, "bench/run_feed_bench.py", "--smoke"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    fig = dict(line.split() for line in r.stdout.splitlines())
    assert int(fig["messages"]) == 200_000
    assert int(fig["latency_drops"]) == 0 and int(fig["throughput_drops"]) == 0
    # the stream builds real books: thousands of resting orders, and the
    # top of book moves often
    assert int(fig["latency_live_orders"]) > 10_000
    assert int(fig["latency_tob_updates"]) > 20_000
    assert int(fig["msg_cycles_p99"]) > 0 and float(fig["msgs_per_s"]) > 0
    # one smart-routing decision over 3 venues' books: every one finds a venue
    assert int(fig["route_decisions"]) == int(fig["route_chosen"]) == 20_000
    assert int(fig["route_cycles_p99"]) >= int(fig["route_cycles_p50"]) > 0
    assert float(fig["tob_read_ns"]) > 0


@pytest.mark.parametrize("scalar", [False, True], ids=["avx512", "scalar"])
def test_fill_bench_smoke(scalar):
    # against the checked-out revision's own evaluator: the before/after
    # build works and the two give the same answers on every input, with the
    # evaluator built with AVX-512 (this machine) and without (its scalar path)
    # (and the worker's decision, bench/route_bench.c, of this tree and of HEAD's)
    r = subprocess.run([sys.executable, "bench/run_fill_bench.py", "--smoke", "--before", "HEAD",
                        *(["--scalar"] if scalar else ["--route"])],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    fig = dict(line.split() for line in r.stdout.splitlines())
    # 20,000 decisions asked, rounded up to whole stretches of 1,024
    assert int(fig["fill3_answered"]) == 3 * int(fig["fill3_decisions"]) == 3 * 20_480
    assert int(fig["fill3_before_differ"]) == 0
    for name in ("fill3", "fill3_block", "fill3_before", "fill3_before_block", "empty"):
        assert float(fig[f"{name}_ns_p99"]) >= float(fig[f"{name}_ns_p50"]) > 0, name
    # the block figure divides the reads' cost by 16: below the empty call's
    assert float(fig["empty_block_ns_p50"]) < float(fig["empty_ns_p50"])
    if not scalar:
        for k in ("", "before_"):
            assert float(fig[f"route_{k}route_model_ns_p99"]) >= \
                float(fig[f"route_{k}route_model_ns_p50"]) > 0
        assert float(fig["route_ratio_route_model_ns_p50"]) > 0
