"""Score a fine-tuned classifier on a held-out split and write a report people can read.

Outputs: ``metrics.json`` (every number), ``predictions.parquet`` (id, label, pred, p_negative,
p_neutral, p_positive, rating, baseline_pred, baseline_p_*), ``report.md`` + PNGs and a
self-contained ``report.html``. The TF-IDF baseline is trained on the same training rows the
model saw (the finetune record's label budget is replayed) and scored on the same rows.

    kopretrain evaluate --model runs/nsmc/finetune --data runs/nsmc/normalize -o runs/nsmc/evaluate
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from kopretrain.data.files import LABELS
from kopretrain.runs.stage import Stage, StageConfig
from kopretrain.runs.records import StageError, StageRun, read_stage, write_json


@dataclass
class EvaluateConfig(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("model", "data")
    REQUIRED: ClassVar[tuple[str, ...]] = ("model", "data")
    WIRING: ClassVar[dict[str, str]] = {"model": "finetune", "data": "normalize"}

    model: str = ""
    """Fine-tuned classifier: a finetune output or any directory/Hub id whose id2label is
    negative/neutral/positive."""
    revision: str = ""
    """Hub revision for a Hub model."""
    data: str = ""
    """Data stage output (train/dev/test parquet)."""
    split: Literal["test", "dev", "train"] = "test"
    """Split to score. Keep test for the final number; dev only for model development."""
    baseline: bool = True
    """Train and score the TF-IDF char n-gram + logistic regression baseline for comparison."""
    baseline_max_train: int = 0
    """Train the baseline on a stratified sample of this many training rows (0: all of them)."""
    temperature_scaling: bool = True
    """Fit one softmax temperature on dev (NLL) and report ECE before/after."""
    temperature_max_dev: int = 10_000
    """Fit the temperature on a stratified sample of at most this many dev rows (0: all)."""
    batch_size: int = 64
    """Inference batch size (batches are sorted by length)."""
    max_length: int = 0
    """Truncate inputs to this many tokens (0: the length the model was fine-tuned with, else 128)."""
    precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    """Scoring precision, chosen as label chooses it (auto: bf16 where it measures clearly faster on
    this CPU, else fp32), so the report describes the labels label will write; fp32 for a reference."""
    max_errors_shown: int = 20
    """How many of the most confident errors the report shows."""
    seed: int = 0
    """Seed for samples drawn for the baseline and temperature fitting."""

    def __post_init__(self):
        if self.batch_size <= 0:
            raise ValueError("--batch-size must be positive")
        for name in ("max_length", "baseline_max_train", "temperature_max_dev", "max_errors_shown"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0")



def labelled(frame):
    """Rows with a gold label, and their label ids (LABELS order)."""
    rows = frame[frame["label"].notna()].reset_index(drop=True)
    return rows, [LABELS.index(v) for v in rows["label"]]


def recorded_scheme(data: str) -> dict[str, Any] | None:
    """The label scheme recorded by the ingest that ``data`` descends from (see
    :func:`kopretrain.evaluation.scheme_text.summarize`); None when no ingest record is reachable,
    and the report then says nothing scheme-specific rather than assume NSMC's 1-10 ratings."""
    from kopretrain.evaluation.scheme_text import summarize
    from kopretrain.runs.chain import upstream

    record = upstream(data, "ingest") or {}
    return summarize(record.get("config") or {}, ((record.get("stats") or {}).get("rating_histogram") or {}))


def system_metrics(probs, y, ratings) -> dict[str, Any]:
    """Every number the report shows for one system (model or baseline)."""
    from kopretrain.evaluation import metrics as M

    pred = probs.argmax(axis=1)
    out = M.classification(y, pred)
    out["ece"] = M.ece(probs, y)
    out["reliability"] = M.reliability(probs, y)
    out["binary"] = M.binary_accuracy(probs, y)
    out["per_rating"] = M.per_rating(ratings, y, pred) if ratings is not None else []
    return out


def confident_errors(frame, y, probs, limit: int, baseline_pred=None) -> list[dict[str, Any]]:
    """The ``limit`` wrong predictions with the highest confidence, most confident first."""
    import numpy as np

    pred, conf = probs.argmax(axis=1), probs.max(axis=1)
    wrong = np.flatnonzero(pred != np.asarray(y))
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")][:limit]
    text_col = "text_raw" if "text_raw" in frame.columns else "text"
    rows = []
    for i in wrong:
        rows.append({
            "id": str(frame["id"].iloc[i]) if "id" in frame.columns else str(i),
            "text": str(frame[text_col].iloc[i]),
            "gold": LABELS[y[i]], "pred": LABELS[int(pred[i])], "confidence": float(conf[i]),
            "rating": _float_or_none(frame["rating"].iloc[i]) if "rating" in frame.columns else None,
            "baseline_pred": LABELS[int(baseline_pred[i])] if baseline_pred is not None else None,
        })
    return rows


def _float_or_none(value) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def fit_temperature(cfg: EvaluateConfig, clf, notes: list[str]) -> float | None:
    """Temperature fitted on (a sample of) dev, or None with a note saying why not."""
    from kopretrain.evaluation import metrics as M
    from kopretrain.data.split import stratified_sample
    from kopretrain.inference.classifier import input_texts, read_split

    if not cfg.temperature_scaling:
        return None
    try:
        dev, y_dev = labelled(read_split(cfg.data, "dev"))
    except StageError as exc:
        notes.append(f"temperature scaling skipped: {exc}")
        return None
    if not y_dev:
        notes.append("temperature scaling skipped: dev has no labelled rows")
        return None
    keep = stratified_sample(y_dev, cfg.temperature_max_dev, cfg.seed, what="--temperature-max-dev")
    dev, y_dev = dev.iloc[keep].reset_index(drop=True), [y_dev[i] for i in keep]
    logits = clf.logits(input_texts(dev, clf.prep, cfg.data), batch_size=cfg.batch_size, prepared=True, precision=cfg.precision)
    if cfg.split == "dev":
        notes.append("temperature was fitted on the split being scored (dev): its ECE gain is optimistic")
    return M.fit_temperature(logits, y_dev)


def train_baseline(cfg: EvaluateConfig, notes: list[str]):
    """The TF-IDF baseline fitted on the model's training rows, or None with a note."""
    from kopretrain.evaluation.baseline import Baseline
    from kopretrain.data.split import stratified_sample
    from kopretrain.inference.classifier import read_split

    try:
        train, y_train = labelled(read_split(cfg.data, "train"))
    except StageError as exc:
        notes.append(f"baseline skipped: {exc}")
        return None, 0
    record = finetune_record(cfg)
    if record and record["stage"] == "finetune" and record["config"].get("label_budget"):
        budget, seed = record["config"]["label_budget"], record["config"]["seed"]
        keep = stratified_sample(y_train, budget, seed)  # the same rows the model was fine-tuned on
        train, y_train = train.iloc[keep].reset_index(drop=True), [y_train[i] for i in keep]
        notes.append(f"baseline trained on the model's label budget: {len(y_train)} rows (seed {seed})")
    pseudo = ((record or {}).get("stats") or {}).get("pseudo_labels")
    if pseudo:  # the same labelled rows; the model's extra rows are its teacher's guesses, not labels
        notes.append(f"the model was self-trained: it also learned from {pseudo['rows']:,} rows its teacher "
                     f"({pseudo['teacher']}) labelled; the baseline trains on the labelled rows only")
    soft = ((record or {}).get("config") or {}).get("soft_targets")
    if soft:  # the baseline's knowledge reached the model: say so beside the comparison
        what = "this TF-IDF baseline's out-of-fold probabilities" if soft == "tfidf" else f"the probabilities in {soft}"
        notes.append(f"the model was distilled: its training targets mixed the labels with {what} "
                     f"(weight {record['config'].get('soft_weight')})")
    if cfg.baseline_max_train:
        keep = stratified_sample(y_train, cfg.baseline_max_train, cfg.seed, what="--baseline-max-train")
        train, y_train = train.iloc[keep].reset_index(drop=True), [y_train[i] for i in keep]
    texts = ["" if t is None else str(t) for t in train["text"]]
    dev_texts, y_dev = baseline_dev(cfg)
    print(f"[evaluate] training the TF-IDF baseline on {len(texts):,} rows"
          + (f", C and class weighting chosen on {len(y_dev):,} dev rows" if y_dev else ""))
    fitted = Baseline(seed=cfg.seed).fit(texts, y_train, dev_texts, y_dev)
    if not y_dev:
        notes.append("baseline C and class weighting not tuned: no labelled dev rows")
    elif cfg.split == "dev":
        notes.append("baseline C and class weighting were chosen on the split being scored (dev), as the model's "
                     "checkpoint was: both scores are optimistic; score test for numbers to report")
    return fitted, len(texts)


def finetune_record(cfg: EvaluateConfig) -> dict | None:
    """The model's finetune stage record: its own stage.json, or for a released folder (local or a
    Hub id) the copy in provenance.json, so the baseline replays the same label budget either way."""
    import json

    from kopretrain.hub.loading import model_file

    record = read_stage(cfg.model) if Path(cfg.model).is_dir() else None
    if record and record.get("stage") == "finetune":
        return record
    found = model_file(cfg.model, "provenance.json", cfg.revision or None)
    stages = json.loads(found.read_text(encoding="utf-8")).get("stages", {}) if found else {}
    return stages.get("finetune") or record


def baseline_dev(cfg: EvaluateConfig) -> tuple[list[str], list[int]]:
    """Dev rows to tune the baseline on (the sample the temperature is fitted on), or none."""
    from kopretrain.data.split import stratified_sample
    from kopretrain.inference.classifier import read_split

    try:
        dev, y_dev = labelled(read_split(cfg.data, "dev"))
    except StageError:
        return [], []
    keep = stratified_sample(y_dev, min(cfg.temperature_max_dev or len(y_dev), 5000), cfg.seed)
    return ["" if dev["text"][i] is None else str(dev["text"][i]) for i in keep], [y_dev[i] for i in keep]


def score(cfg: EvaluateConfig, clf, rows, y, ratings, notes: list[str]):
    """(logits, metrics) of the system ``label`` runs: the encoder, pooled with its n-gram expert
    when the model has one (the encoder alone is then reported beside it)."""
    from kopretrain.inference.classifier import input_texts, softmax

    texts = input_texts(rows, clf.prep, cfg.data)
    encoder = clf.logits(texts, batch_size=cfg.batch_size, prepared=True, precision=cfg.precision, blend=False)
    logits = clf.ngram.blend(encoder, texts) if clf.ngram else encoder
    model = system_metrics(softmax(logits), y, ratings)
    if clf.ngram:
        model["ngram_blend"] = blend_summary(clf.ngram, softmax(encoder), y, notes)
    return logits, model


def blend_summary(ngram, encoder_probs, y, notes: list[str]) -> dict[str, Any]:
    """What the n-gram expert adds: the encoder alone on the same rows, and the pool's weights."""
    from kopretrain.evaluation import metrics as M

    alone = M.classification(y, encoder_probs.argmax(axis=1))
    info = ngram.info or {}
    notes.append(f"the model pools its encoder with a TF-IDF n-gram model fitted on its {info.get('train_examples', '?')} "
                 f"labelled rows ({ngram.encoder_weight:.2f} x log p(encoder) + {ngram.ngram_weight:.2f} x log "
                 f"p(n-grams), weights fitted on dev); the encoder alone scores macro-F1 {alone['macro_f1']:.4f}, "
                 f"accuracy {alone['accuracy']:.4f}")
    return {"encoder_weight": ngram.encoder_weight, "ngram_weight": ngram.ngram_weight,
            "encoder_alone": {"macro_f1": alone["macro_f1"], "accuracy": alone["accuracy"],
                              "ece": M.ece(encoder_probs, y)}, "fit": info}


def predictions(rows, probs, ratings, base_probs):
    """``predictions.parquet``: one row per scored review, the model's and the baseline's probabilities."""
    import numpy as np
    import pandas as pd

    preds = pd.DataFrame({"id": rows["id"].astype(str) if "id" in rows.columns else np.arange(len(rows)).astype(str),
                          "label": rows["label"], "pred": [LABELS[i] for i in probs.argmax(axis=1)]})
    for i, name in enumerate(LABELS):
        preds[f"p_{name}"] = probs[:, i]
    preds["rating"] = ratings if ratings is not None else np.nan
    if base_probs is not None:
        preds["baseline_pred"] = [LABELS[i] for i in base_probs.argmax(axis=1)]
        for i, name in enumerate(LABELS):
            preds[f"baseline_p_{name}"] = base_probs[:, i]
    return preds


def run(cfg: EvaluateConfig, run: StageRun) -> None:
    from kopretrain.evaluation.metrics import ece
    from kopretrain.inference.classifier import Classifier, read_split, softmax
    from kopretrain.evaluation.report import build_evaluation_report

    notes: list[str] = []
    clf = Classifier.load(cfg.model, revision=cfg.revision or None, data=cfg.data, max_length=cfg.max_length)
    frame = read_split(cfg.data, cfg.split)
    rows, y = labelled(frame)
    if not y:
        raise StageError(f"{cfg.data}/{cfg.split}.parquet: no labelled rows to score ({len(frame)} rows, all null labels)")
    if len(rows) < len(frame):
        notes.append(f"{len(frame) - len(rows)} unlabelled rows of {cfg.split} were not scored")
    ratings = rows["rating"].to_numpy(dtype=float) if "rating" in rows.columns else None
    print(f"[evaluate] scoring {len(rows):,} {cfg.split} rows with {cfg.model}")
    logits, model = score(cfg, clf, rows, y, ratings, notes)
    probs = softmax(logits)
    model["precision"] = clf.scorer.precision
    model["precision_seconds_per_batch"] = clf.scorer.measured or None  # what precision auto timed, if it did
    temperature = fit_temperature(cfg, clf, notes)
    model["temperature"] = temperature
    if temperature is not None:
        scaled = softmax(logits, temperature)
        model["ece_temperature_scaled"] = ece(scaled, y)
        model["reliability_temperature_scaled"] = system_metrics(scaled, y, None)["reliability"]

    base, base_probs, n_base = None, None, 0
    if cfg.baseline:
        fitted, n_base = train_baseline(cfg, notes)
        if fitted is not None:
            base_probs = fitted.predict_proba(["" if t is None else str(t) for t in rows["text"]])
            base = {**system_metrics(base_probs, y, ratings), **fitted.describe(), "train_examples": n_base}

    absent = model["absent_classes"]
    if absent:
        notes.append(f"class(es) absent from the {cfg.split} split: {', '.join(absent)}; their recall/F1 are "
                     "undefined and macro-F1 averages over the classes present")
    said = [name for name, v in model["per_class"].items() if v["predicted"]]
    if len(said) == 1 and len(LABELS) - len(absent) > 1:
        notes.append(f"the model labels every row {said[0]}: it has not learned to tell the classes apart "
                     "(finetune's stage.json says single_class when dev showed it too)")
    predictions(rows, probs, ratings, base_probs).to_parquet(run.dir / "predictions.parquet", index=False)

    errors = confident_errors(rows, y, probs, cfg.max_errors_shown,
                              base_probs.argmax(axis=1) if base_probs is not None else None)
    result = {
        "model_path": cfg.model, "data": cfg.data, "split": cfg.split, "n": len(rows), "labels": list(LABELS),
        "label_scheme": recorded_scheme(cfg.data), "absent_classes": absent, "notes": notes, "textprep": vars(clf.prep),
        "model": model, "baseline": base, "confident_errors": errors,
    }
    write_json(run.dir / "metrics.json", result)
    build_evaluation_report(result, run.dir)
    run.set_counts(rows_in=len(frame), rows_out=len(rows), rejected={"unlabelled": len(frame) - len(rows)})
    run.stats.update({"accuracy": model["accuracy"], "macro_f1": model["macro_f1"], "ece": model["ece"],
                      "baseline_macro_f1": base["macro_f1"] if base else None,
                      "encoder_macro_f1": model["ngram_blend"]["encoder_alone"]["macro_f1"] if clf.ngram else None,
                      "binary_accuracy": model["binary"]["accuracy"]})
    print(f"[evaluate] accuracy {model['accuracy']:.4f}  macro-F1 {model['macro_f1']:.4f}"
          + (f"  (baseline macro-F1 {base['macro_f1']:.4f})" if base else ""))


STAGE = Stage("evaluate", EvaluateConfig, run=run)
