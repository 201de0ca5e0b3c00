"""The fill-probability model (docs/fill-model.md): the dataset
(control/fill_dataset.py: one row per order, features known at decision time
only -- the leak test --, labels from what happened, the true probability
apart), training and evaluation (omsctl model train / eval), the artefact
(refused when changed) and its evaluators, Python and C, in agreement."""
import copy
import json
import os
import random
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from control import fill_artefact as fa
from control import fill_dataset as fd
from control import fill_train
from control.cli import main as omsctl
from pcaps.make_fill_sessions import main as make_sessions

HORIZON_NS = 1000 * 1_000_000
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    out = tmp_path_factory.mktemp("fill_sessions")
    assert make_sessions([str(out), "--train", "1", "--train-orders", "1500", "--eval-orders",
                          "400", "--eval-paths", "4", "--jobs", "2"]) == 0
    return out


def features(rows, venues):
    out, _ = fd.session_rows(rows, venues, 1000)
    return {r[5]: r[0] for r in out}


def test_dataset_cli_rows_labels_truth(sessions, tmp_path):
    files = [str(sessions / "session01.orders.jsonl"), str(sessions / "session02.orders.jsonl")]
    assert omsctl(["model", "dataset", *files, "-o", str(tmp_path / "d.npz")]) == 0
    ds = fd.Dataset.load(tmp_path / "d.npz")
    rows = fd.read_jsonl(sessions / "session01.orders.jsonl") + \
        fd.read_jsonl(sessions / "session02.orders.jsonl")
    assert len(rows) == 1900
    rows = [r for r in rows if r["bid_qty"] and r["ask_qty"]]  # an empty side: no row
    assert 1850 < len(ds.x) == len(rows)
    assert ds.venues == ["BUSY", "DARK", "FADE", "ICEBERG", "JITTER", "PLAIN"]
    for i in (0, 17, 1490, 1500, len(rows) - 1):
        r, x = rows[i], dict(zip(fd.FEATURES, ds.x[i], strict=True))
        assert ds.t_ns[i] == r["t_ns"] and ds.venues[x["venue"]] == r["venue"]
        assert ds.any_fill[i] == r["filled_in_horizon"]
        assert ds.full_fill[i] == (r["filled"] == r["qty"])
        assert x["own_off_ticks"] == r["offset_ticks"]
        assert x["spread_ticks"] * fd.TICK == r["ask_px"] - r["bid_px"]
        assert x["tif_ioc"] == (r["tif"] == "3")
    assert np.isfinite(ds.p_true).all()  # every order has its truth line
    assert abs(ds.p_true.mean() - ds.any_fill.mean()) < 0.05
    # the router's state is rebuilt: latency from the jittery venue's acks, fill ratios move
    jit = ds.x[:, 0] == ds.venues.index("JITTER")
    assert np.median(ds.x[jit, fd.FEATURES.index("latency_us")][50:]) > 5000
    assert len(set(ds.x[:, fd.FEATURES.index("fill_ratio_pm")])) > 20


def test_changing_anything_after_the_decision_leaves_the_row_unchanged(sessions):
    rows = fd.read_jsonl(sessions / "session01.orders.jsonl")
    venues = sorted({r["venue"] for r in rows})
    base = features(rows, venues)
    rng = random.Random(9)
    checked = 0
    for i in rng.sample(range(50, len(rows)), 25):
        t = rows[i]["t_ns"]
        alt = copy.deepcopy(rows)
        for j, r in enumerate(alt):
            entry = t if r["entry_delay_ms"] is None else r["t_ns"] + r["entry_delay_ms"] * 1e6
            if j > i:  # everything sent later: other venue, price, book, outcome
                r.update(venue=rng.choice(venues), price=r["price"] + 500, bid_qty=1,
                         ask_px=r["ask_px"] + 300, side="S" if r["side"] == "B" else "B",
                         filled=0, first_fill_ms=None, entry_delay_ms=rng.uniform(0, 50))
            if j < i and entry + HORIZON_NS > t:  # its outcome not yet known at t
                r.update(first_fill_ms=None if r["first_fill_ms"] else 1.0, filled=0)
                checked += 1
            if j < i and entry > t:  # not even acknowledged yet
                r["entry_delay_ms"] += 7.0
            if j == i:  # its own outcome
                r.update(first_fill_ms=None, filled=0)
        got = features(alt, venues)
        assert got[t] == base[t]
    assert checked > 25
    # and the test can fail: an outcome known before the decision does move the row
    i = len(rows) - 1
    known = [j for j, r in enumerate(rows) if r["venue"] == rows[i]["venue"] and
             r["t_ns"] + r["entry_delay_ms"] * 1e6 + HORIZON_NS < rows[i]["t_ns"]]
    alt = copy.deepcopy(rows)
    alt[known[-1]]["first_fill_ms"] = None if rows[known[-1]]["first_fill_ms"] else 1.0
    assert features(alt, venues)[rows[i]["t_ns"]] != base[rows[i]["t_ns"]]


def test_dataset_refuses_other_files_and_a_longer_horizon(sessions, tmp_path, capsys):
    assert omsctl(["model", "dataset", str(sessions / "manifest.json"), "-o",
                   str(tmp_path / "d.npz")]) == 2
    assert "not a session orders file" in capsys.readouterr().err
    assert omsctl(["model", "dataset", str(sessions / "session01.orders.jsonl"),
                   "--horizon-ms", "5000", "-o", str(tmp_path / "d.npz")]) == 2
    assert "longer than the session's 1000 ms" in capsys.readouterr().err
    assert not (tmp_path / "d.npz").exists()


@pytest.fixture(scope="module")
def trained(sessions, tmp_path_factory):
    d = tmp_path_factory.mktemp("fill_model")
    for k, name in ((1, "train"), (2, "eval")):
        assert omsctl(["model", "dataset", str(sessions / f"session0{k}.orders.jsonl"),
                       "-o", str(d / f"{name}.npz")]) == 0
    assert omsctl(["model", "train", str(d / "train.npz"), "-o", str(d / "m.json")]) == 0
    return d


def test_train_and_eval_beat_the_baselines(trained, capsys):
    d = trained
    capsys.readouterr()
    assert omsctl(["model", "eval", str(d / "m.json"), "--train", str(d / "train.npz"),
                   "--data", str(d / "eval.npz"), "--plot", str(d / "cal.png"),
                   "--json", str(d / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "Brier gain over the per-venue baseline" in out
    r = json.loads((d / "r.json").read_text())
    s = r["scores"]
    assert r["answered"] >= 0.95 * r["rows"]  # few held-out rows outside the training ranges
    assert set(s) == {"model", "venue_rate", "distance_rate", "truth"}
    # small data (1,500 training orders), so loose bounds; docs/fill-model.md has the full run
    assert s["model"]["brier"] < 0.8 * s["venue_rate"]["brier"]
    assert s["model"]["brier"] < s["distance_rate"]["brier"]
    assert s["model"]["auc"] > 0.85 > s["venue_rate"]["auc"]
    assert s["model"]["ece_true"] < 0.08
    assert (d / "cal.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_artefact_is_fixed_point_and_sealed(trained, tmp_path):
    doc = fa.load(trained / "m.json")
    assert doc["version"] == fa.VERSION and len(doc["model_id"]) == 16
    assert all(isinstance(w, int) for t in doc["tables"] for w in t["w"])
    ds = fd.Dataset.load(trained / "train.npz")
    _, rep = fill_train.train(ds)  # seeded: the same model again
    assert rep["model_id"] == doc["model_id"]
    assert rep["fixed_point_max_err"] < 1e-3  # against the float model it came from
    for change, why in ((lambda m: m["tables"][3]["w"].__setitem__(0, 7), "checksum"),
                        (lambda m: m.__setitem__("version", 2), "version 2"),
                        (lambda m: m.__setitem__("format", "x"), "not a fill-probability")):
        bad = json.loads((trained / "m.json").read_text())
        change(bad)
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(fa.ModelError, match=why):
            fa.load(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(fa.ModelError, match="not JSON"):
        fa.load(tmp_path / "bad.json")


def random_inputs(rng: np.random.Generator, n: int, venues: int) -> list[dict]:
    out = []
    for _ in range(n):
        tick = 100
        bid = int(rng.integers(5000, 30000)) * tick
        ask = bid + int(rng.integers(1, 8)) * tick
        buy = bool(rng.integers(0, 2))
        own = bid if buy else ask
        off = int(rng.integers(-3, 6)) * tick + (int(rng.integers(0, tick)) if rng.random() < .1
                                                 else 0)
        out.append({"venue": int(rng.integers(0, venues + 1)), "buy": buy,
                    "price": own + off if buy else own - off, "qty": int(rng.integers(1, 10)) * 100,
                    "bid_px": bid, "ask_px": ask, "tick": tick,
                    "bid_qty": int(rng.integers(0, 5000)) if rng.random() < .02
                    else int(rng.integers(1, 5000)), "ask_qty": int(rng.integers(1, 5000)),
                    "rtt_ewma_ns": int(rng.integers(0, 200_000_000)),
                    "fill_ratio_pm": int(rng.integers(0, 1001)),
                    "quote_age_ns": int(rng.integers(0, 10**9)), "ioc": bool(rng.integers(0, 2)),
                    "tod_ns": int(rng.integers(fd.OPEN_NS - 10**12, fd.OPEN_NS + 4 * 3600 * 10**9)),
                    })
    return out


def py_features(i: dict) -> tuple | None:
    return fd.raw_features(i["venue"], i["buy"], i["price"], i["qty"], i["bid_px"], i["bid_qty"],
                           i["ask_px"], i["ask_qty"], i["tick"], i["rtt_ewma_ns"],
                           i["fill_ratio_pm"], i["quote_age_ns"], i["ioc"], i["tod_ns"])


def test_c_and_python_agree_on_10000_random_inputs(trained):
    from dataplane.core import _ext
    ffi, lib = _ext.ffi, _ext.lib
    doc = fa.load(trained / "m.json")
    m = ffi.new("struct oms_fill_model *")
    fa.to_c(doc, ffi, m)
    assert lib.oms_fill_model_seal(m) == 0 and m.id == fa.model_id_u64(doc)
    inputs = random_inputs(np.random.default_rng(5), 10_000, len(doc["venues"]))
    c_inp = ffi.new("struct oms_fill_input *")
    c_f = ffi.new("int64_t[]", lib.OMS_FILL_FEATURES)
    c_p, rows = [], []
    for i in inputs:
        for k, v in i.items():
            setattr(c_inp, k, int(v))
        c_p.append(lib.oms_fill_prob(m, c_inp))
        f = py_features(i)
        assert (lib.oms_fill_features(c_inp, c_f) == 0) == (f is not None)
        if f is not None:
            assert tuple(c_f) == f
        rows.append(f if f is not None and i["venue"] < len(doc["venues"]) else None)
    ok = [k for k, f in enumerate(rows) if f is not None]
    py = np.full(len(inputs), -1, np.int64)
    py[ok] = fa.predict_q(doc, np.array([rows[k] for k in ok]))
    c_p = np.array(c_p, np.int64)
    assert ((c_p < 0) == (py < 0)).all()
    answered = c_p >= 0
    assert 0.3 < answered.mean() < 0.95  # both answers and refusals (out of range) exercised
    diff = np.abs(c_p[answered] - py[answered]) / (1 << fa.P_Q)
    assert diff.max() < 1e-3
    p = c_p[answered] / (1 << fa.P_Q)
    assert p.min() < 0.1 and p.max() > 0.9  # the inputs span the model's range


def test_c_three_venue_call_gives_each_venue_its_own_answer(trained):
    """oms_fill_probs (the router's call: the order's own part once, then
    each venue) gives, for orders over three venues with different books,
    exactly what Python gives each (order, venue) alone: nothing of one
    venue leaks into the next, a venue refused does not stop the others."""
    from dataplane.core import _ext
    ffi, lib = _ext.ffi, _ext.lib
    doc = fa.load(trained / "m.json")
    m = ffi.new("struct oms_fill_model *")
    fa.to_c(doc, ffi, m)
    assert lib.oms_fill_model_seal(m) == 0
    rng = np.random.default_rng(9)
    inputs = random_inputs(rng, 3 * 3000, len(doc["venues"]))
    o = ffi.new("struct oms_fill_order *")
    q = ffi.new("struct oms_fill_quote[3]")
    p = ffi.new("int32_t[3]")
    c_p, rows = [], []
    order_keys = ("price", "tick", "tod_ns", "qty", "buy", "ioc")
    for g in range(0, len(inputs), 3):
        first = inputs[g]
        for k in order_keys:
            setattr(o, k, int(first[k]))
        for j in range(3):
            i = inputs[g + j]
            # the order is the first's; its book (near the first's) and venue state its own
            i.update({k: first[k] for k in order_keys})
            shift = first["bid_px"] - i["bid_px"] + int(rng.integers(-2, 3)) * i["tick"]
            i["bid_px"] += shift
            i["ask_px"] += shift
            for k in ("bid_px", "ask_px", "rtt_ewma_ns", "quote_age_ns", "bid_qty", "ask_qty",
                      "fill_ratio_pm", "venue"):
                setattr(q[j], k, int(i[k]))
            f = py_features(i)
            rows.append(f if f is not None and i["venue"] < len(doc["venues"]) else None)
        n = lib.oms_fill_probs(m, o, q, 3, p)
        assert n == sum(p[j] >= 0 for j in range(3))
        c_p.extend(p[j] for j in range(3))
    ok = [k for k, f in enumerate(rows) if f is not None]
    py = np.full(len(rows), -1, np.int64)
    py[ok] = fa.predict_q(doc, np.array([rows[k] for k in ok]))
    c_p = np.array(c_p, np.int64)
    assert ((c_p < 0) == (py < 0)).all()
    assert (c_p == py).all()  # the same integers
    by_order = (c_p >= 0).reshape(-1, 3).sum(axis=1)
    assert set(by_order) >= {1, 2, 3}  # orders with some venues refused and others answered


def test_c_refuses_an_inconsistent_model(trained):
    from dataplane.core import _ext
    ffi, lib = _ext.ffi, _ext.lib
    doc = fa.load(trained / "m.json")
    m = ffi.new("struct oms_fill_model *")
    fa.to_c(doc, ffi, m)
    m.tables[2].offset += 1
    assert lib.oms_fill_model_seal(m) == -1
    fa.to_c(doc, ffi, m)
    m.n_edges[4] = lib.OMS_FILL_EDGES
    assert lib.oms_fill_model_seal(m) == -1
    fa.to_c(doc, ffi, m)  # edges out of order: the bins would count them wrong
    k = next(k for k in range(lib.OMS_FILL_FEATURES) if m.n_edges[k] >= 2)
    m.edges[k][1] = m.edges[k][0]
    assert lib.oms_fill_model_seal(m) == -1


# the evaluator's symbols, renamed in its build without AVX-512 (tests/c/fill_paths.c)
EVALUATOR = ("oms_fill_prob", "oms_fill_probs", "oms_fill_features", "oms_fill_model_seal",
             "fill_route_choose")


@pytest.fixture(scope="module")
def fill_paths(tmp_path_factory):
    """tests/c/fill_paths.c linked with cdefs/fill_model.c built twice: for
    this machine (AVX-512: the venues as vector lanes) and without AVX-512
    (the scalar path the core falls back to on other machines)."""
    cc = os.environ.get("CC", "cc")
    # without AVX-512 here both builds are the scalar path: still each held
    # to Python's answers
    d = tmp_path_factory.mktemp("fill_paths")
    flags = ["-std=gnu11", "-O2", "-march=native", "-Wall", "-Wextra", "-Werror",
             "-ffunction-sections", "-fdata-sections", "-I", str(ROOT / "cdefs")]
    src = str(ROOT / "cdefs" / "fill_model.c")
    subprocess.run([cc, *flags, "-c", src, "-o", str(d / "vector.o")], check=True)
    subprocess.run([cc, *flags, "-mno-avx512f", *[f"-D{s}=scalar_{s}" for s in EVALUATOR],
                    "-c", src, "-o", str(d / "scalar.o")], check=True)
    subprocess.run([cc, *flags, "-Wl,--gc-sections", "-o", str(d / "fill_paths"),
                    str(ROOT / "tests" / "c" / "fill_paths.c"), str(d / "vector.o"),
                    str(d / "scalar.o")], check=True)
    return d / "fill_paths"


ORDER_KEYS = ("price", "tick", "tod_ns", "qty", "buy", "ioc")
QUOTE_KEYS = ("bid_px", "ask_px", "rtt_ewma_ns", "quote_age_ns", "bid_qty", "ask_qty",
              "fill_ratio_pm", "venue")


def on_a_boundary(i: dict, doc: dict, rng: np.random.Generator) -> None:
    """Book sizes that put the imbalance or a displayed size exactly on one of
    the model's edges or range bounds, or one share either side: where
    comparing a numerator with edge x divisor, instead of dividing, would go
    wrong first."""
    feat = {f["name"]: f for f in doc["features"]}
    own, con = ("bid_qty", "ask_qty") if i["buy"] else ("ask_qty", "bid_qty")
    if rng.random() < 0.5:
        f = feat["imbalance_pct"]
        es = [e for e in (*f["edges"], f["lo"], f["hi"], f["hi"] + 1, f["lo"] - 1)
              if -100 < e < 100]
        e, k = int(rng.choice(es)), int(rng.integers(1, 20))
        i[own], i[con] = (100 + e) * k, (100 - e) * k  # 100 (own - con) = e (own + con)
    else:
        f = feat["own_qty_pct" if rng.random() < 0.5 else "contra_qty_pct"]
        side = own if f["name"] == "own_qty_pct" else con
        i[side] = int(rng.choice(f["edges"])) * i["qty"] // 100
    i[own] = max(1, i[own] + int(rng.integers(-1, 2)))


@pytest.mark.parametrize("which", ["trained", "committed"])
def test_vector_and_scalar_paths_give_the_same_integers(trained, fill_paths, which):
    """The AVX-512 build (venues side by side in vector lanes) and the build
    without it give, for orders over 0 to 11 venues (more than one vector of
    8), the same integers, and those are Python's for each (order, venue)
    alone: answers and refusals (a venue the model does not know, an empty
    book side, a feature out of range), also for ticks so large that the
    scaled bin edges would overflow."""
    from dataplane.core import _ext
    ffi = _ext.ffi
    path = trained / "m.json" if which == "trained" else \
        ROOT / "tests" / "fill_models" / "sim-8404fc70ad6ed8ce.json"
    doc = fa.load(path)
    m = ffi.new("struct oms_fill_model *")
    fa.to_c(doc, ffi, m)
    rng = np.random.default_rng(21)
    o = ffi.new("struct oms_fill_order *")
    blob = [struct.pack("<3I", ffi.sizeof("struct oms_fill_model"),
                        ffi.sizeof("struct oms_fill_order"), ffi.sizeof("struct oms_fill_quote")),
            bytes(ffi.buffer(m))]
    sizes, rows, n_huge = [], [], 0
    for _ in range(3000):
        n = int(rng.integers(0, 12))
        inputs = random_inputs(rng, max(n, 1), len(doc["venues"]))
        first = inputs[0]
        huge = rng.random() < 0.05  # ticks near 2^63: edge x tick beyond 64 bits
        if huge:
            tick = int(rng.choice([2**40 + 7, 2**61, 3 * 2**60 - 5]))
            for i in inputs:
                i.update(tick=tick, bid_px=tick, ask_px=2 * tick)
            first["price"] = int(rng.choice([0, tick, 2 * tick, tick + tick // 3, tick - 1]))
        for k in ORDER_KEYS:
            setattr(o, k, int(first[k]))
        q = ffi.new("struct oms_fill_quote[]", max(n, 1))
        n_huge += huge and n > 0
        for j in range(n):
            i = inputs[j]
            if j:
                i.update({k: first[k] for k in ORDER_KEYS})
            if rng.random() < 0.2:
                on_a_boundary(i, doc, rng)
            if j and not huge:
                shift = first["bid_px"] - i["bid_px"] + int(rng.integers(-2, 3)) * i["tick"]
                width = (i["ask_px"] - i["bid_px"]) // 100 * i["tick"]
                i["bid_px"] += shift
                i["ask_px"] = i["bid_px"] + width
            for k in QUOTE_KEYS:
                setattr(q[j], k, int(i[k]))
            f = py_features(i)
            rows.append(f if f is not None and i["venue"] < len(doc["venues"]) else None)
        blob += [struct.pack("<I", n), bytes(ffi.buffer(o)),
                 bytes(ffi.buffer(q, n * ffi.sizeof("struct oms_fill_quote")))]
        sizes.append(n)
    r = subprocess.run([str(fill_paths)], input=b"".join(blob), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = memoryview(r.stdout)
    vec, sca, at = [], [], 0
    for n in sizes:
        pv = struct.unpack_from(f"<{n}i", out, at)
        ps = struct.unpack_from(f"<{n}i", out, at + 4 * n)
        av, as_ = struct.unpack_from("<2I", out, at + 8 * n)
        at += 8 * n + 8
        assert av == as_ == sum(p >= 0 for p in pv)
        vec += pv
        sca += ps
    assert at == len(out)
    vec, sca = np.array(vec, np.int64), np.array(sca, np.int64)
    assert (vec == sca).all()
    ok = [k for k, f in enumerate(rows) if f is not None]
    py = np.full(len(rows), -1, np.int64)
    py[ok] = fa.predict_q(doc, np.array([rows[k] for k in ok], dtype=object).astype(np.int64))
    assert (vec == py).all()
    answered = vec >= 0
    assert 0.2 < answered.mean() < 0.95  # answers and refusals both exercised
    assert n_huge > 50
