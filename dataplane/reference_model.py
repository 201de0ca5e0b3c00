"""Pure-Python reference model of the order pipeline core.

docs/semantics.md is the specification; this module implements it as
literally as possible so that property tests can compare the C core against
it frame for frame and counter for counter.  Clarity beats speed here: the
model is the executable form of the document, not a second fast path.

The session layer (semantics.md "Time", rules R, G and VG): every session
and venue keeps its last `tables.replay_depth` outbound messages as the
bytes first sent; timers run on the `now_ns` of the calls only, first thing
in process_burst(), and next_deadline() says when the next one is due.

Wire layouts come from cdefs/sp_wire.h (strategy protocol, little-endian,
naturally aligned), cdefs/ouch_wire.h (OUCH 5.0, big-endian, plus the
MoldUDP64-style framing) and cdefs/net.c (Ethernet/IPv4/UDP).
"""
from __future__ import annotations

import dataclasses
import struct
from collections import defaultdict, deque
from dataclasses import dataclass, field

from control.config import ORDER_TYPES, TIFS, Config
from dataplane.venue_latency import with_percentiles

# --- counter names, in the order of OMS_DROP_LIST / OMS_EVENT_LIST ---------

DROP_NAMES = (
    "RUNT", "NOT_IPV4", "BAD_IP_HEADER", "BAD_IP_LENGTH",
    "IP_CHECKSUM", "IP_FRAGMENT", "NOT_UDP", "NOT_FOR_US",
    "BAD_UDP_LENGTH", "UDP_CHECKSUM", "UNKNOWN_PORT",
    "SP_TRUNCATED", "SP_BAD_LENGTH", "SP_BAD_VERSION",
    "SP_UNKNOWN_SESSION", "SP_WRONG_SOURCE", "SP_NOT_LOGGED_IN",
    "SP_DUPLICATE_SEQ", "SP_UNKNOWN_TYPE", "SP_BAD_MSG_LENGTH",
    "SP_OUT_OF_ORDER", "UFO_OUT_OF_ORDER",
    "UFO_TRUNCATED", "UFO_UNKNOWN_VENUE", "UFO_WRONG_SESSION",
    "UFO_BAD_BLOCK", "UFO_DUPLICATE_SEQ", "OUCH_UNKNOWN_TYPE",
    "OUCH_BAD_LENGTH", "OUCH_UNKNOWN_REF", "OUCH_UNEXPECTED",
    "OUCH_OVERFILL", "TX_FULL",
)

EVENT_NAMES = (
    "FRAMES_IN", "FRAMES_OUT", "SP_MSGS_IN", "SP_MSGS_OUT",
    "SP_SEQ_GAPS", "SP_SEQ_GAP_MSGS", "LOGINS", "LOGOUTS",
    "HEARTBEATS_IN", "ORDERS_ACCEPTED_INTERNAL", "VENUE_MSGS_IN",
    "VENUE_MSGS_OUT", "VENUE_SEQ_GAPS", "VENUE_SEQ_GAP_MSGS",
    "VENUE_END_OF_SESSION", "VENUE_HEARTBEATS", "VENUE_IGNORED_TYPES",
    "ORDERS_EVICTED", "SP_RETRANSMIT_REQUESTS", "SP_RETRANSMITTED",
    "SESSION_TIMEOUTS", "HEARTBEATS_OUT", "VENUE_RECONNECTS",
    "VENUE_RETRANSMIT_REQUESTS", "VENUE_RETRANSMIT_TOO_OLD",
    "VENUE_RETRANSMITTED", "VENUE_TIMEOUTS", "VENUE_HEARTBEATS_OUT",
    "CANCEL_ON_DISCONNECT", "KILL_CANCELS", "CONFIG_SWAPS",
    "VENUE_UNRESPONSIVE", "ORDERS_ROUTED", "QUEUED_CANCELS",
)

# --- strategy protocol (sp_wire.h) -----------------------------------------

SP_VERSION = 1
SP_HLEN = 24

SP_LOGIN = 0x01
SP_LOGOUT = 0x02
SP_HEARTBEAT = 0x03
SP_RETRANSMIT_REQUEST = 0x04
SP_NEW_ORDER = 0x10
SP_MODIFY = 0x11
SP_CANCEL = 0x12
SP_MASS_CANCEL = 0x13
SP_LOGIN_ACCEPTED = 0x81
SP_LOGIN_REJECTED = 0x82
SP_RETRANSMIT_REJECT = 0x84
SP_ACCEPTED = 0x90
SP_REJECTED = 0x91
SP_REPLACED = 0x92
SP_CANCELED = 0x93
SP_FILL = 0x94
SP_SESSION_REJECT = 0x9F

SIDE_BUY, SIDE_SELL, SIDE_SELL_SHORT = 1, 2, 3
ORD_LIMIT, ORD_MARKET = 1, 2
TIF_DAY, TIF_IOC = 1, 2
FLAG_LOCATE = 0x02

REJ_DUPLICATE_ID = 1
REJ_BAD_SIDE = 2
REJ_BAD_ORD_TYPE = 3
REJ_BAD_TIF = 4
REJ_BAD_QTY = 5
REJ_UNKNOWN_SYMBOL = 6
REJ_BAD_PRICE = 7
REJ_UNKNOWN_VENUE = 8
REJ_PRICE_UNREPRESENTABLE = 9
REJ_LOCATE_REQUIRED = 10
REJ_UNKNOWN_ORDER = 11
REJ_TOO_LATE = 12
REJ_ORDER_PENDING = 13
REJ_VENUE_REJECTED = 14
# pre-trade risk (semantics.md "Pre-trade risk")
REJ_THROTTLED = 15
REJ_UNKNOWN_ACCOUNT = 16
REJ_KILL_SWITCH = 17
REJ_SYMBOL_HALTED = 18
REJ_SYMBOL_RESTRICTED = 19
REJ_VENUE_NOT_ALLOWED = 20
REJ_ORD_TYPE_NOT_ALLOWED = 21
REJ_TIF_NOT_ALLOWED = 22
REJ_NO_POSITION_LIMIT = 23
REJ_QTY_LIMIT = 24
REJ_LOT_SIZE = 25
REJ_TICK_SIZE = 26
REJ_PRICE_BAND = 27
REJ_NOTIONAL_LIMIT = 28
REJ_OPEN_ORDERS_LIMIT = 29
REJ_CREDIT_LIMIT = 30
REJ_POSITION_LIMIT = 31
REJ_ACCOUNT_NOT_PERMITTED = 32
REJ_NO_ROUTE = 33
REJ_SPLIT_ORDER = 34  # a Modify of an order split across venues
REJ_SYS_TABLE_FULL = 1000
REJ_SYS_JOURNAL = 1003  # the journal is full (docs/durability.md "Full disk")
REJ_SYS_BASE = 1000

CXL_USER, CXL_IOC, CXL_VENUE = 1, 2, 3

# the smart router's reasons per venue (cdefs/oms_core.h enum oms_route_why)
RW_CHOSEN, RW_WORSE, RW_EXCLUDED, RW_NOT_ALLOWED, RW_NO_FEED, RW_STALE, RW_HALTED, \
    RW_DOWN, RW_UNRESPONSIVE, RW_NO_QUOTE, RW_THROUGH_LIMIT, RW_SPLIT = range(1, 13)
ROUTE_SEEN = 8  # venues a decision records
QUOTE_AGE = 10  # the fill model's quote-age feature (control/fill_dataset.py FEATURES)
FILL_MAX_VENUES = 64  # venues (configuration order) a fill model can know
SPLIT_MAX = 4  # children of a split order at most (OMS_SPLIT_MAX)
RTT_BUCKETS = 40
SREJ_UNKNOWN_TYPE, SREJ_BAD_LENGTH = 1, 2
LREJ_DISABLED, LREJ_BAD_SEQ = 1, 2
RTX_TOO_OLD, RTX_NOT_SENT = 1, 2

# exact lengths of the inbound session-level messages
SESSION_MSG_LEN = {SP_LOGIN: 32, SP_LOGOUT: 24, SP_HEARTBEAT: 24,
                   SP_RETRANSMIT_REQUEST: 40}
# at most this many messages are sent again for one request (rule R, venue
# retransmission requests)
MAX_RESEND = 1024

# exact lengths of the inbound application messages
APP_MSG_LEN = {SP_NEW_ORDER: 64, SP_MODIFY: 48, SP_CANCEL: 32,
               SP_MASS_CANCEL: 32}

SP_HEADER = struct.Struct("<BBHIQQ")
SP_NEW_ORDER_BODY = struct.Struct("<QIBBBB8sqIHH")
SP_MODIFY_BODY = struct.Struct("<QqII")
SP_CANCEL_BODY = struct.Struct("<Q")
SP_MASS_CANCEL_BODY = struct.Struct("<II")
SP_LOGIN_BODY = struct.Struct("<Q")
SP_RETRANSMIT_REQUEST_BODY = struct.Struct("<QII")   # from_seq, count, reserved
SP_RETRANSMIT_REJECT_BODY = struct.Struct("<QIB3x")  # from_seq, count, reason

# --- OUCH 5.0 and framing (ouch_wire.h) ------------------------------------

PRICE_SCALE_DIFF = 10**4  # 8 implied decimals here, 4 in OUCH
OUCH_MAX_PRICE = 1999999900
OUCH_MARKET_PRICE = 0x7FFFFFFF
OUCH_MAX_QTY = 999999
OUCH_CLORDID_LEN = 14
UFO_SESSION_LEN = 10
UFO_HLEN = 20
UFO_COUNT_END_OF_SESSION = 0xFFFF
UFO_MAX_REQUEST_COUNT = 65534  # 0xFFFF would read as end of session
# a gap request asks for at most this many messages: under reordering a
# larger resend only breaks up again (go-back-N); the rest is asked for next
REQUEST_WINDOW = 64
SHARES_LOCATED_APPENDAGE = bytes((0x02, 25, ord("Y")))

# (minimum length, offset of Appendage Length, appendage length required)
OUCH_IN_LAYOUT = {
    ord("A"): (64, 62, True),
    ord("U"): (68, 66, True),
    ord("E"): (36, 34, True),
    ord("C"): (18, 18, False),
    ord("J"): (29, 29, False),
    ord("I"): (13, 13, False),
}
OUCH_IGNORED_TYPES = frozenset(ord(c) for c in "SBDPTMRXGKQ")

# --- order states (oms_core.h) ---------------------------------------------

ST_NONE = 0
ST_PENDING_NEW = 1
ST_NEW = 2
ST_PARTIALLY_FILLED = 3
ST_FILLED = 4
ST_PENDING_REPLACE = 5
ST_REPLACED = 6
ST_PENDING_CANCEL = 7
ST_CANCELED = 8
ST_REJECTED = 9
ST_EXPIRED = 10
ST_MAX = 11

TERMINAL = frozenset((ST_FILLED, ST_CANCELED, ST_REJECTED, ST_EXPIRED))
PENDING = frozenset((ST_PENDING_NEW, ST_PENDING_REPLACE, ST_PENDING_CANCEL))
MASS_CANCELABLE = frozenset((ST_PENDING_NEW, ST_NEW, ST_PARTIALLY_FILLED,
                             ST_REPLACED))

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF
NO_DEADLINE = U64
MS = 1_000_000  # ns


# --- byte helpers ------------------------------------------------------------

def ip_to_int(text: str) -> int:
    parts = [int(p) for p in text.split(".")]
    if len(parts) != 4 or any(not 0 <= p <= 255 for p in parts):
        raise ValueError(f"bad IPv4 address {text!r}")
    return (parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]


def mac_to_bytes(text: str) -> bytes:
    raw = bytes(int(p, 16) for p in text.split(":"))
    if len(raw) != 6:
        raise ValueError(f"bad MAC address {text!r}")
    return raw


def pad(text: str, width: int) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > width:
        raise ValueError(f"{text!r} is longer than {width} bytes")
    return raw.ljust(width, b" ")


def base36(value: int) -> bytes:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        value, d = divmod(value, 36)
        out = digits[d] + out
        if value == 0:
            return out.encode("ascii")


def clordid(cl_ord_id: int) -> bytes:
    return base36(cl_ord_id).ljust(OUCH_CLORDID_LEN, b" ")


def csum_add(total: int, data: bytes) -> int:
    if len(data) % 2:
        data = data + b"\x00"
    for (word,) in struct.iter_unpack(">H", data):
        total += word
    return total


def csum_fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_checksum(src_ip: int, dst_ip: int, udp: bytes) -> int:
    """RFC 768 over the pseudo-header and `udp` as it is (checksum field
    included), as net.c's udp_checksum."""
    total = (src_ip >> 16) + (src_ip & 0xFFFF) + (dst_ip >> 16) + \
        (dst_ip & 0xFFFF) + 17 + len(udp)
    return csum_fold(csum_add(total, udp))


def build_udp_frame(src_mac: bytes, dst_mac: bytes, src_ip: int, dst_ip: int,
                    src_port: int, dst_port: int, payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP exactly as net_build_udp() writes them."""
    udp_len = 8 + len(payload)
    ip = bytearray(struct.pack(">BBHHHBBHII", 0x45, 0, 20 + udp_len, 0,
                               0x4000, 64, 17, 0, src_ip, dst_ip))
    struct.pack_into(">H", ip, 10, csum_fold(csum_add(0, bytes(ip))))
    udp = struct.pack(">HHHH", src_port, dst_port, udp_len, 0) + payload
    c = udp_checksum(src_ip, dst_ip, udp)
    # a computed 0 goes out as 0xFFFF: 0 on the wire means "no checksum"
    udp = udp[:6] + struct.pack(">H", c or 0xFFFF) + udp[8:]
    return dst_mac + src_mac + b"\x08\x00" + bytes(ip) + udp


@dataclass
class UdpView:
    src_ip: int
    src_port: int
    dst_port: int
    payload: bytes


def parse_udp(frame: bytes, my_ip: int) -> tuple[str | None, UdpView | None]:
    """The frame checks of docs/semantics.md, in order; returns (drop reason,
    None) or (None, view).  Mirrors net_parse_udp()."""
    n = len(frame)
    if n < 14:
        return "RUNT", None
    off = 14
    ethertype = struct.unpack_from(">H", frame, 12)[0]
    if ethertype == 0x8100:
        if n < 18:
            return "RUNT", None
        ethertype = struct.unpack_from(">H", frame, 16)[0]
        off = 18
    if ethertype != 0x0800:
        return "NOT_IPV4", None
    avail = n - off
    if avail < 20 or frame[off] >> 4 != 4:
        return "BAD_IP_HEADER", None
    ihl = (frame[off] & 0x0F) * 4
    if ihl < 20 or ihl > avail:
        return "BAD_IP_HEADER", None
    total = struct.unpack_from(">H", frame, off + 2)[0]
    # Ethernet may pad short frames: only a total beyond the frame is wrong
    if total < ihl + 8 or total > avail:
        return "BAD_IP_LENGTH", None
    if csum_fold(csum_add(0, frame[off:off + ihl])) != 0:
        return "IP_CHECKSUM", None
    if struct.unpack_from(">H", frame, off + 6)[0] & 0x3FFF:
        return "IP_FRAGMENT", None
    if frame[off + 9] != 17:
        return "NOT_UDP", None
    src_ip, dst_ip = struct.unpack_from(">II", frame, off + 12)
    if dst_ip != my_ip:
        return "NOT_FOR_US", None
    u = off + ihl
    src_port, dst_port, udp_len, udp_sum = struct.unpack_from(">HHHH", frame, u)
    if udp_len != total - ihl:
        return "BAD_UDP_LENGTH", None
    udp = frame[u:u + udp_len]
    if udp_sum != 0 and udp_checksum(src_ip, my_ip, udp) != 0:
        return "UDP_CHECKSUM", None
    return None, UdpView(src_ip, src_port, dst_port, udp[8:])


# --- state -------------------------------------------------------------------

class ReplayBuffer:
    """The last `depth` messages sent, each stored with its sequence number
    (a strategy message's `seq`, a venue packet's framing sequence number)
    as the bytes first sent, so that a resend is byte for byte the same."""

    def __init__(self, depth: int):
        self.depth = depth
        self.items: deque[tuple[int, bytes]] = deque(maxlen=depth)

    def add(self, seq: int, data: bytes) -> None:
        self.items.append((seq, data))

    def oldest(self, next_seq: int) -> int:
        """The oldest sequence number still held: max(1, next - depth)."""
        return max(1, next_seq - self.depth)

    def get(self, seq: int) -> bytes:
        first_seq, _ = self.items[0]
        held_seq, data = self.items[seq - first_seq]
        assert held_seq == seq
        return data


@dataclass
class GapRequest:
    """An outstanding request to a peer to send again (rule G / rule VG)."""
    time: int   # now_ns when it was last sent
    count: int  # the count it was recorded with


@dataclass
class SessionState:
    id: int
    ip: int
    port: int
    mac: bytes
    enabled: bool
    heartbeat_ns: int
    timeout_ns: int
    replay: ReplayBuffer
    logged_in: bool = False
    next_in: int = 1   # next strategy seq expected
    next_out: int = 1  # next appliance seq to send
    last_rx: int = 0   # now_ns of the last message that passed checks 1-5
    last_tx: int = 0   # now_ns of the last frame built for the session
    gap: GapRequest | None = None
    throttle: Throttle = field(default_factory=lambda: Throttle())
    cancel_on_disconnect: bool = False


@dataclass
class Throttle:
    """A session's token bucket, in 10^-9 messages, refilled at `rate`
    messages per second up to `cap` (both from the generation) on the
    bursts' now_ns when a message is judged; full the first time."""
    tokens: int = 0
    last: int = 0
    started: bool = False

    def take(self, rate: int, cap: int, now: int) -> bool:
        if rate == 0:
            return True
        if not self.started:
            self.started, self.tokens = True, cap
        elapsed = 0
        if now > self.last:
            elapsed = now - self.last
            self.last = now
        self.tokens = min(cap, self.tokens + rate * elapsed)
        if self.tokens < TOKEN:
            return False
        self.tokens -= TOKEN
        return True


TOKEN = 10**9


@dataclass(frozen=True)
class AccountLimits:
    """An account's limits, as one configuration generation sets them."""
    id: int
    max_order_qty: int
    max_order_notional: int
    max_open_orders: int
    credit_limit: int
    ord_types: frozenset
    tifs: frozenset
    kill: bool  # engaged by the configuration


@dataclass
class AccountState:
    """An account's accounting, kept across generations: its live orders'
    count, the sum of their reserved notional, the operator's switch."""
    open_orders: int = 0
    open_notional: int = 0
    kill: bool = False


@dataclass
class PositionState:
    """One (account, symbol): the filled position (bought - sold) and the
    quantity its live orders reserve on each side."""
    position: int = 0
    open_buy: int = 0
    open_sell: int = 0

    def beyond(self, max_position: int, side: int, dq: int) -> bool:
        """Would dq more shares on `side` take the worst case past the limit?"""
        if side == SIDE_BUY:
            return self.position + self.open_buy + dq > max_position
        return self.open_sell - self.position + dq > max_position


@dataclass(frozen=True)
class Limits:
    """One configuration generation (semantics.md "Configuration
    generations"): everything the checks read that the configuration sets."""
    number: int
    accounts: dict  # id -> AccountLimits
    instruments: dict  # padded symbol -> control.config.Instrument
    positions: dict  # (account id, padded symbol) -> max_position
    # (account id | None, padded symbol | None) -> (venue id, 0: the smart
    # router; venue ids it excludes)
    routes: dict
    rates: dict  # session id -> (messages per second, cap in TOKEN units)
    session_accounts: dict = field(default_factory=dict)  # session id -> accounts; none: any
    sor_cost_per_us: int = 0  # price units per microsecond of venue latency
    fill_model: dict | None = None  # the router's fill-probability artefact
    fill_slots: dict = field(default_factory=dict)  # venue id -> the model's venue slot
    miss_penalty: int = 0
    split_max: int = 1  # children of a split order at most (1: no split)


@dataclass
class VenueState:
    id: int
    ip: int
    port: int
    request_port: int  # where it takes retransmission requests
    mac: bytes
    session: bytes
    heartbeat_ns: int
    timeout_ns: int
    replay: ReplayBuffer
    next_ref: int = 1      # next UserRefNum
    next_out_seq: int = 1  # framing seq of our next message to the venue
    next_in_seq: int = 1   # framing seq expected from the venue
    up: bool = True
    last_rx: int = 0       # set at the first process_burst call, then by
    last_tx: int = 0       # every packet from / frame built for the venue
    gap: GapRequest | None = None
    # latency monitor (semantics.md "Venue health")
    max_unanswered: int = 0
    unanswered: int = 0
    rtt_ewma_ns: int = 0
    rtt_last_ns: int = 0
    rtt_samples: int = 0
    rtt_hist: list[int] = field(default_factory=lambda: [0] * RTT_BUCKETS)
    fill_ratio_pm: int = 500  # recent fill ratio (semantics.md "Venue health")
    feed: object = None  # its market data: a dataplane.book_model.FeedModel

    def unresponsive(self) -> bool:
        return bool(self.max_unanswered) and self.unanswered >= self.max_unanswered


@dataclass
class Order:
    cl_ord_id: int
    session_id: int
    account: int
    price: int
    qty: int
    leaves_qty: int
    ref: int
    venue: int
    side: int
    ord_type: int
    tif: int
    flags: int
    symbol: bytes
    created: int  # creation number: the order MassCancel walks in
    risk_px: int = 0  # market orders: valued at the reference price at entry
    # what it holds against its account and position now (risk accounting)
    res_live: int = 0
    res_qty: int = 0
    res_notional: int = 0
    pending_price: int = 0
    pending_qty: int = 0
    cum_qty: int = 0
    pending_ref: int = 0
    state: int = ST_NONE
    prev_state: int = ST_NONE
    acked: int = 0
    answered: bool = False  # the venue said something about it
    fill_counted: bool = False  # its outcome went into the venue's fill ratio
    state_ts: list[int] = field(default_factory=lambda: [0] * ST_MAX)
    # split across venues (semantics.md "Splitting across venues"): the
    # parent's children, or a child's parent
    children: list = field(default_factory=list)
    parent: object = None
    evicted: bool = False

    def view(self) -> dict:
        return {
            "cl_ord_id": self.cl_ord_id,
            "session_id": self.session_id,
            "account": self.account,
            "price": self.price,
            "pending_price": self.pending_price,
            "qty": self.qty,
            "pending_qty": self.pending_qty,
            "cum_qty": self.cum_qty,
            "leaves_qty": self.leaves_qty,
            "ref": self.ref,
            "pending_ref": self.pending_ref,
            "venue": self.venue,
            "state": self.state,
            "side": self.side,
            "ord_type": self.ord_type,
            "tif": self.tif,
            "flags": self.flags,
            "acked": self.acked,
            "children": len(self.children),
            "state_ts": list(self.state_ts),
        }


def price_representable(price: int) -> bool:
    return price % PRICE_SCALE_DIFF == 0 and \
        price // PRICE_SCALE_DIFF <= OUCH_MAX_PRICE


# --- the core ------------------------------------------------------------------

class ReferenceCore:
    def __init__(self, cfg: Config):
        app = cfg.appliance
        self.mac = mac_to_bytes(app.mac)
        self.ip = ip_to_int(app.ip)
        self.strategy_port = app.strategy_port
        self.venue_port = app.venue_port
        self.venue_request_port = app.request_port
        self.retransmit_ns = app.retransmit_ms * MS
        self.replay_depth = cfg.tables.replay_depth
        if len(app.capacity) != 1:
            raise ValueError("appliance.capacity must be one letter")
        self.capacity_letter = app.capacity.encode("ascii")
        self.order_capacity = cfg.tables.orders
        self.bulk = False  # a mass cancel, kill or cancel-on-disconnect is walking
        # the journal cannot grow: NewOrders rejected SYS_JOURNAL (an input,
        # set between bursts: set_journal_full)
        self.journal_full = False
        self.tx_capacity = cfg.tables.tx_frames

        # oms_core_add_*() refuse a duplicate id or an entry beyond the table
        # size, and dataplane/core.py turns that into an error: so do we
        self.sessions: dict[int, SessionState] = {}
        for s in cfg.sessions:
            if s.id in self.sessions or \
                    len(self.sessions) >= cfg.tables.max_sessions:
                raise ValueError(f"session {s.id}: table full or duplicate id")
            self.sessions[s.id] = SessionState(
                s.id, ip_to_int(s.ip), s.port, mac_to_bytes(s.mac),
                bool(s.enabled), s.heartbeat_ms * MS, s.timeout_ms * MS,
                ReplayBuffer(self.replay_depth))
            self.sessions[s.id].cancel_on_disconnect = bool(s.cancel_on_disconnect)
        self.venues: dict[int, VenueState] = {}
        for v in cfg.venues:
            if v.id in self.venues or len(self.venues) >= cfg.tables.max_venues:
                raise ValueError(f"venue {v.id}: table full or duplicate id")
            self.venues[v.id] = VenueState(
                v.id, ip_to_int(v.ip), v.port, v.retransmit_port,
                mac_to_bytes(v.mac), pad(v.session, UFO_SESSION_LEN),
                v.heartbeat_ms * MS, v.timeout_ms * MS,
                ReplayBuffer(self.replay_depth), max_unanswered=v.max_unanswered)
        # the loader makes venue IPs unique; if not, the first one owns it
        self.venue_by_ip: dict[int, VenueState] = {}
        for v in self.venues.values():
            self.venue_by_ip.setdefault(v.ip, v)
        self.tables = cfg.tables
        # what every generation so far configured (the core's slots: never
        # given back during a run)
        self.seen_accounts: set[int] = set()
        self.seen_symbols: set[bytes] = set()
        self.symbol_slot: dict[bytes, int] = {}  # the core's instrument index
        self.route_log: list[dict] = []  # the router's decisions, as Core.route_decisions
        self.seen_positions: set[tuple[int, bytes]] = set()
        self.acct_state: dict[int, AccountState] = {}
        self.pos_state: dict[tuple[int, bytes], PositionState] = {}
        # the operator's kill of every account (semantics.md "Kill switch"):
        # accounts a later generation adds start with their switch engaged
        self.kill_all = False
        self.limits = Limits(0, {}, {}, {}, {}, {}, {})

        # (session_id, cl_ord_id) -> order, insertion order = creation order
        self.orders: dict[tuple[int, int], Order] = {}
        self.refs: dict[tuple[int, int], Order] = {}  # (venue, UserRefNum)
        self.terminal_fifo: deque[Order] = deque()
        self.created = 0
        self.child_slots = 0  # slots held by children of split orders
        self.plan: list[tuple[int, int]] = []  # the router's split: (venue id, qty)

        self.drop: dict[str, int] = defaultdict(int)
        self.event: dict[str, int] = defaultdict(int)
        self.reject_business: dict[int, int] = defaultdict(int)
        self.reject_system: dict[int, int] = defaultdict(int)
        self.sp_in: dict[int, int] = defaultdict(int)
        self.sp_out: dict[int, int] = defaultdict(int)
        self.venue_in: dict[int, int] = defaultdict(int)
        self.venue_out: dict[int, int] = defaultdict(int)

        self.tx: list[bytes] = []
        self.now = 0
        self.started = False  # venue timers start at the first call
        self.reload(cfg)

    # --- public API ------------------------------------------------------

    def reload(self, cfg: Config) -> int:
        """Make the reloadable part of `cfg` (instruments, accounts, position
        limits, routes, session throttles) the next configuration generation,
        between bursts, as Core.reload does (semantics.md "Configuration
        generations"); its number.  Refused (ValueError, nothing changes)
        when more accounts, symbols or (account, symbol) pairs would have been
        configured since start than the tables hold, or when a session
        throttle names an unknown session."""
        instruments = {pad(i.symbol, 8): i for i in cfg.instruments}
        accounts = {a.id: AccountLimits(
            a.id, a.max_order_qty, a.max_order_notional, a.max_open_orders,
            a.credit_limit, frozenset(ORDER_TYPES[t] for t in a.order_types),
            frozenset(TIFS[t] for t in a.tifs), a.kill) for a in cfg.accounts}
        positions = {(a.id, pad(sym, 8)): limit
                     for a in cfg.accounts for sym, limit in a.max_position}
        for acct, sym in positions:
            if sym not in instruments:
                raise ValueError(f"account {acct} max_position {sym.decode().strip()}: "
                                 "unknown symbol")
        routes: dict = {(None, None): (cfg.routing.default_venue, ())}
        for r in cfg.routes:
            routes[(r.account, None if r.symbol is None else pad(r.symbol, 8))] = \
                (r.venue, r.exclude)
        for venue, exclude in routes.values():
            if (venue and venue not in self.venues) or any(x not in self.venues
                                                            for x in exclude):
                raise ValueError(f"route to venue {venue}: not configured")
        pairs = set(positions) | {k for k in routes if None not in k}
        symbols = self.seen_symbols | set(instruments)
        accts = self.seen_accounts | set(accounts)
        if len(symbols) > self.tables.max_instruments:
            raise ValueError("more symbols configured since start than tables.max_instruments")
        if len(accts) > self.tables.max_accounts:
            raise ValueError("more accounts configured since start than tables.max_accounts")
        if len(self.seen_positions | pairs) > self.tables.max_positions:
            raise ValueError("more (account, symbol) pairs configured since start than "
                             "tables.max_positions")
        rates = {}
        for sc in cfg.sessions:
            if sc.id not in self.sessions:
                raise ValueError(f"session {sc.id} is not configured")
            t = sc.throttle
            rates[sc.id] = (t.per_second, t.burst * TOKEN) if t else (0, TOKEN)
        for a in sorted(accts - self.seen_accounts):
            self.acct_state[a] = AccountState(kill=self.kill_all)
        for key in pairs - self.seen_positions:
            self.pos_state[key] = PositionState()
        for sym in instruments:
            self.symbol_slot.setdefault(sym, len(self.symbol_slot))
        self.seen_symbols, self.seen_accounts = symbols, accts
        self.seen_positions |= pairs
        if self.limits.number:
            self.event["CONFIG_SWAPS"] += 1  # the first is no swap
        session_accounts = {}
        for sc in cfg.sessions:
            if len(sc.accounts) > 16 or any(a not in accounts for a in sc.accounts):
                raise ValueError(f"session {sc.id}: accounts unknown or more than 16")
            session_accounts[sc.id] = frozenset(sc.accounts)
        fm = cfg.routing.fill_model
        if fm is not None and any(QUOTE_AGE in (t["a"], t["b"]) for t in fm["tables"]):
            raise ValueError("the reference model does not track quote ages: a fill model "
                             "with a quote-age table is not mirrored")
        slots = {} if fm is None else {v.id: fm["venues"].index(v.name)
                                       for v in cfg.venues[:FILL_MAX_VENUES]
                                       if v.name in fm["venues"]}
        self.limits = Limits(self.limits.number + 1, accounts, instruments, positions,
                             routes, rates, session_accounts,
                             cfg.routing.latency_cost_per_us, fm, slots,
                             cfg.routing.miss_penalty, cfg.routing.split_max_children)
        return self.limits.number

    def generation(self) -> int:
        return self.limits.number

    def _route(self, account: int, symbol: bytes) -> tuple[int, tuple[int, ...]]:
        """The rule for an order naming no venue: the most specific one
        (venue 0: the smart router; the venues it excludes)."""
        r = self.limits.routes
        for key in ((account, symbol), (None, symbol), (account, None), (None, None)):
            if key in r:
                return r[key]
        raise AssertionError("the default route is always there")

    # --- market data, venue health, smart order routing ---------------------

    def set_feed(self, venue_id: int, feed) -> None:
        """Venue `venue_id`'s market data: a book_model.FeedModel whose
        tops of book are published at the instruments' indices (None
        detaches), as oms_core_set_feed."""
        self.venues[venue_id].feed = feed

    def _tob(self, venue: VenueState, symbol: bytes):
        if venue.feed is None or symbol not in self.symbol_slot:
            return None
        return venue.feed.tobs.get(self.symbol_slot[symbol])

    def _feed_halted(self, venue: VenueState, symbol: bytes) -> bool:
        t = self._tob(venue, symbol)
        return bool(t and t.halted)

    def _ref_price(self, venue: VenueState, symbol: bytes, ins) -> int:
        """Semantics.md "Reference prices": the venue's mid (or last trade)
        while its book is sound, rounded down to the tick; else the
        configuration's."""
        t = self._tob(venue, symbol)
        if t is None or t.stale:
            return ins.reference_price
        if t.bid_qty and t.ask_qty:
            d = t.ask_px - t.bid_px
            x = t.bid_px + (abs(d) // 2) * (1 if d >= 0 else -1)  # C's truncation
        elif t.last_qty:
            x = t.last_px
        else:
            return ins.reference_price
        if x <= 0:
            return ins.reference_price
        return x - x % ins.tick_size

    def _order_sent(self, venue: VenueState, o: Order) -> None:
        venue.unanswered += 1
        if venue.max_unanswered and venue.unanswered == venue.max_unanswered:
            self.event["VENUE_UNRESPONSIVE"] += 1

    def _order_answered(self, venue: VenueState, o: Order) -> None:
        rtt = self.now - o.state_ts[ST_PENDING_NEW]
        o.answered = True
        venue.unanswered -= 1
        venue.rtt_ewma_ns = (venue.rtt_ewma_ns * 7 + rtt) >> 3 if venue.rtt_samples else rtt
        venue.rtt_last_ns = rtt
        venue.rtt_samples += 1
        b = 0 if rtt < 2 else rtt.bit_length() - 1
        venue.rtt_hist[min(b, RTT_BUCKETS - 1)] += 1

    def venue_latency(self, venue_id: int) -> dict:
        v = self.venues[venue_id]
        return with_percentiles({
            "rtt_ewma_ns": v.rtt_ewma_ns, "rtt_last_ns": v.rtt_last_ns,
            "rtt_samples": v.rtt_samples, "unanswered": v.unanswered, "down": int(not v.up),
            "unresponsive": int(v.unresponsive()), "rtt_hist": list(v.rtt_hist),
            "fill_ratio_pm": v.fill_ratio_pm})

    def _sor(self, sess: SessionState, cl_ord_id: int, account: int, symbol: bytes,
             side: int, ord_type: int, price: int, qty: int, tif: int,
             exclude: tuple[int, ...]) -> int:
        """Semantics.md "Smart order routing": the venue id chosen (0:
        none), the decision logged."""
        ins = self.limits.instruments[symbol]
        buy = side == SIDE_BUY
        seen: list[dict] = []
        ranked = []  # (key, configuration order, venue id, displayed)
        for i, v in enumerate(self.venues.values()):
            sn = {"venue": v.id, "px": 0, "qty": 0, "cost": 0, "rtt_ewma_ns": v.rtt_ewma_ns,
                  "why": 0, "p_fill": -1, "alloc": 0}
            t = None
            if v.id in exclude:
                sn["why"] = RW_EXCLUDED
            elif ins.venues and v.id not in ins.venues:
                sn["why"] = RW_NOT_ALLOWED
            elif not v.up:
                sn["why"] = RW_DOWN
            elif v.unresponsive():
                sn["why"] = RW_UNRESPONSIVE
            elif (t := self._tob(v, symbol)) is None:
                sn["why"] = RW_NO_FEED
            if t is not None:
                sn["px"], sn["qty"] = (t.ask_px, t.ask_qty) if buy else (t.bid_px, t.bid_qty)
                if t.stale:
                    sn["why"] = RW_STALE
                elif t.halted:
                    sn["why"] = RW_HALTED
                elif sn["qty"] == 0:
                    sn["why"] = RW_NO_QUOTE
                elif ord_type == ORD_LIMIT and (sn["px"] > price if buy else sn["px"] < price):
                    sn["why"] = RW_THROUGH_LIMIT
            if not sn["why"]:
                sn["cost"] = v.rtt_ewma_ns * self.limits.sor_cost_per_us // 1000
                eff = sn["px"] + sn["cost"] if buy else -(sn["px"] - sn["cost"])
                key = (eff, -sn["qty"], v.rtt_ewma_ns)  # smaller is better
                sn["why"] = RW_WORSE
                ranked.append((key, i, v.id, sn["qty"]))
            if len(seen) < ROUTE_SEEN:
                seen.append(sn)
        ranked.sort()
        ranked = ranked[:max(self.limits.split_max, 1)]
        self.plan = []
        if ranked and ranked[0][1] < ROUTE_SEEN:
            seen[ranked[0][1]]["why"] = RW_CHOSEN
        chosen = ranked[0][2] if ranked else 0
        model_id, by_model = 0, 0
        if self.limits.fill_model is not None:
            model_id = int(self.limits.fill_model["model_id"], 16)
            pick = self._fill_choose(seen, symbol, buy, ord_type, price, qty, tif) \
                if chosen and len(seen) == len(self.venues) else None
            if pick is not None:
                from control.fill_artefact import P_Q
                chosen, by_model = pick[0], 1
                # ranked by expected value (ties: configuration order), each
                # showing what it is expected to fill: displayed x p
                ranked = sorted(((-ev, i, seen[i]["venue"],
                                  seen[i]["qty"] * seen[i]["p_fill"] >> P_Q)
                                 for i, ev in pick[1].items()))[:max(self.limits.split_max, 1)]
        self.plan = self._split_plan(ranked, qty, ins.lot_size) \
            if self.limits.split_max > 1 and ranked else []
        by_index = {r[2]: r[1] for r in ranked}
        for j, (vid, a) in enumerate(self.plan):
            if by_index[vid] < ROUTE_SEEN:
                seen[by_index[vid]]["why"] = RW_SPLIT if j else RW_CHOSEN
                seen[by_index[vid]]["alloc"] = a
        if ranked and not self.plan and ranked[0][1] < ROUTE_SEEN:
            seen[ranked[0][1]]["alloc"] = qty
        if chosen:
            self.event["ORDERS_ROUTED"] += 1
        self.route_log.append({
            "seq": len(self.route_log) + 1, "now_ns": self.now, "cl_ord_id": cl_ord_id,
            "price": price, "session_id": sess.id, "account": account, "qty": qty,
            "venue": chosen, "side": side, "symbol": symbol.decode("ascii").rstrip(),
            "model_id": model_id, "by_model": by_model, "children": len(self.plan),
            "seen": seen})
        return chosen

    def _fill_choose(self, seen: list[dict], symbol: bytes, buy: bool, ord_type: int,
                     price: int, qty: int, tif: int) -> tuple[int, dict[int, int]] | None:
        """Semantics of cdefs/fill_model.c fill_route_choose: the candidates
        scored by expected value; (the venue id chosen, {index in seen:
        expected value}), or None: the rules' choice stands."""
        from control.fill_artefact import P_Q, predict_q
        from control.fill_dataset import DAY_NS, raw_features
        fm, lim = self.limits.fill_model, self.limits
        if ord_type != ORD_LIMIT:
            return None
        ins = lim.instruments[symbol]
        ps = []
        for sn in seen:
            if sn["why"] not in (RW_CHOSEN, RW_WORSE):
                ps.append(None)
                continue
            v = self.venues[sn["venue"]]
            t = self._tob(v, symbol)
            if sn["venue"] not in lim.fill_slots or t is None:
                return None
            f = raw_features(lim.fill_slots[sn["venue"]], buy, price, qty, t.bid_px, t.bid_qty,
                             t.ask_px, t.ask_qty, ins.tick_size, v.rtt_ewma_ns, v.fill_ratio_pm, 0,
                             tif == TIF_IOC, self.now % DAY_NS)
            p = -1 if f is None else int(predict_q(fm, [f])[0])
            if p < 0:
                return None
            ps.append(p)
        best, best_ev, evs = None, 0, {}
        for i, (sn, p) in enumerate(zip(seen, ps, strict=True)):
            if p is None:
                continue
            sn["p_fill"] = p
            imp = price - sn["px"] if buy else sn["px"] - price
            ev = ((p * imp - ((1 << P_Q) - p) * lim.miss_penalty) >> P_Q) - sn["cost"]
            evs[i] = ev
            if best is None or ev > best_ev:
                best, best_ev = sn, ev
        for sn, p in zip(seen, ps, strict=True):
            if p is not None:
                sn["why"] = RW_CHOSEN if sn is best else RW_WORSE
        return best["venue"], evs

    @staticmethod
    def _split_plan(ranked: list, qty: int, lot: int) -> list[tuple[int, int]]:
        """Semantics.md "Splitting across venues": [(venue id, qty)], best
        first; [] when the order is not split."""
        plan: list[list[int]] = []
        left = qty
        for j, (_key, _i, vid, shown) in enumerate(ranked):
            if not left:
                break
            a = min(shown // lot * lot, left)
            if a == 0 and j > 0:
                continue
            plan.append([vid, a])
            left -= a
        plan[0][1] += left
        return [tuple(p) for p in plan] if len(plan) > 1 else []

    def route_decisions(self, from_seq: int = 1) -> list[dict]:
        return self.route_log[max(from_seq, 1) - 1:]

    def process_burst(self, frames: list[bytes], now_ns: int) -> list[bytes]:
        """Run the timers due at `now_ns` (also when `frames` is empty), then
        handle the frames in order; return the frames the core would
        transmit, in order (at most tables.tx_frames; beyond that TX_FULL is
        counted and nothing is built, but state still changes)."""
        self.tx = []
        self.now = now_ns
        if not self.started:
            self.started = True
            for venue in self.venues.values():
                venue.last_rx = venue.last_tx = now_ns
        self._run_timers()
        for frame in frames:
            self.event["FRAMES_IN"] += 1
            self._frame(bytes(frame))
        return self.tx

    def next_deadline(self) -> int:
        """When the next timer is due (semantics.md "Time"); NO_DEADLINE
        (2**64 - 1) when nothing is pending."""
        deadlines = []
        for sess in self.sessions.values():
            if sess.logged_in:
                deadlines.append(sess.last_rx + sess.timeout_ns)
                deadlines.append(sess.last_tx + sess.heartbeat_ns)
                if sess.gap is not None:
                    deadlines.append(sess.gap.time + self.retransmit_ns)
        if self.started:  # venue timers run from the first call on
            for venue in self.venues.values():
                if venue.up:
                    deadlines.append(venue.last_rx + venue.timeout_ns)
                deadlines.append(venue.last_tx + venue.heartbeat_ns)
                if venue.gap is not None:
                    deadlines.append(venue.gap.time + self.retransmit_ns)
        return min(deadlines + [NO_DEADLINE])

    # --- timers ------------------------------------------------------------

    def _run_timers(self) -> None:
        """Every timer due at now: sessions in configuration order, then
        venues in configuration order."""
        now = self.now
        for sess in self.sessions.values():
            if not sess.logged_in:
                continue
            if now - sess.last_rx >= sess.timeout_ns:
                # disconnected; with cancel-on-disconnect its orders go too
                sess.logged_in = False
                sess.gap = None
                self.event["SESSION_TIMEOUTS"] += 1
                if sess.cancel_on_disconnect:
                    self.event["CANCEL_ON_DISCONNECT"] += self._cancel_orders(sess, None)
                continue
            if sess.gap is not None and \
                    now - sess.gap.time >= self.retransmit_ns:
                self._send_retransmit_request(sess, sess.gap.count)
                sess.gap.time = now
                self.event["SP_SEQ_GAPS"] += 1
            if now - sess.last_tx >= sess.heartbeat_ns:
                self._send_sp_session(sess, SP_HEARTBEAT, b"")
                self.event["HEARTBEATS_OUT"] += 1
        for venue in self.venues.values():
            if venue.up and now - venue.last_rx >= venue.timeout_ns:
                venue.up = False
                self.event["VENUE_TIMEOUTS"] += 1
            if venue.gap is not None and \
                    now - venue.gap.time >= self.retransmit_ns:
                self._send_venue_request(venue, venue.gap.count)
                venue.gap.time = now
                self.event["VENUE_SEQ_GAPS"] += 1
            if now - venue.last_tx >= venue.heartbeat_ns:
                self._send_venue_heartbeat(venue)
                self.event["VENUE_HEARTBEATS_OUT"] += 1
                if not venue.up:
                    # a hello: after a break, how the session is picked up
                    self._send_venue_request(venue, 0)

    def stats(self) -> dict:
        def nz(d):
            return {k: v for k, v in d.items() if v}
        return {
            "drop": {n: self.drop[n] for n in DROP_NAMES if self.drop.get(n)},
            "event": {n: self.event[n] for n in EVENT_NAMES
                      if self.event.get(n)},
            "reject_business": nz(self.reject_business),
            "reject_system": nz(self.reject_system),
            "sp_in": nz(self.sp_in),
            "sp_out": nz(self.sp_out),
            "venue_in": nz(self.venue_in),
            "venue_out": nz(self.venue_out),
        }

    def order(self, session_id: int, cl_ord_id: int) -> dict | None:
        o = self.orders.get((session_id, cl_ord_id))
        return o.view() if o is not None else None

    def set_journal_full(self, full: bool) -> None:
        """The journal's health (semantics.md "Full journal"), between bursts."""
        self.journal_full = bool(full)

    def set_kill(self, account: int, on: bool) -> None:
        if account not in self.limits.accounts:
            raise ValueError(f"account {account} is not configured")
        self.acct_state[account].kill = bool(on)

    def kill(self, account: int, on: bool, now_ns: int) -> tuple[int, list[bytes]]:
        """The operator's kill switch (semantics.md "Kill switch"), between
        bursts: account 0 sets every account's switch, else the account's own.
        Engaging it cancels every cancellable order it covers, sessions in
        configuration order, each session's in creation order.  (orders
        canceled, or -1 for an unknown account; the frames sent)."""
        self.tx = []
        if account == 0:
            self.kill_all = bool(on)
            for a in self.acct_state.values():
                a.kill = bool(on)
        elif account not in self.limits.accounts:
            return -1, []
        else:
            self.acct_state[account].kill = bool(on)
        if not on:
            return 0, []
        self.now = now_ns
        n = 0
        for sess in self.sessions.values():
            n += self._cancel_orders(sess, account or None)
        self.event["KILL_CANCELS"] += n
        return n, self.tx

    def account(self, account: int) -> dict | None:
        if account not in self.limits.accounts:
            return None
        a = self.acct_state[account]
        return {"open_orders": a.open_orders, "open_notional": a.open_notional}

    def position(self, account: int, symbol: str) -> dict | None:
        key = (account, pad(symbol, 8))
        if account not in self.limits.accounts or pad(symbol, 8) not in \
                self.limits.instruments or key not in self.limits.positions:
            return None
        p = self.pos_state[key]
        return {"max_position": self.limits.positions[key], "position": p.position,
                "open_buy": p.open_buy, "open_sell": p.open_sell}

    def check_accounting(self) -> None:
        """The incremental accounting equals the sums over the live orders,
        recomputed from scratch (tests call this)."""
        orders_by_acct: dict[int, int] = defaultdict(int)
        notional: dict[int, int] = defaultdict(int)
        open_side: dict[tuple, int] = defaultdict(int)
        for o in self.orders.values():
            if o.state in TERMINAL:
                continue
            q, n = self._reservation(o)
            orders_by_acct[o.account] += 1
            notional[o.account] += n
            open_side[(o.account, o.symbol, o.side == SIDE_BUY)] += q
        for aid, a in self.acct_state.items():
            assert (a.open_orders, a.open_notional) == \
                (orders_by_acct[aid], notional[aid]), (aid, a)
        for (acct, sym), p in self.pos_state.items():
            assert (p.open_buy, p.open_sell) == \
                (open_side[(acct, sym, True)], open_side[(acct, sym, False)]), (acct, sym, p)

    def live_orders(self) -> int:
        return sum(1 + sum(1 for ch in o.children if ch.state not in TERMINAL)
                   for o in self.orders.values() if o.state not in TERMINAL) + sum(
            1 for o in self.orders.values() if o.state in TERMINAL
            for ch in o.children if ch.state not in TERMINAL)

    def order_children(self, session_id: int, cl_ord_id: int) -> list[dict]:
        o = self.orders.get((session_id, cl_ord_id))
        return [ch.view() for ch in o.children if not ch.evicted] if o else []

    # --- frames ----------------------------------------------------------

    def _frame(self, frame: bytes) -> None:
        reason, view = parse_udp(frame, self.ip)
        if reason is not None:
            self.drop[reason] += 1
            return
        if view.dst_port == self.strategy_port:
            self._strategy_datagram(view)
        elif view.dst_port == self.venue_port:
            self._venue_packet(view)
        elif view.dst_port == self.venue_request_port:
            self._venue_request(view)
        else:
            self.drop["UNKNOWN_PORT"] += 1

    def _tx_limit(self) -> int:
        """tx_frames per call, and room for one Cancel per order while a
        mass cancel, kill or cancel-on-disconnect walks the orders."""
        return self.tx_capacity + (self.order_capacity if self.bulk else 0)

    def _emit(self, dst_mac: bytes, dst_ip: int, src_port: int, dst_port: int,
              payload: bytes) -> bool:
        if len(self.tx) >= self._tx_limit():
            self.drop["TX_FULL"] += 1
            return False
        self.tx.append(build_udp_frame(self.mac, dst_mac, self.ip, dst_ip,
                                       src_port, dst_port, payload))
        self.event["FRAMES_OUT"] += 1
        return True

    # --- strategy side: output -------------------------------------------

    def _emit_sp(self, sess: SessionState, payload: bytes) -> bool:
        """One datagram to the session; every frame built for it sets its
        last_tx."""
        if not self._emit(sess.mac, sess.ip, self.strategy_port, sess.port,
                          payload):
            return False
        sess.last_tx = self.now
        return True

    def _send_sp(self, sess: SessionState, msg_type: int, seq: int,
                 body: bytes) -> bytes | None:
        """Build and send one message; return its bytes, None if the
        transmit area is full."""
        length = SP_HLEN + len(body)
        payload = SP_HEADER.pack(SP_VERSION, msg_type, length, sess.id, seq,
                                 self.now) + body
        if not self._emit_sp(sess, payload):
            return None
        self.event["SP_MSGS_OUT"] += 1
        self.sp_out[msg_type] += 1
        return payload

    def _send_sp_session(self, sess: SessionState, msg_type: int,
                         body: bytes) -> None:
        """A session-level message: seq = the next outbound number, not
        consumed."""
        self._send_sp(sess, msg_type, sess.next_out, body)

    def _send_sp_app(self, sess: SessionState, msg_type: int,
                     body: bytes) -> None:
        # a message that cannot be built takes no sequence number
        if len(self.tx) >= self._tx_limit():
            self.drop["TX_FULL"] += 1
            return
        seq = sess.next_out
        sess.next_out += 1
        payload = self._send_sp(sess, msg_type, seq, body)
        assert payload is not None  # room was checked above
        sess.replay.add(seq, payload)

    def _send_retransmit_request(self, sess: SessionState, count: int) -> None:
        self._send_sp_session(sess, SP_RETRANSMIT_REQUEST,
                              SP_RETRANSMIT_REQUEST_BODY.pack(sess.next_in, count, 0))

    def _reject(self, sess: SessionState, cl_ord_id: int, ref_type: int,
                reason: int, venue_code: int = 0) -> None:
        if reason >= REJ_SYS_BASE:
            self.reject_system[reason - REJ_SYS_BASE] += 1
        else:
            self.reject_business[reason] += 1
        self._send_sp_app(sess, SP_REJECTED, struct.pack(
            "<QHBBI", cl_ord_id, reason, ref_type, venue_code, 0))

    def _session_reject(self, sess: SessionState, ref_seq: int,
                        reason: int, ref_type: int) -> None:
        self._send_sp_app(sess, SP_SESSION_REJECT, struct.pack(
            "<QBB6x", ref_seq, reason, ref_type))

    def _send_accepted(self, o: Order) -> None:
        self._send_sp_app(self.sessions[o.session_id], SP_ACCEPTED,
                          struct.pack("<QqIHH", o.cl_ord_id, o.price, o.qty,
                                      o.venue, 0))

    def _send_replaced(self, o: Order) -> None:
        self._send_sp_app(self.sessions[o.session_id], SP_REPLACED,
                          struct.pack("<QqII", o.cl_ord_id, o.price, o.qty,
                                      o.leaves_qty))

    def _send_canceled(self, o: Order, canceled: int, reason: int) -> None:
        self._send_sp_app(self.sessions[o.session_id], SP_CANCELED,
                          struct.pack("<QIIB7x", o.cl_ord_id, canceled,
                                      o.leaves_qty, reason))

    def _send_fill(self, o: Order, qty: int, price: int, match: int) -> None:
        self._send_sp_app(self.sessions[o.session_id], SP_FILL,
                          struct.pack("<QqIIIIQ", o.cl_ord_id, price, qty,
                                      o.cum_qty, o.leaves_qty, 0, match))

    # --- strategy side: the session layer ----------------------------------

    def _rule_r(self, sess: SessionState, from_seq: int, count: int) -> None:
        """Serve a retransmission of outbound messages from_seq ..
        from_seq + count - 1 from the replay buffer."""
        if count == 0:
            return
        if from_seq < sess.replay.oldest(sess.next_out):
            reason = RTX_TOO_OLD
        elif from_seq >= sess.next_out:
            reason = RTX_NOT_SENT
        else:
            end = min(from_seq + count, sess.next_out, from_seq + MAX_RESEND)
            for seq in range(from_seq, end):
                # byte for byte as first sent: same seq, same timestamp_ns
                # like SP_MSGS_OUT, counts resends actually built
                if self._emit_sp(sess, sess.replay.get(seq)):
                    self.event["SP_RETRANSMITTED"] += 1
            return
        self._send_sp_session(sess, SP_RETRANSMIT_REJECT,
                              SP_RETRANSMIT_REJECT_BODY.pack(
                                  from_seq, count & U32, reason))

    def _rule_g(self, sess: SessionState, count: int) -> None:
        """Ask the strategy to resend from the next expected (go-back-N),
        unless a request is already on its way."""
        if sess.gap is not None and \
                self.now - sess.gap.time < self.retransmit_ns:
            return
        # the request's count is a u32 (C's conversion), and at most a window
        count = min(count & U32, REQUEST_WINDOW)
        self._send_retransmit_request(sess, count)
        sess.gap = GapRequest(self.now, count)
        self.event["SP_SEQ_GAPS"] += 1
        self.event["SP_SEQ_GAP_MSGS"] += count

    # --- strategy side: input --------------------------------------------

    def _strategy_datagram(self, view: UdpView) -> None:
        data = view.payload
        off = 0
        while off < len(data):
            left = len(data) - off
            if left < SP_HLEN:
                self.drop["SP_TRUNCATED"] += 1
                return
            version, msg_type, length, session_id, seq, _ts = \
                SP_HEADER.unpack_from(data, off)
            if length < SP_HLEN or length > left:
                self.drop["SP_BAD_LENGTH"] += 1
                return
            msg = data[off:off + length]
            off += length
            if version != SP_VERSION:
                self.drop["SP_BAD_VERSION"] += 1
                continue
            sess = self.sessions.get(session_id)
            if sess is None:
                self.drop["SP_UNKNOWN_SESSION"] += 1
                continue
            if view.src_ip != sess.ip or view.src_port != sess.port:
                self.drop["SP_WRONG_SOURCE"] += 1
                continue
            self.sp_in[msg_type] += 1
            sess.last_rx = self.now
            if msg_type in SESSION_MSG_LEN:
                self._session_level(sess, msg_type, seq, msg)
            else:
                self._application(sess, msg_type, seq, msg)

    def _session_level(self, sess: SessionState, msg_type: int, seq: int,
                       msg: bytes) -> None:
        if len(msg) != SESSION_MSG_LEN[msg_type]:
            self.drop["SP_BAD_MSG_LENGTH"] += 1
        elif msg_type == SP_LOGIN:
            self._login(sess, msg)
        elif not sess.logged_in:
            self.drop["SP_NOT_LOGGED_IN"] += 1
        elif msg_type == SP_LOGOUT:
            sess.logged_in = False
            self.event["LOGOUTS"] += 1
            sess.gap = None
            self._send_sp_session(sess, SP_LOGOUT, b"")
        elif msg_type == SP_HEARTBEAT:
            self.event["HEARTBEATS_IN"] += 1
            # its seq is the strategy's next application number
            if seq > sess.next_in:
                self._rule_g(sess, seq - sess.next_in)
        else:
            from_seq, count, _reserved = \
                SP_RETRANSMIT_REQUEST_BODY.unpack_from(msg, SP_HLEN)
            self.event["SP_RETRANSMIT_REQUESTS"] += 1
            self._rule_r(sess, from_seq, count)

    def _login(self, sess: SessionState, msg: bytes) -> None:
        (next_expected,) = SP_LOGIN_BODY.unpack_from(msg, SP_HLEN)
        if not sess.enabled:
            self._send_sp_session(sess, SP_LOGIN_REJECTED,
                                  struct.pack("<B7x", LREJ_DISABLED))
        elif next_expected > sess.next_out:
            self._send_sp_session(sess, SP_LOGIN_REJECTED,
                                  struct.pack("<B7x", LREJ_BAD_SEQ))
        else:
            sess.logged_in = True
            self.event["LOGINS"] += 1
            self._send_sp_session(sess, SP_LOGIN_ACCEPTED,
                                  SP_LOGIN_BODY.pack(sess.next_in))
            if next_expected < sess.next_out:
                self._rule_r(sess, next_expected,
                             sess.next_out - next_expected)

    def _application(self, sess: SessionState, msg_type: int, seq: int,
                     msg: bytes) -> None:
        if not sess.logged_in:
            self.drop["SP_NOT_LOGGED_IN"] += 1
            return
        if seq < sess.next_in:
            self.drop["SP_DUPLICATE_SEQ"] += 1
            return
        if seq > sess.next_in:
            # not handled: the strategy resends it with the missing ones
            self.drop["SP_OUT_OF_ORDER"] += 1
            self._rule_g(sess, seq - sess.next_in + 1)
            return
        sess.next_in = seq + 1
        sess.gap = None
        self.event["SP_MSGS_IN"] += 1
        if msg_type not in APP_MSG_LEN:
            self.drop["SP_UNKNOWN_TYPE"] += 1
            self._session_reject(sess, seq, SREJ_UNKNOWN_TYPE, msg_type)
            return
        if len(msg) != APP_MSG_LEN[msg_type]:
            self.drop["SP_BAD_MSG_LENGTH"] += 1
            self._session_reject(sess, seq, SREJ_BAD_LENGTH, msg_type)
            return
        if msg_type == SP_NEW_ORDER:
            self._new_order(sess, msg)
        elif msg_type == SP_MODIFY:
            self._modify(sess, msg)
        elif msg_type == SP_CANCEL:
            self._cancel(sess, msg)
        else:
            self._mass_cancel(sess, msg)

    # --- order bookkeeping -----------------------------------------------

    def _set_state(self, o: Order, state: int) -> None:
        o.state = state
        o.state_ts[state] = self.now
        if state in TERMINAL:
            self.terminal_fifo.append(o)

    def _unmap(self, venue: int, ref: int, o: Order) -> None:
        if ref and self.refs.get((venue, ref)) is o:
            del self.refs[(venue, ref)]

    def _take_slot(self) -> bool:
        """Make room for one more order; False when every slot is live."""
        if len(self.orders) + self.child_slots < self.order_capacity:
            return True  # a never-used slot
        if not self.terminal_fifo:
            return False
        old = self.terminal_fifo.popleft()
        old.evicted = True
        if old.parent is not None:
            self.child_slots -= 1
        else:
            del self.orders[(old.session_id, old.cl_ord_id)]
        self._unmap(old.venue, old.ref, old)
        self._unmap(old.venue, old.pending_ref, old)
        self.event["ORDERS_EVICTED"] += 1
        return True

    def _free_slots(self) -> int:
        return self.order_capacity - len(self.orders) - self.child_slots + len(
            self.terminal_fifo)

    def _next_ref(self, venue: VenueState) -> int:
        ref = venue.next_ref
        venue.next_ref += 1
        return ref

    # --- pre-trade risk (semantics.md "Pre-trade risk") ---------------------

    @staticmethod
    def _in_band(ins, ref: int, price: int) -> bool:
        if not ref:
            return True
        d = abs(price - ref)
        if ins.price_band_abs and d > ins.price_band_abs:
            return False
        # |d| / ref > pct / 100, pct with 8 decimals
        return not (ins.price_band_pct and d * 100 * 10**8 > ref * ins.price_band_pct)

    @classmethod
    def _risk_price_qty(cls, acct: AccountLimits, ins, ref: int, qty: int, price: int) -> int:
        if qty > acct.max_order_qty:
            return REJ_QTY_LIMIT
        if qty % ins.lot_size:
            return REJ_LOT_SIZE
        if price % ins.tick_size:
            return REJ_TICK_SIZE
        if not cls._in_band(ins, ref, price):
            return REJ_PRICE_BAND
        if price * qty > acct.max_order_notional:
            return REJ_NOTIONAL_LIMIT
        return 0

    def _risk_new(self, sess: SessionState, account: int, symbol: bytes, venue_id: int,
                  side: int, ord_type: int, tif: int, price: int, qty: int
                  ) -> tuple[int, int]:
        """(reject reason or 0, the price the order's exposure is valued at)."""
        lim = self.limits
        if not sess.throttle.take(*lim.rates[sess.id], self.now):
            return REJ_THROTTLED, 0
        acct = lim.accounts.get(account)
        if acct is None:
            return REJ_UNKNOWN_ACCOUNT, 0
        permitted = lim.session_accounts.get(sess.id)
        if permitted and account not in permitted:
            return REJ_ACCOUNT_NOT_PERMITTED, 0
        ins = lim.instruments[symbol]
        state = self.acct_state[account]
        if acct.kill or state.kill:
            return REJ_KILL_SWITCH, 0
        venue = self.venues[venue_id]
        if ins.halted or self._feed_halted(venue, symbol):
            return REJ_SYMBOL_HALTED, 0
        if ins.restricted:
            return REJ_SYMBOL_RESTRICTED, 0
        if ins.venues and venue_id not in ins.venues:
            return REJ_VENUE_NOT_ALLOWED, 0
        if ord_type not in acct.ord_types:
            return REJ_ORD_TYPE_NOT_ALLOWED, 0
        if tif not in acct.tifs:
            return REJ_TIF_NOT_ALLOWED, 0
        max_position = lim.positions.get((account, symbol))
        if max_position is None:
            return REJ_NO_POSITION_LIMIT, 0
        px = price
        ref = self._ref_price(venue, symbol, ins)
        if ord_type == ORD_MARKET:
            if not ref:
                return REJ_PRICE_BAND, 0  # cannot be judged
            px = ref
        reason = self._risk_price_qty(acct, ins, ref, qty, px)
        if reason:
            return reason, 0
        if state.open_orders >= acct.max_open_orders:
            return REJ_OPEN_ORDERS_LIMIT, 0
        if state.open_notional + px * qty > acct.credit_limit:
            return REJ_CREDIT_LIMIT, 0
        if self.pos_state[(account, symbol)].beyond(max_position, side, qty):
            return REJ_POSITION_LIMIT, 0
        return 0, px

    def _risk_modify(self, sess: SessionState, o: Order, new_price: int,
                     new_qty: int) -> int:
        lim = self.limits
        if not sess.throttle.take(*lim.rates[sess.id], self.now):
            return REJ_THROTTLED
        # a reload may have removed what the order was entered under
        acct = lim.accounts.get(o.account)
        if acct is None:
            return REJ_UNKNOWN_ACCOUNT
        state = self.acct_state[o.account]
        if acct.kill or state.kill:
            return REJ_KILL_SWITCH
        ins = lim.instruments.get(o.symbol)
        if ins is None:
            return REJ_UNKNOWN_SYMBOL
        venue = self.venues[o.venue]
        if ins.halted or self._feed_halted(venue, o.symbol):
            return REJ_SYMBOL_HALTED
        if ins.restricted:
            return REJ_SYMBOL_RESTRICTED
        max_position = lim.positions.get((o.account, o.symbol))
        if max_position is None:
            return REJ_NO_POSITION_LIMIT
        reason = self._risk_price_qty(acct, ins, self._ref_price(venue, o.symbol, ins),
                                      new_qty, new_price)
        if reason:
            return reason
        # the reservation it would hold once PendingReplace, as a delta
        new_leaves = new_qty - o.cum_qty
        dn = max(0, new_price * new_leaves - o.res_notional)
        dq = max(0, new_leaves - o.res_qty)
        if state.open_notional + dn > acct.credit_limit:
            return REJ_CREDIT_LIMIT
        if self.pos_state[(o.account, o.symbol)].beyond(max_position, o.side, dq):
            return REJ_POSITION_LIMIT
        return 0

    @staticmethod
    def _reservation(o: Order) -> tuple[int, int]:
        """(qty, notional) a live order holds: its leaves at its price;
        while a replace is pending, the larger of that and the new leaves
        at the new price, each."""
        if o.state in TERMINAL:
            return 0, 0
        px = o.risk_px if o.ord_type == ORD_MARKET else o.price
        q, n = o.leaves_qty, px * o.leaves_qty
        if o.state == ST_PENDING_REPLACE:
            nq = max(o.pending_qty - o.cum_qty, 0)
            q, n = max(q, nq), max(n, o.pending_price * nq)
        return q, n

    def _risk_update(self, o: Order) -> None:
        """The order changed: bring its account and position in line."""
        live = int(o.state not in TERMINAL)
        q, n = self._reservation(o)
        acct = self.acct_state[o.account]
        pos = self.pos_state[(o.account, o.symbol)]
        acct.open_orders += live - o.res_live
        acct.open_notional += n - o.res_notional
        if o.side == SIDE_BUY:
            pos.open_buy += q - o.res_qty
        else:
            pos.open_sell += q - o.res_qty
        o.res_live, o.res_qty, o.res_notional = live, q, n

    # --- strategy application messages -------------------------------------

    def _new_order(self, sess: SessionState, msg: bytes) -> None:
        (cl_ord_id, account, side, ord_type, tif, flags, symbol, price, qty,
         venue_id, _reserved) = SP_NEW_ORDER_BODY.unpack_from(msg, SP_HLEN)
        limit = ord_type == ORD_LIMIT
        market = ord_type == ORD_MARKET
        self.plan = []
        if (sess.id, cl_ord_id) in self.orders:
            reason = REJ_DUPLICATE_ID
        elif side not in (SIDE_BUY, SIDE_SELL, SIDE_SELL_SHORT):
            reason = REJ_BAD_SIDE
        elif not (limit or market):
            reason = REJ_BAD_ORD_TYPE
        elif tif not in (TIF_DAY, TIF_IOC) or (market and tif == TIF_DAY):
            reason = REJ_BAD_TIF
        elif qty == 0 or qty > OUCH_MAX_QTY:
            reason = REJ_BAD_QTY
        elif symbol not in self.limits.instruments:
            reason = REJ_UNKNOWN_SYMBOL
        elif (limit and price <= 0) or (market and price != 0):
            reason = REJ_BAD_PRICE
        elif venue_id != 0 and venue_id not in self.venues:
            reason = REJ_UNKNOWN_VENUE
        elif not venue_id and not (venue_id := self._resolve_venue(
                sess, cl_ord_id, account, symbol, side, ord_type, price, qty, tif)):
            reason = REJ_NO_ROUTE
        elif limit and not price_representable(price):
            reason = REJ_PRICE_UNREPRESENTABLE
        elif side == SIDE_SELL_SHORT and not flags & FLAG_LOCATE:
            reason = REJ_LOCATE_REQUIRED
        elif (risk := self._risk_new(sess, account, symbol, venue_id,
                                     side, ord_type, tif, price, qty))[0]:
            reason = risk[0]
        elif self.journal_full:
            reason = REJ_SYS_JOURNAL
        elif self._free_slots() <= len(self.plan):
            reason = REJ_SYS_TABLE_FULL
        else:
            reason = 0
        if reason:
            self._reject(sess, cl_ord_id, SP_NEW_ORDER, reason)
            return

        self._take_slot()
        venue = self.venues[venue_id]
        self.created += 1
        o = Order(cl_ord_id=cl_ord_id, session_id=sess.id, account=account,
                  price=price, qty=qty, leaves_qty=qty,
                  ref=0 if self.plan else self._next_ref(venue), venue=venue.id, side=side,
                  ord_type=ord_type, tif=tif, flags=flags, symbol=symbol,
                  created=self.created, risk_px=risk[1])
        self._set_state(o, ST_PENDING_NEW)
        self._risk_update(o)
        self.orders[(sess.id, cl_ord_id)] = o
        self.event["ORDERS_ACCEPTED_INTERNAL"] += 1
        if not self.plan:
            self.refs[(venue.id, o.ref)] = o
            self._order_sent(venue, o)
            self._send_enter(venue, o)
            return
        # split: the parent goes to no venue, its children do
        for vid, q in self.plan:
            self._take_slot()
            self.child_slots += 1
            v = self.venues[vid]
            ch = dataclasses.replace(o, qty=q, leaves_qty=q, ref=self._next_ref(v), venue=vid,
                                     state_ts=[0] * ST_MAX, children=[], parent=o,
                                     res_live=0, res_qty=0, res_notional=0)
            o.children.append(ch)
            self.refs[(vid, ch.ref)] = ch
            self._set_state(ch, ST_PENDING_NEW)
            self._order_sent(v, ch)
            self._send_enter(v, ch)

    def _send_enter(self, venue: VenueState, o: Order) -> None:
        ouch_price = OUCH_MARKET_PRICE if o.ord_type == ORD_MARKET \
            else o.price // PRICE_SCALE_DIFF
        self._send_venue(venue, struct.pack(
            ">cIcI8sQccccc14s", b"O", o.ref, b"BST"[o.side - 1:o.side], o.qty,
            o.symbol, ouch_price, self._ouch_tif(o), b"Y",
            self.capacity_letter, b"N", b"N", clordid(o.cl_ord_id))
            + self._appendage(o))

    def _resolve_venue(self, sess: SessionState, cl_ord_id: int, account: int,
                       symbol: bytes, side: int, ord_type: int, price: int, qty: int,
                       tif: int) -> int:
        """Order check 8 for venue 0: the routing rule's venue, or the smart
        router's choice (0: none)."""
        venue, exclude = self._route(account, symbol)
        if venue:
            return venue
        return self._sor(sess, cl_ord_id, account, symbol, side, ord_type, price, qty, tif,
                         exclude)

    @staticmethod
    def _ouch_tif(o: Order) -> bytes:
        return b"0" if o.tif == TIF_DAY else b"3"

    @staticmethod
    def _appendage(o: Order) -> bytes:
        """Appendage Length and the options; SharesLocated on every Enter
        and Replace of a short sale (OUCH Appendix A)."""
        if o.side == SIDE_SELL_SHORT and o.flags & FLAG_LOCATE:
            return struct.pack(">H", len(SHARES_LOCATED_APPENDAGE)) + \
                SHARES_LOCATED_APPENDAGE
        return struct.pack(">H", 0)

    def _modify(self, sess: SessionState, msg: bytes) -> None:
        cl_ord_id, new_price, new_qty, _reserved = \
            SP_MODIFY_BODY.unpack_from(msg, SP_HLEN)
        o = self.orders.get((sess.id, cl_ord_id))
        if o is None:
            reason = REJ_UNKNOWN_ORDER
        elif o.state in TERMINAL:
            reason = REJ_TOO_LATE
        elif o.state in PENDING:
            reason = REJ_ORDER_PENDING
        elif o.children:
            reason = REJ_SPLIT_ORDER
        elif o.ord_type == ORD_MARKET:
            reason = REJ_BAD_ORD_TYPE
        elif new_qty == 0 or new_qty > OUCH_MAX_QTY or new_qty <= o.cum_qty:
            reason = REJ_BAD_QTY
        elif new_price <= 0:
            reason = REJ_BAD_PRICE
        elif not price_representable(new_price):
            reason = REJ_PRICE_UNREPRESENTABLE
        else:
            reason = self._risk_modify(sess, o, new_price, new_qty)
        if reason:
            self._reject(sess, cl_ord_id, SP_MODIFY, reason)
            return

        venue = self.venues[o.venue]
        o.prev_state = o.state
        self._set_state(o, ST_PENDING_REPLACE)
        o.pending_price = new_price
        o.pending_qty = new_qty
        o.pending_ref = self._next_ref(venue)
        self.refs[(venue.id, o.pending_ref)] = o
        self._risk_update(o)
        self._send_venue(venue, struct.pack(
            ">cIIIQccc14s", b"U", o.ref, o.pending_ref, new_qty,
            new_price // PRICE_SCALE_DIFF, self._ouch_tif(o), b"Y", b"N",
            clordid(o.cl_ord_id)) + self._appendage(o))

    def _cancel(self, sess: SessionState, msg: bytes) -> None:
        (cl_ord_id,) = SP_CANCEL_BODY.unpack_from(msg, SP_HLEN)
        o = self.orders.get((sess.id, cl_ord_id))
        if o is None:
            reason = REJ_UNKNOWN_ORDER
        elif o.state in TERMINAL:
            reason = REJ_TOO_LATE
        elif o.state in (ST_PENDING_CANCEL, ST_PENDING_REPLACE):
            reason = REJ_ORDER_PENDING
        else:
            reason = 0
        if reason:
            self._reject(sess, cl_ord_id, SP_CANCEL, reason)
            return
        self._start_cancel(o)

    def _start_cancel(self, o: Order) -> None:
        o.prev_state = o.state
        self._set_state(o, ST_PENDING_CANCEL)
        targets = [ch for ch in o.children
                   if ch.state not in TERMINAL and ch.state != ST_PENDING_CANCEL] \
            if o.children else [o]
        for x in targets:
            if x is not o:
                x.prev_state = x.state
                self._set_state(x, ST_PENDING_CANCEL)
            self._send_venue(self.venues[x.venue], struct.pack(">cII", b"X", x.ref, 0))

    def _mass_cancel(self, sess: SessionState, msg: bytes) -> None:
        account, _reserved = SP_MASS_CANCEL_BODY.unpack_from(msg, SP_HLEN)
        self._cancel_orders(sess, account)

    def _cancel_orders(self, sess: SessionState, account: int | None) -> int:
        """MassCancel's walk: every cancellable order of the session with
        this account (None: every account), in creation order; how many."""
        n = 0
        self.bulk = True
        # list() first: _start_cancel never adds or removes orders, but the
        # walk must not depend on that
        for o in list(self.orders.values()):
            if o.session_id == sess.id and (account is None or o.account == account) and \
                    o.state in MASS_CANCELABLE:
                self._start_cancel(o)
                n += 1
        self.bulk = False
        return n

    # --- venue side: output ----------------------------------------------

    def _emit_venue(self, venue: VenueState, src_port: int, dst_port: int,
                    payload: bytes) -> bool:
        """One packet to the venue; every frame built for it (messages,
        resends, heartbeats, requests) sets its last_tx."""
        if not self._emit(venue.mac, venue.ip, src_port, dst_port, payload):
            return False
        venue.last_tx = self.now
        return True

    def _send_venue(self, venue: VenueState, msg: bytes) -> None:
        """One OUCH message in its own packet, kept for resending."""
        if len(self.tx) >= self._tx_limit():
            self.drop["TX_FULL"] += 1
            return
        seq = venue.next_out_seq
        venue.next_out_seq += 1
        payload = venue.session + struct.pack(">QHH", seq, 1, len(msg)) + msg
        self._emit_venue(venue, self.venue_port, venue.port, payload)
        venue.replay.add(seq, payload)
        self.event["VENUE_MSGS_OUT"] += 1
        self.venue_out[msg[0]] += 1

    def _send_venue_heartbeat(self, venue: VenueState) -> None:
        """Count 0, sequence number = our next (not consumed)."""
        self._emit_venue(venue, self.venue_port, venue.port,
                         venue.session + struct.pack(
                             ">QH", venue.next_out_seq, 0))

    def _send_venue_request(self, venue: VenueState, count: int) -> None:
        """A request packet (MoldUDP64 re-request): sequence number = next
        expected, no blocks; count 0 is a hello."""
        self._emit_venue(venue, self.venue_request_port, venue.request_port,
                         venue.session + struct.pack(">QH", venue.next_in_seq, count))

    def _rule_vg(self, venue: VenueState, count: int) -> None:
        """Go-back-N towards the venue, unless a request is on its way."""
        if venue.gap is not None and \
                self.now - venue.gap.time < self.retransmit_ns:
            return
        # "count = min(count, window)": what is sent, recorded and counted
        count = min(count, REQUEST_WINDOW)
        self._send_venue_request(venue, count)
        venue.gap = GapRequest(self.now, count)
        self.event["VENUE_SEQ_GAPS"] += 1
        self.event["VENUE_SEQ_GAP_MSGS"] += count

    # --- venue side: input -------------------------------------------------

    def _venue_header(self, view: UdpView) -> tuple[VenueState, int, int] | None:
        """Checks 1-3 of a venue packet, then last_rx (check 4); returns
        (venue, sequence number, count) or None when dropped."""
        venue = self.venue_by_ip.get(view.src_ip)
        if venue is None:
            self.drop["UFO_UNKNOWN_VENUE"] += 1
            return None
        data = view.payload
        if len(data) < UFO_HLEN:
            self.drop["UFO_TRUNCATED"] += 1
            return None
        if data[:UFO_SESSION_LEN] != venue.session:
            self.drop["UFO_WRONG_SESSION"] += 1
            return None
        first, count = struct.unpack_from(">QH", data, UFO_SESSION_LEN)
        return venue, first, count

    def _venue_heard(self, venue: VenueState) -> None:
        venue.last_rx = self.now
        if not venue.up:
            venue.up = True
            self.event["VENUE_RECONNECTS"] += 1

    def _venue_request(self, view: UdpView) -> None:
        """A retransmission request from a venue (to venue_request_port)."""
        header = self._venue_header(view)
        if header is None:
            return
        venue, from_seq, count = header
        self.event["VENUE_RETRANSMIT_REQUESTS"] += 1
        self._venue_heard(venue)
        if count == 0:  # a hello: where are we?
            self._send_venue_heartbeat(venue)
        elif from_seq < venue.replay.oldest(venue.next_out_seq):
            # nothing sent: the venue must recover out of band
            self.event["VENUE_RETRANSMIT_TOO_OLD"] += 1
        elif from_seq >= venue.next_out_seq:
            self._send_venue_heartbeat(venue)
        else:
            end = min(from_seq + count, venue.next_out_seq,
                      from_seq + MAX_RESEND)
            for seq in range(from_seq, end):
                # exactly as first sent: same framing seq, same UserRefNum
                if self._emit_venue(venue, self.venue_port, venue.port,
                                    venue.replay.get(seq)):
                    self.event["VENUE_RETRANSMITTED"] += 1

    def _venue_packet(self, view: UdpView) -> None:
        header = self._venue_header(view)
        if header is None:
            return
        venue, first, count = header
        data = view.payload
        self._venue_heard(venue)
        if count == 0:
            self.event["VENUE_HEARTBEATS"] += 1
            # its sequence number is the venue's next
            if first > venue.next_in_seq:
                self._rule_vg(venue, first - venue.next_in_seq)
            return
        if count == UFO_COUNT_END_OF_SESSION:
            self.event["VENUE_END_OF_SESSION"] += 1
            return
        if first > venue.next_in_seq:
            # not handled: the missing messages and this packet's are asked for
            self.drop["UFO_OUT_OF_ORDER"] += 1
            self._rule_vg(venue, first + count - venue.next_in_seq)
            return
        off = UFO_HLEN
        for i in range(count):
            if off + 2 > len(data):
                self.drop["UFO_BAD_BLOCK"] += 1
                return
            (length,) = struct.unpack_from(">H", data, off)
            if length == 0 or off + 2 + length > len(data):
                self.drop["UFO_BAD_BLOCK"] += 1
                return
            msg = data[off + 2:off + 2 + length]
            off += 2 + length
            seq = first + i
            if seq < venue.next_in_seq:
                self.drop["UFO_DUPLICATE_SEQ"] += 1
                continue
            venue.next_in_seq = seq + 1
            venue.gap = None
            self.event["VENUE_MSGS_IN"] += 1
            self.venue_in[msg[0]] += 1
            self._ouch(venue, msg)

    @staticmethod
    def _ouch_length_ok(msg: bytes) -> bool:
        min_len, applen_off, required = OUCH_IN_LAYOUT[msg[0]]
        n = len(msg)
        if n < min_len:
            return False
        if required:
            (applen,) = struct.unpack_from(">H", msg, applen_off)
            return n == min_len + applen
        if n == min_len:
            return True
        if n < min_len + 2:
            return False
        (applen,) = struct.unpack_from(">H", msg, applen_off)
        return n == min_len + 2 + applen

    def _ouch(self, venue: VenueState, msg: bytes) -> None:
        t = msg[0]
        if t in OUCH_IGNORED_TYPES:
            self.event["VENUE_IGNORED_TYPES"] += 1
            return
        if t not in OUCH_IN_LAYOUT:
            self.drop["OUCH_UNKNOWN_TYPE"] += 1
            return
        if not self._ouch_length_ok(msg):
            self.drop["OUCH_BAD_LENGTH"] += 1
            return
        ref_off = 13 if t == ord("U") else 9
        (ref,) = struct.unpack_from(">I", msg, ref_off)
        o = self.refs.get((venue.id, ref))
        if o is None:
            self.drop["OUCH_UNKNOWN_REF"] += 1
            return
        if not o.answered:
            self._order_answered(venue, o)
        # the order's outcome for the venue's recent fill ratio: its first
        # execution 1000, its end without one (cancel, IOC expiry, a reject
        # of its entry) 0; r = (15 r + outcome) / 16
        if not o.fill_counted and (t in (ord("E"), ord("C")) or (t == ord("J") and not o.acked)):
            o.fill_counted = True
            venue.fill_ratio_pm = (venue.fill_ratio_pm * 15 + (1000 if t == ord("E") else 0)) >> 4
        if o.parent is not None:
            self._child_ouch(o, t, msg)
        elif t == ord("A"):
            self._ouch_accepted(o, msg)
        elif t == ord("U"):
            self._ouch_replaced(o, ref)
        elif t == ord("E"):
            self._ouch_executed(o, msg)
        elif t == ord("C"):
            self._ouch_canceled(o, msg)
        elif t == ord("J"):
            self._ouch_rejected(o, ref, msg)
        else:
            self._ouch_cancel_reject(o)

    def _ouch_accepted(self, o: Order, msg: bytes) -> None:
        if o.acked or o.state not in (ST_PENDING_NEW, ST_PENDING_CANCEL):
            self.drop["OUCH_UNEXPECTED"] += 1
            return
        self._accept(o)
        if msg[47] == ord("D"):
            self._venue_cancel(o, o.leaves_qty, CXL_VENUE)

    def _accept(self, o: Order) -> None:
        o.acked = 1
        if o.state == ST_PENDING_NEW:
            self._set_state(o, ST_NEW)
        else:
            o.prev_state = ST_NEW
        self._send_accepted(o)

    def _ouch_replaced(self, o: Order, new_ref: int) -> None:
        if o.state != ST_PENDING_REPLACE or new_ref != o.pending_ref:
            self.drop["OUCH_UNEXPECTED"] += 1
            return
        o.price = o.pending_price
        o.qty = o.pending_qty
        # fills that arrived after the Modify may already cover the new
        # quantity: then nothing is left and the order is done
        o.leaves_qty = max(o.qty - o.cum_qty, 0)
        self._unmap(o.venue, o.ref, o)
        o.ref = o.pending_ref
        o.pending_ref = 0
        self._set_state(o, ST_REPLACED)
        self._send_replaced(o)
        if o.leaves_qty == 0:
            self._set_state(o, ST_FILLED)
        self._risk_update(o)

    def _ouch_executed(self, o: Order, msg: bytes) -> None:
        if o.state in TERMINAL:
            self.drop["OUCH_UNEXPECTED"] += 1
            return
        qty, price, _liq, match = struct.unpack_from(">IQcQ", msg, 13)
        if qty == 0 or qty > o.leaves_qty:
            self.drop["OUCH_OVERFILL"] += 1
            return
        self._execute(o, qty, price, match)

    def _execute(self, o: Order, qty: int, price: int, match: int) -> None:
        o.cum_qty += qty
        o.leaves_qty -= qty
        self.pos_state[(o.account, o.symbol)].position += qty if o.side == SIDE_BUY else -qty
        # int64 = u64 * 10^4 with C's wrap-around
        last_price = (price * PRICE_SCALE_DIFF) & U64
        if last_price >= 1 << 63:
            last_price -= 1 << 64
        if o.leaves_qty == 0:
            self._set_state(o, ST_FILLED)
        elif o.state in (ST_NEW, ST_REPLACED, ST_PARTIALLY_FILLED):
            self._set_state(o, ST_PARTIALLY_FILLED)
        elif o.prev_state in (ST_NEW, ST_REPLACED):
            o.prev_state = ST_PARTIALLY_FILLED
        self._risk_update(o)
        self._send_fill(o, qty, last_price, match)

    def _ouch_canceled(self, o: Order, msg: bytes) -> None:
        if o.state in TERMINAL:
            self.drop["OUCH_UNEXPECTED"] += 1
            return
        dec, why = struct.unpack_from(">Ic", msg, 13)
        reason = {b"I": CXL_IOC, b"U": CXL_USER}.get(why, CXL_VENUE)
        self._venue_cancel(o, dec, reason)

    def _venue_cancel(self, o: Order, dec: int, reason: int) -> None:
        dec = min(dec, o.leaves_qty)
        o.leaves_qty -= dec
        if o.leaves_qty == 0:
            self._set_state(o, ST_EXPIRED if reason == CXL_IOC
                            else ST_CANCELED)
        self._risk_update(o)
        self._send_canceled(o, dec, reason)

    def _ouch_rejected(self, o: Order, ref: int, msg: bytes) -> None:
        (code,) = struct.unpack_from(">H", msg, 13)
        sess = self.sessions[o.session_id]
        if ref == o.pending_ref and o.state == ST_PENDING_REPLACE:
            self._set_state(o, o.prev_state)
            self._unmap(o.venue, o.pending_ref, o)
            o.pending_ref = 0
            self._risk_update(o)
            self._reject(sess, o.cl_ord_id, SP_MODIFY, REJ_VENUE_REJECTED,
                         code & 0xFF)
        elif o.state == ST_PENDING_NEW or (
                o.state == ST_PENDING_CANCEL and not o.acked):
            self._set_state(o, ST_REJECTED)
            self._risk_update(o)
            self._reject(sess, o.cl_ord_id, SP_NEW_ORDER, REJ_VENUE_REJECTED,
                         code & 0xFF)
        else:
            self.drop["OUCH_UNEXPECTED"] += 1

    def _ouch_cancel_reject(self, o: Order) -> None:
        if o.state != ST_PENDING_CANCEL:
            self.drop["OUCH_UNEXPECTED"] += 1
            return
        self._set_state(o, o.prev_state)
        self._reject(self.sessions[o.session_id], o.cl_ord_id, SP_CANCEL,
                     REJ_VENUE_REJECTED, 0)

    # --- split orders: a child's venue message moves the parent -------------

    def _child_ouch(self, ch: Order, t: int, msg: bytes) -> None:
        """Semantics.md "Splitting across venues": the child moves silently,
        the parent as if the same event had happened to it."""
        p = ch.parent
        if t == ord("A"):
            if ch.acked or ch.state not in (ST_PENDING_NEW, ST_PENDING_CANCEL):
                self.drop["OUCH_UNEXPECTED"] += 1
                return
            ch.acked = 1
            if ch.state == ST_PENDING_NEW:
                self._set_state(ch, ST_NEW)
            else:
                ch.prev_state = ST_NEW
            if not p.acked:
                self._accept(p)
            if msg[47] == ord("D"):
                self._child_cancel(ch, ch.leaves_qty, CXL_VENUE)
        elif t == ord("E"):
            if ch.state in TERMINAL:
                self.drop["OUCH_UNEXPECTED"] += 1
                return
            qty, price, _liq, match = struct.unpack_from(">IQcQ", msg, 13)
            if qty == 0 or qty > ch.leaves_qty:
                self.drop["OUCH_OVERFILL"] += 1
                return
            ch.cum_qty += qty
            ch.leaves_qty -= qty
            if ch.leaves_qty == 0:
                self._set_state(ch, ST_FILLED)
            elif ch.state in (ST_NEW, ST_PARTIALLY_FILLED):
                self._set_state(ch, ST_PARTIALLY_FILLED)
            elif ch.prev_state == ST_NEW:
                ch.prev_state = ST_PARTIALLY_FILLED
            self._execute(p, qty, price, match)
        elif t == ord("C"):
            if ch.state in TERMINAL:
                self.drop["OUCH_UNEXPECTED"] += 1
                return
            dec, why = struct.unpack_from(">Ic", msg, 13)
            self._child_cancel(ch, dec, {b"I": CXL_IOC, b"U": CXL_USER}.get(why, CXL_VENUE))
        elif t == ord("J"):
            if not (ch.state == ST_PENDING_NEW or (
                    ch.state == ST_PENDING_CANCEL and not ch.acked)):
                self.drop["OUCH_UNEXPECTED"] += 1
                return
            (code,) = struct.unpack_from(">H", msg, 13)
            leaves = ch.leaves_qty
            self._set_state(ch, ST_REJECTED)
            others = [x for x in p.children
                      if x is not ch and not x.evicted and x.state not in TERMINAL]
            if not p.acked and p.cum_qty == 0 and not others:
                self._set_state(p, ST_REJECTED)
                self._risk_update(p)
                self._reject(self.sessions[p.session_id], p.cl_ord_id, SP_NEW_ORDER,
                             REJ_VENUE_REJECTED, code & 0xFF)
            else:
                self._venue_cancel(p, leaves, CXL_VENUE)
        elif t == ord("I"):
            if ch.state != ST_PENDING_CANCEL:
                self.drop["OUCH_UNEXPECTED"] += 1
                return
            self._set_state(ch, ch.prev_state)
            if p.state == ST_PENDING_CANCEL:
                self._set_state(p, p.prev_state)
                self._reject(self.sessions[p.session_id], p.cl_ord_id, SP_CANCEL,
                             REJ_VENUE_REJECTED, 0)
        else:  # a child is never replaced
            self.drop["OUCH_UNEXPECTED"] += 1

    def _child_cancel(self, ch: Order, dec: int, reason: int) -> None:
        dec = min(dec, ch.leaves_qty)
        ch.leaves_qty -= dec
        if ch.leaves_qty == 0:
            self._set_state(ch, ST_EXPIRED if reason == CXL_IOC else ST_CANCELED)
        self._venue_cancel(ch.parent, dec, reason)
