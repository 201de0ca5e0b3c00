"""Named, hand-checked scenario transcripts that pin down docs/semantics.md.

Every transcript below was written from the documents (docs/semantics.md,
docs/protocol.md, docs/venue-protocol.md, docs/research-ouch-ufo.md), not by
running the code and pasting what it produced.  A transcript is data: a list
of steps, each with the input frames (strategy messages or venue packets,
built with tests/wire.py) and the outbound messages expected, decoded here
from the spec tables; plus the order states expected after the step and the
counters expected at the end.  Each one runs against both the C core and the
reference model.

Comparison rules:

- each step runs at its own `now_ns`: `at(ms)` (ms after T0) when the step
  names one, else T0 + step index * 1 ms; a step with no inputs only runs
  the timers (semantics.md "Time");
- the outbound messages must be exactly the expected ones, in order; of each
  message only the fields the transcript names are compared (plus the
  message type and its session or venue); `same_as=(step, i)` requires the
  frame to be byte for byte the i-th frame sent in that earlier step (a
  retransmission);
- every strategy message must carry `timestamp_ns` = the burst's `now_ns`,
  unless the expectation names `ts` (a resent message keeps its own);
- `orders` maps (session, cl_ord_id) to a state name, to a dict of view
  fields (`state` by name), or to None (no such order held);
- at the end, the `drop` counters must be exactly `drops` (no other drop
  counted), the reject counters exactly `rejects` (by reason name), and
  each named event counter equal to the value given (0: not counted).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

import pytest
import wire
from wire import (
    cancel,
    heartbeat,
    login,
    logout,
    mass_cancel,
    modify,
    new_order,
    ouch_accepted,
    ouch_cancel_reject,
    ouch_canceled,
    ouch_executed,
    ouch_rejected,
    ouch_replaced,
    ouch_system_event,
)

from dataplane.core import Core
from dataplane.reference_model import ReferenceCore

# --- names from the documents --------------------------------------------------

# order states, cdefs/oms_core.h (enum OMS_ST_*)
STATES = {1: "PendingNew", 2: "New", 3: "PartiallyFilled", 4: "Filled",
          5: "PendingReplace", 6: "Replaced", 7: "PendingCancel", 8: "Canceled",
          9: "Rejected", 10: "Expired"}

# reject reasons, docs/protocol.md "Enums"
REJECT = {"DUPLICATE_ID": 1, "BAD_SIDE": 2, "BAD_ORD_TYPE": 3, "BAD_TIF": 4,
          "BAD_QTY": 5, "UNKNOWN_SYMBOL": 6, "BAD_PRICE": 7, "UNKNOWN_VENUE": 8,
          "PRICE_UNREPRESENTABLE": 9, "LOCATE_REQUIRED": 10, "UNKNOWN_ORDER": 11,
          "TOO_LATE": 12, "ORDER_PENDING": 13, "VENUE_REJECTED": 14,
          "SYS_TABLE_FULL": 1000, "SYS_TX_FULL": 1001, "SYS_REF_EXHAUSTED": 1002}
R = REJECT

NEW_ORDER, MODIFY, CANCEL = 0x10, 0x11, 0x12          # Rejected.ref_type
USER, IOC, VENUE = 1, 2, 3                            # Canceled.reason
DISABLED, BAD_SEQ = 1, 2                              # LoginRejected.reason
UNKNOWN_TYPE, BAD_LENGTH = 1, 2                       # SessionReject.reason
TOO_OLD, NOT_SENT = 1, 2                              # RetransmitReject.reason

P150_25 = 150_2500_0000       # 150.25 at 8 decimals (protocol.md "Prices")
P151 = 151_0000_0000
O150_25 = 150_2500            # the same at OUCH's 4 decimals
O151 = 151_0000
SHARES_LOCATED = bytes((0x02, 25, ord("Y")))  # tag 25 SharesLocated = 'Y'


# time: T0 is 2021-11-30 04:43:20 UTC (docs/protocol.md, Example); the
# default configuration's timers (control/config.py): retransmit_ms 50,
# heartbeat_ms 1000 and timeout_ms 3000 for sessions and venues alike
T0 = 1_638_247_400_000_000_000
MS = 1_000_000


def at(ms: float) -> int:
    """now_ns `ms` milliseconds after T0."""
    return T0 + int(ms * MS)


def clid(text: str) -> str:
    """An OUCH ClOrdID field: left-justified, space padded to 14."""
    return text.ljust(14)


# --- transcript data ---------------------------------------------------------------

def S(session: int, *msgs: bytes) -> tuple:
    """One strategy datagram from `session` holding `msgs` back to back."""
    return ("sp", session, msgs)


def V(venue: int, *msgs: bytes, seq: int | None = None) -> tuple:
    """One venue packet of OUCH messages; its framing sequence number is the
    venue's next one unless `seq` is given."""
    return ("venue", venue, msgs, seq)


def SP(type_: str, session: int = 1, **fields) -> dict:
    """An expected outbound strategy message."""
    return {"to": "sp", "type": type_, "session": session, **fields}


def OU(type_: str, venue: int = 1, **fields) -> dict:
    """An expected outbound venue (OUCH) message."""
    return {"to": "venue", "type": type_, "venue": venue, **fields}


def retransmit_request(session: int, from_seq: int, count: int) -> bytes:
    """RetransmitRequest (0x04, 40 bytes; protocol.md): from_seq u64, count
    u32, reserved u32; header seq 0 (session level)."""
    return wire.sp(0x04, session, 0, struct.pack("<QII", from_seq, count, 0))


def venue_request(venue: int, from_seq: int, count: int) -> tuple:
    """A venue's retransmission request (venue-protocol.md): the framing
    header alone, to appliance.ip:venue_request_port."""
    v = next(v for v in wire.VENUES if v.id == venue)
    a = wire.APPLIANCE
    return ("raw", wire.udp_frame(v.mac, a.mac, v.ip, a.ip, v.port, a.request_port,
                                  wire.ufo(v.session, from_seq, count=count)))


def venue_heartbeat(venue: int, next_seq: int) -> tuple:
    v = next(v for v in wire.VENUES if v.id == venue)
    return ("raw", wire.from_venue(venue, wire.ufo(v.session, next_seq, count=0)))


@dataclass
class Step:
    inputs: list
    out: list
    orders: dict = field(default_factory=dict)
    now: int | None = None  # now_ns; None: T0 + step index * 1 ms


@dataclass
class Transcript:
    name: str
    steps: list
    drops: dict = field(default_factory=dict)
    rejects: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)
    orders_capacity: int = 1024
    tx_frames: int = 8192
    replay_depth: int | None = None  # None: the default (4096)
    xfail: str | None = None


LOGIN1 = Step([S(1, login(1, 1))], [SP("LoginAccepted", seq=1, next_expected_seq=1)])


def enter(ref: int, venue: int = 1, **fields) -> dict:
    return OU("O", venue=venue, ref=ref, **fields)


T: list[Transcript] = []

# 1. Login, sequence numbers, heartbeat, logout (answered with Logout),
# re-login (semantics.md "Session-level messages"; protocol.md "Sessions and
# sequencing").
T.append(Transcript("login_accepted_seq_numbers", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)], {(1, 1): "PendingNew"}),
    Step([V(1, ouch_accepted(1))],
         [SP("Accepted", seq=1, cl_ord_id=1, price=P150_25, qty=100, venue=1)],
         {(1, 1): "New"}),
    # re-login while logged in: allowed; next outbound is now 2, expected 2
    Step([S(1, login(1, 2))], [SP("LoginAccepted", seq=2, next_expected_seq=2)]),
    Step([S(1, heartbeat(1))], []),
    # Logout is answered with Logout, seq = next outbound (not consumed)
    Step([S(1, logout(1))], [SP("Logout", seq=2, length=24)]),
    # logged out: heartbeat and application messages are not handled
    Step([S(1, heartbeat(1), new_order(1, 2, 2))], [], {(1, 2): None}),
    # outbound application messages still go to a logged-out session
    Step([V(1, ouch_executed(1, 40, match=5))],
         [SP("Fill", seq=2, cl_ord_id=1, last_price=P150_25, last_qty=40, cum_qty=40,
             leaves_qty=60, match_number=5)],
         {(1, 1): {"state": "PartiallyFilled", "cum_qty": 40, "leaves_qty": 60}}),
    # the NewOrder seq 2 sent while logged out did not consume inbound seq 2
    Step([S(1, login(1, 3))], [SP("LoginAccepted", seq=3, next_expected_seq=2)]),
], drops={"SP_NOT_LOGGED_IN": 2},
    events={"LOGINS": 3, "LOGOUTS": 1, "HEARTBEATS_IN": 1, "SP_MSGS_IN": 1}))

# 2. Session 3 is disabled in wire.config().
T.append(Transcript("login_disabled_session", [
    Step([S(3, login(3, 1))], [SP("LoginRejected", session=3, seq=1, reason=DISABLED)]),
    Step([S(3, new_order(3, 1, 1))], [], {(3, 1): None}),
], drops={"SP_NOT_LOGGED_IN": 1}, events={"LOGINS": 0}))

# 3. next_expected_seq beyond what the appliance has sent: BAD_SEQ.
T.append(Transcript("login_bad_seq", [
    Step([S(1, login(1, 2))], [SP("LoginRejected", seq=1, reason=BAD_SEQ)]),
    Step([S(1, new_order(1, 1, 1))], [], {(1, 1): None}),      # not logged in
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)], {(1, 1): "PendingNew"}),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=1, cl_ord_id=1)]),
    # one message sent (seq 1): expecting 2 is fine, 3 was never sent
    Step([S(1, login(1, 3))], [SP("LoginRejected", seq=2, reason=BAD_SEQ)]),
    Step([S(1, login(1, 2))], [SP("LoginAccepted", seq=2, next_expected_seq=2)]),
], drops={"SP_NOT_LOGGED_IN": 1}, events={"LOGINS": 2}))

# 4. Enter Order field by field (semantics.md "NewOrder"; venue-protocol.md
# "Enter Order"); UserRefNum and framing seq are per venue.
T.append(Transcript("new_order_enter_fields", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 12345))],
         [enter(1, fsession="NSDQ01    ", fseq=1, count=1, length=47, side="B", qty=100,
                symbol="AAPL    ", price=O150_25, tif="0", display="Y", capacity="A",
                iso="N", cross="N", clordid=clid("9IX"), applen=0, appendage=b"")],
         {(1, 12345): {"state": "PendingNew", "qty": 100, "leaves_qty": 100, "cum_qty": 0,
                       "price": P150_25, "ref": 1, "acked": 0, "venue": 1, "account": 1}}),
    Step([S(1, new_order(1, 2, 2**64 - 1, symbol="SPY", side=2, price=1_0001_0000,
                         qty=999_999, venue=2, account=9))],
         [enter(1, venue=2, fsession="BX01      ", fseq=1, count=1, length=47, side="S",
                qty=999_999, symbol="SPY     ", price=10001, tif="0", display="Y",
                capacity="A", iso="N", cross="N", clordid=clid("3W5E11264SGSF"),
                applen=0)],
         {(1, 2**64 - 1): {"state": "PendingNew", "venue": 2, "ref": 1}}),
    Step([S(1, new_order(1, 3, 36, symbol="MSFT", side=2, qty=1, venue=1))],
         [enter(2, fsession="NSDQ01    ", fseq=2, side="S", qty=1, symbol="MSFT    ",
                price=O150_25, clordid=clid("10"))],
         {(1, 36): {"state": "PendingNew", "venue": 1, "ref": 2}}),
], events={"SP_MSGS_IN": 3}))

# 5. The product brief's example: AAPL 150.25 x100, then modify to 151.00 x50.
T.append(Transcript("brief_example_modify_to_replaced", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 12345))],
         [enter(1, fseq=1, side="B", qty=100, symbol="AAPL    ", price=O150_25, tif="0",
                clordid=clid("9IX"))],
         {(1, 12345): "PendingNew"}),
    Step([V(1, ouch_accepted(1))],
         [SP("Accepted", seq=1, cl_ord_id=12345, price=P150_25, qty=100, venue=1)],
         {(1, 12345): {"state": "New", "acked": 1}}),
    Step([S(1, modify(1, 2, 12345, P151, 50))],
         [OU("U", fseq=2, length=40, orig_ref=1, ref=2, qty=50, price=O151, tif="0",
             display="Y", iso="N", clordid=clid("9IX"), applen=0, appendage=b"")],
         {(1, 12345): {"state": "PendingReplace", "ref": 1, "pending_ref": 2,
                       "pending_qty": 50, "pending_price": P151, "qty": 100,
                       "price": P150_25}}),
    Step([V(1, ouch_replaced(1, 2, qty=50, price=O151))],
         [SP("Replaced", seq=2, cl_ord_id=12345, price=P151, qty=50, leaves_qty=50)],
         {(1, 12345): {"state": "Replaced", "ref": 2, "pending_ref": 0, "qty": 50,
                       "leaves_qty": 50, "price": P151}}),
    # the old UserRefNum was unmapped by the Replaced
    Step([V(1, ouch_executed(1, 10))], [], {(1, 12345): {"state": "Replaced", "cum_qty": 0}}),
    Step([V(1, ouch_executed(2, 50, price=O151, match=77))],
         [SP("Fill", seq=3, cl_ord_id=12345, last_price=P151, last_qty=50, cum_qty=50,
             leaves_qty=0, match_number=77)],
         {(1, 12345): {"state": "Filled", "leaves_qty": 0, "cum_qty": 50}}),
], drops={"OUCH_UNKNOWN_REF": 1}))

# 6. Partial fill then fill; overfill changes nothing; modify to <= cum.
T.append(Transcript("partial_fill_then_fill", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 7))], [enter(1, qty=100)]),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=1, cl_ord_id=7)], {(1, 7): "New"}),
    Step([V(1, ouch_executed(1, 40, match=11))],
         [SP("Fill", seq=2, cl_ord_id=7, last_price=P150_25, last_qty=40, cum_qty=40,
             leaves_qty=60, match_number=11)],
         {(1, 7): {"state": "PartiallyFilled", "cum_qty": 40, "leaves_qty": 60}}),
    Step([V(1, ouch_executed(1, 70), ouch_executed(1, 0))], [],
         {(1, 7): {"state": "PartiallyFilled", "cum_qty": 40, "leaves_qty": 60}}),
    Step([S(1, modify(1, 2, 7, P150_25, 40))],
         [SP("Rejected", seq=3, cl_ord_id=7, reason=R["BAD_QTY"], ref_type=MODIFY,
             venue_code=0)],
         {(1, 7): "PartiallyFilled"}),
    Step([V(1, ouch_executed(1, 60, price=150_2400, match=12))],
         [SP("Fill", seq=4, cl_ord_id=7, last_price=150_2400_0000, last_qty=60, cum_qty=100,
             leaves_qty=0, match_number=12)],
         {(1, 7): {"state": "Filled", "cum_qty": 100, "leaves_qty": 0}}),
], drops={"OUCH_OVERFILL": 2}, rejects={"BAD_QTY": 1}))

# 7. IOC: TIF '3'; remainder canceled by the venue with reason 'I' -> Expired.
T.append(Transcript("ioc_remainder_expired", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1, tif=2))], [enter(1, tif="3", price=O150_25, qty=100)]),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=1, cl_ord_id=1)]),
    Step([V(1, ouch_executed(1, 30))],
         [SP("Fill", seq=2, cl_ord_id=1, last_qty=30, cum_qty=30, leaves_qty=70)],
         {(1, 1): "PartiallyFilled"}),
    Step([V(1, ouch_canceled(1, 70, b"I"))],
         [SP("Canceled", seq=3, cl_ord_id=1, canceled_qty=70, leaves_qty=0, reason=IOC)],
         {(1, 1): {"state": "Expired", "leaves_qty": 0, "cum_qty": 30}}),
]))

# 8. Market orders: price 0x7FFFFFFF on the wire, IOC only, price must be 0,
# cannot be modified.
T.append(Transcript("market_order", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1, ord_type=2, tif=2, price=0))],
         [enter(1, price=0x7FFFFFFF, tif="3", side="B", qty=100)],
         {(1, 1): {"state": "PendingNew", "ord_type": 2, "price": 0}}),
    Step([S(1, new_order(1, 2, 2, ord_type=2, tif=1, price=0))],
         [SP("Rejected", seq=1, cl_ord_id=2, reason=R["BAD_TIF"], ref_type=NEW_ORDER,
             venue_code=0)],
         {(1, 2): None}),
    Step([S(1, new_order(1, 3, 3, ord_type=2, tif=2, price=P150_25))],
         [SP("Rejected", seq=2, cl_ord_id=3, reason=R["BAD_PRICE"], ref_type=NEW_ORDER)],
         {(1, 3): None}),
    Step([V(1, ouch_accepted(1, price=0x7FFFFFFF))],
         [SP("Accepted", seq=3, cl_ord_id=1, price=0, qty=100, venue=1)], {(1, 1): "New"}),
    Step([S(1, modify(1, 4, 1, P150_25, 100))],
         [SP("Rejected", seq=4, cl_ord_id=1, reason=R["BAD_ORD_TYPE"], ref_type=MODIFY)],
         {(1, 1): "New"}),
], rejects={"BAD_TIF": 1, "BAD_PRICE": 1, "BAD_ORD_TYPE": 1}))

# 9. Cancel before the venue's accept.
T.append(Transcript("cancel_before_ack", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 5))], [enter(1, fseq=1)]),
    Step([S(1, cancel(1, 2, 5))], [OU("X", fseq=2, length=9, ref=1, qty=0)],
         {(1, 5): {"state": "PendingCancel", "acked": 0}}),
    Step([V(1, ouch_accepted(1))],
         [SP("Accepted", seq=1, cl_ord_id=5, price=P150_25, qty=100, venue=1)],
         {(1, 5): {"state": "PendingCancel", "acked": 1}}),
    Step([V(1, ouch_canceled(1, 100, b"U"))],
         [SP("Canceled", seq=2, cl_ord_id=5, canceled_qty=100, leaves_qty=0, reason=USER)],
         {(1, 5): {"state": "Canceled", "leaves_qty": 0}}),
]))

# 10. Modify and Cancel of a filled order.
T.append(Transcript("modify_after_fill_too_late", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=1, cl_ord_id=1)]),
    Step([V(1, ouch_executed(1, 100))],
         [SP("Fill", seq=2, cl_ord_id=1, last_qty=100, cum_qty=100, leaves_qty=0)],
         {(1, 1): "Filled"}),
    Step([S(1, modify(1, 2, 1, P151, 200))],
         [SP("Rejected", seq=3, cl_ord_id=1, reason=R["TOO_LATE"], ref_type=MODIFY)]),
    Step([S(1, cancel(1, 3, 1))],
         [SP("Rejected", seq=4, cl_ord_id=1, reason=R["TOO_LATE"], ref_type=CANCEL)],
         {(1, 1): {"state": "Filled", "qty": 100, "price": P150_25}}),
], rejects={"TOO_LATE": 2}))

# 11. Modify while PendingNew / PendingReplace, Cancel while PendingReplace.
T.append(Transcript("modify_while_pending", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([S(1, modify(1, 2, 1, P151, 100))],
         [SP("Rejected", seq=1, cl_ord_id=1, reason=R["ORDER_PENDING"], ref_type=MODIFY)],
         {(1, 1): "PendingNew"}),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=2, cl_ord_id=1)]),
    Step([S(1, modify(1, 3, 1, P151, 100))], [OU("U", orig_ref=1, ref=2, qty=100, price=O151)],
         {(1, 1): "PendingReplace"}),
    Step([S(1, modify(1, 4, 1, P151, 90))],
         [SP("Rejected", seq=3, cl_ord_id=1, reason=R["ORDER_PENDING"], ref_type=MODIFY)]),
    Step([S(1, cancel(1, 5, 1))],
         [SP("Rejected", seq=4, cl_ord_id=1, reason=R["ORDER_PENDING"], ref_type=CANCEL)],
         {(1, 1): {"state": "PendingReplace", "pending_ref": 2, "pending_qty": 100}}),
], rejects={"ORDER_PENDING": 3}))

# 12. Unknown orders; cl_ord_ids are per session.
T.append(Transcript("unknown_order_cancel", [
    Step([S(1, login(1, 1)), S(2, login(2, 1))],
         [SP("LoginAccepted", session=1, seq=1, next_expected_seq=1),
          SP("LoginAccepted", session=2, seq=1, next_expected_seq=1)]),
    Step([S(2, new_order(2, 1, 1))], [enter(1)], {(2, 1): "PendingNew", (1, 1): None}),
    Step([S(1, cancel(1, 1, 1))],
         [SP("Rejected", session=1, seq=1, cl_ord_id=1, reason=R["UNKNOWN_ORDER"],
             ref_type=CANCEL)]),
    Step([S(1, modify(1, 2, 999, P151, 10))],
         [SP("Rejected", session=1, seq=2, cl_ord_id=999, reason=R["UNKNOWN_ORDER"],
             ref_type=MODIFY)]),
    Step([S(1, mass_cancel(1, 3, 1))], [], {(2, 1): "PendingNew"}),
], rejects={"UNKNOWN_ORDER": 2}))

# 13. Duplicate client order id, also once the first order is terminal.
T.append(Transcript("duplicate_client_order_id", [
    Step([S(1, login(1, 1)), S(2, login(2, 1))],
         [SP("LoginAccepted", session=1, seq=1), SP("LoginAccepted", session=2, seq=1)]),
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([S(1, new_order(1, 2, 1, price=P151))],
         [SP("Rejected", seq=1, cl_ord_id=1, reason=R["DUPLICATE_ID"], ref_type=NEW_ORDER)],
         {(1, 1): {"state": "PendingNew", "price": P150_25, "ref": 1}}),
    Step([S(2, new_order(2, 1, 1))], [enter(2)], {(2, 1): {"state": "PendingNew", "ref": 2}}),
    Step([S(1, cancel(1, 3, 1))], [OU("X", ref=1, qty=0)]),
    Step([V(1, ouch_canceled(1, 100, b"U"))],
         [SP("Canceled", seq=2, cl_ord_id=1, canceled_qty=100, leaves_qty=0, reason=USER)],
         {(1, 1): "Canceled"}),
    Step([S(1, new_order(1, 4, 1))],
         [SP("Rejected", seq=3, cl_ord_id=1, reason=R["DUPLICATE_ID"], ref_type=NEW_ORDER)],
         {(1, 1): "Canceled"}),
], rejects={"DUPLICATE_ID": 2}))

# 14. The same NewOrder twice: one Enter Order.
_dup = wire.from_strategy(1, new_order(1, 1, 1))
T.append(Transcript("duplicate_seq_never_executed_twice", [
    LOGIN1,
    Step([("raw", _dup), ("raw", _dup)], [enter(1)]),
    Step([S(1, new_order(1, 1, 2))], [], {(1, 2): None}),
    Step([S(1, new_order(1, 2, 2))], [enter(2)], {(1, 1): "PendingNew", (1, 2): "PendingNew"}),
], drops={"SP_DUPLICATE_SEQ": 2}, events={"SP_MSGS_IN": 2, "SP_SEQ_GAPS": 0}))

# 15. Go-back-N (semantics.md "Application messages" 3, rule G): a seq above
# the next expected is not handled; the missing messages and it are asked
# for with one RetransmitRequest (session level: seq = next outbound, not
# consumed). A second gap while that request is outstanding (less than
# retransmit_ms old) asks nothing more. The strategy resends from the next
# expected on; then everything is handled in order.
T.append(Transcript("seq_gap_out_of_order_requested", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([S(1, new_order(1, 5, 5))],
         [SP("RetransmitRequest", seq=1, length=40, from_seq=2, count=4)], {(1, 5): None}),
    Step([S(1, new_order(1, 6, 6))], [], {(1, 6): None}),
    Step([S(1, new_order(1, 2, 2), new_order(1, 3, 3), new_order(1, 4, 4),
            new_order(1, 5, 5), new_order(1, 6, 6))],
         [enter(2, clordid=clid("2")), enter(3), enter(4), enter(5, clordid=clid("5")),
          enter(6)],
         {(1, 5): "PendingNew", (1, 6): "PendingNew"}),
    Step([S(1, new_order(1, 4, 44))], [], {(1, 44): None}),
    # the request went out once and was satisfied: no resend at retransmit_ms
    Step([], [], now=at(100)),
    Step([S(1, login(1, 1))], [SP("LoginAccepted", seq=1, next_expected_seq=7)], now=at(101)),
], drops={"SP_OUT_OF_ORDER": 2, "SP_DUPLICATE_SEQ": 1},
    events={"SP_SEQ_GAPS": 1, "SP_SEQ_GAP_MSGS": 4, "SP_MSGS_IN": 6, "SP_MSGS_OUT": 3}))


def _version(msg: bytes, v: int) -> bytes:
    return bytes([v]) + msg[1:]


# 16. Several messages per datagram; bad version skipped, walk goes on;
# truncated tail; a header length under 24 stops the walk.
T.append(Transcript("several_messages_in_one_datagram", [
    Step([S(1, login(1, 1), new_order(1, 1, 1), new_order(1, 2, 2, symbol="MSFT",
                                                          price=300_0000_0000),
            cancel(1, 3, 1))],
         [SP("LoginAccepted", seq=1, next_expected_seq=1),
          enter(1, fseq=1, symbol="AAPL    ", price=O150_25, clordid=clid("1")),
          enter(2, fseq=2, symbol="MSFT    ", price=300_0000, clordid=clid("2")),
          OU("X", fseq=3, ref=1, qty=0)],
         {(1, 1): "PendingCancel", (1, 2): "PendingNew"}),
    Step([S(1, _version(new_order(1, 4, 3), 2), new_order(1, 4, 4), b"\0" * 10)],
         [enter(3, fseq=4, clordid=clid("4"))], {(1, 3): None, (1, 4): "PendingNew"}),
    Step([S(1, new_order(1, 5, 5), wire.sp(0x12, 1, 6, struct.pack("<Q", 2), length=20),
            cancel(1, 6, 2))],
         [enter(4, fseq=5, clordid=clid("5"))], {(1, 2): "PendingNew", (1, 5): "PendingNew"}),
], drops={"SP_BAD_VERSION": 1, "SP_TRUNCATED": 1, "SP_BAD_LENGTH": 1},
    events={"SP_MSGS_IN": 5}))

# 17. Venue rejects an Enter Order: Rejected VENUE_REJECTED, low byte as code.
T.append(Transcript("venue_rejects_enter", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1), new_order(1, 2, 2))], [enter(1), enter(2)]),
    Step([V(1, ouch_rejected(1, 0x13))],
         [SP("Rejected", seq=1, cl_ord_id=1, reason=R["VENUE_REJECTED"], ref_type=NEW_ORDER,
             venue_code=0x13)],
         {(1, 1): "Rejected"}),
    Step([V(1, ouch_rejected(2, 0x0203))],
         [SP("Rejected", seq=2, cl_ord_id=2, reason=R["VENUE_REJECTED"], ref_type=NEW_ORDER,
             venue_code=0x03)],
         {(1, 2): "Rejected"}),
    Step([V(1, ouch_rejected(1, 0x13))], [], {(1, 1): "Rejected"}),
], drops={"OUCH_UNEXPECTED": 1}, rejects={"VENUE_REJECTED": 2}))

# 18. Venue rejects a Replace: back to the previous state (a fill while the
# replace is pending turns that previous state into PartiallyFilled).
T.append(Transcript("venue_rejects_replace", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=1, cl_ord_id=1)]),
    Step([S(1, modify(1, 2, 1, P151, 100))], [OU("U", orig_ref=1, ref=2, qty=100, price=O151)]),
    Step([V(1, ouch_rejected(2, 0x41))],
         [SP("Rejected", seq=2, cl_ord_id=1, reason=R["VENUE_REJECTED"], ref_type=MODIFY,
             venue_code=0x41)],
         {(1, 1): {"state": "New", "ref": 1, "pending_ref": 0, "price": P150_25,
                   "qty": 100}}),
    Step([V(1, ouch_executed(2, 10))], [], {(1, 1): {"state": "New", "cum_qty": 0}}),
    Step([S(1, new_order(1, 3, 2))], [enter(3)]),
    Step([V(1, ouch_accepted(3))], [SP("Accepted", seq=3, cl_ord_id=2)]),
    Step([S(1, modify(1, 4, 2, P151, 80))], [OU("U", orig_ref=3, ref=4, qty=80, price=O151)]),
    Step([V(1, ouch_executed(3, 30))],
         [SP("Fill", seq=4, cl_ord_id=2, last_qty=30, cum_qty=30, leaves_qty=70)],
         {(1, 2): "PendingReplace"}),
    Step([V(1, ouch_rejected(4))],
         [SP("Rejected", seq=5, cl_ord_id=2, reason=R["VENUE_REJECTED"], ref_type=MODIFY,
             venue_code=0x13)],
         {(1, 2): {"state": "PartiallyFilled", "qty": 100, "leaves_qty": 70, "ref": 3,
                   "pending_ref": 0}}),
    # UserRefNum 4 was used: the next Replace takes 5
    Step([S(1, modify(1, 5, 2, P151, 80))], [OU("U", orig_ref=3, ref=5, qty=80)],
         {(1, 2): "PendingReplace"}),
], drops={"OUCH_UNKNOWN_REF": 1}, rejects={"VENUE_REJECTED": 2}))

# 19. Cancel Reject 'I' returns the order to its previous state.
T.append(Transcript("cancel_reject", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=1, cl_ord_id=1)]),
    Step([S(1, cancel(1, 2, 1))], [OU("X", ref=1, qty=0)], {(1, 1): "PendingCancel"}),
    Step([V(1, ouch_cancel_reject(1))],
         [SP("Rejected", seq=2, cl_ord_id=1, reason=R["VENUE_REJECTED"], ref_type=CANCEL,
             venue_code=0)],
         {(1, 1): "New"}),
    Step([V(1, ouch_cancel_reject(1))], [], {(1, 1): "New"}),
    Step([S(1, cancel(1, 3, 1))], [OU("X", ref=1, qty=0)], {(1, 1): "PendingCancel"}),
    Step([V(1, ouch_executed(1, 40))],
         [SP("Fill", seq=3, cl_ord_id=1, last_qty=40, cum_qty=40, leaves_qty=60)],
         {(1, 1): "PendingCancel"}),
    Step([V(1, ouch_cancel_reject(1))],
         [SP("Rejected", seq=4, cl_ord_id=1, reason=R["VENUE_REJECTED"], ref_type=CANCEL,
             venue_code=0)],
         {(1, 1): {"state": "PartiallyFilled", "leaves_qty": 60}}),
], drops={"OUCH_UNEXPECTED": 1}, rejects={"VENUE_REJECTED": 2}))

# 20. Prices OUCH cannot carry: more than 4 decimals, above $199,999.99.
T.append(Transcript("price_unrepresentable", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1, price=150_2500_1000))],          # 150.25001
         [SP("Rejected", seq=1, cl_ord_id=1, reason=R["PRICE_UNREPRESENTABLE"],
             ref_type=NEW_ORDER)], {(1, 1): None}),
    Step([S(1, new_order(1, 2, 2, price=199_999_9900_0000))],      # 199,999.99
         [enter(1, price=1_999_999_900)], {(1, 2): "PendingNew"}),
    Step([S(1, new_order(1, 3, 3, price=200_000_0000_0000))],      # 200,000.00
         [SP("Rejected", seq=2, cl_ord_id=3, reason=R["PRICE_UNREPRESENTABLE"])]),
    Step([S(1, new_order(1, 4, 4, price=199_999_9901_0000))],      # 199,999.9901
         [SP("Rejected", seq=3, cl_ord_id=4, reason=R["PRICE_UNREPRESENTABLE"])]),
    Step([S(1, new_order(1, 5, 5, price=150_2501_0000))],          # 150.2501
         [enter(2, price=150_2501)]),
    Step([V(1, ouch_accepted(2, price=150_2501))],
         [SP("Accepted", seq=4, cl_ord_id=5, price=150_2501_0000)], {(1, 5): "New"}),
    Step([S(1, modify(1, 6, 5, 151_0000_1000, 100))],              # 151.00001
         [SP("Rejected", seq=5, cl_ord_id=5, reason=R["PRICE_UNREPRESENTABLE"],
             ref_type=MODIFY)]),
    Step([S(1, modify(1, 7, 5, 200_000_0000_0000, 100))],
         [SP("Rejected", seq=6, cl_ord_id=5, reason=R["PRICE_UNREPRESENTABLE"],
             ref_type=MODIFY)],
         {(1, 5): {"state": "New", "price": 150_2501_0000}}),
], rejects={"PRICE_UNREPRESENTABLE": 5}))

# 21. Sell short: LOCATE flag required; SharesLocated appendage, resent on Replace.
T.append(Transcript("sell_short_locate", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1, side=3, flags=0))],
         [SP("Rejected", seq=1, cl_ord_id=1, reason=R["LOCATE_REQUIRED"], ref_type=NEW_ORDER)]),
    Step([S(1, new_order(1, 2, 2, side=3, flags=0x01))],
         [SP("Rejected", seq=2, cl_ord_id=2, reason=R["LOCATE_REQUIRED"], ref_type=NEW_ORDER)]),
    Step([S(1, new_order(1, 3, 3, side=3, flags=0x02))],
         [enter(1, side="T", length=50, applen=3, appendage=SHARES_LOCATED,
                clordid=clid("3"))],
         {(1, 3): "PendingNew", (1, 1): None, (1, 2): None}),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=3, cl_ord_id=3)]),
    Step([S(1, modify(1, 4, 3, P151, 100))],
         [OU("U", orig_ref=1, ref=2, length=43, applen=3, appendage=SHARES_LOCATED,
             clordid=clid("3"))]),
    Step([S(1, new_order(1, 5, 4, side=2, flags=0x02))],
         [enter(3, side="S", length=47, applen=0, appendage=b"")]),
], rejects={"LOCATE_REQUIRED": 2}))

# 22. MassCancel: this session's orders of the account in PendingNew, New,
# PartiallyFilled or Replaced, in creation order (not cl_ord_id order).
T.append(Transcript("mass_cancel_account_creation_order", [
    Step([S(1, login(1, 1)), S(2, login(2, 1))],
         [SP("LoginAccepted", session=1, seq=1), SP("LoginAccepted", session=2, seq=1)]),
    Step([S(1, new_order(1, 1, 50, account=7), new_order(1, 2, 40, account=8),
            new_order(1, 3, 30, account=7), new_order(1, 4, 20, account=7),
            new_order(1, 5, 10, account=7), new_order(1, 6, 60, account=7),
            new_order(1, 7, 70, account=7), new_order(1, 8, 80, account=7)),
          S(2, new_order(2, 1, 90, account=7))],
         [enter(r) for r in range(1, 10)]),
    # accept all but cl 30 (ref 3)
    Step([V(1, *(ouch_accepted(r) for r in (1, 2, 4, 5, 6, 7, 8, 9)))],
         [SP("Accepted", seq=1, cl_ord_id=50), SP("Accepted", seq=2, cl_ord_id=40),
          SP("Accepted", seq=3, cl_ord_id=20), SP("Accepted", seq=4, cl_ord_id=10),
          SP("Accepted", seq=5, cl_ord_id=60), SP("Accepted", seq=6, cl_ord_id=70),
          SP("Accepted", seq=7, cl_ord_id=80), SP("Accepted", session=2, seq=1, cl_ord_id=90)]),
    # cl 20 pending replace (ref 10), cl 60 replace (ref 11) then Replaced,
    # cl 80 pending cancel
    Step([S(1, modify(1, 9, 20, P151, 100), modify(1, 10, 60, P151, 100),
            cancel(1, 11, 80))],
         [OU("U", orig_ref=4, ref=10), OU("U", orig_ref=6, ref=11), OU("X", ref=8)]),
    Step([V(1, ouch_replaced(6, 11, price=O151), ouch_executed(5, 100),
            ouch_executed(7, 40))],
         [SP("Replaced", seq=8, cl_ord_id=60, price=P151, qty=100, leaves_qty=100),
          SP("Fill", seq=9, cl_ord_id=10, last_qty=100, cum_qty=100, leaves_qty=0),
          SP("Fill", seq=10, cl_ord_id=70, last_qty=40, cum_qty=40, leaves_qty=60)],
         {(1, 50): "New", (1, 40): "New", (1, 30): "PendingNew", (1, 20): "PendingReplace",
          (1, 10): "Filled", (1, 60): "Replaced", (1, 70): "PartiallyFilled",
          (1, 80): "PendingCancel", (2, 90): "New"}),
    Step([S(1, mass_cancel(1, 12, 7))],
         [OU("X", ref=1, qty=0), OU("X", ref=3, qty=0), OU("X", ref=11, qty=0),
          OU("X", ref=7, qty=0)],
         {(1, 50): "PendingCancel", (1, 40): "New", (1, 30): "PendingCancel",
          (1, 20): "PendingReplace", (1, 10): "Filled", (1, 60): "PendingCancel",
          (1, 70): "PendingCancel", (1, 80): "PendingCancel", (2, 90): "New"}),
    # nothing left to cancel, and an account with no orders: no reply at all
    Step([S(1, mass_cancel(1, 13, 7), mass_cancel(1, 14, 99))], []),
]))

# 23. Order table (orders=2): SYS_TABLE_FULL when every slot is live; the
# oldest terminal order (by the time it became terminal) is evicted.
T.append(Transcript("table_full_and_eviction", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1), new_order(1, 2, 2))], [enter(1), enter(2)]),
    Step([S(1, new_order(1, 3, 3))],
         [SP("Rejected", seq=1, cl_ord_id=3, reason=R["SYS_TABLE_FULL"], ref_type=NEW_ORDER)],
         {(1, 3): None}),
    Step([V(1, ouch_rejected(1))], [SP("Rejected", seq=2, cl_ord_id=1,
                                       reason=R["VENUE_REJECTED"], ref_type=NEW_ORDER)],
         {(1, 1): "Rejected"}),
    # a terminal order still holds its id
    Step([S(1, new_order(1, 4, 1))],
         [SP("Rejected", seq=3, cl_ord_id=1, reason=R["DUPLICATE_ID"], ref_type=NEW_ORDER)]),
    Step([S(1, new_order(1, 5, 3))], [enter(3)], {(1, 1): None, (1, 3): "PendingNew"}),
    # evicted: its UserRefNum leads nowhere now
    Step([V(1, ouch_accepted(1))], []),
    Step([S(1, new_order(1, 6, 4))],
         [SP("Rejected", seq=4, cl_ord_id=4, reason=R["SYS_TABLE_FULL"], ref_type=NEW_ORDER)]),
    # cl 3 becomes terminal before cl 2: cl 3 is evicted first
    Step([V(1, ouch_rejected(3), ouch_rejected(2))],
         [SP("Rejected", seq=5, cl_ord_id=3, reason=R["VENUE_REJECTED"]),
          SP("Rejected", seq=6, cl_ord_id=2, reason=R["VENUE_REJECTED"])]),
    Step([S(1, new_order(1, 7, 5))], [enter(4)],
         {(1, 3): None, (1, 2): "Rejected", (1, 5): "PendingNew"}),
], orders_capacity=2, drops={"OUCH_UNKNOWN_REF": 1},
    rejects={"SYS_TABLE_FULL": 2, "VENUE_REJECTED": 3, "DUPLICATE_ID": 1},
    events={"ORDERS_EVICTED": 2}))

# 24. Malformed messages: SessionReject with ref_seq; the seq is consumed.
T.append(Transcript("malformed_message_session_reject", [
    LOGIN1,
    Step([S(1, wire.sp(0x12, 1, 1, struct.pack("<QQ", 1, 0)))],        # Cancel, 40 bytes
         [SP("SessionReject", seq=1, ref_seq=1, reason=BAD_LENGTH, ref_type=0x12)]),
    Step([S(1, wire.sp(0x20, 1, 2, bytes(8)))],                         # unknown type
         [SP("SessionReject", seq=2, ref_seq=2, reason=UNKNOWN_TYPE, ref_type=0x20)]),
    Step([S(1, new_order(1, 3, 1))], [enter(1)]),
    Step([S(1, wire.sp(0x01, 1, 0, bytes(16)))], []),                    # Login, 40 bytes
], drops={"SP_BAD_MSG_LENGTH": 2, "SP_UNKNOWN_TYPE": 1},
    events={"SP_MSGS_IN": 3, "SP_SEQ_GAPS": 0, "LOGINS": 1}))

# 25. Venue messages for an order already Filled.
T.append(Transcript("late_executed_after_filled", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=1, cl_ord_id=1)]),
    Step([V(1, ouch_executed(1, 100))],
         [SP("Fill", seq=2, cl_ord_id=1, last_qty=100, cum_qty=100, leaves_qty=0)],
         {(1, 1): "Filled"}),
    Step([V(1, ouch_executed(1, 10))], [],
         {(1, 1): {"state": "Filled", "cum_qty": 100, "leaves_qty": 0}}),
    Step([V(1, ouch_canceled(1, 10), ouch_accepted(1))], [], {(1, 1): "Filled"}),
], drops={"OUCH_UNEXPECTED": 3}, events={"VENUE_MSGS_IN": 5}))

# 26. UserRefNums nobody issued (refs are per venue; U is found by the new ref).
T.append(Transcript("unknown_user_ref_num", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([V(1, ouch_executed(77, 10))], []),
    Step([V(1, ouch_accepted(5))], []),
    Step([V(1, ouch_replaced(1, 99))], []),
    Step([V(2, ouch_accepted(1))], [], {(1, 1): {"state": "PendingNew", "acked": 0}}),
], drops={"OUCH_UNKNOWN_REF": 4}))

# 27. Accepted with Order State 'D': Accepted, then Canceled (VENUE).
T.append(Transcript("venue_accept_dead", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([V(1, ouch_accepted(1, state=b"D"))],
         [SP("Accepted", seq=1, cl_ord_id=1, qty=100),
          SP("Canceled", seq=2, cl_ord_id=1, canceled_qty=100, leaves_qty=0, reason=VENUE)],
         {(1, 1): {"state": "Canceled", "leaves_qty": 0, "acked": 1}}),
]))

# 28. Fills during a pending replace cover the new total: Replaced, then Filled.
T.append(Transcript("replace_covered_by_fills", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=1, cl_ord_id=1)]),
    Step([S(1, modify(1, 2, 1, P150_25, 50))],
         [OU("U", orig_ref=1, ref=2, qty=50, price=O150_25)]),
    Step([V(1, ouch_executed(1, 50))],
         [SP("Fill", seq=2, cl_ord_id=1, last_qty=50, cum_qty=50, leaves_qty=50)],
         {(1, 1): "PendingReplace"}),
    Step([V(1, ouch_replaced(1, 2, qty=50))],
         [SP("Replaced", seq=3, cl_ord_id=1, price=P150_25, qty=50, leaves_qty=0)],
         {(1, 1): {"state": "Filled", "qty": 50, "cum_qty": 50, "leaves_qty": 0, "ref": 2}}),
]))

# 29. Venue framing: a duplicate block is skipped; a packet beyond the next
# expected is not handled and the missing messages and its own are asked for
# with a request packet (rule VG: to the venue's request port, from
# venue_request_port); a heartbeat announcing more asks nothing while that
# request is outstanding; the venue resends and a block already seen is a
# duplicate.
T.append(Transcript("venue_duplicate_and_gap_requested", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([V(1, ouch_accepted(1), seq=1)], [SP("Accepted", seq=1, cl_ord_id=1)]),
    Step([V(1, ouch_accepted(1), seq=1)], []),
    Step([V(1, ouch_executed(1, 10), seq=5)],
         [OU("Request", fsession="NSDQ01    ", fseq=2, count=4)],
         {(1, 1): {"state": "New", "cum_qty": 0}}),
    Step([venue_heartbeat(1, 6)], []),
    Step([V(1, ouch_executed(1, 1), ouch_executed(1, 2), ouch_executed(1, 3),
            ouch_executed(1, 10), seq=2)],
         [SP("Fill", seq=2, last_qty=1, cum_qty=1, leaves_qty=99),
          SP("Fill", seq=3, last_qty=2, cum_qty=3, leaves_qty=97),
          SP("Fill", seq=4, last_qty=3, cum_qty=6, leaves_qty=94),
          SP("Fill", seq=5, last_qty=10, cum_qty=16, leaves_qty=84)]),
    Step([V(1, ouch_executed(1, 10), ouch_executed(1, 20), seq=5)],
         [SP("Fill", seq=6, cl_ord_id=1, last_qty=20, cum_qty=36, leaves_qty=64)],
         {(1, 1): {"state": "PartiallyFilled", "cum_qty": 36}}),
], drops={"UFO_DUPLICATE_SEQ": 2, "UFO_OUT_OF_ORDER": 1},
    events={"VENUE_SEQ_GAPS": 1, "VENUE_SEQ_GAP_MSGS": 4, "VENUE_HEARTBEATS": 1,
            "VENUE_MSGS_IN": 6}))

# 30. NewOrder and Modify checks, one by one and first failure wins.
T.append(Transcript("order_checks_first_failure_wins", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1, side=4), new_order(1, 2, 2, ord_type=3),
            new_order(1, 3, 3, tif=3), new_order(1, 4, 4, qty=0),
            new_order(1, 5, 5, qty=1_000_000), new_order(1, 6, 6, symbol="IBM"),
            new_order(1, 7, 7, price=0), new_order(1, 8, 8, price=-P150_25),
            new_order(1, 9, 9, venue=3))],
         [SP("Rejected", seq=1, cl_ord_id=1, reason=R["BAD_SIDE"], ref_type=NEW_ORDER),
          SP("Rejected", seq=2, cl_ord_id=2, reason=R["BAD_ORD_TYPE"], ref_type=NEW_ORDER),
          SP("Rejected", seq=3, cl_ord_id=3, reason=R["BAD_TIF"], ref_type=NEW_ORDER),
          SP("Rejected", seq=4, cl_ord_id=4, reason=R["BAD_QTY"], ref_type=NEW_ORDER),
          SP("Rejected", seq=5, cl_ord_id=5, reason=R["BAD_QTY"], ref_type=NEW_ORDER),
          SP("Rejected", seq=6, cl_ord_id=6, reason=R["UNKNOWN_SYMBOL"], ref_type=NEW_ORDER),
          SP("Rejected", seq=7, cl_ord_id=7, reason=R["BAD_PRICE"], ref_type=NEW_ORDER),
          SP("Rejected", seq=8, cl_ord_id=8, reason=R["BAD_PRICE"], ref_type=NEW_ORDER),
          SP("Rejected", seq=9, cl_ord_id=9, reason=R["UNKNOWN_VENUE"], ref_type=NEW_ORDER)],
         {(1, i): None for i in range(1, 10)}),
    Step([S(1, new_order(1, 10, 10, side=4, qty=0),
            new_order(1, 11, 11, symbol="IBM", price=0),
            new_order(1, 12, 12, venue=3, price=150_2500_1000),
            new_order(1, 13, 13, side=3, flags=0, price=150_2500_1000))],
         [SP("Rejected", seq=10, cl_ord_id=10, reason=R["BAD_SIDE"]),
          SP("Rejected", seq=11, cl_ord_id=11, reason=R["UNKNOWN_SYMBOL"]),
          SP("Rejected", seq=12, cl_ord_id=12, reason=R["UNKNOWN_VENUE"]),
          SP("Rejected", seq=13, cl_ord_id=13, reason=R["PRICE_UNREPRESENTABLE"])]),
    Step([S(1, new_order(1, 14, 14, qty=999_999))], [enter(1, qty=999_999)]),
    Step([S(1, new_order(1, 15, 14, side=4))],
         [SP("Rejected", seq=14, cl_ord_id=14, reason=R["DUPLICATE_ID"])]),
    Step([V(1, ouch_accepted(1, qty=999_999))],
         [SP("Accepted", seq=15, cl_ord_id=14, qty=999_999)]),
    Step([S(1, modify(1, 16, 14, P151, 1_000_000), modify(1, 17, 14, P151, 0),
            modify(1, 18, 14, 0, 100), modify(1, 19, 14, -P151, 100),
            modify(1, 20, 14, 0, 0))],
         [SP("Rejected", seq=16, cl_ord_id=14, reason=R["BAD_QTY"], ref_type=MODIFY),
          SP("Rejected", seq=17, cl_ord_id=14, reason=R["BAD_QTY"], ref_type=MODIFY),
          SP("Rejected", seq=18, cl_ord_id=14, reason=R["BAD_PRICE"], ref_type=MODIFY),
          SP("Rejected", seq=19, cl_ord_id=14, reason=R["BAD_PRICE"], ref_type=MODIFY),
          SP("Rejected", seq=20, cl_ord_id=14, reason=R["BAD_QTY"], ref_type=MODIFY)],
         {(1, 14): {"state": "New", "qty": 999_999, "price": P150_25}}),
], rejects={"BAD_SIDE": 2, "BAD_ORD_TYPE": 1, "BAD_TIF": 1, "BAD_QTY": 5,
            "UNKNOWN_SYMBOL": 2, "BAD_PRICE": 4, "UNKNOWN_VENUE": 2,
            "PRICE_UNREPRESENTABLE": 1, "DUPLICATE_ID": 1}))

# 31. Venue-initiated cancels: partial (state unchanged), d capped at leaves,
# reason letters other than I and U are VENUE.
T.append(Transcript("venue_partial_cancel_and_reasons", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1), new_order(1, 2, 2))], [enter(1), enter(2)]),
    Step([V(1, ouch_accepted(1), ouch_accepted(2))],
         [SP("Accepted", seq=1, cl_ord_id=1), SP("Accepted", seq=2, cl_ord_id=2)]),
    Step([V(1, ouch_canceled(1, 30, b"Z"))],
         [SP("Canceled", seq=3, cl_ord_id=1, canceled_qty=30, leaves_qty=70, reason=VENUE)],
         {(1, 1): {"state": "New", "leaves_qty": 70, "qty": 100, "cum_qty": 0}}),
    Step([V(1, ouch_canceled(1, 500, b"U"))],
         [SP("Canceled", seq=4, cl_ord_id=1, canceled_qty=70, leaves_qty=0, reason=USER)],
         {(1, 1): {"state": "Canceled", "leaves_qty": 0}}),
    Step([V(1, ouch_canceled(2, 100, b"S"))],
         [SP("Canceled", seq=5, cl_ord_id=2, canceled_qty=100, leaves_qty=0, reason=VENUE)],
         {(1, 2): "Canceled"}),
]))

# 32. Replace quantity is the new total, executions included (OUCH §2.2).
T.append(Transcript("replace_total_includes_executions", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=1, cl_ord_id=1)]),
    Step([V(1, ouch_executed(1, 40))],
         [SP("Fill", seq=2, cl_ord_id=1, last_qty=40, cum_qty=40, leaves_qty=60)]),
    Step([S(1, modify(1, 2, 1, P151, 150))],
         [OU("U", orig_ref=1, ref=2, qty=150, price=O151)], {(1, 1): "PendingReplace"}),
    Step([V(1, ouch_replaced(1, 2, qty=150, price=O151))],
         [SP("Replaced", seq=3, cl_ord_id=1, price=P151, qty=150, leaves_qty=110)],
         {(1, 1): {"state": "Replaced", "qty": 150, "cum_qty": 40, "leaves_qty": 110}}),
    Step([V(1, ouch_executed(2, 10, price=O151))],
         [SP("Fill", seq=4, cl_ord_id=1, last_price=P151, last_qty=10, cum_qty=50,
             leaves_qty=100)],
         {(1, 1): "PartiallyFilled"}),
    Step([S(1, modify(1, 3, 1, P151, 50))],
         [SP("Rejected", seq=5, cl_ord_id=1, reason=R["BAD_QTY"], ref_type=MODIFY)]),
    Step([S(1, modify(1, 4, 1, P151, 51))], [OU("U", orig_ref=2, ref=3, qty=51)]),
    Step([V(1, ouch_replaced(2, 3, qty=51, price=O151))],
         [SP("Replaced", seq=6, cl_ord_id=1, price=P151, qty=51, leaves_qty=1)],
         {(1, 1): {"state": "Replaced", "leaves_qty": 1, "cum_qty": 50}}),
], rejects={"BAD_QTY": 1}))

# 33. Venue Rejected while a cancel-before-ack is pending: the enter was
# rejected; once acked, a J for the current ref is unexpected.
T.append(Transcript("venue_rejects_enter_while_cancel_pending", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([S(1, cancel(1, 2, 1))], [OU("X", ref=1)]),
    Step([V(1, ouch_rejected(1))],
         [SP("Rejected", seq=1, cl_ord_id=1, reason=R["VENUE_REJECTED"], ref_type=NEW_ORDER,
             venue_code=0x13)],
         {(1, 1): "Rejected"}),
    Step([S(1, new_order(1, 3, 2))], [enter(2)]),
    Step([V(1, ouch_accepted(2))], [SP("Accepted", seq=2, cl_ord_id=2)]),
    Step([S(1, cancel(1, 4, 2))], [OU("X", ref=2)]),
    Step([V(1, ouch_rejected(2))], [], {(1, 2): "PendingCancel"}),
], drops={"OUCH_UNEXPECTED": 1}, rejects={"VENUE_REJECTED": 1}))

# 34. A fill that completes an order pending cancel or replace: Filled, the
# pending request forgotten; its refs stay mapped, so late answers are
# unexpected (semantics.md "Order table").
T.append(Transcript("fill_completes_pending_request", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=1, cl_ord_id=1)]),
    Step([S(1, cancel(1, 2, 1))], [OU("X", ref=1)]),
    Step([V(1, ouch_executed(1, 100))],
         [SP("Fill", seq=2, cl_ord_id=1, last_qty=100, cum_qty=100, leaves_qty=0)],
         {(1, 1): "Filled"}),
    Step([V(1, ouch_cancel_reject(1), ouch_canceled(1, 0))], [], {(1, 1): "Filled"}),
    Step([S(1, cancel(1, 3, 1))],
         [SP("Rejected", seq=3, cl_ord_id=1, reason=R["TOO_LATE"], ref_type=CANCEL)]),
    Step([S(1, new_order(1, 4, 2))], [enter(2)]),
    Step([V(1, ouch_accepted(2))], [SP("Accepted", seq=4, cl_ord_id=2)]),
    Step([S(1, modify(1, 5, 2, P151, 100))], [OU("U", orig_ref=2, ref=3)]),
    Step([V(1, ouch_executed(2, 100))],
         [SP("Fill", seq=5, cl_ord_id=2, last_qty=100, cum_qty=100, leaves_qty=0)],
         {(1, 2): {"state": "Filled", "qty": 100, "price": P150_25}}),
    Step([V(1, ouch_replaced(2, 3), ouch_rejected(3))], [], {(1, 2): "Filled"}),
], drops={"OUCH_UNEXPECTED": 4}, rejects={"TOO_LATE": 1}))

# 35. Transmit area full (tx_frames=1): the message is not built and takes no
# sequence number, strategy or venue framing; the UserRefNum is consumed.
T.append(Transcript("tx_full_consumes_no_seq", [
    Step([S(1, login(1, 1), new_order(1, 1, 1))],
         [SP("LoginAccepted", seq=1, next_expected_seq=1)],
         {(1, 1): {"state": "PendingNew", "ref": 1}}),
    Step([S(1, new_order(1, 2, 2))], [enter(2, fseq=1)], {(1, 2): {"ref": 2}}),
    Step([V(1, ouch_accepted(1), ouch_accepted(2))], [SP("Accepted", seq=1, cl_ord_id=1)],
         {(1, 1): "New", (1, 2): "New"}),
    Step([V(1, ouch_executed(2, 10))],
         [SP("Fill", seq=2, cl_ord_id=2, last_qty=10, cum_qty=10, leaves_qty=90)]),
], tx_frames=1, drops={"TX_FULL": 2}))

# 36. Order Replaced that does not answer the pending replace.
T.append(Transcript("unexpected_replaced", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1), new_order(1, 2, 2))], [enter(1), enter(2)]),
    Step([V(1, ouch_accepted(1), ouch_accepted(2))],
         [SP("Accepted", seq=1, cl_ord_id=1), SP("Accepted", seq=2, cl_ord_id=2)]),
    # new UserRefNum 2 is order 2's, which has no replace pending
    Step([V(1, ouch_replaced(1, 2))], [], {(1, 1): "New", (1, 2): "New"}),
    Step([S(1, modify(1, 3, 1, P151, 100))], [OU("U", orig_ref=1, ref=3)]),
    Step([V(1, ouch_replaced(1, 4))], [], {(1, 1): "PendingReplace"}),
    Step([V(1, ouch_replaced(1, 3, price=O151))],
         [SP("Replaced", seq=3, cl_ord_id=1, price=P151, qty=100, leaves_qty=100)]),
    Step([V(1, ouch_replaced(1, 3, price=O151))], [], {(1, 1): {"state": "Replaced", "ref": 3}}),
], drops={"OUCH_UNEXPECTED": 2, "OUCH_UNKNOWN_REF": 1}))


# --- the session layer (semantics.md "Strategy datagrams", rules R and G,
# "Venue packets", rule VG, "Venue retransmission requests", "Time") ---------

# 37. RetransmitRequest served from the replay buffer: each message again in
# its own datagram, byte for byte (same seq, same timestamp_ns); up to the
# next outbound; count 0 does nothing; from the next outbound on: NOT_SENT.
T.append(Transcript("retransmit_request_served", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1, qty=0))],
         [SP("Rejected", seq=1, cl_ord_id=1, reason=R["BAD_QTY"])]),
    Step([S(1, new_order(1, 2, 2, qty=0))],
         [SP("Rejected", seq=2, cl_ord_id=2, reason=R["BAD_QTY"])]),
    Step([S(1, new_order(1, 3, 3, symbol="IBM"))],
         [SP("Rejected", seq=3, cl_ord_id=3, reason=R["UNKNOWN_SYMBOL"])]),
    Step([S(1, retransmit_request(1, 2, 10))],
         [SP("Rejected", seq=2, cl_ord_id=2, ts=at(2), same_as=(2, 0)),
          SP("Rejected", seq=3, cl_ord_id=3, ts=at(3), same_as=(3, 0))]),
    Step([S(1, retransmit_request(1, 1, 1), retransmit_request(1, 3, 0))],
         [SP("Rejected", seq=1, cl_ord_id=1, ts=at(1), same_as=(1, 0))]),
    Step([S(1, retransmit_request(1, 4, 1))],
         [SP("RetransmitReject", seq=4, length=40, from_seq=4, count=1, reason=NOT_SENT)]),
    # neither resends nor the reject took a sequence number
    Step([S(1, new_order(1, 4, 4, qty=0))], [SP("Rejected", seq=4, cl_ord_id=4)]),
], rejects={"BAD_QTY": 3, "UNKNOWN_SYMBOL": 1},
    events={"SP_RETRANSMIT_REQUESTS": 4, "SP_RETRANSMITTED": 3, "SP_MSGS_OUT": 6,
            "FRAMES_OUT": 9, "SP_SEQ_GAPS": 0}))

# 38. replay_depth 16: after 17 messages the oldest held is max(1, 18 - 16) =
# 2; asking for 1 is TOO_OLD. A count beyond the next outbound stops there.
T.append(Transcript("retransmit_too_old", [
    LOGIN1,
    Step([S(1, *(new_order(1, i, i, qty=0) for i in range(1, 18)))],
         [SP("Rejected", seq=i, cl_ord_id=i, reason=R["BAD_QTY"]) for i in range(1, 18)]),
    Step([S(1, retransmit_request(1, 1, 3))],
         [SP("RetransmitReject", seq=18, from_seq=1, count=3, reason=TOO_OLD)]),
    Step([S(1, retransmit_request(1, 2, 1))],
         [SP("Rejected", seq=2, cl_ord_id=2, ts=at(1), same_as=(1, 1))]),
    Step([S(1, retransmit_request(1, 17, 2**32 - 1))],
         [SP("Rejected", seq=17, cl_ord_id=17, ts=at(1), same_as=(1, 16))]),
], replay_depth=16, rejects={"BAD_QTY": 17},
    events={"SP_RETRANSMIT_REQUESTS": 3, "SP_RETRANSMITTED": 2}))

# 39. Logout is answered; messages still go to the logged-out session; a
# Login whose next_expected_seq is below the next outbound gets
# LoginAccepted, then those messages as by RetransmitRequest(next_expected,
# next outbound - next_expected). next_expected_seq 0 is below the oldest
# held (1): that is TOO_OLD.
T.append(Transcript("login_replays_from_next_expected", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([V(1, ouch_accepted(1))], [SP("Accepted", seq=1, cl_ord_id=1)]),
    Step([V(1, ouch_executed(1, 10))], [SP("Fill", seq=2, last_qty=10, cum_qty=10)]),
    Step([S(1, logout(1))], [SP("Logout", seq=3, length=24)]),
    Step([V(1, ouch_executed(1, 20))], [SP("Fill", seq=3, last_qty=20, cum_qty=30)]),
    Step([S(1, login(1, 2))],
         [SP("LoginAccepted", seq=4, next_expected_seq=2),
          SP("Fill", seq=2, ts=at(3), same_as=(3, 0)),
          SP("Fill", seq=3, ts=at(5), same_as=(5, 0))]),
    Step([S(1, login(1, 4))], [SP("LoginAccepted", seq=4, next_expected_seq=2)]),
    Step([S(1, login(1, 0))],
         [SP("LoginAccepted", seq=4, next_expected_seq=2),
          SP("RetransmitReject", seq=4, from_seq=0, count=4, reason=TOO_OLD)]),
], events={"LOGINS": 4, "LOGOUTS": 1, "SP_RETRANSMITTED": 2, "SP_RETRANSMIT_REQUESTS": 0}))

# 40. Heartbeats after heartbeat_ms without sending (1000), a timeout after
# timeout_ms without hearing (3000): the session is logged out, nothing sent.
# Venues run the same timers from the first call (at(0)): heartbeats, then,
# never heard from, down at 3000, and a hello with every heartbeat while
# down. Timers run sessions first, then venues, in configuration order.
VHB = [OU("Heartbeat", venue=1, fsession="NSDQ01    ", fseq=1, count=0),
       OU("Heartbeat", venue=2, fsession="BX01      ", fseq=1, count=0)]
HELLO = [OU("Request", venue=1, fseq=1, count=0), OU("Request", venue=2, fseq=1, count=0)]
T.append(Transcript("session_heartbeats_then_timeout", [
    LOGIN1,
    Step([], [], now=at(999)),
    Step([], [SP("Heartbeat", seq=1, length=24), *VHB], now=at(1000)),
    Step([S(1, heartbeat(1))], [], now=at(1500)),
    Step([], [SP("Heartbeat", seq=1), *VHB], now=at(2000)),
    Step([], [SP("Heartbeat", seq=1), VHB[0], HELLO[0], VHB[1], HELLO[1]], now=at(3000)),
    Step([], [SP("Heartbeat", seq=1), VHB[0], HELLO[0], VHB[1], HELLO[1]], now=at(4000)),
    Step([], [], now=at(4500)),
    Step([S(1, new_order(1, 1, 1))], [], {(1, 1): None}, now=at(4501)),
], drops={"SP_NOT_LOGGED_IN": 1},
    events={"SESSION_TIMEOUTS": 1, "HEARTBEATS_OUT": 4, "HEARTBEATS_IN": 1, "LOGOUTS": 0,
            "VENUE_TIMEOUTS": 2, "VENUE_HEARTBEATS_OUT": 8}))

# 41. An unanswered gap request is sent again after retransmit_ms (50), from
# the current next expected with the recorded count; a message in order
# satisfies it, and the next gap starts a new one.
T.append(Transcript("session_gap_request_resent", [
    LOGIN1,
    Step([S(1, new_order(1, 3, 3))], [SP("RetransmitRequest", seq=1, from_seq=1, count=3)]),
    Step([], [], now=at(50)),
    Step([], [SP("RetransmitRequest", seq=1, from_seq=1, count=3)], now=at(51)),
    Step([S(1, new_order(1, 1, 1))], [enter(1)], now=at(60)),
    Step([S(1, new_order(1, 3, 3))], [SP("RetransmitRequest", seq=1, from_seq=2, count=2)],
         now=at(61)),
    Step([], [SP("RetransmitRequest", seq=1, from_seq=2, count=2)], now=at(111)),
    Step([S(1, new_order(1, 2, 2), new_order(1, 3, 3))], [enter(2), enter(3)], now=at(120)),
    Step([], [], now=at(200)),
], drops={"SP_OUT_OF_ORDER": 2},
    events={"SP_SEQ_GAPS": 4, "SP_SEQ_GAP_MSGS": 5, "SP_MSGS_IN": 3}))

# 42. A venue packet beyond the next expected: not handled, a request packet
# (first + count - next expected = 3), sent again after retransmit_ms; the
# venue resends from 1.
T.append(Transcript("venue_gap_request_packet", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1))], [enter(1)]),
    Step([V(1, ouch_accepted(1), seq=3)], [OU("Request", fsession="NSDQ01    ", fseq=1, count=3)],
         {(1, 1): "PendingNew"}),
    Step([venue_heartbeat(1, 4)], []),
    Step([], [OU("Request", fseq=1, count=3)], now=at(52)),
    Step([V(1, ouch_system_event(), ouch_system_event(), ouch_accepted(1), seq=1)],
         [SP("Accepted", seq=1, cl_ord_id=1)], {(1, 1): "New"}, now=at(60)),
    Step([], [], now=at(200)),
], drops={"UFO_OUT_OF_ORDER": 1},
    events={"VENUE_SEQ_GAPS": 2, "VENUE_SEQ_GAP_MSGS": 3, "VENUE_IGNORED_TYPES": 2,
            "VENUE_HEARTBEATS": 1, "VENUE_MSGS_IN": 3}))

# 43. A venue's retransmission request (to venue_request_port) is served from
# the replay buffer, each packet exactly as first sent; from our next on, a
# heartbeat; below the oldest held, nothing (TOO_OLD); count 0, a hello, a
# heartbeat. None of them takes a framing sequence number.
T.append(Transcript("venue_request_served", [
    LOGIN1,
    Step([S(1, new_order(1, 1, 1), new_order(1, 2, 2))], [enter(1, fseq=1), enter(2, fseq=2)]),
    Step([S(1, cancel(1, 3, 1))], [OU("X", fseq=3, ref=1)]),
    Step([venue_request(1, 2, 5)],
         [enter(2, fseq=2, same_as=(1, 1)), OU("X", fseq=3, ref=1, same_as=(2, 0))]),
    Step([venue_request(1, 4, 1)], [OU("Heartbeat", fseq=4, count=0)]),
    Step([venue_request(1, 0, 2)], []),
    Step([venue_request(2, 1, 0)], [OU("Heartbeat", venue=2, fseq=1, count=0)]),
    Step([S(1, new_order(1, 4, 4))], [enter(3, fseq=4)]),
], events={"VENUE_RETRANSMIT_REQUESTS": 4, "VENUE_RETRANSMITTED": 2,
           "VENUE_RETRANSMIT_TOO_OLD": 1, "VENUE_MSGS_OUT": 4, "VENUE_HEARTBEATS_OUT": 0}))

# 44. Venue timers alone: heartbeats every heartbeat_ms; venue 1, never heard
# from, is down at timeout_ms and gets a hello with each heartbeat; venue 2's
# heartbeat kept it up. Anything from venue 1 brings it back.
T.append(Transcript("venue_timeout_hello_reconnect", [
    Step([], [], now=at(0)),
    Step([], VHB, now=at(1000)),
    Step([], VHB, now=at(2000)),
    Step([venue_heartbeat(2, 1)], [], now=at(2500)),
    Step([], [VHB[0], HELLO[0], VHB[1]], now=at(3000)),
    Step([venue_heartbeat(1, 1)], [], now=at(3500)),
    Step([], VHB, now=at(4000)),
], events={"VENUE_TIMEOUTS": 1, "VENUE_RECONNECTS": 1, "VENUE_HEARTBEATS": 2,
           "VENUE_HEARTBEATS_OUT": 8}))


# --- decoding outbound frames (from the spec tables) ------------------------------

SESSION_BY_IP = {bytes(int(x) for x in s.ip.split(".")): s for s in wire.SESSIONS}
VENUE_BY_IP = {bytes(int(x) for x in v.ip.split(".")): v for v in wire.VENUES}

# protocol.md's session-level messages the appliance sends, beyond wire.SP_OUT
SP_OUT = {**wire.SP_OUT,
          0x02: ("Logout", "", ()),
          0x03: ("Heartbeat", "", ()),
          0x04: ("RetransmitRequest", "<QII", ("from_seq", "count", "_")),
          0x84: ("RetransmitReject", "<QIB3x", ("from_seq", "count", "reason"))}


def decode_sp_out(frame: bytes) -> dict:
    p = frame[42:]
    version, type_, length, session, seq, ts = struct.unpack_from("<BBHIQQ", p)
    name, fmt, names = SP_OUT[type_]
    assert length == len(p), "one message per datagram"
    vals = struct.unpack_from(fmt, p, 24) if fmt else ()
    d = {"type": name, "session": session, "seq": seq, "ts": ts, "length": length}
    d.update({k: v for k, v in zip(names, vals, strict=True) if k != "_"})
    return d


def decode_out(frame: bytes) -> dict:
    sport, dport = struct.unpack_from("!HH", frame, 34)
    dst = frame[30:34]
    if sport == wire.APPLIANCE.strategy_port:
        s = SESSION_BY_IP[dst]
        assert dport == s.port
        d = decode_sp_out(frame)
        assert d["session"] == s.id, "strategy reply sent to another session's address"
        return {"to": "sp", **d}
    v = VENUE_BY_IP[dst]
    p = frame[42:]
    fseq, count = struct.unpack_from("!QH", p, 10)
    d = {"to": "venue", "venue": v.id, "fsession": p[:10].decode(), "fseq": fseq,
         "count": count}
    if sport == wire.APPLIANCE.request_port:
        # a request packet (count 0: a hello) to the venue's request port
        assert dport == v.retransmit_port and len(p) == 20
        return {**d, "type": "Request"}
    assert sport == wire.APPLIANCE.venue_port, f"unexpected source port {sport}"
    assert dport == v.port
    if count == 0:
        assert len(p) == 20
        return {**d, "type": "Heartbeat"}
    (blen,) = struct.unpack_from("!H", p, 20)
    m = p[22:]
    assert len(m) == blen, "one OUCH message per packet, framed by its block length"
    d.update(length=blen, type=chr(m[0]))
    if m[:1] == b"O":  # Enter Order §2.1
        ref, side, qty, sym, price = struct.unpack_from("!IcI8sQ", m, 1)
        (applen,) = struct.unpack_from("!H", m, 45)
        d.update(ref=ref, side=side.decode(), qty=qty, symbol=sym.decode(), price=price,
                 tif=chr(m[26]), display=chr(m[27]), capacity=chr(m[28]), iso=chr(m[29]),
                 cross=chr(m[30]), clordid=m[31:45].decode(), applen=applen,
                 appendage=m[47:])
    elif m[:1] == b"U":  # Replace Order Request §2.2
        orig, ref, qty, price = struct.unpack_from("!IIIQ", m, 1)
        (applen,) = struct.unpack_from("!H", m, 38)
        d.update(orig_ref=orig, ref=ref, qty=qty, price=price, tif=chr(m[21]),
                 display=chr(m[22]), iso=chr(m[23]), clordid=m[24:38].decode(),
                 applen=applen, appendage=m[40:])
    elif m[:1] == b"X":  # Cancel Order Request §2.3
        ref, qty = struct.unpack_from("!II", m, 1)
        d.update(ref=ref, qty=qty)
    return d


# --- the runner ------------------------------------------------------------------

IMPLS = [pytest.param(Core, id="core"), pytest.param(ReferenceCore, id="model")]


def _params() -> list:
    return [pytest.param(t, id=t.name,
                         marks=[pytest.mark.xfail(reason=t.xfail, strict=True)] if t.xfail else [])
            for t in T]


def _frames(inputs, vseq: dict) -> list[bytes]:
    frames = []
    for inp in inputs:
        if inp[0] == "raw":
            frames.append(inp[1])
        elif inp[0] == "sp":
            _, session, msgs = inp
            frames.append(wire.from_strategy(session, *msgs))
        else:
            _, venue, msgs, seq = inp
            v = next(v for v in wire.VENUES if v.id == venue)
            first = vseq[venue] if seq is None else seq
            frames.append(wire.from_venue(venue, wire.ufo(v.session, first, *msgs)))
            vseq[venue] = max(vseq[venue], first + len(msgs))
    return frames


def _check_order(core, key, want, where):
    got = core.order(*key)
    if want is None:
        assert got is None, f"{where}: order {key} should not be held, got {got}"
        return
    assert got is not None, f"{where}: order {key} not found"
    if isinstance(want, str):
        want = {"state": want}
    for k, v in want.items():
        g = STATES.get(got[k], got[k]) if k == "state" else got[k]
        assert g == v, f"{where}: order {key} {k} = {g!r}, expected {v!r}"


def _check_out(frames: list[bytes], want: list[dict], now: int, history: list,
               where: str):
    got = [decode_out(f) for f in frames]
    show = "\n  ".join(map(str, got))
    assert len(got) == len(want), \
        f"{where}: {len(got)} messages out, expected {len(want)}:\n  {show}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        for k, v in w.items():
            if k == "same_as":
                step, j = v
                assert frames[i] == history[step][j], \
                    f"{where}: message {i} is not step {step}'s message {j} byte for byte"
                continue
            assert g.get(k) == v, \
                f"{where}: message {i} field {k} = {g.get(k)!r}, expected {v!r}:\n  {show}"
        if g["to"] == "sp" and "ts" not in w:
            assert g["ts"] == now, f"{where}: message {i} timestamp_ns is not now_ns"


def _config(t: Transcript):
    cfg = wire.config(orders=t.orders_capacity, tx_frames=t.tx_frames)
    if t.replay_depth is not None:
        cfg = replace(cfg, tables=replace(cfg.tables, replay_depth=t.replay_depth))
    return cfg


@pytest.mark.parametrize("t", _params())
@pytest.mark.parametrize("impl", IMPLS)
def test_transcript(impl, t: Transcript):
    core = impl(_config(t))
    vseq = {v.id: 1 for v in wire.VENUES}
    history: list[list[bytes]] = []
    for n, step in enumerate(t.steps):
        where = f"{t.name} step {n}"
        now = at(n) if step.now is None else step.now
        out = core.process_burst(_frames(step.inputs, vseq), now)
        _check_out(out, step.out, now, history, where)
        history.append(out)
        for key, want in step.orders.items():
            _check_order(core, key, want, where)
    st = core.stats()
    assert st["drop"] == t.drops, f"{t.name}: drops"
    rejects = {code: n for code, n in st["reject_business"].items()}
    rejects.update({1000 + code: n for code, n in st["reject_system"].items()})
    assert rejects == {REJECT[k]: n for k, n in t.rejects.items()}, f"{t.name}: rejects"
    for name, n in t.events.items():
        assert st["event"].get(name, 0) == n, f"{t.name}: event {name}"


def test_transcript_names_unique():
    names = [t.name for t in T]
    assert len(names) == len(set(names))
