"""The C feed handler (cdefs/feed.h) and IGMPv3 host (cdefs/igmp.h) as
Python sees them: the small API that tests, replay tools and the control
plane use.  The hot path never comes through here."""
from __future__ import annotations

import ipaddress
import struct

from dataplane.core import ffi, lib

FEED_DROP_NAMES = [ffi.string(lib.oms_feed_drop_name(i)).decode()
                   for i in range(lib.OMS_FEED_DROP_MAX)]
FEED_EVENT_NAMES = [ffi.string(lib.oms_feed_event_name(i)).decode()
                    for i in range(lib.OMS_FEED_EV_MAX)]
IGMP_COUNTER_NAMES = [ffi.string(lib.oms_igmp_counter_name(i)).decode()
                      for i in range(lib.OMS_IGMP_COUNTER_MAX)]
TOB_FIELDS = [name for name, _ in ffi.typeof("struct oms_tob_view").fields]


def ip4(ip: str | int) -> int:
    return ip if isinstance(ip, int) else int(ipaddress.IPv4Address(ip))


def _mac(m: str | bytes) -> bytes:
    return m if isinstance(m, bytes) else bytes(int(x, 16) for x in m.split(":"))


def _tx_frames(buf, lens, count: int, ffi_=ffi, lib_=lib) -> list[bytes]:
    return [bytes(ffi_.buffer(buf + i * lib_.OMS_TX_SLOT, lens[i])) for i in range(count)]


class Feed:
    """One venue's feed: MoldUDP64 session, books, tops of book."""

    def __init__(self, *, venue: int = 1, mac: str = "02:00:00:00:00:01",
                 ip: str = "10.0.0.1", port: int = 26500, group: str = "239.1.1.1",
                 group_port: int = 26400, source: str | None = None,
                 retrans: tuple[str, int, str] | None = None, stale_after_ns: int = 0,
                 retransmit_ns: int = 0, max_request: int = 0, max_symbols: int = 64,
                 max_orders: int = 4096, max_levels: int = 256, tx_capacity: int = 0,
                 ext=None):
        # `ext`: the cffi extension of the core that reads it (the plain
        # one, or the DPDK one: each has its own copy of the C)
        self.ffi, self.lib = (ext.ffi, ext.lib) if ext is not None else (ffi, lib)
        ffi_, lib_ = self.ffi, self.lib
        self.venue = venue
        cfg = ffi_.new("struct oms_feed_config *")
        cfg.venue = venue
        cfg.mac = _mac(mac)
        cfg.ip, cfg.port = ip4(ip), port
        cfg.group_ip, cfg.group_port = ip4(group), group_port
        cfg.source_ip = ip4(source) if source else 0
        if retrans:
            cfg.retrans_ip, cfg.retrans_port = ip4(retrans[0]), retrans[1]
            cfg.retrans_mac = _mac(retrans[2])
        cfg.stale_after_ns, cfg.retransmit_ns = stale_after_ns, retransmit_ns
        cfg.max_request, cfg.tx_capacity = max_request, tx_capacity
        cfg.max_symbols, cfg.max_orders, cfg.max_levels = max_symbols, max_orders, max_levels
        f = lib_.oms_feed_create(cfg)
        if f == ffi_.NULL:
            raise ValueError("feed: a size is 0 or memory is short")
        self.ptr = ffi_.gc(f, lib_.oms_feed_destroy)

    def subscribe(self, symbol: str, index: int) -> None:
        if self.lib.oms_feed_subscribe(self.ptr, symbol.encode("ascii").ljust(8, b" "), index):
            raise ValueError(f"cannot subscribe {symbol!r} at {index}")

    def process(self, frames: list[bytes], now_ns: int) -> list[bytes]:
        """Frames in; the re-request frames they caused out (and cleared)."""
        n = len(frames)
        bufs = [self.ffi.from_buffer(f) for f in frames]
        ptrs = self.ffi.new("uint8_t *[]", bufs) if n else self.ffi.NULL
        lens = self.ffi.new("uint16_t[]", [len(f) for f in frames]) if n else self.ffi.NULL
        self.lib.oms_feed_process(self.ptr, ptrs, lens, n, now_ns)
        return self.take_tx()

    def process_packet(self, payload: bytes, now_ns: int) -> list[bytes]:
        self.lib.oms_feed_process_packet(self.ptr, payload, len(payload), now_ns)
        return self.take_tx()

    def take_tx(self) -> list[bytes]:
        out = _tx_frames(self.lib.oms_feed_tx_buf(self.ptr), self.lib.oms_feed_tx_lens(self.ptr),
                         self.lib.oms_feed_tx_count(self.ptr), self.ffi, self.lib)
        self.lib.oms_feed_tx_clear(self.ptr)
        return out

    def tob(self, index: int) -> dict | None:
        t = self.lib.oms_feed_tob(self.ptr, index)
        if t == self.ffi.NULL:
            return None
        v = self.ffi.new("struct oms_tob_view *")
        self.lib.oms_tob_read(t, v)
        return {k: getattr(v, k) for k in TOB_FIELDS}

    def halted(self, index: int) -> bool:
        return bool(self.lib.oms_feed_halted(self.ptr, index))

    def drops(self) -> dict[str, int]:
        s = self.lib.oms_feed_stats(self.ptr)
        return {n: s.drop[i] for i, n in enumerate(FEED_DROP_NAMES) if s.drop[i]}

    def events(self) -> dict[str, int]:
        s = self.lib.oms_feed_stats(self.ptr)
        return {n: s.event[i] for i, n in enumerate(FEED_EVENT_NAMES) if s.event[i]}

    def stale(self) -> int:
        return self.lib.oms_feed_stale(self.ptr)

    def expected_seq(self) -> int:
        return self.lib.oms_feed_expected_seq(self.ptr)

    def live_orders(self) -> int:
        return self.lib.oms_feed_live_orders(self.ptr)

    def next_deadline(self) -> int:
        return self.lib.oms_feed_next_deadline(self.ptr)

    def levels(self, index: int, side: str) -> list[tuple[int, int, int]]:
        n = self.lib.oms_feed_levels(self.ptr, index, ord(side), self.ffi.NULL, 0)
        out = self.ffi.new("struct oms_level_view[]", max(n, 1))
        n = self.lib.oms_feed_levels(self.ptr, index, ord(side), out, n)
        return [(out[i].px, out[i].qty, out[i].orders) for i in range(n)]


def symbol_indices(cfg) -> dict[str, int]:
    """Where each subscribed symbol's top of book is published: its index in
    the configured instruments (the core's order), else in
    market_data.symbols."""
    md = cfg.market_data
    if cfg.instruments:
        order = {i.symbol: n for n, i in enumerate(cfg.instruments)}
        return {s: order[s] for s in md.symbols}
    return {s: n for n, s in enumerate(md.symbols)}


def feeds_from_config(cfg, ext=None) -> dict[int, Feed]:
    """One Feed per market_data subscription, by venue id, with every
    subscribed symbol's book (control/config.py MarketData)."""
    md, app = cfg.market_data, cfg.appliance
    index = symbol_indices(cfg)
    out = {}
    for sub in md.subscriptions:
        rt = sub.retransmission
        f = Feed(venue=sub.venue, mac=app.mac, ip=app.ip,
                 port=md.request_port or app.venue_port + 2, group=sub.group,
                 group_port=sub.port, source=sub.source_ip or None,
                 retrans=(rt.ip, rt.port, rt.mac) if rt else None,
                 stale_after_ns=(sub.stale_after_ms or md.stale_after_ms) * 1_000_000,
                 retransmit_ns=app.retransmit_ms * 1_000_000,
                 max_symbols=max(index.values(), default=0) + 1,
                 max_orders=md.max_orders, max_levels=md.max_levels, ext=ext)
        for sym, i in index.items():
            f.subscribe(sym, i)
        out[sub.venue] = f
    return out


def mold_request(frame: bytes) -> tuple[bytes, int, int]:
    """(session, sequence number, count) of a re-request frame the feed
    built (Ethernet/IPv4/UDP without options)."""
    p = frame[42:]
    seq, count = struct.unpack_from("!QH", p, 10)
    return p[:10], seq, count


class Igmp:
    """The IGMPv3 host of one port."""

    def __init__(self, *, mac: str = "02:00:00:00:00:01", ip: str = "10.0.0.1",
                 robustness: int = 0, unsolicited_ns: int = 0, seed: int = 1,
                 max_groups: int = 16, tx_capacity: int = 0, ext=None):
        # `ext`: as Feed's (the DPDK worker's host lives in the DPDK extension)
        self.ffi, self.lib = (ext.ffi, ext.lib) if ext is not None else (ffi, lib)
        ffi_, lib_ = self.ffi, self.lib
        cfg = ffi_.new("struct oms_igmp_config *")
        cfg.mac, cfg.ip = _mac(mac), ip4(ip)
        cfg.robustness, cfg.unsolicited_ns, cfg.seed = robustness, unsolicited_ns, seed
        cfg.max_groups, cfg.tx_capacity = max_groups, tx_capacity
        g = lib_.oms_igmp_create(cfg)
        if g == ffi_.NULL:
            raise ValueError("igmp: max_groups is 0 or memory is short")
        self.ptr = ffi_.gc(g, lib_.oms_igmp_destroy)

    def join(self, group: str, source: str | None, now_ns: int) -> int:
        return self.lib.oms_igmp_join(self.ptr, ip4(group), ip4(source) if source else 0,
                                      now_ns)

    def leave(self, group: str, source: str | None, now_ns: int) -> int:
        return self.lib.oms_igmp_leave(self.ptr, ip4(group), ip4(source) if source else 0,
                                       now_ns)

    def rx(self, frame: bytes, now_ns: int) -> None:
        self.lib.oms_igmp_rx(self.ptr, frame, len(frame), now_ns)

    def poll(self, now_ns: int) -> list[bytes]:
        self.lib.oms_igmp_poll(self.ptr, now_ns)
        return self.take_tx()

    def take_tx(self) -> list[bytes]:
        lib_ = self.lib
        out = _tx_frames(lib_.oms_igmp_tx_buf(self.ptr), lib_.oms_igmp_tx_lens(self.ptr),
                         lib_.oms_igmp_tx_count(self.ptr), self.ffi, lib_)
        lib_.oms_igmp_tx_clear(self.ptr)
        return out

    def next_deadline(self) -> int:
        return self.lib.oms_igmp_next_deadline(self.ptr)

    def counters(self) -> dict[str, int]:
        """Non-zero counters by name (the writer's: read them from its
        thread, or in place as 64-bit counters, like the feeds')."""
        c = self.lib.oms_igmp_counters(self.ptr)
        return {n: c[i] for i, n in enumerate(IGMP_COUNTER_NAMES) if c[i]}


def mcast_mac(group: str) -> bytes:
    out = ffi.new("uint8_t[6]")
    lib.oms_mcast_mac(ip4(group), out)
    return bytes(out)
