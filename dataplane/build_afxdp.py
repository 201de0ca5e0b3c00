"""cffi build of the native AF_XDP backend (API mode: libxdp's ring helpers
are inline): the core's sources (cdefs/core_sources.txt, the list every
build reads, the commands every poll loop shares and the journal among
them), plus the AF_XDP poll loop (cdefs/afxdp_io.c), so the poll thread
calls the core directly.
Flags and libraries come from pkg-config's libxdp and libbpf (Debian's
libxdp-dev, libbpf-dev)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
CDEFS = ROOT / "cdefs"
CORE_SOURCES = [w for w in (CDEFS / "core_sources.txt").read_text().splitlines()
                if w and not w.startswith("#")]
OPTIMIZE = [w for w in (CDEFS / "optimize_flags.txt").read_text().splitlines()
            if w and not w.startswith("#")]
AFXDP_SOURCES = ["afxdp_io.c"]
MODULE = "dataplane._oms_afxdp"
PKGS = ["libxdp", "libbpf"]


class AfxdpMissing(RuntimeError):
    pass


def afxdp_available() -> bool:
    return shutil.which("pkg-config") is not None and subprocess.run(
        ["pkg-config", "--exists", *PKGS]).returncode == 0


def cdef_text() -> str:
    cc = os.environ.get("CC", "cc")
    return subprocess.run(
        [cc, "-E", "-P", "-DOMS_CFFI", "-I", str(CDEFS), str(CDEFS / "oms_afxdp.h")],
        check=True, capture_output=True, text=True).stdout


def make_builder() -> FFI:
    if not afxdp_available():
        raise AfxdpMissing("libxdp/libbpf not found by pkg-config: install libxdp-dev, "
                           "libbpf-dev and pkg-config (deploy/setup.sh does)")
    ffi = FFI()
    ffi.cdef(cdef_text())
    ffi.set_source_pkgconfig(
        MODULE, PKGS,
        '#include "oms_afxdp.h"\n',
        sources=[os.path.relpath(CDEFS / s) for s in CORE_SOURCES + AFXDP_SOURCES],
        include_dirs=[os.path.relpath(CDEFS)],
        extra_compile_args=["-std=gnu11", "-Wall", "-Wextra", "-Werror", *OPTIMIZE],
        # with LTO the code is generated at link time; only PyInit exported,
        # so that it sees the module whole (cdefs/module_exports.map)
        extra_link_args=[*OPTIMIZE, f"-Wl,--version-script={CDEFS / 'module_exports.map'}"],
        libraries=["pthread"],
    )
    return ffi


ffibuilder = make_builder() if afxdp_available() else None

if __name__ == "__main__":
    # normally built by `pip install -e .`; this builds it in place by hand
    make_builder().compile(tmpdir=str(ROOT), verbose=False)
