"""Ingest inputs: which files (or which ``datasets`` split) to read, and which column is what.

A column role (text, id, rating, label, group, date) is either named explicitly, ``auto``
(the first of a few common names that exists: NSMC's ``review``/``review_id``/``movie_id``, the
bundled sample's ``item_id``, HF-style ``text``/``label``) or ``none``. Every input file is
checked on its own, so a directory whose files disagree fails on the file that is wrong, with the
columns it does have.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from kopretrain.data.readers import (
    Row, csv_header, detect_format, iter_csv, iter_dataset, iter_jsonl, iter_parquet, jsonl_keys,
    list_inputs, load_dataset, load_saved, parquet_columns,
)
from kopretrain.runs.records import StageError

ROLES = ("text", "id", "rating", "label", "group", "date")
CANDIDATES: dict[str, tuple[str, ...]] = {
    "text": ("text", "review", "document", "content", "comment", "sentence", "body"),
    "id": ("id", "review_id"),
    "rating": ("rating", "score", "stars", "star"),
    "label": ("label", "sentiment"),
    "group": ("group", "movie_id", "item_id", "product_id", "app_id"),
    "date": ("date", "created_at", "timestamp"),
}


@dataclass
class Source:
    """One readable input: a file, or a loaded ``datasets`` split."""

    name: str  # short name used in the ``source`` column (``reviews.csv``, ``sub/a.jsonl``)
    path: str  # what rejected.jsonl calls the file (openable path, or ``hub-id[split]``)
    fmt: str
    columns: list[str] | None  # None: empty file
    fingerprint: str
    _records: Callable[[list[str]], Iterator[Row]] = field(repr=False, default=None)  # type: ignore[assignment]
    mapping: dict[str, list[str]] = field(default_factory=dict)

    def records(self) -> Iterator[Row]:
        """The file's rows; a file that cannot be read to its end (a truncated .gz, a read error)
        stops the stage with the file and the last good line named, never a half-read input."""
        import gzip
        import zlib

        from kopretrain.runs.records import StageError

        wanted = sorted({c for cols in self.mapping.values() for c in cols})
        line = 0
        try:
            for row in self._records(wanted):
                line = row.line
                yield row
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise StageError(f"{self.path}: cannot be read past line {line} ({type(exc).__name__}: {exc}); "
                             "is the file truncated or corrupt? No output was written") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def open_sources(cfg: Any, cache_dir: str | None = None) -> list[Source]:
    """The inputs named by an IngestConfig, each with its columns (not yet mapped)."""
    root = Path(cfg.input)
    if cfg.format == "datasets" or (cfg.format == "auto" and _saved_dataset(root)):
        return [_dataset_source(cfg, cache_dir)]
    unused = [flag for flag, value in (("--data-files", cfg.data_files), ("--dataset-config", cfg.dataset_config),
                                       ("--revision", cfg.revision), ("--dataset-split", cfg.dataset_split != "train"))
              if value]
    if unused:  # they did nothing: the file was read whole, not the split or revision asked for
        raise StageError(f"{', '.join(unused)} only apply with --format datasets (a Hub id, a builder such as "
                         "csv/json, or a save_to_disk folder)")
    if not root.exists():
        raise FileNotFoundError(
            f"--input {cfg.input}: no such file or directory "
            "(for a datasets Hub id or builder such as csv/json, add --format datasets)"
        )
    files = list_inputs(root)
    if root.is_dir() and cfg.format != "auto":  # --format on a directory picks those files
        files = [f for f in files if detect_format(f) == cfg.format]
    if not files:
        kinds = ".csv/.tsv/.txt/.jsonl/.json/.parquet" if cfg.format == "auto" else cfg.format
        raise StageError(f"--input {cfg.input}: directory has no {kinds} files")
    sources = []
    for path in files:
        try:
            fmt = detect_format(path) if cfg.format == "auto" or root.is_dir() else cfg.format
            quoting = cfg.quoting == "csv" or (cfg.quoting == "auto" and fmt == "csv")
            if fmt in ("csv", "tsv"):
                columns = csv_header(path, fmt, encoding=cfg.encoding, quoting=quoting,
                                     max_record_lines=cfg.max_record_lines)
                reader = (lambda _cols, p=path, f=fmt, q=quoting: iter_csv(
                    p, f, encoding=cfg.encoding, quoting=q, max_record_lines=cfg.max_record_lines))
            elif fmt == "jsonl":
                columns = jsonl_keys(path, cfg.encoding)
                reader = lambda _cols, p=path: iter_jsonl(p, encoding=cfg.encoding)  # noqa: E731
            else:
                columns = parquet_columns(path)
                reader = lambda cols, p=path: iter_parquet(p, cols)  # noqa: E731
        except ValueError as exc:
            raise StageError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None
        except (EOFError, OSError, zlib.error) as exc:  # a truncated .gz, not gzip at all, a broken Parquet footer
            raise StageError(f"{path}: cannot be read ({type(exc).__name__}: {exc}); is the file truncated "
                             "or corrupt? Nothing was written") from None
        name = path.name if path == root else str(path.relative_to(root))
        sources.append(Source(name, str(path), fmt, columns, _sha256(path), reader))
    return sources


def _saved_dataset(path: Path) -> bool:
    """A folder ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` wrote (read with load_from_disk)."""
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()
                              and (path / "dataset_info.json").is_file())


def _dataset_source(cfg: Any, cache_dir: str | None) -> Source:
    saved = _saved_dataset(Path(cfg.input))
    if not (cfg.revision or cfg.data_files or Path(cfg.input).exists()):  # a Hub dataset: as pretrain warns
        print(f"[ingest] warning: {cfg.input} is not pinned; set --revision (Hub branches get overwritten)")
    try:
        ds = (load_saved(cfg.input, split=cfg.dataset_split) if saved else
              load_dataset(cfg.input, config=cfg.dataset_config, split=cfg.dataset_split,
                           revision=cfg.revision, data_files=cfg.data_files, cache_dir=cache_dir))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"--input {cfg.input} (--format datasets): {exc}") from None
    except (ValueError, KeyError, ConnectionError, OSError) as exc:  # an unknown split, no Hub, a bad builder
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StageError(f"--input {cfg.input} (--format datasets, split {cfg.dataset_split!r}): "
                         f"{type(exc).__name__}: {message}") from None
    label = f"{cfg.input}[{cfg.dataset_split}]"
    fingerprint = "datasets:" + str(getattr(ds, "_fingerprint", "")) + (f"@{cfg.revision}" if cfg.revision else "")
    return Source(label, label, "datasets", list(ds.column_names), fingerprint,
                  lambda cols: iter_dataset(ds, cols))


def resolve_columns(source: Source, wanted: dict[str, str], needed: set[str]) -> dict[str, list[str]]:
    """``{role: [column, ...]}`` for the roles this source has (``group`` may combine columns:
    ``"domain,item_id"``). Raises StageError naming the file and the columns that exist."""
    have = source.columns or []
    mapping: dict[str, list[str]] = {}
    for role in ROLES:
        spec = (wanted.get(role) or "none").strip()
        if spec.lower() == "none":
            cols: list[str] = []
        elif spec.lower() == "auto":
            cols = next(([c] for c in CANDIDATES[role] if c in have), [])
        else:
            cols = [c.strip() for c in spec.split(",") if c.strip()]
            if len(cols) > 1 and role in ("rating", "label"):  # one value per row: the others were dropped
                raise StageError(f"--{role}-column {spec}: name one column (the {role} is one value per row)")
            missing = [c for c in cols if c not in have]
            if missing:
                raise StageError(
                    f"{source.path}: no column {', '.join(map(repr, missing))} for --{role}-column; "
                    f"columns: {', '.join(have)}"
                )
        if not cols and role in needed:
            tried = "" if spec.lower() != "auto" else f" (tried {', '.join(CANDIDATES[role])})"
            raise StageError(
                f"{source.path}: no {role} column{tried}; columns: {', '.join(have) or '(none)'}; "
                f"set --{role}-column"
            )
        if cols:
            mapping[role] = cols
    return mapping
