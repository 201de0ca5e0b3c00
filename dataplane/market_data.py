"""Market data beside the core, as a backend wires it (docs/semantics.md
"Market data in the core"): one feed per market_data subscription, the core
reading them, and every burst's frames split first - a subscribed group's
multicast and retransmissions to our market-data port go to their feed,
other multicast is dropped by the software filter (counted), the rest goes
to the core.

`CMarketData` is the C feed handler and dispatcher (cdefs/md_dispatch.c,
what the DPDK worker and the replay loop run); `ModelMarketData` is the
same over the reference book (dataplane/book_model.py) for the reference
model, so replay --verify compares the two."""
from __future__ import annotations

import struct

from dataplane.book_model import FeedModel
from dataplane.core import ffi, lib
from dataplane.feed import Feed, Igmp, feeds_from_config, ip4, mcast_mac, symbol_indices


def md_port(cfg) -> int:
    return cfg.market_data.request_port or cfg.appliance.venue_port + 2


class CMarketData:
    """The C feeds of `cfg`'s subscriptions and the dispatcher in front of
    them; attach() lets a core (dataplane.core.Core) read them."""

    def __init__(self, cfg, ext=None):
        # `ext`: the cffi extension whose core reads the feeds (dataplane.core's,
        # or the DPDK one whose worker runs the dispatcher)
        self.ffi, self.lib = (ext.ffi, ext.lib) if ext is not None else (ffi, lib)
        ffi_, lib_ = self.ffi, self.lib
        self.ext, self.cfg = ext, cfg
        self.feeds = feeds_from_config(cfg, ext)
        index = symbol_indices(cfg)
        # the feeds' symbol tables are sized at start (dataplane/md_reload.py)
        self.max_symbols = max(index.values(), default=0) + 1
        for f in self.feeds.values():
            f.symbols = set(index)
        self.subs = {sub.venue: sub for sub in cfg.market_data.subscriptions}
        # feeds whose subscription a reload removed: the cores may still read
        # them (stale), so they live as long as the appliance
        self.retired: dict = {}
        self.igmp = None
        d = lib_.oms_md_create(ip4(cfg.appliance.ip), md_port(cfg))
        if d == ffi_.NULL:
            raise MemoryError("oms_md_create")
        self.ptr = ffi_.gc(d, lib_.oms_md_destroy)
        for sub in cfg.market_data.subscriptions:
            rt = sub.retransmission
            if lib_.oms_md_add_feed(self.ptr, self.feeds[sub.venue].ptr, ip4(sub.group),
                                   sub.port, ip4(sub.source_ip) if sub.source_ip else 0,
                                   ip4(rt.ip) if rt else 0) != 0:
                raise ValueError(f"market_data: feed of venue {sub.venue} cannot be added")

    def enable_igmp(self, seed: int = 1) -> None:
        """Live: the dispatcher's loop speaks IGMPv3 for the market-data
        port (joins at its first call, answers queries, leaves when it
        stops).  Before the loop starts."""
        app = self.cfg.appliance
        self.igmp = Igmp(mac=app.mac, ip=app.ip, seed=seed,
                         max_groups=self.lib.OMS_MD_MAX_FEEDS, tx_capacity=64, ext=self.ext)
        self.lib.oms_md_set_igmp(self.ptr, self.igmp.ptr)

    def group_macs(self) -> list[bytes]:
        """The MACs of the groups subscribed now (a NIC's multicast list)."""
        return sorted({mcast_mac(sub.group) for sub in self.subs.values()})

    def new_feed(self, cfg, sub) -> Feed:
        """A feed for `sub` as feeds_from_config makes it, with the symbol
        table sized at start."""
        md, app = cfg.market_data, cfg.appliance
        rt = sub.retransmission
        f = Feed(venue=sub.venue, mac=app.mac, ip=app.ip, port=md_port(cfg), group=sub.group,
                 group_port=sub.port, source=sub.source_ip or None,
                 retrans=(rt.ip, rt.port, rt.mac) if rt else None,
                 stale_after_ns=(sub.stale_after_ms or md.stale_after_ms) * 1_000_000,
                 retransmit_ns=app.retransmit_ms * 1_000_000, max_symbols=self.max_symbols,
                 max_orders=md.max_orders, max_levels=md.max_levels, ext=self.ext)
        f.symbols = set()
        return f

    def attach(self, core) -> None:
        """Let `core` read the feeds of its venues (in sharded mode a
        worker's core has only its own)."""
        mine = {v.id for v in core.cfg.venues}
        if not getattr(self, "_stage_core", None):
            # the first core attached runs on the dispatcher's thread
            self.lib.oms_md_set_stage_core(self.ptr, core._core)
            self._stage_core = core
        for venue, f in self.feeds.items():
            if venue in mine:
                core.set_feed(venue, f)

    def set_journal(self, journal) -> None:
        """Record what the feeds are handed in `journal` (a
        dataplane.journal.Journal; None: stop): MARKET records."""
        self._journal = journal  # the C side holds a pointer: keep it alive
        self.lib.oms_md_set_journal(self.ptr, journal._j if journal is not None else self.ffi.NULL)

    def rebuild_with(self, core) -> None:
        """Let a journal replayed into `core` (recovery, a standby) hand its
        MARKET records to these feeds."""
        self.attach(core)
        self.lib.oms_core_set_market(core._core, self.ptr)

    def split(self, frames: list[bytes], now_ns: int) -> list[bytes]:
        ffi, lib = self.ffi, self.lib
        n = len(frames)
        keep = [ffi.from_buffer(f) for f in frames]
        ptrs = ffi.new("const uint8_t *[]", keep) if n else ffi.NULL
        lens = ffi.new("uint16_t[]", [len(f) for f in frames]) if n else ffi.NULL
        k = lib.oms_md_split(self.ptr, ptrs, lens, n, now_ns)
        by_addr = {int(ffi.cast("uintptr_t", p)): f for p, f in zip(keep, frames, strict=True)}
        return [by_addr[int(ffi.cast("uintptr_t", ptrs[i]))] for i in range(k)]

    def take_requests(self) -> list[bytes]:
        """Re-request frames the feeds built (to their retransmission
        servers)."""
        out = []
        for f in self.feeds.values():
            out += f.take_tx()
        return out

    def stats(self) -> dict:
        """The dispatcher's counters (replay reports show these)."""
        s = self.lib.oms_md_stats(self.ptr)
        drops = self.lib.oms_md_filter_drops(self.ptr)
        return {"to_feed": s.to_feed, "to_core": s.to_core, "filtered": s.filtered,
                "filter_drops": {n: drops[i] for i, n in enumerate(
                    ("NO_GROUP", "WRONG_PORT", "WRONG_SOURCE")) if drops[i]}}

    def live_stats(self) -> dict:
        """A live appliance's: the counters, the subscriptions in force,
        each venue's feed and the IGMPv3 host (read in place while the loop
        runs: one writer, 64-bit counters)."""
        s = self.lib.oms_md_stats(self.ptr)
        out = {**self.stats(),
               "subscriptions": {str(v): f"{sub.group}:{sub.port}"
                                 + (f" from {sub.source_ip}" if sub.source_ip else "")
                                 for v, sub in sorted(self.subs.items())},
               "changes": s.changes, "changes_failed": s.changes_failed,
               "feeds": {str(v): {"packets": f.events().get("PACKETS", 0),
                                  "heartbeats": f.events().get("HEARTBEATS", 0),
                                  "stale": f.stale()}
                         for v, f in sorted(self.feeds.items())}}
        if self.igmp is not None:
            out["igmp"] = igmp_summary(self.igmp.counters(), s.igmp_in)
        return out


def igmp_summary(counters: dict[str, int], frames_in: int) -> dict:
    """What operators ask of the IGMPv3 host: reports sent, queries
    answered (general ones and those for our groups: each is answered),
    IGMP frames received, and every non-zero counter."""
    return {"reports_sent": counters.get("REPORTS_SENT", 0),
            "queries_answered": counters.get("GENERAL_QUERIES", 0)
            + counters.get("GROUP_QUERIES", 0),
            "frames_in": frames_in, "counters": counters}


class ModelMarketData:
    """The reference books of `cfg`'s subscriptions, split by the same
    rules in Python, for a ReferenceCore."""

    def __init__(self, cfg):
        md = cfg.market_data
        index = symbol_indices(cfg)
        self.ip, self.port = ip4(cfg.appliance.ip), md_port(cfg)
        self.subs = []
        self.feeds = {}
        for sub in md.subscriptions:
            f = FeedModel(max_orders=md.max_orders, max_levels=md.max_levels,
                          retrans=sub.retransmission is not None,
                          stale_after_ns=(sub.stale_after_ms or md.stale_after_ms) * 1_000_000,
                          retransmit_ns=cfg.appliance.retransmit_ms * 1_000_000)
            for sym, i in index.items():
                f.subscribe(sym, i)
            self.feeds[sub.venue] = f
            rt = sub.retransmission
            self.subs.append((ip4(sub.group), sub.port,
                              ip4(sub.source_ip) if sub.source_ip else 0,
                              ip4(rt.ip) if rt else 0, f))

    def attach(self, model) -> None:
        for venue, f in self.feeds.items():
            model.set_feed(venue, f)

    def _classify(self, frame: bytes):
        """(feed, UDP payload), or (None, True) when the filter drops it,
        or (None, False) for the core."""
        off = 14
        if len(frame) < off + 20:
            return None, False
        (et,) = struct.unpack_from("!H", frame, 12)
        if et == 0x8100:
            (et,) = struct.unpack_from("!H", frame, 16)
            off += 4
        if et != 0x0800 or len(frame) < off + 20 or frame[off + 9] != 17:
            return None, False
        ihl = (frame[off] & 0x0F) * 4
        if ihl < 20 or len(frame) < off + ihl + 8:
            return None, False
        src, dst = struct.unpack_from("!II", frame, off + 12)
        dport, udp_len = struct.unpack_from("!HH", frame, off + ihl + 2)
        payload = frame[off + ihl + 8:off + ihl + max(udp_len, 8)]
        if dst >> 28 == 0xE:
            for group, port, source, _rt, f in self.subs:
                if group == dst and port == dport and (not source or source == src):
                    return f, payload
            return None, True
        if dst == self.ip and dport == self.port:
            for _g, _p, _s, rt, f in self.subs:
                if rt and rt == src:
                    return f, payload
        return None, False

    def split(self, frames: list[bytes], now_ns: int) -> list[bytes]:
        for f in self.feeds.values():
            f.process([], now_ns)
        keep = []
        for frame in frames:
            f, what = self._classify(frame)
            if f is not None:
                f.process([what], now_ns)
            elif not what:
                keep.append(frame)
        return keep

    def take_requests(self) -> list[bytes]:
        return []

