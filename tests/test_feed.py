"""The feed handler's behaviour, scenario by scenario: books and top of
book in 8-decimal fixed point, halts, gaps with and without a
retransmission server (the re-request frame's bytes), duplicates,
staleness on now_ns, sessions, and which frames it takes."""
from __future__ import annotations

from feed_wire import (
    APP_IP,
    APP_MAC,
    APP_PORT,
    GROUP,
    RETRANS_IP,
    RETRANS_MAC,
    RETRANS_PORT,
    feed_kwargs,
    multicast,
    retransmission,
)
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from dataplane.feed import Feed, mold_request
from pcaps.itch_layers import MoldHeader
from pcaps.itch_layers import itch_message as M
from pcaps.itch_layers import mold_packet as P

S = "20261127A1"
GAP, QUIET, END, NO_SESSION = 2, 4, 8, 1


def feed(retrans: bool = True, **kw) -> Feed:
    f = Feed(**feed_kwargs(retrans, **kw))
    f.subscribe("AAPL", 0)
    f.subscribe("MSFT", 1)
    return f


def opening() -> list[bytes]:
    return [M("S", code="O"), M("R", locate=7, stock="AAPL"), M("R", locate=8, stock="MSFT"),
            M("R", locate=9, stock="IBM")]


def test_book_building_and_top_of_book_in_fixed_point():
    f = feed()
    assert f.tob(0)["stale"] == NO_SESSION and f.tob(0)["updates"] == 1
    msgs = opening() + [
        M("A", locate=7, ref=1, side="B", shares=100, price="150.25", timestamp=11),
        M("F", locate=7, ref=2, side="B", shares=50, price="150.25", attribution="GSCO"),
        M("A", locate=7, ref=3, side="S", shares=70, price="150.30"),
        M("A", locate=9, ref=4, side="S", shares=70, price="99.00"),  # IBM: no book
        M("A", locate=7, ref=5, side="B", shares=10, price="150.20", timestamp=99),
    ]
    assert f.process([multicast(P(S, 1, msgs))], 1_000) == []
    t = f.tob(0)
    assert (t["bid_px"], t["bid_qty"], t["ask_px"], t["ask_qty"]) == (
        15_025_000_000, 150, 15_030_000_000, 70)
    # the add at seq 9 (ts 99) is behind the best bid: nothing to publish,
    # so the entry still names seq 7, the last message that moved it
    assert t["stale"] == 0 and t["mold_seq"] == 7 and t["itch_ts"] == 0 and t["last_ns"] == 1_000
    assert t["updates"] == 5  # subscribe, session, three adds at the touch
    assert f.levels(0, "B") == [(15_025_000_000, 150, 2), (15_020_000_000, 10, 1)]
    assert f.events()["UNSUBSCRIBED"] == 1 and f.live_orders() == 4
    # executions at the touch move it; the last trade is the order's price
    f.process([multicast(P(S, 10, [M("E", locate=7, ref=1, shares=100, match=1),
                                  M("C", locate=7, ref=2, shares=50, match=2, printable="Y",
                                    price="150.24")]))], 2_000)
    t = f.tob(0)
    assert (t["bid_px"], t["bid_qty"], t["last_px"], t["last_qty"]) == (
        15_020_000_000, 10, 15_024_000_000, 50)
    # replace re-keys: the old reference is gone, the new one rests
    f.process([multicast(P(S, 12, [M("U", locate=7, orig_ref=3, new_ref=30, shares=5,
                                     price="150.28"),
                                   M("X", locate=7, ref=3, shares=1),
                                   M("X", locate=7, ref=30, shares=1)]))], 3_000)
    t = f.tob(0)
    assert (t["ask_px"], t["ask_qty"]) == (15_028_000_000, 4)
    assert f.drops() == {"UNKNOWN_REF": 1}


def test_halts_and_reg_sho_are_published_per_symbol():
    f = feed()
    f.process([multicast(P(S, 1, opening() + [M("H", locate=7, state="H", reason="T1")]))], 1)
    assert f.halted(0) and not f.halted(1) and f.tob(0)["trading_state"] == ord("H")
    f.process([multicast(P(S, 6, [M("H", locate=7, state="Q"), M("Y", locate=8, action="1")]))], 2)
    assert f.halted(0) and f.tob(1)["reg_sho"] == ord("1")
    f.process([multicast(P(S, 8, [M("H", locate=7, state="T")]))], 3)
    assert not f.halted(0)


def test_gap_is_re_requested_and_the_book_is_stale_until_filled():
    f = feed(max_request=3)
    f.process([multicast(P(S, 1, opening()))], 1)
    lost = [M("A", locate=7, ref=i, side="B", shares=i, price="10.00") for i in range(1, 6)]
    tx = f.process([multicast(P(S, 10, [M("A", locate=7, ref=9, side="S", shares=1,
                                           price="11.00")]))], 2)
    assert len(tx) == 1
    req = Ether(tx[0])
    assert req[Ether].src == APP_MAC and req[Ether].dst == RETRANS_MAC
    assert (req[IP].src, req[IP].dst, req[IP].ttl) == (APP_IP, RETRANS_IP, 64)
    assert (req[UDP].sport, req[UDP].dport) == (APP_PORT, RETRANS_PORT)
    # the checksums the frame carries are the ones scapy computes
    again = Ether(tx[0])
    del again[IP].chksum, again[UDP].chksum
    assert bytes(Ether(bytes(again))) == tx[0]
    mh = MoldHeader(bytes(req[UDP].payload))
    assert (mh.session, mh.seq, mh.count) == (S.encode(), 5, 3)  # max_request 3 of 6
    assert f.stale() == GAP and f.tob(0)["stale"] == GAP and f.tob(1)["stale"] == GAP
    assert f.drops() == {"AHEAD": 1} and f.events()["GAP_MSGS"] == 5
    # the first answer brings 5-7 and asks for the rest at once
    tx = f.process([retransmission(P(S, 5, lost[:3]))], 3)
    assert [mold_request(x)[1:] for x in tx] == [(8, 3)]
    tx = f.process([retransmission(P(S, 8, lost[3:] + [M("A", locate=7, ref=9, side="S",
                                                            shares=1, price="11.00")]))], 4)
    assert tx == [] and f.stale() == 0 and f.tob(0)["stale"] == 0
    assert f.tob(0)["bid_qty"] == 1 + 2 + 3 + 4 + 5 and f.tob(0)["ask_qty"] == 1
    assert f.events()["RECOVERIES"] == 1


def test_unanswered_request_is_sent_again_after_retransmit_ns():
    f = feed(retransmit_ns=5_000)
    f.process([multicast(P(S, 1, opening()))], 1_000)
    assert len(f.process([multicast(P(S, 9, [M("S", code="Q")]))], 2_000)) == 1
    assert f.next_deadline() == 7_000
    assert f.process([], 6_999) == []
    assert [mold_request(x)[1:] for x in f.process([], 7_000)] == [(5, 5)]


def test_without_a_server_a_gap_stays_stale_until_the_next_session():
    f = feed(retrans=False)
    f.process([multicast(P(S, 1, opening()))], 1)
    tx = f.process([multicast(P(S, 7, [M("A", locate=7, ref=1, side="B", shares=5,
                                          price="1.00")]))], 2)
    assert tx == [] and f.stale() == GAP
    assert f.tob(0)["bid_qty"] == 5 and f.tob(0)["stale"] == GAP  # kept up, not trusted
    f.process([multicast(P(S, 8, [M("X", locate=7, ref=1, shares=1)]))], 3)
    assert f.stale() == GAP
    f.process([multicast(P("20261128A1", 1, opening()))], 4)
    assert f.stale() == 0 and f.tob(0)["bid_qty"] == 0 and f.live_orders() == 0
    assert f.events()["SESSIONS"] == 2


def test_heartbeat_ahead_of_us_is_a_gap():
    f = feed(retrans=False)
    f.process([multicast(P(S, 1, opening()))], 1)
    f.process([multicast(P(S, 5, [], count=0))], 2)
    assert f.stale() == 0 and f.events()["HEARTBEATS"] == 1
    f.process([multicast(P(S, 9, [], count=0))], 3)
    assert f.stale() == GAP and f.events()["GAP_MSGS"] == 4 and f.expected_seq() == 9


def test_duplicates_are_dropped_and_counted():
    f = feed()
    pkt = P(S, 1, opening() + [M("A", locate=7, ref=1, side="B", shares=5, price="1.00")])
    f.process([multicast(pkt)], 1)
    f.process([multicast(pkt)], 2)
    assert f.drops() == {"DUPLICATE": 5}
    assert f.tob(0)["bid_qty"] == 5 and f.tob(0)["updates"] == 3


def test_quiet_feed_goes_stale_on_now_ns_and_a_heartbeat_revives_it():
    f = feed(stale_after_ns=1_000_000)
    f.process([multicast(P(S, 1, opening()))], 10)
    assert f.next_deadline() == 1_000_010
    f.process([], 1_000_009)
    assert f.stale() == 0
    f.process([], 1_000_010)
    assert f.stale() == QUIET and f.tob(1)["stale"] == QUIET and f.events()["QUIET"] == 1
    f.process([multicast(P(S, 5, [], count=0))], 1_500_000)
    assert f.stale() == 0


def test_end_of_session_marks_books_stale():
    f = feed()
    f.process([multicast(P(S, 1, opening()))], 1)
    f.process([multicast(P(S, 5, [], count=0xFFFF))], 2)
    assert f.stale() == END and f.events()["END_OF_SESSION"] == 1


def test_unknown_types_are_skipped_by_their_length():
    f = feed()
    f.process([multicast(P(S, 1, opening() + [b"L" + bytes(25), b"?" * 300,
                                              M("A", locate=7, ref=1, side="S", shares=9,
                                                price="2.00")]))], 1)
    assert f.tob(0)["ask_qty"] == 9 and f.events()["SKIPPED_TYPES"] == 2
    assert f.expected_seq() == 8


def test_frames_not_for_this_feed_are_dropped_by_reason():
    f = feed(source="10.0.0.7")
    pkt = P(S, 1, opening())
    bad_csum = bytearray(multicast(pkt))
    bad_csum[-1] ^= 0xFF
    f.process([multicast(pkt, group="239.1.1.2"), multicast(pkt, port=1),
               multicast(pkt, src_ip="10.0.0.8"), retransmission(pkt, src_ip="10.0.0.8"),
               bytes(bad_csum), multicast(P(S, 1, [])[:15])], 1)
    assert f.drops() == {"WRONG_GROUP": 1, "WRONG_PORT": 1, "WRONG_SOURCE": 2, "NET": 1,
                         "MOLD_TRUNCATED": 1}
    assert f.stale() == NO_SESSION
    f.process([multicast(pkt)], 2)
    assert f.stale() == 0


def test_truncated_blocks_are_counted():
    f = feed()
    pkt = P(S, 1, opening())
    f.process([multicast(pkt[:-3])], 1)
    assert f.drops() == {"MOLD_BAD_BLOCK": 1} and f.expected_seq() == 4


def test_tables_too_small_mark_that_book_stale():
    f = feed(max_orders=4, max_levels=2)
    msgs = opening() + [M("A", locate=7, ref=i, side="B", shares=1, price=f"1.0{i}")
                        for i in range(1, 4)]
    f.process([multicast(P(S, 1, msgs))], 1)
    assert f.drops() == {"LEVELS_FULL": 1}
    assert f.tob(0)["stale"] == 16 and f.tob(1)["stale"] == 0
    assert GROUP  # the group the frames went to


def test_a_symbol_subscribed_mid_session_is_stale_until_the_next():
    f = feed()
    f.process([multicast(P(S, 1, opening() + [M("A", locate=9, ref=1, side="B", shares=5,
                                                price="99.00")]))], 1)
    f.subscribe("IBM", 7)  # live reload: the directory went by already
    assert f.tob(7)["stale"] == 32
    f.process([multicast(P(S, 6, [M("A", locate=9, ref=2, side="S", shares=3,
                                     price="99.50")]))], 2)
    t = f.tob(7)
    assert (t["stale"], t["bid_qty"], t["ask_qty"]) == (32, 0, 3)  # ref 1 came before
    f.process([multicast(P("20261128A1", 1, opening() + [
        M("A", locate=9, ref=1, side="B", shares=5, price="99.00")]))], 3)
    t = f.tob(7)
    assert (t["stale"], t["bid_qty"]) == (0, 5)
