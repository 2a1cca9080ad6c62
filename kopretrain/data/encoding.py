"""Which bytes a text input holds: codec names, byte-order marks, the reject reason of bad bytes.

Shared by ingest's readers and label's tables, so both read a file's encoding alike.
"""

from __future__ import annotations

import gzip
from pathlib import Path


def open_binary(path: Path):
    """The file's bytes, gunzipped when it ends in .gz."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def check_encoding(name: str) -> None:
    """``--encoding`` must name a codec Python knows (utf-8, cp949, euc-kr ...)."""
    import codecs

    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"--encoding: unknown encoding {name!r} (e.g. utf-8, cp949, euc-kr)") from None


def codec(encoding: str) -> str:
    """Python's name for ``encoding``, with EUC-KR read as CP949: CP949 is its superset (똠, 뷁 are
    CP949-only), and files labelled EUC-KR are usually CP949 exports."""
    import codecs

    name = codecs.lookup(encoding).name
    return "cp949" if name == "euc_kr" else name


def is_utf8(encoding: str) -> bool:
    """``encoding`` is UTF-8 (any spelling: utf8, UTF-8, utf-8-sig)."""
    return codec(encoding).replace("-", "").replace("_", "").lower() in ("utf8", "utf8sig")


def check_bom(path: Path, encoding: str) -> None:
    """A byte-order mark says what the file is: a UTF-8 one read as ``--encoding cp949`` turned
    most rows into mojibake (the rest rejected, under the bar for a hint); UTF-16 (Excel's
    "Unicode text") cannot be read line by line at all."""
    from kopretrain.runs.records import StageError

    import zlib

    try:
        with open_binary(path) as fh:
            head = fh.read(3)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise StageError(f"{path}: cannot be read ({type(exc).__name__}: {exc}); is it truncated, or not gzip "
                         "although named .gz?") from None
    except OSError:
        return  # the reader says what is wrong with the file
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise StageError(f"{path}: UTF-16 text (it starts with a UTF-16 byte-order mark, as Excel's 'Unicode text' "
                         "does); save it as UTF-8 (Excel: 'CSV UTF-8') or convert it: iconv -f utf-16 -t utf-8")
    if head == b"\xef\xbb\xbf" and not is_utf8(encoding):
        raise StageError(f"{path}: starts with a UTF-8 byte-order mark, yet --encoding {encoding} was given: the "
                         "file is UTF-8; drop --encoding")


def undecodable_reason(encoding: str) -> str:
    """The reject reason of a line whose bytes ``encoding`` cannot decode."""
    return "invalid_utf8" if is_utf8(encoding) else "invalid_encoding"
