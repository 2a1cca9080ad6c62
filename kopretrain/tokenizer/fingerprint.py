"""The one vocabulary fingerprint: equal hashes mean two tokenizers give every token the same id."""

from __future__ import annotations

import hashlib
import json


def vocab_hash(tokenizer) -> str:
    """sha256 of the ``(token, id)`` list in id order, added tokens included, for a transformers
    tokenizer or a ``tokenizers.Tokenizer`` alike (both give the same hash for the same vocabulary)."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    vocab = backend.get_vocab(with_added_tokens=True)
    payload = json.dumps(sorted(vocab.items(), key=lambda kv: kv[1]), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()
