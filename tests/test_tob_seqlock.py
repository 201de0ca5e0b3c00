"""Worker cores read the feed's top of book without locks and never see a
torn one: tests/c/tob_seqlock.c drives the real feed from one thread while
two others read (see its comment for the invariant)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readers_never_see_a_torn_top_of_book(tmp_path):
    exe = tmp_path / "tob_seqlock"
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-std=gnu11", "-O2", "-march=native", "-Wall", "-Wextra", "-Werror",
                    "-pthread", "-I", str(ROOT / "cdefs"), "-o", str(exe),
                    str(ROOT / "tests" / "c" / "tob_seqlock.c"),
                    *[str(ROOT / "cdefs" / s) for s in ("feed.c", "book.c", "net.c")]],
                   check=True)
    r = subprocess.run([str(exe), "1000000"], capture_output=True, text=True, timeout=120)
    fig = dict(line.split() for line in r.stdout.splitlines())
    assert r.returncode == 0, r.stdout + r.stderr
    assert int(fig["torn"]) == 0 and fig["final_ok"] == "1"
    assert int(fig["reads"]) > 0
