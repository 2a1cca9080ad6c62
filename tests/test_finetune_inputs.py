"""finetune refuses bad inputs with one clear error: missing models, columns, empty splits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kopretrain.cli import main
from kopretrain.finetune import FinetuneConfig
from kopretrain.runs.config import from_dict
from kopretrain.runs.records import StageError
from kopretrain.runs.registry import execute
from tests.fixtures.sentiment import finetune_workdir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return finetune_workdir(tmp_path_factory.mktemp("ft-inputs"))


def test_bad_inputs_fail_clearly(workdir, tmp_path, capsys):
    base = ["finetune", "--data", str(workdir / "data"), "--max-steps", "2", "-o", str(tmp_path / "o")]
    assert main(base + ["--model", str(tmp_path / "no_such_model")]) == 2
    assert "model directory not found" in capsys.readouterr().err
    (tmp_path / "empty_dir").mkdir()
    assert main(base + ["--model", str(tmp_path / "empty_dir")]) == 2
    assert "no config.json" in capsys.readouterr().err

    no_text = tmp_path / "no_text"
    no_text.mkdir()
    for split in ("train", "dev"):
        pd.read_parquet(workdir / "data" / f"{split}.parquet").rename(columns={"text": "review"}) \
            .to_parquet(no_text / f"{split}.parquet")
    cfg = from_dict(FinetuneConfig, {"model": str(workdir / "pre"), "data": str(no_text), "max_steps": 2})
    with pytest.raises(StageError, match=r"missing column\(s\) text; columns are: id, review"):
        execute("finetune", cfg, tmp_path / "o2")

    empty = tmp_path / "empty"
    empty.mkdir()
    frame = pd.read_parquet(workdir / "data" / "train.parquet")
    frame.iloc[:0].to_parquet(empty / "train.parquet")
    frame.to_parquet(empty / "dev.parquet")
    cfg = from_dict(FinetuneConfig, {"model": str(workdir / "pre"), "data": str(empty), "max_steps": 2})
    with pytest.raises(StageError, match="no train rows"):
        execute("finetune", cfg, tmp_path / "o3")
    frame.to_parquet(empty / "train.parquet")
    frame.iloc[:0].to_parquet(empty / "dev.parquet")  # a few large groups all went to train
    import kopretrain.finetune as F

    def no_model(*args, **kwargs):
        raise AssertionError("the model loaded before the empty dev split was found")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F, "build", no_model)
        with pytest.raises(StageError, match="no dev rows .*--dev-fraction"):
            execute("finetune", cfg, tmp_path / "o4")

        unlabelled = frame.assign(label=None)  # every label null: said before the model loads too
        unlabelled.to_parquet(empty / "dev.parquet")
        with pytest.raises(StageError, match="dev.parquet: no labelled rows"):
            execute("finetune", cfg, tmp_path / "o4")
        unlabelled.drop(columns=["label"]).to_parquet(empty / "dev.parquet")
        with pytest.raises(StageError, match="dev.parquet: no 'label' column"):
            execute("finetune", cfg, tmp_path / "o4")

    with pytest.raises(ValueError, match="--max-steps"):
        FinetuneConfig(model="m", data="d", max_steps=-2)
    FinetuneConfig(model="m", data="d", max_steps=0)  # all epochs, as pretrain's 0 (it was refused)
    with pytest.raises(ValueError, match="--members and --restarts"):  # the soup averaged two different heads
        FinetuneConfig(model="m", data="d", members=2, restarts=1)
    with pytest.raises(ValueError, match="--epochs"):
        FinetuneConfig(model="m", data="d", max_steps=0, epochs=0)


@pytest.mark.parametrize("arch", ["gpt2", "gpt2-bare", "t5"])
def test_a_decoder_is_refused_before_training(workdir, tmp_path, capsys, arch):
    """GPT-2 trained silently into a "classifier"; T5 crashed mid-run and left a .partial."""
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    model = tmp_path / arch
    if arch.startswith("gpt2"):
        GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64)).save_pretrained(model)
        if arch == "gpt2-bare":  # no architectures named: the family decides
            import json

            config = json.loads((model / "config.json").read_text())
            config.pop("architectures")
            (model / "config.json").write_text(json.dumps(config))
    else:
        T5ForConditionalGeneration(T5Config(num_layers=1, d_model=16, d_ff=32, num_heads=2, d_kv=8,
                                            vocab_size=64)).save_pretrained(model)
    out = tmp_path / "o"
    assert main(["finetune", "--model", str(model), "--data", str(workdir / "data"), "--max-steps", "2", "-o", str(out)]) == 2
    assert "is not an encoder" in capsys.readouterr().err and not Path(f"{out}.partial").exists()


def test_a_soft_targets_file_is_fingerprinted_by_its_content(tmp_path):
    """--soft-targets FILE: rewriting the file's probabilities reruns the stage (it said up to date);
    the keyword tfidf adds nothing, so finished runs with it keep their fingerprint."""
    from kopretrain.runs.records import StageRun

    soft = tmp_path / "soft.parquet"
    pd.DataFrame({"id": ["a"], "prob_negative": [0.2], "prob_neutral": [0.3], "prob_positive": [0.5]}).to_parquet(soft)

    def key(value):
        cfg = FinetuneConfig(model="m", data="d", soft_targets=value)
        run = StageRun("finetune", cfg, tmp_path / "out", log=lambda *a: None)
        return run.fingerprint, run.inputs

    first, inputs = key(str(soft))
    assert inputs["soft_targets"].startswith("sha256:")
    pd.DataFrame({"id": ["a"], "prob_negative": [0.6], "prob_neutral": [0.3], "prob_positive": [0.1]}).to_parquet(soft)
    assert key(str(soft))[0] != first
    assert "soft_targets" not in key("tfidf")[1] and "soft_targets" not in key("")[1]


def test_fp16_without_a_gpu_fails_before_any_work(workdir, tmp_path, capsys):
    """It was a ValueError traceback after the model loaded and the rows were tokenized, .partial left."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: fp16 is valid here")
    args = ["finetune", "--model", str(workdir / "pre"), "--data", str(workdir / "data"), "--precision", "fp16",
            "-o", str(tmp_path / "o")]
    assert main(args) == 2
    assert "--precision fp16 needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "o.partial").exists()


def test_a_label_budget_larger_than_the_data_says_so(workdir, tmp_path, capsys):
    cfg = from_dict(FinetuneConfig, {"model": str(workdir / "pre"), "data": str(workdir / "data"), "label_budget": 10_000,
                                     "max_steps": 2, "eval_steps": 2, "batch_size": 16, "precision": "fp32",
                                     "early_stopping_patience": 0, "report_to": "none", "calibrate": False})
    out = execute("finetune", cfg, tmp_path / "o")
    import json

    rows = json.loads((out / "stage.json").read_text())["counts"]["rows_out"]
    assert f"--label-budget 10,000 is more than the {rows:,} labelled train rows" in capsys.readouterr().out
