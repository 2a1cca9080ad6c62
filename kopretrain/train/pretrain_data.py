"""Training and evaluation data for the pretrain stage, built once and cached in the run directory.

``text`` of a data stage output -> TextPrep (so training sees what inference will) ->
:func:`kopretrain.train.packing.tokenize_texts` -> packed rows (``pack``) or one review per row for
length-bucketed batches (``bucket``). Evaluation always uses one review per row, masked once with a
fixed seed (:func:`kopretrain.train.masking.fixed_eval_features`), so eval perplexities of runs with
different packing or batch settings are computed on identical inputs.

The result is saved under ``<output>.partial/data``: a resumed run (or the other DDP ranks, which
wait for rank 0) loads it instead of tokenizing the corpus again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA_DIR = "data"


@dataclass
class PretrainData:
    train: Any
    eval: Any
    stats: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)


def read_texts(path: Path, columns: list[str], limit: int, seed: int) -> tuple[Any, dict[str, int]]:
    """Non-empty rows of one split (a seeded random subset of ``limit`` rows when limit > 0).

    Returns the table and what was left out (``empty_text``, ``over_max_train_texts``), so the stage
    can account for every input row."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    missing = [c for c in columns if c not in pq.read_schema(path).names]
    if missing:  # morph_start/morph_len: --word-level morpheme on a normalize output
        from kopretrain.runs.records import StageError

        raise StageError(f"{path}: no {', '.join(missing)} column" + (" (--word-level morpheme needs the analyze "
                         "stage's output as --input)" if "morph_start" in missing else ""))
    table = pq.read_table(path, columns=columns)
    n_in = table.num_rows
    text = pc.utf8_trim_whitespace(pc.fill_null(table["text"], ""))
    table = table.filter(pc.greater(pc.utf8_length(text), 0))
    dropped = {"empty_text": n_in - table.num_rows}
    if 0 < limit < table.num_rows:
        keep = np.sort(np.random.default_rng(seed).permutation(table.num_rows)[:limit])
        dropped["over_max_train_texts"] = table.num_rows - limit
        table = table.take(keep)
    return table, {"rows_in": n_in, **dropped}


def text_prep_for(prep, input_dir: str):
    """The TextPrep to apply to ``text``: skip normalization already done with identical rules.

    Normalization is idempotent, so this only saves time (it is the slow part on a full corpus)."""
    from kopretrain.inference.classifier import normalize_fields
    from kopretrain.runs.chain import upstream
    from kopretrain.text.textprep import TextPrep

    record = upstream(input_dir, "normalize")
    # the rules only: worker counts and batch sizes do not change the text (they never matched before)
    done = record and normalize_fields(record["config"])
    if prep.normalize is not None and done == normalize_fields(prep.normalize):
        return TextPrep(normalize=None, pretokenize=prep.pretokenize, extra=prep.extra)
    return prep


def build(cfg, tokenizer, prep, eval_collator, cache: Path) -> PretrainData:
    """Tokenize, pack or frame, and pre-mask the eval set; see the module docstring."""
    import datasets

    from kopretrain.data import files as stage_data
    from kopretrain.train import masking, packing

    files = stage_data.split_files(cfg.input)
    if "train" not in files:
        raise FileNotFoundError(f"{cfg.input}: no train.parquet (pretraining reads the train split)")
    word_level = needed_word_level(cfg, prep.pretokenize)
    columns = ["text"] + (["morph_start", "morph_len"] if word_level == "morpheme" else [])
    prep = text_prep_for(prep, cfg.input)
    prepare = prep.prepare if (prep.normalize is not None or prep.pretokenize != "eojeol") else None

    table, counts = read_texts(files["train"], columns, cfg.max_train_texts, cfg.seed)
    if table.num_rows < 2:  # an empty table crashed in datasets with "Column 'input_ids' doesn't exist"
        from kopretrain.runs.records import StageError

        raise StageError(f"{files['train']}: {table.num_rows} non-empty text(s); pretraining needs more")
    eval_table, eval_source = None, "dev"
    if "dev" in files:
        eval_table, _ = read_texts(files["dev"], columns, cfg.max_eval_texts, cfg.seed)
    if eval_table is None or eval_table.num_rows == 0:
        # no dev split, or an empty one (ingest --dev-fraction 0): hold out the tail of a seeded
        # shuffle of train; those rows are accounted as held out
        eval_source = f"{{}} train rows ({'an empty' if eval_table is not None else 'no'} dev split)"
        n_eval = max(1, min(cfg.max_eval_texts, table.num_rows // 10))
        table = table.take(_permutation(table.num_rows, cfg.seed))
        eval_table, table = table.slice(table.num_rows - n_eval), table.slice(0, table.num_rows - n_eval)
        counts["held_out_for_eval"] = n_eval
        eval_source = eval_source.format(n_eval)

    def tokenize(tbl):
        return packing.tokenize_texts(datasets.Dataset(tbl), tokenizer, "text", word_level, num_proc=cfg.num_proc,
                                      prepare=prepare)

    tokens = tokenize(table)
    lengths = [len(x) for x in tokens["input_ids"]]
    if cfg.packing == "pack":
        train = packing.pack(tokens, tokenizer, cfg.max_length, cache_dir=str(cache / "hf"))
        share = packing.pad_share(train, cfg.max_length, "pack")
    else:
        train = packing.frame_texts(tokens, tokenizer, cfg.max_length, num_proc=cfg.num_proc)
        from kopretrain.train.device import pad_multiple

        share = packing.pad_share(lengths, cfg.max_length, "bucket", batch_size=cfg.batch_size, seed=cfg.seed,
                                  pad_to_multiple_of=pad_multiple())
    eval_rows = packing.frame_texts(tokenize(eval_table), tokenizer, cfg.max_length)
    eval_ds = masking.fixed_eval_features(eval_rows, eval_collator, seed=cfg.seed)
    stats = {
        "train_texts": table.num_rows, "train_tokens": int(sum(lengths)) + 2 * table.num_rows,
        "train_rows": len(train), "packing": cfg.packing, "word_level": word_level,
        "pad_share": round(share, 4),
        "pad_share_naive": round(packing.pad_share(lengths, cfg.max_length, "naive"), 4),
        "eval_texts": eval_table.num_rows, "eval_source": eval_source, "text_prep_applied": prepare is not None,
        "unk_share": unk_share(tokens["input_ids"], tokenizer),
    }
    counts["rows_out"] = table.num_rows
    return PretrainData(train, eval_ds, stats, counts)


UNK_WARN = 0.05
"""Share of [UNK] tokens above which pretrain warns (a checkpoint's tokenizer that does not know
the corpus's script: [UNK] is special, never masked, so the run learns from a fraction of the text)."""


def unk_share(input_ids, tokenizer) -> float | None:
    """Share of the corpus's tokens that are the tokenizer's unknown token; warns above :data:`UNK_WARN`."""
    unk = tokenizer.unk_token_id
    total = sum(len(ids) for ids in input_ids)
    if unk is None or not total:
        return None
    share = sum(ids.count(unk) for ids in input_ids) / total
    if share > UNK_WARN:
        print(f"[pretrain] warning: {share:.0%} of the corpus's tokens are {tokenizer.unk_token}: the tokenizer does "
              "not cover this text (masking skips them); check --tokenizer / --checkpoint")
    return round(share, 4)


def needed_word_level(cfg, pretokenize: str) -> str:
    """Word ids are only computed when the objective masks whole words (saves the offset pass)."""
    from kopretrain.train import packing

    if cfg.objective == "wwm" or (cfg.objective == "span" and cfg.masking.span_unit == "word"):
        return packing.resolve_word_level(cfg.word_level, pretokenize)
    return "none"


def _permutation(n: int, seed: int):
    import numpy as np

    return np.random.default_rng(seed).permutation(n)


def load_or_build(cfg, tokenizer, prep, eval_collator, run_dir: Path, args) -> PretrainData:
    """:func:`build` on the main process (once per run, cached); other ranks wait, then load the cache."""
    import datasets

    cache = Path(run_dir) / DATA_DIR
    marker = cache / "meta.json"
    with args.main_process_first(desc="pretrain data"):
        if not marker.is_file():
            if args.process_index == 0:
                built = build(cfg, tokenizer, prep, eval_collator, cache)
                built.train.save_to_disk(str(cache / "train"))
                built.eval.save_to_disk(str(cache / "eval"))
                marker.write_text(json.dumps({"stats": built.stats, "counts": built.counts}))
        meta = json.loads(marker.read_text())
        return PretrainData(datasets.load_from_disk(str(cache / "train")), datasets.load_from_disk(str(cache / "eval")),
                            meta["stats"], meta["counts"])
