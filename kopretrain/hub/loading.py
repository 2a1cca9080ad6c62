"""Loading checkpoints: a local directory or a Hub id with a pinned revision, safetensors only.

Every stage that reads a model, config or tokenizer goes through here, so a revision is applied to
all three alike, a missing directory fails before anything heavy is imported, pickle weights are
never loaded, and every failure names the option to fix (``--model runs/x: ...``).
"""

from __future__ import annotations

import contextlib

import os
from pathlib import Path
from typing import Any

from kopretrain.runs.records import StageError


def is_local(ref: str) -> bool:
    """True when ``ref`` can only be a local path: it exists, starts with ``.``/``/``/``~``, or has
    more than one ``/`` (a Hub id is ``name`` or ``owner/name``)."""
    return os.path.exists(ref) or ref.startswith((".", "/", "~")) or ref.strip("/").count("/") > 1


def check_model_ref(ref: str, what: str = "model", revision: str | None = None) -> None:
    """Fail early and clearly on a local model path that does not exist or is not a model dir."""
    if not ref:
        raise StageError(f"--{what}: no model given (a model directory or a Hub id such as beomi/KcELECTRA-base)")
    path = Path(ref).expanduser()
    if path.exists() and revision:
        flag = "--revision" if what in ("model", "checkpoint") else f"--{what.removesuffix('-checkpoint')}-revision"
        raise StageError(f"{flag} {revision} pins a Hub id, but --{what} {ref} is a local folder (it holds one "
                         f"version); drop {flag}")
    if path.exists():
        if not (path / "config.json").is_file():
            found = ", ".join(sorted(p.name for p in path.iterdir())[:12]) or "nothing"
            raise StageError(
                f"--{what} {ref}: not a model directory (no config.json; found: {found}). "
                "Point it at a pretrain/finetune output or a save_pretrained folder."
            )
    elif is_local(ref):
        raise StageError(f"--{what} {ref}: model directory not found")
    else:
        check_hub_reachable(ref, what, revision)


def check_hub_reachable(ref: str, what: str = "model", revision: str | None = None) -> None:
    """A Hub id without a network: load it from the local cache at once (huggingface_hub would
    retry each file for ~25 s before falling back), or fail in one line when it is not cached.
    Skipped behind a proxy (a direct connection failing says nothing there) and in offline mode."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    proxied = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
    if constants.HF_HUB_OFFLINE or proxied:
        return
    url = urlparse(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    try:
        socket.create_connection((host, url.port or (80 if url.scheme == "http" else 443)), timeout=3).close()
        return
    except OSError:
        pass
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(ref, "config.json", revision=revision), str):
        raise StageError(f"--{what} {ref}: {host} cannot be reached and {ref} is not in the local Hugging Face cache "
                         f"({constants.HF_HUB_CACHE}); download it where there is a network (`hf download {ref}`), "
                         "or give a local model folder")
    constants.HF_HUB_OFFLINE = True  # read at each call (huggingface_hub.is_offline_mode): the cache, no retries
    print(f"[kopretrain] {host} cannot be reached: {ref} is loaded from the local cache")


# architectures whose name says decoder or encoder-decoder: a sequence classifier of them trains
# (GPT-2 silently) or crashes mid-run (T5 wants decoder inputs), but is not what we adapt
_NOT_ENCODER = ("LMHeadModel", "ForCausalLM", "ForConditionalGeneration", "ForSeq2SeqLM")


def check_encoder(config, ref: str, what: str = "model") -> None:
    """A StageError unless ``config`` is a bidirectional encoder (BERT, RoBERTa, XLM-R, ELECTRA, ...)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    names = [a for a in getattr(config, "architectures", None) or [] if a.endswith(_NOT_ENCODER)]
    model_type = getattr(config, "model_type", "")
    # a family with a causal LM and no masked LM is a decoder (gpt2, llama), whatever head a folder names
    decoder = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "is_decoder", False) or names or decoder:
        kind = names[0] if names else f"a {config.model_type} decoder or encoder-decoder"
        raise StageError(f"--{what} {ref}: {kind} is not an encoder; kopretrain adapts and fine-tunes encoders "
                         "(BERT, RoBERTa, XLM-R, ELECTRA, DeBERTa): give one of those")


def revision_kwargs(revision: str | None) -> dict[str, Any]:
    return {"revision": revision} if revision else {}


def load_config(ref: str, revision: str | None = None, what: str = "model"):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(ref, **revision_kwargs(revision))
    except (OSError, ValueError) as exc:
        raise StageError(f"--{what} {ref}: not a local model directory, and not loadable as a Hub id ({exc})") from None


def load_tokenizer(ref: str, revision: str | None = None, what: str = "model"):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(ref, **revision_kwargs(revision))
    except (OSError, ValueError) as exc:
        raise StageError(f"--{what} {ref}: no loadable tokenizer ({exc})") from None


# RoBERTa-family position ids start after pad_token_id: max_position_embeddings 514 holds 512 tokens
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "roberta-prelayernorm", "xlm-roberta-xl", "data2vec-text")


def usable_positions(config) -> int | None:
    """How many tokens a model's position table holds (None: no table, no limit)."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit and getattr(config, "model_type", "") in _OFFSET_POSITIONS:
        limit -= (getattr(config, "pad_token_id", None) or 0) + 1
    return limit


def load_weights(cls, ref: str, revision: str | None = None, what: str = "model", **kwargs):
    """``cls.from_pretrained(ref)`` from safetensors only (a checkpoint with only pickle weights is refused).

    transformers 5 prints a red LOAD REPORT table whenever a key is missing, which is exactly what
    a fine-tune expects for its new head; it is replaced by one plain line naming the modules.
    ``output_loading_info=True`` returns ``(model, info)`` as transformers does (prune reads it)."""
    from transformers.utils import logging as hf_logging

    with_info = kwargs.pop("output_loading_info", False)
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        # a local folder loads in a blink: no "Loading weights" bar (a Hub download keeps its bars)
        with quiet_progress(Path(ref).is_dir()):
            model, info = cls.from_pretrained(ref, use_safetensors=True, output_loading_info=True,
                                              **revision_kwargs(revision), **kwargs)
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError, SafetensorError (a truncated file)
        if not isinstance(exc, (OSError, ValueError)) and type(exc).__name__ != "SafetensorError":
            raise
        raise StageError(f"--{what} {ref}: cannot load safetensors weights ({type(exc).__name__}: {exc}); "
                         "kopretrain loads no pickle weights") from None
    finally:
        hf_logging.set_verbosity(level)
    for line in loading_notes(info):
        print(f"[load] {ref}: {line}")
    return (model, info) if with_info else model


@contextlib.contextmanager
def quiet_progress(quiet: bool = True):
    """transformers' own progress bars off for a moment ("Loading weights", and "Writing model
    shards" at every checkpoint of a one-shard model): noise between the training bar's lines."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    if quiet and was_on:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and was_on:
            hf_logging.enable_progress_bar()


def drop_untrained_pooler(model, info: dict) -> bool:
    """Remove a pooler that ``from_pretrained`` had to create (its weights missing from a headless
    checkpoint such as e5 or any MLM/RTD save), so re-saving the model does not ship random pooler
    weights as if trained; fine-tuning then starts that pooler its own way. Returns whether it did."""
    if getattr(model, "pooler", None) is None:
        return False
    missing = set(info.get("missing_keys", ()))
    names = {n for n, _ in model.named_parameters() if n.startswith("pooler.") or ".pooler." in f".{n}"}
    if not names or not missing >= names:
        return False
    model.pooler = None
    return True


def loading_notes(info: dict) -> list[str]:
    """What ``from_pretrained`` did not load one-to-one, by module: new, unused, re-initialised."""

    def modules(keys) -> str:
        names = sorted({str(k if isinstance(k, str) else k[0]).rsplit(".", 1)[0] for k in keys})
        return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")

    notes = []
    if info.get("missing_keys"):
        notes.append(f"new, initialised here (not in the checkpoint): {modules(info['missing_keys'])}")
    if info.get("mismatched_keys"):
        notes.append(f"re-initialised (shape differs from the checkpoint): {modules(info['mismatched_keys'])}")
    if info.get("unexpected_keys"):
        notes.append(f"checkpoint weights this model does not use: {modules(info['unexpected_keys'])}")
    return notes


def model_file(ref: str, filename: str, revision: str | None = None) -> Path | None:
    """A side file of a model (``kopretrain.json``, the n-gram expert): from a local directory, or
    from a Hub repo at ``revision`` (the one its weights load from); None when the model has none.

    A Hub model without the file is a plain checkpoint (KcBERT has no kopretrain.json). Offline,
    with the file not cached, nobody can tell: that is said in a warning, not guessed silently."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path / filename if (path / filename).is_file() else None
    if is_local(ref):
        return None
    from huggingface_hub import _CACHED_NO_EXIST, hf_hub_download, try_to_load_from_cache  # the documented sentinel
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    if try_to_load_from_cache(ref, filename, revision=revision or None) is _CACHED_NO_EXIST:
        return None  # the Hub said so before (cached), online or off
    try:
        return Path(hf_hub_download(ref, filename, **revision_kwargs(revision)))
    except LocalEntryNotFoundError:  # offline and not cached (a subclass: caught first)
        import logging

        logging.getLogger(__name__).warning(
            "%s: cannot tell whether the model has %s (offline, not in the cache); using it without", ref, filename)
        return None
    except EntryNotFoundError:
        return None


def resolved_commit(ref: str, revision: str | None) -> str | None:
    """The Hub commit a (cached) id/revision resolved to; None for local directories."""
    if Path(ref).exists():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
        from transformers.utils.hub import extract_commit_hash

        path = try_to_load_from_cache(ref, "config.json", revision=revision or None)
        return extract_commit_hash(path, None) if isinstance(path, str) else None
    except Exception:  # noqa: BLE001 - the record is best effort; training must not fail on it
        return None
