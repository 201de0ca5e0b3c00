"""The journal exported to NATS JetStream (docs/durability.md, "Export to a
distributed log"): shipped in batches while the core appends, a journal
rebuilt from the stream alone recovers the same state as the original;
a shipper killed mid-way resumes exactly where the stream stands, and a
server killed mid-way is retried without loss - every record in the stream
once, in order. Each test starts its own nats-server (JetStream, a temp
store, a free port on 127.0.0.1) and always stops it."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import wire
from test_journal import PRICE, open_journal, recover_fresh, state, trade, yaml_config

from control import journal_ship as js
from control.config import load_config_text
from dataplane import journal as jn
from dataplane.core import Core
from dataplane.journal_tail import JournalTail

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """A JetStream nats-server of the test's own, restartable on the same
    port and store."""

    def __init__(self, store):
        exe = shutil.which("nats-server")
        if exe is None:
            pytest.skip("nats-server is not installed (deploy/setup.sh installs it)")
        self.cmd = [exe, "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(free_port())]
        self.url = f"nats://127.0.0.1:{self.cmd[-1]}"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", int(self.cmd[-1])), 0.2).close()
                return
            except OSError:
                assert self.proc.poll() is None, "nats-server exited"
                time.sleep(0.02)
        raise TimeoutError("nats-server did not listen within 10 s")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def nats_server(tmp_path):
    server = NatsServer(tmp_path / "nats-store")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def journaled_core(path, extra_bursts: int = 0):
    """A core journaling into `path`: both sessions logged in, four orders
    live at the venue, one partly filled, then heartbeats."""
    cfg = load_config_text(yaml_config(), "a.yaml")
    core = Core(cfg)
    journal = open_journal(path, cfg)
    journal.attach(core)
    core.journal = journal
    trade(core, 10**9)
    heartbeats(core, extra_bursts, 10**9 + 10_000)
    return core, journal


def heartbeats(core, n, now):
    for i in range(n):
        core.process_burst([wire.from_strategy(2, wire.heartbeat(2))], now + i)


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def stream_state(url, stream):
    async def go():
        import nats

        nc = await nats.connect(url)
        try:
            return (await nc.jetstream().stream_info(stream)).state
        finally:
            await nc.close()
    return run(go(), 10)


def test_rebuilt_from_the_stream_recovers_the_same_state(tmp_path, nats_server):
    """Ship while the core trades (the shipper tails the live journal and
    reports its lag), stop, rebuild the journal from the stream alone with
    `omsctl journal fetch`: the file is the original byte for byte, and a
    fresh core recovered from it holds the same orders, positions and
    counters and sends the same next frames."""
    path = tmp_path / "j.oms"
    core, journal = journaled_core(path)
    sink = js.NatsSink(nats_server.url, "j")

    async def ship_while_trading():
        shipper = js.Shipper(str(path), sink, batch_records=4)
        await shipper.start()
        try:
            while await shipper.ship_available():
                pass
            first = shipper.status()
            assert first["lag"] == {"records": 0, "bytes": 0}
            assert first["shipped_seq"] == journal.stats()["next_seq"] - 1
            # more traffic: a reload (generation), a kill switch (command), bursts
            tighter = load_config_text(yaml_config().replace(
                "max_open_orders: 1000000", "max_open_orders: 5", 1), "b.yaml")
            core.reload(tighter)
            core.kill(2, True, 10**9 + 50_000)
            heartbeats(core, 10, 10**9 + 60_000)
            behind = shipper.status()["lag"]
            now = journal.stats()
            assert behind["records"] == now["next_seq"] - 1 - first["shipped_seq"] >= 11
            assert now["generations"] == 2 and now["commands"] == 1
            assert behind["bytes"] == now["end"] - first["shipped_offset"]
            await shipper.run(asyncio.Event(), until_caught_up=True)
            return first, shipper.status()
        finally:
            await shipper.close()

    first, done = run(ship_while_trading())
    st = journal.stats()
    assert done["lag"] == {"records": 0, "bytes": 0}
    assert done["records"] == st["records"] and done["shipped_seq"] == st["next_seq"] - 1
    assert done["batches"] > st["records"] // 4 and done["sink"]["duplicates"] == 0
    core.journal = None
    journal.close()  # trims the file to its records

    rebuilt = tmp_path / "rebuilt.oms"
    r = subprocess.run([sys.executable, "-m", "control.cli", "journal", "fetch", "--from",
                        nats_server.url, "--stream", "OMS_JOURNAL_j", "-o", str(rebuilt)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["records"] == st["records"]
    assert rebuilt.read_bytes() == path.read_bytes()
    fresh, report = recover_fresh(rebuilt)
    assert report["records"] == st["records"] and report["generations"] == 2
    assert state(fresh) == state(core)
    nxt = [wire.from_strategy(1, wire.new_order(1, 6, 10, symbol="AAPL", price=PRICE,
                                                qty=100, account=1))]
    assert fresh.process_burst(nxt, 10**9 + 90_000) == core.process_burst(nxt, 10**9 + 90_000)


def test_shipper_killed_mid_way_resumes_exactly(tmp_path, nats_server):
    """`omsctl journal ship` killed with SIGKILL in the middle of shipping;
    started again it asks the stream where it stands and continues with the
    next record: the stream holds every record once, in order."""
    path = tmp_path / "j.oms"
    core, journal = journaled_core(path, extra_bursts=3000)
    records = journal.stats()["records"]
    core.journal = None
    journal.close()
    stream = "OMS_JOURNAL_j_oms"
    cmd = [sys.executable, "-m", "control.cli", "journal", "ship", str(path), "--to",
           nats_server.url, "--batch", "8"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        held = 0
        while time.monotonic() < deadline and held < 200:
            time.sleep(0.02)
            try:
                held = stream_state(nats_server.url, stream).messages
            except Exception:  # not created yet
                held = 0
        assert held >= 200, proc.stderr.read1().decode() if proc.poll() is not None else ""
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    at_kill = stream_state(nats_server.url, stream)
    assert 1 < at_kill.messages < records + 1  # killed mid-way
    r = subprocess.run([*cmd, "--once"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout.splitlines()[-1])
    assert status["resumed_at"] == at_kill.messages  # header + records 1 .. messages - 1
    assert status["records"] == records - (at_kill.messages - 1)
    assert status["sink"]["duplicates"] == 0
    final = stream_state(nats_server.url, stream)
    assert final.messages == records + 1  # the header and each record once
    rebuilt = tmp_path / "rebuilt.oms"
    run(js.fetch(nats_server.url, stream, str(rebuilt)))
    assert rebuilt.read_bytes() == path.read_bytes()


class KillingSink(js.NatsSink):
    """The NATS sink, with the server killed just before one batch's
    publishes (and started again a little later)."""

    def __init__(self, server, at_batch, *a, **kw):
        super().__init__(*a, **kw)
        self.server, self.at_batch, self.batches, self.restart = server, at_batch, 0, None

    async def write(self, records):
        self.batches += 1
        if self.batches == self.at_batch:
            self.server.kill()

            async def start_again():
                await asyncio.sleep(0.5)
                self.server.start()

            self.restart = asyncio.ensure_future(start_again())
        await super().write(records)


def test_server_killed_mid_way_is_retried_without_loss(tmp_path, nats_server):
    """nats-server dies (SIGKILL) while the shipper publishes a batch and
    comes back half a second later: the batch fails, the shipper retries
    from where the stream stands, and the stream ends with every record
    once, in order - the journal rebuilt from it is the original."""
    path = tmp_path / "j.oms"
    core, journal = journaled_core(path, extra_bursts=400)
    records = journal.stats()["records"]
    core.journal = None
    journal.close()
    sink = KillingSink(nats_server, 10, nats_server.url, "j", timeout=1.0)
    status = run(js.ship(str(path), sink, until_caught_up=True, batch_records=16), 60)
    assert sink.restart is not None and sink.restart.done()
    assert status["retries"] >= 1 and status["last_error"]
    assert sink.counters["disconnects"] >= 1 and sink.counters["reconnects"] >= 1
    assert status["lag"] == {"records": 0, "bytes": 0}
    assert status["shipped_seq"] == records
    assert stream_state(nats_server.url, "OMS_JOURNAL_j").messages == records + 1
    rebuilt = tmp_path / "rebuilt.oms"
    out = run(js.fetch(nats_server.url, "OMS_JOURNAL_j", str(rebuilt)))
    assert out["records"] == records
    assert rebuilt.read_bytes() == path.read_bytes()
    assert jn.scan(str(rebuilt))["records"] == records


def test_a_stream_of_another_journal_is_refused(tmp_path, nats_server):
    """Shipping a different journal into a stream that holds one is a clear
    error, and the stream is left as it was."""
    a, b = tmp_path / "a.oms", tmp_path / "b.oms"
    for p in (a, b):
        core, journal = journaled_core(p)
        core.journal = None
        journal.close()
    run(js.ship(str(a), js.NatsSink(nats_server.url, "x"), until_caught_up=True))
    held = stream_state(nats_server.url, "OMS_JOURNAL_x").messages
    with pytest.raises(js.SinkError, match="holds another journal"):
        run(js.ship(str(b), js.NatsSink(nats_server.url, "x"), until_caught_up=True))
    assert stream_state(nats_server.url, "OMS_JOURNAL_x").messages == held


def test_tail_reads_only_whole_records(tmp_path):
    """A record whose header is not there yet, or cut short, is not read;
    once it is whole it is."""
    path = tmp_path / "j.oms"
    core, journal = journaled_core(path, extra_bursts=2)
    core.journal = None
    journal.close()
    whole = path.read_bytes()
    tail = JournalTail(str(path))
    got = tail.read(1000, 1 << 20)
    assert [r.seq for r in got] == list(range(1, len(got) + 1))
    assert b"".join(r.data for r in got) == whole[128:]
    last = got[-1]
    path.write_bytes(whole[: last.offset + len(last.data) - 8])  # the last one cut short
    tail = JournalTail(str(path))
    assert len(tail.read(1000, 1 << 20)) == len(got) - 1
    assert tail.lag(tail.offset, tail.next_seq)["records"] == 1  # its header is there
    with path.open("ab") as f:
        f.write(whole[-8:])
    assert [r.seq for r in tail.read(1000, 1 << 20)] == [last.seq]
    tail.close()


def test_a_journal_diverged_from_the_stream_is_refused(tmp_path, nats_server):
    """The journal lost its last records after they were shipped (a machine
    crash under durability none) and was appended to again: the stream's
    last record is not the journal's record of that number, and the
    shipper says so rather than continue a history that is not the
    journal's."""
    path = tmp_path / "j.oms"
    core, journal = journaled_core(path, extra_bursts=4)
    core.journal = None
    journal.close()
    sink = js.NatsSink(nats_server.url, "j")
    shipped = run(js.ship(str(path), sink, until_caught_up=True))["shipped_seq"]
    tail = JournalTail(str(path))
    cut = tail.record(shipped - 1).offset  # the last two records lost
    tail.close()
    os.truncate(path, cut)
    cfg = load_config_text(yaml_config(), "a.yaml")
    again = Core(cfg)  # the restarted appliance's core (its state does not matter here)
    again.journal = open_journal(path, cfg)
    heartbeats(again, 2, 10**9 + 99)  # two other records where the lost two were
    assert again.journal.stats()["next_seq"] == shipped + 1
    again.journal.close()
    with pytest.raises(js.StreamMismatch, match="diverged"):
        run(js.ship(str(path), js.NatsSink(nats_server.url, "j"), until_caught_up=True))

