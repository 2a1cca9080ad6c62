"""pretrain: MLM, whole-word, span (SpanBERT) or ELECTRA RTD pretraining, from scratch or continued.

    kopretrain pretrain --input runs/x/analyze --tokenizer runs/x/vocab --objective rtd -o runs/x/pretrain
    torchrun --nproc_per_node 2 -m kopretrain pretrain ...          # same command, DDP (gloo on CPU)

The recipe reads top to bottom: setup (tokenizer -> model -> data -> Trainer), train (continuing
from ``<output>.partial/checkpoints`` when an interrupted run with the same config is rerun),
save (``save_pretrained`` safetensors + tokenizer + ``kopretrain.json``; RTD: discriminator at
the top, generator in ``generator/``), cleanup (checkpoints and the data cache are deleted).
Reusable pieces: kopretrain/train (models, objectives, rtd, pretrain_data, pretrain_trainer).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from kopretrain.runs.stage import Stage, StageConfig
from kopretrain.train.masking import MaskingConfig
from kopretrain.runs.records import StageError, StageRun, write_json

CHECKPOINTS = "checkpoints"


@dataclass
class PretrainConfig(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("input", "tokenizer", "checkpoint", "generator_checkpoint")
    REQUIRED: ClassVar[tuple[str, ...]] = ("input",)
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ("max_minutes", "report_to", "head_warmup_steps", "head_lr")
    SPEED_FIELDS: ClassVar[tuple[str, ...]] = ("dataloader_workers", "num_proc")
    WIRING: ClassVar[dict[str, str | tuple[str, ...]]] = {"input": ("analyze", "normalize"), "tokenizer": "vocab"}

    input: str = ""
    """Data stage output (analyze or normalize) whose train split is pretrained on; dev is the eval set."""
    tokenizer: str = ""
    """Tokenizer dir (vocab output). With init=checkpoint, empty or 'checkpoint' uses the checkpoint's own."""
    init: Literal["scratch", "checkpoint"] = "scratch"
    """scratch: a fresh model of `preset`; checkpoint: continue from `checkpoint`."""
    objective: Literal["mlm", "wwm", "span", "rtd"] = "mlm"
    """mlm (BERT), wwm (whole-word), span (SpanBERT) or rtd (ELECTRA replaced-token detection)."""
    model_type: Literal["auto", "bert", "electra"] = "auto"
    """Architecture from scratch; auto: electra for rtd, bert otherwise."""
    preset: Literal["tiny", "small", "base"] = "tiny"
    """Model size from scratch (models.py): tiny 4x256 (CPU), small 12x256 (ELECTRA-Small), base 12x768."""
    hidden_size: int = 0
    """Override the preset's hidden size (0: preset)."""
    num_layers: int = 0
    """Override the preset's layer count (0: preset)."""
    heads: int = 0
    """Override the preset's attention heads (0: preset)."""
    intermediate_size: int = 0
    """Override the preset's feed-forward size (0: preset)."""
    embedding_size: int = 0
    """Override ELECTRA's factorized embedding size (0: preset; BERT always uses hidden_size)."""
    generator_size_ratio: float = 0.0
    """RTD generator size as a fraction of the discriminator's: hidden size from scratch (0: the preset's,
    1/4 or 1/3); number of layers on a BERT/XLM-R checkpoint (0: 1/4; embeddings shared, so same width)."""
    checkpoint: str = ""
    """init=checkpoint: model dir or Hub id (BERT MLM, ELECTRA discriminator or generator; for rtd
    the discriminator, with the generator in --generator-checkpoint)."""
    revision: str = ""
    """Hub revision/tag/commit of `checkpoint`; pin it (e.g. KcELECTRA needs v2021)."""
    generator_checkpoint: str = ""
    """RTD: generator dir or Hub id; empty: <checkpoint>/generator if present, else a new small generator."""
    generator_revision: str = ""
    """Hub revision/tag/commit of `generator_checkpoint` (its own repo: `revision` does not apply to it)."""
    generator_init: Literal["lower", "fresh"] = "lower"
    """RTD on a BERT/XLM-R checkpoint without a generator: its generator's layers start as a copy of the
    checkpoint's lower layers, or at random (both share its embeddings). On multilingual-e5-small, a
    contrastive checkpoint, fresh fine-tuned better (+2.8 at 1k labels, +1.6 at 10k; BENCHMARKS.md)."""
    word_level: Literal["eojeol", "morpheme"] = "eojeol"
    """wwm / word spans: a word is an eojeol, or a kiwipiepy morpheme (needs analyze output)."""
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    """How tokens are selected and corrupted (YAML: a `masking:` section; CLI: --masking.mlm-probability ...)."""
    max_length: int = 128
    """Sequence length in tokens (packed rows are exactly this long)."""
    packing: Literal["pack", "bucket"] = "pack"
    """pack: concatenate reviews into full rows; bucket: one review per row, batches of similar length."""
    batch_size: int = 32
    """Sequences per device per step."""
    grad_accum: int = 1
    """Gradient accumulation steps."""
    lr: float = 5e-4
    """Peak learning rate (ELECTRA-Small: 5e-4 from scratch; ~5e-5 is usual when continuing)."""
    warmup_ratio: float = 0.06
    """Fraction of steps with linear warmup."""
    head_warmup_steps: int = 0
    """init=checkpoint: for the first N steps train only what the checkpoint lacks (a new MLM/RTD head, a
    new generator; everything it has stays still), so a new random head's first gradients do not
    disturb the encoder (LP-FT, Kumar et al. 2022; train/head_warmup.py). 0: all train from step 1.
    On multilingual-e5-small (60 of 240 steps, --head-lr 1e-3) against no warm-up: WWM +2.4 macro-F1 at 1k
    labels and +0.9 at 10k, RTD +2.2 at 1k (BENCHMARKS.md). Off by default (train/head_warmup.advise says
    why); a run whose head is new and not warmed up is warned about."""
    head_lr: float = 0.0
    """Peak learning rate of that new head (and generator) throughout (0: --lr). A new head needs more
    than the ~5e-5 that suits continuing an encoder; what the checkpoint has keeps --lr."""
    lr_scheduler: Literal["linear", "cosine"] = "linear"
    """Decay after warmup."""
    weight_decay: float = 0.01
    """AdamW weight decay (not on biases/LayerNorm)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0: off)."""
    max_minutes: float = 0.0
    """Wall-clock budget: warmup and linear decay are laid over these minutes and training stops at
    the deadline (0: off). epochs/max_steps still cap the run; the decay ends at whichever comes first."""
    max_steps: int = 0
    """Optimizer steps (0: run `epochs`)."""
    epochs: float = 1.0
    """Passes over the training rows when max_steps is 0."""
    eval_steps: int = 500
    """Evaluate every N steps (and before the first step)."""
    save_steps: int = 500
    """Checkpoint every N steps (kept in <output>.partial/checkpoints until the run finishes)."""
    logging_steps: int = 50
    """Log loss, tokens/s and pad share every N steps."""
    max_eval_texts: int = 2000
    """Dev reviews in the eval set (fixed masks)."""
    max_train_texts: int = 0
    """Use a seeded random subset of this many training reviews (0: all)."""
    seed: int = 42
    """Seed for initialization, data order, masking and evaluation."""
    report_to: Literal["tensorboard", "wandb", "none"] = "tensorboard"
    """Experiment tracking: TensorBoard event files in <output>/runs (`tensorboard --logdir
    <output>`), Weights & Biases (needs wandb and a login), or none."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """auto: bf16 where the CPU/GPU supports it, else fp32 (fp16 on older GPUs)."""
    rtd_weight: float = 50.0
    """RTD: weight λ of the discriminator loss (ELECTRA: 50)."""
    gen_temperature: float = 1.0
    """RTD: sampling temperature of the generator."""
    dropout: float = -1.0
    """Hidden and attention dropout while pretraining (-1: the model's own, 0.1 for BERT/ELECTRA). 0 is
    faster on CPU and suits runs under an epoch; saved configs keep the model's values."""
    dataloader_workers: int = 0
    """DataLoader worker processes (0: collate in the training process)."""
    num_proc: int = 1
    """Processes for tokenization."""

    def unkeyed(self) -> tuple[str, ...]:
        return ("epochs",) if self.max_steps > 0 else ()  # max_steps decides the length

    def __post_init__(self) -> None:
        if self.objective == "rtd" and self.model_type == "bert":
            raise ValueError("--model-type bert cannot train --objective rtd (ELECTRA); use electra or auto")
        if self.init == "checkpoint" and not self.checkpoint:
            raise ValueError("--checkpoint: required with --init checkpoint (a model dir or Hub id)")
        if self.init == "scratch" and self.tokenizer in ("", "checkpoint"):
            raise ValueError("--tokenizer: a tokenizer dir (vocab output) is required with --init scratch")
        for name in ("max_length", "batch_size", "grad_accum", "eval_steps", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.max_length < 8:
            raise ValueError("--max-length must be >= 8")
        if self.head_warmup_steps < 0 or self.head_lr < 0:
            raise ValueError("--head-warmup-steps and --head-lr must be >= 0")
        if self.head_warmup_steps and self.init != "checkpoint":
            raise ValueError("--head-warmup-steps: needs --init checkpoint (from scratch every weight is new)")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("--warmup-ratio must be in [0, 1)")
        if self.max_minutes < 0:
            raise ValueError("--max-minutes must be >= 0 (0: no time budget)")
        if self.gen_temperature <= 0:
            raise ValueError("--gen-temperature must be > 0")
        if self.dropout != -1 and not 0 <= self.dropout < 1:
            raise ValueError("--dropout must be -1 (the model's own) or in [0, 1)")
        try:
            self.masking.replace_probs(self.objective)  # the rates with this objective's defaults
        except ValueError as exc:
            raise ValueError(f"--masking.{exc}") from None
        from kopretrain.train import pretrain_checks

        pretrain_checks.check(self)

    @property
    def arch_type(self) -> str:
        return "electra" if self.objective == "rtd" else ("bert" if self.model_type == "auto" else self.model_type)



# ---------------------------------------------------------------------------------------- recipe
def run(cfg: PretrainConfig, run: StageRun, callbacks=()) -> None:
    from transformers import set_seed

    from kopretrain.train import device, head_warmup, masking, pretrain_data, summary
    from kopretrain.train import pretrain_trainer as trainer_utils
    from kopretrain.tokenizer.embed import save_with_textprep
    from kopretrain.train.budget import TimeBudget
    from kopretrain.train.checkpoints import last_checkpoint
    from kopretrain.train.collators import premasked_collator

    # ---- setup: devices/ranks -> tokenizer -> model -> data -> Trainer
    args = training_arguments(cfg, run)
    main = args.process_index == 0
    set_seed(cfg.seed)
    tokenizer, prep, base = load_tokenizer(cfg)
    module, base = build_module(cfg, tokenizer, base)
    collator = masking.make_collator(tokenizer, cfg.objective, cfg.masking, seed=cfg.seed,
                                      pad_to_multiple_of=device.pad_multiple())
    data = pretrain_data.load_or_build(cfg, tokenizer, prep, collator, run.dir, args)
    # resume from the newest complete checkpoint of an interrupted identical run (and its clock)
    resume = last_checkpoint(run.dir / CHECKPOINTS) if run.resumed else None
    budget = TimeBudget.resumed(cfg.max_minutes, cfg.warmup_ratio, resume) if cfg.max_minutes > 0 else None
    head_warmup.advise(cfg.checkpoint, base.get("new_head", []), cfg.head_warmup_steps)
    lr_scale, warmup, warmup_record = head_warmup.setup(module, cfg.head_warmup_steps, cfg.head_lr, cfg.lr)
    trainer = make_trainer(cfg, run, args, module, data, trainer_utils.ContentSeededCollator(collator, cfg.seed),
                           premasked_collator(tokenizer), [*callbacks, *([budget] if budget else []), *warmup])
    trainer.budget, trainer.lr_scale = budget, lr_scale
    trainer.restore_tally(resume)

    # ---- train
    trainer.train(resume_from_checkpoint=resume)
    clock = trainer.clock()  # the whole run's training time, earlier attempts included
    last = trainer.eval_history[-1] if trainer.eval_history else {}
    final = {k: v for k, v in last.items() if k != "step"} if last.get("step") == trainer.state.global_step \
        else trainer.evaluate()

    # ---- save (main process) and record
    if main:
        module.export(run.dir)
        # every model folder carries its tokenizer, so pipeline("fill-mask", model=<out>/generator) works
        for folder in [run.dir] + [run.dir / sub for sub in ("generator",) if (run.dir / sub).is_dir()]:
            save_with_textprep(tokenizer, folder, prep)  # normalizer rules inside the tokenizer, kopretrain.json
        write_json(run.dir / "metrics.json", {"final": final, "history": trainer.eval_history})
    run.stats.update(
        objective=cfg.objective, base_model=base, data=data.stats,
        parameters={name: sum(p.numel() for p in m.parameters()) for name, m in module.exported().items()},
        train={**summary.train_summary(trainer, clock["seconds"]), "cpu_seconds": summary.cpu_total(args, clock["cpu_seconds"])},
        final_metrics=final,
        resumed_from=Path(resume).name if resume else None,
        time_budget=budget.record() if budget else None, head_warmup=warmup_record,
        ddp=summary.ddp_record(args, module),
    )
    c = data.counts
    run.set_counts(c["rows_in"], c["rows_out"], {k: v for k, v in c.items() if k not in ("rows_in", "rows_out")})

    # ---- cleanup: the output keeps the final weights only
    trainer.accelerator.wait_for_everyone()
    if main:
        for name in (CHECKPOINTS, pretrain_data.DATA_DIR):
            shutil.rmtree(run.dir / name, ignore_errors=True)


# ---------------------------------------------------------------------------------------- setup
def load_tokenizer(cfg: PretrainConfig):
    """``(tokenizer, TextPrep, base-model record)``; a given tokenizer must extend a checkpoint's vocab."""
    from kopretrain.hub.loading import check_model_ref, load_tokenizer as load, resolved_commit
    from kopretrain.inference.classifier import resolve_textprep
    from kopretrain.text import textprep
    from kopretrain.tokenizer.fingerprint import vocab_hash
    from kopretrain.train import models

    own = cfg.tokenizer in ("", "checkpoint")
    if cfg.init == "scratch":
        tokenizer = load(cfg.tokenizer, what="tokenizer")
        prep = textprep.load(cfg.tokenizer)
        if prep is None:
            raise StageError(f"--tokenizer {cfg.tokenizer}: no kopretrain.json (use a vocab stage output)")
        # from scratch, position rows past max_length never train: the saved tokenizer and card say so
        tokenizer.model_max_length = cfg.max_length
        prep.extra = {**prep.extra, "max_length": cfg.max_length}
        return tokenizer, prep, {"init": "scratch", "vocab_sha256": vocab_hash(tokenizer)}
    check_model_ref(cfg.checkpoint, "checkpoint", cfg.revision or None)  # a missing folder named as one, not as a bad Hub id
    base_tok = load(cfg.checkpoint, cfg.revision, what="checkpoint")
    if own:
        tokenizer = base_tok
        prep, _ = resolve_textprep(cfg.checkpoint, cfg.input, cfg.revision)
    else:
        tokenizer = load(cfg.tokenizer, what="tokenizer")
        models.check_vocab_extends(base_tok, tokenizer)
        prep = textprep.load(cfg.tokenizer) or resolve_textprep(cfg.checkpoint, cfg.input, cfg.revision)[0]
    base = {
        "init": "checkpoint", "id": cfg.checkpoint, "revision": cfg.revision or None,
        "commit": resolved_commit(cfg.checkpoint, cfg.revision),
        "vocab_sha256": vocab_hash(base_tok), "vocab_size": len(base_tok),
        "tokenizer": "checkpoint" if own else cfg.tokenizer,
    }
    if not Path(cfg.checkpoint).exists() and not cfg.revision:
        print(f"[pretrain] warning: {cfg.checkpoint} is not pinned; set --revision (Hub branches get overwritten)")
    if cfg.lr >= 3e-4:  # the from-scratch default, kept so finished outputs stay valid
        print(f"[pretrain] warning: --lr {cfg.lr:g} is a from-scratch rate; continuing a trained checkpoint "
              "usually wants ~5e-5 (higher rates undo what it learned)")
    return tokenizer, prep, base


def build_module(cfg: PretrainConfig, tokenizer, base: dict):
    """The trainable wrapper (MaskedLM or ElectraRTD) and the base record completed with the model."""
    from kopretrain.hub.loading import resolved_commit
    from kopretrain.train import head_warmup, models
    from kopretrain.train.objectives import MaskedLM
    from kopretrain.train.rtd import ElectraRTD

    if cfg.init == "scratch":
        arch = models.resolve_arch(cfg.preset, cfg.arch_type, num_layers=cfg.num_layers, hidden_size=cfg.hidden_size,
                                   heads=cfg.heads, intermediate_size=cfg.intermediate_size,
                                   embedding_size=cfg.embedding_size, generator_size_ratio=cfg.generator_size_ratio,
                                   max_position_embeddings=max(512, cfg.max_length))
        parts = models.build_scratch(cfg.objective, cfg.arch_type, arch, tokenizer)
        base = {**base, "preset": cfg.preset, "arch": arch.__dict__}
    else:
        parts = models.load_checkpoint(cfg.checkpoint, cfg.revision, cfg.objective,
                                       generator_checkpoint=cfg.generator_checkpoint,
                                       generator_revision=cfg.generator_revision or None,
                                       generator_size_ratio=cfg.generator_size_ratio or 0.25,
                                       generator_init=cfg.generator_init)
        base = {**base, "architecture": type(parts.get("mlm", parts.get("discriminator"))).__name__,
                "generator": parts.get("generator_source"), "new_head": parts["new_head"]}
        if cfg.generator_checkpoint:
            base["generator_revision"] = cfg.generator_revision or None
            base["generator_commit"] = resolved_commit(cfg.generator_checkpoint, cfg.generator_revision)
    main = parts.get("mlm", parts.get("discriminator"))
    from kopretrain.hub.loading import usable_positions

    if (usable_positions(main.config) or cfg.max_length) < cfg.max_length:
        raise StageError(f"--max-length {cfg.max_length} exceeds the {usable_positions(main.config)} positions "
                         "the model holds")
    if len(tokenizer) < main.config.vocab_size // 2:  # transformers builds a specials-only one where files lack
        raise StageError(f"--checkpoint {cfg.checkpoint}: its tokenizer has {len(tokenizer)} tokens for a model of "
                         f"{main.config.vocab_size}: are its tokenizer files missing? (every text would be [UNK])")
    if len(tokenizer) > main.config.vocab_size:  # an extended vocabulary: new rows start at the mean
        main.resize_token_embeddings(len(tokenizer))
        base["resized_vocab_to"] = len(tokenizer)
    if cfg.objective == "rtd":
        gen = parts["generator"]
        if gen.config.vocab_size != main.config.vocab_size:
            gen.resize_token_embeddings(main.config.vocab_size)
        module = ElectraRTD(gen, main, cfg.rtd_weight, cfg.gen_temperature, special_ids=tokenizer.all_special_ids)
    else:
        module = MaskedLM(main)
    if "fresh" in parts:  # after tying and resizing: shared tensors count as the checkpoint's
        module.new_parameters = head_warmup.new_parameter_names(module, parts, parts["fresh"])
    if cfg.dropout >= 0:
        set_dropout(module, cfg.dropout)
    return module, base


def set_dropout(module, p: float) -> None:
    """Set every dropout layer's rate for this run only; the configs that get saved are untouched, so
    a fine-tune of the result gets the architecture's usual dropout back. (Budget pretraining drops
    dropout, as in Cramming (Geiping & Goldstein 2023): under one epoch there is nothing to
    regularize, and on CPU the Bernoulli masks cost ~15% of a step.)"""
    from torch import nn

    for layer in module.modules():
        if isinstance(layer, nn.Dropout):
            layer.p = p


def training_arguments(cfg: PretrainConfig, run: StageRun):
    """TrainingArguments (this also sets up the device and, under torchrun, the process group)."""
    import torch
    from transformers import TrainingArguments

    from kopretrain.train import tracking
    from kopretrain.train.checkpoints import last_checkpoint
    from kopretrain.train.device import trainer_precision_kwargs

    cpu = not torch.cuda.is_available()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return TrainingArguments(
        output_dir=str(run.dir / CHECKPOINTS),
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=2 * cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.lr, weight_decay=cfg.weight_decay,
        warmup_steps=float(cfg.warmup_ratio), lr_scheduler_type=cfg.lr_scheduler, max_grad_norm=cfg.max_grad_norm,
        max_steps=cfg.max_steps or -1, num_train_epochs=cfg.epochs,
        eval_strategy="steps", eval_steps=cfg.eval_steps,  # a run killed before its first save starts over:
        eval_on_start=last_checkpoint(run.dir / CHECKPOINTS) is None,  # it measures step 0 again
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=2,
        logging_steps=cfg.logging_steps, logging_first_step=True, include_num_input_tokens_seen="non_padding",
        seed=cfg.seed, data_seed=cfg.seed, dataloader_num_workers=cfg.dataloader_workers,
        remove_unused_columns=False, report_to=tracking.trainer_report_to(cfg.report_to), disable_tqdm=True,
        use_cpu=cpu,
        ddp_backend="gloo" if (cpu and distributed) else None, ddp_find_unused_parameters=False,
        **trainer_precision_kwargs(cfg.precision),
    )


def make_trainer(cfg: PretrainConfig, run: StageRun, args, module, data, collator, eval_collator, callbacks=()):
    from transformers import PrinterCallback

    from kopretrain.train import pretrain_trainer as trainer_utils, tracking

    trainer = trainer_utils.PretrainTrainer(
        model=module, args=args, train_dataset=data.train, eval_dataset=data.eval, data_collator=collator,
        callbacks=[trainer_utils.JsonlLogger(run.dir / "logs.jsonl"), trainer_utils.Progress(),
                   *tracking.callbacks(cfg.report_to, run.dir), *callbacks],
        eval_seed=cfg.seed, eval_collator=eval_collator,
        bucket=(data.train["length"], cfg.batch_size, cfg.seed) if cfg.packing == "bucket" else None,
    )
    trainer.remove_callback(PrinterCallback)
    return trainer


# ---------------------------------------------------------------------------------------- record


STAGE = Stage("pretrain", PretrainConfig, run=run, distributed=True)
