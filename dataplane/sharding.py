"""Sharded mode (docs/dataplane.md "Threading"): the part of a configuration
one worker's core takes.  Each worker owns its strategy sessions, its venues
(their venue sessions, sequence numbers and UserRefNums) and its accounts,
so every table has exactly one writer and no limit needs a lock.

A worker routes only to its own venues: routing rules that name another
worker's venue do not apply on it, its default venue is the configured one
if it owns it, else its first; an instrument whose venue list names only
other workers' venues is restricted on it.  A rule to the smart router
stays one: it chooses among the worker's own venues."""
from __future__ import annotations

from dataclasses import replace

from control.config import SOR, Config, Shard


def shard_config(cfg: Config, shard: Shard) -> Config:
    sessions = tuple(s for s in cfg.sessions if s.id in shard.sessions)
    venues = tuple(v for v in cfg.venues if v.id in shard.venues)
    if not venues:
        raise ValueError(f"{cfg.source}: dataplane.threading: a worker without venues "
                         f"(sessions {list(shard.sessions)}) could route no order")
    vids = {v.id for v in venues}
    accounts = tuple(a for a in cfg.accounts if a.id in shard.accounts)
    # the smart router stays the router: it sees only this worker's venues
    default = (cfg.routing.default_venue if cfg.routing.default_venue in vids | {SOR}
               else venues[0].id)
    routes = tuple(replace(r, exclude=tuple(x for x in r.exclude if x in vids))
                   for r in cfg.routes if (r.venue in vids or r.venue == SOR) and
                   (r.account is None or r.account in shard.accounts))
    instruments = []
    for ins in cfg.instruments:
        if ins.venues and not vids & set(ins.venues):
            ins = replace(ins, venues=(), restricted=True)
        elif ins.venues:
            ins = replace(ins, venues=tuple(v for v in ins.venues if v in vids))
        instruments.append(ins)
    return replace(cfg, sessions=sessions, venues=venues, accounts=accounts, routes=routes,
                   routing=replace(cfg.routing, default_venue=default),
                   instruments=tuple(instruments))
