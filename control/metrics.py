"""Prometheus metrics of the data plane: a prometheus-client custom
collector that reads the C counters and histograms when it is scraped, so
the data plane does no Python work per order.

What it reads, it reads in place: the worker keeps writing while the scrape
runs.  Every value is a 64-bit counter that only grows, naturally aligned,
and an aligned 8-byte load on x86-64 is never torn, so each value read is
one the worker really wrote (possibly a moment old); the values are not a
snapshot of one instant across counters.  Nothing here takes a lock the
worker would see.  Each worker owns its own core and histograms; they are
summed (merged) here, at read time.

Latency histograms: the core records in log-linear (HDR style) buckets of
TSC cycles (venue round trips: ns of the burst clock); they are exported in
the fixed `LE_SECONDS` buckets, each C bucket counted under the smallest
bound that is at least its highest value, so a count under `le` is never
for a value above it.  The live heatmap page (control/httpd.py) uses the
same buckets, so its cells and these histograms count the same events.

Market data: the feeds' counters (gaps, drops by reason, events, stale
books) are exported from the `dataplane.feed.Feed` objects a source is
given (`feeds=`: the live appliance's), and the FEED_TO_BOOK stage with the
per-order ones (`ALL_STAGES`).
Durability counters do not exist yet: `EXTRA_COLLECTORS` is where their
collectors register."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

# the plain core extension, for the constants both extensions share
from dataplane.core import ffi as _ffi
from dataplane.core import lib as _lib

# Histogram bucket bounds, seconds: sub-microsecond resolution where the
# core's own stages live, then decades up to a second (venue round trips,
# a stalled burst).
LE_SECONDS = (25e-9, 50e-9, 100e-9, 250e-9, 500e-9,
              1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
              1e-3, 2.5e-3, 10e-3, 100e-3, 1.0)

# stage label -> enum oms_stage (cdefs/stages.h); FEED_TO_BOOK (market
# data) joins when something records it
STAGES = {"rx_to_decision": _lib.OMS_STAGE_RX_TO_DECISION,
          "decision_to_tx": _lib.OMS_STAGE_DECISION_TO_TX,
          "in_to_out": _lib.OMS_STAGE_IN_TO_OUT,
          "handle": _lib.OMS_STAGE_HANDLE}
# and per market-data packet handed to a feed (cdefs/md_dispatch.c)
FEED_STAGES = {"feed_to_book": _lib.OMS_STAGE_FEED_TO_BOOK}
ALL_STAGES = {**STAGES, **FEED_STAGES}

# struct oms_order_counts rows: strategy types from 0x10 (sp_wire.h), as
# many as the struct has (its sizes are #defines, which cffi sees expanded)
_COUNTS = dict(_ffi.typeof("struct oms_order_counts").fields)
APP_TYPES = tuple(_ffi.typeof("enum sp_msg_type").elements[t][3:].lower()
                  for t in range(_lib.SP_NEW_ORDER,
                                 _lib.SP_NEW_ORDER + _COUNTS["handled"].type.length))
REJ_SLOTS = _COUNTS["rejected"].type.item.length
# reject slot of system reason 1000 (cdefs/stages.h)
SYSTEM_SLOT = _lib.OMS_REJ_BUSINESS_SLOTS

OUCH_TO_VENUE = {"O": "enter_order", "U": "replace_order", "X": "cancel_order"}
OUCH_FROM_VENUE = {"A": "accepted", "U": "replaced", "E": "executed", "C": "canceled",
                   "J": "rejected", "I": "cancel_reject", "S": "system_event"}

# More collectors to register beside the data plane's (market data,
# durability): callables returning a prometheus_client Collector.
EXTRA_COLLECTORS: list[Callable[[], Collector]] = []

_tsc_hz: float | None = None
_tsc_lock = threading.Lock()


def tsc_hz(lib) -> float:
    """TSC ticks per second, measured once per process over ~50 ms against
    the monotonic clock (lib: either cffi extension, both have oms_cycles)."""
    global _tsc_hz
    with _tsc_lock:
        if _tsc_hz is None:
            c0, t0 = lib.oms_cycles(), time.perf_counter_ns()
            time.sleep(0.05)
            c1, t1 = lib.oms_cycles(), time.perf_counter_ns()
            _tsc_hz = (c1 - c0) * 1e9 / max(1, t1 - t0)
        return _tsc_hz


def reason_names(lib) -> dict[int, str]:
    """Reject reason code -> name (SP_REJ_* of cdefs/sp_wire.h)."""
    return {getattr(lib, n): n[len("SP_REJ_"):] for n in dir(lib)
            if n.startswith("SP_REJ_") and n != "SP_REJ_BUSINESS_MAX"}


def sp_type_names(ffi) -> dict[int, str]:
    """Strategy protocol message type -> name (enum sp_msg_type)."""
    return {v: n[3:].lower() for v, n in ffi.typeof("enum sp_msg_type").elements.items()}


def percentiles(lib, hist, units_per_second: float,
                ps=(50, 90, 99, 99.9)) -> dict:
    """Percentiles of a C lat_hist (or of several, merged) in ns, each the
    lowest value of the log-linear bucket it falls in (at most 6.25 % below
    the true value), with count and max."""
    hists = hist if isinstance(hist, (list, tuple)) else [hist]
    n = lib.oms_lat_buckets()
    counts = [sum(h.bucket[b] for h in hists) for b in range(n)]
    total = sum(counts)
    out: dict = {"count": total}
    if not total:
        return out
    to_ns = 1e9 / units_per_second
    for p in ps:
        want, acc = total * p / 100, 0
        for b, c in enumerate(counts):
            acc += c
            if c and acc >= want:
                out[f"p{p:g}"] = round(lib.oms_lat_bucket_low(b) * to_ns, 1)
                break
    out["max"] = round(max(h.max for h in hists) * to_ns, 1)
    return out


class BucketMap:
    """Maps a C lat_hist's log-linear buckets onto LE_SECONDS for one unit
    (cycles at a TSC rate, or ns)."""

    def __init__(self, lib, units_per_second: float):
        n = lib.oms_lat_buckets()
        lows = np.array([lib.oms_lat_bucket_low(b) for b in range(n)], dtype=np.float64)
        # highest value of bucket b: one below the next bucket's lowest
        highs = np.append(lows[1:] - 1, np.inf)
        self.units_per_second = units_per_second
        bounds = np.array(LE_SECONDS) * units_per_second
        # index into LE_SECONDS, len(LE_SECONDS) meaning +Inf only
        self.index = np.searchsorted(bounds, highs, side="left")
        self.n = n

    def counts(self, ffi, hists: Iterable) -> tuple[np.ndarray, float]:
        """Summed over `hists` (struct lat_hist *): the count per
        LE_SECONDS bucket (non-cumulative, +Inf last) and the sum in
        seconds."""
        out = np.zeros(len(LE_SECONDS) + 1, dtype=np.int64)
        total = 0
        for h in hists:
            raw = np.frombuffer(ffi.buffer(h.bucket, self.n * 8), dtype=np.uint64)
            out += np.bincount(self.index, weights=raw,
                               minlength=len(LE_SECONDS) + 1).astype(np.int64)
            total += h.sum
        return out, total / self.units_per_second


def histogram_family(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels)


def add_histogram(fam: HistogramMetricFamily, labels: list[str], counts: np.ndarray,
                  sum_s: float) -> None:
    """Cumulative buckets; the count is the +Inf bucket (so the exposition
    is consistent even though the C count was read a moment apart)."""
    cum = np.cumsum(counts)
    buckets = [(_le(le), int(cum[i])) for i, le in enumerate(LE_SECONDS)]
    buckets.append(("+Inf", int(cum[-1])))
    fam.add_metric(labels, buckets, sum_s)


def _le(v: float) -> str:
    return repr(float(v))


class CoreReader:
    """One worker's core, read in place (see the module's docstring)."""

    def __init__(self, core, worker: str = "0"):
        self.core = core  # dataplane.core.Core
        self.ffi, self.lib, self.ptr = core.ffi, core.lib, core._core
        self.worker = worker

    def stats(self):
        return self.lib.oms_core_stats(self.ptr)

    def counts(self):
        return self.lib.oms_core_order_counts(self.ptr)

    def stage(self, stage: int):
        return self.lib.oms_core_stage(self.ptr, stage)

    def venue_indexes(self) -> dict[int, int]:
        """Venue id -> index in this core's table (a sharded worker has its
        own venues)."""
        out, h, i = {}, self.ffi.new("struct oms_venue_health *"), 0
        while self.lib.oms_core_venue_health(self.ptr, i, h) == 0:
            out[h.id] = i
            i += 1
        return out

    def venue_health(self, index: int):
        h = self.ffi.new("struct oms_venue_health *")
        return h if self.lib.oms_core_venue_health(self.ptr, index, h) == 0 else None

    def session_health(self) -> list:
        out, i = [], 0
        while True:
            h = self.ffi.new("struct oms_session_health *")
            if self.lib.oms_core_session_health(self.ptr, i, h) != 0:
                return out
            out.append(h)
            i += 1


class DataPlaneSource:
    """What the collector reads: the workers' cores, the configuration and,
    in a live appliance, its ports, pool, rings and worker counters."""

    def __init__(self, cfg, cores: list, appliance=None, feeds: tuple = ()):
        self.cfg = cfg
        self.feeds = list(feeds)  # dataplane.feed.Feed, one per venue
        self.readers = [CoreReader(c, str(i)) for i, c in enumerate(cores)]
        self.appliance = appliance
        self.started = time.time()
        r0 = self.readers[0]
        self.ffi, self.lib = r0.ffi, r0.lib
        # venue tables are fixed at start: where each venue id is, per core
        self.venue_at = [r.venue_indexes() for r in self.readers]
        # a DPDK process knows its TSC rate; elsewhere it is measured
        hz = (float(self.lib.oms_tsc_hz()) if hasattr(self.lib, "oms_tsc_hz")
              else tsc_hz(self.lib))
        self.cycles = BucketMap(self.lib, hz)
        self.ns = BucketMap(self.lib, 1e9)
        self.reasons = reason_names(self.lib)
        self.sp_types = sp_type_names(self.ffi)

    def stage_counts(self, stage: str) -> tuple[np.ndarray, float]:
        """Merged over the workers."""
        return self.cycles.counts(self.ffi, [r.stage(ALL_STAGES[stage]) for r in self.readers])

    def venue_rtts(self, venue_id: int) -> list:
        """The venue's round-trip histograms, on every core that has it."""
        return [self.lib.oms_core_venue_rtt(r.ptr, at[venue_id])
                for r, at in zip(self.readers, self.venue_at, strict=True) if venue_id in at]

    def venue_rtt_counts(self, venue_id: int) -> tuple[np.ndarray, float]:
        return self.ns.counts(self.ffi, self.venue_rtts(venue_id))

    def venue_routed(self, venue_id: int) -> int:
        return sum(self.lib.oms_core_venue_routed(r.ptr, at[venue_id])
                   for r, at in zip(self.readers, self.venue_at, strict=True) if venue_id in at)

    def venue_fill(self, venue_id: int):
        """The venue's fill ratio and the fill model's probabilities for it
        (struct oms_venue_latency), on the core that has it (None: on none)."""
        h = self.ffi.new("struct oms_venue_latency *")
        for r, at in zip(self.readers, self.venue_at, strict=True):
            if venue_id in at and self.lib.oms_core_venue_latency(r.ptr, venue_id, h) == 0:
                return h
        return None

    def route_counts(self) -> dict[str, int]:
        """Smart routing decisions by who decided, summed over the workers."""
        rc, out = self.ffi.new("struct oms_route_counts *"), {"model": 0, "rules": 0}
        for r in self.readers:
            self.lib.oms_core_route_counts(r.ptr, rc)
            out["model"] += rc.by_model
            out["rules"] += rc.by_rules
        return out

    def venue_health(self, venue_id: int):
        """The venue's health on the core that has it (None: on none)."""
        for r, at in zip(self.readers, self.venue_at, strict=True):
            if venue_id in at:
                return r.venue_health(at[venue_id])
        return None

    def summed(self, get: Callable, size: int) -> list[int]:
        """get(reader) -> a cffi uint64 array of `size`, summed over workers."""
        out = [0] * size
        for r in self.readers:
            arr = get(r)
            for i in range(size):
                out[i] += arr[i]
        return out

    def orders(self) -> dict:
        """{(type, result, reason): n} with result accepted/rejected (by the
        appliance), and {type: n} rejected by the venue later."""
        handled = self.summed(lambda r: r.counts().handled, len(APP_TYPES))
        # an explicit counter, not handled - rejected: two counters read a
        # moment apart could make that go down while the worker writes
        accepted = self.summed(lambda r: r.counts().accepted, len(APP_TYPES))
        out: dict = {}
        venue_rejected = {}
        for t, name in enumerate(APP_TYPES):
            rows = self.summed(lambda r, t=t: r.counts().rejected[t], REJ_SLOTS)
            for slot, n in enumerate(rows):
                code = slot if slot < SYSTEM_SLOT else 1000 + slot - SYSTEM_SLOT
                reason = self.reasons.get(code, str(code))
                if reason == "VENUE_REJECTED":
                    venue_rejected[name] = n
                    continue
                out[(name, "rejected", reason)] = n
            out[(name, "accepted", "")] = accepted[t]
        return {"orders": out, "venue_rejected": venue_rejected, "handled": handled}


class OmsCollector(Collector):
    """Reads the data plane at scrape time; registered in its own registry
    (no process or Python GC metrics mixed in unless asked)."""

    def __init__(self, source: DataPlaneSource):
        self.src = source

    def describe(self):
        return []  # collected on every scrape, never at registration

    def collect(self):
        src, cfg = self.src, self.src.cfg
        yield GaugeMetricFamily("oms_uptime_seconds", "Seconds since the data plane started",
                                value=time.time() - src.started)
        app = src.appliance
        gen = GaugeMetricFamily("oms_config_generation",
                                "Configuration generation (1: as started; each reload adds one): "
                                "the one the worker judges by (in_force), the last published",
                                labels=["state"])
        for state, n in (app.config_generation if app else
                         {"in_force": 1, "published": 1}).items():
            gen.add_metric([state], n)
        yield gen
        # the configuration's, as the last accepted reload left it (a scrape
        # never reads a generation the worker may be done with)
        doc = (getattr(app, "cfg", None) or cfg).routing.fill_model
        fm = GaugeMetricFamily("oms_fill_model",
                               "The smart router's fill-probability model: 1 with its id, "
                               "0 (model_id none) when the rules decide alone",
                               labels=["model_id"])
        fm.add_metric([doc["model_id"] if doc else "none"], 1 if doc else 0)
        yield fm
        kill = GaugeMetricFamily("oms_kill_switch_engaged",
                                 "Kill switch engaged (1) or not, by account "
                                 "(as configured and commanded)", labels=["account"])
        for acc, on in (app.kill_state() if app else
                        {str(a.id): a.kill for a in cfg.accounts}).items():
            kill.add_metric([acc], int(on))
        yield kill

        stats = [r.stats() for r in src.readers]
        lib = src.lib
        frames = CounterMetricFamily("oms_frames", "Frames handled by the core",
                                     labels=["direction"])
        ev_in, ev_out = lib.OMS_EV_FRAMES_IN, lib.OMS_EV_FRAMES_OUT
        frames.add_metric(["in"], sum(s.event[ev_in] for s in stats))
        frames.add_metric(["out"], sum(s.event[ev_out] for s in stats))
        yield frames
        drops = CounterMetricFamily("oms_drops", "Frames and messages dropped, by reason",
                                    labels=["reason"])
        for i in range(1, lib.OMS_DROP_MAX):
            name = src.ffi.string(lib.oms_drop_name(i)).decode().lower()
            drops.add_metric([name], sum(s.drop[i] for s in stats))
        yield drops
        events = CounterMetricFamily("oms_events", "Core events, by kind", labels=["event"])
        for i in range(lib.OMS_EV_MAX):
            name = src.ffi.string(lib.oms_event_name(i)).decode().lower()
            events.add_metric([name], sum(s.event[i] for s in stats))
        yield events

        o = src.orders()
        orders = CounterMetricFamily(
            "oms_orders", "Strategy application messages handled, by type and result "
            "(accepted: passed every check and went to the venue; rejected: by the "
            "appliance, with the reason)", labels=["type", "result", "reason"])
        for (t, result, reason), n in sorted(o["orders"].items()):
            if result == "accepted" or n:
                orders.add_metric([t, result, reason.lower()], n)
        yield orders
        vrej = CounterMetricFamily("oms_venue_rejects",
                                   "Orders the venue rejected after routing, by type",
                                   labels=["type"])
        for t in APP_TYPES[:3]:
            vrej.add_metric([t], o["venue_rejected"].get(t, 0))
        yield vrej
        rejects = CounterMetricFamily("oms_rejects", "Rejected sent to strategies, by kind "
                                      "(business: the order broke a rule; system: the "
                                      "appliance could not handle it) and reason",
                                      labels=["kind", "reason"])
        for code, name in sorted(src.reasons.items()):
            if code < 1000:
                n = sum(s.reject_business[code % lib.OMS_REJ_BUSINESS_SLOTS] for s in stats)
                rejects.add_metric(["business", name.lower()], n)
            else:
                n = sum(s.reject_system[(code - 1000) % lib.OMS_REJ_SYSTEM_SLOTS]
                        for s in stats)
                rejects.add_metric(["system", name.lower()], n)
        yield rejects

        yield from self._messages(stats)
        yield from self._venues()
        live = GaugeMetricFamily("oms_live_orders", "Orders not yet in a terminal state")
        live.add_metric([], sum(lib.oms_core_live_orders(r.ptr) for r in src.readers))
        yield live

        unrec = CounterMetricFamily(
            "oms_stage_unrecorded", "Orders whose decision_to_tx and in_to_out went unrecorded "
            "(more orders in one burst than transmit slots)")
        unrec.add_metric([], sum(r.counts().stage_unrecorded for r in src.readers))
        yield unrec
        stage = HistogramMetricFamily(
            "oms_stage_latency_seconds",
            "Per order (strategy application message), time in each stage of the data "
            "plane, by TSC: rx_to_decision (burst received to outputs built), "
            "decision_to_tx (to the frames handed to the NIC), in_to_out (both), "
            "handle (the core's handler alone); and per market-data packet, feed_to_book "
            "(handed to the feed to its books and tops of book updated)", labels=["stage"])
        for name in ALL_STAGES:
            counts, s = src.stage_counts(name)
            add_histogram(stage, [name], counts, s)
        yield stage
        if src.feeds:
            yield from feed_families(src.feeds)
        md = getattr(app, "md", None)
        if md is not None and md.igmp is not None:
            yield from igmp_families(md)
        if app is not None:
            yield from app.metric_families()
        for make in EXTRA_COLLECTORS:
            yield from make().collect()

    def _messages(self, stats):
        src = self.src
        sp = CounterMetricFamily("oms_strategy_messages", "Strategy protocol messages, by "
                                 "direction and type", labels=["direction", "type"])
        for direction, key in (("in", "sp_in"), ("out", "sp_out")):
            for t in range(256):
                n = sum(getattr(s, key)[t] for s in stats)
                name = src.sp_types.get(t)
                if name is None and not n:
                    continue
                inbound = t < 0x80
                if name is not None and inbound != (direction == "in") and not n:
                    continue
                sp.add_metric([direction, name or f"0x{t:02x}"], n)
        yield sp
        ouch = CounterMetricFamily("oms_venue_messages", "OUCH messages, by direction and "
                                   "type", labels=["direction", "type"])
        for direction, key, names in (("in", "venue_in", OUCH_FROM_VENUE),
                                      ("out", "venue_out", OUCH_TO_VENUE)):
            for t in range(256):
                n = sum(getattr(s, key)[t] for s in stats)
                name = names.get(chr(t))
                if name is None and not n:
                    continue
                if name is None:
                    name = chr(t) if 32 < t < 127 else f"0x{t:02x}"
                ouch.add_metric([direction, name], n)
        yield ouch

    def _venues(self):
        src = self.src
        routed = CounterMetricFamily("oms_routed_orders", "New orders routed (Enter Order "
                                     "sent), by venue", labels=["venue"])
        up = GaugeMetricFamily("oms_venue_up", "Venue session up (1) or timed out (0)",
                               labels=["venue"])
        rtt = HistogramMetricFamily(
            "oms_venue_round_trip_seconds", "Our Enter/Replace/Cancel to the venue's first "
            "answer, by venue (burst clock)", labels=["venue"])
        for v in src.cfg.venues:
            label = [str(v.id)]
            routed.add_metric(label, src.venue_routed(v.id))
            h = src.venue_health(v.id)
            up.add_metric(label, 0 if h is None or h.down else 1)
            counts, s = src.venue_rtt_counts(v.id)
            add_histogram(rtt, label, counts, s)
        yield routed
        yield up
        yield rtt
        yield from self._fill_model()

    def _fill_model(self):
        """docs/fill-model.md "Metrics": from the cores' counters, no
        per-order Python."""
        src = self.src
        by = CounterMetricFamily("oms_route_decisions", "Smart routing decisions that chose a "
                                 "venue, by who chose: the fill model or the rules",
                                 labels=["by"])
        for who, n in src.route_counts().items():
            by.add_metric([who], n)
        yield by
        last = GaugeMetricFamily("oms_fill_prob_ppm", "The fill model's probability for the "
                                 "venue in its last decision, parts per million",
                                 labels=["venue"])
        probs = SummaryMetricFamily("oms_fill_prob", "The fill model's probabilities for the "
                                    "venue, over its decisions (sum / count: the mean)",
                                    labels=["venue"])
        ratio = GaugeMetricFamily("oms_venue_fill_ratio", "The venue's recent fill ratio the "
                                  "router reads (0..1; first execution 1, end without one 0, "
                                  "EWMA 1/16)", labels=["venue"])
        for v in src.cfg.venues:
            h = src.venue_fill(v.id)
            if h is None:
                continue
            label = [str(v.id)]
            if h.p_count:
                last.add_metric(label, h.p_last_ppm)
            probs.add_metric(label, count_value=h.p_count, sum_value=h.p_sum_ppm / 1e6)
            ratio.add_metric(label, h.fill_ratio_pm / 1000)
        yield last
        yield probs
        yield ratio


def feed_families(feeds):
    """The market-data feeds' counters (cdefs/feed.h), by venue: read in
    place like the core's (one writer per feed, 64-bit counters)."""
    from dataplane.feed import FEED_DROP_NAMES, FEED_EVENT_NAMES

    gaps = CounterMetricFamily("oms_feed_gaps", "Sequence gaps the feed detected (each "
                               "re-requested, or lost until the next session)", labels=["venue"])
    gap_msgs = CounterMetricFamily("oms_feed_gap_messages", "Messages missing in those gaps",
                                   labels=["venue"])
    drops = CounterMetricFamily("oms_feed_drops", "Feed frames and messages not applied, by "
                                "reason", labels=["venue", "reason"])
    events = CounterMetricFamily("oms_feed_events", "Feed events, by kind",
                                 labels=["venue", "event"])
    stale = GaugeMetricFamily("oms_feed_stale", "The feed-wide stale mask (0: sound; "
                              "cdefs/feed.h OMS_STALE_*)", labels=["venue"])
    orders = GaugeMetricFamily("oms_feed_book_orders", "Orders held in the feed's books",
                               labels=["venue"])
    for f in feeds:
        v = [str(f.venue)]
        st = f.lib.oms_feed_stats(f.ptr)  # the extension the feed was made in
        ev = dict(zip(FEED_EVENT_NAMES, (st.event[i] for i in range(len(FEED_EVENT_NAMES))),
                      strict=True))
        gaps.add_metric(v, ev["GAPS"])
        gap_msgs.add_metric(v, ev["GAP_MSGS"])
        for i, name in enumerate(FEED_DROP_NAMES):
            drops.add_metric(v + [name.lower()], st.drop[i])
        for name, n in ev.items():
            events.add_metric(v + [name.lower()], n)
        stale.add_metric(v, f.stale())
        orders.add_metric(v, f.live_orders())
    yield from (gaps, gap_msgs, drops, events, stale, orders)


def igmp_families(md):
    """The market-data port's IGMPv3 host (cdefs/igmp.h): reports sent,
    queries answered, and every counter by name."""
    s = md.live_stats()["igmp"]
    sent = CounterMetricFamily("oms_igmp_reports_sent", "IGMPv3 membership reports sent "
                               "(state changes, their repeats, answers to queries)")
    sent.add_metric([], s["reports_sent"])
    answered = CounterMetricFamily("oms_igmp_queries_answered", "IGMP queries (general, or "
                                   "for one of our groups) answered")
    answered.add_metric([], s["queries_answered"])
    events = CounterMetricFamily("oms_igmp_events", "The IGMPv3 host's counters, by name",
                                 labels=["event"])
    for name, n in s["counters"].items():
        events.add_metric([name.lower()], n)
    yield from (sent, answered, events)


def make_registry(source: DataPlaneSource) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(OmsCollector(source))
    return reg


def exposition(registry: CollectorRegistry) -> bytes:
    from prometheus_client.exposition import generate_latest

    return generate_latest(registry)
