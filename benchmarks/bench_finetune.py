"""Fine-tuning throughput (training examples/s) of ``kopretrain finetune`` on NSMC reviews.

    .venv/bin/python benchmarks/bench_finetune.py                 # 3 variants, 80 steps each
    .venv/bin/python benchmarks/bench_finetune.py --steps 40 --batch-size 32
    .venv/bin/python benchmarks/bench_finetune.py --model ../shared/models/multilingual-e5-small-ko \
        --steps 30 --repeats 1 --plain-trainer        # a real checkpoint, vs a plain Trainer

Baseline measured in the same run: random batches in fp32 (what a plain ``Trainer`` does by
default). Variants: length-grouped batches (``train_sampling_strategy="group_by_length"``) in
fp32, then also bf16 autocast where the CPU supports it. Each variant runs the real stage in its own
fresh process (same data, model, seed and thread count). Two numbers per variant: the Trainer's
``train_samples_per_second`` (wall clock; includes the one dev evaluation at the end, on 256 rows)
and training examples per CPU-second of the training loop (``time.process_time``), which moves
much less than wall time when other jobs share the 2 cores. Variants run interleaved
(A B C A B C ...) and the best repeat of each is kept, so a burst of load hits all of them.
Model: ELECTRA ``tiny`` preset size (4 layers x 256), random init, a 16k WordPiece vocab trained on
the reviews: speed does not depend on the weights being pretrained. ``--model DIR`` times a real
checkpoint instead (any local BERT/XLM-R/ELECTRA directory).

``--plain-trainer`` adds the baseline issue #13 names: a stock ``transformers.Trainer`` the way
``run_glue.py`` sets it up by default (every review padded to ``max_length`` 128, random batches,
fp32, ``AutoModelForSequenceClassification``), same model, rows, batch size, steps and threads.
``--keep-layers K`` adds our variant that keeps only the first K encoder layers (a different,
smaller model: reported beside the same-model ratios, not as one of them).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NSMC = ROOT.parent / "shared" / "data" / "nsmc" / "reviews.jsonl.gz"


def make_data(directory: Path, rows: int) -> Path:
    """train/dev parquet from the first NSMC reviews (nsmc rating mapping), no ingest needed."""
    import pandas as pd

    if (directory / "train.parquet").exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    with gzip.open(NSMC, "rt", encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            if not obj["review"]:
                continue
            r = obj["rating"]
            label = "negative" if r <= 4 else "neutral" if r <= 8 else "positive"
            out.append({"id": str(obj["review_id"]), "text": obj["review"], "label": label, "rating": float(r)})
            if len(out) >= rows + 2000:
                break
    frame = pd.DataFrame(out)
    frame.iloc[:rows].to_parquet(directory / "train.parquet")
    frame.iloc[rows:].to_parquet(directory / "dev.parquet")
    return directory


def make_model(directory: Path, data: Path) -> Path:
    import pandas as pd
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import ElectraConfig, ElectraForPreTraining, PreTrainedTokenizerFast

    if (directory / "config.json").exists():
        return directory
    texts = pd.read_parquet(data / "train.parquet")["text"].tolist()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=16000, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(directory)
    config = ElectraConfig(vocab_size=len(fast), embedding_size=128, hidden_size=256, num_hidden_layers=4,
                           num_attention_heads=4, intermediate_size=1024, max_position_embeddings=512)
    ElectraForPreTraining(config).save_pretrained(directory)
    return directory


def run_variant(name: str, model: Path, data: Path, work: Path, steps: int, batch: int,
                extra: list[str]) -> tuple[float, float]:
    out = work / f"out-{name}"
    cmd = [sys.executable, "-m", "kopretrain", "finetune", "--model", str(model), "--data", str(data),
           "--max-steps", str(steps), "--eval-steps", str(steps), "--batch-size", str(batch),
           "--dev-max-examples", "256", "--early-stopping-patience", "0", "--logging-steps", str(steps),
           "--force", "-o", str(out), *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    stats = json.loads((out / "stage.json").read_text())["stats"]
    return float(stats["train_examples_per_second"]), float(stats["train_examples_per_cpu_second"])


def plain_trainer(model: Path, data: Path, work: Path, steps: int, batch: int, max_length: int) -> tuple[float, float]:
    """The baseline in its own process: stock Trainer, run_glue's default padding to max_length."""
    out = work / "out-plain-trainer.json"
    code = f"""
import json, time, pandas as pd, datasets
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments
tok = AutoTokenizer.from_pretrained({str(model)!r})
model = AutoModelForSequenceClassification.from_pretrained({str(model)!r}, num_labels=3)
frame = pd.read_parquet({str(data / "train.parquet")!r})
names = sorted(frame["label"].unique())
ds = datasets.Dataset.from_dict({{"text": frame["text"].tolist(), "label": [names.index(x) for x in frame["label"]]}})
ds = ds.map(lambda b: tok(b["text"], padding="max_length", max_length={max_length}, truncation=True),
            batched=True, remove_columns=["text"])
args = TrainingArguments(output_dir={str(work / "out-plain")!r}, per_device_train_batch_size={batch},
                         max_steps={steps}, learning_rate=1e-4, save_strategy="no", report_to="none",
                         logging_steps={steps}, use_cpu=True, seed=1, disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=ds)
cpu0 = time.process_time()
metrics = trainer.train().metrics
cpu = time.process_time() - cpu0
n = metrics["train_samples_per_second"] * metrics["train_runtime"]
json.dump([metrics["train_samples_per_second"], n / cpu], open({str(out)!r}, "w"))
"""
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    wall, cpu = json.loads(out.read_text())
    return float(wall), float(cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000, help="training reviews (the sampler sees all of them)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--work", default="/tmp/kopretrain-bench-finetune")
    ap.add_argument("--model", help="a checkpoint directory to time instead of the random ELECTRA 4x256")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--plain-trainer", action="store_true",
                    help="also time a stock Trainer padding every review to --max-length (the #13 baseline)")
    ap.add_argument("--keep-layers", type=int, default=0, help="also time kopretrain finetune --keep-layers K")
    args = ap.parse_args()
    if not NSMC.is_file():
        print(f"NSMC not found at {NSMC}", file=sys.stderr)
        return 1
    work = Path(args.work)
    data = make_data(work / "data", args.rows)
    model = Path(args.model).resolve() if args.model else make_model(work / "model", data)
    length = ["--max-length", str(args.max_length)]
    variants = [("random-fp32", ["--no-group-by-length", "--precision", "fp32", *length]),
                ("grouped-fp32", ["--group-by-length", "--precision", "fp32", *length]),
                ("grouped-auto", ["--group-by-length", "--precision", "auto", *length])]
    if args.keep_layers:
        variants.append((f"grouped-auto-keep{args.keep_layers}",
                         ["--group-by-length", "--precision", "auto", *length, "--keep-layers", str(args.keep_layers)]))
    results: dict[str, tuple[float, float]] = {}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        if args.plain_trainer:
            wall, cpu = plain_trainer(model, data, work, args.steps, args.batch_size, args.max_length)
            old = results.get("plain-trainer", (0.0, 0.0))
            results["plain-trainer"] = (max(old[0], wall), max(old[1], cpu))
        for name, extra in variants:
            wall, cpu = run_variant(name, model, data, work, args.steps, args.batch_size, extra)
            old = results.get(name, (0.0, 0.0))
            results[name] = (max(old[0], wall), max(old[1], cpu))
    base = "plain-trainer" if args.plain_trainer else "random-fp32"
    base_wall, base_cpu = results[base]
    what = args.model or "ELECTRA 4x256 random init"
    print(f"finetune, {what}, batch {args.batch_size}, {args.steps} steps, max_length {args.max_length}, "
          f"{args.rows} NSMC rows, best of {args.repeats}; load average {load:.1f} -> {os.getloadavg()[0]:.1f}")
    for name, (wall, cpu) in results.items():
        print(f"  {name:<22} {wall:7.1f} examples/s (x{wall / base_wall:.2f})   "
              f"{cpu:7.1f} examples/CPU-s (x{cpu / base_cpu:.2f})   vs {base}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
