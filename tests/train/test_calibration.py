"""finetune --calibrate: the dev temperature is folded into the classifier head, so the saved model's
logits are the uncalibrated ones divided by T (same predictions) wherever it is loaded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.special import softmax

from kopretrain.evaluation.metrics import ece
from kopretrain.finetune import FinetuneConfig
from kopretrain.runs.config import from_dict
from kopretrain.runs.registry import execute
from kopretrain.train.calibration import fold_temperature, head_linear
from tests.fixtures.sentiment import make_model

FAST = dict(max_steps=30, eval_steps=10, batch_size=16, lr=3e-3, precision="fp32", logging_steps=10,
            early_stopping_patience=0, report_to="none")


def overconfident(n: int = 600, seed: int = 0):
    """Logits right 70% of the time but 10x too large: the fitted temperature must be well above 1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    guess = np.where(rng.random(n) < 0.7, y, (y + 1) % 3)
    logits = rng.normal(0, 0.3, (n, 3))
    logits[np.arange(n), guess] += 1.0
    return logits * 10, y


@pytest.mark.parametrize("kind, path", [("bert", "classifier"), ("electra", "classifier.out_proj")])
def test_the_fold_divides_the_models_logits_by_t(tmp_path, kind, path):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(make_model(tmp_path / kind, kind=kind, classifier=True))
    assert head_linear(model, 3) is model.get_submodule(path)
    ids = torch.randint(5, 40, (4, 7))
    model.eval()
    with torch.no_grad():
        before = model(input_ids=ids).logits
    logits, y = overconfident()
    record, scaled = fold_temperature(model, logits, y)
    t = record["temperature"]
    with torch.no_grad():
        after = model(input_ids=ids).logits
    assert record["folded"] and 5 < t < 20  # logits were 10x too confident
    assert torch.allclose(after, before / t, atol=1e-5, rtol=1e-4)
    assert (after.argmax(1) == before.argmax(1)).all()
    assert np.allclose(scaled, logits / t, rtol=1e-3)
    assert record["dev_ece_after"] < record["dev_ece_before"] / 3
    assert record["dev_nll_after"] < record["dev_nll_before"]  # what T is fitted to
    assert record["dev_ece_before"] == pytest.approx(ece(softmax(logits, axis=1), y), abs=1e-4)


def test_a_small_temperature_is_recorded_precisely_enough_to_redo_the_fold():
    """Logits 50x too small give T near 0.02; rounded to 4 decimals it was 0.2% off the T the head
    was divided by, so a reload check (logits / recorded T) failed."""
    from types import SimpleNamespace

    head = torch.nn.Module()
    head.classifier, head.config = torch.nn.Linear(4, 3), SimpleNamespace(num_labels=3)
    logits, y = overconfident()
    record, scaled = fold_temperature(head, logits / 500, y)
    assert record["temperature"] < 0.05
    assert np.allclose(scaled, logits / 500 / record["temperature"], rtol=1e-5)


def test_one_class_dev_is_left_alone(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(make_model(tmp_path / "m", classifier=True))
    weight = head_linear(model, 3).weight.clone()
    logits, _ = overconfident()
    record, scaled = fold_temperature(model, logits, np.zeros(len(logits), int))
    assert not record["folded"] and record["temperature"] == 1.0
    assert torch.equal(head_linear(model, 3).weight, weight) and np.array_equal(scaled, logits)


def test_finetune_saves_the_calibrated_head(workdir):
    """Two identical runs but for --calibrate: the saved logits differ exactly by the recorded T."""
    from kopretrain.inference.classifier import Classifier

    outs = {}
    for calibrate in (True, False):
        cfg = from_dict(FinetuneConfig, {"model": str(workdir / "pre"), "data": str(workdir / "data"),
                                         "calibrate": calibrate, "seed": 3, **FAST})
        outs[calibrate] = execute("finetune", cfg, workdir / f"calibrate-{calibrate}")
    record = json.loads((outs[True] / "stage.json").read_text())["stats"]["calibration"]
    assert record["folded"] and record["temperature"] != 1.0 and record["dev_examples"] > 0
    assert "calibration" not in json.loads((outs[False] / "stage.json").read_text())["stats"]
    texts = ["이 영화 정말 최고다", "스토리 그냥 그럭저럭", "결말 최악이다", "처음 보는 문장"]
    raw = Classifier.load(str(outs[False])).logits(texts, blend=False)
    folded = Classifier.load(str(outs[True])).logits(texts, blend=False)
    assert np.allclose(folded, raw / record["temperature"], atol=1e-4, rtol=1e-3)
    # the fold changes probabilities, never the dev predictions the checkpoint was selected on
    dev = [json.loads((outs[c] / "dev_metrics.json").read_text())["dev"]["macro_f1"] for c in (True, False)]
    assert dev[0] == dev[1]
