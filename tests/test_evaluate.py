"""evaluate: consistent metrics/predictions, the report, calibration maths, missing classes and
clear errors for models that are not 3-class sentiment classifiers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kopretrain.cli import main
from kopretrain.runs.config import from_dict
from kopretrain.evaluate import EvaluateConfig
from kopretrain.evaluation.metrics import binary_accuracy, classification, ece, fit_temperature, per_rating, reliability
from kopretrain.runs.records import StageError
from kopretrain.runs.registry import execute
from tests.fixtures.sentiment import make_model, write_data


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ev")
    write_data(root / "data")
    make_model(root / "clf", classifier=True, init_range=0.5)
    return root


@pytest.fixture(scope="module")
def evaluated(workdir) -> Path:
    cfg = from_dict(EvaluateConfig, {"model": str(workdir / "clf"), "data": str(workdir / "data"),
                                     "max_errors_shown": 5, "precision": "fp32"})
    return execute("evaluate", cfg, workdir / "eval")


def test_metrics_agree_with_predictions(evaluated):
    from sklearn.metrics import f1_score

    metrics = json.loads((evaluated / "metrics.json").read_text())
    preds = pd.read_parquet(evaluated / "predictions.parquet")
    assert len(preds) == metrics["n"] == 45
    assert {"id", "label", "pred", "p_negative", "p_neutral", "p_positive", "baseline_pred"} <= set(preds.columns)
    model = metrics["model"]
    assert model["accuracy"] == pytest.approx((preds["label"] == preds["pred"]).mean())
    assert model["macro_f1"] == pytest.approx(f1_score(preds["label"], preds["pred"], average="macro"))
    probs = preds[["p_negative", "p_neutral", "p_positive"]].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (np.array(["negative", "neutral", "positive"])[probs.argmax(1)] == preds["pred"]).all()
    assert sum(map(sum, model["confusion"])) == 45
    base = metrics["baseline"]
    assert base["accuracy"] == pytest.approx((preds["label"] == preds["baseline_pred"]).mean())
    assert base["macro_f1"] > 0.9  # the fixture is separable by its words: TF-IDF must nail it
    # Temperature: fitted on dev logits (never the scored test split), applied to test.
    assert model["temperature"] == pytest.approx(_fit_on(evaluated.parent, "dev"), rel=1e-6)
    assert model["ece_temperature_scaled"] == pytest.approx(
        ece(_softmax(_logits(evaluated.parent, "test")[0], model["temperature"]), _logits(evaluated.parent, "test")[1]))
    assert [r["rating"] for r in model["per_rating"]] == [float(r) for r in range(1, 11)]
    errors = metrics["confident_errors"]
    assert len(errors) <= 5 and errors == sorted(errors, key=lambda e: -e["confidence"])
    assert all(e["gold"] != e["pred"] for e in errors)
    assert all(e["text"] in set(pd.read_parquet(evaluated.parent / "data" / "test.parquet")["text_raw"])
               for e in errors)  # the report shows what the user wrote, not the normalized text


def test_scoring_precision_is_applied_and_recorded(evaluated, workdir, tmp_path):
    """bf16 scoring gives bf16-rounded probabilities (not the fp32 ones) and says so; auto records what it chose."""
    from kopretrain.inference.scoring import worth_measuring

    fp32 = json.loads((evaluated / "metrics.json").read_text())["model"]
    assert fp32["precision"] == "fp32" and fp32["precision_seconds_per_batch"] is None
    out = execute("evaluate", from_dict(EvaluateConfig, {"model": str(workdir / "clf"), "data": str(workdir / "data"),
                                                         "precision": "bf16", "baseline": False}), tmp_path / "bf16")
    assert json.loads((out / "metrics.json").read_text())["model"]["precision"] == "bf16"
    p32 = pd.read_parquet(evaluated / "predictions.parquet")[["p_negative", "p_neutral", "p_positive"]].to_numpy()
    p16 = pd.read_parquet(out / "predictions.parquet")[["p_negative", "p_neutral", "p_positive"]].to_numpy()
    assert not np.array_equal(p32, p16) and np.abs(p32 - p16).max() < 0.05
    auto = execute("evaluate", from_dict(EvaluateConfig, {"model": str(workdir / "clf"), "data": str(workdir / "data"),
                                                          "baseline": False}), tmp_path / "auto")
    model = json.loads((auto / "metrics.json").read_text())["model"]
    assert model["precision"] in ("fp32", "bf16")
    if worth_measuring("auto"):  # a bf16 CPU without AMX: both timings recorded beside the choice
        assert set(model["precision_seconds_per_batch"]) == {"fp32", "bf16"}


def test_report_files_and_embedded_images(evaluated):
    md = (evaluated / "report.md").read_text()
    page = (evaluated / "report.html").read_text()
    for png in ("confusion.png", "reliability.png", "ratings.png"):
        assert (evaluated / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in md
        assert f'src="{png}"' not in page
    assert page.count('src="data:image/png;base64,') == 3
    for section in ("Summary", "Per class", "Calibration", "Accuracy per original rating", "Most confident errors"):
        assert f"## {section}" in md and f"<h2>{section}</h2>" in page
    assert "baseline (TF-IDF+LR)" in md and "binary accuracy" in md


def test_report_says_nothing_scheme_specific_without_an_ingest_record(evaluated):
    """The fixture data has no stage.json: its rating scheme is unknown, so no NSMC claims."""
    md = (evaluated / "report.md").read_text()
    assert json.loads((evaluated / "metrics.json").read_text())["label_scheme"] is None
    assert "NSMC" not in md and "5-8" not in md and "band of ratings" not in md
    assert "predicts argmax over p(negative) vs p(positive)." in md


def test_report_words_ratings_from_the_recorded_label_scheme(workdir, tmp_path):
    """Data ingested with 1-5 stars: the report speaks of its 1-2 / 3 / 4-5 bands, not NSMC's."""
    from kopretrain.ingest import IngestConfig
    from kopretrain.runs.records import StageRun

    stars = {"negative": [1.0, 2.0], "neutral": [3.0], "positive": [4.0, 5.0]}
    src = tmp_path / "reviews.csv"
    src.write_text("text,stars\n좋아요,5\n", encoding="utf-8")
    data = tmp_path / "ingest"
    with StageRun("ingest", IngestConfig(input=str(src), label_scheme="stars5"), data, log=lambda *a: None) as run:
        for split in ("train", "dev", "test"):  # the fixture rows, re-rated on the 1-5 scale
            frame = pd.read_parquet(workdir / "data" / f"{split}.parquet")
            frame["rating"] = [stars[lab][i % len(stars[lab])] for i, lab in enumerate(frame["label"])]
            frame.to_parquet(run.dir / f"{split}.parquet")
        run.stats["rating_histogram"] = {str(r): 1 for r in range(1, 6)}
    cfg = from_dict(EvaluateConfig, {"model": str(workdir / "clf"), "data": str(data), "baseline": False, "precision": "fp32"})
    out = execute("evaluate", cfg, tmp_path / "eval")
    assert json.loads((out / "metrics.json").read_text())["label_scheme"]["name"] == "stars5"
    md = (out / "report.md").read_text()
    assert "NSMC" not in md and "5-8" not in md and "(5 and 8)" not in md and "9-10" not in md
    assert "Labels: negative / neutral / positive (ratings 1-5: negative <= 2, neutral between, positive >= 4)" in md
    assert "p(positive): with this data's rating scheme (stars5) that is ratings 1-2 against 4-5." in md
    assert "neutral is the one rating 3 between negative (1-2) and positive (4-5)" in md


def test_ece_on_a_hand_made_example():
    # 4 predictions: two in the 0.9 bin (one right), two in the 0.6 bin (both right)
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]])
    y = np.array([0, 1, 1, 2])
    # bin 0.9: conf 0.9, acc 0.5 -> |0.4| * 2/4 ; bin 0.6: conf 0.6, acc 1.0 -> |0.4| * 2/4
    assert ece(probs, y) == pytest.approx(0.4)
    bins = [b for b in reliability(probs, y) if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in bins] == [(2, 1.0), (2, 0.5)]
    assert ece(np.array([[0.7, 0.2, 0.1]] * 10), np.array([0] * 7 + [1] * 3)) == pytest.approx(0.0)


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4000, 3)) * 2
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])  # labels drawn from calibrated probabilities
    assert fit_temperature(z * 3.0, y) == pytest.approx(3.0, rel=0.1)  # overconfident by 3x


def test_binary_accuracy_and_per_rating():
    probs = np.array([[0.5, 0.4, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8]])
    y = np.array([0, 1, 2, 2])  # the neutral row is ignored; row 3 (gold positive) says p(neg) > p(pos)
    assert binary_accuracy(probs, y) == {"n": 3, "accuracy": pytest.approx(2 / 3)}
    rows = per_rating([1, 6, 9, 9], y, probs.argmax(1))
    assert [(r["rating"], r["n"], r["accuracy"]) for r in rows] == [(1, 1, 1.0), (6, 1, 1.0), (9, 2, 0.5)]
    assert rows[2]["pred_neutral"] == 0.5 and rows[2]["gold"] == "positive"
    # rows without a rating are one last row, not dropped: the table accounts for every test row
    rows = per_rating([1, None, 9, float("nan")], y, probs.argmax(1))
    assert [(r["rating"], r["n"]) for r in rows] == [(1, 1), (9, 1), (None, 2)]
    assert rows[-1]["gold"] == "mixed"  # a neutral and a positive row: not one gold label
    assert sum(r["n"] for r in rows) == len(y)


def test_missing_class_in_test_split(workdir, tmp_path):
    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        report = classification([0, 0, 2, 2], [0, 1, 2, 2])
    assert report["absent_classes"] == ["neutral"]
    assert report["per_class"]["neutral"]["recall"] is None and report["per_class"]["neutral"]["predicted"] == 1
    assert report["macro_f1"] == pytest.approx((2 / 3 + 1.0) / 2)  # averaged over present classes

    data = write_data(tmp_path / "data", test_labels=("negative", "positive"))
    cfg = from_dict(EvaluateConfig, {"model": str(workdir / "clf"), "data": str(data), "baseline": False, "precision": "fp32"})
    out = execute("evaluate", cfg, tmp_path / "eval")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["absent_classes"] == ["neutral"] and metrics["baseline"] is None
    assert "absent from the test split: neutral" in (out / "report.md").read_text()


def test_models_that_are_not_sentiment_classifiers_are_explained(workdir, tmp_path, capsys):
    data = str(workdir / "data")
    assert main(["evaluate", "--model", str(tmp_path / "nope"), "--data", data, "-o", str(tmp_path / "o")]) == 2
    assert "model directory not found" in capsys.readouterr().err
    pre = make_model(tmp_path / "pre")  # a pretraining model: no id2label
    with pytest.raises(StageError, match="not a fine-tuned classifier"):
        execute("evaluate", EvaluateConfig(model=str(pre), data=data), tmp_path / "o1")
    stars = make_model(tmp_path / "stars", classifier=True, id2label={0: "1 star", 1: "3 stars", 2: "5 stars"})
    with pytest.raises(StageError, match="not negative/neutral/positive"):
        execute("evaluate", EvaluateConfig(model=str(stars), data=data), tmp_path / "o2")


def test_missing_text_column_lists_columns(workdir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.read_parquet(workdir / "data" / "test.parquet").drop(columns=["text"]).to_parquet(bad / "test.parquet")
    with pytest.raises(StageError, match=r"missing column\(s\) text; columns are: id, text_raw, label"):
        execute("evaluate", EvaluateConfig(model=str(workdir / "clf"), data=str(bad)), tmp_path / "o")


def _logits(workdir: Path, split: str, data: Path | None = None):
    """The fixture classifier's logits and gold label ids on ``split``, computed independently of evaluate."""
    from kopretrain.evaluate import labelled
    from kopretrain.inference.classifier import Classifier, input_texts, read_split

    data = str(data or workdir / "data")
    clf = Classifier.load(str(workdir / "clf"), data=data)
    rows, y = labelled(read_split(data, split))
    return clf.logits(input_texts(rows, clf.prep, data), batch_size=64, prepared=True), y


def _softmax(logits, temperature=1.0):
    z = np.asarray(logits, dtype=float) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _fit_on(workdir: Path, split: str, data: Path | None = None) -> float:
    return fit_temperature(*_logits(workdir, split, data))


def test_temperature_is_fitted_on_dev_not_on_the_scored_split(workdir, tmp_path):
    import shutil

    # Dev relabelled with the model's own predictions except every 4th row: on dev the model is
    # mostly right (a low temperature), on test it is an untrained guesser (a high one).
    data = tmp_path / "data"
    shutil.copytree(workdir / "data", data)
    dev_logits, _ = _logits(workdir, "dev")
    dev = pd.read_parquet(data / "dev.parquet")
    pred = np.asarray(dev_logits).argmax(1)
    pred[::4] = (pred[::4] + 1) % 3
    dev.loc[dev["label"].notna(), "label"] = [("negative", "neutral", "positive")[i] for i in pred]
    dev.to_parquet(data / "dev.parquet", index=False)
    on_dev, on_test = _fit_on(workdir, "dev", data), _fit_on(workdir, "test", data)
    assert abs(np.log(on_dev) - np.log(on_test)) > 0.5, (on_dev, on_test)  # the fixture tells them apart

    cfg = from_dict(EvaluateConfig, {"model": str(workdir / "clf"), "data": str(data), "baseline": False, "precision": "fp32"})
    metrics = json.loads((execute("evaluate", cfg, tmp_path / "eval") / "metrics.json").read_text())
    assert metrics["model"]["temperature"] == pytest.approx(on_dev, rel=1e-6)
    test_logits, y_test = _logits(workdir, "test", data)
    assert metrics["model"]["ece_temperature_scaled"] == pytest.approx(ece(_softmax(test_logits, on_dev), y_test))
    assert not any("fitted on the split being scored" in n for n in metrics["notes"])


def test_scoring_dev_says_both_scores_are_optimistic(workdir, tmp_path):
    """The baseline's C is chosen on dev: scored on dev, its number was its best tuning score, unremarked."""
    cfg = from_dict(EvaluateConfig, {"model": str(workdir / "clf"), "data": str(workdir / "data"), "split": "dev",
                                     "temperature_scaling": False, "precision": "fp32"})
    metrics = json.loads((execute("evaluate", cfg, tmp_path / "eval") / "metrics.json").read_text())
    assert any("chosen on the split being scored (dev)" in n for n in metrics["notes"])


def _baseline_probs(data: Path, train_rows=None, seed: int = 0):
    from types import SimpleNamespace

    from kopretrain.evaluate import baseline_dev, labelled
    from kopretrain.evaluation.baseline import Baseline

    train, y = labelled(pd.read_parquet(data / "train.parquet"))
    if train_rows is not None:
        train, y = train.iloc[train_rows].reset_index(drop=True), [y[i] for i in train_rows]
    test, _ = labelled(pd.read_parquet(data / "test.parquet"))
    dev = baseline_dev(SimpleNamespace(data=str(data), temperature_max_dev=10_000, seed=seed))  # C is tuned on dev
    fitted = Baseline(seed=seed).fit([str(t) for t in train["text"]], y, *dev)
    return fitted.predict_proba([str(t) for t in test["text"]]), len(y)


BASE_COLS = ["baseline_p_negative", "baseline_p_neutral", "baseline_p_positive"]


def test_baseline_is_trained_on_the_training_split_only(evaluated, workdir):
    metrics = json.loads((evaluated / "metrics.json").read_text())
    preds = pd.read_parquet(evaluated / "predictions.parquet")
    expected, n_train = _baseline_probs(workdir / "data")
    assert metrics["baseline"]["train_examples"] == n_train == 150
    assert np.allclose(preds[BASE_COLS].to_numpy(), expected, atol=1e-6)
    # A baseline that saw the test rows would give different probabilities: the check above can tell.
    from kopretrain.evaluation.baseline import Baseline

    test = pd.read_parquet(workdir / "data" / "test.parquet")
    rows, y = test[test["label"].notna()], [("negative", "neutral", "positive").index(v)
                                            for v in test["label"].dropna()]
    leaked = Baseline(seed=0).fit([str(t) for t in rows["text"]], y).predict_proba([str(t) for t in rows["text"]])
    assert not np.allclose(leaked, expected, atol=1e-3)


def test_a_released_folder_replays_the_label_budget_from_its_provenance(workdir, tmp_path):
    """A release has no stage.json of its own (stage.json there is release's): provenance.json
    carries the finetune record, so the baseline trains on the same 30 rows, not all of train."""
    import shutil

    model = tmp_path / "released"
    shutil.copytree(workdir / "clf", model)
    (model / "stage.json").write_text(json.dumps({"stage": "release", "fingerprint": "y", "config": {}}))
    (model / "provenance.json").write_text(json.dumps({"stages": {"finetune": {
        "stage": "finetune", "fingerprint": "x", "config": {"label_budget": 30, "seed": 5}}}}))
    cfg = from_dict(EvaluateConfig, {"model": str(model), "data": str(workdir / "data"), "temperature_scaling": False})
    metrics = json.loads((execute("evaluate", cfg, tmp_path / "eval") / "metrics.json").read_text())
    assert metrics["baseline"]["train_examples"] == 30


def test_baseline_replays_the_finetune_label_budget(workdir, tmp_path):
    import shutil

    from kopretrain.data.split import stratified_sample
    from kopretrain.evaluate import labelled

    model = tmp_path / "budget_clf"
    shutil.copytree(workdir / "clf", model)
    (model / "stage.json").write_text(json.dumps(
        {"stage": "finetune", "fingerprint": "x", "config": {"label_budget": 30, "seed": 5},
         "stats": {"pseudo_labels": {"rows": 40, "teacher": "runs/t"}}}))  # self-trained: 30 labels + 40 guesses
    cfg = from_dict(EvaluateConfig, {"model": str(model), "data": str(workdir / "data"), "temperature_scaling": False})
    out = execute("evaluate", cfg, tmp_path / "eval")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["baseline"]["train_examples"] == 30
    assert any("label budget: 30 rows (seed 5)" in n for n in metrics["notes"])
    assert any("also learned from 40 rows its teacher (runs/t) labelled" in n for n in metrics["notes"])
    _, y_train = labelled(pd.read_parquet(workdir / "data" / "train.parquet"))
    keep = stratified_sample(y_train, 30, 5)  # the rows finetune trained on (its seed, not evaluate's)
    expected, _ = _baseline_probs(workdir / "data", train_rows=list(keep))
    preds = pd.read_parquet(out / "predictions.parquet")
    assert np.allclose(preds[BASE_COLS].to_numpy(), expected, atol=1e-6)
    other, _ = _baseline_probs(workdir / "data", train_rows=list(stratified_sample(y_train, 30, 0)))
    assert not np.allclose(other, expected, atol=1e-3)  # another sample of 30 would be caught


def test_rows_without_a_rating_are_counted_in_the_rating_table(workdir, tmp_path):
    """Test rows labelled without a rating (a label column, a missing rating) used to vanish from
    the per-rating table; now they are its last row and the report says so."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(workdir / "data", data)
    test = pd.read_parquet(data / "test.parquet")
    test["rating"] = test["rating"].astype("float64").where(test.index % 3 != 0)
    test.to_parquet(data / "test.parquet")
    out = execute("evaluate", from_dict(EvaluateConfig, {"model": str(workdir / "clf"), "data": str(data),
                                                         "precision": "fp32"}), tmp_path / "eval")
    rows = json.loads((out / "metrics.json").read_text())["model"]["per_rating"]
    assert rows[-1]["rating"] is None and rows[-1]["n"] == int(test["rating"].isna().sum()) > 0
    assert sum(r["n"] for r in rows) == len(test)
    assert "| no rating |" in (out / "report.md").read_text()


def test_no_errors_shown_is_not_no_errors(workdir, tmp_path):
    """--max-errors-shown 0 printed "No errors." under a model that got rows wrong."""
    out = execute("evaluate", from_dict(EvaluateConfig, {"model": str(workdir / "clf"), "data": str(workdir / "data"),
                                                         "precision": "fp32", "baseline": False,
                                                         "max_errors_shown": 0}), tmp_path / "ev")
    assert json.loads((out / "metrics.json").read_text())["model"]["accuracy"] < 1.0
    text = (out / "report.md").read_text()
    assert "Not shown (--max-errors-shown 0)." in text and "No errors." not in text
