"""kopretrain.experiments.probe: frozen-feature probes and the TF-IDF reference on clear-sentiment fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kopretrain.experiments import probe
from tests.fixtures.sentiment import make_model, write_data

ROOT = Path(__file__).resolve().parent.parent.parent


pytestmark = pytest.mark.experiments


def test_features_ignore_padding(tmp_path):
    model = make_model(tmp_path / "m", kind="electra")
    texts = ["이 영화 정말 최고다", "최악", "스토리 그냥 그럭저럭 보통이다 평범한 편"]
    together = probe.features(model, texts, batch_size=3)  # padded to the longest
    alone = [probe.features(model, [t], batch_size=1) for t in texts]  # no padding at all
    for kind in ("cls", "mean"):
        for i in range(len(texts)):
            assert abs(together[kind][i] - alone[i][kind][0]).max() < 1e-4, (kind, i)


def test_probe_on_fixture_splits(tmp_path):
    data = write_data(tmp_path / "data", n_train=150, n_test=60)
    model = make_model(tmp_path / "m", kind="electra")
    out = tmp_path / "probe.json"
    result = probe.main(["--data", str(data), "--models", f"rand={model}", "--budgets", "30,150",
                         "--test-rows", "0", "--seeds", "1,2", "--out", str(out)])
    assert json.loads(out.read_text()) == result and result["test_rows"] == 60
    cells = {(r["system"], r["features"], r["budget"], r["seed"]) for r in result["rows"]}
    assert cells == {(s, f, b, seed) for s, f in (("tfidf", "char 1-3"), ("rand", "cls"), ("rand", "mean"))
                     for b in (30, 150) for seed in (1, 2)}
    # the fixture phrases are unambiguous: character n-grams separate them perfectly
    assert all(r["macro_f1"] == 1.0 for r in result["rows"] if r["system"] == "tfidf" and r["budget"] == 150)
    assert all(0.0 <= r["macro_f1"] <= 1.0 for r in result["rows"])
