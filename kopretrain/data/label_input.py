"""What ``label`` reads: the input's chunks, and the checks on its columns (the text column is
there; no column is one ``label`` adds) that fail a run before the model loads or anything is
written. ``cfg`` is a :class:`kopretrain.label.LabelConfig`.
"""

from __future__ import annotations

from pathlib import Path

from kopretrain.runs.records import StageError


def check_columns(cfg, src: Path, fmt: str) -> list[str] | None:
    """The input's columns (None where only reading tells), checked before any model is loaded."""
    from kopretrain.data.readers import check_bom
    from kopretrain.data.tables import input_columns

    if fmt != "parquet":
        check_bom(src, cfg.encoding)
    if fmt == "jsonl":
        _check_not_an_array(src)
    columns = input_columns(src, fmt, cfg.encoding, quoting_of(cfg, fmt), cfg.max_record_lines)
    if columns and cfg.text_column not in columns:
        raise StageError(missing_column(src, cfg.text_column, columns))
    clash = [c for c in added_columns(cfg) if columns and c in columns]
    if clash:
        raise StageError(clash_error(src, clash))
    return columns


def _check_not_an_array(src: Path) -> None:
    """A .json file holding one JSON array was read line by line: every row an invalid_json row, exit 0."""
    import zlib

    from kopretrain.data.readers import open_binary

    try:
        with open_binary(src) as fh:
            head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except (EOFError, OSError, zlib.error) as exc:  # a truncated or not-gzip .jsonl.gz
        raise StageError(f"{src}: cannot be read ({type(exc).__name__}: {exc}); is the file truncated or "
                         "corrupt?") from None
    if head.startswith(b"["):
        from kopretrain.data.readers import JSON_ARRAY

        raise StageError(f"{src}: {JSON_ARRAY}")


def quoting_of(cfg, fmt: str) -> bool:
    """--csv-quoting, else on for .csv and off for .tsv/.txt (ingest's auto)."""
    return cfg.csv_quoting if cfg.csv_quoting is not None else fmt == "csv"


def check_chunk(cfg, src: Path, chunk, k: int) -> None:
    """JSONL keys come chunk by chunk: a key that names an added column would be overwritten in
    JSONL output and duplicated (a crash) in CSV/Parquet output, so it stops the run, naming the
    line where it first appears (in chunk 0: before anything is written)."""
    names = chunk.table.column_names
    if k == 0 and cfg.text_column not in names and chunk.table.num_rows:
        raise StageError(missing_column(src, cfg.text_column, names))
    clash = [c for c in added_columns(cfg) if c in names]
    if clash:
        line = min(chunk.key_lines.get(c, 0) for c in clash)
        raise StageError(clash_error(f"{src}:{line}" if line else src, clash))


def clash_error(where, clash: list[str]) -> str:
    return (f"{where} already has column(s) {', '.join(clash)}; keep them and name the new ones "
            f"with --column-prefix pred_ (or another prefix)")


def added_columns(cfg) -> list[str]:
    from kopretrain.data.files import LABELS

    p = cfg.column_prefix
    names = [f"{p}label", f"{p}confidence"] + [f"{p}prob_{name}" for name in LABELS]
    if cfg.min_confidence > 0:
        names.append(f"{p}needs_review")
    return names + [f"{p}label_error"]


def chunks(cfg, src: Path, fmt: str, columns: list[str] | None):
    """The input's chunks; an input without rows still yields one empty chunk so the output gets a header."""
    import gzip
    import zlib

    from kopretrain.data.tables import Chunk, read_chunks
    from kopretrain.runs.records import StageError

    any_chunk, rows = False, 0
    try:
        for chunk in read_chunks(src, cfg.chunk_size, cfg.text_column, encoding=cfg.encoding,
                                 quoting=quoting_of(cfg, fmt), max_lines=cfg.max_record_lines):
            any_chunk = True
            yield chunk
            rows += chunk.table.num_rows
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # named here: the generic message names no file
        raise StageError(f"{src}: truncated or corrupt compressed file after {rows:,} rows "
                         f"({type(exc).__name__}: {exc})") from None
    if not any_chunk:
        import pyarrow as pa

        from kopretrain.data.files import read_schema
        from kopretrain.data.tables import NOT_PARQUET

        empty = read_schema(src, NOT_PARQUET).empty_table() if fmt == "parquet" else \
            pa.table({c: pa.array([], pa.string()) for c in columns or []})
        yield Chunk(empty, [])


def missing_column(src: Path, column: str, columns: list[str]) -> str:
    return (f"{src}: no column '{column}' (columns: {', '.join(map(str, columns)) or 'none'}); "
            f"choose one with --text-column")
