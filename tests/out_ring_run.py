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

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ring_rig  # noqa: E402
import wire  # noqa: E402

from dataplane import dpdk  # noqa: E402
from dataplane.core import Core  # noqa: E402

T0 = 1_638_247_400_000_000_000
OUT_RING = 64


class Rig:
    def __init__(self):
        self.ext = ext = ring_rig.eal("0@0,1@1")
        self.ffi, self.lib = ext.ffi, ext.lib
        lib, ffi = self.lib, self.ffi
        cfg = wire.config()
        self.core = Core(cfg, ext=ext)
        self.pool = lib.oms_pool_create(b"outw_pool", dpdk.POOL_MBUFS, 0)
        self.in_ring = lib.oms_ring_create(b"outw_in", dpdk.RING_SIZE, 0, 1)
        self.out_ring = lib.oms_ring_create(b"outw_out", OUT_RING, 0, 1)
        if ffi.NULL in (self.pool, self.in_ring, self.out_ring):
            raise dpdk.DpdkError("cannot create the pool or rings")
        w = ffi.new("struct oms_worker *")
        w.core = self.core._core
        w.pool = self.pool
        w.in_ring = self.in_ring
        w.out_ring = self.out_ring
        w.strategy_udp = cfg.appliance.strategy_port
        w.mode = lib.OMS_MODE_LIVE
        w.idle_sleep_us = 20
        self.worker = w
        self.lcore = lib.oms_next_worker_lcore(0xFFFFFFFF)
        self.sent = 0
        self._out = ffi.new(f"uint8_t[{OUT_RING * lib.OMS_TX_SLOT}]")
        self._lens = ffi.new(f"uint16_t[{OUT_RING}]")

    def inject(self, frames: list[bytes]) -> None:
        self.sent += ring_rig.inject(self.ext, self.pool, self.in_ring, frames, T0)

    def wait(self, what, timeout_s: float = 10.0) -> None:
        ring_rig.wait_until(what, self.stats, timeout_s)

    def drain(self) -> list[str]:
        """The out ring's frames until the worker has handled every frame
        given and its ring stays empty, three polls in a row."""
        lib, ffi = self.lib, self.ffi
        out: list[str] = []
        quiet = 0
        deadline = time.monotonic() + 10
        while quiet < 3 and time.monotonic() < deadline:
            n = lib.oms_collect(self.out_ring, self._out, self._lens, OUT_RING)
            buf = ffi.buffer(self._out, n * lib.OMS_TX_SLOT)
            out += [bytes(buf[i * lib.OMS_TX_SLOT:i * lib.OMS_TX_SLOT + self._lens[i]]).hex()
                    for i in range(n)]
            settled = n == 0 and self.worker.done >= self.sent
            quiet = quiet + 1 if settled else 0
            time.sleep(0.002)
        return out

    def stats(self) -> dict:
        st = self.worker.stats
        return {name: getattr(st, name)
                for name, _ in self.ffi.typeof("struct oms_worker_stats").fields}


def main() -> int:
    out_path, n = Path(sys.argv[1]), int(sys.argv[2])
    rig = Rig()
    lib = rig.lib
    result: dict = {"pool_in_use_before": lib.oms_pool_in_use(rig.pool)}
    seq = 1
    try:
        if lib.oms_worker_launch(rig.worker, rig.lcore) != 0:
            raise dpdk.DpdkError("cannot launch the worker")
        frames = [wire.from_strategy(1, wire.login(1, 1))]
        for i in range(n):
            frames.append(wire.from_strategy(1, wire.new_order(1, seq, 1000 + i)))
            seq += 1
        rig.inject(frames)
        rig.wait(lambda: rig.worker.stats.out_ring_waits >= 1)
        time.sleep(0.2)
        result["held_dropped_while_held"] = rig.worker.stats.tx_dropped
        result["held"] = rig.drain()
        result["held_stats"] = rig.stats()
        result["held_core"] = rig.core.stats()

        rig.inject([wire.from_strategy(1, wire.new_order(1, seq + i, 5000 + i))
                    for i in range(n)])
        waits = rig.worker.stats.out_ring_waits
        rig.wait(lambda: rig.worker.stats.out_ring_waits > waits)
        time.sleep(1.5)
        result["failed"] = rig.drain()
        result["failed_stats"] = rig.stats()
        result["failed_core"] = rig.core.stats()
    finally:
        rig.worker.stop = 1
        lib.oms_worker_wait(rig.lcore)
        rig.drain()
        result["pool_in_use_after"] = lib.oms_pool_in_use(rig.pool)
        result["core"] = rig.core.stats()
        out_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
