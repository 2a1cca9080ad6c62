"""Vocabulary pruning: smaller, and nothing changes for the corpus (same pieces, same hidden states)."""

from __future__ import annotations

import json

import torch

from kopretrain.runs.registry import execute
from kopretrain.testing import REVIEWS, tiny_unigram_checkpoint
from kopretrain.tokenizer.prune import has_hangul, is_single_ascii
from kopretrain.vocab import VocabConfig
from tests.fixtures.data import write_stage_dir

FOREIGN = ["the quick brown fox jumps over the lazy dog", "lorem ipsum dolor sit amet consectetur",
           "zxcv qwerty asdf 12345 67890", "東京 大阪 京都 名古屋"]


def test_pruned_checkpoint_is_smaller_and_identical_on_the_corpus(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    base = tiny_unigram_checkpoint(tmp_path / "base", REVIEWS * 3 + FOREIGN * 3, vocab_size=400)
    corpus = REVIEWS[:12]
    data = write_stage_dir(tmp_path / "data", {"train": corpus, "dev": REVIEWS[12:]})
    out = execute("vocab", VocabConfig(input=str(data), prune_from=str(base), report_texts=0), tmp_path / "pruned")

    old_tok, new_tok = AutoTokenizer.from_pretrained(base), AutoTokenizer.from_pretrained(out)
    stats = json.loads((out / "stage.json").read_text())["stats"]
    assert stats["vocab_size"] == len(new_tok) < stats["old_vocab_size"] == len(old_tok)
    assert stats["same_tokens_on_sample"] == 1.0 and stats["parameters_after"] < stats["parameters_before"]
    kept = set(new_tok.get_vocab())
    assert {"<s>", "<pad>", "</s>", "<unk>", "<mask>"} <= kept
    dropped = set(old_tok.get_vocab()) - kept
    assert dropped and not any(has_hangul(p) or is_single_ascii(p) for p in dropped)
    assert any("\u4e00" <= c <= "\u9fff" for p in dropped for c in p)  # pieces only the other texts used
    assert new_tok.convert_ids_to_tokens(new_tok.mask_token_id) == "<mask>" and new_tok.mask_token_id == len(new_tok) - 1

    old_model, new_model = AutoModel.from_pretrained(base).eval(), AutoModel.from_pretrained(out).eval()
    assert new_model.config.vocab_size == len(new_tok)
    for text in corpus + ["처음 보는 문장도 한글이면 같다 ㅋㅋ"]:
        a, b = old_tok(text, return_tensors="pt"), new_tok(text, return_tensors="pt")
        assert old_tok.convert_ids_to_tokens(a["input_ids"][0]) == new_tok.convert_ids_to_tokens(b["input_ids"][0])
        with torch.no_grad():
            assert torch.equal(old_model(**a).last_hidden_state, new_model(**b).last_hidden_state)


def test_pruned_checkpoint_records_the_corpus_normalizer_when_it_has_none(tmp_path):
    """A Hub checkpoint carries no kopretrain.json: the pruned model is fine-tuned on normalized
    text, so it must record (and its tokenizer apply) the corpus's normalizer, or raw text at
    inference would skip it."""
    from kopretrain.normalize import NormalizeConfig
    from kopretrain.text.textprep import load

    base = tiny_unigram_checkpoint(tmp_path / "base", REVIEWS * 3 + FOREIGN * 3, vocab_size=400)
    raw = write_stage_dir(tmp_path / "ingest", {"train": REVIEWS[:12], "dev": REVIEWS[12:]})
    norm = execute("normalize", NormalizeConfig(input=str(raw)), tmp_path / "normalize")
    out = execute("vocab", VocabConfig(input=str(norm), prune_from=str(base), report_texts=0), tmp_path / "pruned")
    prep = load(out)
    assert prep.normalize is not None and prep.extra["tokenizer_normalizer"]["applied"]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    assert tok("배송 빨랐어욬ㅋㅋㅋㅋㅋ")["input_ids"] == tok(prep.prepare(["배송 빨랐어욬ㅋㅋㅋㅋㅋ"])[0])["input_ids"]


def test_pieces_of_the_corpus_placeholders_are_kept(tmp_path):
    """normalize writes [CENSORED], [PHONE]...; a checkpoint splits them into its own pieces (e5:
    "▁[ C EN S ORE D ]"), which the corpus uses and the pruned tokenizer must keep."""
    from transformers import AutoTokenizer

    from kopretrain.testing import tiny_classifier

    masked = ["대사 반이 [CENSORED]임", "문의는 [PHONE] 로 주세요", "후기 [URL] 참고"]
    base = tiny_classifier(tmp_path / "base", REVIEWS * 3 + FOREIGN * 3 + masked * 20, vocab_size=400)
    old_tok = AutoTokenizer.from_pretrained(base)
    assert any(len(p.strip("#")) > 1 for t in masked for p in old_tok.tokenize(t) if p.strip("#").isupper())
    data = write_stage_dir(tmp_path / "data", {"train": REVIEWS[:12] + masked, "dev": REVIEWS[12:]})
    out = execute("vocab", VocabConfig(input=str(data), prune_from=str(base), report_texts=0), tmp_path / "pruned")
    new_tok = AutoTokenizer.from_pretrained(out)
    for text in masked:
        assert new_tok.tokenize(text) == old_tok.tokenize(text), text


def test_a_layer_as_wide_as_the_vocabulary_is_not_pruned(tmp_path):
    """Only the embeddings and the output projection are indexed by token id: a feed-forward layer
    whose width equals the vocabulary size was cut too, and the saved model did not load."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertForMaskedLM

    base = tiny_unigram_checkpoint(tmp_path / "base", REVIEWS * 3 + FOREIGN * 3, vocab_size=400)
    n = len(AutoTokenizer.from_pretrained(base))
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=n, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=n)).save_pretrained(base)
    data = write_stage_dir(tmp_path / "data", {"train": REVIEWS[:12], "dev": REVIEWS[12:]})
    out = execute("vocab", VocabConfig(input=str(data), prune_from=str(base), report_texts=0), tmp_path / "pruned")
    old_tok, new_tok = AutoTokenizer.from_pretrained(base), AutoTokenizer.from_pretrained(out)
    old, new = AutoModelForMaskedLM.from_pretrained(base).eval(), AutoModelForMaskedLM.from_pretrained(out).eval()
    assert new.config.intermediate_size == n > new.config.vocab_size == len(new_tok)
    a, b = old_tok(REVIEWS[0], return_tensors="pt"), new_tok(REVIEWS[0], return_tensors="pt")
    with torch.no_grad():
        old_logits, new_logits = old(**a).logits[0], new(**b).logits[0]
    kept = [old_tok.convert_tokens_to_ids(t) for t in new_tok.convert_ids_to_tokens(list(range(len(new_tok))))]
    assert torch.allclose(old_logits[:, kept], new_logits, atol=1e-5)  # the head's rows and bias follow the tokens


def test_unused_slots_are_kept_for_a_later_extension():
    """Pruning a kopretrain-trained checkpoint dropped its [unused*] slots: extending it afterwards
    added embedding rows instead of filling them."""
    from kopretrain.tokenizer.prune import keep_ids

    data = {"model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["[unused0]", 0.0], ["[unused1]", 0.0],
                                                   ["▁hello", -5.0], ["▁world", -6.0]]}, "added_tokens": []}
    assert keep_ids(data, used={4}, specials={"<unk>"}) == [0, 1, 2, 4]


def test_a_tokenizer_without_weights_fails_before_the_corpus_is_read(tmp_path, monkeypatch):
    """A folder with only tokenizer files used to fail after tokenizing the whole corpus."""
    import shutil

    import pytest

    import kopretrain.tokenizer.corpus as corpus_mod
    from kopretrain.runs.records import StageError

    base = tiny_unigram_checkpoint(tmp_path / "base", REVIEWS * 3, vocab_size=300)
    tok_only = tmp_path / "tok-only"
    tok_only.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(base / name, tok_only)
    data = write_stage_dir(tmp_path / "data", {"train": REVIEWS[:12], "dev": REVIEWS[12:]})

    def read(*_a, **_k):
        raise AssertionError("the corpus was read before the weights were found missing")

    monkeypatch.setattr(corpus_mod, "corpus_batches", read)
    with pytest.raises(StageError, match="tok-only"):
        execute("vocab", VocabConfig(input=str(data), prune_from=str(tok_only), report_texts=0), tmp_path / "out")
