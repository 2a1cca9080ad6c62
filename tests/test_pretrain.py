"""The pretrain stage end to end on tiny models (2 layers, hidden 32) and a synthetic corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from tests.fixtures.pretrain import TINY, make_texts, one_thread, write_checkpoint, write_data_stage, write_tokenizer_dir
from kopretrain import pretrain
from kopretrain.runs import registry
from kopretrain.pretrain import PretrainConfig
from kopretrain.runs.records import StageRun

_threads = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain_inputs")
    return write_data_stage(root / "data"), write_tokenizer_dir(root / "tok")


def tiny(inputs, **overrides) -> PretrainConfig:
    data, tok = inputs
    size = TINY if overrides.get("init") != "checkpoint" else {}  # a checkpoint brings its own size
    kw = dict(input=str(data), tokenizer=str(tok), **size, max_steps=4, eval_steps=2, save_steps=100,
              logging_steps=1, batch_size=8, max_length=32, precision="fp32", lr=2e-3, warmup_ratio=0.0)
    kw.update(overrides)
    return PretrainConfig(**kw)


def stage_json(out):
    return json.loads((out / "stage.json").read_text())


# ------------------------------------------------------------------------------ objectives
@pytest.mark.parametrize("objective", ["mlm", "wwm", "span", "rtd"])
def test_each_objective_lowers_its_loss_on_a_repeated_batch(inputs, objective, tmp_path):
    import datasets
    from transformers import AutoTokenizer

    from tests.fixtures.pretrain import tiny_parts
    from kopretrain.train import masking, packing
    from kopretrain.train.objectives import MaskedLM
    from kopretrain.train.rtd import ElectraRTD

    tok = AutoTokenizer.from_pretrained(inputs[1])
    level = "eojeol" if objective == "wwm" else "none"
    rows = packing.pack(packing.tokenize_texts(datasets.Dataset.from_dict({"text": make_texts(60)}), tok, "text",
                                               level), tok, 32, cache_dir=str(tmp_path))
    collator = masking.make_collator(tok, objective, seed=0)
    batch = collator([rows[i] for i in range(8)])  # masked once, then repeated
    torch.manual_seed(0)
    parts = tiny_parts(objective, tok, "bert" if objective != "rtd" else "electra")
    module = ElectraRTD(parts["generator"], parts["discriminator"]) if objective == "rtd" else MaskedLM(parts["mlm"])
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = module(**batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


# ------------------------------------------------------------------------------ stage outputs
def test_rtd_stage_writes_a_loadable_discriminator_generator_and_records(inputs, tmp_path):
    from transformers import AutoModel, AutoTokenizer, ElectraForMaskedLM, ElectraForPreTraining

    out = registry.execute("pretrain", tiny(inputs, objective="rtd"), tmp_path / "rtd")
    assert type(ElectraForPreTraining.from_pretrained(out)).__name__ == "ElectraForPreTraining"
    assert type(AutoModel.from_pretrained(out)).__name__ == "ElectraModel"
    gen = ElectraForMaskedLM.from_pretrained(out / "generator")
    disc = ElectraForPreTraining.from_pretrained(out)
    assert torch.equal(gen.electra.embeddings.word_embeddings.weight, disc.electra.embeddings.word_embeddings.weight)
    tok = AutoTokenizer.from_pretrained(out)
    assert len(tok) == disc.config.vocab_size
    # from scratch the position rows past --max-length never train: the tokenizer and record say so
    max_length = json.loads((out / "stage.json").read_text())["config"]["max_length"]
    assert tok.model_max_length == max_length < disc.config.max_position_embeddings
    assert json.loads((out / "kopretrain.json").read_text())["extra"]["max_length"] == max_length
    # the generator folder is a complete fill-mask model (it used to have no tokenizer: empty strings)
    from transformers import pipeline

    fill = pipeline("fill-mask", model=str(out / "generator"), device="cpu")
    predictions = fill(f"영화 {fill.tokenizer.mask_token} 좋아요")
    assert len(predictions) == 5 and all(p["token_str"].strip() for p in predictions)
    vocab_prep = json.loads((inputs[1] / "kopretrain.json").read_text())
    vocab_prep["extra"] = {**vocab_prep["extra"], "max_length": max_length}
    assert json.loads((out / "kopretrain.json").read_text()) == vocab_prep
    # Final weights only: no checkpoints, no data cache, no pickled weights.
    assert not (out / "checkpoints").exists() and not (out / "data").exists()
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))
    assert list((out / "runs").glob("events.out.tfevents.*"))

    metrics = json.loads((out / "metrics.json").read_text())
    final = metrics["final"]
    for key in ("eval_gen_accuracy", "eval_disc_accuracy", "eval_disc_auc", "eval_gen_loss", "eval_disc_loss"):
        assert key in final
    assert [h["step"] for h in metrics["history"]] == [0, 2, 4]
    logs = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    train_logs = [r for r in logs if "loss" in r]
    assert [r["step"] for r in train_logs] == [1, 2, 3, 4]
    assert all(r["tokens_per_s"] > 0 and "disc_loss" in r and "gen_loss" in r for r in train_logs)

    record = stage_json(out)
    stats = record["stats"]
    assert stats["train"]["global_step"] == 4 and stats["train"]["tokens_seen"] > 0
    assert stats["data"]["pad_share"] < 0.05 < stats["data"]["pad_share_naive"]  # packing removed the padding
    assert stats["base_model"]["vocab_sha256"].startswith("sha256:")
    assert stats["parameters"]["generator"] < stats["parameters"]["discriminator"]
    assert record["counts"]["rows_in"] == 400


def test_mlm_with_length_buckets_reports_perplexity_and_loads_as_masked_lm(inputs, tmp_path):
    from transformers import AutoModelForMaskedLM

    out = registry.execute("pretrain", tiny(inputs, objective="wwm", packing="bucket", max_train_texts=200),
                         tmp_path / "wwm")
    assert type(AutoModelForMaskedLM.from_pretrained(out)).__name__ == "BertForMaskedLM"
    final = json.loads((out / "metrics.json").read_text())["final"]
    assert final["eval_perplexity"] == pytest.approx(torch.tensor(final["eval_loss"]).exp().item(), rel=1e-6)
    stats = stage_json(out)["stats"]
    assert stats["data"]["word_level"] == "eojeol" and stats["data"]["train_texts"] == 200
    assert stage_json(out)["counts"]["rejected"]["over_max_train_texts"] == 200
    assert 0 < stats["train"]["pad_share"] < stats["data"]["pad_share_naive"]


def test_eval_masks_are_fixed_so_runs_are_comparable(inputs, tmp_path):
    a = registry.execute("pretrain", tiny(inputs, max_steps=1, eval_steps=1), tmp_path / "a")
    b = registry.execute("pretrain", tiny(inputs, max_steps=1, eval_steps=1, lr=1e-2), tmp_path / "b")
    first = [json.loads((o / "metrics.json").read_text())["history"][0] for o in (a, b)]
    # Same seed, same untrained model, same eval masks: the step-0 evaluation is identical.
    assert first[0]["eval_loss"] == first[1]["eval_loss"]
    assert first[0]["eval_masked_tokens"] == first[1]["eval_masked_tokens"] > 0


# ------------------------------------------------------------------------------ resume
class KillAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"simulated kill at step {state.global_step}")


def test_kill_and_resume_reaches_the_same_step_and_weights(inputs, tmp_path):
    from safetensors.torch import load_file

    cfg = tiny(inputs, max_steps=6, save_steps=2, eval_steps=100)
    straight = registry.execute("pretrain", cfg, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        with StageRun("pretrain", cfg, tmp_path / "killed") as run:
            pretrain.run(cfg, run, callbacks=[KillAt(5)])
    partial = tmp_path / "killed.partial"
    assert sorted(p.name for p in (partial / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert not (tmp_path / "killed").exists()
    from kopretrain.train.pretrain_trainer import TALLY_FILE

    before = json.loads((partial / "checkpoints" / "checkpoint-4" / TALLY_FILE).read_text())["clock"]

    out = registry.execute("pretrain", cfg, tmp_path / "killed")
    record = stage_json(out)
    assert record["resumed"] and record["stats"]["resumed_from"] == "checkpoint-4"
    # the speed record covers the whole run, not only the attempt that finished it
    train = record["stats"]["train"]
    assert train["seconds"] > before["seconds"] > 0 and train["cpu_seconds"] >= round(before["cpu_seconds"], 1)
    assert train["pad_share"] == stage_json(straight)["stats"]["train"]["pad_share"]
    assert record["stats"]["train"]["global_step"] == 6
    # Same data position, RNG and masks as the uninterrupted run: identical weights.
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # ... and identical records: every evaluation, every logged step once, the same train loss.
    def evals(folder):
        history = json.loads((folder / "metrics.json").read_text())["history"]
        return [{k: v for k, v in h.items() if not k.endswith("runtime")} for h in history]

    def logged(folder):
        return [(r["step"], r.get("loss"), r.get("eval_loss")) for r in map(json.loads, (folder / "logs.jsonl").read_text().splitlines())
                if "train_runtime" not in r]

    assert evals(out) == evals(straight) and [h["step"] for h in evals(out)] == [0, 6]
    assert logged(out) == logged(straight)
    assert record["stats"]["train"]["train_loss"] == stage_json(straight)["stats"]["train"]["train_loss"]


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(inputs, tmp_path, capsys):
    from safetensors.torch import load_file

    cfg = tiny(inputs, max_steps=6, save_steps=2, eval_steps=100)
    straight = registry.execute("pretrain", cfg, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        with StageRun("pretrain", cfg, tmp_path / "killed") as run:
            pretrain.run(cfg, run, callbacks=[KillAt(5)])
    weights = tmp_path / "killed.partial" / "checkpoints" / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a full disk, a crash mid-write

    out = registry.execute("pretrain", cfg, tmp_path / "killed")  # used to die with SafetensorError forever
    assert "skipping checkpoint-4: model.safetensors is unreadable" in capsys.readouterr().out
    record = stage_json(out)
    assert record["stats"]["resumed_from"] == "checkpoint-2" and record["stats"]["train"]["global_step"] == 6
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # resuming from step 2 reaches the same weights


# ------------------------------------------------------------------------------ continued pretraining
def test_continue_bert_checkpoint_with_an_extended_vocabulary(inputs, tmp_path, capsys):
    from transformers import AutoTokenizer

    ckpt = write_checkpoint(tmp_path / "kcbert", "bert", inputs[1])
    ext = AutoTokenizer.from_pretrained(ckpt)
    ext.add_tokens(["ㅋㅋㅋ", "존잼"])
    ext.save_pretrained(tmp_path / "ext")
    (tmp_path / "ext" / "kopretrain.json").write_text((ckpt / "kopretrain.json").read_text())
    cfg = tiny(inputs, init="checkpoint", checkpoint=str(ckpt), tokenizer=str(tmp_path / "ext"), max_steps=2)
    out = registry.execute("pretrain", cfg, tmp_path / "out")
    stats = stage_json(out)["stats"]
    assert stats["base_model"]["id"] == str(ckpt) and stats["base_model"]["architecture"] == "BertForMaskedLM"
    assert stats["base_model"]["resized_vocab_to"] == len(ext)
    assert json.loads((out / "config.json").read_text())["vocab_size"] == len(ext)
    assert "--lr 0.002 is a from-scratch rate" in capsys.readouterr().out  # tiny() trains fast on purpose


def test_continue_electra_discriminator_with_a_new_generator_then_from_our_own_output(inputs, tmp_path):
    disc = write_checkpoint(tmp_path / "kcelectra", "electra-disc", inputs[1])
    cfg = tiny(inputs, objective="rtd", init="checkpoint", checkpoint=str(disc), tokenizer="checkpoint", max_steps=2)
    first = registry.execute("pretrain", cfg, tmp_path / "first")
    base = stage_json(first)["stats"]["base_model"]
    assert base["generator"] == "new" and base["tokenizer"] == "checkpoint"
    assert (first / "generator" / "model.safetensors").is_file()
    # Continuing from a kopretrain RTD output picks up its generator/.
    again = registry.execute("pretrain", tiny(inputs, objective="rtd", init="checkpoint", checkpoint=str(first),
                                            max_steps=2), tmp_path / "again")
    assert stage_json(again)["stats"]["base_model"]["generator"] == str(first / "generator")


# ------------------------------------------------------------------------------ config
def test_config_errors_name_the_flag():
    with pytest.raises(ValueError, match="--tokenizer"):
        PretrainConfig(input="x")
    with pytest.raises(ValueError, match="--checkpoint"):
        PretrainConfig(input="x", init="checkpoint")
    with pytest.raises(ValueError, match="--model-type"):
        PretrainConfig(input="x", tokenizer="t", objective="rtd", model_type="bert")
    assert PretrainConfig(input="x", tokenizer="t", objective="rtd").arch_type == "electra"
    assert PretrainConfig(input="x", tokenizer="t").arch_type == "bert"
    with pytest.raises(ValueError, match="--dropout"):
        PretrainConfig(input="x", tokenizer="t", dropout=1.5)


@pytest.mark.parametrize("objective", ["mlm", "rtd"])
def test_dropout_applies_to_the_run_not_the_saved_config(inputs, objective):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(inputs[1])
    module, _ = pretrain.build_module(tiny(inputs, objective=objective, dropout=0.0), tok, {})
    rates = {m.p for m in module.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.0}
    configs = [m.config for m in module.modules() if hasattr(m, "config") and hasattr(m.config, "hidden_dropout_prob")]
    assert configs and all(c.hidden_dropout_prob == 0.1 for c in configs)
    default, _ = pretrain.build_module(tiny(inputs, objective=objective), tok, {})
    assert {m.p for m in default.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}


def test_time_budget_sets_the_rate_and_stops_training(inputs, tmp_path):
    """max_minutes: the rate rises and falls with the clock (not the 10,000-step cap) and training
    stops at the deadline with the rate near zero."""
    out = registry.execute("pretrain", tiny(inputs, max_steps=10_000, eval_steps=1_000_000, max_minutes=0.1,
                                            warmup_ratio=0.2), tmp_path / "budget")
    record = stage_json(out)["stats"]
    assert record["time_budget"]["stopped_by_time"] is True and record["train"]["global_step"] < 10_000
    rates = [json.loads(line)["learning_rate"] for line in (out / "logs.jsonl").read_text().splitlines()
             if "learning_rate" in line]
    peak = max(rates)
    assert 0.5 * 2e-3 < peak <= 2e-3 and rates[-1] < 0.2 * peak  # warmed up, then decayed by the deadline
    assert rates.index(peak) not in (0, len(rates) - 1)


def test_rtd_continues_a_bert_checkpoint_as_discriminator_with_its_lower_layers_as_generator(inputs, tmp_path):
    """A BERT/XLM-R-style checkpoint (no ELECTRA classes) can be continued with RTD; the result loads
    with plain transformers and is the checkpoint's encoder, trained."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForTokenClassification

    from kopretrain.train import models

    ckpt = write_checkpoint(tmp_path / "bert", "bert", inputs[1])
    parts = models.load_checkpoint(str(ckpt), None, "rtd", generator_size_ratio=0.5)
    disc, gen = parts["discriminator"], parts["generator"]
    assert gen.config.num_hidden_layers == 1 and parts["generator_source"].startswith("lower 1 layers")
    for name, tensor in gen.base_model.encoder.layer[0].state_dict().items():  # the checkpoint's own lower layer
        assert torch.equal(tensor, disc.base_model.encoder.layer[0].state_dict()[name])
    fresh = models.load_checkpoint(str(ckpt), None, "rtd", generator_size_ratio=0.5, generator_init="fresh")
    assert fresh["generator_source"].startswith("fresh 1 layers")  # same depth and width, random layers
    query = "attention.self.query.weight"
    assert not torch.equal(fresh["generator"].base_model.encoder.layer[0].state_dict()[query],
                           fresh["discriminator"].base_model.encoder.layer[0].state_dict()[query])
    original = load_file(ckpt / "model.safetensors")

    out = registry.execute("pretrain", tiny(inputs, objective="rtd", init="checkpoint", checkpoint=str(ckpt),
                                            tokenizer="checkpoint", max_steps=3), tmp_path / "rtd")
    record = stage_json(out)["stats"]
    assert record["base_model"]["architecture"] == "BertForTokenClassification"
    assert record["final_metrics"]["eval_disc_accuracy"] > 0
    tuned = AutoModelForTokenClassification.from_pretrained(out)
    assert tuned.config.id2label == {0: "replaced"} and tuned.num_labels == 1
    AutoModelForMaskedLM.from_pretrained(out / "generator")
    encoder = AutoModel.from_pretrained(out).state_dict()
    moved = [k for k in encoder if f"bert.{k}" in original and not torch.equal(encoder[k], original[f"bert.{k}"])]
    assert moved  # the checkpoint's encoder was trained, not replaced
    # continuing the RTD output picks up its generator/
    again = registry.execute("pretrain", tiny(inputs, objective="rtd", init="checkpoint", checkpoint=str(out),
                                            tokenizer="checkpoint", max_steps=1), tmp_path / "again")
    assert stage_json(again)["stats"]["base_model"]["generator"] == str(out / "generator")


def test_rtd_and_mlm_continue_a_real_pretrained_checkpoint(inputs, checkpoint_path, tmp_path):
    """The real thing users start from (a Hub checkpoint with its own SentencePiece tokenizer, no
    MLM head), for two steps each: both objectives run and save loadable models with its tokenizer."""
    from transformers import AutoTokenizer

    for objective in ("rtd", "mlm"):
        cfg = tiny(inputs, objective=objective, init="checkpoint", checkpoint=str(checkpoint_path),
                   tokenizer="checkpoint", max_steps=2, max_train_texts=32, max_eval_texts=8, batch_size=4,
                   lr=1e-5, **{k: 0 for k in TINY if k in ("num_layers", "hidden_size", "heads", "intermediate_size",
                                                             "embedding_size")})
        out = registry.execute("pretrain", cfg, tmp_path / objective)
        tok = AutoTokenizer.from_pretrained(out)
        assert len(tok) == len(AutoTokenizer.from_pretrained(checkpoint_path))
        assert stage_json(out)["stats"]["train"]["global_step"] == 2


def test_the_loss_tally_is_in_a_checkpoint_before_its_trainer_state(inputs, tmp_path, monkeypatch):
    """A checkpoint counts as complete once trainer_state.json exists (the Trainer writes it last):
    a kill right after it must still find the tally, or the resumed train_loss covers only its own
    batches (the SIGKILL test hit this)."""
    from transformers import TrainerState

    from kopretrain.train.pretrain_trainer import TALLY_FILE

    seen = []
    save = TrainerState.save_to_json

    def checked(self, json_path):
        folder = Path(json_path).parent
        if folder.name.startswith("checkpoint-"):
            seen.append((folder / TALLY_FILE).is_file())
        return save(self, json_path)

    monkeypatch.setattr(TrainerState, "save_to_json", checked)
    registry.execute("pretrain", tiny(inputs, save_steps=2), tmp_path / "out")
    assert seen and all(seen)


def test_text_normalized_with_the_same_rules_is_not_normalized_again(tmp_path):
    """Worker counts and batch sizes in the normalize record are not rules: the text is reused."""
    from kopretrain.text.textprep import TextPrep
    from kopretrain.train.pretrain_data import text_prep_for

    rules = {"emoji": "keep", "max_repeat": 2}
    (tmp_path / "stage.json").write_text(json.dumps({"stage": "normalize", "fingerprint": "x", "config": {
        "input": "runs/x/ingest", "num_workers": 2, "batch_size": 5000, **rules}}))
    assert text_prep_for(TextPrep(normalize=dict(rules)), str(tmp_path)).normalize is None
    assert text_prep_for(TextPrep(normalize={**rules, "max_repeat": 3}), str(tmp_path)).normalize is not None
