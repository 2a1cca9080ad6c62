"""Checkpoint loading: clear errors naming the option, safetensors only."""

from __future__ import annotations

import pytest

from kopretrain.hub.loading import check_model_ref, load_config, load_tokenizer, load_weights
from kopretrain.runs.records import StageError
from kopretrain.testing import tiny_classifier


def test_missing_paths_name_the_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match="--tokenizer runs/vocab: no loadable tokenizer"):
        load_tokenizer("runs/vocab", what="tokenizer")  # was "Repo id must be in the form ..." from the Hub client
    with pytest.raises(StageError, match="--model ./nope: model directory not found"):
        check_model_ref("./nope")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises(StageError, match="not a model directory .*a.txt"):
        check_model_ref(str(tmp_path / "notes"))


def test_weights_load_only_from_safetensors(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = tiny_classifier(tmp_path / "m")
    assert load_config(str(model)).num_labels == 3 and load_tokenizer(str(model)) is not None
    assert load_weights(AutoModelForSequenceClassification, str(model)).num_labels == 3
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(model / "model.safetensors"), model / "pytorch_model.bin")  # a pickle beside it
    (model / "model.safetensors").unlink()
    with pytest.raises(StageError, match="cannot load safetensors weights.*no pickle"):
        load_weights(AutoModelForSequenceClassification, str(model))
