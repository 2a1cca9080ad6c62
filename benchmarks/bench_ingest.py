"""Ingest throughput and memory on NSMC, against the bare cost of reading the same file.

Baseline (same run): gzip + ``json.loads`` of every line, nothing else. The ratio says what the
stage adds (validation, dedup keys, staging, split, Parquet writing, rejected.jsonl, card).
The stage runs in a child process so its peak RSS is measured alone.

    .venv/bin/python benchmarks/bench_ingest.py [--input ../shared/data/nsmc/reviews.jsonl.gz] [--max-rows N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def baseline(path: Path, max_rows: int) -> tuple[float, float, int]:
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    with gzip.open(path, "rb") as fh:
        for line in fh:
            json.loads(line)
            n += 1
            if max_rows and n >= max_rows:
                break
    return time.perf_counter() - t0, time.process_time() - c0, n


def stage(path: Path, max_rows: int) -> tuple[float, float, float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ingest"
        cmd = [sys.executable, "-m", "kopretrain", "ingest", "--input", str(path), "--label-scheme", "nsmc",
               "--max-rows", str(max_rows), "--output", str(out)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        counts = json.loads((out / "stage.json").read_text())["counts"]
    return wall, cpu, after.ru_maxrss / 1024, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default=str(ROOT.parent / "shared" / "data" / "nsmc" / "reviews.jsonl.gz"))
    ap.add_argument("--max-rows", type=int, default=0)
    args = ap.parse_args()
    path = Path(args.input)
    b_wall, b_cpu, n = baseline(path, args.max_rows)
    s_wall, s_cpu, rss, counts = stage(path, args.max_rows)
    print(f"rows read                 {n:,}")
    print(f"baseline gzip+json.loads  wall {b_wall:6.1f}s  cpu {b_cpu:6.1f}s")
    print(f"kopretrain ingest         wall {s_wall:6.1f}s  cpu {s_cpu:6.1f}s  peak RSS {rss:,.0f} MB")
    print(f"ratio ingest / baseline   wall {s_wall / b_wall:5.2f}x  cpu {s_cpu / b_cpu:5.2f}x")
    print(f"cpu per 1k rows           {1000 * s_cpu / max(n, 1) * 1000:.0f} ms")
    print(f"counts                    {counts}")


if __name__ == "__main__":
    main()
