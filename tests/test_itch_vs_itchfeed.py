"""The ITCH 5.0 decoding agrees with an independent parser from PyPI
(itchfeed) on the same bytes, both ways: messages built with the project's
layers read the same through itchfeed, messages itchfeed builds read the
same through the layers, and the C feed prices an itchfeed-built add
exactly."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itch.messages import create_message
from itch.messages import messages as ITCHFEED

from dataplane.feed import Feed
from pcaps.itch_layers import ITCH_CLASSES, decode_itch, itch_message, mold_packet

HEADER = ("type", "locate", "tracking", "timestamp")
THEIR_HEADER = ("stock_locate", "tracking_number", "timestamp")


def ours(raw: bytes) -> list:
    d = decode_itch(raw)
    return [d["locate"], d["tracking"], d["timestamp"]] + [
        v.encode() if isinstance(v, str) else v for k, v in d.items() if k not in HEADER]


def theirs(raw: bytes) -> list:
    m = ITCHFEED[raw[:1]](raw)
    v = vars(m)
    rest = [x.rstrip(b" ") if isinstance(x, bytes) else x for k, x in v.items()
            if k not in THEIR_HEADER]
    return [v["stock_locate"], v["tracking_number"], v["timestamp"]] + rest


def _value(f, draw):
    """A random value that fits field f (Alpha: letters and digits)."""
    if hasattr(f, "length_from"):
        n = f.length_from(None)
        return draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=n))
    bits = f.size if hasattr(f, "size") else f.sz * 8
    return draw(st.integers(0, (1 << bits) - 1))


@st.composite
def any_message(draw):
    code = draw(st.sampled_from(sorted(ITCH_CLASSES)))
    fields = {f.name: _value(f, draw) for f in ITCH_CLASSES[code].fields_desc
              if f.name != "type"}
    return itch_message(code, **fields)


@settings(max_examples=300, deadline=None)
@given(raw=any_message())
def test_layers_and_itchfeed_read_the_same_fields(raw):
    assert len(raw) == ITCHFEED[raw[:1]].message_size
    assert ours(raw) == theirs(raw)


@pytest.mark.parametrize("code", sorted(ITCH_CLASSES))
def test_messages_itchfeed_builds_decode_the_same(code):
    cls = ITCHFEED[code.encode()]
    blank = cls(code.encode() + bytes(cls.message_size - 1))
    kwargs = {k: (7 if isinstance(v, int) else b"Z" * len(v)) for k, v in vars(blank).items()}
    kwargs["timestamp"] = 0x123456789A
    raw = create_message(code.encode(), **kwargs).to_bytes()
    assert ours(raw) == theirs(raw)


def test_c_feed_prices_an_itchfeed_add_exactly():
    f = Feed()
    f.subscribe("AAPL", 0)
    directory = itch_message("R", locate=5, stock="AAPL")
    add = create_message(b"A", stock_locate=5, tracking_number=0, timestamp=1,
                         order_reference_number=9, buy_sell_indicator=b"B", shares=300,
                         stock=b"AAPL    ", price=1999999999).to_bytes()
    f.process_packet(mold_packet("S1", 1, [directory, add]), 1)
    t = f.tob(0)
    assert (t["bid_px"], t["bid_qty"]) == (1_999_999_999 * 10_000, 300)
