"""The training corpus of a tokenizer: a data stage's texts exactly as inference will prepare them."""

from __future__ import annotations

from typing import Iterator

from kopretrain.text.pretokenize import JOINER, _protected_re, pretokenize_morphemes, segment_from_offsets


def corpus_batches(path, pretokenize: str, batch_size: int, reuse_offsets: bool, log=print,
                   blank_placeholders: bool = True) -> Iterator[list[str]]:
    """Batches of training texts exactly as :meth:`TextPrep.prepare` would give them at inference
    (the text is already normalized upstream), with placeholders blanked out: the trainer does
    not extract added tokens, so ``[URL]`` would otherwise teach it ``URL`` merges. Pruning an
    existing tokenizer keeps them (``blank_placeholders=False``): its pieces for ``[URL]`` are used."""
    from kopretrain.data.files import iter_batches

    use_offsets = pretokenize == "morpheme" and reuse_offsets and offsets_agree(path, log=log)
    cols = ["text", "morph_start", "morph_len"] if use_offsets else ["text"]
    blank = _protected_re()
    for batch in iter_batches(path, batch_size=batch_size, columns=cols):
        texts = [t for t in batch.column("text").to_pylist()]
        if pretokenize == "morpheme":
            if use_offsets:
                texts = segment_from_offsets(texts, batch.column("morph_start").to_pylist(),
                                             batch.column("morph_len").to_pylist())
            else:
                texts = pretokenize_morphemes(texts)
        texts = [t for t in texts if isinstance(t, str) and t.strip()]
        yield [blank.sub(" ", t) for t in texts] if blank_placeholders else texts


def offsets_agree(path, sample: int = 500, log=print) -> bool:
    """True when the stored analyze offsets segment the first ``sample`` rows exactly like
    :func:`pretokenize_morphemes` (same kiwipiepy version and options); otherwise rerun kiwi."""
    import pyarrow.parquet as pq

    names = pq.ParquetFile(path).schema_arrow.names
    if not {"morph_start", "morph_len"} <= set(names):
        log(f"[vocab] {path.name}: no analyze offsets; running kiwipiepy")
        return False
    other = _other_kiwi_options(path.parent)
    if other:  # a sample can miss the few rows they change (--no-z-coda: 1 in 463 sample reviews)
        log(f"[vocab] analyze ran kiwipiepy with {other}, inference segments with its defaults; running kiwipiepy")
        return False
    from kopretrain.data.files import iter_batches

    batch = next(iter_batches(path, batch_size=sample, columns=["text", "morph_start", "morph_len"]), None)
    if batch is None:
        return False
    texts = batch.column("text").to_pylist()
    stored = segment_from_offsets(texts, batch.column("morph_start").to_pylist(), batch.column("morph_len").to_pylist())
    fresh = pretokenize_morphemes([t or "" for t in texts])
    bad = sum(a != b for a, b in zip(stored, fresh))
    if bad:
        log(f"[vocab] analyze offsets differ from pretokenize_morphemes on {bad}/{len(texts)} sample rows "
            "(other kiwipiepy options or version); running kiwipiepy")
    return bad == 0


def _other_kiwi_options(folder) -> str:
    """The analyze options recorded beside the offsets that differ from what
    :func:`pretokenize_morphemes` uses at inference ("" when they agree or nothing is recorded)."""
    from kopretrain.runs.records import read_stage
    from kopretrain.text.pretokenize import _kiwi

    record = read_stage(folder) or {}
    if record.get("stage") != "analyze":
        return ""
    config, stats = record.get("config") or {}, record.get("stats") or {}
    wanted = {"z_coda": True, "split_complex": False}
    diff = [f"{k}={config[k]}" for k, v in wanted.items() if k in config and config[k] != v]
    used = stats.get("kiwi_model_type")
    if used and used != _kiwi().model_type:
        diff.append(f"model_type={used}")
    return ", ".join(diff)


def textprep_extra(tokenizer_model: str, pretokenize: str) -> dict:
    """What ``kopretrain.json`` records beside the normalizer: the tokenizer model and, in morpheme
    mode, the joiner and the kiwipiepy version that segmented the training text."""
    from importlib import metadata

    extra = {"tokenizer_model": tokenizer_model}
    if pretokenize == "morpheme":
        extra.update(joiner=JOINER, kiwipiepy=metadata.version("kiwipiepy"))
    return extra
