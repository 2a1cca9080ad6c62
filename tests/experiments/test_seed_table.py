"""kopretrain.experiments.seed_table: seeds written by different commands, averaged per system."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kopretrain.experiments import seed_table

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.experiments


def _evaluate(tmp_path: Path, name: str, f1: float, acc: float, *, n: int = 100, baseline: float | None = None) -> str:
    out = tmp_path / name
    out.mkdir()
    metrics = {"split": "test", "n": n,
               "model": {"macro_f1": f1, "accuracy": acc, "binary": {"n": 80, "accuracy": acc + 0.1}},
               "baseline": {"macro_f1": baseline, "accuracy": 0.7} if baseline is not None else None}
    (out / "metrics.json").write_text(json.dumps(metrics))
    return str(out)


def test_mean_and_sample_std_per_system(tmp_path, capsys):
    a = _evaluate(tmp_path, "rtd-42", 0.60, 0.70, baseline=0.66)
    b = _evaluate(tmp_path, "rtd-1", 0.64, 0.72)
    c = _evaluate(tmp_path, "mlm-42", 0.62, 0.71)
    seed_table.main(["--run", f"RTD={a}", "--run", f"MLM={c}", "--run", f"RTD={b}"])
    lines = capsys.readouterr().out.splitlines()
    rtd = next(line for line in lines if line.startswith("| RTD"))
    # mean 62.00, sample std of (60, 64) = 2.83; binary = accuracy + 10 points
    assert rtd == "| RTD | 2 | 62.00 ± 2.83 | 71.00 ± 1.41 | 81.00 ± 1.41 | 60.00 / 64.00 |"
    assert next(line for line in lines if line.startswith("| MLM")) == "| MLM | 1 | 62.00 | 71.00 | 81.00 | 62.00 |"
    assert lines.index(rtd) < next(i for i, line in enumerate(lines) if line.startswith("| MLM"))
    assert lines[-1] == "TF-IDF baseline trained by these evaluates: macro-F1 66.0"


def test_refuses_to_average_different_test_sets(tmp_path):
    a = _evaluate(tmp_path, "a", 0.6, 0.7, n=100)
    b = _evaluate(tmp_path, "b", 0.6, 0.7, n=99)
    with pytest.raises(SystemExit, match="different test sets"):
        seed_table.main(["--run", f"RTD={a}", "--run", f"RTD={b}"])


def test_missing_output_and_bad_spec_are_named(tmp_path):
    with pytest.raises(SystemExit, match="not-there/metrics.json: not found"):
        seed_table.main(["--run", f"RTD={tmp_path / 'not-there'}"])
    with pytest.raises(SystemExit):
        seed_table.main(["--run", "no-equals-sign"])
