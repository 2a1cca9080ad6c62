"""The n-gram expert: saved without pickle, reloaded to the same probabilities as the fitted
baseline, and pooled with weights fitted by dev log-likelihood."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kopretrain.evaluation.baseline import Baseline
from kopretrain.inference.ngram import JSON_FILE, WEIGHTS_FILE, NgramExpert, fit_weights
from kopretrain.runs.records import StageError
from tests.fixtures.sentiment import make_rows


def texts_labels(n: int, seed: int, labels=("negative", "neutral", "positive")):
    from kopretrain.data.files import LABELS

    rows = make_rows(n, seed, "r", labels)
    return [r["text"] for r in rows], [LABELS.index(r["label"]) for r in rows]


@pytest.mark.parametrize("labels", [("negative", "neutral", "positive"), ("negative", "positive")])
def test_reloaded_expert_gives_the_baselines_probabilities(tmp_path, labels):
    train, y = texts_labels(90, 1, labels)
    dev, y_dev = texts_labels(30, 2, labels)
    fitted = Baseline(seed=0).fit(train, y, dev, y_dev)
    expert = NgramExpert.from_baseline(fitted, info={"train_examples": 90})
    expert.encoder_weight, expert.ngram_weight = 0.3, 2.0
    expert.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {JSON_FILE, WEIGHTS_FILE}
    loaded = NgramExpert.load(tmp_path)
    probe = dev + ["처음 보는 문장 ㅋㅋ", ""]
    want = fitted.predict_proba(probe)
    got = np.exp(loaded.log_proba(probe))
    present = sorted(set(y))
    np.testing.assert_allclose(got[:, present], want[:, present], rtol=1e-5, atol=1e-7)
    absent = [k for k in range(3) if k not in present]
    assert (got[:, absent] <= 1e-8).all()  # a class never seen stays (almost) impossible, not -inf
    assert (loaded.encoder_weight, loaded.ngram_weight) == (0.3, 2.0)
    assert loaded.info == {"train_examples": 90}


def test_blend_is_the_weighted_sum_of_log_probabilities(tmp_path):
    from scipy.special import log_softmax, softmax

    train, y = texts_labels(60, 1)
    expert = NgramExpert.from_baseline(Baseline(seed=0).fit(train, y))
    expert.encoder_weight, expert.ngram_weight = 0.5, 1.5
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 3.0]], dtype=np.float32)
    texts = train[:2]
    pooled = expert.blend(logits, texts)
    want = 0.5 * log_softmax(logits.astype(float), axis=1) + 1.5 * expert.log_proba(texts)
    np.testing.assert_allclose(softmax(pooled, axis=1), softmax(want, axis=1), rtol=1e-5)


def test_fit_weights_trusts_the_informative_expert():
    """An encoder that is noise gets ~no weight; one that knows the labels gets more than the noise."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    good = np.eye(3)[y] * 3.0 + rng.normal(0, 1, (600, 3))
    noise = rng.normal(0, 1, (600, 3))
    ngram = np.log(np.full((600, 3), 1 / 3) * 0.5 + np.eye(3)[y] * 0.5 * (rng.random((600, 1)) < 0.7)
                   + np.eye(3)[rng.integers(0, 3, 600)] * 0.5 * (rng.random((600, 1)) >= 0.7))
    a_noise, b_noise = fit_weights(noise, ngram, y)
    a_good, b_good = fit_weights(good, ngram, y)
    assert a_noise < 0.1 and b_noise > 0.3
    assert a_good > 0.5 and a_good > a_noise


def test_no_expert_and_broken_expert(tmp_path):
    assert NgramExpert.load(tmp_path) is None
    assert NgramExpert.load("owner/hub-model") is None
    train, y = texts_labels(60, 1)
    NgramExpert.from_baseline(Baseline(seed=0).fit(train, y)).save(tmp_path)
    meta = json.loads((tmp_path / JSON_FILE).read_text())
    meta["vocabulary"] = meta["vocabulary"][:-1]
    (tmp_path / JSON_FILE).write_text(json.dumps(meta))
    with pytest.raises(StageError, match=rf"{JSON_FILE}: unreadable n-gram expert .*idf length"):
        NgramExpert.load(tmp_path)
    (tmp_path / WEIGHTS_FILE).unlink()
    with pytest.raises(StageError, match="unreadable n-gram expert"):
        NgramExpert.load(tmp_path)
