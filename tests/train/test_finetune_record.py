"""What finetune records about its base model (stage.json stats, read by provenance and cards)."""

from __future__ import annotations

import json

from kopretrain.finetune import FinetuneConfig
from kopretrain.runs.config import from_dict
from kopretrain.runs.registry import execute

FAST = dict(max_steps=2, eval_steps=2, batch_size=16, lr=3e-3, precision="fp32", logging_steps=10,
            early_stopping_patience=0)


def test_a_hub_model_records_its_commit_and_brings_its_preparation(workdir, tmp_path, monkeypatch):
    """--model OWNER/NAME --revision: the commit it resolved to is recorded (provenance and cards read
    it), and its kopretrain.json is read from the Hub like a local folder's."""
    import shutil

    from tests.fixtures.hub import fake_hub

    sha = "c" * 40
    from kopretrain.text.textprep import TextPrep

    snapshot = fake_hub(monkeypatch, tmp_path / "hub", "me/pre", sha)
    shutil.copytree(workdir / "pre", snapshot)
    TextPrep(normalize={"max_repeat": 3}).save(snapshot)  # what a released kopretrain model carries
    cfg = from_dict(FinetuneConfig, {"model": "me/pre", "revision": sha, "data": str(workdir / "data"),
                                     **FAST})
    stats = json.loads((execute("finetune", cfg, tmp_path / "out") / "stage.json").read_text())["stats"]
    assert stats["base_commit"] == sha
    assert stats["textprep_source"].startswith("me/pre/kopretrain.json")
    assert json.loads((tmp_path / "out" / "kopretrain.json").read_text())["normalize"] == {"max_repeat": 3}
