"""The observability overhead benchmark runs small in every test run, so it
cannot rot; its full figures (the < 5 % gate) live in bench/results/."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_obs_bench_smoke_times_every_order_with_histograms_on():
    r = subprocess.run([sys.executable, "bench/run_obs_bench.py", "--smoke"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    fig = dict(line.split() for line in r.stdout.splitlines())
    # every strategy message but the four logins is an order the stage
    # histograms counted (on the core with them on)
    assert int(fig["recorded_on"]) == int(fig["strategy_msgs"]) - 4
    assert float(fig["cycles_per_frame_off"]) > 0 and float(fig["cycles_per_frame_on"]) > 0
    assert int(fig["bursts_skipped"]) < int(fig["frames"]) // 32 // 10
