"""The run-to-completion worker behind a DPDK ring port whose transmit ring
(63 frames) is not drained for a while, for tests/test_tx_wait.py (EAL
once per process: the test runs this as a subprocess).

    python tests/tx_wait_run.py OUT.json N

Phase "held": the worker may wait 300 ms for the port (tx_wait_us); a
login and N NewOrders go in (a venue order out each) and the ring is
drained only after 50 ms.  Phase "stuck": the wait is 100 ms and 3N
NewOrders go in with nobody draining: the port takes nothing in a whole
wait, is stuck, and then gets one try per burst (about 3N/32 bursts, each
of which would otherwise wait 100 ms).  Phase "recovered": the ring is
drained and 5 more NewOrders go out.  OUT.json holds each phase's frames
(hex), the worker's counters after it, and how long the worker took to
handle the stuck phase's frames."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wire  # noqa: E402
from ring_rig import RingRig, wait_until  # noqa: E402

from dataplane import dpdk  # noqa: E402


def orders(first_seq: int, first_id: int, n: int) -> list[bytes]:
    return [wire.from_strategy(1, wire.new_order(1, first_seq + i, first_id + i))
            for i in range(n)]


def main() -> int:
    out_path, n = Path(sys.argv[1]), int(sys.argv[2])
    rig = RingRig("0@0,1@1", "txw", wire.config(orders=8192))
    lib = rig.lib
    rx, tx = rig.ring("rx"), rig.ring("tx", 64)
    port = rig.port(rx, tx)
    w = rig.new_worker()
    w.n_rx = 1
    w.rx_port[0] = port
    w.strategy_tx_port = w.venue_tx_port = port
    lcore = lib.oms_next_worker_lcore(0xFFFFFFFF)

    def handled() -> bool:
        return w.done >= rig.sent

    def stats() -> dict:
        return rig.counters("struct oms_worker_stats", w.stats)

    def built() -> int:
        return rig.core.stats()["event"]["FRAMES_OUT"]

    result: dict = {"pool_in_use_before": lib.oms_pool_in_use(rig.pool)}
    try:
        w.tx_wait_us = 300_000
        if lib.oms_worker_launch(w, lcore) != 0:
            raise dpdk.DpdkError("cannot launch the worker")
        rig.inject(rx, [wire.from_strategy(1, wire.login(1, 1))] + orders(1, 1000, n))
        time.sleep(0.05)
        result["held_dropped_while_held"] = w.stats.tx_dropped
        result["held"] = rig.collect(tx, handled)
        result["held_stats"] = stats()
        result["held_built"] = built()

        w.tx_wait_us = 100_000
        t0 = time.monotonic()
        rig.inject(rx, orders(1 + n, 5000, 3 * n))
        wait_until(handled, stats, 10)
        result["stuck_handled_s"] = time.monotonic() - t0
        result["stuck"] = rig.collect(tx, handled)
        result["stuck_stats"] = stats()
        result["stuck_built"] = built()

        rig.inject(rx, orders(1 + 4 * n, 90000, 5))
        result["recovered"] = rig.collect(tx, handled)
        result["recovered_stats"] = stats()
    finally:
        w.stop = 1
        lib.oms_worker_wait(lcore)
        rig.collect(tx, handled)
        rig.write(result, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
