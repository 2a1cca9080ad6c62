"""Wall-clock training budgets: the learning-rate schedule is laid over minutes, not steps.

Izsak et al. 2021 ("How to Train BERT with an Academic Budget"): warm up over the first share of the
*time*, decay linearly to zero exactly at the deadline, and stop there. A run then ends on time with
a decayed rate on any machine, fast or slow, alone or shared, which a step-based schedule cannot
promise. The price is bit-for-bit repeatability: how many steps fit depends on the machine.

A killed run resumes with the budget it had left: every checkpoint records the seconds spent so far
(``time_budget.json``), and the resumed run starts its clock there.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from kopretrain.train.checkpoints import CheckpointExtras

BUDGET_FILE = "time_budget.json"


class TimeBudget(TrainerCallback):
    """Callback + schedule: ``lr_factor()`` for the scheduler, a stop at the deadline."""

    def __init__(self, minutes: float, warmup: float, spent_seconds: float = 0.0):
        if minutes <= 0 or not 0 <= warmup < 1:
            raise ValueError(f"time budget: minutes must be > 0 and warmup in [0, 1), got {minutes}, {warmup}")
        self.seconds = minutes * 60.0
        self.warmup = warmup
        self.spent_before = spent_seconds
        self._t0: float | None = None
        self._ended: float | None = None  # the clock stops with training
        self._now = spent_seconds
        self.stopped_by_time = False
        self.total_steps = 0  # the run's step cap, set with the scheduler

    @classmethod
    def resumed(cls, minutes: float, warmup: float, checkpoint: str | Path | None) -> "TimeBudget":
        """A budget that continues the clock of ``checkpoint`` (a fresh one without it)."""
        spent = 0.0
        if checkpoint and (Path(checkpoint) / BUDGET_FILE).is_file():
            spent = float(json.loads((Path(checkpoint) / BUDGET_FILE).read_text())["spent_seconds"])
        return cls(minutes, warmup, spent)

    # ------------------------------------------------------------------ the clock
    def spent(self) -> float:
        if self._ended is not None:
            return self._ended
        running = time.monotonic() - self._t0 if self._t0 is not None else 0.0
        return self.spent_before + running

    def fraction(self) -> float:
        """Share of the budget used, as of the last tick (step start and end; the same on every rank)."""
        return min(1.0, self._now / self.seconds)

    def lr_factor(self, step: int | None = None) -> float:
        """Linear warmup over the first ``warmup`` of the time, then linear decay to 0 at the deadline;
        or at the step cap (``total_steps``: epochs or max_steps), when that ends the run sooner: a
        2-minute budget over a 9-second epoch stopped at its peak rate, never annealed."""
        f = self.fraction()
        if step is not None and self.total_steps > 0:
            f = max(f, min(1.0, step / self.total_steps))
        if f < self.warmup:
            return f / self.warmup
        return max(0.0, (1.0 - f) / (1.0 - self.warmup))

    def tick(self) -> None:
        """Read the clock once per step. Under DDP the ranks agree on the slowest rank's time, so
        they use the same learning rate and stop at the same step (a rank that stopped alone would
        leave the others waiting in an all-reduce)."""
        now = self.spent()
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            import torch

            t = torch.tensor([now], dtype=torch.float64)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            now = float(t.item())
        self._now = now

    def scheduler(self, optimizer, total_steps: int = 0):
        from torch.optim.lr_scheduler import LambdaLR

        self.total_steps = total_steps
        # A plain function (not a bound method): LambdaLR then keeps no state for it in checkpoints
        # (its step count is restored with the scheduler's own state on resume).
        return LambdaLR(optimizer, lambda step: self.lr_factor(step))

    def record(self) -> dict[str, Any]:
        return {"max_minutes": round(self.seconds / 60, 3), "warmup": self.warmup,
                "spent_minutes": round(self.spent() / 60, 3), "stopped_by_time": self.stopped_by_time}

    # ------------------------------------------------------------------ callback
    def on_train_begin(self, args, state, control, **kwargs):
        self._t0, self._ended = time.monotonic(), None

    def on_step_begin(self, args, state, control, **kwargs):
        self.tick()

    def on_train_end(self, args, state, control, **kwargs):
        # What the stage does after training (e.g. fitting --ngram-blend's n-gram expert: ~5 minutes
        # on all NSMC rows) is not training time: stage.json's spent_minutes stops here.
        self._ended = self.spent()

    def on_step_end(self, args, state, control, **kwargs):
        self.tick()  # the clock as the step ends: a step that ended past the deadline is the last one
        if self.fraction() >= 1.0:
            self.stopped_by_time = True
            control.should_training_stop = True
            # As transformers does on reaching max_steps (DefaultFlowCallback): evaluate and save the
            # last weights. They are the fully decayed ones the schedule aims at; without this a
            # run stopped between eval steps threw them away unseen (nsmc-3class: its last 759 steps).
            if getattr(args, "eval_strategy", "no") == "steps":  # str enums: IntervalStrategy.STEPS == "steps"
                control.should_evaluate = True
            if getattr(args, "save_strategy", "no") == "steps":
                control.should_save = True

    def save(self, folder: str | Path) -> None:
        """Record the time spent in a checkpoint folder (:meth:`resumed` reads it)."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / BUDGET_FILE).write_text(json.dumps(self.state()))

    def state(self) -> dict[str, float]:
        return {"spent_seconds": self.spent()}


class BudgetedScheduler(CheckpointExtras):
    """Mixin for a ``Trainer`` subclass: with ``budget=TimeBudget(...)`` the learning rate follows
    the budget instead of ``lr_scheduler_type`` (``create_scheduler`` is the Trainer's public hook)."""

    budget: TimeBudget | None = None

    def checkpoint_extras(self) -> dict:
        # in each checkpoint before trainer_state.json: a resumed run continues this clock instead of
        # starting a full budget again (CheckpointExtras)
        extras = super().checkpoint_extras()
        return {**extras, BUDGET_FILE: self.budget.state()} if self.budget is not None else extras

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.budget is None:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            self.lr_scheduler = self.budget.scheduler(optimizer if optimizer is not None else self.optimizer,
                                                      num_training_steps)
            self._created_lr_scheduler = True
        return self.lr_scheduler
