"""The n-gram expert of a blended classifier: a TF-IDF model saved beside the encoder, without pickle.

``finetune --ngram-blend`` fits evaluate's TF-IDF char n-gram + logistic regression baseline on
the labelled training rows and saves it here; every kopretrain consumer of the model (evaluate,
label, Classifier) then scores ``a * log p(encoder) + b * log p(n-grams)`` and softmaxes that, a
log-linear pool (product of experts) whose two weights were fitted on dev by log-likelihood.

Why: character n-grams and a small encoder make different errors on short reviews. On NSMC the
pool beat both the encoder and the TF-IDF alone at 1k, 10k and all labels (BENCHMARKS.md), and
fitting a and b by likelihood also calibrates it (the encoder alone is overconfident).

The files are plain data, so loading never runs code: ``ngram_expert.json`` (vectorizer settings,
the n-gram vocabulary in column order, class ids, a and b) and ``ngram_expert.safetensors`` (idf,
coefficients, intercepts). A plain ``transformers`` load of the directory ignores them and gets
the encoder alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from kopretrain.data.files import LABELS

JSON_FILE = "ngram_expert.json"
WEIGHTS_FILE = "ngram_expert.safetensors"
FORMAT = 1
# the TfidfVectorizer settings that change its output, saved and restored as they were fitted
_VECTORIZER_PARAMS = ("analyzer", "ngram_range", "lowercase", "sublinear_tf", "norm", "use_idf", "smooth_idf")
_LOG_FLOOR = 1e-9  # log p of a class the n-gram model never saw (p = 0): very unlikely, not -inf


@dataclass
class NgramExpert:
    """A fitted TF-IDF vectorizer + multinomial logistic regression, and its blend weights."""
    vectorizer: Any
    coef: Any
    """(k, F): one row per class in ``classes`` (a binary fit is stored as two rows)."""
    intercept: Any
    classes: list[int]
    """LABELS indices the n-gram model was fitted on (all three unless train lacked a class)."""
    encoder_weight: float = 1.0
    ngram_weight: float = 1.0
    info: dict | None = None
    """What the fit recorded: features, C, class weighting, dev scores."""

    @classmethod
    def from_baseline(cls, fitted, info: dict | None = None) -> "NgramExpert":
        """From a fitted :class:`kopretrain.evaluation.baseline.Baseline`."""
        import numpy as np

        vec, lr = fitted.pipeline.steps[0][1], fitted.pipeline.steps[-1][1]
        coef, intercept = np.asarray(lr.coef_, np.float64), np.asarray(lr.intercept_, np.float64)
        if coef.shape[0] == 1:  # binary: sigmoid(z) == softmax([0, z])
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        return cls(vec, coef, intercept, [int(k) for k in fitted.classes_], info=info or {})

    def log_proba(self, texts: Sequence[str]):
        """(N, 3) log-probabilities in LABELS order (the same texts the encoder sees)."""
        import numpy as np
        from scipy.special import log_softmax

        x = self.vectorizer.transform(["" if t is None else str(t) for t in texts])
        part = log_softmax(np.asarray(x @ self.coef.T) + self.intercept, axis=1)
        out = np.full((len(texts), len(LABELS)), np.log(_LOG_FLOOR))
        out[:, self.classes] = np.maximum(part, np.log(_LOG_FLOOR))
        return out

    def blend(self, encoder_logits, texts: Sequence[str]):
        """The pooled scores (softmax them for probabilities), float32 like the encoder's logits."""
        from scipy.special import log_softmax

        pooled = self.encoder_weight * log_softmax(encoder_logits.astype("float64"), axis=1) \
            + self.ngram_weight * self.log_proba(texts)
        return pooled.astype("float32")

    def save(self, directory: str | Path) -> None:
        import numpy as np
        from safetensors.numpy import save_file

        directory = Path(directory)
        vec = self.vectorizer
        vocab = [None] * len(vec.vocabulary_)
        for gram, col in vec.vocabulary_.items():
            vocab[col] = gram
        params = {k: v for k, v in vec.get_params().items() if k in _VECTORIZER_PARAMS}
        params["ngram_range"] = list(params["ngram_range"])
        meta = {"format": FORMAT, "vectorizer": params, "classes": [LABELS[k] for k in self.classes],
                "encoder_weight": self.encoder_weight, "ngram_weight": self.ngram_weight,
                "info": self.info or {}, "vocabulary": vocab}
        # contiguous copies: scikit-learn's multinomial coef_ is Fortran-ordered, and safetensors
        # writes the buffer as it lies in memory (a transposed matrix came back scrambled)
        arrays = {"idf": vec.idf_, "coef": self.coef, "intercept": self.intercept}
        save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()}, str(directory / WEIGHTS_FILE))
        (directory / JSON_FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, revision: str | None = None) -> "NgramExpert | None":
        """The expert saved with a model (a directory, or a Hub id at ``revision``), or None when it has none."""
        from safetensors.numpy import load_file
        from sklearn.feature_extraction.text import TfidfVectorizer

        from kopretrain.hub.loading import model_file
        from kopretrain.runs.records import StageError

        meta_path = model_file(str(directory), JSON_FILE, revision)
        if meta_path is None:
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            weights = model_file(str(directory), WEIGHTS_FILE, revision)
            if weights is None:
                raise ValueError(f"{WEIGHTS_FILE} is missing beside it")
            arrays = load_file(str(weights))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, this kopretrain reads {FORMAT}")
            params = dict(meta["vectorizer"], ngram_range=tuple(meta["vectorizer"]["ngram_range"]))
            vocab = {gram: col for col, gram in enumerate(meta["vocabulary"])}
            vec = TfidfVectorizer(vocabulary=vocab, dtype=arrays["idf"].dtype, **params)
            vec.idf_ = arrays["idf"]
            classes = [LABELS.index(name) for name in meta["classes"]]
            if arrays["coef"].shape != (len(classes), len(vocab)):
                raise ValueError(f"coef has shape {arrays['coef'].shape}, expected {(len(classes), len(vocab))}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StageError(f"{meta_path}: unreadable n-gram expert ({exc}); refit with kopretrain finetune "
                             "--ngram-blend, or delete it and its .safetensors to use the encoder alone") from None
        return cls(vec, arrays["coef"], arrays["intercept"], classes, float(meta["encoder_weight"]),
                   float(meta["ngram_weight"]), meta.get("info") or {})


def fit_weights(encoder_logits, ngram_log_proba, labels: Sequence[int]) -> tuple[float, float]:
    """(a, b) >= 0 minimising the dev negative log-likelihood of softmax(a * log p_enc + b * log p_ngram).

    Two weights rather than one mixing share: each also acts as a temperature, so the pool comes
    out calibrated (on NSMC the encoder wants ~0.3, the heavily regularised 1k-row TF-IDF ~3)."""
    import numpy as np
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    enc = log_softmax(np.asarray(encoder_logits, np.float64), axis=1)
    ngr = np.asarray(ngram_log_proba, np.float64)
    y = np.asarray(labels)
    rows = np.arange(len(y))

    def nll(w):
        return -log_softmax(w[0] * enc + w[1] * ngr, axis=1)[rows, y].mean()

    best = minimize(nll, np.array([0.5, 0.5]), method="L-BFGS-B", bounds=[(0.0, 10.0), (0.0, 10.0)])
    return float(best.x[0]), float(best.x[1])
