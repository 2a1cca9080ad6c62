"""Layer surgery before fine-tuning: frozen bottom layers get no gradient (so backward stops
there), ELECTRA's embedding projection included; bad layer counts are clear errors."""

from __future__ import annotations

import pytest

from kopretrain.runs.records import StageError
from kopretrain.train.layers import freeze_bottom_layers


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
