"""ELECTRA replaced-token detection (kopretrain.train.rtd): labels, sampling, tying, saving."""

from __future__ import annotations

import pytest
import torch

from tests.fixtures.pretrain import one_thread, tiny_parts, write_tokenizer_dir
from kopretrain.train.objectives import masked_logits
from kopretrain.train.rtd import ElectraRTD, corrupt, sample_replacements


_threads = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(write_tokenizer_dir(tmp_path_factory.mktemp("tok")))


def _rtd(tokenizer, **kw):
    torch.manual_seed(0)
    parts = tiny_parts("rtd", tokenizer)
    return ElectraRTD(parts["generator"], parts["discriminator"], **kw)


def _masked_batch(tokenizer, seed=0, rows=4, width=16):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, len(tokenizer), (rows, width), generator=g)
    attention = torch.ones_like(ids)
    attention[1, -5:] = 0
    ids[1, -5:] = tokenizer.pad_token_id
    chosen = (torch.rand(ids.shape, generator=g) < 0.25) & attention.bool()
    labels = torch.where(chosen, ids, -100)
    inputs = torch.where(chosen, torch.full_like(ids, tokenizer.mask_token_id), ids)
    return inputs, attention, labels, ids


def test_replaced_means_sample_differs_from_original():
    # "영화 정말 [MASK] [MASK] [PAD]": originals 7 and 9 at the masked positions.
    inputs = torch.tensor([[5, 6, 4, 4, 0]])
    labels = torch.tensor([[-100, -100, 7, 9, -100]])
    attention = torch.tensor([[1, 1, 1, 1, 0]])
    corrupted, replaced = corrupt(inputs, labels, torch.tensor([7, 8]), attention)
    assert corrupted.tolist() == [[5, 6, 7, 8, 0]]
    # Guessing the original (7) is not a replacement; a different token (8 for 9) is.
    assert replaced.tolist() == [[False, False, False, True, False]]


def test_forward_labels_are_exactly_sample_not_equal_original(tokenizer):
    model = _rtd(tokenizer).eval()
    inputs, attention, labels, original = _masked_batch(tokenizer)
    model.sample_generator = torch.Generator().manual_seed(3)
    out = model(inputs, attention, labels, return_details=True)
    masked = labels != -100
    corrupted, replaced = out["corrupted_ids"], out["replaced"]
    assert torch.equal(corrupted[~masked], inputs[~masked])          # only masked positions change
    assert torch.equal(corrupted[masked], out["sampled"])
    assert torch.equal(replaced, (corrupted != original) & attention.bool())
    assert not replaced[attention == 0].any()
    assert int(out["n_replaced"]) == int(replaced.sum())
    # The BCE targets are those labels over non-pad tokens only.
    assert torch.equal(out["disc_truth"], replaced[attention.bool()].float())


def test_sampling_follows_temperature_and_is_seedable():
    logits = torch.tensor([[0.0, 2.0, 1.0]]).repeat(4000, 1)
    a = sample_replacements(logits, 1.0, torch.Generator().manual_seed(0))
    b = sample_replacements(logits, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    shares = torch.bincount(a, minlength=3).float() / len(a)
    assert len(shares) == 3  # every id is in the vocabulary
    assert torch.allclose(shares, torch.softmax(logits[0], -1), atol=0.03)
    cold = sample_replacements(logits, 0.05, torch.Generator().manual_seed(0))
    assert (cold == 1).float().mean().item() > 0.99


def test_no_gradient_reaches_the_generator_through_the_sample(tokenizer):
    """Generator-only weights get exactly the gradient of the generator MLM loss."""
    model = _rtd(tokenizer, rtd_weight=50.0).eval()  # eval: no dropout, seeded sampling
    inputs, attention, labels, _ = _masked_batch(tokenizer)
    model.sample_generator = torch.Generator().manual_seed(1)
    model(inputs, attention, labels)["loss"].backward()
    joint = {n: p.grad.clone() for n, p in model.generator.electra.encoder.named_parameters()}
    model.zero_grad()
    logits, targets = masked_logits(model.generator, inputs, attention, labels)
    torch.nn.functional.cross_entropy(logits, targets).backward()
    for name, p in model.generator.electra.encoder.named_parameters():
        assert torch.allclose(joint[name], p.grad, atol=1e-6), name
    # ...while the shared embeddings do get the discriminator's gradient on top.
    assert model.discriminator.electra.embeddings.word_embeddings.weight.grad is not None


def test_embeddings_are_one_tensor_and_stay_tied_through_training(tokenizer):
    model = _rtd(tokenizer)
    disc_emb = model.discriminator.electra.embeddings
    assert model.generator.electra.embeddings is disc_emb
    assert model.generator.generator_lm_head.weight.data_ptr() == disc_emb.word_embeddings.weight.data_ptr()
    assert model.generator.electra.embeddings.position_embeddings.weight.data_ptr() == \
        disc_emb.position_embeddings.weight.data_ptr()
    inputs, attention, labels, _ = _masked_batch(tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        out = model(inputs, attention, labels)
        out["loss"].backward()
        opt.step()
        opt.zero_grad()
        losses.append(out["loss"].item())
    assert losses[-1] < losses[0]
    assert torch.equal(model.generator.electra.embeddings.word_embeddings.weight, disc_emb.word_embeddings.weight)


def test_saved_discriminator_loads_as_electra_for_pretraining_and_auto_model(tmp_path, tokenizer):
    from transformers import AutoModel, ElectraForMaskedLM, ElectraForPreTraining

    from safetensors.torch import load_file

    model = _rtd(tokenizer)
    model.save_pretrained(tmp_path / "checkpoint")  # the Trainer's checkpoint, then the stage's export
    model.export(tmp_path)
    disc = ElectraForPreTraining.from_pretrained(tmp_path)
    assert type(AutoModel.from_pretrained(tmp_path)).__name__ == "ElectraModel"
    gen = ElectraForMaskedLM.from_pretrained(tmp_path / "generator")
    assert torch.equal(gen.electra.embeddings.word_embeddings.weight, disc.electra.embeddings.word_embeddings.weight)
    assert gen.config.hidden_size == model.generator.config.hidden_size
    again = _rtd(tokenizer)
    torch.nn.init.zeros_(again.discriminator.discriminator_predictions.dense.weight)
    again.load_state_dict(load_file(tmp_path / "checkpoint" / "model.safetensors"), strict=False)
    assert torch.equal(again.discriminator.discriminator_predictions.dense.weight,
                       model.discriminator.discriminator_predictions.dense.weight)
    assert again.generator.electra.embeddings is again.discriminator.electra.embeddings


def _capture_discriminator_inputs(model):
    seen = {}

    def hook(module, args, kwargs):
        seen["input_ids"] = (kwargs.get("input_ids") if "input_ids" in kwargs else args[0]).clone()
        seen["attention_mask"] = kwargs.get("attention_mask")

    handle = model.discriminator.register_forward_pre_hook(hook, with_kwargs=True)
    return seen, handle


def test_discriminator_receives_the_corrupted_ids_not_the_masked_input(tokenizer):
    model = _rtd(tokenizer).eval()
    inputs, attention, labels, _ = _masked_batch(tokenizer)
    model.sample_generator = torch.Generator().manual_seed(3)
    seen, handle = _capture_discriminator_inputs(model)
    try:
        out = model(inputs, attention, labels, return_details=True)
    finally:
        handle.remove()
    masked = labels != -100
    assert masked.any()
    received = seen["input_ids"]
    assert torch.equal(received, out["corrupted_ids"])
    # The samples, never the [MASK] the generator saw, sit at the masked positions.
    assert torch.equal(received[masked], out["sampled"])
    assert not torch.equal(received, inputs)
    assert (received[masked] != tokenizer.mask_token_id).float().mean() > 0.5


@pytest.mark.parametrize("weight", [50.0, 7.0])
def test_loss_is_generator_loss_plus_weighted_discriminator_loss(tokenizer, weight):
    model = _rtd(tokenizer, rtd_weight=weight).eval()
    inputs, attention, labels, _ = _masked_batch(tokenizer)
    model.sample_generator = torch.Generator().manual_seed(1)
    out = model(inputs, attention, labels)
    gen, disc = out["gen_loss"].item(), out["disc_loss"].item()
    assert disc > 0.01  # an untrained discriminator: the weighted term is visible in the total
    assert out["loss"].item() == pytest.approx(gen + weight * disc, rel=1e-5)
    assert out["loss"].item() != pytest.approx(gen + disc, rel=1e-3)


def test_default_rtd_weight_is_fifty(tokenizer):
    model = _rtd(tokenizer).eval()
    assert model.rtd_weight == 50.0
    inputs, attention, labels, _ = _masked_batch(tokenizer)
    model.sample_generator = torch.Generator().manual_seed(1)
    out = model(inputs, attention, labels)
    assert out["loss"].item() == pytest.approx(out["gen_loss"].item() + 50.0 * out["disc_loss"].item(), rel=1e-5)


def test_evaluation_sampling_uses_the_seeded_generator_and_repeats(tokenizer):
    model = _rtd(tokenizer).eval()
    inputs, attention, labels, _ = _masked_batch(tokenizer)
    runs = []
    for global_seed in (11, 12):
        torch.manual_seed(global_seed)  # the global RNG must not decide the evaluation samples
        model.sample_generator = torch.Generator().manual_seed(3)
        with torch.no_grad():
            runs.append(model(inputs, attention, labels, return_details=True))
    assert torch.equal(runs[0]["sampled"], runs[1]["sampled"])
    assert torch.equal(runs[0]["disc_scores"], runs[1]["disc_scores"])
    assert runs[0]["disc_loss"].item() == runs[1]["disc_loss"].item()
    # ...and they are exactly what the seeded generator draws from the generator's logits.
    logits, _ = masked_logits(model.generator, inputs, attention, labels)
    expected = sample_replacements(logits, model.temperature, torch.Generator().manual_seed(3))
    assert torch.equal(runs[0]["sampled"], expected)


def test_special_tokens_are_left_out_of_the_discriminator_loss(tokenizer):
    """[CLS]/[SEP] are never masked: their target is always "original", which only teaches the
    discriminator to map them to a constant (the [CLS] collapse measured on a real checkpoint)."""
    inputs, attention, labels, _ = _masked_batch(tokenizer)
    inputs[:, 0], inputs[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    labels[:, 0] = labels[:, -1] = -100
    # [MASK] is special too (pretrain passes all_special_ids): the masked positions must still count
    special = [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id]
    for ids, left_out in (((), 0), (special, 4 + 3)):  # 4 [CLS] + 3 unpadded [SEP] (row 1's end is pad)
        model = _rtd(tokenizer, special_ids=ids).eval()
        model.sample_generator = torch.Generator().manual_seed(3)
        out = model(inputs, attention, labels)
        assert int(out["n_tokens"]) == int(attention.sum()) - left_out
        assert out["disc_scores"].numel() == int(out["n_tokens"])
    assert "special_ids" not in model.state_dict()  # checkpoints hold weights only
