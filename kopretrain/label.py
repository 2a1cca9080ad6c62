"""Label review files of any size with a fine-tuned classifier, in resumable chunks.

    kopretrain label --model runs/nsmc/finetune --input reviews.csv --output labeled.parquet

Every input row comes out, in input order, with all its columns plus ``label``, ``confidence``,
``prob_negative``/``prob_neutral``/``prob_positive``, ``label_error`` (why a row has no label:
``empty_text``, ``missing_text``, ``not_text``, ``invalid_encoding``, ``invalid_json``,
``empty_after_normalization``; CSV records that cannot be split into the header's fields, whose text
column holds the line as written: ``wrong_field_count``, ``unbalanced_quote``, ``broken_quotes``,
``malformed_csv``) and, with ``--min-confidence``, ``needs_review`` (also true for rows
without a label: they need a human too). Texts get the model's recorded normalization
(``kopretrain.json``) before the tokenizer, exactly as in training.

The input is read ``chunk_size`` rows at a time; each labeled chunk becomes a part file in
``<output>.partial/`` and is committed to ``manifest.json`` (keyed by a fingerprint of model,
input and options). A rerun after a kill skips the committed chunks, so no row is duplicated or
lost; the finished output is assembled atomically and ``<output>.stage.json`` records the run.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from kopretrain.data.label_input import added_columns, check_chunk, check_columns, chunks
from kopretrain.data.files import is_blank
from kopretrain.data.label_output import label_record, same_columns
from kopretrain.data.readers import check_encoding
from kopretrain.data.manifest import commit_chunk, open_manifest, part_name, read_json, chunk_totals
from kopretrain.inference.progress import log_progress, progress_bar
from kopretrain.runs.stage import Stage, StageConfig
from kopretrain.runs.records import StageError, fingerprint_path, stage_fingerprint, write_json

ERRORS = ("missing_text", "not_text", "empty_text", "invalid_encoding", "invalid_json", "wrong_field_count",
          "unbalanced_quote", "broken_quotes", "malformed_csv", "empty_after_normalization")
# Options that change speed or display but not a single output value: not part of the fingerprint,
# so a resumed run may change them.
_COSMETIC = ("progress", "threads")


@dataclass
class LabelConfig(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("model", "input")
    REQUIRED: ClassVar[tuple[str, ...]] = ("model", "input")
    WIRING: ClassVar[dict[str, str]] = {"model": "finetune"}
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ("max_record_lines",)

    model: str = ""
    """Fine-tuned classifier: a finetune output, a released folder, or its Hub id (pin --revision)."""
    revision: str = ""
    """Hub revision (tag/branch/commit) of a Hub --model; its kopretrain.json is read at the same one."""
    input: str = ""
    """File to label: .csv, .tsv, .jsonl or .parquet (text formats may end in .gz); any size."""
    text_column: str = "text"
    """Column (JSONL key) holding the review text."""
    min_confidence: float = 0.0
    """Add a boolean needs_review column, true where the top probability is below this (0: no column)."""
    column_prefix: str = ""
    """Prefix for the added columns (e.g. pred_ when the input already has a label column)."""
    chunk_size: int = 10_000
    """Rows per chunk: memory is bounded by one chunk, and a rerun after a kill resumes after the last finished chunk."""
    batch_size: int = 64
    """Texts per forward pass (batches are formed after sorting a chunk by length)."""
    max_length: int = 0
    """Truncate texts to this many tokens (0: the length the model was fine-tuned with, recorded in its
    kopretrain.json, else 128; always capped by the model's max_position_embeddings)."""
    precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    """auto: bf16 on CPUs with AMX; on other bf16 CPUs, bf16 if one batch runs >= 1.25x faster than fp32
    (timed at the start); else fp32. int8: dynamic quantization of the Linear layers, faster but it can
    change labels (16% on a 12-layer model): check it on your dev set first (BENCHMARKS.md)."""
    threads: int = 0
    """torch CPU threads (0: torch's default)."""
    encoding: str = "utf-8"
    """Encoding of CSV/TSV/JSONL input; undecodable cells are repaired per row (CP949 fallback) and counted."""
    csv_quoting: bool | None = None
    """Treat " as a quote character in CSV/TSV input (default: on for .csv, off for .tsv/.txt such as
    NSMC's ratings_*.txt, whose cells hold bare quotes; as ingest's --quoting auto)."""
    progress: bool = True
    """Show a progress bar (rows and rows/s) on a terminal."""
    max_record_lines: int = 50
    """CSV: a quoted field may span at most this many lines (as ingest's --max-record-lines); a quote
    still open after them is taken for a stray one and the lines after it are read as rows."""

    def __post_init__(self):
        check_encoding(self.encoding)
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"--min-confidence: {self.min_confidence} is not between 0 and 1")
        for name in ("chunk_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: must be at least 1")
        if self.max_length < 0:
            raise ValueError("--max-length: must be 0 (the model's recorded length) or more")
        if self.max_record_lines < 1:
            raise ValueError("--max-record-lines: must be at least 1")
        if self.threads < 0:
            raise ValueError("--threads: must be 0 (default) or more")



def output_format(output: Path) -> tuple[str, bool]:
    from kopretrain.data.tables import file_format

    if output.is_dir():
        raise StageError(f"--output {output} is a directory; label writes one file: name it, e.g. "
                         f"{output / 'labeled.parquet'}")
    if output.name.lower().endswith((".json", ".json.gz")):  # JSON Lines is written: name it so
        raise StageError(f"--output {output}: label writes JSON Lines; name it .jsonl")
    try:
        return file_format(output)
    except ValueError as exc:
        raise StageError(f"--output: {exc}") from None


def run_fingerprint(cfg: LabelConfig, inputs: dict | None = None, spelled: bool = False) -> tuple[str, dict, dict]:
    """(fingerprint, config, inputs) of a labeling run: model content + input content + options.
    The input paths' spelling is not part of it (a copied workdir or a run from another folder is
    the same run); ``spelled=True``: the key of earlier versions, which hashed it too."""
    from kopretrain.runs.config import to_dict
    from kopretrain.runs.fingerprints import fingerprint_config

    config = to_dict(cfg)
    key = fingerprint_config(cfg, config, drop=_COSMETIC if spelled else (*_COSMETIC, *LabelConfig.INPUTS))
    inputs = inputs or {name: fingerprint_path(getattr(cfg, name)) for name in LabelConfig.INPUTS}
    return stage_fingerprint("label", key, inputs, _rules(cfg.model)), config, inputs


def _rules(model: str) -> dict[str, str]:
    """The digest of today's rules for a local model's normalization (as normalize keys its
    output): a kopretrain upgrade that changes them relabels. A Hub id's rules would need a download."""
    from kopretrain.text.textprep import load

    prep = load(model) if Path(model).is_dir() else None
    if prep is None or prep.normalize is None:
        return {}
    from kopretrain.text.probes import rules_digest

    return {"rules": rules_digest(prep.normalize)}


def execute(cfg: LabelConfig, output: str | Path, force: bool = False) -> Path:
    """Label ``cfg.input`` into ``output`` (resuming an interrupted run with the same fingerprint)."""
    from kopretrain.data.tables import file_format

    t0 = time.time()
    output = Path(output)
    out_fmt, out_gz = output_format(output)
    src = Path(cfg.input)
    if not cfg.input:
        raise StageError("--input: no file given")
    if not src.is_file():
        raise StageError(f"--input {src}: file not found")
    if src.resolve() == output.resolve():
        raise StageError(f"--output {output} is the input file; write the labels to a new file")
    try:
        in_fmt, _ = file_format(src)
    except ValueError as exc:
        raise StageError(f"--input: {exc}") from None
    from kopretrain.hub.loading import check_model_ref

    check_model_ref(cfg.model, revision=cfg.revision or None)
    fingerprint, config, inputs = run_fingerprint(cfg)
    record_path = output.with_name(output.name + ".stage.json")
    if not force and _finished(output, record_path, cfg, inputs):  # inputs: the model is hashed once
        print(f"[label] up to date: {output} (use --force to redo)")
        return output

    from kopretrain.runs.outputs import OutputLock, check_file_output

    check_file_output(output, record_path)  # before loading the model: never overwrite a user's file
    with OutputLock(output):
        check_file_output(output, record_path)
        try:
            return _label(cfg, src, output, (in_fmt, out_fmt, out_gz), (fingerprint, config, inputs), force, t0)
        except Exception as exc:
            from kopretrain.runs.records import input_error

            partial = output.with_name(output.name + ".partial")
            if input_error(exc) is not None and (partial / "manifest.json").is_file():
                # Bad input: the fixed input has another fingerprint, so these chunks would be discarded anyway.
                shutil.rmtree(partial, ignore_errors=True)
            if isinstance(exc, UnicodeError):  # cells are repaired: a safety net that names the file
                other = "utf-8" if cfg.encoding.lower().replace("_", "-") in ("cp949", "euc-kr") else "cp949"
                raise StageError(f"{src}: text that is not valid {cfg.encoding} ({exc}); try --encoding {other}") \
                    from None
            raise


def _finished(output: Path, record_path: Path, cfg: LabelConfig, inputs: dict | None = None) -> bool:
    """The labelled file exists and its record says it came from this model, input and options
    (keyed as now, or as earlier versions keyed it)."""
    if not output.exists():
        return False
    now, _, inputs = run_fingerprint(cfg, inputs)
    return read_json(record_path).get("fingerprint") in (now, run_fingerprint(cfg, inputs, spelled=True)[0])


def status(cfg: LabelConfig, output: Path) -> str:
    """What ``kopretrain run --dry-run`` says: the record beside the file decides, as in :func:`execute`."""
    from kopretrain.runs.outputs import OutputError, check_file_output

    output = Path(output)
    record_path = output.with_name(output.name + ".stage.json")
    try:
        check_file_output(output, record_path)
    except OutputError as exc:
        return f"will fail: {exc}"
    if _finished(output, record_path, cfg):
        return "up to date"
    return "will resume or restart its partial run" if Path(f"{output}.partial").exists() else "will run"


def _label(cfg: LabelConfig, src: Path, output: Path, formats: tuple, key: tuple, force: bool, t0: float) -> Path:
    """The labelling run proper, under the output's lock."""
    in_fmt, out_fmt, out_gz = formats
    fingerprint, config, inputs = key
    record_path = output.with_name(output.name + ".stage.json")
    columns = check_columns(cfg, src, in_fmt)
    rest = chunks(cfg, src, in_fmt, columns)
    first = next(rest)  # chunks() yields at least one
    check_chunk(cfg, src, first, 0)  # a bad input fails before the model loads and before any write
    scorer = _load(cfg)

    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    ext = f".{out_fmt}" + (".gz" if out_gz else "")
    manifest = open_manifest(partial, fingerprint, cfg.chunk_size, force, ext)
    done = len(manifest["chunks"])
    if done and manifest.get("precision"):
        scorer.keep(manifest["precision"])  # auto would time again and might label the rest otherwise
    rows_done = sum(c["rows"] for c in manifest["chunks"])
    bar = progress_bar(src, in_fmt, rows_done, cfg.progress)
    labeled = 0
    t_label, cpu_label = time.time(), time.process_time()
    for k, chunk in enumerate(itertools.chain([first], rest)):
        check_chunk(cfg, src, chunk, k)
        if k < done:
            continue  # committed by an earlier run; reading it again keeps the row offsets right
        table, stats = label_chunk(scorer, chunk, cfg)
        if out_fmt in ("csv", "tsv"):
            table = same_columns(table, manifest)
        n = table.num_rows
        if out_fmt == "jsonl" and chunk.raw is not None:  # each value as read: Arrow made 5 into 5.0 or "5"
            table = [{**row, **{k: v for k, v in raw.items() if not isinstance(v, str) and k in row}}
                     for row, raw in zip(table.to_pylist(), chunk.raw)]  # strings: the repaired cells
        manifest["precision"] = scorer.precision
        commit_chunk(partial, manifest, k, table, stats, out_fmt, out_gz, ext)
        labeled += n
        bar.update(n)
        if cfg.progress:
            log_progress(bar, rows_done + labeled, labeled, t_label)
    bar.close()
    seconds_labeling = time.time() - t_label
    cpu_labeling = time.process_time() - cpu_label

    from kopretrain.data.writers import assemble

    parts = [partial / part_name(k, ext) for k in range(len(manifest["chunks"]))]
    assemble(parts, output, out_fmt, bom=_wants_bom(src, cfg))
    totals = chunk_totals(manifest)
    if totals["rows"] == 0:
        print(f"[label] {src} has no rows: wrote {output} with the header only")
    record = label_record(cfg, config, inputs, fingerprint, totals, scorer.precision, done > 0, t0,
                     labeled, (seconds_labeling, cpu_labeling), out_fmt, scorer.measured,
                     getattr(scorer.clf, "ngram", None) is not None)
    write_json(record_path, record)
    shutil.rmtree(partial, ignore_errors=True)
    errors = sum(totals["errors"].values())
    rate = labeled / seconds_labeling if seconds_labeling > 0 else 0.0
    print(f"[label] wrote {output}: {totals['rows']} rows ({errors} without a label), "
          f"{rate:,.0f} rows/s{' (resumed)' if done else ''}")
    return output


def _wants_bom(src: Path, cfg: LabelConfig) -> bool:
    """A CSV/TSV read with a byte order mark, or in CP949/EUC-KR (written by Excel, most likely), is
    written with one: Excel shows UTF-8 Hangul without it as mojibake."""
    from kopretrain.data.encoding import is_utf8, open_binary

    if not is_utf8(cfg.encoding):
        return True
    with open_binary(src) as fh:
        return fh.read(3) == b"\xef\xbb\xbf"


def label_chunk(scorer, chunk, cfg: LabelConfig):
    """Add the label columns to one chunk; returns ``(table, stats)``. Row order is kept:
    the scorer sorts texts by length for batching and puts the results back in place."""
    import numpy as np
    import pyarrow as pa

    from kopretrain.data.files import LABELS

    table = chunk.table
    n = table.num_rows
    errors = list(chunk.errors)
    raw = table.column(cfg.text_column).to_pylist() if cfg.text_column in table.column_names else [None] * n
    rows, texts = [], []
    for i, text in enumerate(raw):
        if errors[i]:
            continue
        if text is None:
            errors[i] = "missing_text"
        elif not isinstance(text, str):
            errors[i] = "not_text"
        elif is_blank(text):  # zero-width spaces or Hangul fillers only: nothing to label
            errors[i] = "empty_text"
        else:
            rows.append(i)
            texts.append(text)
    prepared = scorer.clf.prep.prepare(texts) if texts else []
    keep = []
    for i, text in zip(rows, prepared):
        if not is_blank(text):
            keep.append((i, text))
        else:
            errors[i] = "empty_after_normalization"  # e.g. a review of only emoji the rules remove
    probs = np.zeros((n, len(LABELS)), dtype=np.float64)
    if keep:
        probs[[i for i, _ in keep]] = scorer.proba([t for _, t in keep])
    probs = np.round(probs, 6)
    missing = np.array([e is not None for e in errors], dtype=bool)
    best = probs.argmax(axis=1) if n else np.zeros(0, dtype=int)
    confidence = probs.max(axis=1) if n else np.zeros(0)
    labels = [None if missing[i] else LABELS[best[i]] for i in range(n)]
    p = cfg.column_prefix
    table = table.append_column(f"{p}label", pa.array(labels, type=pa.string()))
    table = table.append_column(f"{p}confidence", pa.array(confidence, mask=missing))
    for j, name in enumerate(LABELS):
        table = table.append_column(f"{p}prob_{name}", pa.array(probs[:, j], mask=missing))
    review = missing | (confidence < cfg.min_confidence)
    if cfg.min_confidence > 0:
        table = table.append_column(f"{p}needs_review", pa.array(review, type=pa.bool_()))
    table = table.append_column(f"{p}label_error", pa.array(errors, type=pa.string()))
    stats = {
        "rows": n,
        "labels": dict(Counter(label for label in labels if label)),
        "errors": dict(Counter(e for e in errors if e)),
        "needs_review": int(review.sum()) if cfg.min_confidence > 0 else 0,
        "encoding": dict(chunk.stats),
    }
    return table, stats


def _load(cfg: LabelConfig):
    from kopretrain.inference.classifier import Classifier

    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    from kopretrain.inference.scoring import Scorer

    return Scorer(Classifier.load(cfg.model, revision=cfg.revision or None, max_length=cfg.max_length),
                  cfg.precision, cfg.batch_size)


STAGE = Stage("label", LabelConfig, own_execute=execute, own_status=status, output="file", pipeline_output="label/labeled.parquet")
