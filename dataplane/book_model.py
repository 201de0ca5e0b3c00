"""The feed handler's semantics in plain Python: the reference the C feed
(cdefs/feed.c, cdefs/book.c) is tested against, message for message
(tests/test_feed_vs_model.py).  Written for clarity, not speed: books are
dicts of orders and of price levels, the best price is max()/min().

What it defines (docs/market-data.md): MoldUDP64 sequencing (duplicates,
gaps, re-requests, heartbeats, end of session, new sessions), the ITCH 5.0
messages a book needs, staleness, and when a top of book is published."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

# staleness bits (cdefs/feed.h enum oms_feed_stale)
STALE_NO_SESSION, STALE_GAP, STALE_QUIET, STALE_END, STALE_BOOK_FULL = 1, 2, 4, 8, 16
STALE_LATE = 32  # subscribed mid-session
PRICE_TO_FIXED = 10_000
MOLD_SEQ_LIMIT = 2**64 - 1 - 0x10000
U32_MAX = 0xFFFFFFFF

ITCH_LEN = {"S": 12, "R": 39, "H": 25, "Y": 20, "A": 36, "F": 40, "E": 31, "C": 36,
            "X": 23, "D": 19, "U": 35, "P": 44, "Q": 40, "B": 19}


@dataclass
class Book:
    symbol: bytes
    index: int
    levels: tuple = field(default_factory=lambda: ({}, {}))  # side -> {px: [qty, orders]}
    unsound: int = 0
    dirty: int = 1
    trading_state: int = 0
    reg_sho: int = 0
    last_px: int = 0
    last_qty: int = 0
    pub: tuple = (0, 0, 0, 0, 0)

    def best(self, side: int) -> tuple[int, int]:
        lv = self.levels[side]
        if not lv:
            return 0, 0
        px = min(lv) if side else max(lv)
        return px, min(lv[px][0], U32_MAX)


@dataclass
class Tob:
    stale: int = 0
    halted: int = 0
    trading_state: int = 0
    reg_sho: int = 0
    bid_px: int = 0
    bid_qty: int = 0
    ask_px: int = 0
    ask_qty: int = 0
    last_px: int = 0
    last_qty: int = 0
    updates: int = 0


class FeedModel:
    def __init__(self, max_orders: int, max_levels: int, retrans: bool = False,
                 max_request: int = 512, stale_after_ns: int = 0,
                 retransmit_ns: int = 100_000_000, tx_capacity: int = 8):
        self.max_orders, self.max_levels = max_orders, max_levels
        self.retrans, self.max_request = retrans, max_request
        self.stale_after_ns, self.retransmit_ns = stale_after_ns, retransmit_ns
        self.tx_capacity = tx_capacity
        self.books: list[Book] = []
        self.by_symbol: dict[bytes, int] = {}
        self.by_locate: dict[int, int] = {}
        self.directory: dict[int, bytes] = {}  # locate -> symbol, subscribed or not
        self.orders: dict[int, list] = {}  # ref -> [book, side, px, qty]
        self.tobs: dict[int, Tob] = {}
        self.drops: dict[str, int] = {}
        self.events: dict[str, int] = {}
        self.session: bytes | None = None
        self.stale = STALE_NO_SESSION
        self.requesting = False
        self.expected = self.highest = self.req_end = 0
        self.req_ns = self.last_rx = 0
        self.requests: list[tuple[int, int]] = []  # (seq, count) sent, not yet taken

    # -- counters and publication ---------------------------------------

    def _drop(self, name: str, n: int = 1) -> None:
        self.drops[name] = self.drops.get(name, 0) + n

    def _event(self, name: str, n: int = 1) -> None:
        # u64 counters, as in C: a hostile sequence number can wrap GAP_MSGS
        v = (self.events.get(name, 0) + n) % 2**64
        if v:
            self.events[name] = v
        else:
            self.events.pop(name, None)

    def _publish(self, b: Book) -> None:
        bid, ask = b.best(0), b.best(1)
        stale = self.stale | b.unsound
        pub = (bid[0], ask[0], bid[1], ask[1], stale)
        if not b.dirty and pub == b.pub:
            return
        b.dirty, b.pub = 0, pub
        t = self.tobs[b.index]
        t.stale, t.trading_state, t.reg_sho = stale, b.trading_state, b.reg_sho
        t.halted = int(bool(b.trading_state) and b.trading_state != ord("T"))
        t.bid_px, t.bid_qty, t.ask_px, t.ask_qty = bid[0], bid[1], ask[0], ask[1]
        t.last_px, t.last_qty = b.last_px, b.last_qty
        t.updates += 1
        self._event("TOB_UPDATES")

    def _set_stale(self, bits: int, on: bool) -> None:
        s = (self.stale | bits) if on else (self.stale & ~bits)
        if s != self.stale:
            self.stale = s
            for b in self.books:
                self._publish(b)

    def subscribe(self, symbol: str, index: int) -> None:
        sym = symbol.encode("ascii").ljust(8, b" ")
        self.by_symbol[sym] = len(self.books)
        self.books.append(Book(sym, index))
        self.tobs[index] = Tob()
        if self.session is not None:  # late: what was added before is missing
            for locate, s in self.directory.items():
                if s == sym:
                    self.by_locate[locate] = len(self.books) - 1
            self.books[-1].unsound |= STALE_LATE
        self._publish(self.books[-1])

    # -- books -----------------------------------------------------------

    def _add(self, bi: int, ref: int, side: int, qty: int, px: int) -> str | None:
        if len(self.orders) >= self.max_orders:
            return "ORDERS_FULL"
        lv = self.books[bi].levels[side]
        if px not in lv:
            if len(lv) >= self.max_levels:
                return "LEVELS_FULL"
            lv[px] = [0, 0]
        lv[px][0] += qty
        lv[px][1] += 1
        self.orders[ref] = [bi, side, px, qty]
        return None

    def _remove(self, ref: int) -> None:
        bi, side, px, qty = self.orders.pop(ref)
        lv = self.books[bi].levels[side]
        lv[px][0] -= qty
        lv[px][1] -= 1
        if not lv[px][1]:
            del lv[px]

    def _take(self, ref: int, qty: int) -> bool:
        o = self.orders[ref]
        if not qty:
            self._drop("BAD_SHARES")
            return False
        if qty > o[3]:
            self._drop("OVER_EXECUTE")
            self._remove(ref)
            return False
        if qty == o[3]:
            self._remove(ref)
        else:
            o[3] -= qty
            self.books[o[0]].levels[o[1]][o[2]][0] -= qty
        return True

    def _resting(self, bi: int, ref: int) -> bool:
        if ref not in self.orders or self.orders[ref][0] != bi:
            self._drop("UNKNOWN_REF")
            return False
        return True

    def _full(self, b: Book, why: str) -> None:
        self._drop(why)
        b.unsound |= STALE_BOOK_FULL

    def _trade(self, b: Book, px: int, qty: int) -> None:
        b.last_px, b.last_qty, b.dirty = px, min(qty, U32_MAX), 1

    def _message(self, m: bytes) -> None:
        if not m:
            self._drop("ITCH_BAD_LENGTH")
            return
        t = chr(m[0])
        if t not in ITCH_LEN:
            self._event("SKIPPED_TYPES")
            return
        if len(m) != ITCH_LEN[t]:
            self._drop("ITCH_BAD_LENGTH")
            return
        self._event("MSGS_APPLIED")
        locate = struct.unpack_from("!H", m, 1)[0]
        if t == "S":
            self._event("SYSTEM_EVENTS")
            return
        if t == "R":
            self._event("DIRECTORY")
            self.directory[locate] = m[11:19]
            bi = self.by_symbol.get(m[11:19])
            if bi is None:
                self.by_locate.pop(locate, None)
            else:
                self.by_locate[locate] = bi
            return
        if t == "B":
            self._event("BROKEN_TRADES")
            return
        bi = self.by_locate.get(locate)
        if bi is None:
            self._event("UNSUBSCRIBED")
            return
        b = self.books[bi]
        u32 = lambda off: struct.unpack_from("!I", m, off)[0]  # noqa: E731
        u64 = lambda off: struct.unpack_from("!Q", m, off)[0]  # noqa: E731
        if t == "H":
            b.trading_state, b.dirty = m[19], 1
            self._event("TRADING_ACTIONS")
        elif t == "Y":
            b.reg_sho, b.dirty = m[19], 1
            self._event("REG_SHO")
        elif t in "AF":
            ref, side_c, qty = u64(11), chr(m[19]), u32(20)
            if side_c not in "BS":
                self._drop("BAD_SIDE")
            elif not qty:
                self._drop("BAD_SHARES")
            elif ref in self.orders:
                self._drop("DUP_REF")
            else:
                why = self._add(bi, ref, int(side_c == "S"), qty, u32(32) * PRICE_TO_FIXED)
                if why:
                    self._full(b, why)
                else:
                    self._event("ADDS")
        elif t in "EC":
            ref, qty = u64(11), u32(19)
            if self._resting(bi, ref):
                px = self.orders[ref][2]
                if self._take(ref, qty):
                    self._event("EXECUTIONS")
                    if t == "E":
                        self._trade(b, px, qty)
                    elif m[31] == ord("Y"):
                        self._trade(b, u32(32) * PRICE_TO_FIXED, qty)
        elif t == "X":
            ref = u64(11)
            if self._resting(bi, ref) and self._take(ref, u32(19)):
                self._event("CANCELS")
        elif t == "D":
            ref = u64(11)
            if self._resting(bi, ref):
                self._remove(ref)
                self._event("DELETES")
        elif t == "U":
            orig, new, qty = u64(11), u64(19), u32(27)
            if self._resting(bi, orig):
                if not qty:
                    self._drop("BAD_SHARES")
                elif new in self.orders:
                    self._drop("DUP_REF")
                else:
                    side = self.orders[orig][1]
                    self._remove(orig)
                    why = self._add(bi, new, side, qty, u32(31) * PRICE_TO_FIXED)
                    if why:
                        self._full(b, why)
                    else:
                        self._event("REPLACES")
        elif t == "P":
            self._trade(b, u32(32) * PRICE_TO_FIXED, u32(20))
            self._event("TRADES")
        elif t == "Q":
            self._trade(b, u32(27) * PRICE_TO_FIXED, u64(11))
            self._event("CROSSES")
        self._publish(b)

    # -- MoldUDP64 -------------------------------------------------------

    def _request(self, now: int) -> None:
        count = min(self.highest - self.expected, self.max_request)
        self.requesting, self.req_ns, self.req_end = True, now, self.expected + count
        if len(self.requests) >= self.tx_capacity:
            self._drop("TX_FULL")
            return
        self.requests.append((self.expected, count))
        self._event("REQUESTS")

    def _gap_to(self, seq: int, now: int) -> None:
        self.highest = max(self.highest, seq)
        if self.stale & STALE_GAP and self.retrans:
            return
        self._event("GAPS")
        self._event("GAP_MSGS", seq - self.expected)
        self._set_stale(STALE_GAP, True)
        if self.retrans:
            self._request(now)
            return
        self.expected = seq

    def _new_session(self, session: bytes) -> None:
        self.session = session
        self.expected = self.highest = 1
        self.requesting = False
        self._event("SESSIONS")
        self.orders.clear()
        self.by_locate.clear()
        self.directory.clear()
        for b in self.books:
            b.levels[0].clear()
            b.levels[1].clear()
            b.unsound = b.trading_state = b.reg_sho = b.last_px = b.last_qty = 0
            b.dirty = 1
        self.stale &= ~(STALE_NO_SESSION | STALE_GAP | STALE_END)
        for b in self.books:
            self._publish(b)

    def _recovery_step(self, now: int) -> None:
        if not (self.stale & STALE_GAP) or not self.retrans:
            return
        if self.expected >= self.highest:
            self.requesting = False
            self._event("RECOVERIES")
            self._set_stale(STALE_GAP, False)
        elif self.expected >= self.req_end:
            self._request(now)

    def packet(self, p: bytes, now: int) -> None:
        """One MoldUDP64 packet (a UDP payload) that arrived at now."""
        if len(p) < 20:
            self._drop("MOLD_TRUNCATED")
            return
        seq, count = struct.unpack_from("!QH", p, 10)
        if seq >= MOLD_SEQ_LIMIT:  # a range that would wrap 64 bits
            self._drop("MOLD_BAD_SEQ")
            return
        self._event("PACKETS")
        if self.session != p[:10]:
            self._new_session(p[:10])
        self.last_rx = now
        self._set_stale(STALE_QUIET, False)
        if count in (0, 0xFFFF):
            self._event("HEARTBEATS" if count == 0 else "END_OF_SESSION")
            if seq > self.expected:
                self._gap_to(seq, now)
            if count == 0xFFFF:
                self._set_stale(STALE_END, True)
            self._recovery_step(now)
            return
        off = 20
        for i in range(count):
            if off + 2 > len(p) or off + 2 + struct.unpack_from("!H", p, off)[0] > len(p):
                self._drop("MOLD_BAD_BLOCK")
                break
            n = struct.unpack_from("!H", p, off)[0]
            m = p[off + 2: off + 2 + n]
            off += 2 + n
            s = seq + i
            if s < self.expected:
                self._drop("DUPLICATE")
                continue
            if s > self.expected:
                self.highest = max(self.highest, seq + count)
                self._gap_to(s, now)
                if self.retrans:
                    self._drop("AHEAD", count - i)
                    break
            self._message(m)
            self.expected = s + 1
        self.highest = max(self.highest, self.expected)
        self._recovery_step(now)

    def timers(self, now: int) -> None:
        """What oms_feed_process runs before its frames."""
        if (self.stale_after_ns and self.session is not None and not self.stale & STALE_QUIET
                and now >= self.last_rx + self.stale_after_ns):
            self._event("QUIET")
            self._set_stale(STALE_QUIET, True)
        if self.requesting and now >= self.req_ns + self.retransmit_ns:
            self._request(now)

    def process(self, payloads: list[bytes], now: int) -> None:
        self.timers(now)
        for p in payloads:
            self._event("FRAMES_IN")
            self.packet(p, now)

    def levels(self, index: int, side: str) -> list[tuple[int, int, int]]:
        b = next(b for b in self.books if b.index == index)
        lv = b.levels[side == "S"]
        return [(px, min(q, U32_MAX), n) for px, (q, n) in
                sorted(lv.items(), reverse=side == "B")]
