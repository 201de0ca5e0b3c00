"""What `omsctl replay` shows besides its outputs: a progress bar on long
captures, and (--plot) PNG charts of the latency histograms the core
recorded.  Neither touches the output pcap or the report."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from control.metrics import STAGES, percentiles, tsc_hz

# below this many frames a replay is over before a bar helps
LONG_CAPTURE = 10_000
BAR = 30


class ProgressBar:
    """`[#####.....]  45 %  12,345/27,431 frames  3.2 s` on one line of
    `stream`, rewritten in place; a new line at the end.  `show`: True,
    False, or None for on a terminal and for captures of LONG_CAPTURE frames
    or more (decided at the first report, which knows the total)."""

    def __init__(self, show: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.show = show
        self.t0 = time.monotonic()
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if self.show is None:
            self.show = self.stream.isatty() and total >= LONG_CAPTURE
        if not self.show:
            return
        pct = 100 * done // max(1, total)
        if pct == self.last and done < total:
            return
        self.last = pct
        fill = BAR * done // max(1, total)
        self.stream.write(f"\r[{'#' * fill}{'.' * (BAR - fill)}] {pct:3d} %  "
                          f"{done:,}/{total:,} frames  {time.monotonic() - self.t0:.1f} s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _series(lib, hist, units_per_second: float) -> tuple[list[float], list[int]]:
    """(lowest value of the bucket in ns, count) of each non-empty bucket."""
    xs, ys = [], []
    for b in range(lib.oms_lat_buckets()):
        n = hist.bucket[b]
        if n:
            xs.append(lib.oms_lat_bucket_low(b) * 1e9 / units_per_second)
            ys.append(n)
    return xs, ys


def plot_latency(core, cfg, outdir: str | Path) -> list[Path]:
    """One PNG per stage and per venue round trip (count per log-linear
    bucket, p50 and p99 marked), and one of every percentile side by side.
    Returns the files written."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'oms-appliance[plot]' "
                           "(deploy/setup.sh installs it)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lib, ptr = core.lib, core._core
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    hz = tsc_hz(lib)
    charts = [(f"stage {name.replace('_', ' ')}", f"latency_{name}.png",
               lib.oms_core_stage(ptr, stage), hz) for name, stage in STAGES.items()]
    charts += [(f"venue {v.id} round trip", f"latency_venue_{v.id}.png",
                lib.oms_core_venue_rtt(ptr, i), 1e9) for i, v in enumerate(cfg.venues)]
    written = []
    summary = []
    for title, name, hist, units in charts:
        xs, ys = _series(lib, hist, units)
        if not xs:
            continue
        p = percentiles(lib, hist, units)
        summary.append((title, p))
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.bar(xs, ys, width=[x * 0.06 or 1 for x in xs], align="edge", color="#3b7dd8")
        ax.set_xscale("log")
        ax.set_xlabel("ns (lowest value of each log-linear bucket, <= 6.25 % wide)")
        ax.set_ylabel("orders" if title.startswith("stage") else "answers")
        for key, color in (("p50", "#2a9d3a"), ("p99", "#d8553b")):
            if key in p:
                ax.axvline(p[key], color=color, linestyle="--", label=f"{key} {p[key]:,.0f} ns")
        ax.set_title(f"{title}: {p['count']:,} recorded")
        ax.legend()
        fig.tight_layout()
        fig.savefig(outdir / name, dpi=100)
        plt.close(fig)
        written.append(outdir / name)
    if summary:
        fig, ax = plt.subplots(figsize=(9, 4))
        keys = ("p50", "p90", "p99", "p99.9")
        width = 0.8 / len(keys)
        for k, key in enumerate(keys):
            ax.bar([i + k * width for i in range(len(summary))],
                   [p.get(key, 0) for _, p in summary], width, label=key)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(summary))],
                      [t for t, _ in summary], rotation=20, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("ns")
        ax.set_title("latency percentiles")
        ax.legend()
        fig.tight_layout()
        fig.savefig(outdir / "latency_percentiles.png", dpi=100)
        plt.close(fig)
        written.append(outdir / "latency_percentiles.png")
    return written
