"""Presets, generator sizing and continued-pretraining initialization (kopretrain.train.models)."""

from __future__ import annotations

import pytest
import torch

from tests.fixtures.pretrain import one_thread, write_checkpoint, write_tokenizer_dir
from kopretrain.hub.loading import resolved_commit
from kopretrain.tokenizer.fingerprint import vocab_hash
from kopretrain.train import models
from kopretrain.runs.records import StageError


_threads = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return write_tokenizer_dir(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def tokenizer(tok_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_dir)


def test_presets_follow_the_electra_paper_and_accept_overrides():
    small = models.resolve_arch("small")
    assert (small.num_layers, small.hidden_size, small.heads, small.intermediate_size, small.embedding_size) == \
        (12, 256, 4, 1024, 128)
    base = models.resolve_arch("base")
    assert (base.hidden_size, base.heads, base.embedding_size) == (768, 12, 768)
    assert base.generator_size_ratio == pytest.approx(1 / 3)
    tiny = models.resolve_arch("tiny", num_layers=2, hidden_size=0)  # 0 keeps the preset value
    assert (tiny.num_layers, tiny.hidden_size) == (2, 256)
    # BERT has no factorized embedding: its embedding width is the hidden width.
    assert models.resolve_arch("tiny", "bert").embedding_size == 256
    with pytest.raises(ValueError, match="--heads"):
        models.resolve_arch("tiny", hidden_size=100, heads=3)
    with pytest.raises(ValueError, match="--preset"):
        models.resolve_arch("huge")


def test_generator_is_a_quarter_of_the_discriminator_with_shared_embedding_width(tokenizer):
    disc_cfg = models.electra_config(models.resolve_arch("small"), tokenizer)
    gen_cfg = models.generator_config(disc_cfg, 0.25)
    assert gen_cfg.hidden_size == 64 and gen_cfg.num_attention_heads == 1 and gen_cfg.intermediate_size == 256
    assert gen_cfg.embedding_size == disc_cfg.embedding_size == 128
    assert gen_cfg.num_hidden_layers == disc_cfg.num_hidden_layers
    assert gen_cfg.vocab_size == disc_cfg.vocab_size == len(tokenizer)
    base_gen = models.generator_config(models.electra_config(models.resolve_arch("base"), tokenizer), 1 / 3)
    assert base_gen.hidden_size == 256 and base_gen.num_attention_heads == 4


def test_scratch_models_match_the_tokenizer(tokenizer):
    arch = models.resolve_arch("tiny", num_layers=2, hidden_size=32, heads=2, intermediate_size=64, embedding_size=16)
    rtd = models.build_scratch("rtd", "electra", arch, tokenizer)
    assert type(rtd["discriminator"]).__name__ == "ElectraForPreTraining"
    assert type(rtd["generator"]).__name__ == "ElectraForMaskedLM"
    bert = models.build_scratch("mlm", "bert", arch, tokenizer)["mlm"]
    assert type(bert).__name__ == "BertForMaskedLM"
    assert bert.config.vocab_size == len(tokenizer) and bert.config.pad_token_id == tokenizer.pad_token_id


def test_continue_from_bert_and_electra_checkpoints(tmp_path, tok_dir):
    bert = write_checkpoint(tmp_path / "bert", "bert", tok_dir)
    parts = models.load_checkpoint(str(bert), None, "mlm")
    assert type(parts["mlm"]).__name__ == "BertForMaskedLM" and parts["new_head"] == []  # its MLM head loads
    # RTD on a BERT checkpoint: it becomes the discriminator (one "replaced" logit per token)
    parts = models.load_checkpoint(str(bert), None, "rtd")
    assert type(parts["discriminator"]).__name__ == "BertForTokenClassification"
    assert parts["new_head"] == ["RTD head", "generator's MLM head"]
    assert models.load_checkpoint(str(bert), None, "rtd", generator_init="fresh")["new_head"] == ["RTD head", "generator"]
    # continuing that RTD run's output (discriminator + generator/): nothing starts untrained any more
    parts["discriminator"].save_pretrained(tmp_path / "bert-rtd")
    parts["generator"].save_pretrained(tmp_path / "bert-rtd" / "generator")
    again = models.load_checkpoint(str(tmp_path / "bert-rtd"), None, "rtd")
    assert again["new_head"] == [] and not any(again["fresh"].values())
    assert parts["fresh"]["discriminator"] == {"classifier.weight", "classifier.bias"}

    disc = write_checkpoint(tmp_path / "disc", "electra-disc", tok_dir)
    parts = models.load_checkpoint(str(disc), None, "rtd", generator_size_ratio=0.25)
    assert parts["generator_source"] == "new"  # the KcELECTRA case: only a discriminator is published
    assert parts["new_head"] == ["generator"]  # the discriminator's head is the checkpoint's
    assert parts["generator"].config.hidden_size == 8 and parts["generator"].config.embedding_size == 16
    from safetensors.torch import load_file

    ref = load_file(str(disc / "model.safetensors"))["electra.encoder.layer.0.attention.self.query.weight"]
    assert torch.equal(parts["discriminator"].electra.encoder.layer[0].attention.self.query.weight, ref)

    gen = write_checkpoint(tmp_path / "gen", "electra-gen", tok_dir)
    with pytest.raises(StageError, match="generator"):
        models.load_checkpoint(str(gen), None, "rtd")
    parts = models.load_checkpoint(str(disc), None, "rtd", generator_checkpoint=str(gen))
    assert parts["generator_source"] == str(gen) and parts["new_head"] == []
    # A generator checkpoint also continues as an MLM model.
    assert type(models.load_checkpoint(str(gen), None, "mlm")["mlm"]).__name__ == "ElectraForMaskedLM"


def test_split_discriminator_and_generator_repos_pin_their_own_revisions(tmp_path, tok_dir, monkeypatch):
    """KoELECTRA publishes -discriminator and -generator repos: each has its own commits, so the
    discriminator's --revision must not be asked of the generator's repo."""
    from tests.fixtures.hub import fake_hub

    disc_sha, gen_sha = "a" * 40, "b" * 40
    write_checkpoint(fake_hub(monkeypatch, tmp_path / "hub", "me/disc", disc_sha), "electra-disc", tok_dir)
    write_checkpoint(fake_hub(monkeypatch, tmp_path / "hub", "me/gen", gen_sha), "electra-gen", tok_dir)
    parts = models.load_checkpoint("me/disc", disc_sha, "rtd", generator_checkpoint="me/gen", generator_revision=gen_sha)
    assert parts["generator_source"] == "me/gen" and parts["new_head"] == []
    with pytest.raises(StageError, match="generator-checkpoint me/gen"):  # the old behaviour: disc's revision
        models.load_checkpoint("me/disc", disc_sha, "rtd", generator_checkpoint="me/gen", generator_revision=disc_sha)
    assert resolved_commit("me/gen", gen_sha) == gen_sha


def test_vocab_hash_and_extension_check(tmp_path, tok_dir, tokenizer):
    from transformers import AutoTokenizer

    assert vocab_hash(tokenizer) == vocab_hash(AutoTokenizer.from_pretrained(tok_dir))
    extended = AutoTokenizer.from_pretrained(tok_dir)
    extended.add_tokens(["ㅋㅋㅋ", "존잼"])
    models.check_vocab_extends(tokenizer, extended)  # appended tokens keep every old id
    assert vocab_hash(extended) != vocab_hash(tokenizer)
    other = AutoTokenizer.from_pretrained(write_tokenizer_dir(tmp_path / "other", vocab_size=150))
    with pytest.raises(StageError, match="renumbered"):
        models.check_vocab_extends(tokenizer, other)


def test_resolved_commit_is_none_for_local_dirs(tmp_path):
    assert resolved_commit(str(tmp_path), None) is None


def test_a_decoder_checkpoint_is_refused(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from kopretrain.runs.records import StageError

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64)).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(StageError, match="--checkpoint .*gpt2: GPT2LMHeadModel is not an encoder"):
        models.load_checkpoint(str(tmp_path / "gpt2"), None, "mlm")
