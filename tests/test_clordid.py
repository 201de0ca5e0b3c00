"""The ClOrdID the core writes into OUCH Enter Order (cdefs/encode.c
put_clordid) against the reference's base 36 (pcaps/layers.py clordid), at
every digit-count boundary and across the 32-bit split of the division."""
from __future__ import annotations

import wire
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplane.core import Core
from dataplane.frames import blocks
from pcaps import layers as L

EDGES = sorted({0, 1, 35, 2**32 - 1, 2**32, 2**64 - 1}
               | {36**k + d for k in range(1, 13) for d in (-1, 0)})
OFF_CLORDID = 31  # type, ref, side, qty, symbol, price, tif, display, capacity, iso, cross


def entered_clordids(ids: list[int]) -> list[bytes]:
    core = Core(wire.config())
    msgs = [wire.login(1)] + [wire.new_order(1, i + 1, cid) for i, cid in enumerate(ids)]
    out = []
    for f in core.process_burst([wire.from_strategy(1, m) for m in msgs], 10**9):
        payload = f[42:]
        if int.from_bytes(f[36:38], "big") != wire.APPLIANCE.strategy_port:  # to a venue
            count = int.from_bytes(payload[L.UFO_HEADER_LEN - 2:L.UFO_HEADER_LEN], "big")
            for m in blocks(payload, L.UFO_HEADER_LEN, count):
                if m[:1] == b"O":
                    out.append(m[OFF_CLORDID:OFF_CLORDID + L.OUCH_CLORDID_LEN])
    return out


def test_edges():
    assert entered_clordids(EDGES) == [L.clordid(i) for i in EDGES]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=8, unique=True))
def test_random_ids(ids):
    assert entered_clordids(ids) == [L.clordid(i) for i in ids]
