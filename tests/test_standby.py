"""The hot standby's link in one process (docs/durability.md "Hot standby";
the live failover with DPDK, bridges and kill -9 is
tests/test_live_failover.py): a primary core and a backup core, each with
its own journal, joined by the replication link over loopback TCP; the
backup's poll loop is a thread here, as it is the backup's own worker in
the appliance.  The backup's core follows the primary's to the same state;
with sync each core call's output waits for the backup's ack; a takeover
bumps the epoch in the journal's header and the promoted core sends what
the primary would have sent, byte for byte; a higher epoch fences a
primary; a backup that never caught up does not take over; when the ack
does not come the primary degrades as configured."""
from __future__ import annotations

import dataclasses
import socket
import struct
import threading
import time

import pytest
import wire
from test_journal import open_journal, state, trade, yaml_config

from control.config import ConfigError, load_config_text
from control.config import Replication as ReplicationConfig
from dataplane import journal as jn
from dataplane.core import STATE_NAMES, Core, _ext, lib
from dataplane.standby import Replication

T0 = 10**9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pair:
    """A primary and its backup, in one process; the backup polled by a
    thread (cffi lets go of the GIL in C, so the primary's commit can wait
    for an ack the thread sends)."""

    def __init__(self, tmp, degrade: str = "standalone", ack_wait_us: int = 200_000,
                 backup_polls: bool = True):
        self.port, port_b = free_port(), free_port()
        base = load_config_text(yaml_config(), "a.yaml")
        rc = ReplicationConfig(role="primary", listen=f"127.0.0.1:{self.port}",
                               peer=f"127.0.0.1:{port_b}", degrade=degrade,
                               heartbeat_us=1000, timeout_us=200_000, ack_wait_us=ack_wait_us)
        self.cfg = dataclasses.replace(base, replication=rc)
        bcfg = dataclasses.replace(base, replication=dataclasses.replace(
            rc, role="backup", listen=f"127.0.0.1:{port_b}", peer=f"127.0.0.1:{self.port}"))
        self.pj, self.bj = tmp / "primary.journal", tmp / "backup.journal"
        self.primary = Core(self.cfg)
        self.pjournal = open_journal(self.pj, self.cfg)
        self.pjournal.attach(self.primary)
        self.primary.journal = self.pjournal
        self.prepl = Replication(self.cfg, self.pjournal, self.primary, _ext)
        self.bcfg = bcfg
        self.backup = Core(bcfg)
        self.bjournal = open_journal(self.bj, bcfg)  # not attached: the primary's copy
        self.brepl = Replication(bcfg, self.bjournal, self.backup, _ext)
        self.events: list[int] = []
        self.polling = threading.Event()
        if backup_polls:
            self.polling.set()
        self.stop = False
        self.thread = threading.Thread(target=self._backup_loop, daemon=True)
        self.thread.start()

    def _backup_loop(self) -> None:
        while not self.stop:
            if self.polling.is_set():
                st = lib.oms_repl_poll(self.brepl.ptr)
                if st != lib.OMS_REPL_PASSIVE:
                    self.events.append(st)
            time.sleep(0.0002)

    def poll_primary(self, until, timeout: float = 5.0) -> None:
        """The primary's idle polls (accept, acks, heartbeats) until until()."""
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, (self.prepl.stats(), self.brepl.stats())
            lib.oms_repl_poll(self.prepl.ptr)
            time.sleep(0.0002)

    def in_sync(self) -> None:
        self.poll_primary(lambda: self.prepl.stats()["in_sync"]
                          and self.brepl.stats()["in_sync"])

    def close(self) -> None:
        self.stop = True
        self.thread.join(timeout=5)
        self.primary.journal = None
        for x in (self.prepl, self.brepl, self.pjournal, self.bjournal):
            x.close()


def test_the_backup_follows_the_primary_and_each_output_waits_for_its_ack(tmp_path):
    p = Pair(tmp_path)
    try:
        p.in_sync()
        out = trade(p.primary, T0)
        assert out  # the primary answered: acks, orders to the venue
        p.poll_primary(lambda: p.brepl.stats()["acked_seq"]
                       == p.pjournal.stats()["next_seq"] - 1)
        ps, bs = p.prepl.stats(), p.brepl.stats()
        # every core call's records acknowledged before its output was
        # returned (the commit hook waited), none timed out
        assert ps["ack_waits"] >= 4 and ps["ack_timeouts"] == 0 and ps["in_sync"] == 1
        assert ps["acked_seq"] == p.pjournal.stats()["next_seq"] - 1
        assert ps["role"] == "primary" and bs["role"] == "backup" and bs["apply_errors"] == 0
        p.stop = True
        p.thread.join(timeout=5)
        # the backup's core: the same orders, accounting, counters, sessions
        assert state(p.backup) == state(p.primary)
        # its journal: the primary's records, byte for byte
        pj, bj = p.pj.read_bytes(), p.bj.read_bytes()
        end = p.pjournal.stats()["end"]
        assert bj[128:end] == pj[128:end]
    finally:
        p.close()


def test_takeover_bumps_the_epoch_and_the_backup_sends_what_the_primary_would(tmp_path):
    p = Pair(tmp_path)
    try:
        p.in_sync()
        trade(p.primary, T0)
        p.poll_primary(lambda: p.brepl.stats()["acked_seq"]
                       == p.pjournal.stats()["next_seq"] - 1)
        # the primary dies: its end of the link closes
        p.primary.journal = None
        p.prepl.close()
        deadline = time.monotonic() + 5
        while lib.OMS_REPL_TAKEOVER not in p.events:
            assert time.monotonic() < deadline, p.brepl.stats()
            time.sleep(0.001)
        p.stop = True
        p.thread.join(timeout=5)
        bs = p.brepl.stats()
        assert bs["role"] == "primary" and bs["epoch"] == 1 and bs["takeovers"] == 1
        assert lib.oms_repl_may_transmit(p.brepl.ptr) == 1
        # the epoch is in the backup's journal header, synced
        assert jn.scan(str(p.bj))["header"]["epoch"] == 1
        # the next frames: a fill and a cancel, the same from both cores
        burst = [wire.from_venue(1, wire.ufo("NSDQ01", 6, wire.ouch_executed(2, 100))),
                 wire.from_strategy(1, wire.cancel(1, 5, 3))]
        p.backup.journal = p.bjournal
        assert p.backup.process_burst(burst, T0 + 10**6) == \
            p.primary.process_burst(burst, T0 + 10**6)
        p.backup.journal = None
        assert state(p.backup) == state(p.primary)
    finally:
        p.close()


def hello(epoch: int, seq: int = 1) -> bytes:
    """A backup's HELLO, as cdefs/replication.c frames it."""
    m = bytearray(struct.pack("<IIIIQQ", 0x52500000 | 1, 0, 0, 0, seq, epoch))
    crc = lib.oms_crc32c(0, bytes(m), len(m))
    struct.pack_into("<I", m, 8, crc)
    return bytes(m)


def test_a_primary_that_learns_of_a_higher_epoch_is_fenced(tmp_path):
    p = Pair(tmp_path, backup_polls=False)
    try:  # this test is the backup
        with socket.create_connection(("127.0.0.1", p.port), timeout=2) as s:
            s.sendall(hello(epoch=5))
            p.poll_primary(lambda: p.prepl.stats()["role"] == "fenced")
            assert s.recv(100) == b""  # it closed the link
        ps = p.prepl.stats()
        assert ps["fenced_by"] == 5 and lib.oms_repl_may_transmit(p.prepl.ptr) == 0
        # an operator's fence of the backup, at an epoch above its own
        p.brepl.fence(3)
        assert lib.oms_repl_poll(p.brepl.ptr) == lib.OMS_REPL_PASSIVE
        assert p.brepl.stats()["role"] == "fenced"
    finally:
        p.close()


def test_a_backup_that_never_caught_up_does_not_take_over(tmp_path):
    p = Pair(tmp_path, backup_polls=False)
    try:
        # the backup connects, but the primary dies before it answers
        deadline = time.monotonic() + 5
        while not p.brepl.stats()["connected"]:
            assert time.monotonic() < deadline
            lib.oms_repl_poll(p.brepl.ptr)
            time.sleep(0.001)
        p.primary.journal = None
        p.prepl.close()
        for _ in range(200):
            assert lib.oms_repl_poll(p.brepl.ptr) == lib.OMS_REPL_PASSIVE
            time.sleep(0.001)
        bs = p.brepl.stats()
        assert bs["role"] == "backup" and bs["takeovers"] == 0 and bs["epoch"] == 0
    finally:
        p.close()


def test_without_the_backups_ack_the_primary_degrades_as_configured(tmp_path):
    """reject_new: the ack does not come within ack_wait_us (the backup is
    stalled), so the output goes out anyway and new orders are rejected
    SYS_JOURNAL until the backup has caught up again."""
    p = Pair(tmp_path, degrade="reject_new", ack_wait_us=20_000)
    try:
        p.in_sync()
        trade(p.primary, T0)
        p.polling.clear()  # the backup stalls
        out = p.primary.process_burst([wire.from_strategy(
            1, wire.new_order(1, 5, 5, symbol="AAPL", price=150_2500_0000, qty=100,
                              account=1))], T0 + 10**6)
        assert out  # sent alone: the venue got the order
        ps = p.prepl.stats()
        assert ps["ack_timeouts"] == 1 and ps["degraded"] == 1
        assert STATE_NAMES[p.primary.order(1, 5)["state"]] == "PendingNew"
        p.primary.process_burst([wire.from_strategy(
            1, wire.new_order(1, 6, 6, symbol="AAPL", price=150_2500_0000, qty=100,
                              account=1))], T0 + 2 * 10**6)
        rejected = p.primary.order(1, 6)
        assert rejected is None or STATE_NAMES[rejected["state"]] == "Rejected"
        assert p.primary.stats()["reject_system"] == {1003 - 1000: 1}  # SYS_JOURNAL
        p.polling.set()  # the backup catches up; orders are accepted again
        p.in_sync()
        p.primary.process_burst([wire.from_strategy(
            1, wire.new_order(1, 7, 7, symbol="AAPL", price=150_2500_0000, qty=100,
                              account=1))], T0 + 3 * 10**6)
        assert STATE_NAMES[p.primary.order(1, 7)["state"]] == "PendingNew"
        assert p.prepl.stats()["degraded"] == 0
    finally:
        p.close()


def test_a_backup_whose_journal_is_another_history_is_refused(tmp_path, capfd):
    """A backup that starts on a journal holding a record the primary's
    does not (say, the old primary's, with a burst it never replicated) is
    refused at its HELLO - the CRC of its last record does not match - and
    applies nothing."""
    p = Pair(tmp_path, backup_polls=False)
    stray_core = Core(p.bcfg)
    stray_path = tmp_path / "stray.journal"
    stray = open_journal(stray_path, p.bcfg)
    stray.attach(stray_core)
    stray_core.journal = stray
    stray_core.process_burst([wire.from_strategy(2, wire.login(2))], T0)
    stray_core.journal = None
    stray.close()
    try:
        trade(p.primary, T0)  # the primary's record 2 is another burst
        core = Core(p.bcfg)
        jn.recover(core, str(stray_path))
        journal = open_journal(stray_path, p.bcfg)
        own = dataclasses.replace(p.bcfg, replication=dataclasses.replace(
            p.bcfg.replication, listen=f"127.0.0.1:{free_port()}"))
        repl = Replication(own, journal, core, _ext)
        try:
            deadline = time.monotonic() + 5
            while p.prepl.stats()["disconnects"] == 0:
                assert time.monotonic() < deadline, (p.prepl.stats(), repl.stats())
                lib.oms_repl_poll(repl.ptr)
                lib.oms_repl_poll(p.prepl.ptr)
                time.sleep(0.001)
            for _ in range(50):
                assert lib.oms_repl_poll(repl.ptr) == lib.OMS_REPL_PASSIVE
                time.sleep(0.001)
            bs = repl.stats()
            assert bs["role"] == "backup" and bs["records_applied"] == 0
            assert bs["takeovers"] == 0 and p.prepl.stats()["in_sync"] == 0
            assert "differs from this one at seq 2 (another history)" in capfd.readouterr().err
        finally:
            repl.close()
            journal.close()
    finally:
        p.close()


REPLICATION = """
journal: {path: /tmp/j.oms}
replication: {role: backup, listen: "10.99.0.2:7400", peer: "10.99.0.1:7400",
              sync: true, degrade: reject_new, timeout_us: 30000}
"""


def test_replication_section_of_the_configuration():
    cfg = load_config_text(yaml_config(REPLICATION), "s.yaml")
    assert cfg.replication == ReplicationConfig(
        role="backup", listen="10.99.0.2:7400", peer="10.99.0.1:7400", sync=True,
        degrade="reject_new", timeout_us=30000)
    bad = [(REPLICATION.replace("role: backup", "role: leader"), "replication.role"),
           (REPLICATION.replace('"10.99.0.1:7400"', '"10.99.0.1"'), "replication.peer"),
           (REPLICATION.replace("timeout_us: 30000", "timeout_us: 1500"),
            "replication.timeout_us"),
           (REPLICATION.replace("journal: {path: /tmp/j.oms}", ""), "replication")]
    for text, key in bad:
        with pytest.raises(ConfigError) as e:
            load_config_text(yaml_config(text), "s.yaml")
        assert key in str(e.value), (key, str(e.value))
