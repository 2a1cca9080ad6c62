"""Masking for the pretrain stage: ``mlm``, ``wwm`` (whole word/morpheme), ``span``, ``rtd``.

This module is light at import (standard library only) so ``pretrain.py`` can nest
:class:`MaskingConfig` in its own config; the torch collators live in :mod:`kopretrain.train.collators`.

Objectives (all mask ~``mlm_probability`` of the maskable tokens; ``[CLS]``/``[SEP]``/``[PAD]``
and other special tokens are never masked, random replacements never draw special ids):

- ``mlm``: BERT dynamic masking, each token independently, 80/10/10 per token.
- ``wwm``: whole-word masking driven by per-token ``word_ids`` (an eojeol ``"빨랐어요"`` or, with
  kiwipiepy offsets, a morpheme ``빠르``/``었``/``어요``): all tokens of a chosen word are masked
  together and share one replacement decision (80/10/10 *per word*).
- ``span``: SpanBERT contiguous spans, lengths ~ Geometric(p) clipped at ``max_span`` (mean 3.8 for
  p=0.2, max 10), never crossing a special token; one replacement decision per span, as SpanBERT.
- ``rtd``: the ELECTRA generator input — ``mlm`` with 85% ``[MASK]`` / 15% kept / 0% random.

Evaluation uses :func:`fixed_eval_features`: masks drawn once with a fixed seed, so perplexities
of different runs are computed on identical inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:  # pragma: no cover
    import datasets

Objective = Literal["mlm", "wwm", "span", "rtd"]

# (mask_replace_prob, random_replace_prob) used when the config leaves them unset.
DEFAULT_REPLACE: dict[str, tuple[float, float]] = {
    "mlm": (0.8, 0.1),
    "wwm": (0.8, 0.1),
    "span": (0.8, 0.1),
    "rtd": (0.85, 0.0),  # google-research/electra: no random replacement, 15% of masked kept
}


@dataclass
class MaskingConfig:
    """How tokens are chosen and corrupted for prediction; the objective and seed come from the caller
    (``pretrain.masking`` in a pipeline YAML, ``--masking.mlm-probability`` on the command line)."""

    mlm_probability: float = 0.15
    """Fraction of maskable (non-special, non-pad) tokens selected for prediction."""
    mask_replace_prob: float | None = None
    """Share of selected tokens/words/spans replaced by [MASK]; unset: 0.8, or 0.85 for rtd."""
    random_replace_prob: float | None = None
    """Share replaced by a random non-special token; unset: 0.1, or 0.0 for rtd. The rest is kept as is."""
    span_p: float = 0.2
    """span: geometric parameter of span lengths (SpanBERT 0.2 -> mean 3.8 with max_span 10)."""
    max_span: int = 10
    """span: longest span, in span units."""
    span_unit: Literal["token", "word"] = "token"
    """span: count span lengths in tokens, or in whole words from word_ids (SpanBERT counts words)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.mlm_probability < 1.0:
            raise ValueError(f"mlm_probability: must be in (0, 1), got {self.mlm_probability}")
        if not 0.0 < self.span_p <= 1.0:
            raise ValueError(f"span_p: must be in (0, 1], got {self.span_p}")
        if self.max_span < 1:
            raise ValueError(f"max_span: must be >= 1, got {self.max_span}")
        given = [p for p in (self.mask_replace_prob, self.random_replace_prob) if p is not None]
        if any(not 0.0 <= p <= 1.0 for p in given) or sum(given) > 1.0 + 1e-9:
            raise ValueError(f"mask_replace_prob/random_replace_prob: each in [0, 1] and summing to <= 1, "
                             f"got {self.mask_replace_prob} + {self.random_replace_prob}")

    def replace_probs(self, objective: Objective) -> tuple[float, float]:
        """``(mask_replace_prob, random_replace_prob)`` with ``objective``'s defaults filled in."""
        if objective not in DEFAULT_REPLACE:
            raise ValueError(f"objective: {objective!r} is not one of {', '.join(DEFAULT_REPLACE)}")
        mask_default, rand_default = DEFAULT_REPLACE[objective]
        mask_p = float(mask_default if self.mask_replace_prob is None else self.mask_replace_prob)
        rand_p = float(rand_default if self.random_replace_prob is None else self.random_replace_prob)
        if not (0.0 <= mask_p <= 1.0 and 0.0 <= rand_p <= 1.0 and mask_p + rand_p <= 1.0 + 1e-9):
            raise ValueError(f"mask_replace_prob/random_replace_prob: each in [0, 1] and summing to <= 1 "
                             f"({objective}: {mask_p} + {rand_p})")
        return mask_p, rand_p


RTD_MASKING = MaskingConfig(mask_replace_prob=0.85, random_replace_prob=0.0)
"""ELECTRA generator masking: 15% selected, 85% ``[MASK]``, 15% kept, no random tokens."""


def expected_span_length(p: float = 0.2, max_span: int = 10) -> float:
    """Mean of Geometric(p) truncated to 1..max_span (SpanBERT: p=0.2, max 10 -> 3.8)."""
    weights = [p * (1 - p) ** (k - 1) for k in range(1, max_span + 1)]
    return sum(k * w for k, w in zip(range(1, max_span + 1), weights)) / sum(weights)


def make_collator(tokenizer: Any, objective: Objective = "mlm", cfg: MaskingConfig | None = None, *,
                  seed: int | None = None, pad_to_multiple_of: int | None = 8) -> Callable[[list[dict]], dict]:
    """The training collator for ``objective`` (mlm per token, wwm whole words from word_ids, span
    SpanBERT spans, rtd ELECTRA generator masking). ``seed`` seeds the masking RNG (None: torch's
    global RNG, which the Trainer seeds).

    Takes ragged (``frame_texts``) or fixed-length (``pack``) features with ``input_ids`` and
    optionally ``attention_mask`` and ``word_ids`` (-1 on specials); other keys are ignored.
    Returns ``input_ids``, ``attention_mask`` and ``labels`` (-100 where not selected) tensors.
    With the Trainer, set ``remove_unused_columns=False`` so ``word_ids`` reach the collator.
    """
    from kopretrain.train import collators

    cfg = cfg or MaskingConfig()
    mask_p, rand_p = cfg.replace_probs(objective)
    common = dict(
        tokenizer=tokenizer,
        mlm_probability=cfg.mlm_probability,
        mask_replace_prob=mask_p,
        random_replace_prob=rand_p,
        pad_to_multiple_of=pad_to_multiple_of,
        seed=seed,
    )
    if objective in ("mlm", "rtd"):
        return collators.TokenMaskingCollator(**common)
    if objective == "wwm":
        return collators.WholeWordMaskingCollator(**common)
    return collators.SpanMaskingCollator(
        **common, span_p=cfg.span_p, max_span=cfg.max_span, span_unit=cfg.span_unit
    )


def fixed_eval_features(
    ds: "datasets.Dataset", collator: Any, seed: int = 0, batch_size: int = 64
) -> "datasets.Dataset":
    """Mask an eval set once, deterministically: ``input_ids``, ``attention_mask``, ``labels`` rows.

    The collator's RNG is replaced by ``torch.Generator().manual_seed(seed)`` for the pass and
    restored afterwards, so the same data + seed give the same masks in every run. Rows keep
    their original length (padding added by the collator is cut off again); batch them with
    :func:`kopretrain.train.collators.premasked_collator` (or ``default_data_collator`` when packed).
    """
    import datasets
    import torch

    keep = [c for c in ("input_ids", "attention_mask", "word_ids") if c in ds.column_names]
    saved = getattr(collator, "generator", None)
    collator.generator = torch.Generator().manual_seed(seed)
    out: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
    try:
        for batch in ds.select_columns(keep).iter(batch_size=batch_size):
            rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
            masked = collator(rows)
            for i, row in enumerate(rows):
                n = len(row["input_ids"])
                # Right padding: the row's own tokens are the first n positions.
                for key in out:
                    out[key].append(masked[key][i, :n].tolist())
    finally:
        collator.generator = saved
    features = datasets.Features(
        {
            "input_ids": datasets.List(datasets.Value("int32")),
            "attention_mask": datasets.List(datasets.Value("int8")),
            "labels": datasets.List(datasets.Value("int32")),
        }
    )
    return datasets.Dataset.from_dict(out, features=features)


__all__ = [
    "MaskingConfig",
    "RTD_MASKING",
    "expected_span_length",
    "make_collator",
    "fixed_eval_features",
]
