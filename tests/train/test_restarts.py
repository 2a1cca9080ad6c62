"""Restarts of stuck fine-tunes: the chance level, when the guard fires, the attempt record."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from kopretrain.finetune import FinetuneConfig
from kopretrain.runs.config import from_dict
from kopretrain.runs.registry import execute
from kopretrain.train.restarts import Attempt, StuckGuard, one_label_macro_f1
from tests.fixtures.sentiment import FAST, stuck_model


def test_one_label_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    labels = [0] * 5 + [1] * 3 + [2] * 12
    assert one_label_macro_f1(labels) == pytest.approx(f1_score(labels, [2] * 20, average="macro"))
    assert one_label_macro_f1([1, 1, 2, 2]) == pytest.approx(f1_score([1, 1, 2, 2], [1] * 4, average="macro"))


def _evaluate(guard: StuckGuard, scores: list[float]) -> SimpleNamespace:
    state = SimpleNamespace(log_history=[{"loss": 1.1}] + [{"eval_macro_f1": s} for s in scores])
    control = SimpleNamespace(should_training_stop=False)
    guard.on_evaluate(None, state, control)
    return control


def test_guard_stops_only_when_the_first_evaluations_all_sit_at_chance():
    labels = [0] * 10 + [1] * 10 + [2] * 20  # one label everywhere: macro-F1 0.222
    chance = one_label_macro_f1(labels)
    stuck = StuckGuard(labels)
    assert not _evaluate(stuck, [chance]).should_training_stop  # one evaluation is not enough
    assert _evaluate(stuck, [chance, chance + 0.04]).should_training_stop and stuck.stuck
    learning = StuckGuard(labels)
    assert not _evaluate(learning, [chance, chance + 0.06]).should_training_stop and not learning.stuck
    late = StuckGuard(labels)  # only the first evaluations count: a late dip is not a stuck seed
    assert not _evaluate(late, [0.5, 0.6, chance, chance]).should_training_stop


def test_guard_judges_a_resumed_run_on_its_first_evaluations(capsys):
    """Killed after the guard stopped it, a run resumes from the checkpoint of that evaluation
    (saved after the decision): it is stopped again at once, and later evaluations (a third, or
    the closing one) neither let it through nor repeat the message."""
    labels = [0] * 10 + [1] * 10 + [2] * 20
    chance = one_label_macro_f1(labels)
    resumed = StuckGuard(labels)
    state = SimpleNamespace(log_history=[{"eval_macro_f1": chance}, {"eval_macro_f1": chance}])
    control = SimpleNamespace(should_training_stop=False)
    resumed.on_train_begin(None, state, control)
    assert control.should_training_stop and resumed.stuck
    assert _evaluate(StuckGuard(labels), [chance, chance, 0.9]).should_training_stop
    _evaluate(resumed, [chance, chance, chance])
    assert capsys.readouterr().out.count("stuck at chance") == 2  # one per guard


def test_attempt_record_survives_a_restart_of_the_process(tmp_path):
    first = Attempt.load(tmp_path, seed=7)
    assert (first.index, first.seed, first.history) == (0, 7, [])
    second = first.next([0.2, 0.21], minutes=3.5)
    second.save(tmp_path)
    again = Attempt.load(tmp_path, seed=7)
    assert again == second and again.seed == 1007 and again.minutes_before == 3.5
    assert again.history == [{"seed": 7, "dev_macro_f1": [0.2, 0.21], "minutes": 3.5}]
    assert again.fresh and not first.fresh  # a restart not begun yet: the folder's checkpoints are seed 7's


def test_the_time_budget_record_covers_every_attempt():
    last = {"max_minutes": 6.0, "warmup": 0.1, "spent_minutes": 5.5, "stopped_by_time": True}
    whole = Attempt(index=1, seed=1007, minutes_before=4.0).whole_budget(last)
    assert (whole["max_minutes"], whole["spent_minutes"], whole["last_attempt_minutes"]) == (10.0, 9.5, 5.5)
    assert Attempt(seed=7).whole_budget(last) == last and Attempt(seed=7).whole_budget(None) is None


# ---- end to end through the finetune stage

def test_a_fine_tune_stuck_on_one_label_is_said_and_recorded(workdir, tmp_path, capsys):
    """A classifier whose head always says "positive" and barely trains (the stalled continued
    checkpoints of BENCHMARKS.md): finetune warns and records single_class; a normal run does not;
    evaluate's report says so too."""
    from kopretrain.evaluate import EvaluateConfig

    stuck_start = stuck_model(tmp_path / "stuck-start")
    cfg = {"model": str(stuck_start), "data": str(workdir / "data"), **FAST, "max_steps": 2, "eval_steps": 2,
           "lr": 1e-9}
    out = execute("finetune", from_dict(FinetuneConfig, cfg), tmp_path / "stuck")
    assert json.loads((out / "stage.json").read_text())["stats"]["single_class"] is True
    assert "predicts one label for every dev row" in capsys.readouterr().out
    evaluated = execute("evaluate", from_dict(EvaluateConfig, {"model": str(out), "data": str(workdir / "data"),
                                                               "baseline": False, "precision": "fp32"}),
                        tmp_path / "stuck-eval")
    notes = json.loads((evaluated / "metrics.json").read_text())["notes"]
    assert any("labels every row positive" in n for n in notes)
    assert "labels every row" in (evaluated / "report.md").read_text()


def test_restarts_try_other_seeds_while_stuck_on_the_same_rows(workdir, tmp_path, capsys):
    """--restarts 2 on a head stuck at chance: seeds 42 and 1042 are stopped after 2 dev evaluations
    and recorded, seed 2042 (the last) trains to the end; a fine-tune that learns is never restarted."""
    cfg = {"model": str(stuck_model(tmp_path / "stuck-start")), "data": str(workdir / "data"), **FAST,
           "max_steps": 12, "eval_steps": 2, "lr": 1e-9, "restarts": 2, "max_minutes": 30}
    out = execute("finetune", from_dict(FinetuneConfig, cfg), tmp_path / "stuck")
    stats = json.loads((out / "stage.json").read_text())["stats"]
    assert [a["seed"] for a in stats["restarted"]] == [42, 1042] and stats["seed_used"] == 2042
    budget = stats["time_budget"]  # the whole fine-tune's, not only the last attempt's
    assert budget["max_minutes"] == 30
    assert budget["spent_minutes"] == pytest.approx(
        sum(a["minutes"] for a in stats["restarted"]) + budget["last_attempt_minutes"], abs=0.002)
    assert all(len(a["dev_macro_f1"]) == 2 for a in stats["restarted"])
    assert stats["global_steps"] == 12  # the last attempt ran to the end
    assert "restart 2 of 2: seed 2042" in capsys.readouterr().out
    assert not (out / "checkpoints").exists()
    learns = {"model": str(workdir / "pre"), "data": str(workdir / "data"), **FAST, "eval_steps": 20, "restarts": 2}
    fine = execute("finetune", from_dict(FinetuneConfig, learns), tmp_path / "learns")
    stats = json.loads((fine / "stage.json").read_text())["stats"]
    assert stats["restarted"] == [] and stats["seed_used"] == 42 and stats["global_steps"] == 40
