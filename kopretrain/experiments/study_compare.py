"""Side by side: one study's fine-tuning variants (``--tag``s), and the variant dev macro-F1 picks.

    .venv/bin/python -m kopretrain.experiments.study_compare --workdir runs/study-1ep \\
        --variants "A=,B=lr5e4,C=reinit1" --labels "A=lr 1e-4,B=lr 5e-4,C=lr 5e-4 + re-init top layer"

Reads ``study.json`` (no tag) / ``study-TAG.json`` from the workdir and prints the markdown table in
BENCHMARKS.md "Study": test macro-F1 mean ± std per variant, mean dev macro-F1 per variant, and the
test score of the variant with the best mean dev macro-F1 per system and budget, so the test split
is never what chooses. The baseline does not depend on the fine-tuning variant: its cell repeats.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kopretrain.experiments.study_report import NAMES, ORDER


def load(workdir: Path, variants: dict[str, str]) -> dict[tuple[int, str], dict[str, dict]]:
    """``{(budget, system): {variant: row}}`` from each variant's study JSON."""
    rows: dict[tuple[int, str], dict[str, dict]] = {}
    for name, tag in variants.items():
        path = workdir / (f"study-{tag}.json" if tag else "study.json")
        if not path.is_file():
            raise SystemExit(f"{path}: not found (run kopretrain/experiments/study.py with --tag {tag or '(none)'} first)")
        for r in json.loads(path.read_text())["rows"]:
            rows.setdefault((r["budget"], r["system"]), {})[name] = r
    return rows


def _cell(row: dict | None, full_n: int) -> str:
    if not row:
        return "–"
    text = f"{100 * row['macro_f1']:.2f}"
    if row.get("macro_f1_std") is not None:
        text += f" ± {100 * row['macro_f1_std']:.2f}"
    return text + ("" if row["n"] == full_n else f" (n={row['n']})")


def dev_selected(cells: dict[str, dict]) -> str | None:
    """The variant with the best mean dev macro-F1 (first listed wins a tie), or None without dev."""
    scored = [(row["dev_macro_f1"], -i, name) for i, (name, row) in enumerate(cells.items())
              if row.get("dev_macro_f1") is not None]
    return max(scored)[2] if scored else None


def table(rows: dict[tuple[int, str], dict[str, dict]], labels: dict[str, str]) -> str:
    names = list(labels)
    full_n = max((r["n"] for cells in rows.values() for r in cells.values()), default=0)
    out = ["| system | labels | " + " | ".join(f"{n}: {labels[n]}" for n in names)
           + f" | dev {' / '.join(names)} | dev-selected |",
           "|---|---|" + "---|" * (len(names) + 2)]
    for budget in sorted({b for b, _ in rows}, key=lambda b: (b == 0, b)):
        for system in ORDER:
            cells = rows.get((budget, system))
            if not cells:
                continue
            pick = dev_selected(cells)
            chosen = f"{pick}: {100 * cells[pick]['macro_f1']:.2f}" if pick else _cell(next(iter(cells.values())), full_n)
            devs = " / ".join(f"{100 * cells[n]['dev_macro_f1']:.1f}" if n in cells and cells[n].get("dev_macro_f1")
                              is not None else "–" for n in names)
            out.append(f"| {NAMES[system]} | {'all' if budget == 0 else f'{budget:,}'} | "
                       + " | ".join(_cell(cells.get(n), full_n) for n in names) + f" | {devs} | {chosen} |")
    return "\n".join(out)


def parse_pairs(text: str) -> dict[str, str]:
    pairs = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"{part!r}: expected NAME=VALUE")
        pairs[name.strip()] = value.strip()
    return pairs


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="the study's --workdir")
    p.add_argument("--variants", required=True, help="NAME=TAG,... (an empty TAG = the untagged study)")
    p.add_argument("--labels", default="", help="NAME=description,... for the column headers")
    args = p.parse_args(argv)
    variants = parse_pairs(args.variants)
    labels = {name: name for name in variants} | {k: v for k, v in parse_pairs(args.labels).items() if k in variants}
    text = table(load(Path(args.workdir), variants), labels)
    print(text)
    return text


if __name__ == "__main__":
    main()
