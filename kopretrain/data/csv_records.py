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

MAX_RECORD_LINES = 50  # ingest's --max-record-lines default: a longer quoted field is a stray quote
_QUOTE = '"'


def open_text(path: Path, encoding: str):
    """Text lines as written (``newline=""``: a ``\\r\\n`` inside a quoted field stays), undecodable
    bytes kept as surrogates for :func:`kopretrain.data.tables.repair_cell`."""
    import gzip

    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding=encoding, errors="surrogateescape", newline="")
    return open(path, encoding=encoding, errors="surrogateescape", newline="")


def _ends_in_quote(line: str, in_quote: bool, sep: str) -> bool:
    """Whether a record is still inside a quoted field after ``line``. As in :mod:`csv`, a quote
    opens a field only at the field's start (``5,영화 "명작"이다`` has literal quotes)."""
    i, n, start = 0, len(line), not in_quote
    while i < n:
        if in_quote:
            j = line.find(_QUOTE, i)
            if j < 0:
                return True
            if line.startswith(_QUOTE * 2, j):  # "" is an escaped quote
                i = j + 2
                continue
            in_quote, start, i = False, False, j + 1
            continue
        c = line[i]
        if c == _QUOTE and start:
            in_quote = True
        else:
            start = c == sep
        i += 1
    return in_quote


def _parse(lines: list[str], sep: str) -> tuple[list[str] | None, str | None]:
    """``(fields, None)`` of one quote-balanced record, or ``(None, reason)``."""
    old = csv.field_size_limit(2**31 - 1)  # csv's 131072-char default would fail a 1 MB review
    try:
        # strict: "좋아"요 (text after a closing quote) is flagged, not silently rewritten.
        rows = list(csv.reader(lines, delimiter=sep, strict=True))
    except csv.Error as exc:  # text after a closing quote, or a NUL byte
        if "expected after" not in str(exc):
            return None, "malformed_csv"
        # In a multi-line record the quote that "closed" it belonged to a later line's field: the
        # quote that opened it is the stray one.
        return None, "unbalanced_quote" if len(lines) > 1 else "broken_quotes"
    finally:
        csv.field_size_limit(old)
    return (rows[0], None) if len(rows) == 1 else (None, "malformed_csv")


def records(path: Path, sep: str, encoding: str, quoting: bool) -> Iterator[tuple[int, list[str] | None, str | None, str]]:
    """``(line, fields, reason, text)`` per record, the header first; blank lines are not records.
    A broken record has ``fields=None``, a reason (unbalanced_quote, broken_quotes, malformed_csv)
    and ``text``: its line as written, so it can be found and fixed."""
    with open_text(path, encoding) as fh:
        lines = enumerate(fh, 1)
        pending: deque = deque()
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
                yield line_no, text.rstrip("\r\n").split(sep), None, text.rstrip("\r\n")
                continue
            consumed, in_quote = [text], _ends_in_quote(text, False, sep)
            while in_quote and len(consumed) < MAX_RECORD_LINES:
                more = pending.popleft() if pending else next(lines, None)
                if more is None:
                    break
                consumed.append(more[1])
                in_quote = _ends_in_quote(more[1], True, sep)
            fields, reason = (None, "unbalanced_quote") if in_quote else _parse(consumed, sep)
            if reason == "unbalanced_quote":
                # The stray quote costs its own line only: the lines it swallowed are records too.
                pending.extendleft(reversed([(line_no + k, t) for k, t in enumerate(consumed[1:], 1)]))
                consumed = consumed[:1]
            yield line_no, fields, reason, "".join(consumed).rstrip("\r\n")
