"""omsctl replay's progress bar and --plot charts: shown and written beside
the replay, never in its outputs (the output pcap is the same bytes with
and without them)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OMSCTL = str(Path(sys.executable).parent / "omsctl")
PNG = b"\x89PNG\r\n\x1a\n"


def replay(tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    r = subprocess.run([OMSCTL, "replay", str(ROOT / "pcaps/golden/brief_example.orders.pcap"),
                        "-o", str(tmp_path / f"{name}.pcap"), "--venue-sim", *extra],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_progress_bar_and_plots_beside_an_unchanged_replay(tmp_path):
    plain = replay(tmp_path, "plain", "--no-progress")
    shown = replay(tmp_path, "shown", "--progress", "--plot", str(tmp_path / "plots"))
    assert (tmp_path / "plain.pcap").read_bytes() == (tmp_path / "shown.pcap").read_bytes()
    assert "frames" not in plain.stderr
    # (text mode reads the bar's carriage returns as line ends)
    bar = [line for line in shown.stderr.splitlines() if line.startswith("[")][-1]
    assert bar.startswith("[" + "#" * 30 + "] 100 %  22/22 frames"), shown.stderr
    charts = sorted(p.name for p in (tmp_path / "plots").iterdir())
    # the scenario's three orders are timed in every stage; venue 1 answers
    assert charts == ["latency_decision_to_tx.png", "latency_handle.png",
                      "latency_in_to_out.png", "latency_percentiles.png",
                      "latency_rx_to_decision.png", "latency_venue_1.png"]
    for name in charts:
        data = (tmp_path / "plots" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000, name
