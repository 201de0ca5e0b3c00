"""What ROUTE records cost the journal (docs/fill-model.md "Dataset from
journals"): the same routed stream - two venues' feeds quoting, bursts of
NewOrders the smart router sends to one of them, the venues accepting and
filling each - journaled with journal.route_records off and on, in
alternate runs.  Bytes per routed order, and the time of the journal's
burst append (oms_journal_burst: the BURST record, and the ROUTE records
when on) per routed order, timed around each call from Python (the call's
own overhead is the same in both and cancels in the difference).

    .venv/bin/python bench/run_route_journal_bench.py [--orders 20000] [--burst 32] [--runs 3]

Prints one JSON line."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from run_journal_md_bench import feed  # noqa: E402
from test_journal_market import Run, config_text  # noqa: E402
from wire import from_strategy, login, new_order  # noqa: E402

from control.config import load_config_text  # noqa: E402
from dataplane import journal as jn  # noqa: E402

MS = 1_000_000


class TimedJournal(jn.Journal):
    """The journal, its burst appends timed."""

    append_ns = 0

    def record_burst(self, core, ptrs, lens, n, now_ns):
        t0 = time.perf_counter_ns()
        self.lib.oms_journal_burst(self._j, core._core, ptrs, lens, n, now_ns)
        self.append_ns += time.perf_counter_ns() - t0
        self.lib.oms_journal_commit(self._j)


def one(orders: int, burst: int, on: bool, workdir: Path) -> dict:
    path = workdir / f"r{int(on)}.jnl"
    path.unlink(missing_ok=True)
    text = config_text(path).replace("orders: 64\n", "orders: 65536\n").replace(
        "segment_mb: 1}", f"segment_mb: 64, route_records: {str(on).lower()}}}")
    cfg = load_config_text(text, "route-bench.yaml")
    journal = TimedJournal(cfg.journal, cfg)
    r = Run(cfg, journal)
    r.run(sorted(feed(1, 5, 1) + feed(2, 5, 1) + [(0, from_strategy(1, login(1)))],
                 key=lambda x: x[0]))
    seq = 1
    for b in range(orders // burst):
        frames = []
        for k in range(burst):
            cid = b * burst + k + 1
            frames.append(from_strategy(1, new_order(1, seq, cid, price=150_4000_0000, qty=100)))
            seq += 1
        r.step(frames, (20 + b) * MS)
    st = journal.stats()
    out = {"bytes": st["end"], "routes": st["routes"], "append_ns": journal.append_ns,
           "decisions": r.core.stats()["event"].get("ORDERS_ROUTED", 0)}
    journal.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=20000)
    ap.add_argument("--burst", type=int, default=32, help="NewOrders per burst")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    res: dict[bool, list] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(args.runs):
            for on in (False, True):
                res[on].append(one(args.orders, args.burst, on, Path(d)))
    off, on = res[False][0], res[True][0]
    n = on["decisions"]
    per = {k: [x["append_ns"] / n for x in v] for k, v in res.items()}
    print(json.dumps({
        "orders": args.orders, "burst": args.burst, "runs": args.runs, "routed": n,
        "route_records": on["routes"],
        "journal_bytes_per_order_without": round(off["bytes"] / n, 1),
        "journal_bytes_per_order_with": round(on["bytes"] / n, 1),
        "route_record_bytes": round((on["bytes"] - off["bytes"]) / on["routes"], 1),
        "append_ns_per_order_without": [round(x) for x in per[False]],
        "append_ns_per_order_with": [round(x) for x in per[True]],
        "route_ns_per_order_median": round(statistics.median(per[True])
                                           - statistics.median(per[False])),
        "loadavg_1min": round(__import__("os").getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
