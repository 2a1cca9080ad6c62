"""vocab: train a WordPiece/Unigram tokenizer on the corpus, or extend an existing model's.

Output: a directory ``transformers.AutoTokenizer.from_pretrained(dir)`` loads with no custom code
(``tokenizer.json`` + ``tokenizer_config.json``; special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]``),
``kopretrain.json`` (the :class:`~kopretrain.text.textprep.TextPrep` every later stage re-applies),
``stage.json`` (vocab size, corpus fingerprint, vocab hash) and ``tokenizer_report.{json,md}``.

Models
    ``wordpiece`` (KcBERT/KoELECTRA): cased, ``strip_accents=False``, ``clean_text``, a large
    ``limit_alphabet`` so rare Hangul syllables and jamo (``ㅋ``, ``ㅠ``) stay in the vocab, and
    ``[unused0..N]`` slots that :mod:`kopretrain.tokenizer.extend` later fills with domain words.
    ``unigram`` (KoBERT/SentencePiece): Metaspace ``▁`` marks the start of an eojeol. No NFKC:
    it would turn compatibility jamo (``ㅋㅋ``) into conjoining jamo.
    Normalizer placeholders (``[URL]``, ``[EMOJI]``, ...) are single, non-special tokens
    (``decode(..., skip_special_tokens=True)`` keeps them).

Pre-tokenization (``pretokenize``)
    ``eojeol``: the tokenizer sees the normalized text (WordPiece splits at whitespace and
    punctuation; Unigram at whitespace).
    ``morpheme``: :func:`pretokenize_morphemes` inserts the joiner ``￭`` (U+FFED, OpenNMT's
    joiner mark) at kiwipiepy morpheme boundaries *inside* an eojeol; whitespace still separates
    eojeols. The tokenizer splits at every ``￭``, so no token crosses a morpheme boundary, and the
    two boundaries stay distinguishable in the tokens::

        "재밌어요ㅋㅋ 최고"  ->  "재밌￭어요￭ㅋㅋ 최고"
        wordpiece: 재밌 ￭어요 ￭ㅋㅋ 최고      (￭x = next morpheme of the same eojeol; ## = inside a morpheme)

    WordPiece keeps the joiner on the next piece (without it a morpheme start would look like an
    eojeol start). Unigram with morphemes is refused: tokenizers' Unigram trainer never learns a
    piece that is always a whole word, and each morpheme is one here (a near character-level
    vocabulary; BENCHMARKS.md). A Unigram tokenizer made so by an earlier version (it drops the
    joiner: ``▁재밌 어요 ㅋㅋ ▁최고``) still loads, extends and prunes.
    ``word_ids()`` of the fast tokenizer number morphemes. Both decoders remove the joiner, so
    ``decode`` gives ``"재밌어요ㅋㅋ 최고"`` back. The tokenizer itself cannot run kiwipiepy:
    ``TextPrep.prepare`` (pretrain, finetune, label, the released model's loader) applies
    :func:`pretokenize_morphemes` from ``kopretrain.json``; raw text fed to a morpheme-mode
    tokenizer is silently tokenized differently from training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from kopretrain.runs.stage import Stage, StageConfig
from kopretrain.runs.records import StageError, StageRun
from kopretrain.text.pretokenize import placeholder_tokens
from kopretrain.tokenizer.specials import SLANG, SPECIAL_TOKENS


@dataclass
class VocabConfig(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("input", "extend_from", "prune_from")
    REQUIRED: ClassVar[tuple[str, ...]] = ("input",)
    CONTENT_FIELDS: ClassVar[tuple[str, ...]] = ("compare_with",)  # another tokenizer folder changed: a new report
    # Changing these rewrites tokenizer_report.* in a finished output: the vocab is not retrained
    # (WordPiece/Unigram training is not byte-deterministic, so a retrain would make pretrain stale).
    REPORT_FIELDS: ClassVar[tuple[str, ...]] = ("compare_with", "report_texts", "slang")
    REPORT_FILES: ClassVar[tuple[str, ...]] = ("tokenizer_report.json", "tokenizer_report.md")
    MOVED_FIELDS: ClassVar[tuple[str, ...]] = REPORT_FIELDS  # in the key until 0.1.0 of 2026-12-07
    SPEED_FIELDS: ClassVar[tuple[str, ...]] = ("batch_size",)  # rows per Parquet batch: the counts are the same
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ("prune_from",)
    WIRING: ClassVar[dict[str, str]] = {"input": "analyze"}

    input: str = ""
    """Data stage output (analyze, or normalize for eojeol mode); trains on its train split, reports on dev."""
    model: Literal["wordpiece", "unigram"] = "wordpiece"
    """wordpiece (KcBERT/KoELECTRA style, ## continuations) or unigram (KoBERT/SentencePiece style, ▁ word starts)."""
    pretokenize: Literal["eojeol", "morpheme"] = "eojeol"
    """eojeol: whitespace/punctuation words; morpheme: subwords never cross a kiwipiepy morpheme boundary."""
    vocab_size: int = 32000
    """Vocabulary size including special tokens, placeholders and [unused*] slots."""
    min_frequency: int = 2
    """WordPiece: minimum pair frequency for a merge."""
    limit_alphabet: int = 6000
    """WordPiece: keep at most this many characters (most frequent first); rarer ones become [UNK]."""
    reserved_unused: int = 100
    """[unused0..N-1] slots kept in the vocab for later domain words (--extend-from fills them first)."""
    max_piece_length: int = 16
    """Unigram: longest piece in characters."""
    model_max_length: int = 512
    """Recorded as the tokenizer's model_max_length (truncation=True cuts there); match the model's positions."""
    reuse_analyze_offsets: bool = True
    """Morpheme mode: reuse the analyze stage's kiwipiepy offsets when a sample check shows they segment exactly like pretokenize_morphemes (else rerun kiwipiepy)."""
    prune_from: str = ""
    """Instead of training: prune this checkpoint (directory or Hub id with a Unigram/WordPiece tokenizer) to
    the pieces the train split needs, plus special tokens, every Hangul piece and single ASCII characters;
    writes the smaller model and tokenizer (hidden states and tokenization of the corpus unchanged)."""
    extend_from: str = ""
    """Instead of training: extend this checkpoint (directory or Hub id, BERT/ELECTRA with a fast WordPiece/Unigram tokenizer)."""
    revision: str = ""
    """Hub revision of extend_from/prune_from (pin it: e.g. beomi/KcELECTRA-base needs revision v2021)."""
    max_new_tokens: int = 1000
    """Extension: add at most this many entries (unused slots first, then new embedding rows)."""
    min_count: int = 20
    """Extension: a candidate must occur at least this often in the train split."""
    min_pieces: int = 3
    """Extension: a candidate must be split into at least this many pieces by the old tokenizer (or contain [UNK])."""
    add_words: list[str] = field(default_factory=list)
    """Extension: words to add whatever their counts (skipped, with the reason recorded, if already single tokens)."""
    compare_with: list[str] = field(default_factory=list)
    """Tokenizer/model directories (or Hub ids) to compare against in tokenizer_report.md."""
    report_texts: int = 20000
    """Held-out (dev) reviews used by the report (0: no report)."""
    slang: list[str] = field(default_factory=lambda: list(SLANG))
    """Strings whose splits the report shows."""
    batch_size: int = 10000
    """Rows read per Parquet batch."""

    def __post_init__(self) -> None:
        fixed = len(SPECIAL_TOKENS) + len(placeholder_tokens()) + self.reserved_unused
        if not (self.extend_from or self.prune_from) and self.vocab_size <= fixed:
            raise ValueError(f"--vocab-size {self.vocab_size} leaves no room: {fixed} ids are special tokens, "
                             f"placeholders and --reserved-unused slots")
        for name in ("min_frequency", "limit_alphabet", "max_piece_length", "model_max_length", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: must be >= 1")
        for name in ("reserved_unused", "max_new_tokens", "min_count", "report_texts"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')}: must be >= 0")
        if self.min_pieces < 2:
            raise ValueError("--min-pieces: must be >= 2 (a word the old tokenizer keeps whole needs no entry)")
        if self.revision and not (self.extend_from or self.prune_from):
            raise ValueError("--revision only applies with --extend-from or --prune-from")
        if self.extend_from and self.prune_from:
            raise ValueError("--extend-from and --prune-from: choose one (prune first, then extend the pruned output)")
        self._check_unused_options()

    def _check_unused_options(self) -> None:
        """Options that would do nothing here are errors, not silently ignored."""
        defaults = VocabConfig.__dataclass_fields__
        changed = {n for n in ("max_new_tokens", "min_count", "min_pieces", "add_words", "model")
                   if getattr(self, n) != (defaults[n].default_factory() if callable(defaults[n].default_factory)
                                           else defaults[n].default)}
        extension = sorted(changed - {"model"})
        if extension and not self.extend_from:
            raise ValueError(f"--{extension[0].replace('_', '-')} only applies with --extend-from")
        if "model" in changed and (self.extend_from or self.prune_from):
            raise ValueError("--model: with --extend-from/--prune-from the checkpoint's tokenizer decides it; drop --model")
        training = [n for n in ("vocab_size", "min_frequency", "limit_alphabet", "reserved_unused", "max_piece_length",
                                "model_max_length") if getattr(self, n) != defaults[n].default]
        if training and (self.extend_from or self.prune_from):  # they were ignored (the checkpoint's own stay)
            raise ValueError(f"--{training[0].replace('_', '-')}: only when training a vocabulary; with --extend-from/"
                             "--prune-from the checkpoint's tokenizer decides it")
        other = {"wordpiece": ("max_piece_length",), "unigram": ("min_frequency", "limit_alphabet")}[self.model]
        if given := [n for n in other if n in training]:
            raise ValueError(f"--{given[0].replace('_', '-')}: does nothing with --model {self.model}")
        if self.model == "unigram" and self.pretokenize == "morpheme" and not (self.extend_from or self.prune_from):
            # tokenizers' Unigram trainer seeds only substrings seen inside longer words, and a morpheme is
            # its own word here: the vocabulary came out nearly character by character (huggingface/tokenizers#1027)
            raise ValueError("--model unigram --pretokenize morpheme: the tokenizers Unigram trainer cannot learn "
                             "whole morphemes (it trains a near character-level vocabulary); use --model wordpiece "
                             "for morpheme-aware pieces, or unigram with --pretokenize eojeol")



# ------------------------------------------------------------------ stage


def run(cfg: VocabConfig, run: StageRun) -> None:
    from kopretrain.runs.chain import upstream
    from kopretrain.text import textprep
    from kopretrain.data.files import count_rows, split_files

    files = split_files(cfg.input)
    if "train" not in files:
        raise StageError(f"{cfg.input}: no train.parquet (the vocab is trained on the train split)")
    _check_compare_with(cfg)  # before training: a typo must not cost the training run
    train = files["train"]
    # required: a vocabulary trained without its rules would tokenize raw text unnormalized, silently
    normalize = upstream(cfg.input, "normalize", required=True)
    if normalize is not None:  # the rules only: no local paths or worker counts in a released kopretrain.json
        from kopretrain.inference.classifier import recorded_rules

        normalize = recorded_rules(normalize)
    rows_in = count_rows(train)
    if cfg.prune_from:
        from kopretrain.tokenizer.prune import prune

        stats = prune(cfg, run.dir, train, log=run.log, normalize=normalize)
    elif cfg.extend_from:
        from kopretrain.tokenizer.extend import extend

        stats = extend(cfg, run.dir, train, normalize=normalize, log=run.log)
    else:
        from kopretrain.tokenizer.corpus import textprep_extra
        from kopretrain.tokenizer.embed import embed_and_record
        from kopretrain.tokenizer.train import train_tokenizer

        stats = train_tokenizer(cfg, run.dir, train, log=run.log)
        prep = textprep.TextPrep(normalize=normalize, pretokenize=cfg.pretokenize,
                                 extra=textprep_extra(cfg.model, cfg.pretokenize))
        embed_and_record(run.dir, prep)  # every later stage, and plain transformers, normalize raw text alike
        prep.save(run.dir)
    run.stats.update(stats, corpus_fingerprint=run.inputs["input"])
    rows_out = stats["texts"]
    run.set_counts(rows_in, rows_out, {"empty_text": rows_in - rows_out})
    _write_report(cfg, run, files, stats, source=run.dir)


def _refresh_report(cfg: VocabConfig, run: StageRun) -> None:
    """Only report options changed: the report again, from the finished output's tokenizer."""
    from kopretrain.data.files import split_files

    _check_compare_with(cfg)
    stats = run.stats
    _write_report(cfg, run, split_files(cfg.input), stats, source=run.output)
    if not cfg.report_texts:
        stats.pop("report", None)


def _check_compare_with(cfg: VocabConfig) -> None:
    from kopretrain.tokenizer import report as tokreport

    for other in cfg.compare_with:
        try:
            tokreport.load(other)
        except Exception as exc:  # noqa: BLE001 - a missing folder, no tokenizer in it, no such Hub id
            raise StageError(f"--compare-with {other}: no tokenizer could be loaded from it "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None


def _held_out(cfg: VocabConfig, files: dict) -> tuple[str | None, list[str]]:
    """The first of dev/test with non-empty text, and up to ``report_texts`` of its texts."""
    from kopretrain.data.files import iter_batches

    for split in ("dev", "test"):
        texts: list[str] = []
        for batch in iter_batches(files[split], batch_size=cfg.batch_size, columns=["text"]) if split in files else ():
            texts += [t for t in batch.column("text").to_pylist() if isinstance(t, str) and t.strip()]
            if len(texts) >= cfg.report_texts:
                break
        if texts:
            return split, texts
    return None, []


def _write_report(cfg: VocabConfig, run: StageRun, files: dict, stats: dict, source: Path) -> None:
    """tokenizer_report.{json,md} into ``run.dir`` for the tokenizer in ``source``."""
    if not cfg.report_texts:
        return
    split, texts = _held_out(cfg, files)
    if split is None:  # a tiny corpus: the vocabulary is still good, the report has nothing to measure
        run.log("[vocab] no dev/test text: tokenizer report skipped")
        run.stats["report"] = "skipped: no non-empty dev/test text"
        return
    from kopretrain.tokenizer import report as tokreport
    label = f"this run ({stats['model']}/{stats['pretokenize']})"
    dirs = {label: str(source)}
    base = cfg.extend_from or cfg.prune_from
    if base:
        dirs[f"base {base}"] = base
    for other in cfg.compare_with:
        dirs[other] = other
    report = tokreport.compare(dirs, texts[: cfg.report_texts], slang=cfg.slang,
                               revisions={f"base {base}": cfg.revision or None})
    report["held_out"] = {"split": split, "texts": len(texts[: cfg.report_texts])}
    tokreport.save(report, run.dir)
    run.stats["report"] = {k: {m: v[m] for m in ("fertility", "unk_rate")} for k, v in report["tokenizers"].items()}


STAGE = Stage("vocab", VocabConfig, run=run, report=_refresh_report)
