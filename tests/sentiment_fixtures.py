"""Tiny, offline building blocks for the finetune/evaluate tests: Korean review splits with clear
sentiment, a WordPiece tokenizer trained on them, and 2-layer/hidden-32 BERT or ELECTRA models
built from configs (no network, a few seconds on CPU)."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

SUBJECTS = ["이 영화", "배우 연기", "스토리", "결말", "영상미", "음악", "감독 연출", "이번 작품"]
PHRASES = {
    "positive": ["정말 최고다", "너무 재밌어요", "감동적이고 좋았다", "강추합니다", "완전 꿀잼 최고"],
    "neutral": ["그냥 그럭저럭", "보통이다", "평범한 편", "나쁘진 않은데 무난", "그저 그런 수준"],
    "negative": ["최악이다", "너무 지루해요", "돈 아깝다 별로", "실망했다 최악", "노잼 시간 낭비"],
}
RATINGS = {"positive": [9, 10], "neutral": [5, 6, 7, 8], "negative": [1, 2, 3, 4]}


def make_rows(n: int, seed: int, prefix: str, labels=("negative", "neutral", "positive")) -> list[dict]:
    """``n`` rows cycling through ``labels``; ``text_raw`` adds the noise normalize would remove."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        text = f"{rng.choice(SUBJECTS)} {rng.choice(PHRASES[label])}"
        rows.append({
            "id": f"{prefix}{i}", "text": text, "text_raw": text + rng.choice(["", " ㅋㅋㅋㅋ", "!!!!"]),
            "label": label, "rating": float(rng.choice(RATINGS[label])), "group": f"m{i % 7}",
            "date": "2024-01-01", "source": f"fixture:{i}",
        })
    return rows


def write_data(directory: Path, n_train: int = 150, n_dev: int = 45, n_test: int = 45,
               test_labels=("negative", "neutral", "positive")) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for split, n, seed, labels in (("train", n_train, 1, None), ("dev", n_dev, 2, None), ("test", n_test, 3, test_labels)):
        rows = make_rows(n, seed, split[:2], labels or ("negative", "neutral", "positive"))
        pd.DataFrame(rows).to_parquet(directory / f"{split}.parquet")
    return directory


def all_texts() -> list[str]:
    return [f"{s} {p}" for s in SUBJECTS for ps in PHRASES.values() for p in ps] + ["ㅋㅋㅋㅋ !!!!"]


def make_tokenizer(directory: Path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(all_texts() * 3, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(directory)
    return fast


def make_model(directory: Path, kind: str = "bert", classifier: bool = False, seed: int = 0,
               init_range: float = 0.02, id2label: dict | None = None) -> Path:
    """A save_pretrained dir: a pretraining-style model (like a pretrain output) or, with
    ``classifier=True``, an untrained 3-class classifier with our id2label. A large
    ``init_range`` (0.5) makes an untrained classifier give different reviews different labels."""
    import torch
    from transformers import (BertConfig, BertForMaskedLM, BertForSequenceClassification, ElectraConfig,
                              ElectraForPreTraining, ElectraForSequenceClassification)

    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(directory)
    common = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                  initializer_range=init_range)
    id2label = id2label or {0: "negative", 1: "neutral", 2: "positive"}
    labels = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}} if classifier else {}
    if kind == "bert":
        config = BertConfig(**common, **labels)
        model = BertForSequenceClassification(config) if classifier else BertForMaskedLM(config)
    else:
        config = ElectraConfig(embedding_size=32, **common, **labels)
        model = ElectraForSequenceClassification(config) if classifier else ElectraForPreTraining(config)
    model.save_pretrained(directory)
    return directory
