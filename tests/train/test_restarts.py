"""Restarts of stuck fine-tunes: the chance level, when the guard fires, the attempt record."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kopretrain.train.restarts import Attempt, StuckGuard, one_label_macro_f1


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


def test_attempt_record_survives_a_restart_of_the_process(tmp_path):
    first = Attempt.load(tmp_path, seed=7)
    assert (first.index, first.seed, first.history) == (0, 7, [])
    second = first.next([0.2, 0.21], minutes=3.5)
    second.save(tmp_path)
    again = Attempt.load(tmp_path, seed=7)
    assert again == second and again.seed == 1007 and again.minutes_before == 3.5
    assert again.history == [{"seed": 7, "dev_macro_f1": [0.2, 0.21], "minutes": 3.5}]
