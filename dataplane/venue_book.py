"""The venue simulator's order book: price-time priority per symbol, the
appliance's orders and synthetic liquidity in one book
(:mod:`dataplane.venue_sim`; the hidden-behaviour process of
:mod:`dataplane.venue_flow` works on the same objects)."""
from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field

MARKET_PRICE = 0x7FFFFFFF


@dataclass(eq=False)
class _Order:
    symbol: str
    side: str  # B, S, T, E
    price: int
    leaves: int
    prio: int
    synthetic: bool = False
    ref: int = 0
    qty: int = 0  # total shares of the chain, executions included
    executed: int = 0
    tif: bytes = b"0"
    display: bytes = b"Y"
    capacity: bytes = b"A"
    iso: bytes = b"N"
    cross: bytes = b"N"
    clordid: bytes = b" " * 14
    order_ref_num: int = 0
    # hidden behaviour (venue profiles); the defaults change nothing
    hidden: int = 0  # iceberg reserve behind the displayed leaves
    peak: int = 0  # iceberg display size on each reload
    dark: bool = False  # rests and trades, never shown on the feed
    md_ref: int = 0  # ITCH order reference while shown on the feed; 0: not shown
    # the true-fill-probability log (evaluation only)
    p_true: float = -1.0
    entry_ts: int = -1
    first_fill_ts: int = -1

    @property
    def is_buy(self) -> bool:
        return self.side == "B"

    def sort_key(self) -> int:
        return self.prio

    def __lt__(self, other: _Order) -> bool:
        return self.prio < other.prio


@dataclass
class _Book:
    bids: dict[int, list[_Order]] = field(default_factory=dict)
    asks: dict[int, list[_Order]] = field(default_factory=dict)

    def _side(self, buy: bool) -> dict[int, list[_Order]]:
        return self.bids if buy else self.asks

    def add(self, o: _Order) -> None:
        insort(self._side(o.is_buy).setdefault(o.price, []), o)

    def remove(self, o: _Order) -> None:
        side = self._side(o.is_buy)
        level = side[o.price]
        level.remove(o)
        if not level:
            del side[o.price]

    def best_contra(self, buy: bool, limit: int) -> _Order | None:
        """The first order in priority that an aggressor (buy or sell) with
        this limit would trade against, or None."""
        contra = self._side(not buy)
        if not contra:
            return None
        price = min(contra) if buy else max(contra)
        if limit != MARKET_PRICE and (price > limit if buy else price < limit):
            return None
        return contra[price][0]

    def snapshot(self) -> dict[str, list[tuple[int, int]]]:
        def agg(side: dict[int, list[_Order]], rev: bool) -> list[tuple[int, int]]:
            return [(p, sum(o.leaves for o in side[p])) for p in sorted(side, reverse=rev)]

        return {"bids": agg(self.bids, True), "asks": agg(self.asks, False)}
