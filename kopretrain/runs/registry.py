"""The stage registry: name -> module, in pipeline order.

Each stage module defines a config dataclass ``CONFIG`` (fields documented by the string under
them), ``INPUTS`` on that class (fields that are paths to fingerprint), ``WIRING`` (field ->
upstream stage whose output fills it inside a pipeline) and ``run(cfg, run: StageRun)``. A module
whose output is not a directory (``label`` writes a file) may define ``execute(cfg, output, force)``
instead. Stage modules import only the standard library at top level so ``--help`` stays instant.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

# name -> (module, one-line summary shown by `kopretrain --help` without importing the module)
STAGES: dict[str, tuple[str, str]] = {
    "ingest": ("kopretrain.ingest", "read review files, map columns, label ratings, dedup, split by group"),
    "normalize": ("kopretrain.normalize", "normalize noisy Korean text with named, counted rules and filters"),
    "analyze": ("kopretrain.analyze", "kiwipiepy morpheme analysis (forms, tags, offsets) over the corpus"),
    "vocab": ("kopretrain.vocab", "train WordPiece/Unigram vocabularies or extend an existing model's"),
    "pretrain": ("kopretrain.pretrain", "MLM / whole-word / span / ELECTRA RTD pretraining, scratch or continued"),
    "finetune": ("kopretrain.finetune", "fine-tune a 3-class sentiment classifier"),
    "evaluate": ("kopretrain.evaluate", "metrics, plots, baseline comparison and a readable report"),
    "label": ("kopretrain.label", "label large review files in resumable chunks"),
    "release": ("kopretrain.release", "assemble a Hub-ready folder with model/data cards; optionally push"),
}

PIPELINE_ORDER = ["ingest", "normalize", "analyze", "vocab", "pretrain", "finetune", "evaluate", "label", "release"]


def load(name: str) -> ModuleType:
    if name not in STAGES:
        raise KeyError(f"unknown stage '{name}'; stages: {', '.join(STAGES)}")
    return importlib.import_module(STAGES[name][0])


def execute(name: str, cfg: Any, output: str | Path, *, force: bool = False) -> Path:
    """Run one stage into ``output`` (skipped when its record says it is up to date)."""
    from kopretrain.runs.records import StageRun

    module = load(name)
    if hasattr(module, "execute"):
        return Path(module.execute(cfg, output, force=force))
    with StageRun(name, cfg, output, force=force) as run:
        if not run.done:
            module.run(cfg, run)
    return Path(output)
