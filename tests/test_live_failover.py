"""Hot standby, live (docs/durability.md "Hot standby"): two appliances (DPDK
af_packet) on one shared segment - two Linux bridges, towards the strategy
and towards the venue - with the same service IP and MAC; the primary
streams its journal to the backup over a link of their own and transmits a
core call's output only once the backup acknowledged its records.

The fault test kills the primary with SIGKILL under a steady stream of
orders, KILLS times at seeded random moments, some of them with the
primary held (a test hook) between a venue send the core decided and the
backup's receipt of it: each time the backup takes over (epoch + 1,
gratuitous ARP), a fresh backup is started behind it in the dead one's
namespace (roles alternate), and at the end the strategy, the last primary
and the venue agree on every order - none acknowledged and lost, none
entered or executed twice.  Failover time is measured from the kill's
CLOCK_REALTIME timestamp to the first frame the new primary sent, captured
on the bridge (kernel timestamps, same clock).

The fencing test pauses the primary (SIGSTOP) until the backup took over,
resumes it, and checks on the bridge that it sends nothing more."""
from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import netns
import netns_standby as ns
import pytest
import test_live_e2e as live

from dataplane import journal as jn

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
OMSCTL = str(Path(PY).parent / "omsctl")
PEERS = str(ROOT / "tests" / "live_peers.py")
CAPTURE = str(ROOT / "tests" / "bridge_capture.py")
KILLS = int(os.environ.get("OMS_FAILOVER_KILLS", "20"))
HELD = min(6, KILLS)  # kills with the primary held between a venue send and its replication
SEED = int(os.environ.get("OMS_FAILOVER_SEED", "8"))
FIRST_ID = 1000

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


class Hosts:
    """What live.config_text needs of the hosts, for appliance `who`."""

    def __init__(self, h: ns.StandbyHosts, who: str):
        self.oms_strategy_if = h.app_if(who, "s")
        self.oms_venue_if = h.app_if(who, "v")


# each appliance host backs up the one before it: a primary in a, its
# backup in b, a spare in c waiting for b to take over; then a fresh spare
# in a behind c, and so on
PREVIOUS = {"a": "c", "b": "a", "c": "b"}
NEXT = {v: k for k, v in PREVIOUS.items()}


def config_text(h: ns.StandbyHosts, who: str, role: str, journal: Path) -> str:
    other = PREVIOUS[who]
    text = live.config_text(Hosts(h, who), "af_packet", session_hb=100,
                            session_timeout=30000, venue_hb=100, venue_timeout=30000)
    # the two poll loops on different CPUs (of the two this machine has)
    cpus = '"0@1,1@0"' if who == "b" else '"0@0,1@1"'
    # a small EAL memory: a killed process's memory is torn down before
    # the kernel closes its sockets, so that is how soon the backup can
    # learn of the death from the link
    text = text.replace('lcores: "0,1"', f"lcores: {cpus}\n  memory_mb: 128\n  mbufs: 2047")
    return text + f"""
journal: {{path: {journal}, durability: none, segment_mb: 8}}
replication: {{role: {role}, listen: "{ns.REPL_IP[who]}:{ns.REPL_PORT}",
              peer: "{ns.REPL_IP[other]}:{ns.REPL_PORT}", sync: true,
              heartbeat_us: 1000, timeout_us: 200000, ack_wait_us: 200000}}
"""


class Instance:
    """One `omsctl run` in appliance namespace `who`; stderr to a file, so
    that the test can read what it said while it runs."""

    def __init__(self, h, tmp: Path, who: str, role: str, n: int, hold_dir: Path,
                 dump: bool = False):
        self.socket = tmp / f"{who}{n}.sock"
        self.who, self.n = who, n
        self.journal = tmp / f"{who}{n}.journal"
        self.cfg = tmp / f"{who}{n}.yaml"
        self.cfg.write_text(config_text(h, who, role, self.journal))
        self.ready = tmp / f"{who}{n}.ready"
        self.err_path = tmp / f"{who}{n}.err"
        self.dump = tmp / f"{who}{n}.orders.json"
        extra = ["--dump-orders", str(self.dump)] if dump else []
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            # a raised priority, as dedicated cores would give in production:
            # the CI machine's two CPUs are shared with everything else
            h.exec(h.ns(who), "nice", "-n", "-10", "env", f"OMS_REPL_TEST_HOLD={hold_dir}",
                   OMSCTL, "run",
                   "--config", str(self.cfg), "--duration", "170", "--ready-file",
                   str(self.ready), "--control-socket", str(self.socket), *extra),
            stdout=subprocess.PIPE, stderr=self.err, text=True)

    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            assert self.proc.poll() is None, self.stderr()[-3000:]
            assert time.monotonic() < deadline, f"{self.who}{self.n} not ready"
            time.sleep(0.01)

    def wait_said(self, text: str, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            assert self.proc.poll() is None, self.stderr()[-3000:]
            assert time.monotonic() < deadline, f"{self.who}{self.n} never said {text!r}: " \
                + self.stderr()[-2000:]
            time.sleep(0.002)

    def status(self) -> dict:
        r = subprocess.run([OMSCTL, "status", "--json", "--socket", str(self.socket)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads(r.stdout)

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, self.stderr()[-3000:]
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.err.close()


def start_capture(h, tmp: Path) -> tuple[subprocess.Popen, Path]:
    out, ready = tmp / "capture.json", tmp / "capture.ready"
    ports = [h.bridge_port(w, s) for w in ns.APPLIANCES for s in ("s", "v")]
    p = subprocess.Popen(h.exec(h.switch, PY, CAPTURE, "--ports", ",".join(ports), "--out",
                                str(out), "--ready", str(ready)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not ready.exists():
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()[1]
        time.sleep(0.01)
    return p, out


def first_frame_after(capture: dict, h, who: str, t_ns: int) -> int | None:
    ts = [t for s in ("s", "v") for t, _ in capture[h.bridge_port(who, s)] if t >= t_ns]
    return min(ts) if ts else None


def test_kill_9_of_the_primary_under_load_the_backup_takes_over_nothing_lost(tmp_path):
    rng = random.Random(SEED)
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    orders = 40 * KILLS + 200
    rate = orders / (3.0 * KILLS + 6)  # the stream outlasts the kills
    procs: list[subprocess.Popen] = []
    instances: list[Instance] = []
    kills: list[dict] = []
    with ns.standby_hosts() as h:
        capture, cap_out = start_capture(h, tmp_path)
        procs.append(capture)
        try:
            primary = Instance(h, tmp_path, "a", "primary", 0, hold_dir)
            instances.append(primary)
            venue = subprocess.Popen(h.exec(h.venue, PY, PEERS, "venue", "--duration", "170",
                                            "--out", str(tmp_path / "venue.json")),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(venue)
            primary.wait_ready()
            backup = Instance(h, tmp_path, "b", "backup", 0, hold_dir)
            instances.append(backup)
            backup.wait_ready()
            spare = Instance(h, tmp_path, "c", "backup", 0, hold_dir)
            instances.append(spare)
            strat = subprocess.Popen(
                h.exec(h.strategy, PY, PEERS, "strategy", "--scenario", "mixed", "--orders",
                       str(orders), "--rate", f"{rate:.1f}", "--heartbeat-ms", "100",
                       "--timeout", "150", "--linger", "0.5",
                       "--out", str(tmp_path / "strat.json")),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(strat)
            k = 0
            while sum(1 for x in kills if not x["stalled"]) < KILLS:
                assert k < KILLS + 10, "too many stalls: " + json.dumps(kills)
                time.sleep(rng.uniform(0.1, 0.6))
                # the backup holds everything before its primary is killed
                backup.wait_said("caught up with the primary", timeout=30)
                phase = "random"
                # HELD of the KILLS kills held, spread at random
                real = [x for x in kills if not x["stalled"]]
                n_held = sum(1 for x in real if x["phase"].startswith("held"))
                hold = rng.random() < (HELD - n_held) / (KILLS - len(real))
                if hold:
                    # held after the core decided a venue send and the
                    # journal holds it: before the records go to the backup
                    # (0) or after, before the backup's ack (1)
                    which = k % 2
                    (hold_dir / "held").unlink(missing_ok=True)
                    (hold_dir / f"arm{which}").write_text("")
                    deadline = time.monotonic() + 10
                    while not (hold_dir / "held").exists():
                        assert time.monotonic() < deadline, "the primary was never held"
                        assert primary.proc.poll() is None, primary.stderr()[-2000:]
                        time.sleep(0.002)
                    phase = ("held before replication", "held before the backup's ack")[which]
                t_kill = time.time_ns()
                primary.proc.send_signal(signal.SIGKILL)
                primary.kill()
                backup.wait_said("took over as primary")
                # where the dead one was: what its journal held (the page
                # cache keeps what it appended) against what the backup took
                # over with
                dead_seq = jn.scan(str(primary.journal))["last_seq"]
                said = backup.stderr().split("took over as primary at seq ")[1].split()
                took, took_ns = int(said[0]), int(said[3])
                # a primary stalled past the backup's timeout (a loaded
                # machine) was fenced before the kill: a takeover too, logged
                # apart, not counted among the kills
                stalled = took_ns < t_kill
                if stalled:
                    phase = f"stalled past timeout_us: fenced {(t_kill - took_ns) / 1e6:.1f} " \
                            "ms before the kill"
                elif phase == "random":
                    phase = (f"random: {dead_seq - took} records not yet at the backup"
                             if dead_seq > took else "random: the backup held everything")
                kills.append({"kill": k, "phase": phase, "t_kill_ns": t_kill, "stalled": stalled,
                              "dead": f"{primary.who}{primary.n}",
                              "new_primary": f"{backup.who}{backup.n}",
                              "detected_ms": (took_ns - t_kill) / 1e6,
                              "held": json.loads((hold_dir / "held").read_text())
                              if hold else None})
                print(json.dumps(kills[-1]), flush=True)
                dead = primary
                primary, backup = backup, spare
                spare = Instance(h, tmp_path, dead.who, "backup", dead.n + 1, hold_dir)
                instances.append(spare)
                k += 1
            _, serr = strat.communicate(timeout=150)
            assert strat.returncode == 0, serr[-3000:]
            if "took over as primary" in backup.stderr():
                # the primary stalled past timeout_us after the last kill:
                # fenced by its backup, which the spare now backs up
                said = backup.stderr().split("took over as primary at seq ")[1].split()
                kills.append({"kill": k, "phase": "stalled past timeout_us after the kills",
                              "t_kill_ns": int(said[3]), "stalled": True,
                              "detected_ms": 0.0})
                fenced = primary
                primary, backup, spare = backup, spare, None
                assert fenced.stop()["replication"]["role"] == "fenced"
            # the backups first: a primary that stops is a primary gone,
            # and its backup would take over
            if spare is not None:
                spare.stop()
            backup.wait_said("caught up with the primary", timeout=30)
            backup_report = backup.stop()
            report = primary.stop()
            if (report["replication"]["role"] == "fenced"
                    and backup_report["replication"]["role"] == "primary"):
                # the primary stalled past timeout_us while its backup was
                # being stopped: the backup took over (and holds everything),
                # a stall like the others, logged apart
                said = backup.stderr().split("took over as primary at seq ")[1].split()
                kills.append({"kill": k, "phase": "stalled past timeout_us while stopping",
                              "t_kill_ns": int(said[3]), "stalled": True, "detected_ms": 0.0})
                report, backup_report = backup_report, None
            venue.send_signal(signal.SIGTERM)
            _, verr = venue.communicate(timeout=30)
            assert venue.returncode == 0, verr[-3000:]
            capture.send_signal(signal.SIGTERM)
            capture.communicate(timeout=30)
        finally:
            for i in instances:
                i.kill()
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    strat_out = json.loads((tmp_path / "strat.json").read_text())
    ven = json.loads((tmp_path / "venue.json").read_text())
    cap = json.loads(cap_out.read_text())
    ids = set(range(FIRST_ID, FIRST_ID + orders))

    # every kill was taken over, epochs one higher each time
    real = [k for k in kills if not k["stalled"]]
    assert len(real) == KILLS
    assert report["replication"]["role"] == "primary"
    assert report["replication"]["epoch"] == len(kills)
    if backup_report is not None:
        assert backup_report["replication"]["role"] == "backup"
        assert backup_report["replication"]["epoch"] == len(kills)
        assert backup_report["replication"]["acked_seq"] == report["replication"]["acked_seq"]
    assert sum(1 for k in real if k["phase"].startswith("held")) >= min(5, KILLS)

    # failover time: kill -> first frame the new primary put on the bridge
    times = []
    for k in real:
        first = first_frame_after(cap, h, k["new_primary"][0], k["t_kill_ns"])
        assert first is not None, k
        k["failover_ms"] = (first - k["t_kill_ns"]) / 1e6
        times.append(k["failover_ms"])

    # the strategy finished: every order final in its view
    sorders = {int(k): v for k, v in strat_out["orders"].items()}
    assert set(sorders) == ids
    unfinished = {c: o["state"] for c, o in sorders.items()
                  if o["state"] not in ("Filled", "Canceled", "Expired", "Rejected")}
    assert not unfinished, f"not final after {strat_out['elapsed_s']:.1f}s: {unfinished}"
    for c, o in sorders.items():
        assert sum(q for _, q, _ in o["fills"]) == o["cum_qty"], (c, o)
        assert len({m for m, _, _ in o["fills"]}) == len(o["fills"]), (c, o)
        assert not [r for r in o["rejects"] if r[1] >= 1000], (c, o)  # no system reject

    # the venue: each Enter Order acted on once - a resend after a takeover
    # reused its UserRefNum - and nothing executed twice or lost
    vorders = {int(k): v for k, v in ven["orders"].items()}
    assert set(vorders) == ids
    for c, o in sorders.items():
        v = vorders[c]
        assert v["enters"] == 1 and v["enter_rejects"] == 0, (c, v)
        assert v["executed"] <= v["qty"], (c, v)
        assert v["executed"] == o["cum_qty"], (c, v, o)
    assert ven["stats"]["received"]["O"] == orders
    assert ven["live"] == {}

    # the last primary's own counters: every order accepted once, across
    # all the takeovers (its core is the first primary's, replicated)
    core = report["core"]
    assert core["reject_system"] == {}
    assert core["event"]["ORDERS_ACCEPTED_INTERNAL"] == orders
    assert report["live_orders"] == 0
    print(json.dumps({"kills": KILLS, "seed": SEED, "orders": orders,
                      "held": sum(1 for k in real if k["phase"].startswith("held")),
                      "stalls": len(kills) - len(real),
                      "failover_ms": {"min": round(min(times), 2),
                                      "median": round(statistics.median(times), 2),
                                      "max": round(max(times), 2)},
                      "ack_wait_us_mean": round(report["replication"]["ack_wait_ns"]
                                                / max(1, report["replication"]["ack_waits"])
                                                / 1e3, 1),
                      "replication": report["replication"],
                      "per_kill": [{"phase": k["phase"],
                                    "ms": round(k.get("failover_ms", -1), 2),
                                    "detected_ms": round(k["detected_ms"], 2)}
                                   for k in kills]}))


def test_a_paused_primary_resumed_after_the_takeover_is_fenced_and_sends_nothing(tmp_path):
    """SIGSTOP of the primary past the backup's timeout: the backup takes
    over (epoch 1) and sends the old primary a FENCE; SIGCONT: the old
    primary reads it before anything else and transmits nothing more - not
    a frame from its bridge ports after the resume - while the orders go on
    through the new primary."""
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    orders = 120
    procs: list[subprocess.Popen] = []
    instances: list[Instance] = []
    with ns.standby_hosts() as h:
        capture, cap_out = start_capture(h, tmp_path)
        procs.append(capture)
        try:
            old = Instance(h, tmp_path, "a", "primary", 0, hold_dir)
            instances.append(old)
            venue = subprocess.Popen(h.exec(h.venue, PY, PEERS, "venue", "--duration", "60",
                                            "--out", str(tmp_path / "venue.json")),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(venue)
            old.wait_ready()
            new = Instance(h, tmp_path, "b", "backup", 0, hold_dir)
            instances.append(new)
            new.wait_ready()
            strat = subprocess.Popen(
                h.exec(h.strategy, PY, PEERS, "strategy", "--scenario", "mixed", "--orders",
                       str(orders), "--rate", "40", "--heartbeat-ms", "100",
                       "--timeout", "40", "--linger", "0.5",
                       "--out", str(tmp_path / "strat.json")),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(strat)
            time.sleep(1.0)
            old.proc.send_signal(signal.SIGSTOP)
            new.wait_said("took over as primary")
            time.sleep(0.5)  # the new primary works on; the old one's queue fills
            t_resume = time.time_ns()
            old.proc.send_signal(signal.SIGCONT)
            old.wait_said("fenced by epoch 1")
            # what an operator sees of both
            assert {k: old.status()["replication"][k] for k in ("role", "fenced_by")} == \
                {"role": "fenced", "fenced_by": 1}
            assert {k: new.status()["replication"][k] for k in ("role", "epoch")} == \
                {"role": "primary", "epoch": 1}
            text = subprocess.run([OMSCTL, "status", "--socket", str(new.socket)],
                                  capture_output=True, text=True, timeout=30).stdout
            assert "replication: primary   epoch 1   peer none" in text, text
            _, serr = strat.communicate(timeout=60)
            assert strat.returncode == 0, serr[-3000:]
            old_report = old.stop()
            report = new.stop()
            venue.send_signal(signal.SIGTERM)
            _, verr = venue.communicate(timeout=30)
            assert venue.returncode == 0, verr[-3000:]
            capture.send_signal(signal.SIGTERM)
            capture.communicate(timeout=30)
        finally:
            for i in instances:
                if i.proc.poll() is None:
                    i.proc.send_signal(signal.SIGCONT)
                i.kill()
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    cap = json.loads(cap_out.read_text())
    strat_out = json.loads((tmp_path / "strat.json").read_text())
    ven = json.loads((tmp_path / "venue.json").read_text())

    # the old primary: fenced, silent on the wire since it was resumed,
    # although it had frames to answer (its ports' queues filled meanwhile)
    after = [t for s in ("s", "v") for t, _ in cap[h.bridge_port("a", s)] if t >= t_resume]
    assert after == [], f"{len(after)} frames from the fenced primary"
    assert old_report["replication"]["role"] == "fenced"
    assert old_report["replication"]["fenced_by"] == 1
    # the new one carried the stream to its end
    assert report["replication"]["role"] == "primary" and report["replication"]["epoch"] == 1
    sorders = {int(k): v for k, v in strat_out["orders"].items()}
    assert set(sorders) == set(range(FIRST_ID, FIRST_ID + orders))
    assert all(o["state"] in ("Filled", "Canceled", "Expired", "Rejected")
               for o in sorders.values())
    vorders = {int(k): v for k, v in ven["orders"].items()}
    for c, o in sorders.items():
        assert vorders[c]["enters"] == 1 and vorders[c]["executed"] == o["cum_qty"], c
    assert report["core"]["event"]["ORDERS_ACCEPTED_INTERNAL"] == orders
