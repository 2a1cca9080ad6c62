"""Streaming readers that keep line numbers: CSV/TSV, JSON Lines (``.gz`` too), Parquet, ``datasets``.

Each reader yields :class:`Row` s one at a time (memory stays flat however large the file) and
never raises on a bad row: a row that cannot be parsed comes back with ``error`` set to a reject
reason and the line (and column where one applies), so ingest can count and explain it.

Why a hand-rolled CSV record splitter in front of :mod:`csv`: ``csv.reader`` keeps reading after an
opening quote until it finds the closing one, so one stray ``"`` swallows the rest of the file
into a single field. Here the record boundary is found first (quote-aware, capped at
``max_record_lines`` physical lines); a record that does not close within the cap is rejected as
``unbalanced_quote`` at the line and column of its opening quote, and the lines after it are read
again as records of their own. The completed record is then parsed by :mod:`csv` itself.
"""

from __future__ import annotations

import csv
import json
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from kopretrain.data.encoding import (  # noqa: F401 - re-exported
    check_bom, check_encoding, codec, open_binary, undecodable_reason,
)

FORMATS = ("csv", "tsv", "jsonl", "parquet")
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".json": "jsonl", ".parquet": "parquet"}
JSON_ARRAY = "looks like one JSON array; convert it to JSON Lines (one object per line)"  # ingest and label
CSV_FIELD_LIMIT = 2**31 - 1  # csv's default 131072-char field limit would crash on a 1 MB review


@dataclass(slots=True)
class Row:
    """One physical record of an input: its fields, or the reason it could not be read."""

    line: int  # 1-based line where the record starts (row number for Parquet / datasets)
    fields: dict[str, Any] | None = None
    error: str | None = None  # reject reason when unreadable (invalid_utf8, unbalanced_quote, ...)
    detail: str = ""
    column: Any = None  # character/byte column or field name the error points at


def detect_format(path: Path) -> str:
    """``reviews.csv`` -> csv, ``x.jsonl.gz`` -> jsonl, ``ratings_train.txt`` -> tsv; ValueError otherwise."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise ValueError(f"{path}: unknown file type (expected {', '.join(sorted(SUFFIXES))}, optionally .gz)")
    if fmt == "parquet" and path.name.lower().endswith(".gz"):
        raise ValueError(f"{path}: gzip-compressed Parquet is not supported (Parquet compresses itself)")
    return fmt


def list_inputs(path: Path) -> list[Path]:
    """The data files of an input: the file itself, or a directory's supported files (sorted,
    recursive; hidden files and kopretrain's own outputs, such as ``-o raw/out``, left out)."""
    from kopretrain.runs.outputs import STAGE_FILE, has_stage_record, walk_inputs
    from kopretrain.runs.records import REJECTED_FILE

    if path.is_file():
        return [path]
    # the input is itself a stage output (ingest's train/dev/test.parquet): its run record and
    # rejected rows are not data
    records = {path / STAGE_FILE, path / REJECTED_FILE} if has_stage_record(path) else set()
    files = []
    for f in walk_inputs(path):
        if f not in records and not any(part.startswith(".") for part in f.relative_to(path).parts):
            try:
                detect_format(f)
            except ValueError:
                continue
            files.append(f)
    return files


def _decoded_lines(path: Path, encoding: str) -> Iterator[tuple[int, str, int | None]]:
    """``(line_no, text, bad_byte_column)`` per physical line; each line decoded on its own so one
    bad byte costs one row, not the file (``bad_byte_column`` is None when the line decodes)."""
    check_bom(path, encoding)
    encoding = codec(encoding)
    with open_binary(path) as fh:
        for line_no, raw in enumerate(fh, 1):
            try:
                text, bad = raw.decode(encoding), None
            except UnicodeDecodeError as exc:
                text, bad = raw.decode(encoding, "replace"), exc.start + 1
            if line_no == 1 and text.startswith("\ufeff"):
                text = text[1:]  # UTF-8 BOM written by Excel
            yield line_no, text, bad


def scan_quotes(line: str, in_quote: bool, delimiter: str, quote: str = '"') -> tuple[bool, int | None]:
    """Whether a CSV record is still inside a quoted field after ``line``, and the 1-based column
    of the last quote that opened a field. A quote only opens a field at the field's start (as in
    :mod:`csv`): ``5,영화 "명작"이다`` is an unquoted field with literal quotes."""
    if quote not in line:
        return in_quote, None
    i, n, opened = 0, len(line), None
    field_start = not in_quote
    while i < n:
        if in_quote:
            j = line.find(quote, i)
            if j < 0:
                return True, opened
            if j + 1 < n and line[j + 1] == quote:  # "" is an escaped quote
                i = j + 2
                continue
            in_quote, field_start, i = False, False, j + 1
            continue
        c = line[i]
        if c == quote and field_start:
            in_quote, opened, field_start = True, i + 1, False
        else:
            field_start = c == delimiter
        i += 1
    return in_quote, opened


def _shape(value: str) -> str:
    """What a field looks like: blank, a number (an id, a rating), or text."""
    value = value.strip()
    return "" if not value else "9" if _NUMBER.fullmatch(value) else "a"


_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


def swallowed_records(consumed: list, delimiter: str, opened: int | None, width: int) -> bool:
    """A quoted field whose every further line is a whole record by itself: a stray quote opened it
    (``1,p1,5,"인생영화 강추`` / ``2,p2,1,완전 별로`` / ``3,p3,1,정말 최악"``), not a review written
    over several lines. Such a line has the header's ``width`` and, before the quoted field, fields
    shaped like the opening line's (numbers where it has numbers, at least one: an id or a rating);
    a review line that only has as many commas (``맛, 향, 가격 모두 만족``) does not. Only with 3+
    columns: with two, one number and one comma would be evidence enough to split a real review."""
    if width < 3 or len(consumed) < 2 or not opened:
        return False
    before = [_shape(v) for v in consumed[0][1][:opened - 1].split(delimiter)[:-1]]
    if "9" not in before:
        return False
    for _, text, _ in consumed[1:]:
        fields = next(csv.reader([text.rstrip("\r\n")], delimiter=delimiter), [])
        if len(fields) != width or [_shape(v) for v in fields[:len(before)]] != before:
            return False
    return True


def parse_record(consumed: list, delimiter: str, opened: int | None,
                 width: int = 0) -> tuple[list[str] | None, str | None, str]:
    """``(fields, error, detail)`` of one quote-balanced record of physical lines; ``width``: the
    header's field count, when known (see :func:`swallowed_records`)."""
    try:
        # strict: a quoted field with text after its closing quote ("좋아"요) is an error, not
        # silently rewritten to 좋아요; such a record is rejected with the reason broken_quotes.
        rows = list(csv.reader([t for _, t, _ in consumed], delimiter=delimiter, strict=True))
    except csv.Error as exc:  # e.g. a NUL byte, or text after a closing quote
        if len(consumed) > 1 and "expected after" in str(exc):
            # The quote that opened this multi-line record is the stray one: the quote that
            # "closed" it is followed by text, so it belonged to another line's field.
            return None, "unbalanced_quote", (f"quote opened at column {opened} closes on line "
                                              f"{consumed[-1][0]} inside other text ({exc})")
        reason = "broken_quotes" if "expected after" in str(exc) else "malformed_csv"
        return None, reason, f"{exc} (quote the whole field, doubling inner quotes: \"\"좋아\"\"요\")"
    if len(rows) != 1:
        return None, "malformed_csv", f"record parsed into {len(rows)} rows"
    if swallowed_records(consumed, delimiter, opened, width):
        return None, "unbalanced_quote", (f"quote opened at column {opened} spans {len(consumed) - 1} more lines "
                                          f"that are records of {width} fields by themselves")
    return rows[0], None, ""


def _csv_records(path: Path, delimiter: str, encoding: str, quoting: bool,
                 max_record_lines: int) -> Iterator[tuple[int, list[str] | None, str | None, str, Any]]:
    """``(line, fields, error, detail, column)`` per CSV/TSV record, header included."""
    reason_bad = undecodable_reason(encoding)
    lines = _decoded_lines(path, encoding)
    pending: deque = deque()
    width = 0  # the header's field count, once read

    def next_line():
        return pending.popleft() if pending else next(lines, None)

    while True:
        first = next_line()
        if first is None:
            return
        line_no, text, bad = first
        if not text.strip():
            continue  # blank lines are not records (csv skips them too)
        if not quoting:
            if bad is not None:
                yield line_no, None, reason_bad, f"undecodable byte at byte {bad}", bad
            else:
                yield line_no, text.rstrip("\r\n").split(delimiter), None, "", None
            continue
        consumed = [first]
        in_quote, opened = scan_quotes(text, False, delimiter)
        while in_quote and len(consumed) < max_record_lines:
            nxt = next_line()
            if nxt is None:
                break
            consumed.append(nxt)
            in_quote, _ = scan_quotes(nxt[1], True, delimiter)
        if in_quote:
            # Reject only the line with the stray quote; re-read the lines after it as records.
            pending.extendleft(reversed(consumed[1:]))
            yield (line_no, None, "unbalanced_quote",
                   f"quote opened at column {opened} is not closed within {max_record_lines} lines", opened)
            continue
        bad_line = next(((n, b) for n, _, b in consumed if b is not None), None)
        if bad_line is not None:
            detail = f"undecodable byte on line {bad_line[0]} at byte {bad_line[1]}"
            yield line_no, None, reason_bad, detail, bad_line[1]
            continue
        fields, error, detail = parse_record(consumed, delimiter, opened, width)
        width = width or len(fields or ())
        if error == "unbalanced_quote":
            # As for a quote never closed: the stray quote costs its own line only; the lines it
            # swallowed (good rows, usually) are read again as records of their own.
            pending.extendleft(reversed(consumed[1:]))
        yield line_no, fields, error, detail, opened if error == "unbalanced_quote" else None


def csv_header(path: Path, fmt: str, *, encoding: str = "utf-8", quoting: bool = True,
               max_record_lines: int = 50) -> list[str] | None:
    """The header row of a CSV/TSV file (None for an empty file); ValueError when unreadable."""
    old = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        for line, fields, error, detail, _ in _csv_records(path, "," if fmt == "csv" else "\t", encoding,
                                                          quoting, max_record_lines):
            if error:
                hint = f"; not {encoding}? set --encoding (cp949, euc-kr)" if error.startswith("invalid_") else ""
                raise ValueError(f"{path}:{line}: cannot read the header ({error}: {detail}){hint}")
            return unique_columns(path, [f.strip() for f in fields])
        return None
    finally:
        csv.field_size_limit(old)


def iter_csv(path: Path, fmt: str, *, encoding: str = "utf-8", quoting: bool = True,
             max_record_lines: int = 50) -> Iterator[Row]:
    """Records of a CSV (``fmt="csv"``) or TSV file; the header row is consumed, not yielded."""
    old = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        header = None
        for line, fields, error, detail, column in _csv_records(
            path, "," if fmt == "csv" else "\t", encoding, quoting, max_record_lines
        ):
            if header is None:
                if error:
                    raise ValueError(f"{path}:{line}: cannot read the header ({error}: {detail})")
                header = [f.strip() for f in fields]
                continue
            if error:
                yield Row(line, error=error, detail=detail, column=column)
            elif len(fields) != len(header):
                yield Row(line, error="wrong_field_count", column=len(fields),
                             detail=f"expected {len(header)} fields ({', '.join(header)}), got {len(fields)}")
            else:
                yield Row(line, dict(zip(header, fields)))
    finally:
        csv.field_size_limit(old)


def jsonl_keys(path: Path, encoding: str = "utf-8", scan: int = 1000) -> list[str] | None:
    """The keys of the JSON objects in the first ``scan`` lines of a JSON Lines file, in order of
    first appearance (a record may leave out a key: the first one alone decided the columns, and a
    group column it lacked silently turned the group split off). None for a file of blank lines; a
    ValueError when no line there is an object (another encoding, one pretty-printed document) or
    an object repeats a key (json keeps the last one silently)."""
    keys: dict[str, None] = {}
    seen = undecodable = 0
    for line_no, text, bad in _decoded_lines(path, encoding):
        if line_no > scan:
            break
        stripped = text.strip()
        if not stripped:
            continue
        seen += 1
        if bad is not None:
            undecodable += 1
            continue
        if line_no == 1 and stripped.startswith("["):
            raise ValueError(f"{path}: {JSON_ARRAY}")
        try:
            obj = json.loads(stripped, object_pairs_hook=_pairs)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, _Pairs):
            if len(dict(obj)) != len(obj):
                twice = sorted({k for k, _ in obj if sum(1 for j, _ in obj if j == k) > 1})
                raise ValueError(f"{path}:{line_no}: key {', '.join(map(repr, twice))} appears twice in one "
                                 "record; rename one (json would keep the last silently)")
            keys.update(dict.fromkeys(k for k, _ in obj))
    if keys or not seen:
        return list(keys) if keys else None
    hint = (f"{undecodable} of them not valid {encoding}: set --encoding (cp949, euc-kr)" if undecodable
            else "one pretty-printed JSON document? convert it to JSON Lines, one object per line")
    raise ValueError(f"{path}: no JSON object on any of its first {seen} non-blank lines ({hint})")


class _Pairs(list):
    """A JSON object as its (key, value) pairs, repeated keys kept (to find them)."""


def _pairs(pairs: list) -> _Pairs:
    return _Pairs(pairs)


def iter_jsonl(path: Path, *, encoding: str = "utf-8") -> Iterator[Row]:
    """One record per non-blank line of a JSON Lines file."""
    for line_no, text, bad in _decoded_lines(path, encoding):
        if not text.strip():
            continue
        if bad is not None:
            yield Row(line_no, error=undecodable_reason(encoding), detail=f"undecodable byte at byte {bad}",
                      column=bad)
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Row(line_no, error="invalid_json", detail=exc.msg, column=exc.colno)
            continue
        if not isinstance(obj, dict):
            yield Row(line_no, error="invalid_json", detail=f"expected an object, got {type(obj).__name__}")
            continue
        yield Row(line_no, obj)


def unique_columns(path: Path, names: list[str]) -> list[str]:
    """``names``, or a ValueError naming a column that appears twice (a row read into a dict kept
    the last one silently: ``review,rating,review`` stored the second review)."""
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if twice:
        raise ValueError(f"{path}: column {', '.join(map(repr, twice))} appears more than once in the header; "
                         "rename one so each column has its own name")
    return names


def parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return unique_columns(path, list(pq.ParquetFile(path).schema_arrow.names))


def iter_parquet(path: Path, columns: list[str], batch_size: int = 10_000) -> Iterator[Row]:
    """Rows of a Parquet file in batches; ``line`` is the 1-based row number."""
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns):
        for fields in batch.to_pylist():
            row += 1
            yield Row(row, fields)


def load_dataset(name: str, *, config: str = "", split: str = "train", revision: str = "",
                 data_files: list[str] | None = None, cache_dir: str | None = None):
    """``datasets.load_dataset`` for a Hub id (pin ``revision``) or a builder such as ``csv``/``json``."""
    import datasets

    return datasets.load_dataset(name, config or None, split=split, revision=revision or None,
                                 data_files=data_files or None, cache_dir=cache_dir)


def load_saved(path: str, *, split: str = "train"):
    """A split of a ``save_to_disk`` folder (a ``Dataset``, or a ``DatasetDict`` and its ``split``)."""
    import datasets

    ds = datasets.load_from_disk(path)
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ValueError(f"no split {split!r} in the saved DatasetDict; splits: {', '.join(ds)}")
        return ds[split]
    return ds  # one Dataset: it is the split, whatever --dataset-split says


def iter_dataset(ds, columns: list[str], batch_size: int = 1000) -> Iterator[Row]:
    """Rows of a ``datasets.Dataset``; ``line`` is the 1-based row number. A ``ClassLabel`` column
    gives its names ("positive", not 2): a label map or the column scheme reads names."""
    import datasets

    names = {c: ds.features[c].names for c in columns if isinstance(ds.features.get(c), datasets.ClassLabel)}
    row = 0
    for batch in ds.select_columns(columns).iter(batch_size=batch_size):
        n = len(batch[columns[0]]) if columns else 0
        for c, known in names.items():  # -1 or None: no label
            batch[c] = [known[v] if isinstance(v, int) and 0 <= v < len(known) else None for v in batch[c]]
        for i in range(n):
            row += 1
            yield Row(row, {c: batch[c][i] for c in columns})
