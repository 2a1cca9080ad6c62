"""Wall-clock budgets: the schedule follows the clock, stops at the deadline, and resumes its clock."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from kopretrain.train import budget as B


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_warmup_then_linear_decay_to_zero_at_the_deadline(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(B.time, "monotonic", clock)
    budget = B.TimeBudget(minutes=10, warmup=0.1)
    args, state, control = None, SimpleNamespace(global_step=0), SimpleNamespace(should_training_stop=False)
    budget.on_train_begin(args, state, control)
    factors = []
    for minute in (0, 0.5, 1, 5.5, 9.9, 10, 12):
        clock.now = 1000.0 + 60 * minute
        budget.on_step_begin(args, state, control)
        factors.append(round(budget.lr_factor(), 4))
        budget.on_step_end(args, state, control)
        assert control.should_training_stop == (minute >= 10)
    assert factors == [0.0, 0.5, 1.0, 0.5, 0.0111, 0.0, 0.0]
    assert budget.record()["stopped_by_time"] is True
    budget.on_train_end(args, state, control)
    clock.now += 300  # work after training (the n-gram expert's fit) is not budget time
    assert budget.record()["spent_minutes"] == 12.0


def test_a_step_cap_that_comes_first_decays_the_rate_to_zero(monkeypatch):
    """--max-minutes 2 over a 9-second epoch ended at the peak rate: the schedule now decays toward
    whichever end comes first, the deadline or the run's last step."""
    import torch

    clock = Clock()
    monkeypatch.setattr(B.time, "monotonic", clock)
    budget = B.TimeBudget(minutes=2, warmup=0.1)
    budget.on_train_begin(None, SimpleNamespace(global_step=0), SimpleNamespace(should_training_stop=False))
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = budget.scheduler(optimizer, total_steps=10)
    rates = []
    for _ in range(10):
        clock.now += 0.9  # 9 seconds in all: 7.5% of the budget
        budget.tick()
        optimizer.step()
        scheduler.step()
        rates.append(round(optimizer.param_groups[0]["lr"], 3))
    assert rates[0] > rates[5] > rates[8] and rates[-1] == 0.0
    assert budget.lr_factor(step=5) == pytest.approx(0.5 / 0.9)  # halfway by steps
    assert B.TimeBudget(minutes=2, warmup=0.1).lr_factor() == 0.0  # without a cap: the clock alone


def test_a_step_that_ends_past_the_deadline_is_the_last(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(B.time, "monotonic", clock)
    budget = B.TimeBudget(minutes=1, warmup=0.1)
    args, state, control = None, SimpleNamespace(global_step=0), SimpleNamespace(should_training_stop=False)
    budget.on_train_begin(args, state, control)
    clock.now += 50
    budget.on_step_begin(args, state, control)  # starts inside the budget...
    clock.now += 20
    budget.on_step_end(args, state, control)  # ...ends 10 s past it: no further step at a stale rate
    assert control.should_training_stop and budget.lr_factor() == 0.0


def test_a_resumed_run_continues_the_clock(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(B.time, "monotonic", clock)
    first = B.TimeBudget(minutes=10, warmup=0.0)
    args, control = SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(should_training_stop=False)
    first.on_train_begin(args, None, control)
    clock.now += 240  # killed after 4 minutes, right after checkpoint-7 was saved
    first.save(tmp_path / "checkpoint-7")
    assert json.loads((tmp_path / "checkpoint-7" / B.BUDGET_FILE).read_text())["spent_seconds"] == pytest.approx(240)
    again = B.TimeBudget.resumed(10, 0.0, tmp_path / "checkpoint-7")
    again.on_train_begin(args, None, control)
    clock.now += 60
    again.on_step_begin(args, None, control)
    assert again.fraction() == pytest.approx(0.5) and again.lr_factor() == pytest.approx(0.5)
    assert B.TimeBudget.resumed(10, 0.0, None).spent_before == 0.0


def test_finetune_with_a_budget_stops_on_time_with_a_decayed_rate(tmp_path, monkeypatch):
    from transformers import TrainerState

    from kopretrain.finetune import FinetuneConfig
    from kopretrain.runs.config import from_dict
    from kopretrain.runs.registry import execute
    from tests.fixtures.sentiment import make_model, write_data

    # a checkpoint is complete once trainer_state.json exists: the clock must be in it by then
    clock_saved, save = [], TrainerState.save_to_json
    monkeypatch.setattr(TrainerState, "save_to_json", lambda self, path: (
        clock_saved.append((Path(path).parent / B.BUDGET_FILE).is_file()), save(self, path))[1])
    write_data(tmp_path / "data")
    make_model(tmp_path / "pre", kind="bert")
    cfg = from_dict(FinetuneConfig, {"model": str(tmp_path / "pre"), "data": str(tmp_path / "data"), "epochs": 10_000,
                                     "max_minutes": 0.05, "eval_steps": 1_000_000, "logging_steps": 1, "batch_size": 16,
                                     "lr": 1e-3, "precision": "fp32", "early_stopping_patience": 0})
    out = execute("finetune", cfg, tmp_path / "out")
    stats = json.loads((out / "stage.json").read_text())["stats"]
    assert stats["time_budget"]["stopped_by_time"] is True
    assert 0.05 <= stats["time_budget"]["spent_minutes"] < 0.5
    history = json.loads((out / "dev_metrics.json").read_text())
    assert stats["global_steps"] < 10_000 and history["dev_examples"] > 0
    # The last, fully decayed weights were evaluated and could be selected, though no eval step fell there.
    assert [h["step"] for h in history["history"]] == [stats["global_steps"]]
    assert history["selected_step"] == stats["global_steps"]
    assert clock_saved and all(clock_saved)
