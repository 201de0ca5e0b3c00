"""Soak: sustained mixed traffic through the live appliance (DPDK af_packet
ports in its own namespace, as in test_live_e2e) for OMS_SOAK_SECONDS (120
in CI; set it higher for a longer run, e.g. OMS_SOAK_SECONDS=3600).  The
strategy runs the mixed plan in rounds (new orders, modifies, cancels, fills
at the venue, IOC expiries) and every 8 s leaves orders resting and goes
silent until the appliance cancels them on disconnect, then logs in
again.  The order table is small (1024) so that terminal orders are evicted
and their slots reused throughout.

Every few seconds the test samples, through the control socket (`omsctl ctl
stats`) and /proc, the appliance's resident memory, the mbufs in use in its
mempool and its live orders, and asserts after a warm-up that none of them
trends upward beyond a small bound, that no system reject ever happened,
and that at the end every order is final on both sides."""
from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import netns
import pytest
import test_live_e2e as live
from live_run import LiveRun, report_of, stop, wait_ready

from control.ctl import request

SECONDS = float(os.environ.get("OMS_SOAK_SECONDS", "120"))
SAMPLE_S = 3.0
PER_ROUND = 60  # orders in a mixed round
COD_ORDERS = 5  # orders left resting for a cancel-on-disconnect
WARMUP = 0.25  # of the run, left out of the trend checks
RSS_GROWTH_MB = 4.0  # anonymous + shared: last third's median over the first's, at most
TABLE = 1024

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory by kind, MiB.  Anonymous and shared memory is what a
    leak grows (the Python heap, DPDK's --no-huge memory); file pages are
    mostly the journal's mapping, which grows with the journal by design
    and which the kernel can reclaim once written back."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(line.split()[1]) / 1024
    return out


def sample(sock: Path, pid: int, t0: float) -> dict:
    st = request(str(sock), {"cmd": "stats"})
    rss = rss_mb(pid)
    return {"t": round(time.monotonic() - t0, 1), "rss_mb": round(rss["VmRSS"], 2),
            "anon_shmem_mb": round(rss["RssAnon"] + rss["RssShmem"], 2),
            "file_mb": round(rss["RssFile"], 2),
            "mbufs_in_use": st["mbufs_in_use"], "live_orders": st["live_orders"],
            "reject_system": st["core"]["reject_system"],
            "accepted": st["core"]["event"].get("ORDERS_ACCEPTED_INTERNAL", 0),
            "journal_end": st["journal"]["end"]}


def thirds(values: list[float]) -> tuple[list[float], list[float]]:
    k = max(1, len(values) // 3)
    return values[:k], values[-k:]


def test_soak_memory_mempool_and_table_stay_flat(tmp_path):
    sock = tmp_path / "control.sock"
    samples: list[dict] = []
    with netns.three_hosts() as h, LiveRun(h) as run:
        cfg = tmp_path / "live.yaml"
        text = live.config_text(h, "af_packet", session_hb=200, session_timeout=1000,
                                venue_hb=200, venue_timeout=30000)
        text = text.replace("heartbeat_ms: 200,", "heartbeat_ms: 200, cancel_on_disconnect: true,",
                            1)
        cfg.write_text(text + f"tables: {{orders: {TABLE}}}\n"
                       f"journal: {{path: {tmp_path / 'oms.journal'}, durability: periodic}}\n")
        ready = tmp_path / "ready.json"
        app = run.appliance(cfg, ready, duration=SECONDS + 60,
                            args=("--control-socket", str(sock), "--no-watch"))
        venue = run.venue(tmp_path / "venue.json", duration=SECONDS + 50)
        wait_ready(app, ready, timeout=30)
        pid = json.loads(ready.read_text())["pid"]
        time.sleep(0.3)
        t0 = time.monotonic()
        strat = run.strategy("--scenario", "soak", "--orders", str(PER_ROUND), "--duration",
                             str(SECONDS), "--heartbeat-ms", "200",
                             "--timeout", str(SECONDS + 40), "--linger", "0.3",
                             "--out", str(tmp_path / "strat.json"))
        next_at = t0
        while strat.poll() is None:
            assert app.poll() is None, app.communicate()[1][-3000:]
            assert time.monotonic() - t0 < SECONDS + 40, "the strategy did not finish"
            if time.monotonic() >= next_at:
                samples.append(sample(sock, pid, t0))
                next_at += SAMPLE_S
            time.sleep(0.05)
        _, serr = strat.communicate(timeout=10)
        assert strat.returncode == 0, serr[-3000:]
        final = sample(sock, pid, t0)
        out, _ = stop(app)
        stop(venue)
    report = report_of(out)
    strat_out = json.loads((tmp_path / "strat.json").read_text())
    steady = [s for s in samples if s["t"] >= WARMUP * SECONDS]
    soak = strat_out["soak"]
    print(json.dumps({"seconds": SECONDS, "soak": soak, "samples": samples, "final": final}))

    # the traffic was sustained and mixed: many rounds, disconnects, trades
    assert len(steady) >= 5, samples
    assert soak["cod_rounds"] >= 1 and soak["rounds"] >= 8
    # every order final, folded into the summary: none left behind
    assert strat_out["orders"] == {}
    assert soak["orders"] > TABLE  # slots were reused
    assert set(soak["states"]) <= {"Filled", "Canceled", "Expired"}, soak
    assert soak["fills"] > 0 and soak["modified"] > 0 and soak["states"].get("Expired")
    assert soak["orders"] == final["accepted"]
    # accepted orders kept coming until the end
    assert steady[-1]["accepted"] > steady[0]["accepted"]

    # zero system rejects, at every sample and at the end
    assert all(s["reject_system"] == {} for s in samples) and final["reject_system"] == {}
    assert soak["system_rejects"] == 0
    assert report["journal"]["append_failed"] == 0

    # flat: memory, mempool, table occupancy
    rss = [s["anon_shmem_mb"] for s in steady]
    first, last = thirds(rss)
    assert statistics.median(last) - statistics.median(first) <= RSS_GROWTH_MB, rss
    mbufs = [s["mbufs_in_use"] for s in steady]
    first, last = thirds(mbufs)
    assert statistics.median(last) <= max(first), mbufs
    assert final["mbufs_in_use"] <= max(first), (final, mbufs)
    # live orders: at most a round's (or a disconnect's) at any time, none at the end
    assert max(s["live_orders"] for s in samples) <= PER_ROUND + COD_ORDERS
    assert final["live_orders"] == 0 and report["live_orders"] == 0
