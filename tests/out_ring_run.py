"""A sharded-mode worker whose I/O lcore stops draining its out ring, for
tests/test_out_ring_wait.py (EAL once per process: the test runs this as a
subprocess).

    python tests/out_ring_run.py OUT.json N

The script plays the I/O lcore: it feeds the worker's in ring and drains
its out ring, which holds 63 frames.  Phase "held": a login and N
NewOrders go in (a venue order out each), and the out ring is not drained
for 200 ms after the worker first finds it full; then everything is
drained.  Phase "failed": N more NewOrders, and the ring is left alone for
longer than the worker waits (OUT_RING_WAIT_MS, 500 ms) before it is
drained.  OUT.json holds each phase's frames (hex) and the worker's
counters after it."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wire  # noqa: E402
from ring_rig import RingRig, wait_until  # noqa: E402

from dataplane import dpdk  # noqa: E402


def main() -> int:
    out_path, n = Path(sys.argv[1]), int(sys.argv[2])
    rig = RingRig("0@0,1@1", "outw")
    lib = rig.lib
    in_ring, out_ring = rig.ring("in"), rig.ring("out", 64)
    w = rig.new_worker()
    w.in_ring, w.out_ring = in_ring, out_ring
    lcore = lib.oms_next_worker_lcore(0xFFFFFFFF)

    def stats() -> dict:
        return rig.counters("struct oms_worker_stats", w.stats)

    def drain() -> list[str]:
        return rig.collect(out_ring, lambda: w.done >= rig.sent)

    result: dict = {"pool_in_use_before": lib.oms_pool_in_use(rig.pool)}
    try:
        if lib.oms_worker_launch(w, lcore) != 0:
            raise dpdk.DpdkError("cannot launch the worker")
        rig.inject(in_ring, [wire.from_strategy(1, wire.login(1, 1))] +
                   [wire.from_strategy(1, wire.new_order(1, 1 + i, 1000 + i)) for i in range(n)])
        wait_until(lambda: w.stats.out_ring_waits >= 1, stats, 10)
        time.sleep(0.2)
        result["held_dropped_while_held"] = w.stats.tx_dropped
        result["held"] = drain()
        result["held_stats"] = stats()
        result["held_core"] = rig.core.stats()

        rig.inject(in_ring, [wire.from_strategy(1, wire.new_order(1, 1 + n + i, 5000 + i))
                             for i in range(n)])
        waits = w.stats.out_ring_waits
        wait_until(lambda: w.stats.out_ring_waits > waits, stats, 10)
        time.sleep(1.5)
        result["failed"] = drain()
        result["failed_stats"] = stats()
        result["failed_core"] = rig.core.stats()
    finally:
        w.stop = 1
        lib.oms_worker_wait(lcore)
        drain()
        rig.write(result, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
