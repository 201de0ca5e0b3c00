"""omsctl journal {info,verify,replay}: look into a journal of the core's
inputs (docs/durability.md) without running the appliance (ship and fetch,
to and from NATS JetStream: control/journal_ship.py).

info: the file header, record counts, sequence and time range (read only).
verify: every record's CRC checked; exit status 0 clean, 5 with a torn tail
or damage (--cut truncates a torn tail, --cut --force damage too).
replay: re-execute it through a fresh core built from its first
configuration, as recovery at start does, and print the state it ends in
(read only: a torn tail is reported, not cut)."""
from __future__ import annotations

import json
import sys

from control.config import load_config
from dataplane.journal import RECORD_TYPES, first_config, recover, scan

TORN_EXIT = 5


def _summary(s: dict) -> dict:
    out = {k: s[k] for k in ("records", "bursts", "commands", "generations", "frames",
                             "markets", "market_frames", "markets_skipped", "routes",
                             "routes_checked", "routes_differing", "first_seq",
                             "last_seq", "first_ns", "last_ns", "end",
                             "file_size", "torn_bytes", "torn_cut", "good_after_bad",
                             "last_generation")}
    out["header"] = s["header"]
    out["record_types"] = RECORD_TYPES
    return out


def cmd_info(args) -> int:
    print(json.dumps(_summary(scan(args.path)), indent=2, sort_keys=True))
    return 0


def cmd_verify(args) -> int:
    s = scan(args.path, cut=(2 if args.force else 1) if args.cut else 0)
    print(json.dumps(_summary(s), indent=2, sort_keys=True))
    if s["good_after_bad"]:
        print(f"omsctl: {args.path}: damaged at offset {s['end']} with good records after "
              "it" + ("; cut" if s["torn_cut"] else ""), file=sys.stderr)
        return TORN_EXIT
    if s["torn_bytes"]:
        print(f"omsctl: {args.path}: torn tail of {s['torn_bytes']} bytes after seq "
              f"{s['last_seq']}" + ("; cut" if s["torn_cut"] else ""), file=sys.stderr)
        return 0 if s["torn_cut"] else TORN_EXIT
    return 0


def cmd_replay(args) -> int:
    from dataplane.core import Core
    from dataplane.serve import dump_orders

    cfg = load_config(args.config) if args.config else first_config(args.path)
    core = Core(cfg)
    if cfg.market_data.subscriptions:  # the books rebuilt from MARKET records
        from dataplane.market_data import CMarketData
        md = CMarketData(cfg)
        md.rebuild_with(core)
    s = recover(core, args.path, cut=False)
    lo, _, hi = args.dump_ids.partition("-")
    accounts = {a.id: core.account(a.id) for a in core.cfg.accounts}
    report = {"journal": _summary(s), "replay_ms": round(s["replay_ns"] / 1e6, 3),
              "generation": core.generation(), "live_orders": core.live_orders(),
              "accounts": accounts, "core": core.stats(),
              "route_decisions": len(core.route_decisions())}
    if args.dump_orders:
        with open(args.dump_orders, "w") as f:
            json.dump(dump_orders(core, core.cfg, range(int(lo), int(hi or lo) + 1)), f)
    print(json.dumps(report, indent=2, sort_keys=True, default=str))
    return 0


def add_subparser(sub) -> None:
    """Register ``journal`` on omsctl's sub-command parsers."""
    j = sub.add_parser("journal", help="journal tools (crash recovery)",
                       description=__doc__.split("\n\n")[0])
    jsub = j.add_subparsers(dest="journal_cmd", required=True)
    i = jsub.add_parser("info", help="header, counts, sequence and time range")
    i.add_argument("path")
    i.set_defaults(func=cmd_info)
    v = jsub.add_parser("verify", help="check every record's CRC; exit 5 if torn or damaged")
    v.add_argument("path")
    v.add_argument("--cut", action="store_true", help="truncate a torn tail off the file")
    v.add_argument("--force", action="store_true",
                   help="with --cut: cut at the first bad record even with good ones after it")
    v.set_defaults(func=cmd_verify)
    r = jsub.add_parser("replay", help="re-execute it through a fresh core; print the state")
    r.add_argument("path")
    r.add_argument("--config", help="start from this configuration instead of the "
                                     "journal's first")
    r.add_argument("--dump-orders", metavar="FILE", help="write every order's state here")
    r.add_argument("--dump-ids", default="1-100000", metavar="FIRST-LAST")
    r.set_defaults(func=cmd_replay)
    from control.journal_ship import add_subparsers as add_ship_subparsers

    add_ship_subparsers(jsub)  # ship, fetch (a distributed log)
