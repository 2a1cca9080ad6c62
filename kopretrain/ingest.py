"""Ingest: read review files, map columns, label ratings, dedup, split by group, write Parquet.

Two streaming passes keep memory flat as the input grows:

1. read every record (:mod:`kopretrain.data.readers`), reject what cannot be used (named reasons, file
   and line into ``rejected.jsonl``), stage the good rows to a temporary Parquet file in chunks
   and keep only a few numbers per row in memory (exact/near/id hashes, group index, label code,
   file index, line: ~40 bytes);
2. decide duplicates (:mod:`kopretrain.data.dedup`) and splits (:mod:`kopretrain.data.split`) on those
   arrays, then stream the staged rows into ``train/dev/test.parquet``.

Output columns follow :mod:`kopretrain.data.files`; ``text`` stays raw (normalize is the next stage).
A generated dataset card (``README.md``) holds the measured statistics.
"""

from __future__ import annotations

import codecs
import math
import re
from array import array
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Optional

from kopretrain.data.dedup import hash64, keys
from kopretrain.data.files import LABELS, row_schema
from kopretrain.data.readers import check_encoding
from kopretrain.data.schemes import SCHEMES, LabelError, build_scheme, parse_rating, value_key
from kopretrain.data.assign import STAGING
from kopretrain.data.files import is_blank
from kopretrain.runs.stage import Stage, StageConfig
from kopretrain.runs.records import StageError, StageRun

_SURROGATE = re.compile("[\ud800-\udfff]")
_WHOLE_FLOAT = re.compile(r"-?[0-9]+\.0+")
CHUNK = 20_000
SNIPPET = 200  # characters of a rejected text kept in rejected.jsonl


@dataclass
class IngestConfig(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("input", "data_files")
    REQUIRED: ClassVar[tuple[str, ...]] = ("input", "label_scheme")
    WIRING: ClassVar[dict[str, str]] = {}

    input: str = ""
    """Reviews to read: a .csv, .tsv/.txt (tab-separated), .jsonl/.json (JSON Lines) file, optionally
    .gz; a .parquet file; a directory of such files; or, with --format datasets, a datasets Hub id or
    builder name (csv, json, parquet with --data-files)."""
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "datasets"] = "auto"
    """Input format; auto goes by file extension."""
    label_scheme: Optional[Literal["nsmc", "stars5", "thresholds", "column", "none"]] = None
    """Required. nsmc: 1-10 ratings, 1-4 negative / 5-8 neutral / 9-10 positive. stars5: 1-5 stars,
    1-2 / 3 / 4-5. thresholds: give --rating-min/--rating-max/--negative-max/--positive-min.
    column: an existing label column mapped by --label-map. none: unlabeled (label null)."""
    text_column: str = "auto"
    """Column with the review text (auto: text, review, document, content, comment, sentence, body).
    Several columns (title,body) join into one text, space-separated."""
    id_column: str = "auto"
    """Unique row id (auto: id, review_id; none: use file:line). Later rows repeating an id are rejected."""
    rating_column: str = "auto"
    """Numeric rating (auto: rating, score, stars, star; none to ignore). With --label-scheme column or
    none a rating that is not a number is stored as null (counted in stage.json), not rejected."""
    label_column: str = "auto"
    """Existing label column, used with --label-scheme column (auto: label, sentiment)."""
    group_column: str = "auto"
    """Group kept within one split: movie/product/app id (auto: group, movie_id, item_id, product_id,
    app_id). Several columns combine, e.g. domain,item_id. none: split row by row."""
    date_column: str = "auto"
    """Date column, kept as text (auto: date, created_at, timestamp; none to ignore)."""
    rating_min: Optional[float] = None
    """Lowest valid rating (overrides the scheme preset); lower ratings are rejected."""
    rating_max: Optional[float] = None
    """Highest valid rating (overrides the scheme preset); higher ratings are rejected."""
    negative_max: Optional[float] = None
    """Ratings <= this are negative (overrides the scheme preset)."""
    positive_min: Optional[float] = None
    """Ratings >= this are positive (overrides the scheme preset); between is neutral."""
    label_map: dict[str, str] = field(default_factory=dict)
    """For --label-scheme column: raw value -> label, e.g. {"0": "negative", "1": "positive"}
    (default: the values negative/neutral/positive as they are). Unmapped values are rejected."""
    dedup: Literal["none", "exact", "near"] = "near"
    """Duplicate removal before splitting. exact: same text after NFC and whitespace collapse. near:
    also ignores spacing, punctuation, emoji, case and repeated characters (ㅋㅋㅋ = ㅋ)."""
    on_label_conflict: Literal["majority", "drop"] = "majority"
    """Duplicates whose labels disagree: keep one row with the majority label (ties drop all), or drop all."""
    dev_fraction: float = 0.1
    """Share of rows for the dev split."""
    test_fraction: float = 0.1
    """Share of rows for the test split (train gets the rest)."""
    seed: int = 13
    """Seed of the split assignment."""
    max_chars: int = 5000
    """Reject texts longer than this (too_long): a record of many kilobytes is a broken export, not a
    review. 0 keeps any length; normalize applies the finer length filter."""
    max_record_lines: int = 50
    """A quoted CSV field may span at most this many lines; beyond it the opening line is rejected
    (unbalanced_quote) and reading continues on the next line."""
    encoding: str = "utf-8"
    """Text encoding of CSV/TSV/JSONL files (cp949 for old Korean Excel exports). Undecodable lines are rejected."""
    quoting: Literal["auto", "csv", "none"] = "auto"
    """Quote handling: csv honours "quoted, fields"; none splits every line on the delimiter (tab-separated
    dumps such as NSMC's ratings_*.txt, where quotes are literal). auto: csv for .csv, none for .tsv/.txt."""
    max_rows: int = 0
    """Read at most this many records (0: all), for quick trials."""
    dataset_config: str = ""
    """--format datasets: the dataset's configuration name."""
    dataset_split: str = "train"
    """--format datasets: which split to read."""
    revision: str = ""
    """--format datasets: Hub revision (pin it: a Hub branch can change under you)."""
    data_files: list[str] = field(default_factory=list)
    """--format datasets: local files for a builder such as csv or json."""
    name: str = ""
    """Dataset name for the generated card (README.md)."""
    license: str = "unknown"
    """License recorded in the generated card, e.g. cc0-1.0."""

    def __post_init__(self):
        check_encoding(self.encoding)
        if self.label_scheme is not None:
            build_scheme(self.label_scheme, rating_min=self.rating_min, rating_max=self.rating_max,
                         negative_max=self.negative_max, positive_min=self.positive_min,
                         label_map=self.label_map)
        if self.label_column not in ("auto", "none", "") and self.label_scheme not in (None, "column"):
            source = "no labels are kept" if self.label_scheme == "none" else "labels come from the ratings"
            raise ValueError(f"--label-column {self.label_column}: {source} under --label-scheme {self.label_scheme}; "
                             "use --label-scheme column to read them from a column")
        for flag, value in (("--dev-fraction", self.dev_fraction), ("--test-fraction", self.test_fraction)):
            if not 0 <= value < 1:
                raise ValueError(f"{flag}: must be in [0, 1), got {value}")
        if self.dev_fraction + self.test_fraction >= 1:
            raise ValueError("--dev-fraction + --test-fraction must leave rows for train")
        if self.max_chars < 0 or self.max_rows < 0:
            raise ValueError("--max-chars and --max-rows must be >= 0")
        if self.max_record_lines < 1:
            raise ValueError("--max-record-lines: must be >= 1")
        if codecs.lookup(self.encoding).name.startswith(("utf-16", "utf-32")):  # not "16" in: cp932, iso8859-16
            raise ValueError(f"--encoding {self.encoding}: UTF-16/32 files are not line-splittable; convert to UTF-8")
        if self.format == "datasets" and not self.input:
            raise ValueError("--input: a datasets Hub id or builder name is required with --format datasets")



@dataclass
class _Keys:
    """What pass 1 keeps per staged row (typed arrays: ~40 bytes a row instead of Python objects)."""

    exact: array = field(default_factory=lambda: array("q"))
    near: array = field(default_factory=lambda: array("q"))
    id_hash: array = field(default_factory=lambda: array("q"))
    has_id: array = field(default_factory=lambda: array("b"))
    group: array = field(default_factory=lambda: array("q"))
    label: array = field(default_factory=lambda: array("b"))
    file: array = field(default_factory=lambda: array("i"))
    line: array = field(default_factory=lambda: array("q"))


class RowReject(Exception):
    """A row that cannot be used: ``reason`` is the reject reason, ``column`` the field at fault."""

    def __init__(self, reason: str, detail: str, column: Any = None, text: str | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.column, self.text = reason, detail, column, text


def _usable(text: str) -> bool:
    """False for strings Parquet cannot hold (lone surrogates from JSON ``\\ud800`` escapes).
    ``isascii`` first: it is a flag lookup, so ids and dates cost nothing."""
    return text.isascii() or _SURROGATE.search(text) is None


def _cell(fields: dict, cols: list[str] | None) -> str | None:
    """The stripped string value of a role (several columns joined with '/'), None when empty.
    A whole number written as a float is the number: CSV "7.0" (pandas writes an int column with
    a gap so) and JSON 7 are one movie, or it would sit in two splits."""
    if not cols:
        return None
    if len(cols) == 1:  # the common case, kept cheap: this runs three times per row
        value = fields.get(cols[0])
        if type(value) is str:
            value = value.strip()
            if value[-1:] == "0" and _WHOLE_FLOAT.fullmatch(value):
                return value[:value.index(".")]
            return value or None
        if type(value) is int:  # JSON ids (NSMC review_id, movie_id)
            return str(value)
        return value_key(value)  # floats: 1.0 -> "1", NaN -> None (missing, not a group "nan")
    parts = [_cell(fields, [c]) for c in cols]
    if any(p is None for p in parts):
        return None
    return "/".join(parts)  # type: ignore[arg-type]


def _text(value: Any, column: str) -> str:
    """The review text of a cell: a string, UTF-8 bytes (Parquet binary) or missing (None, NaN ->
    ""); anything else (JSON true, a list, an object) is rejected rather than stored as its repr."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RowReject("invalid_utf8", f"binary text is not UTF-8 (byte {exc.start + 1})", column) from None
    shown = repr(value)
    raise RowReject("not_text", f"text is a {type(value).__name__}, not a string: "
                    f"{shown[:60] + '...' if len(shown) > 60 else shown}", column)


def _rating(fields: dict, mapping: dict[str, list[str]], scheme: Any, text: str) -> tuple[float | None, str]:
    """``(rating, note)``: the parsed rating, or, when the scheme does not label by rating, None and
    a note for a value that is not a number (the row keeps its label; the junk is counted, not fatal)."""
    rating_col = mapping["rating"][0] if "rating" in mapping else None
    try:
        return (parse_rating(fields.get(rating_col)) if rating_col else None), ""
    except LabelError as exc:
        if scheme.needs_rating:
            raise RowReject(exc.reason, str(exc), rating_col, text) from None
        return None, str(exc)


def parse_row(fields: dict, mapping: dict[str, list[str]], scheme: Any, max_chars: int) -> dict[str, Any]:
    """One input row -> ``{text, id, group, date, rating, rating_note, code}``; raise RowReject
    explaining why not (``rating_note``: why an unused rating was stored as null, else "").

    >>> parse_row({"review": "배송 빨라요", "stars": "5"}, {"text": ["review"], "rating": ["stars"]},
    ...           build_scheme("stars5"), 5000)["code"]  # 2 = positive
    2
    """
    text_col = mapping["text"][0]
    if not any(col in fields for col in mapping["text"]):  # several: a record may leave one out
        raise RowReject("missing_field", f"no {text_col!r} field", text_col)
    text = _text(fields.get(text_col), text_col)
    if len(mapping["text"]) > 1:  # --text-column title,body: the non-empty parts, space-joined
        text = " ".join(part for col in mapping["text"] if (part := _text(fields.get(col), col).strip()))
    if is_blank(text):
        raise RowReject("empty_text", "text is empty, whitespace or Hangul fillers", text_col)
    if max_chars and len(text) > max_chars:
        raise RowReject("too_long", f"{len(text):,} characters > --max-chars {max_chars:,}", text_col, text)
    row = {"text": text, "id": _cell(fields, mapping.get("id")), "group": _cell(fields, mapping.get("group")),
           "date": _cell(fields, mapping.get("date"))}
    if not all(_usable(v) for v in (text, row["id"] or "", row["group"] or "", row["date"] or "")):
        raise RowReject("invalid_utf8", "lone surrogate in a string value")
    row["rating"], row["rating_note"] = _rating(fields, mapping, scheme, text)
    label_col = mapping["label"][0] if "label" in mapping else None
    try:
        scheme.check_rating(row["rating"])
        row["code"] = scheme.code(row["rating"], fields.get(label_col) if label_col else None)
    except LabelError as exc:
        column = label_col if exc.reason.startswith("label") else mapping.get("rating", [None])[0]
        raise RowReject(exc.reason, str(exc), column, text) from None
    return row


def run(cfg: IngestConfig, run: StageRun) -> None:
    from kopretrain.data.assign import decide, write_splits
    from kopretrain.data.dedup import id_warnings
    from kopretrain.data.schemes import scale_warnings
    from kopretrain.data.split import empty_split_warnings
    from kopretrain.data.sources import open_sources, resolve_columns

    if not cfg.input:
        raise StageError("--input is required (a file, a directory, or a datasets name with --format datasets)")
    if cfg.label_scheme is None:
        raise StageError(f"--label-scheme is required: one of {', '.join(SCHEMES)} (see `kopretrain ingest --help`)")
    scheme = build_scheme(cfg.label_scheme, rating_min=cfg.rating_min, rating_max=cfg.rating_max,
                          negative_max=cfg.negative_max, positive_min=cfg.positive_min, label_map=cfg.label_map)
    (run.dir / "rejected.jsonl").unlink(missing_ok=True)  # a resumed partial run starts over
    cache = str(run.dir / ".hf_cache") if cfg.format == "datasets" and cfg.data_files else None
    sources = open_sources(cfg, cache_dir=cache)
    wanted = {"text": cfg.text_column, "id": cfg.id_column, "rating": cfg.rating_column,
              "label": cfg.label_column if scheme.needs_label else "none", "group": cfg.group_column,
              "date": cfg.date_column}
    needed = {"text"} | ({"rating"} if scheme.needs_rating else set()) | ({"label"} if scheme.needs_label else set())
    for src in sources:
        if src.columns is None:
            run.log(f"[ingest] {src.path}: empty file, no records")
            continue
        src.mapping = resolve_columns(src, wanted, needed)
        run.log(f"[ingest] {src.path}: " + ", ".join(f"{r}={'+'.join(c)}" for r, c in src.mapping.items()))
    run.log(f"[ingest] labels: {scheme.describe()}")

    k, rows_in, per_source = _read(cfg, run, sources, scheme)
    if rows_in == 0:
        raise StageError(f"--input {cfg.input}: no records (empty file, or a header only)")
    fractions = (1 - cfg.dev_fraction - cfg.test_fraction, cfg.dev_fraction, cfg.test_fraction)
    decision, keeper, split_of = decide(k, dedup=cfg.dedup, policy=cfg.on_label_conflict,
                                        fractions=fractions, seed=cfg.seed)
    stats = write_splits(run, sources, k, decision, keeper, split_of)
    (run.dir / STAGING).unlink()
    if not (split_of >= 0).any():
        undecodable = run.rejected.get("invalid_utf8", 0) + run.rejected.get("invalid_encoding", 0)
        hint = (" Most could not be decoded: a Korean file from Excel or an older system is often CP949, "
                "try --encoding cp949." if undecodable * 2 > rows_in else "")
        raise StageError(f"--input {cfg.input}: all {rows_in:,} records were rejected ({dict(run.rejected)}); "
                         f"see {run.dir / 'rejected.jsonl'}.{hint}")
    if cache:
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
    run.set_counts(rows_in=rows_in, rows_out=sum(s["rows"] for s in stats["splits"].values()))
    stats["columns"] = next((s.mapping for s in sources if s.mapping), {})
    stats["label_scheme"] = {"kind": scheme.kind, "description": scheme.describe()}
    stats["sources"] = [{"name": s.name, "path": s.path, "format": s.fmt, "records": n,
                         "fingerprint": s.fingerprint} for s, n in zip(sources, per_source)]
    stats["warnings"] = (empty_split_warnings(stats["splits"], {"dev": cfg.dev_fraction, "test": cfg.test_fraction})
                         + scale_warnings(scheme, stats["splits"], run.rejected, rows_in)
                         + id_warnings(decision, keeper, k.exact))
    for warning in stats["warnings"]:
        run.log(f"[ingest] warning: {warning}")
    run.stats.update(stats)
    _write_card(cfg, run, stats)
    run.log(f"[ingest] {rows_in:,} records -> " + ", ".join(
        f"{s} {v['rows']:,}" for s, v in stats["splits"].items()) + f"; rejected {dict(run.counts['rejected'])}")


def _read(cfg: IngestConfig, run: StageRun, sources: list, scheme: Any) -> tuple[_Keys, int, list[int]]:
    """Pass 1: stream every record, reject the unusable, stage the rest, keep per-row keys."""
    from tqdm.auto import tqdm

    from kopretrain.data.files import ParquetSink

    k = _Keys()
    groups: dict[str, int] = {}
    rows_in = 0
    per_source: list[int] = []
    buffer: list[dict] = []
    dropped, first_dropped = 0, ""  # unused ratings that are not numbers (stored as null)
    staging = ParquetSink(run.dir / STAGING, schema=row_schema())
    with tqdm(desc="ingest: read", unit=" rows", mininterval=0.5) as bar:  # closed on errors too
        for file_idx, src in enumerate(sources):
            seen = 0
            for rec in src.records() if src.columns is not None else ():
                if cfg.max_rows and rows_in >= cfg.max_rows:
                    break
                rows_in += 1
                seen += 1
                if rows_in % 4096 == 0:
                    bar.update(4096)
                try:
                    if rec.error:
                        raise RowReject(rec.error, rec.detail, rec.column)
                    row = parse_row(rec.fields, src.mapping, scheme, cfg.max_chars)
                except RowReject as bad:
                    where = {"column": bad.column} if bad.column is not None else {}
                    run.reject(bad.reason, file=src.path, line=rec.line, **where, detail=bad.detail,
                               **({"text": bad.text[:SNIPPET]} if bad.text else {}))
                    continue
                if row["rating_note"]:
                    dropped += 1
                    first_dropped = first_dropped or f"{src.path}:{rec.line}: {row['rating_note']}"
                buffer.append(_keep(k, groups, row, file_idx, f"{src.name}:{rec.line}", rec.line))
                if len(buffer) >= CHUNK:
                    staging.write_rows(buffer)
                    buffer.clear()
            per_source.append(seen)
        staging.write_rows(buffer)
        staging.close()
        bar.update(rows_in % 4096)
    if dropped:
        run.stats["ratings_not_numbers"] = dropped
        run.log(f"[ingest] {dropped:,} ratings are not numbers and are stored as null (labels come from "
                f"--label-scheme {cfg.label_scheme}, not the rating); first: {first_dropped}")
    return k, rows_in, per_source


def _keep(k: _Keys, groups: dict[str, int], row: dict[str, Any], file_idx: int, source: str, line: int) -> dict:
    """Record a kept row's keys in ``k`` and return the row as it is staged."""
    rid, group, code = row["id"], row["group"], row["code"]
    exact, near = keys(row["text"])
    k.exact.append(exact)
    k.near.append(near)
    k.id_hash.append(hash64(rid) if rid is not None else 0)
    k.has_id.append(rid is not None)
    k.group.append(groups.setdefault(group, len(groups)) if group is not None else -1)
    k.label.append(code)
    k.file.append(file_idx)
    k.line.append(line)
    return {"id": rid if rid is not None else source, "text": row["text"],
            "label": LABELS[code] if code >= 0 else None, "rating": row["rating"],
            "group": group, "date": row["date"], "source": source}


def _write_card(cfg: IngestConfig, run: StageRun, stats: dict[str, Any]) -> None:
    from kopretrain.runs.config import to_dict
    from kopretrain.data.card import render

    text = render(stats, config=to_dict(cfg), counts=run.counts, license=cfg.license, pretty_name=cfg.name)
    (run.dir / "README.md").write_text(text + "\n", encoding="utf-8")


__all__ = ["STAGE", "IngestConfig", "RowReject", "parse_row", "run"]


STAGE = Stage("ingest", IngestConfig, run=run)
