"""The DPDK data plane from Python: EAL start-up, mempools, ports, and the
core running on a worker lcore.

EAL can be initialised once per process and pins the calling thread, so a
process that uses this module is a data-plane process: tests run it in a
subprocess.  Without hugepages (CI, laptops) it runs with --no-huge; a
unique --file-prefix keeps concurrent runs apart.

`RingPortCore` runs the core on a worker lcore behind a DPDK ring port
(net_ring); Python hands it each burst as mbufs stamped with their time and
waits until the worker has handled it, so it is as deterministic as the core
in this thread.  It has the API of dataplane.core.Core.  (Replay with
--backend dpdk reads its capture through a net_pcap port instead:
dataplane/netpcap_replay.py.)"""
from __future__ import annotations

import importlib
import os
import time

from control.config import Config
from dataplane.core import Core

_ext = None
_eal_args: list[str] | None = None

# mbufs: every frame of a burst in and out, a few bursts deep; ring-port
# replay needs few, live ports take theirs from config
POOL_MBUFS = 8191
RING_SIZE = 4096


class DpdkError(RuntimeError):
    pass


def extension():
    """The cffi extension with DPDK inside, with a clear message when it
    was not built."""
    global _ext
    if _ext is None:
        try:
            _ext = importlib.import_module("dataplane._oms_dpdk")
        except ImportError as e:
            raise DpdkError(
                "the DPDK data plane is not built: install libdpdk-dev, dpdk and pkg-config "
                "(bash deploy/setup.sh does) and reinstall the project") from e
    return _ext


def default_eal_args(lcores: str = "0,1") -> list[str]:
    """No hugepages, no PCI: what CI and a laptop can do.  (--no-huge keeps
    nothing on disk already; EAL refuses --in-memory beside it.)"""
    return ["oms", "-l", lcores, "--no-huge", "-m", "512", "--no-pci",
            "--file-prefix", f"oms{os.getpid()}", "--log-level", "lib.eal:error",
            "--no-telemetry"]


def eal_init(args: list[str] | None = None) -> None:
    """Start EAL once for this process; later calls must ask for the same."""
    global _eal_args
    args = args or default_eal_args()
    if _eal_args is not None:
        if args != _eal_args:
            raise DpdkError(f"EAL already started with {_eal_args}, cannot restart with {args}")
        return
    ext = extension()
    argv_keep = [ext.ffi.new("char[]", a.encode()) for a in args]
    argv = ext.ffi.new("char *[]", argv_keep)
    r = ext.lib.oms_eal_init(len(args), argv)
    if r < 0:
        raise DpdkError(
            f"EAL did not start with {' '.join(args)}: check hugepages (or --no-huge), "
            "the lcore list against the CPUs, and that no other process uses the file prefix")
    _eal_args = list(args)


class RingPortCore:
    """The core on a worker lcore behind a ring port; Core's API."""

    def __init__(self, cfg: Config, *, lcore: int | None = None, name: str = "replay",
                 idle_sleep_us: int = 50, timeout_s: float = 30.0,
                 market_data: bool = False):
        eal_init()
        ext = extension()
        self.ffi, self.lib = ext.ffi, ext.lib
        lib, ffi = self.lib, self.ffi
        self.timeout_s = timeout_s
        self.core = Core(cfg, ext=ext)
        self.pool = lib.oms_pool_create(f"{name}_pool".encode(), POOL_MBUFS, 0)
        self.rx = lib.oms_ring_create(f"{name}_rx".encode(), RING_SIZE, 0, 1)
        self.tx = lib.oms_ring_create(f"{name}_tx".encode(), RING_SIZE, 0, 1)
        self.cmd = lib.oms_ring_create(f"{name}_cmd".encode(), 1024, 0, 1)
        if ffi.NULL in (self.pool, self.rx, self.tx, self.cmd):
            raise DpdkError(f"{name}: cannot create the mempool or rings (memory?)")
        port = lib.oms_port_from_rings(f"net_ring_{name}".encode(), self.rx, self.tx, 0)
        if port < 0:
            raise DpdkError(f"{name}: cannot create the ring port")
        self.port = port
        err = ffi.new("char[256]")
        if lib.oms_port_start(port, self.pool, err, 256) != 0:
            raise DpdkError(ffi.string(err).decode())
        self.worker = ffi.new("struct oms_worker *")
        w = self.worker
        w.core = self.core._core
        w.pool = self.pool
        w.commands = self.cmd
        w.n_rx = 1
        w.rx_port[0] = port
        w.strategy_tx_port = w.venue_tx_port = port
        w.strategy_udp = cfg.appliance.strategy_port
        w.mode = lib.OMS_MODE_REPLAY
        w.idle_sleep_us = idle_sleep_us
        # market_data: the worker splits cfg's feeds' frames off its bursts
        self.md = None
        if market_data and cfg.market_data.subscriptions:
            from dataplane.market_data import CMarketData
            self.md = CMarketData(cfg, ext=ext)
            self.md.attach(self.core)
            w.md = self.md.ptr
        self.lcore = lcore if lcore is not None else lib.oms_next_worker_lcore(0xFFFFFFFF)
        if self.lcore >= 1024:  # RTE_MAX_LCORE: none left
            raise DpdkError("no worker lcore: give EAL at least two lcores (-l 0,1)")
        self.expected = 0
        if lib.oms_worker_launch(w, self.lcore) != 0:
            raise DpdkError(f"cannot launch the worker on lcore {self.lcore}")
        self._out = ffi.new(f"uint8_t[{RING_SIZE * lib.OMS_TX_SLOT}]")
        self._lens = ffi.new(f"uint16_t[{RING_SIZE}]")

    def _wait(self) -> None:
        """Until the worker has handled everything handed to it; the wait is
        bounded, and in small sleeps so that signals reach Python."""
        deadline = time.monotonic() + self.timeout_s
        spins = 0
        while self.worker.done < self.expected:
            spins += 1
            if spins > 200:
                time.sleep(0.0001)
            if time.monotonic() > deadline:
                raise DpdkError(f"worker on lcore {self.lcore} did not finish in "
                                f"{self.timeout_s} s ({self.worker.done}/{self.expected})")

    def process_burst(self, frames: list[bytes], now_ns: int) -> list[bytes]:
        lib, ffi = self.lib, self.ffi
        if frames:
            keep = [ffi.from_buffer(f) for f in frames]
            ptrs = ffi.new("uint8_t *[]", keep)
            lens = ffi.new("uint16_t[]", [len(f) for f in frames])
            if lib.oms_inject(self.pool, self.rx, ptrs, lens, len(frames), now_ns) != 0:
                raise DpdkError("cannot inject the burst (mempool or ring full)")
            self.expected += len(frames)
        else:
            tick = ffi.new("struct oms_command *", {"op": lib.OMS_CMD_TICK, "now_ns": now_ns})
            if lib.oms_command(self.cmd, tick) != 0:
                raise DpdkError("command ring full")
            self.expected += 1
        self._wait()
        n = lib.oms_collect(self.tx, self._out, self._lens, RING_SIZE)
        slot = lib.OMS_TX_SLOT
        buf = ffi.buffer(self._out, n * slot)
        return [bytes(buf[i * slot:i * slot + self._lens[i]]) for i in range(n)]

    # the rest of Core's API: the worker is idle between bursts
    def stats(self) -> dict:
        return self.core.stats()

    def order(self, session_id: int, cl_ord_id: int):
        return self.core.order(session_id, cl_ord_id)

    def live_orders(self) -> int:
        return self.core.live_orders()

    def next_deadline(self) -> int:
        return self.core.next_deadline()

    def route_decisions(self, from_seq: int = 1) -> list[dict]:
        return self.core.route_decisions(from_seq)

    def set_timing(self, on: bool) -> None:
        self.core.set_timing(on)

    def latency_histogram(self):
        return self.core.latency_histogram()

    def port_stats(self) -> dict:
        ffi = self.ffi
        vals = [ffi.new("uint64_t *") for _ in range(4)]
        self.lib.oms_port_stats(self.port, *vals)
        return dict(zip(("ipackets", "opackets", "imissed", "oerrors"), (v[0] for v in vals),
                        strict=True))

    def worker_stats(self) -> dict:
        st = self.worker.stats
        return {name: getattr(st, name) for name, _ in
                self.ffi.typeof("struct oms_worker_stats").fields}

    def mbufs_in_use(self) -> int:
        return self.lib.oms_pool_in_use(self.pool)

    def close(self) -> None:
        """Stop the worker, then the port; nothing is in flight between
        bursts, so nothing is lost."""
        if getattr(self, "worker", None) is None:
            return
        self.worker.stop = 1
        self.lib.oms_worker_wait(self.lcore)
        self.lib.oms_port_stop(self.port)
        self.worker = None
