"""What a dead appliance leaves of DPDK's EAL, found and removed at start.

Every run takes its own ``--file-prefix`` (``oms<pid>``, serve.eal_args and
dpdk.py), so nothing a killed run left can collide with the next one; but
nothing removes it either.  Per run, EAL leaves a runtime directory
(``/var/run/dpdk/<prefix>``: its config and fbarray files, some 6 MiB under
``--no-huge``, on a tmpfs ``/run`` that is memory) and, with hugepages, its
``<prefix>map_<n>`` files in each hugetlbfs mount, which hold the pages until
removed.  Left alone they pile up until a restart finds no memory or no
hugepages.

A directory or file is stale when no process holds the lock EAL keeps on it
while it runs: the primary's ``fcntl`` write lock on ``config``, the
``flock`` on each hugepage file (DPDK's own clear_hugedir test).  A running
appliance - this machine may run several - keeps its locks and is never
touched.  Only ``oms<digits>`` prefixes are considered: other tools' are
theirs."""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import time

RUNTIME_ROOT = "/var/run/dpdk"
# EAL creates its config file, then locks it: a younger one may be starting
YOUNG_S = 1.0
OUR_PREFIX = re.compile(r"oms\d+")
HUGEPAGE_FILE = re.compile(r"(oms\d+)map_\d+")


def _config_unlocked(path: str) -> bool:
    """No process holds EAL's write lock on this config file (call before
    this process's own EAL starts: fcntl locks are per process)."""
    try:
        if time.time() - os.stat(path).st_mtime < YOUNG_S:
            return False
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a live primary holds it
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def _file_unlocked(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def hugetlbfs_mounts(mounts: str = "/proc/mounts") -> list[str]:
    try:
        with open(mounts) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    return [p[1] for p in (line.split() for line in lines) if len(p) > 2 and p[2] == "hugetlbfs"]


def clear_stale_eal(runtime_root: str = RUNTIME_ROOT,
                    huge_dirs: list[str] | None = None) -> dict[str, list[str]]:
    """Remove the runtime directories and hugepage files of dead runs;
    what was removed, by kind."""
    removed: dict[str, list[str]] = {"runtime_dirs": [], "hugepage_files": []}
    try:
        names = os.listdir(runtime_root)
    except OSError:
        names = []
    for name in names:
        d = os.path.join(runtime_root, name)
        if OUR_PREFIX.fullmatch(name) and _config_unlocked(os.path.join(d, "config")):
            shutil.rmtree(d, ignore_errors=True)
            removed["runtime_dirs"].append(d)
    for hd in hugetlbfs_mounts() if huge_dirs is None else huge_dirs:
        try:
            files = os.listdir(hd)
        except OSError:
            continue
        for name in files:
            path = os.path.join(hd, name)
            if HUGEPAGE_FILE.fullmatch(name) and _file_unlocked(path):
                try:
                    os.unlink(path)
                except OSError:
                    continue
                removed["hugepage_files"].append(path)
    return removed
