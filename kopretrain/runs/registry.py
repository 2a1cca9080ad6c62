"""The stage registry: name -> the module that declares it, in pipeline order.

Each stage module ends with ``STAGE = Stage(...)`` (the contract in :mod:`kopretrain.runs.stage`).
Modules are imported only when a stage is used, and import only the standard library at top level,
so ``kopretrain --help`` stays instant.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from kopretrain.runs.stage import Stage

# name -> (module, one-line summary shown by `kopretrain --help` without importing the module)
STAGES: dict[str, tuple[str, str]] = {
    "ingest": ("kopretrain.ingest", "read review files, map columns, label ratings, dedup, split by group"),
    "normalize": ("kopretrain.normalize", "normalize noisy Korean text with named, counted rules and filters"),
    "analyze": ("kopretrain.analyze", "kiwipiepy morpheme analysis (forms, tags, offsets) over the corpus"),
    "vocab": ("kopretrain.vocab", "train WordPiece/Unigram vocabularies, or extend or prune an existing model's"),
    "pretrain": ("kopretrain.pretrain", "MLM / whole-word / span / ELECTRA RTD pretraining, scratch or continued"),
    "finetune": ("kopretrain.finetune", "fine-tune a 3-class sentiment classifier"),
    "evaluate": ("kopretrain.evaluate", "metrics, plots, baseline comparison and a readable report"),
    "label": ("kopretrain.label", "label large review files in resumable chunks"),
    "release": ("kopretrain.release", "assemble a Hub-ready folder with model/data cards; optionally push"),
}

PIPELINE_ORDER = ["ingest", "normalize", "analyze", "vocab", "pretrain", "finetune", "evaluate", "label", "release"]


def get(name: str) -> Stage:
    """The :class:`~kopretrain.runs.stage.Stage` called ``name`` (its module is imported now)."""
    if name not in STAGES:
        raise KeyError(f"unknown stage '{name}'; stages: {', '.join(STAGES)}")
    stage = importlib.import_module(STAGES[name][0]).STAGE
    assert stage.name == name, f"{STAGES[name][0]} declares stage {stage.name!r}, not {name!r}"
    return stage


def execute(name: str, cfg: Any, output: str | Path, *, force: bool = False) -> Path:
    """Run one stage into ``output`` (skipped when its record says it is up to date)."""
    return get(name).execute(cfg, output, force=force)
