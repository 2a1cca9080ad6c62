"""Layer surgery on a classifier before fine-tuning: a missing pooler, fewer layers, fresh top
layers, frozen bottom layers. Each leaves an ordinary ``*ForSequenceClassification`` that saves and
loads with plain transformers (freezing only changes what trains)."""

from __future__ import annotations

from kopretrain.runs.records import StageError


def identity_pooler(model, missing_keys) -> bool:
    """Start a pooler the checkpoint did not have (its weights among ``missing_keys``) as tanh(x):
    the classifier then reads the checkpoint's own [CLS] features from the first step instead of a
    random projection of them. A trained pooler is left alone. Returns whether it was set."""
    import torch

    dense = getattr(getattr(model.base_model, "pooler", None), "dense", None)
    if dense is None or dense.weight.shape[0] != dense.weight.shape[1]:
        return False
    if not any(k.endswith("pooler.dense.weight") for k in missing_keys):
        return False
    with torch.no_grad():
        dense.weight.copy_(torch.eye(dense.weight.shape[0]))
        dense.bias.zero_()
    print("[finetune] pooler: not in the checkpoint, initialised as the identity")
    return True


def encoder_layers(model, option: str, n: int):
    """The encoder's layer list, checked to hold at least ``n`` layers (``option`` names the flag)."""
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if layers is None:
        raise StageError(f"{option}: {type(model.base_model).__name__} has no encoder.layer list")
    if n > len(layers):
        raise StageError(f"{option} {n}: the model has only {len(layers)} layers")
    return layers


def keep_bottom_layers(model, k: int) -> None:
    """Drop every encoder layer above the first ``k`` and record it in the config, so the saved
    model is an ordinary ``k``-layer model of the same class (loads with plain transformers)."""
    layers = encoder_layers(model, "--keep-layers", k)
    model.base_model.encoder.layer = layers[:k]
    model.config.num_hidden_layers = k


def reinit_top_layers(model, n: int) -> None:
    """Fresh weights for the top ``n`` encoder layers (Zhang et al. 2021, "Revisiting few-sample
    BERT fine-tuning"), with the model's own init scheme: normal(0, initializer_range) Linear
    weights, zero biases, unit LayerNorms. Done by hand because ``model._init_weights`` skips
    parameters that ``from_pretrained`` flagged ``_is_hf_initialized`` (transformers 5.x)."""
    import torch

    layers = encoder_layers(model, "--reinit-layers", n)
    std = getattr(model.config, "initializer_range", 0.02)
    with torch.no_grad():
        for module in layers[len(layers) - n:].modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()


def freeze_bottom_layers(model, n: int, reinit: int = 0) -> int:
    """Stop training the embeddings and the first ``n`` encoder layers (Lee et al. 2019, "What
    would Elsa do? Freezing layers during transformer fine-tuning"). Autograd then neither
    back-propagates below layer ``n`` nor keeps optimizer state for it, so a step costs less: the
    rows per minute a time budget buys go up. ``reinit``: how many top layers were re-initialised
    (they must train). Returns the number of frozen parameters."""
    layers = encoder_layers(model, "--freeze-layers", n)
    if n == len(layers):
        raise StageError(f"--freeze-layers {n}: that is every layer of the model; leave at least one to train")
    if n > len(layers) - reinit:
        raise StageError(f"--freeze-layers {n}: layer {len(layers) - reinit} and up of the model's {len(layers)} are "
                         "new (--reinit-layers, --pooling mean), and frozen they would never train")
    frozen = 0
    # ELECTRA's embeddings_project sits between the embeddings and layer 0: left trainable, it
    # would keep the backward pass running through every frozen layer
    below = [getattr(model.base_model, name, None) for name in ("embeddings", "embeddings_project")]
    for module in (*[m for m in below if m is not None], *layers[:n]):
        for param in module.parameters():
            param.requires_grad_(False)
            frozen += param.numel()
    print(f"[finetune] frozen: the embeddings and layers 0-{n - 1} ({frozen:,} parameters)")
    return frozen


MEAN_POOL_SCALE = 100.0
"""The mean enters the pooling layer's first LayerNorm this many times larger than the [CLS] state
added to it by the residual connection: LayerNorm ignores scale, so [CLS] weighs 1/100 there (not
less: fp16 overflows at 65,504, and BERT-style states have outlier dimensions of several hundred)."""


def append_mean_pooling_layer(model) -> frozenset[str]:
    """Append one encoder layer that puts the masked mean of the last layer's token states in the
    first position, which the classification head reads (``--pooling mean``).

    Sentence-embedding checkpoints such as e5 were trained with mean pooling, and their [CLS] state
    was never a target; transformers' BERT/RoBERTa/ELECTRA classifiers read [CLS] only and have no
    pooling option. So the pooling is built from an ordinary layer: zero key weights give
    every unmasked position the same attention (a masked mean of the values), the values are the
    states times :data:`MEAN_POOL_SCALE` (the residual [CLS] state then weighs 1/100 after
    LayerNorm), the feed-forward block outputs zeros, and both LayerNorms start as plain
    normalisation. The saved model is a plain ``*ForSequenceClassification`` with one more layer,
    so ``pipeline()`` pools exactly as training did. Only the key and the feed-forward output are
    zeroed (the rest of the copied layer stays): that is enough for a mean. The layer is frozen
    and without dropout during training (see below)."""
    import copy

    import torch

    layers = encoder_layers(model, "--pooling mean", 1)
    layer = copy.deepcopy(layers[-1])
    try:
        attn, out = layer.attention.self, layer.attention.output
        parts = (attn.query, attn.key, attn.value, out.dense, out.LayerNorm,
                 layer.intermediate.dense, layer.output.dense, layer.output.LayerNorm)
    except AttributeError:
        raise StageError(f"--pooling mean: the layers of {type(model.base_model).__name__} are not BERT-style "
                         "(query/key/value, a LayerNorm after attention and after the feed-forward block); "
                         "use --pooling cls") from None
    _, key, value, dense, norm1, _, ffn_out, norm2 = parts
    eye = torch.eye(value.weight.shape[0], dtype=value.weight.dtype)
    if value.weight.shape != eye.shape or dense.weight.shape != eye.shape:
        raise StageError("--pooling mean: the attention block is not square (hidden -> hidden); use --pooling cls")
    with torch.no_grad():
        for linear in (key, ffn_out):
            linear.weight.zero_()
            linear.bias.zero_()
        value.weight.copy_(eye * MEAN_POOL_SCALE)
        dense.weight.copy_(eye)
        for linear in (value, dense):
            linear.bias.zero_()
        for norm in (norm1, norm2):
            norm.weight.fill_(1.0)
            norm.bias.zero_()
    # A fixed mean, as the checkpoint was trained to be read: no dropout in it (it dropped a tenth
    # of the pooled vector on top of the classifier's own dropout) and no training (a learning
    # pooling layer kept +0.35 of the +1.34 a plain mean gave at 1k labels; frozen: +1.10; BENCHMARKS.md).
    for module in layer.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    layer.requires_grad_(False)
    if hasattr(attn, "layer_idx"):
        attn.layer_idx = len(layers)
    layers.append(layer)
    model.config.num_hidden_layers = len(layers)
    print(f"[finetune] pooling: mean of the token states, as layer {len(layers) - 1} (plain transformers loads it)")
    index = f".encoder.layer.{len(layers) - 1}."
    return frozenset(name for name, _ in model.named_parameters() if index in name)
