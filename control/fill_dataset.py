"""The fill-probability dataset (issue 9 item 2, docs/fill-model.md "Dataset").

One row per routed child order: the features known when it was sent, the
labels (a fill within the horizon; a full fill) and, apart, the simulator's
true probability (evaluation only, never a feature).

Source: the simulated sessions' ``sessionNN.orders.jsonl`` (what the client
saw at decision time, what it sent, what happened) joined with
``sessionNN.truth.jsonl``.  The per-venue state a router keeps -- its
acknowledgement round-trip EWMA and its recent fill ratio -- is rebuilt in
time order from the earlier orders, each fact used only from the moment the
client would have learnt it: a round trip when the venue's entry was
acknowledged (send + entry delay), an outcome when its horizon had passed
(entry + horizon).  ``tests/test_fill_dataset.py`` is the leak test.

Every feature is an integer computed by :func:`raw_features` with integer
arithmetic only, the same function the fixed-point evaluator and the C core
(cdefs/fill_model.c ``oms_fill_features``) compute.
"""
from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DAY_NS = 86_400_000_000_000
OPEN_NS = 34_200 * 1_000_000_000
TICK = 100  # the sessions' price tick (pcaps/make_sim_sessions.py)

# The feature columns, in the order of struct oms_fill_input's derived
# features (cdefs/fill_model.h OMS_FILL_F_*).
FEATURES = ("venue", "side", "own_off_ticks", "contra_ticks", "spread_ticks", "own_qty_pct",
            "contra_qty_pct", "imbalance_pct", "latency_us", "fill_ratio_pm", "quote_age_us",
            "tif_ioc", "tod_min")

FILL_RATIO_START = 500  # per mille, before a venue has any known outcome
RTT_EWMA_SHIFT = 3      # the core's: ewma = (7 ewma + rtt) / 8 (cdefs/router.c)
FILL_EWMA_SHIFT = 4     # recent fill ratio: (15 r + 1000 filled) / 16


def raw_features(venue: int, side_buy: bool, price: int, qty: int, bid_px: int, bid_qty: int,
                 ask_px: int, ask_qty: int, tick: int, rtt_ewma_ns: int, fill_ratio_pm: int,
                 quote_age_ns: int, tif_ioc: bool, tod_ns: int) -> tuple[int, ...] | None:
    """The integer features of one candidate, or None when the book has an
    empty side (the model then says nothing and the rule router decides)."""
    if not bid_qty or not ask_qty or qty <= 0 or tick <= 0:
        return None
    own_px, own_q, con_px, con_q = ((bid_px, bid_qty, ask_px, ask_qty) if side_buy
                                    else (ask_px, ask_qty, bid_px, bid_qty))
    sgn = 1 if side_buy else -1
    return (venue, 0 if side_buy else 1,
            sgn * (price - own_px) // tick,
            sgn * (price - con_px) // tick,
            (ask_px - bid_px) // tick,
            own_q * 100 // qty, con_q * 100 // qty,
            (own_q - con_q) * 100 // (own_q + con_q),
            rtt_ewma_ns // 1000, fill_ratio_pm, quote_age_ns // 1000,
            1 if tif_ioc else 0, max(0, tod_ns - OPEN_NS) // 60_000_000_000)


@dataclass
class Dataset:
    x: np.ndarray          # int64 [n, len(FEATURES)]
    any_fill: np.ndarray   # uint8: a fill within the horizon of the venue's entry
    full_fill: np.ndarray  # uint8: the whole quantity filled
    p_true: np.ndarray     # float64: the simulator's probability, NaN if unknown (evaluation only)
    session: np.ndarray    # int32
    t_ns: np.ndarray       # int64, decision time
    venues: list[str]      # venue column value -> name
    horizon_ms: int

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, x=self.x, any_fill=self.any_fill, full_fill=self.full_fill,
                            p_true=self.p_true, session=self.session, t_ns=self.t_ns,
                            venues=np.array(self.venues), features=np.array(FEATURES),
                            horizon_ms=np.int64(self.horizon_ms))

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        with np.load(path) as z:
            if tuple(z["features"]) != FEATURES:
                raise ValueError(f"{path}: feature columns {list(z['features'])}, "
                                 f"expected {list(FEATURES)}")
            return cls(z["x"], z["any_fill"], z["full_fill"], z["p_true"], z["session"],
                       z["t_ns"], [str(v) for v in z["venues"]], int(z["horizon_ms"]))

    def select(self, mask: np.ndarray) -> Dataset:
        return Dataset(self.x[mask], self.any_fill[mask], self.full_fill[mask],
                       self.p_true[mask], self.session[mask], self.t_ns[mask], self.venues,
                       self.horizon_ms)


def dataset_of_rows(rows: list, venues: list[str], horizon_ms: int) -> Dataset:
    """A Dataset of rows (features, any, full, p_true, session, t_ns), from
    session files or from journals."""
    n = len(rows)
    return Dataset(np.array([r[0] for r in rows], np.int64).reshape(n, len(FEATURES)),
                   np.array([r[1] for r in rows], np.uint8),
                   np.array([r[2] for r in rows], np.uint8),
                   np.array([r[3] for r in rows], np.float64),
                   np.array([r[4] for r in rows], np.int32),
                   np.array([r[5] for r in rows], np.int64), venues, horizon_ms)


def session_rows(rows: list[dict], venues: list[str], horizon_ms: int,
                 truth: dict | None = None) -> tuple[list, dict]:
    """Feature rows of one session's orders (in send order); returns
    (rows as tuples of (features, any, full, p_true, session, t_ns), counts)."""
    horizon = horizon_ms * 1_000_000
    vix = {v: i for i, v in enumerate(venues)}
    rtt = dict.fromkeys(venues, -1)
    ratio = dict.fromkeys(venues, FILL_RATIO_START)
    learnt: list[tuple[int, int, int, str, int]] = []  # (when, kind, seq, venue, value)
    out, counts = [], {"orders": 0, "empty_side": 0, "no_entry": 0, "unknown_venue": 0}
    for r in rows:
        now = r["t_ns"]
        while learnt and learnt[0][0] <= now:  # facts the client knows by now, in time order
            _, kind, _, v, val = heapq.heappop(learnt)
            if kind == 0:
                rtt[v] = val if rtt[v] < 0 else (rtt[v] * 7 + val) >> RTT_EWMA_SHIFT
            else:
                ratio[v] = (ratio[v] * 15 + 1000 * val) >> FILL_EWMA_SHIFT
        counts["orders"] += 1
        v = r["venue"]
        if v not in vix:
            counts["unknown_venue"] += 1
            continue
        delay = round(r["entry_delay_ms"] * 1e6)
        first = r["first_fill_ms"]
        hit = first is not None and round(first * 1e6) <= horizon
        if delay >= 0:
            heapq.heappush(learnt, (now + delay, 0, r["seq"], v, delay))
            heapq.heappush(learnt, (now + delay + horizon, 1, r["seq"], v, int(hit)))
        else:
            counts["no_entry"] += 1
        f = raw_features(vix[v], r["side"] == "B", r["price"], r["qty"], r["bid_px"],
                         r["bid_qty"], r["ask_px"], r["ask_qty"], TICK, max(rtt[v], 0),
                         ratio[v], 0, r["tif"] == "3", now % DAY_NS)
        if f is None:
            counts["empty_side"] += 1
            continue
        p = np.nan if truth is None else truth.get((v, r["user_ref"]), np.nan)
        out.append((f, int(hit), int(r["filled"] >= r["qty"]), p, r["session"], now))
    return out, counts


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_truth(path: Path) -> dict:
    out = {}
    if path.exists():
        with open(path, encoding="utf-8") as f:
            for line in f:
                t = json.loads(line)
                out[(t["venue"], t["user_ref"])] = t["p_fill"]
    return out


def build(paths: list[Path], horizon_ms: int = 1000, venues: list[str] | None = None
          ) -> tuple[Dataset, dict]:
    """The dataset of session order files (truth beside each, where present)."""
    rows_by, truth_by = {}, {}
    for p in paths:
        p = Path(p)
        if not p.name.endswith(".orders.jsonl"):
            raise ValueError(f"{p}: not a session orders file (sessionNN.orders.jsonl)")
        rows_by[p] = read_jsonl(p)
        truth_by[p] = read_truth(p.with_name(p.name.replace(".orders.", ".truth.")))
        if horizon_ms > _session_horizon(p):
            raise ValueError(f"{p}: horizon {horizon_ms} ms is longer than the session's "
                             f"{_session_horizon(p)} ms (its orders were cancelled then)")
    if venues is None:
        venues = sorted({r["venue"] for rows in rows_by.values() for r in rows})
    allrows, counts = [], {}
    for p, rows in rows_by.items():
        out, c = session_rows(rows, venues, horizon_ms, truth_by[p])
        allrows += out
        counts = {k: counts.get(k, 0) + c[k] for k in c}
    counts["rows"] = len(allrows)
    return dataset_of_rows(allrows, venues, horizon_ms), counts


def _session_horizon(p: Path) -> int:
    m = p.parent / "manifest.json"
    if m.exists():
        return int(json.loads(m.read_text())["horizon_ms"])
    return 1000
