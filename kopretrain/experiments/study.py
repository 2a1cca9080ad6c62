"""The end-to-end study: does pretraining on review text pay off, and does RTD beat MLM?

    .venv/bin/python -m kopretrain.experiments.study --pipeline pipelines/nsmc-3class-scratch.yaml \\
        --workdir runs/study --budgets 1000,10000,all --seeds 1,2,3 --pretrain-minutes 60

(The full study; BENCHMARKS.md "Study" has what was run and its cost. ``--data-workdir
runs/nsmc-3class`` reuses data stages that ``kopretrain run`` already built. The first runs used
one torch thread and fp32, which looked faster while other jobs loaded the machine; on a quiet
machine the defaults, 2 threads with bf16 autocast, are ~1.6x faster: benchmarks/bench_precision.py.)

On the pipeline's movie-disjoint 3-class test split, for each label budget and fine-tuning seed:

- ``baseline``: TF-IDF char n-grams + logistic regression, trained by ``evaluate`` on exactly the
  rows the neural models were fine-tuned on (evaluate replays the finetune record's label budget);
- ``scratch``: the tiny model fine-tuned from random initialisation (no pretraining);
- ``mlm`` / ``rtd``: the same architecture pretrained with masked-LM or replaced-token detection.

Every system is the same ELECTRA encoder (``model_type: electra``; MLM trains ``ElectraForMaskedLM``)
so the pretraining objective is the only difference. The random-init model is written by the real
pretrain stage with ``lr: 0`` for one step (same init code, tokenizer, ``kopretrain.json`` and
``stage.json`` as a pretrained model, weights exactly as initialised).

Equal wall-clock (``--pretrain-minutes N``): PretrainConfig has no time limit, and cutting a run
short would leave its learning rate undecayed, so each objective gets a step count instead. Short
calibration runs (interleaved MLM, RTD, MLM, RTD: a load burst hits both) measure seconds per
training step; each objective gets ``N * 60 / best seconds-per-step`` steps. The actual training
seconds of each run are recorded and shown next to the results. Without ``--pretrain-minutes``
both objectives use the pipeline's step/epoch setting (equal steps, not equal time).

Small budgets: one epoch over 1,000 labels is ~30 steps, too few to learn anything, so when the
pipeline fine-tunes by epochs and a budget gives fewer than ``--min-finetune-steps`` steps, that
run uses ``max_steps = --min-finetune-steps`` (several epochs) and evaluates on dev 5 times so the
best checkpoint (dev macro-F1) and early stopping still work. Dev stays full-size for selection.

Every run is a normal stage output under ``--workdir`` (``pretrain-mlm``, ``finetune/rtd-1000-s1``,
``evaluate/rtd-1000-s1``...), so rerunning the same command skips what is done and finishes the rest.
Results: ``<workdir>/study.json`` and ``<workdir>/study.md`` (printed at the end). ``--tag T`` keeps
a variant's fine-tuning runs apart (``finetune-T/``, ``evaluate-T/``, ``study-T.json``) while
reusing the same data and pretrained models, e.g. ``--tag cw --set finetune.class_weight=balanced``.
``--models rtd=DIR,mlm=DIR[,scratch=DIR]`` fine-tunes finished pretrain outputs (e.g. the 1-epoch
models of ``kopretrain run pipelines/nsmc-3class-scratch.yaml``) instead of pretraining here.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

from kopretrain.experiments import study_report

NEURAL = ("scratch", "mlm", "rtd")
SYSTEMS = ("baseline",) + NEURAL
DATA_STAGES = ("ingest", "normalize", "analyze", "vocab")


def parse_budgets(text: str) -> list[int]:
    """``"1000,10000,all"`` -> ``[1000, 10000, 0]`` (0 = every labelled training row)."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if part == "all":
            out.append(0)
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise SystemExit(f"--budgets: {part!r} is not a positive number or 'all'")
    return out


def budget_name(budget: int) -> str:
    return "all" if budget == 0 else str(budget)


def resolve(pipeline: str, data_workdir: str, overrides: list[str]) -> dict:
    """``{stage: (config, output)}`` for the stages the study needs, validated up front. The data
    stages go to ``data_workdir``; the study's own outputs are placed explicitly under --workdir."""
    from kopretrain.pipeline import load_pipeline, plan, stage_names

    raw = load_pipeline(pipeline, overrides)
    raw["workdir"] = data_workdir
    names = stage_names(raw)
    missing = [s for s in ("pretrain", "finetune", "evaluate") if s not in names]
    if missing:
        raise SystemExit(f"{pipeline}: the study needs the stage(s) {', '.join(missing)}")
    steps = {name: (cfg, out) for name, cfg, out in plan(raw, until="evaluate")}
    if steps["pretrain"][0].init != "scratch":
        raise SystemExit(f"{pipeline}: pretrain.init must be scratch (the study compares from-scratch objectives)")
    return steps


# ------------------------------------------------------------------------------------ pretraining
def objective_config(base, objective: str, **changes):
    """The pipeline's pretrain config with ``objective`` on the shared ELECTRA architecture."""
    from kopretrain.train.pretrain_checks import reset_for

    return dataclasses.replace(base, **{**reset_for(base, objective), "model_type": "electra", **changes})


def init_config(base):
    """One optimizer step at learning rate 0: the pretrain stage writes the initialised model as is
    (AdamW's decoupled weight decay is also scaled by lr). Tiny data so this takes seconds."""
    return objective_config(base, "mlm", lr=0.0, max_steps=1, eval_steps=10**6, save_steps=10**6,
                            logging_steps=10**6, max_train_texts=256, max_eval_texts=16)


def calibrate(base, workdir: Path, steps: int, rounds: int) -> dict[str, float]:
    """Best seconds per training step of MLM and RTD, from interleaved short runs of the stage."""
    from kopretrain.runs.records import read_stage
    from kopretrain.runs.registry import execute

    rows = steps * base.batch_size * base.grad_accum * 4  # a few times what `steps` batches need
    best: dict[str, float] = {}
    for r in range(rounds):
        for objective in ("mlm", "rtd"):
            cfg = objective_config(base, objective, max_steps=steps, eval_steps=10**6, save_steps=10**6,
                                   logging_steps=steps, max_train_texts=rows, max_eval_texts=16)
            out = workdir / "calibrate" / f"{objective}-{r + 1}"
            execute("pretrain", cfg, out)
            train = read_stage(out)["stats"]["train"]
            per_step = train["seconds"] / max(1, train["global_step"])
            best[objective] = min(best.get(objective, math.inf), per_step)
    return best


def equal_time_steps(minutes: float, seconds_per_step: dict[str, float]) -> dict[str, int]:
    """Steps each objective can run in ``minutes`` of training.

    >>> equal_time_steps(10, {"mlm": 0.5, "rtd": 0.75})
    {'mlm': 1200, 'rtd': 800}
    """
    return {obj: max(1, round(minutes * 60 / s)) for obj, s in seconds_per_step.items()}


def parse_models(text: str) -> dict[str, Path]:
    """``"rtd=runs/a/pretrain,mlm=runs/b/pretrain"`` -> existing pretrain outputs to reuse.

    Each must be a finished pretrain stage output (its ``stage.json``) and, for mlm/rtd, pretrained
    with that objective: a typo must not silently fine-tune the wrong model under the wrong name."""
    from kopretrain.runs.records import read_stage

    models: dict[str, Path] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, path = part.partition("=")
        name = name.strip()
        if not sep or name not in NEURAL or not path.strip():
            raise SystemExit(f"--models: {part!r} is not NAME=DIR with NAME one of {', '.join(NEURAL)}")
        model = Path(path.strip())
        if not (model / "stage.json").is_file():
            raise SystemExit(f"--models: {model} has no stage.json: not a finished pretrain output")
        record = read_stage(model) or {}
        objective = (record.get("config") or {}).get("objective")
        if not record.get("complete"):
            raise SystemExit(f"--models: {model} is an unfinished stage output (resume it first)")
        if record.get("stage") != "pretrain" or (name != "scratch" and objective != name):
            raise SystemExit(f"--models: {model} is a {record.get('stage')} output with objective "
                             f"{objective!r}, not a {name} pretrain output")
        models[name] = model
    return models


def pretrain_all(args, steps: dict, workdir: Path, systems: list[str]) -> dict[str, Path]:
    """Model dirs for the neural systems: random init and the pretrained variants (or the ones
    given with ``--models``, which are reused as they are: no calibration, no pretraining)."""
    from kopretrain.runs.records import write_json
    from kopretrain.runs.registry import execute

    base = steps["pretrain"][0]
    given = {s: p for s, p in args.models.items() if s in systems}
    models = {"scratch": workdir / "pretrain-scratch", **given}
    objectives = [s for s in ("mlm", "rtd") if s in systems and s not in given]
    changes: dict[str, dict] = {obj: {} for obj in objectives}
    if args.pretrain_minutes and objectives:
        per_step = calibrate(base, workdir, args.calibration_steps, args.calibration_rounds)
        budget = equal_time_steps(args.pretrain_minutes, per_step)
        write_json(workdir / "calibration.json", {"minutes": args.pretrain_minutes, "seconds_per_step": per_step,
                                                  "max_steps": budget, "calibration_steps": args.calibration_steps,
                                                  "rounds": args.calibration_rounds})
        print(f"[study] equal wall-clock: {args.pretrain_minutes} min -> "
              + ", ".join(f"{o} {budget[o]} steps ({per_step[o]:.3f} s/step)" for o in objectives), flush=True)
        changes = {obj: {"max_steps": budget[obj]} for obj in objectives}
    if ("scratch" in systems or not [s for s in NEURAL if s in systems]) and "scratch" not in given:
        # random init (also what carries the baseline in a baseline-only study)
        print(f"== pretrain (random init, lr 0) -> {models['scratch']}", flush=True)
        execute("pretrain", init_config(base), models["scratch"])
    for obj in objectives:
        models[obj] = workdir / f"pretrain-{obj}"
        print(f"== pretrain {obj} -> {models[obj]}", flush=True)
        execute("pretrain", objective_config(base, obj, **changes[obj]), models[obj])
    return models


# ------------------------------------------------------------------------------------ fine-tuning
def finetune_config(base, model: Path, budget: int, seed: int, n_train: int, min_steps: int):
    """The pipeline's finetune config for one run, with the small-budget step floor applied."""
    cfg = dataclasses.replace(base, model=str(model), label_budget=budget, seed=seed)
    if cfg.max_steps > 0 or not min_steps:
        return cfg
    rows = min(budget or n_train, n_train)
    if math.ceil(cfg.epochs * math.ceil(rows / cfg.batch_size)) >= min_steps:
        return cfg
    return dataclasses.replace(cfg, max_steps=min_steps, eval_steps=min(cfg.eval_steps, math.ceil(min_steps / 5)))


def labelled_train_rows(data: str) -> int:
    import pyarrow.parquet as pq

    labels = pq.read_table(Path(data) / "train.parquet", columns=["label"]).column("label")
    return len(labels) - labels.null_count


def run_grid(args, steps: dict, workdir: Path, models: dict[str, Path], systems: list[str]) -> list[dict]:
    """Finetune + evaluate every (seed, budget, system); one entry per run with its output dirs.

    The TF-IDF baseline depends only on (budget, seed), so only one evaluate per pair trains it: the
    first neural system of scratch/mlm/rtd in the study (scratch alone when only baseline is asked)."""
    from kopretrain.runs.registry import execute

    ft_base, ev_base = steps["finetune"][0], steps["evaluate"][0]
    neural = [s for s in NEURAL if s in systems] or ["scratch"]
    n_train = labelled_train_rows(ft_base.data)
    runs = []
    total = len(args.seeds) * len(args.budgets) * len(neural)
    for seed in args.seeds:  # seeds outermost: a study cut short still has one row per cell
        for budget in args.budgets:
            for system in neural:
                name = f"{system}-{budget_name(budget)}-s{seed}"
                suffix = f"-{args.tag}" if args.tag else ""
                ft_out, ev_out = workdir / f"finetune{suffix}" / name, workdir / f"evaluate{suffix}" / name
                print(f"== [{len(runs) + 1}/{total}] {name}", flush=True)
                execute("finetune", finetune_config(ft_base, models[system], budget, seed, n_train,
                                                    args.min_finetune_steps), ft_out)
                carrier = system == neural[0] and "baseline" in systems
                execute("evaluate", dataclasses.replace(ev_base, model=str(ft_out), baseline=carrier), ev_out)
                runs.append({"system": system, "budget": budget, "seed": seed, "finetune": ft_out,
                             "evaluate": ev_out, "carries_baseline": carrier,
                             "report": system in systems})
    return runs


# ------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", required=True, help="pipeline YAML (e.g. pipelines/nsmc-3class-scratch.yaml)")
    p.add_argument("--workdir", required=True, help="where every stage output of the study goes")
    p.add_argument("--data-workdir", default="",
                   help="put/reuse the data stages (ingest..vocab) here instead, e.g. the pipeline's own "
                        "workdir when `kopretrain run` already built them (default: --workdir)")
    p.add_argument("--budgets", default="1000,10000,all", help="label budgets, comma-separated ('all' = every row)")
    p.add_argument("--seeds", default="1,2,3", help="fine-tuning seeds (label sample, head init, data order)")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"subset of {','.join(SYSTEMS)}")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="STAGE.KEY=VALUE",
                   help="override a pipeline key (repeatable), e.g. --set finetune.max_steps=200")
    p.add_argument("--pretrain-minutes", type=float, default=0.0,
                   help="equal training wall-clock per objective, via calibrated step counts (0: pipeline steps)")
    p.add_argument("--calibration-steps", type=int, default=30, help="steps per calibration run")
    p.add_argument("--calibration-rounds", type=int, default=2, help="interleaved MLM/RTD calibration rounds")
    p.add_argument("--models", default="",
                   help="reuse finished pretrain outputs instead of pretraining, e.g. "
                        "rtd=runs/nsmc-3class/pretrain,mlm=runs/nsmc-mlm/pretrain (scratch=DIR too)")
    p.add_argument("--tag", default="", help="name a fine-tuning variant: finetune-TAG/, evaluate-TAG/, study-TAG.*")
    p.add_argument("--min-finetune-steps", type=int, default=300,
                   help="floor on fine-tuning steps for small budgets when finetune runs by epochs (0: off)")
    args = p.parse_args(argv)
    args.budgets = parse_budgets(args.budgets)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    args.models = parse_models(args.models)
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown or not args.systems:
        p.error(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    return args


def main(argv: list[str] | None = None) -> dict:
    from kopretrain.runs.registry import execute

    args = parse_args(argv)
    t0 = time.time()
    workdir = Path(args.workdir)
    steps = resolve(args.pipeline, args.data_workdir or str(workdir), args.overrides)
    for name in DATA_STAGES:
        if name in steps:
            print(f"== {name} -> {steps[name][1]}", flush=True)
            execute(name, *steps[name])
    models = pretrain_all(args, steps, workdir, args.systems)
    runs = run_grid(args, steps, workdir, models, args.systems)
    command = "python -m kopretrain.experiments.study " + " ".join(argv if argv is not None else sys.argv[1:])
    study = study_report.collect(runs, models, {n: steps[n][1] for n in DATA_STAGES if n in steps},
                                 args.systems, workdir, command=command, wall_seconds=time.time() - t0)
    study_report.write(study, workdir, args.tag)
    print(study_report.markdown(study))
    return study


if __name__ == "__main__":
    main()
