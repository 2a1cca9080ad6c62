"""The record graph: from a stage output back through the outputs it was made from.

``upstream(model, "normalize")`` is how a stage finds the rules its data was normalized with, and
the model card its provenance, without being told.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kopretrain.runs.outputs import STAGE_FILE
from kopretrain.runs.records import StageError, read_stage


def stage_chain(start: str | os.PathLike, max_nodes: int = 40, missing: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """``{stage: {"path", "record"}}`` for a stage output and every ancestor reachable through its
    inputs that are stage outputs (``model``, ``data``, ``input``, ``tokenizer``...); the nearest
    record wins when a stage appears twice. The one walker over the record graph. An input that
    cannot be found (its folder deleted) is appended to ``missing`` when given."""
    from collections import deque

    found: dict[str, dict[str, Any]] = {}
    queue, seen = deque([Path(start)]), set()
    while queue and len(seen) < max_nodes:
        path = queue.popleft()
        key = str(path.resolve())
        if key in seen:
            continue
        seen.add(key)
        record = read_stage(path)
        if record is None:
            continue
        found.setdefault(record["stage"], {"path": str(path), "record": record})
        config = record.get("config") or {}
        for field, recorded in (record.get("inputs") or {}).items():
            if isinstance(recorded, str) and recorded.startswith("stage:") and isinstance(config.get(field), str):
                parent = _recorded_input(path, config[field], recorded.split(":")[1])
                if parent is not None:
                    queue.append(parent)
                elif missing is not None:
                    missing.append(config[field])
    return found


def _recorded_input(node: Path, value: str, fingerprint: str) -> Path | None:
    """Where the stage output ``node`` read as ``value`` is now: the path as written if that is the
    output with the recorded ``fingerprint``, else the folder of that name beside ``node`` (a
    workdir moved or copied, or run from another folder, where relative paths meant another place),
    else the path as written if it is any stage output (records from before inputs were keyed)."""
    as_written, beside = Path(value), node.parent / Path(value).name
    for candidate in (as_written, beside):
        if (read_stage(candidate) or {}).get("fingerprint") == fingerprint:
            return candidate
    return as_written if (as_written / STAGE_FILE).is_file() else None


def upstream(output: str | os.PathLike, stage: str, required: bool = False) -> dict[str, Any] | None:
    """The record of the nearest ancestor named ``stage`` (e.g. the normalize config a vocab was
    trained after), or None. ``required``: a StageError when it is not found because an input
    along the way is gone (rather than never having been there)."""
    missing: list[str] = []
    record = (stage_chain(output, missing=missing).get(stage) or {}).get("record")
    if record is None and required and missing:
        raise StageError(f"{output} was made from {missing[0]}, which is no longer there, so the {stage} record it "
                         f"depends on cannot be read; restore it or rerun the stages from {stage} on")
    return record
