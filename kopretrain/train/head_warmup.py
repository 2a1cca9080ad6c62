"""Continuing a checkpoint whose objective head is new: warm the head up before the encoder moves.

A checkpoint trained without the objective being continued (a sentence-embedding model such as
multilingual-e5 has no MLM head; a BERT continued with RTD has no discriminator head or generator)
starts that head at random. Its first gradients reach the encoder as noise and move it away from
what it knew before the head is any good: the feature distortion Kumar et al. (2022, "Fine-Tuning
can Distort Pretrained Features and Underperform Out-of-Distribution") measured for fine-tuning
with a random head, whose remedy (LP-FT) trains the head alone first. Here:

- the **head** is every trained parameter the checkpoint did not provide (``from_pretrained``'s
  missing keys, and whatever pretrain builds new): the MLM transform and output bias (the decoder
  is tied to the embeddings), the RTD classifier, a new generator's own layers. A part the
  checkpoint has is not head, even outside the encoder: KcELECTRA's trained discriminator head,
  or the encoder layers a generator copies from the checkpoint;
- ``pretrain --head-warmup-steps N`` trains only the head for the first N optimizer steps: the
  base model's gradients are dropped before each of those steps, so AdamW leaves those weights
  (and their moments) alone. Gradients are still computed there, so a warm-up step costs a full step;
- ``pretrain --head-lr`` gives the head its own peak rate throughout: at the ~5e-5 used to
  continue an encoder a random 384x384 transform barely moves in a few dozen steps.

transformers has neither (its Trainer has one rate and no staged freezing), hence this module.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from transformers import TrainerCallback

log = logging.getLogger(__name__)


def main_model(module) -> Any:
    """The model whose checkpoint is continued: the MLM model, or the RTD discriminator."""
    parts = module.exported()
    return parts.get("model", parts.get("discriminator"))


def new_parameter_names(module, parts: dict[str, Any], fresh: dict[str, frozenset[str]]) -> frozenset[str]:
    """Names (in ``module``) of the parameters no checkpoint provided. ``fresh`` maps a key of
    ``parts`` (the models ``load_checkpoint`` returned) to its untrained parameter names. Matched by
    tensor identity once ``module`` is built, so tensors it shares (RTD's generator uses the
    discriminator's embeddings) and rows a vocabulary resize rebuilt count as the checkpoint's."""
    loaded = {id(p) for key, names in fresh.items()
              for n, p in parts[key].named_parameters(remove_duplicate=False) if n not in names}
    return frozenset(n for n, p in module.named_parameters() if id(p) not in loaded)


def head_parameter_names(module) -> list[str]:
    """Names (in ``module``) of the trainable parameters that start untrained: ``module.new_parameters``
    when pretrain set it (a continued checkpoint), else everything outside the main model's base model."""
    new = getattr(module, "new_parameters", None)
    if new is not None:
        return [name for name, p in module.named_parameters() if p.requires_grad and name in new]
    base = {id(p) for p in main_model(module).base_model.parameters()}
    return [name for name, p in module.named_parameters() if p.requires_grad and id(p) not in base]


def head_lr_scale(module, scale: float) -> Callable[[str], float]:
    """``name -> rate multiplier``: ``scale`` for the head, 1 for the checkpoint's base model."""
    head = set(head_parameter_names(module))
    return lambda name: scale if name in head else 1.0


class HeadWarmup(TrainerCallback):
    """Drop the gradients of everything but the head before each of the first ``steps`` optimizer steps.

    Run after clipping (``on_pre_optimizer_step``), so the clip norm of a warm-up step also counts
    the dropped gradients; AdamW normalises each parameter's step, so this only changes how much
    of the clip applies, not the direction. A resumed run reads ``global_step`` from its checkpoint
    and warms up only for the steps it has left."""

    def __init__(self, module, steps: int):
        self.steps = steps
        head = set(head_parameter_names(module))
        self.frozen = [p for name, p in module.named_parameters() if name not in head]

    def on_train_begin(self, args, state, control, **kwargs):
        # a warning, not a config error: training only the new head is a use (giving a checkpoint
        # an MLM head), and a run of --epochs or --max-minutes learns its length only here
        if 0 < state.max_steps <= self.steps:
            log.warning("--head-warmup-steps %d covers the whole run (%d steps): only the new head trains, the "
                        "encoder never does; to continue the encoder, warm up about a quarter of the run",
                        self.steps, state.max_steps)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if state.global_step < self.steps:
            for p in self.frozen:
                p.grad = None


def setup(module, steps: int, head_lr: float, lr: float) -> tuple[Callable[[str], float] | None, list, dict | None]:
    """``(lr_scale, callbacks, record)`` for the Trainer and stage.json; (None, [], None) when both are off."""
    if not steps and not head_lr:
        return None, [], None
    names = head_parameter_names(module)
    if not names:  # a warm-up would only stand the model still for N steps
        log.warning("--head-warmup-steps/--head-lr ignored: every weight comes from the checkpoint, no head starts untrained")
        return None, [], {"steps": 0, "head_lr": lr, "head_parameters": 0, "head_tensors": 0}
    params = dict(module.named_parameters())
    record = {"steps": steps, "head_lr": head_lr or lr, "head_parameters": sum(params[n].numel() for n in names),
              "head_tensors": len(names)}
    scale = head_lr_scale(module, head_lr / lr) if head_lr else None
    return scale, [HeadWarmup(module, steps)] if steps else [], record


def advise(checkpoint: str, new_head: list[str], steps: int) -> None:
    """Warn when the checkpoint lacks the objective's head and no warm-up was asked for. Not made
    the default: how many steps to give it depends on the run's length, which a time budget leaves
    open, and the measurements behind the advice are one checkpoint's (BENCHMARKS.md)."""
    if new_head and not steps:
        log.warning("%s has no %s: it starts untrained, and its first gradients move the encoder away from the "
                    "checkpoint. --head-warmup-steps N (about a quarter of the run) with --head-lr ~20x --lr trains it "
                    "alone first: on multilingual-e5-small, 60 of 240 steps at 1e-3 scored +2.4 (WWM) and +2.2 (RTD) "
                    "macro-F1 at 1k labels over no warm-up", checkpoint, " or ".join(new_head))
