"""``finetune --calibrate``: fold a softmax temperature fitted on dev into the classifier head.

Fine-tuned classifiers are often overconfident (Guo et al. 2017, "On Calibration of Modern Neural
Networks"). On NSMC the self-trained 1k student alone has ECE 0.347 on the test split: its
confidences mean little. evaluate reports what temperature scaling would give, but a user who
loads the saved folder with plain transformers (``pipeline()``, ``AutoModelForSequenceClassification``)
gets the raw logits. Dividing the weight and bias of the head's last Linear layer by T makes the
saved model's logits z / T: the same argmax everywhere, calibrated probabilities, and nothing to
apply at load time. transformers has no such step (its Trainer stops at the trained weights).
"""

from __future__ import annotations

from typing import Any


def head_linear(model, num_labels: int):
    """The Linear layer that writes the logits: the last one with ``num_labels`` outputs in the head
    (``classifier`` for BERT, ``classifier.out_proj`` for ELECTRA/RoBERTa/XLM-R, ``score`` for some)."""
    import torch

    for name in ("classifier", "score"):
        head = getattr(model, name, None)
        if head is not None:
            break
    else:
        head = model
    found = [m for m in head.modules() if isinstance(m, torch.nn.Linear) and m.out_features == num_labels]
    if not found:
        raise ValueError(f"{type(model).__name__}: no Linear layer with {num_labels} outputs in its classifier head")
    return found[-1]


def fold_temperature(model, logits, labels) -> tuple[dict[str, Any], Any]:
    """Fit T on the dev ``logits`` (NLL), divide the head by it in place; return what ``stage.json``
    records and the dev logits the folded model now gives (``logits / T``). Skipped (T = 1) when dev
    holds fewer than two classes: the fit would then only sharpen toward that class."""
    import numpy as np
    import torch
    from scipy.special import softmax

    from kopretrain.evaluation.metrics import ece, fit_temperature, nll

    logits, y = np.asarray(logits, np.float64), np.asarray(labels)
    if len(set(y.tolist())) < 2:
        print("[finetune] --calibrate skipped: dev holds fewer than two classes")
        return {"folded": False, "reason": "fewer than two classes in dev", "temperature": 1.0}, logits
    t = fit_temperature(logits, y)
    layer = head_linear(model, model.config.num_labels)
    with torch.no_grad():
        layer.weight.div_(t)
        if layer.bias is not None:
            layer.bias.div_(t)
    before, after = ece(softmax(logits, axis=1), y), ece(softmax(logits / t, axis=1), y)
    nll_before, nll_after = nll(logits, y), nll(logits, y, t)
    print(f"[finetune] calibrated: temperature {t:.3f} folded into the head; dev NLL {nll_before:.4f} -> "
          f"{nll_after:.4f}, ECE {before:.4f} -> {after:.4f}")
    if after > before:  # T minimises NLL; binned ECE on a small or already calibrated dev set is noisy
        print(f"[finetune] note: dev ECE rose; T is fitted to dev NLL (which fell), and ECE over {len(y)} dev rows "
              "in 15 bins moves by chance when the model was already close to calibrated")
    # 6 significant digits: the head was divided by t itself, and a T near 0.02 rounded to 4 decimals
    # is 0.2% off, more than a reload check allows
    return {"folded": True, "temperature": float(f"{t:.6g}"), "dev_nll_before": round(nll_before, 4),
            "dev_nll_after": round(nll_after, 4), "dev_ece_before": round(before, 4),
            "dev_ece_after": round(after, 4), "dev_examples": int(len(y))}, logits / t
