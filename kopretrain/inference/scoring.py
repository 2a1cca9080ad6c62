"""Batched classifier inference for ``label``: where its speed over ``transformers.pipeline`` comes from.

* One call of the Rust tokenizer per chunk (``encode_batch_fast`` on a copy of the fast tokenizer:
  2x less CPU than the transformers wrapper, which converts every encoding in Python), no per-row
  Python work in post-processing (the pipeline tokenizes and post-processes row by row).
* Rows sorted by *token* count and padded per batch with numpy: on NSMC (mean ~9 tokens with a
  16k vocab, max ~42) random 64-row batches carry ~2.1x the tokens of sorted ones (sorting by
  characters, as an earlier loop did, measured ~1.5x slower than token sorting on the same model).
* ``torch.inference_mode``; optional int8 dynamic quantization of the Linear layers.

Precision, measured on this project's CPUs (AVX512 with AVX512-BF16, no AMX; BENCHMARKS.md): whether
bf16 autocast pays depends on the model. It made a 4-layer x 256 model *slower* on short reviews
(casts dominate small matmuls) and the 12-layer x 384 multilingual-e5-small 3.1x *faster* (same
macro-F1, 99.86% identical labels). So ``auto`` measures: on AMX CPUs it takes bf16, on other CPUs
with bf16 support it times one batch of the input's median length in fp32 and in bf16 and keeps
bf16 only if it is clearly faster; elsewhere fp32. ``int8`` (dynamic quantization) is faster still
but changed 16% of e5's labels (-0.8 macro-F1) while it kept ~99.9% on a small model: opt in
after checking it on your dev set.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from kopretrain.data.files import LABELS

PRECISIONS = ("auto", "fp32", "bf16", "int8")


def cpu_has_amx() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def resolve(precision: str) -> str:
    """``auto`` -> bf16 on AMX CPUs (where bf16 matmuls are fast at small shapes), else fp32 (which
    :class:`Scorer` may still swap for bf16 after measuring, see :func:`worth_measuring`)."""
    if precision != "auto":
        return precision
    from kopretrain.train.device import cpu_bf16_supported

    return "bf16" if cpu_has_amx() and cpu_bf16_supported() else "fp32"


def worth_measuring(precision: str) -> bool:
    """``auto`` resolved to fp32 on a CPU that can run bf16: time both on the model before choosing."""
    from kopretrain.train.device import cpu_bf16_supported

    return precision == "auto" and resolve(precision) == "fp32" and cpu_bf16_supported()


TIMING_ROUNDS = 3
"""``auto`` times each precision this many times on one batch (interleaved) and keeps the fastest."""

BF16_MIN_SPEEDUP = 1.25
"""``auto`` takes bf16 only if one batch runs at least this much faster than in fp32 (timing noise
and the small bf16 rounding are not worth a marginal gain)."""


def rules_skipped(tokenizer_json: str, prep) -> str:
    """The tokenizer without the normalizer rules it carries for plain transformers, when ``prep``
    (which embedded them, per its record) has already applied them in Python: they are idempotent,
    so the ids are the same, and they would cost ~40-70 µs a review (BENCHMARKS.md)."""
    import json

    from kopretrain.tokenizer.embed import RECORD_KEY, has_block, without_block

    data = json.loads(tokenizer_json)
    if prep.normalize is None or not (prep.extra.get(RECORD_KEY) or {}).get("applied") \
            or not has_block(data.get("normalizer")):
        return tokenizer_json
    data["normalizer"] = without_block(data["normalizer"])
    return json.dumps(data, ensure_ascii=False)


class Scorer:
    """Probabilities in :data:`~kopretrain.data.files.LABELS` order for a loaded ``modelio.Classifier``."""

    def __init__(self, clf, precision: str = "fp32", batch_size: int = 64):
        import torch

        self.clf = clf
        self.requested = precision  # what the caller asked for; ``precision`` is what runs
        self.precision = resolve(precision)
        self.measure = worth_measuring(precision) and self.precision == "fp32"
        self.measured: dict[str, float] = {}  # seconds per precision for one batch, when auto measured
        self.batch_size = batch_size
        self.model = clf.model
        if self.precision == "int8":
            import warnings

            with warnings.catch_warnings():
                # torch.ao dynamic quantization is deprecated in favour of torchao, still supported here.
                warnings.simplefilter("ignore")
                self.model = torch.ao.quantization.quantize_dynamic(clf.model, {torch.nn.Linear}, dtype=torch.qint8)
        self.order = [clf.labels.index(name) for name in LABELS]  # model output index -> LABELS order
        self.pad_id = clf.tokenizer.pad_token_id if clf.tokenizer.pad_token_id is not None else 0
        self._rust = None
        backend = getattr(clf.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            from tokenizers import Tokenizer

            # A private copy: truncation/padding settings are stateful on the shared tokenizer.
            self._rust = Tokenizer.from_str(rules_skipped(backend.to_str(), clf.prep))
            self._rust.no_padding()
            self._rust.enable_truncation(clf.max_length, direction=getattr(clf.tokenizer, "truncation_side", "right"))

    def keep(self, precision: str) -> None:
        """Run in ``precision`` (fp32 or bf16), as a run this one resumes chose, without timing."""
        if precision not in ("fp32", "bf16") or self.precision == "int8":
            return
        self.precision, self.measure = precision, False

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated to the model's max_length (same ids as the
        transformers tokenizer call)."""
        if self._rust is not None:
            return [enc.ids for enc in self._rust.encode_batch_fast(texts)]
        return self.clf.tokenizer(texts, truncation=True, max_length=self.clf.max_length,
                                  return_attention_mask=False, return_token_type_ids=False)["input_ids"]

    def logits(self, texts: list[str], blend: bool = True):
        """(N, 3) float32 logits in LABELS order, row i for ``texts[i]`` (texts already prepared);
        pooled with the model's n-gram expert when it has one (``blend=False``: the encoder alone)."""
        import numpy as np

        out = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
        for rows, logits in self._batches(texts):
            out[rows] = logits.numpy()[:, self.order]
        ngram = getattr(self.clf, "ngram", None)
        return ngram.blend(out, texts) if blend and ngram is not None and len(texts) else out

    def proba(self, texts: list[str]):
        """(N, 3) float64 probabilities, row i for ``texts[i]`` (texts already prepared)."""
        from scipy.special import softmax

        return softmax(self.logits(texts).astype("float64"), axis=1)

    def _batches(self, texts: list[str]):
        """``(row indices, float32 logits)`` per batch of rows of similar token count: the one
        inference loop (evaluate, label and every Classifier call go through it)."""
        import numpy as np
        import torch

        if not texts:
            return
        ids = self.token_ids(texts)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(lengths, kind="stable")
        if self.measure:
            self.measure = False
            middle = max(0, len(order) // 2 - self.batch_size // 2)
            self._choose_precision(self._tensors(ids, lengths, order[middle:middle + self.batch_size]))
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else contextlib.nullcontext()
        with torch.inference_mode(), cast:
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                logits = self.model(**self._tensors(ids, lengths, rows)).logits
                yield rows, logits.float()

    def _tensors(self, ids, lengths, rows) -> dict:
        """input_ids + attention_mask of ``rows``, padded to the longest of them with numpy."""
        import numpy as np
        import torch

        width = int(lengths[rows].max())
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, i in enumerate(rows):
            input_ids[r, :lengths[i]] = ids[i]
            mask[r, :lengths[i]] = 1
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}

    def _choose_precision(self, batch: dict) -> None:
        """``auto`` on a bf16-capable CPU without AMX: time one median-length batch in both
        precisions, after a warm-up run of each, and keep bf16 only if clearly faster. Each is
        timed TIMING_ROUNDS times, interleaved, and the fastest counts: with one timing each, an
        all-rows evaluate of e5-small timed bf16 1.23x faster, under the 1.25x bar, where other
        evaluates on the same rows timed 1.7-2.9x, and scored 60k reviews in fp32, ~5 minutes
        slower (BENCHMARKS.md). The minimum is the run least disturbed by other work."""
        import time

        import torch

        timings: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for step, precision in enumerate(("fp32", "bf16") * (TIMING_ROUNDS + 1)):
            cast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
            with torch.inference_mode(), cast:
                t0 = time.perf_counter()
                self.model(**batch)
                seconds = time.perf_counter() - t0
            if step >= 2:  # the first pass of each warms up
                timings[precision].append(seconds)
        self.measured = {k: round(min(v), 4) for k, v in timings.items()}
        if self.measured["fp32"] >= BF16_MIN_SPEEDUP * self.measured["bf16"]:
            self.precision = "bf16"
