"""The live appliance's control socket: an operator's mass cancel reaches the
worker through its command ring (the AF_XDP poll thread through its
mailbox) and the orders are canceled at the venue; counters read through
the socket are taken between two bursts.  Runs the appliance on DPDK
net_af_packet ports and on the native AF_XDP backend in namespaces, as the
live tests do."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import netns
import pytest
import test_live_e2e as live
from live_run import OMSCTL, PY, ROOT, STRATEGY_HEAD, LiveRun, report_of, stop, wait_ready

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")

# A strategy that rests five orders (below the venue's asks) and listens.
STRATEGY = STRATEGY_HEAD + """
out(drv.login(time.time_ns()))
for i in range(5):
    out(drv.new_order(time.time_ns(), 500 + i, "AAPL", 151_0000_0000, 100, account=1))
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    r, _, _ = select.select([s], [], [], 0.01)
    if r:
        take()
    out(drv.tick(time.time_ns()))
    if len(drv.orders) == 5 and all(o.terminal for o in drv.orders.values()):
        break
print(json.dumps({{c: o.state for c, o in drv.orders.items()}}))
"""

VENUE = """
import select, socket, sys, time
sys.path[:0] = [{root!r}, {root!r} + "/tests"]
import wire
from dataplane.venue_sim import VenueSim
v, app = wire.VENUES[0], wire.APPLIANCE
sim = VenueSim(v, app, symbols=wire.SYMBOLS, seed=1, p_passive=0.0)
data = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); data.bind((v.ip, v.port))
req = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); req.bind((v.ip, v.retransmit_port))
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    r, _, _ = select.select([data, req], [], [], 0.01)
    for sk in r:
        p, _ = sk.recvfrom(65535)
        for kind, a in sim.handle_datagram(p, time.time_ns(), request_port=sk is req):
            port = app.request_port if kind == "request" else app.venue_port
            (req if kind == "request" else data).sendto(a, (app.ip, port))
"""


def start(run: LiveRun, tmp_path: Path, driver: str, ctl_path: str,
          venue_seconds: int) -> subprocess.Popen:
    """The appliance with its control socket, ready, and the venue above."""
    h = run.h
    cfg = tmp_path / "live.yaml"
    cfg.write_text(live.config_text(h, driver))
    ready = tmp_path / "ready.json"
    app = run.appliance(cfg, ready, duration=60,
                        args=("--control-socket", ctl_path, *live.backend_args(driver)))
    run.spawn(h.venue, PY, "-c", VENUE.format(root=str(ROOT), seconds=venue_seconds),
              capture=False)
    wait_ready(app, ready)
    return app


def wait_resting(ctl_path: str) -> None:
    """Until the five orders rest at the venue."""
    for _ in range(100):
        st = json.loads(subprocess.run(
            [OMSCTL, "ctl", "--socket", ctl_path, "stats"],
            capture_output=True, text=True, timeout=10).stdout)
        if st["core"]["event"].get("VENUE_MSGS_IN", 0) >= 5:
            break
        time.sleep(0.05)
    assert st["ok"] and st["live_orders"] == 5


@pytest.mark.parametrize("driver", ["af_packet", "afxdp"])
def test_mass_cancel_and_stats_through_the_control_socket(tmp_path, driver):
    ctl_path = str(tmp_path / "control.sock")
    with netns.three_hosts() as h, LiveRun(h) as run:
        app = start(run, tmp_path, driver, ctl_path, venue_seconds=20)
        # root only
        assert stat.S_IMODE(os.stat(ctl_path).st_mode) == 0o600
        strat = run.spawn(h.strategy, PY, "-c", STRATEGY.format(root=str(ROOT), seconds=10))
        wait_resting(ctl_path)
        r = subprocess.run([OMSCTL, "ctl", "--socket", ctl_path, "mass-cancel",
                            "--session", "1", "--account", "1"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["canceled"] == 5
        bad = subprocess.run([OMSCTL, "ctl", "--socket", ctl_path, "mass-cancel",
                              "--session", "99", "--account", "1"],
                             capture_output=True, text=True, timeout=10)
        assert bad.returncode == 1 and "unknown session" in bad.stdout
        s_out, s_err = strat.communicate(timeout=30)
        assert strat.returncode == 0, s_err[-2000:]
        out, _ = stop(app, check=False)
    states = json.loads(s_out.strip().splitlines()[-1])
    assert states == {str(500 + i): "Canceled" for i in range(5)}
    report = report_of(out)
    assert report["worker"]["commands"] >= 3  # snapshots and the mass cancel
    assert report["core"]["venue_out"][str(ord("X"))] == 5
    assert not os.path.exists(ctl_path)  # removed on exit


# A strategy that rests five orders, waits for the operator's kill to cancel
# them, tries a new order (rejected), and after the unkill (signalled by a
# file) enters one more, which the venue accepts.
KILL_STRATEGY = STRATEGY_HEAD + """
def order(cid):
    out(drv.new_order(time.time_ns(), cid, "AAPL", 151_0000_0000, 100, account=1))
out(drv.login(time.time_ns()))
for i in range(5):
    order(500 + i)
phase = 0
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    r, _, _ = select.select([s], [], [], 0.01)
    if r:
        take()
    out(drv.tick(time.time_ns()))
    o = drv.orders
    if phase == 0 and all(o[500 + i].state == "Canceled" for i in range(5)):
        order(600)  # while killed
        phase = 1
    elif phase == 1 and o[600].terminal:
        open({flag!r} + ".rejected", "w").close()
        phase = 2
    elif phase == 2 and os.path.exists({flag!r} + ".unkilled"):
        order(601)
        phase = 3
    elif phase == 3 and o[601].state != "PendingNew":
        break
print(json.dumps({{c: [o.state, o.rejects] for c, o in drv.orders.items()}}))
"""


@pytest.mark.parametrize("driver", ["af_packet", "afxdp"])
def test_kill_and_unkill_through_the_control_socket(tmp_path, driver):
    ctl_path = str(tmp_path / "control.sock")
    flag = str(tmp_path / "strategy")

    def omsctl(*args):
        return subprocess.run([OMSCTL, *args, "--socket", ctl_path],
                              capture_output=True, text=True, timeout=10)

    with netns.three_hosts() as h, LiveRun(h) as run:
        app = start(run, tmp_path, driver, ctl_path, venue_seconds=25)
        strat = run.spawn(h.strategy, PY, "-c",
                          KILL_STRATEGY.format(root=str(ROOT), seconds=15, flag=flag))
        wait_resting(ctl_path)
        r = omsctl("kill", "--account", "1")
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout) == {"ok": True, "account": 1, "kill": True,
                                        "canceled": 5}
        bad = omsctl("kill", "--account", "99")
        assert bad.returncode == 1 and "unknown account 99" in bad.stdout
        # the strategy sees the cancels, then its new order rejected
        deadline = time.monotonic() + 10
        while not os.path.exists(flag + ".rejected"):
            assert strat.poll() is None, strat.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no reject seen by the strategy"
            time.sleep(0.05)
        r = omsctl("unkill")
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout) == {"ok": True, "account": "all", "kill": False,
                                        "canceled": 0}
        Path(flag + ".unkilled").touch()
        s_out, s_err = strat.communicate(timeout=30)
        assert strat.returncode == 0, s_err[-2000:]
        out, _ = stop(app, check=False)
    orders = json.loads(s_out.strip().splitlines()[-1])
    assert {c: o[0] for c, o in orders.items()} == {
        **{str(500 + i): "Canceled" for i in range(5)}, "600": "Rejected", "601": "New"}
    assert orders["600"][1] == [[0x10, 17, 0]]  # NewOrder rejected KILL_SWITCH
    report = report_of(out)
    core = report["core"]
    assert core["event"]["KILL_CANCELS"] == 5
    assert core["venue_out"][str(ord("X"))] == 5
    assert core["reject_business"] == {"17": 1}


# The five-order strategy above with N orders, sent 16 at a time so that
# the appliance's small fill ring is not overrun.
MANY_STRATEGY = (STRATEGY
                 .replace("for i in range(5):\n    out(",
                          "for i in range({n}):\n    if i % 16 == 0:\n        drain(0.005)\n"
                          "    out(")
                 .replace("len(drv.orders) == 5", "len(drv.orders) == {n}"))


def test_a_mass_cancel_larger_than_the_afxdp_tx_ring_waits_for_room(tmp_path):
    """AF_XDP with 64 UMEM frames has a TX ring of 32: the mass cancel's 150
    Cancel requests go out in one flush, so the poll thread finds the ring
    full, waits for room (kicking the kernel) and sends them all."""
    n = 150
    ctl_path = str(tmp_path / "control.sock")
    with netns.three_hosts() as h, LiveRun(h) as run:
        cfg = tmp_path / "live.yaml"
        cfg.write_text(live.config_text(h, "afxdp").replace(
            "venue_iface: " + h.oms_venue_if + "}",
            "venue_iface: " + h.oms_venue_if + ", frames: 64}"))
        assert "frames: 64" in cfg.read_text()
        ready = tmp_path / "ready.json"
        app = run.appliance(cfg, ready, duration=60,
                            args=("--control-socket", ctl_path, *live.backend_args("afxdp")))
        run.spawn(h.venue, PY, "-c", VENUE.format(root=str(ROOT), seconds=40), capture=False)
        wait_ready(app, ready)
        strat = run.spawn(h.strategy, PY, "-c",
                          MANY_STRATEGY.format(root=str(ROOT), seconds=25, n=n))
        for _ in range(200):
            st = json.loads(subprocess.run([OMSCTL, "ctl", "--socket", ctl_path, "stats"],
                                           capture_output=True, text=True, timeout=10).stdout)
            if st["live_orders"] == n and st["core"]["event"].get("VENUE_MSGS_IN", 0) >= n:
                break
            time.sleep(0.05)
        assert st["live_orders"] == n
        r = subprocess.run([OMSCTL, "ctl", "--socket", ctl_path, "mass-cancel",
                            "--session", "1", "--account", "1"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["canceled"] == n
        s_out, s_err = strat.communicate(timeout=40)
        assert strat.returncode == 0, s_err[-2000:]
        out, _ = stop(app, check=False)
    states = json.loads(s_out.strip().splitlines()[-1])
    assert states == {str(500 + i): "Canceled" for i in range(n)}
    report = report_of(out)
    assert report["core"]["venue_out"][str(ord("X"))] == n
    venue_port = report["ports"][h.oms_venue_if]
    assert venue_port["tx_waits"] >= 1, venue_port
    assert venue_port["tx_full"] == 0 and venue_port.get("tx_stuck", 0) == 0, venue_port
