"""``finetune --ngram-blend``: fit the n-gram expert beside a fine-tuned encoder and the pool's weights.

The expert is evaluate's TF-IDF baseline (same features, C and class weighting chosen on dev the
same way) fitted on the labelled training rows only: a self-trained model's pseudo-labels are its
teacher's guesses, and the n-grams would only learn the teacher back. The pool's two weights are
fitted on the fine-tune's dev rows by log-likelihood (:func:`kopretrain.inference.ngram.fit_weights`).
"""

from __future__ import annotations

import time
from typing import Any


def dev_logits(model, tokenizer, prep, names: list[str], max_length: int, rows):
    """The trained model's dev logits in LABELS order, in fp32 through the scoring loop evaluate and
    label use. Not ``trainer.predict``: with ``group_by_length`` transformers 5 also length-groups
    the eval sampler, so its predictions come back in another order than the rows."""
    from kopretrain.inference.classifier import Classifier

    clf = Classifier(model, tokenizer, prep, names, "finetune", max_length=max_length)
    return clf.logits(rows.dev_texts, prepared=True, precision="fp32", blend=False)


def fit_blend(logits, rows, seed: int, directory) -> dict[str, Any]:
    """Fit, save into ``directory`` and return what ``stage.json`` records. ``logits``: the saved
    model's dev logits in LABELS order (``fitted`` False, with the reason, when nothing was fitted)."""
    import numpy as np
    from sklearn.metrics import f1_score

    from kopretrain.evaluation.baseline import Baseline
    from kopretrain.inference.ngram import NgramExpert, fit_weights

    if len(set(rows.gold_labels)) < 2:
        print("[finetune] --ngram-blend skipped: the labelled rows hold one class, a classifier cannot be fitted")
        return {"fitted": False, "reason": "one class in the labelled rows"}
    t0 = time.time()
    print(f"[finetune] fitting the n-gram expert on {len(rows.gold_texts):,} labelled rows")
    fitted = Baseline(seed=seed).fit(rows.gold_texts, rows.gold_labels, rows.dev_texts, rows.dev_labels)
    expert = NgramExpert.from_baseline(fitted)
    logits = np.asarray(logits, np.float64)
    ngram = expert.log_proba(rows.dev_texts)
    expert.encoder_weight, expert.ngram_weight = fit_weights(logits, ngram, rows.dev_labels)
    y = rows.dev_labels

    def dev_f1(scores) -> float:
        return round(float(f1_score(y, np.asarray(scores).argmax(axis=1), average="macro")), 4)

    expert.info = {
        **{k: v for k, v in fitted.describe().items() if k != "fit_seconds"},
        "train_examples": len(rows.gold_texts),
        "dev_macro_f1": {"encoder": dev_f1(logits), "ngram": dev_f1(ngram),
                         "blend": dev_f1(expert.blend(logits, rows.dev_texts))},
        "dev_examples": len(y), "fit_seconds": round(time.time() - t0, 2),
    }
    expert.save(directory)
    scores = expert.info["dev_macro_f1"]
    print(f"[finetune] n-gram blend: {expert.encoder_weight:.2f} x encoder + {expert.ngram_weight:.2f} x n-grams; "
          f"dev macro-F1 encoder {scores['encoder']:.4f}, n-grams {scores['ngram']:.4f}, blend {scores['blend']:.4f}")
    return {"fitted": True, "encoder_weight": expert.encoder_weight, "ngram_weight": expert.ngram_weight,
            **expert.info}
