"""Per-parameter learning rates for the ``Trainer``: one optimizer group per (rate scale, weight decay).

The stock ``Trainer`` builds two groups (decayed or not) at one rate. Fine-tuning gives the fresh
classifier head and each layer their own rate (``finetune --head-lr/--layer-lr-decay``) and
continued pretraining gives a checkpoint's new MLM/RTD head its own (``pretrain --head-lr``); both
go through :class:`GroupedRates`. The scheduler (stock or the time budget's) scales every group by
the same factor, so each keeps its ratio to the peak rate."""

from __future__ import annotations

from typing import Callable


def grouped_optimizer(trainer, model, lr_scale: Callable[[str], float]):
    """The Trainer's optimizer class and settings over groups of equal (rate scale, weight decay)."""
    decay = set(trainer.get_decay_parameter_names(model))
    groups: dict[tuple[float, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((lr_scale(name), name in decay), []).append(param)
    cls, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, model)
    args = trainer.args
    return cls([{"params": params, "lr": args.learning_rate * scale,
                 "weight_decay": args.weight_decay if decayed else 0.0}
                for (scale, decayed), params in sorted(groups.items(), key=lambda kv: kv[0])], **kwargs)


class GroupedRates:
    """Mixin for a ``Trainer`` subclass: set ``lr_scale`` (parameter name -> multiplier of the peak
    rate) and the optimizer gets one group per scale; None keeps the stock optimizer."""

    lr_scale: Callable[[str], float] | None = None

    def create_optimizer(self, model=None):
        if self.optimizer is None and self.lr_scale is not None:
            self.optimizer = grouped_optimizer(self, self.model if model is None else model, self.lr_scale)
        return super().create_optimizer(model)
