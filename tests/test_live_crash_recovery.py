"""Crash recovery, live: the appliance (DPDK af_packet ports in its own
namespace, as in test_live_e2e) journals every burst with durability
"burst"; it is killed with SIGKILL in the middle of a strategy's stream of
orders and started again on the same journal.  It recovers its orders,
positions and both directions' session sequence numbers from the journal,
the peers' gap recovery brings back what the crash swallowed, and at the
end the strategy, the appliance and the venue (which logs every execution)
agree on every order: none lost, none entered or executed twice."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import netns
import pytest
import test_live_e2e as live
from live_run import LiveRun, report_of, stop, wait_ready

from dataplane import journal as jn

ORDERS = 300
FIRST_ID = 1000
KILL_AFTER_FRAMES = 400  # journaled frames before the kill: mid-stream

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


def config_text(h: netns.Hosts, driver: str, journal: Path, after: str) -> str:
    # heartbeats often, so that the peers notice the crash's gaps soon;
    # timeouts far beyond the restart
    return live.config_text(h, driver, session_hb=100, session_timeout=30000,
                            venue_hb=100, venue_timeout=30000) + f"""
journal: {{path: {journal}, durability: burst, segment_mb: 8, after_recovery: {after}}}
"""


def start(run: LiveRun, driver: str, cfg: Path, ready: Path,
          dump: Path | None = None) -> subprocess.Popen:
    extra = ["--dump-orders", str(dump)] if dump else []
    return run.appliance(cfg, ready, duration=75, args=(*extra, *live.backend_args(driver)))


@pytest.mark.parametrize(("driver", "after"), [("af_packet", "keep"), ("afxdp", "keep"),
                                              ("af_packet", "cancel")])
def test_kill_9_mid_stream_and_restart_from_the_journal_loses_nothing(tmp_path, driver, after):
    """DPDK's worker and the native AF_XDP loop journal alike; after a kill -9
    the AF_XDP restart also finds the dead process's XDP program attached
    and replaces it.  With journal.after_recovery: cancel the restarted
    appliance cancels every order it recovered open, and the three views
    still agree."""
    journal = tmp_path / "oms.journal"
    with netns.three_hosts() as h, LiveRun(h) as run:
        cfg = tmp_path / "live.yaml"
        cfg.write_text(config_text(h, driver, journal, after))
        ready = tmp_path / "ready.json"
        dump = tmp_path / "orders.json"
        first = start(run, driver, cfg, ready)
        venue = run.venue(tmp_path / "venue.json", duration=70)
        wait_ready(first, ready, timeout=30)
        time.sleep(0.5)
        strat = run.strategy("--scenario", "mixed", "--orders", str(ORDERS),
                             "--heartbeat-ms", "100", "--timeout", "40", "--linger", "0.5",
                             "--out", str(tmp_path / "strat.json"))
        # mid-stream: once the journal holds enough of the traffic
        deadline = time.monotonic() + 20
        seen = 0
        while seen < KILL_AFTER_FRAMES:
            assert time.monotonic() < deadline, f"only {seen} frames journaled"
            assert first.poll() is None, first.communicate()[1][-3000:]
            time.sleep(0.002)
            seen = jn.scan(str(journal))["frames"]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        at_kill = jn.scan(str(journal))  # what the dead process left
        shutil.copy(journal, tmp_path / "at_kill.journal")
        second = start(run, driver, cfg, ready, dump)
        wait_ready(second, ready, timeout=30, what="restart")
        _, serr = strat.communicate(timeout=60)
        assert strat.returncode == 0, serr[-3000:]
        out, err = stop(second)
        stop(venue)
        report = report_of(out)
        strat_out = json.loads((tmp_path / "strat.json").read_text())
        ven = json.loads((tmp_path / "venue.json").read_text())
        dumped = json.loads(dump.read_text())
    ids = set(range(FIRST_ID, FIRST_ID + ORDERS))

    # the restart recovered what the killed process had journaled, all of it
    rec = report["recovery"]
    assert rec["records"] == at_kill["records"] and rec["frames"] >= KILL_AFTER_FRAMES
    assert rec["good_after_bad"] == 0
    assert "recovered from" in err
    if after == "cancel":
        # every order open at the kill - read from the journal as the dead
        # process left it, by an independent re-execution - is canceled (and
        # maybe a few more that the restarted loop took in before the cancels)
        r = subprocess.run([live.OMSCTL, "journal", "replay", str(tmp_path / "at_kill.journal"),
                            "--dump-orders", str(tmp_path / "at_kill.json"), "--dump-ids",
                            f"{FIRST_ID}-{FIRST_ID + ORDERS}"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr[-2000:]
        open_at_kill = [o for o in json.loads((tmp_path / "at_kill.json").read_text())
                        if o["state"] in ("PendingNew", "New", "PartiallyFilled", "Replaced")]
        assert rec["canceled_after"] >= len(open_at_kill) and "open orders canceled" in err
    else:
        assert "canceled_after" not in rec
    # and it went on appending to the same journal: the rest of the stream
    assert report["journal"]["next_seq"] > at_kill["last_seq"] + 1
    assert report["journal"]["frames"] > 0 and report["journal"]["append_failed"] == 0

    # the strategy finished: every order final in its view
    orders = {int(k): v for k, v in strat_out["orders"].items()}
    assert set(orders) == ids
    unfinished = {c: o["state"] for c, o in orders.items()
                  if o["state"] not in ("Filled", "Canceled", "Expired", "Rejected")}
    assert not unfinished, f"not final after {strat_out['elapsed_s']:.1f}s: {unfinished}"
    # each application message from the appliance applied once, in sequence,
    # across the crash
    for c, o in orders.items():
        assert sum(q for _, q, _ in o["fills"]) == o["cum_qty"], (c, o)
        assert len({m for m, _, _ in o["fills"]}) == len(o["fills"]), (c, o)

    # the restarted appliance holds exactly these orders, in the same states
    app_orders = {o["cl_ord_id"]: o for o in dumped}
    assert set(app_orders) == ids and len(dumped) == ORDERS
    for c, o in orders.items():
        a = app_orders[c]
        assert (a["state"], a["cum_qty"], a["leaves_qty"]) == \
            (o["state"], o["cum_qty"], o["leaves_qty"]), (c, a, o)

    # the venue: each Enter Order acted on once - none sent again under a new
    # UserRefNum after the restart - and nothing executed twice
    vorders = {int(k): v for k, v in ven["orders"].items()}
    assert set(vorders) == ids
    for c, o in orders.items():
        v = vorders[c]
        assert v["enters"] == 1 and v["enter_rejects"] == 0, (c, v)
        assert v["executed"] <= v["qty"], (c, v)
        assert v["executed"] == o["cum_qty"] == app_orders[c]["cum_qty"], (c, v, o)
    assert ven["stats"]["received"]["O"] == ORDERS
    assert "ref_not_increasing" not in ven["stats"]["ignored"]
    assert ven["live"] == {}

    core = report["core"]
    assert core["reject_system"] == {}
    # counters continue across the crash: every order was accepted once
    assert core["event"]["ORDERS_ACCEPTED_INTERNAL"] == ORDERS
    assert report["live_orders"] == 0
    print(json.dumps({"driver": driver, "after_recovery": after,
                      "canceled_after": rec.get("canceled_after"),
                      "kill_at": {k: at_kill[k] for k in ("records", "frames", "end")},
                      "after_restart_frames": report["journal"]["frames"],
                      "recovery_ms": round(rec["replay_ns"] / 1e6, 2),
                      "appliance": {k: core["event"].get(k, 0) for k in (
                          "SP_SEQ_GAPS", "SP_RETRANSMITTED", "VENUE_SEQ_GAPS",
                          "VENUE_RETRANSMITTED")},
                      "strategy": {k: strat_out["stats"][k] for k in (
                          "requests_out", "requests_in", "retransmitted")},
                      "venue": {k: ven["stats"][k] for k in (
                          "requests_out", "requests_in", "retransmitted")}}))
