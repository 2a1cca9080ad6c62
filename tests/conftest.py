"""Shared fixtures. Tests that need the real NSMC corpus skip where ../shared/data is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample" / "reviews.csv"
CHECKPOINT = Path(os.environ.get("KOPRETRAIN_CHECKPOINT",
                               ROOT.parent / "shared" / "models" / "multilingual-e5-small-ko"))
NSMC = Path(os.environ.get("KOPRETRAIN_NSMC", ROOT.parent / "shared" / "data" / "nsmc" / "reviews.jsonl.gz"))

# Keep the quick suite quick and deterministic on 2 cores.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def sample_path() -> Path:
    if not SAMPLE.is_file():
        pytest.skip(f"bundled sample missing: {SAMPLE}")
    return SAMPLE


@pytest.fixture
def nsmc_path() -> Path:
    if not NSMC.is_file():
        pytest.skip(f"NSMC corpus not found at {NSMC} (set KOPRETRAIN_NSMC or place ../shared/data/nsmc)")
    return NSMC


@pytest.fixture
def checkpoint_path() -> Path:
    """A real pretrained encoder directory (any local checkpoint; set KOPRETRAIN_CHECKPOINT)."""
    if not (CHECKPOINT / "config.json").is_file():
        pytest.skip(f"no pretrained checkpoint at {CHECKPOINT} (set KOPRETRAIN_CHECKPOINT or place ../shared/models)")
    return CHECKPOINT
