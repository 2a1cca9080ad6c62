"""Writers for ``label``'s chunked outputs: each labelled chunk becomes a part file in the output
format (atomically), and the parts are assembled into one file: a byte concatenation for
CSV/TSV/JSONL (gzip members concatenate into a valid gzip file), a streaming rewrite for Parquet.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def write_part(table, path: Path, fmt: str, gz: bool, header: bool) -> None:
    """Write one chunk in the output format, atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, tmp, compression="zstd")
    elif fmt == "jsonl":
        import gzip

        with (gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) if gz
              else open(tmp, "w", encoding="utf-8")) as fh:
            for row in table if isinstance(table, list) else table.to_pylist():  # a list: rows as dicts
                fh.write(_json_line(row))
    elif fmt == "tsv":
        _write_tsv(_flat(table), tmp, gz, header)
    else:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        opts = pcsv.WriteOptions(include_header=header, delimiter=",")
        sink = pa.CompressedOutputStream(str(tmp), "gzip") if gz else pa.OSFile(str(tmp), "wb")
        with sink:
            pcsv.write_csv(_flat(table), sink, opts)
    os.replace(tmp, path)


def _write_tsv(table, path: Path, gz: bool, header: bool) -> None:
    """TSV as it is read (no quoting: NSMC's ``"재밌다`` is a cell, not an open quote), so a labelled
    TSV reads back with the same columns and cells; pyarrow quoted every string (``"id"``). A tab or
    line break inside a cell (text from a CSV/JSONL input) cannot be written so: it becomes a space."""
    import gzip

    def cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        text = str(value)
        return text.translate(_TSV_BREAKS) if ("\t" in text or "\n" in text or "\r" in text) else text

    with (gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=6) if gz
          else open(path, "w", encoding="utf-8", newline="")) as fh:
        if header:
            fh.write("\t".join(cell(name) for name in table.column_names) + "\n")
        for batch in table.to_batches(10_000):
            for row in zip(*(column.to_pylist() for column in batch.columns)):
                fh.write("\t".join(cell(v) for v in row) + "\n")


_TSV_BREAKS = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


def _text(value) -> str:
    """A value JSON has no type for: bytes (a Parquet binary column) as their text when they are
    UTF-8, else as Python writes them (b'\\xff'); dates, decimals... as str()."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return str(bytes(value))
    return str(value)


def _json_line(row: dict) -> str:
    try:
        return json.dumps(row, ensure_ascii=False, default=_text, allow_nan=False) + "\n"
    except ValueError:  # NaN/inf from a Parquet float column: JSON has no such values -> null
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        return json.dumps(clean, ensure_ascii=False, default=_text) + "\n"


def _flat(table):
    """CSV cannot hold lists/structs: write such columns as JSON text; nor bytes that are not UTF-8
    (pyarrow failed on them after the whole file was labelled): binary columns as :func:`_text`."""
    import pyarrow as pa

    for i, fld in enumerate(table.schema):
        binary = pa.types.is_binary(fld.type) or pa.types.is_large_binary(fld.type) \
            or pa.types.is_fixed_size_binary(fld.type)
        if pa.types.is_nested(fld.type) or binary:
            values = [None if v is None else _text(v) if binary else json.dumps(v, ensure_ascii=False, default=_text)
                      for v in table.column(i).to_pylist()]
            table = table.set_column(i, fld.name, pa.array(values, type=pa.string()))
    return table


def conform(table, columns: list[str]):
    """Reorder to ``columns`` (a fixed CSV header), adding absent ones as nulls."""
    import pyarrow as pa

    from kopretrain.runs.records import StageError

    extra = [c for c in table.column_names if c not in columns]
    if extra:
        raise StageError(
            f"column(s) {extra} first appear after the CSV/TSV header was written; a CSV output needs "
            "the same columns in every row. Write .jsonl or .parquet instead."
        )
    for name in columns:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows))
    return table.select(columns)


def assemble(parts: list[Path], output: Path, fmt: str, bom: bool = False) -> None:
    """Join part files into ``output`` atomically (a reader never sees a half-written file).
    ``bom``: a CSV/TSV starts with the UTF-8 byte order mark (its own gzip member when gzipped)."""
    tmp = output.with_name(f".{output.name}.tmp")
    if fmt == "parquet":
        _assemble_parquet(parts, tmp)
    else:
        import gzip
        import shutil

        with open(tmp, "wb") as out:
            if bom and fmt in ("csv", "tsv"):
                mark = "\ufeff".encode("utf-8")
                out.write(gzip.compress(mark) if output.name.lower().endswith(".gz") else mark)
            for part in parts:
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
    os.replace(tmp, output)


def _assemble_parquet(parts: list[Path], tmp: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = unify([pq.read_schema(p) for p in parts])
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for part in parts:
            table = pq.read_table(part)
            for name in schema.names:
                if name not in table.column_names:
                    table = table.append_column(name, pa.nulls(table.num_rows, schema.field(name).type))
            writer.write_table(table.select(schema.names).cast(schema))


def unify(schemas: list) -> Any:
    """One schema for all parts (a JSONL key may be all-null in one chunk, int in the next);
    a column whose types cannot be promoted (int here, string there) becomes string."""
    import pyarrow as pa

    schemas = [s.remove_metadata() for s in schemas]
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        fields: dict[str, list] = {}
        for s in schemas:
            for f in s:
                fields.setdefault(f.name, []).append(f.type)
        out = []
        for name, types in fields.items():
            try:
                out.append(pa.unify_schemas([pa.schema([(name, t)]) for t in types],
                                            promote_options="permissive").field(0))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                out.append(pa.field(name, pa.string()))
        return pa.schema(out)
