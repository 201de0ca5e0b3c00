"""Typed mode's lcores behind a DPDK ring port, for tests/test_typed_lanes.py
(EAL once per process: the test runs this as a subprocess).

    python tests/typed_ring_run.py OUT.json N

The I/O lcore, the modification and cancellation workers and the placement
worker run as in the appliance (dataplane/typed_lanes.py wires them), five
lcores time-sharing the machine's CPUs with the idle back-off.  Step one
logs session 1 in and enters order 1.  Then the placement worker is
stopped, and N normal NewOrders, a Cancel of order 1, NewOrders 5 and 6, a
Modify of 6 and a Cancel of 5 are sent; once the I/O lcore and the checking
workers have put every one of them in a lane, the placement worker starts
again and finds them all queued.  OUT.json holds each step's transmitted
frames (hex) and the lane counters."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wire  # noqa: E402
from ring_rig import RingRig, wait_until  # noqa: E402

from control.config import Threading  # noqa: E402
from dataplane import dpdk  # noqa: E402
from dataplane.typed_lanes import TypedLanes  # noqa: E402


class Rig(RingRig):
    """What TypedLanes needs of an appliance: the extension, a pool, the
    ports, and rings it can create."""

    def __init__(self):
        cfg = wire.config()
        cfg = replace(cfg, dataplane=replace(cfg.dataplane, threading=Threading(mode="typed"),
                                             idle_sleep_us=20))
        super().__init__("0@0,1@1,2@0,3@1,4@0", "typed", cfg)
        lib = self.lib
        self.rx, self.tx = self.ring("rx"), self.ring("tx")
        port = self.port(self.rx, self.tx)
        self.ports = [port]
        w = self.worker = self.new_worker()
        w.strategy_tx_port = w.venue_tx_port = port
        self.lanes = TypedLanes(self, cfg, w, 0)
        lc = [lib.oms_next_worker_lcore(0xFFFFFFFF)]
        for _ in range(3):
            lc.append(lib.oms_next_worker_lcore(lc[-1]))
        self.io_lcore, self.placement, *self.checker_lcores = lc

    def _ring(self, name: str, socket: int):
        r = self.lib.oms_ring_create(name.encode(), 4096, 0, 1)
        if r == self.ffi.NULL:
            raise dpdk.DpdkError(f"cannot create ring {name}")
        return r

    def wait(self, what, timeout_s: float = 20.0) -> None:
        wait_until(what, self.report, timeout_s)

    def collect_out(self) -> list[str]:
        """What the port sent since the last call: until the I/O lcore has
        sent everything the placement worker put out and all of it is off
        the port's ring, three polls in a row."""
        return self.collect(self.tx, lambda: (
            self.lib.oms_ring_count(self.worker.out_ring) == 0
            and self.taken == self.lanes.io.stats.tx_frames))

    def queued(self) -> int:
        """Frames waiting in the placement worker's lanes."""
        m = self.lanes.merge
        return sum(self.lib.oms_ring_count(m.lane[i]) for i in range(self.lib.OMS_LANES))

    def report(self) -> dict:
        return {**self.lanes.report(), "done": self.worker.done, "sent": self.sent}


def main() -> int:
    out_path, n = Path(sys.argv[1]), int(sys.argv[2])
    rig = Rig()
    lib = rig.lib
    s = 1
    result: dict = {}
    try:
        if lib.oms_io_launch(rig.lanes.io, rig.io_lcore) != 0:
            raise dpdk.DpdkError("cannot launch the I/O lcore")
        rig.lanes.launch_checkers(rig.checker_lcores)
        lib.oms_worker_launch(rig.worker, rig.placement)
        rig.inject(rig.rx, [wire.from_strategy(1, wire.login(1, 1)),
                    wire.from_strategy(1, wire.new_order(1, s, 1))])
        s += 1
        rig.wait(lambda: rig.worker.done >= rig.sent)
        result["start"] = rig.collect_out()

        rig.worker.stop = 1
        lib.oms_worker_wait(rig.placement)
        frames = []
        for i in range(n):
            frames.append(wire.from_strategy(1, wire.new_order(1, s, 100 + i)))
            s += 1
        for m in (lambda q: wire.cancel(1, q, 1), lambda q: wire.new_order(1, q, 5),
                  lambda q: wire.new_order(1, q, 6),
                  lambda q: wire.modify(1, q, 6, 150_2600_0000, 100),
                  lambda q: wire.cancel(1, q, 5)):
            frames.append(wire.from_strategy(1, m(s)))
            s += 1
        rig.inject(rig.rx, frames)
        rig.wait(lambda: rig.queued() == len(frames))
        result["queued"] = rig.queued()
        rig.worker.stop = 0
        lib.oms_worker_launch(rig.worker, rig.placement)
        rig.wait(lambda: rig.worker.done >= rig.sent)
        result["queued_burst"] = rig.collect_out()
    finally:
        rig.lanes.drain()
        rig.lanes.stop_checkers(rig.checker_lcores)
        rig.worker.stop = 1
        lib.oms_worker_wait(rig.placement)
        rig.lanes.io.stop = 1
        lib.oms_worker_wait(rig.io_lcore)
        result["report"] = rig.report()
        result["stats"] = rig.core.stats()
        out_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
