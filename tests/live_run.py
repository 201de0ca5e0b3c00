"""The steps every live test in namespaces takes around what it checks:
start the appliance (`omsctl run --ready-file`) in the oms namespace and wait
until it is ready, start the venue simulator and the strategy driver
(tests/live_peers.py) in theirs, stop each with SIGTERM and read the
appliance's report, and - even when a test fails half-way - leave no
process behind.  The hosts themselves come from tests/netns.py."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import netns

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
OMSCTL = str(Path(PY).parent / "omsctl")
PEERS = str(ROOT / "tests" / "live_peers.py")

# The head of a strategy script for `python -c` in the strategy namespace
# (format it with root=ROOT, and the script's own fields): session 1's
# driver `drv` on a UDP socket `s` bound to the session's address;
# `out(frames)` sends what the driver builds to the appliance, `take()` hands
# the driver one datagram from it (sending its answers) and `drain(wait)`
# every datagram that comes within `wait` seconds and right after.
STRATEGY_HEAD = """
import json, os, select, socket, sys, time
sys.path[:0] = [{root!r}, {root!r} + "/tests"]
import wire
from dataplane.strategy_driver import TERMINAL, StrategyDriver
sess, app = wire.SESSIONS[0], wire.APPLIANCE
drv = StrategyDriver(sess, app)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sess.ip, sess.port))
def out(frames):
    for f in frames:
        s.sendto(f[42:], (app.ip, app.strategy_port))
def take():
    p, _ = s.recvfrom(65535)
    f = wire.udp_frame(app.mac, sess.mac, app.ip, sess.ip, app.strategy_port, sess.port, p)
    out(drv.handle_frame(f, time.time_ns()))
def drain(wait):
    r, _, _ = select.select([s], [], [], wait)
    while r:
        take()
        r, _, _ = select.select([s], [], [], 0)
"""


def report_of(out: str) -> dict:
    """The appliance's report: the last line it printed."""
    return json.loads(out.strip().splitlines()[-1])


def wait_ready(app: subprocess.Popen, ready: Path, *, timeout: float = 20,
               what: str = "start", watch: tuple[subprocess.Popen, ...] = (),
               written: bool = False) -> None:
    """Until `ready` exists (with `written`: and is not empty), failing with
    the appliance's stderr as soon as it (or one of `watch`) dies."""
    deadline = time.monotonic() + timeout
    while not ready.exists() or (written and not ready.read_text()):
        assert app.poll() is None, app.communicate()[1][-3000:]
        for p in watch:
            assert p.poll() is None, p.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"the appliance did not {what}"
        time.sleep(0.05)


def eventually(cond, seconds: float = 5.0, step: float = 0.05) -> bool:
    """Whether `cond()` comes true within `seconds` (asked every `step` and
    once more at the end), for a test to assert with its own message."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def wait_for(pred, what: str, procs=(), seconds: float = 20.0) -> None:
    """Until `pred()`, failing with the stderr of any of `procs` that dies."""
    deadline = time.monotonic() + seconds
    while not pred():
        for p in procs:
            assert p.poll() is None, (what, p.communicate()[1][-3000:])
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.02)


def stop(p: subprocess.Popen, *, check: bool = True, timeout: float = 30) -> tuple[str, str]:
    """SIGTERM, then its whole output; with `check` it must have exited 0."""
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=timeout)
    if check:
        assert p.returncode == 0, err[-3000:]
    return out, err


class Steered:
    """A helper process steered through stdin, one JSON line per command;
    `close` ends it by closing its stdin (killing it if it lingers)."""

    def __init__(self, argv: list[str], capture_stderr: bool = True):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE if capture_stderr else None,
                                  text=True)

    def cmd(self, line: str) -> dict:
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        got = self.p.stdout.readline()
        assert got, self.p.stderr.read()[-2000:] if self.p.stderr else "no answer"
        return json.loads(got)

    def close(self) -> None:
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
                self.p.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()


class LiveRun:
    """The processes of one live run on `h` (None for hosts of a test's own
    making: then every namespace is named); leaving the `with` block kills
    whatever still runs (after `grace` seconds of SIGTERM when given)."""

    def __init__(self, h: netns.Hosts | None, grace: float = 0):
        self.h = h
        self.grace = grace
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> LiveRun:
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            if p.poll() is not None:
                continue
            if self.grace:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=self.grace)
                    continue
                except subprocess.TimeoutExpired:
                    pass
            p.kill()
            p.wait()

    def spawn(self, ns: str, *cmd: str, capture: bool = True) -> subprocess.Popen:
        """`cmd` in namespace `ns`; without `capture` its output goes where
        the test's goes."""
        out = subprocess.PIPE if capture else None
        p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=out, stderr=out,
                             text=True)
        self.procs.append(p)
        return p

    def appliance(self, cfg: Path, ready: Path, *, duration: float,
                  args: tuple[str, ...] | list[str] = (), ns: str | None = None
                  ) -> subprocess.Popen:
        """`omsctl run` in the oms namespace (or `ns`); `ready` is removed
        first, so that a restart waits for its own."""
        ready.unlink(missing_ok=True)
        return self.spawn(ns or self.h.oms, OMSCTL, "run", "--config", str(cfg), "--duration",
                          str(duration), "--ready-file", str(ready), *args)

    def venue(self, out: Path, *, duration: float, args: tuple[str, ...] = (),
              ns: str | None = None) -> subprocess.Popen:
        """The venue simulator in the venue namespace (or `ns`)."""
        return self.spawn(ns or self.h.venue, PY, PEERS, "venue", *args, "--duration",
                          str(duration), "--out", str(out))

    def strategy(self, *args: str) -> subprocess.Popen:
        """The strategy driver, left running (see run_strategy)."""
        return self.spawn(self.h.strategy, PY, PEERS, "strategy", *args)

    def run_strategy(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        """The strategy driver to its end; it must succeed."""
        r = subprocess.run(self.h.exec(self.h.strategy, PY, PEERS, "strategy", *args),
                           capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, r.stderr[-3000:]
        return r
