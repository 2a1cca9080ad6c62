"""Classification metrics for the 3-class sentiment task (sklearn underneath), calibration and
temperature scaling. Arrays use :data:`kopretrain.data.files.LABELS` order: 0 negative, 1 neutral,
2 positive.

A test split may lack a class (a small hand-labelled set with no neutral reviews): sklearn would
then warn and count an F1 of 0 for it. We pass ``labels=`` explicitly, report the class as absent
(recall undefined), and average macro-F1 over the classes present in the gold labels.
"""

from __future__ import annotations

from typing import Any

from kopretrain.data.files import LABELS

N_BINS = 15  # Guo et al. 2017 use 15 equal-width bins; keeps ECE comparable with published numbers


def classification(y, pred) -> dict[str, Any]:
    """Accuracy, macro-F1 over present classes, per-class P/R/F1, confusion matrix (rows = gold)."""
    import numpy as np
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y, pred = np.asarray(y), np.asarray(pred)
    ids = list(range(len(LABELS)))
    p, r, f, support = precision_recall_fscore_support(y, pred, labels=ids, zero_division=0)
    predicted = np.bincount(pred, minlength=len(LABELS))
    present = [i for i in ids if support[i] > 0]
    per_class = {}
    for i, name in enumerate(LABELS):
        per_class[name] = {
            "precision": float(p[i]) if predicted[i] else None,  # undefined: never predicted
            "recall": float(r[i]) if support[i] else None,       # undefined: absent from gold
            "f1": float(f[i]) if support[i] else None,
            "support": int(support[i]),
            "predicted": int(predicted[i]),
        }
    return {
        "n": int(len(y)),
        "accuracy": float((y == pred).mean()) if len(y) else None,
        "macro_f1": float(np.mean([f[i] for i in present])) if present else None,
        "per_class": per_class,
        "confusion": confusion_matrix(y, pred, labels=ids).tolist(),
        "absent_classes": [LABELS[i] for i in ids if support[i] == 0],
    }


def reliability(probs, y, n_bins: int = N_BINS) -> list[dict[str, float]]:
    """Top-label confidence bins ``(lo, hi]``: count, mean confidence, accuracy."""
    import numpy as np

    probs, y = np.asarray(probs, dtype=np.float64), np.asarray(y)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds edges[b] < conf <= edges[b+1]; conf is >= 1/3 for 3 classes so bin 0's open left edge is moot
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = which == b
        n = int(mask.sum())
        bins.append({
            "lo": float(edges[b]), "hi": float(edges[b + 1]), "count": n,
            "confidence": float(conf[mask].mean()) if n else None,
            "accuracy": float(correct[mask].mean()) if n else None,
        })
    return bins


def ece(probs, y, n_bins: int = N_BINS) -> float:
    """Expected calibration error: sum over bins of (bin share) * |accuracy - confidence|."""
    bins = reliability(probs, y, n_bins)
    total = sum(b["count"] for b in bins)
    if not total:
        return float("nan")
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def nll(logits, y, temperature: float = 1.0) -> float:
    import numpy as np
    from scipy.special import log_softmax

    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-logp[np.arange(len(y)), np.asarray(y)].mean())


def fit_temperature(logits, y) -> float:
    """The temperature T minimizing dev NLL of softmax(logits / T) (Guo et al. 2017).

    One scalar, so a bounded 1-D search over log T is exact enough and has no learning rate to tune.
    """
    import numpy as np
    from scipy.optimize import minimize_scalar

    if len(y) == 0:
        return 1.0
    res = minimize_scalar(lambda t: nll(logits, y, float(np.exp(t))), bounds=(-4.0, 4.0), method="bounded")
    return float(np.exp(res.x))


def binary_accuracy(probs, y) -> dict[str, Any]:
    """Accuracy on gold negative/positive rows, predicting argmax over p(negative) vs p(positive).

    This is the published binary NSMC protocol (ratings 1-4 vs 9-10), so the number is comparable
    with e.g. KcELECTRA's 91.97 only when the 3-class labels come from the NSMC rating mapping.
    """
    import numpy as np

    neg, pos = LABELS.index("negative"), LABELS.index("positive")
    probs, y = np.asarray(probs), np.asarray(y)
    mask = (y == neg) | (y == pos)
    if not mask.any():
        return {"n": 0, "accuracy": None}
    pred = np.where(probs[mask, pos] > probs[mask, neg], pos, neg)
    return {"n": int(mask.sum()), "accuracy": float((pred == y[mask]).mean())}


def per_rating(ratings, y, pred) -> list[dict[str, Any]]:
    """Per original rating: count, gold label, accuracy and where its predictions went.

    Shows where the neutral errors come from: e.g. rating 8 reviews (gold neutral) predicted positive.
    Rows without a rating (labelled by a column, or a rating that was missing) come last, as one
    row with ``rating`` None, so the table accounts for every test row.
    """
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"rating": ratings, "y": y, "pred": pred})
    frame["rating"] = frame["rating"].astype("float64").fillna(np.inf)  # groupby drops NaN keys
    rows = []
    for rating, grp in frame.groupby("rating", sort=True):
        gold = np.bincount(grp["y"], minlength=len(LABELS))
        shares = np.bincount(grp["pred"], minlength=len(LABELS)) / len(grp)
        rows.append({
            "rating": float(rating) if np.isfinite(rating) else None,
            "n": int(len(grp)),
            "gold": LABELS[int(gold.argmax())] if (gold > 0).sum() == 1 else "mixed",  # rows of several labels
            "accuracy": float((grp["y"] == grp["pred"]).mean()),
            **{f"pred_{name}": float(shares[i]) for i, name in enumerate(LABELS)},
        })
    return rows
