"""Vocabulary pruning: keep the pieces a corpus needs, and the matching embedding rows.

"Load What You Need" (Abdaoui et al. 2020): a multilingual checkpoint spends most of its
parameters on embeddings of pieces a Korean review corpus never uses (XLM-R: 250k pieces, 192M of
its 278M parameters). Kept: every piece the checkpoint's own tokenizer emits on the corpus, the
special tokens, every piece containing Hangul, and every single ASCII character (with or without its
word marker), so text made of kept pieces is segmented exactly as before: Unigram scores and the
order of pieces are unchanged, and WordPiece only loses pieces its greedy match never chose. Rows
of every tensor indexed by token id (input embeddings, a tied MLM decoder, its bias) are selected
with the same ids, so hidden states are identical for any text the pruned tokenizer encodes alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from kopretrain.runs.records import StageError

HANGUL = ((0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xD7B0, 0xD7FF))
MARKERS = ("\u2581", "##")  # SentencePiece word start, WordPiece continuation


def has_hangul(piece: str) -> bool:
    return any(lo <= ord(c) <= hi for c in piece for lo, hi in HANGUL)


def is_single_ascii(piece: str) -> bool:
    for marker in MARKERS:
        piece = piece.removeprefix(marker)
    return len(piece) == 1 and ord(piece) < 128


def model_pieces(data: dict[str, Any]) -> list[str]:
    """The tokenizer model's pieces in id order (Unigram and WordPiece)."""
    model = data["model"]
    if model["type"] == "Unigram":
        return [piece for piece, _ in model["vocab"]]
    if model["type"] == "WordPiece":
        return [piece for piece, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1])]
    raise StageError(f"--prune-from: pruning supports Unigram (SentencePiece) and WordPiece tokenizers, "
                     f"not {model['type']}")


def all_tokens(data: dict[str, Any]) -> list[str]:
    """Every token by id: the model's pieces, then added tokens outside the model (ids after them)."""
    pieces = model_pieces(data)
    known = set(pieces)
    extra = sorted((t["id"], t["content"]) for t in data.get("added_tokens", []) if t["content"] not in known)
    if [i for i, _ in extra] != list(range(len(pieces), len(pieces) + len(extra))):
        raise StageError("--prune-from: added tokens do not follow the model's pieces; cannot renumber them")
    return pieces + [content for _, content in extra]


def used_pieces(backend, batches: Iterable[list[str]]) -> tuple[set[int], int]:
    """Ids the tokenizer emits on the corpus, and how many texts it read."""
    used: set[int] = set()
    n = 0
    for texts in batches:
        n += len(texts)
        for enc in backend.encode_batch(texts, add_special_tokens=False):
            used.update(enc.ids)
    return used, n


def keep_ids(data: dict[str, Any], used: set[int], specials: set[str]) -> list[int]:
    """Old ids to keep, in their original order; the [unused*] slots too, which a later
    ``--extend-from`` fills before it adds embedding rows (the suggested order: prune, then extend)."""
    from kopretrain.tokenizer.extend import UNUSED

    pieces = all_tokens(data)
    return [i for i, p in enumerate(pieces)
            if i in used or p in specials or has_hangul(p) or is_single_ascii(p) or UNUSED.match(p)]


def pruned_tokenizer_json(data: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    """``tokenizer.json`` with only ``keep`` (old ids) and every id reference renumbered."""
    pieces = all_tokens(data)
    n_model = len(model_pieces(data))
    new_id = {pieces[old]: new for new, old in enumerate(keep)}
    in_model = [old for old in keep if old < n_model]
    data = json.loads(json.dumps(data))
    model = data["model"]
    if model["type"] == "Unigram":
        model["vocab"] = [model["vocab"][old] for old in in_model]
        if model.get("unk_id") is not None:
            model["unk_id"] = new_id[pieces[model["unk_id"]]]
    else:
        model["vocab"] = {pieces[old]: new_id[pieces[old]] for old in in_model}
    for token in data.get("added_tokens", []):
        token["id"] = new_id[token["content"]]
    _renumber(data.get("post_processor"), new_id)
    return data


def _renumber(node: Any, new_id: dict[str, int]) -> None:
    """Post-processors name special tokens with their ids (TemplateProcessing ``ids``/``tokens``,
    RobertaProcessing ``[token, id]`` pairs): renumber them in place."""
    if isinstance(node, dict):
        if "ids" in node and "tokens" in node:
            node["ids"] = [new_id[t] for t in node["tokens"]]
        for key, value in node.items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] in new_id \
                    and isinstance(value[1], int):
                node[key] = [value[0], new_id[value[0]]]
            else:
                _renumber(value, new_id)
    elif isinstance(node, list):
        for item in node:
            _renumber(item, new_id)


def prune_model(model, keep: list[int]) -> None:
    """Keep rows ``keep`` of every parameter indexed by token id: the word embeddings and the output
    projection (weight, bias and whatever shares them), not every tensor whose first dimension
    happens to equal the vocabulary size (an intermediate_size of 1500 beside a 1500-token vocab)."""
    import torch
    from torch import nn

    old = model.config.vocab_size
    index = torch.tensor(keep, dtype=torch.long)
    by_token = [model.get_input_embeddings()]
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    by_token += [out] if out is not None else []
    shared = {p.data_ptr() for m in by_token for p in m.parameters(recurse=False) if p.shape[0] == old}
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is not None and param.dim() >= 1 and param.shape[0] == old and param.data_ptr() in shared:
                module._parameters[name] = nn.Parameter(param.data.index_select(0, index).clone(),
                                                        requires_grad=param.requires_grad)
        if module in by_token and isinstance(module, nn.Embedding):
            module.num_embeddings = len(keep)
            if module.padding_idx is not None:
                module.padding_idx = keep.index(module.padding_idx) if module.padding_idx in keep else None
        if module in by_token and isinstance(module, nn.Linear):
            module.out_features = len(keep)
    model.config.vocab_size = len(keep)
    if getattr(model.config, "pad_token_id", None) is not None and model.config.pad_token_id in keep:
        model.config.pad_token_id = keep.index(model.config.pad_token_id)
    model.tie_weights()


def _base_textprep(cfg: Any, base: str):
    """The base checkpoint's recorded text preparation (None if it has none) and its pre-tokenization,
    which --pretokenize must match: pruning keeps it."""
    from kopretrain.text import textprep

    base_prep = textprep.load(base) if Path(base).is_dir() else None
    mode = base_prep.pretokenize if base_prep else "eojeol"
    if cfg.pretokenize != mode:
        raise StageError(f"--pretokenize {cfg.pretokenize} does not match {base}, which was trained with {mode} "
                         "input; pruning keeps the base's pre-tokenization")
    return base_prep, mode


def prune(cfg: Any, out_dir: Path, train_path: Path, log=print, normalize: dict | None = None) -> dict[str, Any]:
    """The vocab stage's ``--prune-from``: prune the checkpoint to the train split's needs, write the
    smaller model, tokenizer and ``kopretrain.json`` into ``out_dir``, and return what was measured."""
    import transformers
    from transformers import AutoModel

    from kopretrain.hub.loading import drop_untrained_pooler, load_config, load_tokenizer, load_weights
    from kopretrain.text import textprep
    from kopretrain.tokenizer.corpus import corpus_batches, textprep_extra
    from kopretrain.tokenizer.embed import embed_and_record
    from kopretrain.tokenizer.fingerprint import vocab_hash
    from kopretrain.tokenizer.save import save_tokenizer

    base, rev = cfg.prune_from, cfg.revision or None
    tok = load_tokenizer(base, rev, what="prune-from")
    backend = tok.backend_tokenizer
    data = json.loads(backend.to_str())
    base_prep, mode = _base_textprep(cfg, base)
    # the weights before the corpus is read: a folder without them fails now, not after minutes
    arch = (load_config(base, rev, what="prune-from").architectures or [None])[0]
    model, info = load_weights(getattr(transformers, arch, None) if arch else AutoModel, base, rev,
                               what="prune-from", output_loading_info=True)
    # the texts as they will be tokenized, placeholders included ("[CENSORED]" uses pieces like "EN", "ORE")
    batches = [b for b in corpus_batches(train_path, mode, cfg.batch_size, cfg.reuse_analyze_offsets, log=log,
                                         blank_placeholders=False) if b]
    used, n_texts = used_pieces(backend, batches)
    if n_texts == 0:
        raise StageError(f"{train_path}: no non-empty text to prune the vocabulary for")
    specials = {t["content"] for t in data.get("added_tokens", [])} | set(tok.all_special_tokens)
    keep = keep_ids(data, used, specials)

    save_tokenizer(tok, out_dir)  # tokenizer_config.json & co.; tokenizer.json is replaced next
    (out_dir / "tokenizer.json").write_text(json.dumps(pruned_tokenizer_json(data, keep), ensure_ascii=False),
                                           encoding="utf-8")
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.pop("added_tokens_decoder", None) is not None:  # keyed by the old ids; tokenizer.json has the new
        config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")

    drop_untrained_pooler(model, info)  # a headless checkpoint: do not save a random pooler as if trained
    before = sum(p.numel() for p in model.parameters())
    prune_model(model, keep)
    model.save_pretrained(str(out_dir))
    after = sum(p.numel() for p in model.parameters())
    # The corpus's normalizer unless the checkpoint records its own: the model is fine-tuned on that
    # text, so raw text at inference must be normalized the same way.
    prep = textprep.TextPrep(normalize=getattr(base_prep, "normalize", None) or normalize, pretokenize=mode,
                             extra={**textprep_extra(data["model"]["type"].lower(), mode), "pruned_from": base,
                                    "revision": rev})
    embed_and_record(out_dir, prep)  # before the check below: the pruned tokenizer must still agree
    prep.save(out_dir)
    new = load_tokenizer(str(out_dir), what="output")
    same = check_same_tokens(tok, new, [t for b in batches for t in b][:2000])
    log(f"[vocab] pruned {base}: {len(all_tokens(data)):,} -> {len(keep):,} pieces, "
        f"{before / 1e6:.1f}M -> {after / 1e6:.1f}M parameters; {same:.2%} of sampled texts tokenized identically")
    return {"texts": n_texts, "model": data["model"]["type"].lower(), "pretokenize": mode, "base_model": base,
            "revision": rev, "old_vocab_size": len(all_tokens(data)), "vocab_size": len(keep),
            "vocab_hash": vocab_hash(new), "pieces_used_by_corpus": len(used),
            "parameters_before": before, "parameters_after": after, "same_tokens_on_sample": same}


def check_same_tokens(old, new, texts: list[str]) -> float:
    """Share of ``texts`` whose pieces are identical before and after pruning (should be 1.0)."""
    if not texts:
        return 1.0
    a = old(texts, add_special_tokens=True)["input_ids"]
    b = new(texts, add_special_tokens=True)["input_ids"]
    same = sum(old.convert_ids_to_tokens(x) == new.convert_ids_to_tokens(y) for x, y in zip(a, b))
    return same / len(texts)
