"""The ITCH 5.0 decoding and books agree with a second independent parser
from PyPI, meatpy (issue 6 item 8; the first is itchfeed,
tests/test_itch_vs_itchfeed.py): every message type the feed implements,
with random fields, reads the same through the project's layers and
meatpy's ITCH 5.0 messages, and meatpy writes back the very bytes it read;
and the C feed's book for a symbol, after a random stream of adds,
executions, cancels, deletes and replaces, has the same levels as meatpy's
limit order book built from the same messages."""
from __future__ import annotations

import datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from meatpy.itch50.itch50_market_message import ITCH50MarketMessage
from meatpy.itch50.itch50_market_processor import ITCH50MarketProcessor
from test_itch_vs_itchfeed import any_message, ours

from dataplane.feed import Feed
from pcaps.itch_layers import itch_message, mold_packet

THEIR_HEADER = ("stock_locate", "tracking_number", "timestamp")


def theirs(raw: bytes) -> list:
    m = ITCH50MarketMessage.from_bytes(raw)
    v = vars(m)
    rest = [x.rstrip(b" ") if isinstance(x, bytes) else x for k, x in v.items()
            if k not in THEIR_HEADER]
    return [v["stock_locate"], v["tracking_number"], v["timestamp"]] + rest


@settings(max_examples=300, deadline=None)
@given(raw=any_message())
def test_layers_and_meatpy_read_the_same_fields(raw):
    assert ours(raw) == theirs(raw)
    assert ITCH50MarketMessage.from_bytes(raw).to_bytes() == raw


BIDS, ASKS = (1_490_000, 1_499_999), (1_500_000, 1_510_000)  # never crossed


@st.composite
def order_stream(draw):
    """Valid order events for AAPL, as a venue matching by price and time
    would publish them: executions take the order first in line at the
    best price of a side; cancels, deletes and replaces any resting order
    (a replaced order goes to the back of its new level); no event takes
    more shares than the order has."""
    side_of: dict[int, str] = {}
    shares_of: dict[int, int] = {}
    price_of: dict[int, int] = {}
    next_ref, ts, out = 1, 1_000_000, []

    def first_in_line(side: str) -> int | None:
        refs = [r for r in side_of if side_of[r] == side]  # dicts keep arrival order
        if not refs:
            return None
        best = (max if side == "B" else min)(price_of[r] for r in refs)
        return next(r for r in refs if price_of[r] == best)

    def price(side: str) -> int:
        return draw(st.integers(*(BIDS if side == "B" else ASKS)))

    for _ in range(draw(st.integers(20, 120))):
        ts += draw(st.integers(1, 10_000))
        kind = draw(st.sampled_from("AAAFECXDU")) if side_of else "A"
        hdr = {"locate": 1, "timestamp": ts}
        if kind in "AF":
            side = draw(st.sampled_from("BS"))
            n = draw(st.integers(1, 5000))
            px = price(side)
            out.append(itch_message(kind, **hdr, ref=next_ref, side=side, shares=n,
                                    stock="AAPL", price=px))
            side_of[next_ref], shares_of[next_ref], price_of[next_ref] = side, n, px
            next_ref += 1
            continue
        if kind in "EC":
            ref = first_in_line(draw(st.sampled_from("BS")))
            if ref is None:
                continue
        else:
            ref = draw(st.sampled_from(sorted(side_of)))
        if kind == "D":
            out.append(itch_message("D", **hdr, ref=ref))
            shares_of[ref] = 0
        elif kind == "U":
            n, px = draw(st.integers(1, 5000)), price(side_of[ref])
            out.append(itch_message("U", **hdr, orig_ref=ref, new_ref=next_ref, shares=n,
                                    price=px))
            side_of[next_ref], shares_of[next_ref], price_of[next_ref] = side_of[ref], n, px
            next_ref += 1
            shares_of[ref] = 0
        else:
            n = draw(st.integers(1, shares_of[ref]))
            if kind == "E":
                out.append(itch_message("E", **hdr, ref=ref, shares=n, match=ts))
            elif kind == "C":
                out.append(itch_message("C", **hdr, ref=ref, shares=n, match=ts,
                                        printable=draw(st.sampled_from("YN")),
                                        price=price_of[ref]))
            else:
                out.append(itch_message("X", **hdr, ref=ref, shares=n))
            shares_of[ref] -= n
        if shares_of[ref] == 0:
            del side_of[ref], shares_of[ref], price_of[ref]
    return out


def their_levels(lob, side: str) -> list[tuple[int, int]]:
    levels = lob.bid_levels if side == "B" else lob.ask_levels
    return [(lv.price * 10_000, lv.volume) for lv in levels if lv.volume]


@settings(max_examples=40, deadline=None)
@given(msgs=order_stream())
def test_books_agree_with_meatpy(msgs):
    f = Feed()
    f.subscribe("AAPL", 0)
    proc = ITCH50MarketProcessor("AAPL", datetime.datetime(2026, 1, 2))
    head = [itch_message("S", code="O", timestamp=1),
            itch_message("R", locate=1, stock="AAPL", timestamp=2)]
    f.process_packet(mold_packet("MEATPY0001", 1, head), 0)
    for raw in head:
        proc.process_message(ITCH50MarketMessage.from_bytes(raw))
    for seq, raw in enumerate(msgs, start=len(head) + 1):
        f.process_packet(mold_packet("MEATPY0001", seq, [raw]), 0)
        proc.process_message(ITCH50MarketMessage.from_bytes(raw))
        lob = proc.current_lob
        t = f.tob(0)
        bid = their_levels(lob, "B")[:1] if lob else []
        ask = their_levels(lob, "S")[:1] if lob else []
        assert [(t["bid_px"], t["bid_qty"])] == (bid or [(0, 0)]), raw
        assert [(t["ask_px"], t["ask_qty"])] == (ask or [(0, 0)]), raw
    assert f.drops() == {}
    for side in "BS":
        assert [(px, qty) for px, qty, _ in f.levels(0, side)] == \
            (their_levels(proc.current_lob, side) if proc.current_lob else [])
