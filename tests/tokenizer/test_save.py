"""Saved tokenizers name a class transformers 4 and 5 both have, and load with the same ids."""

from __future__ import annotations

import json

from kopretrain.runs.registry import execute
from kopretrain.testing import REVIEWS, tiny_tokenizer
from kopretrain.tokenizer.save import save_tokenizer
from kopretrain.vocab import VocabConfig
from tests.fixtures.data import write_stage_dir


def test_saved_tokenizer_names_a_portable_class_with_the_same_ids(tmp_path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    bert = tiny_tokenizer(REVIEWS, tmp_path / "src")
    tok = PreTrainedTokenizerFast(tokenizer_object=bert.backend_tokenizer, unk_token="[UNK]", pad_token="[PAD]")
    save_tokenizer(tok, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # transformers 4.x has no TokenizersBackend
    plain, auto = PreTrainedTokenizerFast.from_pretrained(tmp_path / "out"), AutoTokenizer.from_pretrained(tmp_path / "out")
    for text in REVIEWS:
        assert plain(text)["input_ids"] == auto(text)["input_ids"] == tok(text)["input_ids"]


def test_vocab_stage_output_is_portable(tmp_path):
    data = write_stage_dir(tmp_path / "data", {"train": REVIEWS * 5, "dev": REVIEWS[:5]})
    out = execute("vocab", VocabConfig(input=str(data), vocab_size=300, min_frequency=1, report_texts=0), tmp_path / "v")
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
