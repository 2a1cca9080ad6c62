"""The encoded rows a fine-tune trains and selects on, and what its record says about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def encode(tokenizer, texts: list[str], labels: list[int], max_length: int, soft_labels=None):
    """A datasets.Dataset of token ids + labels (+ ``soft_labels``, per-class targets, when given),
    and how many inputs hit ``max_length`` (were truncated, give or take those exactly that long:
    counted without tokenizing twice)."""
    from datasets import Dataset

    enc = tokenizer(texts, truncation=True, max_length=max_length)
    truncated = sum(len(ids) >= max_length for ids in enc["input_ids"])
    soft = {} if soft_labels is None else {"soft_labels": [list(map(float, t)) for t in soft_labels]}
    return Dataset.from_dict({**enc, "labels": labels, **soft}), truncated


@dataclass
class Rows:
    """The encoded train/dev rows of a fine-tune and the counts its record reports."""
    train: Any
    dev: Any
    y_train: list[int]
    labelled: int
    unlabelled: int
    truncated: int
    absent: list[str]
    pseudo: dict | None = None
    """Self-training: how the pseudo-labelled rows among ``train`` were chosen."""
    rejected: dict | None = None
    """Train rows not trained on, by reason."""
    soft: dict | None = None
    """--rating-smoothing / --soft-targets: how far the targets moved from one-hot."""
    gold_texts: list[str] = field(default_factory=list)
    """The labelled training rows as the model sees them (no pseudo-labels), for --ngram-blend."""
    gold_labels: list[int] = field(default_factory=list)
    """Their labels, as LABELS indices."""
    dev_texts: list[str] = field(default_factory=list)
    dev_labels: list[int] = field(default_factory=list)
    """The dev rows (as the model sees them) and their LABELS indices."""
