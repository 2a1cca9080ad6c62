"""Pad share (naive / length buckets / packing), tokens lost by run_mlm's group_texts, and
masking-collator time per 32x128 batch against transformers' DataCollatorForLanguageModeling.

    .venv/bin/python benchmarks/bench_packing.py                 # 50k NSMC reviews
    .venv/bin/python benchmarks/bench_packing.py --rows 10000    # quick look

A WordPiece vocab (``--vocab-size``, 8k) is trained on the reviews first (tokenizers; NFC, BERT pre-tokenizer),
so token counts resemble a real Korean vocab. Collator times are medians of 50 calls on the same
packed rows; the baseline is the stock collator (plain mlm, special mask from its own per-row
``get_special_tokens_mask``) measured in the same process.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NSMC = ROOT.parent / "shared" / "data" / "nsmc" / "reviews.jsonl.gz"


def load_reviews(rows: int) -> list[str]:
    with gzip.open(NSMC, "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["review"] for _, line in zip(range(rows), fh)]
    return [t for t in texts if t.strip()]


def wordpiece(texts: list[str], vocab_size: int = 16_000):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def group_texts_loss(lengths: list[int], block: int = 128, map_batch: int = 1000) -> float:
    """Share of tokens run_mlm's group_texts drops (remainder of every 1000-example map batch)."""
    lost = sum(sum(lengths[i : i + map_batch]) % block for i in range(0, len(lengths), map_batch))
    return lost / sum(lengths)


def median_ms(fn, calls: int = 50) -> float:
    fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=8_000)
    parser.add_argument("--morph-rows", type=int, default=5_000, help="reviews analyzed with kiwipiepy")
    args = parser.parse_args()

    import datasets
    import torch
    from transformers import DataCollatorForLanguageModeling

    from kopretrain.train import packing
    from kopretrain.train.masking import MaskingConfig, make_collator

    torch.set_num_threads(1)
    texts = load_reviews(args.rows)
    tok = wordpiece(texts, args.vocab_size)
    ds = datasets.Dataset.from_dict({"text": texts})
    start = time.perf_counter()
    tokenized = packing.tokenize_texts(ds, tok, word_level="eojeol")
    t_tok = time.perf_counter() - start
    lengths = [len(x) for x in tokenized["input_ids"]]
    print(f"{len(texts)} reviews, {sum(lengths)} tokens, mean {statistics.mean(lengths):.1f} tokens/review, "
          f"tokenize+eojeol word ids {len(texts) / t_tok:,.0f} reviews/s")

    L = args.max_length
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        packed = packing.pack(tokenized, tok, L, cache_dir=cache)
        t_pack = time.perf_counter() - start
        shares = {mode: packing.pad_share(lengths, L, mode) for mode in ("naive", "bucket")}
        shares["bucket/8"] = packing.pad_share(lengths, L, "bucket", pad_to_multiple_of=8)
        shares["pack"] = packing.pad_share(packed, L, "pack")
        rows = packed.select(range(32)).to_list()
    print(f"pack: {len(packed)} rows of {L} in {t_pack:.1f} s")
    for mode, share in shares.items():
        print(f"pad share {mode:8s} {share:6.1%}   real tokens per 32x{L} batch-equivalent: {1 - share:.2f}x")
    print(f"compute per real token, naive / pack: {(1 - shares['pack']) / (1 - shares['naive']):.1f}x")
    print(f"run_mlm group_texts would drop {group_texts_loss(lengths, L):.1%} of tokens (pack drops 0)")

    if args.morph_rows:
        from kiwipiepy import Kiwi

        sub = texts[: args.morph_rows]
        analyses = list(Kiwi().tokenize(sub))
        mds = datasets.Dataset.from_dict({"text": sub, "morph_start": [[m.start for m in a] for a in analyses],
                                          "morph_len": [[m.len for m in a] for a in analyses]})
        times = {}
        for level, data in (("eojeol", datasets.Dataset.from_dict({"text": sub})), ("morpheme", mds)):
            start = time.perf_counter()
            out = packing.tokenize_texts(data, tok, word_level=level)
            times[level] = time.perf_counter() - start
            words = sum(len(set(w)) for w in out["word_ids"])
            print(f"{level:8s} words: {words / len(sub):.1f}/review, tokenize {len(sub) / times[level]:,.0f} reviews/s")

    baseline = DataCollatorForLanguageModeling(tok, mlm_probability=0.15, seed=0)
    plain = [{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]} for r in rows]
    base_ms = median_ms(lambda: baseline(plain))
    print(f"collator, 32x{L} batch, median ms (1 torch thread):")
    print(f"  DataCollatorForLanguageModeling (baseline) {base_ms:6.2f}")
    for name, objective, cfg in [("mlm", "mlm", None), ("rtd", "rtd", None), ("wwm", "wwm", None),
                                 ("span", "span", None), ("span/word", "span", MaskingConfig(span_unit="word"))]:
        ms = median_ms(lambda c=make_collator(tok, objective, cfg, seed=0): c(rows))
        print(f"  {name:42s} {ms:6.2f}  ({ms / base_ms:.2f}x baseline)")


if __name__ == "__main__":
    main()
