"""Smart order routing, venue latency monitoring and market data in the
core (docs/semantics.md "Market data in the core", "Venue health", "Smart
order routing", "Reference prices"): scripted quote scenarios - best price,
size, stale venue, slow venue, down and unresponsive venues, exclusions,
DMA, halts from the feed, reference prices from the book - run through the
C core with the C feed handler and through the reference model with the
reference book, each checked against what the document says, and against
each other byte for byte (frames, counters, decisions, venue health)."""
from __future__ import annotations

import struct
from dataclasses import replace

import pytest
import wire
from feed_wire import APP_IP, APP_MAC, APP_PORT, multicast
from wire import from_strategy, login, new_order, udp_frame, ufo

from control.config import SOR, Instrument, Route, Routing, Venue
from dataplane.book_model import FeedModel
from dataplane.core import Core
from dataplane.feed import Feed
from dataplane.reference_model import ReferenceCore
from pcaps.itch_layers import itch_message as M
from pcaps.itch_layers import mold_packet as P

D = 10**8
MS = 1_000_000
SESSION = "20261127A1"
CHOSEN, WORSE, EXCLUDED, NOT_ALLOWED, NO_FEED, STALE, HALTED, DOWN, UNRESPONSIVE, \
    NO_QUOTE, THROUGH_LIMIT = range(1, 12)
NO_ROUTE, SYMBOL_HALTED, PRICE_BAND = 33, 18, 27

VENUES = wire.VENUES + (Venue(id=3, name="ARCA", session="ARCA01", ip="10.10.2.3", port=9200,
                              mac="02:00:00:00:02:03"),)
VENUE_BY_IP = {bytes(int(x) for x in v.ip.split(".")): v.id for v in VENUES}
GROUP = {1: "239.1.1.1", 2: "239.1.1.2", 3: "239.1.1.3"}
LOCATE = {"AAPL": 1, "MSFT": 2, "SPY": 3}
STALE_NS = 500 * MS  # a feed quiet this long is stale


def px(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * D + int(frac.ljust(8, "0"))


def config(**kw):
    kw.setdefault("routing", Routing(default_venue=SOR))
    kw.setdefault("venues", VENUES)
    return replace(wire.config(), **kw)


class Rig:
    """A core (C or model) with one feed (C or reference book) per venue,
    driven the same way: quotes go to a venue's feed, frames to the core,
    and every call first runs the feeds' timers at its now_ns, as the
    worker polls them between bursts."""

    def __init__(self, impl, cfg):
        self.core = impl(cfg)
        self.is_model = impl is ReferenceCore
        self.cfg = cfg
        self.feeds, self.mold_seq, self.venue_seq = {}, {}, {}
        self.sp_seq = 1
        for v in cfg.venues:
            if self.is_model:
                f = FeedModel(max_orders=4096, max_levels=256, stale_after_ns=STALE_NS)
            else:
                f = Feed(venue=v.id, mac=APP_MAC, ip=APP_IP, port=APP_PORT, group=GROUP[v.id],
                         stale_after_ns=STALE_NS)
            for i, sym in enumerate(s.symbol for s in cfg.instruments):
                f.subscribe(sym, i)
            self.core.set_feed(v.id, f)
            self.feeds[v.id], self.mold_seq[v.id], self.venue_seq[v.id] = f, 1, 1

    def quote(self, venue: int, msgs: list[bytes], now: int, lose: bool = False) -> None:
        payload = P(SESSION, self.mold_seq[venue], msgs)
        self.mold_seq[venue] += len(msgs)
        if lose:
            return
        f = self.feeds[venue]
        if self.is_model:
            f.process([payload], now)
        else:
            f.process([multicast(payload, group=GROUP[venue])], now)

    def open(self, venue: int, now: int, book: dict[str, tuple]) -> None:
        """Session start, directory, and for each symbol (bid px, bid qty,
        ask px, ask qty) as one order a side (0 qty: none)."""
        msgs = [M("S", code="O")] + [M("R", locate=n, stock=s) for s, n in LOCATE.items()]
        ref = 1
        for sym, (bp, bq, ap, aq) in book.items():
            for side, p, q in (("B", bp, bq), ("S", ap, aq)):
                if q:
                    msgs.append(M("A", locate=LOCATE[sym], ref=ref, side=side, shares=q,
                                  price=p))
                    ref += 1
        self.quote(venue, msgs, now)

    def burst(self, frames: list[bytes], now: int) -> list[bytes]:
        for f in self.feeds.values():
            f.process([], now)
        return self.core.process_burst(frames, now)

    def order(self, cl_ord_id: int, now: int, **kw) -> list[bytes]:
        out = self.burst([from_strategy(1, new_order(1, self.sp_seq, cl_ord_id, **kw))], now)
        self.sp_seq += 1
        return out

    def answer(self, venue: int, msg: bytes, now: int) -> list[bytes]:
        v = next(v for v in self.cfg.venues if v.id == venue)
        frame = udp_frame(v.mac, wire.APPLIANCE.mac, v.ip, wire.APPLIANCE.ip, v.port,
                          wire.APPLIANCE.venue_port, ufo(v.session, self.venue_seq[venue], msg))
        self.venue_seq[venue] += 1
        return self.burst([frame], now)


def enters(frames: list[bytes]) -> list[tuple[int, int, int]]:
    """(venue id, UserRefNum, quantity) of each Enter Order sent."""
    out = []
    for f in frames:
        p = f[42:]
        if len(p) > 22 and p[22:23] == b"O":
            ref, _side, qty = struct.unpack_from("!IcI", p, 23)
            out.append((VENUE_BY_IP[f[30:34]], ref, qty))
    return out


def rejects(frames: list[bytes]) -> list[int]:
    return [wire.decode_sp_out(f)["reason"] for f in frames
            if f[34:36] == struct.pack("!H", wire.APPLIANCE.strategy_port)
            and wire.decode_sp_out(f)["type"] == "Rejected"]


def whys(decision: dict) -> dict[int, int]:
    return {s["venue"]: s["why"] for s in decision["seen"]}


def both(cfg, script):
    """Run `script(rig)` on the C core and on the model; they must agree on
    every frame, counter, decision and venue's health.  Returns the C
    rig and what the script returned there."""
    runs = []
    for impl in (Core, ReferenceCore):
        rig = Rig(impl, cfg)
        rig.burst([from_strategy(1, login(1))], 1 * MS)
        result = script(rig)
        health = {v.id: rig.core.venue_latency(v.id) for v in cfg.venues}
        runs.append((rig, result, rig.core.stats(), rig.core.route_decisions(), health))
    (c, c_res, c_stats, c_dec, c_health), (_, m_res, m_stats, m_dec, m_health) = runs
    assert c_res == m_res
    assert c_stats == m_stats
    assert c_dec == m_dec
    assert c_health == m_health
    return c, c_res


AAPL_BOOKS = {  # bid px, bid qty, ask px, ask qty
    1: {"AAPL": ("150.20", 300, "150.28", 100)},
    2: {"AAPL": ("150.22", 200, "150.26", 100)},
    3: {"AAPL": ("150.21", 500, "150.27", 500)},
}


def open_all(rig, books=AAPL_BOOKS, now=2 * MS):
    for v, book in books.items():
        rig.open(v, now, book)


def test_buy_goes_to_the_lowest_ask_sell_to_the_highest_bid():
    def script(rig):
        open_all(rig)
        buy = rig.order(1, 3 * MS, price=px("150.30"), qty=100, side=1)
        sell = rig.order(2, 3 * MS, price=px("150.00"), qty=100, side=2)
        return enters(buy), enters(sell)

    rig, (buy, sell) = both(config(), script)
    assert buy == [(2, 1, 100)]   # 150.26 at venue 2
    assert sell == [(2, 2, 100)]  # 150.22 at venue 2
    d = rig.core.route_decisions()
    assert whys(d[0]) == {1: WORSE, 2: CHOSEN, 3: WORSE}
    assert [(s["px"], s["qty"]) for s in d[0]["seen"]] == [
        (px("150.28"), 100), (px("150.26"), 100), (px("150.27"), 500)]
    assert d[0]["cl_ord_id"] == 1 and d[0]["venue"] == 2 and d[0]["symbol"] == "AAPL"
    assert rig.core.stats()["event"]["ORDERS_ROUTED"] == 2


def test_at_the_same_price_the_larger_displayed_size_wins():
    books = {1: {"AAPL": ("150.20", 100, "150.26", 100)},
             2: {"AAPL": ("150.20", 100, "150.26", 300)},
             3: {"AAPL": ("150.20", 100, "150.26", 200)}}

    def script(rig):
        open_all(rig, books)
        return enters(rig.order(1, 3 * MS, price=px("150.30"), qty=100))

    rig, sent = both(config(), script)
    assert sent == [(2, 1, 100)]


def test_a_stale_book_is_never_used():
    def script(rig):
        open_all(rig)
        # venue 2's next packet is lost: a gap, no retransmission server,
        # its books stay stale until the next session
        rig.quote(2, [M("A", locate=1, ref=90, side="S", shares=10, price="150.25")],
                  3 * MS, lose=True)
        rig.quote(2, [M("A", locate=1, ref=91, side="S", shares=10, price="150.24")], 3 * MS)
        first = enters(rig.order(1, 4 * MS, price=px("150.30")))
        # venue 3 goes quiet past stale_after: only venue 1 is left
        rig.quote(1, [M("A", locate=1, ref=92, side="B", shares=10, price="150.10")],
                  4 * MS + STALE_NS - MS)
        second = enters(rig.order(2, 4 * MS + STALE_NS + MS, price=px("150.30")))
        return first, second

    rig, (first, second) = both(config(), script)
    assert first == [(3, 1, 100)]  # 150.27: venue 2's 150.24 is behind a gap
    assert second == [(1, 1, 100)]
    d = rig.core.route_decisions()
    assert whys(d[0]) == {1: WORSE, 2: STALE, 3: CHOSEN}
    assert whys(d[1]) == {1: CHOSEN, 2: STALE, 3: STALE}


def test_latency_breaks_ties_and_costs_its_price_per_microsecond():
    books = {1: {"AAPL": ("150.20", 100, "150.26", 100)},
             2: {"AAPL": ("150.20", 100, "150.27", 100)},
             3: {"AAPL": ("150.20", 100, "150.28", 100)}}

    def script(rig):
        open_all(rig, books)
        sent = []
        # one order each by DMA, answered after 500 us, 50 us and 2 ms
        for v, (cl, rtt) in {1: (101, 500_000), 2: (102, 50_000), 3: (103, 2 * MS)}.items():
            rig.order(cl, 3 * MS, venue=v, price=px("150.30"))
            rig.answer(v, wire.ouch_accepted(1), 3 * MS + rtt)
        sent += enters(rig.order(1, 10 * MS, price=px("150.30")))
        return sent

    # without a price for latency the best price wins
    rig, sent = both(config(), script)
    assert sent == [(1, 2, 100)]
    assert rig.core.venue_latency(1)["rtt_ewma_ns"] == 500_000
    # at 0.0001 a microsecond: 150.26 + 0.05 > 150.27 + 0.005 < 150.28 + 0.2
    cfg = config(routing=Routing(default_venue=SOR, latency_cost_per_us=px("0.0001")))
    rig, sent = both(cfg, script)
    assert sent == [(2, 2, 100)]
    seen = rig.core.route_decisions()[-1]["seen"]
    assert [s["cost"] for s in seen] == [px("0.05"), px("0.005"), px("0.2")]
    assert whys(rig.core.route_decisions()[-1]) == {1: WORSE, 2: CHOSEN, 3: WORSE}


def test_equal_price_and_size_go_to_the_faster_venue():
    books = {v: {"AAPL": ("150.20", 100, "150.26", 100)} for v in (1, 2, 3)}

    def script(rig):
        open_all(rig, books)
        for v, rtt in {1: 300_000, 2: 200_000, 3: 100_000}.items():
            rig.order(100 + v, 3 * MS, venue=v)
            rig.answer(v, wire.ouch_accepted(1), 3 * MS + rtt)
        return enters(rig.order(1, 10 * MS, price=px("150.30")))

    _, sent = both(config(), script)
    assert sent == [(3, 2, 100)]


def test_down_and_unresponsive_venues_are_skipped_until_they_answer():
    # timeouts of 100 ms; venue 2 is unresponsive after 2 unanswered orders
    venues = tuple(replace(v, heartbeat_ms=50, timeout_ms=100,
                           max_unanswered=2 if v.id == 2 else 0) for v in VENUES)
    books = {1: {"AAPL": ("150.20", 100, "150.29", 100)},
             2: {"AAPL": ("150.20", 100, "150.25", 100)},
             3: {"AAPL": ("150.20", 100, "150.26", 100)}}

    def script(rig):
        open_all(rig, books)
        out = []
        # two Enter Orders to venue 2 without an answer: unresponsive
        out += enters(rig.order(1, 3 * MS, price=px("150.30")))
        out += enters(rig.order(2, 3 * MS, price=px("150.30")))
        out += enters(rig.order(3, 4 * MS, price=px("150.30")))
        # venue 3 sends nothing for its timeout: down; 1 and 2 stay up
        rig.answer(1, wire.ouch_system_event(), 50 * MS)
        rig.answer(2, wire.ouch_system_event(), 50 * MS)
        t = 104 * MS
        out += enters(rig.order(4, t, price=px("150.30")))
        # venue 2 answers its first order: one unanswered left, usable again
        rig.answer(2, wire.ouch_accepted(1), t + MS)
        out += enters(rig.order(5, t + 2 * MS, price=px("150.30")))
        return out

    rig, sent = both(config(venues=venues), script)
    assert sent == [(2, 1, 100), (2, 2, 100), (3, 1, 100), (1, 1, 100), (2, 3, 100)]
    d = rig.core.route_decisions()
    assert whys(d[2]) == {1: WORSE, 2: UNRESPONSIVE, 3: CHOSEN}
    assert whys(d[3]) == {1: CHOSEN, 2: UNRESPONSIVE, 3: DOWN}
    assert whys(d[4])[2] == CHOSEN
    st = rig.core.stats()["event"]
    assert st["VENUE_UNRESPONSIVE"] == 2 and st["VENUE_TIMEOUTS"] == 1
    h = rig.core.venue_latency(2)
    assert (h["unanswered"], h["unresponsive"], h["rtt_samples"]) == (2, 1, 1)


def test_rules_pin_or_exclude_and_limits_are_never_crossed():
    routes = (Route(venue=SOR, symbol="MSFT", exclude=(2,)), Route(venue=3, symbol="SPY"))
    books = {1: {"MSFT": ("300.00", 100, "300.10", 100)},
             2: {"MSFT": ("300.00", 100, "300.05", 100)},
             3: {"MSFT": ("300.00", 100, "300.20", 100)}}

    def script(rig):
        open_all(rig, books)
        out = [enters(rig.order(1, 3 * MS, symbol="MSFT", price=px("300.50")))]
        out.append(enters(rig.order(2, 3 * MS, symbol="SPY", price=px("150.25"))))
        # nothing at or below 300.00 is offered: no venue
        r = rig.order(3, 3 * MS, symbol="MSFT", price=px("300.00"))
        out.append((enters(r), rejects(r)))
        return out

    rig, (msft, spy, (none, rej)) = both(config(routes=routes), script)
    assert msft == [(1, 1, 100)]  # 300.05 at venue 2 is excluded
    assert spy == [(3, 1, 100)]   # pinned: no decision
    assert none == [] and rej == [NO_ROUTE]
    d = rig.core.route_decisions()
    assert len(d) == 2
    assert whys(d[0]) == {1: CHOSEN, 2: EXCLUDED, 3: WORSE}
    assert whys(d[1]) == {1: THROUGH_LIMIT, 2: EXCLUDED, 3: THROUGH_LIMIT}
    assert d[1]["venue"] == 0
    assert rig.core.stats()["reject_business"][NO_ROUTE] == 1


def test_venues_the_instrument_does_not_list_and_venues_without_feed_or_quote():
    instruments = (Instrument("AAPL", reference_price=px("150.25"), venues=(1, 3)),) + \
        wire.INSTRUMENTS[1:]
    books = {1: {"AAPL": ("150.20", 100, "0", 0)}, 2: {"AAPL": ("150.20", 100, "150.25", 100)}}

    def script(rig):
        open_all(rig, books)  # venue 3's feed has no session yet
        r = rig.order(1, 3 * MS, price=px("150.30"))
        return enters(r), rejects(r)

    rig, (sent, rej) = both(config(instruments=instruments), script)
    assert sent == [] and rej == [NO_ROUTE]
    assert whys(rig.core.route_decisions()[0]) == {1: NO_QUOTE, 2: NOT_ALLOWED, 3: STALE}


def test_dma_skips_the_router_not_the_risk_checks():
    def script(rig):
        open_all(rig)
        out = [enters(rig.order(1, 3 * MS, venue=1, price=px("150.30")))]
        # venue 1's feed halts AAPL (ITCH trading action H)
        rig.quote(1, [M("H", locate=1, stock="AAPL", state="H")], 4 * MS)
        r = rig.order(2, 5 * MS, venue=1, price=px("150.30"))
        out.append((enters(r), rejects(r)))
        # the router avoids the halted venue; venue 2 is still best
        out.append(enters(rig.order(3, 5 * MS, price=px("150.30"))))
        return out

    rig, (dma, (halted, rej), routed) = both(config(), script)
    assert dma == [(1, 1, 100)]  # worse than venue 2, but named
    assert halted == [] and rej == [SYMBOL_HALTED]
    assert routed == [(2, 1, 100)]
    d = rig.core.route_decisions()
    assert len(d) == 1 and whys(d[0]) == {1: HALTED, 2: CHOSEN, 3: WORSE}


def test_price_bands_use_the_books_mid_while_fresh_else_the_configured_reference():
    # band 1% around the reference; configured 150.25, the market is at 160
    instruments = (Instrument("AAPL", reference_price=px("150.25"), price_band_pct=1 * D),) + \
        wire.INSTRUMENTS[1:]
    books = {1: {"AAPL": ("159.98", 100, "160.03", 100)}}

    def script(rig):
        rig.open(1, 2 * MS, books[1])
        out = []
        # mid 160.005, to the tick (0.0001): 160.005; 159.50 is inside 1%
        out.append(rejects(rig.order(1, 3 * MS, venue=1, price=px("159.50"))))
        out.append(rejects(rig.order(2, 3 * MS, venue=1, price=px("150.25"))))
        # a market order is valued at the mid: its notional reserves 160.005
        rig.order(3, 3 * MS, venue=1, ord_type=2, tif=2, price=0, qty=10)
        out.append(rig.core.account(1)["open_notional"])
        # the feed goes quiet: stale, back to the configured 150.25
        out.append(rejects(rig.order(4, 3 * MS + STALE_NS, venue=1, price=px("159.50"))))
        out.append(rejects(rig.order(5, 3 * MS + STALE_NS, venue=1, price=px("150.25"))))
        return out

    _, (a, b, notional, c, d) = both(config(instruments=instruments), script)
    assert a == [] and b == [PRICE_BAND] and c == [PRICE_BAND] and d == []
    assert notional == 100 * px("159.50") + 10 * px("160.005")


def test_latency_monitor_ewma_histogram_and_unanswered():
    def script(rig):
        rig.open(1, 2 * MS, AAPL_BOOKS[1])
        for k, rtt in enumerate((800_000, 400_000, 1_600_000)):
            rig.order(k + 1, 10 * MS * (k + 1), venue=1)
            rig.answer(1, wire.ouch_accepted(k + 1), 10 * MS * (k + 1) + rtt)
        rig.order(9, 50 * MS, venue=1)
        return None

    rig, _ = both(config(), script)
    h = rig.core.venue_latency(1)
    # 800000; (7 * 800000 + 400000) / 8 = 750000; (7 * 750000 + 1600000) / 8 = 856250
    assert h["rtt_ewma_ns"] == 856_250 and h["rtt_last_ns"] == 1_600_000
    assert h["rtt_samples"] == 3 and h["unanswered"] == 1 and h["down"] == 0
    # 400000 in [2^18, 2^19), 800000 in [2^19, 2^20), 1600000 in [2^20, 2^21)
    assert {b: n for b, n in enumerate(h["rtt_hist"]) if n} == {18: 1, 19: 1, 20: 1}
    # percentiles by bucket: the median sample is in [2^19, 2^20), the 99th
    # in [2^20, 2^21)
    assert (h["rtt_p50_ns"], h["rtt_p99_ns"]) == (1 << 19, 1 << 20)


@pytest.mark.parametrize("impl", [Core, ReferenceCore], ids=["core", "model"])
def test_without_market_data_a_sor_order_has_no_route(impl):
    rig = impl(config())
    rig.process_burst([from_strategy(1, login(1))], MS)
    out = rig.process_burst([from_strategy(1, new_order(1, 1, 1))], 2 * MS)
    assert rejects(out) == [NO_ROUTE]
    assert whys(rig.route_decisions()[0]) == {1: NO_FEED, 2: NO_FEED, 3: NO_FEED}
