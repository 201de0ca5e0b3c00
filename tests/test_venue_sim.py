"""The OUCH 5.0 venue simulator (dataplane/venue_sim.py).

Every OUCH message and framing header here is built and parsed by hand with
struct, at the offsets of the OUCH 5.0 tables (docs/research-ouch-ufo.md §1)
and the framing of cdefs/ouch_wire.h, never with the module's own encoders."""
from __future__ import annotations

import socket
import struct
import sys
import threading
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from control.config import Appliance, Venue  # noqa: E402 (needs the sys.path entry above)
from dataplane.venue_sim import VenueSim, serve_udp  # noqa: E402

VENUE = Venue(id=1, name="NSDQ", session="NSDQ01", ip="10.0.0.2", port=9000,
              mac="02:00:00:00:00:02")
APPLIANCE = Appliance(mac="02:00:00:00:00:01", ip="10.0.0.1", strategy_port=7000,
                      venue_port=7001)
SESSION = b"NSDQ01    "
NOW = 2 * 86_400_000_000_000 + 34_200_123_456_789  # 09:30:00.123456789, two days in
TS = 34_200_123_456_789
MARKET = 0x7FFFFFFF
LOCATED = b"\x02\x19Y"  # TagValue: length 2, tag 25 SharesLocated, 'Y'


def usd(dollars: str) -> int:
    """'150.01' -> 1500100 (4 implied decimals)."""
    whole, _, frac = dollars.partition(".")
    return int(whole) * 10_000 + int(frac.ljust(4, "0"))


# --- hand-built inbound messages (OUCH 5.0 §2) ------------------------------


def enter(ref, side, qty, symbol, price, tif=b"0", clordid=b"ORDER1", app=b""):
    """Enter Order 'O' §2.1: Type 0, UserRefNum 1, Side 5, Quantity 6, Symbol 10,
    Price 18, TIF 26, Display 27, Capacity 28, ISO 29, CrossType 30,
    ClOrdID 31, AppLen 45, appendage 47."""
    m = bytearray(47)
    m[0:1] = b"O"
    struct.pack_into(">I", m, 1, ref)
    m[5:6] = side
    struct.pack_into(">I", m, 6, qty)
    m[10:18] = symbol.ljust(8, b" ")
    struct.pack_into(">Q", m, 18, price)
    m[26:31] = tif + b"YAN" + b"N"
    m[31:45] = clordid.ljust(14, b" ")
    struct.pack_into(">H", m, 45, len(app))
    return bytes(m) + app


def replace(orig, ref, qty, price, tif=b"0", clordid=b"ORDER1", app=b""):
    """Replace Order 'U' §2.2: OrigUserRefNum 1, UserRefNum 5, Quantity 9,
    Price 13, TIF 21, Display 22, ISO 23, ClOrdID 24, AppLen 38."""
    m = bytearray(40)
    m[0:1] = b"U"
    struct.pack_into(">IIIQ", m, 1, orig, ref, qty, price)
    m[21:24] = tif + b"YN"
    m[24:38] = clordid.ljust(14, b" ")
    struct.pack_into(">H", m, 38, len(app))
    return bytes(m) + app


def cancel(ref, qty):
    """Cancel Order 'X' §2.3: UserRefNum 1, Quantity 5; 9 bytes."""
    return b"X" + ref.to_bytes(4, "big") + qty.to_bytes(4, "big")


def packet(seq, *msgs, session=SESSION):
    body = b"".join(len(m).to_bytes(2, "big") + m for m in msgs)
    return session + seq.to_bytes(8, "big") + len(msgs).to_bytes(2, "big") + body


# --- hand-written parsers of the outbound messages (OUCH 5.0 §3) -------------


def u(m, off, n):
    return int.from_bytes(m[off:off + n], "big")


def decode(m):
    t = m[0:1]
    d = {"type": t, "len": len(m), "ts": u(m, 1, 8)}
    if t == b"A":
        d.update(ref=u(m, 9, 4), side=m[13:14], qty=u(m, 14, 4), symbol=m[18:26],
                 price=u(m, 26, 8), tif=m[34:35], display=m[35:36], orn=u(m, 36, 8),
                 capacity=m[44:45], iso=m[45:46], cross=m[46:47], state=m[47:48],
                 clordid=m[48:62], applen=u(m, 62, 2))
    elif t == b"U":
        d.update(orig=u(m, 9, 4), ref=u(m, 13, 4), side=m[17:18], qty=u(m, 18, 4),
                 symbol=m[22:30], price=u(m, 30, 8), tif=m[38:39], orn=u(m, 40, 8),
                 state=m[51:52], clordid=m[52:66], applen=u(m, 66, 2))
    elif t == b"C":
        d.update(ref=u(m, 9, 4), qty=u(m, 13, 4), reason=m[17:18])
    elif t == b"E":
        d.update(ref=u(m, 9, 4), qty=u(m, 13, 4), price=u(m, 17, 8), flag=m[25:26],
                 match=u(m, 26, 8), applen=u(m, 34, 2))
    elif t == b"J":
        d.update(ref=u(m, 9, 4), reason=u(m, 13, 2), clordid=m[15:29])
    elif t == b"Q":
        d.update(next_ref=u(m, 9, 4))
    return d


def unpack_packet(p):
    """-> (session, first seq, [message bytes])"""
    session, seq, count = p[:10], u(p, 10, 8), u(p, 18, 2)
    msgs, off = [], 20
    for _ in range(count):
        n = u(p, off, 2)
        msgs.append(p[off + 2:off + 2 + n])
        off += 2 + n
    assert off == len(p)
    return session, seq, msgs


def messages(packets):
    return [decode(m) for p in packets for m in unpack_packet(p)[2]]


def brief(msgs):
    """Compact view: (type, ref, qty, price/reason, flag)."""
    out = []
    for d in msgs:
        t = d["type"].decode()
        if t == "E":
            out.append((t, d["ref"], d["qty"], d["price"], d["flag"].decode()))
        elif t == "C":
            out.append((t, d["ref"], d["qty"], d["reason"].decode()))
        elif t == "J":
            out.append((t, d["ref"], d["reason"]))
        elif t == "U":
            out.append((t, d["orig"], d["ref"], d["qty"], d["price"]))
        else:
            out.append((t, d["ref"], d["qty"], d["price"]))
    return out


class Harness:
    def __init__(self, **kw):
        kw.setdefault("p_passive", 0.0)
        kw.setdefault("ref_prices", {"AAPL": usd("150.00")})
        self.sim = VenueSim(VENUE, APPLIANCE, symbols=["AAPL", "MSFT"], **kw)
        self.seq = 1

    def send(self, *msgs, now=NOW):
        out = self.sim.handle_payload(packet(self.seq, *msgs), now)
        self.seq += len(msgs)
        return out

    def run(self, *msgs, now=NOW):
        return brief(messages(self.send(*msgs, now=now)))


# --- tests -------------------------------------------------------------------


def test_seeded_book_shape():
    h = Harness()
    book = h.sim.book("AAPL")
    assert [p for p, _ in book["bids"]] == [usd(x) for x in
                                            ("149.99", "149.98", "149.97", "149.96", "149.95")]
    assert [p for p, _ in book["asks"]] == [usd(x) for x in
                                            ("150.01", "150.02", "150.03", "150.04", "150.05")]
    assert all(100 <= q <= 1000 for side in book.values() for _, q in side)


def test_accept_fields():
    h = Harness()
    out = h.send(enter(1, b"B", 100, b"AAPL", usd("149.00"), clordid=b"ABC123"))
    assert len(out) == 1
    session, seq, msgs = unpack_packet(out[0])
    assert (session, seq, len(msgs)) == (SESSION, 1, 1)
    a = decode(msgs[0])
    assert a == {"type": b"A", "len": 64, "ts": TS, "ref": 1, "side": b"B", "qty": 100,
                 "symbol": b"AAPL    ", "price": usd("149.00"), "tif": b"0",
                 "display": b"Y", "orn": 1, "capacity": b"A", "iso": b"N", "cross": b"N",
                 "state": b"L", "clordid": b"ABC123        ", "applen": 0}
    assert h.sim.stats["received"] == {"O": 1}
    assert h.sim.stats["sent"] == {"A": 1}
    # the order rests at 149.00 on the bid side
    assert (usd("149.00"), 100) in h.sim.book("AAPL")["bids"]
    # second order: next Order Reference Number, next outbound sequence number
    out = h.send(enter(2, b"S", 5, b"MSFT", usd("999.00")))
    session, seq, msgs = unpack_packet(out[0])
    assert seq == 2 and decode(msgs[0])["orn"] == 2


def test_cross_fills_at_resting_prices():
    h = Harness()
    asks = h.sim.book("AAPL")["asks"]
    a1, a2 = asks[0][1], asks[1][1]
    out = h.send(enter(1, b"B", a1 + 10, b"AAPL", usd("150.02")))
    assert [unpack_packet(p)[1] for p in out] == [1, 2, 3]  # one message per packet
    msgs = messages(out)
    assert brief(msgs) == [("A", 1, a1 + 10, usd("150.02")),
                           ("E", 1, a1, usd("150.01"), "R"),
                           ("E", 1, 10, usd("150.02"), "R")]
    assert [m["match"] for m in msgs[1:]] == [1, 2]
    assert all(m["len"] == 36 and m["applen"] == 0 for m in msgs[1:])
    assert h.sim.book("AAPL")["asks"][0] == (usd("150.02"), a2 - 10)
    assert h.sim.live_orders() == {}  # fully filled
    # a sell through the bids fills at the bid prices, best first
    b1 = h.sim.book("AAPL")["bids"][0][1]
    assert h.run(enter(2, b"S", b1 + 1, b"AAPL", usd("149.98"))) == [
        ("A", 2, b1 + 1, usd("149.98")),
        ("E", 2, b1, usd("149.99"), "R"),
        ("E", 2, 1, usd("149.98"), "R")]


def test_ioc_remainder_canceled():
    h = Harness()
    asks = h.sim.book("AAPL")["asks"]
    a1, a2 = asks[0][1], asks[1][1]
    assert h.run(enter(1, b"B", a1 + a2 + 50, b"AAPL", usd("150.02"), tif=b"3")) == [
        ("A", 1, a1 + a2 + 50, usd("150.02")),
        ("E", 1, a1, usd("150.01"), "R"),
        ("E", 1, a2, usd("150.02"), "R"),
        ("C", 1, 50, "I")]
    assert h.sim.live_orders() == {}
    # IOC that crosses nothing: accepted, then canceled whole
    assert h.run(enter(2, b"B", 10, b"AAPL", usd("140.00"), tif=b"3")) == [
        ("A", 2, 10, usd("140.00")), ("C", 2, 10, "I")]


def test_market_order_sweeps_every_level():
    h = Harness()
    asks = h.sim.book("AAPL")["asks"]
    total = sum(q for _, q in asks)
    got = h.run(enter(1, b"B", total + 7, b"AAPL", MARKET, tif=b"3"))
    assert got == ([("A", 1, total + 7, MARKET)]
                   + [("E", 1, q, p, "R") for p, q in asks]
                   + [("C", 1, 7, "I")])
    assert h.sim.book("AAPL")["asks"] == []


@pytest.mark.parametrize("side,qty,symbol,price,app,reason", [
    (b"B", 0, b"AAPL", usd("150.00"), b"", 0x0013),
    (b"B", 1_000_000, b"AAPL", usd("150.00"), b"", 0x0013),
    (b"B", 100, b"ZZZZ", usd("150.00"), b"", 0x0017),
    (b"B", 100, b"AAPL", 1_999_999_901, b"", 0x001D),
    (b"B", 100, b"AAPL", 2_000_000_000, b"", 0x001D),
    (b"X", 100, b"AAPL", usd("150.00"), b"", 0x0009),
    (b"T", 100, b"AAPL", usd("150.00"), b"", 0x0027),
    (b"T", 100, b"AAPL", usd("150.00"), b"\x02\x19N", 0x0027),
])
def test_rejects(side, qty, symbol, price, app, reason):
    h = Harness()
    out = h.send(enter(7, side, qty, symbol, price, clordid=b"REJ1", app=app))
    (msg,) = unpack_packet(out[0])[2]
    assert len(msg) == 29
    assert decode(msg) == {"type": b"J", "len": 29, "ts": TS, "ref": 7, "reason": reason,
                           "clordid": b"REJ1          "}
    assert h.sim.stats["rejects"] == {reason: 1}
    # a rejected UserRefNum is consumed
    assert h.send(enter(7, b"B", 100, b"AAPL", usd("140.00"))) == []


def test_valid_edge_orders_accepted():
    h = Harness()
    got = h.run(enter(1, b"T", 100, b"AAPL", usd("160.00"), app=LOCATED),
                enter(2, b"E", 100, b"AAPL", usd("160.00")),
                enter(3, b"B", 999_999, b"AAPL", usd("1.00")),
                enter(4, b"S", 1, b"AAPL", 1_999_999_900))
    assert [g[0] for g in got] == ["A", "A", "A", "A"]


def test_replace_worked_example():
    """OUCH 5.0 §2.2: Enter 500, Executed 100, Replace with Quantity 500 ->
    Replaced with 400 outstanding; Quantity 600 -> 500 outstanding."""
    h = Harness()
    px = usd("150.00")  # inside the spread: rests as the best bid
    assert h.run(enter(1, b"B", 500, b"AAPL", px)) == [("A", 1, 500, px)]
    orn = h.sim.live_orders()[1]["order_ref_num"]
    # our own sell trades against the resting buy (the synthetic bids are lower)
    assert h.run(enter(2, b"S", 100, b"AAPL", px)) == [
        ("A", 2, 100, px), ("E", 2, 100, px, "R"), ("E", 1, 100, px, "A")]
    out = messages(h.send(replace(1, 3, 500, px, clordid=b"REPL1")))
    assert brief(out) == [("U", 1, 3, 400, px)]
    r = out[0]
    assert (r["len"], r["state"], r["applen"], r["side"], r["symbol"], r["clordid"]) == (
        68, b"L", 0, b"B", b"AAPL    ", b"REPL1         ")
    assert r["orn"] == orn  # same price, no increase: priority (and number) kept
    assert h.sim.live_orders()[3]["executed"] == 100
    # the old UserRefNum is gone: cancel and replace by it are ignored
    assert h.send(cancel(1, 0)) == []
    assert h.send(replace(1, 4, 500, px)) == []
    # 600 total: 500 outstanding, the increase loses priority
    out = messages(h.send(replace(3, 4, 600, px)))
    assert brief(out) == [("U", 3, 4, 500, px)]
    assert out[0]["orn"] != orn
    assert h.run(cancel(4, 0)) == [("C", 4, 500, "U")]


def test_replace_price_change_rematches():
    h = Harness()
    a1 = h.sim.book("AAPL")["asks"][0][1]
    h.send(enter(1, b"B", a1 + 30, b"AAPL", usd("149.00")))
    assert h.run(replace(1, 2, a1 + 30, usd("150.01"))) == [
        ("U", 1, 2, a1 + 30, usd("150.01")), ("E", 2, a1, usd("150.01"), "R")]
    assert h.sim.live_orders()[2]["leaves"] == 30
    # replace to IOC: the remainder that does not cross is canceled 'I'
    assert h.run(replace(2, 3, a1 + 30, usd("150.01"), tif=b"3")) == [
        ("U", 2, 3, 30, usd("150.01")), ("C", 3, 30, "I")]


def test_replace_rules():
    h = Harness()
    px = usd("150.00")
    h.send(enter(1, b"B", 500, b"AAPL", px), enter(2, b"S", 100, b"AAPL", px))
    # quantity <= executed: the original is canceled (rule 2), new ref not consumed
    assert h.run(replace(1, 3, 100, px)) == [("C", 1, 400, "Z")]
    assert h.sim.live_orders() == {}
    assert h.run(enter(3, b"B", 500, b"AAPL", px)) == [("A", 3, 500, px)]
    # invalid quantity on a live order: canceled (rule 2)
    assert h.run(replace(3, 4, 1_000_000, px)) == [("C", 3, 500, "Z")]
    # new UserRefNum not increasing: ignored, original untouched
    h.send(enter(4, b"B", 500, b"AAPL", px))
    assert h.send(replace(4, 4, 300, px)) == []
    assert h.send(replace(4, 2, 300, px)) == []
    assert h.sim.live_orders()[4]["leaves"] == 500
    # sell short replaced without SharesLocated: Rejected, ref consumed, original kept
    h.send(enter(5, b"T", 100, b"AAPL", usd("160.00"), app=LOCATED))
    assert h.run(replace(5, 6, 50, usd("160.00"))) == [("J", 6, 0x0027)]
    assert h.sim.live_orders()[5]["leaves"] == 100
    assert h.run(replace(5, 6, 50, usd("160.00"), app=LOCATED)) == []  # 6 consumed
    assert h.run(replace(5, 7, 50, usd("160.00"), app=LOCATED)) == [
        ("U", 5, 7, 50, usd("160.00"))]


def test_cancel_decrement():
    h = Harness()
    h.send(enter(1, b"B", 1000, b"AAPL", usd("149.00")))
    assert h.run(cancel(1, 600)) == [("C", 1, 400, "U")]  # 600 may still execute
    assert h.send(cancel(1, 600)) == []  # superfluous
    assert h.send(cancel(1, 700)) == []
    assert h.run(cancel(1, 0)) == [("C", 1, 600, "U")]
    assert h.send(cancel(1, 0)) == []  # dead
    assert h.send(cancel(99, 0)) == []  # unknown
    assert h.sim.stats["ignored"] == {"cancel_superfluous": 2, "cancel_not_live": 2}
    assert (usd("149.00"), 1000) not in h.sim.book("AAPL")["bids"]
    # cancel with an (empty) appendage length, 11 bytes
    h.send(enter(2, b"S", 10, b"AAPL", usd("151.00")))
    assert h.run(cancel(2, 0) + b"\x00\x00") == [("C", 2, 10, "U")]


def test_user_ref_num_not_increasing_ignored():
    h = Harness()
    assert h.run(enter(5, b"B", 10, b"AAPL", usd("140.00"))) == [("A", 5, 10, usd("140.00"))]
    assert h.send(enter(5, b"B", 10, b"AAPL", usd("140.00"))) == []
    assert h.send(enter(3, b"B", 10, b"AAPL", usd("140.00"))) == []
    assert h.send(enter(0, b"B", 10, b"AAPL", usd("140.00"))) == []
    assert h.sim.stats["ignored"] == {"ref_not_increasing": 3}
    assert h.run(enter(6, b"B", 10, b"AAPL", usd("140.00"))) == [("A", 6, 10, usd("140.00"))]
    # Account Query (§2.8) reports the next UserRefNum
    (q,) = messages(h.send(b"Q"))
    assert (q["type"], q["len"], q["next_ref"]) == (b"Q", 13, 7)


def test_passive_fill():
    h = Harness(p_passive=1.0)
    got = h.run(enter(1, b"B", 500, b"AAPL", usd("149.00")))
    assert got[0] == ("A", 1, 500, usd("149.00"))
    (_, ref, qty, price, flag) = got[1]
    assert (ref, price, flag) == (1, usd("149.00"), "A") and 1 <= qty <= 500
    assert h.sim.stats["passive_fills"] == 1


def scenario(seed, batch=False):
    h = Harness(seed=seed, p_passive=0.5, batch=batch)
    out = []
    out += h.send(enter(1, b"B", 800, b"AAPL", usd("150.03")))
    out += h.send(enter(2, b"S", 300, b"AAPL", usd("150.10")))
    out += h.send(enter(3, b"B", 200, b"MSFT", MARKET, tif=b"3"))
    out += h.send(replace(2, 4, 400, usd("150.00")))
    for i in range(5, 15):
        out += h.send(enter(i, b"B" if i % 2 else b"S", 100 + i, b"AAPL",
                            usd("149.97") if i % 2 else usd("150.04")), now=NOW + i)
    out += h.send(cancel(4, 0))
    return out, h.sim.stats, h.sim.book("AAPL")


def test_deterministic():
    assert scenario(1) == scenario(1)
    assert scenario(7, batch=True) == scenario(7, batch=True)
    assert scenario(1)[2] != scenario(2)[2]  # the seed matters


def _reorder_run(reorder):
    h = Harness(reorder=reorder)
    out = []
    for i in range(1, 201):
        out += h.send(enter(i, b"B" if i % 2 else b"S", 100, b"AAPL",
                            usd("150.01") if i % 2 else usd("149.99")), now=NOW + i)
    out += [p for _, p in h.sim.flush_reorder()]
    return out, h.sim.stats, h.sim.book("AAPL")


def test_reorder_knob_permutes_what_is_sent():
    plain, plain_stats, plain_book = _reorder_run(None)
    out, stats, book = _reorder_run((0.1, 4))
    # only the order of the packets changed: the book, the fills, the
    # sequence numbers are those of the plain run
    assert out != plain and sorted(out) == sorted(plain)
    assert book == plain_book
    assert stats["reordered"] > 5
    assert {k: v for k, v in stats.items() if not k.startswith("reorder")} == plain_stats
    assert _reorder_run((0.1, 4)) == (out, stats, book)  # the seed decides
    assert _reorder_run((0.1, 5))[0] != out
    # a held packet waits for a successor at most the hold time
    h = Harness(reorder=(1.0, 1), reorder_hold_ms=5)
    assert h.sim.handle_payload(packet(1, enter(1, b"B", 100, b"AAPL", usd("149.00"))),
                                NOW) == []
    assert h.sim.tick_datagrams(NOW + 4_999_999) == []
    (kind, p), = h.sim.tick_datagrams(NOW + 5_000_000)
    assert kind == "data" and unpack_packet(p)[1] == 1
    assert h.sim.stats["reorder_timeouts"] == 1 and h.sim.stats["reordered"] == 0


def test_batch_one_packet_per_inbound_packet():
    h = Harness(batch=True)
    a1 = h.sim.book("AAPL")["asks"][0][1]
    out = h.send(enter(1, b"B", a1 + 10, b"AAPL", usd("150.02")))
    assert len(out) == 1
    session, seq, msgs = unpack_packet(out[0])
    assert (seq, [m[0:1] for m in msgs]) == (1, [b"A", b"E", b"E"])
    out = h.send(enter(2, b"B", 1, b"AAPL", usd("140.00")), cancel(2, 0))
    assert len(out) == 1
    session, seq, msgs = unpack_packet(out[0])
    assert (seq, [m[0:1] for m in msgs]) == (4, [b"A", b"C"])


def test_heartbeat_end_of_session_and_bad_packets():
    h = Harness()
    sim = h.sim
    # a heartbeat is answered with the venue's own (count 0, its next seq 1)
    assert sim.handle_payload(SESSION + (1).to_bytes(8, "big") + b"\x00\x00", NOW) == [
        SESSION + (1).to_bytes(8, "big") + b"\x00\x00"]
    assert sim.handle_payload(SESSION + (1).to_bytes(8, "big") + b"\xff\xff", NOW) == []
    assert sim.stats["heartbeats_in"] == 1 and sim.stats["end_of_session_in"] == 1
    assert sim.stats["heartbeats_out"] == 1
    assert sim.handle_payload(packet(1, enter(1, b"B", 1, b"AAPL", usd("140.00")),
                                     session=b"OTHER     "), NOW) == []
    assert sim.handle_payload(b"short", NOW) == []
    # a block running past the datagram: the walk stops there
    p = packet(1, enter(1, b"B", 1, b"AAPL", usd("140.00")))
    assert sim.handle_payload(p[:-3], NOW) == []
    assert sim.stats["bad_packets"] == {"wrong_session": 1, "truncated": 1, "bad_block": 1}
    # an Enter whose appendage length disagrees with the block length
    bad = enter(1, b"B", 1, b"AAPL", usd("140.00"))[:-2] + b"\x00\x05"
    assert sim.handle_payload(packet(1, bad), NOW) == []
    assert sim.stats["bad_messages"] == {"bad_length": 1}
    # outbound heartbeat carries the next sequence number
    assert sim.heartbeat() == SESSION + (1).to_bytes(8, "big") + b"\x00\x00"


# --- Ethernet/IPv4/UDP ---------------------------------------------------------


def ones_complement(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(text):
    return bytes(int(x) for x in text.split("."))


def mac(text):
    return bytes.fromhex(text.replace(":", ""))


def to_venue_frame(payload, dst_ip=VENUE.ip, dst_port=VENUE.port, corrupt_udp=False):
    udp = bytearray(struct.pack(">HHHH", APPLIANCE.venue_port, dst_port, 8 + len(payload), 0)
                    + payload)
    pseudo = ip4(APPLIANCE.ip) + ip4(dst_ip) + struct.pack(">BBH", 0, 17, len(udp))
    c = ones_complement(pseudo + bytes(udp)) or 0xFFFF
    struct.pack_into(">H", udp, 6, c ^ (1 if corrupt_udp else 0))
    ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                               ip4(APPLIANCE.ip), ip4(dst_ip)))
    struct.pack_into(">H", ip, 10, ones_complement(bytes(ip)))
    return mac(VENUE.mac) + mac(APPLIANCE.mac) + b"\x08\x00" + bytes(ip) + bytes(udp)


def check_frame_to_appliance(f, want_ports=(VENUE.port, APPLIANCE.venue_port)):
    """Checks the Ethernet/IPv4/UDP layers of a frame the simulator sent;
    returns the UDP payload."""
    assert f[0:6] == mac(APPLIANCE.mac) and f[6:12] == mac(VENUE.mac)
    assert f[12:14] == b"\x08\x00"
    ip = f[14:34]
    ver_ihl, tos, total, ident, frag, ttl, proto, _c, src, dst = struct.unpack(
        ">BBHHHBBH4s4s", ip)
    assert (ver_ihl, tos, ident, frag, ttl, proto) == (0x45, 0, 0, 0x4000, 64, 17)
    assert (src, dst) == (ip4(VENUE.ip), ip4(APPLIANCE.ip))
    assert total == len(f) - 14
    assert ones_complement(ip) == 0  # header checksum valid
    udp = f[34:]
    sport, dport, ulen, ucsum = struct.unpack(">HHHH", udp[:8])
    assert (sport, dport, ulen) == (*want_ports, len(udp))
    assert ucsum != 0
    pseudo = src + dst + struct.pack(">BBH", 0, 17, ulen)
    assert ones_complement(pseudo + udp) == 0  # UDP checksum valid
    return udp[8:]


def test_frames_and_checksums():
    h = Harness()
    a1 = h.sim.book("AAPL")["asks"][0][1]
    frames = h.sim.handle_frame(
        to_venue_frame(packet(1, enter(1, b"B", a1 + 10, b"AAPL", usd("150.02")))), NOW)
    assert len(frames) == 3
    payloads = [check_frame_to_appliance(f) for f in frames]
    assert [m["type"] for m in messages(payloads)] == [b"A", b"E", b"E"]
    # scapy agrees with the checksums (independent implementation)
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    for f in frames:
        pkt = Ether(f)
        want_ip, want_udp = pkt[IP].chksum, pkt[UDP].chksum
        del pkt[IP].chksum
        del pkt[UDP].chksum
        again = Ether(bytes(pkt))
        assert (again[IP].chksum, again[UDP].chksum) == (want_ip, want_udp)


def test_frames_not_for_venue_or_corrupt():
    h = Harness()
    p = packet(1, enter(1, b"B", 1, b"AAPL", usd("140.00")))
    # VENUE.port + 1 is the request port (retransmit_port); + 2 is nothing
    assert h.sim.handle_frame(to_venue_frame(p, dst_port=VENUE.port + 2), NOW) == []
    assert h.sim.handle_frame(to_venue_frame(p, dst_ip="10.0.0.9"), NOW) == []
    assert h.sim.stats["frames_not_for_venue"] == 2
    assert h.sim.handle_frame(to_venue_frame(p, corrupt_udp=True), NOW) == []
    assert h.sim.handle_frame(b"\x00" * 10, NOW) == []
    assert h.sim.stats["bad_packets"] == {"udp_checksum": 1, "runt": 1}
    assert h.sim.stats["received"] == {}
    # the same packet, intact, is handled
    assert len(h.sim.handle_frame(to_venue_frame(p), NOW)) == 1


# --- live loopback ---------------------------------------------------------------


def test_serve_udp_loopback():
    sim = VenueSim(VENUE, APPLIANCE, symbols=["AAPL"], p_passive=0.0,
                   ref_prices={"AAPL": usd("150.00")})
    ready = threading.Event()
    addr: list = []
    result: list = []

    def on_ready(a):
        addr.append(a)
        ready.set()

    t = threading.Thread(target=lambda: result.append(
        serve_udp(sim, "127.0.0.1", 0, max_packets=5, timeout_s=5.0, on_ready=on_ready)))
    t.start()
    try:
        assert ready.wait(5.0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(5.0)
            c.bind(("127.0.0.1", 0))
            for ref in range(1, 6):
                c.sendto(packet(ref, enter(ref, b"B", 10, b"AAPL", usd("140.00"))), addr[0])
                data, src = c.recvfrom(65535)
                assert src == addr[0]
                session, seq, msgs = unpack_packet(data)
                assert (session, seq) == (SESSION, ref)
                assert decode(msgs[0])["type"] == b"A" and decode(msgs[0])["ref"] == ref
    finally:
        t.join(10.0)
    assert not t.is_alive()
    assert result == [5]
    assert sim.stats["received"] == {"O": 5}


def test_serve_udp_refuses_non_loopback():
    sim = VenueSim(VENUE, APPLIANCE, symbols=["AAPL"])
    with pytest.raises(ValueError):
        serve_udp(sim, "0.0.0.0", 0, max_packets=1, timeout_s=0.1)


# --- session layer: replay buffer, requests, go-back-N (MoldUDP64 re-request) ---

REQUEST_PORT = VENUE.port + 1  # venue.retransmit_port (request_port 0: port + 1)
APP_REQUEST_PORT = APPLIANCE.venue_port + 1  # appliance.request_port
MS = 1_000_000


def header(seq, count, session=SESSION):
    """A header-only packet: heartbeat (count 0) or request packet."""
    return session + seq.to_bytes(8, "big") + count.to_bytes(2, "big")


def request(h, seq, count, now=NOW):
    """A request packet to the venue's request port, as a frame."""
    return h.sim.handle_frame(to_venue_frame(header(seq, count), dst_port=REQUEST_PORT), now)


def data_frame(h, p, now=NOW):
    return h.sim.handle_frame(to_venue_frame(p), now)


def test_config_ports():
    assert VENUE.retransmit_port == REQUEST_PORT
    assert APPLIANCE.request_port == APP_REQUEST_PORT


def test_retransmission_byte_identical_one_per_packet():
    h = Harness()
    a1 = h.sim.book("AAPL")["asks"][0][1]
    first = [check_frame_to_appliance(f) for f in data_frame(
        h, packet(1, enter(1, b"B", a1 + 10, b"AAPL", usd("150.02"))))]
    assert [unpack_packet(p)[1] for p in first] == [1, 2, 3]  # A, E, E
    # messages 2..3 again: same bytes, one per packet, data port to venue_port
    again = [check_frame_to_appliance(f) for f in request(h, 2, 2)]
    assert again == first[1:]
    assert h.sim.stats["requests_in"] == 1 and h.sim.stats["retransmitted"] == 2
    # the count is clipped at the next sequence number
    assert [check_frame_to_appliance(f) for f in request(h, 1, 100)] == first
    # nothing new was produced: next seq still 4, no new "sent"
    assert h.sim.next_seq == 4 and h.sim.stats["sent"] == {"A": 1, "E": 2}
    # a retransmission is not an inbound OUCH message: no passive-fill draw etc.
    assert h.sim.stats["received"] == {"O": 1}


def test_retransmission_batched():
    h = Harness(batch=True)
    a1 = h.sim.book("AAPL")["asks"][0][1]
    (p1,) = h.sim.handle_payload(packet(1, enter(1, b"B", a1 + 10, b"AAPL", usd("150.02"))),
                                 NOW)
    (p2,) = h.sim.handle_payload(packet(2, enter(2, b"B", 5, b"AAPL", usd("140.00"))), NOW)
    msgs = unpack_packet(p1)[2] + unpack_packet(p2)[2]  # seqs 1..4: A E E A
    out = [check_frame_to_appliance(f) for f in request(h, 2, 3)]
    assert len(out) == 1
    session, seq, got = unpack_packet(out[0])
    assert (session, seq, got) == (SESSION, 2, msgs[1:4])


def test_hello_and_requests_beyond_or_before_the_buffer():
    h = Harness(replay_depth=2)
    # hello (count 0): a heartbeat with the next sequence number
    (hb,) = request(h, 0, 0)
    assert check_frame_to_appliance(hb) == header(1, 0)
    for ref in (1, 2, 3):  # three Accepted, seqs 1..3; the buffer keeps 2..3
        h.send(enter(ref, b"B", 10, b"AAPL", usd("140.00")))
    assert h.sim.oldest_held == 2 and h.sim.next_seq == 4
    (hb,) = request(h, 2, 0)
    assert check_frame_to_appliance(hb) == header(4, 0)
    # from >= next: a heartbeat telling where we are
    (hb,) = request(h, 4, 5)
    assert check_frame_to_appliance(hb) == header(4, 0)
    # from below the oldest held: nothing (recovery is out of band)
    assert request(h, 1, 3) == []
    assert h.sim.stats["retransmit_too_old"] == 1
    (p,) = request(h, 2, 1)
    assert unpack_packet(check_frame_to_appliance(p))[1] == 2
    st = h.sim.stats
    assert (st["requests_in"], st["hellos_in"], st["heartbeats_out"]) == (5, 2, 3)
    # wrong session or truncated on the request port: dropped, not served
    assert h.sim.handle_frame(to_venue_frame(header(2, 1, session=b"OTHER     "),
                                             dst_port=REQUEST_PORT), NOW) == []
    assert h.sim.handle_frame(to_venue_frame(b"short", dst_port=REQUEST_PORT), NOW) == []
    assert h.sim.stats["bad_packets"] == {"wrong_session": 1, "truncated": 1}


def test_go_back_n_gap_not_processed_and_requested():
    h = Harness(retransmit_ms=50)
    m1 = enter(1, b"B", 10, b"AAPL", usd("140.00"))
    m2 = enter(2, b"B", 20, b"AAPL", usd("140.00"))
    m3 = enter(3, b"B", 30, b"AAPL", usd("140.00"))
    # seqs 2..3 arrive first: not processed, 1..3 requested from the request port
    (req,) = data_frame(h, packet(2, m2, m3))
    assert check_frame_to_appliance(req, (REQUEST_PORT, APP_REQUEST_PORT)) == header(1, 3)
    assert h.sim.stats["received"] == {} and h.sim.live_orders() == {}
    assert h.sim.stats["seq_gaps_in"] == 1 and h.sim.stats["out_of_order_packets"] == 1
    assert h.sim.request_outstanding and h.sim.in_expected == 1
    # another gap inside the retransmit interval: nothing more is sent
    assert data_frame(h, packet(4, enter(4, b"B", 40, b"AAPL", usd("140.00"))),
                      NOW + 49 * MS) == []
    assert h.sim.tick(NOW + 49 * MS) == []
    # after the interval the timer sends the request again, through seq 4 now
    (req,) = h.sim.tick(NOW + 50 * MS)
    assert check_frame_to_appliance(req, (REQUEST_PORT, APP_REQUEST_PORT)) == header(1, 4)
    assert h.sim.stats["requests_out"] == 2
    # the missing message: processed; the request stays until seq 4 is in
    got = messages(check_frame_to_appliance(f) for f in data_frame(h, packet(1, m1)))
    assert brief(got) == [("A", 1, 10, usd("140.00"))]
    assert h.sim.in_expected == 2 and h.sim.request_outstanding
    # the resent 1..3: 1 is a duplicate (skipped), 2 and 3 are processed
    got = messages(check_frame_to_appliance(f) for f in data_frame(h, packet(1, m1, m2, m3)))
    assert brief(got) == [("A", 2, 20, usd("140.00")), ("A", 3, 30, usd("140.00"))]
    assert h.sim.stats["seq_dup_msgs_in"] == 1 and h.sim.in_expected == 4
    assert h.sim.request_outstanding
    # a whole duplicate packet: nothing is processed again
    assert data_frame(h, packet(2, m2)) == []
    assert h.sim.stats["received"] == {"O": 3}
    assert h.sim.stats["ignored"] == {}  # never seen as a repeated UserRefNum
    got = messages(check_frame_to_appliance(f) for f in data_frame(
        h, packet(4, enter(4, b"B", 40, b"AAPL", usd("140.00")))))
    assert brief(got) == [("A", 4, 40, usd("140.00"))]
    assert not h.sim.request_outstanding
    assert h.sim.tick(NOW + 10_000 * MS) == []  # nothing outstanding, no heartbeat timer


def test_heartbeat_from_appliance_beyond_expected_requests():
    h = Harness()
    m1 = enter(1, b"B", 10, b"AAPL", usd("140.00"))
    # the appliance's heartbeat says its next is 3: 1..2 were lost
    hb, req = data_frame(h, header(3, 0))
    assert check_frame_to_appliance(hb) == header(1, 0)
    assert check_frame_to_appliance(req, (REQUEST_PORT, APP_REQUEST_PORT)) == header(1, 2)
    # a heartbeat that is not ahead asks for nothing
    h2 = Harness()
    (hb,) = h2.sim.handle_frame(to_venue_frame(header(1, 0)), NOW)
    assert check_frame_to_appliance(hb) == header(1, 0)
    assert h2.sim.stats["requests_out"] == 0
    # handle_payload leaves request packets out; handle_datagram has both
    assert h2.sim.handle_payload(header(5, 0), NOW) == [header(1, 0)]
    assert h2.sim.handle_datagram(header(5, 0), NOW + 50 * MS) == [
        ("data", header(1, 0)), ("request", header(1, 4))]
    assert h.sim.handle_datagram(packet(1, m1), NOW)[0][0] == "data"


def test_tick_heartbeat_when_idle():
    h = Harness(heartbeat_ms=100)
    assert h.sim.tick(NOW) == []  # starts the clock
    assert h.sim.tick(NOW + 99 * MS) == []
    (hb,) = h.sim.tick(NOW + 100 * MS)
    assert check_frame_to_appliance(hb) == header(1, 0)
    h.send(enter(1, b"B", 10, b"AAPL", usd("140.00")), now=NOW + 150 * MS)
    assert h.sim.tick(NOW + 249 * MS) == []  # sending restarted the clock
    (hb,) = h.sim.tick(NOW + 250 * MS)
    assert check_frame_to_appliance(hb) == header(2, 0)
    assert h.sim.stats["heartbeats_out"] == 2


def test_session_layer_deterministic_under_loss():
    """Two simulators fed the same lossy, reordered stream agree exactly, and
    every message is processed once, in order."""
    import random

    def run():
        h = Harness(seed=3, p_passive=0.3)
        rng = random.Random(5)
        msgs = [enter(i, b"B" if i % 2 else b"S", 10 * i, b"AAPL",
                      usd("149.99") if i % 2 else usd("150.01")) for i in range(1, 41)]
        pending = [(i + 1, m) for i, m in enumerate(msgs)]
        now, out = NOW, []
        while h.sim.in_expected <= len(msgs):
            now += MS
            rng.shuffle(pending)
            for seq, m in pending[:5]:
                if rng.random() < 0.7:
                    out += [p for kind, p in h.sim.handle_datagram(packet(seq, m), now)
                            if kind == "data"]
            pending = [(s, m) for s, m in pending if s >= h.sim.in_expected]
        return out, h.sim.stats

    (out1, st1), (out2, st2) = run(), run()
    assert out1 == out2 and st1 == st2
    assert st1["received"] == {"O": 40} and st1["ignored"] == {}
    assert [d["ref"] for d in messages(out1) if d["type"] in (b"A", b"J")] == list(range(1, 41))


def test_request_window_and_progress():
    h = Harness(request_window=2)
    ms = [enter(i, b"B", 10 * i, b"AAPL", usd("140.00")) for i in range(1, 7)]
    # seq 6 arrives alone: 1..6 wanted, asked for 2 at a time
    (req,) = data_frame(h, packet(6, ms[5]))
    assert check_frame_to_appliance(req, (REQUEST_PORT, APP_REQUEST_PORT)) == header(1, 2)
    # 1 arrives (progress), then 3 out of order: asked again at once, no waiting
    data_frame(h, packet(1, ms[0]), NOW + MS)
    (req,) = data_frame(h, packet(3, ms[2]), NOW + MS)
    assert check_frame_to_appliance(req, (REQUEST_PORT, APP_REQUEST_PORT)) == header(2, 2)
    # the window 2..3 is in: the next window is asked for with the answers
    data_frame(h, packet(2, ms[1]), NOW + 2 * MS)
    out = data_frame(h, packet(3, ms[2]), NOW + 2 * MS)
    assert check_frame_to_appliance(out[-1], (REQUEST_PORT, APP_REQUEST_PORT)) == header(4, 2)
    assert [unpack_packet(check_frame_to_appliance(f))[1] for f in out[:-1]] == [3]
    for seq in (4, 5, 6):
        data_frame(h, packet(seq, ms[seq - 1]), NOW + 3 * MS)
    assert not h.sim.request_outstanding and h.sim.in_expected == 7
    assert h.sim.stats["received"] == {"O": 6}


def test_serve_udp_sends_requests_to_the_request_port():
    """Over loopback: a packet beyond the next expected is not processed and a
    request goes to the appliance's request port; the missing packet and the
    resent one are then processed in order."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as req_sock, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        req_sock.bind(("127.0.0.1", 0))
        req_sock.settimeout(5.0)
        c.bind(("127.0.0.1", 0))
        c.settimeout(5.0)
        app = Appliance(mac=APPLIANCE.mac, ip="127.0.0.1", strategy_port=7000,
                        venue_port=c.getsockname()[1],
                        venue_request_port=req_sock.getsockname()[1])
        sim = VenueSim(VENUE, app, symbols=["AAPL"], p_passive=0.0,
                       ref_prices={"AAPL": usd("150.00")}, retransmit_ms=1000)
        ready = threading.Event()
        addr: list = []

        def on_ready(a):
            addr.append(a)
            ready.set()

        t = threading.Thread(target=serve_udp, args=(sim, "127.0.0.1", 0), kwargs=dict(
            max_packets=3, timeout_s=5.0, on_ready=on_ready))
        t.start()
        try:
            assert ready.wait(5.0)
            m1 = enter(1, b"B", 10, b"AAPL", usd("140.00"))
            m2 = enter(2, b"B", 20, b"AAPL", usd("140.00"))
            c.sendto(packet(2, m2), addr[0])
            data, _ = req_sock.recvfrom(65535)
            assert data == header(1, 2)
            c.sendto(packet(1, m1), addr[0])
            c.sendto(packet(2, m2), addr[0])
            got = [unpack_packet(c.recvfrom(65535)[0]) for _ in range(2)]
            assert [(seq, decode(ms[0])["ref"]) for _, seq, ms in got] == [(1, 1), (2, 2)]
        finally:
            t.join(10.0)
        assert not t.is_alive()
        assert sim.stats["received"] == {"O": 2}
