"""The venue simulator's market data (issue 6 item 6): the C feed handler fed
the simulator's multicast rebuilds exactly the simulator's displayed book,
top of book after every step and every level at the end, also when packets
are lost and re-requested from the simulator's request server; the message
layouts are the project's ITCH layers byte for byte; heartbeats, halts and
the answer delay."""
from __future__ import annotations

import random
import struct

import pytest

from control.config import Appliance, Venue
from dataplane.feed import Feed
from dataplane.venue_client import SimClient
from dataplane.venue_itch import _S, MarketDataConfig
from dataplane.venue_sim import VenueSim
from pcaps.itch_layers import MoldHeader, itch_message

VENUE = Venue(id=1, name="NSDQ", session="NSDQ01", ip="10.0.0.7", port=9000,
              mac="02:00:00:00:00:07")
APP = Appliance(mac="02:00:00:00:00:01", ip="10.0.0.1", strategy_port=7000, venue_port=7001)
MD = MarketDataConfig(group="239.1.1.1", port=26400, session="20261127A1",
                      locates={"AAPL": 7, "MSFT": 8}, request_port=26401, heartbeat_ms=100)
SYMS = ["AAPL", "MSFT"]
T0 = 34_200 * 10**9
MS = 1_000_000


def feed(retrans: bool) -> Feed:
    f = Feed(mac=APP.mac, ip=APP.ip, port=26500, group=MD.group, group_port=MD.port,
             retrans=(VENUE.ip, MD.request_port, VENUE.mac) if retrans else None,
             retransmit_ns=20 * MS)
    for i, s in enumerate(SYMS):
        f.subscribe(s, i)
    return f


def feed_top(f: Feed, i: int) -> tuple[int, int, int, int]:
    t = f.tob(i)
    return (t["bid_px"] // 10_000, t["bid_qty"], t["ask_px"] // 10_000, t["ask_qty"])


def sim_levels(sim: VenueSim, sym: str, side: str) -> list[tuple[int, int]]:
    b = sim._books[sym]
    lv = b.bids if side == "B" else b.asks
    out = []
    for p in sorted(lv, reverse=side == "B"):
        q = sum(o.leaves for o in lv[p] if not (o.dark or o.display == b"N"))
        if q:
            out.append((p * 10_000, q))
    return out


@pytest.mark.parametrize("code,fields", [
    ("S", dict(code="O", timestamp=5)),
    ("R", dict(locate=7, stock="AAPL", timestamp=6)),
    ("H", dict(locate=7, stock="AAPL", state="H", reason="LUDP", timestamp=7)),
    ("A", dict(locate=7, ref=9, side="S", shares=300, stock="AAPL", price=1_520_100)),
    ("E", dict(locate=7, ref=9, shares=100, match=4, timestamp=2**40 + 3)),
    ("X", dict(locate=8, ref=9, shares=100)),
    ("D", dict(locate=8, ref=9)),
    ("U", dict(locate=8, orig_ref=9, new_ref=10, shares=5, price=77)),
    ("P", dict(locate=8, ref=0, side="B", shares=5, stock="MSFT", price=77, match=12)),
])
def test_publisher_messages_are_the_itch_layers_bytes(code, fields):
    from dataplane.venue_itch import ItchPublisher

    pub = ItchPublisher(MD, VENUE.mac, VENUE.ip, SYMS)
    ts = fields.get("timestamp", 0)
    f = dict(fields)
    call = {
        "S": lambda: pub.system_event("O", ts),
        "R": lambda: pub.directory("AAPL", ts),
        "H": lambda: pub.trading_action("AAPL", "H", "LUDP", ts),
        "A": lambda: pub.add("AAPL", 9, False, 300, 1_520_100, ts),
        "E": lambda: pub.executed("AAPL", 9, 100, 4, ts),
        "X": lambda: pub.cancel("MSFT", 9, 100, ts),
        "D": lambda: pub.delete("MSFT", 9, ts),
        "U": lambda: pub.replace("MSFT", 9, 10, 5, 77, ts),
        "P": lambda: pub.trade("MSFT", True, 5, 77, 12, ts),
    }[code]
    call()
    (pkt,) = pub.flush(0)
    assert len(pkt) == 20 + 2 + _S[code].size
    assert pkt[22:] == itch_message(code, **f)
    assert MoldHeader(pkt).seq == 1 and MoldHeader(pkt).count == 1


def drive(sim: VenueSim, f: Feed, steps: int, *, seed: int, loss: float = 0.0) -> dict:
    """Orders at and around the touch, replaces and cancels, in 1 ms steps,
    the venue's own events one at a time between them; after every change
    the feed's top of book must equal the simulator's displayed top (while
    the feed says its book is sound and has seen everything published: a
    lost last packet shows only with the next packet or a heartbeat)."""
    rng = random.Random(seed)
    c = SimClient(sim)
    n = {"compared": 0, "lost": 0}

    def deliver(now: int) -> None:
        out = []
        for fr in sim.take_market_data_frames():
            if rng.random() < loss:
                n["lost"] += 1
            else:
                out.append(fr)
        requests = f.process(out, now)
        for _ in range(8):  # bounded: answers may lead to further requests
            if not requests:
                break
            answers = [a for q in requests for a in sim.market_data.serve_request_frame(q)]
            requests = f.process(answers, now)
        for i, sym in enumerate(SYMS):
            if f.tob(i)["stale"] == 0 and f.expected_seq() == sim.market_data.next_seq:
                assert feed_top(f, i) == sim.displayed_top(sym), (now, sym)
                n["compared"] += 1

    for step in range(steps):
        now = T0 + step * MS
        while (t := sim.next_event_ns()) is not None and t < now:
            c.tick(t)  # exactly the events due at t: one change
            deliver(t)
        r = rng.random()
        live = [o for o in c.orders.values() if o.accepted and not o.done]
        if r < 0.03:
            sym = rng.choice(SYMS)
            side = rng.choice("BS")
            b = sim.book(sym)
            lv = b["bids"] if side == "B" else b["asks"]
            px = (lv[0][0] if lv else 1_000_000) + rng.choice([-100, 0, 100, 200])
            c.enter(now, side, 100 * rng.randint(1, 6), sym, px, rng.choice("003"))
        elif r < 0.035 and live:
            c.cancel(now, rng.choice(live).ref)
        elif r < 0.04 and live:
            o = rng.choice(live)
            left = o.qty - o.filled
            qty = o.filled + max(1, left + rng.choice([-100, -50, 0, 100]))
            c.replace(now, o.ref, qty, o.price + rng.choice([0, 0, -100, 100]))
        else:
            c.tick(now)
        deliver(now)
    n.update(orders=len(c.orders), filled=sum(o.filled > 0 for o in c.orders.values()))
    return n


@pytest.mark.parametrize("profile", [None, "iceberg", "dark"])
def test_feed_rebuilds_the_simulators_book(profile):
    sim = VenueSim(VENUE, APP, symbols=SYMS, seed=5, market_data=MD, profile=profile)
    f = feed(retrans=False)
    got = drive(sim, f, 4000, seed=11)
    assert got["compared"] >= 2 * 4000  # sound after every change
    assert got["filled"] > 10
    assert f.drops() == {}
    for i, sym in enumerate(SYMS):
        for side in "BS":
            assert [(p, q) for p, q, _ in f.levels(i, side)] == sim_levels(sim, sym, side)
    msgs = sim.market_data.stats["messages"]
    assert msgs["A"] > 20 and msgs["E"] > 5
    assert msgs.get("D", 0) > 0 and msgs.get("U", 0) > 0 and msgs.get("X", 0) > 0
    if profile == "dark":
        assert msgs["P"] > 0  # non-displayed orders trade as Trade messages


def test_feed_recovers_from_loss_through_the_request_server():
    sim = VenueSim(VENUE, APP, symbols=SYMS, seed=8, market_data=MD, profile="busy")
    f = feed(retrans=True)
    got = drive(sim, f, 4000, seed=3, loss=0.05)
    ev = f.events()
    assert got["lost"] > 20 and ev["GAPS"] > 5 and ev["RECOVERIES"] > 5
    assert sim.market_data.stats["retransmitted"] >= got["lost"]
    assert got["compared"] > 2 * 4000 * 0.5
    for i, sym in enumerate(SYMS):
        assert f.tob(i)["stale"] == 0
        assert feed_top(f, i) == sim.displayed_top(sym)
        for side in "BS":
            assert [(p, q) for p, q, _ in f.levels(i, side)] == sim_levels(sim, sym, side)


def test_heartbeats_when_quiet_and_requests_too_old_or_foreign():
    sim = VenueSim(VENUE, APP, symbols=SYMS, seed=1, market_data=MD)
    sim.tick(T0)
    opening = sim.take_market_data()
    n = sum(MoldHeader(p).count for p in opening)
    assert n == 1 + 2 + 20  # system event, two directories, five levels a side each
    sim.tick(T0 + 99 * MS)
    assert sim.take_market_data() == []
    sim.tick(T0 + 100 * MS)
    (hb,) = sim.take_market_data()
    assert MoldHeader(hb).count == 0 and MoldHeader(hb).seq == n + 1
    pub = sim.market_data
    assert pub.serve_request(struct.pack(">10sQH", b"20261127A1", 2, 3))[0][18:20] == b"\x00\x03"
    assert pub.serve_request(struct.pack(">10sQH", b"OTHER     ", 2, 3)) == []
    assert pub.stats["bad_requests"] == 1


def test_halt_reaches_the_feed():
    sim = VenueSim(VENUE, APP, symbols=SYMS, seed=1, market_data=MD)
    f = feed(retrans=False)
    sim.halt("MSFT", T0, "H", "LUDP")
    f.process(sim.take_market_data_frames(), T0)
    assert f.halted(1) and not f.halted(0)
    sim.halt("MSFT", T0 + MS, "T")
    f.process(sim.take_market_data_frames(), T0 + MS)
    assert not f.halted(1)


def test_answer_delay_is_seeded_and_dialled():
    def accept_delays(latency, seed):
        sim = VenueSim(VENUE, APP, symbols=SYMS, seed=seed, latency=latency)
        c = SimClient(sim)
        delays = []
        for k in range(20):
            now = T0 + k * 100 * MS
            o = c.enter(now, "B", 100, "AAPL", 1_500_000)
            t = now
            while not o.accepted and t < now + 100 * MS:
                t += 100_000
                c.tick(t)
            delays.append(t - now)
        return delays

    fixed = accept_delays((5_000.0, 0.0), 1)
    assert all(5 * MS <= d <= 5 * MS + 100_000 for d in fixed)
    jit = accept_delays((5_000.0, 0.8), 1)
    assert jit == accept_delays((5_000.0, 0.8), 1)
    assert jit != accept_delays((5_000.0, 0.8), 2)
    assert max(jit) > 2 * min(jit)
