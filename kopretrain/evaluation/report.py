"""A human report rendered twice from one document: ``report.md`` (images beside it) and a
self-contained ``report.html`` (PNGs embedded as base64, so it can be mailed or attached).

Plots use matplotlib's Agg backend (no display). Axis labels are English on purpose: the default
fonts have no Hangul glyphs; Korean review texts go in the tables, where browsers render them.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Sequence

from kopretrain.data.files import LABELS
from kopretrain.evaluation.scheme_text import binary_scope, labels_source, rating_errors


class Report:
    """Headings, paragraphs, tables and images, rendered to Markdown and to HTML.

    >>> r = Report("평가"); r.table(["metric", "value"], [["accuracy", 0.9]])
    >>> "| accuracy | 0.9000 |" in r.to_markdown()
    True
    """

    def __init__(self, title: str):
        self.title = title
        self.blocks: list[tuple[str, Any]] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("para", text))

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append(("bullets", list(items)))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", (list(headers), [list(r) for r in rows])))

    def image(self, path: Path, alt: str) -> None:
        self.blocks.append(("image", (Path(path), alt)))

    # ---------------------------------------------------------------- rendering
    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                out += ["#" * value[0] + " " + value[1], ""]
            elif kind == "para":
                out += [value, ""]
            elif kind == "bullets":
                out += [f"- {item}" for item in value] + [""]
            elif kind == "table":
                headers, rows = value
                out.append("| " + " | ".join(headers) + " |")
                out.append("|" + "|".join("---" for _ in headers) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
                out.append("")
            elif kind == "image":
                out += [f"![{value[1]}]({value[0].name})", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                body.append(f"<h{value[0]}>{html.escape(value[1])}</h{value[0]}>")
            elif kind == "para":
                body.append(f"<p>{_inline(value)}</p>")
            elif kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in value) + "</ul>")
            elif kind == "table":
                headers, rows = value
                head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
                trs = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "image":
                data = base64.b64encode(value[0].read_bytes()).decode("ascii")
                body.append(f'<figure><img alt="{html.escape(value[1])}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{html.escape(value[1])}</figcaption></figure>")
        return (f"<!doctype html>\n<html lang=\"ko\"><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}"
                f"</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

    def write(self, directory: Path, stem: str = "report") -> tuple[Path, Path]:
        md, page = Path(directory) / f"{stem}.md", Path(directory) / f"{stem}.html"
        md.write_text(self.to_markdown(), encoding="utf-8")
        page.write_text(self.to_html(), encoding="utf-8")
        return md, page


_CSS = ("body{font-family:system-ui,'Noto Sans KR',sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
        "color:#222}table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;"
        "text-align:left;vertical-align:top}th{background:#f4f4f4}img{max-width:100%}code{background:#f4f4f4}")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _md_cell(value: Any) -> str:
    """A table cell: one line (\r ends a line in CommonMark too) and no raw HTML from reviews."""
    text = " ".join(_fmt(value).splitlines())
    return html.escape(text, quote=False).replace("|", "\\|")


def _inline(text: str) -> str:
    """Escape, then keep the one Markdown idiom the paragraphs use: `code`."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


# -------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(matrices: dict[str, list[list[int]]], path: Path) -> Path:
    """One row-normalized confusion matrix per system, side by side (counts printed in cells)."""
    import numpy as np

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.2 * len(matrices), 3.8), squeeze=False)
    for ax, (name, cm) in zip(axes[0], matrices.items()):
        cm = np.asarray(cm, dtype=float)
        rows = cm.sum(axis=1, keepdims=True)
        share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{int(cm[i, j])}\n{share[i, j]:.0%}", ha="center", va="center",
                        color="white" if share[i, j] > 0.6 else "black", fontsize=9)
        ax.set_xticks(range(len(LABELS)), LABELS)
        ax.set_yticks(range(len(LABELS)), LABELS)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_reliability(curves: dict[str, list[dict]], path: Path) -> Path:
    """Reliability diagram: accuracy against confidence per bin (the diagonal is perfect calibration),
    over a panel of the rows in each bin, since a point far off the diagonal means little when a
    handful of rows stand behind it. The legend sits above the axes: inside, any corner can hide a
    curve (an underconfident system, often the baseline, runs through the upper left)."""
    plt = _pyplot()
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(5, 5.5), sharex=True, height_ratios=(3, 1), layout="constrained")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    for name, bins in curves.items():
        pts = [(b["confidence"], b["accuracy"]) for b in bins if b["count"]]
        if pts:
            xs, ys = zip(*pts)
            (line,) = ax.plot(xs, ys, marker="o", label=name)
            counts.stairs([b["count"] for b in bins], [bins[0]["lo"]] + [b["hi"] for b in bins],
                          color=line.get_color(), label=name)
    ax.set_xlim(0.3, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    counts.set_yscale("symlog", linthresh=1)  # most rows sit in the top bins: a linear scale hides the rest
    counts.set_ylim(bottom=0)
    counts.set_ylabel("rows per bin")
    counts.set_xlabel("confidence (max probability)")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_ratings(systems: dict[str, list[dict]], path: Path) -> Path:
    """Accuracy per original rating, one bar group per rating and one bar per system."""
    plt = _pyplot()
    systems = {k: [r for r in rows if r["rating"] is not None] for k, rows in systems.items()}  # the table has them
    ratings = sorted({r["rating"] for rows in systems.values() for r in rows})
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(ratings) + 2), 3.8))
    width = 0.8 / max(1, len(systems))
    for k, (name, rows) in enumerate(systems.items()):
        acc = {r["rating"]: r["accuracy"] for r in rows}
        ax.bar([i + k * width for i in range(len(ratings))], [acc.get(r, 0) for r in ratings], width, label=name)
    gold = {r["rating"]: r.get("gold", "") for rows in systems.values() for r in rows}
    ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(ratings))],
                  [f"{r:g}\n{gold[r][:3]}" for r in ratings])
    ax.set_xlabel("original rating (gold label)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -------------------------------------------------------------------- the evaluate report
def build_evaluation_report(result: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """``report.md`` + ``report.html`` (+ PNGs) from the ``metrics.json`` content of evaluate."""
    directory = Path(directory)
    model, base = result["model"], result.get("baseline")
    systems = {"model": model, **({"baseline (TF-IDF+LR)": base} if base else {})}
    r = Report(f"Sentiment evaluation: {Path(result['model_path']).name or result['model_path']}")
    r.para(f"Model `{result['model_path']}` scored on the `{result['split']}` split of `{result['data']}` "
           f"({result['n']:,} labelled rows). Labels: negative / neutral / positive"
           f"{labels_source(result.get('label_scheme'))}.")
    for note in result.get("notes", []):
        r.para("Note: " + note)

    for section in (_summary, _per_class, _calibration, _per_rating, _errors):
        section(r, result, systems, directory)
    return r.write(directory)


def _summary(r: Report, result: dict[str, Any], systems: dict[str, Any], directory: Path) -> None:
    """The headline table: each system's accuracy, macro-F1, binary accuracy and ECE."""
    model = result["model"]
    r.heading("Summary")
    rows = [["accuracy"] + [s["accuracy"] for s in systems.values()],
            ["macro-F1"] + [s["macro_f1"] for s in systems.values()],
            ["binary accuracy (neg vs pos rows)"] + [s["binary"]["accuracy"] for s in systems.values()],
            ["ECE"] + [s["ece"] for s in systems.values()]]
    alone = (model.get("ngram_blend") or {}).get("encoder_alone")
    if alone:  # the model pools an n-gram expert (finetune --ngram-blend): what the encoder does by itself
        rows.insert(2, ["macro-F1, the encoder alone"] + [alone["macro_f1"]] + [None] * (len(systems) - 1))
    if model.get("temperature") is not None:
        rows.append(["ECE after temperature scaling"] + [model["ece_temperature_scaled"]] + [None] * (len(systems) - 1))
    r.table(["metric"] + list(systems), rows)
    r.para(f"Binary accuracy uses only rows whose gold label is negative or positive "
           f"({model['binary']['n']:,} rows) and predicts argmax over p(negative) vs p(positive)"
           + binary_scope(result.get("label_scheme")))


def _per_class(r: Report, result: dict[str, Any], systems: dict[str, Any], directory: Path) -> None:
    """Precision/recall/F1 per class and the confusion matrices."""
    model = result["model"]
    r.heading("Per class")
    headers = ["class", "support"] + [f"{m} ({name})" for name in systems for m in ("P", "R", "F1")]
    table = []
    for label in LABELS:
        row = [label, model["per_class"][label]["support"]]
        for s in systems.values():
            pc = s["per_class"][label]
            row += [pc["precision"], pc["recall"], pc["f1"]]
        table.append(row)
    r.table(headers, table)
    if result.get("absent_classes"):
        r.para(f"Absent from this split: {', '.join(result['absent_classes'])} (recall/F1 shown as n/a; "
               "macro-F1 averages the classes present).")
    r.image(plot_confusion({k: s["confusion"] for k, s in systems.items()}, directory / "confusion.png"),
            "Confusion matrices (rows: gold, columns: predicted; counts and row shares)")


def _calibration(r: Report, result: dict[str, Any], systems: dict[str, Any], directory: Path) -> None:
    """ECE and the reliability diagram (model, temperature-scaled model, baseline)."""
    model, base = result["model"], result.get("baseline")
    r.heading("Calibration")
    curves = {"model": model["reliability"]}
    text = f"Expected calibration error (15 equal-width bins): model {model['ece']:.4f}"
    if model.get("temperature") is not None:
        curves[f"model, T={model['temperature']:.2f}"] = model["reliability_temperature_scaled"]
        text += (f"; after temperature scaling fitted on dev (T = {model['temperature']:.3f}) "
                 f"{model['ece_temperature_scaled']:.4f}")
    if base:
        curves["baseline"] = base["reliability"]
        text += f"; baseline {base['ece']:.4f}"
    r.para(text + ".")
    r.image(plot_reliability(curves, directory / "reliability.png"), "Reliability diagram")


def _per_rating(r: Report, result: dict[str, Any], systems: dict[str, Any], directory: Path) -> None:
    """Accuracy per original rating: where a 3-class model's errors come from."""
    model, base = result["model"], result.get("baseline")
    if model.get("per_rating"):
        r.heading("Accuracy per original rating")
        r.para(rating_errors(result.get("label_scheme")))
        base_acc = {row["rating"]: row["accuracy"] for row in (base or {}).get("per_rating", [])}
        r.table(["rating", "n", "gold", "accuracy"] + [f"pred {lab}" for lab in LABELS]
                + (["baseline accuracy"] if base else []),
                [["no rating" if row["rating"] is None else f"{row['rating']:g}", row["n"], row["gold"], row["accuracy"]]
                 + [row[f"pred_{lab}"] for lab in LABELS] + ([base_acc.get(row["rating"])] if base else [])
                 for row in model["per_rating"]])
        r.image(plot_ratings({k: s["per_rating"] for k, s in systems.items()}, directory / "ratings.png"),
                "Accuracy per original rating")


def _errors(r: Report, result: dict[str, Any], systems: dict[str, Any], directory: Path) -> None:
    """The most confident errors, and how the baseline was trained."""
    base = result.get("baseline")
    r.heading("Most confident errors")
    errors = result.get("confident_errors", [])
    if errors:
        r.table(["text", "gold", "pred", "confidence", "rating"] + (["baseline"] if base else []),
                [[e["text"], e["gold"], e["pred"], e["confidence"],
                  None if e["rating"] is None else f"{e['rating']:g}"] + ([e["baseline_pred"]] if base else [])
                 for e in errors])
    elif (result.get("model") or {}).get("accuracy", 1.0) < 1.0:  # errors, none asked for (--max-errors-shown 0)
        r.para("Not shown (--max-errors-shown 0).")
    else:
        r.para("No errors.")

    if base:
        r.heading("Baseline")
        r.para(f"{base['model']}; character n-grams {base['ngram_range'][0]}-{base['ngram_range'][1]}, "
               f"{base['features']:,} features, trained on {base['train_examples']:,} training rows "
               f"in {base['fit_seconds']:.1f}s.")
