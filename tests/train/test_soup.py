"""finetune --members K: K fine-tunes on the same rows from the same head, saved as their greedy weight
soup (one plain model), resumable member by member."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import kopretrain.train.soup as soup
from kopretrain.finetune import FinetuneConfig
from kopretrain.runs.config import from_dict
from kopretrain.runs.records import StageError
from kopretrain.runs.registry import execute
from tests.fixtures.sentiment import make_model

FAST = dict(max_steps=20, eval_steps=10, batch_size=16, lr=3e-3, precision="fp32", logging_steps=10,
            early_stopping_patience=0, report_to="none", calibrate=False)


def config(workdir, **kw) -> FinetuneConfig:
    return from_dict(FinetuneConfig, {"model": str(workdir / "pre"), "data": str(workdir / "data"), "seed": 3,
                                      **FAST, **kw})


def test_average_into_loads_the_mean_and_keeps_integer_buffers(tmp_path):
    from transformers import AutoModelForSequenceClassification

    path = make_model(tmp_path / "m", classifier=True)
    model = AutoModelForSequenceClassification.from_pretrained(path)
    states = []
    for i in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 1)
        soup._save(model, tmp_path / f"{i}.safetensors")
        states.append(load_file(str(tmp_path / f"{i}.safetensors")))
    soup.average_into(model, [tmp_path / f"{i}.safetensors" for i in range(3)])
    state = model.state_dict()
    for name, tensor in states[0].items():
        if tensor.is_floating_point():
            assert torch.allclose(state[name], sum(s[name] for s in states) / 3, atol=1e-6), name
        else:
            assert torch.equal(state[name], tensor), name


def test_members_share_rows_and_head_and_differ_by_data_seed(workdir, monkeypatch):
    """The saved model is exactly the mean of the members the greedy soup kept."""
    kept_files = {}
    monkeypatch.setattr("kopretrain.train.soup.remove_members", lambda d: kept_files.update(
        {p.parent.name: load_file(str(p)) for p in (d / soup.MEMBERS_DIR).glob(f"*/{soup.WEIGHTS}")}))
    out = execute("finetune", config(workdir, members=3, data_seed=7), workdir / "soup3")
    record = json.loads((out / "stage.json").read_text())["stats"]["soup"]
    assert record["members"] == 3 and record["kept"][0] in (0, 1, 2) and 1 <= len(record["kept"]) <= 3
    dev = json.loads((out / "dev_metrics.json").read_text())  # the soup's selection, not member 0's
    assert dev["selected_step"] is None and dev["soup_kept"] == record["kept"]
    assert dev["best_logged"] == record["dev_macro_f1"] and dev["history_of_member"] == 0
    assert [r["data_seed"] for r in record["member_records"]] == [7, 8, 9]
    assert record["dev_macro_f1"] >= max(r["dev_macro_f1"] for r in record["member_records"]) - 1e-4  # rounded
    assert set(kept_files) == {"0", "1", "2"}
    members = [kept_files[str(k)] for k in range(3)]
    # same head at the start, another row order: the members end apart
    name = "classifier.weight"
    assert not torch.allclose(members[0][name], members[1][name])
    saved = load_file(str(out / "model.safetensors"))
    for key in (name, "bert.encoder.layer.0.attention.self.query.weight"):
        want = sum(members[k][key] for k in record["kept"]) / len(record["kept"])
        assert torch.allclose(saved[key], want, atol=1e-6), key


def test_one_member_is_the_plain_fine_tune(workdir):
    plain = execute("finetune", config(workdir), workdir / "plain")
    one = execute("finetune", config(workdir, members=1), workdir / "one")
    assert "soup" not in json.loads((one / "stage.json").read_text())["stats"]
    a, b = load_file(str(plain / "model.safetensors")), load_file(str(one / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_killed_run_keeps_its_finished_members(workdir, monkeypatch):
    import kopretrain.finetune as finetune

    calls, real = [], finetune.train

    def train(cfg, run, *args, **kwargs):
        calls.append(run.dir.name)
        if run.dir.name == "2" and len(calls) == 2:
            raise KeyboardInterrupt  # killed inside member 2
        return real(cfg, run, *args, **kwargs)

    monkeypatch.setattr(finetune, "train", train)
    with pytest.raises(KeyboardInterrupt):
        execute("finetune", config(workdir, members=3), workdir / "killed")
    out = execute("finetune", config(workdir, members=3), workdir / "killed")
    assert calls == ["1", "2", "2", "killed.partial"]  # member 1 was not trained again
    assert json.loads((out / "stage.json").read_text())["stats"]["soup"]["members"] == 3
    assert not (out / soup.MEMBERS_DIR).exists()


def test_members_must_be_positive():
    with pytest.raises(ValueError, match="--members"):
        FinetuneConfig(members=0)
    with pytest.raises((ValueError, StageError)):
        FinetuneConfig(members=-1)


def test_members_share_the_time_budget_and_count_data_seeds_up():
    cfg = FinetuneConfig(members=4, max_minutes=20, seed=5)
    assert [soup.member_config(cfg, k).data_seed for k in range(4)] == [5, 6, 7, 8]
    assert soup.member_config(cfg, 2).max_minutes == 5 and soup.member_config(cfg, 2).seed == 5
    assert soup.member_config(FinetuneConfig(members=2, data_seed=40, seed=5), 1).data_seed == 41


def test_the_time_budget_record_covers_every_member(workdir):
    out = execute("finetune", config(workdir, members=2, max_minutes=10), workdir / "budget2")
    budget = json.loads((out / "stage.json").read_text())["stats"]["time_budget"]
    assert budget["max_minutes"] == 10  # two shares of 5, not member 0's share
    assert len(budget["members_spent_minutes"]) == 2 and not budget["stopped_by_time"]
    assert budget["spent_minutes"] == pytest.approx(sum(budget["members_spent_minutes"]), abs=0.002)
