"""finetune --ngram-blend end to end: the expert is fitted on the labelled rows and saved beside the
encoder, and evaluate, label and release use (and say they use) the pooled system."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import log_softmax, softmax

from kopretrain.data.files import LABELS
from kopretrain.evaluate import EvaluateConfig
from kopretrain.finetune import FinetuneConfig
from kopretrain.inference.classifier import Classifier
from kopretrain.inference.ngram import JSON_FILE, WEIGHTS_FILE
from kopretrain.runs.config import from_dict
from kopretrain.runs.registry import execute
from tests.fixtures.sentiment import make_model, write_data

FAST = dict(max_steps=20, eval_steps=10, batch_size=16, lr=3e-3, precision="fp32", logging_steps=10,
            early_stopping_patience=0, report_to="none")


@pytest.fixture(scope="module")
def blended(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("blend")
    write_data(root / "data")
    make_model(root / "pre", kind="bert")
    cfg = from_dict(FinetuneConfig, {"model": str(root / "pre"), "data": str(root / "data"), "ngram_blend": True,
                                     "label_budget": 90, **FAST})
    return execute("finetune", cfg, root / "finetune")


def test_finetune_saves_the_expert_and_records_the_fit(blended):
    assert (blended / JSON_FILE).is_file() and (blended / WEIGHTS_FILE).is_file()
    stats = json.loads((blended / "stage.json").read_text())["stats"]["ngram_blend"]
    assert stats["fitted"] and stats["train_examples"] == 90  # the label budget, not the 150 train rows
    assert stats["encoder_weight"] >= 0 and stats["ngram_weight"] > 0
    assert set(stats["dev_macro_f1"]) == {"encoder", "ngram", "blend"}
    assert stats["dev_macro_f1"]["ngram"] > 0.9  # the fixture's phrases are n-gram separable
    # the weights were fitted on the saved model's dev logits, row for row (not a reordered copy)
    dev = json.loads((blended / "dev_metrics.json").read_text())["dev"]
    assert stats["dev_macro_f1"]["encoder"] == pytest.approx(dev["macro_f1"], abs=1e-4)
    meta = json.loads((blended / JSON_FILE).read_text())
    assert meta["encoder_weight"] == pytest.approx(stats["encoder_weight"])
    # plain transformers still loads the directory: the extra safetensors file is not a model shard
    from transformers import AutoModelForSequenceClassification

    AutoModelForSequenceClassification.from_pretrained(blended)


def test_classifier_pools_encoder_and_ngrams(blended):
    clf = Classifier.load(str(blended))
    assert clf.ngram is not None
    texts = ["이 영화 정말 최고다", "스토리 그냥 그럭저럭", "결말 최악이다", "처음 보는 문장"]
    encoder = clf.logits(texts, blend=False)
    pooled = clf.logits(texts)
    want = clf.ngram.encoder_weight * log_softmax(encoder.astype(float), axis=1) \
        + clf.ngram.ngram_weight * clf.ngram.log_proba(texts)
    np.testing.assert_allclose(softmax(pooled, axis=1), softmax(want, axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(clf.predict_proba(texts), softmax(want, axis=1), rtol=1e-5, atol=1e-7)


def test_evaluate_scores_the_pool_and_reports_the_encoder_alone(blended):
    from kopretrain.evaluation.metrics import classification

    data = blended.parent / "data"
    cfg = from_dict(EvaluateConfig, {"model": str(blended), "data": str(data), "precision": "fp32"})
    out = execute("evaluate", cfg, blended.parent / "evaluate")
    metrics = json.loads((out / "metrics.json").read_text())
    preds = pd.read_parquet(out / "predictions.parquet")
    test = pd.read_parquet(data / "test.parquet")
    clf = Classifier.load(str(blended))
    y = [LABELS.index(v) for v in test["label"]]
    np.testing.assert_allclose(preds[[f"p_{c}" for c in LABELS]].to_numpy(), clf.predict_proba(test["text"].tolist()),
                               rtol=1e-5, atol=1e-7)
    alone = classification(y, clf.logits(test["text"].tolist(), blend=False).argmax(axis=1))
    blend = metrics["model"]["ngram_blend"]
    assert blend["encoder_alone"]["macro_f1"] == pytest.approx(alone["macro_f1"])
    assert metrics["model"]["macro_f1"] == pytest.approx(classification(y, preds["pred"].map(LABELS.index))["macro_f1"])
    assert any("pools its encoder with a TF-IDF n-gram model fitted on its 90 labelled rows" in n for n in metrics["notes"])
    assert json.loads((out / "stage.json").read_text())["stats"]["encoder_macro_f1"] == pytest.approx(alone["macro_f1"])
    assert f"| macro-F1, the encoder alone | {alone['macro_f1']:.4f} |" in (out / "report.md").read_text(encoding="utf-8")


def test_label_and_release_carry_the_pool(blended, tmp_path):
    from kopretrain import label as L
    from kopretrain import release as R

    src = tmp_path / "in.csv"
    texts = ["이 영화 정말 최고다", "스토리 그냥 그럭저럭", "결말 최악이다"]
    pd.DataFrame({"text": texts}).to_csv(src, index=False)
    out = L.execute(L.LabelConfig(model=str(blended), input=str(src), precision="fp32", progress=False),
                    tmp_path / "labeled.parquet")
    labeled = pd.read_parquet(out)
    np.testing.assert_allclose(labeled[[f"prob_{c}" for c in LABELS]].to_numpy(),
                               Classifier.load(str(blended)).predict_proba(texts), rtol=1e-5, atol=1e-6)
    record = json.loads((tmp_path / "labeled.parquet.stage.json").read_text())
    assert record["stats"]["ngram_blend"] is True

    folder = R.execute(R.ReleaseConfig(model=str(blended), verify=False, license="mit"), tmp_path / "release")
    assert (folder / JSON_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()
    assert "also holds an n-gram expert" in (folder / "README.md").read_text(encoding="utf-8")
    assert Classifier.load(str(folder)).ngram is not None
