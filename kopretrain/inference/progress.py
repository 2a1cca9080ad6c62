"""Progress for label: a tqdm bar on a terminal, a line every 30 s in a log (pipelines, nohup)."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def progress_bar(src: Path, fmt: str, initial: int, enabled: bool):
    """A bar in rows; its total is known only for Parquet (the footer counts rows without reading them)."""
    from tqdm import tqdm

    total = None
    if fmt == "parquet":
        from kopretrain.data.files import count_rows

        total = count_rows(src)
    return tqdm(total=total, initial=initial, unit=" rows", unit_scale=True, mininterval=1.0,
                disable=None if enabled else True, file=sys.stderr, desc="label")


def log_progress(bar, rows: int, labeled: int, t0: float, every: float = 30.0) -> None:
    """Without a terminal the bar is off: print a line every ``every`` seconds instead."""
    if not bar.disable:
        return
    now = time.time()
    if now - getattr(log_progress, "last", 0.0) >= every:
        log_progress.last = now  # type: ignore[attr-defined]
        print(f"[label] {rows:,} rows labeled ({labeled / max(now - t0, 1e-9):,.0f} rows/s)", flush=True)
