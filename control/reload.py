"""Live reload of the configuration (docs/semantics.md "Configuration
generations"): which parts of a configuration a running appliance can take
without a restart, and noticing that the file changed.

A reload validates the whole file (every error, with file, line and key),
refuses a file that changes anything fixed at start, then compiles the rest
into a configuration generation that the data plane publishes by pointer
swap.  Whatever goes wrong, the running configuration stays."""
from __future__ import annotations

import dataclasses
import os

from control.config import Config

# What a generation holds: everything else is fixed at start.
RELOADABLE = ("instruments", "accounts", "routes", "routing")
# Per session, only the throttle is in the generation.
SESSION_RELOADABLE = ("throttle", "accounts")


def fixed_changes(old: Config, new: Config, live_market_data: bool = False) -> list[str]:
    """What `new` changes that only a restart can: one line per change.
    live_market_data: the appliance takes market_data's subscriptions and
    symbols live (dataplane/md_reload.py); what in it still needs a
    restart is listed."""
    out = []
    apart = ("source", "text", "sessions") + (("market_data",) if live_market_data else ())
    for f in dataclasses.fields(Config):
        if f.name in RELOADABLE or f.name in apart:
            continue
        if getattr(old, f.name) != getattr(new, f.name):
            out.append(f"{f.name}: changed; only a restart applies it")
    if live_market_data:
        from dataplane.md_reload import fixed_market_data_changes
        out += fixed_market_data_changes(old, new)
    old_s = {s.id: s for s in old.sessions}
    new_s = {s.id: s for s in new.sessions}
    for sid in sorted(old_s.keys() - new_s.keys()):
        out.append(f"sessions: session {sid} removed; only a restart applies it")
    for sid in sorted(new_s.keys() - old_s.keys()):
        out.append(f"sessions: session {sid} added; only a restart applies it")
    for sid in sorted(old_s.keys() & new_s.keys()):
        free = dict.fromkeys(SESSION_RELOADABLE)
        a = dataclasses.replace(old_s[sid], **free)
        b = dataclasses.replace(new_s[sid], **free)
        for f in dataclasses.fields(a):
            if getattr(a, f.name) != getattr(b, f.name):
                out.append(f"sessions: session {sid} {f.name} changed; only a restart applies it")
    if [s.id for s in old.sessions] != [s.id for s in new.sessions] and \
            old_s.keys() == new_s.keys():
        out.append("sessions: reordered; only a restart applies it")
    return out


class FileWatch:
    """Notices that a file was replaced or rewritten (inode, size, mtime),
    polled from the control loop: no thread, no inotify dependency."""

    def __init__(self, path: str):
        self.path = path
        self.last = self._stamp()

    def _stamp(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self) -> bool:
        now = self._stamp()
        if now is None or now == self.last:
            return False  # a file briefly missing (editor's rename) is no change
        self.last = now
        return True
