"""normalize: rewrite noisy Korean user text with small named rules, drop what is unusable.

Every rule (``kopretrain.text.rules``) is counted in ``stage.json`` (``stats.rules``: how many texts it
changed, with one before/after example each), and every dropped row goes to ``rejected.jsonl``
with its reason (datatrove's filter accounting). The original text is kept in ``text_raw``.

    kopretrain normalize --input runs/ingest --output runs/normalize --emoji map

The rules and filter themselves live in :mod:`kopretrain.text.normalizer` (training and
inference re-apply the same ``Normalizer``); this module is the stage: read, normalize, filter,
count, write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from kopretrain.runs.stage import Stage, StageConfig
from kopretrain.runs.records import StageError, StageRun
from kopretrain.text.normalizer import Normalizer, NormalizerConfig
from kopretrain.text.rules import PLACEHOLDER_TOKENS

__all__ = ["NormalizeConfig", "Normalizer", "run"]


@dataclass
class NormalizeConfig(NormalizerConfig, StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("input",)
    REQUIRED: ClassVar[tuple[str, ...]] = ("input",)
    WIRING: ClassVar[dict[str, str]] = {"input": "ingest"}
    SPEED_FIELDS: ClassVar[tuple[str, ...]] = ("batch_size", "num_workers")

    input: str = ""
    """Data stage output to normalize (a directory with train/dev/test.parquet, e.g. from ingest)."""
    batch_size: int = 10_000
    """Rows read and written per batch (memory stays bounded on large corpora)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1:
            raise ValueError(f"--batch-size: must be >= 1 (got {self.batch_size})")

    def behaviour(self) -> dict[str, str]:
        """The rules' digest: an upgrade whose rules treat any probe text differently reruns normalize."""
        from kopretrain.text.probes import rules_digest

        return {"rules": rules_digest(self)}


def run(cfg: NormalizeConfig, run: StageRun) -> None:
    import pyarrow as pa

    from kopretrain.data.files import ParquetSink, iter_batches, split_files, text_values
    from kopretrain.runs.records import REJECTED_FILE

    if not cfg.input:
        raise StageError("normalize: --input is required (a data stage output such as ingest's)")
    files = split_files(cfg.input)
    # A resumed run redoes everything (it takes seconds); start the reject log afresh.
    (run.dir / REJECTED_FILE).unlink(missing_ok=True)
    norm = Normalizer(cfg)
    rows_in = rows_out = chars_in = chars_out = 0
    splits: dict[str, dict[str, int]] = {}
    t0 = time.perf_counter()
    for split, path in files.items():
        schema = _output_schema(pa, path)
        split_in = split_out = 0
        with ParquetSink(run.dir / f"{split}.parquet", schema) as sink:
            for batch in iter_batches(path, cfg.batch_size):
                raw = text_values(batch, path)
                texts = norm.normalize_many(raw)
                keep = []
                ids = batch.column("id").to_pylist() if "id" in batch.schema.names else [None] * len(raw)
                sources = batch.column("source").to_pylist() if "source" in batch.schema.names else ids
                for i, text in enumerate(texts):
                    reason = norm.check(text)
                    keep.append(reason is None)
                    if reason:
                        run.reject(reason, id=ids[i], source=sources[i], text=raw[i])
                table = pa.Table.from_batches([batch]).filter(pa.array(keep, pa.bool_()))
                kept = [t for t, k in zip(texts, keep) if k]
                table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(kept, pa.string()))
                if "text_raw" not in batch.schema.names:
                    # normalize on already-normalized data keeps the first text_raw (the original).
                    kept_raw = [r for r, k in zip(raw, keep) if k]
                    table = table.append_column("text_raw", pa.array(kept_raw, pa.string()))
                sink.write_batch(table.select(schema.names))
                split_in += len(raw)
                split_out += len(kept)
                chars_in += sum(len(r) for r in raw if r)
                chars_out += sum(len(t) for t in kept)
        splits[split] = {"rows_in": split_in, "rows_out": split_out}
        rows_in += split_in
        rows_out += split_out
    seconds = time.perf_counter() - t0
    run.set_counts(rows_in=rows_in, rows_out=rows_out)
    changed = ", ".join(f"{name} {n:,}" for name, n in sorted(norm.counts.items(), key=lambda kv: -kv[1]) if n)
    print(f"[normalize] texts changed per rule: {changed or 'none'} (examples in stage.json)")
    run.stats.update({
        "rules": dict(norm.counts),
        "rule_examples": {k: {"before": b, "after": a} for k, (b, a) in norm.examples.items()},
        "splits": splits,
        "chars_in": chars_in,
        "chars_out": chars_out,
        "texts_per_second": round(rows_in / seconds, 1) if seconds > 0 else None,
        "placeholder_tokens": PLACEHOLDER_TOKENS,
    })


def _output_schema(pa, path):
    """Input schema with ``text`` as plain strings (a dictionary-encoded column too), without
    analyze's columns (offsets into the text this stage rewrites) and with ``text_raw`` (string)
    after the input's columns, unless present."""
    from kopretrain.data.files import MORPH_COLUMNS, read_schema

    schema = read_schema(path)
    fields = [pa.field("text", pa.string()) if f.name == "text" else f for f in schema if f.name not in MORPH_COLUMNS]
    # pandas metadata lists the columns: kept only while they are all there
    schema = pa.schema(fields, metadata=schema.metadata if len(fields) == len(schema) else None)
    if "text_raw" not in schema.names:
        schema = schema.append(pa.field("text_raw", pa.string()))
    return schema


STAGE = Stage("normalize", NormalizeConfig, run=run)
