"""What a fine-tune's ``stage.json`` says about its data, model selection and speed, and the class
weights of its loss (recorded there too)."""

from __future__ import annotations

from typing import Any

from kopretrain.data.files import LABELS


def class_weights(labels, mode: str) -> list[float] | None:
    """``balanced``: scikit-learn's n / (k * count) over the classes present; absent classes get 0."""
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    if mode == "none":
        return None
    labels = np.asarray(labels)
    present = np.unique(labels)
    weights = np.zeros(len(LABELS))
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return weights.tolist()


def dev_record(trainer, best: dict, logged: list[dict], dev_examples: int, metric: str,
               soup: dict | None = None) -> dict[str, Any]:
    """``dev_metrics.json``: the selected step, its dev metrics (recomputed) and every evaluation
    ``logged`` during training. A soup (--members) has no selected step: the kept members' best
    checkpoints are averaged; the history is member 0's (the others' are in stage.json)."""
    history = [{k.removeprefix("eval_"): v for k, v in h.items()} for h in logged if f"eval_{metric}" in h]
    record = {"metric": metric, "selected_step": step_of(trainer.state.best_model_checkpoint),
              "best_logged": trainer.state.best_metric, "dev": {k.removeprefix("eval_"): v for k, v in best.items()},
              "dev_examples": dev_examples, "history": history}
    if soup:
        record.update(selected_step=None, best_logged=soup["dev_macro_f1"], soup_kept=soup["kept"], history_of_member=0)
    return record


def record_stats(cfg, trainer, result, train_cpu: float, rows, best: dict, names: list[str],
                 max_length: int, prep_source: str) -> dict[str, Any]:
    """What ``stage.json`` says about the fine-tune: data, selection and speed."""
    import torch

    from kopretrain.hub.loading import resolved_commit

    args, metrics = trainer.args, result.metrics
    return {
        # the commit a Hub id resolved to (None for local folders): a branch moves, a commit does not
        "base_commit": resolved_commit(cfg.model, cfg.revision),
        "textprep_source": prep_source, "labels": names, "train_examples": len(rows.train),
        "train_label_counts": {lab: rows.y_train.count(names.index(lab)) for lab in LABELS},
        "absent_train_classes": rows.absent, "class_weights": class_weights(rows.y_train, cfg.class_weight),
        "truncated_inputs": rows.truncated, "pseudo_labels": rows.pseudo,
        "soft_targets": rows.soft,
        "max_length": max_length, "global_steps": trainer.state.global_step, "eval_steps": args.eval_steps,
        "dev_macro_f1": best.get("eval_macro_f1"), "dev_accuracy": best.get("eval_accuracy"),
        "train_seconds": round(metrics.get("train_runtime", 0.0), 2),
        "train_examples_per_second": metrics.get("train_samples_per_second"),
        "train_cpu_seconds": round(train_cpu, 2),
        "train_examples_per_cpu_second": round(
            metrics.get("train_samples_per_second", 0) * metrics.get("train_runtime", 0) / max(train_cpu, 1e-9), 2),
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "torch_threads": torch.get_num_threads(),
        "time_budget": trainer.budget.record() if trainer.budget else None,
    }


def step_of(checkpoint: str | None) -> int | None:
    """The step number of a ``checkpoint-N`` folder."""
    if not checkpoint:
        return None
    tail = checkpoint.rstrip("/").rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None
