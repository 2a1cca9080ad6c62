"""Data stages throughput and memory: ingest + normalize + analyze vs raw kiwipiepy, same run.

    .venv/bin/python benchmarks/bench_data.py --rows 100000 --workers 2 [--record]

Writes the first ROWS NSMC reviews to a temp .jsonl.gz, then runs each part in its own
subprocess (so ``ru_maxrss`` is that part's peak RSS): the three stages through
``kopretrain.cli.main`` and, as the baseline, ``Kiwi(num_workers=N).tokenize`` over the same raw
review texts. Everything is repeated at ROWS/2 to show that memory does not grow with the input.
``--record`` appends the result and this command to BENCHMARKS.md. Not a test.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NSMC = ROOT.parent / "shared" / "data" / "nsmc" / "reviews.jsonl.gz"
STAGES = ("ingest", "normalize", "analyze")


def write_head(src: Path, dst: Path, rows: int) -> None:
    with gzip.open(src, "rt", encoding="utf-8") as fin, gzip.open(dst, "wt", encoding="utf-8") as fout:
        for i, line in enumerate(fin):
            if i >= rows:
                break
            fout.write(line)


# ----------------------------------------------------------------- parts (run in a subprocess)
def part_stage(name: str, work: Path, data: Path, workers: int) -> dict:
    from kopretrain.cli import main

    args = {
        "ingest": ["--input", str(data), "--label-scheme", "nsmc"],
        "normalize": ["--input", str(work / "ingest")],
        "analyze": ["--input", str(work / "normalize"), "--num-workers", str(workers)],
    }[name]
    t0 = time.perf_counter()
    if main([name, *args, "--output", str(work / name), "--force"]) != 0:
        raise SystemExit(f"{name} failed")
    seconds = time.perf_counter() - t0
    record = json.loads((work / name / "stage.json").read_text())
    return {"seconds": seconds, "rows_in": record["counts"]["rows_in"], "rows_out": record["counts"]["rows_out"],
            "stats": {k: v for k, v in record["stats"].items() if k in ("texts_per_second", "morphemes_per_text",
                                                                          "kiwi_load_seconds")}}


def part_run(work: Path, data: Path, workers: int) -> dict:
    """The three stages as a user runs them: one ``kopretrain run`` process, imports paid once."""
    from kopretrain.cli import main

    yaml = work / "data-stages.yaml"
    yaml.write_text(f"workdir: {work / 'run'}\ningest:\n  input: {data}\n  label_scheme: nsmc\n"
                    f"normalize: {{}}\nanalyze:\n  num_workers: {workers}\n", encoding="utf-8")
    t0 = time.perf_counter()
    if main(["run", str(yaml), "--force"]) != 0:
        raise SystemExit("kopretrain run failed")
    seconds = time.perf_counter() - t0
    rows_out = json.loads((work / "run" / "analyze" / "stage.json").read_text())["counts"]["rows_out"]
    return {"seconds": seconds, "rows_in": json.loads((work / "run" / "ingest" / "stage.json").read_text())
            ["counts"]["rows_in"], "rows_out": rows_out, "stats": {}}


def part_kiwi(data: Path, workers: int, work: Path | None = None) -> dict:
    """Raw kiwi over the raw reviews, or (``work`` given) over the texts analyze saw."""
    if work is None:
        with gzip.open(data, "rt", encoding="utf-8") as fh:
            texts = [json.loads(line)["review"] or "" for line in fh]
    else:
        import pyarrow.parquet as pq

        from kopretrain.data.files import split_files

        texts = [t for p in split_files(work / "normalize").values()
                 for t in pq.read_table(p, columns=["text"]).column("text").to_pylist()]
    t0 = time.perf_counter()
    from kiwipiepy import Kiwi

    kiwi = Kiwi(num_workers=workers)
    kiwi.tokenize("모델 준비")
    load = time.perf_counter() - t0
    morphs = sum(len(tokens) for tokens in kiwi.tokenize(texts))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows_in": len(texts), "rows_out": len(texts),
            "stats": {"texts_per_second": round(len(texts) / (seconds - load), 1),
                      "morphemes_per_text": round(morphs / len(texts), 3), "kiwi_load_seconds": round(load, 2)}}


def run_part(part: str, work: Path, data: Path, workers: int) -> dict:
    cmd = [sys.executable, __file__, "--part", part, "--work", str(work), "--data", str(data),
           "--workers", str(workers)]
    env = dict(os.environ, TQDM_DISABLE="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"part {part} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- driver
def measure(rows: int, workers: int, src: Path, tmp: Path) -> dict:
    work = tmp / f"rows{rows}"
    work.mkdir()
    data = work / "reviews.jsonl.gz"
    write_head(src, data, rows)
    result = {part: run_part(part, work, data, workers) for part in (*STAGES, "kiwi", "kiwi_same", "run")}
    pipeline = sum(result[s]["seconds"] for s in STAGES)
    result["pipeline"] = {"seconds": pipeline, "reviews_per_second": rows / pipeline,
                          "maxrss_mb": max(result[s]["maxrss_mb"] for s in STAGES),
                          "cpu_seconds": sum(result[s]["cpu_seconds"] for s in STAGES)}
    result["kiwi"]["reviews_per_second"] = rows / result["kiwi"]["seconds"]
    shutil.rmtree(work)
    return result


def report(rows: int, workers: int, full: dict, half: dict) -> str:
    p, k = full["pipeline"], full["kiwi"]
    a, same = full["analyze"], full["kiwi_same"]
    lines = [
        f"rows={rows} workers={workers} cpus={os.cpu_count()} loadavg(1m) at end={os.getloadavg()[0]:.1f}",
        "",
        "| part (own process) | texts in | wall s (incl. start-up) | texts/s | CPU s | peak RSS MB at 50% | at 100% |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = {"kiwi": "raw Kiwi.tokenize, raw reviews", "kiwi_same": "raw Kiwi.tokenize, analyze's texts",
             "run": "`kopretrain run`: the three stages in one process"}
    for part in (*STAGES, "kiwi", "kiwi_same", "run"):
        f, h = full[part], half[part]
        lines.append(f"| {names.get(part, part)} | {f['rows_in']:,} | {f['seconds']:.1f} | "
                     f"{f['rows_in'] / f['seconds']:,.0f} | {f['cpu_seconds']:.1f} | {h['maxrss_mb']:.0f} | "
                     f"{f['maxrss_mb']:.0f} |")
    lines += [
        f"| **ingest+normalize+analyze** | {rows:,} | {p['seconds']:.1f} | {p['reviews_per_second']:,.0f} | "
        f"{p['cpu_seconds']:.1f} | {half['pipeline']['maxrss_mb']:.0f} | {p['maxrss_mb']:.0f} |",
        "",
        f"- `kopretrain run` (one process) / raw kiwi (reviews/s, wall clock incl. Kiwi start-up): "
        f"**{k['seconds'] / full['run']['seconds']:.2f}x** (target >= 0.8x); by CPU seconds "
        f"{k['cpu_seconds'] / full['run']['cpu_seconds']:.2f}x",
        f"- the three stages as separate commands (own processes, imports paid three times) / raw kiwi: "
        f"{p['reviews_per_second'] / k['reviews_per_second']:.2f}x wall; by CPU seconds "
        f"{k['cpu_seconds'] / p['cpu_seconds']:.2f}x",
        f"- analyze stage alone vs raw kiwi on the same normalized texts (texts/s, analysis loop only, "
        f"excl. Kiwi start-up): {a['stats']['texts_per_second']:,.0f} vs {same['stats']['texts_per_second']:,.0f}"
        f" = **{a['stats']['texts_per_second'] / same['stats']['texts_per_second']:.2f}x**",
        f"- rows after ingest/normalize: {full['ingest']['rows_out']:,} / {full['normalize']['rows_out']:,}; "
        f"morphemes per text: analyze {a['stats']['morphemes_per_text']}, raw kiwi on the same texts "
        f"{same['stats']['morphemes_per_text']} (placeholders are one morpheme), raw kiwi on raw reviews "
        f"{k['stats']['morphemes_per_text']}",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--nsmc", type=Path, default=Path(os.environ.get("KOPRETRAIN_NSMC", NSMC)))
    ap.add_argument("--record", action="store_true", help="append the result to BENCHMARKS.md")
    ap.add_argument("--part", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        if args.part == "run":
            res = part_run(args.work, args.data, args.workers)
        elif args.part.startswith("kiwi"):
            res = part_kiwi(args.data, args.workers, args.work if args.part == "kiwi_same" else None)
        else:
            res = part_stage(args.part, args.work, args.data, args.workers)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        res["maxrss_mb"] = usage.ru_maxrss / 1024
        # CPU seconds (all threads): less sensitive than wall time to other jobs on the machine.
        res["cpu_seconds"] = usage.ru_utime + usage.ru_stime
        print(json.dumps(res))
        return
    if not args.nsmc.is_file():
        raise SystemExit(f"NSMC not found: {args.nsmc}")
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        half = measure(args.rows // 2, args.workers, args.nsmc, Path(tmp))
        full = measure(args.rows, args.workers, args.nsmc, Path(tmp))
    text = report(args.rows, args.workers, full, half)
    print(text)
    if args.record:
        cmd = f".venv/bin/python benchmarks/bench_data.py --rows {args.rows} --workers {args.workers}"
        section = (f"\n## Data stages: ingest + normalize + analyze vs raw kiwipiepy "
                   f"({time.strftime('%Y-%m-%d')})\n\n`{cmd}`\n\n{text}\n")
        path = ROOT / "BENCHMARKS.md"
        if not path.exists():
            path.write_text("# Benchmarks\n", encoding="utf-8")
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(section)


if __name__ == "__main__":
    main()
