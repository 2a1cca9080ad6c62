"""Ingest pass 2: decide duplicates and splits on the per-row arrays, then write the splits.

Split by :mod:`kopretrain.data.split` only after dedup (:mod:`kopretrain.data.dedup`), so the one copy of a
duplicated review that survives sits in exactly one split. The staged rows are streamed batch by
batch into ``train/dev/test.parquet``; dropped duplicates go to ``rejected.jsonl`` with the
``file:line`` of the row that was kept instead. Statistics for ``stage.json`` and the dataset
card are measured on what is written.
"""

from __future__ import annotations

from typing import Any, Sequence

from kopretrain.data.files import LABELS, SPLITS
from kopretrain.runs.records import StageError, StageRun

STAGING = ".staging.parquet"  # pass 1's rows, in input order, before dedup and split

SNIPPET = 200


def decide(k: Any, *, dedup: str, policy: str, fractions: Sequence[float], seed: int):
    """``(decision, keeper, split_of)`` arrays over the staged rows (see dedup.resolve, split.assign)."""
    import numpy as np

    from kopretrain.data.dedup import REASONS, duplicate_ids, resolve
    from kopretrain.data.split import assign

    n = len(k.exact)
    decision = np.zeros(n, dtype=np.int8)
    dup, keeper = duplicate_ids(np.asarray(k.id_hash, dtype=np.int64), np.asarray(k.has_id, dtype=bool))
    decision[dup] = REASONS.index("duplicate_id")
    labels = np.asarray(k.label, dtype=np.int8)
    if dedup != "none":
        exact = np.asarray(k.exact, dtype=np.int64)
        cluster = np.asarray(k.near, dtype=np.int64) if dedup == "near" else exact
        dec2, keep2 = resolve(cluster, exact, labels, decision == 0, policy)
        more = (decision == 0) & (dec2 != 0)
        decision[more], keeper[more] = dec2[more], keep2[more]
    kept = decision == 0
    split_of = np.full(n, -1, dtype=np.int8)
    split_of[kept] = assign(np.asarray(k.group, dtype=np.int64)[kept], labels[kept], fractions, seed)
    return decision, keeper, split_of


def _length_stats(parts: list) -> dict[str, float]:
    import numpy as np

    lengths = np.concatenate(parts) if parts else np.zeros(0)
    if not len(lengths):
        return {"min": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    return {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 1),
            "p50": int(np.percentile(lengths, 50)), "p95": int(np.percentile(lengths, 95)),
            "max": int(lengths.max())}


def _rating_name(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def write_splits(run: StageRun, sources: list, k: Any, decision, keeper, split_of) -> dict[str, Any]:
    """Stream the staged rows into one Parquet file per split; return the measured statistics."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from tqdm.auto import tqdm

    from kopretrain.data.files import ParquetSink, iter_batches, row_schema

    sinks = {s: ParquetSink(run.dir / f"{s}.parquet", schema=row_schema()) for s in SPLITS}
    lengths: dict[str, list] = {s: [] for s in SPLITS}
    ratings: list = []
    offset = 0
    files, lines = np.asarray(k.file, dtype=np.int64), np.asarray(k.line, dtype=np.int64)
    bar = tqdm(total=len(decision), desc="ingest: write", unit=" rows", mininterval=0.5)
    for batch in iter_batches(run.dir / STAGING, batch_size=20_000):
        table = pa.Table.from_batches([batch])
        n = table.num_rows
        where = split_of[offset:offset + n]
        for i, name in enumerate(SPLITS):
            mask = where == i
            if mask.any():
                part = table.filter(pa.array(mask))
                sinks[name].write_batch(part)
                lengths[name].append(pc.utf8_length(part["text"]).to_numpy(zero_copy_only=False))
        kept_ratings = table["rating"].filter(pa.array(where >= 0)).drop_null()
        ratings.append(kept_ratings.to_numpy())
        _reject_duplicates(run, table, offset, decision, keeper, sources, (files, lines))
        offset += n
        bar.update(n)
    bar.close()
    for sink in sinks.values():
        sink.close()
    if offset != len(decision):
        raise StageError(f"ingest staging file has {offset} rows, expected {len(decision)}")
    stats = _split_stats(k, split_of, lengths, ratings)
    for name, sink in sinks.items():  # the sizes a Hub card states (dataset_info num_bytes, download_size)
        stats["splits"][name].update(arrow_bytes=sink.nbytes, parquet_bytes=sink.path.stat().st_size)
    return stats


def _reject_duplicates(run: StageRun, table, offset: int, decision, keeper, sources: list, where: tuple) -> None:
    """Send this batch's dropped duplicates to rejected.jsonl, each naming the copy that was kept."""
    import numpy as np

    from kopretrain.data.dedup import REASONS

    files, lines = where
    rejected = np.flatnonzero(decision[offset:offset + table.num_rows] > 0)
    for j, row in zip(rejected.tolist(), table.take(rejected).to_pylist()):
        g = offset + j
        extra = {}
        if keeper[g] >= 0:
            kp = int(keeper[g])
            extra["duplicate_of"] = f"{sources[files[kp]].name}:{lines[kp]}"
        run.reject(REASONS[decision[g]], file=sources[files[g]].path, line=int(lines[g]), id=row["id"],
                   **extra, text=row["text"][:SNIPPET])


def _split_stats(k: Any, split_of, lengths: dict[str, list], ratings: list) -> dict[str, Any]:
    """Rows, labels, groups and lengths per split (what the data card shows), checking no group leaked."""
    import numpy as np

    groups = np.asarray(k.group, dtype=np.int64)
    labels = np.asarray(k.label, dtype=np.int64)
    # The no-leak guarantee, checked on what was written rather than trusted.
    grouped = (split_of >= 0) & (groups >= 0)
    if grouped.any():
        pairs = np.unique(np.stack([groups[grouped], split_of[grouped].astype(np.int64)]), axis=1)
        if len(np.unique(pairs[0])) != pairs.shape[1]:
            raise StageError("internal error: a group was assigned to two splits")
    stats: dict[str, Any] = {"splits": {}}
    for i, name in enumerate(SPLITS):
        in_split = split_of == i
        lab = labels[in_split]
        counts = {LABELS[c]: int((lab == c).sum()) for c in range(3)}
        if (lab < 0).any():
            counts["(none)"] = int((lab < 0).sum())
        g = groups[in_split]
        stats["splits"][name] = {
            "rows": int(in_split.sum()), "labels": counts, "groups": int(len(np.unique(g[g >= 0]))),
            "rows_without_group": int((g < 0).sum()), "chars": _length_stats(lengths[name]),
        }
    all_ratings = np.concatenate(ratings) if ratings else np.zeros(0)
    values, counts = np.unique(all_ratings, return_counts=True)
    stats["rating_histogram"] = {_rating_name(v): int(c) for v, c in zip(values.tolist(), counts.tolist())}
    return stats
