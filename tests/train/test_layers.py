"""Layer surgery before fine-tuning: frozen bottom layers get no gradient (so backward stops
there), ELECTRA's embedding projection included; bad layer counts are clear errors."""

from __future__ import annotations

import json

import pytest

from kopretrain.finetune import FinetuneConfig
from kopretrain.runs.config import from_dict
from kopretrain.runs.registry import execute
from kopretrain.runs.records import StageError
from kopretrain.train.layers import freeze_bottom_layers
from tests.fixtures.sentiment import FAST, write_data


def _model(kind: str):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, ElectraConfig, ElectraForSequenceClassification

    torch.manual_seed(0)
    common = dict(vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=32, num_labels=3)
    if kind == "bert":
        return BertForSequenceClassification(BertConfig(**common))
    return ElectraForSequenceClassification(ElectraConfig(embedding_size=16, **common))  # has embeddings_project


@pytest.mark.parametrize("kind", ["bert", "electra"])
def test_frozen_layers_get_no_gradient_and_the_rest_train(kind):
    import torch

    model = _model(kind)
    prefix = model.base_model_prefix
    frozen = freeze_bottom_layers(model, 2)
    assert frozen == sum(p.numel() for p in model.parameters() if not p.requires_grad) > 0
    out = model(input_ids=torch.randint(5, 50, (4, 7)), labels=torch.tensor([0, 1, 2, 0]))
    out.loss.backward()
    for name, param in model.named_parameters():
        below = (name.startswith((f"{prefix}.embeddings", f"{prefix}.embeddings_project"))
                 or name.startswith((f"{prefix}.encoder.layer.0.", f"{prefix}.encoder.layer.1.")))
        assert (param.grad is None) == below, name
        assert param.requires_grad != below, name
    if kind == "electra":
        assert not model.electra.embeddings_project.weight.requires_grad


def test_freezing_every_layer_or_more_is_an_error():
    with pytest.raises(StageError, match="every layer"):
        freeze_bottom_layers(_model("bert"), 3)
    with pytest.raises(StageError, match="only 3 layers"):
        freeze_bottom_layers(_model("bert"), 4)


def test_freezing_a_re_initialised_layer_is_an_error():
    """--reinit-layers 2 --freeze-layers 2 on 3 layers would leave layer 1 random and frozen."""
    with pytest.raises(StageError, match="are new .*never train"):
        freeze_bottom_layers(_model("bert"), 2, reinit=2)
    assert freeze_bottom_layers(_model("bert"), 1, reinit=2) > 0  # the fresh layers 1-2 still train


# ---- end to end through the finetune stage

def test_freeze_layers_keeps_the_bottom_and_new_placeholder_rows_fixed(workdir, tmp_path):
    """--freeze-layers 1 on a 2-layer checkpoint whose tokenizer splits [URL]: the saved model is
    complete, its embeddings (the placeholder rows added before freezing included) and layer 0 equal
    what training started from, layer 1 trained; stage.json counts the frozen parameters."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from kopretrain.testing import tiny_unigram_checkpoint

    headless = tiny_unigram_checkpoint(tmp_path / "headless")
    data = write_data(tmp_path / "normalized", n_train=30, n_dev=15, n_test=15)
    (data / "stage.json").write_text(json.dumps({"stage": "normalize", "fingerprint": "x", "config": {}}))
    base = {"model": str(headless), "data": str(data), **FAST, "max_steps": 6, "eval_steps": 6}
    trained = execute("finetune", from_dict(FinetuneConfig, {**base, "freeze_layers": 1}), tmp_path / "frozen")
    stats = json.loads((trained / "stage.json").read_text())["stats"]
    assert stats["frozen_parameters"] > 0 and "[URL]" in stats["added_placeholders"]
    start = AutoModelForSequenceClassification.from_pretrained(headless, num_labels=3)
    after = AutoModelForSequenceClassification.from_pretrained(trained)
    old_rows = start.get_input_embeddings().weight.shape[0]
    grown = after.get_input_embeddings().weight
    assert grown.shape[0] > old_rows
    assert torch.equal(grown[:old_rows], start.get_input_embeddings().weight)
    # the placeholder rows stayed at their mean-of-pieces start: a second run adds the same rows
    again = execute("finetune", from_dict(FinetuneConfig, {**base, "freeze_layers": 1, "seed": 7}), tmp_path / "again")
    assert torch.equal(AutoModelForSequenceClassification.from_pretrained(again).get_input_embeddings().weight, grown)
    layer = lambda m, i: torch.cat([p.flatten() for p in m.base_model.encoder.layer[i].parameters()])  # noqa: E731
    assert torch.equal(layer(after, 0), layer(start, 0))
    assert not torch.equal(layer(after, 1), layer(start, 1))
    with pytest.raises(ValueError, match="freeze-layers"):
        FinetuneConfig(model="m", data="d", freeze_layers=-1)


@pytest.mark.parametrize("kind", ["bert", "electra"])
def test_the_mean_pooling_layer_hands_the_head_the_masked_mean(kind):
    """--pooling mean: the first position of the appended layer is LayerNorm(masked mean of the
    last layer's states), whatever the padding; a reload with plain transformers gives the same."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from kopretrain.train.layers import append_mean_pooling_layer

    model = _model(kind).eval()
    append_mean_pooling_layer(model)
    assert model.config.num_hidden_layers == 4
    ids = torch.tensor([[2, 5, 6, 7, 3, 0, 0], [2, 8, 9, 10, 11, 12, 3]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1] * 7])
    with torch.no_grad():
        states = model.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        short = model(input_ids=ids[:1, :5], attention_mask=mask[:1, :5]).logits
        padded = model(input_ids=ids, attention_mask=mask).logits
    weights = mask.unsqueeze(-1).float()
    mean = (states[-2] * weights).sum(1) / weights.sum(1)
    expected = torch.nn.functional.layer_norm(mean, mean.shape[-1:])
    assert torch.allclose(states[-1][:, 0], expected, atol=0.1)  # [CLS] weighs 1/100 in the mix
    assert not torch.allclose(states[-1][:, 0], states[-2][:, 0], atol=0.1)
    assert torch.allclose(short, padded[:1], atol=1e-6)  # padding is not averaged in
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        again = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids, attention_mask=mask).logits, padded)


def test_the_mean_pooling_layer_is_a_fixed_mean_and_new_to_the_schedules(tmp_path):
    """The pooling layer neither trains nor drops out: a learning pooling layer with dropout kept
    +0.35 of the +1.34 a plain mean gave (BENCHMARKS.md). It is new to --layer-lr-decay (the
    checkpoint's top layer keeps decay^1) and counts among the top layers --freeze-layers leaves."""
    import torch

    from kopretrain.train.finetune_trainer import lr_scales
    from kopretrain.train.layers import append_mean_pooling_layer

    model = _model("bert")
    added = append_mean_pooling_layer(model)
    pooling = model.bert.encoder.layer[3]
    assert not any(p.requires_grad for p in pooling.parameters())
    assert all(m.p == 0.0 for m in pooling.modules() if isinstance(m, torch.nn.Dropout))
    pooling.train()
    states = torch.randn(2, 5, 32)
    out = [pooling(states), pooling(states)]  # training mode: the same pooled vector on every pass
    out = [o[0] if isinstance(o, tuple) else o for o in out]
    assert torch.equal(out[0][:, 0], out[1][:, 0])
    scale = lr_scales(model, head_lr_scale=10.0, layer_decay=0.5, new=added)
    assert scale("bert.encoder.layer.2.attention.self.key.weight") == 0.5  # the checkpoint's top layer
    assert scale("bert.embeddings.word_embeddings.weight") == 0.5 ** 4
    assert freeze_bottom_layers(model, 3, reinit=1) > 0  # the checkpoint's 3 layers frozen
    with pytest.raises(StageError, match="never train"):
        freeze_bottom_layers(model, 3, reinit=2)


def test_finetune_with_mean_pooling_saves_a_plain_classifier(workdir, tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification, pipeline

    base = {"model": str(workdir / "pre"), "data": str(workdir / "data"), **FAST, "max_steps": 4,
            "eval_steps": 4}
    cls = execute("finetune", from_dict(FinetuneConfig, base), tmp_path / "cls")
    mean = execute("finetune", from_dict(FinetuneConfig, {**base, "pooling": "mean"}), tmp_path / "mean")
    assert AutoConfig.from_pretrained(mean).num_hidden_layers == AutoConfig.from_pretrained(cls).num_hidden_layers + 1
    pipe = pipeline("text-classification", model=str(mean), device=-1)
    assert pipe("배송 빨랐어요 최고")[0]["label"] in ("negative", "neutral", "positive")
    assert AutoModelForSequenceClassification.from_pretrained(mean).config.id2label[0] in ("negative", "neutral", "positive")
    with pytest.raises(ValueError, match="pooling"):
        from_dict(FinetuneConfig, {**base, "pooling": "max"})
