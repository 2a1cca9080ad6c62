"""Masking collators: rates, replacement splits, whole words, spans, RTD preset, eval masks.

Statistics run on ~30k tokens of review-like Korean text (tests/ko_tiny.py) with fixed seeds.
"""

from __future__ import annotations

import time

import datasets
import numpy as np
import pytest
import torch

from tests.fixtures import ko_tiny as ko_tiny
from kopretrain.train import packing
from kopretrain.train.collators import premasked_collator, span_mask
from kopretrain.train.masking import RTD_MASKING, MaskingConfig, expected_span_length, fixed_eval_features, make_collator

MAX_LEN = 128


@pytest.fixture(scope="module")
def tok():
    return ko_tiny.tokenizer()


@pytest.fixture(scope="module")
def tokenized(tok):
    ds = datasets.Dataset.from_dict({"text": ko_tiny.sentences(2000, seed=1)})
    return packing.tokenize_texts(ds, tok, word_level="eojeol")


@pytest.fixture(scope="module")
def packed_rows(tok, tokenized, tmp_path_factory):
    return packing.pack(tokenized, tok, MAX_LEN, cache_dir=str(tmp_path_factory.mktemp("pack"))).to_list()


def run_batches(collator, rows, passes=2, batch_size=32):
    """Collate ``rows`` ``passes`` times; return stacked originals, inputs, labels, word ids, attention."""
    out = {k: [] for k in ("orig", "inputs", "labels", "words", "attn")}
    for _ in range(passes):
        for i in range(0, len(rows), batch_size):
            feats = rows[i : i + batch_size]
            batch = collator(feats)
            width = batch["input_ids"].shape[1]
            out["orig"].append(torch.tensor([f["input_ids"] + [0] * (width - len(f["input_ids"])) for f in feats]))
            out["words"].append(torch.tensor([f["word_ids"] + [-1] * (width - len(f["word_ids"])) for f in feats]))
            out["inputs"].append(batch["input_ids"])
            out["labels"].append(batch["labels"])
            out["attn"].append(batch["attention_mask"])
    width = max(t.shape[1] for t in out["inputs"])
    return {k: torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=-1) for t in v]) for k, v in out.items()}


def maskable(tok, r):
    special = torch.tensor(tok.all_special_ids)
    return (r["attn"] == 1) & ~torch.isin(r["orig"], special)


def fates(tok, r, selected):
    mask_id = tok.mask_token_id
    is_mask = selected & (r["inputs"] == mask_id)
    kept = selected & (r["inputs"] == r["orig"])
    rand = selected & ~is_mask & ~kept
    return is_mask, kept, rand


def test_mlm_rate_split_and_specials(tok, packed_rows):
    r = run_batches(make_collator(tok, "mlm", seed=0), packed_rows)
    ok = maskable(tok, r)
    selected = r["labels"] != -100
    assert not (selected & ~ok).any(), "a special or pad token was selected"
    assert torch.equal(r["labels"][selected], r["orig"][selected])
    assert torch.equal(r["inputs"][~selected], r["orig"][~selected]), "unselected tokens must be untouched"
    rate = selected.sum().item() / ok.sum().item()
    assert abs(rate - 0.15) < 0.01, rate
    is_mask, kept, rand = (f.sum().item() / selected.sum().item() for f in fates(tok, r, selected))
    assert abs(is_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(rand - 0.1) < 0.02, (is_mask, kept, rand)
    random_ids = r["inputs"][fates(tok, r, selected)[2]]
    assert not torch.isin(random_ids, torch.tensor(tok.all_special_ids)).any(), "random draw hit a special id"


def test_configurable_rates(tok, packed_rows):
    cfg = MaskingConfig(mlm_probability=0.3, mask_replace_prob=0.5, random_replace_prob=0.3)
    r = run_batches(make_collator(tok, "mlm", cfg, seed=3), packed_rows, passes=1)
    selected = r["labels"] != -100
    assert abs(selected.sum().item() / maskable(tok, r).sum().item() - 0.3) < 0.015
    is_mask, kept, rand = (f.sum().item() / selected.sum().item() for f in fates(tok, r, selected))
    assert abs(is_mask - 0.5) < 0.03 and abs(rand - 0.3) < 0.03 and abs(kept - 0.2) < 0.03


def test_rtd_preset_never_replaces_randomly(tok, packed_rows):
    assert RTD_MASKING.replace_probs("rtd") == (0.85, 0.0)
    assert MaskingConfig().replace_probs("rtd") == (0.85, 0.0)  # objective defaults
    r = run_batches(make_collator(tok, "rtd", seed=0), packed_rows)
    selected = r["labels"] != -100
    is_mask, kept, rand = fates(tok, r, selected)
    assert rand.sum().item() == 0
    assert abs(is_mask.sum().item() / selected.sum().item() - 0.85) < 0.02
    assert abs(selected.sum().item() / maskable(tok, r).sum().item() - 0.15) < 0.01


def words_of(r, selected, ok):
    """Per (row, word): number of tokens and number selected, over maskable tokens."""
    rows, cols = torch.nonzero(ok & (r["words"] >= 0), as_tuple=True)
    key = rows * 10_000 + r["words"][rows, cols]
    uniq, inv = torch.unique(key, return_inverse=True)
    total = torch.bincount(inv, minlength=len(uniq))
    chosen = torch.bincount(inv, weights=selected[rows, cols].double(), minlength=len(uniq)).long()
    return inv, rows, cols, total, chosen


@pytest.mark.parametrize("level", ["eojeol", "morpheme"])
def test_wwm_masks_whole_words(tok, level, tmp_path):
    texts, starts, lens = ko_tiny.analyzed()
    ds = datasets.Dataset.from_dict({"text": texts})
    if level == "morpheme":
        ds = ds.add_column("morph_start", starts).add_column("morph_len", lens)
    rows = packing.pack(packing.tokenize_texts(ds, tok, word_level=level), tok, MAX_LEN, cache_dir=str(tmp_path)).to_list()
    r = run_batches(make_collator(tok, "wwm", seed=0), rows, passes=10)
    ok, selected = maskable(tok, r), r["labels"] != -100
    inv, wr, wc, total, chosen = words_of(r, selected, ok)
    assert ((chosen == 0) | (chosen == total)).all(), "a word was masked partly"
    assert (total > 1).float().mean() > 0.2, "test data needs multi-token words"
    assert abs(selected.sum().item() / ok.sum().item() - 0.15) < 0.015
    # 80/10/10 per word: all tokens of a selected word share their fate.
    is_mask, kept, _ = fates(tok, r, selected)
    n_mask = torch.bincount(inv, weights=is_mask[wr, wc].double(), minlength=len(total)).long()
    sel_words = chosen > 0
    assert ((n_mask[sel_words] == 0) | (n_mask[sel_words] == total[sel_words])).all()
    mask_share = (n_mask[sel_words] > 0).float().mean().item()
    n_kept = torch.bincount(inv, weights=kept[wr, wc].double(), minlength=len(total)).long()
    kept_share = (n_kept[sel_words] == total[sel_words]).float().mean().item()
    assert abs(mask_share - 0.8) < 0.03 and abs(kept_share - 0.1) < 0.03, (mask_share, kept_share)


def test_wwm_needs_word_ids(tok):
    collator = make_collator(tok, "wwm")
    with pytest.raises(ValueError, match="word_ids"):
        collator([{"input_ids": [2, 10, 11, 3]}])


def test_span_lengths_and_boundaries(tok, packed_rows):
    target = expected_span_length(0.2, 10)
    assert abs(target - 3.8) < 0.01  # SpanBERT's reported mean
    rng = np.random.default_rng(0)
    probs = 0.2 * 0.8 ** np.arange(10)
    probs /= probs.sum()
    # Long rows show the clipped geometric (only a row's last span is cut short by the budget).
    long_rows = np.ones((20, 2000), dtype=bool)
    long_rows[:, [0, -1]] = False
    span_of_token, spans = span_mask(long_rows, None, 0.15, probs, rng)
    lengths = np.array([e - s for _, s, e in spans])
    assert lengths.max() <= 10 and abs(lengths.mean() - target) < 0.15, lengths.mean()
    assert abs((span_of_token >= 0).sum() / long_rows.sum() - 0.15) < 0.005
    # Packed reviews: spans are contiguous, inside one review, and stop at [SEP].
    ids = torch.tensor([r["input_ids"] for r in packed_rows])
    ok = (torch.tensor([r["attention_mask"] for r in packed_rows]) == 1) & ~torch.isin(ids, torch.tensor(tok.all_special_ids))
    span_of_token, spans = span_mask(ok.numpy(), None, 0.15, probs, rng)
    for b, s, e in spans:
        assert ok[b, s:e].all(), "span crosses a special token"
        assert (span_of_token[b, s:e] >= 0).all()
    assert abs((span_of_token >= 0).sum() / ok.sum().item() - 0.15) < 0.01


def test_span_collator_rate_and_per_span_fate(tok, packed_rows):
    r = run_batches(make_collator(tok, "span", seed=0), packed_rows)
    ok, selected = maskable(tok, r), r["labels"] != -100
    assert not (selected & ~ok).any()
    assert abs(selected.sum().item() / ok.sum().item() - 0.15) < 0.01
    is_mask, kept, rand = (f.sum().item() / selected.sum().item() for f in fates(tok, r, selected))
    assert abs(is_mask - 0.8) < 0.04 and abs(kept - 0.1) < 0.03, (is_mask, kept)


def test_span_word_unit_snaps_to_words(tok, packed_rows):
    r = run_batches(make_collator(tok, "span", MaskingConfig(span_unit="word"), seed=0), packed_rows, passes=1)
    ok, selected = maskable(tok, r), r["labels"] != -100
    _, _, _, total, chosen = words_of(r, selected, ok)
    assert ((chosen == 0) | (chosen == total)).all(), "word-unit spans must cover whole words"
    assert abs(selected.sum().item() / ok.sum().item() - 0.15) < 0.02


def test_ragged_batches(tok, tokenized):
    rows = packing.frame_texts(tokenized.select(range(64)), tok, MAX_LEN).to_list()
    for objective in ("mlm", "wwm", "span", "rtd"):
        batch = make_collator(tok, objective, seed=0, pad_to_multiple_of=8)(rows[:32])
        assert set(batch) == {"input_ids", "attention_mask", "labels"}
        lengths = torch.tensor([len(r["input_ids"]) for r in rows[:32]])
        assert batch["input_ids"].shape[1] % 8 == 0 and batch["input_ids"].shape[1] >= lengths.max()
        pad = torch.arange(batch["input_ids"].shape[1])[None, :] >= lengths[:, None]
        assert (batch["input_ids"][pad] == tok.pad_token_id).all() and (batch["attention_mask"][pad] == 0).all()
        assert (batch["labels"][pad] == -100).all()
    # Features without attention_mask/word_ids (plain mlm) also work.
    batch = make_collator(tok, "mlm", seed=0)([{"input_ids": [2, 50, 51, 3]}, {"input_ids": [2, 60, 3]}])
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]]


def test_seeded_collators_are_reproducible(tok, packed_rows):
    for objective in ("mlm", "wwm", "span"):
        a = make_collator(tok, objective, seed=7)(packed_rows[:32])
        b = make_collator(tok, objective, seed=7)(packed_rows[:32])
        c = make_collator(tok, objective, seed=8)(packed_rows[:32])
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
        assert not torch.equal(a["labels"], c["labels"])


def test_fixed_eval_features(tok, tokenized):
    framed = packing.frame_texts(tokenized.select(range(200)), tok, MAX_LEN)
    collator = make_collator(tok, "wwm")  # unseeded: the eval seed decides
    first = fixed_eval_features(framed, collator, seed=0, batch_size=50)
    collator(framed.select(range(8)).to_list())  # training use in between must not matter
    again = fixed_eval_features(framed, collator, seed=0, batch_size=50)
    other = fixed_eval_features(framed, collator, seed=1, batch_size=50)
    assert first.column_names == ["input_ids", "attention_mask", "labels"]
    assert first["labels"] == again["labels"] and first["input_ids"] == again["input_ids"]
    assert first["labels"] != other["labels"]
    assert [len(x) for x in first["input_ids"]] == framed["length"]
    n_sel = sum(l != -100 for row in first["labels"] for l in row)
    assert 0.1 < n_sel / sum(framed["length"]) < 0.2
    batch = premasked_collator(tok)(first.select(range(4)).to_list())
    assert torch.equal(batch["labels"][0, : len(first[0]["labels"])], torch.tensor(first[0]["labels"]))
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()


@pytest.mark.benchmark  # a timing, so not in the default run; benchmarks/bench_packing.py measures it properly
@pytest.mark.parametrize("objective", ["mlm", "wwm", "span"])
def test_collator_speed(tok, packed_rows, objective):
    rows = (packed_rows * 2)[:32]
    collator = make_collator(tok, objective, seed=0)
    times = []
    for _ in range(15):
        start = time.perf_counter()
        collator(rows)
        times.append(time.perf_counter() - start)
    # ~1-3 ms here; a loaded shared CPU gets slack, a per-token Python loop would not pass.
    assert np.median(times) < 0.02, f"{objective}: {np.median(times) * 1000:.1f} ms per 32x128 batch"


def test_config_validation():
    with pytest.raises(ValueError, match="mlm_probability"):
        MaskingConfig(mlm_probability=1.5)
    with pytest.raises(ValueError, match="mask_replace_prob"):
        MaskingConfig(mask_replace_prob=0.9, random_replace_prob=0.2)
    assert MaskingConfig().replace_probs("wwm") == (0.8, 0.1)
    with pytest.raises(ValueError, match="mlm: 0.95 \\+ 0.1"):  # fits rtd's default (no random), not mlm's
        MaskingConfig(mask_replace_prob=0.95).replace_probs("mlm")
    assert MaskingConfig(mask_replace_prob=0.95).replace_probs("rtd") == (0.95, 0.0)


def test_span_collator_all_tokens_of_a_span_share_one_fate(tok, packed_rows, monkeypatch):
    """SpanBERT: the 80/10/10 decision is per span: a span is all [MASK], all kept or all random."""
    from kopretrain.train import collators

    recorded = []
    real_span_mask = collators.span_mask

    def recording_span_mask(*args, **kwargs):
        span_of_token, spans = real_span_mask(*args, **kwargs)
        recorded.append(span_of_token.copy())
        return span_of_token, spans

    monkeypatch.setattr(collators, "span_mask", recording_span_mask)
    collator = make_collator(tok, "span", seed=0)
    mask_id = tok.mask_token_id
    n_spans = n_multi = mixed_mask = mixed_kept_random = 0
    fate_counts = {"mask": 0, "kept": 0, "random": 0}
    for i in range(0, len(packed_rows), 32):
        feats = packed_rows[i : i + 32]
        batch = collator(feats)
        span_of_token = torch.from_numpy(recorded[-1])
        inputs, labels = batch["input_ids"], batch["labels"]
        assert torch.equal(labels != -100, span_of_token >= 0)
        for row in range(inputs.shape[0]):
            for sid in span_of_token[row][span_of_token[row] >= 0].unique().tolist():
                where = span_of_token[row] == sid
                got, orig = inputs[row][where], labels[row][where]
                n_spans += 1
                n_multi += int(where.sum() > 1)
                is_mask = got == mask_id
                if is_mask.any() and not is_mask.all():
                    mixed_mask += 1
                    continue
                if is_mask.all():
                    fate_counts["mask"] += 1
                    continue
                kept = got == orig
                if kept.all():
                    fate_counts["kept"] += 1
                elif (~kept).all():
                    fate_counts["random"] += 1
                else:
                    mixed_kept_random += 1
    assert n_multi > 200, "the fixture must produce many multi-token spans"
    assert mixed_mask == 0, f"{mixed_mask} of {n_spans} spans are partly [MASK]"
    # A random replacement can hit the original id by chance (1 / vocabulary): allow a stray one.
    assert mixed_kept_random <= max(2, n_spans // 500), (mixed_kept_random, n_spans)
    assert fate_counts["mask"] and fate_counts["kept"] and fate_counts["random"], fate_counts
