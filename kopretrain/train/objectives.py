"""The trainable module for the MLM family (mlm, wwm, span) and the pieces RTD shares with it.

Why not just ``BertForMaskedLM(**batch)``: its head projects *every* position onto the vocabulary,
then the loss ignores the ~85% unmasked ones. With a 32k vocabulary and a small encoder that
projection costs more than the encoder itself (hidden 256: 8.4M multiply-adds per token for the
head vs ~3M for 4 layers), so :class:`MaskedLM` runs the head on masked positions only. The loss is
the same cross-entropy over masked tokens; the wrapped model is saved with ``save_pretrained`` and
reloads as ``AutoModelForMaskedLM``.

The wrappers are ``PreTrainedModel`` s (:class:`TrainingModule`) so the Trainer checkpoints and resumes
them with its own code; the stage output is their ``export``.

A wrapper module (rather than a custom ``compute_loss``) keeps the forward inside ``model(...)``,
which DDP needs to synchronise gradients.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel

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


class TrainingModule(PreTrainedModel):
    """A training-time wrapper around plain Hugging Face models, which the Trainer saves and resumes
    like any model: a ``PreTrainedModel``, so its own checkpointing applies (safetensors, no pickled
    weights). Checkpoints hold the wrapper's state dict minus aliases of tied tensors (the MLM
    decoder tied to the word embeddings, RTD's shared embeddings), which the tie restores on load.
    ``export`` writes the wrapped models as ordinary ``from_pretrained`` folders (the stage output).

    Loading is strict whatever the caller asks: the Trainer resumes with ``strict=False`` and only
    warns about missing keys, which would let a checkpoint of another layout restore nothing."""

    base_model_prefix = ""
    # Names of the parameters no checkpoint provided (set by pretrain when it continues one; None
    # from scratch): the head that train/head_warmup.py trains alone first and at its own rate.
    new_parameters: frozenset[str] | None = None
    # attention is the wrapped models' own business: accept whatever their config asks for
    _supports_sdpa = _supports_flash_attn = _supports_flex_attn = True

    def __init__(self, config):
        # a copy: save_pretrained stamps ``architectures`` on the config, and the wrapped model's own
        # config must keep saying BertForMaskedLM / ElectraForPreTraining for its export
        super().__init__(copy.deepcopy(config))

    def _mark_aliases(self) -> None:
        """Leave every alias of a shared tensor out of checkpoints (safetensors cannot hold them);
        the first name in sorted order, the one the wrapped model owns, is kept."""
        names: dict[int, list[str]] = {}
        for name, param in self.named_parameters(remove_duplicate=False):
            names.setdefault(param.data_ptr(), []).append(name)
        self._keys_to_ignore_on_save = {n for group in names.values() for n in sorted(group)[1:]}

    def save_pretrained(self, save_directory, **kwargs):
        kwargs["save_original_format"] = False  # the wrapper's keys as they are: they are read back as they are
        super().save_pretrained(save_directory, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = set(result.missing_keys) - set(self._keys_to_ignore_on_save)
        if missing or result.unexpected_keys:
            raise RuntimeError(f"checkpoint does not match the {type(self).__name__} being trained (missing "
                               f"{sorted(missing)[:5]}, unexpected {result.unexpected_keys[:5]}): was it written "
                               "by another kopretrain version? Rerun with --force to start over")
        return result

    def tie_weights(self, *args, **kwargs) -> None:
        """Aliases stay shared through ``load_state_dict`` (it copies into the same tensors): nothing to redo."""
    # Subclasses define ``export(directory)`` (the plain models, the stage output) and
    # ``exported()`` (name -> model, for parameter counts).


class MaskedLM(TrainingModule):
    """MLM training module around any ``*ForMaskedLM``; exported as the plain HF model."""

    main_input_name = "input_ids"

    def __init__(self, model: nn.Module):
        super().__init__(model.config)
        self.model = model
        self._mark_aliases()

    def forward(self, input_ids, attention_mask=None, labels=None, token_type_ids=None) -> dict[str, Any]:
        logits, targets = masked_logits(self.model, input_ids, attention_mask, labels, token_type_ids)
        return mlm_loss_terms(logits, targets, anchor=logits)

    def export(self, directory: str | Path) -> None:
        self.model.save_pretrained(directory)

    def exported(self) -> dict[str, nn.Module]:
        return {"model": self.model}
