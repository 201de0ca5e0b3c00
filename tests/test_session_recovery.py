"""Session recovery, in-process, with seeded loss and reordering between the
strategy driver, the core and the venue simulators: every order's final state
agrees on all three sides, and none executes twice.

A small deterministic event-driven network: a priority queue of
(deliver_time, n, destination, frame).  Every hop (driver -> core,
core -> driver, core -> venue, venue -> core) drops a frame with probability
`loss` and delays the others by 5..200 us, so frames also reorder; all of it
drawn from random.Random(seed).  The core gets a process_burst call at each
delivery and whenever its next_deadline() is due; the driver and the venues
tick on their own timers.  A workload of a few hundred orders (new, modify,
cancel, IOC, market, short with locate, a mass cancel) runs first; then no
new work is sent and the system runs until it settles (bounded in simulated
time and in events).

Checks, per order: the driver's view (state, cum, leaves, qty, price) equals
the core's order(); the venue's executions for the order's UserRefNums add up
to the same cum (never above the quantity) and are exactly the fills the
driver saw; the venue's live orders agree with the core; no Enter Order was
acted on twice (one Accepted per UserRefNum, no repeated UserRefNum seen by
the venue); no fill was reported twice; and the core's reject_system is
empty.  Parametrized over seeds, loss rates (0, 1%, 5%, 20%) and both
implementations (the C core and the reference model); a second test adds a
1.5 s outage, longer than the 1 s timeouts, on the strategy or the venue
link, so that the session is timed out and logged in again (or the venues
are declared down and picked up again by heartbeats and hellos).

Timers are short (20 ms heartbeats, 2 ms retransmit interval and ticks) so
that recovery takes little simulated time.  Reordering is severe here: the
frames of one burst (a retransmission, say) get independent latencies and
arrive in random order, and every receiver is go-back-N (anything out of
order is dropped), so few messages of a large resent burst are taken; the
driver and the venue simulator therefore ask for small windows and ask again
as soon as a gap shows after progress (see their module docstrings).

The last tests drive the StrategyDriver alone with hand-built appliance
messages (docs/protocol.md offsets).
"""
from __future__ import annotations

import heapq
import random
import socket
import struct
from collections import Counter, defaultdict
from dataclasses import replace

import pytest
import wire

from dataplane.core import Core
from dataplane.reference_model import ReferenceCore
from dataplane.strategy_driver import STATE_NAMES, StrategyDriver
from dataplane.venue_sim import VenueSim, default_ref_price

MS = 1_000_000
US = 1_000
T0 = 1_700_000_000 * 1_000_000_000  # an epoch time, ns
NO_DEADLINE = 2**64 - 1
TICK_NS = 2 * MS  # driver and venue timers
HEARTBEAT_MS = 20  # every side's heartbeat interval
RETRANSMIT_MS = 2  # every side's gap request interval
TIMEOUT_MS = 1000
WORK_ORDERS = 300  # new orders in the workload
SETTLE_LIMIT_NS = 5_000 * MS  # simulated time allowed after the workload
MAX_EVENTS = 400_000
SESSION_ID = 1
SYMBOLS = wire.SYMBOLS
PENDING = {1, 5, 7}  # PendingNew, PendingReplace, PendingCancel
TERMINAL = {4, 8, 9, 10}


def make_config():
    """wire.config() with short timers."""
    cfg = wire.config(orders=4096)
    timers = {"heartbeat_ms": HEARTBEAT_MS, "timeout_ms": TIMEOUT_MS}
    return replace(
        cfg,
        appliance=replace(cfg.appliance, retransmit_ms=RETRANSMIT_MS),
        sessions=tuple(replace(s, **timers) for s in cfg.sessions),
        venues=tuple(replace(v, **timers) for v in cfg.venues),
    )


def core_impls():
    return [pytest.param(Core, id="core"), pytest.param(ReferenceCore, id="model")]


def base36_decode(field_: bytes) -> int:
    return int(field_.rstrip(b" ").decode("ascii"), 36)


def udp_dst(frame: bytes) -> tuple[str, int]:
    """(destination IP, destination port) of an untagged IPv4 frame with IHL 5."""
    return socket.inet_ntoa(frame[30:34]), struct.unpack_from("!H", frame, 36)[0]


def ufo_messages(payload: bytes):
    """(seq, message) of every block of a framing packet."""
    first, count = struct.unpack_from("!QH", payload, 10)
    if count in (0, 0xFFFF):
        return
    off = 20
    for i in range(count):
        (n,) = struct.unpack_from("!H", payload, off)
        yield first + i, payload[off + 2:off + 2 + n]
        off += 2 + n


class World:
    def __init__(self, core_cls, seed: int, loss: float,
                 outage: tuple[int, int, frozenset[str]] | None = None):
        """`outage` = (from, until, hops): every frame sent on those hops in
        that simulated time window (ns after T0) is lost."""
        self.cfg = make_config()
        self.rng = random.Random(seed)
        self.loss = loss
        self.outage = outage
        self.core = core_cls(self.cfg)
        session = self.cfg.session(SESSION_ID)
        self.driver = StrategyDriver(session, self.cfg.appliance)
        self.venues = {
            v.ip: VenueSim(v, self.cfg.appliance, symbols=SYMBOLS, seed=seed * 100 + v.id,
                           retransmit_ms=RETRANSMIT_MS, heartbeat_ms=HEARTBEAT_MS)
            for v in self.cfg.venues}
        self.venue_by_id = {v.id: v for v in self.cfg.venues}
        self.session_ip = session.ip
        self.queue: list[tuple[int, int, str, bytes | None]] = []
        self.n = 0
        self.core_timer_at: set[int] = set()
        self.sent = Counter()
        self.dropped = Counter()
        self.events = 0
        # taps, first copy of each sequence number (before any loss)
        self.tap_to_venue: dict[str, dict[int, bytes]] = defaultdict(dict)
        self.tap_from_venue: dict[str, dict[int, bytes]] = defaultdict(dict)

    # --- network -------------------------------------------------------------

    def push(self, t: int, dest: str, frame: bytes | None) -> None:
        self.n += 1
        heapq.heappush(self.queue, (t, self.n, dest, frame))

    def send(self, now: int, hop: str, dest: str, frames: list[bytes]) -> None:
        cut = self.outage is not None and hop in self.outage[2] and \
            self.outage[0] <= now - T0 < self.outage[1]
        for f in frames:
            self.sent[hop] += 1
            if self.rng.random() < self.loss or cut:
                self.dropped[hop] += 1
                continue
            self.push(now + self.rng.randint(5 * US, 200 * US), dest, f)

    def from_core(self, now: int, frames: list[bytes]) -> None:
        for f in frames:
            ip, port = udp_dst(f)
            if ip == self.session_ip:
                self.send(now, "core->driver", "driver", [f])
            elif ip in self.venues:
                if port == self.venues[ip].venue.port:
                    for seq, msg in ufo_messages(f[42:]):
                        self.tap_to_venue[ip].setdefault(seq, msg)
                self.send(now, "core->venue", ip, [f])
            else:  # pragma: no cover
                raise AssertionError(f"core sent a frame to {ip}:{port}")
        d = self.core.next_deadline()
        if d != NO_DEADLINE and d not in self.core_timer_at:
            self.core_timer_at.add(d)
            self.push(max(d, now), "core_timer", None)

    def from_venue(self, ip: str, now: int, frames: list[bytes]) -> None:
        for f in frames:
            if udp_dst(f)[1] == self.cfg.appliance.venue_port:
                for seq, msg in ufo_messages(f[42:]):
                    self.tap_from_venue[ip].setdefault(seq, msg)
        self.send(now, "venue->core", "core", frames)

    def core_burst(self, now: int, frames: list[bytes]) -> None:
        self.from_core(now, self.core.process_burst(frames, now))

    # --- the run ---------------------------------------------------------------

    def workload(self, start: int) -> int:
        """Schedule the workload's actions; returns when the last one is due."""
        t = start
        for i in range(WORK_ORDERS):
            t += self.rng.randint(200 * US, 1500 * US)
            self.push(t, "new", None)
            if self.rng.random() < 0.6:  # a modify or cancel of some earlier order
                self.push(t + self.rng.randint(0, 3 * MS), "amend", None)
            if i == WORK_ORDERS // 2:
                self.push(t + 1, "mass_cancel", None)
        return t + 3 * MS

    def next_cl_ord_id(self) -> int:
        return 1000 + len(self.driver.orders)

    def amend(self, now: int) -> list[bytes]:
        """Modify or cancel an order that is still live in the driver's view."""
        d, rng = self.driver, self.rng
        known = [o for o in d.orders.values() if not o.terminal]
        if not known:
            return []
        o = rng.choice(known)
        if o.ord_type == 2 or rng.random() < 0.5:
            return d.cancel(now, o.cl_ord_id)
        return d.modify(now, o.cl_ord_id, self.price(o.symbol),
                        max(o.cum_qty + 1, o.qty + rng.randint(-50, 100)))

    def new_order(self, now: int) -> list[bytes]:
        """A new order drawn from the rng: mostly limit day orders around the
        reference price, some IOC, market, sell short with locate, venue 2."""
        d, rng = self.driver, self.rng
        symbol = rng.choice(SYMBOLS)
        side = rng.choice((1, 2, 2, 1, 3)) if rng.random() < 0.3 else rng.choice((1, 2))
        flags = 0x02 if side == 3 else 0
        qty = rng.choice((rng.randint(1, 200), rng.randint(100, 1500)))
        venue = rng.choice((0, 0, 2))
        account = rng.choice((1, 1, 2))
        if rng.random() < 0.05:  # market order: IOC, price 0
            return d.new_order(now, self.next_cl_ord_id(), symbol, 0, qty, side=side,
                               ord_type=2, tif=2, flags=flags, venue=venue, account=account)
        tif = 2 if rng.random() < 0.2 else 1
        return d.new_order(now, self.next_cl_ord_id(), symbol, self.price(symbol), qty,
                           side=side, tif=tif, flags=flags, venue=venue, account=account)

    def price(self, symbol: str) -> int:
        """A limit price around the venues' reference (OUCH ticks of $0.01),
        in strategy units (8 decimals)."""
        ouch = default_ref_price(symbol) + self.rng.randint(-6, 6) * 100
        return ouch * 10**4

    def disagreements(self) -> list:
        """Orders whose driver view differs from the core's, or still pending."""
        out = []
        for cl, o in self.driver.orders.items():
            c = self.core.order(SESSION_ID, cl)
            if c is None or c["state"] in PENDING or c["state"] != o.state_code or \
                    (c["cum_qty"], c["leaves_qty"]) != (o.cum_qty, o.leaves_qty):
                out.append((cl, o.state, o.cum_qty, o.leaves_qty, c and (
                    STATE_NAMES[c["state"]], c["cum_qty"], c["leaves_qty"])))
        return out

    def settled(self) -> bool:
        d = self.driver
        if not d.logged_in or d.request_outstanding:
            return False
        if any(v.request_outstanding for v in self.venues.values()):
            return False
        return not self.disagreements()

    def run(self) -> None:
        self.core_burst(T0, [])  # venue timers start at the first call
        self.send(T0, "driver->core", "core", self.driver.login(T0))
        work_end = self.workload(T0 + 20 * MS)
        self.push(T0 + TICK_NS, "tick", None)
        self.push(work_end + 100 * MS, "check", None)
        limit = work_end + SETTLE_LIMIT_NS
        stable = 0
        while self.queue:
            t, _, dest, frame = heapq.heappop(self.queue)
            if t > limit:
                break
            self.events += 1
            assert self.events < MAX_EVENTS, "the network never went quiet"
            if dest == "core":
                burst = [frame]
                while self.queue and self.queue[0][0] == t and self.queue[0][2] == "core":
                    burst.append(heapq.heappop(self.queue)[3])
                self.core_burst(t, burst)
            elif dest == "core_timer":
                self.core_timer_at.discard(t)
                self.core_burst(t, [])
            elif dest == "driver":
                self.send(t, "driver->core", "core", self.driver.handle_frame(frame, t))
            elif dest in self.venues:
                self.from_venue(dest, t, self.venues[dest].handle_frame(frame, t))
            elif dest == "new":
                self.send(t, "driver->core", "core", self.new_order(t))
            elif dest == "amend":
                self.send(t, "driver->core", "core", self.amend(t))
            elif dest == "mass_cancel":
                self.send(t, "driver->core", "core", self.driver.mass_cancel(t, account=2))
            elif dest == "tick":
                self.send(t, "driver->core", "core", self.driver.tick(t))
                for ip, v in self.venues.items():
                    self.from_venue(ip, t, v.tick(t))
                self.push(t + TICK_NS, "tick", None)
            elif dest == "check":
                stable = stable + 1 if self.settled() else 0
                if stable >= 2:  # settled twice, 100 ms apart
                    return
                self.push(t + 100 * MS, "check", None)
        raise AssertionError(f"not settled {SETTLE_LIMIT_NS // MS} ms after the workload: "
                             f"{self.disagreements()[:5]} {self.summary()}")

    def summary(self) -> str:
        return (f"sent {dict(self.sent)} dropped {dict(self.dropped)} events {self.events} "
                f"driver {self.driver.stats} core {self.core.stats()['event']}")

    # --- the venue's view ---------------------------------------------------------

    def venue_view(self, ip: str):
        """From what the core sent the venue and what the venue sent back:
        UserRefNum -> cl_ord_id, executions per cl_ord_id, Accepted/Rejected
        count per UserRefNum."""
        ref_order: dict[int, int] = {}
        enters: list[int] = []
        for _seq, m in sorted(self.tap_to_venue[ip].items()):
            if m[:1] == b"O":
                (ref,) = struct.unpack_from("!I", m, 1)
                ref_order[ref] = base36_decode(m[31:45])
                enters.append(ref)
            elif m[:1] == b"U":
                orig, ref = struct.unpack_from("!II", m, 1)
                ref_order[ref] = ref_order[orig]
        execs: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        answers: Counter = Counter()
        for _seq, m in sorted(self.tap_from_venue[ip].items()):
            kind = m[:1]
            if kind == b"E":
                ref, qty, price, _flag, match = struct.unpack_from("!IIQcQ", m, 9)
                execs[ref_order[ref]].append((match, qty, price * 10**4))
            elif kind in (b"A", b"J") and struct.unpack_from("!I", m, 9)[0] in enters:
                answers[struct.unpack_from("!I", m, 9)[0]] += 1
        return ref_order, enters, execs, answers


def check_agreement(w: World) -> None:
    """The acceptance checks (module docstring)."""
    d, core = w.driver, w.core
    stats = core.stats()
    assert len(d.orders) == WORK_ORDERS
    assert stats["reject_system"] == {}
    assert d.unmatched == [] and d.session_rejects == [] and d.retransmit_rejects == []
    assert d.login_rejects == []

    # driver == core, order by order
    ends = Counter()
    for cl, o in d.orders.items():
        c = core.order(SESSION_ID, cl)
        assert c is not None, f"order {cl} unknown to the core"
        assert c["state"] not in PENDING, (cl, c)
        assert (o.state, o.cum_qty, o.leaves_qty) == (
            STATE_NAMES[c["state"]], c["cum_qty"], c["leaves_qty"]), (cl, o, c)
        assert (o.qty, o.price) == (c["qty"], c["price"]), (cl, o, c)
        # no fill reported twice
        matches = [m for m, _, _ in o.fills]
        assert len(matches) == len(set(matches)), (cl, o.fills)
        assert sum(q for _, q, _ in o.fills) == o.cum_qty <= o.qty
        ends[o.state] += 1
    # the workload reached the interesting end states
    assert ends["Filled"] and ends["Canceled"] and ends["Expired"], ends

    # the venues agree
    routed = set()
    for ip, sim in w.venues.items():
        ref_order, enters, execs, answers = w.venue_view(ip)
        # every Enter Order acted on exactly once: one Accepted/Rejected per UserRefNum
        assert len(enters) == len(set(enters))
        assert sim.stats["received"].get("O", 0) == len(enters)
        assert all(answers[ref] == 1 for ref in enters), [r for r in enters if answers[r] != 1]
        assert "ref_not_increasing" not in sim.stats["ignored"]
        venue_id = next(v.id for v in w.cfg.venues if v.ip == ip)
        live = sim.live_orders()
        orders = set(ref_order.values())
        routed |= orders
        for cl in orders:
            o, c = d.orders[cl], core.order(SESSION_ID, cl)
            assert c["venue"] == venue_id
            # the venue's executions are exactly the fills the driver saw
            assert sorted(execs[cl]) == sorted(o.fills), (cl, execs[cl], o.fills)
            assert sum(q for _, q, _ in execs[cl]) == c["cum_qty"] <= c["qty"]
            if c["state"] in TERMINAL:
                assert c["ref"] not in live, (cl, c, live.get(c["ref"]))
            else:
                v = live[c["ref"]]
                assert (v["executed"], v["leaves"], v["qty"]) == (
                    c["cum_qty"], c["leaves_qty"], c["qty"]), (cl, v, c)
        assert len(live) == sum(1 for cl in orders
                                if core.order(SESSION_ID, cl)["state"] not in TERMINAL)
    # every order went to a venue (no core-side reject in this workload)
    assert routed == set(d.orders)


CASES = [(seed, loss) for loss in (0.0, 0.01, 0.05, 0.2) for seed in (1, 2, 3, 4)]


@pytest.mark.parametrize("core_cls", core_impls())
@pytest.mark.parametrize("seed,loss", CASES, ids=[f"seed{s}-loss{int(p * 100)}pct"
                                                   for s, p in CASES])
def test_orders_agree_on_all_three_sides(core_cls, seed, loss):
    w = World(core_cls, seed, loss)
    w.run()
    check_agreement(w)
    stats = w.core.stats()
    if loss == 0:
        assert not w.dropped
    if loss >= 0.05:  # loss really happened on every hop, and was recovered
        assert all(w.dropped[hop] for hop in w.sent), w.summary()
        assert w.driver.stats["requests_out"] and w.driver.stats["retransmitted"]
        assert stats["event"].get("SP_SEQ_GAPS") and stats["event"].get("VENUE_SEQ_GAPS")
        assert stats["event"].get("SP_RETRANSMITTED") and \
            stats["event"].get("VENUE_RETRANSMITTED")
        assert any(v.stats["requests_out"] and v.stats["retransmitted"]
                   for v in w.venues.values())


STRATEGY_HOPS = frozenset(("driver->core", "core->driver"))
VENUE_HOPS = frozenset(("core->venue", "venue->core"))


@pytest.mark.parametrize("core_cls", core_impls())
@pytest.mark.parametrize("hops", [STRATEGY_HOPS, VENUE_HOPS], ids=["strategy", "venue"])
def test_outage_longer_than_the_timeout(core_cls, hops):
    """A 1.5 s outage (longer than the 1 s timeouts) in the middle of the
    workload, on top of 5% loss: the core times the session (or the venues)
    out, and everything is recovered after it: the driver logs in again and
    both sides replay what the other missed; the venue session is picked up
    again by heartbeats and hellos."""
    w = World(core_cls, 5, 0.05, outage=(100 * MS, 1600 * MS, hops))
    w.run()
    check_agreement(w)
    event = w.core.stats()["event"]
    if hops == STRATEGY_HOPS:
        assert event.get("SESSION_TIMEOUTS") and event["LOGINS"] >= 2
        assert w.driver.stats["relogins"] >= 1
    else:
        assert event.get("VENUE_TIMEOUTS") and event.get("VENUE_RECONNECTS")


# --- the strategy driver on its own: hand-built appliance messages, spec offsets ---

SESSION = wire.SESSIONS[0]
APP = wire.APPLIANCE
NOW = T0 + 123


def ones_complement(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def driver_payload(frame: bytes) -> bytes:
    """Checks a frame the driver sent (layers, addresses, checksums) and
    returns its UDP payload."""
    assert frame[0:6] == bytes.fromhex(APP.mac.replace(":", ""))
    assert frame[6:12] == bytes.fromhex(SESSION.mac.replace(":", ""))
    assert frame[12:14] == b"\x08\x00"
    ip = frame[14:34]
    ver, tos, total, ident, frag, ttl, proto, _c, src, dst = struct.unpack("!BBHHHBBH4s4s", ip)
    assert (ver, tos, ident, frag, ttl, proto) == (0x45, 0, 0, 0x4000, 64, 17)
    assert (src, dst) == (socket.inet_aton(SESSION.ip), socket.inet_aton(APP.ip))
    assert total == len(frame) - 14 and ones_complement(ip) == 0
    udp = frame[34:]
    sport, dport, ulen, ucsum = struct.unpack_from("!HHHH", udp)
    assert (sport, dport, ulen) == (SESSION.port, APP.strategy_port, len(udp))
    assert ucsum != 0
    assert ones_complement(src + dst + struct.pack("!BBH", 0, 17, ulen) + udp) == 0
    return udp[8:]


def header(payload: bytes) -> tuple:
    """(version, type, length, session, seq, timestamp) at offsets 0/1/2/4/8/16."""
    return struct.unpack_from("<BBHIQQ", payload)


def retransmit_request(payload: bytes) -> tuple[int, int]:
    """RetransmitRequest 0x04, 40 bytes: from_seq at 24, count at 32."""
    assert header(payload)[1:3] == (0x04, 40)
    return struct.unpack_from("<QI", payload, 24)


def to_driver(*msgs: bytes) -> bytes:
    return wire.udp_frame(APP.mac, SESSION.mac, APP.ip, SESSION.ip, APP.strategy_port,
                          SESSION.port, b"".join(msgs))


def accepted(seq, cl, price=150_0000_0000, qty=100, venue=1):
    return wire.sp(0x90, 1, seq, struct.pack("<QqIHH", cl, price, qty, venue, 0))


def fill(seq, cl, qty, cum, leaves, match, price=150_0000_0000):
    return wire.sp(0x94, 1, seq, struct.pack("<QqIIIIQ", cl, price, qty, cum, leaves, 0, match))


def canceled(seq, cl, dec, leaves, reason=1):
    return wire.sp(0x93, 1, seq, struct.pack("<QIIB7x", cl, dec, leaves, reason))


def replaced(seq, cl, price, qty, leaves):
    return wire.sp(0x92, 1, seq, struct.pack("<QqII", cl, price, qty, leaves))


def rejected(seq, cl, reason, ref_type, code=0):
    return wire.sp(0x91, 1, seq, struct.pack("<QHBBI", cl, reason, ref_type, code, 0))


def login_accepted(their_next, their_expected):
    return wire.sp(0x81, 1, their_next, struct.pack("<Q", their_expected))


def new_driver(**kw) -> StrategyDriver:
    kw.setdefault("heartbeat_ms", 100)
    kw.setdefault("retransmit_ms", 10)
    return StrategyDriver(replace(SESSION, timeout_ms=1000), APP, **kw)


def logged_in_driver(**kw) -> StrategyDriver:
    d = new_driver(**kw)
    d.login(NOW)
    assert d.handle_frame(to_driver(login_accepted(1, 1)), NOW) == []
    assert d.logged_in
    return d


def test_driver_messages_on_the_wire():
    d = new_driver()
    (f,) = d.login(NOW)
    assert driver_payload(f) == wire.sp(0x01, 1, 1, struct.pack("<Q", 1), ts=NOW)
    (f,) = d.new_order(NOW, 12345, "AAPL", 150_2500_0000, 100)
    # the protocol doc's example: NewOrder, seq 1, cl_ord_id 12345, account 1, ...
    assert driver_payload(f) == wire.sp(0x10, 1, 1, wire.new_order(1, 1, 12345)[24:], ts=NOW)
    (f,) = d.modify(NOW, 12345, 150_0000_0000, 200)
    assert driver_payload(f) == wire.sp(0x11, 1, 2, wire.modify(1, 2, 12345, 150_0000_0000,
                                                                 200)[24:], ts=NOW)
    (f,) = d.cancel(NOW, 12345)
    assert driver_payload(f) == wire.sp(0x12, 1, 3, struct.pack("<Q", 12345), ts=NOW)
    (f,) = d.mass_cancel(NOW, account=7)
    assert driver_payload(f) == wire.sp(0x13, 1, 4, struct.pack("<II", 7, 0), ts=NOW)
    (f,) = d.logout(NOW)
    assert driver_payload(f) == wire.sp(0x02, 1, 5, ts=NOW)  # seq: the next, not consumed
    assert d.next_out == 5
    assert d.orders[12345].state == "PendingNew" and d.orders[12345].leaves_qty == 100


def test_driver_against_the_model_login_and_order():
    cfg = make_config()
    core = ReferenceCore(cfg)
    d = StrategyDriver(cfg.session(1), cfg.appliance)
    out = core.process_burst(d.login(NOW), NOW)
    assert [d.handle_frame(f, NOW) for f in out] == [[]] and d.logged_in
    out = core.process_burst(d.new_order(NOW, 7, "AAPL", 150_0000_0000, 10), NOW)
    assert len(out) == 1 and udp_dst(out[0]) == ("10.10.2.1", 9200)  # Enter to venue 1
    assert core.order(1, 7)["state"] == 1


def test_driver_go_back_n_on_the_appliance_stream():
    d = logged_in_driver()
    d.new_order(NOW, 1, "AAPL", 150_0000_0000, 100)
    # seq 2 before seq 1: dropped, 1..2 requested
    (f,) = d.handle_frame(to_driver(fill(2, 1, 40, 40, 60, match=9)), NOW)
    assert retransmit_request(driver_payload(f)) == (1, 2)
    assert header(driver_payload(f))[4] == 2  # header seq: the driver's next number
    assert d.orders[1].fills == [] and d.stats["out_of_order"] == 1
    # another gap within retransmit_ms: nothing more is sent
    assert d.handle_frame(to_driver(fill(3, 1, 60, 100, 0, match=10)), NOW + 5 * MS) == []
    # seq 1 arrives: applied; 2..3 still wanted, request stays outstanding
    assert d.handle_frame(to_driver(accepted(1, 1)), NOW + 6 * MS) == []
    assert d.orders[1].state == "New" and d.request_outstanding
    # after progress, the next out-of-order message asks again at once
    (f,) = d.handle_frame(to_driver(fill(3, 1, 60, 100, 0, match=10)), NOW + 7 * MS)
    assert retransmit_request(driver_payload(f)) == (2, 2)
    # the resent 1..3: 1 is a duplicate, 2 and 3 are applied in order
    for m in (accepted(1, 1), fill(2, 1, 40, 40, 60, match=9), fill(3, 1, 60, 100, 0, match=10)):
        d.handle_frame(to_driver(m), NOW + 8 * MS)
    o = d.orders[1]
    assert (o.state, o.cum_qty, o.leaves_qty, o.fills) == (
        "Filled", 100, 0, [(9, 40, 150_0000_0000), (10, 60, 150_0000_0000)])
    assert d.stats["duplicates"] == 1 and not d.request_outstanding and d.next_expected == 4
    # a duplicate fill is never applied twice
    d.handle_frame(to_driver(fill(3, 1, 60, 100, 0, match=10)), NOW + 9 * MS)
    assert len(o.fills) == 2 and d.stats["duplicates"] == 2


def test_driver_request_window_and_timer():
    d = logged_in_driver(request_window=4)
    # the appliance's heartbeat says its next is 11: 1..10 are wanted, 4 at a time
    (f,) = d.handle_frame(to_driver(wire.sp(0x03, 1, 11)), NOW)
    assert retransmit_request(driver_payload(f)) == (1, 4)
    assert d.tick(NOW + 9 * MS) == []
    (f,) = d.tick(NOW + 10 * MS)  # unanswered for retransmit_ms: again
    assert retransmit_request(driver_payload(f)) == (1, 4)
    for seq in (1, 2, 3):
        assert d.handle_frame(to_driver(accepted(seq, 100 + seq)), NOW + 11 * MS) == []
    # the window is in: the next one is asked for at once
    (f,) = d.handle_frame(to_driver(accepted(4, 104)), NOW + 11 * MS)
    assert retransmit_request(driver_payload(f)) == (5, 4)
    assert [u[0] for u in d.unmatched] == ["Accepted"] * 4  # orders it never sent
    # a heartbeat that is not ahead asks for nothing
    d2 = logged_in_driver()
    assert d2.handle_frame(to_driver(wire.sp(0x03, 1, 1)), NOW) == []


def test_driver_serves_retransmit_requests_byte_identical():
    d = logged_in_driver(replay_depth=16)
    sent = [d.new_order(NOW + i, i, "AAPL", 150_0000_0000, 10)[0] for i in range(1, 4)]
    req = wire.sp(0x04, 1, 1, struct.pack("<QII", 2, 10, 0))
    assert d.handle_frame(to_driver(req), NOW + 50) == sent[1:]  # clipped at the next
    assert d.stats["retransmitted"] == 2 and d.next_out == 4
    assert d.handle_frame(to_driver(wire.sp(0x04, 1, 1, struct.pack("<QII", 2, 0, 0))),
                          NOW) == []  # count 0
    (f,) = d.handle_frame(to_driver(wire.sp(0x04, 1, 1, struct.pack("<QII", 9, 1, 0))), NOW)
    assert header(driver_payload(f))[1:5] == (0x03, 24, 1, 4)  # beyond: a Heartbeat
    for i in range(4, 30):
        d.new_order(NOW, i, "AAPL", 150_0000_0000, 10)
    assert d.oldest_held == 30 - 16
    assert d.handle_frame(to_driver(wire.sp(0x04, 1, 1, struct.pack("<QII", 1, 3, 0))),
                          NOW) == []
    assert d.stats["retransmit_too_old"] == 1
    # RetransmitReject (0x84): from_seq 24, count 32, reason 36
    d.handle_frame(to_driver(wire.sp(0x84, 1, 1, struct.pack("<QIB3x", 5, 7, 1))), NOW)
    assert d.retransmit_rejects == [(5, 7, 1)]


def test_driver_login_recovery_and_timers():
    d = new_driver()
    d.login(NOW)
    sent = [d.new_order(NOW, i, "AAPL", 150_0000_0000, 10)[0] for i in (1, 2, 3)]
    assert d.tick(NOW + 99 * MS) == []
    (f,) = d.tick(NOW + 100 * MS)  # Login unanswered for heartbeat_ms: again
    assert header(driver_payload(f))[1] == 0x01
    # the appliance got message 1 only, and has sent 5 we have not seen
    out = d.handle_frame(to_driver(login_accepted(6, 2)), NOW + 101 * MS)
    assert out == sent[1:]  # the driver's 2..3 again, byte for byte
    assert d.request_outstanding  # the appliance serves 1..5 on its own
    assert d.tick(NOW + 110 * MS) == []
    (f,) = d.tick(NOW + 111 * MS)  # ... and asked for if late
    assert retransmit_request(driver_payload(f)) == (1, 5)
    for seq in range(1, 6):
        d.handle_frame(to_driver(accepted(seq, 1)), NOW + 112 * MS)
    assert not d.request_outstanding
    # idle: a Heartbeat with the driver's next number
    (f,) = d.tick(NOW + 300 * MS)
    assert header(driver_payload(f))[1:5] == (0x03, 24, 1, 4)
    # nothing heard for the session timeout: log in again, expecting 6
    (f,) = d.tick(NOW + 112 * MS + 1000 * MS)
    assert driver_payload(f)[:2] == b"\x01\x01" and struct.unpack_from("<Q", driver_payload(f),
                                                                        24) == (6,)
    assert not d.logged_in and d.stats["relogins"] == 1
    d.handle_frame(to_driver(wire.sp(0x82, 1, 6, struct.pack("<B7x", 2))), NOW + 2000 * MS)
    assert d.login_rejects == [2]


def test_driver_order_views_follow_the_reports():
    d = logged_in_driver()
    for cl in range(1, 6):
        d.new_order(NOW, cl, "AAPL", 150_0000_0000, 100, tif=2 if cl == 3 else 1)
    msgs = [
        accepted(1, 1), replaced(2, 1, 151_0000_0000, 150, 150),  # 1: Replaced
        accepted(3, 2), fill(4, 2, 30, 30, 70, match=1),
        rejected(5, 2, 14, 0x11, code=0x13),  # 2: a rejected Modify changes nothing
        accepted(6, 3), fill(7, 3, 10, 10, 90, match=2), canceled(8, 3, 90, 0, reason=2),
        rejected(9, 4, 14, 0x10, code=0x17),  # 4: the venue rejected the order
        accepted(10, 5), fill(11, 5, 20, 20, 80, match=3),
        replaced(12, 5, 150_0000_0000, 20, 0),  # 5: replaced down to what was filled
        canceled(13, 2, 70, 0),  # 2: canceled at last
        wire.sp(0x9F, 1, 14, struct.pack("<QBB6x", 77, 1, 0x55)),
    ]
    for m in msgs:
        assert d.handle_frame(to_driver(m), NOW) == []
    v = {cl: (o.state, o.cum_qty, o.leaves_qty) for cl, o in d.orders.items()}
    assert v == {1: ("Replaced", 0, 150), 2: ("Canceled", 30, 0), 3: ("Expired", 10, 0),
                 4: ("Rejected", 0, 100), 5: ("Filled", 20, 0)}
    assert (d.orders[1].price, d.orders[1].qty) == (151_0000_0000, 150)
    assert d.orders[2].rejects == [(0x11, 14, 0x13)]
    assert d.session_rejects == [(77, 1, 0x55)]
    assert d.orders[3].state_code == 10 and d.orders[3].terminal


def test_driver_ignores_frames_not_for_it():
    d = logged_in_driver()
    good = to_driver(accepted(1, 1))
    assert d.handle_frame(good[:-1] + bytes([good[-1] ^ 1]), NOW) == []
    other = wire.udp_frame(APP.mac, SESSION.mac, APP.ip, SESSION.ip, APP.strategy_port,
                           SESSION.port + 1, accepted(1, 1))
    assert d.handle_frame(other, NOW) == []
    assert d.handle_frame(b"\x00" * 10, NOW) == []
    assert d.stats["bad_frames"] == {"udp_checksum": 1, "not_for_session": 1, "runt": 1}
    assert d.next_expected == 1
