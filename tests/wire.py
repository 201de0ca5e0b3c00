"""Frames for tests, built with struct straight from the protocol tables
(docs/protocol.md, OUCH 5.0 §3), independently of the C encoder, the
reference model and the scapy layers."""
from __future__ import annotations

import struct

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

APPLIANCE = Appliance(mac="02:00:00:00:00:01", ip="10.10.0.1", strategy_port=9000,
                      venue_port=9100)
SESSIONS = (
    Session(id=1, ip="10.10.1.1", port=9001, mac="02:00:00:00:01:01"),
    Session(id=2, ip="10.10.1.2", port=9001, mac="02:00:00:00:01:02"),
    Session(id=3, ip="10.10.1.3", port=9001, mac="02:00:00:00:01:03", enabled=False),
)
VENUES = (
    Venue(id=1, name="NASDAQ", session="NSDQ01", ip="10.10.2.1", port=9200,
          mac="02:00:00:00:02:01"),
    Venue(id=2, name="BX", session="BX01", ip="10.10.2.2", port=9200, mac="02:00:00:00:02:02"),
)
SYMBOLS = ("AAPL", "MSFT", "SPY")
REFERENCE_PRICE = 150_2500_0000  # 150.25, every symbol's
MAX_AMOUNT = 90_000_000_000 * 10**8  # the loader's largest amount


def generous_account(account_id: int) -> Account:
    """Limits no test that is not about them comes near."""
    return Account(id=account_id, max_order_qty=999_999, max_order_notional=MAX_AMOUNT,
                   max_open_orders=1_000_000, credit_limit=MAX_AMOUNT,
                   max_position=tuple((s, 10**12) for s in SYMBOLS))


ACCOUNTS = tuple(generous_account(a) for a in range(0, 11))
INSTRUMENTS = tuple(Instrument(s, reference_price=REFERENCE_PRICE) for s in SYMBOLS)


def config(orders: int = 1024, tx_frames: int = 8192, *, instruments=INSTRUMENTS,
           accounts=ACCOUNTS, sessions=SESSIONS) -> Config:
    return Config(appliance=APPLIANCE, routing=Routing(default_venue=1),
                  tables=Tables(orders=orders, tx_frames=tx_frames),
                  sessions=sessions, venues=VENUES,
                  instruments=instruments, accounts=accounts)


def mac(m: str) -> bytes:
    return bytes(int(x, 16) for x in m.split(":"))


def ip4(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def ones_complement(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, sport: int, dport: int,
              payload: bytes, *, vlan: int | None = None, bad_ip_csum: bool = False,
              bad_udp_csum: bool = False, udp_csum: bool = True) -> bytes:
    udp_len = 8 + len(payload)
    ip_hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0,
                         ip4(src_ip), ip4(dst_ip))
    c = ones_complement(ip_hdr) ^ (0x5555 if bad_ip_csum else 0)
    ip_hdr = ip_hdr[:10] + struct.pack("!H", c) + ip_hdr[12:]
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    if udp_csum:
        pseudo = ip4(src_ip) + ip4(dst_ip) + struct.pack("!BBH", 0, 17, udp_len)
        uc = ones_complement(pseudo + udp) or 0xFFFF
        if bad_udp_csum:
            uc ^= 0x0101
        udp = udp[:6] + struct.pack("!H", uc) + udp[8:]
    eth = mac(dst_mac) + mac(src_mac)
    if vlan is not None:
        eth += struct.pack("!HH", 0x8100, vlan)
    return eth + b"\x08\x00" + ip_hdr + udp


def arp_request(src_mac: str, src_ip: str, target_ip: str) -> bytes:
    """Who has target_ip, broadcast, padded to Ethernet's 60 bytes."""
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac(src_mac), ip4(src_ip),
                      b"\0" * 6, ip4(target_ip))
    return (b"\xff" * 6 + mac(src_mac) + b"\x08\x06" + arp).ljust(60, b"\0")


# --- strategy protocol (little-endian, docs/protocol.md) ---

def sp(type_: int, session: int, seq: int, body: bytes = b"", ts: int = 0,
       version: int = 1, length: int | None = None) -> bytes:
    n = 24 + len(body) if length is None else length
    return struct.pack("<BBHIQQ", version, type_, n, session, seq, ts) + body


def login(session: int, next_expected: int = 1) -> bytes:
    return sp(0x01, session, 0, struct.pack("<Q", next_expected))


def logout(session: int) -> bytes:
    return sp(0x02, session, 0)


def heartbeat(session: int) -> bytes:
    return sp(0x03, session, 0)


def new_order(session: int, seq: int, cl_ord_id: int, *, symbol: str = "AAPL",
              price: int = 150_2500_0000, qty: int = 100, side: int = 1, ord_type: int = 1,
              tif: int = 1, flags: int = 0, venue: int = 0, account: int = 1) -> bytes:
    body = struct.pack("<QIBBBB8sqIHH", cl_ord_id, account, side, ord_type, tif, flags,
                       symbol.encode().ljust(8), price, qty, venue, 0)
    return sp(0x10, session, seq, body)


def modify(session: int, seq: int, cl_ord_id: int, new_price: int, new_qty: int) -> bytes:
    return sp(0x11, session, seq, struct.pack("<QqII", cl_ord_id, new_price, new_qty, 0))


def cancel(session: int, seq: int, cl_ord_id: int) -> bytes:
    return sp(0x12, session, seq, struct.pack("<Q", cl_ord_id))


def mass_cancel(session: int, seq: int, account: int) -> bytes:
    return sp(0x13, session, seq, struct.pack("<II", account, 0))


def from_strategy(session_id: int, *msgs: bytes, **kw) -> bytes:
    s = next(s for s in SESSIONS if s.id == session_id)
    return udp_frame(s.mac, APPLIANCE.mac, s.ip, APPLIANCE.ip, s.port,
                     APPLIANCE.strategy_port, b"".join(msgs), **kw)


SP_OUT = {0x81: ("LoginAccepted", "<Q", ("next_expected_seq",)),
          0x82: ("LoginRejected", "<B7x", ("reason",)),
          0x90: ("Accepted", "<QqIHH", ("cl_ord_id", "price", "qty", "venue", "_")),
          0x91: ("Rejected", "<QHBBI", ("cl_ord_id", "reason", "ref_type", "venue_code", "_")),
          0x92: ("Replaced", "<QqII", ("cl_ord_id", "price", "qty", "leaves_qty")),
          0x93: ("Canceled", "<QIIB7x", ("cl_ord_id", "canceled_qty", "leaves_qty", "reason")),
          0x94: ("Fill", "<QqIIIIQ", ("cl_ord_id", "last_price", "last_qty", "cum_qty",
                                      "leaves_qty", "_", "match_number")),
          0x9F: ("SessionReject", "<QBB6x", ("ref_seq", "reason", "ref_type"))}


def decode_sp_out(frame: bytes) -> dict:
    """One outbound strategy message (one per datagram) as a dict."""
    p = frame[42:]
    version, type_, length, session, seq, ts = struct.unpack_from("<BBHIQQ", p)
    name, fmt, names = SP_OUT[type_]
    vals = struct.unpack_from(fmt, p, 24)
    d = {"type": name, "session": session, "seq": seq, "ts": ts, "length": length}
    d.update({k: v for k, v in zip(names, vals, strict=False) if k != "_"})
    return d


# --- venue side: framing header + OUCH 5.0 outbound (big-endian) ---

def ufo(session: str, seq: int, *msgs: bytes, count: int | None = None) -> bytes:
    n = len(msgs) if count is None else count
    out = session.encode().ljust(10) + struct.pack("!QH", seq, n)
    for m in msgs:
        out += struct.pack("!H", len(m)) + m
    return out


def from_venue(venue_id: int, payload: bytes, **kw) -> bytes:
    v = next(v for v in VENUES if v.id == venue_id)
    return udp_frame(v.mac, APPLIANCE.mac, v.ip, APPLIANCE.ip, v.port, APPLIANCE.venue_port,
                     payload, **kw)


TS = 34_200_000_000_000  # 09:30 in ns since midnight


def ouch_accepted(ref: int, qty: int = 100, price: int = 150_2500, state: bytes = b"L",
                  symbol: str = "AAPL") -> bytes:
    # §3.2: Type, Timestamp, UserRefNum, Side, Quantity, Symbol, Price, TIF, Display,
    # Order Reference Number, Capacity, ISO, CrossType, Order State, ClOrdID, AppLen
    return (b"A" + struct.pack("!QIcI8sQcc", TS, ref, b"B", qty, symbol.encode().ljust(8),
                               price, b"0", b"Y")
            + struct.pack("!Q", 1000 + ref) + b"ANN" + state + b"X".ljust(14) + b"\0\0")


def ouch_replaced(orig_ref: int, ref: int, qty: int = 100, price: int = 150_2500) -> bytes:
    # §3.3
    return (b"U" + struct.pack("!QIIcI8sQcc", TS, orig_ref, ref, b"B", qty, b"AAPL    ",
                               price, b"0", b"Y")
            + struct.pack("!Q", 2000 + ref) + b"ANNL" + b"X".ljust(14) + b"\0\0")


def ouch_canceled(ref: int, dec: int, reason: bytes = b"U") -> bytes:
    return b"C" + struct.pack("!QII", TS, ref, dec) + reason  # §3.4


def ouch_executed(ref: int, qty: int, price: int = 150_2500, match: int = 1) -> bytes:
    return b"E" + struct.pack("!QIIQcQH", TS, ref, qty, price, b"R", match, 0)  # §3.6


def ouch_rejected(ref: int, reason: int = 0x13) -> bytes:
    return b"J" + struct.pack("!QIH", TS, ref, reason) + b"X".ljust(14)  # §3.8


def ouch_cancel_reject(ref: int) -> bytes:
    return b"I" + struct.pack("!QI", TS, ref)  # §3.10


def ouch_system_event(code: bytes = b"S") -> bytes:
    return b"S" + struct.pack("!Q", TS) + code  # §3.1
