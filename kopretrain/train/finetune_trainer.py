"""The pieces of the fine-tuning recipe that are worth testing alone: the Trainer subclass with
class-weighted loss, the dev metric function and the TrainingArguments for dev-based selection.

Length-bucketed batching: transformers 5.x removed ``TrainingArguments.group_by_length`` and
replaced it with ``train_sampling_strategy="group_by_length"`` (LengthGroupedSampler: random
mega-batches, sorted by length inside). Its order comes from the global RNG when an epoch starts,
which a resumed run restores from the checkpoint, not from where the epoch began: a run killed
and resumed trained on another order than an uninterrupted one. :class:`EpochSeeded` draws each
epoch's order from (seed, epoch) alone (the Trainer calls ``set_epoch``), so resumes are exact.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Collection

from kopretrain.data.files import LABELS
from kopretrain.train.checkpoints import StopsWhenFinished
from kopretrain.train.device import trainer_precision_kwargs


class EpochSeeded:
    """LengthGroupedSampler's order, drawn from ``seed + epoch`` instead of the global RNG."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class EpochSeededSampling:
    """Trainer mixin: the length-grouped sampler replaced by :class:`EpochSeeded` (exact resumes)."""

    def _get_train_sampler(self, train_dataset=None):
        from transformers.trainer_pt_utils import LengthGroupedSampler

        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return EpochSeeded(sampler.lengths, sampler.batch_size, seed)
        return sampler


def _make_trainer_class():
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    from kopretrain.train.budget import BudgetedScheduler
    from kopretrain.train.rates import GroupedRates
    from kopretrain.train.soft_labels import soft_cross_entropy, symmetric_kl

    class ClassifierTrainer(StopsWhenFinished, EpochSeededSampling, GroupedRates, BudgetedScheduler, Trainer):
        """``Trainer`` whose loss can weight classes (the stock sequence-classification loss cannot)
        and whose head and layers can get their own rates (``lr_scale``, :mod:`kopretrain.train.rates`).

        The weighted loss is a per-batch mean, so the Trainer must still divide it by the
        gradient-accumulation steps (``loss_is_scaled_for_ga = False``).
        """

        def __init__(self, *args, class_weights: list[float] | None = None, budget=None,
                     lr_scale: Callable[[str], float] | None = None, rdrop: float = 0.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.budget = budget
            self.lr_scale = lr_scale
            self.rdrop = rdrop
            self.class_weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
            if self.class_weights is not None or rdrop or "soft_labels" in getattr(self.train_dataset, "column_names", ()):
                self.loss_is_scaled_for_ga = False  # our own loss (below) is a per-batch mean

        def log(self, logs, *args, **kwargs):
            super().log(logs, *args, **kwargs)
            sys.stdout.flush()  # progress lines reach `... > log` files as they happen, not at exit

        def save_model(self, *args, **kwargs):
            from kopretrain.hub.loading import quiet_progress

            with quiet_progress():  # no "Writing model shards" bar at every checkpoint
                super().save_model(*args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            twice = bool(self.rdrop) and model.training
            if self.class_weights is None and "soft_labels" not in inputs and not twice:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            inputs = dict(inputs)
            labels, soft = inputs.pop("labels"), inputs.pop("soft_labels", None)
            if twice:  # R-Drop: the batch twice in one forward pass, so each copy gets its own dropout
                inputs = {k: torch.cat([v, v]) if torch.is_tensor(v) else v for k, v in inputs.items()}
            outputs = model(**inputs)
            halves = outputs.logits.float().chunk(2) if twice else (outputs.logits.float(),)
            loss = sum(self.label_loss(logits, labels, soft) for logits in halves) / len(halves)
            if twice:
                loss = loss + self.rdrop * symmetric_kl(*halves)
            return (loss, outputs) if return_outputs else loss

        def label_loss(self, logits, labels, soft):
            if soft is not None:  # --rating-smoothing, --soft-targets (kopretrain/train/soft_labels.py)
                return soft_cross_entropy(logits, soft, self.class_weights)
            weight = None if self.class_weights is None else self.class_weights.to(logits.device)
            return F.cross_entropy(logits, labels.to(logits.device), weight=weight)

    return ClassifierTrainer


def __getattr__(name: str):
    # ClassifierTrainer subclasses transformers.Trainer; building it lazily keeps this module
    # importable without loading torch/transformers (``kopretrain --help`` stays instant).
    if name == "ClassifierTrainer":
        cls = _make_trainer_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def lr_scales(model, head_lr_scale: float = 1.0, layer_decay: float = 1.0,
              new: Collection[str] | None = None) -> Callable[[str], float]:
    """``parameter name -> learning-rate multiplier`` for fine-tuning a pretrained encoder.

    The head (everything outside the encoder's embeddings and layers: classifier, and the pooler
    a checkpoint without one gets fresh) gets ``head_lr_scale``; with layer-wise decay (Clark et
    al. 2020, ELECTRA; Sun et al. 2019) layer ``i`` of ``L`` gets ``layer_decay ** (L - i)`` and the
    embeddings ``layer_decay ** (L + 1)``, so the lower, more general layers move least. Given
    ``new`` (the parameters the checkpoint lacked), a part outside the encoder that the checkpoint
    did have (KcBERT's trained pooler, a fine-tuned model's classifier) trains as the top of the
    encoder, at scale 1: a 10x rate suits a random head, not trained weights."""
    import re

    prefix = re.escape(model.base_model_prefix)
    layer = re.compile(rf"{prefix}\.encoder\.layers?\.(\d+)\.")
    embeddings = re.compile(rf"{prefix}\.embeddings")  # also ELECTRA's embeddings_project
    # a layer the checkpoint lacked (--pooling mean appends one) is new like the head, not its top
    added = {int(m.group(1)) for name in new or () if (m := layer.match(name))}
    n_layers = model.config.num_hidden_layers - len(added)

    def scale(name: str) -> float:
        if (m := layer.match(name)) and int(m.group(1)) not in added:
            return layer_decay ** (n_layers - int(m.group(1)))
        if embeddings.match(name):
            return layer_decay ** (n_layers + 1)
        return head_lr_scale if new is None or name in new else 1.0

    return scale


def compute_metrics(names: list[str]):
    """Dev metrics for ``Trainer``: accuracy, macro-F1 and per-class F1 (model order -> LABELS)."""

    def fn(eval_pred) -> dict[str, float]:
        import numpy as np

        from kopretrain.evaluation.metrics import classification

        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        to_ours = np.array([LABELS.index(n) for n in names])
        report = classification(to_ours[np.asarray(eval_pred.label_ids)], to_ours[np.asarray(logits).argmax(-1)])
        out = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
               # 1 on a dev set with several classes: a fine-tune that never left chance (BENCHMARKS.md)
               "predicted_classes": sum(1 for v in report["per_class"].values() if v["predicted"])}
        out.update({f"f1_{k}": v["f1"] for k, v in report["per_class"].items() if v["f1"] is not None})
        return out

    return fn


def training_arguments(cfg, ckpt_dir: Path, eval_steps: int):
    """Evaluate and checkpoint together every ``eval_steps``; reload the best dev macro-F1 at the end."""
    import torch
    from transformers import TrainingArguments

    from kopretrain.train import tracking

    order_seed = cfg.seed if getattr(cfg, "data_seed", -1) < 0 else cfg.data_seed

    return TrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps > 0 else -1,
        learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size * 2,
        warmup_steps=float(cfg.warmup_ratio),  # a float in [0, 1) is a ratio of the total steps in 5.x
        weight_decay=cfg.weight_decay,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,  # the best and the latest (for resuming)
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_steps=cfg.logging_steps,
        report_to=tracking.trainer_report_to(cfg.report_to),
        # --data-seed moves the row order (LengthGroupedSampler draws from torch's global RNG, which
        # Trainer seeds with `seed`) and dropout; the head was initialised under cfg.seed in build()
        seed=order_seed,
        data_seed=order_seed,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not sys.stderr.isatty(),
        dataloader_num_workers=0,
        # soft targets (--rating-smoothing, --soft-targets) are no forward() argument: the stock column filter would drop them
        remove_unused_columns=not (getattr(cfg, "rating_smoothing", 0) or getattr(cfg, "soft_targets", "")),
        **trainer_precision_kwargs(cfg.precision),
    )
