"""Vocabulary extension on small local checkpoints built from configs (no network)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from kopretrain.text import textprep
from kopretrain.runs.config import from_dict
from kopretrain.runs.records import StageError
from kopretrain.runs.registry import execute
from kopretrain.vocab import VocabConfig
from kopretrain.tokenizer.extend import check_base_tokenizer, wordpiece_split
from tests.fixtures.vocab import ADVERBS, PARTICLES, PREDICATES, SUBJECTS, write_stage

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)


def _base_tokenizer(directory: Path, model: str, reserved_unused: int) -> None:
    """A tokenizer trained on generic sentences without the slang of the domain corpus."""
    from kopretrain.tokenizer.train import train_tokenizer

    rng = random.Random(1)
    general = [f"{rng.choice(SUBJECTS)}{rng.choice(PARTICLES)} {rng.choice(ADVERBS)} {rng.choice(PREDICATES)} 노 갓"
               for _ in range(300)]
    src = write_stage(directory.parent / f"general-{model}", n_train=300, n_dev=0, morphs=False, texts=general)
    cfg = VocabConfig(input=str(src), model=model, vocab_size=300, reserved_unused=reserved_unused,
                      **({"min_frequency": 1} if model == "wordpiece" else {}))
    train_tokenizer(cfg, directory, src / "train.parquet", log=lambda *_: None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_stage(tmp_path_factory.mktemp("ext") / "analyze", morphs=False)


@pytest.fixture(scope="module")
def electra_base(tmp_path_factory) -> Path:
    """ELECTRA discriminator + generator/ (a kopretrain RTD output) with a WordPiece vocab."""
    from transformers import AutoTokenizer, ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

    base = tmp_path_factory.mktemp("base") / "electra"
    _base_tokenizer(base, "wordpiece", reserved_unused=3)
    n = len(AutoTokenizer.from_pretrained(base))
    ElectraForPreTraining(ElectraConfig(vocab_size=n, embedding_size=32, **TINY)).save_pretrained(base)
    ElectraForMaskedLM(ElectraConfig(vocab_size=n, embedding_size=16, **TINY)).save_pretrained(base / "generator")
    return base


def _piece_ids(tok, pieces: list[str]) -> list[int]:
    """The rows a new entry is averaged from: its old pieces, [UNK] only when nothing else is known."""
    known = [p for p in pieces if p != tok.unk_token]
    return tok.convert_tokens_to_ids(known or [tok.unk_token])


def _extend(corpus: Path, base: Path, out: Path, **kw) -> Path:
    cfg = from_dict(VocabConfig, {"input": str(corpus), "extend_from": str(base), "min_count": 3, "min_pieces": 2,
                                  "max_new_tokens": 12, "report_texts": 30, **kw})
    return execute("vocab", cfg, out)


def test_wordpiece_extension_adds_single_tokens_with_mean_rows(corpus, electra_base, tmp_path):
    import torch
    from transformers import AutoTokenizer, ElectraForMaskedLM, ElectraForPreTraining

    out = _extend(corpus, electra_base, tmp_path / "ext", add_words=["핵꿀잼", "영화", "존잼 노잼", "##꿀잼", "갓띵작!", "^^;"])
    old_tok, tok = AutoTokenizer.from_pretrained(electra_base), AutoTokenizer.from_pretrained(out)
    details = json.loads((out / "vocab_extension.json").read_text())
    added = {e["token"]: e for e in details["added"]}
    assert len(added) == 12 and len(tok) == len(old_tok) + 12 - 3  # 3 [unused*] slots reused
    assert [e["slot"] for e in details["added"][:3]] == ["[unused0]", "[unused1]", "[unused2]"]
    assert "[unused0]" not in tok.get_vocab()
    # User words come first; existing / whitespace words are skipped with the reason.
    assert list(added)[:2] == ["핵꿀잼", "##꿀잼"]
    reasons = {s["word"]: s["reason"] for s in details["skipped"]}
    assert "already in the vocabulary" in reasons["영화"] and "whitespace" in reasons["존잼 노잼"]
    # punctuation the pre-tokenizer splits off: never one token (they were added and reported as such)
    assert "pre-tokenizer splits it" in reasons["갓띵작!"] and "pre-tokenizer splits it" in reasons["^^;"]
    # Added words are single tokens now (word-initial and ## continuation forms).
    assert tok.tokenize("핵꿀잼") == ["핵꿀잼"]
    before = old_tok.tokenize("핵꿀잼")  # the base tokenizer split it or did not know it at all
    assert len(before) > 1 or before == [old_tok.unk_token]
    assert tok.tokenize("노꿀잼") == ["노", "##꿀잼"]
    mined = [t for t, e in added.items() if e["count"] is not None]
    assert mined and all(tok.tokenize(t) == [t] for t in mined if not t.startswith("##"))

    old = ElectraForPreTraining.from_pretrained(electra_base).get_input_embeddings().weight
    new = ElectraForPreTraining.from_pretrained(out).get_input_embeddings().weight
    assert new.shape[0] == len(tok)
    assert torch.equal(new[: old.shape[0]][5], old[5])  # old rows untouched
    for entry in details["added"]:
        ids = _piece_ids(old_tok, entry["old_pieces"])
        assert torch.allclose(new[entry["id"]], old[ids].mean(0), atol=1e-6), entry["token"]
    gen = ElectraForMaskedLM.from_pretrained(out / "generator")
    assert gen.get_input_embeddings().weight.shape[0] == len(tok)
    # the generator folder carries the grown tokenizer (it had none: fill-mask on it failed)
    gen_tok = AutoTokenizer.from_pretrained(out / "generator")
    assert len(gen_tok) == len(tok) and gen_tok.tokenize("핵꿀잼") == ["핵꿀잼"]
    assert textprep.load(out / "generator").extra == textprep.load(out).extra

    prep = textprep.load(out)
    assert prep.pretokenize == "eojeol" and prep.extra["base_model"] == str(electra_base)
    stats = json.loads((out / "stage.json").read_text())["stats"]
    assert stats["old_vocab_hash"] != stats["new_vocab_hash"] == stats["vocab_hash"]
    assert stats["added"] == 12 and stats["vocab_size"] == len(tok)
    report = json.loads((out / "tokenizer_report.json").read_text())["tokenizers"]
    base_row, new_row = report[f"base {electra_base}"], report["this run (wordpiece/eojeol)"]
    assert new_row["unk_rate"] <= base_row["unk_rate"] and new_row["fertility"] <= base_row["fertility"]


def test_unigram_bert_mlm_extension(corpus, tmp_path):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    base = tmp_path / "kobert"
    _base_tokenizer(base, "unigram", reserved_unused=0)
    old_tok = AutoTokenizer.from_pretrained(base)
    BertForMaskedLM(BertConfig(vocab_size=len(old_tok), **TINY)).save_pretrained(base)
    out = _extend(corpus, base, tmp_path / "ext", add_words=["갓띵작"], max_new_tokens=4, report_texts=0)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.tokenize("갓띵작") == ["\u2581갓띵작"] and len(tok) == len(old_tok) + 4
    model = BertForMaskedLM.from_pretrained(out)
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    entry = json.loads((out / "vocab_extension.json").read_text())["added"][0]
    old = BertForMaskedLM.from_pretrained(base).get_input_embeddings().weight
    assert "[UNK]" in entry["old_pieces"] and len(entry["old_pieces"]) > 1  # [UNK] left out of the mean
    ids = _piece_ids(old_tok, entry["old_pieces"])
    assert torch.allclose(model.get_input_embeddings().weight[entry["id"]], old[ids].mean(0), atol=1e-6)



def test_a_new_unigram_piece_does_not_split_a_word_the_old_pieces_kept_whole():
    """A new piece scored as the best piece of all: "▁" + "최고의" then beat the existing "▁최고의"."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from kopretrain.tokenizer.extend import add_entries

    vocab = [("[UNK]", 0.0), ("▁", -2.0), ("▁최고의", -5.0), ("▁정말", -5.0), ("최", -8.0), ("고", -8.0), ("의", -8.0)]
    backend = Tokenizer(models.Unigram(vocab, unk_id=0))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    extended = add_entries(tok, "Unigram", [{"token": "최고의", "old_pieces": ["최", "고", "의"]}], use_unused=False)
    assert [t.value for t in extended.model.tokenize("▁최고의")] == ["▁최고의"]  # kept whole
    assert extended.encode("정말최고의").tokens == ["▁정말", "최고의"]  # and the new piece where it was split
    # nested new pieces: the longest wins (with one margin each, two new halves beat it by a margin)
    vocab = [("[UNK]", 0.0), ("▁", -2.0), ("▁갓", -6.0), ("띵", -9.0), ("작", -7.0), ("이", -5.0)]
    backend = Tokenizer(models.Unigram(vocab, unk_id=0))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    entries = [{"token": "▁갓띵작이", "old_pieces": ["▁갓", "띵", "작", "이"]},
               {"token": "▁갓띵", "old_pieces": ["▁갓", "띵"]}, {"token": "작이", "old_pieces": ["작", "이"]}]
    extended = add_entries(tok, "Unigram", entries, use_unused=False)
    assert extended.encode("갓띵작이").tokens == ["▁갓띵작이"] and extended.encode("갓띵").tokens == ["▁갓띵"]


def test_wordpiece_split_matches_the_backend_and_handles_continuations(electra_base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(electra_base)
    vocab = tok.get_vocab()
    for word in ["영화는", "배우가", "감동적이었다", "뷁"]:
        expected = [t.value for t in tok.backend_tokenizer.model.tokenize(word)]
        assert wordpiece_split(word, vocab, continuation=False) == expected
    assert wordpiece_split("는", vocab, continuation=True) == ["##는"]  # as in 영화##는
    assert wordpiece_split("영화는", vocab, continuation=True) in (["[UNK]"], ["##영", "##화", "##는"])


def test_base_that_is_not_wordpiece_or_unigram_is_rejected(corpus, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    bpe.train_from_iterator(["영화 정말 좋다"] * 5, trainers.BpeTrainer(vocab_size=60, special_tokens=["[UNK]"]))
    PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="[UNK]").save_pretrained(tmp_path / "bpe")
    with pytest.raises(StageError, match="only WordPiece"):
        _extend(corpus, tmp_path / "bpe", tmp_path / "out")


def test_slow_tokenizer_is_rejected():
    class Slow:
        is_fast = False

    with pytest.raises(StageError, match="not a fast"):
        check_base_tokenizer(Slow(), "some/model")


def test_a_tokenizer_without_weights_fails_before_the_corpus_is_mined(corpus, electra_base, tmp_path, monkeypatch):
    """A folder with only tokenizer files used to fail after mining the whole corpus for pieces."""
    import shutil

    import kopretrain.tokenizer.corpus as corpus_mod

    tok_only = tmp_path / "tok-only"
    tok_only.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(electra_base / name, tok_only)

    def mined(*_a, **_k):
        raise AssertionError("the corpus was mined before the weights were found missing")

    monkeypatch.setattr(corpus_mod, "corpus_batches", mined)
    with pytest.raises(StageError, match="tok-only"):
        _extend(corpus, tok_only, tmp_path / "out")


def test_pretokenize_must_match_the_base(corpus, electra_base, tmp_path):
    with pytest.raises(StageError, match="eojeol"):
        _extend(corpus, electra_base, tmp_path / "out", pretokenize="morpheme")


def test_headless_checkpoint_is_saved_without_a_random_pooler(corpus, tmp_path):
    """Extending a checkpoint with no pooler weights (e5, any MLM/RTD save) used to save the random
    pooler BertModel creates as if trained, which also kept fine-tuning from starting it as the
    identity. The extension saves only what the checkpoint had (plus the new rows)."""
    from safetensors import safe_open
    from transformers import AutoModel, AutoTokenizer, BertConfig

    base = tmp_path / "e5-like"
    _base_tokenizer(base, "unigram", reserved_unused=0)
    config = BertConfig(vocab_size=len(AutoTokenizer.from_pretrained(base)), architectures=["BertModel"], **TINY)
    AutoModel.from_config(config, add_pooling_layer=False).save_pretrained(base)
    out = _extend(corpus, base, tmp_path / "ext", max_new_tokens=4, report_texts=0)
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        keys = list(fh.keys())
    assert keys and not [k for k in keys if "pooler" in k]
    assert any(k.endswith("word_embeddings.weight") for k in keys)


def test_a_corpus_alphabet_larger_than_the_base_vocabulary_is_mined(tmp_path):
    """The mining trainer needs a piece per character first: a small Unigram base (300 pieces) and
    a corpus of 400+ distinct characters crashed it ("vocabulary is not large enough")."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    base = tmp_path / "small"
    _base_tokenizer(base, "unigram", reserved_unused=0)
    BertForMaskedLM(BertConfig(vocab_size=len(AutoTokenizer.from_pretrained(base)), **TINY)).save_pretrained(base)
    rare = [chr(0xAC00 + i) for i in range(0, 8000, 17)]  # 471 syllables the base never saw
    texts = [f"{''.join(rare[i:i + 6])} 갓띵작 진짜 갓띵작" for i in range(0, len(rare), 3)] * 2
    corpus = write_stage(tmp_path / "wide", n_train=len(texts), n_dev=0, morphs=False, texts=texts)
    out = _extend(corpus, base, tmp_path / "ext", max_new_tokens=4, report_texts=0)
    assert len(AutoTokenizer.from_pretrained(out)) > len(AutoTokenizer.from_pretrained(base))
