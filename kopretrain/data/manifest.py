"""The resume state of a file output written in chunks (``label``): part files plus a manifest.

``<output>.partial/`` holds ``part-000000.csv`` ... and ``manifest.json`` (the run's fingerprint and
one stats entry per committed chunk). A chunk counts as done only once its part file is written
*and* the manifest lists it, so a kill at any moment costs at most the chunk in flight.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from kopretrain.runs.records import write_json

MANIFEST = "manifest.json"


def commit_chunk(partial: Path, manifest: dict, k: int, table, stats: dict, fmt: str, gz: bool, ext: str) -> None:
    """Write part ``k`` then record it in the manifest: a kill between the two redoes chunk k only."""
    from kopretrain.data.writers import write_part

    write_part(table, partial / part_name(k, ext), fmt, gz, header=(k == 0))
    manifest["chunks"].append(stats)
    write_json(partial / MANIFEST, manifest)


def part_name(k: int, ext: str) -> str:
    return f"part-{k:06d}{ext}"


def open_manifest(partial: Path, fingerprint: str, chunk_size: int, force: bool, ext: str) -> dict:
    manifest = read_json(partial / MANIFEST)
    if partial.exists() and not force and manifest.get("fingerprint") == fingerprint:
        # trust only the committed chunks whose part files are still there (in order)
        chunks = manifest.get("chunks", [])
        n = next((k for k in range(len(chunks)) if not (partial / part_name(k, ext)).is_file()), len(chunks))
        manifest["chunks"] = chunks[:n]
        rows = sum(c["rows"] for c in manifest["chunks"])
        print(f"[label] resuming {partial}: {n} chunk(s), {rows} rows already labeled")
        return manifest
    if partial.exists():
        if not (partial / MANIFEST).is_file() and (not partial.is_dir() or any(partial.iterdir())):
            from kopretrain.runs.outputs import OutputError

            raise OutputError(f"{partial} exists and was not written by kopretrain (no {MANIFEST}); move it away first")
        why = "--force" if force else "model, input or options changed"
        print(f"[label] discarding {partial} ({why})")
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    manifest = {"fingerprint": fingerprint, "chunk_size": chunk_size, "columns": None, "chunks": []}
    write_json(partial / MANIFEST, manifest)
    return manifest


def chunk_totals(manifest: dict) -> dict:
    totals = {"rows": 0, "labels": Counter(), "errors": Counter(), "needs_review": 0, "encoding": Counter(),
              "chunks": len(manifest["chunks"])}
    for c in manifest["chunks"]:
        totals["rows"] += c["rows"]
        totals["needs_review"] += c["needs_review"]
        for key in ("labels", "errors", "encoding"):
            totals[key].update(c[key])
    return totals


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
