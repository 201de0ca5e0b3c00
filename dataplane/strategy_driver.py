"""A strategy-side endpoint of the strategy protocol: the peer the appliance
expects on a session (docs/protocol.md, cdefs/sp_wire.h, docs/semantics.md).

It builds and reads Ethernet frames and reads no clock: every call takes the
time (``now``, ns) and returns the frames to send, in order.  Frames go from
the session's configured ``mac``/``ip``/``port`` to the appliance's
``mac``/``ip``/``strategy_port``: untagged Ethernet, IPv4 (IHL 5, TOS 0, ID 0,
DF, TTL 64, header checksum), UDP (checksum always computed, a computed 0
sent as 0xFFFF), one protocol message per datagram.

Sending
-------
* ``login(now)`` sends Login with ``next_expected_seq`` = the next appliance
  sequence number the driver expects.  Until LoginAccepted arrives, ``tick``
  sends it again every ``heartbeat_ms``.
* ``new_order``, ``modify``, ``cancel``, ``mass_cancel`` send application
  messages: each takes the driver's next sequence number (from 1) and is kept,
  byte for byte, in a replay buffer of the last ``replay_depth`` (4096).  They
  are sent even before the login is accepted: the appliance drops them, and
  the LoginAccepted recovers them (below).  ``new_order`` also creates the
  driver's view of the order (state PendingNew, leaves = qty).
* ``logout(now)`` sends Logout; the driver stops its timers until the next
  ``login``.

Receiving (``handle_frame(frame, now)``)
----------------------------------------
A frame must be a well-formed IPv4/UDP frame (checksums checked; one 802.1Q
tag skipped) from ``appliance.ip:strategy_port`` to the session's
``ip:port``; otherwise it is counted in ``stats["bad_frames"]`` by reason and
ignored.  Its messages are walked as the appliance walks them (a header
``length`` out of range stops the walk; a wrong version or session id skips
the message).  Every message received sets ``last_rx``.

* **LoginAccepted**: logged in.  Its ``next_expected_seq`` is the next
  driver number the appliance expects: the driver's messages from there on
  are sent again from the replay buffer, each in its own datagram, byte for
  byte.  Its header ``seq`` is the appliance's next: if above the driver's
  next expected, the appliance is already re-sending the missing ones (it
  serves the Login's ``next_expected_seq``), so they are recorded as
  requested now (a request goes out only if they have not arrived
  ``retransmit_ms`` later).
* **LoginRejected**: recorded in ``login_rejects``; not logged in, and the
  Login is not sent again (the timers stop until the next ``login``).
* **Logout** (the appliance's answer to ours): not logged in.
* **Heartbeat**: its ``seq`` is the appliance's next application number; if
  above the next expected, the missing ones are wanted (go-back-N, below).
* **RetransmitRequest** (``from_seq``, ``count``): the driver's own messages
  ``from_seq`` .. ``min(from_seq + count, next, from_seq + 1024) - 1`` are
  sent again from the replay buffer, each in its own datagram, byte for byte
  (``retransmitted``).  Count 0 does nothing; ``from_seq`` below the oldest
  held counts ``retransmit_too_old`` and sends nothing; at or beyond the
  driver's next, a Heartbeat is sent (it tells where the driver is).
* **RetransmitReject**: recorded in ``retransmit_rejects`` as ``(from_seq,
  count, reason)``.
* **Application messages** (Accepted, Rejected, Replaced, Canceled, Fill,
  SessionReject) are sequenced, go-back-N: ``seq`` below the next expected is
  a duplicate (``duplicates``), skipped; above it, the message is dropped
  (``out_of_order``) and it and the missing ones are wanted; equal, it is
  applied to the order views and the next expected advances.

**Wanting messages** (go-back-N request): the driver remembers the last
appliance number it wants.  It sends RetransmitRequest(``from_seq`` = next
expected, ``count`` = min(wanted - next expected + 1, ``request_window``
(32))) (``requests_out``) if no request is outstanding, or the last one is at
least ``retransmit_ms`` old, or messages have arrived in order since it was
sent (so the rest of its answer was lost or overtaken: asking again at once
keeps recovery going at the round-trip time); otherwise nothing (the request
is on its way).  When the next expected passes the end of the window asked
for and more is wanted, the next window is asked for at once.  The request
is outstanding until the next expected passes the last wanted number.  The
window is small because the appliance resends a request's messages as one
burst: if the network reorders them, everything after the first one out of
order is dropped, and a smaller burst wastes less.

Timers (``tick(now)``)
----------------------
* login sent and not answered for ``heartbeat_ms``: Login again;
* logged in and nothing received for ``timeout_ms`` (the session's, as the
  appliance's own timeout): the appliance has probably dropped the session,
  so the driver logs in again (``relogins``);
* an outstanding request at least ``retransmit_ms`` old: sent again, from the
  current next expected;
* logged in and nothing sent for ``heartbeat_ms``: Heartbeat, ``seq`` = the
  driver's next number (so the appliance notices lost trailing messages).

Reordering (a test knob)
------------------------
With ``reorder=(probability, seed)`` the driver itself misorders what it
sends, as a reordering network would (:mod:`dataplane.reorder`): each
outgoing frame, while none is held, is held back with that probability
(``random.Random(seed)``, one draw per frame) and goes out right after the
next frame the driver sends (``stats["reordered"]``), or from ``tick`` once
it has waited ``reorder_hold_ms`` (20) without one
(``stats["reorder_timeouts"]``).  ``flush_reorder()`` lets a held frame go
at once.  Every public call that returns frames goes through it; without
``reorder`` (the default) nothing changes.

Order views
-----------
``orders[cl_ord_id]`` is an :class:`OrderView` built only from the execution
reports applied in sequence order (never from duplicates or out-of-order
ones), mirroring the appliance's order states:

* Accepted: PendingNew -> New.
* Fill: cum and leaves from the report, the fill appended to ``fills`` as
  ``(match_number, last_qty, last_price)``; Filled if leaves is 0, else
  PartiallyFilled.
* Replaced: price, qty and leaves from the report; Replaced, or Filled if
  leaves is 0.
* Canceled: leaves from the report; if 0, Expired (reason IOC) or Canceled.
* Rejected of a NewOrder (except DUPLICATE_ID, which is about another
  order): Rejected (leaves stay, as the appliance keeps them).  Rejected of a
  Modify or Cancel changes nothing (the order stays where it was, as on the
  appliance).  Every Rejected is appended to the order's ``rejects`` (or to
  ``unmatched`` when the driver sent no such order).

Pending states (PendingReplace, PendingCancel) are not reported by the
appliance and so are not shown; once the appliance has answered everything,
the view equals the appliance's order.
"""
from __future__ import annotations

import socket
import struct
from collections import deque
from dataclasses import dataclass, field

from control.config import Appliance, Session
from dataplane import frames
from dataplane.reorder import Reorder

MS = 1_000_000

SP_VERSION = 1
SP_HLEN = 24
MAX_RETRANSMIT = 1024

# message types (sp_wire.h)
LOGIN, LOGOUT, HEARTBEAT, RETRANSMIT_REQUEST = 0x01, 0x02, 0x03, 0x04
NEW_ORDER, MODIFY, CANCEL, MASS_CANCEL = 0x10, 0x11, 0x12, 0x13
LOGIN_ACCEPTED, LOGIN_REJECTED, RETRANSMIT_REJECT = 0x81, 0x82, 0x84
ACCEPTED, REJECTED, REPLACED, CANCELED, FILL, SESSION_REJECT = (
    0x90, 0x91, 0x92, 0x93, 0x94, 0x9F)
APPLICATION_OUT = frozenset((ACCEPTED, REJECTED, REPLACED, CANCELED, FILL, SESSION_REJECT))

TYPE_NAMES = {
    LOGIN: "Login", LOGOUT: "Logout", HEARTBEAT: "Heartbeat",
    RETRANSMIT_REQUEST: "RetransmitRequest", NEW_ORDER: "NewOrder", MODIFY: "Modify",
    CANCEL: "Cancel", MASS_CANCEL: "MassCancel", LOGIN_ACCEPTED: "LoginAccepted",
    LOGIN_REJECTED: "LoginRejected", RETRANSMIT_REJECT: "RetransmitReject",
    ACCEPTED: "Accepted", REJECTED: "Rejected", REPLACED: "Replaced",
    CANCELED: "Canceled", FILL: "Fill", SESSION_REJECT: "SessionReject",
}

# order states, numbered as oms_core.h (Core.order()["state"])
STATE_NAMES = {
    1: "PendingNew", 2: "New", 3: "PartiallyFilled", 4: "Filled", 5: "PendingReplace",
    6: "Replaced", 7: "PendingCancel", 8: "Canceled", 9: "Rejected", 10: "Expired",
}
STATE_CODES = {name: code for code, name in STATE_NAMES.items()}
TERMINAL = frozenset(("Filled", "Canceled", "Rejected", "Expired"))

CXL_IOC = 2
REJ_DUPLICATE_ID = 1

_HEADER = struct.Struct("<BBHIQQ")
_NEW_ORDER = struct.Struct("<QIBBBB8sqIHH")
_MODIFY = struct.Struct("<QqII")
_CANCEL = struct.Struct("<Q")
_MASS_CANCEL = struct.Struct("<II")
_U64 = struct.Struct("<Q")
_RETRANSMIT_REQUEST = struct.Struct("<QII")
_RETRANSMIT_REJECT = struct.Struct("<QIB3x")
_ACCEPTED = struct.Struct("<QqIHH")
_REJECTED = struct.Struct("<QHBBI")
_REPLACED = struct.Struct("<QqII")
_CANCELED = struct.Struct("<QIIB7x")
_FILL = struct.Struct("<QqIIIIQ")
_SESSION_REJECT = struct.Struct("<QBB6x")


@dataclass
class OrderView:
    """The driver's view of one order (see the module docstring)."""
    cl_ord_id: int
    symbol: str
    side: int
    ord_type: int
    tif: int
    account: int
    price: int
    qty: int
    leaves_qty: int
    state: str = "PendingNew"
    cum_qty: int = 0
    venue: int = 0  # from Accepted
    cancel_reason: int = 0  # from the last Canceled
    fills: list[tuple[int, int, int]] = field(default_factory=list)  # (match, qty, price)
    rejects: list[tuple[int, int, int]] = field(default_factory=list)  # (ref_type, reason, code)

    @property
    def state_code(self) -> int:
        return STATE_CODES[self.state]

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


class StrategyDriver:
    """One strategy session's endpoint.  See the module docstring."""

    def __init__(self, session: Session, appliance: Appliance, *, replay_depth: int = 4096,
                 heartbeat_ms: int | None = None, retransmit_ms: int | None = None,
                 timeout_ms: int | None = None, request_window: int = 32,
                 reorder: tuple[float, int] | None = None,
                 reorder_hold_ms: int = 20) -> None:
        if replay_depth <= 0 or request_window <= 0:
            raise ValueError("replay_depth and request_window must be positive")
        self.request_window = request_window
        self.session = session
        self.appliance = appliance
        self.heartbeat_ns = (session.heartbeat_ms if heartbeat_ms is None else heartbeat_ms) * MS
        self.retransmit_ns = (appliance.retransmit_ms if retransmit_ms is None
                              else retransmit_ms) * MS
        self.timeout_ns = (session.timeout_ms if timeout_ms is None else timeout_ms) * MS
        if min(self.heartbeat_ns, self.retransmit_ns, self.timeout_ns) <= 0:
            raise ValueError("heartbeat_ms, retransmit_ms and timeout_ms must be positive")
        self._my_mac, self._app_mac = frames.mac(session.mac), frames.mac(appliance.mac)
        self._my_ip = socket.inet_aton(session.ip)
        self._app_ip = socket.inet_aton(appliance.ip)

        self.next_out = 1  # the driver's next application sequence number
        self.next_expected = 1  # the next appliance application number expected
        self._sent: deque[bytes] = deque(maxlen=replay_depth)  # messages next_out-len..
        self.logged_in = False
        self._login_at: int | None = None  # Login sent, not yet answered
        self._active = False  # between login() and logout()
        self.last_rx: int | None = None
        self.last_tx: int | None = None
        self._wanted_through = 0  # last appliance number wanted; the request is
        self._request_at: int | None = None  # outstanding while this is set
        self._request_end = 0  # last number the outstanding request asked for
        self._progressed = False  # in-order progress since the last request

        self.orders: dict[int, OrderView] = {}
        self.unmatched: list[tuple[str, tuple]] = []  # reports for orders never sent
        self.session_rejects: list[tuple[int, int, int]] = []  # (ref_seq, reason, ref_type)
        self.retransmit_rejects: list[tuple[int, int, int]] = []  # (from, count, reason)
        self.login_rejects: list[int] = []
        self.stats: dict = {
            "frames_in": 0, "frames_out": 0,
            "msgs_in": {},  # type name -> count (every message of the right session)
            "msgs_out": {},  # type name -> count (first sends only)
            "bad_frames": {},  # reason -> count
            "duplicates": 0, "out_of_order": 0,
            "requests_out": 0, "requests_in": 0, "retransmitted": 0,
            "retransmit_too_old": 0, "heartbeats_out": 0, "relogins": 0,
        }
        self._reorder: Reorder[bytes] | None = None
        if reorder is not None:
            self._reorder = Reorder(self.stats, reorder[0], reorder[1], reorder_hold_ms * MS)

    # --- state -------------------------------------------------------------

    @property
    def oldest_held(self) -> int:
        return self.next_out - len(self._sent)

    @property
    def request_outstanding(self) -> bool:
        return self._request_at is not None

    # --- sending -------------------------------------------------------------

    def _frame(self, payload: bytes, now: int) -> bytes:
        self.last_tx = now
        self.stats["frames_out"] += 1
        return frames.udp_frame(self._my_mac, self._app_mac, self._my_ip, self._app_ip,
                                self.session.port, self.appliance.strategy_port, payload)

    def _msg(self, msg_type: int, seq: int, now: int, body: bytes = b"") -> bytes:
        return _HEADER.pack(SP_VERSION, msg_type, SP_HLEN + len(body), self.session.id, seq,
                            now) + body

    def _session_msg(self, msg_type: int, now: int, body: bytes = b"") -> bytes:
        frames.bump(self.stats["msgs_out"], TYPE_NAMES[msg_type])
        return self._frame(self._msg(msg_type, self.next_out, now, body), now)

    def _app(self, msg_type: int, now: int, body: bytes) -> list[bytes]:
        msg = self._msg(msg_type, self.next_out, now, body)
        self.next_out += 1
        self._sent.append(msg)
        frames.bump(self.stats["msgs_out"], TYPE_NAMES[msg_type])
        return [self._frame(msg, now)]

    def _out(self, sent: list[bytes], now: int) -> list[bytes]:
        """What a public call sends: its frames, through the reorder knob."""
        return sent if self._reorder is None else self._reorder.apply(sent, now)

    def flush_reorder(self) -> list[bytes]:
        """A frame the reorder knob holds, if any, to send now."""
        return [] if self._reorder is None else self._reorder.flush()

    def login(self, now: int) -> list[bytes]:
        return self._out(self._login(now), now)

    def _login(self, now: int) -> list[bytes]:
        self._active = True
        self._login_at = now
        return [self._session_msg(LOGIN, now, _U64.pack(self.next_expected))]

    def logout(self, now: int) -> list[bytes]:
        self._active = False
        self.logged_in = False
        self._login_at = None
        self._request_at = None
        return self._out([self._session_msg(LOGOUT, now)], now)

    def new_order(self, now: int, cl_ord_id: int, symbol: str, price: int, qty: int,
                  side: int = 1, ord_type: int = 1, tif: int = 1, flags: int = 0,
                  venue: int = 0, account: int = 1) -> list[bytes]:
        if cl_ord_id not in self.orders:
            self.orders[cl_ord_id] = OrderView(cl_ord_id, symbol, side, ord_type, tif, account,
                                               price, qty, leaves_qty=qty)
        return self._out(self._app(NEW_ORDER, now, _NEW_ORDER.pack(
            cl_ord_id, account, side, ord_type, tif, flags,
            symbol.encode("ascii").ljust(8, b" "), price, qty, venue, 0)), now)

    def modify(self, now: int, cl_ord_id: int, new_price: int, new_qty: int) -> list[bytes]:
        return self._out(self._app(MODIFY, now, _MODIFY.pack(cl_ord_id, new_price, new_qty, 0)),
                         now)

    def cancel(self, now: int, cl_ord_id: int) -> list[bytes]:
        return self._out(self._app(CANCEL, now, _CANCEL.pack(cl_ord_id)), now)

    def mass_cancel(self, now: int, account: int = 1) -> list[bytes]:
        return self._out(self._app(MASS_CANCEL, now, _MASS_CANCEL.pack(account, 0)), now)

    def _resend(self, first: int, end: int, now: int) -> list[bytes]:
        """The driver's messages first .. end - 1 again, byte for byte."""
        oldest = self.oldest_held
        out = [self._frame(self._sent[seq - oldest], now) for seq in range(first, end)]
        self.stats["retransmitted"] += len(out)
        return out

    def _want(self, through: int, now: int) -> list[bytes]:
        self._wanted_through = max(self._wanted_through, through)
        if self._request_at is not None and not self._progressed and \
                now - self._request_at < self.retransmit_ns:
            return []  # the request is on its way
        return [self._send_request(now)]

    def _send_request(self, now: int) -> bytes:
        count = min(max(self._wanted_through - self.next_expected + 1, 1), self.request_window)
        self._request_at = now
        self._request_end = self.next_expected + count - 1
        self._progressed = False
        self.stats["requests_out"] += 1
        return self._session_msg(RETRANSMIT_REQUEST, now, _RETRANSMIT_REQUEST.pack(
            self.next_expected, count, 0))

    def _advanced(self, now: int) -> list[bytes]:
        """The next expected went up by one: the request is done when all
        wanted has arrived; the next window is asked for when this one has."""
        if self._request_at is None:
            return []
        if self.next_expected > self._wanted_through:
            self._request_at = None
            return []
        self._progressed = True
        if self.next_expected > self._request_end:
            return [self._send_request(now)]
        return []

    # --- timers --------------------------------------------------------------

    def tick(self, now: int) -> list[bytes]:
        out = self._out(self._tick(now), now)
        if self._reorder is not None:
            out += self._reorder.due(now)
        return out

    def _tick(self, now: int) -> list[bytes]:
        out: list[bytes] = []
        if not self._active:
            return out
        if not self.logged_in:
            if self._login_at is not None and now - self._login_at >= self.heartbeat_ns:
                out += self._login(now)
            return out
        if self.last_rx is not None and now - self.last_rx >= self.timeout_ns:
            self.logged_in = False
            self._request_at = None
            self.stats["relogins"] += 1
            return self._login(now)
        if self._request_at is not None and now - self._request_at >= self.retransmit_ns:
            out.append(self._send_request(now))
        if self.last_tx is None or now - self.last_tx >= self.heartbeat_ns:
            self.stats["heartbeats_out"] += 1
            out.append(self._session_msg(HEARTBEAT, now))
        return out

    # --- receiving -------------------------------------------------------------

    def _bad(self, reason: str) -> None:
        frames.bump(self.stats["bad_frames"], reason)

    def _payload(self, f: bytes) -> bytes | None:
        got = frames.ipv4_udp(f)
        if isinstance(got, str):
            return self._bad(got)
        src, dst, udp = got
        sport, dport = struct.unpack_from("!HH", udp)
        if (src, sport) != (self._app_ip, self.appliance.strategy_port) or \
                (dst, dport) != (self._my_ip, self.session.port):
            return self._bad("not_for_session")
        bad = frames.check_udp(src, dst, udp)
        if bad:
            return self._bad(bad)
        return udp[8:]

    def handle_frame(self, frame: bytes, now: int) -> list[bytes]:
        return self._out(self._handle_frame(frame, now), now)

    def _handle_frame(self, frame: bytes, now: int) -> list[bytes]:
        payload = self._payload(frame)
        if payload is None:
            return []
        self.stats["frames_in"] += 1
        out: list[bytes] = []
        off = 0
        while off < len(payload):
            if len(payload) - off < SP_HLEN:
                self._bad("truncated")
                break
            version, msg_type, length, session_id, seq, _ts = _HEADER.unpack_from(payload, off)
            if length < SP_HLEN or length > len(payload) - off:
                self._bad("bad_length")
                break
            msg = payload[off:off + length]
            off += length
            if version != SP_VERSION or session_id != self.session.id:
                self._bad("wrong_version_or_session")
                continue
            self.last_rx = now
            frames.bump(self.stats["msgs_in"], TYPE_NAMES.get(msg_type, f"0x{msg_type:02X}"))
            out += self._message(msg_type, seq, msg, now)
        return out

    def _message(self, msg_type: int, seq: int, msg: bytes, now: int) -> list[bytes]:
        if msg_type in APPLICATION_OUT:
            if seq < self.next_expected:
                self.stats["duplicates"] += 1
                return []
            if seq > self.next_expected:
                self.stats["out_of_order"] += 1
                return self._want(seq, now)
            self.next_expected += 1
            self._apply(msg_type, msg)
            return self._advanced(now)
        if msg_type == HEARTBEAT:
            return self._want(seq - 1, now) if seq > self.next_expected else []
        if msg_type == RETRANSMIT_REQUEST and len(msg) >= 40:
            return self._serve(*_RETRANSMIT_REQUEST.unpack_from(msg, SP_HLEN)[:2], now=now)
        if msg_type == RETRANSMIT_REJECT and len(msg) >= 40:
            self.retransmit_rejects.append(_RETRANSMIT_REJECT.unpack_from(msg, SP_HLEN))
            return []
        if msg_type == LOGIN_ACCEPTED and len(msg) >= 32:
            return self._login_accepted(seq, _U64.unpack_from(msg, SP_HLEN)[0], now)
        if msg_type == LOGIN_REJECTED and len(msg) >= 25:
            self.login_rejects.append(msg[SP_HLEN])
            self.logged_in = False  # and no more Logins: that needs an operator
            self._active = False
            self._login_at = None
            return []
        if msg_type == LOGOUT:
            self.logged_in = False
        return []

    def _login_accepted(self, their_next: int, their_expected: int, now: int) -> list[bytes]:
        self.logged_in = True
        self._login_at = None
        if their_next > self.next_expected:
            # the appliance is already serving them (the Login's next_expected_seq)
            self._wanted_through = max(self._wanted_through, their_next - 1)
            self._request_at = now
            self._request_end = min(their_next - 1, self.next_expected + MAX_RETRANSMIT - 1)
            self._progressed = False
        if their_expected < self.oldest_held:
            self.stats["retransmit_too_old"] += 1
            return []
        return self._resend(their_expected, self.next_out, now)

    def _serve(self, first: int, count: int, *, now: int) -> list[bytes]:
        self.stats["requests_in"] += 1
        if count == 0:
            return []
        if first < self.oldest_held:
            self.stats["retransmit_too_old"] += 1
            return []
        if first >= self.next_out:
            self.stats["heartbeats_out"] += 1
            return [self._session_msg(HEARTBEAT, now)]
        return self._resend(first, min(first + count, self.next_out, first + MAX_RETRANSMIT),
                            now)

    # --- order views -------------------------------------------------------------

    def _apply(self, msg_type: int, msg: bytes) -> None:
        if msg_type == SESSION_REJECT:
            self.session_rejects.append(_SESSION_REJECT.unpack_from(msg, SP_HLEN))
            return
        fmt = {ACCEPTED: _ACCEPTED, REJECTED: _REJECTED, REPLACED: _REPLACED,
               CANCELED: _CANCELED, FILL: _FILL}[msg_type]
        if len(msg) < SP_HLEN + fmt.size:
            self._bad("short_message")
            return
        fields = fmt.unpack_from(msg, SP_HLEN)
        o = self.orders.get(fields[0])
        if o is None:
            self.unmatched.append((TYPE_NAMES[msg_type], fields))
            return
        if msg_type == ACCEPTED:
            _, _price, _qty, o.venue, _ = fields
            if o.state == "PendingNew":
                o.state = "New"
        elif msg_type == REJECTED:
            _, reason, ref_type, code, _ = fields
            o.rejects.append((ref_type, reason, code))
            if ref_type == NEW_ORDER and reason != REJ_DUPLICATE_ID:
                o.state = "Rejected"
        elif msg_type == REPLACED:
            _, o.price, o.qty, o.leaves_qty = fields
            o.state = "Replaced" if o.leaves_qty else "Filled"
        elif msg_type == CANCELED:
            _, _canceled, o.leaves_qty, o.cancel_reason = fields
            if o.leaves_qty == 0:
                o.state = "Expired" if o.cancel_reason == CXL_IOC else "Canceled"
        else:  # FILL
            _, price, qty, o.cum_qty, o.leaves_qty, _, match = fields
            o.fills.append((match, qty, price))
            o.state = "PartiallyFilled" if o.leaves_qty else "Filled"
