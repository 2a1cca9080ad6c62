"""release refuses what would publish wrong facts, and says what each evaluation number is."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from kopretrain import release as R
from kopretrain.cli import main
from kopretrain.runs.records import StageError, StageRun
from kopretrain.runs.stage import StageConfig
from tests.test_release import METRICS, FakeEvaluate, chain, hub_card_of_the_base  # noqa: F401 - fixtures


def _evaluation(chain, tmp_path, metrics, name="ev") -> str:
    """An evaluate output of chain's model with these metrics."""
    with StageRun("evaluate", FakeEvaluate(model=str(chain["finetune"]), data=str(chain["normalize"]), ),
                  tmp_path / name, log=lambda *a: None) as run:
        (run.dir / "metrics.json").write_text(json.dumps(metrics))
    return str(tmp_path / name)


def _card(chain, tmp_path, evaluation, out="r"):
    from huggingface_hub import ModelCard

    cfg = R.ReleaseConfig(model=str(chain["finetune"]), evaluation=evaluation, verify=False)
    return ModelCard.load(R.execute(cfg, tmp_path / out) / "README.md")


def test_with_an_ngram_expert_the_plain_metrics_are_the_encoders(chain, tmp_path):
    """The model-index scored the encoder + n-gram pool, which plain transformers does not load."""
    model = {**METRICS["model"], "ngram_blend": {"encoder_alone": {"macro_f1": 0.61, "accuracy": 0.66, "ece": 0.2}}}
    card = _card(chain, tmp_path, _evaluation(chain, tmp_path, {**METRICS, "model": model}))
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results["Macro F1"] == 0.61 and results["Accuracy"] == 0.66
    pooled = [name for name in results if "n-gram expert" in name]
    assert results[next(n for n in pooled if n.startswith("Macro F1"))] == 0.7456
    assert len({(r.metric_type, r.metric_config) for r in card.data.eval_results}) == len(card.data.eval_results)
    assert "encoder alone (what `pipeline` loads)" in card.text and "0.6100" in card.text


def test_a_dev_evaluation_is_marked_and_a_train_one_refused(chain, tmp_path, monkeypatch):
    card = _card(chain, tmp_path, _evaluation(chain, tmp_path, {**METRICS, "split": "dev", "baseline": None}))
    assert {r.dataset_split for r in card.data.eval_results} == {"dev"}
    assert "These are dev-split scores" in card.text and "No baseline was trained" in card.text
    assert "trained on the same rows" not in card.text
    train = _evaluation(chain, tmp_path, {**METRICS, "split": "train"}, name="ev-train")
    monkeypatch.setattr(R, "copy_model", lambda *a: pytest.fail("the weights were copied before the check"))
    with pytest.raises(StageError, match="scored the train split"):
        _card(chain, tmp_path, train, out="r2")


def test_evaluation_must_be_a_readable_evaluate_output(chain, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(R, "copy_model", lambda *a: pytest.fail("the weights were copied before the check"))
    model = ["release", "--model", str(chain["finetune"]), "--no-verify"]
    broken = _evaluation(chain, tmp_path, {}, name="broken")
    (tmp_path / "broken" / "metrics.json").write_text("{not json")
    assert main(model + ["--evaluation", broken, "-o", str(tmp_path / "r1")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(model + ["--evaluation", str(chain["normalize"]), "-o", str(tmp_path / "r2")]) == 2
    assert "no metrics.json" in capsys.readouterr().err
    pretrain = tmp_path / "pretrain"
    with StageRun("pretrain", FakeEvaluate(model=str(chain["finetune"])), pretrain, log=lambda *a: None) as run:
        (run.dir / "metrics.json").write_text(json.dumps({"final": {"loss": 1.0}}))
    assert main(model + ["--evaluation", str(pretrain), "-o", str(tmp_path / "r3")]) == 2
    assert "is a pretrain output; give an evaluate output" in capsys.readouterr().err


def test_a_broken_config_and_an_evaluation_of_an_encoder_are_one_line_errors(chain, tmp_path, capsys):
    from tests.test_release import _encoder

    encoder = _encoder(tmp_path / "mlm", "mlm")
    ev = str(chain["evaluate"])
    assert main(["release", "--model", str(encoder), "--evaluation", ev, "--license", "mit", "-o",
                 str(tmp_path / "r1")]) == 2
    assert "--evaluation scores a sentiment classifier" in capsys.readouterr().err
    (encoder / "config.json").write_text("{")
    assert main(["release", "--model", str(encoder), "--license", "mit", "-o", str(tmp_path / "r2")]) == 2
    assert "config.json: cannot be read as JSON" in capsys.readouterr().err


def test_card_options_that_would_do_nothing_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="--base-model-revision pins --base-model"):
        R.ReleaseConfig(model="m", base_model_revision="v9")
    with pytest.raises(ValueError, match="no such file"):
        R.ReleaseConfig(model="m", data_card=str(tmp_path / "missing.md"))
    with pytest.raises(ValueError, match="a directory"):
        R.ReleaseConfig(model="m", data_card=str(tmp_path))


def test_a_data_card_that_is_not_utf8_is_named(chain, tmp_path):
    card = tmp_path / "card.md"
    card.write_bytes("# 카드\n".encode("cp949"))
    cfg = R.ReleaseConfig(model=str(chain["finetune"]), data_card=str(card), verify=False)
    with pytest.raises(StageError, match=r"card.md: not UTF-8 text"):
        R.execute(cfg, tmp_path / "r")


def test_a_model_that_labels_every_example_alike_is_warned_about(chain, tmp_path, monkeypatch, capsys):
    same = [{"text": t, "label": "negative", "score": 0.399} for t in R.EXAMPLES]
    monkeypatch.setattr(R, "verify", lambda folder, kind, info: same)
    R.execute(R.ReleaseConfig(model=str(chain["finetune"])), tmp_path / "r")
    assert "labels every example negative" in capsys.readouterr().out


def test_a_pruned_checkpoint_brings_the_license_of_the_one_it_was_pruned_from(tmp_path):
    """vocab --prune-from e5 -> finetune -> release: the pruned folder has no card, so release
    stopped asking for --license although the chain records where the vocabulary came from."""
    from huggingface_hub import ModelCard

    from kopretrain.testing import tiny_classifier
    from tests.test_release import FakeFinetune

    @dataclass
    class FakeVocab(StageConfig):
        prune_from: str = ""
        revision: str = ""

    base = tiny_classifier(tmp_path / "e5")
    (base / "README.md").write_text("---\nlicense: mit\n---\n# e5\n")
    with StageRun("vocab", FakeVocab(prune_from=str(base)), tmp_path / "pruned", log=lambda *a: None) as run:
        tiny_classifier(run.dir)
    with StageRun("finetune", FakeFinetune(model=str(tmp_path / "pruned"), revision=""), tmp_path / "ft",
                  log=lambda *a: None) as run:
        tiny_classifier(run.dir)
    card = ModelCard.load(R.execute(R.ReleaseConfig(model=str(tmp_path / "ft"), verify=False), tmp_path / "r")
                          / "README.md")
    assert card.data.license == "mit" and "local checkpoint `e5`" in card.text
