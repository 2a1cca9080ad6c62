"""A tiny analyze-stage output for the vocab tests: review-like Korean sentences with slang
(``"이 영화 완전 갓띵작이네 ㅋㅋ"``), placeholders and kiwipiepy morpheme columns."""

from __future__ import annotations

import random
from pathlib import Path

SUBJECTS = ["영화", "배우", "연기", "스토리", "결말", "음악", "감독", "배송", "가격", "화질", "분위기", "주인공"]
PARTICLES = ["은", "는", "이", "가", "도", "만", ""]
ADVERBS = ["정말", "너무", "진짜", "완전", "그냥", "생각보다", "엄청", "역시", "다시"]
PREDICATES = ["좋아요", "별로였어요", "최고다", "재밌었다", "지루했음", "괜찮네요", "실망했습니다", "추천합니다",
              "아쉽다", "감동적이었다", "훌륭했습니다", "엉망이네", "무난함", "기대이하", "재밌어요"]
SLANG = ["갓띵작이네", "존잼", "노잼", "핵꿀잼", "개노잼", "꿀잼이다"]
TAILS = ["ㅋㅋ", "ㅎㅎ", "!!", "..", "ㅠㅠ", "10점", "^^", "[URL]", "[EMOJI]", ""]


def sentences(n: int = 200, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        clauses = []
        for _ in range(rng.randint(1, 3)):
            subject = rng.choice(SUBJECTS) + rng.choice(PARTICLES)
            pred = rng.choice(SLANG) if rng.random() < 0.3 else rng.choice(PREDICATES)
            clauses.append(f"{subject} {rng.choice(ADVERBS)} {pred}")
        out.append(" ".join(clauses) + (" " + rng.choice(TAILS)).rstrip())
    return out


def write_stage(directory: Path, n_train: int = 200, n_dev: int = 60, morphs: bool = True, texts=None) -> Path:
    """``train.parquet``/``dev.parquet`` with the data contract's columns (+ analyze columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    all_texts = texts if texts is not None else sentences(n_train + n_dev)
    splits = {"train": all_texts[:n_train], "dev": all_texts[n_train:n_train + n_dev]}
    if morphs:
        from kopretrain.vocab import _kiwi

        kiwi = _kiwi()  # the process-wide instance: Kiwi start-up is slow on a busy machine
    for split, rows in splits.items():
        if not rows and split == "dev":
            continue
        cols = {"id": [f"{split}{i}" for i in range(len(rows))], "text": rows,
                "label": ["positive"] * len(rows), "source": [f"fixture:{i}" for i in range(len(rows))]}
        if morphs:
            analyzed = kiwi.tokenize(rows) if rows else []
            toks = [list(t) for t in analyzed]
            cols["morph_form"] = [[t.form for t in ts] for ts in toks]
            cols["morph_tag"] = [[t.tag for t in ts] for ts in toks]
            cols["morph_start"] = [[t.start for t in ts] for ts in toks]
            cols["morph_len"] = [[t.len for t in ts] for ts in toks]
        schema = None if rows else pa.schema([("id", pa.string()), ("text", pa.string()),
                                              ("label", pa.string()), ("source", pa.string())])
        pq.write_table(pa.table(cols, schema=schema), directory / f"{split}.parquet")
    return directory
