"""The encoded rows a fine-tune trains and selects on, and what its record says about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kopretrain.data.files import LABELS
from kopretrain.data.split import stratified_sample
from kopretrain.runs.records import StageError


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


def load_labelled(cfg, split: str):
    """(frame, label ids) of the labelled rows of a split, and its unlabelled rows (self-training's pool)."""
    from kopretrain.inference.classifier import read_split

    frame = read_split(cfg.data, split)
    labelled = frame[frame["label"].notna()].reset_index(drop=True)
    if labelled.empty:
        raise StageError(f"{cfg.data}/{split}.parquet: no labelled rows (all {len(frame)} labels are null)")
    return labelled, [LABELS.index(v) for v in labelled["label"]], frame[frame["label"].isna()]


def prepare_rows(cfg, tokenizer, prep, names: list[str], max_length: int, run_dir=None) -> Rows:
    """Read the labelled rows, apply the label budget and the dev cap, add the teacher's
    pseudo-labelled rows (self-training), prepare and tokenize them."""
    import pandas as pd

    from kopretrain.inference.classifier import input_texts
    from kopretrain.train.soft_labels import soft_targets

    labelled, y_train, unlabelled_rows = load_labelled(cfg, "train")
    unlabelled = len(unlabelled_rows)
    dev, y_dev, _ = load_labelled(cfg, "dev")
    n_labelled = len(labelled)
    if cfg.label_budget > n_labelled:  # the help promises exactly N: say that it cannot be
        print(f"[finetune] warning: --label-budget {cfg.label_budget:,} is more than the {n_labelled:,} labelled "
              f"train rows of {cfg.data}; training on all of them")
    keep = stratified_sample(y_train, cfg.label_budget, cfg.seed)
    train, y_train = labelled.iloc[keep].reset_index(drop=True), [y_train[i] for i in keep]
    n_gold = len(train)
    rejected = {"unlabelled": unlabelled, "outside_label_budget": n_labelled - len(train)}
    pseudo = None
    if cfg.teacher:
        from kopretrain.train.pseudo import pseudo_rows

        pseudo = pseudo_rows(cfg, labelled, keep, unlabelled_rows, run_dir)
        train = pd.concat([train, pseudo.frame], ignore_index=True)
        y_train += [LABELS.index(v) for v in pseudo.frame["label"]]
        rejected = {"unlabelled": unlabelled - pseudo.from_unlabelled,
                    "outside_label_budget": rejected["outside_label_budget"] - pseudo.from_labelled}
    dev_keep = stratified_sample(y_dev, cfg.dev_max_examples, cfg.seed, what="--dev-max-examples")
    dev, y_dev = dev.iloc[dev_keep].reset_index(drop=True), [y_dev[i] for i in dev_keep]
    absent = [LABELS[i] for i in range(len(LABELS)) if i not in set(y_train)]
    if absent:
        print(f"[finetune] warning: train has no {', '.join(absent)} rows; the model cannot learn them")
    # model index space may differ from LABELS order (a re-fine-tuned model keeps its own order)
    to_model = [names.index(lab) for lab in LABELS]
    soft, soft_stats = (soft_targets(cfg, train, n_gold, y_train, names, run_dir)
                        if cfg.rating_smoothing or cfg.soft_targets else (None, None))
    texts, dev_texts = input_texts(train, prep, cfg.data), input_texts(dev, prep, cfg.data)
    train_ds, truncated = encode(tokenizer, texts, [to_model[y] for y in y_train], max_length, soft)
    dev_ds, _ = encode(tokenizer, dev_texts, [to_model[y] for y in y_dev], max_length)
    return Rows(train_ds, dev_ds, [to_model[y] for y in y_train], n_labelled, unlabelled, truncated, absent,
                pseudo.stats if pseudo else None, rejected, soft_stats, texts[:n_gold], y_train[:n_gold],
                dev_texts, y_dev)
