"""The MLM training module: vocabulary head on masked positions only, same loss as the HF forward."""

from __future__ import annotations

import pytest
import torch

from tests.fixtures.pretrain import one_thread, tiny_parts, write_tokenizer_dir
from kopretrain.train.objectives import MaskedLM, split_mlm


_threads = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(write_tokenizer_dir(tmp_path_factory.mktemp("tok")))


def _batch(tokenizer, rows=3, width=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, len(tokenizer), (rows, width), generator=g)
    mask = torch.ones_like(ids)
    mask[0, -4:] = 0
    ids[0, -4:] = tokenizer.pad_token_id
    chosen = (torch.rand(ids.shape, generator=g) < 0.3) & mask.bool()
    chosen[1, 2] = True
    labels = torch.where(chosen, ids, -100)
    inputs = torch.where(chosen, torch.full_like(ids, tokenizer.mask_token_id), ids)
    return inputs, mask, labels


@pytest.mark.parametrize("kind", ["bert", "electra"])
def test_sparse_head_loss_equals_the_full_model_loss(tokenizer, kind):
    model = tiny_parts("mlm", tokenizer, kind)["mlm"].eval()
    inputs, mask, labels = _batch(tokenizer)
    reference = model(input_ids=inputs, attention_mask=mask, labels=labels).loss.detach()
    out = MaskedLM(model)(inputs, mask, labels)
    assert split_mlm(model) is not None  # the sparse path was taken
    assert torch.allclose(out["loss"], reference, atol=1e-5)
    assert int(out["n_masked"]) == int((labels != -100).sum())
    assert float(out["ce_sum"]) == pytest.approx(reference.item() * int(out["n_masked"]), rel=1e-5)


def test_batch_without_masked_tokens_gives_zero_loss_with_a_graph(tokenizer):
    model = MaskedLM(tiny_parts("mlm", tokenizer, "bert")["mlm"])
    inputs, mask, labels = _batch(tokenizer)
    out = model(inputs, mask, torch.full_like(labels, -100))
    assert out["loss"].item() == 0.0 and int(out["n_masked"]) == 0
    out["loss"].backward()  # must not raise: DDP/Trainer call backward on every batch


def test_checkpoint_round_trip_and_export_as_auto_model_for_masked_lm(tmp_path, tokenizer):
    """The Trainer's own save/resume path: save_pretrained, then load_state_dict(strict=False) of
    the file. Every tensor comes back, the decoder stays tied, and a foreign layout is refused."""
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM

    module = MaskedLM(tiny_parts("mlm", tokenizer, "bert")["mlm"])
    module.save_pretrained(tmp_path / "checkpoint")
    again = MaskedLM(tiny_parts("mlm", tokenizer, "bert")["mlm"])
    again.load_state_dict(load_file(tmp_path / "checkpoint" / "model.safetensors"), strict=False)
    for (name, a), (_, b) in zip(module.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    inner = again.model
    assert inner.cls.predictions.decoder.weight is inner.bert.embeddings.word_embeddings.weight
    module.export(tmp_path / "export")  # after a checkpoint save: the plain model's config is untouched
    assert type(AutoModelForMaskedLM.from_pretrained(tmp_path / "export")).__name__ == "BertForMaskedLM"
    with pytest.raises(RuntimeError, match="does not match"):
        again.load_state_dict(load_file(tmp_path / "export" / "model.safetensors"), strict=False)
