"""Stage data on disk: one Parquet file per split (``train/dev/test.parquet``) in a stage output.

Columns written by ingest and carried by every later data stage:
``id`` (str), ``text`` (str), ``label`` (``negative``/``neutral``/``positive`` or null when
unlabeled), ``rating`` (float or null), ``group`` (str or null), ``date`` (str or null),
``source`` (``file:line`` provenance). normalize adds ``text_raw``; analyze adds
``morph_form``/``morph_tag``/``morph_start``/``morph_len`` (offsets into ``text``).
Parquet is read in record batches so memory stays bounded as corpora grow; ``datasets`` loads
the same files (``datasets.Dataset.from_parquet``) for the training stages.
"""

from __future__ import annotations

import re

from pathlib import Path
from typing import Iterator

SPLITS = ("train", "dev", "test")
LABELS = ("negative", "neutral", "positive")


def row_schema():
    """The Arrow schema of ingest's rows (the columns above, before normalize/analyze add theirs)."""
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("text", pa.string()), ("label", pa.string()),
                      ("rating", pa.float64()), ("group", pa.string()), ("date", pa.string()),
                      ("source", pa.string())])


def split_files(stage_dir: str | Path) -> dict[str, Path]:
    """``{split: path}`` for the splits present in a data stage output (error if none)."""
    stage_dir = Path(stage_dir)
    if stage_dir.is_file():
        raise FileNotFoundError(f"{stage_dir} is a file, not a stage output folder: run `kopretrain ingest --input "
                                f"{stage_dir} -o DIR` first and pass DIR here")
    if not stage_dir.is_dir():
        raise FileNotFoundError(f"stage output not found: {stage_dir} (run the upstream stage first)")
    found = {s: stage_dir / f"{s}.parquet" for s in SPLITS if (stage_dir / f"{s}.parquet").is_file()}
    if not found:
        raise FileNotFoundError(f"{stage_dir}: no train/dev/test .parquet files (is this a data stage output?)")
    return found


# analyze's columns: offsets into ``text``, so a stage that rewrites the text drops them
MORPH_COLUMNS = ("morph_form", "morph_tag", "morph_start", "morph_len")


def iter_batches(path: str | Path, batch_size: int = 10_000, columns: list[str] | None = None) -> Iterator:
    """Yield ``pyarrow.RecordBatch`` es of a Parquet file without loading it whole."""
    import pyarrow as pa

    try:
        yield from open_parquet(path).iter_batches(batch_size=batch_size, columns=columns)
    except (pa.ArrowInvalid, pa.ArrowIOError) as exc:  # a page broken past the footer
        raise _unreadable(path, exc) from None


# Whitespace, zero-width characters and the Hangul fillers (U+115F/U+1160 jamo fillers, U+3164 and
# its half-width U+FFA0): \s matches none of them, yet a text of only fillers shows as blank.
_BLANK = re.compile(r"[\s\u200b-\u200d\u2060\ufeff\u115f\u1160\u3164\uffa0]*")


def is_blank(text: str) -> bool:
    """Nothing a reader would see: ingest rejects such a text, label flags it (empty_text)."""
    return _BLANK.fullmatch(text) is not None


RERUN = "rerun the stage that wrote it"


def open_parquet(path: str | Path, hint: str = RERUN):
    """``pyarrow.parquet.ParquetFile``; a file that is not readable Parquet (truncated, overwritten,
    a CSV renamed) is a StageError naming it and ending with ``hint``, not an ArrowInvalid traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowIOError) as exc:
        raise _unreadable(path, exc, hint) from None


def read_schema(path: str | Path, hint: str = RERUN):
    """The Parquet file's (Arrow) schema, as :func:`open_parquet` reads it."""
    return open_parquet(path, hint).schema_arrow


def _unreadable(path, exc, hint: str = RERUN) -> Exception:
    from kopretrain.runs.records import StageError

    return StageError(f"{path}: not a readable Parquet file ({exc}); {hint}")


def text_values(batch, path: str | Path) -> list:
    """The ``text`` column of a batch as Python strings (None for nulls); dictionary-encoded
    strings (a pandas category column) count as text, anything else is a StageError."""
    import pyarrow as pa

    from kopretrain.runs.records import StageError

    if "text" not in batch.schema.names:
        raise StageError(f"{path}: no 'text' column (columns: {', '.join(batch.schema.names)})")
    kind = batch.schema.field("text").type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise StageError(f"{path}: column 'text' holds {kind}, not text (is it a data stage output?)")
    return batch.column("text").to_pylist()


def count_rows(path: str | Path) -> int:
    return open_parquet(path).metadata.num_rows


class ParquetSink:
    """Append record batches / pylists to a Parquet file; the schema is fixed by the first batch."""

    def __init__(self, path: str | Path, schema=None):
        self.path = Path(path)
        self.schema = schema
        self._writer = None
        self.rows = 0
        # In-memory (Arrow) size of the rows written as ``datasets`` loads them: what it records as
        # a split's ``num_bytes``, so data cards can state it without reading the file back. The
        # card declares ``label`` a ClassLabel, which datasets holds as int64 ids, not the names.
        self.nbytes = 0

    def write_batch(self, batch) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if self._writer is None:
            self.schema = self.schema or table.schema
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        table = table.cast(self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows
        self.nbytes += table.nbytes
        if "label" in table.column_names:
            label = table.column("label")
            self.nbytes += 8 * len(label) - label.nbytes + (label.null_count and (len(label) + 7) // 8)

    def write_rows(self, rows: list[dict]) -> None:
        import pyarrow as pa

        if rows:
            self.write_batch(pa.Table.from_pylist(rows, schema=self.schema))

    def close(self) -> None:
        import pyarrow.parquet as pq

        if self._writer is None and self.schema is not None:
            pq.write_table(self.schema.empty_table(), self.path)
        elif self._writer is not None:
            self._writer.close()
        self._writer = None

    def __enter__(self) -> "ParquetSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
