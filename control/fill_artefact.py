"""The fill-probability model's artefact and its fixed-point evaluator
(issue 9 item 3, docs/fill-model.md "Artefact").

The artefact is a JSON document, versioned and checksummed: binned additive
tables of log-odds in Q16 fixed point (one feature's bins, or a pair's),
a bias, and a logistic lookup table (probability in Q30 at evenly spaced
log-odds, linearly interpolated).  Evaluation is integer arithmetic only:
bin each feature (the number of its edges at or below the value), add the
tables' cells, clamp, look up.  cdefs/fill_model.c does exactly this, on
the struct :func:`to_c` fills; ``tests/test_fill_model_c.py`` holds the two
to the same answers.

A feature outside its ``[lo, hi]`` (what training saw) gives no
probability: the router then decides by its rules.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from control.fill_dataset import FEATURES

FORMAT = "oms-fill-model"
VERSION = 1
Q = 16                  # log-odds in Q16
P_Q = 30                # probabilities in Q30
Z_MAX = 8 << Q          # log-odds clamped to [-8, 8]
LUT_SHIFT = 10          # one lookup interval = 2^10 in Q16 = 1/64
LUT_SIZE = (2 * Z_MAX >> LUT_SHIFT) + 1

# The C struct's capacities (cdefs/fill_model.h): an artefact beyond them is refused.
MAX_EDGES = 15
MAX_TABLES = 32
MAX_CELLS = 4096
I64_MAX = (1 << 63) - 1  # the C edges' padding: a range ends below it
I64_MIN = -(1 << 63)


class ModelError(ValueError):
    """A model file that cannot be used: the message says why."""


def logistic_lut() -> list[int]:
    z = (np.arange(LUT_SIZE, dtype=np.int64) * (1 << LUT_SHIFT) - Z_MAX) / (1 << Q)
    return [int(v) for v in np.round((1 << P_Q) / (1 + np.exp(-z))).astype(np.int64)]


def _payload(doc: dict) -> bytes:
    body = {k: v for k, v in doc.items() if k not in ("sha256", "model_id")}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def seal(doc: dict) -> dict:
    """Stamp the checksum and the model id (its first 16 hex digits)."""
    digest = hashlib.sha256(_payload(doc)).hexdigest()
    return {**doc, "sha256": digest, "model_id": digest[:16]}


def model_id_u64(doc: dict) -> int:
    return int(doc["model_id"], 16)


def validate(doc: dict, where: str = "model") -> dict:
    """The artefact, checked: format, version, checksum, shapes, capacities."""
    def bad(why: str):
        raise ModelError(f"{where}: {why}")

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        bad(f"not a fill-probability model (format is not {FORMAT!r})")
    if doc.get("version") != VERSION:
        bad(f"model version {doc.get('version')!r}, this build reads version {VERSION}")
    try:
        digest = hashlib.sha256(_payload(doc)).hexdigest()
    except (TypeError, ValueError) as e:
        bad(f"unreadable: {e}")
    if doc.get("sha256") != digest or doc.get("model_id") != digest[:16]:
        bad("checksum mismatch (the file was changed after it was sealed)")
    feats = doc.get("features")
    if not isinstance(feats, list) or [f.get("name") for f in feats] != list(FEATURES):
        bad(f"features must be {list(FEATURES)}")
    for f in feats:
        e = f["edges"]
        if len(e) > MAX_EDGES or any(b <= a for a, b in zip(e, e[1:], strict=False)):
            bad(f"feature {f['name']}: at most {MAX_EDGES} increasing edges")
        if not (I64_MIN <= f["lo"] <= f["hi"] < I64_MAX):
            bad(f"feature {f['name']}: bad range")
    tables = doc.get("tables")
    if not isinstance(tables, list) or not 0 < len(tables) <= MAX_TABLES:
        bad(f"1 to {MAX_TABLES} tables")
    cells = 0
    for t in tables:
        a, b = t["a"], t["b"]
        if not (0 <= a < len(FEATURES)) or not (-1 <= b < len(FEATURES)) or a == b:
            bad("a table names an unknown feature")
        n = nbins(feats[a]) * (nbins(feats[b]) if b >= 0 else 1)
        if len(t["w"]) != n or any(not isinstance(w, int) or abs(w) >= 1 << 31 for w in t["w"]):
            bad(f"table ({FEATURES[a]}, {FEATURES[b] if b >= 0 else '-'}): {n} int32 cells")
        cells += n
    if cells > MAX_CELLS:
        bad(f"{cells} cells, at most {MAX_CELLS}")
    lut = doc.get("lut")
    if doc.get("q") != Q or doc.get("p_q") != P_Q or not isinstance(lut, list) or \
            len(lut) != LUT_SIZE or any(not isinstance(v, int) for v in lut) or \
            max(abs(a - b) for a, b in zip(lut, logistic_lut(), strict=True)) > 2:
        bad("logistic lookup table or fixed-point scales differ from this build's")
    if not isinstance(doc.get("bias"), int) or abs(doc["bias"]) >= 1 << 31:
        bad("bias must be an int32")
    if not isinstance(doc.get("venues"), list) or not doc["venues"]:
        bad("no venues")
    return doc


def load(path: str | Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: cannot read: {e}") from e
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: not JSON: {e}") from e
    return validate(doc, str(path))


def save(doc: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n",
                          encoding="utf-8")


def nbins(f: dict) -> int:
    return len(f["edges"]) + 1


def predict_q(doc: dict, x: np.ndarray) -> np.ndarray:
    """Fixed-point probabilities (Q30, int64) of feature rows x [n, F];
    -1 where a feature is out of range."""
    x = np.asarray(x, dtype=np.int64)
    feats = doc["features"]
    ok = np.ones(len(x), bool)
    bins = []
    for k, f in enumerate(feats):
        ok &= (x[:, k] >= f["lo"]) & (x[:, k] <= f["hi"])
        bins.append(np.searchsorted(np.array(f["edges"], np.int64), x[:, k], side="right"))
    z = np.full(len(x), doc["bias"], np.int64)
    for t in doc["tables"]:
        w = np.array(t["w"], np.int64)
        cell = bins[t["a"]] if t["b"] < 0 else bins[t["a"]] * nbins(feats[t["b"]]) + bins[t["b"]]
        z += w[cell]
    z = np.clip(z, -Z_MAX, Z_MAX) + Z_MAX
    lut = np.array(doc["lut"], np.int64)
    i = z >> LUT_SHIFT
    frac = z & ((1 << LUT_SHIFT) - 1)
    nxt = lut[np.minimum(i + 1, LUT_SIZE - 1)]
    p = lut[i] + (((nxt - lut[i]) * frac) >> LUT_SHIFT)
    return np.where(ok, p, -1)


def predict(doc: dict, x: np.ndarray) -> np.ndarray:
    """Probabilities as floats (NaN where out of range), from the fixed-point path."""
    q = predict_q(doc, x)
    return np.where(q < 0, np.nan, q / float(1 << P_Q))


def to_c(doc: dict, ffi, m) -> None:
    """Fill a `struct oms_fill_model` (cdefs/fill_model.h) from a validated artefact."""
    ffi.memmove(m, b"\0" * ffi.sizeof("struct oms_fill_model"), ffi.sizeof("struct oms_fill_model"))
    m.id = model_id_u64(doc)
    m.bias = doc["bias"]
    m.n_venues = len(doc["venues"])
    for k, f in enumerate(doc["features"]):
        m.lo[k], m.hi[k] = f["lo"], f["hi"]
        m.n_edges[k] = len(f["edges"])
        for j, e in enumerate(f["edges"]):
            m.edges[k][j] = e
    off = 0
    for i, t in enumerate(doc["tables"]):
        m.tables[i].a = t["a"]
        m.tables[i].b = t["b"] if t["b"] >= 0 else 0xFF
        m.tables[i].nb_b = nbins(doc["features"][t["b"]]) if t["b"] >= 0 else 1
        m.tables[i].offset = off
        for j, w in enumerate(t["w"]):
            m.w[off + j] = w
        off += len(t["w"])
    m.n_tables = len(doc["tables"])
    for j, v in enumerate(doc["lut"]):
        m.lut[j] = v
