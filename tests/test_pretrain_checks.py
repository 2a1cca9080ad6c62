"""pretrain refuses what would silently do nothing or nonsense: options that do not go together,
broken checkpoints, a generator of another vocabulary, morpheme words without analyze's columns."""

from __future__ import annotations

import pytest

from kopretrain.pretrain import PretrainConfig
from kopretrain.runs import registry
from tests.fixtures.pretrain import write_checkpoint, write_data_stage, write_tokenizer_dir
from tests.test_pretrain import inputs, tiny  # noqa: F401 - inputs: a fixture

@pytest.mark.parametrize("options, message", [
    ({"checkpoint": "some/model"}, "--checkpoint: only with --init checkpoint"),
    ({"init": "checkpoint", "checkpoint": "c", "tokenizer": "checkpoint", "preset": "base"},
     "--preset: the checkpoint decides the architecture"),
    ({"rtd_weight": 10.0}, "--rtd-weight: only with --objective rtd"),
    ({"objective": "mlm", "word_level": "morpheme"}, "--word-level: only with --objective wwm"),
    ({"lr_scheduler": "cosine", "max_minutes": 5}, "--lr-scheduler cosine with --max-minutes"),
    ({"epochs": 0}, "--epochs must be > 0"), ({"max_steps": -3}, "--max-steps must be >= 0"), ({"lr": -1}, "--lr must be >= 0"),
    ({"hidden_size": 30, "heads": 4}, "--hidden-size 30 is not divisible by --heads 4"),
    ({"objective": "rtd", "init": "checkpoint", "checkpoint": "c", "tokenizer": "checkpoint",
      "generator_size_ratio": 2.0}, "--generator-size-ratio must be in"),
    ({"init": "checkpoint", "checkpoint": "c", "tokenizer": "checkpoint", "lr": 0, "head_lr": 1e-3,
      "head_warmup_steps": 5}, "--head-lr with --lr 0"),  # crashed dividing by --lr
    ({"objective": "rtd", "init": "checkpoint", "checkpoint": "c", "tokenizer": "checkpoint", "generator_checkpoint": "g",
      "generator_size_ratio": 0.5}, "--generator-size-ratio: the generator comes from --generator-checkpoint"),
    ({"objective": "rtd", "init": "checkpoint", "checkpoint": "c", "tokenizer": "checkpoint", "generator_checkpoint": "g",
      "generator_init": "fresh"}, "--generator-init: the generator comes from"),
    ({"objective": "rtd", "init": "checkpoint", "checkpoint": "c", "tokenizer": "checkpoint",
      "generator_revision": "v1"}, "--generator-revision pins --generator-checkpoint"),
])
def test_options_that_do_nothing_together_are_config_errors(options, message):
    """Each was accepted and ignored (--checkpoint without --init checkpoint trained from scratch)."""
    with pytest.raises(ValueError, match=message):
        PretrainConfig(**{"input": "x", "tokenizer": "t", **options})


def test_broken_checkpoints_are_clear_errors(inputs, tmp_path):
    """A folder without tokenizer files trained on all-[UNK] text and exited 0; a truncated
    safetensors file and a missing folder gave tracebacks or a Hub-id message."""
    import shutil

    from kopretrain.runs.records import StageError

    ckpt = write_checkpoint(tmp_path / "bert", "bert", inputs[1])
    notok = tmp_path / "notok"
    notok.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(ckpt / name, notok / name)
    base = dict(init="checkpoint", tokenizer="checkpoint", max_steps=1)
    with pytest.raises(StageError, match="tokenizer files missing"):
        registry.execute("pretrain", tiny(inputs, checkpoint=str(notok), **base), tmp_path / "o1")
    truncated = tmp_path / "truncated"
    shutil.copytree(ckpt, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(StageError, match="cannot load safetensors weights"):
        registry.execute("pretrain", tiny(inputs, checkpoint=str(truncated), **base), tmp_path / "o2")
    with pytest.raises(StageError, match="--checkpoint .*missing: model directory not found"):
        registry.execute("pretrain", tiny(inputs, checkpoint=str(tmp_path / "missing"), **base), tmp_path / "o3")


def test_roberta_positions_hold_max_position_embeddings_minus_the_offset():
    from transformers import BertConfig, XLMRobertaConfig

    from kopretrain.hub.loading import usable_positions

    assert usable_positions(XLMRobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert usable_positions(BertConfig(max_position_embeddings=512)) == 512


def test_a_generator_of_another_vocabulary_or_family_is_refused(inputs, tmp_path):
    """It was resized to the discriminator's vocabulary and trained with ids meaning other tokens."""
    from kopretrain.runs.records import StageError

    disc = write_checkpoint(tmp_path / "disc", "electra-disc", inputs[1])
    bert = write_checkpoint(tmp_path / "bert", "bert", inputs[1])
    cfg = tiny(inputs, objective="rtd", init="checkpoint", checkpoint=str(disc), tokenizer="checkpoint",
               generator_checkpoint=str(bert), max_steps=1)
    with pytest.raises(StageError, match="a generator must share its vocabulary"):
        registry.execute("pretrain", cfg, tmp_path / "out")


def test_a_revision_for_a_local_generator_folder_is_refused(inputs, tmp_path):
    """It was accepted and recorded in stage.json as if applied."""
    from kopretrain.runs.records import StageError

    disc = write_checkpoint(tmp_path / "disc", "electra-disc", inputs[1])
    gen = write_checkpoint(tmp_path / "gen", "electra-gen", inputs[1])
    cfg = tiny(inputs, objective="rtd", init="checkpoint", checkpoint=str(disc), tokenizer="checkpoint",
               generator_checkpoint=str(gen), generator_revision="abc123", max_steps=1)
    with pytest.raises(StageError, match="--generator-revision abc123 pins a Hub id, but --generator-checkpoint"):
        registry.execute("pretrain", cfg, tmp_path / "out")


def test_morpheme_words_on_a_normalize_output_name_the_stage_to_use(tmp_path):
    """It was a pyarrow ArrowInvalid traceback."""
    from kopretrain.runs.records import StageError

    cfg = tiny((write_data_stage(tmp_path / "data"), write_tokenizer_dir(tmp_path / "tok")), objective="wwm",
               word_level="morpheme", max_steps=1)  # normalize-style columns: text, no morph_start
    with pytest.raises(StageError, match="--word-level morpheme needs the analyze stage's output"):
        registry.execute("pretrain", cfg, tmp_path / "out")


def test_an_empty_dev_split_holds_out_train_rows_and_an_empty_train_split_is_an_error(inputs, tmp_path):
    """ingest --dev-fraction 0 writes an empty dev.parquet: pretrain crashed in datasets (exit 1)."""
    import json

    from kopretrain.runs.records import StageError

    data = write_data_stage(tmp_path / "data", n_train=60, n_dev=0)
    out = registry.execute("pretrain", tiny((data, inputs[1]), max_steps=1), tmp_path / "out")
    stats = json.loads((out / "stage.json").read_text())["stats"]
    assert "6 train rows (an empty dev split)" in json.dumps(stats, ensure_ascii=False)
    empty = write_data_stage(tmp_path / "empty", n_train=0, n_dev=5)
    with pytest.raises(StageError, match="train.parquet: 0 non-empty text"):
        registry.execute("pretrain", tiny((empty, inputs[1]), max_steps=1), tmp_path / "out2")


def test_a_corpus_the_tokenizer_does_not_cover_is_warned_about(capsys):
    """A checkpoint whose tokenizer made 87% of the tokens [UNK] trained without a word."""
    from types import SimpleNamespace

    from kopretrain.train.pretrain_data import unk_share

    tok = SimpleNamespace(unk_token_id=1, unk_token="[UNK]")
    assert unk_share([[2, 1, 1, 3], [2, 1, 3]], tok) == round(3 / 7, 4)
    assert "43% of the corpus's tokens are [UNK]" in capsys.readouterr().out
    assert unk_share([[2, 5, 6, 3]], tok) == 0.0 and capsys.readouterr().out == ""


def test_a_run_killed_before_its_first_checkpoint_measures_step_0_again(inputs, tmp_path, monkeypatch):
    """The rerun continued the unfinished run but, with no checkpoint to resume, skipped the step-0
    evaluation: metrics.json's history had no starting point."""
    import json

    import transformers

    real = transformers.Trainer.train

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("before the first save")

    monkeypatch.setattr(transformers.Trainer, "train", killed)
    with pytest.raises(KeyboardInterrupt):
        registry.execute("pretrain", tiny(inputs, max_steps=2), tmp_path / "out")
    assert (tmp_path / "out.partial").is_dir()
    monkeypatch.setattr(transformers.Trainer, "train", real)
    out = registry.execute("pretrain", tiny(inputs, max_steps=2), tmp_path / "out")
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert history[0]["step"] == 0
