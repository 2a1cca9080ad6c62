"""Tiny Korean corpus and WordPiece tokenizer built inside the tests (no network, no files).

Sentences are review-like (``"배송 빨랐어요 ㅋㅋ 가격도 정말 괜찮네요!"``), ~30 characters and
~15-25 tokens, like NSMC reviews, so pad-share and masking statistics behave as on real data.
"""

from __future__ import annotations

import functools
import random

SUBJECTS = ["배송", "가격", "품질", "포장", "연기", "스토리", "영화", "음악", "배우", "감독", "사장님", "직원",
            "맛", "화질", "디자인", "사이즈", "결말", "분위기", "서비스", "소리"]
PARTICLES = ["은", "는", "이", "가", "도", "만", ""]
ADVERBS = ["정말", "너무", "진짜", "완전", "그냥", "생각보다", "엄청", "조금", "다시", "역시"]
PREDICATES = ["좋아요", "별로였어요", "최고다", "재밌었다", "지루했음", "빨랐어요", "괜찮네요", "실망했습니다",
              "추천합니다", "아쉽다", "만족해요", "감동적이었다", "비쌌어요", "싸다", "느렸음", "예뻐요",
              "훌륭했습니다", "엉망이네", "무난함", "기대이하"]
TAILS = ["ㅋㅋ", "ㅎㅎ", "!!", "..", "ㅠㅠ", "10점", "강추", "비추", "^^", ""]


def sentences(n: int = 400, seed: int = 0) -> list[str]:
    """``n`` review-like sentences of 1-3 clauses."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        clauses = []
        for _ in range(rng.randint(1, 3)):
            subject = rng.choice(SUBJECTS) + rng.choice(PARTICLES)
            clauses.append(f"{subject} {rng.choice(ADVERBS)} {rng.choice(PREDICATES)}")
        out.append(" ".join(clauses) + (" " + rng.choice(TAILS)).rstrip())
    return out


def tokenizer(texts: list[str] | None = None, vocab_size: int = 230):
    """A fast BERT-style WordPiece tokenizer (``[PAD]`` 0 ... ``[MASK]`` 4) trained on ``texts``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()  # NFD/strip_accents would split Hangul into jamo
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(texts or sentences(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )


@functools.lru_cache(maxsize=1)
def kiwi():
    """One kiwipiepy analyzer per test session (start-up takes ~1-2 s)."""
    from kiwipiepy import Kiwi

    return Kiwi()


@functools.lru_cache(maxsize=4)
def analyzed(n: int = 300, seed: int = 6) -> tuple[list[str], list[list[int]], list[list[int]]]:
    """``sentences(n, seed)`` with ``morph_start``/``morph_len`` as the analyze stage stores them
    (cached: kiwipiepy is the slow part of these tests)."""
    texts = sentences(n, seed)
    analyses = list(kiwi().tokenize(texts))
    return texts, [[m.start for m in a] for a in analyses], [[m.len for m in a] for a in analyses]
