"""Short-text efficiency for pretraining: tokenize with word ids, then pack or length-bucket.

NSMC-like reviews average ~35 characters (~15-25 tokens); padding each to 128 spends most of the
compute on ``[PAD]``. Two remedies, both keeping per-token ``word_ids`` for whole-word/span masking:

- :func:`pack` concatenates texts into full ``max_length`` rows ``[CLS] a [SEP] b [SEP] c…[SEP]``
  (RoBERTa "full-sentences"; attention mixes reviews inside a row, which is standard for MLM and
  harmless since no objective relates neighbours). A text that does not fit is cut at the row
  boundary and continues in the next row, so only the last row of the corpus is padded.
- :func:`frame_texts` + :func:`bucket_batches` keep one text per row (``[CLS] text [SEP]``) and pad
  each batch to its longest row after sorting within mega-batches (transformers'
  ``LengthGroupedSampler``; ``train_sampling_strategy="group_by_length"`` with the ``length`` column).

:func:`pad_share` gives the fraction of ``[PAD]`` positions for ``naive`` (pad to max_length),
``bucket`` and ``pack``. Word ids: -1 on specials, unique within a row; a "word" is an eojeol
(whitespace span: ``"배송 빨랐어요"`` -> 2 words) or a kiwipiepy morpheme from the analyze stage
(``빠르/VA 었/EP 어요/EF`` -> 3 words for ``빨랐어요``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import numpy as np

WordLevel = Literal["none", "eojeol", "morpheme", "marked"]
_log = logging.getLogger(__name__)


def resolve_word_level(word_level: str, pretokenize: str) -> str:
    """The word level to give :func:`tokenize_texts` for text prepared with ``pretokenize``.

    Text pre-tokenized by ``kopretrain.text.pretokenize.pretokenize_morphemes`` carries its morpheme boundaries
    as ``￭`` marks inside eojeols (and the analyze offsets no longer fit it), so its morphemes are
    read from the marks: ``marked``.
    """
    if word_level == "morpheme" and pretokenize == "morpheme":
        return "marked"
    return word_level


def tokenize_texts(
    ds: "datasets.Dataset",
    tokenizer: Any,
    text_column: str = "text",
    word_level: WordLevel = "eojeol",
    num_proc: int = 1,
    prepare: Callable[[list[str]], list[str]] | None = None,
    batch_size: int = 1000,
) -> "datasets.Dataset":
    """Tokenize ``ds[text_column]`` (fast tokenizer, batched ``datasets.map``) without specials.

    Returns a dataset with ``input_ids`` and ``word_ids`` (dense per text, non-decreasing, one id
    per token). ``word_level``: ``eojeol`` (whitespace spans, via offset_mapping), ``morpheme``
    (the analyze stage's ``morph_start``/``morph_len``; a token belongs to the morpheme holding its
    first character; texts without analysis fall back to eojeols), ``marked`` (morpheme-pretokenized
    text: eojeols cut again at every ``￭`` joiner) or ``none`` (every token is its own word).
    ``prepare`` (e.g. ``TextPrep.prepare``) is applied to each batch of texts first.
    Empty or null texts give empty rows, which :func:`pack` and :func:`frame_texts` skip.
    """
    import datasets

    if word_level != "none" and not getattr(tokenizer, "is_fast", False):
        raise ValueError("word ids need a fast tokenizer (offset_mapping); load it with AutoTokenizer")
    if word_level == "morpheme" and "morph_start" not in ds.column_names:
        raise ValueError(
            "word_level='morpheme' needs the analyze stage's morph_start/morph_len columns "
            "(or, for morpheme-pretokenized text, use resolve_word_level -> 'marked')"
        )
    columns = [text_column] + (["morph_start", "morph_len"] if word_level == "morpheme" else [])

    def encode(batch: dict[str, list]) -> dict[str, list]:
        texts = [t if isinstance(t, str) else "" for t in batch[text_column]]
        morphs = (list(batch["morph_start"]), list(batch["morph_len"])) if word_level == "morpheme" else None
        if prepare is not None:
            prepared = prepare(texts)
            if morphs is not None:
                # Analyze offsets point into the stored text: a text that prepare() changed (it
                # should not: normalization is idempotent) falls back to eojeol words.
                changed = [i for i, (a, b) in enumerate(zip(texts, prepared)) if a != b]
                for i in changed:
                    morphs[0][i] = morphs[1][i] = None
                if changed:
                    _log.warning("%d texts changed by prepare(): eojeol words used for them", len(changed))
            texts = prepared
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=word_level != "none")
        if word_level == "none":
            return {"input_ids": enc["input_ids"], "word_ids": [list(range(len(ids))) for ids in enc["input_ids"]]}
        words = word_ids_from_offsets(texts, enc["offset_mapping"], morphs, joiner=word_level == "marked")
        return {"input_ids": enc["input_ids"], "word_ids": words}

    features = datasets.Features(
        {"input_ids": datasets.List(datasets.Value("int32")), "word_ids": datasets.List(datasets.Value("int32"))}
    )
    return ds.select_columns(columns).map(
        encode, batched=True, batch_size=batch_size, num_proc=num_proc if num_proc > 1 else None,
        remove_columns=columns, features=features, desc="tokenize" + (f" ({word_level} words)" if word_level not in (None, "none") else ""),
    )


def word_ids_from_offsets(
    texts: Sequence[str],
    offsets: Sequence[Sequence[tuple[int, int]]],
    morphs: tuple[Sequence[Sequence[int] | None], Sequence[Sequence[int] | None]] | None = None,
    joiner: bool = False,
) -> list[list[int]]:
    """Dense per-text word ids for tokens given their character ``offsets`` (vectorized per batch).

    Eojeol: the whitespace word holding the token's first character (``"배송 빨랐어요"``: tokens of
    ``빨랐어요`` -> word 1). Morpheme (``morphs = (starts, lens)`` per text): the last morpheme starting
    at or before that character; kiwipiepy gives ``했`` as ``하/VV``+``었/EP`` on the same character,
    so they become one word. A token outside every morpheme starts a word of its own. ``joiner``:
    a ``￭`` also starts a word (``재밌￭어요￭ㅋㅋ`` -> three words, whether the tokenizer keeps the
    mark on the next piece, as WordPiece does, or drops it, as the Unigram pre-tokenizer does).
    """
    import numpy as np

    if not texts:
        return []
    n_tok = np.fromiter((len(o) for o in offsets), dtype=np.int64, count=len(offsets))
    text_len = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    base = np.concatenate([[0], np.cumsum(text_len + 1)[:-1]])  # +1: a separator between texts
    starts = np.fromiter((s for o in offsets for s, _ in o), dtype=np.int64, count=int(n_tok.sum()))
    tok_text = np.repeat(np.arange(len(texts)), n_tok)
    gstart = starts + base[tok_text]  # token start in the joined text

    # Eojeol keys: number of word starts (non-space after space) up to the token's first character.
    codes = np.frombuffer("\n".join(texts).encode("utf-32-le"), dtype=np.uint32)
    space = np.isin(codes, _whitespace_codes())
    word_start = ~space & np.concatenate([[True], space[:-1]])
    if joiner:
        from kopretrain.text.pretokenize import JOINER

        word_start |= codes == ord(JOINER)
    # A token starting on a space (Unigram's lone "▁") belongs to the word after it, as in the
    # tokenizer's own word_ids().
    keys = (np.cumsum(word_start)[gstart] + space[gstart]).astype(np.float64) if len(gstart) else np.zeros(0)

    if morphs is not None:
        # Looked up at the token's first non-space character: a piece whose offsets start on the
        # space (a lone "▁", or "▁정" from a ``tokenizers`` Metaspace) belongs to the morpheme after it.
        nonspace = np.where(space, len(codes), np.arange(len(codes)))
        next_char = np.minimum.accumulate(nonspace[::-1])[::-1]
        at = np.minimum(next_char[gstart], base[tok_text] + text_len[tok_text]) if len(gstart) else gstart
        keys = _morpheme_keys(morphs, base, at, tok_text, keys)

    new_word = np.ones(len(keys), dtype=bool)
    new_word[1:] = (keys[1:] != keys[:-1]) | (tok_text[1:] != tok_text[:-1])
    dense = np.cumsum(new_word) - 1
    if len(dense):  # make ids start at 0 in every text
        first = np.concatenate([[0], np.cumsum(n_tok)[:-1]])
        dense -= np.repeat(dense[np.minimum(first, len(dense) - 1)], n_tok)
    bounds = np.cumsum(n_tok)[:-1]
    return [part.tolist() for part in np.split(dense, bounds)]


def _morpheme_keys(morphs, base, gstart, tok_text, eojeol_keys):
    """Word keys from morpheme offsets: the last morpheme starting at/before each token (rows
    without morphemes keep their eojeol keys). ``base``/``gstart``/``tok_text`` are as in
    :func:`word_ids_from_offsets`."""
    import numpy as np

    m_start, m_len = morphs
    has = np.array([s is not None and len(s) > 0 for s in m_start], dtype=bool)
    m_text = np.repeat(np.arange(len(m_start)), [len(s) if h else 0 for s, h in zip(m_start, has)])
    ms = np.fromiter((x for s, h in zip(m_start, has) if h for x in s), dtype=np.int64, count=len(m_text))
    ml = np.fromiter((x for s, h in zip(m_len, has) if h for x in s), dtype=np.int64, count=len(m_text))
    order = np.argsort(ms + base[m_text], kind="stable")
    gms, gme = (ms + base[m_text])[order], (ms + ml + base[m_text])[order]
    idx = np.searchsorted(gms, gstart, side="right") - 1  # last morpheme starting at/before
    if len(gms):
        reach = np.maximum.accumulate(gme)  # furthest morpheme end so far (morphemes overlap)
        inside = (idx >= 0) & (gstart < reach[np.maximum(idx, 0)])
    else:
        inside = np.zeros(len(gstart), dtype=bool)
    # .5 keys: a run of tokens after morpheme idx but outside it forms one extra word.
    return np.where(has[tok_text], np.where(inside, idx, idx + 0.5), eojeol_keys)


@functools.lru_cache(maxsize=1)
def _whitespace_codes() -> "np.ndarray":
    import numpy as np

    return np.array([c for c in range(0x3001) if chr(c).isspace()], dtype=np.uint32)


class Packer:
    """Streams texts into full rows ``[CLS] a [SEP] b [SEP] ...`` of exactly ``max_length``.

    A text that does not fit the current row is cut at the row end (the piece gets its own
    ``[SEP]``) and continues in the next row, so no token is dropped and only the final row — or
    a row whose last free slot could not hold a token plus ``[SEP]`` — has padding. Word ids are
    renumbered per row (the remainder of a cut word is a new word in the next row).
    """

    def __init__(self, cls_id: int, sep_id: int, pad_id: int, max_length: int):
        if max_length < 3:
            raise ValueError(f"max_length must be >= 3, got {max_length}")
        self.cls_id, self.sep_id, self.pad_id, self.max_length = cls_id, sep_id, pad_id, max_length
        self._reset()

    def _reset(self) -> None:
        self.ids: list[int] = [self.cls_id]
        self.words: list[int] = [-1]
        self.next_word = 0

    def _emit(self) -> dict[str, list[int]]:
        n, pad = len(self.ids), self.max_length - len(self.ids)
        row = {"input_ids": self.ids + [self.pad_id] * pad, "word_ids": self.words + [-1] * pad,
               "attention_mask": [1] * n + [0] * pad}
        self._reset()
        return row

    def add(self, ids: Sequence[int], words: Sequence[int]) -> Iterator[dict[str, list[int]]]:
        """Add one text (ids without specials, non-decreasing word ids); yield completed rows."""
        i = 0
        while i < len(ids):
            space = self.max_length - len(self.ids) - 1  # keep one slot for the piece's [SEP]
            if space <= 0:
                yield self._emit()
                continue
            j = min(len(ids), i + space)
            shift = self.next_word - words[i]
            self.ids.extend(ids[i:j])
            self.ids.append(self.sep_id)
            self.words.extend(w + shift for w in words[i:j])
            self.next_word = self.words[-1] + 1
            self.words.append(-1)
            i = j
            if len(self.ids) == self.max_length:
                yield self._emit()

    def finish(self) -> Iterator[dict[str, list[int]]]:
        if len(self.ids) > 1:
            yield self._emit()


def _packed_features():
    import datasets

    return datasets.Features(
        {
            "input_ids": datasets.List(datasets.Value("int32")),
            "word_ids": datasets.List(datasets.Value("int32")),
            "attention_mask": datasets.List(datasets.Value("int8")),
        }
    )


def _pack_rows(ds, cls_id, sep_id, pad_id, max_length, batch_size):
    packer = Packer(cls_id, sep_id, pad_id, max_length)
    for batch in ds.select_columns(["input_ids", "word_ids"]).iter(batch_size=batch_size):
        for ids, words in zip(batch["input_ids"], batch["word_ids"]):
            yield from packer.add(ids, words)
    yield from packer.finish()


def pack(
    ds: "datasets.Dataset", tokenizer: Any, max_length: int, batch_size: int = 1000, cache_dir: str | None = None
) -> "datasets.Dataset":
    """Pack :func:`tokenize_texts` output into fixed-length rows (see :class:`Packer`).

    Columns: ``input_ids``, ``word_ids``, ``attention_mask`` (1 on real tokens; only the last
    row is padded). The leftover of one read batch carries into the next, unlike run_mlm's
    ``group_texts``, which drops the remainder of every map batch. Written through
    ``Dataset.from_generator`` (Arrow on disk, cached by the input's fingerprint).
    """
    import datasets

    ids = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
    key = f"pack-v1|{ds._fingerprint}|{ids}|{max_length}"
    return datasets.Dataset.from_generator(
        _pack_rows,
        features=_packed_features(),
        gen_kwargs=dict(ds=ds, cls_id=ids[0], sep_id=ids[1], pad_id=ids[2], max_length=max_length, batch_size=batch_size),
        cache_dir=cache_dir,
        fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
    )


def frame_texts(ds: "datasets.Dataset", tokenizer: Any, max_length: int, num_proc: int = 1) -> "datasets.Dataset":
    """One text per row, ``[CLS] text [SEP]``; texts longer than ``max_length - 2`` are split into
    several rows (never dropped). Adds ``length`` for ``group_by_length`` sampling."""
    cls_id, sep_id, step = tokenizer.cls_token_id, tokenizer.sep_token_id, max_length - 2
    if step < 1:
        raise ValueError(f"max_length must be >= 3, got {max_length}")

    def frame(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"input_ids": [], "word_ids": [], "attention_mask": [], "length": []}
        for ids, words in zip(batch["input_ids"], batch["word_ids"]):
            for i in range(0, len(ids), step):
                piece, wpiece = ids[i : i + step], words[i : i + step]
                out["input_ids"].append([cls_id, *piece, sep_id])
                out["word_ids"].append([-1, *(w - wpiece[0] for w in wpiece), -1])
                out["attention_mask"].append([1] * (len(piece) + 2))
                out["length"].append(len(piece) + 2)
        return out

    import datasets

    features = _packed_features().copy()
    features["length"] = datasets.Value("int32")
    return ds.select_columns(["input_ids", "word_ids"]).map(
        frame, batched=True, remove_columns=["input_ids", "word_ids"], features=features,
        num_proc=num_proc if num_proc > 1 else None, desc="frame texts",
    )


def bucket_batches(lengths: Sequence[int], batch_size: int, seed: int = 0, mega: int = 50) -> list[list[int]]:
    """Batches of similar-length rows: shuffle, sort within mega-batches of ``mega * batch_size``.

    Same order as transformers' ``LengthGroupedSampler`` (the Trainer's ``group_by_length``), so
    :func:`pad_share` measures what training will see.
    """
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    order = get_length_grouped_indices(
        list(lengths), batch_size, mega_batch_mult=mega, generator=torch.Generator().manual_seed(seed)
    )
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_share(
    data: "datasets.Dataset | Sequence[int]",
    max_length: int,
    mode: Literal["naive", "bucket", "pack"],
    batch_size: int = 32,
    seed: int = 0,
    pad_to_multiple_of: int | None = None,
) -> float:
    """Fraction of positions that are ``[PAD]`` when training on ``data`` in ``mode``.

    ``data``: text lengths in tokens without specials, a :func:`tokenize_texts` dataset, or (for
    ``pack``) a :func:`pack` dataset, whose ``attention_mask`` is counted directly. ``naive`` pads
    every text (+2 specials, chunked at ``max_length``) to ``max_length``; ``bucket`` pads each
    :func:`bucket_batches` batch to its longest row (rounded up to ``pad_to_multiple_of``).
    """
    import numpy as np

    if not isinstance(data, (list, tuple, np.ndarray)) and "attention_mask" in data.column_names:
        if mode != "pack":
            raise ValueError("a packed dataset only has a 'pack' pad share; pass text lengths for other modes")
        mask = np.concatenate(data.with_format("numpy")["attention_mask"]) if len(data) else np.zeros(0)
        return float(1 - mask.mean()) if len(mask) else 0.0
    lengths = list(data) if isinstance(data, (list, tuple, np.ndarray)) else [len(x) for x in data["input_ids"]]
    step = max_length - 2
    rows = [min(step, n - i) + 2 for n in lengths for i in range(0, max(n, 1), step)]  # framed rows
    if mode == "naive":
        return 1 - sum(rows) / (len(rows) * max_length)
    if mode == "bucket":
        padded = 0
        for batch in bucket_batches(rows, batch_size, seed=seed):
            width = max(rows[i] for i in batch)
            if pad_to_multiple_of:
                width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
            padded += width * len(batch)
        return 1 - sum(rows) / padded
    if mode == "pack":
        packer, real, total = Packer(0, 1, 2, max_length), 0, 0
        for n in lengths:
            for row in packer.add([5] * n, list(range(n))):
                real, total = real + sum(row["attention_mask"]), total + max_length
        for row in packer.finish():
            real, total = real + sum(row["attention_mask"]), total + max_length
        return 1 - real / total if total else 0.0
    raise ValueError(f"mode: {mode!r} is not one of 'naive', 'bucket', 'pack'")
