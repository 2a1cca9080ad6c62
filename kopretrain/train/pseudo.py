"""Self-training: a fine-tuned teacher labels unlabelled training rows, and the model trains on its
labelled rows plus the teacher's most confident labels, the same number per predicted class.

    kopretrain finetune --model CK --data D --label-budget 1000 -o teacher
    kopretrain finetune --model CK --data D --label-budget 1000 --teacher teacher -o student

Our own code because neither transformers nor datasets pseudo-labels a classifier's data. On NSMC
with 1,000 labels this gave +1.2 macro-F1 over the teacher and over TF-IDF on the same labels,
where continued pretraining on the same unlabelled reviews lost (BENCHMARKS.md "Self-training").

The pool is drawn from the train split only, never from dev or test: the rows without a label
first, then labelled rows outside the label budget with their labels set aside. Those set-aside
labels are read only to report how accurate the pseudo-labels were. The teacher's labels are
stored in ``pseudo_labels.parquet`` in the output, so a resumed run does not label the pool again.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kopretrain.data.files import LABELS
from kopretrain.hub.loading import resolved_commit
from kopretrain.runs.records import StageError, fingerprint_path, read_stage

FILE = "pseudo_labels.parquet"


@dataclass
class Pseudo:
    """The pseudo-labelled rows a student trains on and what ``stage.json`` says about them."""
    frame: Any
    """Rows of the train split, ``label`` set to the teacher's prediction."""
    from_unlabelled: int
    from_labelled: int
    stats: dict


def draw_pool(unlabelled, outside, size: int, seed: int):
    """``size`` rows: the unlabelled rows first, then labelled rows outside the label budget, each a
    seeded sample. The label moves to ``gold`` (null for unlabelled rows): the teacher sets ``label``."""
    import pandas as pd

    first = unlabelled.sample(n=min(size, len(unlabelled)), random_state=seed)
    then = outside.sample(n=min(size - len(first), len(outside)), random_state=seed)
    pool = pd.concat([first, then], ignore_index=True)
    return pool.assign(gold=pool["label"]).drop(columns="label")


def teacher_labels(teacher: str, data: str, pool, cache: Path, precision: str = "auto", revision: str | None = None):
    """``(id, label, confidence, gold)`` for every pool row, in pool order, and how it was scored;
    read from ``cache`` when it holds this pool (a resumed run), else scored with the teacher in
    ``precision`` (fp32 or bf16; anything else: ``auto``, as ``label`` chooses) and written atomically."""
    import numpy as np
    import pandas as pd

    from kopretrain.inference.classifier import Classifier, input_texts, softmax

    if cache.is_file():
        cached = pd.read_parquet(cache)
        if cached["id"].astype(str).tolist() == pool["id"].astype(str).tolist():
            return cached, "reused " + FILE
    t0 = time.time()
    clf = Classifier.load(teacher, revision=revision, data=data)
    precision = precision if precision in ("fp32", "bf16") else "auto"  # the scorer has no fp16
    # the teacher's own text preparation (kopretrain.json), as kopretrain label would apply it
    probs = softmax(clf.logits(input_texts(pool, clf.prep, data), prepared=True, precision=precision))
    scored = pd.DataFrame({"id": pool["id"].to_numpy(), "label": [LABELS[i] for i in probs.argmax(axis=1)],
                           "confidence": probs.max(axis=1).astype(np.float64), "gold": pool["gold"].to_numpy()})
    tmp = cache.with_name(cache.name + ".tmp")
    scored.to_parquet(tmp, index=False)
    os.replace(tmp, cache)
    return scored, f"{time.time() - t0:.1f} s in {clf.scorer.precision}"


def top_per_class(scored, n: int) -> list[int]:
    """Pool positions of the ``n`` most confident rows of each predicted class (ties: pool order)."""
    picked = scored.sort_values("confidence", ascending=False, kind="stable").groupby("label", sort=False).head(n)
    return sorted(picked.index.tolist())


def pseudo_rows(cfg, labelled, keep, unlabelled, run_dir: Path) -> Pseudo:
    """The pseudo-labelled rows for ``cfg`` (a FinetuneConfig with ``teacher``): ``labelled`` are the
    labelled train rows, ``keep`` the positions of the label budget's rows among them and
    ``unlabelled`` the train rows without a label."""
    outside = labelled.drop(index=labelled.index[list(keep)])
    pool = draw_pool(unlabelled, outside, cfg.pseudo_pool, cfg.seed)
    if pool.empty:
        raise StageError(f"--teacher: {cfg.data}/train.parquet has no rows outside the label budget to pseudo-label")
    note = teacher_mismatch(cfg)
    scored, scoring = teacher_labels(cfg.teacher, cfg.data, pool, run_dir / FILE, cfg.precision,
                                     cfg.teacher_revision or None)
    chosen = top_per_class(scored, cfg.pseudo_per_class)
    frame = pool.iloc[chosen].drop(columns="gold").assign(label=scored["label"].iloc[chosen].to_numpy())
    from_unlabelled = int(scored["gold"].iloc[chosen].isna().sum())
    stats = summary(scored, chosen, cfg, scoring, note)
    print(f"[finetune] self-training: {len(frame):,} pseudo-labelled rows from a pool of {len(pool):,} "
          f"({stats['per_class']}), pseudo-label accuracy where known {stats['accuracy_where_known']}")
    return Pseudo(frame.reset_index(drop=True), from_unlabelled, len(frame) - from_unlabelled, stats)


def summary(scored, chosen: list[int], cfg, scoring: str, note: str | None) -> dict:
    """Counts, confidence cut-offs and, where the pool rows had labels, how often the teacher was right."""
    kept = scored.iloc[chosen]
    known = kept[kept["gold"].notna()]
    pool_known = scored[scored["gold"].notna()]
    return {
        "teacher": cfg.teacher, "teacher_revision": cfg.teacher_revision or None,
        "teacher_commit": resolved_commit(cfg.teacher, cfg.teacher_revision or None), "pool": len(scored), "pool_unlabelled": int(scored["gold"].isna().sum()),
        "per_class_limit": cfg.pseudo_per_class, "rows": len(kept),
        "per_class": {lab: int((kept["label"] == lab).sum()) for lab in LABELS},
        "lowest_confidence": {lab: round(float(g["confidence"].min()), 4) for lab, g in kept.groupby("label")},
        "accuracy_where_known": round(float((known["label"] == known["gold"]).mean()), 4) if len(known) else None,
        "teacher_pool_accuracy_where_known":
            round(float((pool_known["label"] == pool_known["gold"]).mean()), 4) if len(pool_known) else None,
        "teacher_scoring": scoring,
        "warning": note,
    }


def teacher_mismatch(cfg) -> str | None:
    """A warning when the teacher was fine-tuned on other rows of this data: then it may have been
    trained on the labels of pool rows, and the student learns labels beyond its budget."""
    record = read_stage(cfg.teacher) if Path(cfg.teacher).is_dir() else None
    if not record or record.get("stage") != "finetune":
        return None
    theirs = record["config"]
    # by content, not path: the teacher's recorded relative path meant its own working folder, and a
    # copy of the data is the same data
    same_data = (record.get("inputs") or {}).get("data") == fingerprint_path(cfg.data)
    if not same_data or (theirs.get("label_budget"), theirs.get("seed")) == (cfg.label_budget, cfg.seed):
        return None
    note = (f"the teacher was fine-tuned on this data with label budget {theirs.get('label_budget')} and seed "
            f"{theirs.get('seed')}, this run uses {cfg.label_budget} and {cfg.seed}: the teacher may have seen "
            "the labels of pool rows")
    print(f"[finetune] warning: {note}")
    return note
