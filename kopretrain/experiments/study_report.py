"""Collect the study's stage records into ``study.json`` and a markdown table (see study.py).

Everything is read back from the stage outputs (``metrics.json``, ``stage.json``), so the table
can be rebuilt from a workdir at any time and always matches what the stages recorded.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

ORDER = ("baseline", "scratch", "mlm", "rtd")
NAMES = {"baseline": "TF-IDF + LR", "scratch": "scratch (no pretraining)", "mlm": "MLM-pretrained",
         "rtd": "RTD-pretrained"}
PUBLISHED = "KcELECTRA-base 91.97, KcBERT-base 89.62, KoBERT 89.59 (official NSMC split, binary, GPU)"


def _stage(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / "stage.json").read_text())


def _metrics(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / "metrics.json").read_text())


def run_entries(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-seed result(s) of one finetune+evaluate: the model's, and the baseline's if carried."""
    metrics, ev, ft = _metrics(run["evaluate"]), _stage(run["evaluate"]), _stage(run["finetune"])
    common = {"budget": run["budget"], "seed": run["seed"], "test_n": metrics["n"],
              "train_examples": ft["stats"]["train_examples"]}
    out = []
    if run["report"]:
        m = metrics["model"]
        out.append({**common, "system": run["system"], "macro_f1": m["macro_f1"], "accuracy": m["accuracy"],
                    "binary_accuracy": m["binary"]["accuracy"], "binary_n": m["binary"]["n"],
                    "dev_macro_f1": ft["stats"]["dev_macro_f1"], "finetune_steps": ft["stats"]["global_steps"],
                    "finetune_seconds": ft["seconds"], "evaluate_seconds": ev["seconds"],
                    "finetune_dir": str(run["finetune"]), "evaluate_dir": str(run["evaluate"])})
    b = metrics.get("baseline")
    if run["carries_baseline"] and b:
        out.append({**common, "system": "baseline", "macro_f1": b["macro_f1"], "accuracy": b["accuracy"],
                    "binary_accuracy": b["binary"]["accuracy"], "binary_n": b["binary"]["n"],
                    "train_examples": b["train_examples"], "fit_seconds": b["fit_seconds"],
                    "evaluate_dir": str(run["evaluate"])})
    return out


def pretrain_entry(path: Path) -> dict[str, Any]:
    rec = _stage(path)
    train, cfg = rec["stats"]["train"], rec["config"]
    final = rec["stats"].get("final_metrics") or {}
    return {"dir": str(path), "objective": cfg["objective"], "lr": cfg["lr"], "max_steps": cfg["max_steps"],
            "global_step": train["global_step"], "tokens_seen": train["tokens_seen"],
            "train_seconds": train["seconds"], "stage_seconds": rec["seconds"],
            "eval_loss": final.get("eval_loss"), "parameters": rec["stats"].get("parameters")}


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def aggregate(entries: list[dict[str, Any]], pretrain: dict[str, dict]) -> list[dict[str, Any]]:
    """One row per (system, budget): mean and sample std over seeds of every metric."""
    rows = []
    budgets = sorted({e["budget"] for e in entries}, key=lambda b: (b == 0, b))
    for budget in budgets:
        for system in ORDER:
            group = [e for e in entries if e["system"] == system and e["budget"] == budget]
            if not group:
                continue
            row: dict[str, Any] = {"system": system, "budget": budget, "n": len(group),
                                   "seeds": sorted(e["seed"] for e in group),
                                   "train_examples": group[0]["train_examples"], "test_n": group[0]["test_n"]}
            for key in ("macro_f1", "accuracy", "binary_accuracy", "finetune_seconds", "evaluate_seconds",
                        "fit_seconds", "dev_macro_f1"):
                row[key], row[f"{key}_std"] = _mean_std([e.get(key) for e in group])
            p = pretrain.get(system)
            row["pretrain_seconds"] = p["stage_seconds"] if p and system != "scratch" else None
            rows.append(row)
    return rows


def targets(rows: list[dict[str, Any]], calibrated: bool) -> list[dict[str, Any]]:
    """The issue's three targets, checked on the means (points = macro-F1 x 100)."""
    at = {(r["system"], r["budget"]): r for r in rows}

    def diff(a: str, b: str, budget: int) -> float | None:
        ra, rb = at.get((a, budget)), at.get((b, budget))
        if not ra or not rb or ra["macro_f1"] is None or rb["macro_f1"] is None:
            return None
        return 100 * (ra["macro_f1"] - rb["macro_f1"])

    checks = [("RTD beats TF-IDF by >= 3 macro-F1 points with all labels", diff("rtd", "baseline", 0), 3.0)]
    for obj in ("mlm", "rtd"):
        checks.append((f"{obj.upper()} beats scratch by >= 5 points at 1k labels", diff(obj, "scratch", 1000), 5.0))
    for budget in sorted({r["budget"] for r in rows}, key=lambda b: (b == 0, b)):
        label = "all" if budget == 0 else f"{budget}"
        when = "equal training wall-clock" if calibrated else "equal steps (not time-calibrated)"
        checks.append((f"RTD >= MLM at {label} labels ({when})", diff("rtd", "mlm", budget), 0.0))
    return [{"target": t, "points": None if d is None else round(d, 2),
             "status": "not measured" if d is None else ("met" if d >= need else "missed")} for t, d, need in checks]


def collect(runs, models: dict[str, Path], data_outputs: dict[str, Path], systems: list[str], workdir: Path,
            command: str = "", wall_seconds: float | None = None) -> dict[str, Any]:
    entries = [e for run in runs for e in run_entries(run)]
    pretrain = {s: pretrain_entry(p) for s, p in models.items() if (Path(p) / "stage.json").is_file()}
    calib = Path(workdir) / "calibration.json"
    calibration = json.loads(calib.read_text()) if calib.is_file() else None
    rows = aggregate(entries, pretrain)
    recorded = [*data_outputs.values(), *models.values(), *Path(workdir).glob("calibrate/*"),
                *(run[k] for run in runs for k in ("finetune", "evaluate"))]
    import os

    import torch

    return {
        "command": command, "systems": systems, "wall_seconds": round(wall_seconds or 0, 1),
        "stage_seconds": round(sum(_stage(p)["seconds"] for p in recorded if (Path(p) / "stage.json").is_file()), 1),
        "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "data_stages": {n: {"dir": str(p), "seconds": _stage(p)["seconds"],
                            "rows_out": (_stage(p).get("counts") or {}).get("rows_out")}
                        for n, p in data_outputs.items()},
        "pretrain": pretrain, "calibration": calibration, "runs": entries, "rows": rows,
        "targets": targets(rows, calibration is not None), "published_binary": PUBLISHED,
    }


def write(study: dict[str, Any], workdir: Path, tag: str = "") -> None:
    from kopretrain.runs.records import write_json

    name = f"study-{tag}" if tag else "study"
    write_json(Path(workdir) / f"{name}.json", study)
    (Path(workdir) / f"{name}.md").write_text(markdown(study), encoding="utf-8")


# ------------------------------------------------------------------------------------ markdown
def _pct(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def _sec(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def markdown(study: dict[str, Any]) -> str:
    rows = study["rows"]
    test_n = rows[0]["test_n"] if rows else 0
    lines = [f"Test rows: {test_n:,}. Mean ± sample std over n fine-tuning seeds; macro-F1/accuracy in %, "
             "3-class. Binary accuracy: gold negative/positive rows only, argmax of p(neg) vs p(pos). "
             "Seconds are wall-clock of each stage.", "",
             "| system | labels | n | macro-F1 | accuracy | binary acc | pretrain s | finetune s | evaluate s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fine = _sec(r["fit_seconds"]) + " (fit)" if r["system"] == "baseline" else _sec(r["finetune_seconds"])
        labels = "all" if r["budget"] == 0 else f"{r['budget']:,}"
        lines.append(
            f"| {NAMES[r['system']]} | {labels} "
            f"({r['train_examples']:,}) | {r['n']} | {_pct(r['macro_f1'], r['macro_f1_std'])} "
            f"| {_pct(r['accuracy'], r['accuracy_std'])} | {_pct(r['binary_accuracy'], r['binary_accuracy_std'])} "
            f"| {_sec(r['pretrain_seconds'])} | {fine} | {_sec(r['evaluate_seconds'])} |")
    lines += ["", "Pretraining (same ELECTRA encoder; scratch = initialised weights, lr 0):", "",
              "| model | steps | tokens seen | train s | stage s | final dev loss |", "|---|---|---|---|---|---|"]
    for name, p in study["pretrain"].items():
        loss = "" if p["eval_loss"] is None or name == "scratch" else f"{p['eval_loss']:.3f}"
        lines.append(f"| {name} | {p['global_step']:,} | {p['tokens_seen'] or 0:,} | {_sec(p['train_seconds'])} "
                     f"| {_sec(p['stage_seconds'])} | {loss} |")
    cal = study.get("calibration")
    if cal:
        lines += ["", f"Equal wall-clock: {cal['minutes']} min of training each; calibrated s/step "
                  + ", ".join(f"{k} {v:.3f}" for k, v in cal["seconds_per_step"].items())
                  + " (best of " + str(cal["rounds"]) + " interleaved rounds) -> max_steps "
                  + ", ".join(f"{k} {v:,}" for k, v in cal["max_steps"].items()) + "."]
    data = ", ".join(f"{n} {_sec(d['seconds'])} s" for n, d in study["data_stages"].items())
    lines += ["", f"Data stages (once, shared): {data}. All stage records of the study add up to "
              f"{_sec(study['stage_seconds'])} s ({study['stage_seconds'] / 3600:.1f} h); torch threads "
              f"{study['torch_threads']}.", "", "| target | points | status |", "|---|---|---|"]
    for t in study["targets"]:
        points = "" if t["points"] is None else f"{t['points']:+.2f}"
        lines.append(f"| {t['target']} | {points} | {t['status']} |")
    lines += ["", f"Published binary NSMC accuracy for scale: {study['published_binary']}; ours is a 3-class "
              "model on a movie-disjoint split, so only indicative."]
    return "\n".join(lines) + "\n"
