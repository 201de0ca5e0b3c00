"""cffi build of the C core in API mode (pyca/cryptography's layout): the C
lives in real files under cdefs/, and the declarations cffi binds are read
from cdefs/oms_core.h (and journal.h, which includes it and command.h)
through the preprocessor, never typed twice.

OMS_SANITIZE=1 builds the same sources with ASan and UBSan into
`dataplane._oms_core_san`, for the sanitizer test run."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
CDEFS = ROOT / "cdefs"
SOURCES = [w for w in (CDEFS / "core_sources.txt").read_text().splitlines()
           if w and not w.startswith("#")]
OPTIMIZE = [w for w in (CDEFS / "optimize_flags.txt").read_text().splitlines()
            if w and not w.startswith("#")]
SANITIZE = os.environ.get("OMS_SANITIZE") == "1"
MODULE = "dataplane._oms_core_san" if SANITIZE else "dataplane._oms_core"

CFLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", *OPTIMIZE]
# with LTO the code is generated at link time; only PyInit exported, so
# that it sees the module whole (cdefs/module_exports.map)
LDFLAGS = [*OPTIMIZE, f"-Wl,--version-script={CDEFS / 'module_exports.map'}"]
if SANITIZE:
    CFLAGS = ["-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
              "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
              "-fno-omit-frame-pointer"]
    LDFLAGS = ["-fsanitize=address,undefined"]


def cdef_text() -> str:
    """replication.h (journal.h: oms_core.h, command.h and the journal's
    own; and the hot standby's) with its includes expanded and macros
    resolved, as cffi wants it: the preprocessor does the work, OMS_CFFI
    hides what cffi cannot parse."""
    cc = os.environ.get("CC", "cc")
    out = subprocess.run(
        [cc, "-E", "-P", "-DOMS_CFFI", "-I", str(CDEFS), str(CDEFS / "replication.h")],
        check=True, capture_output=True, text=True).stdout
    return out


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    MODULE,
    '#include "replication.h"\n',
    # setuptools insists on paths relative to setup.py's directory
    sources=[os.path.relpath(CDEFS / s) for s in SOURCES],
    include_dirs=[os.path.relpath(CDEFS)],
    extra_compile_args=CFLAGS,
    extra_link_args=LDFLAGS,
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(ROOT), verbose=False)
