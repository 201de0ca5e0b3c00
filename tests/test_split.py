"""Orders split across venues by the smart router (docs/semantics.md
"Splitting across venues"): scripted quote scenarios - the best venue
short, every venue short (the remainder rule), a stale venue and a limit
that leave venues out, a cancel, partial fills across children, a venue's
reject of one child or of all, a cancel reject, a Modify, a full table -
each run through the C core with the C feed handler and through the
reference model with the reference book (test_sor.both: frames, counters,
decisions and venue health must agree), and checked against the document:
what goes to each venue, what the strategy sees, the parent's state and
the risk accounting."""
from __future__ import annotations

from dataclasses import replace

import wire
from test_sor import CHOSEN, MS, STALE, THROUGH_LIMIT, WORSE, Rig, both, enters, px, whys
from test_sor import config as sor_config
from wire import (
    cancel,
    from_strategy,
    modify,
    ouch_accepted,
    ouch_cancel_reject,
    ouch_canceled,
    ouch_executed,
    ouch_rejected,
)
from wire import decode_sp_out as sp

from control.config import SOR, Routing
from dataplane.core import Core
from dataplane.reference_model import ReferenceCore
from pcaps.itch_layers import itch_message as M

SPLIT = 12
SPLIT_ORDER, VENUE_REJECTED, SYS_TABLE_FULL = 34, 14, 1000
PENDING_NEW, NEW, PARTIALLY_FILLED, FILLED, PENDING_CANCEL, CANCELED, REJECTED = \
    1, 2, 3, 4, 7, 8, 9
CXL_USER, CXL_VENUE = 1, 3
NEW_ORDER, CANCEL = 0x10, 0x12

BOOKS = {  # bid px, bid qty, ask px, ask qty: asks 150.26 x 100, 150.27 x 200, 150.28 x 500
    1: {"AAPL": ("150.20", 300, "150.26", 100)},
    2: {"AAPL": ("150.22", 200, "150.27", 200)},
    3: {"AAPL": ("150.21", 500, "150.28", 500)},
}


def config(split: int = 3, **kw):
    return sor_config(routing=Routing(default_venue=SOR, split_max_children=split), **kw)


def to_strategy(frames: list[bytes]) -> list[dict]:
    return [sp(f) for f in frames if f[34:36] == wire.APPLIANCE.strategy_port.to_bytes(2, "big")]


def split_order(rig: Rig, qty: int = 400, price: str = "150.30", cl_ord_id: int = 1):
    """The books open, then one buy routed by the router."""
    for v, book in BOOKS.items():
        rig.open(v, 2 * MS, book)
    return rig.order(cl_ord_id, 3 * MS, price=px(price), qty=qty, side=1)


class Strategy:
    """The strategy's further messages on the rig's session 1."""

    def __init__(self, rig: Rig):
        self.rig = rig

    def send(self, msg_fn, *args, now: int) -> list[bytes]:
        out = self.rig.burst([from_strategy(1, msg_fn(1, self.rig.sp_seq, *args))], now)
        self.rig.sp_seq += 1
        return out


def test_best_venue_short_splits_in_ranking_order_each_at_what_it_shows():
    def script(rig):
        return enters(split_order(rig)), rig.core.order(1, 1), rig.core.order_children(1, 1)

    rig, (sent, parent, children) = both(config(), script)
    # 150.26 x 100 at venue 1, 150.27 x 200 at venue 2, the rest (100) at 150.28
    assert sent == [(1, 1, 100), (2, 1, 200), (3, 1, 100)]
    assert (parent["state"], parent["qty"], parent["leaves_qty"], parent["venue"],
            parent["ref"], parent["children"]) == (PENDING_NEW, 400, 400, 1, 0, 3)
    assert [(c["venue"], c["ref"], c["qty"], c["state"], c["cl_ord_id"]) for c in children] == [
        (1, 1, 100, PENDING_NEW, 1), (2, 1, 200, PENDING_NEW, 1), (3, 1, 100, PENDING_NEW, 1)]
    d = rig.core.route_decisions()[0]
    assert d["venue"] == 1 and d["children"] == 3
    assert whys(d) == {1: CHOSEN, 2: SPLIT, 3: SPLIT}
    assert [s["alloc"] for s in d["seen"]] == [100, 200, 100]
    # one order for the risk checks, whatever its children
    assert rig.core.account(1)["open_orders"] == 1
    assert rig.core.position(1, "AAPL")["open_buy"] == 400
    assert rig.core.live_orders() == 4
    assert rig.core.stats()["event"]["ORDERS_ROUTED"] == 1


def test_an_order_the_best_venue_fills_whole_is_not_split():
    def script(rig):
        return enters(split_order(rig, qty=100)), rig.core.order(1, 1)["children"]

    rig, (sent, children) = both(config(), script)
    assert sent == [(1, 1, 100)] and children == 0
    d = rig.core.route_decisions()[0]
    assert d["children"] == 0 and [s["alloc"] for s in d["seen"]] == [100, 0, 0]


def test_what_no_venue_shows_goes_to_the_best_and_children_are_bounded():
    def script(rig):
        return enters(split_order(rig, qty=1000))

    # together they show 800: the best takes its 100 and the 200 no one shows
    rig, sent = both(config(3), script)
    assert sent == [(1, 1, 300), (2, 1, 200), (3, 1, 500)]
    # two children at most: venue 3 gets none, venue 1 the remainder
    rig, sent = both(config(2), script)
    assert sent == [(1, 1, 800), (2, 1, 200)]
    assert whys(rig.core.route_decisions()[0]) == {1: CHOSEN, 2: SPLIT, 3: WORSE}


def test_stale_venues_and_prices_beyond_the_limit_take_no_child():
    def stale(rig):
        for v, book in BOOKS.items():
            rig.open(v, 2 * MS, book)
        # venue 2 loses a packet: its book is stale (no retransmission server)
        rig.quote(2, [M("A", locate=1, ref=90, side="S", shares=10, price="150.29")],
                  2 * MS, lose=True)
        rig.quote(2, [M("A", locate=1, ref=91, side="S", shares=10, price="150.29")], 2 * MS)
        return enters(rig.order(1, 3 * MS, price=px("150.30"), qty=400, side=1))

    rig, sent = both(config(), stale)
    assert sent == [(1, 1, 100), (3, 1, 300)]
    assert whys(rig.core.route_decisions()[0]) == {1: CHOSEN, 2: STALE, 3: SPLIT}

    def limited(rig):
        return enters(split_order(rig, price="150.27"))

    rig, sent = both(config(), limited)
    assert sent == [(1, 1, 200), (2, 1, 200)]  # 150.28 is beyond the limit
    assert whys(rig.core.route_decisions()[0]) == {1: CHOSEN, 2: SPLIT, 3: THROUGH_LIMIT}


def test_fills_across_children_aggregate_into_the_parent():
    def script(rig):
        split_order(rig)
        out = rig.answer(2, ouch_accepted(1, qty=200), 4 * MS)
        out += rig.answer(1, ouch_accepted(1), 4 * MS)
        out += rig.answer(2, ouch_executed(1, 50, price=150_2700, match=7), 5 * MS)
        out += rig.answer(1, ouch_executed(1, 100, price=150_2600, match=8), 5 * MS)
        mid = rig.core.order(1, 1)
        out += rig.answer(3, ouch_executed(1, 100, price=150_2800, match=9), 6 * MS)
        out += rig.answer(2, ouch_executed(1, 150, price=150_2700, match=10), 6 * MS)
        return to_strategy(out), mid, rig.core.order(1, 1)

    rig, (msgs, mid, end) = both(config(), script)
    # the first child's acceptance is the parent's; the others are silent
    assert [(m["type"], m.get("qty"), m.get("venue")) for m in msgs[:1]] == [
        ("Accepted", 400, 1)]
    fills = [(m["last_qty"], m["last_price"], m["cum_qty"], m["leaves_qty"], m["match_number"])
             for m in msgs if m["type"] == "Fill"]
    assert fills == [(50, px("150.27"), 50, 350, 7), (100, px("150.26"), 150, 250, 8),
                     (100, px("150.28"), 250, 150, 9), (150, px("150.27"), 400, 0, 10)]
    assert len(msgs) == 5
    assert (mid["state"], mid["cum_qty"], mid["leaves_qty"]) == (PARTIALLY_FILLED, 150, 250)
    assert (end["state"], end["cum_qty"], end["leaves_qty"]) == (FILLED, 400, 0)
    assert [c["state"] for c in rig.core.order_children(1, 1)] == [FILLED] * 3
    assert rig.core.position(1, "AAPL")["position"] == 400
    assert rig.core.account(1)["open_orders"] == 0 and rig.core.live_orders() == 0


def test_a_cancel_cancels_every_live_child_and_ends_with_the_last():
    def script(rig):
        split_order(rig)
        rig.answer(1, ouch_accepted(1), 4 * MS)
        rig.answer(1, ouch_executed(1, 100), 4 * MS)  # child 1 filled
        out = Strategy(rig).send(cancel, 1, now=5 * MS)
        sent = [(f[30:34], f[42 + 22:42 + 23]) for f in out]
        pending = rig.core.order(1, 1)["state"]
        msgs = to_strategy(rig.answer(2, ouch_canceled(1, 200), 6 * MS))
        msgs += to_strategy(rig.answer(3, ouch_canceled(1, 100), 6 * MS))
        return sent, pending, msgs, rig.core.order(1, 1)

    rig, (sent, pending, msgs, end) = both(config(), script)
    # Cancel Orders to the two live children only (venues 2 and 3)
    assert sent == [(bytes([10, 10, 2, 2]), b"X"), (bytes([10, 10, 2, 3]), b"X")]
    assert pending == PENDING_CANCEL
    assert [(m["type"], m["canceled_qty"], m["leaves_qty"], m["reason"]) for m in msgs] == [
        ("Canceled", 200, 100, CXL_USER), ("Canceled", 100, 0, CXL_USER)]
    assert (end["state"], end["cum_qty"], end["leaves_qty"]) == (CANCELED, 100, 0)
    assert rig.core.account(1) == {"open_orders": 0, "open_notional": 0}


def test_a_venue_reject_of_one_child_reduces_the_parent_of_all_rejects_it():
    def one(rig):
        split_order(rig)
        msgs = to_strategy(rig.answer(3, ouch_rejected(1), 4 * MS))
        return msgs, rig.core.order(1, 1)

    rig, (msgs, parent) = both(config(), one)
    assert [(m["type"], m["canceled_qty"], m["leaves_qty"], m["reason"]) for m in msgs] == [
        ("Canceled", 100, 300, CXL_VENUE)]
    assert (parent["state"], parent["leaves_qty"]) == (PENDING_NEW, 300)
    assert rig.core.position(1, "AAPL")["open_buy"] == 300

    def every(rig):
        split_order(rig)
        msgs = []
        for v in (1, 2, 3):
            msgs += to_strategy(rig.answer(v, ouch_rejected(1, reason=0x41), 4 * MS))
        return msgs, rig.core.order(1, 1)

    rig, (msgs, parent) = both(config(), every)
    assert [(m["type"], m.get("canceled_qty"), m.get("reason")) for m in msgs[:2]] == [
        ("Canceled", 100, CXL_VENUE), ("Canceled", 200, CXL_VENUE)]
    assert [(m["type"], m["reason"], m["ref_type"], m["venue_code"]) for m in msgs[2:]] == [
        ("Rejected", VENUE_REJECTED, NEW_ORDER, 0x41)]
    assert parent["state"] == REJECTED
    assert rig.core.account(1)["open_orders"] == 0


def test_a_cancel_reject_of_a_child_answers_the_cancel_once():
    def script(rig):
        split_order(rig)
        for v in (1, 2, 3):
            rig.answer(v, ouch_accepted(1), 4 * MS)
        Strategy(rig).send(cancel, 1, now=5 * MS)
        msgs = to_strategy(rig.answer(1, ouch_cancel_reject(1), 6 * MS))
        msgs += to_strategy(rig.answer(2, ouch_cancel_reject(1), 6 * MS))
        msgs += to_strategy(rig.answer(3, ouch_canceled(1, 100), 6 * MS))
        return msgs, rig.core.order(1, 1), [c["state"] for c in rig.core.order_children(1, 1)]

    rig, (msgs, parent, children) = both(config(), script)
    assert [(m["type"], m.get("ref_type"), m.get("canceled_qty")) for m in msgs] == [
        ("Rejected", CANCEL, None), ("Canceled", None, 100)]
    assert (parent["state"], parent["leaves_qty"]) == (NEW, 300)
    assert children == [NEW, NEW, CANCELED]


def test_a_modify_of_a_split_order_is_rejected():
    def script(rig):
        split_order(rig)
        rig.answer(1, ouch_accepted(1), 4 * MS)
        out = Strategy(rig).send(modify, 1, px("150.25"), 300, now=5 * MS)
        return to_strategy(out), enters(out), len(out)

    rig, (msgs, sent, n) = both(config(), script)
    assert [(m["type"], m["reason"]) for m in msgs] == [("Rejected", SPLIT_ORDER)]
    assert sent == [] and n == 1


def test_a_split_needs_a_slot_for_each_child():
    def script(rig):
        return to_strategy(split_order(rig)), rig.core.live_orders()

    cfg = replace(config(), tables=replace(wire.config(orders=3).tables))
    rig, (msgs, live) = both(cfg, script)
    assert [(m["type"], m["reason"]) for m in msgs] == [("Rejected", SYS_TABLE_FULL)]
    assert live == 0
    cfg = replace(config(), tables=replace(wire.config(orders=4).tables))
    rig, (msgs, live) = both(cfg, script)
    assert msgs == [] and live == 4


def test_children_evicted_once_terminal_leave_the_parent_whole():
    """A 4-slot table: the filled children are evicted by the next orders;
    the parent, still live, is canceled through its one live child."""
    def script(rig):
        split_order(rig)
        rig.answer(1, ouch_executed(1, 100), 4 * MS)
        rig.answer(2, ouch_executed(1, 200), 4 * MS)
        out = rig.order(2, 5 * MS, price=px("150.30"), qty=100, side=1, venue=1)
        out += rig.order(3, 5 * MS, price=px("150.30"), qty=100, side=1, venue=2)
        evicted = rig.core.stats()["event"].get("ORDERS_EVICTED", 0)
        out = Strategy(rig).send(cancel, 1, now=6 * MS)
        return evicted, enters(out), [(f[30:34], f[64:65]) for f in out], \
            [c["venue"] for c in rig.core.order_children(1, 1)]

    cfg = replace(config(), tables=replace(wire.config(orders=4).tables))
    rig, (evicted, _, sent, children) = both(cfg, script)
    assert evicted == 2
    assert sent == [(bytes([10, 10, 2, 3]), b"X")]
    assert children == [3]


def test_the_replay_report_explains_the_split():
    from dataplane.replay import route_line

    rig = Rig(Core, config())
    rig.burst([from_strategy(1, wire.login(1))], 1 * MS)
    split_order(rig)
    line = route_line(rig.core.route_decisions()[0])
    assert line["reason"].endswith(
        "; split into 3 (best shows 100 of 400): 100 to 1 at 150.2600 (shows 100), "
        "200 to 2 at 150.2700 (shows 200), 100 to 3 at 150.2800 (shows 500)")
    assert [(s["verdict"], s["sent"]) for s in line["seen"]] == [
        ("chosen", 100), ("split", 200), ("split", 100)]


def test_without_split_configured_the_whole_order_goes_to_the_best():
    rig = Rig(ReferenceCore, config(split=1))
    rig.burst([from_strategy(1, wire.login(1))], 1 * MS)
    assert enters(split_order(rig)) == [(1, 1, 400)]
