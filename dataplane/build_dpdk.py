"""cffi build of the DPDK data plane (API mode: DPDK's burst, ring and mbuf
calls are static inline).  It compiles the same core sources as
build_core.py plus the DPDK glue (cdefs/dpdk_io.c, cdefs/worker.c, and the
net_pcap replay loop cdefs/replay_loop.c), so the worker lcore calls the core
directly.  Flags and libraries come from
pkg-config's libdpdk (Debian's libdpdk-dev)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cffi import FFI, pkgconfig

ROOT = Path(__file__).resolve().parent.parent
CDEFS = ROOT / "cdefs"
CORE_SOURCES = [w for w in (CDEFS / "core_sources.txt").read_text().splitlines()
                if w and not w.startswith("#")]
OPTIMIZE = [w for w in (CDEFS / "optimize_flags.txt").read_text().splitlines()
            if w and not w.startswith("#")]
# command.c is a core source (core_sources.txt)
DPDK_SOURCES = ["dpdk_io.c", "worker.c", "io_lcore.c", "checker_lcore.c", "replay_loop.c",
                "dpdk_obs.c"]
# what cffi binds: the data plane and the replay loop
HEADERS = ["oms_dpdk.h", "replay_loop.h"]
MODULE = "dataplane._oms_dpdk"


class DpdkMissing(RuntimeError):
    pass


def dpdk_available() -> bool:
    return shutil.which("pkg-config") is not None and subprocess.run(
        ["pkg-config", "--exists", "libdpdk"]).returncode == 0


def cdef_text() -> str:
    cc = os.environ.get("CC", "cc")
    includes = "".join(f'#include "{h}"\n' for h in HEADERS)
    return subprocess.run(
        [cc, "-E", "-P", "-DOMS_CFFI", "-I", str(CDEFS), "-x", "c", "-"],
        input=includes, check=True, capture_output=True, text=True).stdout


def make_builder() -> FFI:
    if not dpdk_available():
        raise DpdkMissing("DPDK not found by pkg-config (libdpdk): install libdpdk-dev, dpdk "
                          "and pkg-config (deploy/setup.sh does)")
    ffi = FFI()
    ffi.cdef(cdef_text())
    kwds = dict(
        sources=[os.path.relpath(CDEFS / s) for s in CORE_SOURCES + DPDK_SOURCES],
        include_dirs=[os.path.relpath(CDEFS)],
        define_macros=[("ALLOW_EXPERIMENTAL_API", None)],
        extra_compile_args=["-std=gnu11", "-Wall", "-Wextra", "-Werror",
                            "-Wno-unused-parameter"],
        # net_ring and the vdev bus are called directly; net_pcap is a plugin
        libraries=["rte_net_ring", "rte_bus_vdev"],
    )
    pkgconfig.merge_flags(kwds, pkgconfig.flags_from_pkgconfig(["libdpdk"]))
    # after pkg-config's flags, whose -march=corei7 would otherwise win: the
    # code the benchmarks time (bench/run_dpdk_bench.py does the same); with
    # LTO the code is generated at link time, so the link gets them too,
    # and exports only PyInit, so that it sees the module whole
    # (cdefs/module_exports.map)
    kwds["extra_compile_args"] += OPTIMIZE
    kwds["extra_link_args"] = [*kwds.get("extra_link_args", []), *OPTIMIZE,
                               f"-Wl,--version-script={CDEFS / 'module_exports.map'}"]
    ffi.set_source(MODULE, "".join(f'#include "{h}"\n' for h in HEADERS), **kwds)
    return ffi


ffibuilder = make_builder() if dpdk_available() else None

if __name__ == "__main__":
    # normally built by `pip install -e .`; this builds it in place by hand
    make_builder().compile(tmpdir=str(ROOT), verbose=False)
