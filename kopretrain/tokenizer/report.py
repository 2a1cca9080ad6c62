"""Tokenizer report: compare tokenizers on held-out reviews (JSON + Markdown).

Per tokenizer: tokens per eojeol (fertility), ``[UNK]`` rate, share of reviews longer than 64/128
tokens (with ``[CLS]``/``[SEP]``), how slang and emoticons are split (``"존잼"`` -> ``존 ##잼``),
and batched throughput (reviews/s) with and without the recorded text preparation (morpheme
mode runs kiwipiepy). Pairwise vocab overlap is reported raw and on *surfaces* (``##``, ``▁``
and ``￭`` stripped) so a WordPiece and a Unigram vocab can be compared.

Each tokenizer gets its own ``kopretrain.json`` preparation (identity for foreign checkpoints),
so a morpheme-mode tokenizer is measured on the input it will really see.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

LONG = (64, 128)
MARKERS = ("##", "\u2581", "\uffed")


def load(path: str, revision: str | None = None):
    """``(tokenizer, TextPrep)`` for a tokenizer/model directory or Hub id."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from kopretrain.inference.scoring import rules_skipped
    from kopretrain.text.textprep import TextPrep, load as load_prep

    tok = AutoTokenizer.from_pretrained(path, revision=revision) if revision else AutoTokenizer.from_pretrained(path)
    prep = load_prep(path) if Path(path).is_dir() else None
    prep = prep or TextPrep()
    # Measure what kopretrain's stages pay: they normalize in Python and tokenize with a copy that
    # skips the rules embedded for plain transformers (same ids). Timing the embedded rules on
    # text already normalized made an extended vocabulary look 2.6x slower than its base, which
    # carries no rules: that was the normalizer's cost (BENCHMARKS.md), not the vocabulary's.
    tok._tokenizer = Tokenizer.from_str(rules_skipped(tok.backend_tokenizer.to_str(), prep))
    return tok, prep


def surface(token: str) -> str:
    for mark in MARKERS:
        token = token.replace(mark, "")
    return token


def measure(tok, prep, texts: list[str], slang: list[str], batch_size: int = 1000) -> dict[str, Any]:
    """Fertility, UNK rate, long-review shares, slang splits and throughput of one tokenizer."""
    prep.prepare(texts[:8])  # warm up (kiwipiepy start-up is ~1-2 s) so throughput is per review
    t0 = time.perf_counter()
    prepared = prep.prepare(texts)
    prep_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids: list[list[int]] = []
    for i in range(0, len(prepared), batch_size):
        ids += tok(prepared[i:i + batch_size], add_special_tokens=True, truncation=False)["input_ids"]
    tok_seconds = time.perf_counter() - t0
    specials = set(tok.all_special_ids) - {tok.unk_token_id}
    content = [[i for i in row if i not in specials] for row in ids]
    n_tokens = sum(map(len, content))
    n_eojeol = sum(len(t.split()) for t in texts)
    unk = tok.unk_token_id
    n_unk = sum(row.count(unk) for row in content) if unk is not None else 0
    n = max(len(texts), 1)
    return {
        "model": type(tok.backend_tokenizer.model).__name__,
        "pretokenize": prep.pretokenize,
        "vocab_size": len(tok),
        "reviews": len(texts),
        "tokens": n_tokens,
        "fertility": round(n_tokens / max(n_eojeol, 1), 4),
        "tokens_per_review": round(n_tokens / n, 2),
        "unk_rate": round(n_unk / max(n_tokens, 1), 6),
        "reviews_with_unk": round(sum(1 for row in content if unk in row) / n, 6),
        **{f"share_over_{k}": round(sum(1 for row in ids if len(row) > k) / n, 6) for k in LONG},
        "reviews_per_s_tokenize": round(len(texts) / max(tok_seconds, 1e-9), 1),
        "reviews_per_s_with_prep": round(len(texts) / max(tok_seconds + prep_seconds, 1e-9), 1),
        "slang": {s: tok.convert_ids_to_tokens(tok(p, add_special_tokens=False)["input_ids"])
                  for s, p in zip(slang, prep.prepare(list(slang)))},
    }


def overlap(vocabs: dict[str, set[str]]) -> dict[str, dict[str, dict[str, float]]]:
    """Pairwise Jaccard overlap of vocab sets, raw and on marker-stripped surfaces."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    names = list(vocabs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            sa, sb = {surface(t) for t in vocabs[a]}, {surface(t) for t in vocabs[b]}
            out.setdefault(a, {})[b] = {
                "raw": round(len(vocabs[a] & vocabs[b]) / max(len(vocabs[a] | vocabs[b]), 1), 4),
                "surface": round(len(sa & sb) / max(len(sa | sb), 1), 4),
                "shared_raw": len(vocabs[a] & vocabs[b]),
            }
    return out


def compare(tokenizer_dirs, texts: list[str], slang: list[str] | None = None,
            revisions: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Compare tokenizers (``[dir, ...]`` or ``{name: dir}``) on held-out ``texts``."""
    from kopretrain.tokenizer.specials import SLANG

    dirs = tokenizer_dirs if isinstance(tokenizer_dirs, dict) else {str(d): str(d) for d in tokenizer_dirs}
    slang = list(SLANG if slang is None else slang)
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("tokenizer report: no non-empty held-out text")
    results, vocabs = {}, {}
    for name, path in dirs.items():
        tok, prep = load(str(path), (revisions or {}).get(name))
        if not tok.is_fast:
            raise ValueError(f"{path}: the report needs a fast tokenizer")
        results[name] = {"path": str(path), **measure(tok, prep, texts, slang)}
        vocabs[name] = set(tok.get_vocab())
    return {"texts": len(texts), "eojeols": sum(len(t.split()) for t in texts),
            "tokenizers": results, "overlap": overlap(vocabs)}


ROWS = [("model", "model"), ("pretokenize", "pre-tokenization"), ("vocab_size", "vocab size"),
        ("fertility", "tokens per eojeol"), ("tokens_per_review", "tokens per review"),
        ("unk_rate", "[UNK] rate (tokens)"), ("reviews_with_unk", "reviews with [UNK]"),
        ("share_over_64", "reviews > 64 tokens"), ("share_over_128", "reviews > 128 tokens"),
        ("reviews_per_s_tokenize", "reviews/s (tokenize, batched)"),
        ("reviews_per_s_with_prep", "reviews/s (prepare + tokenize)")]


PERCENT = {"unk_rate", "reviews_with_unk", "share_over_64", "share_over_128"}


def _cell(key: str, value: Any) -> str:
    if key in PERCENT:
        return f"{value:.3%}"
    return f"{value:,.1f}" if key.startswith("reviews_per_s") else str(value)


def to_markdown(report: dict[str, Any]) -> str:
    """A readable Markdown rendering of :func:`compare`'s result."""
    names = list(report["tokenizers"])
    esc = [n.replace("|", "\\|") for n in names]
    lines = ["# Tokenizer report", "",
             f"{report['texts']} held-out reviews, {report['eojeols']} eojeols"
             + (f" ({report['held_out']['split']} split)" if "held_out" in report else "") + ".", "",
             "| | " + " | ".join(esc) + " |", "|---|" + "---|" * len(names)]
    for key, label in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(key, report["tokenizers"][n][key]) for n in names) + " |")
    lines += ["", "## Slang and emoticons", "", "| string | " + " | ".join(esc) + " |", "|---|" + "---|" * len(names)]
    slang = list(report["tokenizers"][names[0]]["slang"]) if names else []
    for s in slang:
        cells = [" ".join(f"`{t}`" for t in report["tokenizers"][n]["slang"].get(s, [])) for n in names]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    if report["overlap"]:
        lines += ["", "## Vocab overlap (Jaccard)", "", "| a | b | raw | surface (##/▁/￭ stripped) | shared entries |",
                  "|---|---|---|---|---|"]
        for a, row in report["overlap"].items():
            for b, v in row.items():
                lines.append(f"| {a} | {b} | {v['raw']:.1%} | {v['surface']:.1%} | {v['shared_raw']} |")
    lines += ["", "Fertility counts tokens without [CLS]/[SEP] per whitespace-separated eojeol of the held-out text; "
              "long-review shares count them. Throughput is measured on this machine in this run."]
    return "\n".join(lines) + "\n"


def save(report: dict[str, Any], directory: str | Path) -> None:
    from kopretrain.runs.records import write_json

    write_json(Path(directory) / "tokenizer_report.json", report)
    (Path(directory) / "tokenizer_report.md").write_text(to_markdown(report), encoding="utf-8")
