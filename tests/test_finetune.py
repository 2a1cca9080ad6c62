"""finetune: a real (tiny) training run, dev-based checkpoint selection, label budget, class
weights, text preparation records and clear errors on bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from kopretrain.cli import main
from kopretrain.runs.config import from_dict
from kopretrain.data.files import LABELS
from kopretrain.data.split import stratified_sample
from kopretrain.finetune import FinetuneConfig, class_weights
from kopretrain.runs.records import StageError
from kopretrain.runs.registry import execute
from tests.fixtures.sentiment import make_model, write_data

FAST = dict(max_steps=40, eval_steps=10, batch_size=16, lr=3e-3, precision="fp32", logging_steps=10,
            early_stopping_patience=0)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    from tests.fixtures.sentiment import finetune_workdir

    return finetune_workdir(tmp_path_factory.mktemp("ft"))


@pytest.fixture(scope="module")
def finetuned(workdir) -> Path:
    cfg = from_dict(FinetuneConfig, {"model": str(workdir / "pre"), "data": str(workdir / "data"), **FAST})
    return execute("finetune", cfg, workdir / "out")


def test_output_is_a_plain_transformers_classifier(finetuned):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(finetuned)
    tok = AutoTokenizer.from_pretrained(finetuned)
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert model.config.label2id == {"negative": 0, "neutral": 1, "positive": 2}
    assert tok("정말 최고다")["input_ids"][0] == tok.cls_token_id
    names = {p.name for p in finetuned.iterdir()}
    assert {"model.safetensors", "tokenizer.json", "kopretrain.json", "dev_metrics.json", "stage.json"} <= names
    assert "checkpoints" not in names and "attempt.json" not in names and not any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    prep = json.loads((finetuned / "kopretrain.json").read_text())
    assert prep["normalize"] is None and prep["extra"]["max_length"] == 64  # capped at max_position_embeddings
    assert tok.model_max_length == 64  # pipeline(truncation=True) cuts where it was fine-tuned


def test_saved_model_is_the_best_dev_checkpoint(finetuned, workdir):
    """Reload the output independently, score dev, and compare with the best logged dev macro-F1."""
    from kopretrain.evaluation.metrics import classification
    from kopretrain.inference.classifier import Classifier

    record = json.loads((finetuned / "dev_metrics.json").read_text())
    history = record["history"]
    assert [h["step"] for h in history] == [10, 20, 30, 40]
    best = max(history, key=lambda h: h["macro_f1"])
    assert record["selected_step"] == min(h["step"] for h in history if h["macro_f1"] == best["macro_f1"])
    dev = pd.read_parquet(workdir / "data" / "dev.parquet")
    probs = Classifier.load(str(finetuned)).predict_proba(dev["text"].tolist())
    recomputed = classification([LABELS.index(v) for v in dev["label"]], probs.argmax(1))["macro_f1"]
    assert recomputed == pytest.approx(best["macro_f1"], abs=1e-9)
    assert record["dev"]["macro_f1"] == pytest.approx(best["macro_f1"], abs=1e-9)
    assert best["macro_f1"] > 0.5  # the clearly separable fixture is learnable in 40 steps


def test_selection_follows_dev_metric_and_early_stopping(workdir, monkeypatch):
    """Script the dev macro-F1: best at the 2nd evaluation, then two worse ones stop training."""
    import kopretrain.train.finetune_trainer as ft

    scripted = iter([0.30, 0.80, 0.50, 0.40, 0.20, 0.10, 0.10, 0.10, 0.10])
    real = ft.compute_metrics

    def fake(names):
        inner = real(names)
        return lambda pred: {**inner(pred), "macro_f1": next(scripted)}

    monkeypatch.setattr(ft, "compute_metrics", fake)
    cfg = from_dict(FinetuneConfig, {"model": str(workdir / "pre"), "data": str(workdir / "data"),
                                     **{**FAST, "early_stopping_patience": 2, "eval_steps": 5},
                                     "label_budget": 60, "class_weight": "balanced"})
    out = execute("finetune", cfg, workdir / "scripted")
    record = json.loads((out / "dev_metrics.json").read_text())
    stage = json.loads((out / "stage.json").read_text())
    assert record["selected_step"] == 10 and record["best_logged"] == pytest.approx(0.80)
    assert stage["stats"]["global_steps"] == 20  # stopped after 2 evaluations without a gain
    # label budget: exactly 60 rows, stratified (the fixture train split is balanced)
    assert stage["stats"]["train_examples"] == 60
    assert stage["stats"]["train_label_counts"] == {"negative": 20, "neutral": 20, "positive": 20}
    assert stage["counts"] == {"rows_in": 150, "rows_out": 60, "rejected": {"outside_label_budget": 90,
                                                                         "unlabelled": 0}}
    assert stage["stats"]["class_weights"] == pytest.approx([1.0, 1.0, 1.0])


def test_stratified_sample_is_exact_seeded_and_proportional():
    labels = [0] * 60 + [1] * 30 + [2] * 10
    picked = stratified_sample(labels, 20, seed=7)
    assert len(picked) == 20 and len(set(picked)) == 20
    assert Counter(labels[i] for i in picked) == {0: 12, 1: 6, 2: 2}
    assert list(picked) == list(stratified_sample(labels, 20, seed=7))
    assert list(picked) != list(stratified_sample(labels, 20, seed=8))
    assert len(stratified_sample(labels, 0, seed=0)) == 100  # 0 = all
    with pytest.raises(StageError, match="--label-budget 2"):
        stratified_sample(labels, 2, seed=0)  # fewer rows than classes


def test_class_weights_change_the_loss(tmp_path):
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from kopretrain.train.finetune_trainer import ClassifierTrainer

    weights = class_weights([0] * 60 + [1] * 30 + [2] * 10, "balanced")
    assert weights == pytest.approx([100 / 180, 100 / 90, 100 / 30])
    assert class_weights([0, 2, 2], "none") is None
    assert class_weights([0, 2, 2], "balanced")[1] == 0.0  # absent class: no weight, no crash

    model = AutoModelForSequenceClassification.from_pretrained(
        make_model(tmp_path / "clf", classifier=True, init_range=0.5))
    args = TrainingArguments(output_dir=str(tmp_path / "o"), use_cpu=True, report_to="none")
    batch = {"input_ids": torch.tensor([[2, 10, 11, 3], [2, 12, 13, 3], [2, 14, 3, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0]]),
             "labels": torch.tensor([0, 1, 2])}
    model.eval()
    plain = ClassifierTrainer(model=model, args=args).compute_loss(model, dict(batch))
    weighted = ClassifierTrainer(model=model, args=args, class_weights=weights).compute_loss(model, dict(batch))
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert plain.item() == pytest.approx(F.cross_entropy(logits, batch["labels"]).item(), rel=1e-5)
    assert weighted.item() == pytest.approx(
        F.cross_entropy(logits, batch["labels"], weight=torch.tensor(weights)).item(), rel=1e-5)
    assert abs(weighted.item() - plain.item()) > 1e-4


def test_hub_style_model_records_the_data_normalizer(workdir, tmp_path):
    """A model without kopretrain.json gets the TextPrep of the data's normalize stage."""
    data = write_data(tmp_path / "normalized", n_train=30, n_dev=15, n_test=15)
    rules = {"input": "raw.csv", "repeat_max": 2, "nfc": True}
    (data / "stage.json").write_text(json.dumps({"stage": "normalize", "fingerprint": "x", "config": rules}))
    cfg = from_dict(FinetuneConfig, {"model": str(workdir / "pre"), "data": str(data),
                                     **{**FAST, "max_steps": 2, "eval_steps": 2}})
    out = execute("finetune", cfg, tmp_path / "out")
    prep = json.loads((out / "kopretrain.json").read_text())
    assert prep["normalize"] == {"repeat_max": 2, "nfc": True}  # rules only, no I/O fields
    assert "normalize stage" in json.loads((out / "stage.json").read_text())["stats"]["textprep_source"]


@pytest.fixture(scope="module")
def normalized_finetune(workdir, tmp_path_factory) -> Path:
    """A tiny model whose kopretrain.json records the default normalizer (its WordPiece trained on the
    normalized bundled sample), fine-tuned: the saved tokenizer carries the rules."""
    import csv

    from kopretrain.testing import tiny_classifier
    from kopretrain.text.textprep import TextPrep
    from tests.conftest import SAMPLE

    with open(SAMPLE, encoding="utf-8") as fh:
        texts = [row["review"] for row in csv.DictReader(fh)]
    normalize = {"emoji": "keep", "max_repeat": 2, "skip_rules": [], "spacing": False, "typos": "none"}
    root = tmp_path_factory.mktemp("ft-normalized")
    base = tiny_classifier(root / "base", TextPrep(normalize=normalize).prepare(texts), vocab_size=800,
                           textprep={"normalize": normalize})
    cfg = from_dict(FinetuneConfig, {"model": str(base), "data": str(workdir / "data"), **FAST})
    return execute("finetune", cfg, root / "out")


def test_plain_pipeline_on_raw_text_labels_like_kopretrain(normalized_finetune, sample_path):
    """#15 item 2: pipeline("text-classification") on raw reviews = kopretrain's Classifier."""
    import csv

    from transformers import pipeline

    from kopretrain.inference.classifier import Classifier

    with open(sample_path, encoding="utf-8") as fh:
        texts = [row["review"] for row in csv.DictReader(fh) if row["review"].strip()]
    texts.append(" ".join(texts[:60]))  # longer than the fine-tune length (and than the 512 positions)
    clf = Classifier.load(str(normalized_finetune))
    assert sum(t != n for t, n in zip(texts, clf.prep.prepare(texts))) > 30  # the rules do change the sample
    probs = clf.predict_proba(texts)
    pipe = pipeline("text-classification", model=str(normalized_finetune), top_k=None, device=-1)
    results = pipe(texts, truncation=True, batch_size=64)  # as the model card says: no max_length needed
    for text, row, scores in zip(texts, probs, results):
        by_label = {s["label"]: s["score"] for s in scores}
        assert max(by_label, key=by_label.get) == LABELS[int(row.argmax())], text
        assert [by_label[name] for name in LABELS] == pytest.approx(list(row), abs=1e-5), text
    record = json.loads((normalized_finetune / "kopretrain.json").read_text())["extra"]["tokenizer_normalizer"]
    assert record["not_applied"] == {} and "repeat" in record["applied"]


def test_reinit_layers_replaces_only_the_top_layers(workdir):
    import torch
    from transformers import AutoModel

    from kopretrain.finetune import load_model

    make_model(workdir / "pre-electra", kind="electra")
    pretrained = AutoModel.from_pretrained(workdir / "pre-electra").state_dict()
    cfg = FinetuneConfig(model=str(workdir / "pre-electra"), data=str(workdir / "data"), reinit_layers=1)
    torch.manual_seed(0)
    model, *_ = load_model(cfg)
    state = model.base_model.state_dict()
    top = [k for k in state if k.startswith("encoder.layer.1.")]
    rest = [k for k in state if k not in top]
    assert top and all(torch.equal(state[k], pretrained[k]) for k in rest)
    changed = [k for k in top if not torch.equal(state[k], pretrained[k])]
    assert {k for k in top if k.endswith("weight") and "LayerNorm" not in k} <= set(changed)
    weight = state["encoder.layer.1.attention.self.query.weight"]
    assert abs(weight.std().item() - model.config.initializer_range) < 0.006  # the model's own init scale
    assert torch.equal(state["encoder.layer.1.output.LayerNorm.weight"], torch.ones(model.config.hidden_size))
    with pytest.raises(StageError, match="only 2 layers"):
        load_model(FinetuneConfig(model=str(workdir / "pre-electra"), data=str(workdir / "data"), reinit_layers=3))
    with pytest.raises(ValueError, match="reinit-layers"):
        FinetuneConfig(model="m", data="d", reinit_layers=-1)


def test_head_lr_and_layer_decay_set_each_parameters_rate(workdir):
    """The optimizer the Trainer builds gives the head head_lr, layer i of L lr*decay^(L-i) and the
    embeddings lr*decay^(L+1); weight decay still skips biases and LayerNorms."""
    from transformers import TrainingArguments

    from kopretrain.finetune import _lr_scale, load_model
    from kopretrain.train.finetune_trainer import ClassifierTrainer

    cfg = FinetuneConfig(model=str(workdir / "pre"), data=str(workdir / "data"), lr=1e-4, head_lr=1e-3,
                         layer_lr_decay=0.5)
    model, *_ = load_model(cfg)
    args = TrainingArguments(output_dir=str(workdir / "opt"), learning_rate=cfg.lr, weight_decay=0.01,
                             report_to="none", use_cpu=True)
    trainer = ClassifierTrainer(model=model, args=args, lr_scale=_lr_scale(cfg, model))
    optimizer = trainer.create_optimizer()
    rate = {id(p): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert len(rate) == len(params)  # every trainable parameter, once
    expect = {"classifier.weight": 1e-3, "bert.pooler.dense.weight": 1e-3,
              "bert.encoder.layer.1.attention.self.query.weight": 1e-4 * 0.5,
              "bert.encoder.layer.0.attention.self.query.weight": 1e-4 * 0.25,
              "bert.embeddings.word_embeddings.weight": 1e-4 * 0.125}
    for name, lr in expect.items():
        assert rate[id(params[name])][0] == pytest.approx(lr), name
    assert rate[id(params["bert.encoder.layer.0.output.LayerNorm.weight"])][1] == 0.0
    assert rate[id(params["bert.encoder.layer.0.output.dense.weight"])][1] == 0.01
    # off by default: the stock two groups at one rate
    plain = FinetuneConfig(model=str(workdir / "pre"), data=str(workdir / "data"))
    assert _lr_scale(plain, model) is None
    with pytest.raises(ValueError, match="layer-lr-decay"):
        FinetuneConfig(model="m", data="d", layer_lr_decay=0)


def test_keep_layers_trains_and_saves_a_shallower_plain_model(workdir):
    from transformers import AutoModelForSequenceClassification

    cfg = from_dict(FinetuneConfig, {"model": str(workdir / "pre"), "data": str(workdir / "data"),
                                     **FAST, "max_steps": 10, "keep_layers": 1, "head_lr": 1e-2,
                                     "layer_lr_decay": 0.8})
    out = execute("finetune", cfg, workdir / "out-keep1")
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_hidden_layers == 1 and len(model.base_model.encoder.layer) == 1
    with pytest.raises(StageError, match="only 2 layers"):
        execute("finetune", from_dict(FinetuneConfig, {**cfg.__dict__, "keep_layers": 3}), workdir / "out-keep3")


def test_console_names_the_new_head_in_one_line_without_tables_or_shard_bars(workdir, tmp_path, capfd):
    """#15 item 10: the expected new head is one plain line, not a red LOAD REPORT table, and
    checkpoints do not print "Writing model shards" bars."""
    from transformers.utils import logging as hf_logging

    args = ["finetune", "--model", str(workdir / "pre"), "--data", str(workdir / "data"), "--max-steps", "4",
            "--eval-steps", "2", "--batch-size", "8", "--precision", "fp32", "-o", str(tmp_path / "o")]
    assert main(args) == 0
    out = capfd.readouterr()
    text = out.out + out.err
    assert "LOAD REPORT" not in text and "Writing model shards" not in text
    assert "new, initialised here (not in the checkpoint): bert.pooler.dense, classifier" in out.out
    assert hf_logging.is_progress_bar_enabled()  # switched back on afterwards


def test_tensorboard_events_by_default_and_none_on_request(workdir):
    """#15 item 5: finetune writes TensorBoard events into its output (the checkpoint folder, where
    the Trainer would put them, is deleted); they parse and hold the loss and dev macro-F1."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    base = {"model": str(workdir / "pre"), "data": str(workdir / "data"), **FAST, "max_steps": 6, "eval_steps": 3,
            "logging_steps": 2}
    out = execute("finetune", from_dict(FinetuneConfig, base), workdir / "out-tb")
    events = EventAccumulator(str(next((out / "runs").rglob("events.out.tfevents.*")).parent)).Reload()
    tags = events.Tags()["scalars"]
    assert "train/loss" in tags and "eval/macro_f1" in tags
    # every dev evaluation, then the selected checkpoint's, logged again at the last step
    assert [e.step for e in events.Scalars("eval/macro_f1")] == [3, 6, 6]
    quiet = execute("finetune", from_dict(FinetuneConfig, {**base, "report_to": "none"}), workdir / "out-notb")
    assert not (quiet / "runs").exists()
    with pytest.raises(ValueError):
        from_dict(FinetuneConfig, {**base, "report_to": "mlflow"})


def test_identity_pooler_only_where_the_checkpoint_has_none(tmp_path):
    """A headless checkpoint (no pooler weights, like multilingual-e5) gets tanh(x) as its pooler
    (the default; --pooler-init random is transformers' init), so the classifier sees the
    checkpoint's own [CLS] from step one; a checkpoint that ships a trained pooler keeps it."""
    import torch
    from transformers import BertModel

    from kopretrain.finetune import _lr_scale, load_model
    from kopretrain.testing import tiny_unigram_checkpoint

    headless = tiny_unigram_checkpoint(tmp_path / "headless")
    model, *_ = load_model(FinetuneConfig(model=str(headless), data="d", pooler_init="identity"))
    dense = model.base_model.pooler.dense
    assert torch.equal(dense.weight, torch.eye(32)) and not dense.bias.any()
    x = torch.randn(2, 32)
    assert torch.allclose(model.base_model.pooler(x.unsqueeze(1)), torch.tanh(x))
    default, *_ = load_model(FinetuneConfig(model=str(headless), data="d"))
    assert torch.equal(default.base_model.pooler.dense.weight, torch.eye(32))
    random, *_ = load_model(FinetuneConfig(model=str(headless), data="d", pooler_init="random"))
    assert not torch.equal(random.base_model.pooler.dense.weight, torch.eye(32))

    with_pooler = tmp_path / "with-pooler"
    trained = BertModel.from_pretrained(headless, add_pooling_layer=True)
    torch.nn.init.normal_(trained.pooler.dense.weight)
    trained.save_pretrained(with_pooler)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (with_pooler / name).write_bytes((headless / name).read_bytes())
    kept, _, new = load_model(FinetuneConfig(model=str(with_pooler), data="d", pooler_init="identity"))
    assert torch.equal(kept.base_model.pooler.dense.weight, trained.pooler.dense.weight)
    # --head-lr speeds up what is new (the classifier), not the pooler the checkpoint trained
    fast = FinetuneConfig(model="m", data="d", lr=1e-4, head_lr=1e-3)
    scale = _lr_scale(fast, kept, new)
    assert scale("classifier.weight") == pytest.approx(10) and scale("bert.pooler.dense.weight") == 1.0
    model, _, new = load_model(FinetuneConfig(model=str(headless), data="d"))
    assert _lr_scale(fast, model, new)("bert.pooler.dense.weight") == pytest.approx(10)  # a pooler it lacked
    with pytest.raises(ValueError, match="pooler_init: 'zeros' is not one of"):
        from_dict(FinetuneConfig, {"model": "m", "data": "d", "pooler_init": "zeros"})


def test_a_checkpoint_that_splits_the_placeholders_saves_them_as_tokens(workdir, tmp_path):
    """Normalized data on a checkpoint tokenizer that splits [URL] (multilingual-e5 does): the saved
    tokenizer and model carry it as one token; un-normalized data adds nothing."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from kopretrain.testing import tiny_unigram_checkpoint

    headless = tiny_unigram_checkpoint(tmp_path / "headless")
    data = write_data(tmp_path / "normalized", n_train=30, n_dev=15, n_test=15)
    (data / "stage.json").write_text(json.dumps({"stage": "normalize", "fingerprint": "x", "config": {}}))
    fast = {**FAST, "max_steps": 2, "eval_steps": 2}
    out = execute("finetune", from_dict(FinetuneConfig, {"model": str(headless), "data": str(data), **fast}),
                  tmp_path / "out")
    assert "[URL]" in json.loads((out / "stage.json").read_text())["stats"]["added_placeholders"]
    tok = AutoTokenizer.from_pretrained(out)
    assert len(tok("[URL]", add_special_tokens=False)["input_ids"]) == 1
    assert AutoModelForSequenceClassification.from_pretrained(out).get_input_embeddings().weight.shape[0] == len(tok)
    plain = execute("finetune", from_dict(FinetuneConfig, {"model": str(headless), "data": str(workdir / "data"),
                                                          **fast}), tmp_path / "plain")
    assert json.loads((plain / "stage.json").read_text())["stats"]["added_placeholders"] == []


def test_a_fine_tune_that_learned_is_not_flagged(finetuned):
    stats = json.loads((finetuned / "stage.json").read_text())["stats"]
    assert stats["single_class"] is False
    history = json.loads((finetuned / "dev_metrics.json").read_text())["history"]
    assert history[-1]["predicted_classes"] >= 2
