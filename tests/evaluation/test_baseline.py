"""The TF-IDF char n-gram + logistic regression baseline."""

from __future__ import annotations

import numpy as np
import pytest

from kopretrain.evaluation.baseline import Baseline, BaselineConfig
from tests.fixtures.sentiment import make_rows


def _split(n, seed, labels=("negative", "neutral", "positive")):
    rows = make_rows(n, seed, "x", labels)
    return [r["text"] for r in rows], [("negative", "neutral", "positive").index(r["label"]) for r in rows]


def test_beats_chance_on_a_separable_set():
    texts, y = _split(150, 1)
    test_texts, test_y = _split(60, 2)
    base = Baseline().fit(texts, y)
    probs = base.predict_proba(test_texts)
    assert probs.shape == (60, 3)
    assert np.allclose(probs.sum(1), 1.0)
    accuracy = (probs.argmax(1) == np.array(test_y)).mean()
    assert accuracy > 0.9  # chance is 1/3; the sentiment phrases decide the label
    info = base.describe()
    assert info["features"] > 50 and info["ngram_range"] == [1, 4]


def test_character_ngrams_survive_spacing_noise():
    base = Baseline().fit(["정말 재밌다", "너무 재밌어요", "완전 최악", "진짜 최악이다"] * 5, [2, 2, 0, 0] * 5)
    probs = base.predict_proba(["재밌었음", "최악임"])
    assert list(probs.argmax(1)) == [2, 0]  # unseen eojeols, shared syllable n-grams


def test_class_missing_from_training_gets_zero_probability():
    texts, y = _split(40, 3, labels=("negative", "positive"))
    probs = Baseline().fit(texts, y).predict_proba(["배우 연기 정말 최고다"])
    assert probs[0, 1] == 0.0 and probs[0].sum() == pytest.approx(1.0)


def test_config_and_unfitted_use():
    base = Baseline(BaselineConfig(ngram_min=2, ngram_max=2, C=0.5))
    with pytest.raises(RuntimeError, match="fit"):
        base.predict_proba(["아무 말"])
    texts, y = _split(30, 4)
    assert base.fit(texts, y).describe()["ngram_range"] == [2, 2]


def test_c_is_chosen_on_dev_macro_f1_and_classes_are_balanced():
    from sklearn.metrics import f1_score

    texts, y = _split(150, 1)
    dev_texts, dev_y = _split(60, 5)
    base = Baseline(BaselineConfig(C_grid=(0.01, 1.0, 100.0))).fit(texts, y, dev_texts, dev_y)
    scores = base.describe()["C_dev_macro_f1"]
    assert set(scores) == {0.01, 1.0, 100.0}
    assert base.C == max(scores, key=lambda k: (scores[k], -k))
    refit = Baseline(BaselineConfig(C=base.C)).fit(texts, y)  # the final fit: chosen C, all rows
    assert np.allclose(refit.predict_proba(dev_texts), base.predict_proba(dev_texts))
    assert f1_score(dev_y, base.predict_proba(dev_texts).argmax(1), average="macro") == pytest.approx(scores[base.C])
    # balanced weights move the decision towards a rare class; unweighted leans to the majority
    negative = [t for t, v in zip(texts, y) if v == 0][:5]
    positive = [t for t, v in zip(texts, y) if v == 2]
    skewed_t, skewed_y = positive + negative, [2] * len(positive) + [0] * len(negative)
    balanced = Baseline().fit(skewed_t, skewed_y).predict_proba(negative)[:, 0].mean()
    plain = Baseline(BaselineConfig(class_weight=None)).fit(skewed_t, skewed_y).predict_proba(negative)[:, 0].mean()
    assert balanced > plain


def test_class_weighting_is_chosen_on_dev_from_fits_on_all_rows():
    """Balanced weights help macro-F1 with few rows and can cost with many (NSMC: +1.0 at 50k rows,
    -0.5 at 483k), so the weighting is chosen on dev from models fit on all the training rows, and the
    chosen fit is the one kept."""
    from sklearn.metrics import f1_score

    texts, y = _split(150, 1)
    negative = [t for t, v in zip(texts, y) if v == 0][:6]
    rest = [(t, v) for t, v in zip(texts, y) if v != 0]
    train_t, train_y = negative + [t for t, _ in rest], [0] * len(negative) + [v for _, v in rest]
    dev_texts, dev_y = _split(90, 5)
    base = Baseline(BaselineConfig(C_grid=(1.0,), tune_max_train=30)).fit(train_t, train_y, dev_texts, dev_y)
    info = base.describe()
    scores = info["class_weight_dev_macro_f1"]
    assert set(scores) == {"balanced", "none"}
    chosen = max(("balanced", "none"), key=lambda w: scores[w])
    assert str(info["class_weight"]).lower() == chosen
    pred = base.predict_proba(dev_texts).argmax(1)
    assert f1_score(dev_y, pred, average="macro") == pytest.approx(scores[chosen])
    for weight, key in (("balanced", "balanced"), (None, "none")):  # each score is a fit on all rows
        alone = Baseline(BaselineConfig(C=1.0, class_weight=weight)).fit(train_t, train_y)
        assert f1_score(dev_y, alone.predict_proba(dev_texts).argmax(1), average="macro") == pytest.approx(scores[key])
    only = Baseline(BaselineConfig(C_grid=(1.0,), class_weight_grid=(None,))).fit(train_t, train_y, dev_texts, dev_y)
    assert only.describe()["class_weight"] is None and set(only.describe()["class_weight_dev_macro_f1"]) == {"none"}
    assert Baseline().fit(train_t, train_y).describe()["class_weight_dev_macro_f1"] is None  # no dev: config's weighting


def test_grid_fits_in_worker_processes_choose_as_in_process(monkeypatch):
    import kopretrain.evaluation.baseline as baseline

    texts, y = _split(150, 1)
    dev_texts, dev_y = _split(60, 5)
    cfg = BaselineConfig(C_grid=(0.01, 1.0, 100.0), n_jobs=2)
    here = Baseline(cfg).fit(texts, y, dev_texts, dev_y).describe()
    monkeypatch.setattr(baseline, "PARALLEL_MIN_ROWS", 0)  # large-corpus path on a small set
    there = Baseline(cfg).fit(texts, y, dev_texts, dev_y).describe()
    assert there["C_dev_macro_f1"] == pytest.approx(here["C_dev_macro_f1"])
    assert there["class_weight_dev_macro_f1"] == pytest.approx(here["class_weight_dev_macro_f1"])
    assert (there["C"], there["class_weight"]) == (here["C"], here["class_weight"])
