"""Random ITCH streams through the C feed and the reference book
(dataplane/book_model.py): adds, executions, cancels, deletes, replaces,
trades, halts, unknown and malformed messages, in MoldUDP64 packets that
get lost (gaps), repeated (duplicates), answered by a retransmission
server or not, interrupted by heartbeats, quiet spells, ends of session and
new sessions.  After every step both must show the same top of book, stale
flags, books, re-requests and counters."""
from __future__ import annotations

from feed_wire import feed_kwargs, multicast, retransmission
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataplane.book_model import FeedModel
from dataplane.feed import Feed, mold_request
from pcaps.itch_layers import itch_message as M
from pcaps.itch_layers import mold_packet

SYMBOLS = [("AAPL", 0, 1), ("MSFT", 5, 2)]  # (symbol, index, locate)
UNSUBSCRIBED = ("IBM", 3)  # locate 3; subscribed late, at index 3, by a "late" step
STALE_AFTER_NS = 2_000_000
RETRANSMIT_NS = 1_000_000
MAX_REQUEST = 6

refs = st.integers(1, 24)
locates = st.sampled_from([1, 1, 1, 2, 2, 3, 9])
prices = st.integers(1_000_000, 1_000_008)
shares = st.one_of(st.integers(1, 300), st.just(0))
small = st.integers(1, 120)
side = st.sampled_from("BBSSX")

add = st.builds(lambda lo, r, s, q, p: M("A", locate=lo, ref=r, side=s, shares=q, price=p),
                locates, refs, side, shares, prices)
messages = st.one_of(
    add, add, add, add,
    st.builds(lambda lo, r, s, q, p: M("F", locate=lo, ref=r, side=s, shares=q, price=p,
                                       attribution="MPID"), locates, refs, side, shares, prices),
    st.builds(lambda lo, r, q: M("E", locate=lo, ref=r, shares=q, match=7), locates, refs, small),
    st.builds(lambda lo, r, q, pr, p: M("C", locate=lo, ref=r, shares=q, printable=pr, price=p),
              locates, refs, small, st.sampled_from("YN"), prices),
    st.builds(lambda lo, r, q: M("X", locate=lo, ref=r, shares=q), locates, refs, small),
    st.builds(lambda lo, r: M("D", locate=lo, ref=r), locates, refs),
    st.builds(lambda lo, r, n, q, p: M("U", locate=lo, orig_ref=r, new_ref=n, shares=q, price=p),
              locates, refs, refs, shares, prices),
    st.builds(lambda lo, q, p: M("P", locate=lo, side="B", shares=q, price=p), locates, small,
              prices),
    st.builds(lambda lo, q, p: M("Q", locate=lo, shares=q, price=p), locates,
              st.sampled_from([0, 500, 1 << 33]), prices),
    st.builds(lambda lo: M("B", locate=lo, match=7), locates),
    st.builds(lambda lo, s: M("H", locate=lo, state=s), locates, st.sampled_from("HPQT")),
    st.builds(lambda lo, a: M("Y", locate=lo, action=a), locates, st.sampled_from("012")),
    st.builds(lambda c: M("S", code=c), st.sampled_from("OSQMEC")),
    st.sampled_from([b"L" + bytes(25), b"Z" * 7, b"", M("A", locate=1, ref=1)[:-1]]),
)

msg = st.tuples(st.just("msg"), messages)
steps = st.lists(st.one_of(
    msg, msg, msg, msg, msg, msg,
    st.tuples(st.just("flush")),
    st.tuples(st.just("flush")),
    st.tuples(st.just("lose")),
    st.tuples(st.just("dup"), st.integers(0, 1000)),
    st.tuples(st.just("hb")),
    st.tuples(st.just("wait"), st.integers(0, 3_000_000)),
    st.tuples(st.just("serve")),
    st.tuples(st.just("serve")),
    st.tuples(st.just("eos")),
    st.tuples(st.just("session")),
    st.tuples(st.just("late")),
), min_size=20, max_size=150)


def directory() -> list[bytes]:
    out = [M("R", locate=lo, stock=s) for s, _, lo in SYMBOLS]
    return out + [M("R", locate=UNSUBSCRIBED[1], stock=UNSUBSCRIBED[0])]


class Driver:
    """The venue side: sequences messages into packets, loses and repeats
    some, and answers re-requests like a MoldUDP64 retransmission server."""

    def __init__(self, c: Feed, model: FeedModel):
        self.c, self.model = c, model
        self.now = 1_000
        self.session_no = 0
        self.requests: list[tuple[int, int]] = []
        self._new_session()

    def _new_session(self) -> None:
        self.session_no += 1
        self.session = f"SESS{self.session_no:06d}"
        self.next_seq, self.by_seq, self.sent, self.batch = 1, {}, [], directory()

    def deliver(self, frames: list[bytes], payloads: list[bytes]) -> None:
        self.now += 1_000
        tx = self.c.process(frames, self.now)
        self.model.process(payloads, self.now)
        got = [mold_request(f)[1:] for f in tx]
        assert got == self.model.requests
        self.requests += got
        self.model.requests.clear()

    def packet(self, deliver: bool) -> None:
        p = mold_packet(self.session, self.next_seq, self.batch)
        for i, m in enumerate(self.batch):
            self.by_seq[self.next_seq + i] = m
        self.next_seq += len(self.batch)
        self.batch = []
        self.sent.append(p)
        if deliver:
            self.deliver([multicast(p)], [p])

    def step(self, op: tuple) -> None:
        kind = op[0]
        if kind == "msg":
            self.batch.append(op[1])
        elif kind in ("flush", "lose") and self.batch:
            self.packet(kind == "flush")
        elif kind == "dup" and self.sent:
            p = self.sent[op[1] % len(self.sent)]
            self.deliver([multicast(p)], [p])
        elif kind in ("hb", "eos"):
            p = mold_packet(self.session, self.next_seq, [], count=0 if kind == "hb" else 0xFFFF)
            self.deliver([multicast(p)], [p])
        elif kind == "wait":
            self.now += op[1]
            self.deliver([], [])
        elif kind == "serve" and self.requests:
            seq, count = self.requests.pop(0)
            msgs = [self.by_seq[s] for s in range(seq, seq + count) if s in self.by_seq]
            p = mold_packet(self.session, seq, msgs)
            self.deliver([retransmission(p)], [p])
        elif kind == "late" and UNSUBSCRIBED[1] not in self.model.tobs:
            # a live reload subscribes a symbol mid-session
            self.c.subscribe(UNSUBSCRIBED[0], UNSUBSCRIBED[1])
            self.model.subscribe(UNSUBSCRIBED[0], UNSUBSCRIBED[1])
        elif kind == "session":
            self.batch and self.packet(True)
            self._new_session()
            self.requests.clear()
            self.packet(True)


def check_same(c: Feed, model: FeedModel) -> None:
    for idx in model.tobs:
        t, m = c.tob(idx), model.tobs[idx]
        for k in ("stale", "halted", "trading_state", "reg_sho", "bid_px", "bid_qty", "ask_px",
                  "ask_qty", "last_px", "last_qty", "updates"):
            assert t[k] == getattr(m, k), (idx, k, t, m)
        assert c.halted(idx) == bool(m.halted)
        for side in "BS":
            assert c.levels(idx, side) == model.levels(idx, side)
    assert c.stale() == model.stale
    assert c.expected_seq() == model.expected
    assert c.live_orders() == len(model.orders)
    assert c.drops() == model.drops
    assert c.events() == model.events


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=steps, retrans=st.booleans(),
       sizes=st.sampled_from([(8, 3), (4096, 256)]))
def test_c_feed_agrees_with_the_reference_book(ops, retrans, sizes):
    max_orders, max_levels = sizes
    c = Feed(**feed_kwargs(retrans, stale_after_ns=STALE_AFTER_NS, retransmit_ns=RETRANSMIT_NS,
                           max_request=MAX_REQUEST, max_orders=max_orders, max_levels=max_levels))
    model = FeedModel(max_orders, max_levels, retrans=retrans, max_request=MAX_REQUEST,
                      stale_after_ns=STALE_AFTER_NS, retransmit_ns=RETRANSMIT_NS)
    for sym, idx, _ in SYMBOLS:
        c.subscribe(sym, idx)
        model.subscribe(sym, idx)
    d = Driver(c, model)
    check_same(c, model)
    for op in ops + [("flush",), ("serve",), ("serve",), ("serve",)]:
        d.step(op)
        check_same(c, model)


def realistic_ops(rng, n: int) -> list[tuple]:
    """A busy stream: most messages touch orders that rest, as a real
    feed's do, so books grow deep and executions, cancels and replaces
    land; packets are lost, repeated and re-requested along the way."""
    live: list[int] = []
    next_ref = 1
    ops: list[tuple] = []
    for _ in range(n):
        r = rng.random()
        lo = rng.choice([1, 1, 1, 2, 2, 3])
        px = rng.randint(999_990, 1_000_010)
        if r < 0.35 or not live:
            side_c = "B" if px < 1_000_000 else "S" if px > 1_000_000 else rng.choice("BS")
            ref = next_ref if rng.random() > 0.02 else rng.randint(1, next_ref)
            next_ref += 1
            ops.append(("msg", M("A", locate=lo, ref=ref, side=side_c,
                                 shares=rng.randint(1, 500), price=px)))
            live.append(ref)
        elif r < 0.45:
            ops.append(("msg", M("E", locate=lo, ref=rng.choice(live),
                                 shares=rng.randint(1, 300), match=1)))
        elif r < 0.50:
            ops.append(("msg", M("C", locate=lo, ref=rng.choice(live), shares=rng.randint(1, 300),
                                 printable=rng.choice("YN"), price=px)))
        elif r < 0.58:
            ops.append(("msg", M("X", locate=lo, ref=rng.choice(live),
                                 shares=rng.randint(1, 300))))
        elif r < 0.66:
            ref = live.pop(rng.randrange(len(live)))
            ops.append(("msg", M("D", locate=lo, ref=ref)))
        elif r < 0.74:
            ref = live.pop(rng.randrange(len(live)))
            ops.append(("msg", M("U", locate=lo, orig_ref=ref, new_ref=next_ref,
                                 shares=rng.randint(1, 500), price=px)))
            live.append(next_ref)
            next_ref += 1
        elif r < 0.76:
            ops.append(("msg", M("H", locate=lo, state=rng.choice("HPQT"))))
        elif r < 0.77:
            ops.append(("msg", M("P", locate=lo, shares=10, price=px)))
        elif r < 0.90:
            ops.append(("flush",))
        elif r < 0.93:
            ops.append(("lose",))
        elif r < 0.95:
            ops.append(("dup", rng.randint(0, 1000)))
        elif r < 0.985:
            ops.append(("serve",))
        elif r < 0.995:
            ops.append(("wait", rng.choice([10_000, 1_500_000, 2_500_000])))
        else:
            ops.append(("hb",))
    return ops


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), retrans=st.booleans(),
       sizes=st.sampled_from([(64, 6), (4096, 256)]))
def test_busy_streams_agree_with_the_reference_book(seed, retrans, sizes):
    import random
    rng = random.Random(seed)
    max_orders, max_levels = sizes
    c = Feed(**feed_kwargs(retrans, stale_after_ns=STALE_AFTER_NS, retransmit_ns=RETRANSMIT_NS,
                           max_request=MAX_REQUEST, max_orders=max_orders, max_levels=max_levels))
    model = FeedModel(max_orders, max_levels, retrans=retrans, max_request=MAX_REQUEST,
                      stale_after_ns=STALE_AFTER_NS, retransmit_ns=RETRANSMIT_NS)
    for sym, idx, _ in SYMBOLS:
        c.subscribe(sym, idx)
        model.subscribe(sym, idx)
    d = Driver(c, model)
    for op in realistic_ops(rng, 600) + [("flush",), ("hb",)]:
        d.step(op)
        check_same(c, model)
    for _ in range(200):  # the server answers until the feed asks no more
        if not d.requests:
            break
        d.step(("serve",))
        check_same(c, model)
    if retrans:
        assert c.stale() & 2 == 0 and c.expected_seq() == d.next_seq


@st.composite
def junk_payloads(draw):
    """Bytes a broken or hostile sender might put in a datagram: valid
    packets cut short or with bytes flipped, wild counts and sequence
    numbers, or noise."""
    kind = draw(st.integers(0, 3))
    msgs = draw(st.lists(messages, min_size=1, max_size=4))
    seq = draw(st.one_of(st.integers(1, 40), st.integers(0, 2**64 - 1),
                         st.integers(2**64 - 0x10003, 2**64 - 1)))
    p = bytearray(mold_packet(draw(st.sampled_from(["SESS000001", "SESS000002"])), seq, msgs))
    if kind == 0:
        return bytes(p[:draw(st.integers(0, len(p)))])
    if kind == 1:
        for _ in range(draw(st.integers(1, 4))):
            p[draw(st.integers(0, len(p) - 1))] ^= draw(st.integers(1, 255))
        return bytes(p)
    if kind == 2:
        p[18:20] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
        return bytes(p)
    return draw(st.binary(max_size=120))


@settings(max_examples=150, deadline=None)
@given(payloads=st.lists(junk_payloads(), max_size=30), retrans=st.booleans())
def test_junk_is_counted_the_same_and_never_crashes(payloads, retrans):
    c = Feed(**feed_kwargs(retrans, stale_after_ns=STALE_AFTER_NS, retransmit_ns=RETRANSMIT_NS,
                           max_request=MAX_REQUEST))
    model = FeedModel(4096, 256, retrans=retrans, max_request=MAX_REQUEST,
                      stale_after_ns=STALE_AFTER_NS, retransmit_ns=RETRANSMIT_NS)
    for sym, idx, _ in SYMBOLS:
        c.subscribe(sym, idx)
        model.subscribe(sym, idx)
    d = Driver(c, model)
    for p in payloads:
        d.deliver([multicast(p)], [p])
        check_same(c, model)
