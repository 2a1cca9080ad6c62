"""kopretrain.experiments.study on the bundled sample with a test-size model: every system x budget row,
equal-time calibration, the random-init model really is the initialised one, rerun skips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kopretrain.experiments import study

ROOT = Path(__file__).resolve().parent.parent.parent

# Test-size model and runs (the pipeline test's TINY, shorter); every key must exist.
TINY = [
    "pretrain.hidden_size=32", "pretrain.num_layers=2", "pretrain.heads=2", "pretrain.intermediate_size=64",
    "pretrain.max_steps=4", "pretrain.eval_steps=4", "pretrain.save_steps=4", "pretrain.logging_steps=2",
    "pretrain.max_eval_texts=32", "pretrain.batch_size=8",
    "finetune.max_steps=4", "finetune.eval_steps=4", "finetune.batch_size=8",
    "vocab.vocab_size=2000", "vocab.report_texts=50", "evaluate.temperature_scaling=false",
]


pytestmark = pytest.mark.experiments


def test_budgets_and_small_budget_step_floor():
    from kopretrain.finetune import FinetuneConfig

    assert study.parse_budgets("1000, 10000,all") == [1000, 10000, 0]
    with pytest.raises(SystemExit, match="--budgets"):
        study.parse_budgets("1k")
    base = FinetuneConfig(model="m", data="d", epochs=1, batch_size=32, eval_steps=1000)
    # 1,000 labels x 1 epoch = 32 steps: raised to the floor, with 5 dev evaluations
    small = study.finetune_config(base, Path("p"), 1000, 7, n_train=480_000, min_steps=300)
    assert (small.max_steps, small.eval_steps, small.label_budget, small.seed) == (300, 60, 1000, 7)
    # all labels: epochs as configured
    assert study.finetune_config(base, Path("p"), 0, 7, n_train=480_000, min_steps=300).max_steps == -1
    # an explicit max_steps is never changed
    fixed = study.finetune_config(FinetuneConfig(model="m", data="d", max_steps=6), Path("p"), 50, 1, 400, 300)
    assert fixed.max_steps == 6
    assert study.equal_time_steps(1, {"mlm": 0.2, "rtd": 0.3}) == {"mlm": 300, "rtd": 200}


def test_study_on_the_sample(tmp_path, monkeypatch, sample_path, capsys):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer, set_seed

    from kopretrain.train import models
    from kopretrain.pretrain import PretrainConfig
    from kopretrain.runs.config import from_dict

    monkeypatch.chdir(ROOT)
    workdir = tmp_path / "study"
    argv = ["--pipeline", "pipelines/quickstart.yaml", "--workdir", str(workdir), "--budgets", "50,all",
            "--seeds", "1", "--pretrain-minutes", "0.05", "--calibration-steps", "2", "--calibration-rounds", "1"]
    for item in TINY + [f"ingest.input={sample_path}"]:
        argv += ["--set", item]
    result = study.main(argv)

    saved = json.loads((workdir / "study.json").read_text())
    rows = {(r["system"], r["budget"]): r for r in saved["rows"]}
    assert set(rows) == {(s, b) for s in ("baseline", "scratch", "mlm", "rtd") for b in (50, 0)}
    for row in rows.values():
        assert row["n"] == 1 and row["seeds"] == [1]
        for key in ("macro_f1", "accuracy", "binary_accuracy"):
            assert 0.0 <= row[key] <= 1.0, (row["system"], key)
    assert rows[("baseline", 50)]["train_examples"] == rows[("rtd", 50)]["train_examples"] == 50
    assert rows[("baseline", 0)]["train_examples"] == rows[("scratch", 0)]["train_examples"] > 50

    # equal wall-clock: each objective ran the step count its calibrated s/step allows
    cal = json.loads((workdir / "calibration.json").read_text())
    for obj in ("mlm", "rtd"):
        assert saved["pretrain"][obj]["global_step"] == cal["max_steps"][obj] >= 1
        assert cal["max_steps"][obj] == max(1, round(3 / cal["seconds_per_step"][obj]))
    assert {t["status"] for t in saved["targets"]} <= {"met", "missed", "not measured"}

    # the markdown table renders every row and was printed
    table = (workdir / "study.md").read_text()
    body = [line for line in table.splitlines() if line.startswith("| ") and "labels" not in line]
    assert sum(line.split(" | ")[1].startswith(("50 ", "all ")) for line in body) == 8
    assert table in capsys.readouterr().out
    assert result["rows"] == saved["rows"]

    # scratch = the initialised weights: rebuild them from the seed and compare exactly
    init = json.loads((workdir / "pretrain-scratch" / "stage.json").read_text())["config"]
    cfg = from_dict(PretrainConfig, {k: v for k, v in init.items() if k in PretrainConfig.__dataclass_fields__})
    tokenizer = AutoTokenizer.from_pretrained(workdir / "pretrain-scratch")
    arch = models.resolve_arch(cfg.preset, "electra", num_layers=cfg.num_layers, hidden_size=cfg.hidden_size,
                               heads=cfg.heads, intermediate_size=cfg.intermediate_size,
                               max_position_embeddings=max(512, cfg.max_length))
    set_seed(cfg.seed)
    fresh = models.build_scratch("mlm", "electra", arch, tokenizer)["mlm"].state_dict()
    saved_model = AutoModelForMaskedLM.from_pretrained(workdir / "pretrain-scratch").state_dict()
    assert all(torch.equal(fresh[k], saved_model[k]) for k in fresh)

    # rerun: every stage is up to date, same table
    study.main(argv)
    out = capsys.readouterr().out
    assert "wrote" not in out.replace("[study]", "") and out.count("up to date") >= 12
    assert json.loads((workdir / "study.json").read_text())["rows"] == saved["rows"]

    # --models: another study fine-tunes the pretrained RTD model above instead of pretraining again
    reuse = tmp_path / "reuse"
    argv2 = [a if a != str(workdir) else str(reuse) for a in argv]
    argv2 += ["--systems", "rtd", "--budgets", "50", "--models", f"rtd={workdir / 'pretrain-rtd'}",
              "--data-workdir", str(workdir)]
    argv2 = _without(argv2, "--pretrain-minutes", "--calibration-steps", "--calibration-rounds")
    again = study.main(argv2)
    assert not (reuse / "pretrain-rtd").exists() and not (reuse / "calibrate").exists()
    assert again["pretrain"]["rtd"]["dir"] == str(workdir / "pretrain-rtd")
    ft = json.loads((reuse / "finetune" / "rtd-50-s1" / "stage.json").read_text())
    assert ft["config"]["model"] == str(workdir / "pretrain-rtd")
    assert [r["system"] for r in again["rows"]] == ["rtd"]


def _without(argv: list[str], *flags: str) -> list[str]:
    """argv without these flags and their values."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item in flags:
            skip = True
        else:
            out.append(item)
    return out


def test_models_must_be_finished_pretrain_outputs_of_that_objective(tmp_path):
    from kopretrain.runs.records import write_json

    def record(path, **fields):
        path.mkdir(parents=True)
        write_json(path / "stage.json", {"stage": "pretrain", "complete": True, **fields})
        return path

    mlm = record(tmp_path / "mlm", config={"objective": "mlm"})
    init = record(tmp_path / "init", config={"objective": "rtd"})
    assert study.parse_models(f"mlm={mlm}, scratch={init}") == {"mlm": mlm, "scratch": init}
    with pytest.raises(SystemExit, match="objective 'mlm', not a rtd"):
        study.parse_models(f"rtd={mlm}")
    with pytest.raises(SystemExit, match="NAME=DIR"):
        study.parse_models(f"electra={mlm}")
    with pytest.raises(SystemExit, match="no stage.json"):
        study.parse_models(f"rtd={tmp_path / 'missing'}")
    half = tmp_path / "half"
    half.mkdir()
    write_json(half / "stage.json", {"stage": "pretrain", "complete": False, "config": {"objective": "rtd"}})
    with pytest.raises(SystemExit, match="unfinished"):
        study.parse_models(f"rtd={half}")
