"""What ``label`` writes besides its rows: parts with one header's columns, and its stage record."""

from __future__ import annotations

import time


def same_columns(table, manifest: dict):
    """A CSV/TSV part with the first part's columns (its header is the file's)."""
    from kopretrain.data.writers import conform

    manifest["columns"] = manifest.get("columns") or table.column_names
    return conform(table, manifest["columns"])


def label_record(cfg, config, inputs, fingerprint, totals, precision, resumed, t0, labeled, seconds, fmt,
                 measured=None, ngram_blend: bool = False) -> dict:
    """label's ``<output>.stage.json``: totals over every committed chunk, this run's speed."""
    import datetime as dt

    from kopretrain.runs.records import git_commit, library_versions

    return {
        "stage": "label",
        "fingerprint": fingerprint,
        "complete": True,
        "config": config,
        "inputs": inputs,
        "versions": library_versions(),
        "git_commit": git_commit(),
        "started": dt.datetime.fromtimestamp(t0, dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - t0, 3),
        "resumed": resumed,
        # Labeling never drops a row: rows without a label are kept and counted in stats.errors.
        "counts": {"rows_in": totals["rows"], "rows_out": totals["rows"], "rejected": {}},
        "stats": {
            "labels": dict(sorted(totals["labels"].items())),
            "errors": dict(sorted(totals["errors"].items())),
            "needs_review": totals["needs_review"] if cfg.min_confidence > 0 else None,
            "encoding_repairs": dict(sorted(totals["encoding"].items())),
            "chunks": totals["chunks"],
            "precision": precision,
            "ngram_blend": ngram_blend,  # the model's n-gram expert pooled into the probabilities
            "precision_seconds_per_batch": measured or None,  # what precision auto timed, if it did
            "output_format": fmt,
            "rows_labeled_this_run": labeled,
            "seconds_labeling": round(seconds[0], 3),
            "cpu_seconds_labeling": round(seconds[1], 3),
            "rows_per_second": round(labeled / seconds[0], 1) if seconds[0] > 0 else None,
        },
    }
