"""experiments.add_blend fits onto an existing fine-tune the expert finetune --ngram-blend fits."""

from __future__ import annotations

import json

import pytest

from kopretrain.experiments.add_blend import add_blend
from kopretrain.finetune import FinetuneConfig
from kopretrain.inference.ngram import NgramExpert
from kopretrain.runs.config import from_dict
from kopretrain.runs.registry import execute
from tests.fixtures.sentiment import make_model, write_data

FAST = dict(max_steps=20, eval_steps=10, batch_size=16, lr=3e-3, precision="fp32", logging_steps=10,
            early_stopping_patience=0, report_to="none", label_budget=90)


def test_added_expert_matches_the_one_finetune_fits(tmp_path):
    write_data(tmp_path / "data")
    make_model(tmp_path / "pre", kind="bert")
    base = {"model": str(tmp_path / "pre"), "data": str(tmp_path / "data"), **FAST}
    plain = execute("finetune", from_dict(FinetuneConfig, base), tmp_path / "plain")
    staged = execute("finetune", from_dict(FinetuneConfig, {**base, "ngram_blend": True}), tmp_path / "staged")
    stats = add_blend(plain, tmp_path / "added")
    assert stats["fitted"] and stats["train_examples"] == 90
    added, fitted = NgramExpert.load(tmp_path / "added"), NgramExpert.load(staged)
    assert added.vectorizer.vocabulary_ == fitted.vectorizer.vocabulary_
    assert added.encoder_weight == pytest.approx(fitted.encoder_weight, abs=1e-3)
    assert added.ngram_weight == pytest.approx(fitted.ngram_weight, abs=1e-3)
    assert (tmp_path / "added" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "added" / "stage.json").read_text())["stage"] == "finetune"
    with pytest.raises(SystemExit, match="exists"):
        add_blend(plain, tmp_path / "added")
