"""A full disk under the live appliance's journal (docs/durability.md "Full
disk"): the appliance (DPDK af_packet ports in its own namespace, as in
test_live_e2e) journals to a tmpfs the test mounts; the test fills it while a
strategy has orders resting at the venue.  The strategy's new orders are then
rejected SYS_JOURNAL while its cancels, a modify that trades, its mass cancel
and the venue's answers all go through; once the test frees the space, new
orders flow again.  At the end the appliance's order table, its counters and
a replay of its journal agree, and nothing failed to be journaled."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import netns
import pytest
import test_live_e2e as live
from live_run import OMSCTL, LiveRun, report_of, stop, wait_for, wait_ready
from test_journal_full import fill

from control.ctl import request

N = 20
REJ_SYS_JOURNAL = 1003

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


def journal_full(sock: Path) -> bool:
    return bool(request(str(sock), {"cmd": "stats"})["journal"]["full"])


def test_full_disk_live_rejects_new_orders_answers_the_rest_and_recovers(tmp_path):
    fs = tmp_path / "fs"
    fs.mkdir()
    phases = tmp_path / "phases"
    phases.mkdir()
    journal = fs / "oms.journal"
    sock = tmp_path / "control.sock"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(fs)], check=True)
    try:
        with netns.three_hosts() as h, LiveRun(h) as run:
            cfg = tmp_path / "live.yaml"
            cfg.write_text(live.config_text(h, "af_packet", session_hb=200, venue_hb=200) +
                           f"journal: {{path: {journal}, durability: burst, segment_mb: 1}}\n")
            ready = tmp_path / "ready.json"
            app = run.appliance(cfg, ready, duration=60,
                                args=("--control-socket", str(sock),
                                      "--dump-orders", str(tmp_path / "orders.json"),
                                      "--dump-ids", "1000-3999", "--no-watch"))
            venue = run.venue(tmp_path / "venue.json", duration=55)
            wait_ready(app, ready)
            time.sleep(0.3)
            strat = run.strategy("--scenario", "fulldisk", "--orders", str(N), "--phase-dir",
                                 str(phases), "--timeout", "40", "--linger", "0.3",
                                 "--out", str(tmp_path / "strat.json"))
            wait_for((phases / "accepted").exists, "orders accepted", run.procs)
            assert not journal_full(sock)
            ballast = fill(fs)
            wait_for(lambda: journal_full(sock), "the journal finds the disk full", run.procs)
            (phases / "full").write_text("")
            wait_for((phases / "answered").exists, "cancels answered while full", run.procs)
            still_full = journal_full(sock)
            os.unlink(ballast)
            wait_for(lambda: not journal_full(sock), "the journal has room again", run.procs)
            (phases / "freed").write_text("")
            _, serr = strat.communicate(timeout=40)
            assert strat.returncode == 0, serr[-3000:]
            out, _ = stop(app)
            stop(venue)
        report = report_of(out)
        replay = subprocess.run([OMSCTL, "journal", "replay", str(journal), "--dump-orders",
                                 str(tmp_path / "replayed.json"), "--dump-ids", "1000-3999"],
                                capture_output=True, text=True, timeout=60)
        assert replay.returncode == 0, replay.stderr[-3000:]
    finally:
        subprocess.run(["umount", "-l", str(fs)], check=False)
    assert still_full
    strat_out = json.loads((tmp_path / "strat.json").read_text())
    ven = json.loads((tmp_path / "venue.json").read_text())
    orders = {int(k): v for k, v in strat_out["orders"].items()}
    first, rejected, after = range(1000, 1000 + N), range(2000, 2000 + N), range(3000, 3000 + N)
    assert set(orders) == set(first) | set(rejected) | set(after)

    # while full: every new order rejected with the reason, never sent on
    for c in rejected:
        assert orders[c]["state"] == "Rejected", (c, orders[c])
        assert [r[1] for r in orders[c]["rejects"]] == [REJ_SYS_JOURNAL], orders[c]
        assert str(c) not in ven["orders"]
    # ... and the cancels, the modify that traded, the mass cancel answered
    traded = 1000 + N - 1
    assert orders[traded]["state"] == "Filled" and orders[traded]["cum_qty"] == 100
    for c in first:
        if c != traded:
            assert orders[c]["state"] == "Canceled", (c, orders[c])
    # space freed: orders flow again (accepted at the venue, then canceled)
    for c in after:
        assert orders[c]["state"] == "Canceled", (c, orders[c])
        assert ven["orders"][str(c)]["enters"] == 1
    assert ven["stats"]["received"]["O"] == 2 * N

    core = report["core"]
    assert core["reject_system"] == {str(REJ_SYS_JOURNAL - 1000): N}
    assert core["event"]["ORDERS_ACCEPTED_INTERNAL"] == 2 * N
    assert report["live_orders"] == 0
    jst = report["journal"]
    assert jst["append_failed"] == 0 and jst["full"] == 0
    # the core was told twice, each time by a journaled command: full, room
    assert jst["commands"] == 2
    # nothing lost: a replay of the journal gives the same orders and counters
    dumped = json.loads((tmp_path / "orders.json").read_text())
    replayed = json.loads((tmp_path / "replayed.json").read_text())
    assert len(dumped) == 2 * N and replayed == dumped
    assert json.loads(replay.stdout)["core"] == core
    for o in dumped:
        s = orders[o["cl_ord_id"]]
        assert (o["state"], o["cum_qty"], o["leaves_qty"]) == \
            (s["state"], s["cum_qty"], s["leaves_qty"]), (o, s)
