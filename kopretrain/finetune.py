"""Fine-tune a 3-class sentiment classifier (negative / neutral / positive).

Recipe, top to bottom: resolve the model, its tokenizer and TextPrep -> read train/dev, apply
the label budget -> tokenize -> train with dev macro-F1 checkpoint selection -> save the best
model (safetensors) with its tokenizer, ``kopretrain.json`` and ``dev_metrics.json``.
The test split is never read here: model selection uses dev only.

    kopretrain finetune --model runs/nsmc/pretrain --data runs/nsmc/normalize --epochs 2 -o runs/nsmc/finetune
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

from kopretrain.data.files import LABELS
from kopretrain.runs.stage import Stage, StageConfig
from kopretrain.runs.records import StageRun, write_json
from kopretrain.train.finetune_record import class_weights  # noqa: F401 - also kopretrain.finetune.class_weights
from kopretrain.train.finetune_rows import Rows, encode, load_labelled, prepare_rows  # noqa: F401 - re-exported

METRIC = "macro_f1"


@dataclass
class FinetuneConfig(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("model", "data", "teacher")
    REQUIRED: ClassVar[tuple[str, ...]] = ("model", "data")
    CONTENT_FIELDS: ClassVar[tuple[str, ...]] = ("soft_targets",)
    WIRING: ClassVar[dict[str, str]] = {"model": "pretrain", "data": "normalize"}
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ("reinit_layers", "max_minutes", "head_lr", "layer_lr_decay",
                                                "keep_layers", "report_to", "pooler_init", "freeze_layers",
                                                "restarts", "teacher", "pseudo_pool", "pseudo_per_class", "rating_smoothing",
                                                "soft_targets", "soft_weight", "ngram_blend", "calibrate",
                                                "data_seed", "members", "rdrop", "teacher_revision", "pooling")

    model: str = ""
    """Pretrained model: a kopretrain pretrain output, any save_pretrained directory, or a Hub id
    (e.g. beomi/KcELECTRA-base; pin --revision)."""
    revision: str = ""
    """Hub revision (tag/branch/commit) for a Hub model, e.g. v2021 for the 50k-vocab KcELECTRA."""
    data: str = ""
    """Data stage output with train.parquet and dev.parquet (labels negative/neutral/positive)."""
    epochs: float = 3.0
    """Training epochs (ignored when max_steps > 0)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1 or 0: run all epochs)."""
    max_minutes: float = 0.0
    """Wall-clock budget: warmup and linear decay are laid over these minutes and training stops at
    the deadline (0: off). epochs/max_steps still cap the run; the decay ends at whichever comes first."""
    lr: float = 5e-5
    """Peak learning rate (linear warmup, linear decay)."""
    head_lr: float = 0.0
    """Peak learning rate of the classification head (classifier, and a pooler the checkpoint
    lacks): a fresh head on a pretrained encoder learns faster at ~10x lr (0: same as lr)."""
    layer_lr_decay: float = 1.0
    """Layer-wise learning-rate decay: layer i of L trains at lr * decay^(L-i), the embeddings at
    decay^(L+1), so lower, more general layers move least (1: off; 0.8-0.95 for pretrained encoders)."""
    keep_layers: int = 0
    """Keep only the first K encoder layers of the model (0: all): ~L/K times faster training and
    inference at some cost in accuracy (BENCHMARKS.md). The saved model has K layers."""
    freeze_layers: int = 0
    """Freeze the embeddings and the first N encoder layers (0: train all): no backward pass or
    optimizer state below layer N, so a time budget trains on more rows (12-layer e5-small on 2
    cores: N=6 1.4x the rows per second, yet 1.4 macro-F1 lower in the same 10 minutes;
    BENCHMARKS.md). The saved model is complete."""
    pooler_init: Literal["identity", "random"] = "identity"
    """A pooler the checkpoint lacks (MLM/RTD saves, mean-pooling encoders such as e5): identity
    hands the checkpoint's [CLS] vector to the classifier unscrambled from the first step; random is
    transformers' default, which stalled fine-tunes of continued checkpoints at chance (BENCHMARKS.md)."""
    pooling: Literal["cls", "mean"] = "cls"
    """What the classifier reads: cls, the first token's state (transformers' heads); mean, the mean
    of all token states, as sentence-embedding checkpoints (e5) were trained (+1.1 macro-F1 over cls
    on multilingual-e5-small at 1k labels, BENCHMARKS.md): one appended, frozen encoder layer, so the
    saved model is still a plain *ForSequenceClassification."""
    batch_size: int = 32
    """Training batch size (evaluation uses twice this)."""
    max_length: int = 128
    """Truncate inputs to this many tokens (capped at the model's max_position_embeddings)."""
    class_weight: Literal["none", "balanced"] = "none"
    """balanced: weight the loss by n / (3 * count(class)) so rare classes count more."""
    rdrop: float = 0.0
    """R-Drop weight alpha (Liang et al. 2021; 0: off): each training batch runs twice, with different
    dropout, and the loss adds alpha x the symmetric KL between the two predictions. ~1.5x the time.
    NSMC 1k labels, one seed, alpha 1: -1.6 macro-F1 against one fine-tune (BENCHMARKS.md)."""
    rating_smoothing: float = 0.0
    """Soft targets from the rating behind each label (0: off, one-hot labels): a row rated r trains
    toward every class in proportion to exp(-(k - r)^2 / 2 sigma^2) summed over the rating values k
    of that class, so a 4 of 10 is mostly negative and partly neutral. Sigma in rating points. On
    NSMC (sigma 1) it did not help the e5 checkpoint at 1k labels or all rows, TF-IDF +0.4 at 1k
    (BENCHMARKS.md). Needs the data's rating column; rows without one (pseudo-labels) stay one-hot."""
    soft_targets: str = ""
    """Distillation (empty: off): a Parquet file with id and prob_negative/prob_neutral/prob_positive
    for training rows (what `kopretrain label` writes, from any teacher), or tfidf: evaluate's TF-IDF
    baseline fitted here out of fold (2 folds by group) on the labelled rows. A row with teacher
    probabilities trains toward (1 - W) x its label + W x them (W: --soft-weight), others toward their label."""
    soft_weight: float = 0.5
    """W above: how much of a --soft-targets row's target comes from the teacher's probabilities."""
    ngram_blend: bool = False
    """Also fit evaluate's TF-IDF char n-gram model on the labelled rows and save it beside the
    encoder: evaluate and label then score a * log p(encoder) + b * log p(n-grams), a and b fitted on
    dev by log-likelihood (plain transformers loads the encoder alone). NSMC self-trained students,
    3 seeds: +1.6 / +1.2 macro-F1 over the encoder alone at 1k / 10k labels, calibrated (BENCHMARKS.md)."""
    calibrate: bool = True
    """Fit a softmax temperature on dev after training and fold it into the classifier head, so the
    saved model's probabilities are calibrated wherever it is loaded (same predictions; Guo et al. 2017)."""
    label_budget: int = 0
    """Train on exactly N labelled examples, stratified by label and seeded (0: all), for
    low-resource studies (more than the split has: all of them, with a warning)."""
    seed: int = 42
    """Seed for the label-budget sample, head initialisation, shuffling and dropout."""
    data_seed: int = -1
    """Seed for the order of the training rows and dropout only (-1: --seed). Runs that share --seed and differ
    here train on the same labelled rows from the same head (what --members does)."""
    members: int = 1
    """Fine-tune K times (data seeds --data-seed + 0..K-1, the same rows and head, the time budget
    shared) and save the greedy weight soup: one model, K times the training time (Wortsman et al. 2022).
    K=3 at 1k NSMC labels, 3 seeds: +1.45 macro-F1 over one fine-tune, level with a 3-model ensemble (BENCHMARKS.md)."""
    early_stopping_patience: int = 3
    """Stop after this many dev evaluations without a macro-F1 gain (0: never stop early)."""
    eval_steps: int = 500
    """Evaluate on dev (and checkpoint) every N steps; also at the end. The best dev macro-F1 wins."""
    dev_max_examples: int = 0
    """Evaluate on a stratified, seeded sample of this many dev rows (0: all) to keep CPU runs fast."""
    warmup_ratio: float = 0.1
    """Share of the steps spent warming up the learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    report_to: Literal["tensorboard", "wandb", "none"] = "tensorboard"
    """Experiment tracking: TensorBoard event files in <output>/runs (`tensorboard --logdir
    <output>`), Weights & Biases (needs wandb and a login), or none."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """auto: bf16 where the CPU/GPU supports it (fp16 on GPUs without bf16), else fp32."""
    group_by_length: bool = True
    """Batch reviews of similar token length together (less padding; reviews are short and varied)."""
    logging_steps: int = 50
    """Log the training loss every N steps."""
    reinit_layers: int = 0
    """Re-initialise the top N transformer layers before fine-tuning (0: keep all), for encoders
    whose top layers are specialised to their pretraining task (Zhang et al. 2021)."""
    teacher: str = ""
    """Self-training (empty: off): a fine-tuned classifier (e.g. this stage run without --teacher on
    the same rows) labels --pseudo-pool unlabelled train rows, and the model trains on its labelled
    rows plus the --pseudo-per-class most confident labels per class (+1.2 macro-F1 at 1k NSMC
    labels; BENCHMARKS.md). The teacher scores in --precision fp32/bf16, else auto (as label does).
    In a pipeline: a finetune@teacher section and teacher: finetune@teacher."""
    teacher_revision: str = ""
    """Hub revision (tag/branch/commit) of a Hub --teacher; its kopretrain.json is read at the same one."""
    pseudo_pool: int = 40_000
    """Train rows the teacher labels: rows without a label first, then labelled rows outside the label
    budget (their labels only report pseudo-label accuracy); a seeded sample, never dev or test."""
    pseudo_per_class: int = 3_000
    """Pseudo-labelled rows kept per predicted class, the teacher's most confident."""
    restarts: int = 0
    """Start again with another seed (+1000 each time), up to N times, when the first 2 dev
    evaluations both sit at chance (under 0.05 macro-F1 above answering one label everywhere), as
    some seeds of continued checkpoints did (BENCHMARKS.md). Same label-budget rows; attempts share
    a time budget."""

    def unkeyed(self) -> tuple[str, ...]:
        return ("epochs",) if self.max_steps > 0 else ()  # max_steps decides the length

    def __post_init__(self):
        if self.max_steps < -1:
            raise ValueError("--max-steps: use -1 or 0 (all epochs) or a positive number")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ValueError("--epochs must be > 0 when --max-steps is not set")
        for name in ("batch_size", "max_length", "eval_steps", "logging_steps", "pseudo_pool", "pseudo_per_class",
                     "members"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive")
        for name in ("label_budget", "dev_max_examples", "early_stopping_patience", "reinit_layers", "keep_layers",
                     "freeze_layers", "restarts"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0 (0 turns it off)")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("--warmup-ratio must be in [0, 1)")
        if self.max_minutes < 0:
            raise ValueError("--max-minutes must be >= 0 (0: no time budget)")
        if self.members > 1 and self.restarts:  # a restart changes the head: the soup would average two heads
            raise ValueError("--members and --restarts: choose one (members share one head; a restart draws another)")
        if self.lr <= 0 or self.head_lr < 0:
            raise ValueError("--lr must be positive and --head-lr >= 0 (0: same as --lr)")
        for name in ("rating_smoothing", "rdrop"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0 (0: off)")
        if not 0 <= self.soft_weight <= 1:
            raise ValueError("--soft-weight must be in [0, 1]")
        if not 0 < self.layer_lr_decay <= 1:
            raise ValueError("--layer-lr-decay must be in (0, 1] (1: off)")



def load_model(cfg: FinetuneConfig):
    """``(classifier, label names, new)``: our label names, a head that does not fit 3 labels
    re-initialised, and ``new`` the names of the parameters the checkpoint did not provide."""
    from transformers import AutoModelForSequenceClassification

    from kopretrain.hub.loading import load_config, load_weights
    from kopretrain.train.layers import (append_mean_pooling_layer, identity_pooler, keep_bottom_layers,
                                         reinit_top_layers)
    from kopretrain.train.models import fresh_names

    config = load_config(cfg.model, cfg.revision)
    old = [str(v).lower() for _, v in sorted((int(k), v) for k, v in (config.id2label or {}).items())]
    names = old if sorted(old) == sorted(LABELS) else list(LABELS)  # keep a fine-tuned model's order
    model, info = load_weights(AutoModelForSequenceClassification, cfg.model, cfg.revision, num_labels=len(names),
                               id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
                               ignore_mismatched_sizes=True, output_loading_info=True)
    new = fresh_names(model, info)
    if cfg.pooler_init == "identity":
        identity_pooler(model, info.get("missing_keys", ()))
    if cfg.keep_layers:
        keep_bottom_layers(model, cfg.keep_layers)
    if cfg.reinit_layers:
        reinit_top_layers(model, cfg.reinit_layers)
    if cfg.pooling == "mean":  # after reinit: the pooling layer starts as a mean, not random
        new = new | append_mean_pooling_layer(model)  # new like the head: its rate, no layer decay
    return model, names, new


def run(cfg: FinetuneConfig, run: StageRun) -> None:
    from kopretrain.hub.loading import usable_positions
    from kopretrain.inference.classifier import resolve_textprep
    from kopretrain.train.finetune_checks import check_inputs
    from kopretrain.tokenizer.embed import save_with_textprep
    from kopretrain.train.calibration import fold_temperature
    from kopretrain.train.finetune_record import dev_record, record_stats
    from kopretrain.train.ngram_blend import dev_logits, fit_blend
    from kopretrain.train.restarts import ATTEMPT_FILE, Attempt, warn_if_single_class
    from kopretrain.train.soup import cook, member_config, remove_members, soup_budget, train_members

    # ---- setup: model, tokenizer, text preparation, data
    check_inputs(cfg)  # before a multi-GB checkpoint loads
    prep, prep_source = resolve_textprep(cfg.model, cfg.data, cfg.revision)
    attempt = Attempt.load(run.dir, cfg.seed) if run.resumed else Attempt(seed=cfg.seed)
    built = build(cfg, attempt.seed, prep)
    names, tokenizer = built.names, built.tokenizer
    max_length = min(cfg.max_length, usable_positions(built.model.config) or cfg.max_length)
    rows = prepare_rows(cfg, tokenizer, prep, names, max_length, run.dir)  # cfg.seed: every attempt trains on these rows

    # ---- train: evaluate + checkpoint every eval_steps, keep the best dev macro-F1 (--members: K times, averaged)
    members = train_members(cfg, run, prep, rows, build, train) if cfg.members > 1 else []
    first = cfg if cfg.members == 1 else member_config(cfg, 0)  # member 0: the stage's own run, with restarts
    trainer, result, train_cpu, built, attempt = train_with_restarts(first, run, prep, built, rows, attempt)
    tokenizer = built.tokenizer
    logged = list(trainer.state.log_history)  # before evaluate() below logs its own entry
    if cfg.members > 1:
        run.stats["soup"] = cook(trainer, cfg, run, members, METRIC)
    best = trainer.evaluate()  # the best checkpoint is loaded back: its dev metrics, recomputed
    single_class = warn_if_single_class(best, list(rows.dev["labels"]))

    # ---- calibrate, save: plain transformers directory, no intermediate checkpoints
    logits = (dev_logits(trainer.model, tokenizer, prep, names, max_length, rows)
              if cfg.calibrate or cfg.ngram_blend else None)
    if cfg.calibrate:
        run.stats["calibration"], logits = fold_temperature(trainer.model, logits, rows.dev_labels)
    trainer.save_model(str(run.dir))
    prep.extra = {**prep.extra, "max_length": max_length}
    # pipeline(..., truncation=True) then cuts where kopretrain label cuts (the position rows past
    # it never trained here), and says so instead of the base tokenizer's 512
    tokenizer.model_max_length = max_length
    save_with_textprep(tokenizer, run.dir, prep)  # normalizer rules inside the tokenizer: pipeline() on raw text works
    (run.dir / "training_args.bin").unlink(missing_ok=True)  # a pickle; the JSON below is the record
    write_json(run.dir / "training_args.json", trainer.args.to_dict())
    write_json(run.dir / "dev_metrics.json", dev_record(trainer, best, logged, len(rows.dev), METRIC, run.stats.get("soup")))
    if cfg.ngram_blend:
        run.stats["ngram_blend"] = fit_blend(logits, rows, cfg.seed, run.dir)
    shutil.rmtree(run.dir / "checkpoints", ignore_errors=True)
    remove_members(run.dir)
    (run.dir / ATTEMPT_FILE).unlink(missing_ok=True)  # resume state; stage.json records seed_used and restarts
    run.set_counts(rows_in=rows.labelled + rows.unlabelled, rows_out=len(rows.train), rejected=rows.rejected)
    run.stats.update(record_stats(cfg, trainer, result, train_cpu, rows, best, names, max_length, prep_source),
                     added_placeholders=built.placeholders, frozen_parameters=built.frozen,
                     single_class=single_class, seed_used=attempt.seed, restarted=attempt.history,
                     time_budget=soup_budget(attempt.whole_budget(trainer.budget.record() if trainer.budget else None),
                                             members))


@dataclass
class Built:
    """A model ready to train: tokenizer, classifier and what was done to them."""
    tokenizer: Any
    model: Any
    names: list[str]
    placeholders: list[str]
    frozen: int
    new: frozenset[str]  # parameters the checkpoint lacked: the head --head-lr speeds up


def build(cfg: FinetuneConfig, seed: int, prep) -> Built:
    """Tokenizer and classifier of ``cfg.model`` with the head initialised under ``seed``."""
    from transformers import set_seed

    from kopretrain.hub.loading import load_tokenizer
    from kopretrain.tokenizer.placeholders import add_placeholders
    from kopretrain.train.layers import freeze_bottom_layers

    set_seed(seed)
    tokenizer = load_tokenizer(cfg.model, cfg.revision)
    model, names, new = load_model(cfg)
    # a checkpoint's tokenizer may split normalize's [URL]/[EMAIL]... masks: one token each from here on
    placeholders = add_placeholders(tokenizer, model) if prep.normalize is not None else []
    # last: on the model as it will train; the top layers that must train include the pooling layer
    top = cfg.reinit_layers + (cfg.pooling == "mean")
    frozen = freeze_bottom_layers(model, cfg.freeze_layers, top) if cfg.freeze_layers else 0
    return Built(tokenizer, model, names, placeholders, frozen, new)


def train_with_restarts(cfg: FinetuneConfig, run: StageRun, prep, built: Built, rows: Rows, attempt):
    """Train; while a seed is stuck at chance and restarts (and budget minutes) remain, start again
    from the pretrained weights with another seed (``kopretrain/train/restarts.py``)."""
    from kopretrain.train.restarts import StuckGuard

    resume = run.resumed
    while True:
        if attempt.fresh:  # a restart, or a run killed in one: checkpoints here are the stuck seed's
            shutil.rmtree(run.dir / "checkpoints", ignore_errors=True)
            attempt.fresh = False
        attempt.save(run.dir)  # a resume continues this attempt from its own checkpoints
        # the last attempt trains to the end whatever it scores: nothing would replace it
        guard = StuckGuard(list(rows.dev["labels"])) if attempt.index < cfg.restarts else None
        trainer, result, cpu = train(replace(cfg, seed=attempt.seed), run, built, rows, attempt.minutes_before,
                                     resume, guard)
        minutes = (trainer.budget.spent() if trainer.budget else result.metrics.get("train_runtime", 0.0)) / 60
        left = cfg.max_minutes - attempt.minutes_before - minutes if cfg.max_minutes else math.inf
        if not (guard and guard.stuck) or attempt.index >= cfg.restarts or left < 1:
            if guard:
                trainer.remove_callback(guard)  # the closing evaluation is not a training decision
            return trainer, result, cpu, built, attempt
        scores = [h[f"eval_{METRIC}"] for h in trainer.state.log_history if f"eval_{METRIC}" in h]
        attempt = attempt.next(scores, minutes)
        attempt.save(run.dir)  # before the checkpoints go: a kill from here starts this attempt afresh
        print(f"[finetune] restart {attempt.index} of {cfg.restarts}: seed {attempt.seed}")
        del trainer, result
        built = None  # the stuck model and its optimizer state go before the next model loads (GPU memory)
        resume = False
        built = build(cfg, attempt.seed, prep)


def train(cfg: FinetuneConfig, run: StageRun, built: Built, rows: Rows, minutes_before: float = 0.0,
          resume: bool = False, guard=None):
    """``(trainer, train result, CPU seconds)``; resumes from the newest checkpoint of a partial run.
    A time budget gets what ``minutes_before`` (earlier attempts) left of it."""
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback

    from kopretrain.train.checkpoints import last_checkpoint

    from kopretrain.train.budget import TimeBudget
    from kopretrain.train.finetune_trainer import ClassifierTrainer, compute_metrics, training_arguments

    steps_per_epoch = math.ceil(len(rows.train) / cfg.batch_size)
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * steps_per_epoch)
    ckpt_dir = run.dir / "checkpoints"
    args = training_arguments(cfg, ckpt_dir, min(cfg.eval_steps, total_steps))
    from kopretrain.train import tracking

    callbacks = [EarlyStoppingCallback(cfg.early_stopping_patience)] if cfg.early_stopping_patience else []
    callbacks += tracking.callbacks(cfg.report_to, run.dir)
    resume = last_checkpoint(ckpt_dir) if resume else None
    minutes = cfg.max_minutes - minutes_before
    budget = TimeBudget.resumed(minutes, cfg.warmup_ratio, resume) if cfg.max_minutes > 0 else None
    callbacks += [c for c in (budget, guard) if c is not None]
    trainer = ClassifierTrainer(
        model=built.model, args=args, train_dataset=rows.train, eval_dataset=rows.dev,
        processing_class=built.tokenizer, data_collator=DataCollatorWithPadding(built.tokenizer),
        compute_metrics=compute_metrics(built.names), callbacks=callbacks,
        class_weights=class_weights(rows.y_train, cfg.class_weight), budget=budget, lr_scale=_lr_scale(cfg, built.model, built.new),
        rdrop=cfg.rdrop)
    if resume:
        print(f"[finetune] resuming from {resume}")
    cpu0 = time.process_time()  # CPU seconds survive a busy shared machine better than wall time
    result = trainer.train(resume_from_checkpoint=resume)
    return trainer, result, time.process_time() - cpu0


def _lr_scale(cfg: FinetuneConfig, model, new=None):
    if not cfg.head_lr and cfg.layer_lr_decay == 1:
        return None  # the stock optimizer: two groups, as before these options existed
    from kopretrain.train.finetune_trainer import lr_scales

    return lr_scales(model, (cfg.head_lr or cfg.lr) / cfg.lr, cfg.layer_lr_decay, new)


STAGE = Stage("finetune", FinetuneConfig, run=run)
