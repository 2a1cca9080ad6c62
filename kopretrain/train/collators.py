"""Torch masking collators behind :func:`kopretrain.train.masking.make_collator`.

All three subclass ``transformers.DataCollatorForLanguageModeling`` and keep what it does well:
argument validation, the seeded ``torch.Generator`` (re-seeded ``seed + worker_id`` in DataLoader
workers), ``pad_to_multiple_of`` and the ``__call__`` dispatch. They replace its masking because
in transformers 5.x it does not fit this project (ECOSYSTEM-NOTES.md):

- random replacements are drawn from the whole vocabulary, so ``[PAD]``/``[CLS]``/``[MASK]`` can be
  fed in as "random words"; ours draw from non-special ids only;
- its whole-word mode needs ``offset_mapping`` (``tokenizer.pad`` does not pad it: ragged batches
  crash), defines a word only as a gapless run of characters (no morphemes) and forces 100%
  ``[MASK]``; ours take per-token ``word_ids`` from :mod:`kopretrain.train.packing`;
- it has no span masking, and finds special tokens with a per-row Python
  ``get_special_tokens_mask`` call; ours is one ``torch.isin``.

Batches are padded on the right; ``word_ids`` are padded with -1 and dropped from the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import DataCollatorForLanguageModeling

IGNORE_INDEX = -100


def pad_batch(features: list[dict[str, Any]], pad_id: int, pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad ``input_ids`` (pad id), ``attention_mask`` (0) and ``word_ids``/``labels`` (-1/-100)."""
    lengths = [len(f["input_ids"]) for f in features]
    width = max(lengths)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    fills = {"input_ids": pad_id, "attention_mask": 0, "word_ids": -1, "labels": IGNORE_INDEX}
    out: dict[str, torch.Tensor] = {}
    for key, fill in fills.items():
        if key not in features[0] and key != "attention_mask":
            continue
        rows = [f.get(key) for f in features]
        if all(isinstance(r, list) for r in rows):
            # Python lists (datasets' default format): pad in Python, one tensor conversion.
            out[key] = torch.tensor([r + [fill] * (width - n) for r, n in zip(rows, lengths)], dtype=torch.long)
            continue
        tensor = torch.full((len(features), width), fill, dtype=torch.long)
        for i, (row, n) in enumerate(zip(rows, lengths)):
            if row is None:  # no attention_mask given: every real position attends
                tensor[i, :n] = 1
            else:
                tensor[i, :n] = torch.as_tensor(row, dtype=torch.long)
        out[key] = tensor
    return out


def premasked_collator(tokenizer: Any, pad_to_multiple_of: int | None = 8):
    """Collator for :func:`kopretrain.train.masking.fixed_eval_features` rows: pads, never re-masks."""
    pad_id = tokenizer.pad_token_id

    def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_batch(features, pad_id, pad_to_multiple_of)
        return {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}

    return collate


@dataclass
class TokenMaskingCollator(DataCollatorForLanguageModeling):
    """``mlm`` and ``rtd``: each maskable token is selected with ``mlm_probability``; 80/10/10 per token.

    Also the base class: subclasses override :meth:`select` only.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; masking collators pad ragged batches")
        special = sorted({i for i in self.tokenizer.all_special_ids if i is not None})
        self._special_ids = torch.tensor(special, dtype=torch.long)
        allowed = torch.ones(len(self.tokenizer), dtype=torch.bool)
        allowed[self._special_ids] = False
        self._random_ids = allowed.nonzero().flatten()
        self._mask_id = self.tokenizer.mask_token_id

    def torch_call(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if self.seed is not None and self.generator is None:
            self.create_rng()
        batch = pad_batch(features, self.tokenizer.pad_token_id, self.pad_to_multiple_of)
        batch.pop("labels", None)
        word_ids = batch.pop("word_ids", None)
        input_ids = batch["input_ids"]
        maskable = batch["attention_mask"].bool() & ~torch.isin(input_ids, self._special_ids)
        selected, units = self.select(maskable, word_ids)
        batch["input_ids"], batch["labels"] = self.replace(input_ids, selected, units)
        return batch

    def select(self, maskable: torch.Tensor, word_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(selected, units)``: tokens to predict, and the unit id (per row) whose tokens share
        one replacement decision (None: every token decides alone)."""
        probs = torch.full(maskable.shape, self.mlm_probability)
        return torch.bernoulli(probs, generator=self.generator).bool() & maskable, None

    def replace(self, input_ids: torch.Tensor, selected: torch.Tensor, units: torch.Tensor | None):
        """Labels = original ids on selected positions; inputs get [MASK] / random / kept."""
        labels = torch.where(selected, input_ids, IGNORE_INDEX)
        rows, width = input_ids.shape
        if units is None:
            draw = torch.rand((rows, width), generator=self.generator)
        else:
            n_units = int(units.max()) + 1 if units.numel() else 1
            draw = torch.rand((rows, n_units), generator=self.generator).gather(1, units)
        # One uniform per unit splits it three ways: [0, m) mask, [m, m + r) random, rest kept.
        to_mask = selected & (draw < self.mask_replace_prob)
        to_random = selected & (draw >= self.mask_replace_prob) & (draw < self.mask_replace_prob + self.random_replace_prob)
        inputs = input_ids.clone()
        inputs[to_mask] = self._mask_id
        n_random = int(to_random.sum())
        if n_random:
            picks = torch.randint(len(self._random_ids), (n_random,), generator=self.generator)
            inputs[to_random] = self._random_ids[picks]
        return inputs, labels


@dataclass
class WholeWordMaskingCollator(TokenMaskingCollator):
    """``wwm``: each word (same ``word_ids`` value in a row) is selected with ``mlm_probability``.

    Selecting words (not tokens then expanding, as BERT/HF do) keeps the expected share of masked
    tokens exactly at ``mlm_probability`` whatever the word lengths. The 80/10/10 split is drawn
    per word: ``"빨랐어요" -> [MASK][MASK]`` or the whole word kept, never ``[MASK]어요``, which
    would hand the model part of the answer and undo the point of whole-word masking.
    """

    def select(self, maskable, word_ids):
        if word_ids is None:
            raise ValueError(
                "wwm needs word_ids: build the data with kopretrain.train.packing (word_level eojeol/morpheme) "
                "and keep the column (Trainer: remove_unused_columns=False)"
            )
        words = torch.where(maskable, word_ids, -1)
        n_words = int(words.max()) + 1 if words.numel() else 0
        if n_words <= 0:
            return torch.zeros_like(maskable), None
        units = words.clamp(min=0)
        chosen = torch.rand((words.shape[0], n_words), generator=self.generator) < self.mlm_probability
        return chosen.gather(1, units) & (words >= 0), units


@dataclass
class SpanMaskingCollator(TokenMaskingCollator):
    """``span``: SpanBERT masking — contiguous spans until ~``mlm_probability`` of a row is covered.

    Span lengths ~ Geometric(``span_p``) clipped at ``max_span`` (in tokens, or whole words with
    ``span_unit="word"``); a span starts at a random maskable token (its word, in word mode) and
    stops at a special token (``[SEP]`` between packed reviews), so it never crosses texts. The
    80/10/10 decision is per span, as in SpanBERT. Span placement is a Python loop (~5 spans a
    row): a 32x128 batch takes ~2-4 ms (benchmarks/bench_packing.py), far below a model step.
    """

    span_p: float = 0.2
    max_span: int = 10
    span_unit: str = "token"

    def __post_init__(self) -> None:
        super().__post_init__()
        weights = self.span_p * (1 - self.span_p) ** np.arange(self.max_span)
        self._length_probs = weights / weights.sum()

    def select(self, maskable, word_ids):
        if self.span_unit == "word" and word_ids is None:
            raise ValueError("span_unit='word' needs word_ids: build the data with kopretrain.train.packing")
        # numpy RNG seeded from the collator's torch generator: same seed -> same spans.
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=self.generator)))
        words = word_ids.numpy() if (word_ids is not None and self.span_unit == "word") else None
        span_of_token, _ = span_mask(maskable.numpy(), words, self.mlm_probability, self._length_probs, rng)
        return torch.from_numpy(span_of_token >= 0), torch.from_numpy(np.maximum(span_of_token, 0))


def span_mask(
    maskable: np.ndarray,
    word_ids: np.ndarray | None,
    rate: float,
    length_probs: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """SpanBERT spans for a ``(rows, width)`` batch: ``(span_of_token, spans)``.

    ``span_of_token[b, i]`` is the index (within row b) of the span covering token i, or -1.
    ``spans`` lists ``(row, start, end)`` token ranges. A span may run over tokens an earlier span
    took (they keep their first span) and stops at the end of its segment (a run of maskable
    tokens between specials). Units are tokens, or words when ``word_ids`` is given. Each row's
    budget is ``rate * its maskable tokens`` with stochastic rounding, so short rows are not
    over-masked on average. The structure is computed for the whole batch with numpy; only the
    span placement (~5 spans a row) is a Python loop.
    """
    rows, width = maskable.shape
    span_of_token = np.full(rows * width, -1, dtype=np.int64)
    pos = np.flatnonzero(maskable.reshape(-1))
    counts = np.bincount(pos // width, minlength=rows)
    target = rate * counts
    budgets = (np.floor(target) + (rng.random(rows) < target - np.floor(target))).astype(int).tolist()
    if len(pos) == 0 or not any(budgets):
        return span_of_token.reshape(rows, width), []
    units = _Units.of(pos, width, counts, word_ids)
    span_of_unit, spans_units = _place_spans(units, budgets, length_probs, rng)
    span_of_token[pos] = np.asarray(span_of_unit, dtype=np.int64)[units.unit_of_token]
    first, size = units.unit_first.tolist(), units.unit_size
    spans = [
        (b, int(pos[first[a]]) - b * width, int(pos[first[z - 1] + size[z - 1] - 1]) - b * width + 1)
        for b, a, z in spans_units
    ]
    return span_of_token.reshape(rows, width), spans


@dataclass
class _Units:
    """The span units (tokens, or words from ``word_ids``) of a batch's maskable tokens, flattened."""
    unit_of_token: list[int]  # unit index of each maskable token
    unit_first: np.ndarray  # index (into the maskable tokens) of each unit's first token
    unit_size: list[int]  # tokens per unit
    seg_end: list[int]  # per unit: the end of its segment (a span never crosses a special token)
    row_first: list[int]  # index of each row's first maskable token
    counts: list[int]  # maskable tokens per row

    @classmethod
    def of(cls, pos: np.ndarray, width: int, counts: np.ndarray, word_ids: np.ndarray | None) -> "_Units":
        n = len(pos)
        row_of = pos // width
        seg_start = np.ones(n, dtype=bool)
        # A new segment after a special/pad token or at a new row.
        seg_start[1:] = (pos[1:] != pos[:-1] + 1) | (row_of[1:] != row_of[:-1])
        new_unit = seg_start.copy() if word_ids is not None else np.ones(n, dtype=bool)
        if word_ids is not None:
            w = word_ids.reshape(-1)[pos]
            new_unit[1:] |= w[1:] != w[:-1]
        unit_first = np.flatnonzero(new_unit)
        seg_of_unit = np.cumsum(seg_start[unit_first]) - 1
        seg_end = np.append(np.flatnonzero(np.diff(seg_of_unit)) + 1, len(unit_first))[seg_of_unit]
        return cls((np.cumsum(new_unit) - 1).tolist(), unit_first, np.diff(np.append(unit_first, n)).tolist(),
                   seg_end.tolist(), (np.cumsum(counts) - counts).tolist(), counts.tolist())


def _place_spans(u: _Units, budgets: list[int], length_probs: np.ndarray, rng: np.random.Generator):
    """``(span_of_unit, [(row, first unit, end unit), ...])``: spans drawn row by row until each
    row's budget of tokens is covered (~5 spans a row, so this Python loop stays cheap)."""
    rows = len(budgets)
    span_of_unit = [-1] * len(u.unit_first)
    spans_units: list[tuple[int, int, int]] = []
    draws = 2 * max(budgets) + 4

    def draw(size: tuple[int, ...]) -> tuple[list, list]:
        # Anchors uniform over the row's maskable tokens; lengths from the clipped geometric.
        anchors = np.asarray(u.row_first)[:, None] + np.floor(rng.random(size) * np.asarray(u.counts)[:, None])
        lengths = rng.choice(len(length_probs), size=size, p=length_probs) + 1
        return anchors.astype(int).tolist(), lengths.tolist()

    all_anchors, all_lengths = draw((rows, draws))  # one draw for the batch; rarely more below
    for b in range(rows):
        covered, sid, first_round = 0, 0, True
        while covered < budgets[b]:
            if first_round:
                anchors, lengths, first_round = all_anchors[b], all_lengths[b], False
            else:
                more_anchors, more_lengths = draw((rows, draws))
                anchors, lengths = more_anchors[b], more_lengths[b]
            for anchor, length in zip(anchors, lengths):
                start = u.unit_of_token[anchor]
                if span_of_unit[start] >= 0:
                    continue
                stop, end = start, min(start + length, u.seg_end[start])
                while stop < end and covered < budgets[b]:
                    if span_of_unit[stop] < 0:
                        span_of_unit[stop] = sid
                        covered += u.unit_size[stop]
                    stop += 1
                spans_units.append((b, start, stop))
                sid += 1
                if covered >= budgets[b]:
                    break
    return span_of_unit, spans_units
