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
SMALL = 64


class Rig:
    def __init__(self):
        self.ext = ext = ring_rig.eal("0@0,1@1")
        self.ffi, self.lib = ext.ffi, ext.lib
        lib, ffi = self.lib, self.ffi
        cfg = wire.config(orders=8192)
        self.core = Core(cfg, ext=ext)
        self.pool = lib.oms_pool_create(b"txw_pool", dpdk.POOL_MBUFS, 0)
        self.rx = lib.oms_ring_create(b"txw_rx", dpdk.RING_SIZE, 0, 1)
        self.tx = lib.oms_ring_create(b"txw_tx", SMALL, 0, 1)
        if ffi.NULL in (self.pool, self.rx, self.tx):
            raise dpdk.DpdkError("cannot create the pool or rings")
        port = lib.oms_port_from_rings(b"net_ring_txw", self.rx, self.tx, 0)
        err = ffi.new("char[256]")
        if port < 0 or lib.oms_port_start(port, self.pool, err, 256) != 0:
            raise dpdk.DpdkError("ring port: " + ffi.string(err).decode())
        w = ffi.new("struct oms_worker *")
        w.core = self.core._core
        w.pool = self.pool
        w.n_rx = 1
        w.rx_port[0] = port
        w.strategy_tx_port = w.venue_tx_port = port
        w.strategy_udp = cfg.appliance.strategy_port
        w.mode = lib.OMS_MODE_LIVE
        w.idle_sleep_us = 20
        self.worker = w
        self.lcore = lib.oms_next_worker_lcore(0xFFFFFFFF)
        self.sent = 0
        self._out = ffi.new(f"uint8_t[{SMALL * lib.OMS_TX_SLOT}]")
        self._lens = ffi.new(f"uint16_t[{SMALL}]")

    def inject(self, frames: list[bytes]) -> None:
        self.sent += ring_rig.inject(self.ext, self.pool, self.rx, frames, T0)

    def handled(self) -> bool:
        return self.worker.done >= self.sent

    def collect(self) -> list[str]:
        """The port's transmit ring until the worker has handled every
        frame given and the ring stays empty, three polls in a row."""
        lib, ffi = self.lib, self.ffi
        out: list[str] = []
        quiet = 0
        deadline = time.monotonic() + 10
        while quiet < 3 and time.monotonic() < deadline:
            n = lib.oms_collect(self.tx, self._out, self._lens, SMALL)
            buf = ffi.buffer(self._out, n * lib.OMS_TX_SLOT)
            out += [bytes(buf[i * lib.OMS_TX_SLOT:i * lib.OMS_TX_SLOT + self._lens[i]]).hex()
                    for i in range(n)]
            quiet = quiet + 1 if n == 0 and self.handled() else 0
            time.sleep(0.002)
        return out

    def stats(self) -> dict:
        st = self.worker.stats
        return {name: getattr(st, name)
                for name, _ in self.ffi.typeof("struct oms_worker_stats").fields}

    def built(self) -> int:
        return self.core.stats()["event"]["FRAMES_OUT"]


def orders(session_seq: int, first_id: int, n: int) -> list[bytes]:
    return [wire.from_strategy(1, wire.new_order(1, session_seq + i, first_id + i))
            for i in range(n)]


def main() -> int:
    out_path, n = Path(sys.argv[1]), int(sys.argv[2])
    rig = Rig()
    lib = rig.lib
    result: dict = {"pool_in_use_before": lib.oms_pool_in_use(rig.pool)}
    try:
        rig.worker.tx_wait_us = 300_000
        if lib.oms_worker_launch(rig.worker, rig.lcore) != 0:
            raise dpdk.DpdkError("cannot launch the worker")
        rig.inject([wire.from_strategy(1, wire.login(1, 1))] + orders(1, 1000, n))
        time.sleep(0.05)
        result["held_dropped_while_held"] = rig.worker.stats.tx_dropped
        result["held"] = rig.collect()
        result["held_stats"] = rig.stats()
        result["held_built"] = rig.built()

        rig.worker.tx_wait_us = 100_000
        t0 = time.monotonic()
        rig.inject(orders(1 + n, 5000, 3 * n))
        ring_rig.wait_until(rig.handled, rig.stats, 10)
        result["stuck_handled_s"] = time.monotonic() - t0
        result["stuck"] = rig.collect()
        result["stuck_stats"] = rig.stats()
        result["stuck_built"] = rig.built()

        rig.inject(orders(1 + 4 * n, 90000, 5))
        result["recovered"] = rig.collect()
        result["recovered_stats"] = rig.stats()
    finally:
        rig.worker.stop = 1
        lib.oms_worker_wait(rig.lcore)
        rig.collect()
        result["pool_in_use_after"] = lib.oms_pool_in_use(rig.pool)
        result["core"] = rig.core.stats()
        out_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
