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
