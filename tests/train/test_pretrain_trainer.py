"""The pretrain Trainer's progress bar is the Trainer's own ProgressCallback with a loss/tokens postfix."""

from __future__ import annotations

from transformers import ProgressCallback, TrainerState

from kopretrain.train.pretrain_trainer import Progress


def test_progress_is_the_trainers_bar_with_loss_and_tokens(capsys):
    state = TrainerState(max_steps=5, is_world_process_zero=True)
    bar = Progress()
    assert isinstance(bar, ProgressCallback)
    bar.on_train_begin(None, state, None)
    state.global_step = 2
    bar.on_step_end(None, state, None)
    bar.on_log(None, state, None, logs={"loss": 1.23456, "tokens_per_s": 12345.6})
    assert bar.training_bar.n == 2 and bar.training_bar.postfix == "loss=1.235, tok/s=12,346"
    bar.on_log(None, state, None, logs={"eval_perplexity": 17.0, "eval_runtime": 1.0})
    bar.on_train_end(None, state, None)
    assert "step 2: eval {'perplexity': 17.0}" in capsys.readouterr().out
