"""Small, fully local inputs for the pretrain tests: a data stage output and a tokenizer dir.

Built in a few hundred milliseconds so every test can afford its own; no network, no upstream stage.
"""

from __future__ import annotations

import random
from pathlib import Path

SUBJECTS = ["영화", "배우", "스토리", "연출", "음악", "결말", "주인공", "대사", "액션", "영상미"]
VERBS = ["정말 좋았다", "너무 지루했다", "최고였어요", "별로였음", "그냥 그랬다", "감동적이었다",
         "재밌었어요ㅋㅋ", "실망했습니다", "완전 추천", "다시 보고 싶다"]
EXTRAS = ["", " 진짜", " ㅠㅠ", " 강추", " 10점", " ..", " 또 볼래요", " 시간 아까움"]


def make_texts(n: int, seed: int = 0) -> list[str]:
    """Short Korean review-like texts (``"배우 연기 정말 좋았다 강추"``), deterministic for a seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(SUBJECTS), rng.choice(VERBS)]
        if rng.random() < 0.5:
            words.insert(1, rng.choice(SUBJECTS))
        out.append(" ".join(words) + rng.choice(EXTRAS))
    return out


def write_data_stage(directory: Path, n_train: int = 400, n_dev: int = 60) -> Path:
    """``train.parquet``/``dev.parquet`` with the data-stage columns (as ingest/normalize write them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("dev", n_dev, 1)):
        texts = make_texts(n, seed)
        table = pa.table({
            "id": [f"{split}-{i}" for i in range(n)], "text": texts,
            "label": ["positive" if i % 2 else "negative" for i in range(n)],
            "rating": [10.0 if i % 2 else 1.0 for i in range(n)], "group": [str(i % 7) for i in range(n)],
            "date": [None] * n, "source": [f"synthetic:{i}" for i in range(n)],
        })
        pq.write_table(table, directory / f"{split}.parquet")
    return directory


def write_tokenizer_dir(directory: Path, vocab_size: int = 300) -> Path:
    """A WordPiece tokenizer dir loadable with ``AutoTokenizer`` plus ``kopretrain.json``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from kopretrain.textprep import TextPrep

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(make_texts(2000, seed=5),
                            trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    directory.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(directory)
    TextPrep(normalize=None, pretokenize="eojeol").save(directory)
    return directory
