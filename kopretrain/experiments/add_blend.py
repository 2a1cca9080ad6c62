"""Give an existing fine-tune output the n-gram expert ``finetune --ngram-blend`` would have fitted.

    .venv/bin/python -m kopretrain.experiments.add_blend runs/nsmc-10k-selftrain-s1/finetune \\
        -o runs/blend/10k-s1
    kopretrain evaluate --model runs/blend/10k-s1 --data runs/nsmc-10k-selftrain-s1/normalize -o ...

For measuring the blend on models trained before it existed, without training them again: the
output folder holds the model's files (hard links where possible) and the expert, fitted by the
same code the finetune stage runs after training (:func:`kopretrain.train.ngram_blend.fit_blend`)
on the same rows: the recorded label budget and seed, the recorded dev sample, the dev logits in
fp32 through the scoring loop. A measurement tool, not a pipeline stage.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path


def add_blend(model: Path, output: Path) -> dict:
    from kopretrain.finetune import FinetuneConfig, prepare_rows
    from kopretrain.inference.classifier import Classifier
    from kopretrain.runs.config import from_dict
    from kopretrain.runs.records import read_stage
    from kopretrain.train.ngram_blend import fit_blend

    record = read_stage(str(model))
    if not record or record.get("stage") != "finetune":
        raise SystemExit(f"{model}: not a finetune output (no finetune stage.json)")
    cfg = from_dict(FinetuneConfig, {k: v for k, v in record["config"].items() if k in FinetuneConfig.__dataclass_fields__})
    # the expert learns from the labelled rows only: no pseudo-labels or soft targets needed
    cfg = replace(cfg, teacher="", soft_targets="", rating_smoothing=0.0)
    if output.exists():
        raise SystemExit(f"{output} exists; choose a new folder")
    output.mkdir(parents=True)
    for item in model.iterdir():
        if item.is_file():
            try:
                os.link(item, output / item.name)
            except OSError:
                shutil.copy2(item, output / item.name)
    clf = Classifier.load(str(model))
    rows = prepare_rows(cfg, clf.tokenizer, clf.prep, clf.labels, clf.max_length)
    logits = clf.logits(rows.dev_texts, prepared=True, precision="fp32", blend=False)
    return fit_blend(logits, rows, cfg.seed, output)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a finetune output folder")
    parser.add_argument("-o", "--output", type=Path, required=True, help="new folder: the model + its n-gram expert")
    args = parser.parse_args(argv)
    print(json.dumps(add_blend(args.model, args.output), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
