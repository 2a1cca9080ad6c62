"""A saved tokenizer carries the normalizer rules: raw text gets kopretrain's ids, twice is harmless."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kopretrain.testing import tiny_tokenizer, tiny_unigram_checkpoint
from kopretrain.text.rules import PLACEHOLDER_TOKENS
from kopretrain.text.textprep import TextPrep
from kopretrain.text.tokenizer_rules import BEGIN
from kopretrain.tokenizer.embed import RECORD_KEY, embed_normalizer, has_block, save_with_textprep, without_block
from tests.text.test_tokenizer_rules import HARD, sample_reviews

NORMALIZE = {"emoji": "keep", "max_repeat": 2, "skip_rules": [], "spacing": False, "typos": "none"}


def before_tokenizer(directory: Path, kind: str):
    """A tokenizer as the vocab stage or a Hub checkpoint leaves it: trained on normalized sample
    text, placeholders as non-special added tokens matched in raw text."""
    from transformers import AutoTokenizer

    texts = TextPrep(normalize=NORMALIZE).prepare(sample_reviews())
    if kind == "wordpiece":  # saved as BertTokenizer: transformers 5 rebuilds that class's normalizer
        tok = tiny_tokenizer(texts, directory, vocab_size=800)
    else:
        tiny_unigram_checkpoint(directory, texts, vocab_size=1500)
        tok = AutoTokenizer.from_pretrained(directory)
    tok.add_tokens(PLACEHOLDER_TOKENS)
    tok.save_pretrained(directory)
    return AutoTokenizer.from_pretrained(directory)


@pytest.fixture(scope="module", params=["wordpiece", "unigram"])
def pair(request, tmp_path_factory):
    """(before, after, prep): the same tokenizer without and with the rules inside."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp(request.param)
    before = before_tokenizer(root / "before", request.param)
    prep = TextPrep(normalize=dict(NORMALIZE))
    save_with_textprep(before, root / "after", prep)  # as finetune and pretrain save
    return before, AutoTokenizer.from_pretrained(root / "after"), prep, root / "after"


def ids(tok, texts):
    return tok(texts)["input_ids"]


def test_raw_text_gets_kopretrain_ids(pair):
    before, after, prep, _ = pair
    texts = sample_reviews() + HARD
    reference = ids(before, prep.prepare(texts))  # what kopretrain trained the model on
    assert ids(after, texts) == reference
    assert ids(before, texts) != reference  # without the rules raw text differs (the sample is noisy)


def test_normalizing_twice_gives_the_same_ids(pair):
    before, after, prep, _ = pair
    normalized = prep.prepare(sample_reviews() + HARD)
    assert ids(after, normalized) == ids(before, normalized)


def test_placeholders_made_from_raw_text_are_single_tokens(pair):
    _, after, _, _ = pair
    url = after.convert_tokens_to_ids("[URL]")
    assert url in ids(after, ["후기 http://blog.naver.com/abc/123참고!!"])[0]
    assert ids(after, ["http://a.com 최고"]) == ids(after, ["[URL] 최고"])


def test_offsets_point_into_the_raw_text(pair):
    _, after, _, _ = pair
    texts = ["배송   빨랐어욬ㅋㅋㅋㅋ!!!!! http://a.com/x 문의 010-1234-5678", "＠영화광 ＯＯＯ놈 \u200b😍😍😍"]
    enc = after(texts, return_offsets_mapping=True)
    for text, offsets in zip(texts, enc["offset_mapping"]):
        assert all(0 <= s <= e <= len(text) for s, e in offsets)


def test_record_class_and_the_tokenizers_own_normalizer(pair):
    before, after, prep, folder = pair
    record = prep.extra[RECORD_KEY]
    assert record["applied"][0] == "invisible" and record["applied"][-1] == "repeat" and record["not_applied"] == {}
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # model classes drop it in transformers 5
    assert after.model_input_names == before.model_input_names
    normalizer = json.loads((folder / "tokenizer.json").read_text())["normalizer"]
    own = json.loads(before.backend_tokenizer.to_str())["normalizer"]
    assert has_block(normalizer) and without_block(normalizer) == own  # the tokenizer's own steps, after ours


def test_saving_again_replaces_the_rules_never_stacks_them(pair, tmp_path):
    from transformers import AutoTokenizer

    _, after, _, folder = pair
    first = json.loads((folder / "tokenizer.json").read_text())["normalizer"]
    save_with_textprep(after, tmp_path / "again", TextPrep(normalize=dict(NORMALIZE)))
    again = json.loads((tmp_path / "again" / "tokenizer.json").read_text())["normalizer"]
    assert again == first and json.dumps(again).count(json.dumps(BEGIN)) == 1
    save_with_textprep(after, tmp_path / "other", TextPrep(normalize={**NORMALIZE, "max_repeat": 3}))
    other = AutoTokenizer.from_pretrained(tmp_path / "other")
    # the new rules replaced the old ones: 3 kept (stacked on max_repeat 2 it would be 2)
    assert other.backend_tokenizer.normalizer.normalize_str("ㅋㅋㅋㅋㅋ") == "ㅋㅋㅋ"


def test_nothing_to_embed_leaves_the_tokenizer_alone(tmp_path):
    tiny_tokenizer(["배송 빨랐어요 최고"] * 3, tmp_path)
    text = (tmp_path / "tokenizer.json").read_text()
    assert embed_normalizer(tmp_path, TextPrep(normalize=None)) is None
    record = embed_normalizer(tmp_path, TextPrep(normalize=dict(NORMALIZE), pretokenize="morpheme"))
    assert record["applied"] == [] and "pretokenize" in record["not_applied"]
    assert (tmp_path / "tokenizer.json").read_text() == text


def test_morpheme_mode_keeps_the_space_before_a_placeholder(tmp_path):
    """No rules go in for morpheme-segmented models, but placeholders are still matched after
    normalization: matched first, the vocab stage's Unigram Strip() ate the space around them."""
    from transformers import AutoTokenizer

    from kopretrain.runs.registry import execute
    from kopretrain.text import textprep
    from kopretrain.vocab import VocabConfig
    from tests.fixtures.vocab import sentences, write_stage

    texts = sentences(150) + ["대사 반이 [CENSORED]임", "문의 [PHONE] 주세요", "링크 [URL] 참고"] * 5
    src = write_stage(tmp_path / "data", n_train=len(texts), n_dev=0, morphs=False, texts=texts)
    cfg = VocabConfig(input=str(src), model="unigram", vocab_size=400, report_texts=0)
    cfg.pretokenize = "morpheme"  # refused since (a near character-level vocabulary); earlier outputs exist
    out = execute("vocab", cfg, tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(out)
    a, b = textprep.load(out).prepare(["대사 반이 [CENSORED]임", "대사 반이[CENSORED] 임"])
    assert a != b and ids(tok, [a]) != ids(tok, [b])
