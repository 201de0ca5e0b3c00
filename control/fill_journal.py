"""The fill-probability dataset from the appliance's journals (issue 9 item 2,
docs/fill-model.md "Dataset from journals").

One row per routed child order: each ROUTE record names, for every venue the
router read, the UserRefNum of the order it sent there (0: none).  The row's
features are `raw_features` of what the record holds - that venue's top of
book, quote age, RTT EWMA and recent fill ratio as the core read them, the
order's side, limit, quantity sent, time in force and time - and nothing
else: no state is rebuilt in Python, so nothing learnt after the decision
can reach a feature.  The labels come from the venue's OUCH answers in the
BURST records that follow: an Order Executed for (venue, UserRefNum) whose
burst time is within the horizon of the decision (`any_fill`), and the
executed quantity within it reaching the quantity sent (`full_fill`).
"""
from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import numpy as np

from control.fill_dataset import DAY_NS, Dataset, dataset_of_rows, raw_features

SIDE_BUY, TIF_IOC = 1, 2  # cdefs/sp_wire.h
UFO_HLEN, UFO_END_OF_SESSION = 20, 0xFFFF
OUCH_EXECUTED = ord("E")
MAGIC = b"OMSJRNL\0"


def is_journal(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == MAGIC


def _venue_answers(frames: list[bytes], addr: dict, venue_port: int, seen: dict) -> list:
    """(venue id, UserRefNum, shares) of each Order Executed in a burst's
    frames from venues, each venue message once (by its UFO sequence
    number: a retransmission is not a second fill)."""
    from dataplane.frames import blocks, ipv4_udp
    out = []
    for f in frames:
        v = ipv4_udp(f)
        if isinstance(v, str):
            continue
        src, _dst, udp = v
        if len(udp) < 8 + UFO_HLEN:
            continue
        sport, dport = struct.unpack_from(">HH", udp)
        venue = addr.get((src, sport))
        if venue is None or dport != venue_port:
            continue
        first, count = struct.unpack_from(">QH", udp, 8 + 10)
        if count == UFO_END_OF_SESSION:
            continue
        mine = seen.setdefault(venue, set())
        for i, msg in enumerate(blocks(udp, 8 + UFO_HLEN, count)):
            if first + i in mine:
                continue
            mine.add(first + i)
            if len(msg) >= 17 and msg[0] == OUCH_EXECUTED:
                ref, qty = struct.unpack_from(">II", msg, 9)
                out.append((venue, ref, qty))
    return out


def journal_rows(path: str | Path, venues: list[str], horizon_ms: int, session: int
                 ) -> tuple[list, dict]:
    """The rows of one journal: (features, any, full, p_true, session, t_ns)."""
    from dataplane import journal_route as jr
    from dataplane.journal import first_config
    cfg = first_config(str(path))
    name = {v.id: v.name for v in cfg.venues}
    slot = {vid: venues.index(n) for vid, n in name.items() if n in venues}
    addr = {(ipaddress.IPv4Address(v.ip).packed, v.port): v.id for v in cfg.venues}
    horizon = horizon_ms * 1_000_000
    sent = []   # (t_ns, venue id, ref, alloc, features)
    execs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    seen: dict = {}
    counts = {"decisions": 0, "orders": 0, "empty_side": 0, "unknown_venue": 0}
    for rec in jr.records(path):
        if rec.type == jr.ROUTE:
            head, vs = jr.route(rec.body)
            counts["decisions"] += 1
            for v in vs:
                if not v["ref"]:
                    continue
                counts["orders"] += 1
                if int(v["venue"]) not in slot:
                    counts["unknown_venue"] += 1
                    continue
                f = raw_features(slot[int(v["venue"])], int(head["side"]) == SIDE_BUY,
                                 int(head["price"]), int(v["alloc"]), int(v["bid_px"]),
                                 int(v["bid_qty"]), int(v["ask_px"]), int(v["ask_qty"]),
                                 int(head["tick"]), int(v["rtt_ewma_ns"]),
                                 int(v["fill_ratio_pm"]), int(v["quote_age_us"]) * 1000,
                                 int(head["tif"]) == TIF_IOC, rec.now_ns % DAY_NS)
                if f is None:
                    counts["empty_side"] += 1
                    continue
                sent.append((rec.now_ns, int(v["venue"]), int(v["ref"]), int(v["alloc"]), f))
        elif rec.type == jr.BURST:
            for venue, ref, qty in _venue_answers(jr.frames(rec.body), addr,
                                                  cfg.appliance.venue_port, seen):
                execs.setdefault((venue, ref), []).append((rec.now_ns, qty))
    rows = []
    for t, venue, ref, alloc, f in sent:
        got = sum(q for ts, q in execs.get((venue, ref), ()) if ts - t <= horizon)
        rows.append((f, int(got > 0), int(got >= alloc), np.nan, session, t))
    return rows, counts


def build(paths: list[Path], horizon_ms: int = 1000, venues: list[str] | None = None
          ) -> tuple[Dataset, dict]:
    """The dataset of journals (session = the journal's place in `paths`);
    the venue column counts the configured venues' names in sorted order
    (or `venues`)."""
    from dataplane.journal import first_config
    if venues is None:
        venues = sorted({v.name for p in paths for v in first_config(str(p)).venues})
    allrows, counts = [], {}
    for k, p in enumerate(paths):
        rows, c = journal_rows(p, venues, horizon_ms, k + 1)
        allrows += rows
        counts = {key: counts.get(key, 0) + c[key] for key in c}
    counts["rows"] = len(allrows)
    return dataset_of_rows(allrows, venues, horizon_ms), counts
