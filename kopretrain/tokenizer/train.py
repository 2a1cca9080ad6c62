"""Build, train and save the HF ``tokenizers`` pipelines described in :mod:`kopretrain.vocab`.

Only standard ``tokenizers`` components are used, so the saved ``tokenizer.json`` reloads exactly
with ``AutoTokenizer.from_pretrained(dir)`` (``tokenizer_class: PreTrainedTokenizerFast``, which
loads ``tokenizer.json`` as it is in transformers 4 and 5: transformers 5.x's ``BertTokenizer``
would rebuild its own BERT pipeline from the vocab and drop the morpheme pre-tokenizer, so we
never name it; see :mod:`kopretrain.tokenizer.save`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kopretrain.runs.records import StageError
from kopretrain.text.pretokenize import JOINER, placeholder_tokens
from kopretrain.tokenizer.corpus import corpus_batches
from kopretrain.tokenizer.fingerprint import vocab_hash
from kopretrain.tokenizer.save import save_tokenizer as save_portable
from kopretrain.tokenizer.specials import SPECIAL_TOKENS

METASPACE = "\u2581"  # ▁


def unused_tokens(n: int) -> list[str]:
    return [f"[unused{i}]" for i in range(n)]


def build_tokenizer(model: str, pretokenize: str):
    """An untrained ``tokenizers.Tokenizer`` (normalizer, pre-tokenizer, model, decoder)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    # WordPiece: split before every joiner and keep it on the next piece ("재밌￭어요" -> "재밌", "￭어요");
    # Unigram: drop it, ▁ already marks eojeol starts ("▁재밌", "어요"). See kopretrain.vocab.
    joiner_split = pre_tokenizers.Split(JOINER, behavior="merged_with_next")
    joiner_drop = pre_tokenizers.Split(JOINER, behavior="removed")
    drop_joiner = [decoders.Replace(" " + JOINER, ""), decoders.Replace(JOINER, "")]
    if model == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##", max_input_chars_per_word=100))
        # Hanja are padded with spaces as in BERT; in morpheme mode kiwipiepy already separates them
        # (SH) and padding would strand a joiner ("추천￭王" -> "추천", "￭").
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=pretokenize == "eojeol",
                                                    strip_accents=False, lowercase=False)
        if pretokenize == "eojeol":
            tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            tok.decoder = decoders.WordPiece(prefix="##")
        else:
            # Kiwi already separates punctuation (SF/SS/SW morphemes), so only whitespace and joiners split.
            tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), joiner_split])
            tok.decoder = decoders.Sequence([decoders.WordPiece(prefix="##", cleanup=False), *drop_joiner])
    elif model == "unigram":
        tok = Tokenizer(models.Unigram())
        # SentencePiece collapses whitespace runs; without it "  " becomes extra "▁" tokens.
        tok.normalizer = normalizers.Sequence([
            normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False),
            normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip(),
        ])
        meta = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
        tok.pre_tokenizer = meta if pretokenize == "eojeol" else pre_tokenizers.Sequence([meta, joiner_drop])
        tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    else:
        raise ValueError(f"unknown tokenizer model {model!r}")
    return tok


def _trainer(cfg: Any, specials: list[str]):
    from tokenizers import trainers

    if cfg.model == "wordpiece":
        # Not reproducible across processes (measured: two quickstart runs gave vocabularies sharing
        # only part of their '##' entries): tokenizers' BPE-based WordPiece trainer numbers '##'
        # pieces in hash-map order and breaks count ties by those numbers (huggingface/tokenizers
        # #1794, fix in open PR #2066). The vocab's hash in stage.json tells two runs apart.
        return trainers.WordPieceTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                         special_tokens=specials, limit_alphabet=cfg.limit_alphabet,
                                         continuing_subword_prefix="##", show_progress=False)
    # Unigram is not reproducible either: the same pieces, but ids ordered differently between runs
    # from some id on (a review helper measured it on the sample); the vocab hash differs.
    return trainers.UnigramTrainer(vocab_size=cfg.vocab_size, special_tokens=specials, unk_token="[UNK]",
                                   max_piece_length=cfg.max_piece_length, show_progress=False)


def train_tokenizer(cfg: Any, out_dir: Path, train_path: Path, log=print) -> dict[str, Any]:
    """Train on ``train_path`` and save into ``out_dir``; returns the stats for ``stage.json``."""
    from tokenizers import processors

    placeholders = list(placeholder_tokens())
    specials = list(SPECIAL_TOKENS) + placeholders + unused_tokens(cfg.reserved_unused)
    tok = build_tokenizer(cfg.model, cfg.pretokenize)
    counter = {"texts": 0, "prepare_seconds": 0.0}

    def texts():  # counts texts and the time spent reading + pre-tokenizing them (kiwipiepy in morpheme mode)
        batches = corpus_batches(train_path, cfg.pretokenize, cfg.batch_size, cfg.reuse_analyze_offsets, log=log)
        while True:
            t = time.perf_counter()
            batch = next(batches, None)
            counter["prepare_seconds"] += time.perf_counter() - t
            if batch is None:
                return
            counter["texts"] += len(batch)
            yield batch

    t0 = time.time()
    try:
        tok.train_from_iterator(texts(), trainer=_trainer(cfg, specials))
    except Exception as exc:  # the Rust trainer's messages name no file: add ours
        if counter["texts"] == 0:
            raise StageError(f"{train_path}: no non-empty text to train a vocabulary on") from exc
        raise StageError(f"{train_path}: training the {cfg.model} vocabulary failed: {exc}") from exc
    seconds = time.time() - t0
    if counter["texts"] == 0:
        raise StageError(f"{train_path}: no non-empty text to train a vocabulary on")
    trained = tok.get_vocab_size()
    if trained > cfg.vocab_size:
        raise StageError(
            f"--vocab-size {cfg.vocab_size} is smaller than the alphabet: the corpus needs {trained} entries "
            f"(characters{' and their ## forms' if cfg.model == 'wordpiece' else ''} plus {len(specials)} special/"
            f"placeholder/unused tokens); raise --vocab-size or lower "
            f"{'--limit-alphabet/' if cfg.model == 'wordpiece' else ''}--reserved-unused")
    ids = {t: tok.token_to_id(t) for t in ("[CLS]", "[SEP]")}
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=list(ids.items()))
    tok = _demote(tok, placeholders, unused_tokens(cfg.reserved_unused))
    save_tokenizer(tok, out_dir, cfg.model_max_length)
    log(f"[vocab] trained {cfg.model}/{cfg.pretokenize}: {trained} entries from {counter['texts']} texts in {seconds:.1f}s")
    return {"texts": counter["texts"], "model": cfg.model, "pretokenize": cfg.pretokenize, "vocab_size": trained,
            "requested_vocab_size": cfg.vocab_size, "vocab_hash": vocab_hash(tok), "train_seconds": round(seconds, 2),
            "prepare_seconds": round(counter["prepare_seconds"], 2),
            "alphabet_size": alphabet_size(tok), "placeholders": placeholders, "reserved_unused": cfg.reserved_unused}


def _demote(tok, placeholders: list[str], unused: list[str]):
    """Trainers register every reserved token as *special*. Placeholders stay added tokens but become
    non-special (decode(skip_special_tokens=True) keeps "[URL]") and normalized; [unused*] become plain vocab entries
    (as in BERT's vocab.txt) so vocab_extend can rename them in place."""
    from tokenizers import Tokenizer

    data = json.loads(tok.to_str())
    drop = set(unused)
    data["added_tokens"] = [a for a in data["added_tokens"] if a["content"] not in drop]
    for added in data["added_tokens"]:
        if added["content"] in placeholders:
            # matched after normalization (as embed.py saves them): matched in raw text first, the text
            # around each is normalized alone and a Unigram Strip() ate the space before "[URL]"
            added["special"], added["normalized"] = False, True
            # No lstrip under Metaspace: the "▁" a space before "[URL]" becomes is a token of its own,
            # and it is information (a new word starts: "반이 [CENSORED]임" vs "반이[CENSORED] 임";
            # tests/tokenizer/test_embed.py), at the cost of one position per placeholder.
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def save_tokenizer(tok, out_dir: Path, model_max_length: int, special_tokens: dict[str, str] | None = None) -> None:
    """Save a ``tokenizers.Tokenizer`` as an AutoTokenizer-loadable fast tokenizer."""
    from transformers import PreTrainedTokenizerFast

    names = special_tokens or dict(zip(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"), SPECIAL_TOKENS))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length,
                                 model_input_names=["input_ids", "token_type_ids", "attention_mask"], **names)
    save_portable(hf, out_dir)


def alphabet_size(tok) -> int:
    """Single characters in the vocab (WordPiece: word-initial forms only)."""
    return sum(1 for t in tok.get_vocab() if len(t) == 1 or (len(t) == 2 and t[0] == METASPACE))
