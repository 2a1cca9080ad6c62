"""Experiment tracking for both trainers: TensorBoard event files inside the stage output, or
Weights & Biases, or nothing (``report_to`` as in ``TrainingArguments``).

TensorBoard gets an explicit log folder, ``<output>/runs``: the Trainer's default is under its
``output_dir``, which is the checkpoint folder kopretrain deletes when a stage finishes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from kopretrain.runs.records import StageError

ReportTo = Literal["tensorboard", "wandb", "none"]
LOG_DIR = "runs"


def trainer_report_to(choice: str) -> str:
    """The ``TrainingArguments.report_to`` value: TensorBoard is wired by :func:`callbacks` instead."""
    if choice == "wandb" and importlib.util.find_spec("wandb") is None:
        raise StageError("--report-to wandb needs the wandb package: pip install wandb (and `wandb login`)")
    return "wandb" if choice == "wandb" else "none"


def callbacks(choice: str, output: Path) -> list:
    if choice != "tensorboard":
        return []
    from transformers.integrations import TensorBoardCallback

    board = TensorBoardCallback()
    board.logging_dir = str(output / LOG_DIR)  # written by the main process only (the callback checks)
    return [board]
