"""Sharded mode's I/O lcore and one worker behind a DPDK ring port whose
transmit ring nobody drains for a while, for tests/test_io_backpressure.py
(EAL once per process: the test runs this as a subprocess).

    python tests/io_backpressure_run.py OUT.json N

A login and N NewOrders go in on the port (a venue order out each).  The
port's transmit ring holds 63 frames and the worker's out ring 63, so the
output backs up: the port's ring fills, the I/O lcore keeps what the port
did not take, the worker's out ring fills and the worker waits.  After
200 ms the script drains the port's ring until everything has come out.
OUT.json holds the frames (hex), the counters while held and at the end,
and the pool's use before and after."""
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
        self.ext = ext = ring_rig.eal("0@0,1@1,2@0")
        self.ffi, self.lib = ext.ffi, ext.lib
        lib, ffi = self.lib, self.ffi
        cfg = wire.config()
        self.core = Core(cfg, ext=ext)
        self.pool = lib.oms_pool_create(b"iobp_pool", dpdk.POOL_MBUFS, 0)
        self.rx = lib.oms_ring_create(b"iobp_rx", dpdk.RING_SIZE, 0, 1)
        self.tx = lib.oms_ring_create(b"iobp_tx", SMALL, 0, 1)
        self.in_ring = lib.oms_ring_create(b"iobp_in", dpdk.RING_SIZE, 0, 1)
        self.out_ring = lib.oms_ring_create(b"iobp_out", SMALL, 0, 1)
        if ffi.NULL in (self.pool, self.rx, self.tx, self.in_ring, self.out_ring):
            raise dpdk.DpdkError("cannot create the pool or rings")
        port = lib.oms_port_from_rings(b"net_ring_iobp", self.rx, self.tx, 0)
        err = ffi.new("char[256]")
        if port < 0 or lib.oms_port_start(port, self.pool, err, 256) != 0:
            raise dpdk.DpdkError("ring port: " + ffi.string(err).decode())
        app = cfg.appliance
        w = ffi.new("struct oms_worker *")
        w.core = self.core._core
        w.pool = self.pool
        w.in_ring = self.in_ring
        w.out_ring = self.out_ring
        w.strategy_tx_port = w.venue_tx_port = port
        w.strategy_udp = app.strategy_port
        w.mode = lib.OMS_MODE_LIVE
        w.idle_sleep_us = 20
        io = ffi.new("struct oms_io *")
        io.n_rx = 1
        io.rx_port[0] = port
        io.n_workers = 1
        io.in_ring[0] = self.in_ring
        io.out_ring[0] = self.out_ring
        io.strategy_udp = app.strategy_port
        io.mac = bytes(int(x, 16) for x in app.mac.split(":"))
        io.ip = int.from_bytes(bytes(int(x) for x in app.ip.split(".")), "big")
        io.pool = self.pool
        io.idle_sleep_us = 20
        self.worker, self.io = w, io
        self.w_lcore = lib.oms_next_worker_lcore(0xFFFFFFFF)
        self.io_lcore = lib.oms_next_worker_lcore(self.w_lcore)
        self.sent = 0
        self._out = ffi.new(f"uint8_t[{SMALL * lib.OMS_TX_SLOT}]")
        self._lens = ffi.new(f"uint16_t[{SMALL}]")

    def inject(self, frames: list[bytes]) -> None:
        self.sent += ring_rig.inject(self.ext, self.pool, self.rx, frames, T0)

    def collect(self, expect: int) -> list[str]:
        """The port's transmit ring until `expect` frames have come out and
        it stays empty, three polls in a row (10 s at most)."""
        lib, ffi = self.lib, self.ffi
        out: list[str] = []
        quiet = 0
        deadline = time.monotonic() + 10
        while quiet < 3 and time.monotonic() < deadline:
            n = lib.oms_collect(self.tx, self._out, self._lens, SMALL)
            buf = ffi.buffer(self._out, n * lib.OMS_TX_SLOT)
            out += [bytes(buf[i * lib.OMS_TX_SLOT:i * lib.OMS_TX_SLOT + self._lens[i]]).hex()
                    for i in range(n)]
            quiet = quiet + 1 if n == 0 and len(out) >= expect else 0
            time.sleep(0.002)
        return out

    def stats(self) -> dict:
        ffi = self.ffi
        return {
            "worker": {n: getattr(self.worker.stats, n)
                       for n, _ in ffi.typeof("struct oms_worker_stats").fields},
            "io": {n: getattr(self.io.stats, n)
                   for n, _ in ffi.typeof("struct oms_io_stats").fields
                   if n != "to_worker"},
        }


def main() -> int:
    out_path, n = Path(sys.argv[1]), int(sys.argv[2])
    rig = Rig()
    lib = rig.lib
    result: dict = {"pool_in_use_before": lib.oms_pool_in_use(rig.pool)}
    try:
        if lib.oms_worker_launch(rig.worker, rig.w_lcore) != 0:
            raise dpdk.DpdkError("cannot launch the worker")
        if lib.oms_io_launch(rig.io, rig.io_lcore) != 0:
            raise dpdk.DpdkError("cannot launch the I/O lcore")
        frames = [wire.from_strategy(1, wire.login(1, 1))]
        frames += [wire.from_strategy(1, wire.new_order(1, 1 + i, 1000 + i)) for i in range(n)]
        rig.inject(frames)
        ring_rig.wait_until(lambda: rig.worker.stats.out_ring_waits >= 1, rig.stats, 10)
        time.sleep(0.2)
        result["held"] = rig.stats()
        # the gratuitous ARP, the login's answer and a venue order each
        result["frames"] = rig.collect(2 + n)
        result["end"] = rig.stats()
    finally:
        rig.worker.stop = 1
        lib.oms_worker_wait(rig.w_lcore)
        rig.io.stop = 1
        lib.oms_worker_wait(rig.io_lcore)
        rig.collect(0)
        result["pool_in_use_after"] = lib.oms_pool_in_use(rig.pool)
        result["core"] = rig.core.stats()
        out_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
