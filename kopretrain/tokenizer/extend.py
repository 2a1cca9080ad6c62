"""Extend an existing checkpoint's vocabulary with domain words, for continued pretraining.

1. Mine: retrain the base tokenizer's own pipeline on the corpus (``train_new_from_iterator``),
   count how often each new piece is used, and keep pieces the old tokenizer lacks and splits
   into ``min_pieces`` or more pieces (or ``[UNK]``): ``"갓띵작"`` -> ``갓 ##띵 ##작``. WordPiece
   ``##`` continuation forms (``"##잼"``) and Unigram ``▁`` word-start forms come out of the
   trainer as they are, so every entry is usable in the position it was learned in. Ranked by
   tokens saved (``count * (pieces - 1)``); ``add_words`` come first.
2. Add: fill BERT-style ``[unused*]`` slots first (no new rows), then append ids; WordPiece
   entries go into the model vocab (longest-match then prefers them, also in ``"갓띵작이네"``);
   Unigram entries score just above the old pieces they replace (a margin per piece saved), so
   Viterbi takes them wherever those pieces were used, and a longer new piece over a shorter one.
3. Embeddings: resize, and set each new row to the mean of the embeddings of the pieces the old
   tokenizer produced for it (``[UNK]`` excluded unless it is all there is); MLM output bias too.
The output loads with plain transformers: ``AutoTokenizer``/``<architecture>.from_pretrained``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from kopretrain.runs.records import StageError

UNUSED = re.compile(r"^\[unused\d+\]$")
DETAILS_FILE = "vocab_extension.json"


def check_base_tokenizer(tok, where: str) -> str:
    """The backend model type (``WordPiece``/``Unigram``) or a StageError saying why not."""
    if not getattr(tok, "is_fast", False) or getattr(tok, "backend_tokenizer", None) is None:
        raise StageError(f"{where}: tokenizer {type(tok).__name__} is not a fast (tokenizers-backed) tokenizer; "
                         "vocabulary extension edits tokenizer.json")
    kind = type(tok.backend_tokenizer.model).__name__
    if kind not in ("WordPiece", "Unigram"):
        raise StageError(f"{where}: tokenizer model is {kind}; only WordPiece (BERT/ELECTRA) and Unigram "
                         "(SentencePiece/KoBERT) vocabularies can be extended")
    return kind


def wordpiece_split(word: str, vocab: dict[str, int], continuation: bool, unk: str = "[UNK]",
                    prefix: str = "##", max_chars: int = 100) -> list[str]:
    """Greedy longest-match-first WordPiece, optionally *inside* a word (every piece ``##``).
    Written here because ``tokenizers`` cannot split a piece in continuation position.

    >>> wordpiece_split("갓띵작", {"갓": 5, "##띵": 6, "##작": 7}, continuation=False)
    ['갓', '##띵', '##작']
    """
    if len(word) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while end > start:
            piece = (prefix if start > 0 or continuation else "") + word[start:end]
            if piece in vocab:
                found = piece
                break
            end -= 1
        if found is None:
            return [unk]
        pieces.append(found)
        start = end
    return pieces


def old_pieces(token: str, kind: str, backend, vocab: dict[str, int], unk: str) -> list[str]:
    if kind == "WordPiece":
        cont = token.startswith("##")
        return wordpiece_split(token[2:] if cont else token, vocab, cont, unk,
                               max_chars=backend.model.max_input_chars_per_word)
    unk_id = vocab.get(unk)
    return [unk if t.id == unk_id else t.value for t in backend.model.tokenize(token)]


def mine(tok, kind: str, texts: list[list[str]], cfg, log=print) -> list[dict[str, Any]]:
    """Candidate entries from the corpus, best first (see the module docstring)."""
    old_vocab = tok.get_vocab()
    # a Unigram trainer needs room for every character of the corpus before any longer piece
    alphabet = len({c for batch in texts for text in batch for c in text})
    size = max(len(old_vocab), alphabet + 4 * cfg.max_new_tokens + len(tok.all_special_tokens))
    try:
        new = tok.train_new_from_iterator(iter(texts), vocab_size=size)
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception for trainer limits
        raise StageError(f"--extend-from: mining candidate pieces failed ({exc}); try a larger --max-new-tokens") from None
    counts: Counter[int] = Counter()
    for batch in texts:
        for row in new(batch, add_special_tokens=False)["input_ids"]:
            counts.update(row)
    backend, unk = tok.backend_tokenizer, tok.unk_token
    found = []
    for idx, count in counts.items():
        token = new.convert_ids_to_tokens(idx)
        if count < cfg.min_count or token in old_vocab or token in new.all_special_tokens:
            continue
        pieces = old_pieces(token, kind, backend, old_vocab, unk)
        if len(pieces) >= cfg.min_pieces or unk in pieces:
            found.append({"token": token, "count": count, "old_pieces": pieces,
                          "score": count * max(len(pieces) - 1, 1)})
    found.sort(key=lambda c: (-c["score"], c["token"]))
    log(f"[vocab] extension: {len(found)} candidates (count >= {cfg.min_count}, >= {cfg.min_pieces} old pieces or [UNK])")
    return found


def user_words(tok, kind: str, words: list[str], prep) -> tuple[list[dict], list[dict]]:
    """``add_words`` as entries, and the ones skipped with the reason."""
    from kopretrain.text.pretokenize import JOINER

    backend, vocab, unk = tok.backend_tokenizer, tok.get_vocab(), tok.unk_token
    meta = _metaspace(backend)
    entries, skipped, seen = [], [], set()
    for word in words:
        norm = backend.normalizer.normalize_str(word) if backend.normalizer else word
        form = (meta + norm) if kind == "Unigram" and meta and not norm.startswith(meta) else norm
        if not norm.strip() or any(c.isspace() for c in norm.strip()):
            reason = "empty or contains whitespace: the pre-tokenizer splits it, so it can never be one token"
        elif backend.pre_tokenizer is not None and len(parts := backend.pre_tokenizer.pre_tokenize_str(
                norm[2:] if kind == "WordPiece" and norm.startswith("##") else norm)) > 1:  # "##꿀잼": a continuation
            reason = (f"the pre-tokenizer splits it ({' '.join(p for p, _ in parts)}: punctuation): "
                      "it can never be one token")
        elif form in seen:
            reason = "listed twice"
        elif form in vocab:
            reason = f"already in the vocabulary as {form!r} (id {vocab[form]})"
        elif JOINER in prep.prepare([word])[0]:
            reason = f"kiwipiepy splits it into morphemes ({prep.prepare([word])[0]}): never one token in morpheme mode"
        elif len(ids := tok(prep.prepare([word])[0], add_special_tokens=False)["input_ids"]) == 1 and ids[0] != tok.unk_token_id:
            reason = "already a single token"
        else:
            seen.add(form)
            entries.append({"token": form, "count": None, "requested": word,
                            "old_pieces": old_pieces(form, kind, backend, vocab, unk)})
            continue
        skipped.append({"word": word, "reason": reason})
    return entries, skipped


def _metaspace(backend) -> str | None:
    """The Metaspace replacement (``▁``) of the pre-tokenizer, if it has one."""
    spec = json.loads(backend.to_str()).get("pre_tokenizer") or {}
    for part in [spec, *spec.get("pretokenizers", [])]:
        if part.get("type") == "Metaspace":
            return part["replacement"]
    return None


def add_entries(tok, kind: str, entries: list[dict], use_unused: bool = True):
    """A new ``tokenizers.Tokenizer`` with ``entries`` added; fills in each entry's ``id``/``slot``."""
    from tokenizers import Tokenizer

    data = json.loads(tok.backend_tokenizer.to_str())
    model = data["model"]
    next_id = len(tok)
    if kind == "WordPiece":
        vocab: dict[str, int] = model["vocab"]
        slots = sorted((i, t) for t, i in vocab.items() if UNUSED.match(t)) if use_unused else []
    else:
        pieces: list[list] = model["vocab"]
        if next_id != len(pieces):
            raise StageError("this Unigram tokenizer has added tokens after its model vocab; new pieces would "
                             "collide with their ids")
        slots = [(i, p[0]) for i, p in enumerate(pieces) if UNUSED.match(p[0])] if use_unused else []
        # A new piece scores just above the old pieces it replaces (their log-probabilities summed):
        # Viterbi takes it wherever the old tokenizer used those pieces, and nowhere an existing
        # piece won before. (The best score of all made "▁" + "최고의" beat the existing "▁최고의".)
        score = {p[0]: p[1] for p in pieces}
        floor = min((p[1] for p in pieces), default=-20.0)
    freed = set()
    for entry in entries:
        if slots:
            idx, old = slots.pop(0)
            freed.add(old)
            entry["slot"] = old
        else:
            idx, entry["slot"] = next_id, "new"
            next_id += 1
        entry["id"] = idx
        if kind == "WordPiece":
            vocab.pop(entry["slot"], None)
            vocab[entry["token"]] = idx
        else:
            # a margin per piece saved: "▁갓띵작" (3 old pieces) must beat "▁갓" + a new "띵작" (2)
            margin = 0.01 * max(len(entry["old_pieces"]) - 1, 1)
            row = [entry["token"], min(sum(score.get(p, floor) for p in entry["old_pieces"]) + margin, -1e-6)]
            if idx < len(pieces):
                pieces[idx] = row
            else:
                pieces.append(row)
    data["added_tokens"] = [a for a in data["added_tokens"] if a["content"] not in freed]
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def load_model(path: str, revision: str | None):
    """The checkpoint with the class its config names (ElectraForPreTraining, BertForMaskedLM, ...)."""
    import transformers
    from transformers import AutoModelForMaskedLM

    from kopretrain.hub.loading import drop_untrained_pooler, load_config, load_weights

    arch = (load_config(path, revision, what="extend-from").architectures or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    model, info = load_weights(cls or AutoModelForMaskedLM, path, revision, what="extend-from", output_loading_info=True)
    drop_untrained_pooler(model, info)  # a headless checkpoint (e5): no random pooler saved as if trained
    return model


def init_rows(model, entries: list[dict], old_ids: list[list[int]], new_size: int) -> None:
    """Resize embeddings and set each new row to the mean of its old pieces' rows."""
    import torch

    if model.get_input_embeddings().weight.shape[0] < new_size:
        model.resize_token_embeddings(new_size, mean_resizing=False)
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    with torch.no_grad():
        for entry, ids in zip(entries, old_ids):
            src = torch.tensor(ids, dtype=torch.long)
            emb[entry["id"]] = emb[src].mean(0)
            if out is not None and out.weight is not emb and out.weight.shape[0] >= new_size:
                out.weight[entry["id"]] = out.weight[src].mean(0)
            bias = getattr(out, "bias", None) if out is not None else None
            if bias is not None and bias.shape[0] >= new_size:
                bias[entry["id"]] = bias[src].mean(0)


def choose_entries(tok, kind: str, texts: list[list[str]], cfg, prep, log=print) -> tuple[list, list, int]:
    """``(entries, skipped, candidates not taken)``: the user's --add-words first, then mined
    domain words, up to --max-new-tokens."""
    entries, skipped = user_words(tok, kind, cfg.add_words, prep)
    taken = {e["token"] for e in entries}
    room = cfg.max_new_tokens > len(entries)
    mined = [c for c in mine(tok, kind, texts, cfg, log) if c["token"] not in taken] if room else []
    skipped += [{"word": e["requested"], "reason": f"over --max-new-tokens {cfg.max_new_tokens}"}
                for e in entries[cfg.max_new_tokens:]]
    not_taken = max(0, len(entries) + len(mined) - cfg.max_new_tokens) - len(entries[cfg.max_new_tokens:])
    return (entries + mined)[: cfg.max_new_tokens], skipped, not_taken


def save_resized(model, base: Path, entries: list, old_ids: list, new_size: int, out_dir: Path) -> None:
    """Grow the embeddings (new rows: mean of the old pieces) and save; a kopretrain RTD output's
    generator shares the vocabulary, so it grows the same way."""
    init_rows(model, entries, old_ids, new_size)
    model.save_pretrained(str(out_dir))
    gen = base / "generator"
    if (gen / "config.json").is_file():
        generator = load_model(str(gen), None)
        init_rows(generator, entries, old_ids, new_size)
        generator.save_pretrained(str(out_dir / "generator"))


def extend(cfg, out_dir: Path, train_path: Path, normalize: dict | None, log=print) -> dict[str, Any]:
    from kopretrain.text import textprep
    from kopretrain.tokenizer.corpus import corpus_batches, textprep_extra
    from kopretrain.tokenizer.embed import embed_and_record
    from kopretrain.hub.loading import load_tokenizer
    from kopretrain.tokenizer.fingerprint import vocab_hash
    from kopretrain.tokenizer.train import save_tokenizer

    base, rev = cfg.extend_from, cfg.revision or None
    tok = load_tokenizer(base, rev, what="extend-from")
    kind = check_base_tokenizer(tok, base)
    base_prep = textprep.load(base) if Path(base).is_dir() else None
    mode = base_prep.pretokenize if base_prep else "eojeol"
    if cfg.pretokenize != mode:
        raise StageError(f"--pretokenize {cfg.pretokenize} does not match {base}, which was trained with {mode} "
                         "input; an extension keeps the base's pre-tokenization")
    model = load_model(base, rev)  # before mining: a folder without weights fails now, not after minutes
    prep = textprep.TextPrep(normalize=None, pretokenize=mode)
    texts = [b for b in corpus_batches(train_path, mode, cfg.batch_size, cfg.reuse_analyze_offsets, log=log) if b]
    n_texts = sum(map(len, texts))
    if n_texts == 0:
        raise StageError(f"{train_path}: no non-empty text to mine domain words from")
    entries, skipped, not_taken = choose_entries(tok, kind, texts, cfg, prep, log)
    old_vocab = tok.get_vocab()
    old_ids = [[old_vocab[p] for p in e["old_pieces"] if p != tok.unk_token] or [tok.unk_token_id] for e in entries]
    new_backend = add_entries(tok, kind, entries)
    specials = {k: getattr(tok, k) for k in ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token",
                                             "bos_token", "eos_token") if getattr(tok, k, None)}
    max_len = tok.model_max_length if tok.model_max_length < 1e9 else getattr(model.config, "max_position_embeddings", 512)
    before = {f.name for f in out_dir.iterdir()}
    save_tokenizer(new_backend, out_dir, max_len, specials)
    tokenizer_files = sorted({f.name for f in out_dir.iterdir()} - before)
    new_size = new_backend.get_vocab_size(with_added_tokens=True)
    save_resized(model, Path(base), entries, old_ids, new_size, out_dir)
    from kopretrain.hub.loading import resolved_commit

    revision_sha = resolved_commit(base, rev)  # transformers 5 configs carry no _commit_hash
    info = {"base_model": base, "revision": rev, "resolved_commit": revision_sha, "tokenizer_model": kind,
            "old_vocab_hash": vocab_hash(tok.backend_tokenizer), "new_vocab_hash": vocab_hash(new_backend)}
    extra = {**textprep_extra(kind.lower(), cfg.pretokenize), **info, "added": len(entries)}
    norm = normalize if normalize is not None else (base_prep.normalize if base_prep else None)
    prep = textprep.TextPrep(normalize=norm, pretokenize=mode, extra=extra)
    embed_and_record(out_dir, prep)
    prep.save(out_dir)
    if (out_dir / "generator").is_dir():  # as after pretrain: pipeline("fill-mask", model=<out>/generator) works
        import shutil

        for name in [*tokenizer_files, textprep.TEXTPREP_FILE]:
            shutil.copy2(out_dir / name, out_dir / "generator" / name)
    from kopretrain.runs.records import write_json

    write_json(out_dir / DETAILS_FILE, {**info, "added": entries, "skipped": skipped})
    unused = sum(1 for e in entries if e["slot"] != "new")
    log(f"[vocab] extended {base}: +{len(entries)} entries ({unused} in [unused*] slots), {len(skipped)} skipped")
    return {"texts": n_texts, "model": kind.lower(), "pretokenize": mode, **info,
            "old_vocab_size": len(tok), "vocab_size": new_size, "vocab_hash": info["new_vocab_hash"],
            "added": len(entries), "added_in_unused_slots": unused, "candidates_not_taken": not_taken, "skipped": skipped[:50],
            "added_examples": [{k: e[k] for k in ("token", "count", "old_pieces")} for e in entries[:20]]}
