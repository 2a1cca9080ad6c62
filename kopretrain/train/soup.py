"""``finetune --members K``: fine-tune K times on the same rows, keep one model, the weights' average.

Fine-tunes of one checkpoint that start from the same head and differ only in the order of the
training rows (and dropout) often end in one basin of the loss, and then the average of their
weights is a model too, usually better than its members, at the inference cost of one ("model
soups", Wortsman et al. 2022). Not always: at 1k NSMC labels and lr 1e-4 the plain average of three
fell below every member in one seed of three (BENCHMARKS.md), hence the greedy rule below. An
ensemble of the K members scored about as much there, but it costs K times as much at every
``label`` call, and a user who loads the folder with plain transformers would get one member only.

Members join greedily (Wortsman's greedy soup): in order of their own best dev macro-F1, each is
kept when the soup with it does not score worse on dev, so a member that learned nothing (a stuck
seed) cannot pull the others down. transformers has no soup step; the average itself is a few lines.

Member 0 is the stage's own training run (its checkpoints, resume and restarts); members 1..K-1
train before it, each in ``<output>/members/<k>`` with its own checkpoints, and a finished member
leaves ``model.safetensors`` and ``member.json`` there, so a killed run resumes inside the member it
was in and skips the finished ones. The folder goes when the stage finishes.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from kopretrain.runs.records import write_json

MEMBERS_DIR = "members"
WEIGHTS = "model.safetensors"
MEMBER_FILE = "member.json"


def member_data_seed(cfg, k: int) -> int:
    """Member k's ``--data-seed``: member 0 keeps the configured one, the others count up from it."""
    return (cfg.data_seed if cfg.data_seed >= 0 else cfg.seed) + k


def member_config(cfg, k: int):
    """Member k's config: its data seed, and its share of the time budget (the K members share it)."""
    return replace(cfg, data_seed=member_data_seed(cfg, k), max_minutes=cfg.max_minutes / cfg.members)


def train_members(cfg, run, prep, rows, build: Callable, train: Callable) -> list[dict[str, Any]]:
    """Train members 1..K-1 (or find them finished); their records, with the weights' path."""
    done = []
    for k in range(1, cfg.members):
        folder = run.dir / MEMBERS_DIR / str(k)
        if not (folder / MEMBER_FILE).is_file():
            folder.mkdir(parents=True, exist_ok=True)
            print(f"[finetune] member {k} of {cfg.members - 1} extra (data seed {member_data_seed(cfg, k)})")
            built = build(cfg, cfg.seed, prep)  # cfg.seed: the same head as member 0
            trainer, result, cpu = train(member_config(cfg, k), SimpleNamespace(dir=folder), built, rows, resume=True)
            record = {"member": k, "data_seed": member_data_seed(cfg, k), "dev_macro_f1": trainer.state.best_metric,
                      "steps": trainer.state.global_step, "train_seconds": round(result.metrics.get("train_runtime", 0.0), 1),
                      "time_budget": trainer.budget.record() if trainer.budget else None}
            _save(trainer.model, folder / WEIGHTS)
            shutil.rmtree(folder / "checkpoints", ignore_errors=True)
            write_json(folder / MEMBER_FILE, record)  # last: its presence says the member is finished
            del trainer, built
        done.append({**json.loads((folder / MEMBER_FILE).read_text(encoding="utf-8")), "weights": str(folder / WEIGHTS)})
    return done


def soup_budget(record: dict | None, members: list[dict[str, Any]]) -> dict | None:
    """Member 0's time-budget record widened to the whole soup: the K shares and their minutes
    added up (each member ran on max_minutes / K), stopped by time if any member was."""
    shares = [m.get("time_budget") for m in members]
    if not record or not shares or not all(shares):  # one member: nothing to add up
        return record
    every = [record, *shares]
    return {**record, "max_minutes": round(sum(r["max_minutes"] for r in every), 3),
            "spent_minutes": round(sum(r["spent_minutes"] for r in every), 3),
            "stopped_by_time": any(r["stopped_by_time"] for r in every),
            "members_spent_minutes": [r["spent_minutes"] for r in every]}


def cook(trainer, cfg, run, members: list[dict[str, Any]], metric: str = "macro_f1") -> dict[str, Any]:
    """Put the greedy soup of member 0 (``trainer.model``, its best checkpoint loaded) and ``members``
    into ``trainer.model``; return what ``stage.json`` records."""
    first = run.dir / MEMBERS_DIR / "0" / WEIGHTS
    first.parent.mkdir(parents=True, exist_ok=True)
    _save(trainer.model, first)
    entries = [{"member": 0, "data_seed": member_data_seed(cfg, 0), "dev_macro_f1": trainer.state.best_metric,
                "weights": str(first)}, *members]
    order = sorted(entries, key=lambda e: -(e["dev_macro_f1"] or 0.0))

    def dev_score(chosen) -> float:
        average_into(trainer.model, [e["weights"] for e in chosen])
        return trainer.evaluate()[f"eval_{metric}"]

    uniform = dev_score(order)
    kept, best = order[:1], order[0]["dev_macro_f1"] or 0.0
    for entry in order[1:]:
        score = dev_score(kept + [entry])
        if score >= best:
            kept, best = kept + [entry], score
    average_into(trainer.model, [e["weights"] for e in kept])
    scores = ", ".join(f"{e['dev_macro_f1']:.4f}" for e in entries)
    print(f"[finetune] soup of {len(kept)} of {len(entries)} members (greedy on dev): dev macro-F1 {best:.4f}; "
          f"members {scores}; all {len(entries)} averaged {uniform:.4f}")
    return {"members": len(entries), "kept": [e["member"] for e in kept], "dev_macro_f1": round(best, 4),
            "uniform_dev_macro_f1": round(uniform, 4),
            "member_records": [{k: v for k, v in e.items() if k != "weights"} for e in entries]}


def average_into(model, files: list[str | Path]) -> None:
    """Load the mean of the weights in ``files`` into ``model`` (integer buffers from the first)."""
    import torch
    from safetensors.torch import load_file

    total: dict[str, torch.Tensor] = {}
    for f in files:
        for name, tensor in load_file(str(f)).items():
            if not tensor.is_floating_point():
                total.setdefault(name, tensor)
            elif name in total:
                total[name] += tensor.double()
            else:
                total[name] = tensor.double()
    state = model.state_dict()
    with torch.no_grad():
        for name, tensor in total.items():
            value = tensor / len(files) if tensor.is_floating_point() else tensor
            state[name].copy_(value.to(state[name].dtype))


def remove_members(directory: Path) -> None:
    shutil.rmtree(directory / MEMBERS_DIR, ignore_errors=True)


def _save(model, path: Path) -> None:
    """Every tensor of the state dict, cloned so tied weights save (safetensors refuses shared memory)."""
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
