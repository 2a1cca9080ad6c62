"""Which checkpoint a resumed run starts from: the newest one that was written completely."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

from kopretrain.train.checkpoints import last_checkpoint


def _checkpoint(folder, step: int, state: str | None = "{}"):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, str(path / "model.safetensors"))
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_the_newest_complete_checkpoint_is_chosen(tmp_path):
    _checkpoint(tmp_path, 4, json.dumps({"global_step": 4}))
    good = _checkpoint(tmp_path, 8, json.dumps({"global_step": 8}))
    _checkpoint(tmp_path, 12, state=None)  # killed before trainer_state.json was written
    assert last_checkpoint(tmp_path) == str(good)


def test_a_half_written_trainer_state_is_skipped(tmp_path):
    """A SIGKILL during the write of trainer_state.json leaves it empty or cut short."""
    good = _checkpoint(tmp_path, 4, json.dumps({"global_step": 4}))
    _checkpoint(tmp_path, 8, state="")
    _checkpoint(tmp_path, 12, state='{"global_step": 1')
    said = []
    assert last_checkpoint(tmp_path, log=said.append) == str(good)
    assert len(said) == 2 and all("trainer_state.json is unreadable" in m for m in said)


def test_a_run_killed_after_training_resumes_without_training_more(tmp_path, monkeypatch):
    """A kill in the closing evaluation (or calibration, or the n-gram fit) left a checkpoint at
    --max-steps; the rerun took one more batch (global step 7 of 6, an extra dev evaluation) and,
    with early stopping, trained on past the stop. Now it picks up where training ended."""
    import pytest
    from safetensors.torch import load_file

    from kopretrain import finetune as F
    from kopretrain.train import restarts
    from kopretrain.runs.config import from_dict
    from kopretrain.runs.registry import execute
    from tests.fixtures.sentiment import finetune_workdir

    root = finetune_workdir(tmp_path)
    cfg = from_dict(F.FinetuneConfig, {"model": str(root / "pre"), "data": str(root / "data"), "max_steps": 6,
                                       "eval_steps": 3, "batch_size": 16, "lr": 3e-3, "precision": "fp32",
                                       "early_stopping_patience": 0, "report_to": "none"})
    straight = execute("finetune", cfg, tmp_path / "straight")
    real = restarts.warn_if_single_class  # runs right after training: a kill there

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed after training")

    monkeypatch.setattr(restarts, "warn_if_single_class", killed)
    with pytest.raises(KeyboardInterrupt):
        execute("finetune", cfg, tmp_path / "killed")
    monkeypatch.setattr(restarts, "warn_if_single_class", real)
    out = execute("finetune", cfg, tmp_path / "killed")
    record, first = (json.loads((d / "stage.json").read_text()) for d in (out, straight))
    assert record["resumed"] and record["stats"]["global_steps"] == first["stats"]["global_steps"] == 6
    history = [json.loads((d / "dev_metrics.json").read_text())["history"] for d in (out, straight)]
    assert [h["step"] for h in history[0]] == [h["step"] for h in history[1]] == [3, 6]
    a, b = load_file(str(out / "model.safetensors")), load_file(str(straight / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
