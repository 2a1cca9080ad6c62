"""normalize's placeholders become single tokens of a checkpoint tokenizer that splits them."""

from __future__ import annotations

import torch

from kopretrain.testing import REVIEWS, tiny_unigram_checkpoint
from kopretrain.tokenizer.placeholders import add_placeholders, split_placeholders


def test_split_placeholders_are_added_with_mean_of_pieces_rows(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from kopretrain.text.textprep import TextPrep
    from kopretrain.tokenizer.embed import save_with_textprep

    base = tiny_unigram_checkpoint(tmp_path / "base", REVIEWS + ["링크 [ URL ] 참고", "메일 EMAIL 주소"] * 3)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=3)
    before = model.get_input_embeddings().weight.detach().clone()
    split = split_placeholders(tok)
    assert len(split["[URL]"]) > 1  # the checkpoint splits the mask, as multilingual-e5 does
    assert tok.unk_token_id not in split["[URL]"]
    assert add_placeholders(tok, model) == list(split)
    url = tok.convert_tokens_to_ids("[URL]")
    assert tok("후기 [URL] 최고", add_special_tokens=False)["input_ids"].count(url) == 1
    rows = model.get_input_embeddings().weight
    assert rows.shape[0] == len(tok)
    assert torch.allclose(rows[url], before[split["[URL]"]].mean(0))
    assert torch.equal(rows[: before.shape[0]], before)  # the checkpoint's own rows untouched
    assert add_placeholders(tok, model) == []  # a fine-tuned model's tokenizer already has them

    # saved with the normalizer rules inside: a raw link becomes [URL] in the tokenizer, then one token
    prep = TextPrep(normalize={})
    save_with_textprep(tok, tmp_path / "saved", prep)
    saved = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert url in saved("후기 http://blog.naver.com/abc 최고")["input_ids"]
    assert saved(prep.prepare(["후기 http://blog.naver.com/abc 최고"]))["input_ids"] == \
        saved(["후기 http://blog.naver.com/abc 최고"])["input_ids"]
