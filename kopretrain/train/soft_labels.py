"""Soft targets: from the rating behind each label (``finetune --rating-smoothing SIGMA``) and
from a teacher's probabilities (``finetune --soft-targets FILE --soft-weight W``).

A 3-class label cut from a 1-10 rating throws away how far the rating sat from a class boundary:
NSMC's 4 ("negative") and 5 ("neutral") are one star apart, its 1 and 4 three stars. With
rating smoothing a row rated ``r`` trains toward a distribution over the classes instead of one
class: every rating value ``k`` seen in the training rows votes for its own class with weight
``exp(-(k - r)^2 / (2 sigma^2))`` (a Gaussian over the rating scale: a rating is one noisy draw
near what the reviewer meant). Ratings deep inside a class stay (nearly) one-hot; ratings next
to a boundary share their weight with the neighbouring class.

Smoothing alone moves weight into the middle class (on NSMC at sigma 1: neutral 30.4% -> 32.5%
of the targets, positive 52.4% -> 49.6%), and a model trained on that over-predicts neutral
(screen: 1,830 neutral predictions for 1,508 gold, one seed 0.65 macro-F1 below hard labels). So
each class's column is then scaled back to the class's share of the hard labels: smoothing moves
weight between the rows of a class, not between classes. A TF-IDF fitted on such targets gained
0.4 at 1k NSMC labels over three seeds (BENCHMARKS.md).

Which class a rating value belongs to is read from the training rows themselves (the label
ingest gave every row with that rating), so any rating scheme works (nsmc, stars5, thresholds)
without the stage knowing it. Rows without a rating (pseudo-labelled rows, column-scheme data)
keep one-hot targets. Our own code: transformers' classification heads only take class ids, and
label smoothing (``TrainingArguments.label_smoothing_factor``) spreads weight evenly over all
classes, ignoring which class is near.

Distillation (``--soft-targets``): a row trains toward ``(1 - W) x its label + W x a teacher's
probabilities``, the teacher being any model whose probabilities were written per row id (the
file ``kopretrain label`` writes) or, with ``tfidf``, evaluate's TF-IDF baseline fitted out of fold
here. Character n-grams and the encoder make different errors (their averaged probabilities beat
either alone), and a student that learns the baseline's probabilities stays one plain
``*ForSequenceClassification``: on NSMC, 10 minutes of fine-tuning on all rows scored 64.6
macro-F1 distilled against 62.5 on the labels alone (BENCHMARKS.md "Soft targets"). Out of fold
because a TF-IDF scores the rows it was fitted on far too confidently: the student would learn
to copy the labels back.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from kopretrain.runs.records import StageError


def soft_targets(cfg, train, n_gold: int, y_train: list[int], names: list[str], run_dir=None):
    """Per-row targets in the model's label order for --rating-smoothing and --soft-targets, from
    the ``n_gold`` labelled rows (the pseudo-labelled rows after them keep their one label), and
    what ``stage.json`` says about them."""
    from kopretrain.data.files import LABELS

    stats: dict = {}
    targets = np.eye(len(LABELS), dtype=np.float32)[y_train]
    if cfg.rating_smoothing:
        if "rating" not in train.columns:
            raise StageError(f"--rating-smoothing needs a rating column in {cfg.data}/train.parquet; columns are: "
                             f"{', '.join(map(str, train.columns))}")
        ratings = [None if v != v else float(v) for v in train["rating"].iloc[:n_gold]]  # NaN -> None
        ratings += [None] * (len(train) - n_gold)  # a pseudo-labelled row's rating is not ours to use
        targets = rating_targets(ratings, y_train, cfg.rating_smoothing, len(LABELS))
        stats["rows_rating_smoothed"] = sum(r is not None for r in ratings)
    if cfg.soft_targets:
        path = _tfidf_targets(cfg, train.iloc[:n_gold], y_train[:n_gold], run_dir) if cfg.soft_targets == "tfidf" \
            else cfg.soft_targets
        probs, found = teacher_targets(train["id"].iloc[:n_gold], path, LABELS)
        hit = ~np.isnan(probs).any(axis=1)
        targets[:n_gold][hit] = (1 - cfg.soft_weight) * targets[:n_gold][hit] + cfg.soft_weight * probs[hit]
        stats.update(rows_with_teacher_targets=found, teacher_agrees_with_label=round(
            float((probs[hit].argmax(1) == np.asarray(y_train[:n_gold])[hit]).mean()) if found else 0.0, 4))
        if not found:
            print(f"[finetune] warning: --soft-targets {cfg.soft_targets} has none of the training rows' ids")
    stats["mean_target_on_label"] = round(float(targets[range(len(y_train)), y_train].mean()), 4)
    return targets[:, [LABELS.index(n) for n in names]], stats


def _tfidf_targets(cfg, gold, y_gold: list[int], run_dir) -> str:
    """--soft-targets tfidf: evaluate's TF-IDF baseline, out of fold, on the labelled training rows,
    written to ``tfidf_targets.parquet`` in the output (atomically; a resumed run reads it back)."""
    import time
    from pathlib import Path

    import pandas as pd

    from kopretrain.data.files import LABELS

    path = Path(run_dir) / "tfidf_targets.parquet"
    if path.exists():
        return str(path)
    t0 = time.time()
    groups = gold["group"].tolist() if "group" in gold.columns and gold["group"].notna().all() else None
    probs = tfidf_out_of_fold(["" if t is None else str(t) for t in gold["text"]], y_gold, groups,
                              cfg.class_weight, cfg.seed)
    tmp = path.with_suffix(".tmp")
    pd.DataFrame({"id": gold["id"].astype(str), **{f"prob_{n}": probs[:, i] for i, n in enumerate(LABELS)}}) \
        .to_parquet(tmp, index=False)
    tmp.replace(path)
    print(f"[finetune] TF-IDF targets for {len(gold):,} rows, out of fold ({time.time() - t0:.0f}s)")
    return str(path)


def rating_classes(ratings: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[float, int]:
    """``rating value -> class`` as the training rows have it; an error when one rating value
    carries two classes (the labels did not come from the ratings by thresholds)."""
    out: dict[float, int] = {}
    for value in np.unique(ratings[~np.isnan(ratings)]):
        classes = np.unique(labels[ratings == value])
        if len(classes) != 1:
            raise StageError(f"--rating-smoothing: rating {value:g} has rows labelled with {len(classes)} different "
                             "classes, so the labels were not cut from the ratings by thresholds; use 0 (off)")
        if not 0 <= classes[0] < n_classes:
            raise StageError(f"--rating-smoothing: label id {classes[0]} outside 0..{n_classes - 1}")
        out[float(value)] = int(classes[0])
    return out


def rating_targets(ratings: Sequence[float | None], labels: Sequence[int], sigma: float,
                   n_classes: int) -> np.ndarray:
    """``(n, n_classes)`` float32 targets: Gaussian-smoothed over the rating scale for rows with a
    rating, one-hot for rows without one (``None``/NaN), then each column scaled so the class
    totals equal the hard labels' counts. Rows sum to about 1."""
    r = np.array([np.nan if v is None else float(v) for v in ratings], dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    targets = np.eye(n_classes, dtype=np.float64)[y]
    rated = ~np.isnan(r)
    if not rated.any():
        raise StageError("--rating-smoothing needs ratings: no labelled training row has one "
                         "(the data's rating column is empty; ingest with a rating label scheme)")
    scale = rating_classes(r[rated], y[rated], n_classes)
    values = np.array(list(scale), dtype=np.float64)
    classes = np.array(list(scale.values()))
    votes = np.exp(-((r[rated, None] - values[None, :]) ** 2) / (2 * sigma ** 2))  # (rated rows, rating values)
    soft = np.zeros((rated.sum(), n_classes))
    for c in range(n_classes):
        soft[:, c] = votes[:, classes == c].sum(axis=1)
    targets[rated] = soft / soft.sum(axis=1, keepdims=True)
    totals = targets.sum(axis=0)
    counts = np.bincount(y, minlength=n_classes)
    targets *= np.divide(counts, totals, out=np.zeros(n_classes), where=totals > 0)  # class totals as labelled
    return targets.astype(np.float32)


def teacher_targets(ids: Sequence, path: str, labels: Sequence[str]) -> tuple[np.ndarray, int]:
    """``(n, len(labels))`` probabilities per id from a Parquet file with ``id`` and
    ``prob_<label>`` columns (what ``kopretrain label`` writes), NaN rows where an id is absent,
    and how many ids were found. Probabilities are renormalised per row."""
    import pandas as pd

    cols = [f"prob_{name}" for name in labels]
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise StageError(f"--soft-targets {path}: cannot read it as Parquet ({e})") from None
    missing = [c for c in ["id", *cols] if c not in table.columns]
    if missing:
        raise StageError(f"--soft-targets {path}: missing column(s) {', '.join(missing)}; columns are: "
                         f"{', '.join(map(str, table.columns))}")
    table = table.assign(id=table["id"].astype(str)).dropna(subset=cols).drop_duplicates("id", keep="last").set_index("id")
    probs = np.array(table.reindex([str(i) for i in ids])[cols], dtype=np.float64)  # a writable copy
    found = ~np.isnan(probs).any(axis=1)
    if (probs[found] < 0).any():
        raise StageError(f"--soft-targets {path}: negative probabilities")
    sums = probs[found].sum(axis=1, keepdims=True)
    probs[found] = probs[found] / np.where(sums > 0, sums, 1)
    return probs, int(found.sum())


def tfidf_out_of_fold(texts: Sequence[str], labels: Sequence[int], groups: Sequence | None, class_weight: str | None,
                      seed: int, folds: int = 2) -> np.ndarray:
    """``(n, 3)`` probabilities of evaluate's TF-IDF baseline (char_wb 1-4 + logistic regression, C
    1) for every row, each from a fit on the other folds only: a fit scores the rows it trained on
    far too confidently. Folds by ``groups`` (e.g. movie) where given, so no group's near-duplicate
    reviews sit on both sides; else stratified by label. The fits run in worker processes on large
    inputs (as evaluate's do)."""
    from joblib import Parallel, delayed
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    from kopretrain.evaluation.baseline import PARALLEL_MIN_ROWS, Baseline, BaselineConfig

    y = np.asarray(labels)
    if groups is not None and len(set(groups)) >= folds:
        splits = list(GroupKFold(n_splits=folds).split(texts, y, groups=[str(g) for g in groups]))
    else:
        splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(texts, y))
    cfg = BaselineConfig(class_weight=None if class_weight == "none" else class_weight, n_jobs=1)

    def fit_predict(fit, score):
        model = Baseline(cfg, seed=seed).fit([texts[i] for i in fit], y[fit])
        return model.predict_proba([texts[i] for i in score])

    jobs = min(folds, os.cpu_count() or 1) if len(y) >= PARALLEL_MIN_ROWS else 1
    parts = Parallel(n_jobs=jobs)(delayed(fit_predict)(fit, score) for fit, score in splits)
    out = np.zeros((len(y), 3))
    for (_, score), probs in zip(splits, parts):
        out[score] = probs
    return out


def soft_cross_entropy(logits, targets, class_weights=None):
    """Mean over rows of ``-sum_c w_c t_c log softmax(logits)_c`` divided by the rows' target
    weight ``sum_c w_c t_c``: with one-hot targets exactly ``F.cross_entropy(..., weight=w)``."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    targets = targets.to(logp)
    if class_weights is None:
        return -(targets * logp).sum(-1).mean()
    w = class_weights.to(logp)
    return -(targets * w * logp).sum() / (targets * w).sum()


def symmetric_kl(logits_a, logits_b):
    """R-Drop's consistency term (Liang et al. 2021): the mean over rows of
    ``(KL(p_a || p_b) + KL(p_b || p_a)) / 2`` between two dropout passes' predictions."""
    import torch.nn.functional as F

    a, b = F.log_softmax(logits_a.float(), -1), F.log_softmax(logits_b.float(), -1)
    return 0.5 * (F.kl_div(a, b, log_target=True, reduction="batchmean")
                  + F.kl_div(b, a, log_target=True, reduction="batchmean"))
