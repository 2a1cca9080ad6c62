"""finetune --rdrop ALPHA: each training batch twice (two dropout masks), cross-entropy on both plus
alpha x their symmetric KL (R-Drop, Liang et al. 2021)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from kopretrain.finetune import FinetuneConfig
from kopretrain.runs.config import from_dict
from kopretrain.runs.registry import execute
from kopretrain.train.soft_labels import symmetric_kl
from tests.fixtures.sentiment import make_model

BATCH = {"input_ids": torch.tensor([[2, 10, 11, 3], [2, 12, 13, 3], [2, 14, 3, 0]]),
         "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0]]),
         "labels": torch.tensor([0, 1, 2])}


def trainer_and_model(tmp_path, rdrop: float, dropout: float = 0.1, class_weights=None):
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from kopretrain.train.finetune_trainer import ClassifierTrainer

    model = AutoModelForSequenceClassification.from_pretrained(
        make_model(tmp_path / "clf", classifier=True, init_range=0.5),
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    args = TrainingArguments(output_dir=str(tmp_path / "o"), use_cpu=True, report_to="none")
    return ClassifierTrainer(model=model, args=args, rdrop=rdrop, class_weights=class_weights), model


def test_symmetric_kl_is_zero_for_equal_predictions_and_symmetric():
    a, b = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert symmetric_kl(a, a).item() == pytest.approx(0.0, abs=1e-7)
    assert symmetric_kl(a, b).item() == pytest.approx(symmetric_kl(b, a).item())
    p, q = a.softmax(-1), b.softmax(-1)
    manual = 0.5 * ((p * (p / q).log()).sum(-1) + (q * (q / p).log()).sum(-1)).mean()
    assert symmetric_kl(a, b).item() == pytest.approx(manual.item(), rel=1e-5)


def test_training_loss_is_both_passes_plus_alpha_times_their_kl(tmp_path):
    trainer, model = trainer_and_model(tmp_path, rdrop=2.0, class_weights=[1.0, 2.0, 0.5])
    model.train()
    torch.manual_seed(0)
    loss = trainer.compute_loss(model, dict(BATCH)).item()
    torch.manual_seed(0)  # the same dropout masks: the batch doubled in one forward pass
    doubled = {k: torch.cat([BATCH[k], BATCH[k]]) for k in ("input_ids", "attention_mask")}
    first, second = model(**doubled).logits.chunk(2)
    w = torch.tensor([1.0, 2.0, 0.5])
    ce = (F.cross_entropy(first, BATCH["labels"], weight=w) + F.cross_entropy(second, BATCH["labels"], weight=w)) / 2
    assert symmetric_kl(first, second).item() > 1e-4  # the two passes really differ
    assert loss == pytest.approx((ce + 2.0 * symmetric_kl(first, second)).item(), rel=1e-5)


def test_without_dropout_or_outside_training_it_is_the_plain_loss(tmp_path):
    trainer, model = trainer_and_model(tmp_path, rdrop=5.0, dropout=0.0)
    model.train()
    plain = F.cross_entropy(model(input_ids=BATCH["input_ids"], attention_mask=BATCH["attention_mask"]).logits,
                            BATCH["labels"])
    assert trainer.compute_loss(model, dict(BATCH)).item() == pytest.approx(plain.item(), rel=1e-5)
    trainer, model = trainer_and_model(tmp_path, rdrop=5.0)
    model.eval()  # evaluation: one pass, no consistency term
    plain = F.cross_entropy(model(input_ids=BATCH["input_ids"], attention_mask=BATCH["attention_mask"]).logits,
                            BATCH["labels"])
    assert trainer.compute_loss(model, dict(BATCH)).item() == pytest.approx(plain.item(), rel=1e-5)


def test_the_stage_trains_with_it(workdir):
    fast = dict(model=str(workdir / "pre"), data=str(workdir / "data"), seed=3, max_steps=10, eval_steps=10,
                batch_size=16, lr=3e-3, precision="fp32", early_stopping_patience=0, report_to="none", calibrate=False)
    plain = execute("finetune", from_dict(FinetuneConfig, fast), workdir / "plain")
    rdrop = execute("finetune", from_dict(FinetuneConfig, {**fast, "rdrop": 1.0}), workdir / "rdrop")
    assert json.loads((rdrop / "stage.json").read_text())["config"]["rdrop"] == 1.0
    a, b = load_file(str(plain / "model.safetensors")), load_file(str(rdrop / "model.safetensors"))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the consistency term changed the training
    with pytest.raises(ValueError, match="--rdrop must be >= 0"):
        FinetuneConfig(model="m", data="d", rdrop=-1)
