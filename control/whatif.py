"""What-if: replay one capture under two configurations and list every order
whose outcome changes.

``omsctl whatif orders.pcap --config new.yaml [--against current.yaml]
[--json FILE]`` replays the capture through the C core twice (the pcap
backend, the core in this thread, with the deterministic venue simulator
answering the venue side, exactly as ``omsctl replay --venue-sim``): once
under the *current* configuration (``--against``, default the bundled
``control/default_config.yaml``) and once under the *new* one.

Outcomes come from what the core told each strategy (the replay report's
strategy-bound messages), per (session, cl_ord_id), not from the core's
order table, which evicts old terminal orders:

- ``Accepted`` -> NEW; ``Fill`` -> PARTIALLY_FILLED / FILLED (fills counted,
  quantity and notional summed); ``Replaced`` -> REPLACED (or still
  PARTIALLY_FILLED); ``Canceled`` -> CANCELED, or EXPIRED for an IOC
  remainder; ``Rejected`` of the NewOrder -> REJECTED with its reason.
- ``Rejected`` of a Modify or Cancel (or of a NewOrder reusing the id of an
  order that stands) does not change the order's state; it is counted in
  the order's ``request_rejects`` ("Modify:PRICE_BAND": 1), which is part of
  its outcome too.
- an order the capture sends but nobody answers is NO_REPLY.

An order's outcome changed when its state, reject reason, fills (count,
quantity, notional) or request rejects differ.  Each change is classified:
``newly_rejected`` / ``no_longer_rejected`` / ``reason_changed`` (the
NewOrder's verdict), ``requests_newly_rejected`` / ``requests_no_longer_
rejected`` (a Modify's, for a pre-trade risk reason), else ``knock_on``: the order passed the
same checks under both, but what happened to it differs because other orders
did (the venue simulator's book saw different orders, or a stateful limit
such as credit or position saw different exposure).

Both replays are deterministic, so identical configurations give no change.
The capture's addresses must fit both configurations (same appliance,
sessions and venues); the configuration differences are listed so a change
beyond the risk limits is visible."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

from control import subcommand
from control.config import PRICE_SCALE, Config, load_config, load_default_config

REJECTED = "REJECTED"
NO_REPLY = "NO_REPLY"
DECIMAL_FIELDS = frozenset({
    "max_order_notional", "credit_limit", "tick_size", "reference_price",
    "price_band_pct", "price_band_abs",
})
"""Config fields held as fixed point with 8 decimals (shown as decimals)."""


# --------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------

def _price(fixed: int | None) -> str | None:
    if fixed is None:
        return None
    return format((Decimal(fixed) / PRICE_SCALE).normalize(), "f") if fixed else "0"


def _new_outcome(session: int, cl_ord_id: int) -> dict:
    return {
        "session": session, "cl_ord_id": cl_ord_id,
        "symbol": None, "account": None, "side": None, "ord_type": None, "tif": None,
        "qty": None, "price": None,
        "state": NO_REPLY, "reason": None, "cancel_reason": None,
        "fills": 0, "filled_qty": 0, "fill_notional": 0,
        "request_rejects": {},
    }


def orders_in_capture(cfg: Config, records: list[tuple[int, bytes]]) -> dict:
    """(session, cl_ord_id) -> the order as the capture's first NewOrder with
    that id describes it; frames that are not strategy datagrams to the
    appliance, or messages that do not decode, are skipped."""
    from dataplane.replay import _frame_udp
    from pcaps.layers import decode_sp

    orders: dict[tuple[int, int], dict] = {}
    for _ts, frame in records:
        udp = _frame_udp(frame)
        if udp is None or udp[0] != cfg.appliance.ip or udp[2] != cfg.appliance.strategy_port:
            continue
        try:
            msgs = decode_sp(udp[3])
        except Exception:  # noqa: BLE001 - junk the core drops; nothing to compare
            continue
        for m in msgs:
            if m.get("error") or m.get("type") != "NewOrder":
                continue
            key = (m["session_id"], m["cl_ord_id"])
            if key in orders:
                continue
            o = _new_outcome(*key)
            o.update(symbol=str(m.get("symbol", "")).strip(), account=m.get("account"),
                     side=m.get("side"), ord_type=m.get("ord_type"), tif=m.get("tif"),
                     qty=m.get("qty"), price=_price(m.get("price")))
            orders[key] = o
    return orders


def outcomes_from_report(lines: list[dict], orders: dict | None = None) -> dict:
    """Fold the report's strategy-bound messages into per-order outcomes.
    `orders` (from orders_in_capture) seeds them and is updated in place."""
    orders = {} if orders is None else orders
    for line in lines:
        if line.get("to") != "strategy" or "cl_ord_id" not in line:
            continue
        key = (line["session_id"], line["cl_ord_id"])
        o = orders.get(key)
        if o is None:
            o = orders[key] = _new_outcome(*key)
        kind = line["type"]
        if kind == "Accepted":
            o.update(state="NEW", reason=None)
            if o["qty"] is None:
                o.update(qty=line.get("qty"), price=_price(line.get("price")))
        elif kind == "Rejected":
            ref = line.get("ref_type")
            reason = str(line.get("reason"))
            if ref == "NewOrder" and o["state"] in (NO_REPLY, REJECTED):
                o.update(state=REJECTED, reason=reason)
            else:
                rr = o["request_rejects"]
                name = f"{ref}:{reason}"
                rr[name] = rr.get(name, 0) + 1
        elif kind == "Fill":
            o["fills"] += 1
            o["filled_qty"] += line["last_qty"]
            o["fill_notional"] += line["last_qty"] * line["last_price"]
            o["state"] = "FILLED" if line["leaves_qty"] == 0 else "PARTIALLY_FILLED"
        elif kind == "Replaced":
            o["state"] = "PARTIALLY_FILLED" if o["filled_qty"] else "REPLACED"
        elif kind == "Canceled":
            o["cancel_reason"] = line.get("reason")
            o["state"] = "EXPIRED" if line.get("reason") == "IOC" else "CANCELED"
    return orders


def replay_outcomes(records: list[tuple[int, bytes]], cfg: Config, *,
                    venue_latency_ns: int | None = None) -> tuple[dict, dict]:
    """Replay `records` through the C core (pcap backend, venue simulator)
    under `cfg`: (outcomes by (session, cl_ord_id), the report's summary)."""
    from dataplane.replay import DEFAULT_VENUE_LATENCY_NS, Replayer, report_lines

    rp = Replayer(cfg, venue_sim=True, backend="pcap",
                  venue_latency_ns=DEFAULT_VENUE_LATENCY_NS if venue_latency_ns is None
                  else venue_latency_ns)
    out, res = rp.run(records)
    lines = report_lines(cfg, out, res.stats)
    outcomes = outcomes_from_report(lines, orders_in_capture(cfg, records))
    return outcomes, lines[-1]["summary"]


# --------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------

def _signature(o: dict) -> tuple:
    return (o["state"], o["reason"], o["cancel_reason"], o["fills"], o["filled_qty"],
            o["fill_notional"], tuple(sorted(o["request_rejects"].items())))


def _public(o: dict) -> dict:
    """The outcome as reported: fill notional as an average price."""
    out = {k: o[k] for k in ("state", "reason", "cancel_reason", "fills", "filled_qty")}
    out["avg_fill_price"] = (format((Decimal(o["fill_notional"]) / o["filled_qty"]
                                     / PRICE_SCALE).quantize(Decimal("0.00000001"))
                                    .normalize(), "f")
                             if o["filled_qty"] else None)
    out["request_rejects"] = dict(sorted(o["request_rejects"].items()))
    return out


RISK_REASONS = frozenset({
    "THROTTLED", "UNKNOWN_ACCOUNT", "KILL_SWITCH", "SYMBOL_HALTED", "SYMBOL_RESTRICTED",
    "VENUE_NOT_ALLOWED", "ORD_TYPE_NOT_ALLOWED", "TIF_NOT_ALLOWED", "NO_POSITION_LIMIT",
    "QTY_LIMIT", "LOT_SIZE", "TICK_SIZE", "PRICE_BAND", "NOTIONAL_LIMIT",
    "OPEN_ORDERS_LIMIT", "CREDIT_LIMIT", "POSITION_LIMIT",
})
"""Pre-trade risk reject reasons (docs/semantics.md "Pre-trade risk")."""


def _is_risk(request_reject: str) -> bool:
    """A request reject ("Modify:PRICE_BAND") for a pre-trade risk reason;
    the others (TOO_LATE, UNKNOWN_ORDER, ORDER_PENDING...) follow from what
    happened to the order before, so a change in them is a knock-on."""
    return request_reject.partition(":")[2] in RISK_REASONS


def classify(old: dict, new: dict) -> tuple[str, str | None, str]:
    """(kind, reason, why) of a change from `old` to `new`."""
    was, now = old["state"] == REJECTED, new["state"] == REJECTED
    if now and not was:
        return "newly_rejected", new["reason"], f"newly rejected: {new['reason']}"
    if was and not now:
        return "no_longer_rejected", old["reason"], f"no longer rejected ({old['reason']})"
    if was and now and old["reason"] != new["reason"]:
        return ("reason_changed", f"{old['reason']}->{new['reason']}",
                f"reject reason {old['reason']} -> {new['reason']}")
    o_rr, n_rr = old["request_rejects"], new["request_rejects"]
    more = sorted(k for k in n_rr if n_rr[k] > o_rr.get(k, 0) and _is_risk(k))
    fewer = sorted(k for k in o_rr if o_rr[k] > n_rr.get(k, 0) and _is_risk(k))
    if more:
        return ("requests_newly_rejected", more[0],
                "Modify newly rejected: " + ", ".join(more))
    if fewer:
        return ("requests_no_longer_rejected", fewer[0],
                "Modify no longer rejected: " + ", ".join(fewer))
    return ("knock_on", None,
            "same checks passed; fills or state differ because other orders changed "
            "(venue simulator's book, stateful exposure)")


def compare(current: dict, new: dict) -> list[dict]:
    """The orders whose outcome differs, in (session, cl_ord_id) order."""
    changes = []
    for key in sorted(set(current) | set(new)):
        a = current.get(key) or _new_outcome(*key)
        b = new.get(key) or _new_outcome(*key)
        if _signature(a) == _signature(b):
            continue
        kind, reason, why = classify(a, b)
        info = a if a["symbol"] is not None else b
        changes.append({
            "session": key[0], "cl_ord_id": key[1],
            **{k: info[k] for k in ("symbol", "account", "side", "ord_type", "tif", "qty",
                                    "price")},
            "change": kind, "reason": reason, "why": why,
            "current": _public(a), "new": _public(b),
        })
    return changes


_KINDS = ("newly_rejected", "no_longer_rejected", "reason_changed",
          "requests_newly_rejected", "requests_no_longer_rejected", "knock_on")


def counts(changes: list[dict]) -> dict:
    """{kind: {reason: orders}} (knock_on: {"": orders}), kinds in _KINDS
    order, reasons by count, most first."""
    out: dict[str, Counter] = {}
    for c in changes:
        out.setdefault(c["change"], Counter())[c["reason"] or ""] += 1
    return {k: dict(sorted(out[k].items(), key=lambda kv: (-kv[1], kv[0])))
            for k in _KINDS if k in out}


def _flatten(obj, path: str, out: dict) -> None:
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            if f.name == "source":
                continue
            value = getattr(obj, f.name)
            if f.name in DECIMAL_FIELDS and isinstance(value, int):
                value = _price(value)
            _flatten(value, f"{path}.{f.name}" if path else f.name, out)
    elif isinstance(obj, tuple) and obj and all(dataclasses.is_dataclass(x) for x in obj):
        for i, item in enumerate(obj):
            ident = next((f"{k}={getattr(item, k)}" for k in ("id", "symbol")
                          if hasattr(item, k)), str(i))
            _flatten(item, f"{path}[{ident}]", out)
    elif isinstance(obj, tuple) and obj and all(isinstance(x, tuple) and len(x) == 2
                                                and isinstance(x[0], str) for x in obj):
        for k, v in obj:  # max_position: (symbol, shares) pairs
            out[f"{path}.{k}"] = v
    else:
        out[path] = list(obj) if isinstance(obj, tuple) else obj


def config_diff(current: Config, new: Config) -> list[dict]:
    """Every configuration value that differs: [{"key", "current", "new"}]
    (None where one side does not have the key)."""
    a: dict = {}
    b: dict = {}
    _flatten(current, "", a)
    _flatten(new, "", b)
    return [{"key": k, "current": a.get(k), "new": b.get(k)}
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def whatif(records: list[tuple[int, bytes]], new_cfg: Config, current_cfg: Config, *,
           venue_latency_ns: int | None = None) -> dict:
    """The full what-if result (what --json writes)."""
    cur, cur_summary = replay_outcomes(records, current_cfg, venue_latency_ns=venue_latency_ns)
    new, new_summary = replay_outcomes(records, new_cfg, venue_latency_ns=venue_latency_ns)
    changes = compare(cur, new)
    return {
        "current_config": current_cfg.source,
        "new_config": new_cfg.source,
        "config_changes": config_diff(current_cfg, new_cfg),
        "orders": len(set(cur) | set(new)),
        "orders_changed": len(changes),
        "counts": counts(changes),
        "rejects_business": {"current": cur_summary["rejects_business"],
                             "new": new_summary["rejects_business"]},
        "changes": changes,
    }


# --------------------------------------------------------------------------
# Text output and CLI
# --------------------------------------------------------------------------

_COUNT_TEXT = {
    "newly_rejected": "orders newly rejected",
    "no_longer_rejected": "orders no longer rejected",
    "reason_changed": "orders rejected for another reason",
    "requests_newly_rejected": "orders with a Modify newly rejected",
    "requests_no_longer_rejected": "orders with a Modify no longer rejected",
}


def _outcome_text(o: dict) -> str:
    text = o["state"]
    if o["reason"]:
        text += f" {o['reason']}"
    if o["filled_qty"]:
        text += f", filled {o['filled_qty']} @ {o['avg_fill_price']} ({o['fills']} fills)"
    if o["request_rejects"]:
        text += ", " + ", ".join(f"{k} x{v}" if v > 1 else k
                                 for k, v in o["request_rejects"].items())
    return text


def format_text(result: dict, *, limit: int | None = None) -> str:
    out = [f"what-if: {result['orders']} orders, current: {result['current_config']}, "
           f"new: {result['new_config']}"]
    if result["config_changes"]:
        out.append("configuration changes:")
        out += [f"  {c['key']}: {c['current']} -> {c['new']}" for c in result["config_changes"]]
    else:
        out.append("configuration changes: none")
    if not result["changes"]:
        out.append("no order changes outcome")
        return "\n".join(out) + "\n"
    out.append(f"{result['orders_changed']} orders change outcome:")
    for kind, by_reason in result["counts"].items():
        for reason, n in by_reason.items():
            if kind == "knock_on":
                out.append(f"  {n} orders change by knock-on (same checks passed; fills or "
                           "state differ because other orders changed)")
            else:
                out.append(f"  {reason}: {n} {_COUNT_TEXT[kind]}")
    shown = result["changes"] if limit is None else result["changes"][:limit]
    out.append("")
    out.append(f"{'session':>7} {'cl_ord_id':>12} {'symbol':<8} {'acct':>4} {'side':<10} "
               f"{'qty':>7} {'price':>10}  current -> new")
    for c in shown:
        out.append(f"{c['session']:>7} {c['cl_ord_id']:>12} {c['symbol'] or '?':<8} "
                   f"{c['account'] if c['account'] is not None else '?':>4} "
                   f"{c['side'] or '?':<10} {c['qty'] if c['qty'] is not None else '?':>7} "
                   f"{c['price'] if c['price'] is not None else '?':>10}  "
                   f"{_outcome_text(c['current'])} -> {_outcome_text(c['new'])}")
    if len(shown) < len(result["changes"]):
        out.append(f"... and {len(result['changes']) - len(shown)} more (all in --json)")
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pcap", help="capture of strategy traffic (omsctl pcap build)")
    p.add_argument("--config", required=True, help="the new configuration")
    p.add_argument("--against", default=None,
                   help="the current configuration (default: the bundled one)")
    p.add_argument("--json", metavar="FILE", help="write the full result here (JSON)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="list at most N changed orders on stdout (all are in --json)")
    p.add_argument("--venue-latency-us", type=float, default=20.0)
    p.add_argument("--fail-on-change", action="store_true",
                   help="exit with status 1 if any order's outcome changes")


def run(args: argparse.Namespace) -> int:
    from dataplane import pcap_backend

    new_cfg = load_config(args.config)
    current_cfg = load_config(args.against) if args.against else load_default_config()
    records = pcap_backend.read_pcap(args.pcap)
    result = whatif(records, new_cfg, current_cfg,
                    venue_latency_ns=int(args.venue_latency_us * 1000))
    result = {"pcap": str(args.pcap), **result}
    sys.stdout.write(format_text(result, limit=args.limit))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 1 if args.fail_on_change and result["changes"] else 0


def add_subparser(sub) -> argparse.ArgumentParser:
    """Register ``whatif`` on omsctl's sub-command parsers."""
    return subcommand.register(sub, "whatif", "replay a capture under two configurations and "
                               "list the orders whose outcome changes", __doc__, add_arguments,
                               run)


def whatif_main(argv: list[str] | None = None) -> int:
    """``omsctl whatif ...`` on its own (also ``python -m control.whatif``)."""
    return subcommand.standalone("whatif", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(whatif_main())
