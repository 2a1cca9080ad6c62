"""Shared model loading: label order, local vs Hub references, which text column the model sees."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kopretrain.hub.loading import is_local
from kopretrain.inference.classifier import Classifier, input_texts
from kopretrain.runs.records import StageError
from kopretrain.text.textprep import TextPrep
from tests.fixtures.sentiment import make_model


def test_probabilities_come_in_labels_order_whatever_id2label_says(tmp_path):
    from transformers import AutoModelForSequenceClassification

    path = make_model(tmp_path / "m", classifier=True, init_range=0.5,
                      id2label={0: "positive", 1: "negative", 2: "neutral"})
    clf = Classifier.load(str(path))
    texts = ["정말 최고다", "최악이다 돈 아깝다", "그냥 그럭저럭"]
    probs = clf.predict_proba(texts)
    net = AutoModelForSequenceClassification.from_pretrained(path).eval()
    raw = net(**clf.tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1).detach().numpy()
    assert np.allclose(probs, raw[:, [1, 2, 0]], atol=1e-5)  # -> negative, neutral, positive


def test_local_paths_and_hub_ids():
    assert is_local("./runs/x") and is_local("/abs/model") and is_local("runs/nsmc/finetune")
    assert not is_local("beomi/KcELECTRA-base") and not is_local("klue-bert")
    with pytest.raises(StageError, match="model directory not found"):
        Classifier.load("./definitely/not/here")


def test_input_texts_uses_raw_text_only_when_the_rules_differ(tmp_path):
    frame = pd.DataFrame({"text": ["배송 빨랐어요ㅋㅋ"], "text_raw": ["배송 빨랐어욬ㅋㅋㅋㅋ"]})
    assert input_texts(frame, TextPrep()) == ["배송 빨랐어요ㅋㅋ"]  # no rules recorded: use text as is
    data = tmp_path / "norm"
    data.mkdir()
    rules = {"repeat_max": 2}
    (data / "stage.json").write_text(json.dumps({"stage": "normalize", "fingerprint": "f",
                                                 "config": {"input": "x", **rules}}))
    # same rules as the data's normalize stage: `text` is already normalized, nothing is re-run
    assert input_texts(frame, TextPrep(normalize=rules), str(data)) == ["배송 빨랐어요ㅋㅋ"]
    with pytest.raises(StageError, match="no 'text' column; columns are: review"):
        input_texts(pd.DataFrame({"review": ["x"]}), TextPrep())


def test_max_length_defaults_to_the_fine_tuning_length(tmp_path):
    path = make_model(tmp_path / "m", classifier=True)
    assert Classifier.load(str(path)).max_length == 64  # no record: 128, capped by max_position_embeddings
    TextPrep(extra={"max_length": 32}).save(path)
    assert Classifier.load(str(path)).max_length == 32
    assert Classifier.load(str(path), max_length=16).max_length == 16
