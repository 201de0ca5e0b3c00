"""The live tests' harness (tests/live_run.py) leaves nothing running when a
test fails half-way: what it started is killed, or with a grace period
stopped by SIGTERM first; a process that died before the appliance was
ready fails the wait at once, with its error."""
from __future__ import annotations

import signal
import time

import netns
import pytest
from live_run import LiveRun, wait_ready

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


@pytest.mark.parametrize(("grace", "signo"), [(0, signal.SIGKILL), (5, signal.SIGTERM)])
def test_a_failing_test_leaves_no_process_behind(grace, signo):
    with netns.three_hosts() as h:
        with pytest.raises(RuntimeError), LiveRun(h, grace=grace) as run:
            procs = [run.spawn(ns, "sleep", "60") for ns in (h.oms, h.venue, h.strategy)]
            raise RuntimeError("the test failed here")
        assert [p.returncode for p in procs] == [-signo] * 3


def test_waiting_for_ready_fails_at_once_when_the_appliance_died(tmp_path):
    with netns.three_hosts() as h, LiveRun(h) as run:
        app = run.spawn(h.oms, "sh", "-c", "echo no such port >&2; exit 3")
        t0 = time.monotonic()
        with pytest.raises(AssertionError, match="no such port"):
            wait_ready(app, tmp_path / "ready.json", timeout=20)
        assert time.monotonic() - t0 < 5
