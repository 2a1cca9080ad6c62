"""Self-training at a label budget: a screen, not a kopretrain stage (BENCHMARKS.md, #13).

A fine-tuned teacher labels unlabelled training rows; the student is the checkpoint fine-tuned again
on the budget's gold rows plus the teacher's most confident predictions, the same number per
predicted class. The training and labelling are kopretrain commands; this script only cuts the pool
and builds the student's data folder (and runs the same recipe with the TF-IDF baseline as its own
teacher, for comparison):

    CK=../shared/models/multilingual-e5-small-ko; D=runs/screen/data; S=1
    kopretrain finetune --model $CK --data $D --label-budget 1000 --seed $S --class-weight balanced \\
        --max-length 128 --lr 1e-4 --epochs 5 --batch-size 16 --eval-steps 63 -o runs/screen/ft-e5-1k-s$S
    python benchmarks/screen_selftrain.py pool --data $D --seed $S -o runs/screen/st-$S
    kopretrain label --model runs/screen/ft-e5-1k-s$S --input runs/screen/st-$S/pool.parquet \\
        -o runs/screen/st-$S/pool-labelled.parquet
    python benchmarks/screen_selftrain.py build --data $D --seed $S -o runs/screen/st-$S   # -> data-3000
    kopretrain finetune --model $CK --data runs/screen/st-$S/data-3000 --label-budget 10000 --seed $S \\
        --class-weight balanced --max-length 128 --lr 1e-4 --epochs 3 --batch-size 32 --eval-steps 200 \\
        -o runs/screen/ft-st3000-1k-s$S        # the 10k recipe; the budget keeps all 10,000 rows
    kopretrain evaluate --model runs/screen/ft-st3000-1k-s$S --data runs/screen/st-$S/data-3000 --precision fp32 \\
        -o runs/screen/ev-st3000-1k-s$S        # same dev and test; its TF-IDF trains on gold + pseudo rows
    python benchmarks/screen_selftrain.py tfidf --data $D --seed $S -o runs/screen/st-$S

The pool never contains the budget's rows, dev or test; its gold labels are only read to report how
accurate the pseudo-labels are.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

from kopretrain.data.files import LABELS
from kopretrain.data.split import stratified_sample
from kopretrain.evaluate import labelled


def gold_and_pool(data: Path, budget: int, pool_size: int, seed: int):
    """The label budget's rows (as finetune draws them) and a random sample of the other train rows."""
    train, y = labelled(pd.read_parquet(data / "train.parquet"))
    keep = stratified_sample(y, budget, seed)
    gold = train.iloc[keep].reset_index(drop=True)
    pool = train.drop(index=keep).sample(n=pool_size, random_state=seed).reset_index(drop=True)
    return gold, pool


def top_per_class(pool: pd.DataFrame, predicted, confidence, n: int) -> pd.DataFrame:
    """The ``n`` most confident rows of each predicted class, labelled with the prediction; the gold
    label moves to ``gold`` (for reporting only)."""
    frame = pool.assign(gold=pool["label"], label=list(predicted), _conf=confidence)
    picked = pd.concat([g.nlargest(n, "_conf") for _, g in frame.groupby("label")])
    print("pseudo rows per class:", picked["label"].value_counts().to_dict(), "| lowest confidence:",
          {k: round(float(g["_conf"].min()), 3) for k, g in picked.groupby("label")}, "| pseudo-label accuracy:",
          {k: round(float((g["gold"] == k).mean()), 3) for k, g in picked.groupby("label")})
    return picked.drop(columns="_conf")


def texts(frame) -> list[str]:
    return ["" if t is None else str(t) for t in frame["text"]]


def build(args, gold, pool) -> None:
    scored = pd.read_parquet(args.output / "pool-labelled.parquet")
    if not (scored["id"].astype(str).values == pool["id"].astype(str).values).all():
        raise SystemExit("pool-labelled.parquet is not the pool of this seed")
    pseudo = top_per_class(pool, scored["label"], scored["confidence"].to_numpy(), args.per_class)
    folder = args.output / f"data-{args.per_class}"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(args.data, folder, ignore=shutil.ignore_patterns("train.parquet", "rejected.jsonl"))
    train = pd.concat([gold, pseudo.drop(columns="gold")]).sample(frac=1, random_state=args.seed)
    train.to_parquet(folder / "train.parquet", index=False)
    print(f"teacher accuracy on the whole pool {(scored['label'].values == pool['label'].values).mean():.3f}; "
          f"wrote {folder}: {len(gold)} gold + {len(pseudo)} pseudo-labelled rows")


def tfidf(args, gold, pool) -> None:
    from sklearn.metrics import f1_score

    from kopretrain.evaluation.baseline import Baseline

    dev, y_dev = labelled(pd.read_parquet(args.data / "dev.parquet"))
    test, y_test = labelled(pd.read_parquet(args.data / "test.parquet"))
    score = lambda m: 100 * f1_score(y_test, m.predict_proba(texts(test)).argmax(1), average="macro")
    teacher = Baseline(seed=0).fit(texts(gold), [LABELS.index(v) for v in gold["label"]], texts(dev), y_dev)
    probs = teacher.predict_proba(texts(pool))
    pseudo = top_per_class(pool, [LABELS[i] for i in probs.argmax(1)], probs.max(1), args.per_class)
    train = pd.concat([gold, pseudo.drop(columns="gold")])
    student = Baseline(seed=0).fit(texts(train), [LABELS.index(v) for v in train["label"]], texts(dev), y_dev)
    print(f"TF-IDF on the gold rows {score(teacher):.2f}; self-trained on gold + pseudo {score(student):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["pool", "build", "tfidf"])
    ap.add_argument("--data", type=Path, required=True, help="normalize output (train/dev/test.parquet)")
    ap.add_argument("--seed", type=int, default=1, help="the teacher's finetune --seed (its label budget)")
    ap.add_argument("--budget", type=int, default=1000, help="the teacher's --label-budget")
    ap.add_argument("--pool", type=int, default=40000, help="unlabelled rows the teacher labels")
    ap.add_argument("--per-class", type=int, default=3000, help="pseudo-labelled rows kept per predicted class")
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    gold, pool = gold_and_pool(args.data, args.budget, args.pool, args.seed)
    if args.command == "pool":
        pool.drop(columns=["label"]).to_parquet(args.output / "pool.parquet", index=False)
        print(f"{len(gold)} gold rows; wrote {len(pool)} unlabelled rows to {args.output / 'pool.parquet'}")
    else:
        (build if args.command == "build" else tfidf)(args, gold, pool)


if __name__ == "__main__":
    main()
