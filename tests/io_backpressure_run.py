"""Sharded mode's I/O lcore and one worker behind a DPDK ring port whose
transmit ring nobody drains for a while, for tests/test_io_backpressure.py
(EAL once per process: the test runs this as a subprocess).

    python tests/io_backpressure_run.py OUT.json N

A login and N NewOrders go in on the port (a venue order out each).  The
port's transmit ring holds 63 frames and the worker's out ring 63, so the
output backs up: the port's ring fills, the I/O lcore keeps what the port
did not take, the worker's out ring fills and the worker waits.  Then an
ARP request for the appliance comes in, which the I/O lcore answers itself
on the full port.  After 200 ms the script drains the port's ring until
everything has come out.
OUT.json holds the frames (hex), the counters while held and at the end,
and the pool's use before and after."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wire  # noqa: E402
from ring_rig import RingRig, wait_until  # noqa: E402

from dataplane import dpdk  # noqa: E402
from dataplane.core import ip_to_int, mac_to_bytes  # noqa: E402


def main() -> int:
    out_path, n = Path(sys.argv[1]), int(sys.argv[2])
    rig = RingRig("0@0,1@1,2@0", "iobp")
    lib, ffi, app = rig.lib, rig.ffi, rig.cfg.appliance
    rx, tx = rig.ring("rx"), rig.ring("tx", 64)
    in_ring, out_ring = rig.ring("in"), rig.ring("out", 64)
    port = rig.port(rx, tx)
    w = rig.new_worker()
    w.in_ring, w.out_ring = in_ring, out_ring
    w.strategy_tx_port = w.venue_tx_port = port
    io = ffi.new("struct oms_io *")
    io.n_rx = 1
    io.rx_port[0] = port
    io.n_workers = 1
    io.in_ring[0], io.out_ring[0] = in_ring, out_ring
    io.strategy_udp = app.strategy_port
    io.mac = list(mac_to_bytes(app.mac))
    io.ip = ip_to_int(app.ip)
    io.pool = rig.pool
    io.idle_sleep_us = 20
    w_lcore = lib.oms_next_worker_lcore(0xFFFFFFFF)
    io_lcore = lib.oms_next_worker_lcore(w_lcore)

    def stats() -> dict:
        return {"worker": rig.counters("struct oms_worker_stats", w.stats),
                "io": rig.counters("struct oms_io_stats", io.stats)}

    result: dict = {"pool_in_use_before": lib.oms_pool_in_use(rig.pool)}
    try:
        if lib.oms_worker_launch(w, w_lcore) != 0:
            raise dpdk.DpdkError("cannot launch the worker")
        if lib.oms_io_launch(io, io_lcore) != 0:
            raise dpdk.DpdkError("cannot launch the I/O lcore")
        rig.inject(rx, [wire.from_strategy(1, wire.login(1, 1))] +
                   [wire.from_strategy(1, wire.new_order(1, 1 + i, 1000 + i)) for i in range(n)])
        wait_until(lambda: w.stats.out_ring_waits >= 1, stats, 10)
        s = wire.SESSIONS[0]
        rig.inject(rx, [wire.arp_request(s.mac, s.ip, app.ip)])
        wait_until(lambda: io.link.arp_replies >= 1, stats, 10)
        time.sleep(0.2)
        result["held"] = stats()
        # the worker sees all but the ARP request; the port sends the
        # gratuitous ARP and the reply besides the worker's frames
        result["frames"] = rig.collect(tx, lambda: w.done >= rig.sent - 1 and not io.n_pend and
                                       io.stats.tx_frames == w.stats.tx_frames + 2)
        result["end"] = stats()
    finally:
        w.stop = 1
        lib.oms_worker_wait(w_lcore)
        io.stop = 1
        lib.oms_worker_wait(io_lcore)
        rig.collect(tx, lambda: True)
        rig.write(result, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
