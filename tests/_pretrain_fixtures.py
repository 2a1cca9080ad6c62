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


TINY = dict(num_layers=2, hidden_size=32, heads=2, intermediate_size=64, embedding_size=16)
"""The model size every pretrain test uses (2 layers, hidden 32)."""


def tiny_parts(objective: str, tokenizer, model_type: str = "electra") -> dict:
    """Fresh tiny models as the stage would build them (``models.build_scratch``)."""
    from kopretrain import models

    arch = models.resolve_arch("tiny", model_type, **TINY)
    return models.build_scratch(objective, model_type, arch, tokenizer)


def write_checkpoint(directory: Path, kind: str, tokenizer_dir: Path) -> Path:
    """A local "published" checkpoint: ``bert`` (BertForMaskedLM), ``electra-disc`` (discriminator
    only, the KcELECTRA case) or ``electra-gen`` (generator), with tokenizer files + kopretrain.json."""
    import shutil

    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    if kind == "bert":
        model = tiny_parts("mlm", tok, "bert")["mlm"]
    elif kind == "electra-disc":
        model = tiny_parts("rtd", tok)["discriminator"]
    elif kind == "electra-gen":
        model = tiny_parts("rtd", tok)["generator"]
    else:
        raise ValueError(kind)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    shutil.copy(tokenizer_dir / "kopretrain.json", directory / "kopretrain.json")
    return directory


def one_thread():
    """Generator for an autouse fixture: 1 torch thread while a test runs.

    Tiny models gain nothing from 2 threads, and on a shared, busy 2-core machine OpenMP threads
    spin-wait on each other: a 2-layer step measured 0.7 s with 2 threads and 0.035 s with 1."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
