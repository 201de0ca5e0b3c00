"""Focused tests of the Python reference model alone (dataplane/reference_model.py).

Input frames are built here by hand with struct, independently of the
model's own frame builder, so a checksum or offset mistake in the model
cannot cancel itself out."""
from __future__ import annotations

import struct

import pytest
import wire

from control.config import (
    Account,
    Appliance,
    Config,
    Instrument,
    Routing,
    Session,
    Tables,
    Venue,
)
from dataplane.reference_model import ReferenceCore

APP_MAC = bytes.fromhex("020000000001")
APP_IP = "10.10.0.1"
STRATEGY_PORT = 9000
VENUE_PORT = 9100
APP_REQUEST_PORT = 9150  # appliance.venue_request_port
SESS_ID = 7
SESS_IP = "10.10.0.2"
SESS_PORT = 40000
SESS_MAC = bytes.fromhex("020000000102")
VENUE_IP = "10.10.0.3"
VENUE_PORT_REMOTE = 30000
VENUE_REQUEST_PORT_REMOTE = 30500  # venues[].request_port
VENUE_MAC = bytes.fromhex("020000000203")
VENUE_SESSION = b"SESS01    "

# strategy protocol types
LOGIN, LOGOUT, HEARTBEAT, RETRANSMIT_REQUEST = 0x01, 0x02, 0x03, 0x04
NEW_ORDER, MODIFY, CANCEL, MASS_CANCEL = 0x10, 0x11, 0x12, 0x13
LOGIN_ACCEPTED, ACCEPTED, REJECTED, REPLACED, SP_CANCELED, FILL = (
    0x81, 0x90, 0x91, 0x92, 0x93, 0x94)
RETRANSMIT_REJECT = 0x84
TOO_OLD, NOT_SENT = 1, 2  # RetransmitReject reasons

# order states
PENDING_NEW, NEW, PARTIALLY_FILLED, FILLED = 1, 2, 3, 4
PENDING_CANCEL, CANCELED = 7, 8

NOW = 1_000_000_000
MS = 1_000_000
PRICE_150_25 = 15_025_000_000  # 8 implied decimals
REPLAY_DEPTH = 16
U64_MAX = 2**64 - 1


def make_config(orders: int = 16, tx_frames: int = 64, *,
                replay_depth: int = REPLAY_DEPTH,
                session_timers: tuple[int, int] = (100, 300),
                venue_timers: tuple[int, int] = (1000, 3000)) -> Config:
    """Timers are (heartbeat_ms, timeout_ms); retransmit_ms is 50."""
    return Config(
        appliance=Appliance(mac="02:00:00:00:00:01", ip=APP_IP,
                            strategy_port=STRATEGY_PORT, venue_port=VENUE_PORT,
                            capacity="P", venue_request_port=APP_REQUEST_PORT,
                            retransmit_ms=50),
        routing=Routing(default_venue=1),
        tables=Tables(orders=orders, tx_frames=tx_frames,
                      replay_depth=replay_depth),
        sessions=(Session(id=SESS_ID, ip=SESS_IP, port=SESS_PORT,
                          mac="02:00:00:00:01:02",
                          heartbeat_ms=session_timers[0],
                          timeout_ms=session_timers[1]),),
        venues=(Venue(id=1, name="NASDAQ", session="SESS01", ip=VENUE_IP,
                      port=VENUE_PORT_REMOTE, mac="02:00:00:00:02:03",
                      request_port=VENUE_REQUEST_PORT_REMOTE,
                      heartbeat_ms=venue_timers[0], timeout_ms=venue_timers[1]),),
        instruments=(Instrument("AAPL"), Instrument("MSFT")),
        # generous limits: these tests are not about them
        accounts=tuple(Account(id=a, max_order_qty=999_999, max_order_notional=10**18,
                               max_open_orders=10**6, credit_limit=10**18,
                               max_position=(("AAPL", 10**12), ("MSFT", 10**12)))
                       for a in range(1, 10)),
    )


# --- hand-built frames ---------------------------------------------------------

def udp_frame(src_ip: str, src_port: int, dst_port: int, payload: bytes,
              dst_ip: str = APP_IP, src_mac: bytes = SESS_MAC) -> bytes:
    return wire.udp_frame(src_mac.hex(":"), APP_MAC.hex(":"), src_ip, dst_ip, src_port,
                          dst_port, payload)


def sp_msg(msg_type: int, seq: int, body: bytes, length: int | None = None,
           session: int = SESS_ID) -> bytes:
    n = 24 + len(body) if length is None else length
    return struct.pack("<BBHIQQ", 1, msg_type, n, session, seq, 0) + body


def strategy(*msgs: bytes) -> bytes:
    return udp_frame(SESS_IP, SESS_PORT, STRATEGY_PORT, b"".join(msgs))


def login(next_expected: int = 1) -> bytes:
    return strategy(sp_msg(LOGIN, 0, struct.pack("<Q", next_expected)))


def new_order(seq: int, cl_ord_id: int, qty: int = 100, price: int = PRICE_150_25,
              side: int = 1, flags: int = 0, account: int = 5) -> bytes:
    return sp_msg(NEW_ORDER, seq, struct.pack(
        "<QIBBBB8sqIHH", cl_ord_id, account, side, 1, 1, flags, b"AAPL    ",
        price, qty, 0, 0))


def modify(seq: int, cl_ord_id: int, price: int, qty: int) -> bytes:
    return sp_msg(MODIFY, seq, struct.pack("<QqII", cl_ord_id, price, qty, 0))


def cancel(seq: int, cl_ord_id: int) -> bytes:
    return sp_msg(CANCEL, seq, struct.pack("<Q", cl_ord_id))


def logout() -> bytes:
    return strategy(sp_msg(LOGOUT, 0, b""))


def sp_heartbeat(next_seq: int = 0) -> bytes:
    return strategy(sp_msg(HEARTBEAT, next_seq, b""))


def retransmit_request(from_seq: int, count: int) -> bytes:
    return strategy(sp_msg(RETRANSMIT_REQUEST, 0,
                           struct.pack("<QII", from_seq, count, 0)))


def venue(first_seq: int, *ouch: bytes) -> bytes:
    body = VENUE_SESSION + struct.pack(">QH", first_seq, len(ouch))
    body += b"".join(struct.pack(">H", len(m)) + m for m in ouch)
    return udp_frame(VENUE_IP, VENUE_PORT_REMOTE, VENUE_PORT, body,
                     src_mac=VENUE_MAC)


def venue_heartbeat(next_seq: int) -> bytes:
    return udp_frame(VENUE_IP, VENUE_PORT_REMOTE, VENUE_PORT,
                     VENUE_SESSION + struct.pack(">QH", next_seq, 0),
                     src_mac=VENUE_MAC)


def venue_request(from_seq: int, count: int) -> bytes:
    """A venue's retransmission request, to the appliance's request port."""
    return udp_frame(VENUE_IP, VENUE_PORT_REMOTE, APP_REQUEST_PORT,
                     VENUE_SESSION + struct.pack(">QH", from_seq, count),
                     src_mac=VENUE_MAC)


def ouch_accepted(ref: int, state: bytes = b"L") -> bytes:
    m = bytearray(64)
    m[0:1] = b"A"
    struct.pack_into(">QI", m, 1, 42, ref)
    m[47:48] = state
    return bytes(m)


def ouch_executed(ref: int, qty: int, price4: int, match: int) -> bytes:
    return struct.pack(">cQIIQcQH", b"E", 42, ref, qty, price4, b"A", match, 0)


def ouch_canceled(ref: int, qty: int, reason: bytes = b"U") -> bytes:
    return struct.pack(">cQIIc", b"C", 42, ref, qty, reason)


# --- decoding what the model sends ------------------------------------------------

def check_frame(frame: bytes, dst_mac: bytes, dst_ip: str, src_port: int,
                dst_port: int) -> bytes:
    """Check the Ethernet/IPv4/UDP headers as net_build_udp() writes them;
    return the UDP payload."""
    assert frame[0:6] == dst_mac and frame[6:12] == APP_MAC
    assert frame[12:14] == b"\x08\x00"
    ip = frame[14:34]
    ver_ihl, tos, total, ident, frag, ttl, proto = struct.unpack(">BBHHHBB", ip[:10])
    assert (ver_ihl, tos, ident, frag, ttl, proto) == (0x45, 0, 0, 0x4000, 64, 17)
    assert total == len(frame) - 14
    assert wire.ones_complement(ip) == 0
    assert ip[12:16] == wire.ip4(APP_IP) and ip[16:20] == wire.ip4(dst_ip)
    udp = frame[34:]
    sport, dport, ulen, csum = struct.unpack(">HHHH", udp[:8])
    assert (sport, dport, ulen) == (src_port, dst_port, len(udp))
    assert csum != 0
    pseudo = ip[12:20] + struct.pack(">BBH", 0, 17, ulen)
    assert wire.ones_complement(pseudo + udp) == 0
    return udp[8:]


def sp_out(frame: bytes) -> tuple[tuple, bytes]:
    """(header fields, body) of one strategy message sent to the session."""
    payload = check_frame(frame, SESS_MAC, SESS_IP, STRATEGY_PORT, SESS_PORT)
    hdr = struct.unpack_from("<BBHIQQ", payload)
    assert hdr[0] == 1 and hdr[2] == len(payload) and hdr[3] == SESS_ID
    return hdr, payload[24:]


def venue_out(frame: bytes) -> tuple[int, bytes]:
    """(framing seq, the one OUCH message) of a packet sent to the venue."""
    payload = check_frame(frame, VENUE_MAC, VENUE_IP, VENUE_PORT, VENUE_PORT_REMOTE)
    assert payload[:10] == VENUE_SESSION
    seq, count, length = struct.unpack_from(">QHH", payload, 10)
    assert count == 1 and length == len(payload) - 22
    return seq, payload[22:]


def venue_control(frame: bytes, src_port: int, dst_port: int) -> tuple[int, int]:
    """(sequence number, count) of a header-only packet to the venue: a
    heartbeat (venue_port -> port) or a request (request ports)."""
    payload = check_frame(frame, VENUE_MAC, VENUE_IP, src_port, dst_port)
    assert len(payload) == 20 and payload[:10] == VENUE_SESSION
    return struct.unpack_from(">QH", payload, 10)


def venue_heartbeat_out(frame: bytes) -> int:
    seq, count = venue_control(frame, VENUE_PORT, VENUE_PORT_REMOTE)
    assert count == 0
    return seq


def venue_request_out(frame: bytes) -> tuple[int, int]:
    return venue_control(frame, APP_REQUEST_PORT, VENUE_REQUEST_PORT_REMOTE)


@pytest.fixture
def core() -> ReferenceCore:
    c = ReferenceCore(make_config())
    out = c.process_burst([login()], NOW)
    assert len(out) == 1
    return c


def entered(core: ReferenceCore, seq: int, cl_ord_id: int, **kw) -> int:
    """Send a NewOrder, return its UserRefNum from the Enter Order."""
    out = core.process_burst([strategy(new_order(seq, cl_ord_id, **kw))], NOW)
    assert len(out) == 1
    _, msg = venue_out(out[0])
    assert msg[0:1] == b"O"
    return struct.unpack_from(">I", msg, 1)[0]


# --- tests -----------------------------------------------------------------------

def test_login_accepted():
    c = ReferenceCore(make_config())
    out = c.process_burst([login()], NOW)
    assert len(out) == 1
    hdr, body = sp_out(out[0])
    assert hdr == (1, LOGIN_ACCEPTED, 32, SESS_ID, 1, NOW)
    assert struct.unpack("<Q", body) == (1,)
    st = c.stats()
    assert st["event"] == {"FRAMES_IN": 1, "FRAMES_OUT": 1, "SP_MSGS_OUT": 1,
                           "LOGINS": 1}
    assert st["sp_in"] == {LOGIN: 1} and st["sp_out"] == {LOGIN_ACCEPTED: 1}
    assert st["drop"] == {}


def test_new_order_enters_order_at_venue(core):
    cl = int("ORDER1", 36)
    out = core.process_burst([strategy(new_order(1, cl))], NOW + 5)
    assert len(out) == 1  # nothing to the strategy yet
    seq, msg = venue_out(out[0])
    assert seq == 1
    # the worked example of docs/research-ouch-ufo.md §1.7, with Capacity 'P'
    assert msg == bytes.fromhex(
        "4F 00000001 42 00000064 4141504C20202020 000000000016ED24 30 59 50 4E 4E"
        " 4F5244455231 2020202020202020 0000")
    assert struct.unpack_from(">I", msg, 6)[0] == 100  # Quantity
    assert msg[10:18] == b"AAPL    "
    assert struct.unpack_from(">Q", msg, 18)[0] == 1_502_500
    o = core.order(SESS_ID, cl)
    assert o["state"] == PENDING_NEW and o["ref"] == 1 and o["venue"] == 1
    assert o["leaves_qty"] == 100 and o["acked"] == 0
    assert o["state_ts"][PENDING_NEW] == NOW + 5
    assert core.live_orders() == 1
    st = core.stats()
    assert st["event"]["ORDERS_ACCEPTED_INTERNAL"] == 1
    assert st["venue_out"] == {ord("O"): 1}


def test_sell_short_carries_shares_located():
    c = ReferenceCore(make_config())
    c.process_burst([login()], NOW)
    out = c.process_burst([strategy(new_order(1, 9, side=3, flags=0x02))], NOW)
    _, msg = venue_out(out[0])
    assert msg[5:6] == b"T"
    assert len(msg) == 50 and msg[45:] == bytes.fromhex("0003021959")


def test_venue_accepted_reaches_strategy(core):
    ref = entered(core, 1, 11)
    out = core.process_burst([venue(1, ouch_accepted(ref))], NOW + 10)
    assert len(out) == 1
    hdr, body = sp_out(out[0])
    assert hdr[1] == ACCEPTED and hdr[4] == 1 and hdr[5] == NOW + 10
    assert struct.unpack("<QqIHH", body) == (11, PRICE_150_25, 100, 1, 0)
    o = core.order(SESS_ID, 11)
    assert o["state"] == NEW and o["acked"] == 1
    assert o["state_ts"][NEW] == NOW + 10
    assert core.stats()["venue_in"] == {ord("A"): 1}


def test_partial_fill_then_fill(core):
    ref = entered(core, 1, 11)
    core.process_burst([venue(1, ouch_accepted(ref))], NOW)
    out = core.process_burst([venue(2, ouch_executed(ref, 30, 1_502_600, 77))], NOW)
    hdr, body = sp_out(out[0])
    assert hdr[1] == FILL and hdr[4] == 2
    assert struct.unpack("<QqIIIIQ", body) == (11, 15_026_000_000, 30, 30, 70, 0, 77)
    assert core.order(SESS_ID, 11)["state"] == PARTIALLY_FILLED
    out = core.process_burst([venue(3, ouch_executed(ref, 70, 1_502_500, 78))], NOW)
    _, body = sp_out(out[0])
    assert struct.unpack("<QqIIIIQ", body)[2:5] == (70, 100, 0)
    o = core.order(SESS_ID, 11)
    assert o["state"] == FILLED and o["cum_qty"] == 100 and o["leaves_qty"] == 0
    assert core.live_orders() == 0
    # anything more is an overfill... of a terminal order: unexpected
    core.process_burst([venue(4, ouch_executed(ref, 1, 1_502_500, 79))], NOW)
    assert core.stats()["drop"] == {"OUCH_UNEXPECTED": 1}


def test_cancel_before_ack(core):
    ref = entered(core, 1, 11)
    out = core.process_burst([strategy(cancel(2, 11))], NOW)
    assert len(out) == 1
    _, msg = venue_out(out[0])
    assert msg == b"X" + struct.pack(">II", ref, 0)
    assert core.order(SESS_ID, 11)["state"] == PENDING_CANCEL
    # the venue accepts the order first: Accepted, still pending cancel
    out = core.process_burst([venue(1, ouch_accepted(ref))], NOW)
    assert sp_out(out[0])[0][1] == ACCEPTED
    assert core.order(SESS_ID, 11)["state"] == PENDING_CANCEL
    out = core.process_burst([venue(2, ouch_canceled(ref, 100))], NOW)
    hdr, body = sp_out(out[0])
    assert hdr[1] == SP_CANCELED
    assert struct.unpack("<QIIB7x", body) == (11, 100, 0, 1)  # reason USER
    assert core.order(SESS_ID, 11)["state"] == CANCELED


def test_modify_after_fill_is_too_late(core):
    ref = entered(core, 1, 11)
    core.process_burst([venue(1, ouch_accepted(ref), ouch_executed(ref, 100, 1_502_500, 1))],
                       NOW)
    out = core.process_burst([strategy(modify(2, 11, PRICE_150_25, 200))], NOW)
    assert len(out) == 1
    hdr, body = sp_out(out[0])
    assert hdr[1] == REJECTED
    assert struct.unpack("<QHBBI", body) == (11, 12, MODIFY, 0, 0)  # TOO_LATE
    assert core.stats()["reject_business"] == {12: 1}


def test_modify_sends_replace_and_replaced_updates(core):
    ref = entered(core, 1, 11)
    core.process_burst([venue(1, ouch_accepted(ref))], NOW)
    out = core.process_burst([strategy(modify(2, 11, 15_030_000_000, 300))], NOW)
    _, msg = venue_out(out[0])
    assert len(msg) == 40 and msg[0:1] == b"U"
    assert struct.unpack_from(">IIIQ", msg, 1) == (ref, ref + 1, 300, 1_503_000)
    assert msg[21:24] == b"0YN" and msg[24:38] == b"B".ljust(14) and msg[38:] == b"\0\0"
    replaced = bytearray(68)
    replaced[0:1] = b"U"
    struct.pack_into(">QII", replaced, 1, 0, ref, ref + 1)
    out = core.process_burst([venue(2, bytes(replaced))], NOW)
    hdr, body = sp_out(out[0])
    assert hdr[1] == REPLACED
    assert struct.unpack("<QqII", body) == (11, 15_030_000_000, 300, 300)
    o = core.order(SESS_ID, 11)
    assert (o["ref"], o["pending_ref"], o["qty"]) == (ref + 1, 0, 300)


def test_duplicate_seq_never_executed_twice(core):
    out = core.process_burst([strategy(new_order(1, 11))], NOW)
    assert len(out) == 1
    # a different order under an already used seq: dropped, never executed
    out = core.process_burst([strategy(new_order(1, 12), new_order(1, 11))], NOW)
    assert out == []
    assert core.order(SESS_ID, 12) is None
    st = core.stats()
    assert st["drop"] == {"SP_DUPLICATE_SEQ": 2}
    assert st["event"]["SP_MSGS_IN"] == 1
    assert st["event"]["ORDERS_ACCEPTED_INTERNAL"] == 1
    assert st["reject_business"] == {}


def test_seq_gap_is_out_of_order_and_requested(core):
    out = core.process_burst([strategy(new_order(5, 11))], NOW)
    # not handled; the missing messages and this one are asked for
    assert len(out) == 1
    hdr, body = sp_out(out[0])
    assert hdr == (1, RETRANSMIT_REQUEST, 40, SESS_ID, 1, NOW)
    assert struct.unpack("<QII", body) == (1, 5, 0)
    assert core.order(SESS_ID, 11) is None
    st = core.stats()
    assert st["drop"] == {"SP_OUT_OF_ORDER": 1}
    assert st["event"]["SP_SEQ_GAPS"] == 1 and st["event"]["SP_SEQ_GAP_MSGS"] == 5
    assert "SP_MSGS_IN" not in st["event"]
    assert st["sp_out"][RETRANSMIT_REQUEST] == 1
    # a request is on its way: another gap within retransmit_ms asks nothing
    assert core.process_burst([strategy(new_order(6, 12))], NOW + 10 * MS) == []
    assert core.stats()["drop"] == {"SP_OUT_OF_ORDER": 2}
    # the strategy goes back to 1: all handled, in order
    out = core.process_burst([strategy(*(new_order(i, i) for i in range(1, 5)),
                                       new_order(5, 11), new_order(6, 12))],
                             NOW + 20 * MS)
    assert [venue_out(f)[0] for f in out] == [1, 2, 3, 4, 5, 6]
    assert core.order(SESS_ID, 11)["state"] == PENDING_NEW
    ev = core.stats()["event"]
    assert ev["SP_MSGS_IN"] == 6 and ev["SP_SEQ_GAPS"] == 1
    # the request was satisfied: nothing is re-sent at retransmit_ms
    assert core.process_burst([], NOW + 60 * MS) == []


def test_heartbeat_seq_above_next_expected_requests(core):
    out = core.process_burst([sp_heartbeat(4)], NOW)
    hdr, body = sp_out(out[0])
    assert hdr[1] == RETRANSMIT_REQUEST and struct.unpack("<QII", body) == (1, 3, 0)
    # not above: nothing (and the request stays outstanding)
    assert core.process_burst([sp_heartbeat(1)], NOW + 10 * MS) == []
    assert core.next_deadline() == NOW + 50 * MS
    ev = core.stats()["event"]
    assert ev["HEARTBEATS_IN"] == 2 and ev["SP_SEQ_GAP_MSGS"] == 3


def rejected_frames(core: ReferenceCore, n: int, first_seq: int = 1,
                    now: int = NOW) -> list[bytes]:
    """n NewOrders with qty 0: n Rejected replies, one burst each, each at
    its own now_ns (so each has its own timestamp)."""
    frames = []
    for i in range(n):
        out = core.process_burst([strategy(new_order(first_seq + i, 100 + i, qty=0))],
                                 now + i)
        assert len(out) == 1 and sp_out(out[0])[0][1] == REJECTED
        frames += out
    return frames


def test_retransmit_request_served_byte_identically(core):
    sent = rejected_frames(core, 3)
    before = core.stats()
    out = core.process_burst([retransmit_request(2, 5)], NOW + 10 * MS)
    # seq 2 and 3 (nothing beyond next outbound 4), exactly as first sent
    assert out == sent[1:]
    assert [sp_out(f)[0][4:] for f in out] == [(2, NOW + 1), (3, NOW + 2)]
    st = core.stats()
    assert st["event"]["SP_RETRANSMIT_REQUESTS"] == 1
    assert st["event"]["SP_RETRANSMITTED"] == 2
    assert st["event"]["FRAMES_OUT"] == before["event"]["FRAMES_OUT"] + 2
    assert st["event"]["SP_MSGS_OUT"] == before["event"]["SP_MSGS_OUT"]
    assert st["sp_out"] == before["sp_out"]
    assert st["sp_in"][RETRANSMIT_REQUEST] == 1
    # count 0: nothing at all
    assert core.process_burst([retransmit_request(1, 0)], NOW + 11 * MS) == []
    assert core.stats()["event"]["SP_RETRANSMIT_REQUESTS"] == 2
    # a wrong length is SP_BAD_MSG_LENGTH; logged out it is SP_NOT_LOGGED_IN
    bad = strategy(sp_msg(RETRANSMIT_REQUEST, 0, struct.pack("<Q", 1)))
    assert core.process_burst([bad], NOW + 12 * MS) == []
    core.process_burst([logout()], NOW + 13 * MS)
    assert core.process_burst([retransmit_request(1, 1)], NOW + 14 * MS) == []
    assert core.stats()["drop"] == {"SP_BAD_MSG_LENGTH": 1, "SP_NOT_LOGGED_IN": 1}


def test_retransmit_reject_too_old_and_not_sent(core):
    sent = rejected_frames(core, REPLAY_DEPTH + 4)  # seq 1..20, next outbound 21
    # the oldest held is max(1, 21 - 16) = 5
    out = core.process_burst([retransmit_request(4, 2)], NOW + 10 * MS)
    hdr, body = sp_out(out[0])
    assert len(out) == 1
    assert hdr == (1, RETRANSMIT_REJECT, 40, SESS_ID, 21, NOW + 10 * MS)
    assert struct.unpack("<QIB3x", body) == (4, 2, TOO_OLD)
    assert core.process_burst([retransmit_request(5, 1)], NOW + 11 * MS) == [sent[4]]
    out = core.process_burst([retransmit_request(21, 3)], NOW + 12 * MS)
    hdr, body = sp_out(out[0])
    assert hdr[1] == RETRANSMIT_REJECT and hdr[4] == 21
    assert struct.unpack("<QIB3x", body) == (21, 3, NOT_SENT)
    st = core.stats()
    assert st["sp_out"][RETRANSMIT_REJECT] == 2
    assert st["event"]["SP_RETRANSMITTED"] == 1
    assert st["event"]["SP_RETRANSMIT_REQUESTS"] == 3


def test_at_most_1024_resent_per_request():
    c = ReferenceCore(make_config(tx_frames=2048, replay_depth=2048))
    c.process_burst([login()], NOW)
    for first in range(1, 1101, 500):  # outbound seq 1..1100
        n = min(500, 1101 - first)
        out = c.process_burst([strategy(*(new_order(first + i, first + i, qty=0)
                                         for i in range(n)))], NOW)
        assert len(out) == n
    out = c.process_burst([retransmit_request(3, 5000)], NOW + 1)
    assert [sp_out(f)[0][4] for f in out] == list(range(3, 3 + 1024))


def test_tx_full_resends_count_only_what_was_built():
    """semantics.md: SP_RETRANSMITTED, like SP_MSGS_OUT, counts the resent
    frames actually built; the one TX_FULL stopped counts as TX_FULL."""
    c = ReferenceCore(make_config(tx_frames=2))
    c.process_burst([login()], NOW)
    rejected_frames(c, 3)
    out = c.process_burst([retransmit_request(1, 3)], NOW + 10)
    assert [sp_out(f)[0][4] for f in out] == [1, 2]
    st = c.stats()
    assert st["drop"] == {"TX_FULL": 1} and st["event"]["SP_RETRANSMITTED"] == 2


def test_login_with_lower_next_expected_replays(core):
    sent = rejected_frames(core, 2)  # outbound seq 1, 2
    ref = entered(core, 3, 11)
    out = core.process_burst([logout()], NOW + 10 * MS)
    hdr, body = sp_out(out[0])
    assert hdr == (1, LOGOUT, 24, SESS_ID, 3, NOW + 10 * MS) and body == b""
    # outbound messages go to a logged-out session too: seq 3
    sent += core.process_burst([venue(1, ouch_accepted(ref))], NOW + 15 * MS)
    assert sp_out(sent[2])[0][1] == ACCEPTED
    out = core.process_burst([login(2)], NOW + 20 * MS)
    hdr, body = sp_out(out[0])
    assert hdr == (1, LOGIN_ACCEPTED, 32, SESS_ID, 4, NOW + 20 * MS)
    assert struct.unpack("<Q", body) == (4,)
    assert out[1:] == sent[1:]  # seq 2 and 3, as first sent
    ev = core.stats()["event"]
    assert ev["LOGINS"] == 2 and ev["LOGOUTS"] == 1 and ev["SP_RETRANSMITTED"] == 2
    assert "SP_RETRANSMIT_REQUESTS" not in ev
    # expecting the next one: nothing to replay
    assert len(core.process_burst([login(4)], NOW + 21 * MS)) == 1


def test_heartbeat_out_after_heartbeat_ms_idle(core):
    # logged in at NOW: LoginAccepted set last_tx, the Login last_rx
    assert core.next_deadline() == NOW + 100 * MS
    assert core.process_burst([], NOW + 99 * MS) == []
    out = core.process_burst([], NOW + 100 * MS)
    assert len(out) == 1
    hdr, body = sp_out(out[0])
    assert hdr == (1, HEARTBEAT, 24, SESS_ID, 1, NOW + 100 * MS) and body == b""
    ev = core.stats()["event"]
    assert ev["HEARTBEATS_OUT"] == 1 and ev["SP_MSGS_OUT"] == 2
    assert core.next_deadline() == NOW + 200 * MS
    # any frame sent to the session counts as traffic
    rejected_frames(core, 1, now=NOW + 150 * MS)
    assert core.next_deadline() == NOW + 250 * MS
    assert core.process_burst([], NOW + 249 * MS) == []


def test_session_timeout():
    c = ReferenceCore(make_config())
    c.process_burst([login()], NOW)
    c.process_burst([], NOW + 100 * MS)  # a heartbeat
    assert c.next_deadline() == NOW + 200 * MS
    c.process_burst([], NOW + 200 * MS)  # another
    assert c.next_deadline() == NOW + 300 * MS  # the timeout (and a heartbeat)
    # silent for timeout_ms: disconnected (logged out), nothing sent
    assert c.process_burst([], NOW + 300 * MS) == []
    st = c.stats()
    assert st["event"]["SESSION_TIMEOUTS"] == 1 and st["event"]["HEARTBEATS_OUT"] == 2
    assert "LOGOUTS" not in st["event"]
    assert c.next_deadline() == NOW + 1000 * MS  # only the venue's heartbeat
    assert c.process_burst([strategy(new_order(1, 1))], NOW + 301 * MS) == []
    assert c.stats()["drop"] == {"SP_NOT_LOGGED_IN": 1}


def test_hearing_from_the_strategy_keeps_the_session(core):
    # the heartbeat timer runs first (a Heartbeat out), then the frame
    out = core.process_burst([sp_heartbeat(1)], NOW + 250 * MS)
    assert [sp_out(f)[0][1] for f in out] == [HEARTBEAT]
    assert core.process_burst([], NOW + 300 * MS) == []
    assert core.next_deadline() == NOW + 350 * MS
    assert "SESSION_TIMEOUTS" not in core.stats()["event"]


def test_gap_request_resent_after_retransmit_ms(core):
    out = core.process_burst([strategy(new_order(3, 1))], NOW)
    assert struct.unpack("<QII", sp_out(out[0])[1]) == (1, 3, 0)
    assert core.next_deadline() == NOW + 50 * MS
    assert core.process_burst([], NOW + 49 * MS) == []
    out = core.process_burst([], NOW + 50 * MS)
    assert len(out) == 1
    hdr, body = sp_out(out[0])
    assert hdr == (1, RETRANSMIT_REQUEST, 40, SESS_ID, 1, NOW + 50 * MS)
    assert struct.unpack("<QII", body) == (1, 3, 0)
    ev = core.stats()["event"]
    assert ev["SP_SEQ_GAPS"] == 2 and ev["SP_SEQ_GAP_MSGS"] == 3
    assert "HEARTBEATS_OUT" not in ev  # the request was traffic
    # seq 1 arrives: the request is satisfied, the timer stops
    core.process_burst([strategy(new_order(1, 1))], NOW + 60 * MS)
    assert core.next_deadline() == NOW + 150 * MS  # heartbeat
    # seq 3 again: a new request from the new next expected, 2
    out = core.process_burst([strategy(new_order(3, 3))], NOW + 70 * MS)
    assert struct.unpack("<QII", sp_out(out[0])[1]) == (2, 2, 0)
    # logging out drops it
    core.process_burst([logout()], NOW + 80 * MS)
    # only the venue's heartbeat is left (the Enter Order at +60 ms was traffic)
    assert core.next_deadline() == NOW + 1060 * MS


def test_venue_out_of_order_packet_requests():
    c = ReferenceCore(make_config())
    c.process_burst([login()], NOW)
    ref = entered(c, 1, 11)
    out = c.process_burst([venue(3, ouch_accepted(ref))], NOW)
    assert len(out) == 1
    # from appliance.ip:venue_request_port to the venue's request port
    assert venue_request_out(out[0]) == (1, 3)
    assert c.order(SESS_ID, 11)["state"] == PENDING_NEW  # not handled
    st = c.stats()
    assert st["drop"] == {"UFO_OUT_OF_ORDER": 1}
    assert st["event"]["VENUE_SEQ_GAPS"] == 1 and st["event"]["VENUE_SEQ_GAP_MSGS"] == 3
    assert "VENUE_MSGS_IN" not in st["event"] and st["venue_out"] == {ord("O"): 1}
    # a heartbeat announcing more within retransmit_ms: nothing new asked
    assert c.process_burst([venue_heartbeat(10)], NOW + 1 * MS) == []
    assert c.next_deadline() == NOW + 50 * MS
    out = c.process_burst([], NOW + 50 * MS)
    assert [venue_request_out(f) for f in out] == [(1, 3)]
    assert c.stats()["event"]["VENUE_SEQ_GAPS"] == 2
    # the venue resends from 1: handled, the request cleared
    out = c.process_burst([venue(1, ouch_accepted(ref))], NOW + 60 * MS)
    assert sp_out(out[0])[0][1] == ACCEPTED
    assert c.process_burst([], NOW + 99 * MS) == []
    # a heartbeat beyond the next expected asks for the missing ones
    out = c.process_burst([venue_heartbeat(5)], NOW + 99 * MS)
    assert [venue_request_out(f) for f in out] == [(2, 3)]
    assert c.stats()["event"]["VENUE_SEQ_GAP_MSGS"] == 6


def test_venue_request_count_is_capped_at_the_window(core):
    out = core.process_burst([venue(70_000, ouch_accepted(1))], NOW)
    assert venue_request_out(out[0]) == (1, 64)
    assert core.stats()["event"]["VENUE_SEQ_GAP_MSGS"] == 64
    out = core.process_burst([], NOW + 50 * MS)  # sent again, the same
    assert venue_request_out(out[0]) == (1, 64)


def test_venue_request_served_from_the_replay_buffer(core):
    sent = []  # framing seqs 1 O(11), 2 O(12), 3 X(11), 4 O(13)
    sent += core.process_burst([strategy(new_order(1, 11))], NOW + 1)
    sent += core.process_burst([strategy(new_order(2, 12))], NOW + 2)
    sent += core.process_burst([strategy(cancel(3, 11))], NOW + 3)
    sent += core.process_burst([strategy(new_order(4, 13))], NOW + 4)
    assert [venue_out(f)[0] for f in sent] == [1, 2, 3, 4]
    before = core.stats()
    out = core.process_burst([venue_request(2, 2)], NOW + 10)
    assert out == sent[1:3]  # exactly as first sent
    out = core.process_burst([venue_request(3, 100)], NOW + 20)
    assert out == sent[2:]  # up to our next
    st = core.stats()
    assert st["event"]["VENUE_RETRANSMIT_REQUESTS"] == 2
    assert st["event"]["VENUE_RETRANSMITTED"] == 4
    assert st["event"]["FRAMES_OUT"] == before["event"]["FRAMES_OUT"] + 4
    assert st["event"]["VENUE_MSGS_OUT"] == before["event"]["VENUE_MSGS_OUT"] == 4
    assert st["venue_out"] == before["venue_out"]
    # from our next on: a heartbeat (sequence number = our next, not consumed)
    out = core.process_burst([venue_request(5, 1)], NOW + 30)
    assert [venue_heartbeat_out(f) for f in out] == [5]
    # below the oldest held: counted, nothing sent
    assert core.process_burst([venue_request(0, 1)], NOW + 40) == []
    assert core.stats()["event"]["VENUE_RETRANSMIT_TOO_OLD"] == 1
    # a request with a wrong session is dropped like a venue packet
    bad = udp_frame(VENUE_IP, VENUE_PORT_REMOTE, APP_REQUEST_PORT,
                    b"OTHER     " + struct.pack(">QH", 1, 1), src_mac=VENUE_MAC)
    assert core.process_burst([bad], NOW + 50) == []
    assert core.stats()["drop"] == {"UFO_WRONG_SESSION": 1}


def test_venue_request_too_old_once_the_buffer_wrapped():
    c = ReferenceCore(make_config(orders=32))
    c.process_burst([login()], NOW)
    for i in range(1, REPLAY_DEPTH + 3):  # framing seqs 1..18, next 19
        entered(c, i, i)
    assert c.process_burst([venue_request(2, 1)], NOW) == []
    out = c.process_burst([venue_request(3, 1)], NOW)
    assert [venue_out(f)[0] for f in out] == [3]
    assert c.stats()["event"]["VENUE_RETRANSMIT_TOO_OLD"] == 1


def test_venue_hello_gets_a_heartbeat():
    c = ReferenceCore(make_config())
    out = c.process_burst([venue_request(1, 0)], NOW)
    assert [venue_heartbeat_out(f) for f in out] == [1]
    st = c.stats()
    assert st["event"]["VENUE_RETRANSMIT_REQUESTS"] == 1
    assert "VENUE_HEARTBEATS_OUT" not in st["event"]  # that counts the timer's


def test_venue_down_after_timeout_and_hello_on_the_next_heartbeat():
    c = ReferenceCore(make_config(venue_timers=(200, 600)))
    assert c.next_deadline() == U64_MAX  # timers start at the first call
    assert c.process_burst([], NOW) == []
    assert c.next_deadline() == NOW + 200 * MS
    out = c.process_burst([], NOW + 200 * MS)
    assert [venue_heartbeat_out(f) for f in out] == [1]
    out = c.process_burst([], NOW + 400 * MS)
    assert [venue_heartbeat_out(f) for f in out] == [1]
    assert c.next_deadline() == NOW + 600 * MS
    # silent for timeout_ms: down; the heartbeat due now comes with a hello
    out = c.process_burst([], NOW + 600 * MS)
    assert len(out) == 2
    assert venue_heartbeat_out(out[0]) == 1
    assert venue_request_out(out[1]) == (1, 0)
    ev = c.stats()["event"]
    assert ev["VENUE_TIMEOUTS"] == 1 and ev["VENUE_HEARTBEATS_OUT"] == 3
    assert c.next_deadline() == NOW + 800 * MS  # no timeout while down
    out = c.process_burst([], NOW + 800 * MS)
    assert venue_heartbeat_out(out[0]) == 1 and venue_request_out(out[1]) == (1, 0)
    assert c.stats()["event"]["VENUE_TIMEOUTS"] == 1
    # the venue answers: up again
    assert c.process_burst([venue_heartbeat(1)], NOW + 850 * MS) == []
    ev = c.stats()["event"]
    assert ev["VENUE_RECONNECTS"] == 1 and ev["VENUE_HEARTBEATS"] == 1
    assert c.next_deadline() == NOW + 1000 * MS
    out = c.process_burst([], NOW + 1000 * MS)
    assert [venue_heartbeat_out(f) for f in out] == [1]  # no hello
    assert c.next_deadline() == NOW + 1200 * MS


def test_venue_reconnects_on_a_retransmission_request():
    c = ReferenceCore(make_config(venue_timers=(200, 600)))
    c.process_burst([], NOW)
    c.process_burst([], NOW + 600 * MS)
    assert c.stats()["event"]["VENUE_TIMEOUTS"] == 1
    out = c.process_burst([venue_request(1, 0)], NOW + 700 * MS)
    assert [venue_heartbeat_out(f) for f in out] == [1]
    assert c.stats()["event"]["VENUE_RECONNECTS"] == 1
    assert c.next_deadline() == NOW + 900 * MS


def test_bad_ip_checksum_is_counted(core):
    frame = bytearray(strategy(new_order(1, 11)))
    frame[14 + 10] ^= 0xFF
    assert core.process_burst([bytes(frame)], NOW) == []
    assert core.stats()["drop"] == {"IP_CHECKSUM": 1}
    assert core.order(SESS_ID, 11) is None


def test_table_full_is_a_system_reject():
    c = ReferenceCore(make_config(orders=2))
    c.process_burst([login()], NOW)
    entered(c, 1, 1)
    entered(c, 2, 2)
    out = c.process_burst([strategy(new_order(3, 3))], NOW)
    assert len(out) == 1
    hdr, body = sp_out(out[0])
    assert hdr[1] == REJECTED
    assert struct.unpack("<QHBBI", body) == (3, 1000, NEW_ORDER, 0, 0)
    assert c.stats()["reject_system"] == {0: 1}
    assert c.live_orders() == 2


def test_eviction_oldest_terminal_first():
    c = ReferenceCore(make_config(orders=3))
    c.process_burst([login()], NOW)
    refs = [entered(c, i, i) for i in (1, 2, 3)]
    # order 2 ends before order 1: the eviction queue follows that order
    c.process_burst([venue(1, ouch_accepted(refs[1]), ouch_canceled(refs[1], 100),
                           ouch_accepted(refs[0]), ouch_canceled(refs[0], 100))], NOW)
    assert c.live_orders() == 1
    entered(c, 4, 4)
    assert c.order(SESS_ID, 2) is None and c.order(SESS_ID, 1) is not None
    # an evicted id is free again; its old UserRefNum is unknown now
    entered(c, 5, 2)
    assert c.order(SESS_ID, 1) is None
    c.process_burst([venue(5, ouch_executed(refs[0], 1, 1, 1))], NOW)
    st = c.stats()
    assert st["event"]["ORDERS_EVICTED"] == 2
    assert st["drop"] == {"OUCH_UNKNOWN_REF": 1}
    # still held (terminal, not evicted): a reused id is a duplicate
    c2 = ReferenceCore(make_config(orders=3))
    c2.process_burst([login()], NOW)
    r = entered(c2, 1, 1)
    c2.process_burst([venue(1, ouch_accepted(r), ouch_canceled(r, 100))], NOW)
    out = c2.process_burst([strategy(new_order(2, 1))], NOW)
    _, body = sp_out(out[0])
    assert struct.unpack("<QHBBI", body)[1] == 1  # DUPLICATE_ID


def test_tx_full_drops_frames_but_state_changes():
    c = ReferenceCore(make_config(tx_frames=1))
    c.process_burst([login()], NOW)
    out = c.process_burst([strategy(new_order(1, 1), new_order(2, 2))], NOW)
    assert len(out) == 1
    assert venue_out(out[0])[0] == 1
    assert c.order(SESS_ID, 2)["ref"] == 2
    st = c.stats()
    assert st["drop"] == {"TX_FULL": 1}
    assert st["venue_out"] == {ord("O"): 1}
    assert st["event"]["ORDERS_ACCEPTED_INTERNAL"] == 2
