"""The trainable module for the MLM family (mlm, wwm, span) and the pieces RTD shares with it.

Why not just ``BertForMaskedLM(**batch)``: its head projects *every* position onto the vocabulary,
then the loss ignores the ~85% unmasked ones. With a 32k vocabulary and a small encoder that
projection costs more than the encoder itself (hidden 256: 8.4M multiply-adds per token for the
head vs ~3M for 4 layers), so :class:`MaskedLM` runs the head on masked positions only. The loss is
the same cross-entropy over masked tokens; the wrapped model is saved with ``save_pretrained`` and
reloads as ``AutoModelForMaskedLM``.

A wrapper module (rather than a custom ``compute_loss``) keeps the forward inside ``model(...)``,
which DDP needs to synchronise gradients.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)
IGNORE = -100


def split_mlm(model: nn.Module) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]] | None:
    """``(encoder, head)`` of a ``*ForMaskedLM`` so the head can run on selected positions only.

    Known layouts: BERT (``cls``), ELECTRA generator (``generator_predictions`` + ``generator_lm_head``),
    RoBERTa-likes (``lm_head``). Others return None and fall back to the model's own forward."""
    encoder = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if encoder is None:
        return None
    if hasattr(model, "generator_lm_head") and hasattr(model, "generator_predictions"):
        return encoder, lambda h: model.generator_lm_head(model.generator_predictions(h))
    if hasattr(model, "cls"):
        return encoder, model.cls
    if hasattr(model, "lm_head"):
        return encoder, model.lm_head
    return None


def masked_logits(model: nn.Module, input_ids, attention_mask, labels, token_type_ids=None):
    """Vocabulary logits at the positions where ``labels != -100``: ``(logits [N, V], targets [N])``."""
    selected = labels != IGNORE
    parts = split_mlm(model)
    if parts is None:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits
        return logits[selected], labels[selected]
    encoder, head = parts
    hidden = encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
    return head(hidden[selected]), labels[selected]


def mlm_loss_terms(logits: torch.Tensor, targets: torch.Tensor, anchor: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean CE (the training loss) plus the sums evaluation aggregates exactly across batches.

    ``anchor`` keeps the graph connected when a batch happens to have no masked token."""
    n = targets.numel()
    if n == 0:
        zero = anchor.sum() * 0.0
        return {"loss": zero, "ce_sum": zero.detach(), "n_masked": targets.new_zeros(()),
                "n_correct": targets.new_zeros(())}
    ce_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
    return {"loss": ce_sum / n, "ce_sum": ce_sum.detach(), "n_masked": targets.new_tensor(n),
            "n_correct": (logits.detach().argmax(-1) == targets).sum()}


class MaskedLM(nn.Module):
    """MLM training module around any ``*ForMaskedLM``; saved as the plain HF model."""

    main_input_name = "input_ids"

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None, labels=None, token_type_ids=None) -> dict[str, Any]:
        logits, targets = masked_logits(self.model, input_ids, attention_mask, labels, token_type_ids)
        return mlm_loss_terms(logits, targets, anchor=logits)

    def save_pretrained(self, directory: str | Path) -> None:
        self.model.save_pretrained(directory)

    def load_weights(self, directory: str | Path) -> None:
        load_safetensors_into(self.model, Path(directory))

    def exported(self) -> dict[str, nn.Module]:
        return {"model": self.model}


def load_safetensors_into(model: nn.Module, directory: Path) -> None:
    """Load ``directory/model.safetensors`` strictly, allowing only keys tied to a loaded tensor.

    ``save_pretrained`` omits tied weights (e.g. the MLM decoder tied to the word embeddings), so a
    plain ``strict=True`` load would fail; anything else missing is a real mismatch."""
    from safetensors.torch import load_file

    state = load_file(str(directory / "model.safetensors"), device="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    params = model.state_dict(keep_vars=True)
    loaded = {params[k].data_ptr() for k in state if k in params}
    untied = [k for k in missing if params[k].data_ptr() not in loaded]
    if unexpected or untied:
        raise RuntimeError(f"{directory}: checkpoint does not match the model (missing {untied[:5]}, "
                           f"unexpected {unexpected[:5]})")
