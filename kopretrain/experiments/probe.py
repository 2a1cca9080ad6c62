"""Linear probe: how much sentiment do frozen encoder features carry, before any fine-tuning?

    .venv/bin/python -m kopretrain.experiments.probe --data runs/nsmc-3class/normalize \\
        --models scratch=runs/nsmc-scratch/init,mlm=runs/nsmc-mlm/pretrain,rtd=runs/nsmc-3class/pretrain \\
        --budgets 1000,10000 --test-rows 10000

The study (study.py) fine-tunes every encoder with one recipe, so a pretrained model that fine-tunes
badly could either carry nothing useful or carry it in a form the recipe does not reach (e.g. the
[CLS] vector, which the classification head reads, gets no direct training signal from MLM or RTD).
This separates the two: each encoder is frozen, every review becomes its [CLS] vector and its
mask-aware mean over tokens (last layer), and scikit-learn's logistic regression is fit on the first
``budget`` rows of a seeded shuffle of train and scored (macro-F1) on a fixed test sample. The TF-IDF
baseline of ``evaluate`` (char 1-3 n-grams + LR) is fit on the same rows for reference.

A diagnostic, not a system: nothing here is used by the pipeline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def load_split(data: Path, split: str, rows: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Labelled rows of a split (read and checked by the stages' own reader), seeded shuffle."""
    from kopretrain.data.files import LABELS
    from kopretrain.inference.classifier import read_split

    table = read_split(str(data), split)
    table = table[table["label"].notna()].sample(frac=1.0, random_state=seed)
    table = table.head(rows) if rows else table
    return table["text"].tolist(), table["label"].map(LABELS.index).to_numpy()


def features(model_dir: Path, texts: list[str], batch_size: int = 128, max_length: int = 128) -> dict[str, np.ndarray]:
    """Last-layer [CLS] and masked-mean vectors of a frozen encoder (base model only, no head)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, use_safetensors=True).eval()
    order = np.argsort([len(t) for t in texts])  # length-sorted batches: little padding
    cls = np.zeros((len(texts), model.config.hidden_size), np.float32)
    mean = np.zeros_like(cls)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            cls[idx] = hidden[:, 0].numpy()
            mean[idx] = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    return {"cls": cls, "mean": mean}


def probe(train_x, train_y, test_x, test_y) -> float:
    """Standardised features + the same logistic regression as the TF-IDF baseline (no class weights)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    clf.fit(train_x, train_y)
    return float(f1_score(test_y, clf.predict(test_x), average="macro"))


def tfidf(train_texts, train_y, test_texts, test_y) -> float:
    """evaluate's own baseline (kopretrain.evaluation.baseline), fit on the same rows."""
    from sklearn.metrics import f1_score

    from kopretrain.evaluation.baseline import Baseline

    base = Baseline().fit(train_texts, train_y)
    return float(f1_score(test_y, base.predict_proba(test_texts).argmax(1), average="macro"))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a normalize (or ingest) output with train/test.parquet")
    p.add_argument("--models", required=True, help="NAME=DIR,... encoders to probe (any transformers model dir)")
    p.add_argument("--budgets", default="1000,10000", help="training rows for the probe, comma-separated")
    p.add_argument("--test-rows", type=int, default=10000, help="test sample size (0: all)")
    p.add_argument("--seeds", default="1,2,3", help="train-sample seeds (the test sample is fixed)")
    p.add_argument("--out", default="", help="write the results as JSON here")
    args = p.parse_args(argv)
    data = Path(args.data)
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    models = dict(part.split("=", 1) for part in args.models.split(","))

    test_texts, test_y = load_split(data, "test", args.test_rows, seed=0)
    train_texts, train_y = load_split(data, "train", 0, seed=0)
    samples = {s: np.random.default_rng(s).permutation(len(train_texts))[:max(budgets)] for s in seeds}
    needed = sorted(set(np.concatenate(list(samples.values())).tolist()))
    pos = {row: i for i, row in enumerate(needed)}
    texts = [train_texts[i] for i in needed]

    results: dict = {"test_rows": len(test_y), "budgets": budgets, "seeds": seeds, "rows": []}
    for budget in budgets:
        for seed in seeds:
            rows = samples[seed][:budget]
            score = tfidf([train_texts[i] for i in rows], train_y[rows], test_texts, test_y)
            results["rows"].append({"system": "tfidf", "features": "char 1-3", "budget": budget, "seed": seed,
                                    "macro_f1": score})
    for name, model_dir in models.items():
        t0 = time.time()
        train_f, test_f = features(Path(model_dir), texts), features(Path(model_dir), test_texts)
        print(f"[probe] {name}: features for {len(texts) + len(test_texts):,} texts in {time.time() - t0:.0f} s",
              flush=True)
        for kind in ("cls", "mean"):
            for budget in budgets:
                for seed in seeds:
                    idx = [pos[r] for r in samples[seed][:budget]]
                    score = probe(train_f[kind][idx], train_y[samples[seed][:budget]], test_f[kind], test_y)
                    results["rows"].append({"system": name, "features": kind, "budget": budget, "seed": seed,
                                            "macro_f1": score})
    print(table(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


def table(results: dict) -> str:
    lines = ["| encoder | features | " + " | ".join(f"{b:,} labels" for b in results["budgets"]) + " |",
             "|---|---|" + "---|" * len(results["budgets"])]
    keys = dict.fromkeys((r["system"], r["features"]) for r in results["rows"])
    for system, kind in keys:
        cells = []
        for budget in results["budgets"]:
            vals = [100 * r["macro_f1"] for r in results["rows"]
                    if (r["system"], r["features"], r["budget"]) == (system, kind, budget)]
            cells.append(f"{np.mean(vals):.2f} ± {np.std(vals, ddof=1) if len(vals) > 1 else 0:.2f}")
        lines.append(f"| {system} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
