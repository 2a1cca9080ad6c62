"""Model presets and initialization for pretraining: from scratch, or continued from a checkpoint.

Presets follow the ELECTRA paper's sizes (Clark et al. 2020, table 6) so results compare with
published Korean models; ``tiny`` is chosen so MLM and RTD finish a full NSMC epoch on 2 CPU cores
within an hour (measured in BENCHMARKS.md):

=====  ======  ======  =====  ============  =========  =========
name   layers  hidden  heads  intermediate  embedding  generator
=====  ======  ======  =====  ============  =========  =========
tiny   4       256     4      1024          128        1/4
small  12      256     4      1024          128        1/4   (ELECTRA-Small)
base   12      768     12     3072          768        1/3   (BERT-base / ELECTRA-Base)
=====  ======  ======  =====  ============  =========  =========

BERT has no factorized embedding, so ``model_type: bert`` uses ``embedding = hidden``.
Continued pretraining loads weights with ``use_safetensors=True`` only and records the base model's
id, revision, resolved commit and vocab hash: Hub ``main`` branches get overwritten (KcELECTRA's
did), so an unpinned id is not a reproducible record.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Arch:
    num_layers: int
    hidden_size: int
    heads: int
    intermediate_size: int
    embedding_size: int
    generator_size_ratio: float
    max_position_embeddings: int = 512


PRESETS: dict[str, Arch] = {
    "tiny": Arch(4, 256, 4, 1024, 128, 0.25),
    "small": Arch(12, 256, 4, 1024, 128, 0.25),
    "base": Arch(12, 768, 12, 3072, 768, 1 / 3),
}


def resolve_arch(preset: str, model_type: str = "electra", **overrides: Any) -> Arch:
    """The preset with non-zero ``overrides`` applied (0 / None means "keep the preset's value")."""
    if preset not in PRESETS:
        raise ValueError(f"--preset: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    arch = dataclasses.replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v})
    if model_type == "bert" and arch.embedding_size != arch.hidden_size:
        # BertEmbeddings has no projection: the embedding width is the hidden width.
        arch = dataclasses.replace(arch, embedding_size=arch.hidden_size)
    if arch.hidden_size % arch.heads:
        raise ValueError(f"--hidden-size {arch.hidden_size} is not divisible by --heads {arch.heads}")
    if not 0 < arch.generator_size_ratio <= 1:
        raise ValueError(f"--generator-size-ratio must be in (0, 1], got {arch.generator_size_ratio}")
    return arch


def _special_ids(tokenizer) -> dict[str, Any]:
    return {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}


def bert_config(arch: Arch, tokenizer):
    from transformers import BertConfig

    return BertConfig(
        hidden_size=arch.hidden_size, num_hidden_layers=arch.num_layers, num_attention_heads=arch.heads,
        intermediate_size=arch.intermediate_size, max_position_embeddings=arch.max_position_embeddings,
        **_special_ids(tokenizer),
    )


def electra_config(arch: Arch, tokenizer):
    from transformers import ElectraConfig

    return ElectraConfig(
        embedding_size=arch.embedding_size, hidden_size=arch.hidden_size, num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.heads, intermediate_size=arch.intermediate_size,
        max_position_embeddings=arch.max_position_embeddings, **_special_ids(tokenizer),
    )


def generator_config(disc_config, ratio: float):
    """ELECTRA's generator: same depth and embedding width, hidden scaled by ``ratio``, 64-dim heads.

    Keeping ``embedding_size`` equal to the discriminator's is what allows the two to share one
    embedding module (the generator projects embeddings down to its own hidden size)."""
    from transformers import ElectraConfig

    hidden = max(8, int(round(disc_config.hidden_size * ratio)))
    heads = max(1, hidden // 64)
    while hidden % heads:
        heads -= 1
    return ElectraConfig(
        vocab_size=disc_config.vocab_size, embedding_size=disc_config.embedding_size, hidden_size=hidden,
        num_hidden_layers=disc_config.num_hidden_layers, num_attention_heads=heads, intermediate_size=4 * hidden,
        max_position_embeddings=disc_config.max_position_embeddings, type_vocab_size=disc_config.type_vocab_size,
        pad_token_id=disc_config.pad_token_id, layer_norm_eps=disc_config.layer_norm_eps,
        hidden_act=disc_config.hidden_act, architectures=["ElectraForMaskedLM"],
    )


def build_scratch(objective: str, model_type: str, arch: Arch, tokenizer) -> dict[str, Any]:
    """Fresh models: ``{"mlm": model}`` or, for RTD, ``{"discriminator": ..., "generator": ...}``."""
    from transformers import BertForMaskedLM, ElectraForMaskedLM, ElectraForPreTraining

    if objective == "rtd":
        disc = ElectraForPreTraining(electra_config(arch, tokenizer))
        gen = ElectraForMaskedLM(generator_config(disc.config, arch.generator_size_ratio))
        return {"discriminator": disc, "generator": gen}
    if model_type == "electra":
        return {"mlm": ElectraForMaskedLM(electra_config(arch, tokenizer))}
    return {"mlm": BertForMaskedLM(bert_config(arch, tokenizer))}


def _encoder_rtd(checkpoint: str, revision: str | None, config, generator_checkpoint: str,
                 ratio: float, generator_init: str = "lower", generator_revision: str | None = None) -> dict[str, Any]:
    """RTD on a non-ELECTRA encoder (BERT, RoBERTa, XLM-R...): the checkpoint becomes the
    discriminator (``*ForTokenClassification`` with one "replaced" logit per token; its encoder is
    the checkpoint's), and the generator is ``ceil(layers * ratio)`` layers of the same width with a
    fresh MLM head, sharing its embeddings. Such encoders have no factorized embeddings, so a
    narrower ELECTRA-style generator could not share them; a shallower one can. ``generator_init``
    "lower" copies the checkpoint's own lower layers (useful replacements from the first step),
    "fresh" starts them at random (ELECTRA's own recipe: a weak generator that learns alongside)."""
    import math

    from transformers import AutoModelForMaskedLM, AutoModelForTokenClassification

    from kopretrain.hub.loading import load_weights
    from kopretrain.runs.records import StageError

    disc, info = load_weights(AutoModelForTokenClassification, checkpoint, revision, what="checkpoint", num_labels=1,
                              id2label={0: "replaced"}, label2id={"replaced": 0}, output_loading_info=True)
    fresh = {"discriminator": fresh_names(disc, info)}
    own = Path(checkpoint) / "generator"  # a kopretrain RTD output carries its generator
    source = generator_checkpoint or (str(own) if (own / "config.json").is_file() else "")
    if source:
        gen, info = load_weights(AutoModelForMaskedLM, source, generator_revision if generator_checkpoint else None,
                                 what="generator-checkpoint", output_loading_info=True)
        check_generator(gen.config, config, source)
        if gen.config.hidden_size != config.hidden_size:
            raise StageError(f"generator {source}: hidden size {gen.config.hidden_size} differs from "
                             f"the checkpoint's {config.hidden_size}; embeddings cannot be shared")
        fresh["generator"] = fresh_names(gen, info)
        return {"discriminator": disc, "generator": gen, "generator_source": source, "fresh": fresh,
                "new_head": _new_head(fresh, "generator's MLM head")}
    gen_config = type(config).from_dict({**config.to_dict(), "architectures": None})
    gen_config.num_hidden_layers = max(1, math.ceil(config.num_hidden_layers * (ratio or 0.25)))
    gen = AutoModelForMaskedLM.from_config(gen_config)
    if generator_init == "fresh":
        fresh["generator"] = _all_names(gen)
        return {"discriminator": disc, "generator": gen, "new_head": _new_head(fresh, "generator"), "fresh": fresh,
                "generator_source": f"fresh {gen_config.num_hidden_layers} layers, {checkpoint}'s width"}
    layers = disc.base_model.encoder.layer
    for i, layer in enumerate(gen.base_model.encoder.layer):
        layer.load_state_dict(layers[i].state_dict())
    copied = {id(p) for p in gen.base_model.encoder.layer.parameters()}
    fresh["generator"] = frozenset(n for n, p in gen.named_parameters(remove_duplicate=False) if id(p) not in copied)
    return {"discriminator": disc, "generator": gen, "new_head": _new_head(fresh, "generator's MLM head"), "fresh": fresh,
            "generator_source": f"lower {gen_config.num_hidden_layers} layers of {checkpoint}"}


def fresh_names(model, info: dict) -> frozenset[str]:
    """Names of ``model``'s parameters that ``from_pretrained`` did not load (missing from the
    checkpoint, or re-initialised because their shape differs): they start untrained."""
    keys = set(info.get("missing_keys", ())) | {k if isinstance(k, str) else k[0] for k in info.get("mismatched_keys", ())}
    return frozenset(n for n, _ in model.named_parameters(remove_duplicate=False) if n in keys)


def _new_head(fresh: dict[str, frozenset[str]], generator_part: str) -> list[str]:
    """RTD's ``new_head``: the parts with untrained parameters, named for the warm-up advice."""
    return [name for name, key in (("RTD head", "discriminator"), (generator_part, "generator")) if fresh[key]]


def _all_names(model) -> frozenset[str]:
    return frozenset(n for n, _ in model.named_parameters(remove_duplicate=False))


def _archs(config) -> list[str]:
    return list(getattr(config, "architectures", None) or [])


def check_generator(gen, disc, source: str) -> None:
    """A generator shares the discriminator's embeddings: same vocabulary and model family, or its
    token ids mean other tokens (it was resized to fit and trained on nonsense, silently)."""
    from kopretrain.runs.records import StageError

    if gen.vocab_size != disc.vocab_size or gen.model_type != disc.model_type:
        raise StageError(f"--generator-checkpoint {source}: a {gen.model_type} model with {gen.vocab_size} tokens, "
                         f"the checkpoint a {disc.model_type} one with {disc.vocab_size}: a generator must share its "
                         "vocabulary (take the generator published with the discriminator)")


def load_checkpoint(checkpoint: str, revision: str | None, objective: str, *, generator_checkpoint: str = "",
                    generator_size_ratio: float = 0.25, generator_init: str = "lower",
                    generator_revision: str | None = None) -> dict[str, Any]:
    """Continue from a local dir or Hub id (BERT MLM, ELECTRA discriminator or generator).

    MLM-family objectives load ``AutoModelForMaskedLM`` (an ELECTRA discriminator gets a fresh MLM
    head). RTD needs an ELECTRA discriminator; its generator comes from ``generator_checkpoint``,
    (at ``generator_revision``: another repo has its own history, so ``revision`` never applies to it),
    else from ``<checkpoint>/generator`` (a kopretrain RTD output), else a new small generator is
    built to share the discriminator's embeddings (KcELECTRA publishes only the discriminator).
    ``new_head`` names the parts that start untrained (pretrain's head warm-up advice reads it) and
    ``fresh`` maps each model's key to the names of its parameters that do (the head warm-up trains
    those alone first; see :func:`kopretrain.train.head_warmup.head_parameter_names`)."""
    from transformers import AutoModelForMaskedLM, ElectraForMaskedLM, ElectraForPreTraining

    from kopretrain.hub.loading import check_encoder, check_model_ref, load_config, load_weights
    from kopretrain.runs.records import StageError

    if generator_checkpoint:  # a local folder with --generator-revision is refused, not recorded as applied
        check_model_ref(generator_checkpoint, "generator-checkpoint", generator_revision)
    config = load_config(checkpoint, revision, what="checkpoint")
    check_encoder(config, checkpoint, "checkpoint")
    if objective != "rtd":
        model, info = load_weights(AutoModelForMaskedLM, checkpoint, revision, what="checkpoint", output_loading_info=True)
        fresh = fresh_names(model, info)
        return {"mlm": model, "new_head": ["MLM head"] if fresh else [], "fresh": {"mlm": fresh}}
    if config.model_type != "electra":
        return _encoder_rtd(checkpoint, revision, config, generator_checkpoint, generator_size_ratio, generator_init,
                            generator_revision)
    if "ElectraForMaskedLM" in _archs(config):
        raise StageError(f"checkpoint {checkpoint} is an ELECTRA generator; pass the discriminator as checkpoint "
                         "and this one as generator_checkpoint")
    disc, info = load_weights(ElectraForPreTraining, checkpoint, revision, what="checkpoint", output_loading_info=True)
    fresh = {"discriminator": fresh_names(disc, info)}
    own = Path(checkpoint) / "generator"
    gen_source = generator_checkpoint or (str(own) if (own / "config.json").is_file() else "")
    if gen_source:
        gen, info = load_weights(ElectraForMaskedLM, gen_source, generator_revision if generator_checkpoint else None,
                                 what="generator-checkpoint", output_loading_info=True)
        check_generator(gen.config, disc.config, gen_source)
        if gen.config.embedding_size != disc.config.embedding_size:
            raise StageError(f"generator {gen_source}: embedding_size {gen.config.embedding_size} differs from the "
                             f"discriminator's {disc.config.embedding_size}; embeddings cannot be shared")
        fresh["generator"] = fresh_names(gen, info)
    else:
        gen = ElectraForMaskedLM(generator_config(disc.config, generator_size_ratio))
        fresh["generator"] = _all_names(gen)
    return {"discriminator": disc, "generator": gen, "generator_source": gen_source or "new", "fresh": fresh,
            "new_head": _new_head(fresh, "generator")}


def check_vocab_extends(base_tokenizer, tokenizer) -> None:
    """Refuse a tokenizer that renumbers the checkpoint's tokens (an *extended* vocab keeps them).

    Embedding rows are indexed by id: ``사랑`` at id 8,000 in the checkpoint must still be 8,000."""
    from kopretrain.runs.records import StageError

    new = tokenizer.get_vocab()
    moved = [t for t, i in base_tokenizer.get_vocab().items() if new.get(t) != i]
    if moved:
        raise StageError(f"tokenizer does not extend the checkpoint's vocabulary: {len(moved)} tokens are missing "
                         f"or renumbered (e.g. {moved[:5]}); build it with vocab's extend mode (--extend-from), "
                         "or set --tokenizer checkpoint to use the checkpoint's own (in a pipeline "
                         "`tokenizer: checkpoint`: an empty one is filled with the vocab stage's output)")


def parameter_counts(models: dict[str, Any]) -> dict[str, int]:
    return {name: sum(p.numel() for p in m.parameters()) for name, m in models.items() if hasattr(m, "parameters")}
