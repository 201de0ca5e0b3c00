"""Evaluating the fill-probability model (issue 9 item 5, docs/fill-model.md
"Evaluation"): log loss, Brier score, ROC AUC and expected calibration error
on held-out rows, against the observed labels and, where the simulator
logged them, its true probabilities; two baselines estimated on the
training rows (each venue's fill rate; the fill rate by price distance
alone); a calibration plot."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from control import fill_artefact as fa
from control.fill_dataset import FEATURES, Dataset

ECE_BINS = 10
EPS = 1e-6


def ece(p: np.ndarray, target: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: over equal-width bins of the prediction,
    the row-weighted |mean prediction - mean target| (target: labels, or
    true probabilities)."""
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(p[m].mean() - target[m].mean())
    return float(total / len(p))


def metrics(p: np.ndarray, y: np.ndarray, p_true: np.ndarray) -> dict:
    p = np.clip(p, EPS, 1 - EPS)
    out = {"log_loss": float(log_loss(y, p, labels=[0, 1])),
           "brier": float(np.mean((p - y) ** 2)),
           "auc": float(roc_auc_score(y, p)) if 0 < y.mean() < 1 else float("nan"),
           "ece": ece(p, y)}
    t = np.isfinite(p_true)
    if t.any():
        out["ece_true"] = ece(p[t], p_true[t])
        out["mse_true"] = float(np.mean((p[t] - p_true[t]) ** 2))
    return out


def rate_table(keys_train: np.ndarray, y: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each key's training fill rate (the overall rate for an unseen key)."""
    rates = {k: y[keys_train == k].mean() for k in np.unique(keys_train)}
    return np.array([rates.get(k, y.mean()) for k in keys])


def evaluate(doc: dict, train: Dataset, test: Dataset, *, label: str = "any_fill",
             boosted=None) -> dict:
    y_tr, y = getattr(train, label), getattr(test, label)
    p_model = fa.predict(doc, test.x)
    answered = np.isfinite(p_model)
    t = test.select(answered)
    y, p_model = y[answered], p_model[answered]
    v, d = FEATURES.index("venue"), FEATURES.index("own_off_ticks")
    preds = {
        "model": p_model,
        "venue_rate": rate_table(train.x[:, v], y_tr, t.x[:, v]),
        "distance_rate": rate_table(train.x[:, d], y_tr, t.x[:, d]),
    }
    if boosted is not None:
        preds["boosted"] = boosted.predict_proba(t.x)[:, 1]
    if np.isfinite(t.p_true).all():
        preds["truth"] = t.p_true
    out = {"rows": int(len(test.x)), "answered": int(answered.sum()), "label": label,
           "fill_rate": float(y.mean()), "model_id": doc["model_id"],
           "scores": {k: metrics(p, y, t.p_true) for k, p in preds.items()}}
    s = out["scores"]
    out["brier_gain_vs_venue"] = 1 - s["model"]["brier"] / s["venue_rate"]["brier"]
    out["_preds"] = preds
    out["_target"] = (y, t.p_true)
    return out


def calibration_png(result: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, p_true = result["_target"]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    edges = np.linspace(0, 1, ECE_BINS + 1)
    for name, p in result["_preds"].items():
        if name == "truth":
            continue
        idx = np.minimum((p * ECE_BINS).astype(int), ECE_BINS - 1)
        xs, ys, ts = [], [], []
        for b in range(ECE_BINS):
            m = idx == b
            if m.sum() >= 20:
                xs.append(p[m].mean())
                ys.append(y[m].mean())
                ts.append(np.nanmean(p_true[m]) if np.isfinite(p_true[m]).any() else np.nan)
        ax.plot(xs, ys, marker="o", label=f"{name}: observed")
        if name == "model" and np.isfinite(ts).any():
            ax.plot(xs, ts, marker="x", ls=":", label="model: simulator's true p")
    ax.set_xticks(edges)
    ax.set_xlabel("predicted fill probability (bin mean)")
    ax.set_ylabel("fill rate within the horizon")
    ax.set_title(f"Calibration, model {result['model_id']} ({result['answered']} orders)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report_lines(result: dict) -> list[str]:
    lines = [f"model {result['model_id']}: {result['answered']} of {result['rows']} orders "
             f"answered, label {result['label']}, fill rate {result['fill_rate']:.4f}",
             f"{'predictor':<14}{'log loss':>10}{'Brier':>9}{'AUC':>8}{'ECE':>8}"
             f"{'ECE true':>10}{'MSE true':>10}"]
    for name, m in result["scores"].items():
        lines.append(f"{name:<14}{m['log_loss']:>10.4f}{m['brier']:>9.4f}{m['auc']:>8.4f}"
                     f"{m['ece']:>8.4f}{m.get('ece_true', float('nan')):>10.4f}"
                     f"{m.get('mse_true', float('nan')):>10.4f}")
    lines.append(f"Brier gain over the per-venue baseline: {result['brier_gain_vs_venue']:.1%}")
    return lines
