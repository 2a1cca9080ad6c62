"""kopretrain.experiments.study_compare: variants side by side, the dev-selected pick never reads test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kopretrain.experiments import study_compare as compare

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.experiments


def _row(system, budget, test, dev, n=3, std=0.01):
    return {"system": system, "budget": budget, "n": n, "macro_f1": test, "macro_f1_std": std, "dev_macro_f1": dev}


def test_table_picks_by_dev_not_test(tmp_path, capsys):
    (tmp_path / "study.json").write_text(json.dumps({"rows": [
        _row("baseline", 1000, 0.40, None), _row("rtd", 1000, 0.50, 0.30), _row("mlm", 1000, 0.41, 0.45)]}))
    (tmp_path / "study-fast.json").write_text(json.dumps({"rows": [
        _row("baseline", 1000, 0.40, None), _row("rtd", 1000, 0.35, 0.40, n=2)]}))
    text = compare.main(["--workdir", str(tmp_path), "--variants", "A=,B=fast", "--labels", "B=lr 5e-4"])
    assert text in capsys.readouterr().out
    lines = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()[2:]}
    # RTD: B has the better dev score (40 vs 30), so B's *lower* test score is reported
    assert lines["RTD-pretrained"].endswith("| B: 35.00 |") and "35.00 ± 1.00 (n=2)" in lines["RTD-pretrained"]
    assert lines["MLM-pretrained"].endswith("| A: 41.00 |") and "| – |" in lines["MLM-pretrained"]
    assert "| A: A | B: lr 5e-4 |" in text.splitlines()[0].replace("labels | ", "")
    with pytest.raises(SystemExit, match="study-missing.json"):
        compare.main(["--workdir", str(tmp_path), "--variants", "A=missing"])
