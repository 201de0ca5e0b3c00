"""The recovery benchmark runs small in every test run, so it cannot rot;
the full figures (10 M events) live in bench/results/recovery_bench.jsonl."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_recovery_bench_smoke(tmp_path):
    r = subprocess.run([sys.executable, "bench/run_recovery_bench.py", "--smoke",
                        "--journal", str(tmp_path / "j.oms")], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    fig = dict(line.split() for line in r.stdout.splitlines())
    assert int(fig["events"]) == 100_000
    # one record per core call (the first is the generation), all re-executed
    assert int(fig["records"]) == int(fig["core_calls"]) + 1
    # the recovered core holds what the original held: counters, orders, timers
    assert int(fig["state_equal"]) == 1 and int(fig["live_orders"]) > 0
    assert float(fig["recover_warm_s"]) > 0 and float(fig["bytes_per_event"]) > 60
    assert not (tmp_path / "j.oms").exists()
