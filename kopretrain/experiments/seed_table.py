"""Mean ± std over seeds of evaluate outputs that different commands wrote.

    .venv/bin/python -m kopretrain.experiments.seed_table \\
        --run "RTD=runs/nsmc-3class/evaluate" --run "RTD=runs/study-1ep/evaluate/rtd-all-s1" \\
        --run "scratch=runs/nsmc-scratch/evaluate" --run "scratch=runs/study-1ep/evaluate/scratch-all-s1"

study.py aggregates its own seeds; the all-labels rows in BENCHMARKS.md "Study" also have a seed
that the pipeline itself ran (seed 42), so this reads each ``metrics.json`` directly and prints one
markdown row per system: test macro-F1 / accuracy / binary accuracy (%, mean ± sample std), n, the
per-seed macro-F1s, and the TF-IDF baseline where an evaluate trained one. Runs of one system must
score the same test rows (checked), or the mean would mix test sets.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kopretrain.experiments.study_report import _mean_std


def _read(evaluate_dir: str) -> dict:
    path = Path(evaluate_dir) / "metrics.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (is {evaluate_dir} a finished evaluate output?)")
    return json.loads(path.read_text())


def _stat(values: list[float]) -> str:
    mean, std = _mean_std(values)
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def rows(runs: list[tuple[str, str]]) -> list[dict]:
    """One summary per system, in first-seen order."""
    by_system: dict[str, list[tuple[str, dict]]] = {}
    for system, directory in runs:
        by_system.setdefault(system, []).append((directory, _read(directory)))
    out = []
    for system, metrics in by_system.items():
        test_sizes = {(m["split"], m["n"]) for _, m in metrics}
        if len(test_sizes) > 1:
            raise SystemExit(f"{system}: runs score different test sets {sorted(test_sizes)}: "
                             + ", ".join(d for d, _ in metrics))
        models = [m["model"] for _, m in metrics]
        baselines = [m["baseline"] for _, m in metrics if m.get("baseline")]
        out.append({
            "system": system, "n": len(models),
            "macro_f1": [m["macro_f1"] for m in models],
            "accuracy": [m["accuracy"] for m in models],
            "binary": [m["binary"]["accuracy"] for m in models if m.get("binary")],
            "baseline_macro_f1": [b["macro_f1"] for b in baselines],
        })
    return out


def table(summaries: list[dict]) -> str:
    lines = ["| system | seeds | macro-F1 | accuracy | binary | per seed (macro-F1) |", "|---|---|---|---|---|---|"]
    for s in summaries:
        seeds = " / ".join(f"{100 * v:.2f}" for v in s["macro_f1"])
        binary = _stat(s["binary"]) if s["binary"] else "–"
        lines.append(f"| {s['system']} | {s['n']} | {_stat(s['macro_f1'])} | {_stat(s['accuracy'])} | {binary} | {seeds} |")
    baselines = sorted({round(100 * v, 2) for s in summaries for v in s["baseline_macro_f1"]})
    if baselines:
        lines.append(f"\nTF-IDF baseline trained by these evaluates: macro-F1 {', '.join(map(str, baselines))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="SYSTEM=EVALUATE_DIR",
                        help="one seed of one system (repeat; runs with the same SYSTEM are its seeds)")
    args = parser.parse_args(argv)
    runs = []
    for spec in args.run:
        system, sep, directory = spec.partition("=")
        if not sep or not system or not directory:
            parser.error(f"--run {spec!r}: expected SYSTEM=EVALUATE_DIR")
        runs.append((system, directory))
    print(table(rows(runs)))


if __name__ == "__main__":
    main()
