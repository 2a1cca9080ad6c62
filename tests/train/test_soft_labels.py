"""Rating smoothing (finetune --rating-smoothing): soft targets follow the rating scale, rows
without a rating stay one-hot, labels not cut from ratings are refused, the soft loss reduces to
the stock (weighted) cross-entropy on one-hot targets, and the targets reach the loss through the
Trainer's data loader."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kopretrain.finetune import FinetuneConfig
from kopretrain.runs.config import from_dict
from kopretrain.runs.records import StageError
from kopretrain.runs.registry import execute
from kopretrain.train.soft_labels import rating_targets, soft_cross_entropy

FAST = dict(max_steps=4, eval_steps=2, batch_size=16, lr=3e-3, precision="fp32", logging_steps=2,
            early_stopping_patience=0, report_to="none")

NSMC = {r: (0 if r <= 4 else 1 if r <= 8 else 2) for r in range(1, 11)}  # 1-4 / 5-8 / 9-10


def test_targets_follow_the_rating_scale():
    ratings = list(range(1, 11)) + [None]
    labels = [NSMC[r] for r in range(1, 11)] + [1]
    t = rating_targets(ratings, labels, sigma=1.0, n_classes=3)
    assert t.shape == (11, 3) and t.dtype == np.float32
    np.testing.assert_allclose(t.sum(0), np.bincount(labels, minlength=3), rtol=1e-5)  # class totals as labelled
    np.testing.assert_allclose(t.sum(1), 1, atol=0.2)
    by = dict(zip(range(1, 11), t))
    assert by[1][0] > 0.99 and by[2][0] > 0.99  # deep inside negative: one-hot
    assert 0.6 < by[4][0] < 0.8 and 0.2 < by[4][1] < 0.4 and by[4][2] < 0.01  # next to neutral
    assert by[5][1] > by[5][0] > by[5][2]
    assert by[10][2] > by[9][2] > 0.5 and by[9][1] > by[10][1]
    assert by[6][1] > 0.9
    assert t[-1][0] == t[-1][2] == 0 and t[-1][1] > 0  # no rating: the label alone
    assert rating_targets(ratings, labels, sigma=0.2, n_classes=3)[3][0] > 0.99  # small sigma: hard labels


def test_labels_not_cut_from_ratings_are_refused():
    with pytest.raises(StageError, match="rating 4 has rows labelled with 2 different classes"):
        rating_targets([4, 4, 9], [0, 1, 2], 1.0, 3)
    with pytest.raises(StageError, match="needs ratings"):
        rating_targets([None, None], [0, 1], 1.0, 3)


def test_soft_loss_is_the_stock_loss_on_one_hot_targets():
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    logits, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 2, 0])
    one_hot, w = F.one_hot(y, 3).float(), torch.tensor([0.5, 2.0, 1.0])
    assert soft_cross_entropy(logits, one_hot).item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert soft_cross_entropy(logits, one_hot, w).item() == pytest.approx(
        F.cross_entropy(logits, y, weight=w).item(), rel=1e-6)
    soft = 0.7 * one_hot + 0.1
    assert soft_cross_entropy(logits, soft).item() == pytest.approx(
        -(soft * logits.log_softmax(-1)).sum(-1).mean().item(), rel=1e-6)


def test_soft_targets_reach_the_trainers_loss(tmp_path):
    """The soft_labels column survives the Trainer's column filter and collator, and the loss
    the Trainer computes on a batch is the soft one, not the hard one."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from kopretrain.finetune import FinetuneConfig, encode
    from kopretrain.train.finetune_trainer import ClassifierTrainer, training_arguments
    from tests.fixtures.sentiment import make_model

    torch.manual_seed(0)  # a random head could put the two losses within the margin (CI saw 2.8e-4 once)
    path = make_model(tmp_path / "clf", classifier=True, init_range=0.5)
    model, tok = AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    ratings, labels = [4, 5, 9, 1], [0, 1, 2, 0]
    soft = rating_targets(ratings, labels, 1.0, 3)
    ds, _ = encode(tok, ["이 영화 최악이다", "그냥 보통이다", "정말 최고다", "돈 아깝다"], labels, 32, soft)
    cfg = FinetuneConfig(model=str(path), data="x", rating_smoothing=1.0, batch_size=4, precision="fp32",
                         report_to="none", group_by_length=False)
    trainer = ClassifierTrainer(model=model, args=training_arguments(cfg, tmp_path / "o", 10), train_dataset=ds, eval_dataset=ds,
                                data_collator=DataCollatorWithPadding(tok))
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["soft_labels"].shape == (4, 3)
    model.eval()
    loss = trainer.compute_loss(model, dict(batch)).item()
    logits = model(**{k: v for k, v in batch.items() if k not in ("labels", "soft_labels")}).logits
    assert loss == pytest.approx(soft_cross_entropy(logits, batch["soft_labels"]).item(), rel=1e-5)
    assert abs(loss - F.cross_entropy(logits, batch["labels"]).item()) > 1e-3


def test_tfidf_targets_are_out_of_fold():
    """Random labels on texts that share nothing: a fit that saw a row would recall its label
    (memorised n-grams); out of fold, the rows' own labels are no better than chance."""
    import random

    from kopretrain.train.soft_labels import tfidf_out_of_fold

    rng = random.Random(0)
    syllables = [chr(0xAC00 + i) for i in range(0, 11172, 7)]
    texts = ["".join(rng.choice(syllables) for _ in range(8)) for _ in range(240)]
    labels = [rng.randrange(3) for _ in texts]
    probs = tfidf_out_of_fold(texts, labels, [i % 6 for i in range(240)], "balanced", seed=0)
    assert probs.shape == (240, 3)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-6)
    assert (probs.argmax(1) == np.array(labels)).mean() < 0.5

    from kopretrain.evaluation.baseline import Baseline

    in_fold = Baseline().fit(texts, labels).predict_proba(texts)
    assert (in_fold.argmax(1) == np.array(labels)).mean() > 0.9  # what the test guards against


def test_rating_smoothing_trains_on_soft_targets_and_records_them(workdir, tmp_path):
    cfg = from_dict(FinetuneConfig, {"model": str(workdir / "pre"), "data": str(workdir / "data"), **FAST,
                                     "rating_smoothing": 1.0})
    out = execute("finetune", cfg, tmp_path / "soft")
    stats = json.loads((out / "stage.json").read_text())["stats"]
    assert stats["soft_targets"]["rows_rating_smoothed"] == stats["train_examples"] == 150
    assert 0.5 < stats["soft_targets"]["mean_target_on_label"] < 0.95  # the fixture has boundary ratings (4, 5, 8, 9)

    no_rating = tmp_path / "no_rating"
    no_rating.mkdir()
    for split in ("train", "dev"):
        pd.read_parquet(workdir / "data" / f"{split}.parquet").drop(columns="rating").to_parquet(no_rating / f"{split}.parquet")
    with pytest.raises(StageError, match="--rating-smoothing needs a rating column"):
        execute("finetune", from_dict(FinetuneConfig, {**vars(cfg), "data": str(no_rating)}), tmp_path / "o")
    with pytest.raises(ValueError, match="--rating-smoothing must be >= 0"):
        FinetuneConfig(model="m", data="d", rating_smoothing=-1)


def test_soft_targets_from_a_teacher_file_mix_with_the_labels(workdir, tmp_path):
    train = pd.read_parquet(workdir / "data" / "train.parquet")
    teacher = tmp_path / "teacher.parquet"  # a teacher sure every row is positive, for 100 of the 150 rows
    pd.DataFrame({"id": train["id"][:100], "prob_negative": 0.0, "prob_neutral": 0.0, "prob_positive": 2.0}) \
        .to_parquet(teacher)  # unnormalised on purpose: rows are renormalised
    cfg = from_dict(FinetuneConfig, {"model": str(workdir / "pre"), "data": str(workdir / "data"), **FAST,
                                     "soft_targets": str(teacher), "soft_weight": 0.25})
    stats = json.loads((execute("finetune", cfg, tmp_path / "o") / "stage.json").read_text())["stats"]["soft_targets"]
    positive = (train["label"][:100] == "positive").sum()
    assert stats["rows_with_teacher_targets"] == 100
    assert stats["teacher_agrees_with_label"] == pytest.approx(positive / 100, abs=1e-4)
    # on-label target: 1 for the 50 rows outside the file and the file's positive rows, 0.75 for its others
    assert stats["mean_target_on_label"] == pytest.approx((150 - 0.25 * (100 - positive)) / 150, abs=1e-4)

    tfidf = execute("finetune", from_dict(FinetuneConfig, {**vars(cfg), "soft_targets": "tfidf"}), tmp_path / "tf")
    stats = json.loads((tfidf / "stage.json").read_text())["stats"]["soft_targets"]
    assert stats["rows_with_teacher_targets"] == 150 and (tfidf / "tfidf_targets.parquet").is_file()
    assert stats["teacher_agrees_with_label"] > 0.8  # the fixture is clearly separable, even out of fold

    pd.DataFrame({"id": train["id"], "prob_negative": 1.0}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(StageError, match="missing column\\(s\\) prob_neutral, prob_positive"):
        execute("finetune", from_dict(FinetuneConfig, {**vars(cfg), "soft_targets": str(tmp_path / "bad.parquet")}),
                tmp_path / "o2")
