"""The hot standby as Python sees it (cdefs/replication.h, docs/durability.md
"Hot standby"): the replication link opened from the configuration's
`replication:` section beside the poll loop's journal, its counters for
reports and `omsctl status`, and the wait a backup makes before it says it
is ready (caught up with its primary)."""
from __future__ import annotations

import time

from control.config import Config
from dataplane.core import ip_to_int

ROLES = {1: "primary", 2: "backup", 3: "fenced"}


class StandbyError(RuntimeError):
    pass


def _host_port(text: str) -> tuple[int, int]:
    host, _, port = text.rpartition(":")
    return ip_to_int(host), int(port)


class Replication:
    """One instance's end of the replication link; driven by its poll loop
    (`struct oms_worker.repl`), read here."""

    def __init__(self, cfg: Config, journal, core, ext):
        r = cfg.replication
        self.ffi, self.lib = ext.ffi, ext.lib
        lip, lport = _host_port(r.listen)
        pip, pport = _host_port(r.peer)
        c = self.ffi.new("struct oms_repl_config *", {
            "role": self.lib.OMS_REPL_PRIMARY if r.role == "primary" else self.lib.OMS_REPL_BACKUP,
            "listen_ip": lip, "listen_port": lport, "peer_ip": pip, "peer_port": pport,
            "sync": int(r.sync),
            "degrade": (self.lib.OMS_REPL_REJECT_NEW if r.degrade == "reject_new"
                        else self.lib.OMS_REPL_STANDALONE),
            "heartbeat_us": r.heartbeat_us, "timeout_us": r.timeout_us,
            "ack_wait_us": r.ack_wait_us, "strategy_udp": cfg.appliance.strategy_port})
        err = self.ffi.new("char[512]")
        self.ptr = self.lib.oms_repl_open(c, journal._j, core._core, err, 512)
        if self.ptr == self.ffi.NULL:
            raise StandbyError(self.ffi.string(err).decode())

    def stats(self) -> dict:
        st = self.ffi.new("struct oms_repl_stats *")
        self.lib.oms_repl_stats(self.ptr, st)
        out = {n: getattr(st, n) for n, _ in self.ffi.typeof("struct oms_repl_stats").fields}
        out["role"] = ROLES.get(out["role"], str(out["role"]))
        return out

    def fence(self, epoch: int) -> None:
        """An operator's or arbiter's fence: this instance stops transmitting
        if `epoch` is above its own (taken by the loop's next poll)."""
        self.lib.oms_repl_fence(self.ptr, epoch)

    def wait_caught_up(self, timeout_s: float, stop=lambda: False) -> bool:
        """A backup: connected and holding everything its primary had when it
        last said (its welcome or heartbeat); False at timeout or stop()."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not stop():
            s = self.stats()
            if s["role"] != "backup" or s["in_sync"]:
                return True
            time.sleep(0.005)
        return False

    def close(self) -> None:
        if self.ptr is not None:
            self.lib.oms_repl_close(self.ptr)
            self.ptr = None
