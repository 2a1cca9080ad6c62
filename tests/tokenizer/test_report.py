"""Tokenizer report numbers on hand-built vocabularies, where every value can be counted by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kopretrain.text import textprep
from kopretrain.tokenizer import report as tokreport
from kopretrain.text.pretokenize import JOINER

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _wordpiece(directory: Path, words: list[str], pretokenize: str = "eojeol") -> Path:
    from tokenizers import Tokenizer, models, processors

    from kopretrain.tokenizer.train import build_tokenizer, save_tokenizer

    tok = build_tokenizer("wordpiece", pretokenize)
    tok.model = models.WordPiece({t: i for i, t in enumerate(SPECIALS + words)}, unk_token="[UNK]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    assert isinstance(tok, Tokenizer)
    save_tokenizer(tok, directory, model_max_length=128)
    textprep.TextPrep(pretokenize=pretokenize).save(directory)
    return directory


@pytest.fixture
def two(tmp_path) -> dict[str, Path]:
    a = _wordpiece(tmp_path / "a", ["영화", "##가", "좋다", "ㅋㅋ", "존", "##잼"])
    b = _wordpiece(tmp_path / "b", ["영화가", "좋다", "ㅋ", "##ㅋ", "존잼"])
    return {"a": a, "b": b}


def test_fertility_unk_and_long_shares_by_hand(two):
    texts = ["영화가 좋다", "ㅋㅋ 뷁", "좋다 " * 70]
    report = tokreport.compare(two, texts, slang=["존잼", "ㅋㅋ"])
    a, b = report["tokenizers"]["a"], report["tokenizers"]["b"]
    # a: 영화 ##가 좋다 | ㅋㅋ [UNK] | 좋다 x70  -> 75 tokens over 74 eojeols
    assert a["tokens"] == 75 and a["fertility"] == round(75 / 74, 4)
    assert a["unk_rate"] == round(1 / 75, 6) and a["reviews_with_unk"] == round(1 / 3, 6)
    assert a["share_over_64"] == round(1 / 3, 6) and a["share_over_128"] == 0.0
    # b: 영화가 좋다 | ㅋ ##ㅋ [UNK] | 좋다 x70 -> 75 tokens as well, but splits ㅋㅋ
    assert b["tokens"] == 75
    assert a["slang"] == {"존잼": ["존", "##잼"], "ㅋㅋ": ["ㅋㅋ"]}
    assert b["slang"] == {"존잼": ["존잼"], "ㅋㅋ": ["ㅋ", "##ㅋ"]}
    assert a["model"] == "WordPiece" and a["vocab_size"] == 11
    assert a["reviews_per_s_tokenize"] > 0 and a["reviews_per_s_with_prep"] > 0
    # overlap: shared {specials, 좋다} = 6 of 5+6 + 5+5 - 6 = 15 -> 0.4
    assert report["overlap"]["a"]["b"]["shared_raw"] == 6
    assert report["overlap"]["a"]["b"]["raw"] == round(6 / 15, 4)
    assert report["overlap"]["a"]["b"]["surface"] > report["overlap"]["a"]["b"]["raw"]


def test_markdown_and_files(two, tmp_path):
    report = tokreport.compare([str(two["a"]), str(two["b"])], ["영화가 좋다"])
    md = tokreport.to_markdown(report)
    assert "| tokens per eojeol | 1.5 | 1.0 |" in md
    assert "| 존잼 | `존` `##잼` | `존잼` |" in md
    tokreport.save(report, tmp_path)
    assert json.loads((tmp_path / "tokenizer_report.json").read_text())["texts"] == 1
    assert (tmp_path / "tokenizer_report.md").read_text() == md


def test_each_tokenizer_gets_its_recorded_preparation(tmp_path):
    morph = _wordpiece(tmp_path / "m", ["재밌", f"{JOINER}어요", "영화", f"{JOINER}가"], pretokenize="morpheme")
    report = tokreport.compare({"m": morph}, ["영화가 재밌어요"], slang=["재밌어요"])
    row = report["tokenizers"]["m"]
    assert row["pretokenize"] == "morpheme"
    assert row["slang"]["재밌어요"] == ["재밌", f"{JOINER}어요"] and row["unk_rate"] == 0.0
    assert row["fertility"] == 2.0


def test_no_held_out_text_is_an_error(two):
    with pytest.raises(ValueError, match="no non-empty held-out text"):
        tokreport.compare(two, ["", "  "])


def test_throughput_is_measured_without_the_rules_embedded_for_plain_transformers(tmp_path):
    """The report times what kopretrain pays (Python rules, then a tokenizer copy without the
    embedded ones): timing them twice made a normalizer-carrying vocabulary look 2.6x slower."""
    from transformers import AutoTokenizer

    from kopretrain.tokenizer.embed import embed_and_record, has_block

    directory = _wordpiece(tmp_path / "w", ["영화", "##가", "좋다", "ㅋㅋ", "[URL]"])
    prep = textprep.TextPrep(normalize={})
    embed_and_record(directory, prep)
    prep.save(directory)
    saved = AutoTokenizer.from_pretrained(directory)
    assert has_block(json.loads(saved.backend_tokenizer.to_str())["normalizer"])
    tok, loaded = tokreport.load(str(directory))
    assert not has_block(json.loads(tok.backend_tokenizer.to_str())["normalizer"])
    texts = loaded.prepare(["영화가   좋다ㅋㅋㅋㅋㅋㅋ http://a.com"])
    assert tok(texts)["input_ids"] == saved(texts)["input_ids"]  # same ids, rules run once
