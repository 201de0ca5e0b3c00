"""What the DPDK ring scripts (tests/typed_ring_run.py, tests/out_ring_run.py)
share: frames into an rte_ring as mbufs, waiting on a worker with a bound,
and, for their tests, running a script in its own process (EAL once per
process) and reading the JSON it leaves."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from dataplane import dpdk

TESTS = Path(__file__).resolve().parent


def eal(lcores: str):
    """EAL on `lcores` (EAL --lcores: lcore@CPU,...), and the extension."""
    args = dpdk.default_eal_args()
    i = args.index("-l")
    args[i:i + 2] = ["--lcores", lcores]
    dpdk.eal_init(args)
    return dpdk.extension()


def inject(ext, pool, ring, frames: list[bytes], ts_ns: int) -> int:
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


def run_script(script: str, out: Path, *args: str, timeout_s: float = 60) -> dict:
    """python tests/SCRIPT OUT ARGS..., then the JSON it wrote to OUT."""
    r = subprocess.run([sys.executable, str(TESTS / script), str(out), *args],
                       capture_output=True, text=True, timeout=timeout_s)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())
