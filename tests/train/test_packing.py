"""Packing and length bucketing of short reviews; eojeol and kiwipiepy-morpheme word ids."""

from __future__ import annotations

import re

import datasets
import numpy as np
import pytest

from tests.fixtures import ko_tiny as ko_tiny
from kopretrain.train import packing


@pytest.fixture(scope="module")
def tok():
    return ko_tiny.tokenizer()


@pytest.fixture(scope="module")
def texts():
    return ko_tiny.sentences(2000, seed=5)


@pytest.fixture(scope="module")
def tokenized(tok, texts):
    return packing.tokenize_texts(datasets.Dataset.from_dict({"text": texts}), tok, word_level="eojeol")


def test_word_ids_from_offsets_korean_example():
    # "배송 빨랐어요": tokens 배|송|빨|랐|어요; kiwipiepy: 배송(0,2) 빠르(3,1) 었(4,1) 어요(5,2)
    offsets = [[(0, 1), (1, 2), (3, 4), (4, 5), (5, 7)]]
    assert packing.word_ids_from_offsets(["배송 빨랐어요"], offsets) == [[0, 0, 1, 1, 1]]
    morphs = ([[0, 3, 4, 5]], [[2, 1, 1, 2]])
    assert packing.word_ids_from_offsets(["배송 빨랐어요"], offsets, morphs) == [[0, 0, 1, 2, 3]]
    # "했어": 하/VV and 었/EP share the character 했 -> one word; a text without analysis -> eojeols.
    texts = ["했어 좋아", "배송 빨랐어요"]
    offsets = [[(0, 1), (1, 2), (3, 4), (4, 5)], [(0, 2), (3, 7)]]
    morphs = ([[0, 0, 1, 3, 4], None], [[1, 1, 1, 1, 1], None])
    assert packing.word_ids_from_offsets(texts, offsets, morphs) == [[0, 1, 2, 3], [0, 1]]


def test_eojeol_word_ids_match_whitespace(tok, texts, tokenized):
    enc = tok(texts[:300], add_special_tokens=False, return_offsets_mapping=True)
    for text, offs, words in zip(texts, enc["offset_mapping"], tokenized["word_ids"][:300]):
        spans = [m.span() for m in re.finditer(r"\S+", text)]
        expected = [next(i for i, (s, e) in enumerate(spans) if s <= start < e) for start, _ in offs]
        assert words == expected, text


@pytest.fixture(scope="module", params=["wordpiece", "unigram"])
def any_tok(request, tok, tmp_path_factory):
    """WordPiece (``##``) and a ``tokenizers`` Metaspace Unigram, whose ``▁`` pieces have offsets
    that start on the space before their word."""
    if request.param == "wordpiece":
        return tok
    from transformers import AutoTokenizer

    from kopretrain.testing import tiny_unigram_checkpoint

    path = tiny_unigram_checkpoint(tmp_path_factory.mktemp("uni"), ko_tiny.sentences(2000, seed=5), vocab_size=300)
    return AutoTokenizer.from_pretrained(str(path))


def test_morpheme_word_ids_align_with_analyze_offsets(any_tok):
    tok = any_tok
    texts, starts, lens = ko_tiny.analyzed()
    ds = datasets.Dataset.from_dict({"text": texts, "morph_start": starts, "morph_len": lens})
    out = packing.tokenize_texts(ds, tok, word_level="morpheme")
    enc = tok(texts, add_special_tokens=False, return_offsets_mapping=True)
    split_eojeols = 0
    for text, offs, words, ms, ml in zip(texts, enc["offset_mapping"], out["word_ids"], starts, lens):
        # Reference: the last morpheme whose character span holds the token's first non-space
        # character (a Unigram "▁" piece starting on the space belongs to the word after it).
        firsts = [next(i for i in range(start, len(text)) if not text[i].isspace()) for start, _ in offs]
        owner = [max(i for i, (s, n) in enumerate(zip(ms, ml)) if s <= first < s + n) for first in firsts]
        # Same morpheme <-> same word id (morphemes sharing one character, 하+었 in 했, count as one).
        span_of = [(ms[o], ml[o]) for o in owner]
        for a in range(len(offs)):
            for b in range(a + 1, len(offs)):
                assert (words[a] == words[b]) == (span_of[a] == span_of[b]), (text, a, b)
        eojeols = packing.word_ids_from_offsets([text], [offs])[0]
        split_eojeols += len(set(words)) > len(set(eojeols))
    assert split_eojeols > 100, "morpheme words should split many eojeols (data sanity)"
    # A text that prepare() changes no longer fits its offsets: it falls back to eojeol words.
    changed = packing.tokenize_texts(ds.select(range(3)), tok, word_level="morpheme",
                                     prepare=lambda ts: [ts[0] + " 좋아요"] + ts[1:])
    first = enc["offset_mapping"][0]
    assert changed["word_ids"][0][: len(first)] == packing.word_ids_from_offsets([texts[0]], [first])[0]
    assert changed["word_ids"][1:] == out["word_ids"][1:3]


def test_morpheme_level_needs_analysis_or_pretokenized_text(tok):
    ds = datasets.Dataset.from_dict({"text": ["배송 빨랐어요"]})
    with pytest.raises(ValueError, match="morph_start"):
        packing.tokenize_texts(ds, tok, word_level="morpheme")
    # Text segmented by pretokenize_morphemes ("배송 빨랐￭어요") carries its morphemes as joiners.
    assert packing.resolve_word_level("morpheme", "morpheme") == "marked"
    assert packing.resolve_word_level("morpheme", "eojeol") == "morpheme"


def flat_tokens(rows, specials):
    return [t for row in rows for t, m in zip(row["input_ids"], row["attention_mask"]) if m and t not in specials]


@pytest.mark.parametrize("max_length,batch_size", [(128, 1000), (16, 7)])
def test_pack_conserves_tokens_and_words(tok, tokenized, tmp_path, max_length, batch_size):
    # A 200-token text must be cut into pieces, not dropped; small read batches test the carry-over.
    long = {"input_ids": [[10 + i % 50 for i in range(200)]], "word_ids": [[i // 3 for i in range(200)]]}
    source = datasets.concatenate_datasets(
        [tokenized.select(range(500)), datasets.Dataset.from_dict(long, features=tokenized.features), tokenized.select(range(500, 700))]
    )
    rows = packing.pack(source, tok, max_length, batch_size=batch_size, cache_dir=str(tmp_path)).to_list()
    specials = set(tok.all_special_ids)
    assert flat_tokens(rows, specials) == [t for ids in source["input_ids"] for t in ids], "tokens lost or reordered"
    assert all(len(r["input_ids"]) == max_length for r in rows)
    assert all(r["input_ids"][0] == tok.cls_token_id for r in rows)
    # Padding only where a row could not hold another token + [SEP], and at the very end.
    pads = [max_length - sum(r["attention_mask"]) for r in rows]
    assert max(pads[:-1]) <= 1 and sum(pads[:-1]) <= len(rows) // 10
    for row in rows:
        ids, words, mask = row["input_ids"], row["word_ids"], row["attention_mask"]
        real = [i for i, m in enumerate(mask) if m]
        assert ids[real[-1]] == tok.sep_token_id
        assert all((w == -1) == (t in specials or not m) for t, w, m in zip(ids, words, mask))
        content = [w for w in words if w >= 0]
        assert content == sorted(content) and content[0] == 0, "word ids unique and ordered within a row"
        # A word never continues across [SEP]: the ids on either side differ.
        for i, t in enumerate(ids[1:-1], start=1):
            if t == tok.sep_token_id and words[i - 1] >= 0 and words[i + 1] >= 0:
                assert words[i - 1] != words[i + 1]


def test_pack_and_frame_keep_whole_words(tok, tokenized, tmp_path):
    rows = packing.pack(tokenized.select(range(200)), tok, 128, cache_dir=str(tmp_path)).to_list()
    # Rebuild each text's word ids from the packed rows (texts end at [SEP]) and compare.
    rebuilt, current = [], []
    for row in rows:
        for t, w, m in zip(row["input_ids"][1:], row["word_ids"][1:], row["attention_mask"][1:]):
            if m and t == tok.sep_token_id:
                rebuilt.append(current)
                current = []
            elif m:
                current.append(w)
    original = [w for w in tokenized.select(range(200))["word_ids"]]
    flat_o = [w for ws in original for w in ws]
    flat_r = [w for ws in rebuilt for w in ws]
    assert len(flat_o) == len(flat_r)
    same = lambda ws: [a == b for a, b in zip(ws, ws[1:])]  # noqa: E731
    # Within a piece, "same word as the previous token" is preserved (a cut can only split, not merge).
    piece_o = [s for ws in original for s in same(ws)]
    assert sum(piece_o) >= sum(s for ws in rebuilt for s in same(ws)) >= sum(piece_o) - len(rows)

    framed = packing.frame_texts(tokenized.select(range(200)), tok, 10)
    assert all(len(x) <= 10 for x in framed["input_ids"])
    assert flat_tokens(framed.to_list(), set(tok.all_special_ids)) == [
        t for ids in tokenized.select(range(200))["input_ids"] for t in ids
    ]


def test_pad_share_packing_vs_naive_and_buckets(tok, tokenized, tmp_path):
    lengths = [len(x) for x in tokenized["input_ids"]]
    assert 10 <= np.mean(lengths) <= 25  # review-like lengths
    naive = packing.pad_share(lengths, 128, "naive")
    bucket = packing.pad_share(lengths, 128, "bucket", batch_size=32)
    packed = packing.pack(tokenized, tok, 128, cache_dir=str(tmp_path))
    pack_share = packing.pad_share(packed, 128, "pack")
    print(f"pad share at 128: naive {naive:.1%}, bucket {bucket:.1%}, pack {pack_share:.2%}")
    assert naive > 0.6
    assert pack_share < 0.05
    assert pack_share < bucket < naive
    assert pack_share == pytest.approx(packing.pad_share(lengths, 128, "pack"), abs=1e-9)
    # Same answer from a tokenized dataset as from its lengths.
    assert packing.pad_share(tokenized, 128, "naive") == pytest.approx(naive)


def test_bucket_batches_cover_all_and_group_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 60, size=3000).tolist()
    batches = packing.bucket_batches(lengths, 32, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(3000))
    assert packing.bucket_batches(lengths, 32, seed=0) == batches
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 5, spread  # random batches spread ~50


def test_progress_label_names_the_word_level_only_when_there_is_one(tok, capfd):
    datasets.enable_progress_bars()
    ds = datasets.Dataset.from_dict({"text": ["배송 빨랐어요", "최고"]})
    packing.tokenize_texts(ds, tok, word_level="none")
    err = capfd.readouterr().err
    assert "tokenize" in err and "none words" not in err
    packing.tokenize_texts(ds, tok, word_level="eojeol")
    assert "tokenize (eojeol words)" in capfd.readouterr().err
