"""Put a model's text normalization into its saved tokenizer, so plain ``transformers`` reproduces it.

kopretrain normalizes text in Python (:class:`~kopretrain.text.textprep.TextPrep`) before
tokenizing; ``pipeline("text-classification", model=DIR)`` does not. :func:`embed_normalizer`
prepends the same rules (:mod:`kopretrain.text.tokenizer_rules`) to ``DIR/tokenizer.json``'s
normalizer, keeping the tokenizer's own normalizer after them, and returns what it did for
``kopretrain.json``::

    record = embed_normalizer("runs/x/finetune", prep)
    # {"applied": ["nfc", ..., "repeat"], "not_applied": {}, "version": 1}

kopretrain itself still normalizes in Python first, so its text is normalized twice; the rules are
idempotent, so the ids do not change (benchmarks/bench_tokenizer_normalizer.py measures it on NSMC).

Three more edits make the saved folder behave the same for raw and normalized text:

- non-special added tokens (the ``[URL]``... placeholders) are matched *after* normalization
  (``normalized: true``): otherwise ``[URL]`` made by the normalizer from a raw link would be split
  into pieces, while kopretrain's pre-normalized ``[URL]`` is one token;
- ``tokenizer_class`` becomes ``PreTrainedTokenizerFast``: transformers 5's model classes
  (``XLMRobertaTokenizer``, ``BertTokenizer``) rebuild their normalizer from the vocabulary and
  would drop ours; ``model_input_names`` is written out so the inputs stay those of the old class;
- earlier kopretrain steps (found between their markers) are replaced, never stacked, so saving a
  pretrain output again in finetune keeps exactly one copy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kopretrain.text.tokenizer_rules import BEGIN, END, tokenizer_rules
from kopretrain.tokenizer.save import PORTABLE_CLASS

RECORD_KEY = "tokenizer_normalizer"
VERSION = 1
MORPHEME_REASON = ("kiwipiepy morpheme pre-tokenization cannot run inside a tokenizer (it changes every "
                   "review), and the rules are not idempotent on segmented text, so the tokenizer applies "
                   "no rule: use kopretrain label or the recorded preparation")


def embed_normalizer(directory: str | Path, prep) -> dict[str, Any] | None:
    """Prepend ``prep``'s normalizer rules to ``directory/tokenizer.json``; the record for
    ``kopretrain.json`` (``prep.extra[RECORD_KEY]``), or None when there is nothing to embed
    (no normalization recorded, or no ``tokenizer.json``)."""
    from tokenizers import Tokenizer, normalizers

    path = Path(directory) / "tokenizer.json"
    if prep is None or prep.normalize is None or not path.is_file():
        return None
    morpheme = prep.pretokenize == "morpheme"
    rules = None if morpheme else tokenizer_rules(prep.normalize)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["normalizer"] = without_block(data.get("normalizer"))
    # placeholders matched after normalization in morpheme mode too: matched first, the text around
    # each is normalized alone and a Unigram Strip() ate the space before "[URL]" (a lost boundary)
    names = normalize_added_tokens(data)
    if rules is None and not names:
        return {"applied": [], "not_applied": {"pretokenize": MORPHEME_REASON}, "version": VERSION}
    tok = Tokenizer.from_str(json.dumps(data, ensure_ascii=False))
    if rules is not None:
        own = [tok.normalizer] if tok.normalizer is not None else []
        tok.normalizer = normalizers.Sequence([*rules.steps, *own])  # ours first, the tokenizer's own after
    tok.save(str(path))
    portable_config(Path(directory), names)
    if rules is None:
        return {"applied": [], "not_applied": {"pretokenize": MORPHEME_REASON}, "version": VERSION}
    return {"applied": rules.applied, "not_applied": rules.not_applied, "version": VERSION}


def save_with_textprep(tokenizer, directory: str | Path, prep) -> None:
    """A model folder's text files: the tokenizer (rules inside) and ``kopretrain.json`` (pretrain, finetune)."""
    from kopretrain.tokenizer.save import save_tokenizer

    save_tokenizer(tokenizer, directory)
    embed_and_record(directory, prep)
    prep.save(directory)


def embed_and_record(directory: str | Path, prep) -> None:
    """:func:`embed_normalizer`, its record in ``prep.extra`` (save ``prep`` into ``directory`` next)."""
    record = embed_normalizer(directory, prep)
    extra = {k: v for k, v in prep.extra.items() if k != RECORD_KEY}  # a base model's record is stale
    prep.extra = {**extra, RECORD_KEY: record} if record is not None else extra


def _flat(normalizer: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A normalizer's steps as one list (a nested Sequence runs its steps in order, so it is the same)."""
    if not normalizer:
        return []
    if normalizer.get("type") != "Sequence":
        return [normalizer]
    return [step for inner in normalizer.get("normalizers") or [] for step in _flat(inner)]


def _marker(step: dict[str, Any], which: str) -> bool:
    return step.get("type") == "Replace" and (step.get("pattern") or {}).get("Regex") == which


def has_block(normalizer: dict[str, Any] | None) -> bool:
    """True when a tokenizer.json normalizer (JSON) holds the steps :func:`embed_normalizer` adds."""
    return any(_marker(step, BEGIN) for step in _flat(normalizer))


def without_block(normalizer: dict[str, Any] | None) -> dict[str, Any] | None:
    """The tokenizer's own normalizer (JSON), with the steps of an earlier kopretrain save removed."""
    if not has_block(normalizer):
        return normalizer
    steps, kept, inside = _flat(normalizer), [], False
    for step in steps:
        if _marker(step, BEGIN) or _marker(step, END):
            inside = _marker(step, BEGIN)
        elif not inside:
            kept.append(step)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else {"type": "Sequence", "normalizers": kept}


def normalize_added_tokens(data: dict[str, Any]) -> list[str]:
    """Match non-special added tokens in normalized text; returns their contents."""
    names = []
    for added in data.get("added_tokens") or []:
        if not added.get("special"):
            added["normalized"] = True
            names.append(added["content"])
    return names


def portable_config(directory: Path, normalized: list[str]) -> None:
    """tokenizer_config.json: a class that loads tokenizer.json as it is, the old class's model
    inputs, and the added tokens' ``normalized`` flag where transformers keeps a copy of it."""
    path = directory / "tokenizer_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") != PORTABLE_CLASS:
        config.setdefault("model_input_names", model_inputs(directory, config))
        config["tokenizer_class"] = PORTABLE_CLASS
    for entry in (config.get("added_tokens_decoder") or {}).values():
        if entry.get("content") in normalized:
            entry["normalized"] = True
    path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def model_inputs(directory: Path, config: dict[str, Any]) -> list[str]:
    """What the folder's current tokenizer class returns (XLM-R: no token_type_ids)."""
    from transformers import AutoTokenizer

    try:
        return list(AutoTokenizer.from_pretrained(str(directory)).model_input_names)
    except (OSError, ValueError):  # fall back to what PreTrainedTokenizerFast would use
        return ["input_ids", "token_type_ids", "attention_mask"]
