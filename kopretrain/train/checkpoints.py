"""Which Trainer checkpoint a resumed run starts from (shared by pretrain and finetune)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def last_checkpoint(folder: str | Path, log=print) -> str | None:
    """The newest *complete and readable* ``checkpoint-N``. ``trainer_state.json`` is written last,
    so a run killed while saving leaves a folder without it, or with it half written (a SIGKILL
    during that write left it empty: the resumed run died in json.loads); a checkpoint whose safetensors files do
    not open (truncated by a full disk, a crash, a copy) is skipped too, with a message, so one bad
    file never blocks resuming from the checkpoint before it."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    done = sorted(((int(m.group(1)), p) for p in folder.iterdir()
                   if (m := CHECKPOINT_RE.match(p.name)) and (p / "trainer_state.json").is_file()), reverse=True)
    for _, path in done:
        broken = unreadable_state(path) or unreadable_weights(path)
        if broken is None:
            return str(path)
        log(f"[resume] skipping {path.name}: {broken}; falling back to the previous checkpoint")
    return None


def unreadable_state(checkpoint: Path) -> str | None:
    """Why ``trainer_state.json`` cannot be parsed (empty or cut short by a kill), or None."""
    import json

    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"trainer_state.json is unreadable ({type(exc).__name__}: {exc})"
    return None


def unreadable_weights(checkpoint: Path) -> str | None:
    """Why a checkpoint's ``*.safetensors`` files cannot be read (header and every tensor's bytes
    present), or None when they all can."""
    from safetensors import safe_open

    for path in sorted(checkpoint.rglob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as fh:
                for key in fh.keys():
                    fh.get_slice(key)
        except Exception as exc:  # noqa: BLE001 - any failure to read means: do not resume from it
            return f"{path.relative_to(checkpoint)} is unreadable ({type(exc).__name__}: {exc})"
    return None


class CheckpointExtras:
    """Trainer mixin: JSON side files (``checkpoint_extras()``: name -> data) written into each
    checkpoint *before* the Trainer's own files. The Trainer writes trainer_state.json last and a
    checkpoint with it counts as complete (:func:`last_checkpoint`), so a kill between the two must
    not leave a complete checkpoint without its side files (callbacks' ``on_save`` runs too late)."""

    def checkpoint_extras(self) -> dict[str, Any]:
        return {}

    def _save_checkpoint(self, model, trial):
        extras = self.checkpoint_extras() if self.args.should_save else {}
        if extras:
            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in extras.items():
                (folder / name).write_text(json.dumps(data))
        super()._save_checkpoint(model, trial)


class StopsWhenFinished:
    """Trainer mixin: a run resumed from a checkpoint saved as training stopped (max_steps, early
    stopping, a time budget: a kill in the closing evaluation, calibration or n-gram fit) trains no
    further batch. The checkpoint's trainer_state.json says so (its TrainerControl), but transformers
    does not act on it and takes one more batch before it checks again: the resumed run trained a step
    past --max-steps (or past the early stop) and its record differed from an uninterrupted run's.
    Both hooks are transformers internals (5.x: called once the resumed state is loaded, and per
    epoch), hence the narrow overrides."""

    _resumed_finished = False

    def _load_callback_state(self):
        super()._load_callback_state()
        control = (self.state.stateful_callbacks or {}).get("TrainerControl") or {}
        self._resumed_finished = bool((control.get("args") or {}).get("should_training_stop", False))

    def _run_epoch(self, *args, **kwargs):
        if self._resumed_finished:
            self.control.should_training_stop = True
            return None
        return super()._run_epoch(*args, **kwargs)
