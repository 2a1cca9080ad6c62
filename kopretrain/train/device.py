"""Precision and device choices for training stages: detect, don't assume.

bf16 autocast is ~1.4-1.7x faster on CPUs with AMX/AVX512-BF16 and slower on CPUs without it, so
``precision: auto`` turns it on only where the hardware supports it.
"""

from __future__ import annotations

from typing import Literal

Precision = Literal["auto", "bf16", "fp16", "fp32"]


def cpu_bf16_supported() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: Precision) -> str:
    """``auto`` -> bf16 on a bf16-capable GPU or CPU, fp16 on other GPUs, else fp32."""
    import torch

    if precision != "auto":
        if precision == "fp16" and not torch.cuda.is_available():
            from kopretrain.runs.records import StageError

            raise StageError("--precision fp16 needs a CUDA GPU; use bf16, fp32 or auto on CPU")
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_bf16_supported() else "fp32"


def trainer_precision_kwargs(precision: Precision) -> dict:
    """``TrainingArguments`` keywords for the resolved precision (bf16 autocast on CPU too)."""
    resolved = resolve_precision(precision)
    return {"bf16": resolved == "bf16", "fp16": resolved == "fp16"}


def pad_multiple() -> int | None:
    """Pad bucketed batches to a multiple of 8 on GPUs (tensor cores); on CPU it only adds padding
    (NSMC buckets: 3% pad share unrounded vs 23% rounded to 8, BENCHMARKS.md packing section)."""
    import torch

    return 8 if torch.cuda.is_available() else None
