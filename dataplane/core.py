"""The C core as Python sees it: built from a Config, fed bursts of frames,
read for counters and orders.  The same small API serves the replay tool,
the tests and (later) the DPDK and AF_XDP backends."""
from __future__ import annotations

import importlib
import ipaddress
import os

from control.config import ORDER_TYPES, TIFS, Config
from dataplane.venue_latency import with_percentiles

_SANITIZE = os.environ.get("OMS_SANITIZE") == "1"
_MODULE = "dataplane._oms_core_san" if _SANITIZE else "dataplane._oms_core"
_ext = importlib.import_module(_MODULE)
ffi = _ext.ffi
lib = _ext.lib

STATE_NAMES = {
    lib.OMS_ST_PENDING_NEW: "PendingNew", lib.OMS_ST_NEW: "New",
    lib.OMS_ST_PARTIALLY_FILLED: "PartiallyFilled", lib.OMS_ST_FILLED: "Filled",
    lib.OMS_ST_PENDING_REPLACE: "PendingReplace", lib.OMS_ST_REPLACED: "Replaced",
    lib.OMS_ST_PENDING_CANCEL: "PendingCancel", lib.OMS_ST_CANCELED: "Canceled",
    lib.OMS_ST_REJECTED: "Rejected", lib.OMS_ST_EXPIRED: "Expired",
}
DROP_NAMES = [ffi.string(lib.oms_drop_name(i)).decode() for i in range(lib.OMS_DROP_MAX)]
EVENT_NAMES = [ffi.string(lib.oms_event_name(i)).decode() for i in range(lib.OMS_EV_MAX)]
ORDER_FIELDS = [name for name, _ in ffi.typeof("struct oms_order_view").fields]


def ip_to_int(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


def mac_to_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def padded(text: str, width: int) -> bytes:
    return text.encode("ascii").ljust(width, b" ")


class CoreError(RuntimeError):
    pass


class Core:
    """One instance of the C pipeline, owned by one thread.  `ext` is the
    cffi extension it lives in: the plain one, or the DPDK one whose worker
    lcores drive it (dataplane.dpdk)."""

    def __init__(self, cfg: Config, ext=None, checksum_offload: int = 0):
        ext = ext or _ext
        ffi, lib = ext.ffi, ext.lib
        self.ffi, self.lib = ffi, lib
        self.cfg = cfg
        c = ffi.new("struct oms_core_config *")
        a = cfg.appliance
        c.mac = list(mac_to_bytes(a.mac))
        c.ip = ip_to_int(a.ip)
        c.strategy_port = a.strategy_port
        c.venue_port = a.venue_port
        c.order_capacity = cfg.tables.orders
        c.max_sessions = cfg.tables.max_sessions
        c.max_venues = cfg.tables.max_venues
        c.max_instruments = cfg.tables.max_instruments
        c.tx_capacity = cfg.tables.tx_frames
        c.ouch_capacity = ord(a.capacity)
        c.venue_request_port = a.request_port
        c.replay_depth = cfg.tables.replay_depth
        c.retransmit_ns = a.retransmit_ms * 1_000_000
        c.checksum_offload = checksum_offload
        c.max_accounts = cfg.tables.max_accounts
        c.max_positions = cfg.tables.max_positions
        core = lib.oms_core_create(c)
        if core == ffi.NULL:
            raise CoreError("oms_core_create failed: sizes out of range or out of memory")
        self._core = ffi.gc(core, lib.oms_core_destroy)
        # typed mode executes each burst by priority class (priority.c);
        # every core of the configuration does, so replay and recovery too
        if cfg.dataplane.threading.mode == "typed":
            lib.oms_core_set_typed(core, 1)
        # dataplane.journal.Journal when the caller drives the core and
        # journals it (replay, tests); a live poll loop journals in C
        self.journal = None

        for s in cfg.sessions:
            sc = ffi.new("struct oms_session_config *", {
                "id": s.id, "ip": ip_to_int(s.ip), "port": s.port,
                "mac": list(mac_to_bytes(s.mac)), "enabled": int(s.enabled),
                "heartbeat_ns": s.heartbeat_ms * 1_000_000,
                "timeout_ns": s.timeout_ms * 1_000_000,
                "cancel_on_disconnect": int(s.cancel_on_disconnect)})
            if lib.oms_core_add_session(self._core, sc) != 0:
                raise CoreError(f"session {s.id}: table full or duplicate id")
        for v in cfg.venues:
            vc = ffi.new("struct oms_venue_config *", {
                "id": v.id, "ip": ip_to_int(v.ip), "port": v.port,
                "mac": list(mac_to_bytes(v.mac)), "session": padded(v.session, 10),
                "request_port": v.retransmit_port,
                "heartbeat_ns": v.heartbeat_ms * 1_000_000,
                "timeout_ns": v.timeout_ms * 1_000_000,
                "max_unanswered": v.max_unanswered})
            if lib.oms_core_add_venue(self._core, vc) != 0:
                raise CoreError(f"venue {v.id}: table full or duplicate id")
        # no worker yet: generation 0 can go at once
        old = self.publish(self.build_generation(cfg))
        lib.oms_core_take_generation(self._core)
        lib.oms_gen_free(old)
        self._stats = lib.oms_core_stats(self._core)

    def build_generation(self, cfg: Config):
        """Compile the reloadable part of `cfg` (instruments, accounts,
        position limits, routes, session throttles) into a configuration
        generation that follows the one published now (docs/semantics.md
        "Configuration generations").  Not yet in use: publish() it, or
        free it with lib.oms_gen_free."""
        ffi, lib = self.ffi, self.lib
        g = lib.oms_gen_create(self._core, lib.oms_core_published(self._core))
        if g == ffi.NULL:
            raise CoreError("out of memory building a configuration generation")
        try:
            _fill_generation(ffi, lib, self._core, g, cfg)
            text = cfg.text.encode()
            if lib.oms_gen_set_source(g, text, len(text)) != 0:
                raise CoreError("out of memory keeping the configuration's text")
        except BaseException:
            lib.oms_gen_free(g)
            raise
        return g

    def publish(self, gen):
        """Make `gen` the one the worker takes at its next burst; returns the
        generation it replaces, for the caller to free once no worker can
        be using it (at once when the caller drives the core itself)."""
        old = self.lib.oms_core_publish(self._core, gen)
        if old == gen:
            self.lib.oms_gen_free(gen)
            raise CoreError("configuration generation built for other table sizes")
        return old

    def reload(self, cfg: Config) -> int:
        """Build, publish and (single-threaded use: the caller drives the
        core) free the replaced generation; the new generation's number.
        Only the reloadable part of `cfg` is read (control/reload.py
        checks the rest is unchanged)."""
        gen = self.build_generation(cfg)
        number = self.lib.oms_gen_number(gen)
        old = self.publish(gen)
        self.lib.oms_core_take_generation(self._core)
        self.lib.oms_gen_free(old)
        self.cfg = cfg
        if self.journal is not None:
            self.journal.attach(self)
        return number

    def generation(self) -> int:
        """Number of the configuration generation the core judges by."""
        return self.lib.oms_core_generation(self._core)

    def process_burst(self, frames: list[bytes], now_ns: int) -> list[bytes]:
        """Hand `frames` to the core as one burst that arrived at `now_ns`;
        return what it transmits, in order."""
        n = len(frames)
        keep = [self.ffi.from_buffer(f) for f in frames]
        ptrs = self.ffi.new("uint8_t *[]", keep) if n else self.ffi.NULL
        lens = self.ffi.new("uint16_t[]", [len(f) for f in frames]) if n else self.ffi.NULL
        if self.journal is not None:
            self.journal.before_burst(self, now_ns)
        self.lib.oms_core_process_burst(self._core, ptrs, lens, n, now_ns)
        if self.journal is not None:
            self.journal.record_burst(self, ptrs, lens, n, now_ns)
        return self._take_tx()

    def command(self, op: int, a: int, b: int, now_ns: int) -> tuple[int, list[bytes]]:
        """Run a control command (command.h: lib.OMS_CMD_*) as a poll loop
        does between bursts; (its result, what it sent)."""
        cmd = self.ffi.new("struct oms_command *", {"op": op, "a": a, "b": b})
        self.lib.oms_command_apply(self._core, cmd, now_ns)
        if self.journal is not None:
            self.journal.record_command(self, cmd, now_ns)
        return cmd.result, self._take_tx()

    def _take_tx(self) -> list[bytes]:
        """The frames waiting in the transmit area, which is then emptied."""
        count = self.lib.oms_core_tx_count(self._core)
        out = []
        if count:
            slot = self.lib.OMS_TX_SLOT
            buf = self.ffi.buffer(self.lib.oms_core_tx_buf(self._core), count * slot)
            tx_lens = self.lib.oms_core_tx_lens(self._core)
            out = [bytes(buf[i * slot:i * slot + tx_lens[i]]) for i in range(count)]
            self.lib.oms_core_tx_clear(self._core)
        return out

    def stats(self) -> dict:
        """Counters, non-zero entries only, in the reference model's shape."""
        return self.stats_dict(self._stats)

    def stats_dict(self, st) -> dict:
        """A struct oms_stats (the core's own, or a snapshot of it) as a dict."""
        nz = {}
        lib = self.lib
        nz["drop"] = {DROP_NAMES[i]: st.drop[i] for i in range(1, lib.OMS_DROP_MAX) if st.drop[i]}
        nz["event"] = {EVENT_NAMES[i]: st.event[i] for i in range(lib.OMS_EV_MAX) if st.event[i]}
        nz["reject_business"] = {i: st.reject_business[i]
                                 for i in range(lib.OMS_REJ_BUSINESS_SLOTS)
                                 if st.reject_business[i]}
        nz["reject_system"] = {i: st.reject_system[i]
                               for i in range(lib.OMS_REJ_SYSTEM_SLOTS) if st.reject_system[i]}
        for key in ("sp_in", "sp_out", "venue_in", "venue_out"):
            arr = getattr(st, key)
            nz[key] = {i: arr[i] for i in range(256) if arr[i]}
        return nz

    def order(self, session_id: int, cl_ord_id: int) -> dict | None:
        v = self.ffi.new("struct oms_order_view *")
        if self.lib.oms_core_order_find(self._core, session_id, cl_ord_id, v) != 0:
            return None
        return _order_dict(v)

    def order_children(self, session_id: int, cl_ord_id: int) -> list[dict]:
        """The children of a split order still in the table, in the order
        they were sent (docs/semantics.md "Splitting across venues")."""
        v = self.ffi.new("struct oms_order_view[]", self.lib.OMS_SPLIT_MAX)
        n = self.lib.oms_core_order_children(self._core, session_id, cl_ord_id, v,
                                             self.lib.OMS_SPLIT_MAX)
        return [_order_dict(v[i]) for i in range(n)]

    def set_kill(self, account: int, on: bool) -> None:
        """Engage or release an account's kill switch (between bursts)."""
        if self.lib.oms_core_set_kill(self._core, account, int(on)) != 0:
            raise CoreError(f"account {account} is not configured")

    def kill(self, account: int, on: bool, now_ns: int) -> tuple[int, list[bytes]]:
        """The operator's kill switch (semantics.md "Kill switch"): account 0
        sets every account's switch.  (orders canceled, or -1 for an unknown
        account; the Cancel Orders it sent, in order)."""
        return self.command(self.lib.OMS_CMD_KILL, account, int(on), now_ns)

    def account(self, account: int) -> dict | None:
        """Risk accounting of an account: open_orders, open_notional."""
        v = self.ffi.new("struct oms_account_view *")
        if self.lib.oms_core_account_view(self._core, account, v) != 0:
            return None
        return {"open_orders": v.open_orders, "open_notional": v.open_notional}

    def position(self, account: int, symbol: str) -> dict | None:
        """Risk accounting of (account, symbol): max_position, position
        (filled), open_buy, open_sell."""
        v = self.ffi.new("struct oms_position_view *")
        if self.lib.oms_core_position_view(self._core, account, padded(symbol, 8), v) != 0:
            return None
        return {"max_position": v.max_position, "position": v.position,
                "open_buy": v.open_buy, "open_sell": v.open_sell}

    def set_feed(self, venue_id: int, feed) -> None:
        """Let the core read venue `venue_id`'s market data (a
        dataplane.feed.Feed; None detaches): halts, reference prices and
        tops of book for the smart router.  The feed must outlive its use."""
        ptr = self.ffi.NULL if feed is None else feed.ptr
        if self.lib.oms_core_set_feed(self._core, venue_id, ptr) != 0:
            raise CoreError(f"venue {venue_id} is not configured")
        # keep it alive as long as the core points at it
        self._feeds = {**getattr(self, "_feeds", {}), venue_id: feed}

    def venue_latency(self, venue_id: int) -> dict:
        """The latency monitor's view of a venue (semantics.md "Venue
        health")."""
        h = self.ffi.new("struct oms_venue_latency *")
        if self.lib.oms_core_venue_latency(self._core, venue_id, h) != 0:
            raise CoreError(f"venue {venue_id} is not configured")
        return with_percentiles({
            "rtt_ewma_ns": h.rtt_ewma_ns, "rtt_last_ns": h.rtt_last_ns,
            "rtt_samples": h.rtt_samples, "unanswered": h.unanswered, "down": h.down,
            "unresponsive": h.unresponsive, "rtt_hist": list(h.rtt_hist),
            "fill_ratio_pm": h.fill_ratio_pm})

    def fill_model_counts(self) -> dict:
        """The fill model's counters: decisions by the model and by the
        rules, and per venue id its recent fill ratio and the probabilities
        the model gave it (the last, their sum in ppm, their number)."""
        rc = self.ffi.new("struct oms_route_counts *")
        self.lib.oms_core_route_counts(self._core, rc)
        h = self.ffi.new("struct oms_venue_latency *")
        venues = {}
        for v in self.cfg.venues:
            self.lib.oms_core_venue_latency(self._core, v.id, h)
            venues[v.id] = {"fill_ratio_pm": h.fill_ratio_pm, "p_last_ppm": h.p_last_ppm,
                            "p_sum_ppm": h.p_sum_ppm, "p_count": h.p_count}
        return {"by_model": rc.by_model, "by_rules": rc.by_rules, "venues": venues}

    def route_decisions(self, from_seq: int = 1) -> list[dict]:
        """The smart router's decisions numbered from `from_seq` on that
        the ring still holds, oldest first."""
        out = self.ffi.new("struct oms_route_decision[]", self.lib.OMS_ROUTE_RING)
        n = self.lib.oms_core_route_decisions(self._core, from_seq, out,
                                              self.lib.OMS_ROUTE_RING)
        return [route_decision_dict(self.ffi, out[i]) for i in range(n)]

    def next_deadline(self) -> int:
        """When the core next wants a call (process_burst with no frames);
        2**64 - 1 when no timer is pending."""
        return self.lib.oms_core_next_deadline(self._core)

    def live_orders(self) -> int:
        return self.lib.oms_core_live_orders(self._core)

    def set_timing(self, on: bool) -> None:
        self.lib.oms_core_set_timing(self._core, int(on))

    def latency_histogram(self) -> list[tuple[int, int]]:
        """(lowest cycles of the bucket, count) for each non-empty bucket."""
        h = self.lib.oms_core_latency(self._core)
        return [(self.lib.oms_lat_bucket_low(b), h.bucket[b])
                for b in range(self.lib.oms_lat_buckets()) if h.bucket[b]]


def _order_dict(v) -> dict:
    return {name: list(getattr(v, name)) if name == "state_ts" else getattr(v, name)
            for name in ORDER_FIELDS}


def route_decision_dict(ffi, d) -> dict:
    """One struct oms_route_decision as the reference model logs it."""
    return {"seq": d.seq, "now_ns": d.now_ns, "cl_ord_id": d.cl_ord_id, "price": d.price,
            "session_id": d.session_id, "account": d.account, "qty": d.qty,
            "venue": d.venue, "side": d.side,
            "symbol": bytes(ffi.buffer(d.symbol, 8)).decode("ascii").rstrip(),
            "model_id": d.model_id, "by_model": d.by_model, "children": d.n_children,
            "seen": [{"venue": s.venue, "px": s.px, "qty": s.qty, "cost": s.cost,
                      "rtt_ewma_ns": s.rtt_ewma_ns, "why": s.why, "p_fill": s.p_fill,
                      "alloc": s.alloc}
                     for s in d.seen[0:d.n_seen]]}


def fill_model_struct(ffi, lib, cfg: Config):
    """The configuration's fill-probability model as the core's struct, its
    venue slots by the core's venue index (configuration order); NULL: none."""
    doc = cfg.routing.fill_model
    if doc is None:
        return ffi.NULL
    from control.fill_artefact import to_c
    m = ffi.new("struct oms_fill_model *")
    to_c(doc, ffi, m)
    for i in range(lib.OMS_FILL_MAX_VENUES):
        m.slot[i] = lib.OMS_FILL_NO_SLOT
    for i, v in enumerate(cfg.venues[:lib.OMS_FILL_MAX_VENUES]):
        if v.name in doc["venues"]:
            m.slot[i] = doc["venues"].index(v.name)
    return m


def _fill_generation(ffi, lib, core, g, cfg: Config) -> None:
    for ins in cfg.instruments:
        ic = ffi.new("struct oms_instrument_config *", {
            "symbol": padded(ins.symbol, 8), "tick_size": ins.tick_size,
            "lot_size": ins.lot_size, "reference_price": ins.reference_price,
            "band_pct": ins.price_band_pct, "band_abs": ins.price_band_abs,
            "restricted": int(ins.restricted), "halted": int(ins.halted),
            "n_venues": len(ins.venues), "venues": list(ins.venues)})
        if lib.oms_gen_add_instrument(g, core, ic) != 0:
            raise CoreError(f"instrument {ins.symbol}: table full, duplicate or bad venues")
    for acc in cfg.accounts:
        ac = ffi.new("struct oms_account_config *", {
            "id": acc.id, "max_order_qty": acc.max_order_qty,
            "max_order_notional": acc.max_order_notional,
            "max_open_orders": acc.max_open_orders, "credit_limit": acc.credit_limit,
            "ord_types": sum(1 << ORDER_TYPES[t] for t in acc.order_types),
            "tifs": sum(1 << TIFS[t] for t in acc.tifs), "kill": int(acc.kill)})
        if lib.oms_gen_add_account(g, ac) != 0:
            raise CoreError(f"account {acc.id}: duplicate, or more accounts than "
                            "tables.max_accounts have been configured since start")
        for sym, limit in acc.max_position:
            if lib.oms_gen_add_position_limit(g, acc.id, padded(sym, 8), limit) != 0:
                raise CoreError(f"account {acc.id} max_position {sym}: duplicate, unknown "
                                "symbol, or more (account, symbol) pairs than "
                                "tables.max_positions have been configured since start")
    rules = [(None, None, cfg.routing.default_venue, ())]
    rules += [(r.account, r.symbol, r.venue, r.exclude) for r in cfg.routes]
    for account, symbol, venue, exclude in rules:
        rc = ffi.new("struct oms_route_config *", {
            "account": account or 0, "symbol": padded(symbol or "", 8), "venue": venue,
            "by_account": int(account is not None), "by_symbol": int(symbol is not None),
            "sor": int(venue == 0), "n_exclude": len(exclude), "exclude": list(exclude)})
        if lib.oms_gen_add_route(g, core, rc) != 0:
            raise CoreError(f"route account={account} symbol={symbol} venue={venue}: "
                            "duplicate rule or unknown account, symbol or venue")
    if lib.oms_gen_set_sor_cost(g, cfg.routing.latency_cost_per_us) != 0:
        raise CoreError("routing.latency_cost_per_us out of range")
    if lib.oms_gen_set_fill_model(g, fill_model_struct(ffi, lib, cfg),
                                  cfg.routing.miss_penalty) != 0:
        raise CoreError(f"routing.model {cfg.routing.model}: refused by the core "
                        "(inconsistent tables)")
    if lib.oms_gen_set_sor_split(g, cfg.routing.split_max_children) != 0:
        raise CoreError("routing.split_max_children out of range")
    for s in cfg.sessions:
        t = s.throttle
        if lib.oms_gen_set_throttle(g, core, s.id, t.per_second if t else 0,
                                    t.burst if t else 0) != 0:
            raise CoreError(f"session {s.id}: throttle out of range")
        if lib.oms_gen_set_session_accounts(g, core, s.id, list(s.accounts) or ffi.NULL,
                                            len(s.accounts)) != 0:
            raise CoreError(f"session {s.id}: accounts unknown or more than "
                            f"{lib.OMS_SESSION_ACCOUNTS}")
