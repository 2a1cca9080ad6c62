"""TF-IDF character n-gram + logistic regression: the no-pretraining baseline every model must beat.

Character n-grams suit noisy Korean reviews: they need no tokenizer, and typos or missing spaces
("재밌었어요" / "재미있었어요", "개꿀잼ㅋㅋ") still share most of their syllable n-grams. Trained
on the same training split the model saw and scored on the same test split.

It is tuned the way the neural models are, on dev macro-F1 (fine-tunes pick their checkpoint on
dev): C on a sample of the training rows, then the class weighting (balanced or none) by fitting
each on all the rows. An untuned baseline flatters the models: on 1,000 NSMC labels C=1 without
class weights scored 42.5 macro-F1 where the tuned one scores ~53. The weighting is chosen at full
size because its effect flips with size: on NSMC balanced wins at 50k rows (test 63.6 vs 62.6) and
loses at 483k (65.9 vs 66.4), so a choice made on the sample would be wrong there (BENCHMARKS.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

PARALLEL_MIN_ROWS = 20_000
"""Fits on fewer rows stay in-process: starting worker processes costs more than they save."""


@dataclass
class BaselineConfig:
    ngram_min: int = 1
    """Shortest character n-gram."""
    ngram_max: int = 4
    """Longest character n-gram (3-4 syllables cover most Korean stems + endings)."""
    max_features: int = 300_000
    """Vocabulary cap, most frequent n-grams first (bounds memory on large corpora)."""
    min_df: int = 2
    """Drop n-grams seen in fewer documents (mostly typos and ids)."""
    C: float = 1.0
    """Inverse L2 regularization strength of the logistic regression, when no dev rows are given."""
    C_grid: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    """Candidates for C, chosen by dev macro-F1 when dev rows are given."""
    tune_max_train: int = 50_000
    """Choose C on a stratified sample of at most this many training rows (the final fit uses all)."""
    class_weight: str | None = "balanced"
    """balanced: weight classes by n / (3 * count), as the fine-tunes do for macro-F1 (None: off).
    Used to choose C; with dev rows the final weighting is chosen from ``class_weight_grid``."""
    class_weight_grid: tuple[str | None, ...] = ("balanced", None)
    """With dev rows: fit each weighting on all training rows with the chosen C, keep the best on dev."""
    max_iter: int = 300
    """lbfgs iterations."""
    n_jobs: int = -1
    """Processes for the C grid and the weighting fits (-1: one per core). Small inputs fit in-process."""


class Baseline:
    """``fit(texts, labels)`` then ``predict_proba(texts)`` -> (N, 3) in LABELS order.

    >>> b = Baseline().fit(["최고의 영화", "정말 재밌다", "최악이다", "지루하고 별로"], [2, 2, 0, 0])
    >>> b.predict_proba(["최고"]).shape
    (1, 3)
    """

    def __init__(self, cfg: BaselineConfig | None = None, seed: int = 0):
        self.cfg = cfg or BaselineConfig()
        self.seed = seed
        self.pipeline = None
        self.fit_seconds = 0.0
        self.classes_: list[int] = []
        self.C = self.cfg.C
        self.dev_scores: dict[float, float] = {}
        self.class_weight = self.cfg.class_weight
        self.weight_scores: dict[str, float] = {}

    def fit(self, texts: Sequence[str], labels: Sequence[int], dev_texts: Sequence[str] = (),
            dev_labels: Sequence[int] = ()) -> "Baseline":
        import numpy as np
        from joblib import delayed
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import f1_score
        from sklearn.pipeline import make_pipeline

        from kopretrain.data.split import stratified_sample

        c = self.cfg
        t0 = time.time()
        # char_wb: n-grams never cross a space, so "재밌 다" and "재밌다" differ only at the boundary
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(c.ngram_min, c.ngram_max),
                              min_df=min(c.min_df, max(1, len(texts) // 10)),
                              max_features=c.max_features, sublinear_tf=True, dtype=np.float32)
        features = vec.fit_transform(list(texts))
        labels = np.asarray(labels)

        def logreg(C: float, weight=c.class_weight):
            return LogisticRegression(C=C, max_iter=c.max_iter, random_state=self.seed, class_weight=weight)

        self.C, self.dev_scores, self.class_weight, self.weight_scores = c.C, {}, c.class_weight, {}
        if len(dev_labels) and len(set(labels.tolist())) > 1:
            keep = stratified_sample(labels.tolist(), min(c.tune_max_train, len(labels)), self.seed)
            dev_x = vec.transform(list(dev_texts))
            tune_x, tune_y = features[keep], labels[keep]
            grid = self._parallel(len(keep))(delayed(logreg(C).fit)(tune_x, tune_y) for C in c.C_grid)
            for C, clf in zip(c.C_grid, grid):
                self.dev_scores[C] = float(f1_score(dev_labels, clf.predict(dev_x), average="macro"))
            self.C = max(self.dev_scores, key=lambda k: (self.dev_scores[k], -k))  # ties: the stronger prior
            weights = c.class_weight_grid
            fits = dict(zip(weights, self._parallel(len(labels))(
                delayed(logreg(self.C, w).fit)(features, labels) for w in weights)))
            for weight in weights:
                score = f1_score(dev_labels, fits[weight].predict(dev_x), average="macro")
                self.weight_scores[str(weight).lower()] = float(score)
            # ties keep the grid's order (balanced first: the fine-tunes' default)
            self.class_weight = max(c.class_weight_grid, key=lambda w: self.weight_scores[str(w).lower()])
            clf = fits[self.class_weight]
        else:
            clf = logreg(self.C).fit(features, labels)
        self.pipeline = make_pipeline(vec, clf)
        self.fit_seconds = time.time() - t0
        self.classes_ = [int(k) for k in clf.classes_]
        return self

    def _parallel(self, rows: int):
        """The fits are independent: in processes they take half the time on 2 cores (threads do not
        help: 51 s for both either way on 100k NSMC rows, 27 s in 2 processes). Process start-up
        costs more than small fits, so those stay in-process."""
        from joblib import Parallel

        return Parallel(n_jobs=self.cfg.n_jobs if rows >= PARALLEL_MIN_ROWS else 1)

    def predict_proba(self, texts: Sequence[str]):
        """Probabilities for all 3 labels; a class absent from training gets probability 0."""
        import numpy as np

        from kopretrain.data.files import LABELS

        if self.pipeline is None:
            raise RuntimeError("Baseline.fit must be called first")
        part = self.pipeline.predict_proba(list(texts))
        out = np.zeros((len(texts), len(LABELS)), dtype=np.float64)
        out[:, self.classes_] = part
        return out

    def describe(self) -> dict[str, Any]:
        vec = self.pipeline.steps[0][1] if self.pipeline is not None else None
        return {
            "model": "TF-IDF char_wb n-grams + LogisticRegression (scikit-learn)",
            "ngram_range": [self.cfg.ngram_min, self.cfg.ngram_max],
            "features": len(vec.vocabulary_) if vec is not None else None,
            "C": self.C, "C_dev_macro_f1": self.dev_scores or None,
            "class_weight": self.class_weight, "class_weight_dev_macro_f1": self.weight_scores or None,
            "fit_seconds": round(self.fit_seconds, 2),
        }
