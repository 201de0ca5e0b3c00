"""Shared test set-up.

OMS_REQUIRE_ALL=1 (set by .ci/run) turns every skip into a failure: tests that
need root, DPDK or namespaces must run in CI, never be skipped there."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# tests import their helpers (wire.py) as top-level modules
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataplane.diagnose import hugepages_free_mb  # noqa: E402

NR_HUGEPAGES = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
FREE_HUGEPAGES = NR_HUGEPAGES.parent / "free_hugepages"
HUGETLBFS = Path("/dev/hugepages")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("OMS_REQUIRE_ALL") == "1":
        # an expected failure (xfail) is reported as skipped too; it stays one
        if not hasattr(report, "wasxfail"):
            report.outcome = "failed"
            report.longrepr = f"skipped under OMS_REQUIRE_ALL=1: {report.longrepr}"


@pytest.fixture
def hugepages():
    """1 GiB of 2 MiB hugepages free (the benchmark's smoke run wants that
    much, the appliance far less) and hugetlbfs mounted, as
    deploy/hugepages.sh leaves them; afterwards the reservation and the
    mount are back as they were.  A test must leave no file in hugetlbfs:
    the pages of one would stay taken."""
    if os.geteuid() != 0 or not NR_HUGEPAGES.exists():
        pytest.skip("reserving hugepages needs root and 2 MiB hugepage support")
    before = int(NR_HUGEPAGES.read_text())
    made_dir = not HUGETLBFS.exists()
    mounted = subprocess.run(["mountpoint", "-q", str(HUGETLBFS)]).returncode == 0
    try:
        free = int(FREE_HUGEPAGES.read_text())
        NR_HUGEPAGES.write_text(str(before + max(0, 520 - free)))
        HUGETLBFS.mkdir(exist_ok=True)
        if not mounted:
            subprocess.run(["mount", "-t", "hugetlbfs", "nodev", str(HUGETLBFS)], check=True)
        if hugepages_free_mb() < 1024:
            pytest.skip(f"the kernel gave {hugepages_free_mb()} MiB of "
                        "hugepages (fragmented memory)")
        yield
    finally:
        if not mounted:
            subprocess.run(["umount", str(HUGETLBFS)])
        if made_dir:
            HUGETLBFS.rmdir()
        NR_HUGEPAGES.write_text(str(before))
