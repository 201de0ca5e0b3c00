"""Training the fill-probability model (issue 9 item 3, docs/fill-model.md).

The exported model is a regularised logistic regression on binned features
and binned pairs of features (one-hot cells: a generalised additive model
with chosen interactions), which is exactly a set of additive tables of
log-odds; the artefact (control/fill_artefact.py) is those tables in fixed
point.  A seeded HistGradientBoosting classifier on the same raw features is
trained for comparison only (``omsctl model eval --boosted`` reports it).
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from control import fill_artefact as fa
from control.fill_dataset import FEATURES, Dataset

F = {name: k for k, name in enumerate(FEATURES)}

# Fixed bin edges where the feature's scale is known (ticks, flags, time);
# None: quantiles of the training data.
EDGES: dict[str, list[int] | None] = {
    "side": [1],
    "own_off_ticks": [0, 1, 2, 3],
    "contra_ticks": [-4, -3, -2, -1, 0, 1, 2],
    "spread_ticks": [2, 3, 4, 5],
    "own_qty_pct": None,
    "contra_qty_pct": None,
    "imbalance_pct": [-60, -30, -10, 10, 30, 60],
    "latency_us": [100, 1000, 5000, 10000, 20000, 40000, 80000],
    "fill_ratio_pm": None,
    "quote_age_us": [],
    "tif_ioc": [1],
    "tod_min": [30, 60, 90, 120],
}
QUANTILE_BINS = 8

# Ranges the model answers for; wider than training only where the last bin
# is open-ended by meaning (sizes, latency, ages, time of day).
OPEN_HIGH = ("own_qty_pct", "contra_qty_pct", "latency_us", "quote_age_us", "tod_min",
             "fill_ratio_pm")

# The tables.  Left out, with the held-out figures that decided it
# (docs/fill-model.md "Ablation"): the recent fill ratio and the time of day
# (no gain on held-out data; the core does not track the first yet), the
# quote age (always 0 in the simulated sessions: the client reads the
# venue's book directly).  Their columns stay in the dataset.
TABLES: list[tuple[str, str | None]] = [
    ("venue", None), ("side", None), ("own_off_ticks", None), ("contra_ticks", None),
    ("spread_ticks", None), ("own_qty_pct", None), ("contra_qty_pct", None),
    ("imbalance_pct", None), ("latency_us", None), ("tif_ioc", None),
    ("venue", "own_off_ticks"), ("venue", "contra_ticks"), ("venue", "tif_ioc"),
    ("venue", "own_qty_pct"), ("venue", "contra_qty_pct"), ("venue", "latency_us"),
    ("tif_ioc", "contra_ticks"), ("own_off_ticks", "own_qty_pct"),
    ("contra_ticks", "contra_qty_pct"), ("own_off_ticks", "spread_ticks"),
    ("tif_ioc", "contra_qty_pct"), ("own_off_ticks", "imbalance_pct"),
]


def feature_specs(ds: Dataset) -> list[dict]:
    specs = []
    for k, name in enumerate(FEATURES):
        col = ds.x[:, k]
        if name == "venue":
            edges = list(range(1, len(ds.venues)))
        elif EDGES[name] is None:
            qs = np.quantile(col, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1], method="higher")
            edges = sorted({int(v) for v in qs} - {int(col.min())})
        else:
            edges = EDGES[name]
        lo = 0 if name in ("venue", "side", "tif_ioc") else int(col.min())
        hi = len(ds.venues) - 1 if name == "venue" else fa.I64_MAX - 1 if name in OPEN_HIGH \
            else 1 if name in ("side", "tif_ioc") else int(col.max())
        if name in OPEN_HIGH:
            lo = min(lo, 0)
        specs.append({"name": name, "edges": [int(e) for e in edges], "lo": lo, "hi": hi})
    return specs


def one_hot(specs: list[dict], x: np.ndarray) -> tuple[sp.csr_matrix, list[tuple[int, int]]]:
    """The design matrix of the tables' cells, and each table's (offset, size)."""
    bins = [np.searchsorted(np.array(s["edges"], np.int64), x[:, k], side="right")
            for k, s in enumerate(specs)]
    cols, spans, off = [], [], 0
    for a, b in TABLES:
        ia = F[a]
        if b is None:
            cell, n = bins[ia], fa.nbins(specs[ia])
        else:
            ib = F[b]
            cell = bins[ia] * fa.nbins(specs[ib]) + bins[ib]
            n = fa.nbins(specs[ia]) * fa.nbins(specs[ib])
        cols.append(cell + off)
        spans.append((off, n))
        off += n
    rows = np.repeat(np.arange(len(x)), len(TABLES))
    data = np.ones(len(rows))
    m = sp.csr_matrix((data, (rows, np.stack(cols, 1).ravel())), shape=(len(x), off))
    return m, spans


def train(ds: Dataset, *, label: str = "any_fill", c: float = 0.3,
          seed: int = 1) -> tuple[dict, dict]:
    """Fit on ds; return (sealed artefact, report)."""
    y = getattr(ds, label)
    if len(np.unique(y)) < 2:
        raise ValueError("the training rows have a single label value: nothing to learn")
    specs = feature_specs(ds)
    xm, spans = one_hot(specs, ds.x)
    t0 = time.monotonic()
    lr = LogisticRegression(C=c, max_iter=2000, tol=1e-6, random_state=seed)
    lr.fit(xm, y)
    t_lr = time.monotonic() - t0
    w = lr.coef_[0]
    tables = []
    for (a, b), (off, n) in zip(TABLES, spans, strict=True):
        tables.append({"a": F[a], "b": F[b] if b else -1,
                       "w": [int(v) for v in np.round(w[off:off + n] * (1 << fa.Q))]})
    doc = fa.seal({
        "format": fa.FORMAT, "version": fa.VERSION, "label": label,
        "horizon_ms": ds.horizon_ms, "venues": ds.venues, "features": specs, "tables": tables,
        "bias": int(round(lr.intercept_[0] * (1 << fa.Q))), "q": fa.Q, "p_q": fa.P_Q,
        "lut": fa.logistic_lut(),
        "training": {"rows": int(len(y)), "sessions": sorted(int(s) for s in set(ds.session)),
                     "positive_rate": float(y.mean()), "l2_c": c, "seed": seed},
    })
    fa.validate(doc)
    err = np.abs(fa.predict(doc, ds.x) - lr.predict_proba(xm)[:, 1])
    report = {"rows": int(len(y)), "cells": int(xm.shape[1]), "fit_s": round(t_lr, 2),
              "model_id": doc["model_id"], "fixed_point_max_err": float(np.nanmax(err))}
    return doc, report


def boosted_model(ds: Dataset, label: str = "any_fill",
                  seed: int = 1) -> HistGradientBoostingClassifier:
    """The comparison model: at most 64 trees of depth 6 on the raw features."""
    m = HistGradientBoostingClassifier(max_depth=6, max_iter=64, learning_rate=0.1,
                                       categorical_features=[F["venue"]], random_state=seed,
                                       early_stopping=False)
    m.fit(ds.x, getattr(ds, label))
    return m
