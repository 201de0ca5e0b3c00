"""Measures the journal shipper (control/journal_ship.py): a journal of
`--events` frames (bench/recovery_bench.c's traffic, bursts of 32) shipped to
a nats-server of its own (JetStream, a temp store, 127.0.0.1) and rebuilt
from the stream with fetch; the rebuilt file must be the original byte for
byte. Then a shipper restarted with everything shipped: the time it takes
to find its place (the stream's last record, the journal walked to it).

    .venv/bin/python bench/run_ship_bench.py              # 1,000,000 events, recorded
    .venv/bin/python bench/run_ship_bench.py --smoke      # 50,000 events, nothing recorded

Full runs append one JSON line to bench/results/ship_bench.jsonl."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from run_core_bench import commit, machine  # noqa: E402
from run_recovery_bench import build  # noqa: E402

from control import journal_ship as js  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ship_bench.jsonl"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    events = 50_000 if args.smoke else args.events
    load_before = os.getloadavg()[0]
    exe = ROOT / "bench" / "work" / "recovery_bench"
    build(exe)
    with tempfile.TemporaryDirectory(prefix="ship-bench-") as tmp:
        path = Path(tmp) / "bench.oms"
        subprocess.run([str(exe), str(events), "65536", str(path)], check=True,
                       capture_output=True)
        port = 14000 + os.getpid() % 1000
        server = subprocess.Popen([shutil.which("nats-server"), "-js", "-sd", f"{tmp}/store",
                                   "-a", "127.0.0.1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            url = f"nats://127.0.0.1:{port}"
            t0 = time.perf_counter()
            st = asyncio.run(js.ship(str(path), js.NatsSink(url, "bench"),
                                     until_caught_up=True, batch_records=args.batch))
            t1 = time.perf_counter()
            out = asyncio.run(js.fetch(url, "OMS_JOURNAL_bench", f"{tmp}/rebuilt.oms"))
            t2 = time.perf_counter()
            # a restart with everything shipped: finds its place, ships nothing
            again = asyncio.run(js.ship(str(path), js.NatsSink(url, "bench"),
                                        until_caught_up=True))
            t3 = time.perf_counter()
            assert again["records"] == 0 and again["resumed_at"] == st["shipped_seq"] + 1
            same = Path(f"{tmp}/rebuilt.oms").read_bytes() == path.read_bytes()
        finally:
            server.kill()
            server.wait()
    fig = {"events": events, "records": st["records"], "bytes": st["bytes"],
           "batch_records": args.batch, "ship_s": round(t1 - t0, 3),
           "ship_records_per_s": round(st["records"] / (t1 - t0)),
           "ship_mb_per_s": round(st["bytes"] / (t1 - t0) / 1e6, 1),
           "fetch_s": round(t2 - t1, 3), "fetched_records": out["records"],
           "restart_resume_s": round(t3 - t2, 3), "rebuilt_identical": int(same)}
    for k, v in fig.items():
        print(f"{k} {v}")
    if not args.smoke:
        row = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit(),
               "machine": machine(),
               "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)], **fig}
        with RESULTS.open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
