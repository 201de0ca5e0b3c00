"""Typed mode's lanes (docs/dataplane.md "Threading", cdefs/oms_dpdk.h
"Typed mode"): the I/O lcore sorts strategy frames by type into lanes - a
PRIORITY NewOrder to the high lane, a Modify to the modification worker, a
Cancel or MassCancel to the cancellation worker, the rest to the normal lane
- and the placement worker, which owns the one core, takes them back in
arrival order.  This module builds the rings, the two checking workers and
the I/O lcore's lane table for dataplane.serve.Appliance, stops them in the
order that loses nothing, and reports their counters."""
from __future__ import annotations

import time

from dataplane import dpdk
from dataplane.core import ip_to_int, mac_to_bytes

# lcores typed mode takes beyond the placement worker: I/O, modify, cancel
EXTRA_LCORES = 3
CHECKERS = ("modify", "cancel")


class TypedLanes:
    def __init__(self, app, cfg, worker, socket: int):
        ffi, lib = app.ffi, app.lib
        self.ffi, self.lib = ffi, lib
        ring = app._ring
        self.merge = ffi.new("struct oms_typed *")
        # a call's frames must fit the core's transmit area, as a burst's do
        self.merge.batch = max(1, min(lib.OMS_TYPED_BATCH, cfg.tables.tx_frames // 4))
        worker.typed = self.merge
        worker.out_ring = ring("oms_out0", socket)
        self.checkers = []
        for name in CHECKERS:
            k = ffi.new("struct oms_checker *")
            k.in_ring = ring(f"oms_{name}_in", socket)
            k.out_ring = ring(f"oms_{name}_out", socket)
            k.ip = ip_to_int(cfg.appliance.ip)
            k.strategy_udp = cfg.appliance.strategy_port
            if len(cfg.sessions) > lib.OMS_CHECKER_SESSIONS:
                raise dpdk.DpdkError(f"typed mode checks at most {lib.OMS_CHECKER_SESSIONS} "
                                     f"sessions, the configuration has {len(cfg.sessions)}")
            for i, s in enumerate(cfg.sessions):
                k.sessions[i] = {"id": s.id, "ip": ip_to_int(s.ip), "port": s.port}
            k.n_sessions = len(cfg.sessions)
            k.idle_sleep_us = cfg.dataplane.idle_sleep_us
            self.checkers.append(k)
        m, c = self.checkers
        self.merge.lane[lib.OMS_LANE_NORMAL] = ring("oms_normal", socket)
        self.merge.lane[lib.OMS_LANE_HIGH] = ring("oms_high", socket)
        self.merge.lane[lib.OMS_LANE_MODIFY] = m.out_ring
        self.merge.lane[lib.OMS_LANE_CANCEL] = c.out_ring

        io = ffi.new("struct oms_io *")
        io.n_rx = len(app.ports)
        for k, pid in enumerate(app.ports):
            io.rx_port[k] = pid
        io.n_workers = 1
        io.out_ring[0] = worker.out_ring
        io.typed = 1
        io.merge = self.merge
        io.lane[lib.OMS_LANE_NORMAL] = self.merge.lane[lib.OMS_LANE_NORMAL]
        io.lane[lib.OMS_LANE_HIGH] = self.merge.lane[lib.OMS_LANE_HIGH]
        io.lane[lib.OMS_LANE_MODIFY] = m.in_ring
        io.lane[lib.OMS_LANE_CANCEL] = c.in_ring
        io.strategy_udp = cfg.appliance.strategy_port
        io.mac = list(mac_to_bytes(cfg.appliance.mac))
        io.ip = ip_to_int(cfg.appliance.ip)
        io.pool = app.pool
        io.idle_sleep_us = cfg.dataplane.idle_sleep_us
        self.io = io

    def launch_checkers(self, lcores: list[int]) -> None:
        for k, lc in zip(self.checkers, lcores, strict=True):
            if self.lib.oms_checker_launch(k, lc) != 0:
                raise dpdk.DpdkError(f"cannot launch a checking worker on lcore {lc}")

    def in_flight(self) -> int:
        """Frames the I/O lcore has numbered that the core has not taken."""
        return (self.io.next_arrival - self.merge.consumed) % 2**32

    def drain(self, timeout_s: float = 5.0) -> None:
        """The I/O lcore receives no more; wait until the core has taken
        every frame it numbered."""
        self.io.rx_off = 1
        deadline = time.monotonic() + timeout_s
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.001)

    def stop_checkers(self, lcores: list[int]) -> None:
        for k, lc in zip(self.checkers, lcores, strict=True):
            k.stop = 1
            self.lib.oms_worker_wait(lc)

    def report(self) -> dict:
        ffi = self.ffi
        st = self.merge.stats
        lanes = ("normal", "high", "modify", "cancel")
        return {
            "lanes_in": dict(zip(lanes, (int(x) for x in self.io.lane_tx), strict=True)),
            "lanes_taken": dict(zip(lanes, (int(x) for x in st.lane_rx), strict=True)),
            "batches": st.batches, "waits": st.waits, "in_flight": self.in_flight(),
            "checkers": {name: {n: getattr(k.stats, n)
                                for n, _ in ffi.typeof("struct oms_checker_stats").fields}
                         for name, k in zip(CHECKERS, self.checkers, strict=True)},
        }
