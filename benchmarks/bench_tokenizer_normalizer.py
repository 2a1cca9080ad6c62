"""Does plain ``transformers`` give a kopretrain model the ids ``kopretrain label`` gives it? (#15 item 2)

    OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1 .venv/bin/python benchmarks/bench_tokenizer_normalizer.py \\
        --rows 10000 --tokenizer ../shared/models/multilingual-e5-small-ko --tokenizer runs/x/vocab [--kiwi]

For ROWS raw NSMC reviews (a seeded sample of ``runs/nsmc-3class/ingest/test.parquet``) and the
normalizer config of ``runs/nsmc-3class/normalize``, per tokenizer directory:

- ``before``: the tokenizer as it was (no kopretrain normalizer inside; one that has it is stripped);
- ``after``: the same folder saved as finetune saves it (:func:`kopretrain.tokenizer.embed.save_with_textprep`).

The reference is what the model was trained on and what ``kopretrain label`` fed it before:
``before(python_normalize(raw))``. Compared with it, token ids (identical ids imply identical
labels) of: ``before(raw)`` (a plain pipeline before), ``after(raw)`` (a plain pipeline now),
``after(python_normalize(raw))`` (kopretrain now: normalized twice) and the same with the block
stripped again (kopretrain's Scorer). Also: the embedded normalizer's text vs the Python text,
tokenizer time per review, offsets, which rules change how many reviews, which characters repeat
collapse shortens, and (``--kiwi``) how many reviews the rules the tokenizer cannot apply
(kiwipiepy spacing, typos) change. Prints one JSON document. Not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "runs" / "nsmc-3class" / "ingest" / "test.parquet"
NORMALIZE = ROOT / "runs" / "nsmc-3class" / "normalize"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "sentencepiece.bpe.model", "kopretrain.json")


def load_texts(path: Path, rows: int, seed: int) -> list[str]:
    import pandas as pd

    frame = pd.read_parquet(path, columns=["text"]).dropna()
    frame = frame.sample(n=min(rows, len(frame)), random_state=seed)
    return [str(t) for t in frame["text"]]


def normalize_config(stage_dir: Path) -> dict:
    from kopretrain.inference.classifier import normalize_fields

    record = json.loads((stage_dir / "stage.json").read_text(encoding="utf-8"))
    return normalize_fields(record["config"])


def copy_tokenizer(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    (dst / "kopretrain.json").unlink(missing_ok=True)
    return dst


def strip_block(directory: Path) -> None:
    """Make ``directory`` a 'before' tokenizer: no kopretrain block, added tokens matched raw."""
    from kopretrain.tokenizer.embed import has_block, without_block

    path = directory / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if has_block(data.get("normalizer")):
        data["normalizer"] = without_block(data["normalizer"])
        for added in data["added_tokens"]:
            added["normalized"] = False if not added["special"] else added["normalized"]
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def build_pair(src: Path, work: Path, prep) -> tuple[Path, Path]:
    from transformers import AutoTokenizer

    from kopretrain.tokenizer.embed import save_with_textprep

    before = copy_tokenizer(src, work / "before")
    strip_block(before)
    after = work / "after"
    save_with_textprep(AutoTokenizer.from_pretrained(str(before)), after, prep)  # as finetune and pretrain save
    return before, after


def ids(tok, texts: list[str]) -> list[list[int]]:
    return tok(texts, truncation=True, max_length=512)["input_ids"]


def timed_ids(tok, texts: list[str]) -> tuple[list[list[int]], float]:
    t0 = time.perf_counter()
    out = ids(tok, texts)
    return out, (time.perf_counter() - t0) / len(texts) * 1e6


def share(a: list, b: list) -> dict:
    same = sum(x == y for x, y in zip(a, b))
    return {"identical": same, "of": len(a), "share": round(same / len(a), 6)}


def offsets_ok(tok, texts: list[str]) -> dict:
    enc = tok(texts, return_offsets_mapping=True, truncation=True, max_length=512)
    bad = sum(any(e > len(t) or s > e for s, e in offs) for t, offs in zip(texts, enc["offset_mapping"]))
    return {"texts": len(texts), "offsets_out_of_range": bad}


def measure_tokenizer(src: Path, texts: list[str], norm_texts: list[str], prep, work: Path) -> dict:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from kopretrain.tokenizer.embed import without_block

    before_dir, after_dir = build_pair(src, work, prep)
    before, after = AutoTokenizer.from_pretrained(str(before_dir)), AutoTokenizer.from_pretrained(str(after_dir))
    reference, t_before_norm = timed_ids(before, norm_texts)
    plain_before, t_before_raw = timed_ids(before, texts)
    plain_after, t_after_raw = timed_ids(after, texts)
    twice = ids(after, norm_texts)
    data = json.loads(after.backend_tokenizer.to_str())
    data["normalizer"] = without_block(data["normalizer"])
    stripped = Tokenizer.from_str(json.dumps(data))
    scorer = [e.ids for e in stripped.encode_batch(norm_texts)]
    mismatches = [{"raw": t, "python": n, "kopretrain": before.convert_ids_to_tokens(r),
                   "pipeline": after.convert_ids_to_tokens(p)}
                  for t, n, r, p in zip(texts, norm_texts, reference, plain_after) if r != p]
    return {
        "tokenizer": str(src), "class_before": type(before).__name__, "class_after": type(after).__name__,
        "plain_pipeline_before": share(reference, plain_before),
        "plain_pipeline_after": share(reference, plain_after),
        "kopretrain_after_normalized_twice": share(reference, twice),
        "kopretrain_after_scorer_block_stripped": share(reference, scorer),
        "us_per_review": {"before_on_normalized": round(t_before_norm, 1), "before_on_raw": round(t_before_raw, 1),
                          "after_on_raw": round(t_after_raw, 1)},
        "offsets": offsets_ok(after, texts),
        "mismatch_examples": mismatches[:10],
    }


def rule_effects(texts: list[str], normalize: dict, prep) -> dict:
    """Reviews each Python rule changes, the embedded normalizer's text vs Python's, repeat chars."""
    import re

    from tokenizers import normalizers

    from kopretrain.runs.config import from_dict
    from kopretrain.text.normalizer import Normalizer, NormalizerConfig
    from kopretrain.text.textprep import _known
    from kopretrain.text.tokenizer_rules import tokenizer_rules

    norm = Normalizer(from_dict(NormalizerConfig, _known(NormalizerConfig, normalize)))
    py = [norm.normalize(t) for t in texts]
    rules = tokenizer_rules(normalize)
    seq = normalizers.Sequence(rules.steps)
    t0 = time.perf_counter()
    tk = [seq.normalize_str(t) for t in texts]
    seconds = time.perf_counter() - t0
    runs = Counter()
    pattern = re.compile(r"([^\d\s★☆])\1{%d,}" % int(normalize.get("max_repeat", 2)))
    for t in texts:
        runs.update(m.group(1) for m in pattern.finditer(t))
    return {
        "python_changes_reviews": sum(a != b for a, b in zip(texts, py)),
        "rule_counts": dict(norm.counts),
        "embedded_text_identical": share(py, tk),
        "embedded_us_per_review": round(seconds / len(texts) * 1e6, 1),
        "embedded_steps": len(rules.steps), "applied": rules.applied, "not_applied": rules.not_applied,
        "repeat_runs_by_char_top30": runs.most_common(30), "repeat_distinct_chars": len(runs),
        "mismatch_examples": [[t, a, b] for t, a, b in zip(texts, py, tk) if a != b][:10],
    }


def kiwi_worker(normalize_json: str, extra_json: str) -> None:
    """Child process: one JSON text per stdin line -> its kiwipiepy-normalized text (flushed each)."""
    from kopretrain.runs.config import from_dict
    from kopretrain.text.normalizer import Normalizer, NormalizerConfig
    from kopretrain.text.textprep import _known

    cfg = {**_known(NormalizerConfig, json.loads(normalize_json)), **json.loads(extra_json), "num_workers": 1}
    norm = Normalizer(from_dict(NormalizerConfig, cfg))
    for line in sys.stdin:
        print(json.dumps(norm.normalize(json.loads(line))), flush=True)


def kiwi_rule(texts: list[str], normalize: dict, extra: dict) -> dict:
    """Texts the rule changes, one child process that is restarted past any text that aborts it
    (kiwipiepy 0.24.1's typo model aborts the process on some reviews: std::out_of_range)."""
    import subprocess

    out, aborted, i, t0 = [], [], 0, time.perf_counter()
    while i < len(texts):
        child = subprocess.Popen([sys.executable, __file__, "--kiwi-worker", json.dumps(normalize), json.dumps(extra)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for text in texts[i:]:
            try:
                child.stdin.write(json.dumps(text) + "\n")
                child.stdin.flush()
                line = child.stdout.readline()
            except BrokenPipeError:
                line = ""
            if not line:
                aborted.append(text)
                i += 1
                break
            out.append((text, json.loads(line)))
            i += 1
        child.kill()
        child.wait()
    return {"outputs": out, "aborted": aborted, "seconds": round(time.perf_counter() - t0, 1)}


def kiwi_effects(texts: list[str], normalize: dict) -> dict:
    """How many reviews the rules a tokenizer cannot apply (spacing, typos) change after the others."""
    from kopretrain.runs.config import from_dict
    from kopretrain.text.normalizer import Normalizer, NormalizerConfig
    from kopretrain.text.textprep import _known

    plain = dict(zip(texts, Normalizer(from_dict(NormalizerConfig, _known(NormalizerConfig, normalize))).normalize_many(texts)))
    report = {}
    for name, extra in (("spacing", {"spacing": True}), ("typos", {"typos": "basic"})):
        result = kiwi_rule(texts, normalize, extra)
        report[name] = {"changes_reviews": sum(plain[t] != o for t, o in result["outputs"]),
                        "of": len(result["outputs"]), "aborted_on": result["aborted"][:5],
                        "aborted": len(result["aborted"]), "seconds": result["seconds"]}
    return report


def main() -> None:
    if sys.argv[1:2] == ["--kiwi-worker"]:
        return kiwi_worker(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--normalize", type=Path, default=NORMALIZE, help="a normalize stage output (its config)")
    parser.add_argument("--tokenizer", type=Path, action="append", default=[])
    parser.add_argument("--kiwi", action="store_true", help="also measure spacing/typos (slow)")
    args = parser.parse_args()

    from kopretrain.text.textprep import TextPrep

    texts = load_texts(args.data, args.rows, args.seed)
    normalize = normalize_config(args.normalize)
    prep = TextPrep(normalize=normalize)
    report = {"rows": len(texts), "data": str(args.data), "normalize": normalize,
              "rules": rule_effects(texts, normalize, prep)}
    norm_texts = prep.prepare(texts)
    report["tokenizers"] = []
    for src in args.tokenizer:
        with tempfile.TemporaryDirectory() as tmp:
            report["tokenizers"].append(measure_tokenizer(src, texts, norm_texts, TextPrep(normalize=normalize),
                                                          Path(tmp)))
    if args.kiwi:
        report["kiwi"] = kiwi_effects(texts, normalize)
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
