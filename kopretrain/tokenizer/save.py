"""Saving tokenizers that load in transformers 4 and 5 alike.

transformers 5 writes ``"tokenizer_class": "TokenizersBackend"`` for a tokenizer built from a
``tokenizers.Tokenizer``; that class does not exist in 4.x (``ValueError: Tokenizer class
TokenizersBackend does not exist``). ``PreTrainedTokenizerFast`` exists in both and loads the same
``tokenizer.json`` with the same ids, so every tokenizer kopretrain saves names it instead.

Stages then put the model's normalizer rules into the saved ``tokenizer.json``
(:func:`kopretrain.tokenizer.embed.embed_and_record`), so a plain ``transformers`` pipeline gives
the model the text kopretrain does.
"""

from __future__ import annotations

import json
from pathlib import Path

PORTABLE_CLASS = "PreTrainedTokenizerFast"
VERSION_ONLY_CLASSES = {"TokenizersBackend"}


def save_tokenizer(tokenizer, directory: str | Path) -> None:
    """``tokenizer.save_pretrained(directory)`` with a class name every transformers version knows."""
    tokenizer.save_pretrained(str(directory))
    path = Path(directory) / "tokenizer_config.json"
    if path.is_file():
        config = json.loads(path.read_text(encoding="utf-8"))
        if config.get("tokenizer_class") in VERSION_ONLY_CLASSES:
            config["tokenizer_class"] = PORTABLE_CLASS
            path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
