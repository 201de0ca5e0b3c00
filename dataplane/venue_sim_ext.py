"""The venue simulator's opt-in parts (docs/venue-sim.md): market data for
its own book (``market_data=``), hidden behaviour from a venue profile
(``profile=``), a seeded answer delay (``latency=`` or the profile's) and
the true-fill-probability log (``truth_log=``).  Without any of them
:class:`dataplane.venue_sim.VenueSim` behaves, byte for byte, as before
(tests/test_replay_golden.py); this mixin holds everything they add.

Time: the profile's process and delayed packets run in time order up to
the ``now_ns`` of each call (``handle_*``, ``tick*``), on the simulator's
clock alone; the first call starts the market-data session (System Event
'O', Stock Directory per symbol, the opening book) and the process.
"""
from __future__ import annotations

import json
import math
import random
from collections import deque
from typing import IO

from dataplane.venue_book import _Book, _Order
from dataplane.venue_flow import (
    SymbolFlow,
    fade,
    reload,
    step,
    synthetic_orders,
    true_fill_probability,
)
from dataplane.venue_itch import ItchPublisher, MarketDataConfig
from dataplane.venue_profiles import PROFILES, VenueProfile

NS_PER_DAY = 86_400_000_000_000


class VenueSimExtensions:
    """Mixed into VenueSim; uses its books, session layer and OUCH code."""

    _books: dict[str, _Book]

    def _init_hidden(self, seed: int, tick: int, market_data: MarketDataConfig | None,
                     profile: VenueProfile | str | None, latency: tuple[float, float] | None,
                     truth_log: IO[str] | None, truth_horizon_ms: int,
                     truth_paths: int) -> None:
        if isinstance(profile, str):
            if profile not in PROFILES:
                raise ValueError(f"unknown venue profile {profile!r}; "
                                 f"known: {', '.join(sorted(PROFILES))}")
            profile = PROFILES[profile]
        if truth_log is not None and profile is None:
            raise ValueError("truth_log needs a profile: the probability comes from its process")
        if truth_horizon_ms <= 0 or truth_paths <= 0:
            raise ValueError("truth_horizon_ms and truth_paths must be positive")
        self.profile = profile
        self._seed = seed
        self._md = (ItchPublisher(market_data, self.venue.mac, self.venue.ip, sorted(self._books))
                    if market_data is not None else None)
        self._md_out: list[bytes] = []
        self._md_replace: tuple | None = None
        self._flows: dict[str, SymbolFlow] = {}
        if profile is not None:
            self.p_passive = 0.0  # fills come from the process alone
            for sym in sorted(self._books):
                f = SymbolFlow(profile, sym, self._ref_prices[sym], tick, seed)
                self._flows[sym] = f
                if profile.iceberg_prob > 0:
                    for o in synthetic_orders(self._books[sym]):
                        if f.rng.random() < profile.iceberg_prob:
                            o.hidden, o.peak = o.leaves * profile.iceberg_reserve, o.leaves
        if latency is None and profile is not None and profile.latency_us > 0:
            latency = (profile.latency_us, profile.jitter_sigma)
        if latency is not None and (latency[0] <= 0 or latency[1] < 0):
            raise ValueError("latency is (median microseconds > 0, log-sd >= 0)")
        self._latency = latency
        self._lat_rng = random.Random(f"latency:{seed}")
        self._inbound: deque[tuple[int, bytes]] = deque()
        self._last_due = 0
        self._truth_log = truth_log
        self._truth_horizon_ns = truth_horizon_ms * 1_000_000
        self._truth_paths = truth_paths
        self.entries: list[_Order] = []  # client orders with their true probability
        self._flow_out: list[bytes] = []
        self._started = False
        self._extended = bool(self._md or self._flows or latency)

    # --- public ------------------------------------------------------------------

    @property
    def market_data(self) -> ItchPublisher | None:
        return self._md

    def take_market_data(self) -> list[bytes]:
        """MoldUDP64 packets published since the last call, for the group."""
        out, self._md_out = self._md_out, []
        return out

    def take_market_data_frames(self) -> list[bytes]:
        return [self._md.multicast_frame(p) for p in self.take_market_data()]

    def halt(self, symbol: str, now_ns: int, state: str = "H", reason: str = "") -> None:
        """Publish a Trading Action (H halted, P paused, Q quotation only,
        T trading).  Matching is not changed: the halt is for the appliance's
        risk checks to act on."""
        if self._md is None:
            raise ValueError("halt needs market_data")
        self._start(now_ns)
        self._md.trading_action(symbol, state, reason, now_ns)
        self._md_out += self._md.flush(now_ns)

    def next_event_ns(self) -> int | None:
        """When the process or a delayed packet next needs a call."""
        times = [f.next_ns for f in self._flows.values() if f.next_ns is not None]
        if self._inbound:
            times.append(self._inbound[0][0])
        return min(times, default=None)

    # --- time ----------------------------------------------------------------------

    def _start(self, now_ns: int) -> None:
        if self._started:
            return
        self._started = True
        if self._md is not None:
            self._md.system_event("O", now_ns)
            for sym in sorted(self._books):
                self._md.directory(sym, now_ns)
            for sym in sorted(self._books):
                b = self._books[sym]
                for side, rev in ((b.bids, True), (b.asks, False)):
                    for p in sorted(side, reverse=rev):
                        for o in side[p]:
                            self._show(o, now_ns)
        for sym, f in self._flows.items():
            f.redraw(self._books[sym], now_ns)

    def _extended_datagram(self, payload: bytes, first: int, count: int, now_ns: int,
                           request_port: bool) -> list[tuple[str, bytes]]:
        self._start(now_ns)
        out = self._run_until(now_ns)
        if request_port:
            out += self._serve_request(first, count)
        elif self._latency is not None:
            median_us, sigma = self._latency
            delay = int(median_us * 1000 * math.exp(sigma * self._lat_rng.gauss(0.0, 1.0)))
            self._last_due = max(now_ns + delay, self._last_due)  # FIFO, as one link
            self._inbound.append((self._last_due, payload))
        else:
            out += self._process_at(payload, now_ns)
        self._md_flush(now_ns)
        return out

    def _extended_tick(self, now_ns: int) -> list[tuple[str, bytes]]:
        self._start(now_ns)
        out = self._run_until(now_ns)
        if self._md is not None:
            self._md_flush(now_ns)
            self._md_out += self._md.tick(now_ns)
        return out

    def _process_at(self, payload: bytes, t: int) -> list[tuple[str, bytes]]:
        self._now_ns = t
        first, count = int.from_bytes(payload[10:18], "big"), int.from_bytes(payload[18:20], "big")
        out = self._data_packet(payload, first, count, t)
        for sym, f in self._flows.items():  # the book changed: new waits (memoryless)
            f.redraw(self._books[sym], t)
        return out

    def _run_until(self, now_ns: int) -> list[tuple[str, bytes]]:
        """Process events and delayed packets due by now, in time order."""
        out: list[tuple[str, bytes]] = []
        while True:
            t_in = self._inbound[0][0] if self._inbound else None
            sym, t_flow = None, None
            for s, f in self._flows.items():
                if f.next_ns is not None and (t_flow is None or f.next_ns < t_flow):
                    sym, t_flow = s, f.next_ns
            if t_in is not None and t_in <= now_ns and (t_flow is None or t_in <= t_flow):
                _, payload = self._inbound.popleft()
                out += self._process_at(payload, t_in)
            elif t_flow is not None and t_flow <= now_ns:
                f, book = self._flows[sym], self._books[sym]
                self._flow_out = []
                step(f, book, f.rng, self, t_flow)
                f.redraw(book, t_flow)
                if self._flow_out:
                    out += [("data", p) for p in self._packetize(self._flow_out)]
                    self._last_tx = t_flow
            else:
                return out
            self._md_flush(now_ns)

    def _md_flush(self, now_ns: int) -> None:
        if self._md is not None:
            self._md_out += self._md.flush(now_ns)

    # --- the flow's context (dataplane.venue_flow) ----------------------------------

    def take_prio(self) -> int:
        return self._take_prio()

    def traded(self, r: _Order, q: int, ts: int) -> None:
        match = self._next_match
        self._next_match += 1
        if r.synthetic:
            r.leaves -= q
        else:
            self._executed(r, q, r.price, b"A", match, ts % NS_PER_DAY, self._flow_out)
        self._md_traded(r, q, match, ts)

    def gone(self, o: _Order) -> None:
        if not o.synthetic:
            self._live.pop(o.ref, None)

    def shown(self, o: _Order, ts: int) -> None:
        self._show(o, ts)

    def pulled(self, o: _Order, ts: int) -> None:
        if self._md is not None and o.md_ref:
            self._md.delete(o.symbol, o.md_ref, ts)
            o.md_ref = 0

    # --- hooks in VenueSim's OUCH handling -------------------------------------------

    def _enter_hidden(self, o: _Order, ts: int, out: list[bytes]) -> None:
        """Enter Order with a profile: the true probability (before anything
        moves), quotes fading, then matching as usual."""
        f = self._flows.get(o.symbol)
        book = self._books[o.symbol]
        if f is not None and self._truth_log is not None:
            rng = random.Random(f"truth:{self._seed}:{o.ref}")
            p = true_fill_probability(f, book, o, self._next_prio, self._truth_horizon_ns,
                                      self._truth_paths, rng)
            o.p_true, o.entry_ts = p, ts
            self.entries.append(o)
            self._truth_log.write(json.dumps({
                "venue": self.venue.name, "profile": self.profile.name, "t_ns": self._now_ns,
                "user_ref": o.ref, "clordid": o.clordid.decode("ascii", "replace").rstrip(),
                "symbol": o.symbol, "side": o.side, "price": o.price, "qty": o.qty,
                "tif": o.tif.decode(), "horizon_ms": self._truth_horizon_ns // 1_000_000,
                "p_fill": p, "method": "monte_carlo", "paths": self._truth_paths},
                separators=(",", ":")) + "\n")
        if f is not None:
            fade(book, o, f.profile, f.rng, self, ts)
        self._match_and_place(o, ts, out)

    def _reload_if_iceberg(self, r: _Order, ts: int) -> None:
        if r.hidden:
            reload(self._books[r.symbol], r, self, ts)

    def _md_traded(self, r: _Order, q: int, match: int, ts: int) -> None:
        if self._md is None:
            return
        if r.md_ref:
            self._md.executed(r.symbol, r.md_ref, q, match, ts)
            if r.leaves == 0:
                r.md_ref = 0  # the feed removes it with this execution
        else:
            self._md.trade(r.symbol, r.is_buy, q, r.price, match, ts)

    def _md_canceled(self, o: _Order, dec: int, ts: int) -> None:
        if self._md is None or not o.md_ref:
            return
        if dec >= o.leaves:
            self._md.delete(o.symbol, o.md_ref, ts)
            o.md_ref = 0
        else:
            self._md.cancel(o.symbol, o.md_ref, dec, ts)

    def _show(self, o: _Order, ts: int) -> None:
        """An order rests: Add Order, or after a client's Replace, Order
        Replace (priority lost) or Order Cancel (priority kept, fewer shares)."""
        if self._md is None:
            return
        hidden = o.dark or o.display == b"N"
        pending = self._md_replace
        if pending is not None and pending[0] is o:  # not an iceberg reloading meanwhile
            self._md_replace = None
        if pending is not None and pending[0] is o and pending[1]:
            _, old, kept, old_leaves = pending
            if hidden:
                self._md.delete(o.symbol, old, ts)
            elif kept:
                o.md_ref = old
                if old_leaves > o.leaves:
                    self._md.cancel(o.symbol, old, old_leaves - o.leaves, ts)
            else:
                o.md_ref = self._md.new_ref()
                self._md.replace(o.symbol, old, o.md_ref, o.leaves, o.price, ts)
            return
        if hidden:
            return
        o.md_ref = self._md.new_ref()
        self._md.add(o.symbol, o.md_ref, o.is_buy, o.leaves, o.price, ts)

    def _md_replacing(self, o: _Order, kept: bool, old_leaves: int) -> None:
        if self._md is not None:
            self._md_replace = (o, o.md_ref, kept, old_leaves)
            o.md_ref = 0

    def _md_replaced(self, ts: int) -> None:
        """After a Replace's matching: an order that did not rest again leaves
        the feed."""
        pending, self._md_replace = self._md_replace, None
        if pending is not None and pending[1]:
            self._md.delete(pending[0].symbol, pending[1], ts)

    def displayed_top(self, symbol: str) -> tuple[int, int, int, int]:
        """(bid price, bid shares, ask price, ask shares) of what the feed
        shows (dark and Display 'N' orders left out; 0s for an empty side)."""
        out = []
        b = self._books[symbol]
        for side, best in ((b.bids, max), (b.asks, min)):
            px = [p for p, lv in side.items() if any(not (o.dark or o.display == b"N") for o in lv)]
            if not px:
                out += [0, 0]
                continue
            p = best(px)
            out += [p, sum(o.leaves for o in side[p] if not (o.dark or o.display == b"N"))]
        return tuple(out)
