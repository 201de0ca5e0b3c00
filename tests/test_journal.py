"""The journal and crash recovery (docs/durability.md): what one core did,
journaled, is rebuilt by re-executing the journal through a fresh core - the
same orders, accounting, counters, session sequence numbers and the same
next frames, byte for byte; a torn tail is found by its CRC and cut; damage
in the middle is refused; the durability policies sync when they say."""
from __future__ import annotations

import os
import struct

import pytest
import wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_core_vs_model import (
    ACCOUNT_IDS,
    KILL_ACTION,
    RELOAD_ACTION,
    VIEW_SYMBOLS,
    Gen,
    cod_config,
    reloaded,
    risk_config,
)

from control.config import ConfigError, load_config_text, load_default_config
from control.config import Journal as JournalConfig
from dataplane import journal as jn
from dataplane.core import Core, lib

EXAMPLES = max(1, int(os.environ.get("OMS_PROPERTY_EXAMPLES", "400")) // 4)
PRICE = 150_2500_0000


def state(core: Core) -> dict:
    """Everything recovery must rebuild that a user can see."""
    return {
        "stats": core.stats(), "live": core.live_orders(), "generation": core.generation(),
        "orders": {(s, c): core.order(s, c) for s in (1, 2) for c in range(1, 11)},
        "accounts": {a: core.account(a) for a in ACCOUNT_IDS},
        "positions": {(a, y): core.position(a, y) for a in ACCOUNT_IDS for y in VIEW_SYMBOLS},
    }


class Lockstep:
    """Drive cores in lockstep with test_core_vs_model's generators; every
    output must be the same on each, byte for byte."""

    def __init__(self, cfg, cores):
        self.cfg, self.cores, self.gen, self.now = cfg, cores, Gen(), 1_000_000
        self.burst: list[bytes] = []
        self.generations = {1: cfg}  # number -> configuration, for rebuilding

    def flush(self):
        outs = [c.process_burst(self.burst, self.now) for c in self.cores]
        assert all(o == outs[0] for o in outs)
        self.gen.saw(outs[0])
        self.burst, self.now = [], self.now + 1000

    def run(self, actions, breaks):
        for a, brk in zip(actions, breaks, strict=True):
            if a[0] in ("kill", "pause", "reload", "jfull"):
                self.flush()
                if a[0] == "jfull":
                    for c in self.cores:
                        assert c.command(lib.OMS_CMD_JOURNAL_FULL, int(a[1]), 0,
                                         self.now) == (0, [])
                elif a[0] == "reload":
                    new = reloaded(self.cfg, a[1])
                    numbers = {c.reload(new) for c in self.cores}
                    assert len(numbers) == 1
                    self.generations[numbers.pop()] = new
                    self.now += 1000
                elif a[0] == "kill":
                    outs = [c.kill(a[1], a[2], self.now) for c in self.cores]
                    assert all(o == outs[0] for o in outs)
                    self.now += 1000
                else:
                    self.now += a[1] * 1_000_000
                    self.flush()
                    if a[2]:
                        self.burst = [wire.from_strategy(s, wire.login(s)) for s in (1, 2)]
                continue
            if a[0] in ("venue", "ord") and self.burst:
                self.flush()
            self.burst.append(self.gen.frame(a))
            if brk or len(self.burst) == 4:
                self.flush()
        self.flush()


def open_journal(path, cfg, durability="none"):
    return jn.Journal(JournalConfig(path=str(path), durability=durability, segment_mb=1), cfg)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(KILL_ACTION, RELOAD_ACTION), min_size=10, max_size=60),
       st.lists(st.one_of(KILL_ACTION, RELOAD_ACTION), min_size=1, max_size=20),
       st.lists(st.booleans(), min_size=80, max_size=80))
def test_recovered_core_equals_the_one_that_ran(tmp_path_factory, before, after, breaks):
    """Bursts, kills, pauses (timers) and reloads through one journaled
    core; a fresh core recovered from the journal holds the same state, and
    from then on both send the same frames, byte for byte."""
    path = tmp_path_factory.mktemp("j") / "journal.oms"
    cfg = cod_config(risk_config(orders=8))
    straight = Core(cfg)
    journal = open_journal(path, cfg)
    journal.attach(straight)
    straight.journal = journal
    run = Lockstep(cfg, [straight])
    run.burst = [wire.from_strategy(1, wire.login(1)), wire.from_strategy(2, wire.login(2))]
    run.run(before, breaks[: len(before)])
    # the process dies here: nothing closes the journal
    recovered = Core(cfg)
    report = jn.recover(recovered, str(path), rebuild=lambda n, _: run.generations[n])
    assert report["torn_bytes"] == 0
    assert report["records"] == journal.stats()["records"]
    assert state(recovered) == state(straight)
    straight.journal = None
    journal.close()
    run.cores = [straight, recovered]
    run.run(after, breaks[len(before): len(before) + len(after)])
    assert state(recovered) == state(straight)


def yaml_config(extra: str = "") -> str:
    text = load_default_config().text.replace("orders: 65536", "orders: 64")
    return text + extra


def trade(core: Core, now: int) -> list[bytes]:
    """Log both sessions in, send orders, the venue accepts and fills some."""
    out = core.process_burst([wire.from_strategy(s, wire.login(s)) for s in (1, 2)], now)
    orders = [wire.from_strategy(1, wire.new_order(1, 1 + i, 1 + i, symbol="AAPL",
                                                   price=PRICE, qty=100, account=1))
              for i in range(4)]
    out += core.process_burst(orders, now + 1000)
    accepts = [wire.from_venue(1, wire.ufo("NSDQ01", 1 + i, wire.ouch_accepted(1 + i)))
               for i in range(4)]
    out += core.process_burst(accepts, now + 2000)
    out += core.process_burst([wire.from_venue(1, wire.ufo("NSDQ01", 5,
                                                           wire.ouch_executed(1, 40)))],
                              now + 3000)
    # four orders live at the venue, one partly filled; nothing dropped
    assert core.live_orders() == 4 and core.stats()["drop"] == {}
    assert core.order(1, 1)["cum_qty"] == 40
    return out


def test_yaml_journal_recovers_with_reloaded_generations(tmp_path):
    """The journal carries each generation's configuration text: recovery
    builds the first core from it and rebuilds every reload from the text."""
    path = tmp_path / "j.oms"
    cfg = load_config_text(yaml_config(), "a.yaml")
    core = Core(cfg)
    journal = open_journal(path, cfg, "burst")
    journal.attach(core)
    core.journal = journal
    trade(core, 10**9)
    tighter = load_config_text(yaml_config().replace("max_open_orders: 1000000",
                                                     "max_open_orders: 5", 1), "b.yaml")
    assert core.reload(tighter) == 2
    core.kill(2, True, 10**9 + 5000)
    core.process_burst([wire.from_strategy(1, wire.new_order(1, 5, 9, symbol="AAPL",
                                                             price=PRICE, qty=100,
                                                             account=1))], 10**9 + 6000)
    st_ = journal.stats()
    # burst durability: every core call synced; a generation goes with the next
    assert (st_["generations"], st_["commands"]) == (2, 1)
    assert st_["syncs"] == st_["bursts"] + st_["commands"] and st_["synced"] == st_["end"]
    core.journal = None
    journal.close()

    assert jn.first_config(str(path)).text == cfg.text
    fresh = Core(jn.first_config(str(path)))
    report = jn.recover(fresh, str(path))
    assert report["generations"] == 2 and fresh.generation() == 2
    assert fresh.cfg.text == tighter.text
    assert state(fresh) == state(core)
    # and the next frames out are the same: sequence numbers and refs continue
    nxt = [wire.from_strategy(1, wire.new_order(1, 6, 10, symbol="AAPL", price=PRICE,
                                                qty=100, account=1))]
    assert fresh.process_burst(nxt, 10**9 + 9000) == core.process_burst(nxt, 10**9 + 9000)


def test_a_generation_adopted_inside_a_burst_is_recorded_before_it(tmp_path):
    """A live poll loop does not take a published generation itself: the
    next burst adopts it.  The journal notices after that burst and puts the
    GENERATION record before the burst's, so recovery judges the burst by
    the same generation."""
    path = tmp_path / "j.oms"
    cfg = load_config_text(yaml_config(), "a.yaml")
    core = Core(cfg)
    journal = open_journal(path, cfg)
    journal.attach(core)
    core.journal = journal
    trade(core, 10**9)
    tighter = load_config_text(yaml_config().replace("max_order_qty: 999999",
                                                     "max_order_qty: 10", 1), "b.yaml")
    old = core.publish(core.build_generation(tighter))  # as LiveControl.reload does
    out = core.process_burst([wire.from_strategy(1, wire.new_order(
        1, 5, 9, symbol="AAPL", price=PRICE, qty=100, account=1))], 10**9 + 9000)
    lib.oms_gen_free(old)
    assert core.generation() == 2
    assert core.stats()["reject_business"]  # judged by the tighter limits
    core.journal = None
    journal.close()
    data = path.read_bytes()
    types = [struct.unpack_from("<I", data, off)[0] & 0xFFFF for off, _ in records(path)]
    assert types[-2:] == [lib.OMS_JREC_GENERATION, lib.OMS_JREC_BURST]
    fresh, report = recover_fresh(path)
    assert report["generations"] == 2 and state(fresh) == state(core)
    assert out


def records(path) -> list[tuple[int, int]]:
    """(offset, total length) of every record, walked from the header."""
    data = path.read_bytes()
    off, out = lib.OMS_JOURNAL_HEADER, []
    while off + 32 <= len(data):
        magic, length = struct.unpack_from("<II", data, off)
        if magic == 0:
            break
        total = 32 + (length + 7) // 8 * 8
        out.append((off, total))
        off += total
    return out


def journaled_trade(path, n_extra: int = 3):
    cfg = load_config_text(yaml_config(), "a.yaml")
    core = Core(cfg)
    journal = open_journal(path, cfg)
    journal.attach(core)
    core.journal = journal
    trade(core, 10**9)
    for i in range(n_extra):
        core.process_burst([wire.from_strategy(2, wire.heartbeat(2))], 10**9 + 10_000 + i)
    journal.close()
    return cfg


def recover_fresh(path, cut=True):
    core = Core(jn.first_config(str(path)))
    return core, jn.recover(core, str(path), cut=cut)


def test_torn_tail_is_found_by_its_crc_and_cut(tmp_path):
    """A record cut short (the process died in its memcpy, or the machine
    before its pages reached the disk) ends the journal: recovery counts
    it, cuts the file back to the last good record, and the state is that
    of the records before; appending then continues from there."""
    path = tmp_path / "j.oms"
    cfg = journaled_trade(path)
    recs = records(path)
    whole = path.read_bytes()
    last_off, last_len = recs[-1]
    # the last record half written: its header, half its body, zeros on
    path.write_bytes(whole[: last_off + last_len // 2] + bytes(4096))
    ref = tmp_path / "ref.oms"
    ref.write_bytes(whole[:last_off])  # the journal without its last record
    want, _ = recover_fresh(ref)

    assert jn.scan(str(path))["torn_bytes"] > 0
    got, report = recover_fresh(path)
    assert report["torn_bytes"] > 0 and report["torn_cut"] == 1
    assert report["records"] == len(recs) - 1
    assert os.path.getsize(path) == last_off
    assert state(got) == state(want)
    # a bad CRC in the last record is a torn tail too
    path.write_bytes(whole[:-3] + bytes([whole[-3] ^ 0x40]) + whole[-2:])
    _, report = recover_fresh(path)
    assert (report["records"], report["torn_cut"]) == (len(recs) - 1, 1)
    # the journal opens for appending where the good records end
    j = open_journal(path, cfg)
    assert j.stats()["next_seq"] == len(recs)  # seq of the cut record, reused
    j.close()


def test_damage_in_the_middle_is_refused_not_cut(tmp_path):
    """A bad record with good ones after it is not a torn tail: recovery
    and opening for append refuse, and leave the file as it was."""
    path = tmp_path / "j.oms"
    cfg = journaled_trade(path)
    off, _ = records(path)[2]
    data = bytearray(path.read_bytes())
    data[off + 40] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(jn.JournalError, match="not a torn tail"):
        recover_fresh(path)
    with pytest.raises(jn.JournalError, match="not a torn tail"):
        open_journal(path, cfg)
    assert path.read_bytes() == bytes(data)
    s = jn.scan(str(path))
    assert s["records"] == 2 and s["good_after_bad"] == 1


def test_records_applied_one_by_one_as_a_standby_would(tmp_path):
    """oms_journal_apply, one record at a time (what a hot standby does with
    the primary's stream), rebuilds the same state as recovery; a record
    with a bad CRC is refused."""
    path = tmp_path / "j.oms"
    journaled_trade(path)
    want, _ = recover_fresh(path)
    data = path.read_bytes()
    standby = Core(jn.first_config(str(path)))
    for off, total in records(path):
        jn.apply_record(standby, data[off:off + total])
    assert state(standby) == state(want)
    off, total = records(path)[1]
    bad = bytearray(data[off:off + total])
    bad[32] ^= 1  # the first byte of its body
    with pytest.raises(jn.JournalError, match="good CRC"):
        jn.apply_record(standby, bytes(bad))
    assert state(standby) == state(want)


def test_not_a_journal_is_a_clear_error(tmp_path):
    path = tmp_path / "j.oms"
    path.write_bytes(b"hello" * 100)
    with pytest.raises(jn.JournalError, match="not a journal"):
        jn.scan(str(path))


def test_durability_policies_sync_when_they_say(tmp_path):
    """burst: an msync per core call (before its output would be sent);
    periodic: the sync thread catches up within a few intervals; none: no
    msync until close."""
    import time

    cfg = load_config_text(yaml_config(), "a.yaml")
    for durability in ("none", "burst", "periodic"):
        path = tmp_path / f"{durability}.oms"
        core = Core(cfg)
        j = jn.Journal(JournalConfig(path=str(path), durability=durability,
                                     sync_interval_ms=5, segment_mb=1), cfg)
        j.attach(core)
        core.journal = j
        trade(core, 10**9)
        s = j.stats()
        if durability == "none":
            assert s["syncs"] == 0 and s["synced"] < s["end"]
        elif durability == "burst":
            assert s["syncs"] == s["bursts"] and s["synced"] == s["end"]
        else:
            deadline = time.monotonic() + 2
            while j.stats()["synced"] < s["end"] and time.monotonic() < deadline:
                time.sleep(0.005)
            assert j.stats()["synced"] == s["end"] and j.stats()["syncs"] >= 1
        j.close()
        assert jn.scan(str(path))["records"] == s["records"]


def test_the_file_grows_in_segments(tmp_path):
    """Appending past the allocated size grows the file a whole segment at a
    time (no syscall per record); close trims it to what is in use."""
    path = tmp_path / "j.oms"
    cfg = load_config_text(yaml_config(), "a.yaml")
    core = Core(cfg)
    j = open_journal(path, cfg)
    j.attach(core)
    core.journal = j
    frames = [wire.from_strategy(2, wire.heartbeat(2))] * 32
    for i in range(1000):  # 1000 x ~2.2 KB: past the first 1 MiB segment
        core.process_burst(frames, 10**9 + i)
    s = j.stats()
    assert s["grows"] >= 2 and s["file_size"] % (1 << 20) == 0 and s["end"] > (1 << 20)
    j.close()
    assert os.path.getsize(path) == s["end"]
    assert jn.scan(str(path))["frames"] == 1000 * 32


def test_omsctl_journal_tools(tmp_path):
    """info and replay read a journal; verify exits 5 on a torn tail and,
    with --cut, cuts it."""
    import json
    import subprocess
    import sys

    from control import cli

    path = tmp_path / "j.oms"
    journaled_trade(path)
    want, _ = recover_fresh(path)
    omsctl = [sys.executable, "-m", "control.cli", "journal"]
    info = json.loads(subprocess.run([*omsctl, "info", str(path)], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["records"] == len(records(path)) and info["torn_bytes"] == 0
    r = subprocess.run([*omsctl, "replay", str(path), "--dump-ids", "1-10"],
                       capture_output=True, text=True, check=True)
    replayed = json.loads(r.stdout)
    assert replayed["live_orders"] == want.live_orders() and replayed["generation"] == 1
    with path.open("ab") as f:
        f.write(b"\x01" * 100)  # a torn tail
    assert cli.main(["journal", "verify", str(path)]) == 5
    assert os.path.getsize(path) == info["end"] + 100
    assert cli.main(["journal", "verify", "--cut", str(path)]) == 0
    assert os.path.getsize(path) == info["end"]
    assert cli.main(["journal", "verify", str(path)]) == 0


def test_sharded_workers_each_journal_and_recover_their_own_core(tmp_path):
    """Sharded mode: start_core gives each worker's core its own journal
    (path.w0, path.w1) holding the whole file's text; a restart rebuilds
    each worker's part from it and recovers each core alone."""
    import netns
    import test_live_sharded

    from dataplane.sharding import shard_config

    text = test_live_sharded.config_text(netns.Hosts("jx")) + \
        f"journal: {{path: {tmp_path / 'j'}, durability: none}}\n"
    cfg = load_config_text(text, "sharded.yaml")

    def part(i):
        return lambda c: shard_config(c, c.dataplane.threading.workers[i])

    def start():
        return [jn.start_core(cfg, part=part(i), index=i) for i in (0, 1)]

    first = start()
    assert [r for _, _, r in first] == [None, None]
    for i, (core, journal, _) in enumerate(first):
        core.journal = journal
        sess = i + 1  # worker i owns session i + 1, venue i + 1, account i + 1
        core.process_burst([wire.from_strategy(sess, wire.login(sess))], 10**9)
        out = core.process_burst([wire.from_strategy(sess, wire.new_order(
            sess, 1, 7, symbol="AAPL", price=PRICE, qty=100, account=sess))], 10**9 + 1000)
        assert out and core.order(sess, 7)["venue"] == sess
        core.journal = None
        journal.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.w0", "j.w1"]
    again = start()
    for i, ((was, _, _), (core, journal, rec)) in enumerate(zip(first, again, strict=True)):
        assert rec["records"] == 3  # generation, login, order
        assert core.cfg.sessions == was.cfg.sessions and len(core.cfg.sessions) == 1
        assert core.order(i + 1, 7) == was.order(i + 1, 7)
        assert core.stats() == was.stats()
        journal.close()


def test_journal_section_of_the_configuration():
    cfg = load_config_text(yaml_config("journal: {path: /var/lib/oms/j, durability: periodic,"
                                       " sync_interval_ms: 5}\n"))
    assert cfg.journal == JournalConfig(path="/var/lib/oms/j", durability="periodic",
                                        sync_interval_ms=5)
    with pytest.raises(ConfigError, match="journal.durability.*'always' is not one of"):
        load_config_text(yaml_config("journal: {path: /j, durability: always}\n"))
    with pytest.raises(ConfigError, match="journal.*path"):
        load_config_text(yaml_config("journal: {durability: burst}\n"))


def test_crc32c_is_castagnoli():
    assert lib.oms_crc32c(0, b"123456789", 9) == 0xE3069283
    # chaining: the CRC of a whole is the CRC continued over its parts
    assert lib.oms_crc32c(lib.oms_crc32c(0, b"12345", 5), b"6789", 4) == 0xE3069283
