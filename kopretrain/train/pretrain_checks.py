"""Pretrain options that make no sense together, refused when the config is built (before any work).

Each was accepted and silently ignored: ``--checkpoint`` without ``--init checkpoint`` trained from
scratch, ``--preset`` with a checkpoint changed nothing, an RTD option with ``--objective mlm`` did
nothing, ``--epochs 0`` saved a random model as a finished run. ``cfg`` is a
:class:`kopretrain.pretrain.PretrainConfig`.
"""

from __future__ import annotations

from typing import Any

# Options that describe a model built from scratch: a checkpoint brings its own architecture.
SCRATCH_ONLY = ("preset", "hidden_size", "num_layers", "heads", "intermediate_size", "embedding_size", "model_type")
# Options of ELECTRA replaced-token detection only.
RTD_ONLY = ("generator_checkpoint", "generator_revision", "generator_init", "generator_size_ratio", "rtd_weight",
            "gen_temperature")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _changed(cfg: Any, names: tuple[str, ...]) -> list[str]:
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    return [_flag(n) for n in names if getattr(cfg, n) != defaults[n]]


def check(cfg: Any) -> None:
    """Raise ValueError naming the options that do nothing (or nothing sensible) with the others."""
    if cfg.init == "scratch":
        given = [_flag(n) for n in ("checkpoint", "revision") if getattr(cfg, n)]
        if given:
            raise ValueError(f"{', '.join(given)}: only with --init checkpoint (add it, or a model is trained "
                             "from scratch)")
    else:
        given = _changed(cfg, SCRATCH_ONLY)
        if given:
            raise ValueError(f"{', '.join(given)}: the checkpoint decides the architecture; these only apply with "
                             "--init scratch")
    if cfg.objective != "rtd" and (given := _changed(cfg, RTD_ONLY)):
        raise ValueError(f"{', '.join(given)}: only with --objective rtd")
    if cfg.word_level != "eojeol" and not (cfg.objective == "wwm" or
                                           (cfg.objective == "span" and cfg.masking.span_unit == "word")):
        raise ValueError("--word-level: only with --objective wwm, or span with --masking.span-unit word")
    if cfg.objective != "span" and (given := _changed(cfg.masking, ("span_p", "max_span", "span_unit"))):
        raise ValueError(f"{', '.join(g.replace('--', '--masking.') for g in given)}: only with --objective span")
    if cfg.lr_scheduler != "linear" and cfg.max_minutes > 0:
        raise ValueError("--lr-scheduler cosine with --max-minutes: the time budget lays a linear decay over "
                         "the minutes; drop one")
    if cfg.lr < 0:  # 0 is allowed: one step at rate 0 writes the initialised model (experiments/study.py)
        raise ValueError("--lr must be >= 0")
    if cfg.lr == 0 and cfg.head_lr:  # the head's rate is kept as a multiple of --lr
        raise ValueError("--head-lr with --lr 0: to train only the new head, give --head-warmup-steps N and "
                         "--max-steps N with a non-zero --lr")
    if cfg.generator_checkpoint and (given := _changed(cfg, ("generator_size_ratio", "generator_init"))):
        raise ValueError(f"{', '.join(given)}: the generator comes from --generator-checkpoint (its size and "
                         "weights are its own)")
    if cfg.generator_revision and not cfg.generator_checkpoint:
        raise ValueError("--generator-revision pins --generator-checkpoint: give it too")
    if cfg.max_steps < 0:
        raise ValueError("--max-steps must be >= 0 (0: run --epochs)")
    if cfg.max_steps == 0 and cfg.epochs <= 0:
        raise ValueError("--epochs must be > 0 when --max-steps is 0 (nothing would train)")
    if cfg.generator_size_ratio and not 0 < cfg.generator_size_ratio <= 1:
        raise ValueError(f"--generator-size-ratio must be in (0, 1] (0: the default), got {cfg.generator_size_ratio}")
    if cfg.init == "scratch":
        from kopretrain.train.models import resolve_arch

        resolve_arch(cfg.preset, cfg.arch_type, num_layers=cfg.num_layers, hidden_size=cfg.hidden_size,
                     heads=cfg.heads, intermediate_size=cfg.intermediate_size, embedding_size=cfg.embedding_size,
                     generator_size_ratio=cfg.generator_size_ratio)  # --hidden-size 30 --heads 4, before any work


def reset_for(cfg: Any, objective: str) -> dict[str, Any]:
    """The changes that switch ``cfg`` to ``objective``: options that only applied to the old one go
    back to their defaults (an RTD pipeline's --rtd-weight means nothing to an MLM run of it)."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    changes: dict[str, Any] = {"objective": objective}
    if objective != "rtd":
        changes.update({n: defaults[n] for n in RTD_ONLY})
    if objective not in ("wwm", "span"):
        changes["word_level"] = defaults["word_level"]
    if objective != "span":
        changes["masking"] = dataclasses.replace(cfg.masking, **{f.name: f.default for f in
                                                               dataclasses.fields(cfg.masking)
                                                               if f.name in ("span_p", "max_span", "span_unit")})
    return changes
