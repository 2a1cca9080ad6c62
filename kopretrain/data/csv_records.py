"""CSV/TSV records for ``label``: every record of the file in order, the broken ones included.

Why not pandas' parser (label's reader until stray quotes lost rows): it keeps reading after an
opening quote until some later quote closes it, so ``1,"닫히지 않은 리뷰,5`` silently swallows the
rows after it into one field, or ends in ``EOF inside string`` for the whole file. Here, as in
ingest's reader, a record boundary is found first, quote-aware and capped at
:data:`MAX_RECORD_LINES` lines; a quote that does not close cleanly costs its own line only (kept
with a reason), and the lines after it are read again as records of their own. Lines without a
quote (most reviews) are split directly; the model, not this, bounds label's speed.
"""

from __future__ import annotations

import csv
from collections import deque
from pathlib import Path
from typing import Iterator

from kopretrain.data.readers import parse_record, scan_quotes  # ingest's record rules, shared

MAX_RECORD_LINES = 50  # ingest's --max-record-lines default: a longer quoted field is a stray quote
_QUOTE = '"'


def open_text(path: Path, encoding: str):
    """Text lines as written (``newline=""``: a ``\\r\\n`` inside a quoted field stays), undecodable
    bytes kept as surrogates for :func:`kopretrain.data.tables.repair_cell`."""
    import gzip

    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding=encoding, errors="surrogateescape", newline="")
    return open(path, encoding=encoding, errors="surrogateescape", newline="")


def _parse(lines: list[str], sep: str, opened: int | None, width: int) -> tuple[list[str] | None, str | None]:
    """``(fields, None)`` of one quote-balanced record, or ``(None, reason)``: ingest's parser."""
    old = csv.field_size_limit(2**31 - 1)  # csv's 131072-char default would fail a 1 MB review
    try:
        fields, reason, _ = parse_record([(0, text, None) for text in lines], sep, opened, width)
    finally:
        csv.field_size_limit(old)
    return fields, reason


def records(path: Path, sep: str, encoding: str, quoting: bool,
            max_lines: int = MAX_RECORD_LINES) -> Iterator[tuple[int, list[str] | None, str | None, str]]:
    """``(line, fields, reason, text)`` per record, the header first; blank lines are not records.
    A broken record has ``fields=None``, a reason (unbalanced_quote, broken_quotes, malformed_csv)
    and ``text``: its line as written, so it can be found and fixed."""
    with open_text(path, encoding) as fh:
        lines = enumerate(fh, 1)
        pending: deque = deque()
        width = 0  # the header's field count, once read
        while True:
            first = pending.popleft() if pending else next(lines, None)
            if first is None:
                return
            line_no, text = first
            if line_no == 1 and text.startswith("\ufeff"):
                text = text[1:]  # BOM written by Excel
            if not text.strip():
                continue
            if not quoting or _QUOTE not in text:
                fields = text.rstrip("\r\n").split(sep)
                width = width or len(fields)
                yield line_no, fields, None, text.rstrip("\r\n")
                continue
            in_quote, opened = scan_quotes(text, False, sep)
            consumed = [text]
            while in_quote and len(consumed) < max_lines:
                more = pending.popleft() if pending else next(lines, None)
                if more is None:
                    break
                consumed.append(more[1])
                in_quote = scan_quotes(more[1], True, sep)[0]
            fields, reason = (None, "unbalanced_quote") if in_quote else _parse(consumed, sep, opened, width)
            width = width or len(fields or ())
            if reason == "unbalanced_quote":
                # The stray quote costs its own line only: the lines it swallowed are records too.
                pending.extendleft(reversed([(line_no + k, t) for k, t in enumerate(consumed[1:], 1)]))
                consumed = consumed[:1]
            yield line_no, fields, reason, "".join(consumed).rstrip("\r\n")
