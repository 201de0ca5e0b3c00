"""Hidden behaviour of a simulated venue (issue 9 item 1): other
participants' order flow, icebergs, non-displayed orders and fading quotes,
per symbol, as one seeded Markov jump process over the venue's book
(:mod:`dataplane.venue_profiles` holds the frozen parameters,
docs/venue-sim.md "Hidden behaviour" the rules).

The same functions move the simulator's real book and the copies the
true-fill-probability estimate runs on (:func:`true_fill_probability`), so
the estimate is a Monte Carlo over the venue's own process, not over a
model of it.  What an event does to the outside world (OUCH executions to
the appliance, ITCH messages) is the caller's, through a context object:

    ctx.take_prio() -> int               a new time priority
    ctx.traded(resting, qty, ts)         ``resting`` traded qty (and must
                                         lower its leaves by qty)
    ctx.gone(order)                      an order left the book, all traded
    ctx.shown(order, ts)                 an order (or an iceberg's reload)
                                         joined the book
    ctx.pulled(order, ts)                a synthetic order was cancelled
"""
from __future__ import annotations

import math
import random

from dataplane.venue_book import MARKET_PRICE, _Book, _Order
from dataplane.venue_profiles import LOT, VenueProfile


class SymbolFlow:
    """One symbol's process: its generator, next event time and anchor."""

    def __init__(self, profile: VenueProfile, symbol: str, ref: int, tick: int,
                 seed: int) -> None:
        self.profile = profile
        self.symbol = symbol
        self.ref = ref
        self.tick = tick
        self.rng = random.Random(f"flow:{seed}:{symbol}")
        self.next_ns: int | None = None

    def redraw(self, book: _Book, now_ns: int) -> None:
        """Next event time from now (exact for a Markov process whenever the
        book, and so the cancel rate, has changed)."""
        self.next_ns = now_ns + _wait_ns(self.profile, book, self.rng)


def synthetic_orders(book: _Book) -> list[_Order]:
    out = []
    for side, rev in ((book.bids, True), (book.asks, False)):
        for p in sorted(side, reverse=rev):
            out.extend(o for o in side[p] if o.synthetic)
    return out


def _rate(p: VenueProfile, n_synthetic: int) -> float:
    return p.mkt_rate_hz + p.add_rate_hz + p.cancel_hazard_hz * n_synthetic


def _wait_ns(p: VenueProfile, book: _Book, rng: random.Random) -> int:
    rate = _rate(p, len(synthetic_orders(book)))
    if rate <= 0:
        return 1 << 62
    return max(1, int(rng.expovariate(rate) * 1e9))


def _lots_geometric(mean: float, rng: random.Random) -> int:
    if mean <= 1:
        return 1
    return 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - 1.0 / mean))


def take(book: _Book, buy: bool, limit: int, qty: int, ctx, ts: int) -> int:
    """An aggressor trading in price-time priority up to ``limit``; returns
    the shares filled.  An iceberg whose display is taken reloads at the
    back of its level."""
    filled = 0
    while filled < qty:
        r = book.best_contra(buy, limit)
        if r is None:
            break
        q = min(qty - filled, r.leaves)
        ctx.traded(r, q, ts)
        filled += q
        if r.leaves == 0:
            book.remove(r)
            if r.hidden:
                reload(book, r, ctx, ts)
            else:
                ctx.gone(r)
    return filled


def reload(book: _Book, o: _Order, ctx, ts: int) -> None:
    o.leaves = min(o.peak, o.hidden)
    o.hidden -= o.leaves
    o.prio = ctx.take_prio()
    book.add(o)
    ctx.shown(o, ts)


def fade(book: _Book, o: _Order, p: VenueProfile, rng: random.Random, ctx, ts: int) -> None:
    """Before a client's order trades: each synthetic order it would cross
    is pulled with probability ``fade_prob`` (one draw each, best first)."""
    if p.fade_prob <= 0:
        return
    contra = book.bids if not o.is_buy else book.asks
    for price in sorted(contra, reverse=not o.is_buy):
        if o.price != MARKET_PRICE and (price > o.price if o.is_buy else price < o.price):
            break
        for r in [r for r in contra[price] if r.synthetic]:
            if rng.random() < p.fade_prob:
                book.remove(r)
                ctx.pulled(r, ts)


def step(flow: SymbolFlow, book: _Book, rng: random.Random, ctx, ts: int) -> None:
    """One event of the process at time ts."""
    p = flow.profile
    synth = synthetic_orders(book)
    u = rng.random() * _rate(p, len(synth))
    if u < p.mkt_rate_hz:
        buy = rng.random() < 0.5
        qty = _lots_geometric(p.mkt_lots_mean, rng) * LOT
        contra = book.asks if buy else book.bids
        if contra:
            take(book, buy, min(contra) if buy else max(contra), qty, ctx, ts)
    elif u < p.mkt_rate_hz + p.add_rate_hz:
        buy = rng.random() < 0.5
        k = rng.randint(1, p.add_depth)
        price = flow.ref - k * flow.tick if buy else flow.ref + k * flow.tick
        shown = rng.randint(1, p.add_lots_max) * LOT
        hidden = 0
        if p.iceberg_prob > 0 and rng.random() < p.iceberg_prob:
            hidden = shown * p.iceberg_reserve
        dark = p.dark_prob > 0 and rng.random() < p.dark_prob
        if price <= 0:
            return
        o = _Order(flow.symbol, "B" if buy else "S", price, shown, ctx.take_prio(),
                   synthetic=True, hidden=hidden, peak=shown, dark=dark)
        o.leaves -= take(book, buy, price, shown, ctx, ts)  # a client order may sit there
        if o.leaves:
            book.add(o)
            ctx.shown(o, ts)
    elif synth:
        o = synth[rng.randrange(len(synth))]
        book.remove(o)
        ctx.pulled(o, ts)


# --- the true fill probability (evaluation only) ------------------------------


class _CopyCtx:
    """Context of a simulated future: only whether the target traded."""

    def __init__(self, next_prio: int, target: _Order) -> None:
        self.prio = next_prio
        self.target = target
        self.hit = False

    def take_prio(self) -> int:
        self.prio += 1
        return self.prio

    def traded(self, o: _Order, qty: int, ts: int) -> None:
        o.leaves -= qty
        if o is self.target:
            self.hit = True

    def gone(self, o: _Order) -> None:
        pass

    def shown(self, o: _Order, ts: int) -> None:
        pass

    def pulled(self, o: _Order, ts: int) -> None:
        pass


def _copy(o: _Order) -> _Order:
    return _Order(o.symbol, o.side, o.price, o.leaves, o.prio, synthetic=o.synthetic,
                  hidden=o.hidden, peak=o.peak, dark=o.dark)


def _copy_book(book: _Book) -> _Book:
    b = _Book()
    for src, dst in ((book.bids, b.bids), (book.asks, b.asks)):
        for p, level in src.items():
            dst[p] = [_copy(o) for o in level]
    return b


def true_fill_probability(flow: SymbolFlow, book: _Book, order: _Order, next_prio: int,
                          horizon_ns: int, paths: int, rng: random.Random) -> float:
    """The probability that ``order``, entering ``book`` now and left alone,
    trades at least once within ``horizon_ns``: the fraction of ``paths``
    simulated futures of the venue's own process (fade on entry, matching,
    then the flow) in which it does.  ``order`` is not yet on the book;
    nothing of the real state is touched."""
    p = flow.profile
    hits = 0
    for _ in range(paths):
        b = _copy_book(book)
        target = _copy(order)
        ctx = _CopyCtx(next_prio, target)
        fade(b, target, p, rng, ctx, 0)
        if take(b, target.is_buy, target.price, target.leaves, ctx, 0):
            hits += 1
            continue
        if order.tif == b"3" or order.price == MARKET_PRICE:
            continue
        b.add(target)
        t = 0
        while True:
            t += _wait_ns(p, b, rng)
            if t > horizon_ns:
                break
            step(flow, b, rng, ctx, t)
            if ctx.hit:
                hits += 1
                break
    return hits / paths
