"""normalize's placeholders (``[URL]``, ``[EMAIL]`` ...) as single tokens of a checkpoint's vocabulary.

Vocabularies kopretrain trains hold them whole (:func:`kopretrain.text.pretokenize.placeholder_tokens`);
a downloaded checkpoint's tokenizer splits them (multilingual-e5-small-ko: ``[URL]`` -> ``▁[``,
``URL``, ``]``), which spends positions on a mask and lets it read like literal text. Fine-tuning
adds the ones the tokenizer splits as tokens, each row starting at the mean embedding of the pieces
it replaces (as ``vocab --extend-from`` initialises its rows), so the saved model keeps them and
``label``/``pipeline()`` tokenize them the same way.
"""

from __future__ import annotations


def split_placeholders(tokenizer) -> dict[str, list[int]]:
    """The placeholders ``tokenizer`` does not keep as one token, with the ids it splits each into."""
    from kopretrain.text.pretokenize import placeholder_tokens

    out = {}
    for token in placeholder_tokens():
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
            out[token] = ids
    return out


def add_placeholders(tokenizer, model) -> list[str]:
    """Add the placeholders ``tokenizer`` splits (non-special, matched after normalization, like
    :mod:`kopretrain.tokenizer.embed` saves added tokens), grow ``model``'s embeddings and start each
    new row at the mean of its old pieces' rows. Returns the tokens added (none on a second call)."""
    from tokenizers import AddedToken

    from kopretrain.tokenizer.extend import init_rows

    split = split_placeholders(tokenizer)
    if not split:
        return []
    tokenizer.add_tokens([AddedToken(t, normalized=True, special=False) for t in split])
    entries = [{"id": tokenizer.convert_tokens_to_ids(t)} for t in split]
    unk = tokenizer.unk_token_id
    pieces = [[i for i in ids if i != unk] or [unk] for ids in split.values()]  # [UNK] only if that is all
    init_rows(model, entries, pieces, len(tokenizer))
    return list(split)
