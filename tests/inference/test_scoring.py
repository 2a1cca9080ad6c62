"""scoring.Scorer: length-sorted batches give each row its own probabilities, in LABELS order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kopretrain.inference.classifier import Classifier
from kopretrain.inference.scoring import Scorer, resolve
from kopretrain.testing import REVIEWS, tiny_classifier


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    return Classifier.load(str(tiny_classifier(tmp_path_factory.mktemp("scoring") / "m")))


def test_rows_get_their_own_probabilities(clf):
    texts = [t * (1 + i % 4) for i, t in enumerate(REVIEWS)]  # lengths shuffled against order
    probs = Scorer(clf, "fp32", batch_size=3).proba(texts)
    one_by_one = np.stack([clf.predict_proba([t], batch_size=1)[0] for t in texts])
    assert probs.shape == (len(texts), 3)
    assert abs(probs - one_by_one).max() < 1e-5
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert Scorer(clf, "fp32").proba([]).shape == (0, 3)


def test_model_label_order_is_mapped_to_labels_order(clf, tmp_path):
    """A model whose id2label is positive/negative/neutral still yields negative/neutral/positive."""
    model = tiny_classifier(tmp_path / "m")
    config = json.loads((model / "config.json").read_text())
    config["id2label"] = {"0": "positive", "1": "negative", "2": "neutral"}
    config["label2id"] = {"positive": 0, "negative": 1, "neutral": 2}
    (model / "config.json").write_text(json.dumps(config))
    permuted = Scorer(Classifier.load(str(model)), "fp32").proba(REVIEWS)
    plain = Scorer(clf, "fp32").proba(REVIEWS)  # same weights, standard order
    # outputs o0,o1,o2 are now named positive,negative,neutral: LABELS order is o1,o2,o0
    assert np.allclose(permuted, plain[:, [1, 2, 0]], atol=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precisions_agree_with_fp32(tmp_path, precision):
    # weights of ordinary scale (the shared fixture's are inflated, which int8 rounds badly)
    clf = Classifier.load(str(tiny_classifier(tmp_path / "m", init_range=0.05)))
    fp32 = Scorer(clf, "fp32").proba(REVIEWS)
    other = Scorer(clf, precision).proba(REVIEWS)
    assert abs(other - fp32).max() < 0.05
    assert (other.argmax(1) == fp32.argmax(1)).mean() >= 0.8


def test_auto_is_a_concrete_precision():
    assert resolve("auto") in ("fp32", "bf16")
    assert resolve("int8") == "int8"


def test_fast_token_ids_equal_the_transformers_tokenizer(clf):
    texts = REVIEWS + ["아주 " * 200]  # one text longer than max_length
    expected = clf.tokenizer(texts, truncation=True, max_length=clf.max_length)["input_ids"]
    assert Scorer(clf, "fp32").token_ids(texts) == expected
    assert max(map(len, expected)) == clf.max_length


def test_scorer_skips_the_tokenizers_copy_of_rules_it_applied_in_python(tmp_path):
    """Texts reach the Scorer normalized: the tokenizer's embedded rules would only repeat them
    (same ids, ~50 µs a review), so its private copy drops them, and only then."""
    from kopretrain.inference.scoring import rules_skipped
    from kopretrain.text.textprep import TextPrep
    from kopretrain.tokenizer.embed import has_block, save_with_textprep

    model = tiny_classifier(tmp_path / "m")
    normalize = {"emoji": "keep", "max_repeat": 2}
    prep = TextPrep(normalize=normalize)
    save_with_textprep(Classifier.load(str(model)).tokenizer, model, prep)
    clf = Classifier.load(str(model))
    assert has_block(json.loads(clf.tokenizer.backend_tokenizer.to_str())["normalizer"])
    scorer = Scorer(clf, "fp32")
    assert not has_block(json.loads(scorer._rust.to_str())["normalizer"])
    texts = ["배송 빨랐어요 최고ㅋㅋㅋㅋ!!!!!", "http://a.com 별로예요", *REVIEWS]
    prepared = clf.prep.prepare(texts)
    assert scorer.token_ids(prepared) == clf.tokenizer(prepared, truncation=True, max_length=clf.max_length)["input_ids"]
    unrecorded = TextPrep(normalize=normalize)  # no record: the rules in the tokenizer may be others
    assert has_block(json.loads(rules_skipped(clf.tokenizer.backend_tokenizer.to_str(), unrecorded))["normalizer"])


@pytest.mark.parametrize("fp32_runs, bf16_runs, expected", [
    ((1.0, 1.0, 1.0), (0.5, 0.5, 0.5), "bf16"),
    ((1.0, 1.0, 1.0), (0.9, 0.9, 0.9), "fp32"),
    ((1.0, 1.0, 1.0), (0.9, 0.5, 0.6), "bf16"),  # one slow bf16 timing (other work) does not decide
    ((1.0, 0.7, 1.0), (0.6, 0.6, 0.6), "fp32"),  # nor does one slow fp32 timing flatter bf16
])
def test_auto_measures_bf16_on_cpus_without_amx(clf, monkeypatch, fp32_runs, bf16_runs, expected):
    """bf16 autocast slowed a small model and sped e5-small up 3.1x on the same CPU: auto times one
    batch of each (three times, interleaved, after a warm-up; the fastest counts) and keeps bf16 only
    when it is clearly (>= 1.25x) faster. A fake clock decides here."""
    import time

    import kopretrain.inference.scoring as scoring
    import kopretrain.train.device as device

    monkeypatch.setattr(device, "cpu_bf16_supported", lambda: True)
    monkeypatch.setattr(scoring, "cpu_has_amx", lambda: False)
    durations = [5.0, 5.0] + [d for pair in zip(fp32_runs, bf16_runs) for d in pair]  # warm-ups first
    ticks = iter(np.cumsum([0.0] + [x for d in durations for x in (d, 1.0)]).tolist())  # duration, gap...
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks))
    scorer = Scorer(clf, "auto", batch_size=4)
    assert scorer.precision == "fp32" and scorer.measure
    probs = scorer.proba(REVIEWS)
    monkeypatch.undo()
    assert scorer.precision == expected and scorer.measured == {"fp32": min(fp32_runs), "bf16": min(bf16_runs)}
    assert np.allclose(probs, Scorer(clf, expected, batch_size=4).proba(REVIEWS), atol=1e-6)
    assert not Scorer(clf, "fp32").measure and not Scorer(clf, "int8").measure  # only auto measures
