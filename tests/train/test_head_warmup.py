"""pretrain --head-warmup-steps / --head-lr: a checkpoint's new head trains alone first, at its own rate."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import TrainerCallback

from tests.fixtures.pretrain import one_thread, write_checkpoint, write_data_stage, write_tokenizer_dir
from kopretrain import pretrain
from kopretrain.pretrain import PretrainConfig
from kopretrain.runs import registry
from kopretrain.runs.records import StageRun
from kopretrain.train import head_warmup

_threads = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A checkpoint without an MLM head (like a sentence-embedding model): a BERT's base model alone."""
    from transformers import AutoModel

    root = tmp_path_factory.mktemp("head_warmup")
    data, tok = write_data_stage(root / "data"), write_tokenizer_dir(root / "tok")
    full = write_checkpoint(root / "bert", "bert", tok)
    shutil.copytree(full, root / "encoder")
    for name in ("model.safetensors", "config.json"):
        (root / "encoder" / name).unlink()
    AutoModel.from_pretrained(full).save_pretrained(root / "encoder")
    return data, root / "encoder"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Checkpoints that come with a head: a BERT with its MLM head, and an ELECTRA discriminator
    alone (the KcELECTRA case: its RTD head is trained, only the generator is missing)."""
    root = tmp_path_factory.mktemp("published")
    tok = write_tokenizer_dir(root / "tok")
    return {"bert": write_checkpoint(root / "bert", "bert", tok), "disc": write_checkpoint(root / "disc", "electra-disc", tok)}


def head_of(data, checkpoint, objective, **kw) -> list[str]:
    """The head pretrain would warm up for this checkpoint, from the module its stage builds."""
    from transformers import AutoTokenizer

    cfg = config((data, checkpoint), objective, **kw)
    module, _ = pretrain.build_module(cfg, AutoTokenizer.from_pretrained(checkpoint), {})
    return head_warmup.head_parameter_names(module)


def config(encoder, objective="mlm", **kw) -> PretrainConfig:
    data, ckpt = encoder
    return PretrainConfig(input=str(data), tokenizer="checkpoint", init="checkpoint", checkpoint=str(ckpt),
                          objective=objective, max_steps=4, eval_steps=100, save_steps=100, logging_steps=1,
                          batch_size=8, max_length=32, precision="fp32", lr=2e-3, warmup_ratio=0.0, **kw)


def base_weights(path):
    """Embeddings and encoder layers (an MLM model has no pooler: AutoModel would make a random one)."""
    from transformers import AutoModel

    return {k: v for k, v in AutoModel.from_pretrained(path).state_dict().items() if not k.startswith("pooler.")}


def test_the_head_is_what_the_checkpoint_lacks(encoder):
    """MLM: the transform and the output bias (the decoder is the tied embedding matrix, part of the
    checkpoint). RTD on a BERT: the discriminator's classifier and the generator, not the shared embeddings."""
    from kopretrain.train import models
    from kopretrain.train.objectives import MaskedLM
    from kopretrain.train.rtd import ElectraRTD

    mlm = MaskedLM(models.load_checkpoint(str(encoder[1]), None, "mlm")["mlm"])
    names = head_warmup.head_parameter_names(mlm)
    assert names and all(".cls.predictions." in n for n in names), names
    assert any(n.endswith("transform.dense.weight") for n in names) and not any("embeddings" in n for n in names)
    scale = head_warmup.head_lr_scale(mlm, 10.0)
    assert {scale(n) for n, _ in mlm.named_parameters()} == {1.0, 10.0}

    parts = models.load_checkpoint(str(encoder[1]), None, "rtd", generator_size_ratio=0.5, generator_init="fresh")
    rtd = ElectraRTD(parts["generator"], parts["discriminator"], 50.0, 1.0, special_ids=[0])
    names = head_warmup.head_parameter_names(rtd)
    assert any(n.startswith("discriminator.classifier") for n in names)
    assert any(n.startswith("generator.") and ".encoder.layer.0." in n for n in names)
    assert not any(n.startswith("discriminator.bert.") or "word_embeddings" in n for n in names)


def test_what_the_checkpoint_has_is_never_head(encoder, published):
    """Only parameters the checkpoint lacks: KcELECTRA's trained discriminator head keeps --lr and
    stays still in the warm-up, as do the encoder layers a generator copies from the checkpoint."""
    data = encoder[0]
    names = head_of(data, published["disc"], "rtd", generator_size_ratio=0.5)
    assert names and all(n.startswith("generator.") for n in names), names
    assert not any("word_embeddings" in n for n in names)  # shared with the discriminator

    names = head_of(data, published["bert"], "rtd", generator_size_ratio=0.5)  # lower-layer generator
    assert any(n.startswith("discriminator.classifier") for n in names)
    assert any(n.startswith("generator.") and ".cls.predictions." in n for n in names)
    assert not any(".encoder.layer." in n or "embeddings" in n for n in names), names
    fresh = head_of(data, published["bert"], "rtd", generator_size_ratio=0.5, generator_init="fresh")
    assert any(n.startswith("generator.") and ".encoder.layer.0." in n for n in fresh)

    assert head_of(data, published["bert"], "mlm") == []  # its MLM head is the checkpoint's


def test_a_warmup_with_nothing_new_is_ignored_with_a_warning(encoder, published, caplog):
    from transformers import AutoTokenizer

    cfg = config((encoder[0], published["bert"]), "mlm", head_warmup_steps=4, head_lr=1e-2)
    module, _ = pretrain.build_module(cfg, AutoTokenizer.from_pretrained(published["bert"]), {})
    with caplog.at_level("WARNING", logger="kopretrain.train.head_warmup"):
        scale, callbacks, record = head_warmup.setup(module, 4, 1e-2, 2e-3)
    assert scale is None and callbacks == [] and record["head_parameters"] == 0
    assert "ignored" in caplog.text


def test_a_kcelectra_style_warmup_trains_the_generator_alone(encoder, published, tmp_path):
    from transformers import ElectraForPreTraining

    disc = published["disc"]
    cfg = config((encoder[0], disc), "rtd", head_warmup_steps=4, head_lr=1e-2, generator_size_ratio=0.5)
    out = registry.execute("pretrain", cfg, tmp_path / "kc")
    before = ElectraForPreTraining.from_pretrained(disc).state_dict()
    after = ElectraForPreTraining.from_pretrained(out).state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert not moved, f"the discriminator moved during the warm-up: {moved}"
    stats = json.loads((out / "stage.json").read_text())["stats"]
    assert stats["base_model"]["new_head"] == ["generator"] and stats["head_warmup"]["head_parameters"] > 0


@pytest.mark.parametrize("objective", ["mlm", "rtd"])
def test_warmup_steps_leave_the_checkpoint_untouched_and_train_the_head(encoder, tmp_path, objective):
    original = base_weights(encoder[1])
    out = registry.execute("pretrain", config(encoder, objective, head_warmup_steps=4, head_lr=1e-2), tmp_path / "w")
    after = base_weights(out)
    moved = [k for k in original if not torch.equal(after[k], original[k])]
    assert not moved, f"the encoder moved during the warm-up: {moved}"
    record = json.loads((out / "stage.json").read_text())["stats"]
    assert record["head_warmup"]["steps"] == 4 and record["head_warmup"]["head_lr"] == 1e-2
    assert record["head_warmup"]["head_parameters"] > 0
    assert record["base_model"]["new_head"] == (["MLM head"] if objective == "mlm" else ["RTD head", "generator's MLM head"])
    logs = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in logs if "loss" in e]
    assert losses[-1] < losses[0]  # the head alone still learns


class PeakRates(TrainerCallback):
    """Records each optimizer group's peak rate and size as training starts."""

    groups: list = []

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        PeakRates.groups = [(g["initial_lr"], sum(p.numel() for p in g["params"])) for g in optimizer.param_groups]


def test_after_the_warmup_everything_trains_and_the_head_keeps_its_rate(encoder, tmp_path):
    original = base_weights(encoder[1])
    cfg = config(encoder, head_warmup_steps=2, head_lr=1e-2)
    with StageRun("pretrain", cfg, tmp_path / "after") as run:
        pretrain.run(cfg, run, callbacks=[PeakRates()])
    after = base_weights(tmp_path / "after")
    assert any(not torch.equal(after[k], original[k]) for k in original)
    head = json.loads((tmp_path / "after" / "stage.json").read_text())["stats"]["head_warmup"]["head_parameters"]
    rates = {}
    for lr, n in PeakRates.groups:
        rates[lr] = rates.get(lr, 0) + n
    assert sorted(rates) == pytest.approx([2e-3, 1e-2]) and rates[max(rates)] == head


def test_a_resumed_run_warms_up_only_for_the_steps_it_has_left(encoder):
    from transformers import TrainerState

    from kopretrain.train import models
    from kopretrain.train.objectives import MaskedLM

    mlm = MaskedLM(models.load_checkpoint(str(encoder[1]), None, "mlm")["mlm"])
    for p in mlm.parameters():
        p.grad = torch.ones_like(p)
    callback = head_warmup.HeadWarmup(mlm, steps=3)
    callback.on_pre_optimizer_step(None, TrainerState(global_step=3), None)
    assert all(p.grad is not None for p in mlm.parameters())  # past the warm-up: nothing dropped
    callback.on_pre_optimizer_step(None, TrainerState(global_step=2), None)
    dropped = {n for n, p in mlm.named_parameters() if p.grad is None}
    assert dropped and dropped.isdisjoint(head_warmup.head_parameter_names(mlm))


def test_a_warmup_as_long_as_an_epochs_run_is_warned_about(encoder, caplog):
    from transformers import TrainerState

    from kopretrain.train import models
    from kopretrain.train.objectives import MaskedLM

    callback = head_warmup.HeadWarmup(MaskedLM(models.load_checkpoint(str(encoder[1]), None, "mlm")["mlm"]), steps=8)
    callback.on_train_begin(None, TrainerState(max_steps=20), None)
    assert "covers the whole run" not in caplog.text
    callback.on_train_begin(None, TrainerState(max_steps=8), None)
    assert "--head-warmup-steps 8 covers the whole run (8 steps)" in caplog.text


def test_warmup_needs_a_checkpoint():
    with pytest.raises(ValueError, match="--head-warmup-steps"):
        PretrainConfig(input="x", tokenizer="t", head_warmup_steps=10)
    with pytest.raises(ValueError, match="--head-lr"):
        PretrainConfig(input="x", tokenizer="t", init="checkpoint", checkpoint="c", head_lr=-1)


def test_a_new_head_without_a_warmup_is_warned_about(caplog):
    with caplog.at_level("WARNING", logger="kopretrain.train.head_warmup"):
        head_warmup.advise("ckpt", ["MLM head"], steps=0)
    assert "ckpt has no MLM head" in caplog.text and "--head-warmup-steps" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="kopretrain.train.head_warmup"):
        head_warmup.advise("ckpt", ["MLM head"], steps=60)  # asked for: nothing to say
        head_warmup.advise("ckpt", [], steps=0)  # the head came with the checkpoint
    assert not caplog.text


def test_the_stage_warns_when_the_new_head_is_not_warmed_up(encoder, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="kopretrain.train.head_warmup"):
        registry.execute("pretrain", config(encoder), tmp_path / "cold")
    assert "has no MLM head" in caplog.text
