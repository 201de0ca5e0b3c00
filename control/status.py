"""`omsctl status`, `omsctl top` and `omsctl order show`: what a running
appliance answers over its control socket (built here, in the appliance's
control thread) and how the CLI prints it.

Counters come from a snapshot the worker copies between two bursts
(OMS_CMD_SNAPSHOT); latency percentiles from the stage histograms read in
place; an order from a copy the worker makes between two bursts
(OMS_CMD_ORDER)."""
from __future__ import annotations

import re
import time

from control.metrics import APP_TYPES, STAGES, percentiles, reason_names

# what an order's state means on the venue side: the OUCH message that took
# it there (docs/semantics.md)
VENUE_CAUSE = {
    "PendingNew": "Enter Order sent",
    "New": "Order Accepted received",
    "PartiallyFilled": "Order Executed received",
    "Filled": "Order Executed received (or Replaced to at most the filled quantity)",
    "PendingReplace": "Replace Order sent",
    "Replaced": "Order Replaced received",
    "PendingCancel": "Cancel Order sent",
    "Canceled": "Order Canceled received",
    "Rejected": "Rejected received",
    "Expired": "Order Canceled (IOC) received",
}

# of an AF_XDP socket's counters, what status shows (the exporter has all)
AFXDP_PORT_KEYS = ("rx_frames", "tx_frames", "tx_waits", "tx_full", "k_rx_dropped",
                   "k_rx_ring_full", "zerocopy")

JOURNAL_NOTE = ("the core keeps each state's last entry time only: the venue messages "
                "are inferred from the transitions, a state entered twice shows its last "
                "entry, and the exact messages (sequence numbers, fields) come with the "
                "durability journal")


def _add(a: dict, b: dict) -> dict:
    """Counters of two workers added up, key by key."""
    out = dict(a)
    for k, v in b.items():
        out[k] = _add(out.get(k, {}), v) if isinstance(v, dict) else out.get(k, 0) + v
    return out


def appliance_status(app) -> dict:
    """What `omsctl status` shows, built in the appliance's control thread:
    counters from a snapshot every worker copies between two bursts, added
    up over the workers; latency from the histograms of every worker,
    merged."""
    lib = app.lib
    live, counters = 0, {}
    for n, stats in app.snapshot_all():
        live += n
        counters = _add(counters, stats)
    src = app.metrics_source
    reasons = reason_names(lib)
    rejects = {"business": {}, "system": {}}
    for slot, n in counters.get("reject_business", {}).items():
        rejects["business"][reasons.get(slot, str(slot))] = n
    for slot, n in counters.get("reject_system", {}).items():
        rejects["system"][reasons.get(1000 + slot, str(1000 + slot))] = n
    report = app.report()
    hz = src.cycles.units_per_second
    latency = {name: percentiles(lib, [r.stage(stage) for r in src.readers], hz)
               for name, stage in STAGES.items()}
    venues = []
    now = time.time_ns()
    for v in app.cfg.venues:
        h = src.venue_health(v.id)
        if h is None:
            continue
        venues.append({
            "id": v.id, "name": v.name, "up": not h.down,
            "last_rx_ago_ms": round((now - h.last_rx_ns) / 1e6, 1) if h.last_rx_ns else None,
            "next_in_seq": h.next_in_seq, "next_out_seq": h.next_out_seq,
            "gap_requests_outstanding": h.gap_requests_outstanding,
            "routed": src.venue_routed(v.id),
            "round_trip_ns": percentiles(lib, src.venue_rtts(v.id), 1e9)})
    sessions = []
    for worker, r in enumerate(src.readers):
        for sh in r.session_health():
            sessions.append({"id": sh.id, "worker": worker, "logged_in": bool(sh.logged_in),
                             "enabled": bool(sh.enabled), "next_in_seq": sh.next_in_seq,
                             "next_out_seq": sh.next_out_seq})
    orders = src.orders()
    events = counters.get("event", {})
    return {
        "uptime_s": round(time.time() - app.started, 1),
        "config_generation": app.config_generation,
        "kill": app.kill_state(),
        **backend_status(app, report),
        "worker": report["worker"],
        "frames": {"in": events.get("FRAMES_IN", 0), "out": events.get("FRAMES_OUT", 0)},
        "orders": {t: orders["handled"][i] for i, t in enumerate(APP_TYPES)},
        "live_orders": live,
        "rejects": rejects,
        "drops": counters.get("drop", {}),
        "latency_ns": latency,
        "venues": venues,
        "sessions": sorted(sessions, key=lambda x: x["id"]),
        # subscriptions, dispatch counters, the IGMPv3 host's reports and
        # answers (dataplane/market_data.py CMarketData.stats)
        "market_data": report.get("market_data"),
        "replication": report.get("replication"),
        "time": time.time(),
    }


def backend_status(app, report: dict) -> dict:
    """Where the poll loop runs, its ports and its queues, per backend."""
    lib = app.lib
    if report.get("backend") == "afxdp":
        a = app.cfg.dataplane.afxdp
        return {"backend": "afxdp",
                "lcores": {"poll_thread_cpu": a.cpu if a.cpu >= 0 else "any"},
                "ports": {name: {k: int(p[k]) for k in AFXDP_PORT_KEYS}
                          for name, p in report["ports"].items()},
                "queues": {}}
    lcores = {"control": int(re.split(r"[,@-]", app.cfg.dataplane.lcores)[0]),
              "workers": list(app.lcores)}
    queues = {"command_rings": _rings(lib, app.command_rings)}
    if app.io is not None:
        lcores["io"] = app.io_lcore
        queues["worker_in_rings"] = _rings(lib, [w.in_ring for w in app.workers])
        queues["worker_out_rings"] = _rings(lib, [w.out_ring for w in app.workers])
    queues["mempool"] = {"in_use": report["mbufs_in_use"], "size": lib.oms_pool_size(app.pool)}
    return {"backend": "dpdk " + report.get("threading", "rtc"), "lcores": lcores,
            "ports": {str(pid): {**v, **report["steering"].get(pid, {})}
                      for pid, v in report["ports"].items()},
            "queues": queues}


def _rings(lib, rings) -> dict:
    """Entries waiting, by worker, and the capacity of each."""
    return {"entries": [lib.oms_ring_count(r) for r in rings],
            "capacity": lib.oms_ring_capacity(rings[0]) if rings else 0}


def order_history(core, view) -> dict:
    from dataplane.core import STATE_NAMES

    o = {name: getattr(view, name) for name, _ in core.ffi.typeof("struct oms_order_view").fields
         if name != "state_ts"}
    state = STATE_NAMES.get(view.state, str(view.state))
    transitions = sorted(
        ({"state": STATE_NAMES.get(s, str(s)), "ts_ns": view.state_ts[s]}
         for s in range(1, len(view.state_ts)) if view.state_ts[s]),
        key=lambda t: (t["ts_ns"], t["state"]))
    venue_messages = [{"ts_ns": t["ts_ns"], "message": VENUE_CAUSE[t["state"]]}
                      for t in transitions if t["state"] in VENUE_CAUSE]
    return {"order": {**o, "state": state}, "transitions": transitions,
            "venue_messages": venue_messages, "note": JOURNAL_NOTE}


def _ns(v) -> str:
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    return f"{v / 1000:.2f} µs" if v >= 1000 else f"{v:.0f} ns"


def render_status(d: dict, prev: dict | None = None) -> str:
    """Text for a terminal; with `prev` (an earlier answer) rates too."""
    dt = (d["time"] - prev["time"]) if prev else 0
    def rate(now, before):
        return f" ({(now - before) / dt:,.0f}/s)" if prev and dt > 0 else ""
    where = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d["lcores"].items())
    lines = [f"{d['backend']}   uptime {d['uptime_s']:.0f} s   config generation "
             f"{d['config_generation']['in_force']} (published "
             f"{d['config_generation']['published']})   {where}   live orders {d['live_orders']}"]
    killed = [a for a, on in d["kill"].items() if on]
    lines.append("kill switch: " + (f"ENGAGED for accounts {', '.join(killed)}" if killed
                                    else "released"))
    r = d.get("replication")
    if r:
        state = ("in sync" if r["in_sync"] else "DEGRADED (alone)" if r["degraded"] else "")
        lines.append(f"replication: {r['role']}   epoch {r['epoch']}   peer "
                     f"{'connected' if r['connected'] else 'none'}   {state}   acked seq "
                     f"{r['acked_seq']}   takeovers {r['takeovers']}")
    lines.append("")
    lines.append("ports")
    for pid, p in d["ports"].items():
        if "ipackets" in p:
            link = ("-" if "link_up" not in p else "down" if not p["link_up"] else
                    f"up {p['link_speed_mbps'] / 1000:g} Gbps" if p["link_speed_mbps"] else "up")
            lines.append(f"  {pid}: {p.get('driver', '')}  link {link}  MTU {p.get('mtu', '-')}  "
                         f"RX queues {p.get('rx_queues', 1)}{' (RSS)' if p.get('rss') else ''}")
            lines.append(f"      rx {p['ipackets']:,}  tx {p['opackets']:,}  missed "
                         f"{p['imissed']:,}  tx errors {p['oerrors']:,}  steering "
                         f"{p.get('path', '-')}")
        else:
            lines.append(f"  {pid}: " + "  ".join(f"{k} {v:,}" for k, v in p.items()))
    q = dict(d["queues"])
    if q:
        pool = q.pop("mempool", None)
        rings = [f"{name.replace('_', ' ')} {r['entries']} of {r['capacity']}"
                 for name, r in q.items()]
        lines.append("queues: " + "   ".join(rings) + (
            f"   mempool {pool['in_use']}/{pool['size']} mbufs in use" if pool else ""))
    w = d["worker"]
    polls = w.get("busy_polls", 0) + w.get("idle_polls", 0)
    busy = f"  busy polls {100.0 * w['busy_polls'] / polls:.1f}%" if polls else ""
    lines.append("poll loop: " + "  ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in w.items()
                                           if k in ("rx_frames", "tx_frames", "tx_dropped"))
                 + busy)
    fr = d["frames"]
    pf = prev["frames"] if prev else fr
    lines.append(f"frames: in {fr['in']:,}{rate(fr['in'], pf['in'])}   out "
                 f"{fr['out']:,}{rate(fr['out'], pf['out'])}")
    po = prev["orders"] if prev else d["orders"]
    lines.append("orders: " + "   ".join(f"{t} {n:,}{rate(n, po[t])}"
                                        for t, n in d["orders"].items()))
    for kind in ("business", "system"):
        r = d["rejects"][kind]
        lines.append(f"rejects ({kind}): " + (", ".join(f"{k} {v:,}" for k, v in
                                                         sorted(r.items())) or "none"))
    lines.append("drops: " + (", ".join(f"{k} {v:,}" for k, v in sorted(d["drops"].items()))
                              or "none"))
    lines.append("")
    lines.append(f"{'latency':<16}{'count':>10}{'p50':>12}{'p90':>12}{'p99':>12}"
                 f"{'p99.9':>12}{'max':>12}")
    rows = list(d["latency_ns"].items())
    rows += [(f"venue {v['id']} rtt", v["round_trip_ns"]) for v in d["venues"]]
    for name, p in rows:
        lines.append(f"{name:<16}{p['count']:>10,}" + "".join(
            f"{_ns(p.get(k)):>12}" for k in ("p50", "p90", "p99", "p99.9", "max")))
    lines.append("")
    lines.append("venues")
    for v in d["venues"]:
        ago = v["last_rx_ago_ms"]
        lines.append(f"  {v['id']} {v['name']}: {'up' if v['up'] else 'DOWN'}   routed "
                     f"{v['routed']:,}   last heard {'-' if ago is None else f'{ago:.0f} ms'} "
                     f"ago   gap requests {v['gap_requests_outstanding']}")
    md = d.get("market_data")
    if md:
        subs = ", ".join(f"venue {v} {g}" for v, g in md["subscriptions"].items()) or "none"
        lines.append(f"market data: {subs}   to feeds {md['to_feed']:,}   filtered "
                     f"{md['filtered']:,}   multicast list {md.get('mc_list', '-')}")
        if md.get("igmp"):
            g = md["igmp"]
            lines.append(f"  igmp: reports sent {g['reports_sent']:,}   queries answered "
                         f"{g['queries_answered']:,}   frames in {g['frames_in']:,}")
    lines.append("sessions")
    for s in d["sessions"]:
        lines.append(f"  {s['id']} (worker {s['worker']}): "
                     f"{'logged in' if s['logged_in'] else 'logged out'}"
                     f"{'' if s['enabled'] else ' (disabled)'}   next in {s['next_in_seq']}"
                     f"   next out {s['next_out_seq']}")
    return "\n".join(lines)


def render_order(d: dict) -> str:
    o = d["order"]
    lines = [f"order {o['cl_ord_id']} of session {o['session_id']} (account {o['account']}): "
             f"{o['state']}",
             f"  qty {o['qty']}  cum {o['cum_qty']}  leaves {o['leaves_qty']}  price "
             f"{o['price'] / 1e8:.4f}  venue {o['venue']}  token (UserRefNum) {o['ref']}"
             + (f"  pending token {o['pending_ref']}" if o["pending_ref"] else ""),
             "transitions:"]
    for t in d["transitions"]:
        lines.append(f"  {t['ts_ns']}  {t['state']}")
    lines.append("venue messages:")
    for m in d["venue_messages"]:
        lines.append(f"  {m['ts_ns']}  {m['message']}")
    lines.append(f"({d['note']})")
    return "\n".join(lines)
