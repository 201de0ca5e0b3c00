"""One test run under AddressSanitizer and UndefinedBehaviorSanitizer: the
C core is rebuilt with both (dataplane._oms_core_san) and the tests that
drive it hardest run again against that build, in a child process with the
sanitizer runtimes preloaded into the Python interpreter.  Any report
aborts the child, which fails this test."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITES = ["tests/test_core_vs_model.py", "tests/test_fuzz_junk.py", "tests/test_journal.py",
          "tests/test_transcripts.py", "tests/test_reference_model.py",
          "tests/test_feed_vs_model.py", "tests/test_feed.py", "tests/test_igmp.py",
          "tests/test_stage_counts.py", "tests/test_sor.py", "tests/test_priority_classes.py",
          "tests/test_fill_route.py", "tests/test_split.py", "tests/test_journal_market.py"]


def runtime(name: str) -> str:
    cc = os.environ.get("CC", "cc")
    path = subprocess.run([cc, f"-print-file-name={name}"], check=True, capture_output=True,
                          text=True).stdout.strip()
    assert os.path.isabs(path), f"{cc} has no {name}: install gcc's sanitizer runtimes"
    return path


@pytest.fixture(scope="module")
def sanitized_build():
    env = dict(os.environ, OMS_SANITIZE="1")
    subprocess.run([sys.executable, "dataplane/build_core.py"], cwd=ROOT, env=env, check=True,
                   capture_output=True)


def test_core_under_asan_and_ubsan(sanitized_build):
    env = dict(os.environ, OMS_SANITIZE="1")
    env.update(
        LD_PRELOAD=f"{runtime('libasan.so')} {runtime('libubsan.so')}",
        # CPython itself keeps memory until exit, which LeakSanitizer would
        # report; leaks of the core are covered by its own create/destroy
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
        OMS_PROPERTY_EXAMPLES="120",
        PYTHONMALLOC="malloc",
    )
    suites = [s for s in SUITES if (ROOT / s).exists()]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suites],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = (r.stdout + r.stderr)[-6000:]
    assert r.returncode == 0, tail
    assert "passed" in r.stdout and "_oms_core_san" not in r.stderr, tail


def test_sanitized_module_is_the_one_under_test(sanitized_build):
    """The child really loads the sanitizer build (not the optimised one)."""
    env = dict(os.environ, OMS_SANITIZE="1",
               LD_PRELOAD=f"{runtime('libasan.so')} {runtime('libubsan.so')}",
               ASAN_OPTIONS="detect_leaks=0")
    r = subprocess.run([sys.executable, "-c", "import dataplane.core as c; print(c._MODULE)"],
                       cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "dataplane._oms_core_san"
