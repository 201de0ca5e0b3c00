"""The journal of the core's inputs and crash recovery, as Python sees them
(cdefs/journal.h, docs/durability.md).  The C side appends and re-executes;
this module opens, attaches, recovers and reports.

A live appliance starts with `start_core`: a fresh core from the
configuration, or - when the configured journal already holds records - a
core rebuilt from the journal's first configuration, every record
re-executed through it in C, and the journal opened to continue."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import replace

from control.config import Config, ConfigError, load_config_text
from control.config import Journal as JournalConfig
from control.reload import fixed_changes
from dataplane.core import Core, CoreError, _ext, ip_to_int, mac_to_bytes

DURABILITY = {"none": 0, "periodic": 1, "burst": 2}
RECORD_TYPES = {1: "burst", 2: "command", 3: "generation", 4: "market", 5: "route"}


class JournalError(RuntimeError):
    pass


def _fields(ffi, value, ctype: str) -> dict:
    return {name: getattr(value, name) for name, _ in ffi.typeof(ctype).fields}


class Journal:
    """A journal open for appending; one writer: the thread that drives the
    core (a live poll loop in C, or the Python caller of Core.process_burst
    once `core.journal` is set to it)."""

    def __init__(self, jcfg: JournalConfig, cfg: Config, ext=None, epoch: int = 0):
        ext = ext or _ext
        self.ffi, self.lib = ext.ffi, ext.lib
        self.path = jcfg.path
        c = self.ffi.new("struct oms_journal_config *", {
            "durability": DURABILITY[jcfg.durability],
            "sync_interval_ms": jcfg.sync_interval_ms, "segment_mb": jcfg.segment_mb,
            "appliance_ip": ip_to_int(cfg.appliance.ip),
            "appliance_mac": list(mac_to_bytes(cfg.appliance.mac)), "epoch": epoch,
            "route_records": int(jcfg.route_records)})
        err = self.ffi.new("char[512]")
        j = self.lib.oms_journal_open(os.fsencode(jcfg.path), c, err, 512)
        if j == self.ffi.NULL:
            raise JournalError(self.ffi.string(err).decode())
        self._j = j

    def attach(self, core: Core) -> None:
        """Record the generation the core judges by, if not yet recorded."""
        if self.lib.oms_journal_attach(self._j, core._core) != 0:
            raise JournalError(f"{self.path}: cannot append (disk full?)")

    def full(self) -> bool:
        """The file cannot grow (disk full): docs/durability.md "Full disk"."""
        return bool(self.lib.oms_journal_full(self._j))

    def before_burst(self, core: Core, now_ns: int) -> None:
        """As the C loops' oms_journal_before_burst: tell the core when the
        journal's health changed, by a command the journal records."""
        full = int(self.full())
        if full != core.lib.oms_core_journal_full(core._core):
            core.command(core.lib.OMS_CMD_JOURNAL_FULL, full, 0, now_ns)

    def record_burst(self, core: Core, ptrs, lens, n: int, now_ns: int) -> None:
        self.lib.oms_journal_burst(self._j, core._core, ptrs, lens, n, now_ns)
        self.lib.oms_journal_commit(self._j)

    def record_command(self, core: Core, cmd, now_ns: int) -> None:
        self.lib.oms_journal_command(self._j, core._core, cmd, now_ns)
        self.lib.oms_journal_commit(self._j)

    def sync(self) -> None:
        if self.lib.oms_journal_sync(self._j) != 0:
            raise JournalError(f"{self.path}: msync failed")

    def stats(self) -> dict:
        st = self.ffi.new("struct oms_journal_stats *")
        self.lib.oms_journal_stats(self._j, st)
        return _fields(self.ffi, st, "struct oms_journal_stats")

    def close(self) -> None:
        if self._j is not None:
            self.lib.oms_journal_close(self._j)
            self._j = None


def _scan_dict(ffi, s) -> dict:
    out = _fields(ffi, s, "struct oms_journal_scan")
    h = s.header
    out["header"] = {"version": h.version, "created_ns": h.created_ns,
                     "appliance_ip": h.appliance_ip,
                     "appliance_mac": ":".join(f"{b:02x}" for b in h.appliance_mac),
                     "epoch": h.epoch, "first_seq": h.first_seq}
    return out


def scan(path: str, cut: int = 0) -> dict:
    """Walk the journal checking every record's CRC; cut 1: truncate a torn
    tail, 2: also damage with good records after it (operator's --force)."""
    ffi, lib = _ext.ffi, _ext.lib
    s = ffi.new("struct oms_journal_scan *")
    err = ffi.new("char[512]")
    if lib.oms_journal_scan(os.fsencode(path), cut, s, err, 512) != 0:
        raise JournalError(ffi.string(err).decode())
    return _scan_dict(ffi, s)


def has_records(path: str) -> bool:
    return os.path.exists(path) and os.path.getsize(path) > 0 and scan(path)["records"] > 0


def first_config(path: str) -> Config:
    """The configuration the journal's core was started with (its first
    GENERATION record)."""
    ffi, lib = _ext.ffi, _ext.lib
    need = ffi.new("uint64_t *")
    lib.oms_journal_first_config(os.fsencode(path), ffi.NULL, 0, need)
    buf = ffi.new("char[]", max(1, need[0]))
    n = lib.oms_journal_first_config(os.fsencode(path), buf, need[0], need)
    if n <= 0:
        raise JournalError(f"{path}: holds no configuration to start from (no GENERATION "
                           "record with its text)")
    text = ffi.unpack(buf, n).decode()
    try:
        return load_config_text(text, f"{path} (generation 1)")
    except ConfigError as e:
        raise JournalError(f"{path}: its configuration does not load: {e}") from None


def _generation_callback(core: Core, where: str, rebuild, failure: list):
    """The C side's oms_journal_gen_fn: rebuild a generation from its text
    (or with `rebuild`) and make the core judge by it."""
    ffi = core.ffi

    def on_generation(ctx, number, text, text_len):
        try:
            body = ffi.unpack(text, text_len).decode()
            cfg = rebuild(number, body) if rebuild else load_config_text(
                body, f"{where} (generation {number})")
            core.reload(cfg)
            return 0
        except BaseException as e:  # reported once the C side returns
            failure.append(e)
            return -1

    return ffi.callback("int(void *, uint64_t, const char *, uint32_t)", on_generation)


def apply_record(core: Core, record: bytes,
                 rebuild: Callable[[int, str], Config] | None = None) -> None:
    """Apply one record (as a hot standby receives it) to `core`."""
    failure: list[BaseException] = []
    cb = _generation_callback(core, "a streamed record", rebuild, failure)
    err = core.ffi.new("char[512]")
    saved, core.journal = core.journal, None
    try:
        rc = core.lib.oms_journal_apply(core._core, core.ffi.from_buffer(record), len(record),
                                        cb, core.ffi.NULL, err, 512)
    finally:
        core.journal = saved
    if rc != 0:
        why = core.ffi.string(err).decode()
        raise JournalError(why + (f": {failure[0]}" if failure else ""))


def recover(core: Core, path: str,
            rebuild: Callable[[int, str], Config] | None = None, cut: bool = True) -> dict:
    """Re-execute every record of the journal through `core` (fresh, built
    from the journal's first configuration), then (cut) cut a torn tail.
    A GENERATION record above the core's own is built again from
    rebuild(number, text) - by default the text loaded as YAML."""
    ffi, lib = core.ffi, core.lib
    failure: list[BaseException] = []
    cb = _generation_callback(core, path, rebuild, failure)
    s = ffi.new("struct oms_journal_scan *")
    err = ffi.new("char[512]")
    saved, core.journal = core.journal, None  # re-execution is not journaled again
    try:
        rc = lib.oms_journal_recover(core._core, os.fsencode(path), int(cut), cb, ffi.NULL,
                                     s, err, 512)
    finally:
        core.journal = saved
    if rc != 0:
        why = ffi.string(err).decode()
        if failure:
            why += f": {failure[0]}"
        raise JournalError(why)
    return _scan_dict(ffi, s)


def _differs(a: Config, b: Config) -> bool:
    """Configurations that differ in more than the replication section (the
    one part a primary's and its backup's files differ in)."""
    return a.text != b.text and replace(a, replication=None, source="") != \
        replace(b, replication=None, source="")


def start_core(cfg: Config, ext=None, part: Callable[[Config], Config] | None = None,
               index: int | None = None, md=None) -> tuple[Core, Journal | None, dict | None]:
    """The core a live appliance runs, its journal and what recovery did.
    Without `journal:` in the configuration: a fresh core, no journal.  With
    one that holds records: the core rebuilt from it (its first
    configuration, every record re-executed), then the journal continues;
    a configuration file whose reloadable parts changed since is applied as
    a new generation (journaled); one that changes what only a new journal
    can change is refused.

    Sharded (several cores): `part` maps a whole configuration to the part
    this core takes, and core `index` has its own journal, path + ".w<index>"
    (the generations' text is the whole file's).

    `md` (a dataplane.market_data.CMarketData): the feeds the core reads;
    recovery hands them the journal's MARKET records, so the books are
    those the core read when it ran, and the journal records what they are
    handed from now on."""
    part = part or (lambda c: c)
    if cfg.journal is None:
        return Core(part(cfg), ext=ext), None, None
    path = cfg.journal.path + (f".w{index}" if index is not None else "")
    report = None
    if has_records(path):
        first = first_config(path)
        core = Core(part(first), ext=ext)
        if md is not None:
            md.rebuild_with(core)
        report = recover(core, path, rebuild=lambda n, text: part(load_config_text(
            text, f"{path} (generation {n})")))
        fixed = [x for x in fixed_changes(first, cfg)
                 if not x.startswith(("journal", "replication"))]
        if fixed:
            raise JournalError(f"{path} was written under another configuration: "
                               + "; ".join(fixed) + " (move the journal away to start afresh)")
        print(f"omsctl: recovered from {path}: {report['records']} records "
              f"({report['frames']} frames) in {report['replay_ns'] / 1e6:.1f} ms"
              + (f", torn tail of {report['torn_bytes']} bytes cut" if report["torn_cut"]
                 else ""), file=sys.stderr, flush=True)
    else:
        core = Core(part(cfg), ext=ext)
    journal = Journal(replace(cfg.journal, path=path), cfg, ext=ext)
    # a backup's journal is its primary's copy: the primary's records, from
    # its first GENERATION on, are all it appends (dataplane/standby.py)
    backup = cfg.replication is not None and cfg.replication.role == "backup"
    if md is not None and not backup:
        # a backup's MARKET records are the primary's, copied as they come
        md.set_journal(journal)
    try:
        if not backup:
            journal.attach(core)
        if report is not None and not backup and _differs(cfg, core.cfg):
            core.journal = journal
            core.reload(part(cfg))  # journaled by attach in reload
            core.journal = None
    except (JournalError, CoreError):
        journal.close()
        raise
    return core, journal, report
