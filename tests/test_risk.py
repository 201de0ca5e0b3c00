"""Pre-trade risk (docs/semantics.md "Pre-trade risk"): for every check an
order that breaks it and one just inside the limit, against both the C core
and the reference model; modifies judged on their new values; cancels that
always pass; and the accounting (open orders, open notional, filled and
open positions) through fills, cancels, replaces, rejects and evictions.

Limits are hand-picked below; the expected reasons come from the document,
not from running the code."""
from __future__ import annotations

from dataclasses import replace

import pytest
import wire
from test_transcripts import decode_out
from wire import (
    cancel,
    login,
    modify,
    new_order,
    ouch_accepted,
    ouch_canceled,
    ouch_executed,
    ouch_rejected,
    ouch_replaced,
)

from control.config import Account, Instrument, Throttle
from dataplane.core import Core
from dataplane.reference_model import ReferenceCore

IMPLS = [pytest.param(Core, id="core"), pytest.param(ReferenceCore, id="model")]
D = 10**8  # 8 decimals


def px(text: str) -> int:
    """A decimal price as the fixed-point integer."""
    whole, _, frac = text.partition(".")
    return int(whole) * D + int(frac.ljust(8, "0"))


REF = px("150.25")
REASON = {"THROTTLED": 15, "UNKNOWN_ACCOUNT": 16, "KILL_SWITCH": 17, "SYMBOL_HALTED": 18,
          "SYMBOL_RESTRICTED": 19, "VENUE_NOT_ALLOWED": 20, "ORD_TYPE_NOT_ALLOWED": 21,
          "TIF_NOT_ALLOWED": 22, "NO_POSITION_LIMIT": 23, "QTY_LIMIT": 24, "LOT_SIZE": 25,
          "TICK_SIZE": 26, "PRICE_BAND": 27, "NOTIONAL_LIMIT": 28, "OPEN_ORDERS_LIMIT": 29,
          "CREDIT_LIMIT": 30, "POSITION_LIMIT": 31, "UNKNOWN_ORDER": 11}

INSTRUMENTS = (
    # tick 0.01, lot 10, band 10% around 150.25 (15.025 either way)
    Instrument("AAPL", tick_size=px("0.01"), lot_size=10, reference_price=REF,
               price_band_pct=10 * D),
    # band 5.00 absolute, venue 1 only
    Instrument("MSFT", reference_price=REF, price_band_abs=5 * D, venues=(1,)),
    Instrument("HALT", reference_price=REF, halted=True),
    Instrument("RSTR", reference_price=REF, restricted=True),
    Instrument("NOREF"),
    Instrument("NOLIM", reference_price=REF),
)
BIG = 10**12
POS = tuple((s, BIG) for s in ("AAPL", "MSFT", "HALT", "RSTR", "NOREF"))  # not NOLIM
ACCOUNTS = (
    # 660 x 150.25 = 99,165.00 exactly: the largest AAPL order by notional
    Account(id=1, max_order_qty=1000, max_order_notional=99_165 * D, max_open_orders=3,
            credit_limit=10**9 * D, max_position=POS),
    Account(id=2, max_order_qty=1000, max_order_notional=10**9 * D, max_open_orders=100,
            credit_limit=10**9 * D, max_position=POS, order_types=("LIMIT",),
            tifs=("IOC",)),
    Account(id=3, max_order_qty=1000, max_order_notional=10**9 * D, max_open_orders=100,
            credit_limit=10**9 * D, max_position=POS, kill=True),
    # credit 250,000: two of 99,165 and one of 51,085 (340 x 150.25) fit exactly 249,415
    Account(id=4, max_order_qty=1000, max_order_notional=10**9 * D, max_open_orders=100,
            credit_limit=250_000 * D, max_position=POS),
    # worst-case position 1,000 AAPL either way
    Account(id=5, max_order_qty=1000, max_order_notional=10**9 * D, max_open_orders=100,
            credit_limit=10**9 * D, max_position=(("AAPL", 1000),)),
    Account(id=6, max_order_qty=1000, max_order_notional=10**9 * D, max_open_orders=100,
            credit_limit=10**9 * D, max_position=POS),
)
# session 2: at most 2 NewOrder/Modify at once, one more per ms
SESSIONS = (wire.SESSIONS[0], replace(wire.SESSIONS[1], throttle=Throttle(1000, 2)),
            wire.SESSIONS[2])


def config(**kw):
    return wire.config(**{"instruments": INSTRUMENTS, "accounts": ACCOUNTS,
                          "sessions": SESSIONS, **kw})


class Harness:
    """Sessions 1 and 2 logged in; one strategy message per call, at
    now_ns = T0 + the milliseconds passed so far."""

    def __init__(self, impl, cfg=None):
        self.core = impl(cfg or config())
        self.now = 1_638_247_400_000_000_000
        self.seq = {1: 1, 2: 1}
        self.vseq = {1: 1, 2: 1}
        self.refs: dict[int, int] = {}  # cl_ord_id -> its current UserRefNum
        self.pending: dict[int, int] = {}  # cl_ord_id -> a pending replace's UserRefNum
        for s in (1, 2):
            self.sp(s, login(s, 1))

    def run(self, frames):
        """One burst, 1 ms after the last; what it sent but heartbeats."""
        self.now += 1_000_000
        out = [decode_out(f) for f in self.core.process_burst(frames, self.now)]
        return [o for o in out if o["type"] != "Heartbeat"]

    def sp(self, session, msg):
        return self.run([wire.from_strategy(session, msg)])

    def app(self, session, build, *args, **kw):
        seq = self.seq[session]
        self.seq[session] += 1
        return self.sp(session, build(session, seq, *args, **kw))

    def new(self, cid, session=1, **kw):
        out = self.app(session, new_order, cid, **kw)
        if out and out[0]["type"] == "O":
            self.refs[cid] = out[0]["ref"]
        return out

    def venue(self, msg, venue=1):
        v = next(v for v in wire.VENUES if v.id == venue)
        s = self.vseq[venue]
        self.vseq[venue] += 1
        return self.run([wire.from_venue(venue, wire.ufo(v.session, s, msg))])

    def modify(self, cid, price, qty, session=1):
        out = self.app(session, modify, cid, price, qty)
        if out and out[0]["type"] == "U":
            self.pending[cid] = out[0]["ref"]
        return out

    def replaced(self, cid, qty):
        """The venue's Replaced of the pending replace."""
        out = self.venue(ouch_replaced(self.refs[cid], self.pending[cid], qty=qty))
        self.refs[cid] = self.pending.pop(cid)
        return out

    def accept(self, cid, venue=1):
        return self.venue(ouch_accepted(self.refs[cid]), venue)


def verdict(out) -> str | int:
    """'sent' when the order went to the venue, else the reject reason."""
    assert len(out) == 1, out
    if out[0]["to"] == "venue":
        return "sent"
    assert out[0]["type"] == "Rejected", out
    return out[0]["reason"]


# (order fields, expected: a REASON name or "sent"); each case in a fresh core
CASES = {
    "unknown_account": [({"account": 99}, "UNKNOWN_ACCOUNT"), ({"account": 6}, "sent")],
    "kill_switch": [({"account": 3}, "KILL_SWITCH"), ({"account": 6}, "sent")],
    "halted": [({"symbol": "HALT", "account": 6}, "SYMBOL_HALTED")],
    "restricted": [({"symbol": "RSTR", "account": 6}, "SYMBOL_RESTRICTED")],
    "venue": [({"symbol": "MSFT", "venue": 2, "account": 6}, "VENUE_NOT_ALLOWED"),
              ({"symbol": "MSFT", "venue": 1, "account": 6}, "sent"),
              ({"symbol": "MSFT", "venue": 0, "account": 6}, "sent")],
    "ord_type": [({"account": 2, "ord_type": 2, "tif": 2, "price": 0}, "ORD_TYPE_NOT_ALLOWED"),
                 ({"account": 2, "tif": 2}, "sent")],
    "tif": [({"account": 2, "tif": 1}, "TIF_NOT_ALLOWED"), ({"account": 2, "tif": 2}, "sent")],
    "no_position_limit": [({"symbol": "NOLIM", "account": 6}, "NO_POSITION_LIMIT"),
                          ({"symbol": "AAPL", "account": 6}, "sent")],
    "market_without_reference": [
        ({"symbol": "NOREF", "ord_type": 2, "tif": 2, "price": 0, "account": 6}, "PRICE_BAND"),
        ({"symbol": "NOREF", "account": 6}, "sent"),
        ({"symbol": "AAPL", "ord_type": 2, "tif": 2, "price": 0, "account": 6}, "sent")],
    "qty": [({"qty": 1010, "account": 6}, "QTY_LIMIT"), ({"qty": 1000, "account": 6}, "sent")],
    "lot": [({"qty": 15, "account": 6}, "LOT_SIZE"), ({"qty": 10, "account": 6}, "sent")],
    "tick": [({"price": px("150.2550"), "account": 6}, "TICK_SIZE"),
             ({"price": px("150.26"), "account": 6}, "sent")],
    "band_pct": [({"price": px("165.28"), "account": 6}, "PRICE_BAND"),
                 ({"price": px("135.22"), "account": 6}, "PRICE_BAND"),
                 ({"price": px("165.27"), "account": 6}, "sent"),
                 ({"price": px("135.23"), "account": 6}, "sent")],
    "band_abs": [({"symbol": "MSFT", "price": px("155.26"), "account": 6}, "PRICE_BAND"),
                 ({"symbol": "MSFT", "price": px("145.24"), "account": 6}, "PRICE_BAND"),
                 ({"symbol": "MSFT", "price": px("155.25"), "account": 6}, "sent"),
                 ({"symbol": "MSFT", "price": px("145.25"), "account": 6}, "sent")],
    "notional": [({"qty": 670, "account": 1}, "NOTIONAL_LIMIT"),
                 ({"qty": 660, "account": 1}, "sent")],
    "notional_market_at_reference": [
        ({"qty": 670, "ord_type": 2, "tif": 2, "price": 0, "account": 1}, "NOTIONAL_LIMIT"),
        ({"qty": 660, "ord_type": 2, "tif": 2, "price": 0, "account": 1}, "sent")],
    "open_orders": [({"account": 1}, "sent"), ({"account": 1}, "sent"),
                    ({"account": 1}, "sent"), ({"account": 1}, "OPEN_ORDERS_LIMIT")],
    "credit": [({"account": 4, "qty": 660}, "sent"), ({"account": 4, "qty": 660}, "sent"),
               ({"account": 4, "qty": 350}, "CREDIT_LIMIT"),
               ({"account": 4, "qty": 340}, "sent"),
               ({"account": 4, "qty": 10}, "CREDIT_LIMIT")],
    "position_buy": [({"account": 5, "qty": 600}, "sent"),
                     ({"account": 5, "qty": 410}, "POSITION_LIMIT"),
                     ({"account": 5, "qty": 400}, "sent"),
                     ({"account": 5, "qty": 10}, "POSITION_LIMIT"),
                     # the sell side is judged on its own
                     ({"account": 5, "qty": 1000, "side": 2}, "sent"),
                     ({"account": 5, "qty": 10, "side": 3, "flags": 2}, "POSITION_LIMIT")],
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_new_order_check(impl, case):
    h = Harness(impl)
    got = []
    for i, (fields, _want) in enumerate(CASES[case]):
        out = h.new(100 + i, **fields)
        v = verdict(out)
        got.append(v if v == "sent" else next(k for k, n in REASON.items() if n == v))
    assert got == [want for _, want in CASES[case]]


@pytest.mark.parametrize("impl", IMPLS)
def test_open_orders_free_up_when_an_order_ends(impl):
    h = Harness(impl)
    for cid in (1, 2, 3):
        assert verdict(h.new(cid, account=1)) == "sent"
    assert verdict(h.new(4, account=1)) == REASON["OPEN_ORDERS_LIMIT"]
    h.accept(1)
    h.venue(ouch_canceled(h.refs[1], 100))  # the venue cancels all of it
    assert h.core.account(1)["open_orders"] == 2
    assert verdict(h.new(5, account=1)) == "sent"


@pytest.mark.parametrize("impl", IMPLS)
def test_throttle_token_bucket(impl):
    h = Harness(impl)
    frames = [wire.from_strategy(2, new_order(2, s, s, account=6)) for s in (1, 2, 3)]
    out = h.run(frames)  # one burst: burst size 2
    assert [o["type"] for o in out] == ["O", "O", "Rejected"]
    assert out[2]["reason"] == REASON["THROTTLED"]
    # 1 ms later: exactly one more token
    out = h.run([wire.from_strategy(2, new_order(2, s, s, account=6)) for s in (4, 5)])
    assert [(o["type"], o.get("reason")) for o in out] == [("O", None),
                                                           ("Rejected", REASON["THROTTLED"])]
    # session 1 has no throttle
    h.run([wire.from_strategy(1, new_order(1, s, 10 + s, account=6)) for s in (1, 2, 3)])
    # a long pause refills to the burst, not beyond
    h.now += 10**9
    out = h.run([wire.from_strategy(2, new_order(2, s, s, account=6)) for s in (6, 7, 8)])
    assert [o["type"] for o in out] == ["O", "O", "Rejected"]
    assert h.core.stats()["reject_business"][REASON["THROTTLED"]] == 3


@pytest.mark.parametrize("impl", IMPLS)
def test_kill_switch_at_run_time_and_cancels_pass(impl):
    h = Harness(impl)
    assert verdict(h.new(1, account=6)) == "sent"
    h.accept(1)
    h.core.set_kill(6, True)
    assert verdict(h.new(2, account=6)) == REASON["KILL_SWITCH"]
    assert verdict(h.app(1, modify, 1, px("150.30"), 100)) == REASON["KILL_SWITCH"]
    out = h.app(1, cancel, 1)  # cancels always pass
    assert [o["type"] for o in out] == ["X"]
    assert verdict(h.app(1, cancel, 77)) == REASON["UNKNOWN_ORDER"]
    h.core.set_kill(6, False)
    assert verdict(h.new(3, account=6)) == "sent"


# Modify cases: an accepted order (fields), then a modify (price, qty) and the
# expected verdict; the order's account and symbol give the limits
MODIFY_CASES = {
    "lot": [((px("150.25"), 105), "LOT_SIZE"), ((px("150.25"), 110), "sent")],
    "tick": [((px("150.2501"), 100), "TICK_SIZE"), ((px("150.24"), 100), "sent")],
    "band": [((px("165.28"), 100), "PRICE_BAND"), ((px("165.27"), 100), "sent")],
    "qty": [((px("150.25"), 1010), "QTY_LIMIT"), ((px("150.25"), 1000), "sent")],
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", list(MODIFY_CASES))
def test_modify_check(impl, case):
    for (price, qty), want in MODIFY_CASES[case]:
        h = Harness(impl)
        assert verdict(h.new(1, account=6)) == "sent"
        h.accept(1)
        v = verdict(h.app(1, modify, 1, price, qty))
        assert v == (want if want == "sent" else REASON[want]), (price, qty)


@pytest.mark.parametrize("impl", IMPLS)
def test_modify_notional_credit_and_position_on_new_values(impl):
    h = Harness(impl)
    # account 1: per-order notional 99,165 = 660 x 150.25
    assert verdict(h.new(1, account=1, qty=100)) == "sent"
    h.accept(1)
    assert verdict(h.app(1, modify, 1, REF, 670)) == REASON["NOTIONAL_LIMIT"]
    assert verdict(h.app(1, modify, 1, REF, 660)) == "sent"
    # account 4: credit 250,000; 99,165 + 99,165 open, then 51,085 more fit exactly
    h = Harness(impl)
    for cid in (1, 2):
        assert verdict(h.new(cid, account=4, qty=660)) == "sent"
        h.accept(cid)
    assert verdict(h.new(3, account=4, qty=10)) == "sent"  # 1,502.50
    h.accept(3)
    # order 3 to 350 (52,587.50): +51,085 would be 250,917.50 > 250,000
    assert verdict(h.app(1, modify, 3, REF, 350)) == REASON["CREDIT_LIMIT"]
    # to 340 (51,085.00): +49,582.50 -> 249,415.00
    assert verdict(h.modify(3, REF, 340)) == "sent"
    assert h.core.account(4) == {"open_orders": 3, "open_notional": 249_415 * D}
    # a modify that lowers exposure always fits
    h.replaced(3, 340)
    assert h.core.account(4) == {"open_orders": 3, "open_notional": 249_415 * D}
    assert verdict(h.app(1, modify, 1, REF, 100)) == "sent"
    assert h.core.account(4) == {"open_orders": 3, "open_notional": 249_415 * D}
    # account 5: worst case 1,000 AAPL; buy 600 open, modify it to 1,000 ok, 1,010 not
    h = Harness(impl)
    assert verdict(h.new(1, account=5, qty=600)) == "sent"
    h.accept(1)
    assert verdict(h.app(1, modify, 1, REF, 1010)) == REASON["QTY_LIMIT"]
    assert verdict(h.new(2, account=5, qty=300)) == "sent"
    h.accept(2)
    assert verdict(h.app(1, modify, 1, REF, 710)) == REASON["POSITION_LIMIT"]
    assert verdict(h.app(1, modify, 1, REF, 700)) == "sent"


@pytest.mark.parametrize("impl", IMPLS)
def test_modify_throttled(impl):
    h = Harness(impl)
    assert verdict(h.new(1, session=2, account=6)) == "sent"
    h.accept(1)
    frames = [wire.from_strategy(2, modify(2, 2, 1, px("150.30"), 100)),
              wire.from_strategy(2, cancel(2, 3, 1)),
              wire.from_strategy(2, new_order(2, 4, 2, account=6)),
              wire.from_strategy(2, new_order(2, 5, 3, account=6))]
    h.now += 10**9  # full bucket: 2
    out = h.run(frames)
    # the modify takes a token, the cancel is rejected as pending (and takes
    # none), the first NewOrder the second token, the next is throttled
    assert [(o["type"], o.get("reason")) for o in out] == [
        ("U", None), ("Rejected", 13), ("O", None), ("Rejected", REASON["THROTTLED"])]


def views(core, account, symbol="AAPL"):
    return core.account(account), core.position(account, symbol)


@pytest.mark.parametrize("impl", IMPLS)
def test_accounting_through_the_lifecycle(impl):
    h = Harness(impl, config(orders=4))
    a = 6
    assert views(h.core, a) == ({"open_orders": 0, "open_notional": 0},
                                {"max_position": BIG, "position": 0, "open_buy": 0,
                                 "open_sell": 0})
    h.new(1, account=a, qty=100)                     # buy 100 @150.25
    h.new(2, account=a, qty=200, side=2)             # sell 200 @150.25
    h.new(3, account=a, qty=50, ord_type=2, tif=2, price=0)  # market buy at the ref
    assert views(h.core, a) == ({"open_orders": 3, "open_notional": REF * 350},
                                {"max_position": BIG, "position": 0, "open_buy": 150,
                                 "open_sell": 200})
    for cid in (1, 2, 3):
        h.accept(cid)
    h.venue(ouch_executed(h.refs[1], 40))            # buy fills 40
    h.venue(ouch_executed(h.refs[2], 200))           # sell fully filled
    h.venue(ouch_canceled(h.refs[3], 50, b"I"))      # IOC remainder expires
    assert views(h.core, a) == ({"open_orders": 1, "open_notional": REF * 60},
                                {"max_position": BIG, "position": -160, "open_buy": 60,
                                 "open_sell": 0})
    # modify order 1 to 300 total at 150.30: pending, holds the larger terms
    assert verdict(h.modify(1, px("150.30"), 300)) == "sent"
    p2 = px("150.30")
    assert views(h.core, a)[0] == {"open_orders": 1, "open_notional": p2 * 260}
    assert views(h.core, a)[1]["open_buy"] == 260
    # a fill overtakes the replace: leaves 50, the new terms 250
    h.venue(ouch_executed(h.refs[1], 10))
    assert views(h.core, a)[0]["open_notional"] == p2 * 250
    h.replaced(1, 300)
    assert views(h.core, a) == ({"open_orders": 1, "open_notional": p2 * 250},
                                {"max_position": BIG, "position": -150, "open_buy": 250,
                                 "open_sell": 0})
    # a modify down, rejected by the venue: back to the old terms
    assert verdict(h.modify(1, px("150.30"), 100)) == "sent"
    assert views(h.core, a)[0]["open_notional"] == p2 * 250
    h.venue(ouch_rejected(h.pending.pop(1)))
    assert views(h.core, a)[0]["open_notional"] == p2 * 250
    # a partial cancel by the venue, then a new order the venue rejects
    h.venue(ouch_canceled(h.refs[1], 50, b"Z"))
    h.new(4, account=a, qty=10)
    assert views(h.core, a)[0] == {"open_orders": 2, "open_notional": p2 * 200 + REF * 10}
    h.venue(ouch_rejected(h.refs[4]))
    assert views(h.core, a)[0] == {"open_orders": 1, "open_notional": p2 * 200}
    # evictions (4 slots, 3 terminal): the filled position stays
    for cid in (5, 6, 7):
        h.new(cid, account=a, qty=10)
    st = h.core.stats()["event"]
    assert st["ORDERS_EVICTED"] == 3
    assert views(h.core, a) == ({"open_orders": 4, "open_notional": p2 * 200 + REF * 30},
                                {"max_position": BIG, "position": -150, "open_buy": 230,
                                 "open_sell": 0})
    if isinstance(h.core, ReferenceCore):
        h.core.check_accounting()


@pytest.mark.parametrize("impl", IMPLS)
def test_risk_rejects_change_nothing(impl):
    h = Harness(impl)
    before = views(h.core, 5)
    assert verdict(h.new(1, account=5, qty=1010)) == REASON["QTY_LIMIT"]
    assert h.core.order(1, 1) is None
    assert views(h.core, 5) == before
    # the id was not taken: it can be used again
    assert verdict(h.new(1, account=5, qty=100)) == "sent"


def test_config_from_yaml_reaches_both():
    """The YAML loader turns decimals into the fixed-point integers above."""
    from control.config import load_config_text

    text = open(wire.__file__.replace("wire.py", "../control/default_config.yaml")).read()
    text = text.replace("  - {symbol: AAPL, reference_price: 150.00}",
                        "  - {symbol: AAPL, reference_price: 150.25, tick_size: 0.01,"
                        " lot_size: 10, price_band_pct: 10}")
    cfg = load_config_text(text)
    aapl = cfg.instruments[0]
    assert (aapl.reference_price, aapl.tick_size, aapl.lot_size, aapl.price_band_pct) == \
        (REF, px("0.01"), 10, 10 * D)
    assert cfg.accounts[0].max_order_notional == 90_000_000_000 * D


@pytest.mark.parametrize("impl", IMPLS)
def test_a_session_trades_only_the_accounts_it_lists(impl):
    """R2a: sessions[].accounts (docs/semantics.md); none listed: any."""
    sessions = (replace(SESSIONS[0], accounts=(1, 6)),) + SESSIONS[1:]
    h = Harness(impl, config(sessions=sessions))
    assert verdict(h.new(1, account=5)) == 32  # ACCOUNT_NOT_PERMITTED
    assert verdict(h.new(2, account=6)) == "sent"
    assert verdict(h.new(3, account=99)) == REASON["UNKNOWN_ACCOUNT"]  # R2 first
    assert verdict(h.new(4, session=2, account=5)) == "sent"  # session 2 lists none
    # a reload changes what it may trade
    h.core.reload(config(sessions=(replace(SESSIONS[0], accounts=(5,)),) + SESSIONS[1:]))
    assert verdict(h.new(5, account=5)) == "sent"
    assert verdict(h.new(6, account=6)) == 32
