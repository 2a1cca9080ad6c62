"""Benchmark: vocab training time on a full corpus and fast-tokenizer throughput.

    .venv/bin/python benchmarks/bench_vocab.py --input /tmp/nsmcv/analyze --out /tmp/bench_vocab

``--input`` is a data stage output (analyze: morpheme mode reuses its offsets after the sample
check; normalize: morpheme mode runs kiwipiepy itself). Each (model, mode) is trained through the
real stage (``kopretrain vocab``), each later run's report compares it with the earlier ones.
Throughput is measured on held-out reviews (dev split): one review per call (the baseline),
batched calls of 1,000, and batched with the recorded text preparation (kiwipiepy in morpheme
mode). Ratios are against the unbatched baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def throughput(out: Path, texts: list[str], baseline_n: int = 5000) -> dict[str, float]:
    from kopretrain.tokenizer import report as tokreport

    tok, prep = tokreport.load(str(out))
    prepared = prep.prepare(texts)
    t0 = time.perf_counter()
    for t in prepared[:baseline_n]:
        tok(t)
    one = baseline_n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(0, len(prepared), 1000):
        tok(prepared[i:i + 1000])
    batched = len(prepared) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(0, len(texts), 1000):
        tok(prep.prepare(texts[i:i + 1000]))
    with_prep = len(texts) / (time.perf_counter() - t0)
    return {"one_by_one": one, "batched": batched, "batched_with_prep": with_prep}


def extend_demo(input_dir: str, out: Path, base_rows: int, max_new: int) -> dict:
    """Build a local base (WordPiece 8k from the first ``base_rows`` train reviews + a tiny ELECTRA
    discriminator) and time extending it on the whole corpus."""
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer, ElectraConfig, ElectraForPreTraining

    from kopretrain.runs.config import from_dict
    from kopretrain.runs.registry import execute
    from kopretrain.vocab import VocabConfig

    small = out / "base-corpus"
    small.mkdir(parents=True, exist_ok=True)
    pq.write_table(pq.read_table(Path(input_dir) / "train.parquet", columns=["text"]).slice(0, base_rows),
                   small / "train.parquet")
    base = out / "base"
    execute("vocab", from_dict(VocabConfig, {"input": str(small), "vocab_size": 8000, "report_texts": 0}), base)
    n = len(AutoTokenizer.from_pretrained(base))
    ElectraForPreTraining(ElectraConfig(vocab_size=n, embedding_size=128, hidden_size=256, num_hidden_layers=4,
                                        num_attention_heads=4, intermediate_size=1024)).save_pretrained(base)
    cfg = from_dict(VocabConfig, {"input": input_dir, "extend_from": str(base), "max_new_tokens": max_new,
                                  "report_texts": 20000})
    t0 = time.perf_counter()
    execute("vocab", cfg, out / "extended", force=True)
    stats = json.loads((out / "extended" / "stage.json").read_text())["stats"]
    return {"seconds": round(time.perf_counter() - t0, 1), "base_vocab": n, "added": stats["added"],
            "report": stats["report"], "examples": [e["token"] for e in stats["added_examples"][:10]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, help="analyze or normalize stage output")
    ap.add_argument("--out", default="/tmp/bench_vocab")
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--runs", default="wordpiece:eojeol,wordpiece:morpheme", help="model:mode,...")
    ap.add_argument("--held-out", type=int, default=50000, help="dev reviews for throughput")
    ap.add_argument("--extend-only", action="store_true",
                    help="only time vocab extension of a locally built base (8k vocab from 20k reviews)")
    args = ap.parse_args()
    if args.extend_only:
        result = extend_demo(args.input, Path(args.out) / "extend", base_rows=20000, max_new=1000)
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return

    from kopretrain.runs.config import from_dict
    from kopretrain.data.files import iter_batches
    from kopretrain.runs.registry import execute
    from kopretrain.vocab import VocabConfig

    dev = Path(args.input) / "dev.parquet"
    texts: list[str] = []
    for batch in iter_batches(dev, columns=["text"]):
        texts += [t for t in batch.column("text").to_pylist() if t and t.strip()]
    texts = texts[: args.held_out]
    results, done = {}, []
    for spec in args.runs.split(","):
        model, mode = spec.split(":")
        out = Path(args.out) / f"{model}-{mode}"
        cfg = from_dict(VocabConfig, {"input": args.input, "model": model, "pretokenize": mode,
                                      "vocab_size": args.vocab_size, "compare_with": [str(d) for d in done]})
        t0 = time.perf_counter()
        execute("vocab", cfg, out, force=True)
        wall = time.perf_counter() - t0
        stats = json.loads((out / "stage.json").read_text())["stats"]
        speed = throughput(out, texts)
        results[spec] = {"stage_wall_s": round(wall, 1), "train_s": stats["train_seconds"],
                         "prepare_s": stats["prepare_seconds"], "texts": stats["texts"],
                         "vocab_size": stats["vocab_size"], **{k: round(v, 1) for k, v in speed.items()}}
        done.append(out)
        print(json.dumps({spec: results[spec]}, ensure_ascii=False), flush=True)

    print(f"\n{len(texts)} held-out reviews for throughput; ratios vs one review per call")
    print(f"{'run':<22} {'train s':>8} {'(prep s)':>9} {'1-by-1/s':>10} {'batched/s':>10} {'x':>6} {'+prep/s':>10} {'x':>6}")
    for spec, r in results.items():
        print(f"{spec:<22} {r['train_s']:>8.1f} {r['prepare_s']:>9.1f} {r['one_by_one']:>10,.0f} {r['batched']:>10,.0f} "
              f"{r['batched'] / r['one_by_one']:>6.1f} {r['batched_with_prep']:>10,.0f} "
              f"{r['batched_with_prep'] / r['one_by_one']:>6.2f}")
    if done:
        print(f"\nreport: {done[-1] / 'tokenizer_report.md'}")


if __name__ == "__main__":
    main()
