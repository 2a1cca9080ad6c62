"""The model card of a released folder: facts gathered from the stage records, written with
``huggingface_hub.ModelCard``/``ModelCardData``/``EvalResult`` so the Hub renders its metadata/model-index.

Nothing in a card is typed by hand: data sizes, labels, normalizer rules, hyperparameters,
metrics, versions and fingerprints come from the ``stage.json`` chain behind the model (finetune ->
pretrain -> vocab -> analyze -> normalize -> ingest) and from the evaluate/pretrain ``metrics.json``.
"""

from __future__ import annotations

from typing import Any

from kopretrain.hub.card_usage import (  # noqa: F401 - PIPELINE_AGREEMENT: re-exported
    PIPELINE_AGREEMENT, in_tokenizer, requirements as _requirements, use as _use,
)

PIPELINE_TAGS = {"classifier": "text-classification", "mlm": "fill-mask", "rtd": "feature-extraction",
                 "encoder": "feature-extraction"}
# normalizer settings that change what the model sees (the rest are corpus filters)
NORMALIZE_KEYS = ("emoji", "max_repeat", "skip_rules", "spacing", "typos")
TRAINING_KEYS = {
    "pretrain": ("objective", "init", "checkpoint", "revision", "preset", "num_layers", "hidden_size", "max_steps",
                 "epochs", "lr", "batch_size", "max_length", "masking.mlm_probability", "seed"),
    "finetune": ("epochs", "max_steps", "max_minutes", "lr", "batch_size", "max_length", "class_weight",
                 "label_budget", "keep_layers", "freeze_layers", "pooling", "seed"),
}
PRETRAIN_METRICS = (  # pretraining metrics worth a model-index entry (metrics.json "final" keys)
    "perplexity", "mlm_accuracy", "gen_perplexity", "gen_accuracy", "disc_accuracy", "disc_auc", "loss")


def normalizer_rules(normalize: dict[str, Any] | None) -> list[tuple[str, str]]:
    """``[(rule name, first docstring line)]`` of the recorded normalizer config, in order."""
    if normalize is None:
        return []
    try:
        from kopretrain.text.rules import build_rules
    except ImportError:
        return []
    skip = set(normalize.get("skip_rules") or [])
    rules = [(n, _summary(r.__doc__)) for n, r in build_rules(normalize.get("max_repeat", 2), normalize.get("emoji", "keep"))
             if n not in skip]
    if normalize.get("spacing") and "spacing" not in skip:
        rules.append(("spacing", "kiwipiepy spacing correction"))
    if normalize.get("typos", "none") != "none" and "typos" not in skip:
        rules.append(("typos", f"kiwipiepy typo correction ({normalize['typos']})"))
    return rules


def _summary(doc: str | None) -> str:
    """A rule docstring's first paragraph as Markdown: whole sentences (the first line cut them
    mid-way: "Digits never collapse"), ``x`` and :func:`x` as `x`."""
    import re

    paragraph = " ".join(line.strip() for line in (doc or "").strip().split("\n\n")[0].splitlines())
    return re.sub(r":\w+:`([^`]+)`", r"`\1`", paragraph).replace("``", "`")


def eval_results(info: dict[str, Any]):
    """model-index entries: test metrics of a classifier, held-out pretraining metrics of an encoder."""
    from huggingface_hub import EvalResult

    data = info["dataset"]
    out = []
    if info["kind"] == "classifier" and info.get("evaluation"):
        ev = info["evaluation"]
        model = ev["model"]
        common = dict(task_type="text-classification", task_name="Sentiment classification (3 classes)",
                      dataset_type=data["type"], dataset_name=data["name"], dataset_split=ev.get("split"))
        alone = (model.get("ngram_blend") or {}).get("encoder_alone")
        # With an n-gram expert, the plain metrics are the encoder's (what transformers loads from this
        # folder); the pool that kopretrain runs is listed beside them under its own names.
        rows = [("accuracy", "Accuracy", alone.get("accuracy"), None),
                ("f1", "Macro F1", alone.get("macro_f1"), "macro"),
                ("ece", "Expected calibration error (15 bins)", alone.get("ece"), None)] if alone else []
        suffix, pooled = (" (encoder with its n-gram expert, as kopretrain runs it)", "ngram-blend") if alone \
            else ("", None)
        rows += [
            ("accuracy", "Accuracy" + suffix, model.get("accuracy"), pooled),
            ("f1", "Macro F1" + suffix, model.get("macro_f1"), "macro" + (f"-{pooled}" if pooled else "")),
            ("accuracy", "Binary accuracy (negative vs positive rows)" + suffix,
             (model.get("binary") or {}).get("accuracy"), "binary" + (f"-{pooled}" if pooled else "")),
            ("ece", "Expected calibration error (15 bins)" + suffix, model.get("ece"), pooled),
        ]
        for metric, name, value, config in rows:
            if value is not None:
                out.append(EvalResult(metric_type=metric, metric_name=name, metric_value=round(float(value), 4),
                                      metric_config=config, **common))
    elif info.get("pretrain_metrics"):
        final = info["pretrain_metrics"]
        for key in PRETRAIN_METRICS:
            value = final.get(key, final.get(f"eval_{key}"))
            if isinstance(value, (int, float)):
                out.append(EvalResult(task_type=info["pipeline_tag"], task_name="Held-out pretraining objective",
                                      dataset_type=data["type"], dataset_name=data["name"], dataset_split="dev",
                                      metric_type=key, metric_name=key.replace("_", " "),
                                      metric_value=round(float(value), 4)))
    return out


def card_data(info: dict[str, Any]):
    from huggingface_hub import ModelCardData

    base = info.get("base_model") or {}
    extra = {"base_model_revision": base["revision"]} if base.get("revision") else {}
    if info["kind"] == "classifier" and info.get("widget"):  # the Hub's inference box opens with these
        extra["widget"] = [{"text": text} for text in info["widget"]]
    results = eval_results(info)
    return ModelCardData(
        language="ko", license=info["license"], library_name="transformers", pipeline_tag=info["pipeline_tag"],
        base_model=base.get("id") or None, datasets=info["datasets"] or None,
        tags=["kopretrain", "korean", *(["sentiment-analysis"] if info["kind"] == "classifier" else [])],
        metrics=sorted({r.metric_type for r in results}) or None,
        model_name=info["model_name"] if results else None, eval_results=results or None, **extra,
    )


def render(info: dict[str, Any]) -> str:
    """The README.md text: YAML metadata + body."""
    from huggingface_hub import ModelCard

    card = ModelCard(f"---\n{card_data(info).to_yaml()}\n---\n\n{body(info)}")
    return str(card)


# ----------------------------------------------------------------------------- body


def body(info: dict[str, Any]) -> str:
    parts = [_title(info), _use(info), _requirements(info), _limits(info), _evaluation(info), _data(info),
             _preprocessing(info), _training(info), _provenance(info), _citation(info)]
    return "\n\n".join(p for p in parts if p).rstrip() + "\n"


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "—" if value is None else str(value)


def _title(info: dict[str, Any]) -> str:
    what = {
        "classifier": "a Korean 3-class sentiment classifier (negative / neutral / positive) for noisy user reviews",
        "mlm": "a Korean encoder pretrained with masked language modeling on user reviews",
        "rtd": "a Korean ELECTRA discriminator pretrained with replaced-token detection on user reviews",
        "encoder": "a Korean text encoder",
    }[info["kind"]]
    base = info.get("base_model") or {}
    origin = (f"continued from [{base['id']}](https://huggingface.co/{base['id']})"
              + (f" at revision `{base['revision']}`" if base.get("revision") else "")
              + (f" (commit `{base['commit']}`)" if base.get("commit") else "")
              + (f" (a local copy, `{base['local']}`)" if base.get("local") else "")) if base.get("id") \
        else (f"continued from the local checkpoint `{base['local']}` (its Hub origin is not recorded)"
              if base.get("local") else _scratch_origin(info))
    return (f"# {info['model_name']}\n\n{what[0].upper() + what[1:]}, built with "
            f"kopretrain {info['kopretrain_version']}: {info['architecture']}, "
            f"{_count(info['parameters'])} parameters, {origin}.")


def _scratch_origin(info: dict[str, Any]) -> str:
    """No base model: say whether kopretrain pretrained it (a classifier's weights came from somewhere)."""
    if "stages" in info and not info["stages"]:  # a folder made elsewhere: nothing says where it came from
        return "origin not recorded (the folder came without kopretrain records)"
    pretrain = (info.get("pretrain") or {}).get("config") or {}
    if info["kind"] == "classifier" and pretrain.get("objective"):
        return (f"pretrained from scratch by kopretrain ({pretrain['objective'].upper()}) on the training reviews, "
                "then fine-tuned (no external base model)")
    return "trained from scratch (no base model)"


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 100_000 else f"{n:,}"


def _citation(info: dict[str, Any]) -> str:
    base = (info.get("base_model") or {}).get("id")
    lines = ["## Citation", "", "```bibtex", "@software{kopretrain,",
             "  title   = {kopretrain: adapting Korean language models to noisy user text},",
             f"  version = {{{info['kopretrain_version']}}},", "  year    = {2026}", "}", "```"]
    if base:
        lines += ["", f"Please also cite the base model, [{base}](https://huggingface.co/{base}), as its card asks."]
    return "\n".join(lines)


def _limits(info: dict[str, Any]) -> str:
    data = info["dataset"]
    scheme = data.get("label_mapping")
    known = f" ({data['name']})" if data.get("splits") else ""
    lines = ["## Intended use and limits", "",
             f"- Domain: Korean user reviews like the training data{known}. Other domains (news, "
             "formal text, other review sites) shift vocabulary and tone: check accuracy on a labeled sample first.",
             "- Noisy text (slang, ㅋㅋ, typos, missing spaces) is what the model was adapted to; the normalizer "
             "rules below are part of the model's input contract."]
    if info["kind"] == "classifier":
        origin = f"Labels come from the data's labeling scheme ({scheme}), not from annotators" if scheme \
            else "Labels come from the training data's labeling scheme (see the data card)"
        lines += [f"- {origin}. "
                  "**The neutral class is fuzzy**: mid ratings mix mild praise, mixed opinions and off-topic "
                  "remarks, so neutral has the lowest precision and recall; use `confidence`/`needs_review` "
                  "(e.g. `kopretrain label --min-confidence 0.6`) to route unsure rows to people.",
                  "- Not for decisions about individual people (moderation, hiring, credit) without human review."]
    return "\n".join(lines)


def _evaluation(info: dict[str, Any]) -> str:
    if info["kind"] == "classifier":
        ev = info.get("evaluation")
        if not ev:
            return "## Evaluation\n\nNo evaluate output was given at release time: no test metrics are claimed."
        m, base = ev["model"], ev.get("baseline")
        alone = (m.get("ngram_blend") or {}).get("encoder_alone") or {}
        rows = [("Accuracy", m.get("accuracy"), alone.get("accuracy"), (base or {}).get("accuracy")),
                ("Macro F1", m.get("macro_f1"), alone.get("macro_f1"), (base or {}).get("macro_f1")),
                ("Binary accuracy (negative vs positive rows)", (m.get("binary") or {}).get("accuracy"), None,
                 ((base or {}).get("binary") or {}).get("accuracy")),
                ("ECE (15 bins; lower is better)", m.get("ece"), alone.get("ece"), (base or {}).get("ece"))]
        baseline = ("Baseline: TF-IDF character n-grams + logistic regression trained on the same rows." if base
                    else "No baseline was trained for this evaluation.")
        lines = ["## Evaluation", "",
                 f"On the `{ev.get('split')}` split ({ev.get('n')} reviews; groups such as movies/products never "
                 f"appear in two splits). {baseline}"]
        if ev.get("split") == "dev":
            lines += ["", "**These are dev-split scores**: fine-tuning chose its checkpoint (and any baseline its C) "
                      "on this split, so they run optimistic; a `test` evaluation is the unbiased one."]
        head = ["this model"] + (["encoder alone (what `pipeline` loads)"] if alone else []) + ["baseline"]
        lines += ["", f"| metric | {' | '.join(head)} |", "|---" * (len(head) + 1) + "|"]
        lines += [f"| {name} | {_fmt(a)} | " + (f"{_fmt(e)} | " if alone else "") + f"{_fmt(b)} |"
                  for name, a, e, b in rows if a is not None]
        per_class = m.get("per_class") or {}
        if per_class:
            lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
            lines += [f"| {c} | {_fmt(v.get('precision'))} | {_fmt(v.get('recall'))} | {_fmt(v.get('f1'))} | "
                      f"{v.get('support')} |" for c, v in per_class.items()]
        if m.get("temperature"):
            lines += ["", f"Evaluation fitted a further softmax temperature on dev, on top of any folded in at fine-tuning "
                      f"(see Training): {m['temperature']:.3f}, moving ECE to {_fmt(m.get('ece_temperature_scaled'))}. "
                      "It is a diagnostic, not applied to the released weights."]
        if ev.get("notes"):
            lines += ["", "Notes from the evaluation:", ""] + [f"- {note}" for note in ev["notes"]]
        return "\n".join(lines)
    final = info.get("pretrain_metrics")
    if not final:
        return ""
    lines = ["## Pretraining metrics", "", "On held-out dev texts at the end of pretraining:", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {k.removeprefix('eval_')} | {_fmt(v)} |" for k, v in final.items()
              if isinstance(v, (int, float)) and not k.endswith(("runtime", "per_second", "epoch"))]
    return "\n".join(lines)


def _data(info: dict[str, Any]) -> str:
    data = info["dataset"]
    lines = ["## Training data", ""]
    link = "Full data card: [data_card.md](data_card.md)." if data.get("card") else ""
    if data.get("splits"):
        lines.append(f"{data['name']} (license: {data.get('license') or 'see the data card'}). {link}".rstrip())
    else:
        lines.append(link or "The training data was not recorded by kopretrain (no ingest record): see the "
                     "model's author for its source.")
    if data.get("label_mapping"):
        lines.append(f"Labels: {data['label_mapping']}.")
    if data.get("splits"):
        lines += ["", "| split | rows |", "|---|---|"] + [f"| {k} | {v} |" for k, v in data["splits"].items()]
    ft = (info.get("finetune") or {}).get("stats") or {}
    if ft.get("train_label_counts"):
        counts = ", ".join(f"{k} {v}" for k, v in ft["train_label_counts"].items())
        pseudo = ft.get("pseudo_labels")
        if pseudo:  # self-training: most training rows carry a teacher's guess, not a person's label
            accuracy = pseudo.get("accuracy_where_known")
            checked = f" (right on {accuracy:.0%} of those whose labels were set aside)" if accuracy is not None else ""
            lines += ["", f"Fine-tuned on {ft.get('train_examples')} reviews ({counts}), self-trained: "
                      f"{ft['train_examples'] - pseudo['rows']} labeled and {pseudo['rows']} labeled by a teacher "
                      f"model, its most confident predictions on {pseudo['pool']} unlabeled training reviews{checked}."]
        else:
            lines += ["", f"Fine-tuned on {ft.get('train_examples')} labeled reviews ({counts})."]
    return "\n".join(lines)


def _preprocessing(info: dict[str, Any]) -> str:
    prep = info["textprep"]
    lines = ["## Preprocessing", ""]
    if prep.get("normalize") is None:
        lines.append("No normalization: the tokenizer sees the text as written.")
    else:
        version = info.get("normalizer_version") or info["kopretrain_version"]
        digest = prep["normalize"].get("rules_digest")
        digest = f", rules digest `{digest}`" if digest else ""
        lines += [f"Normalizer of kopretrain {version}{digest} (rules applied in this order; they only rewrite "
                  "text, no review is dropped at inference):", ""]
        lines += [f"- `{name}`: {doc}" for name, doc in info.get("rules") or []]
        settings = {k: v for k, v in prep["normalize"].items() if k in NORMALIZE_KEYS}
        lines += ["", f"Settings: `{settings}`."] + _tokenizer_rules(prep)
    lines += ["", f"Pre-tokenization: `{prep.get('pretokenize', 'eojeol')}`"
              + (" (kiwipiepy morphemes, joined by spaces)" if prep.get("pretokenize") == "morpheme" else "")
              + f". Max length: {info.get('max_length')} tokens. Vocabulary: {info['vocab_size']} tokens, "
              f"hash `{info['vocab_hash']}`."
              + (" All of this is recorded in `kopretrain.json`." if info.get("recorded", True) else "")]
    return "\n".join(lines)


def _tokenizer_rules(prep: dict[str, Any]) -> list[str]:
    """Which rules the saved tokenizer applies to raw text, and which it cannot (with their effect)."""
    embedded = in_tokenizer(prep)
    if not embedded:
        return ["", "The tokenizer applies none of these rules: apply them (`kopretrain.json`) before tokenizing."]
    lines, missing = [""], embedded.get("not_applied")
    if embedded.get("applied"):
        lines.append(f"The tokenizer (`tokenizer.json` normalizer) applies {', '.join(embedded['applied'])} "
                     "itself, before its own normalizer, so raw text gets them too"
                     + ("." if missing else f" ({PIPELINE_AGREEMENT})."))
    if missing:
        lines += ["", "The tokenizer cannot apply (apply the recorded preparation first, or use `kopretrain label`):",
                  ""] + [f"- `{name}`: {why}" for name, why in missing.items()]
    return lines


def _training(info: dict[str, Any]) -> str:
    lines = []
    for stage, keys in TRAINING_KEYS.items():
        cfg = (info.get(stage) or {}).get("config")
        if cfg:
            # max_steps decides the length when set: the epochs it never reached would mislead
            values = {k: _dotted(cfg, k) for k in keys if not (k == "epochs" and (cfg.get("max_steps") or 0) > 0)}
            shown = ", ".join(f"{k.rsplit('.', 1)[-1]} {v}" for k, v in values.items() if v not in (None, "", 0, -1))
            lines.append(f"- {stage}: {shown}")
    stats = (info.get("finetune") or {}).get("stats") or {}
    if stats.get("global_steps"):
        lines.append(f"- fine-tuning ran {stats['global_steps']} optimizer steps")
    if stats.get("dev_macro_f1") is not None:
        lines.append(f"- checkpoint selected by dev macro-F1: {_fmt(stats['dev_macro_f1'])} "
                     f"(dev accuracy {_fmt(stats.get('dev_accuracy'))}, precision {stats.get('precision')})")
    if (stats.get("calibration") or {}).get("folded"):
        c = stats["calibration"]
        lines.append(f"- calibrated: a softmax temperature of {c['temperature']:.3f} fitted on dev is folded into the "
                     f"classifier head, so any loader gets calibrated probabilities (dev ECE {_fmt(c['dev_ece_before'])} "
                     f"-> {_fmt(c['dev_ece_after'])}; predictions unchanged)")
    if stats.get("soup"):
        lines.append(f"- a weight soup: the average of {len(stats['soup']['kept'])} of {stats['soup']['members']} fine-tunes "
                     f"on the same rows in other orders (greedy on dev; dev macro-F1 {_fmt(stats['soup']['dev_macro_f1'])})")
    return "## Training\n\n" + "\n".join(lines) + "\n\nFull configs: `provenance.json`." if lines else ""


def _provenance(info: dict[str, Any]) -> str:
    lines = ["## Provenance", "",
             f"Released with kopretrain {info['kopretrain_version']}"
             + (f", git commit `{info['git_commit']}`" if info.get("git_commit") else "") + ". "
             "`provenance.json` holds every stage's resolved config, input fingerprints and library versions.", ""]
    if info.get("stages"):
        lines += ["| stage | fingerprint | kopretrain | git commit | started |", "|---|---|---|---|---|"]
        lines += [f"| {s['stage']} | `{s['fingerprint']}` | {s.get('kopretrain')} | `{(s.get('git_commit') or '')[:12]}` "
                  f"| {s.get('started')} |" for s in info["stages"]]
    fps = info["dataset"].get("fingerprints") or {}
    if fps:
        lines += ["", "Source data fingerprints: " + ", ".join(f"{k} `{v}`" for k, v in fps.items()) + "."]
    return "\n".join(lines)


def _dotted(config: dict[str, Any], key: str) -> Any:
    """``config["masking"]["mlm_probability"]`` for ``"masking.mlm_probability"`` (None if absent)."""
    value: Any = config
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
