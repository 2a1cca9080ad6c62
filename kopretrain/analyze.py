"""analyze: kiwipiepy morpheme analysis of every text, stored beside it.

Adds ``morph_form`` (list<str>), ``morph_tag`` (list<str>), ``morph_start`` and ``morph_len``
(list<int32>, code-point offsets into ``text``) to each split. One ``Kiwi(num_workers=N)`` per
process; ``kiwi.tokenize(iterable)`` reads the texts lazily and analyzes them in input order on N
threads, so this stage streams a split through kiwi while writing finished rows in chunks.

    kopretrain analyze --input runs/normalize --output runs/analyze --num-workers 2

Offsets: for surface-preserving tags (NNG, NNP, SL, SN, SW, W_*, placeholders...)
``text[start:start+len] == form``; conjugated forms point at the span they came from
(``빨랐`` -> ``빠르``/VA at 3 len 1, ``었``/EP at 4 len 1), and a Z_CODA jamo shares its syllable.

Long inputs, measured with kiwipiepy 0.24.1: a 5,000- or 10,000-digit run is one SN token in ~2 ms
(the hang other projects work around by stripping 20+ digit runs does not occur), a 100k-character
spaced text takes ~0.3 s, and 100k characters of unbroken Hangul ~7 s (kiwi cuts unknown runs into
1,022-character NNG pieces). normalize's ``max_chars`` (5,000) bounds the cost per text.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar, Literal

from kopretrain.data.files import MORPH_COLUMNS  # noqa: F401 - re-exported: analyze's own columns
from kopretrain.runs.stage import Stage, StageConfig
from kopretrain.runs.records import StageError, StageRun


@dataclass
class AnalyzeConfig(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("input",)
    REQUIRED: ClassVar[tuple[str, ...]] = ("input",)
    WIRING: ClassVar[dict[str, str]] = {"input": "normalize"}
    SPEED_FIELDS: ClassVar[tuple[str, ...]] = ("num_workers",)

    input: str = ""
    """Data stage output to analyze (normally normalize's: offsets point into its `text`)."""
    num_workers: int = 0
    """kiwipiepy analysis threads; 0 = all cores of the machine (results do not depend on it)."""
    model_type: Literal["none", "largest", "cong", "cong-global"] = "none"
    """kiwipiepy language model: none = the fastest installed (cong), largest = cong-global (slower)."""
    z_coda: bool = True
    """Split a coda glued to an ending as its own Z_CODA morpheme (빨랐어욬 -> 어요/EF + ᆿ/Z_CODA)."""
    split_complex: bool = False
    """Split morphemes that can be split further (고마움 -> 고맙/VA-I + 음/ETN)."""
    chunk_rows: int = 5_000
    """Rows per Parquet row group written (memory stays bounded on large corpora)."""

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ValueError(f"--num-workers: must be >= 0 (0 = all cores), got {self.num_workers}")
        if self.chunk_rows < 1:
            raise ValueError(f"--chunk-rows: must be >= 1, got {self.chunk_rows}")

    def behaviour(self) -> dict[str, str]:
        """The versions of kiwipiepy and of its model package (released apart): either changes the
        analyses, so an upgrade reruns analyze (and the stages after it only if they changed)."""
        from importlib import metadata

        out = {"kiwipiepy": metadata.version("kiwipiepy")}
        try:
            out["kiwipiepy_model"] = metadata.version("kiwipiepy_model")
        except metadata.PackageNotFoundError:  # a model installed by other means
            pass
        return out


def morph_schema(pa):
    return [
        pa.field("morph_form", pa.list_(pa.string())),
        pa.field("morph_tag", pa.list_(pa.string())),
        pa.field("morph_start", pa.list_(pa.int32())),
        pa.field("morph_len", pa.list_(pa.int32())),
    ]


def analyze_texts(kiwi, texts, cfg: AnalyzeConfig | None = None):
    """Yield ``(forms, tags, starts, lens)`` per text, in order (lazy, multi-threaded).

    ``next(analyze_texts(kiwi, ["[URL] 최고"]))`` ->
    ``(["[URL]", "최고"], ["W_URL", "NNG"], [0, 6], [5, 2])``. Empty or missing text gives four
    empty lists.
    """
    from kopretrain.text.kiwi import placeholder_tags

    cfg = cfg or AnalyzeConfig()
    results = kiwi.tokenize((t or "" for t in texts), z_coda=cfg.z_coda, split_complex=cfg.split_complex)
    for tokens in results:
        if not tokens:
            yield [], [], [], []
            continue
        # One pass over the tokens, then a C-level transpose: ~2.5x faster than four list
        # comprehensions, and this thread's time is taken from kiwi's workers on a small machine.
        forms, tags, starts, lens = zip(*[(t.form, t.tag, t.start, t.len) for t in tokens])
        yield list(forms), list(placeholder_tags(forms, tags)), list(starts), list(lens)


def run(cfg: AnalyzeConfig, run: StageRun) -> None:
    from kopretrain.data.files import count_rows, split_files
    from kopretrain.text.kiwi import get_kiwi, resolve_workers

    if not cfg.input:
        raise StageError("analyze: --input is required (a data stage output such as normalize's)")
    files = split_files(cfg.input)
    t_load = time.perf_counter()
    kiwi = get_kiwi(cfg.num_workers, cfg.model_type)
    load_seconds = time.perf_counter() - t_load
    total = sum(count_rows(p) for p in files.values())
    tags: Counter[str] = Counter()
    texts_done = morphs = chars = 0
    seconds = 0.0
    bar = _progress(total)
    for split, path in files.items():
        out = run.dir / f"{split}.parquet"
        done_file = run.dir / f".{split}.stats.json"
        if run.resumed and out.is_file() and done_file.is_file():
            # A finished split of an interrupted run: keep it and its numbers.
            part = json.loads(done_file.read_text())
        else:
            part = _analyze_split(cfg, kiwi, path, out, bar)
            done_file.write_text(json.dumps(part, ensure_ascii=False))
        texts_done += part["texts"]
        morphs += part["morphemes"]
        chars += part["chars"]
        seconds += part["seconds"]
        tags.update(part["tags"])
    bar.close()
    for split in files:
        (run.dir / f".{split}.stats.json").unlink(missing_ok=True)
    run.set_counts(rows_in=total, rows_out=texts_done)
    run.stats.update({
        "texts_per_second": round(texts_done / seconds, 1) if seconds else None,
        "chars_per_second": round(chars / seconds, 1) if seconds else None,
        "morphemes_per_text": round(morphs / texts_done, 3) if texts_done else 0.0,
        "morphemes": morphs,
        "tags_top20": dict(tags.most_common(20)),
        "num_workers": resolve_workers(cfg.num_workers),
        "kiwi_load_seconds": round(load_seconds, 2),
        "kiwi_model_type": kiwi.model_type,
    })


def _analyze_split(cfg: AnalyzeConfig, kiwi, path, out, bar) -> dict:
    """Stream one split through kiwi; write to ``<split>.parquet.tmp`` then rename (so a resumed
    run can trust any ``<split>.parquet`` it finds)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from kopretrain.data.files import ParquetSink, iter_batches, read_schema, text_values

    schema = read_schema(path)
    base = [f for f in schema if f.name not in MORPH_COLUMNS]  # re-analysis replaces old columns
    schema = pa.schema(base + morph_schema(pa))
    pending = []  # input batches whose texts kiwi has read but whose rows are not yet written

    def texts():
        for batch in iter_batches(path, cfg.chunk_rows, columns=None):
            values = text_values(batch, path)
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            yield from values

    tags: Counter[str] = Counter()
    n = morphs = chars = 0
    cols: tuple[list, list, list, list] = ([], [], [], [])
    tmp = out.with_name(out.name + ".tmp")
    t0 = time.perf_counter()
    with ParquetSink(tmp, schema) as sink:
        for forms, tag, start, length in analyze_texts(kiwi, texts(), cfg):
            for col, value in zip(cols, (forms, tag, start, length)):
                col.append(value)
            if len(cols[0]) == pending[0].num_rows:
                batch = pending.pop(0)
                chars += sum(len(t) for t in batch.column("text").to_pylist() if t)
                table = pa.Table.from_batches([batch]).select([f.name for f in base])
                for field, col in zip(morph_schema(pa), cols):
                    table = table.append_column(field, pa.array(col, field.type))
                # Tag counts in Arrow (C++), not per text in Python: the main thread's CPU time
                # is taken from kiwi's worker threads on a small machine.
                flat = table.column("morph_tag").combine_chunks().flatten()
                morphs += len(flat)
                for item in pc.value_counts(flat).to_pylist():
                    tags[item["values"]] += item["counts"]
                sink.write_batch(table)
                n += table.num_rows
                bar.update(table.num_rows)
                cols = ([], [], [], [])
    seconds = time.perf_counter() - t0
    os.replace(tmp, out)
    return {"texts": n, "morphemes": morphs, "chars": chars, "seconds": seconds, "tags": dict(tags)}


def _progress(total: int):
    """tqdm bar in texts/s; without a terminal (a redirected log) a line every 30 s."""
    import sys

    from tqdm.auto import tqdm

    interval = 0.5 if sys.stderr.isatty() else 30.0
    return tqdm(total=total, unit="text", unit_scale=True, desc="analyze", smoothing=0.1, mininterval=interval)


STAGE = Stage("analyze", AnalyzeConfig, run=run)
