"""The fill-probability dataset (control/fill_dataset.py): one row per order,
features known at decision time only (the leak test), labels from what
happened, the true probability apart."""
import copy
import random

import numpy as np
import pytest

from control import fill_dataset as fd
from control.cli import main as omsctl
from pcaps.make_fill_sessions import main as make_sessions

HORIZON_NS = 1000 * 1_000_000


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    out = tmp_path_factory.mktemp("fill_sessions")
    assert make_sessions([str(out), "--train", "1", "--train-orders", "400", "--eval-orders",
                          "400", "--eval-paths", "4", "--jobs", "1"]) == 0
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
    assert len(rows) == 800
    rows = [r for r in rows if r["bid_qty"] and r["ask_qty"]]  # an empty side: no row
    assert 780 < len(ds.x) == len(rows)
    assert ds.venues == ["BUSY", "DARK", "FADE", "ICEBERG", "JITTER", "PLAIN"]
    for i in (0, 17, 390, 400, len(rows) - 1):
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
