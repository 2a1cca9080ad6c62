"""Chunked table files for ``label``: read CSV/TSV/JSONL/Parquet as Arrow tables of N rows, write
each labeled chunk as a part file, then assemble the parts into one output file.

Why not :mod:`kopretrain.data.readers` (ingest's per-record readers): ingest rejects bad rows, label
must keep every row and column as it is (a broken CSV record stays, flagged, with its line as
written: :mod:`kopretrain.data.csv_records`). Undecodable bytes are kept (``surrogateescape``) and
repaired per cell by :func:`repair_cell`, so one bad row costs one row.

The labelled chunks are written by :mod:`kopretrain.data.writers`. Memory stays bounded by one chunk.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from kopretrain.data.readers import codec  # shared with ingest's reader; label imports it from here too

TEXT_FORMATS = ("csv", "tsv", "jsonl")

NOT_PARQUET = "is it a truncated copy, or another format under a .parquet name?"
_HANGUL = re.compile("[\uac00-\ud7a3]")
_FALLBACK = {"utf-8": "cp949", "utf-8-sig": "cp949", "cp949": "utf-8"}


@dataclass
class Chunk:
    """One slice of the input: the rows as a table, per-row read errors and repair counts."""

    table: Any  # pyarrow.Table
    errors: list[str | None]  # e.g. "invalid_json", "invalid_encoding" (text column only) or None
    stats: Counter = field(default_factory=Counter)
    key_lines: dict[str, int] = field(default_factory=dict)  # JSONL: the line where each key first appears
    raw: list[dict] | None = None  # JSONL: the records as parsed (Arrow widens 5 to 5.0, stringifies mixed keys)


def file_format(path: str | Path) -> tuple[str, bool]:
    """``reviews.jsonl.gz`` -> ("jsonl", True); ``x.parquet`` -> ("parquet", False)."""
    from kopretrain.data.readers import detect_format

    path = Path(path)
    return detect_format(path), path.name.lower().endswith(".gz")


# ----------------------------------------------------------------------------- encodings


def repair_cell(value: str, encoding: str = "utf-8") -> tuple[str, str | None]:
    """Clean a string read with ``errors="surrogateescape"``: ``(text, None | "recovered" | "invalid")``.

    A CP949 row inside a UTF-8 file reads as ``'\\udcba\\udcb0\\udcb7...'``; its original bytes
    decode as CP949 to ``"별로예요"`` (recovered). Bytes that are neither become U+FFFD (invalid).
    ``encoding`` is the one the value was read with (:func:`codec` names).
    """
    try:
        value.encode("utf-8")
        return value, None
    except UnicodeEncodeError:
        pass
    try:
        # The bytes as they were in the file: re-encode with the codec that decoded them.
        raw = value.encode(encoding, "surrogateescape")
    except UnicodeEncodeError:  # a JSON-escaped lone surrogate such as "\ud800"
        return value.encode("utf-8", "replace").decode("utf-8"), "invalid"
    other = _FALLBACK.get(encoding.lower())
    if other:
        try:
            text = raw.decode(other)
            # CP949 decodes many byte strings; trust it only when it yields Korean text.
            if other != "cp949" or _HANGUL.search(text):
                return text, "recovered"
        except UnicodeDecodeError:
            pass
    return raw.decode(encoding, "replace"), "invalid"


def _repair_column(values: list, encoding: str, stats: Counter) -> set[int]:
    """Repair str cells in place; return the row indexes left with replaced (invalid) bytes."""
    bad: set[int] = set()
    for i, v in enumerate(values):
        if isinstance(v, str) and not v.isascii():
            fixed, what = repair_cell(v, encoding)
            if what:
                values[i] = fixed
                stats[f"cells_{what}_encoding"] += 1
                if what == "invalid":
                    bad.add(i)
    return bad


def _header_names(names: list[str], encoding: str) -> list[str]:
    """The header as written (repaired like cells: a CP949 header in a file read as UTF-8 is
    recovered, not a crash). Only a repeated name is renamed (평점, 평점.1): JSONL and Parquet
    output, and column selection, need each name once."""
    out: list[str] = []
    for name in names:
        name, k = repair_cell(name, encoding)[0], 0
        unique = name
        while unique in out:
            k += 1
            unique = f"{name}.{k}"
        out.append(unique)
    return out


# ----------------------------------------------------------------------------- readers


def input_columns(path: Path, fmt: str, encoding: str = "utf-8", quoting: bool = True,
                  max_lines: int = 50) -> list[str] | None:
    """Column names known before reading rows (None for JSONL: keys come with the records)."""
    if fmt == "parquet":
        from kopretrain.data.files import read_schema

        return list(read_schema(path, NOT_PARQUET).names)
    if fmt in ("csv", "tsv"):
        from kopretrain.data.csv_records import records

        head = next(records(path, _sep(fmt), codec(encoding), quoting, max_lines), None)
        return [] if head is None else _csv_header(path, head, codec(encoding))
    return None


def _sep(fmt: str) -> str:
    return "," if fmt == "csv" else "\t"


def _csv_header(path: Path, head: tuple, encoding: str) -> list[str]:
    from kopretrain.runs.records import StageError

    line, fields, reason, _ = head
    if reason:
        raise StageError(f"{path}:{line}: cannot read the header ({reason}); fix the quotes in it, or read "
                         "the file with --no-csv-quoting")
    return _header_names(fields, encoding)


def read_chunks(path: str | Path, chunk_size: int, text_column: str, *, encoding: str = "utf-8",
                quoting: bool = True, max_lines: int = 50) -> Iterator[Chunk]:
    """Yield the input in order, ``chunk_size`` rows at a time."""
    path = Path(path)
    fmt, _ = file_format(path)
    encoding = codec(encoding)
    if fmt == "parquet":
        yield from _parquet_chunks(path, chunk_size)
    elif fmt == "jsonl":
        yield from _jsonl_chunks(path, chunk_size, text_column, encoding)
    else:
        yield from _csv_chunks(path, fmt, chunk_size, text_column, encoding, quoting, max_lines)


def _csv_chunks(path: Path, fmt: str, chunk_size: int, text_column: str, encoding: str,
                quoting: bool, max_lines: int) -> Iterator[Chunk]:
    """CSV/TSV chunks, one row per record. A broken record (a stray quote, more or fewer fields than
    the header) stays a row: its text column holds the line as written, the other columns are empty,
    and the reason is its error. Fewer fields is an error as in ingest: which cell is missing cannot
    be told (``2,별로예요,2024-01-02`` under ``id,rating,review,date`` put the date in review)."""
    from kopretrain.data.csv_records import records

    recs = records(path, _sep(fmt), encoding, quoting, max_lines)
    head = next(recs, None)
    if head is None:
        return
    names = _csv_header(path, head, encoding)
    at = names.index(text_column) if text_column in names else None
    rows: list[list] = []
    errors: list[str | None] = []
    for _, fields, reason, text in recs:
        if fields is not None and len(fields) != len(names):
            reason = "wrong_field_count"
        if reason:
            fields = [None] * len(names)
            if at is not None:
                fields[at] = text
        rows.append(fields)
        errors.append(reason)
        if len(rows) == chunk_size:
            yield _rows_chunk(names, rows, errors, text_column, encoding)
            rows, errors = [], []
    if rows:
        yield _rows_chunk(names, rows, errors, text_column, encoding)


def _rows_chunk(names: list[str], rows: list[list], errors: list, text_column: str, encoding: str) -> Chunk:
    import pyarrow as pa

    stats: Counter = Counter()
    columns = {}
    for j, name in enumerate(names):
        values = [row[j] for row in rows]
        bad = _repair_column(values, encoding, stats)
        if name == text_column:
            for i in bad:
                errors[i] = errors[i] or "invalid_encoding"
        columns[name] = pa.array(values, type=pa.string())
    return Chunk(pa.table(columns), errors, stats)


def _jsonl_chunks(path: Path, chunk_size: int, text_column: str, encoding: str) -> Iterator[Chunk]:
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    keys: dict[str, int] = {}  # every key seen so far (first-seen order, stable across chunks) -> its first line
    records: list[dict] = []
    errors: list[str | None] = []
    with opener(path, "rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            if not raw.strip():
                continue  # a blank line is not a row
            line = raw.decode(encoding, "surrogateescape")
            if not records and not errors and line.startswith("\ufeff"):
                line = line[1:]
            try:
                obj = json.loads(line)
                err = None if isinstance(obj, dict) else "invalid_json"
            except json.JSONDecodeError:
                obj, err = None, "invalid_json"
            if err:
                # Keep the line itself, in the text column, so the row can be traced and fixed
                # (label marks it invalid_json and labels nothing).
                obj = {text_column: line.rstrip("\r\n")}
            for key in obj:
                keys.setdefault(key, line_no)
            records.append(obj)
            errors.append(err)
            if len(records) == chunk_size:
                yield _records_chunk(records, errors, keys, text_column, encoding)
                records, errors = [], []
    if records:
        yield _records_chunk(records, errors, keys, text_column, encoding)


def _records_chunk(records: list[dict], errors: list, keys: dict[str, int], text_column: str,
                   encoding: str) -> Chunk:
    import pyarrow as pa

    stats: Counter = Counter()
    columns = {}
    key_lines = {}
    for key, line_no in keys.items():
        name = repair_cell(key, encoding)[0]  # a key in undecodable bytes, repaired like a cell
        key_lines[name] = line_no
        values = [r.get(key) for r in records]
        bad = _repair_column(values, encoding, stats)
        if key == text_column:
            for i in bad:
                errors[i] = errors[i] or "invalid_encoding"
            for i, v in enumerate(values):  # before a mixed column is stringified below
                if v is not None and not isinstance(v, str):
                    errors[i] = errors[i] or "not_text"
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            # Mixed types in one key (7 in one row, "7a" in another): keep them all as JSON text.
            stats["columns_stringified"] += 1
            columns[name] = pa.array([v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                                     for v in values], type=pa.string())
    table = pa.table(columns) if columns else pa.table({"_": pa.nulls(len(records))}).drop(["_"])
    return Chunk(table, errors, stats, key_lines, raw=records)


def _parquet_chunks(path: Path, chunk_size: int) -> Iterator[Chunk]:
    import pyarrow as pa

    from kopretrain.data.files import open_parquet

    for batch in open_parquet(path, NOT_PARQUET).iter_batches(batch_size=chunk_size):
        yield Chunk(pa.Table.from_batches([batch]), [None] * batch.num_rows)
