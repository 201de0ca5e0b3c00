"""Writes the bundled scenario sources in pcaps/scenarios/ from a seeded RNG,
so they are reproducible and never edited by hand:

    python -m pcaps.make_scenarios            # rewrite them
    python -m pcaps.make_scenarios --check    # fail if they differ

- brief_example.jsonl: the product brief's two messages, verbatim, and a
  cancel.
- session.jsonl: two strategy sessions, a few thousand orders with
  modifies, cancels, a mass cancel, IOC and market orders, and a sprinkling
  of orders that break the rules (zero quantity, unknown symbol, a price
  finer than the venue's tick, sell short without a locate).  Prices sit
  around the venue simulator's reference prices so that some orders cross
  and fill, some rest and fill later, and some are canceled.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from dataplane.venue_sim import default_ref_price

HERE = Path(__file__).resolve().parent / "scenarios"
SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "NVDA", "META", "SPY", "QQQ", "IBM"]
START_NS = 1638247400000 * 1_000_000  # the brief's first timestamp


def _line(obj: dict, prices: dict[str, str] | None = None) -> str:
    """JSON with prices as decimal literals (the builder reads them as
    Decimal), never through a float."""
    text = json.dumps(obj, separators=(", ", ": "))
    for key, literal in (prices or {}).items():
        text = text.replace(f'"{key}": "@"', f'"{key}": {literal}')
    return text


def _px(units: int, decimals: int = 4) -> str:
    """OUCH units (4 decimals) as a decimal literal."""
    s = str(units).rjust(decimals + 1, "0")
    return f"{s[:-decimals]}.{s[-decimals:]}"


def brief_example() -> list[str]:
    return [
        '{"timestamp": 1638247400000, "order_id": 12345, "symbol": "AAPL", '
        '"price": 150.25, "volume": 100, "type": "LIMIT"}',
        '{"timestamp": 1638247410000, "order_id": 12345, "new_price": 151.00, '
        '"new_volume": 50}',
        '{"timestamp": 1638247420000, "action": "cancel", "order_id": 12345}',
    ]


def session(n_orders: int = 3000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    lines: list[str] = []
    t = START_NS
    live: dict[int, dict] = {}  # order_id -> what the scenario last asked for
    next_id = {1: 1_000_000, 2: 2_000_000}
    made = 0
    while made < n_orders:
        t += rng.randint(1_000, 40_000)
        sess = rng.choice((1, 2))
        r = rng.random()
        mine = [k for k, v in live.items() if v["session"] == sess]
        if r < 0.62 or not mine:
            made += 1
            oid = next_id[sess]
            next_id[sess] += 1
            sym = rng.choice(SYMBOLS)
            ref = default_ref_price(sym)
            side = rng.choice(("buy", "sell"))
            # within 8 ticks of the reference: about half cross the
            # simulator's synthetic book
            off = rng.randint(-8, 8) * 100
            px = ref + off if side == "buy" else ref - off
            qty = rng.choice((100, 100, 200, 300, 500, 1000))
            order = {"timestamp_ns": t, "session": sess, "order_id": oid, "symbol": sym,
                     "price": "@", "volume": qty, "type": "LIMIT", "side": side,
                     "account": rng.choice((1, 2, 3))}
            prices = {"price": _px(px)}
            kind = rng.random()
            if kind < 0.08:
                order["tif"] = "ioc"
            elif kind < 0.10:
                order.update(type="MARKET", tif="ioc")
                del order["price"]
                prices = {}
            elif kind < 0.11:
                order["volume"] = 0  # BAD_QTY
            elif kind < 0.12:
                order["symbol"] = "ZZZZ"  # UNKNOWN_SYMBOL
            elif kind < 0.13:
                prices = {"price": _px(px * 100 + 1, 6)}  # finer than OUCH's tick
            elif kind < 0.14:
                order["side"] = "sell_short"  # no locate: LOCATE_REQUIRED
            elif kind < 0.17:
                order.update(side="sell_short", locate=True)
            lines.append(_line(order, prices))
            if order.get("type") == "LIMIT" and order.get("tif", "day") == "day":
                live[oid] = {"session": sess, "price": px, "qty": qty}
        elif r < 0.82:
            oid = rng.choice(mine)
            o = live[oid]
            new_px = o["price"] + rng.randint(-3, 3) * 100
            new_qty = o["qty"] + rng.choice((-100, 0, 100, 200))
            if new_qty <= 0:
                new_qty = o["qty"]
            o.update(price=new_px, qty=new_qty)
            lines.append(_line({"timestamp_ns": t, "session": sess, "order_id": oid,
                                "new_price": "@", "new_volume": new_qty},
                               {"new_price": _px(new_px)}))
        elif r < 0.995:
            oid = rng.choice(mine)
            del live[oid]
            lines.append(_line({"timestamp_ns": t, "session": sess, "action": "cancel",
                                "order_id": oid}))
        else:
            acct = rng.choice((1, 2, 3))
            for k in [k for k, v in live.items() if v["session"] == sess]:
                del live[k]  # the scenario forgets them; late modifies are not made
            lines.append(_line({"timestamp_ns": t, "session": sess, "action": "mass_cancel",
                                "account": acct}))
    return lines


def outputs() -> dict[str, list[str]]:
    return {"brief_example.jsonl": brief_example(), "session.jsonl": session()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    HERE.mkdir(exist_ok=True)
    stale = []
    for name, lines in outputs().items():
        text = "\n".join(lines) + "\n"
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale scenario sources: {stale}; run python -m pcaps.make_scenarios",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
