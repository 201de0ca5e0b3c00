"""What journaling market data costs in journal bytes (docs/durability.md
"Market data"): the same run - quote updates on two venues' feeds with
routed orders between them, the venues accepting each order - journaled
with and without the MARKET records, and the bytes per record, per
market-data frame and per ITCH message.

    .venv/bin/python bench/run_journal_md_bench.py [--updates 20000] [--per-packet 1]

--per-packet: quote updates per MoldUDP64 packet (each update is a
Delete and an Add Order, two ITCH messages).  Prints one JSON line."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_journal_market import Run, config  # noqa: E402
from wire import from_strategy, login, new_order  # noqa: E402

from dataplane import journal as jn  # noqa: E402
from pcaps import itch_gen  # noqa: E402

MS = 1_000_000


def feed(venue: int, updates: int, per_packet: int) -> list[tuple[int, bytes]]:
    lines = [json.dumps({"feed": {"session": f"SESSION{venue:03d}", "group": f"239.1.1.{venue}",
                                  "port": 26400, "source": f"10.10.2.{venue}",
                                  "locates": {"AAPL": 1}}}),
             json.dumps({"t_ms": 1, "msgs": [{"type": "S", "code": "O"},
                                              {"type": "R", "stock": "AAPL"}]})]
    ref = 0
    for k in range(0, updates, per_packet):
        msgs = []
        for _ in range(per_packet):
            if ref:
                msgs.append({"type": "D", "stock": "AAPL", "ref": ref})
            ref += 1
            msgs.append({"type": "A", "stock": "AAPL", "ref": ref, "side": "S",
                         "shares": 100 + ref % 300, "price": f"150.{20 + ref % 10:02d}"})
        lines.append(json.dumps({"t_ms": 2 + k // per_packet, "msgs": msgs}))
    return itch_gen.build_frames(lines)


def run(updates: int, per_packet: int, with_md: bool, workdir: Path) -> dict:
    path = workdir / f"md{int(with_md)}.jnl"
    cfg = config(path)
    journal = jn.Journal(cfg.journal, cfg)
    r = Run(cfg, journal)
    if not with_md:
        r.md.set_journal(None)
    records = feed(1, updates, per_packet) + feed(2, updates, per_packet)
    records.append((0, from_strategy(1, login(1))))
    # one routed order per 10 quote packets of each venue
    for k in range(updates // per_packet // 10):
        records.append(((2 + 10 * k) * MS + 500_000, from_strategy(1, new_order(
            1, k + 1, k + 1, price=150_4000_0000, qty=100))))
    records.sort(key=lambda x: x[0])
    t0 = time.perf_counter()
    r.run(records)
    elapsed = time.perf_counter() - t0
    st = journal.stats()
    journal.close()
    md_frames = sum(1 for _, f in records if f[36:38] == (26400).to_bytes(2, "big"))
    return {"bytes": st["end"], "records": st["records"], "markets": st["markets"],
            "market_frames": st["market_frames"], "md_frames": md_frames,
            "md_bytes_on_wire": sum(len(f) for _, f in records
                                    if f[36:38] == (26400).to_bytes(2, "big")),
            "run_s": round(elapsed, 3), "decisions": len(r.core.route_decisions())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--updates", type=int, default=20000, help="quote updates per venue")
    ap.add_argument("--per-packet", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        on = run(args.updates, args.per_packet, True, Path(d))
        off = run(args.updates, args.per_packet, False, Path(d))
    extra = on["bytes"] - off["bytes"]
    msgs = on["md_frames"] * args.per_packet * 2
    print(json.dumps({
        "updates_per_venue": args.updates, "per_packet": args.per_packet,
        "journal_bytes_without_md": off["bytes"], "journal_bytes_with_md": on["bytes"],
        "growth": round(on["bytes"] / off["bytes"], 2),
        "market_records": on["markets"], "market_frames": on["market_frames"],
        "bytes_per_market_record": round(extra / max(on["markets"], 1), 1),
        "bytes_per_md_frame": round(extra / max(on["market_frames"], 1), 1),
        "wire_bytes_per_md_frame": round(on["md_bytes_on_wire"] / max(on["md_frames"], 1), 1),
        "bytes_per_itch_message": round(extra / max(msgs, 1), 1),
        "same_decisions": on["decisions"] == off["decisions"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
