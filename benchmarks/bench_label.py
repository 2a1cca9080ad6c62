"""Labeling throughput and peak memory: ``kopretrain label`` vs ``transformers.pipeline``.

    .venv/bin/python benchmarks/bench_label.py                      # 100k NSMC reviews, both methods
    .venv/bin/python benchmarks/bench_label.py --rows 5000          # quick look
    .venv/bin/python benchmarks/bench_label.py --million            # 1M rows: flat memory + kill/rerun
    .venv/bin/python benchmarks/bench_label.py --model runs/nsmc/finetune   # a trained model

Fairness: both sides get the same model directory, the same max_length and batch size and the
same torch thread count, and each runs in its own fresh process (peak RSS = that process's
``ru_maxrss``). The pipeline is timed on texts already in memory; ``kopretrain label`` is timed
file to file (read, normalize, label, write Parquet), so the comparison favours the pipeline.
Without ``--model`` an untrained classifier is built from a config (``--size tiny``: BERT 2 layers x
32 as in the tests; ``--size small``: 4 layers x 256, the ``tiny`` pretraining preset's size), with a
16k WordPiece vocab trained on the reviews: speed does not depend on trained weights, and agreement
numbers then only compare the two code paths.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NSMC = ROOT.parent / "shared" / "data" / "nsmc" / "reviews.jsonl.gz"


def make_input(path: Path, rows: int) -> Path:
    """The first ``rows`` NSMC reviews (repeated when more are asked for), ids made unique."""
    if path.exists():
        return path
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(NSMC, "rt", encoding="utf-8") as src, gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as out:
        lines = []
        for i, line in enumerate(src):
            if i >= rows:
                break
            lines.append(line)
        for i in range(rows):
            obj = json.loads(lines[i % len(lines)])
            obj["row"] = i
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


SIZES = {"tiny": dict(hidden=32, layers=2, heads=2, init_range=0.5), "small": dict(hidden=256, layers=4, heads=4, init_range=0.05)}


def bench_model(work: Path, size: str) -> Path:
    model = work / f"bench-model-{size}"
    if (model / "config.json").exists():
        return model
    from kopretrain.testing import tiny_classifier

    with gzip.open(NSMC, "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["review"] for _, line in zip(range(100_000), fh)]
    tiny_classifier(model, texts, vocab_size=16_000, **SIZES[size])
    return model


# ---------------------------------------------------------------- workers (one fresh process each)


def worker_kopretrain(args) -> dict:
    from kopretrain.cli import main

    t0 = time.perf_counter()
    code = main(["label", "--model", args.model, "--input", args.input, "--output", args.output,
                 "--text-column", "review", "--batch-size", str(args.batch_size), "--max-length",
                 str(args.max_length), "--threads", str(args.threads), "--precision", args.precision,
                 "--chunk-size", str(args.chunk_size), "--no-progress", "--force"])
    assert code == 0
    stats = json.loads(Path(args.output + ".stage.json").read_text())["stats"]
    return {"total_seconds": time.perf_counter() - t0, "seconds": stats["seconds_labeling"],
            "cpu_seconds": stats["cpu_seconds_labeling"], "precision": stats["precision"]}


def worker_pipeline(args) -> dict:
    import torch
    from transformers import pipeline

    torch.set_num_threads(args.threads)
    with gzip.open(args.input, "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["review"] for line in fh]
    pipe = pipeline("text-classification", model=args.model, device=-1, top_k=None)
    t0, c0 = time.perf_counter(), time.process_time()
    out = pipe(texts, batch_size=args.batch_size, truncation=True, max_length=args.max_length)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    labels = [max(r, key=lambda d: d["score"])["label"] for r in out]
    Path(args.output).write_text("\n".join(labels) + "\n", encoding="utf-8")
    return {"seconds": seconds, "cpu_seconds": cpu, "precision": "fp32"}


def run_worker(kind: str, **kw) -> dict:
    argv = [sys.executable, __file__, "--worker", kind] + [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    # single-threaded tokenizers on both sides: same thread budget (the pipeline tokenizes row by row)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    res = subprocess.run(argv, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _labels_kopretrain(path: str) -> list:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["label"]).column("label").to_pylist()


# ---------------------------------------------------------------- scenarios


def compare(args, work: Path, model: str) -> None:
    src = make_input(work / f"nsmc_{args.rows}.jsonl.gz", args.rows)
    common = dict(model=model, input=str(src), batch_size=args.batch_size, max_length=args.max_length,
                  threads=args.threads, chunk_size=args.chunk_size)
    runs = {"transformers.pipeline": run_worker("pipeline", output=str(work / "pipe.txt"), precision="fp32", **common)}
    if args.pipeline_default_batch:  # pipeline(texts) as most users call it: batch_size 1
        runs["transformers.pipeline batch 1"] = run_worker(
            "pipeline", output=str(work / "pipe1.txt"), precision="fp32", **{**common, "batch_size": 1})
    for precision in args.precisions.split(","):
        runs[f"kopretrain label {precision}"] = run_worker(
            "kopretrain", output=str(work / f"k-{precision}.parquet"), precision=precision, **common)
    base = runs["transformers.pipeline"]
    print(f"\n{args.rows:,} NSMC reviews, model {model}, batch {args.batch_size}, max_length {args.max_length}, "
          f"threads {args.threads}")
    print("seconds = labeling only (pipeline: texts already in memory; kopretrain: file to file, excl. "
          "start-up); cpu = process CPU seconds over the same span (less sensitive to a shared machine)")
    print(f"{'method':<30}{'precision':>10}{'seconds':>9}{'rows/s':>9}{'cpu s':>8}{'rows/cpu-s':>11}"
          f"{'RSS MB':>8}{'speedup wall':>14}{'speedup cpu':>13}")
    for name, r in runs.items():
        print(f"{name:<30}{r['precision']:>10}{r['seconds']:>9.1f}{args.rows / r['seconds']:>9,.0f}"
              f"{r['cpu_seconds']:>8.1f}{args.rows / r['cpu_seconds']:>11,.0f}{r['maxrss_mb']:>8,.0f}"
              f"{base['seconds'] / r['seconds']:>13.2f}x{base['cpu_seconds'] / r['cpu_seconds']:>12.2f}x")
    pipe = (work / "pipe.txt").read_text(encoding="utf-8").split()
    for name in args.precisions.split(","):
        path = f"k-{name}.parquet"
        ours = _labels_kopretrain(str(work / path))
        # pipeline labels every text, kopretrain leaves empty ones unlabeled: compare the labeled rows
        pairs = [(a, b) for a, b in zip(ours, pipe) if a is not None]
        agree = sum(a == b for a, b in pairs) / max(len(pairs), 1)
        print(f"label agreement kopretrain {name} vs pipeline: {agree:.4%} of {len(pairs):,} labeled rows")


def million(args, work: Path, model: str) -> None:
    """1M rows: peak RSS vs a 100k run (bounded memory), then SIGKILL mid-run and rerun."""
    src = make_input(work / "nsmc_1m.jsonl.gz", 1_000_000)
    small = make_input(work / "nsmc_100000.jsonl.gz", 100_000)
    common = dict(model=model, batch_size=args.batch_size, max_length=args.max_length, threads=args.threads,
                  chunk_size=args.chunk_size, precision=args.precision)
    r100k = run_worker("kopretrain", input=str(small), output=str(work / "m100k.parquet"), **common)
    print(f"100k rows: {r100k['seconds']:.0f}s, {100_000 / r100k['seconds']:,.0f} rows/s, "
          f"peak RSS {r100k['maxrss_mb']:,.0f} MB", flush=True)
    out = work / "m1m.parquet"
    for p in (out, out.with_name(out.name + ".stage.json")):
        p.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "kopretrain", "label", "--model", model, "--input", str(src), "--output", str(out),
           "--text-column", "review", "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
           "--threads", str(args.threads), "--precision", args.precision, "--chunk-size", str(args.chunk_size),
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(args.kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    manifest = json.loads((work / "m1m.parquet.partial" / "manifest.json").read_text())
    done = sum(c["rows"] for c in manifest["chunks"])
    print(f"killed after {args.kill_after}s with {len(manifest['chunks'])} chunks ({done:,} rows) committed", flush=True)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *cmd[3:]], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    rss = json.loads(res.stdout.strip().splitlines()[-1])["maxrss_mb"]
    print(f"rerun: {time.perf_counter() - t0:.0f}s for the remaining {1_000_000 - done:,} rows, peak RSS {rss:,.0f} MB")
    import pyarrow.parquet as pq

    rows = pq.read_table(out, columns=["row"]).column("row").to_pylist()
    ok = rows == list(range(1_000_000))
    print(f"output rows {len(rows):,}; in input order with no duplicate or missing row: {ok}")
    record = json.loads((work / "m1m.parquet.stage.json").read_text())
    print(f"stage record: resumed={record['resumed']} counts={record['counts']} errors={record['stats']['errors']}")


_RSS_WRAPPER = (
    "import json, resource, sys\n"
    "from kopretrain.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(json.dumps({'maxrss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    "sys.exit(code)\n"
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--model", default="", help="a trained classifier dir (default: build an untrained one)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--chunk-size", type=int, default=10_000)
    p.add_argument("--precision", default="fp32", help="precision for --million")
    p.add_argument("--precisions", default="fp32,int8", help="kopretrain precisions compared with the pipeline")
    p.add_argument("--pipeline-default-batch", action="store_true",
                   help="also time the pipeline at its default batch_size=1 (the baseline stays the batched one)")
    p.add_argument("--size", choices=sorted(SIZES), default="tiny", help="size of the built model without --model")
    p.add_argument("--million", action="store_true", help="the 1M-row memory + kill/rerun scenario")
    p.add_argument("--kill-after", type=float, default=60.0, help="seconds before SIGKILL in --million")
    p.add_argument("--workdir", default="/tmp/kopretrain-bench-label")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        import resource

        result = (worker_kopretrain if args.worker == "kopretrain" else worker_pipeline)(args)
        result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    if not NSMC.is_file():
        raise SystemExit(f"NSMC not found at {NSMC}")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    model = args.model or str(bench_model(work, args.size))
    if not args.model:
        print(f"no --model given: using an untrained {args.size} BERT classifier built from a config "
              f"({SIZES[args.size]}, 16k WordPiece vocab trained on NSMC): {model}")
    (million if args.million else compare)(args, work, model)


if __name__ == "__main__":
    main()
