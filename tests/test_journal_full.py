"""A full disk under the journal (docs/durability.md "Full disk"): on a tiny
tmpfs the test mounts, the journal finds it cannot grow; from the next burst
on the core rejects every NewOrder with SYS_JOURNAL while cancels, mass
cancels and venue answers go on, journaled in the room left; once space is
freed the journal's helper grows the file again and orders flow; nothing is
lost (no append failed) and recovery from the journal gives the same state
and the same next frames."""
from __future__ import annotations

import os
import struct
import subprocess

import pytest
import wire
from live_run import eventually
from test_journal import PRICE, state, trade, yaml_config

from control.config import Journal as JournalConfig
from control.config import load_config_text
from dataplane import journal as jn
from dataplane.core import Core, lib

REJ_SYS_JOURNAL = 1003
MB = 1 << 20


@pytest.fixture
def tiny_fs(tmp_path):
    """A 6 MiB tmpfs of the test's own, always unmounted."""
    if os.geteuid() != 0:
        pytest.skip("needs root (mounts a tmpfs)")
    where = tmp_path / "fs"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where, name="ballast") -> str:
    """Take every free byte of the filesystem."""
    path = os.path.join(where, name)
    with open(path, "wb") as f:
        chunk = b"\xa5" * (64 * 1024)
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    return path


def wait_for(pred) -> bool:
    return eventually(pred, 5.0, step=0.01)


def strategy_msgs(out) -> list[dict]:
    """Execution reports to the strategy (heartbeats left out)."""
    return [wire.decode_sp_out(f) for f in out
            if struct.unpack_from("!H", f, 34)[0] == wire.APPLIANCE.strategy_port
            and f[42 + 1] in wire.SP_OUT]


def venue_types(out) -> list[bytes]:
    """The OUCH message type of each frame sent to a venue (heartbeats,
    which carry no message, left out)."""
    return [f[42 + 22:42 + 23] for f in out
            if struct.unpack_from("!H", f, 34)[0] != wire.APPLIANCE.strategy_port
            and struct.unpack_from("!H", f, 42 + 18)[0]]


def new(cid: int, seq: int) -> bytes:
    return wire.from_strategy(1, wire.new_order(1, seq, cid, symbol="AAPL", price=PRICE,
                                                qty=100, account=1))


def test_full_disk_rejects_new_orders_keeps_cancels_and_loses_nothing(tiny_fs):
    cfg = load_config_text(yaml_config(), "a.yaml")
    path = tiny_fs / "j.oms"
    core = Core(cfg)
    journal = jn.Journal(JournalConfig(path=str(path), durability="burst", segment_mb=1), cfg)
    journal.attach(core)
    core.journal = journal
    now = 10**9
    # sessions in, four orders live at the venue, one partly filled
    trade(core, now)
    assert not journal.full()

    # the helper has grown the file two steps ahead of the writer
    assert wait_for(lambda: journal.stats()["file_size"] >= 3 * MB)
    ballast = fill(tiny_fs)
    # the helper finds that the next step would not fit, within a nap
    assert wait_for(journal.full), journal.stats()
    room = journal.stats()["file_size"] - journal.stats()["end"]
    assert room >= MB  # the reserve: at least a step allocated ahead

    # a NewOrder: rejected SYS_JOURNAL, no Enter Order sent
    now += 10**6
    out = core.process_burst([new(50, 5)], now)
    assert venue_types(out) == []
    rej = [m for m in strategy_msgs(out) if m["type"] == "Rejected"]
    assert [(m["cl_ord_id"], m["reason"]) for m in rej] == [(50, REJ_SYS_JOURNAL)]
    assert core.stats()["reject_system"] == {REJ_SYS_JOURNAL - 1000: 1}
    assert core.order(1, 50) is None

    # a cancel goes to the venue; the venue's answer is handled
    now += 1000
    out = core.process_burst([wire.from_strategy(1, wire.cancel(1, 6, 2))], now)
    assert venue_types(out) == [b"X"]
    now += 1000
    out = core.process_burst([wire.from_venue(1, wire.ufo("NSDQ01", 6,
                                                          wire.ouch_canceled(2, 100)))], now)
    assert [m["type"] for m in strategy_msgs(out)] == ["Canceled"]
    # a fill on another order is taken too
    now += 1000
    out = core.process_burst([wire.from_venue(1, wire.ufo("NSDQ01", 7,
                                                          wire.ouch_executed(3, 10, match=2)))],
                             now)
    assert [m["type"] for m in strategy_msgs(out)] == ["Fill"]
    # the operator's mass cancel of account 1 cancels the rest
    now += 1000
    n, out = core.command(lib.OMS_CMD_MASS_CANCEL, 1, 1, now)
    assert venue_types(out) == [b"X"] * n and n == 3

    # space freed: the helper grows the file, the next burst accepts again
    os.unlink(ballast)
    assert wait_for(lambda: not journal.full())
    now += 1000
    out = core.process_burst([new(51, 7)], now)
    assert venue_types(out) == [b"O"]
    assert [m["type"] for m in strategy_msgs(out)] == []  # Accepted comes from the venue
    assert core.order(1, 51)["state"] != 0

    st = journal.stats()
    assert st["append_failed"] == 0 and st["full"] == 0
    # the state change in and out was recorded: two JOURNAL_FULL commands
    assert st["commands"] == 3

    # the process dies here; recovery gives the state the appliance had
    fresh = Core(jn.first_config(str(path)))
    jn.recover(fresh, str(path))
    assert state(fresh) == state(core)
    assert state(fresh)["stats"]["reject_system"] == {REJ_SYS_JOURNAL - 1000: 1}
    nxt = [new(52, 8)]
    assert fresh.process_burst(nxt, now + 1000) == core.process_burst(nxt, now + 1000)
    core.journal = None
    journal.close()


def test_a_journal_reopened_on_a_full_disk_opens_full(tiny_fs):
    """A restart while the disk is still full: the journal opens (recovery
    can run) but says it is full, so the first burst rejects new orders."""
    cfg = load_config_text(yaml_config(), "a.yaml")
    path = tiny_fs / "j.oms"
    core = Core(cfg)
    journal = jn.Journal(JournalConfig(path=str(path), durability="none", segment_mb=1), cfg)
    journal.attach(core)
    core.journal = journal
    trade(core, 10**9)
    journal.close()  # trims the file to what is in use
    ballast = fill(tiny_fs)
    # less than half a step free (a full journal), but more than the
    # minimum an existing journal needs to open
    os.truncate(ballast, os.path.getsize(ballast) - 256 * 1024)
    fresh = Core(jn.first_config(str(path)))
    jn.recover(fresh, str(path))
    again = jn.Journal(JournalConfig(path=str(path), durability="none", segment_mb=1), cfg)
    try:
        assert again.full()
        fresh.journal = again
        out = fresh.process_burst([new(60, 5)], 2 * 10**9)
        assert [(m["type"], m["reason"]) for m in strategy_msgs(out)] == [
            ("Rejected", REJ_SYS_JOURNAL)]
        os.unlink(ballast)
        assert wait_for(lambda: not again.full())
        out = fresh.process_burst([new(61, 6)], 2 * 10**9 + 1000)
        assert venue_types(out) == [b"O"]
    finally:
        fresh.journal = None
        again.close()
