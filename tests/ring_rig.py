"""What the DPDK ring scripts (tests/typed_ring_run.py, tests/out_ring_run.py,
tests/io_backpressure_run.py, tests/tx_wait_run.py) share: the EAL on
chosen lcores, a core, a pool, rings and ring ports, frames into a ring as
mbufs and out of one as hex, a worker's counters, waiting with a bound;
and, for their tests, running a script in its own process (EAL once per
process) and reading the JSON it leaves."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import wire

from dataplane import dpdk
from dataplane.core import Core

TESTS = Path(__file__).resolve().parent
T0 = 1_638_247_400_000_000_000  # the injected frames' time stamp


def eal(lcores: str):
    """EAL on `lcores` (EAL --lcores: lcore@CPU,...), and the extension."""
    args = dpdk.default_eal_args()
    i = args.index("-l")
    args[i:i + 2] = ["--lcores", lcores]
    dpdk.eal_init(args)
    return dpdk.extension()


def inject(ext, pool, ring, frames: list[bytes], ts_ns: int = T0) -> int:
    """Put `frames` on `ring` in bursts, each in an mbuf from `pool`
    stamped `ts_ns`; returns how many."""
    ffi, lib = ext.ffi, ext.lib
    for k in range(0, len(frames), lib.OMS_BURST):
        part = frames[k:k + lib.OMS_BURST]
        keep = [ffi.from_buffer(f) for f in part]
        ptrs = ffi.new("uint8_t *[]", keep)
        lens = ffi.new("uint16_t[]", [len(f) for f in part])
        if lib.oms_inject(pool, ring, ptrs, lens, len(part), ts_ns) != 0:
            raise dpdk.DpdkError("cannot inject (mempool or ring full)")
    return len(frames)


def wait_until(what, describe, timeout_s: float) -> None:
    """Poll `what()` every millisecond until true; after `timeout_s`, fail
    with `describe()` (the counters that say where it stuck)."""
    deadline = time.monotonic() + timeout_s
    while not what():
        if time.monotonic() > deadline:
            raise dpdk.DpdkError(f"timed out waiting ({describe()})")
        time.sleep(0.001)


class RingRig:
    """The EAL on `lcores`, a core from tests/wire.py's configuration, a
    pool; rings, ring ports and a live worker on demand.  Names start with
    `prefix` (DPDK names are process-wide)."""

    def __init__(self, lcores: str, prefix: str, cfg=None):
        self.ext = eal(lcores)
        self.ffi, self.lib = self.ext.ffi, self.ext.lib
        self.prefix = prefix
        self.cfg = cfg or wire.config()
        self.core = Core(self.cfg, ext=self.ext)
        self.pool = self.lib.oms_pool_create(f"{prefix}_pool".encode(), dpdk.POOL_MBUFS, 0)
        if self.pool == self.ffi.NULL:
            raise dpdk.DpdkError("cannot create the pool")
        self.sent = 0  # frames injected
        self.taken = 0  # frames collected
        self._out = self.ffi.new(f"uint8_t[{dpdk.RING_SIZE * self.lib.OMS_TX_SLOT}]")
        self._lens = self.ffi.new(f"uint16_t[{dpdk.RING_SIZE}]")

    def ring(self, name: str, size: int = dpdk.RING_SIZE):
        r = self.lib.oms_ring_create(f"{self.prefix}_{name}".encode(), size, 0, 1)
        if r == self.ffi.NULL:
            raise dpdk.DpdkError(f"cannot create ring {name}")
        return r

    def port(self, rx, tx) -> int:
        """A started net_ring port receiving from `rx`, sending to `tx`."""
        lib, ffi = self.lib, self.ffi
        port = lib.oms_port_from_rings(f"net_ring_{self.prefix}".encode(), rx, tx, 0)
        err = ffi.new("char[256]")
        if port < 0 or lib.oms_port_start(port, self.pool, err, 256) != 0:
            raise dpdk.DpdkError("ring port: " + ffi.string(err).decode())
        return port

    def new_worker(self):
        """A live worker on the core and pool, backing off when idle."""
        w = self.ffi.new("struct oms_worker *")
        w.core = self.core._core
        w.pool = self.pool
        w.strategy_udp = self.cfg.appliance.strategy_port
        w.mode = self.lib.OMS_MODE_LIVE
        w.idle_sleep_us = 20
        return w

    def inject(self, ring, frames: list[bytes]) -> None:
        self.sent += inject(self.ext, self.pool, ring, frames)

    def collect(self, ring, settled) -> list[str]:
        """The frames on `ring` (hex) until `settled()` and the ring stays
        empty, three polls in a row (10 s at most)."""
        lib, ffi = self.lib, self.ffi
        out: list[str] = []
        quiet = 0
        deadline = time.monotonic() + 10
        while quiet < 3 and time.monotonic() < deadline:
            n = lib.oms_collect(ring, self._out, self._lens, dpdk.RING_SIZE)
            buf = ffi.buffer(self._out, n * lib.OMS_TX_SLOT)
            out += [bytes(buf[i * lib.OMS_TX_SLOT:i * lib.OMS_TX_SLOT + self._lens[i]]).hex()
                    for i in range(n)]
            self.taken += n
            quiet = quiet + 1 if n == 0 and settled() else 0
            time.sleep(0.002)
        return out

    def write(self, result: dict, out_path: Path) -> None:
        """`result` with the pool's use and the core's counters, as JSON."""
        result["pool_in_use_after"] = self.lib.oms_pool_in_use(self.pool)
        result["core"] = self.core.stats()
        out_path.write_text(json.dumps(result))

    def counters(self, struct: str, stats) -> dict:
        """A C stats struct as a dict (arrays left out)."""
        return {n: getattr(stats, n) for n, f in self.ffi.typeof(struct).fields
                if f.type.kind != "array"}


def run_script(script: str, out: Path, *args: str, timeout_s: float = 60) -> dict:
    """python tests/SCRIPT OUT ARGS..., then the JSON it wrote to OUT."""
    r = subprocess.run([sys.executable, str(TESTS / script), str(out), *args],
                       capture_output=True, text=True, timeout=timeout_s)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())
