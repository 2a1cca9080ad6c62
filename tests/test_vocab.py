"""vocab stage: morpheme pre-tokenization, WordPiece/Unigram training, AutoTokenizer round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kopretrain.train import packing
from kopretrain.text import textprep
from kopretrain.runs.config import ConfigError, from_dict
from kopretrain.runs.records import StageError
from kopretrain.runs.registry import execute, get
from kopretrain.text.pretokenize import JOINER, placeholder_tokens, pretokenize_morphemes, segment, segment_from_offsets
from kopretrain.tokenizer.corpus import offsets_agree
from kopretrain.vocab import VocabConfig
from tests.fixtures.vocab import write_stage


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory) -> Path:
    return write_stage(tmp_path_factory.mktemp("vocab") / "analyze")


def _train(src: Path, out: Path, **kw) -> Path:
    wordpiece = {"min_frequency": 1} if kw.get("model", "wordpiece") == "wordpiece" else {}
    cfg = from_dict(VocabConfig, {"input": str(src), "vocab_size": 600, "reserved_unused": 10, **wordpiece,
                                  "report_texts": 40, **kw})
    return execute("vocab", cfg, out)


def _read(path: Path, column: str = "text") -> list:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=[column]).column(column).to_pylist()


# ---------------------------------------------------------------- segmentation


def test_segment_cuts_only_clean_morpheme_boundaries():
    assert segment("재밌어요", [(0, 2), (2, 4)]) == f"재밌{JOINER}어요"
    # 했 = 하 + 었 share one syllable: the cut after it is clean, none inside it.
    assert segment("했어요", [(0, 1), (0, 1), (1, 3)]) == f"했{JOINER}어요"
    # 아님 = 아니(0-2) + ㅁ(1-2): a morpheme spans position 1, so no cut.
    assert segment("아님", [(0, 2), (1, 2)]) == "아님"
    # Placeholders are atoms: no cut inside or beside them; whitespace is normalized.
    assert segment("여기[URL]입니다  좋아", [(0, 2), (2, 3), (3, 6), (6, 7), (7, 10), (12, 14)]) == "여기[URL]입니다 좋아"
    assert segment(f"a{JOINER}b", []) == "a■b"


def test_pretokenize_morphemes_korean_examples():
    out = pretokenize_morphemes(["재밌어요ㅋㅋ [URL] 최고!!", "했어요", None, "", "  노잼  "])
    assert out[0] == f"재밌{JOINER}어요{JOINER}ㅋㅋ [URL] 최고{JOINER}!!"
    assert out[1] == f"했{JOINER}어요"
    assert out[2] is None and out[3] == ""
    assert out[4].replace(JOINER, "") == "노잼"
    # Lossless: removing the joiner gives the whitespace-normalized text back.
    texts = ["영화가 정말 갓띵작이네 ㅋㅋㅋ", "배우들 연기는 별로였어요..."]
    assert [t.replace(JOINER, "") for t in pretokenize_morphemes(texts)] == [" ".join(t.split()) for t in texts]


def test_stored_analyze_offsets_segment_identically(analyzed):
    for split in ("train", "dev"):
        path = analyzed / f"{split}.parquet"
        texts = _read(path)
        stored = segment_from_offsets(texts, _read(path, "morph_start"), _read(path, "morph_len"))
        assert stored == pretokenize_morphemes(texts)
    assert offsets_agree(analyzed / "train.parquet", log=lambda *_: None)


def test_offsets_from_other_analysis_are_not_reused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = ["재밌어요 ㅋㅋ", "노잼이네요"]
    table = pa.table({"text": texts, "morph_start": [[0], [0]], "morph_len": [[1], [1]]})
    pq.write_table(table, tmp_path / "train.parquet")
    assert not offsets_agree(tmp_path / "train.parquet", log=lambda *_: None)


def test_offsets_from_other_kiwi_options_are_not_reused_even_when_a_sample_agrees(analyzed, tmp_path):
    """analyze --no-z-coda changes few rows (1 in 463 sample reviews): the first 500 may all agree,
    but the recorded options say the vocabulary would train on other segments than inference makes."""
    import json
    import shutil

    folder = tmp_path / "an"
    shutil.copytree(analyzed, folder)
    record = {"stage": "analyze", "fingerprint": "x", "config": {"z_coda": True, "split_complex": False}, "stats": {}}
    (folder / "stage.json").write_text(json.dumps(record))
    logs = []
    assert offsets_agree(folder / "train.parquet", log=logs.append)
    record["config"]["z_coda"] = False
    (folder / "stage.json").write_text(json.dumps(record))
    assert not offsets_agree(folder / "train.parquet", log=logs.append)
    assert "z_coda=False" in logs[-1]


# ---------------------------------------------------------------- training + loading


def test_wordpiece_eojeol_loads_with_plain_autotokenizer(analyzed, tmp_path):
    from transformers import AutoTokenizer

    out = _train(analyzed, tmp_path / "vocab", model_max_length=256)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.is_fast and tok.model_max_length == 256
    assert [tok.pad_token, tok.unk_token, tok.cls_token, tok.sep_token, tok.mask_token] == \
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tok.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [0, 1, 2, 3, 4]
    enc = tok("재밌어요ㅋㅋ [URL]")
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "[URL]" in tokens and "[UNK]" not in tokens
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "재밌어요ㅋㅋ [URL]"
    for placeholder in placeholder_tokens():  # one token each, kept by skip_special_tokens
        assert len(tok(f"영화 {placeholder}", add_special_tokens=False)["input_ids"]) == 2
        assert placeholder not in tok.all_special_tokens
    assert "[unused0]" in tok.get_vocab() and "[unused0]" not in tok.all_special_tokens

    record = json.loads((out / "stage.json").read_text())
    stats = record["stats"]
    from kopretrain.tokenizer.fingerprint import vocab_hash

    assert stats["vocab_hash"] == vocab_hash(tok.backend_tokenizer)
    assert stats["vocab_size"] == len(tok) <= 600
    assert stats["corpus_fingerprint"] == record["inputs"]["input"]
    assert record["counts"] == {"rows_in": 200, "rows_out": 200, "rejected": {"empty_text": 0}}
    prep = textprep.load(out)
    assert prep.pretokenize == "eojeol" and prep.normalize is None
    report = json.loads((out / "tokenizer_report.json").read_text())
    assert report["held_out"] == {"split": "dev", "texts": 40}
    assert (out / "tokenizer_report.md").read_text().count("tokens per eojeol") == 1


@pytest.mark.parametrize("model", ["wordpiece"])  # unigram with morphemes is refused (a config error)
def test_morpheme_mode_tokens_never_cross_morpheme_boundaries(analyzed, tmp_path, model):
    from transformers import AutoTokenizer

    out = _train(analyzed, tmp_path / model, model=model, pretokenize="morpheme", report_texts=0)
    tok = AutoTokenizer.from_pretrained(out)
    prep = textprep.load(out)
    assert prep.pretokenize == "morpheme" and prep.extra["joiner"] == JOINER
    texts = _read(analyzed / "dev.parquet")
    prepared = prep.prepare(texts)
    assert prepared == pretokenize_morphemes(texts)  # what training saw is what inference gets
    crossed = whole = 0
    offsets = tok(prepared, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    # What whole-morpheme masking in pretrain sees for this text (packing's "marked" word level).
    word_ids = packing.word_ids_from_offsets(prepared, offsets, joiner=True)
    for text, enc, words in zip(prepared, offsets, word_ids):
        # Morpheme spans in the prepared text: split at whitespace and before every joiner.
        owner, m = [], 0
        for i, ch in enumerate(text):
            if ch == " " or (ch == JOINER and i and text[i - 1] != " "):
                m += 1
            owner.append(m)
        crossed += sum(len({owner[i] for i in range(s, e) if text[i] != " "}) > 1 for s, e in enc)
        # A token's morpheme: the owner of its first non-space character (Unigram offsets may
        # start at the space that ▁ stands for); packing must number exactly these morphemes.
        firsts = [owner[next((i for i in range(s, e) if text[i] != " "), s)] for s, e in enc]
        whole += words != [sorted(set(firsts)).index(f) for f in firsts]
        ids = tok(text)["input_ids"]
        if tok.unk_token_id not in ids and "[" not in text:
            assert tok.decode(ids, skip_special_tokens=True) == text.replace(JOINER, "")
    assert crossed == 0 and whole == 0
    enc = tok(pretokenize_morphemes(["영화가 정말 재밌어요"])[0], add_special_tokens=False)
    tokens = enc.tokens()
    assert len(set(enc.word_ids())) > 3  # word_ids number morphemes, not the 3 eojeols
    if model == "wordpiece":  # a morpheme start inside an eojeol is marked ￭, inside a morpheme ##
        assert any(t.startswith(JOINER) for t in tokens)
    else:  # ▁ marks eojeol starts, the joiner is dropped
        assert sum(t.startswith("\u2581") for t in tokens) == 3 and not any(JOINER in t for t in tokens)


def test_unigram_eojeol_uses_metaspace_and_decodes(analyzed, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(_train(analyzed, tmp_path / "uni", model="unigram", report_texts=0))
    ids = tok("영화가  정말 재밌어요")["input_ids"]
    assert ids == tok("영화가 정말 재밌어요")["input_ids"]  # whitespace runs collapse, as in SentencePiece
    assert tok.convert_ids_to_tokens(ids)[1].startswith("\u2581")
    assert tok.decode(ids, skip_special_tokens=True) == "영화가 정말 재밌어요"


def test_eojeol_mode_works_without_morph_columns(tmp_path):
    src = write_stage(tmp_path / "normalize", n_train=80, n_dev=10, morphs=False)
    assert (_train(src, tmp_path / "v") / "tokenizer.json").is_file()


# ---------------------------------------------------------------- bad input


def test_empty_corpus_is_a_clear_error(tmp_path):
    src = write_stage(tmp_path / "empty", n_train=3, n_dev=0, morphs=False, texts=["", "  ", ""])
    with pytest.raises(StageError, match="no non-empty text"):
        _train(src, tmp_path / "v")


def test_vocab_smaller_than_alphabet_is_a_clear_error(analyzed, tmp_path):
    with pytest.raises(StageError, match="smaller than the alphabet"):
        _train(analyzed, tmp_path / "v", vocab_size=60, reserved_unused=0)


def test_config_rejects_a_vocab_with_no_room():
    with pytest.raises(ConfigError, match="--vocab-size"):
        from_dict(VocabConfig, {"vocab_size": 50, "reserved_unused": 100})
    with pytest.raises(ConfigError, match="--revision"):
        from_dict(VocabConfig, {"revision": "v2021"})


def test_report_problems_never_cost_the_training_run(analyzed, tmp_path):
    """An empty dev split skips the report (it was a ValueError traceback after training); a
    --compare-with that has no tokenizer fails before training with the option named."""
    import shutil

    import pyarrow.parquet as pq

    from kopretrain.runs.records import StageError

    folder = tmp_path / "an"
    shutil.copytree(analyzed, folder)
    for split in ("dev", "test"):
        if (folder / f"{split}.parquet").exists():
            table = pq.read_table(folder / f"{split}.parquet")
            pq.write_table(table.slice(0, 0), folder / f"{split}.parquet")
    out = _train(folder, tmp_path / "v")
    assert json.loads((out / "stage.json").read_text())["stats"]["report"] == "skipped: no non-empty dev/test text"
    for bad in (str(tmp_path / "nope"), str(folder)):
        with pytest.raises(StageError, match="--compare-with .*: no tokenizer could be loaded"):
            _train(folder, tmp_path / "v2", compare_with=[bad])
        assert not (tmp_path / "v2.partial").exists()


@pytest.mark.parametrize("options, message", [
    ({"max_new_tokens": 50}, "--max-new-tokens only applies with --extend-from"),
    ({"add_words": ["갓띵작"]}, "--add-words only applies with --extend-from"),
    ({"min_count": 3}, "--min-count only applies with --extend-from"),
    ({"prune_from": "x", "model": "unigram"}, "the checkpoint's tokenizer decides it"),
    ({"revision": "v1"}, "--revision only applies with --extend-from or --prune-from"),
    # ignored with a checkpoint's tokenizer, or by the other model; a change of one retrained the vocab
    ({"prune_from": "x", "model_max_length": 128}, "--model-max-length: only when training a vocabulary"),
    ({"extend_from": "x", "reserved_unused": 0}, "--reserved-unused: only when training a vocabulary"),
    ({"prune_from": "x", "vocab_size": 100}, "--vocab-size: only when training"),
    ({"model": "unigram", "limit_alphabet": 3}, "--limit-alphabet: does nothing with --model unigram"),
    ({"max_piece_length": 8}, "--max-piece-length: does nothing with --model wordpiece"),
    # the tokenizers Unigram trainer never learns a piece that is always a whole word (each morpheme here)
    ({"model": "unigram", "pretokenize": "morpheme"}, "cannot learn whole morphemes"),
])
def test_options_that_would_do_nothing_are_errors(options, message):
    """They were silently ignored: a full 32k vocabulary trained instead of the extension asked for."""
    with pytest.raises(ValueError, match=message):
        VocabConfig(input="x", **options)
    VocabConfig(input="x", extend_from="m", max_new_tokens=50, add_words=["갓띵작"])  # where they apply


def test_pruning_keeps_the_base_pre_tokenization(tmp_path):
    from kopretrain.runs.records import StageError
    from kopretrain.testing import REVIEWS, tiny_unigram_checkpoint
    from tests.fixtures.data import write_stage_dir

    base = tiny_unigram_checkpoint(tmp_path / "base", REVIEWS * 3, vocab_size=300)
    data = write_stage_dir(tmp_path / "data", {"train": REVIEWS[:12], "dev": REVIEWS[12:]})
    with pytest.raises(StageError, match="--pretokenize morpheme does not match"):
        execute("vocab", VocabConfig(input=str(data), prune_from=str(base), pretokenize="morpheme", report_texts=0),
                tmp_path / "p")


def test_a_compare_with_folder_is_fingerprinted_by_its_content(tmp_path):
    """--compare-with a local tokenizer folder: a changed tokenizer there makes the report stale (the
    folder name alone said up to date); a Hub id stays a value. The vocab's own key keeps neither."""
    from kopretrain.runs.records import StageRun

    other = tmp_path / "other"
    other.mkdir()
    (other / "tokenizer.json").write_text('{"v": 1}')

    def keys(compare_with):
        run = StageRun("vocab", VocabConfig(input="d", compare_with=compare_with), tmp_path / "out", log=lambda *a: None)
        return run.fingerprint, run.report_key

    first = keys([str(other), "klue/bert-base"])
    (other / "tokenizer.json").write_text('{"v": 2}')
    second = keys([str(other), "klue/bert-base"])
    assert second[1] != first[1] and second[0] == first[0] == keys([])[0]
    assert keys(["klue/bert-base"])[1] != keys([])[1]


def test_report_options_rewrite_the_report_without_retraining(analyzed, tmp_path, capsys):
    """--compare-with, --report-texts, --slang change only tokenizer_report.*: a finished vocab gets
    its report rewritten, keeps its files and its key, so pretrain downstream stays up to date (the
    vocab was retrained: WordPiece bytes differ run to run, and everything after it reran)."""
    from kopretrain.runs.records import fingerprint_path, read_stage

    out = _train(analyzed, tmp_path / "v")
    other = _train(analyzed, tmp_path / "other", vocab_size=500)
    before, key = read_stage(out), fingerprint_path(out)
    tokenizer = (out / "tokenizer.json").read_bytes()
    assert str(other) not in (out / "tokenizer_report.md").read_text()

    assert get("vocab").status(from_dict(VocabConfig, {"input": str(analyzed), "vocab_size": 600, "reserved_unused": 10,
                                                       "min_frequency": 1, "report_texts": 40,
                                                       "compare_with": [str(other)]}), out).startswith("up to date; its report")
    _train(analyzed, out, compare_with=[str(other)])
    after = read_stage(out)
    assert "report rewritten" in capsys.readouterr().out
    assert (out / "tokenizer.json").read_bytes() == tokenizer and fingerprint_path(out) == key
    assert after["fingerprint"] == before["fingerprint"] and after["content"] == before["content"]
    assert str(other) in (out / "tokenizer_report.md").read_text() and str(other) in after["stats"]["report"]
    assert after["config"]["compare_with"] == [str(other)] and after["stats"]["vocab_size"] == before["stats"]["vocab_size"]
    assert not list(tmp_path.glob(".v.report-*"))

    _train(analyzed, out, compare_with=[str(other)])  # nothing changed: nothing rewritten
    assert "report rewritten" not in capsys.readouterr().out
    _train(analyzed, out, report_texts=0)  # the report turned off: no stale copy left
    assert not (out / "tokenizer_report.md").exists() and "report" not in read_stage(out)["stats"]
    assert fingerprint_path(out) == key
    _train(analyzed, out, vocab_size=550, report_texts=0)  # a vocab option retrains
    assert read_stage(out)["fingerprint"] != before["fingerprint"]


def test_a_vocab_finished_before_report_options_left_the_key_stays_up_to_date(analyzed, tmp_path, capsys):
    """Upgrading made every finished vocab stale (its key held --compare-with ...), and the
    non-deterministic retrain made pretrain and everything after it stale too."""
    from kopretrain.runs.fingerprints import stage_fingerprint
    from kopretrain.runs.records import read_stage, write_json

    out = _train(analyzed, tmp_path / "v")
    other = _train(analyzed, tmp_path / "other", vocab_size=500)
    record = read_stage(out)
    old_key = {k: v for k, v in record["config"].items() if k not in ("batch_size", *VocabConfig.INPUTS)}
    record["fingerprint"] = stage_fingerprint("vocab", old_key, record["inputs"])  # as 2026-12-06 keyed it
    record.pop("report_key")
    write_json(out / "stage.json", record)
    tokenizer = (out / "tokenizer.json").read_bytes()
    capsys.readouterr()
    _train(analyzed, out)
    assert "up to date" in capsys.readouterr().out and read_stage(out)["fingerprint"] == record["fingerprint"]
    _train(analyzed, out, compare_with=[str(other)])
    assert "report rewritten" in capsys.readouterr().out and (out / "tokenizer.json").read_bytes() == tokenizer
    _train(analyzed, out, compare_with=[str(other)])
    assert "report rewritten" not in capsys.readouterr().out
