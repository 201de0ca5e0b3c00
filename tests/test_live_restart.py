"""kill -9 and restart, live (DPDK af_packet ports in the appliance's own
namespace, as in test_live_e2e): a strategy leaves orders resting and filled;
the appliance's order table is read through its control socket; it is
killed with SIGKILL, leaving its EAL runtime directory behind, and a stale
hugepage file of its prefix is planted in a hugetlbfs the test mounts.  The
restart is not stopped by either (it removes both: dataplane/eal_stale.py),
recovers from the journal, and its order table read the same way is the same,
order by order, transitions and timestamps included."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import netns
import pytest
import test_live_e2e as live
from live_run import PY, LiveRun, stop, wait_for, wait_ready

from control.ctl import request
from dataplane.eal_stale import RUNTIME_ROOT, clear_stale_eal

N = 30

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


def table(sock: Path) -> dict:
    """What the appliance holds: each order as `omsctl order show` gives it
    (its fields, its transitions with their timestamps), and the counts."""
    orders = {}
    for cid in range(1000, 1000 + N):
        a = request(str(sock), {"cmd": "order", "session": 1, "cl_ord_id": cid})
        assert a["ok"], a
        orders[cid] = {k: a[k] for k in ("order", "transitions", "venue_messages")}
    st = request(str(sock), {"cmd": "stats"})
    return {"orders": orders, "live_orders": st["live_orders"],
            "accepted": st["core"]["event"]["ORDERS_ACCEPTED_INTERNAL"],
            "reject_system": st["core"]["reject_system"]}


def test_kill_9_restart_past_stale_eal_files_gives_the_same_table(tmp_path):
    journal = tmp_path / "oms.journal"
    sock = tmp_path / "control.sock"
    huge = tmp_path / "huge"
    huge.mkdir()
    subprocess.run(["mount", "-t", "hugetlbfs", "nodev", str(huge)], check=True)
    try:
        with netns.three_hosts() as h, LiveRun(h) as run:
            cfg = tmp_path / "live.yaml"
            cfg.write_text(live.config_text(h, "af_packet", session_hb=200, venue_hb=200,
                                            session_timeout=60000, venue_timeout=60000) +
                           f"journal: {{path: {journal}, durability: burst, segment_mb: 8}}\n")
            ready = tmp_path / "ready.json"

            def start() -> subprocess.Popen:
                p = run.appliance(cfg, ready, duration=60,
                                  args=("--control-socket", str(sock), "--no-watch"))
                wait_ready(p, ready, timeout=30)
                return p

            first = start()
            pid = json.loads(ready.read_text())["pid"]
            venue = run.venue(tmp_path / "venue.json", duration=55)
            time.sleep(0.3)
            run.run_strategy("--scenario", "rest", "--orders", str(N), "--timeout", "20",
                             "--linger", "0.3", "--out", str(tmp_path / "strat.json"),
                             timeout=60)
            before = table(sock)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            # what the dead run left: its runtime directory, unlocked now;
            # and a hugepage file of its prefix
            runtime = Path(RUNTIME_ROOT) / f"oms{pid}"
            assert (runtime / "config").exists()
            stale_page = huge / f"oms{pid}map_0"
            stale_page.write_bytes(b"")
            # a file younger than a second may belong to a run starting
            wait_for(lambda: time.time() - (runtime / "config").stat().st_mtime > 1.2,
                     "the dead run's config ages", seconds=30)
            second = start()
            after = table(sock)
            _, err = stop(second)
            stop(venue, check=False)
    finally:
        subprocess.run(["umount", "-l", str(huge)], check=False)
    assert "removed what dead DPDK runs left" in err and "recovered from" in err
    assert not runtime.exists() and not stale_page.exists()
    strat = json.loads((tmp_path / "strat.json").read_text())["orders"]
    states = sorted(o["state"] for o in strat.values())
    assert states == ["Filled"] * (N // 2) + ["New"] * (N // 2)
    assert before["live_orders"] == N // 2 and before["accepted"] == N
    assert before["reject_system"] == {}
    assert after == before


def test_a_live_run_is_never_taken_for_a_dead_one(tmp_path):
    """The lock decides, not the name: a runtime directory whose config a
    live process holds locked stays, one nobody holds goes; other tools'
    prefixes and files are left alone."""
    root = tmp_path / "run"
    live_dir, dead_dir, other = root / "oms1", root / "oms2", root / "rte"
    for d in (live_dir, dead_dir, other):
        d.mkdir(parents=True)
        (d / "config").write_bytes(b"\0" * 64)
        os.utime(d / "config", (time.time() - 10, time.time() - 10))
    pages = tmp_path / "pages"
    pages.mkdir()
    for name in ("oms1map_0", "oms2map_0", "rtemap_0"):
        (pages / name).write_bytes(b"")
    # another process holds oms1's config lock, as its EAL does, and a
    # flock on its page
    holder = subprocess.Popen([PY, "-c", f"""
import fcntl, os, sys, time
fd = os.open({str(live_dir / 'config')!r}, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
pg = os.open({str(pages / 'oms1map_0')!r}, os.O_RDONLY)
fcntl.flock(pg, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        removed = clear_stale_eal(str(root), [str(pages)])
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert removed == {"runtime_dirs": [str(dead_dir)],
                       "hugepage_files": [str(pages / "oms2map_0")]}
    assert live_dir.exists() and other.exists() and not dead_dir.exists()
    assert sorted(os.listdir(pages)) == ["oms1map_0", "rtemap_0"]
