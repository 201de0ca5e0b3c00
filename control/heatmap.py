"""Columns of the live latency heatmap: once a second, how many orders fell
into each latency bucket of each stage since the previous second.  Buckets
are control/metrics.py's LE_SECONDS (plus +Inf), counted exactly as the
Prometheus histograms count them, so a column's cells are the deltas of
those histograms between two samples."""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from control.metrics import ALL_STAGES, LE_SECONDS, DataPlaneSource

# five minutes of columns at one a second: the page shows the last minute,
# and a page opened late or reconnecting catches up from here.  Each column
# is kept as one small int64 array (panels x buckets), not Python lists:
# the history is a bounded ring of ~1 MiB, reached after KEEP_COLUMNS seconds
KEEP_COLUMNS = 300


def bucket_labels() -> list[str]:
    out = []
    for le in LE_SECONDS:
        if le < 1e-6:
            out.append(f"{le * 1e9:g} ns")
        elif le < 1e-3:
            out.append(f"{le * 1e6:g} µs")
        elif le < 1:
            out.append(f"{le * 1e3:g} ms")
        else:
            out.append(f"{le:g} s")
    out.append("+Inf")
    return out


class HeatmapSampler:
    def __init__(self, source: DataPlaneSource, interval_s: float = 1.0):
        self.src = source
        self.interval_s = interval_s
        self.panels = [{"id": name, "title": name.replace("_", " "),
                        "unit": "packet" if name == "feed_to_book" else "order"}
                       for name in ALL_STAGES]
        self.panels += [{"id": f"venue_rtt_{v.id}", "title": f"venue {v.id} round trip",
                         "unit": "answer", "venue": v.id} for v in source.cfg.venues]
        self.columns: deque = deque(maxlen=KEEP_COLUMNS)
        self.seq = 0
        self.lock = threading.Lock()
        self.last = {p["id"]: np.zeros(len(LE_SECONDS) + 1, dtype=np.int64)
                     for p in self.panels}
        self.last_t = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self, panel: dict) -> np.ndarray:
        if "venue" in panel:
            return self.src.venue_rtt_counts(panel["venue"])[0]
        return self.src.stage_counts(panel["id"])[0]

    def sample(self) -> dict:
        """Take one column now."""
        t = time.time()
        deltas = np.empty((len(self.panels), len(LE_SECONDS) + 1), dtype=np.int64)
        for i, p in enumerate(self.panels):
            now = self._read(p)
            # a bucket never goes down; max() keeps a racing read honest
            now = np.maximum(now, self.last[p["id"]])
            deltas[i] = now - self.last[p["id"]]
            self.last[p["id"]] = now
        with self.lock:
            self.seq += 1
            col = {"seq": self.seq, "t0": self.last_t, "t": t, "deltas": deltas,
                   "counters": self.counters()}
            self.last_t = t
            self.columns.append(col)
        return self._render(col)

    def _render(self, col: dict) -> dict:
        """A column as the page reads it: deltas by panel id."""
        return {**col, "deltas": {p["id"]: row.tolist()
                                  for p, row in zip(self.panels, col["deltas"], strict=True)}}

    def counters(self) -> dict:
        """The main counters shown beside the heatmaps."""
        src, lib = self.src, self.src.lib
        stats = [r.stats() for r in src.readers]
        o = src.orders()
        rejected = sum(n for (_, result, _), n in o["orders"].items() if result == "rejected")
        return {
            "frames_in": sum(s.event[lib.OMS_EV_FRAMES_IN] for s in stats),
            "frames_out": sum(s.event[lib.OMS_EV_FRAMES_OUT] for s in stats),
            "orders_handled": sum(o["handled"]),
            "orders_rejected": rejected,
            "venue_rejects": sum(o["venue_rejected"].values()),
            "drops": sum(sum(s.drop[i] for i in range(1, lib.OMS_DROP_MAX)) for s in stats),
            "live_orders": sum(lib.oms_core_live_orders(r.ptr) for r in src.readers),
        }

    def after(self, seq: int) -> list[dict]:
        with self.lock:
            cols = [c for c in self.columns if c["seq"] > seq]
        return [self._render(c) for c in cols]

    def describe(self) -> dict:
        return {"buckets": bucket_labels(), "le_seconds": list(LE_SECONDS),
                "panels": self.panels,
                "interval_s": self.interval_s}

    def start(self) -> None:
        def run():
            while not self._stop.wait(self.interval_s):
                self.sample()
        self._thread = threading.Thread(target=run, name="oms-heatmap", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
