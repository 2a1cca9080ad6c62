"""Self-training (finetune --teacher): the pool comes from the train split outside the label budget
(unlabelled rows first), the teacher's labels are the ones its model gives, the most confident
rows per class join the training rows, every row is accounted for, and a resumed run reuses the
teacher's labels. In a pipeline, ``finetune@teacher`` runs first and the student reads it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kopretrain.data.files import LABELS
from kopretrain.data.split import stratified_sample
from kopretrain.finetune import FinetuneConfig
from kopretrain.runs.config import from_dict
from kopretrain.runs.registry import execute
from kopretrain.train.pseudo import FILE, draw_pool, teacher_labels, teacher_mismatch, top_per_class

FAST = dict(max_steps=4, eval_steps=2, batch_size=16, lr=3e-3, precision="fp32", logging_steps=2,
            early_stopping_patience=0, report_to="none")
UNLABELLED = 30  # of the 150 fixture train rows


@pytest.fixture(scope="module")
def data(workdir) -> Path:
    """The fixture data with the labels of 30 train rows removed, as rows without a rating come out of ingest."""
    folder = workdir / "data-unlabelled"
    folder.mkdir(exist_ok=True)
    for split in ("dev", "test"):
        (folder / f"{split}.parquet").write_bytes((workdir / "data" / f"{split}.parquet").read_bytes())
    train = pd.read_parquet(workdir / "data" / "train.parquet")
    train.loc[train.index[-UNLABELLED:], "label"] = None
    train.to_parquet(folder / "train.parquet")
    return folder


def config(workdir, data, **over) -> FinetuneConfig:
    return from_dict(FinetuneConfig, {"model": str(workdir / "pre"), "data": str(data), "label_budget": 30,
                                      "seed": 3, **FAST, **over})


@pytest.fixture(scope="module")
def teacher(workdir, data) -> Path:
    return execute("finetune", config(workdir, data, lr=1e-2, max_steps=12), workdir / "teacher")


@pytest.fixture(scope="module")
def student(workdir, data, teacher) -> Path:
    cfg = config(workdir, data, teacher=str(teacher), pseudo_pool=60, pseudo_per_class=10)
    return execute("finetune", cfg, workdir / "student")


def test_pool_takes_unlabelled_rows_first_and_never_the_budget_rows():
    unlabelled = pd.DataFrame({"id": [f"u{i}" for i in range(5)], "label": [None] * 5})
    outside = pd.DataFrame({"id": [f"o{i}" for i in range(20)], "label": ["positive"] * 20})
    pool = draw_pool(unlabelled, outside, 8, seed=0)
    assert len(pool) == 8
    assert set(pool["id"][:5]) == {f"u{i}" for i in range(5)} and pool["gold"][:5].isna().all()
    assert (pool["gold"][5:] == "positive").all() and "label" not in pool
    assert len(draw_pool(unlabelled, outside, 100, seed=0)) == 25  # a pool larger than the rows: all of them


def test_top_per_class_keeps_the_most_confident_of_each_predicted_class():
    scored = pd.DataFrame({"label": ["positive", "negative", "positive", "neutral", "positive", "negative"],
                           "confidence": [0.5, 0.9, 0.8, 0.4, 0.95, 0.3]})
    assert top_per_class(scored, 2) == [1, 2, 3, 4, 5]
    assert top_per_class(scored, 1) == [1, 3, 4]


def test_student_trains_on_budget_rows_plus_the_teachers_labels(student, teacher, data):
    from kopretrain.inference.classifier import Classifier, input_texts, read_split

    stage = json.loads((student / "stage.json").read_text())
    stats = stage["stats"]["pseudo_labels"]
    assert stats["pool"] == 60 and stats["pool_unlabelled"] == UNLABELLED and stats["warning"] is None
    assert all(n <= 10 for n in stats["per_class"].values()) and sum(stats["per_class"].values()) == stats["rows"]
    assert stage["stats"]["train_examples"] == 30 + stats["rows"] > 30

    scored = pd.read_parquet(student / FILE)
    train = read_split(str(data), "train", need_label=False)
    labelled = train[train["label"].notna()].reset_index(drop=True)
    gold = set(labelled["id"].iloc[stratified_sample([LABELS.index(v) for v in labelled["label"]], 30, 3)])
    assert set(scored["id"]) <= set(train["id"]) and not set(scored["id"]) & gold  # never dev/test, never gold

    # the stored labels are the teacher's own predictions, and the accuracy report matches them
    pool = train.set_index("id").loc[scored["id"]].reset_index()
    clf = Classifier.load(str(teacher), data=str(data))
    predicted = np.array(LABELS)[clf.predict_proba(input_texts(pool, clf.prep, str(data)), prepared=True).argmax(1)]
    assert (predicted == scored["label"].to_numpy()).all()  # fp32, the student's --precision
    assert stats["teacher_scoring"].endswith(" s in fp32")
    kept = scored.iloc[top_per_class(scored, 10)]
    known = kept[kept["gold"].notna()]
    assert stats["accuracy_where_known"] == pytest.approx((known["label"] == known["gold"]).mean(), abs=1e-4)

    counts = stage["counts"]
    assert counts["rows_in"] == 150 and counts["rows_out"] == stage["stats"]["train_examples"]
    from_unlabelled = int(kept["gold"].isna().sum())
    assert counts["rejected"]["unlabelled"] == UNLABELLED - from_unlabelled
    assert counts["rejected"]["outside_label_budget"] == 120 - 30 - (len(kept) - from_unlabelled)


def test_a_resumed_run_reuses_the_teachers_labels(student, teacher, data, tmp_path):
    scored = pd.read_parquet(student / FILE)
    train = pd.read_parquet(data / "train.parquet").set_index("id")
    pool = train.loc[scored["id"]].reset_index().rename(columns={"label": "gold"})
    cache = tmp_path / FILE
    cache.write_bytes((student / FILE).read_bytes())
    again, scoring = teacher_labels(str(teacher), str(data), pool, cache)
    assert scoring == "reused " + FILE and again.equals(pd.read_parquet(student / FILE))
    fresh, scoring = teacher_labels(str(teacher), str(data), pool.iloc[:-1], cache, "fp32")  # another pool: scored again
    assert scoring.endswith(" s in fp32") and len(fresh) == len(pool) - 1 and len(pd.read_parquet(cache)) == len(pool) - 1
    assert fresh.equals(again.iloc[:-1])  # the student's run scored in fp32 too (its --precision)


def test_a_hub_teacher_is_read_at_its_revision(student, teacher, workdir, data, tmp_path, monkeypatch):
    """--teacher OWNER/NAME --teacher-revision: the same pseudo-labels as the folder it was pushed from,
    and the commit in the record (the revision used to be dropped: the Hub's main was read)."""
    import shutil

    from tests.fixtures.hub import fake_hub

    sha, later = "e" * 40, "f" * 40
    snapshot = fake_hub(monkeypatch, tmp_path / "hub", "me/teacher", sha)
    shutil.copytree(teacher, snapshot)
    shutil.copytree(student, snapshot.with_name(later))  # main moved on to another classifier
    (snapshot.parent.parent / "refs" / "main").write_text(later)
    cfg = config(workdir, data, teacher="me/teacher", teacher_revision=sha, pseudo_pool=60, pseudo_per_class=10)
    out = execute("finetune", cfg, tmp_path / "student")
    assert pd.read_parquet(out / FILE).equals(pd.read_parquet(student / FILE))
    stats = json.loads((out / "stage.json").read_text())["stats"]["pseudo_labels"]
    assert (stats["teacher"], stats["teacher_revision"], stats["teacher_commit"]) == ("me/teacher", sha, sha)


def test_a_teacher_trained_on_other_rows_is_flagged(workdir, data, teacher):
    cfg = config(workdir, data, teacher=str(teacher))
    assert teacher_mismatch(cfg) is None
    assert "label budget 30 and seed 3" in teacher_mismatch(replace(cfg, label_budget=0))
    assert teacher_mismatch(replace(cfg, teacher=str(workdir / "pre"))) is None  # not a finetune output


def test_the_label_leak_warning_follows_the_data_not_its_path(workdir, data, teacher, tmp_path, monkeypatch):
    """A copy of the teacher's data, or the same data read from another folder, is the same data:
    the warning depended on the working folder (the teacher's recorded relative path)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    monkeypatch.chdir(tmp_path)
    cfg = config(workdir, copy, teacher=str(teacher), label_budget=0)
    assert "label budget 30 and seed 3" in teacher_mismatch(cfg)


def test_a_model_without_sentiment_labels_cannot_teach(workdir, data, tmp_path):
    from kopretrain.runs.records import StageError

    with pytest.raises(StageError, match="not a fine-tuned classifier"):
        execute("finetune", config(workdir, data, teacher=str(workdir / "pre")), tmp_path / "out")
    with pytest.raises(StageError, match="--teacher"):
        execute("finetune", config(workdir, data, teacher=str(tmp_path / "missing")), tmp_path / "out2")


def test_pipeline_runs_the_teacher_section_first_and_the_student_reads_it(workdir, data, tmp_path):
    from kopretrain.pipeline import load_pipeline, plan, run_pipeline

    fast = ", ".join(f"{k}: {v}" for k, v in FAST.items())
    common = f"model: {workdir / 'pre'}, data: {data}, label_budget: 30, seed: 3, {fast}"
    yaml = tmp_path / "selftrain.yaml"
    yaml.write_text(f"workdir: {tmp_path / 'w'}\n"
                    f"finetune: {{{common}, teacher: finetune@teacher, pseudo_pool: 40, pseudo_per_class: 5}}\n"
                    f"finetune@teacher: {{{common}}}\n", encoding="utf-8")
    steps = plan(load_pipeline(yaml))
    assert [s[0] for s in steps] == ["finetune@teacher", "finetune"]  # written second, runs first: it is read
    assert steps[0][2] == tmp_path / "w" / "finetune-teacher" and steps[1][1].teacher == str(steps[0][2])
    outputs = run_pipeline(yaml)
    record = json.loads((outputs["finetune"] / "stage.json").read_text())
    assert record["stats"]["pseudo_labels"]["teacher"] == str(outputs["finetune@teacher"])
    assert record["inputs"]["teacher"].startswith("stage:")


def test_pipeline_sections_are_checked(tmp_path):
    from kopretrain.pipeline import load_pipeline, plan
    from kopretrain.runs.config import ConfigError

    yaml = tmp_path / "p.yaml"
    yaml.write_text("workdir: w\nfinetune@Teacher: {model: m, data: d}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key 'finetune@Teacher'"):
        load_pipeline(yaml)
    yaml.write_text("workdir: w\nfinetune: {model: m, data: d, teacher: finetune@missing}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'finetune@missing' is not a section of this pipeline"):
        plan(load_pipeline(yaml))
    yaml.write_text("workdir: w\nstages: [finetune, finetune@t]\nfinetune: {model: m, data: d, teacher: finetune@t}\n"
                    "finetune@t: {model: m, data: d}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'finetune@t' runs after it"):
        plan(load_pipeline(yaml))
    yaml.write_text("workdir: w\nfinetune@a: {model: m, data: d, teacher: finetune@b}\n"
                    "finetune@b: {model: m, data: d, teacher: finetune@a}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cycle"):
        plan(load_pipeline(yaml))
