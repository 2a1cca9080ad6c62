"""The model card's usage and requirements sections: how to load the released folder with plain
``transformers``, what the tokenizer does with raw text, and what kopretrain is needed for."""

from __future__ import annotations

from typing import Any

RTD_GENERATOR = ("The root is the RTD discriminator; its generator (fill-mask, for continued pretraining) is in "
                 '`generator/`: `AutoModelForMaskedLM.from_pretrained(repo, subfolder="generator")`.')


def use(info: dict[str, Any]) -> str:
    repo = info["repo_id"] or "path/to/this/folder"
    # a release pushed to a branch is loaded from that branch: main may hold another model
    rev = info.get("revision") if info["repo_id"] else None
    py_rev, cli_rev = (f', revision="{rev}"', f" --revision {rev}") if rev else ("", "")
    prep = info["textprep"]
    lines = ["## How to use", ""]
    if info["kind"] == "classifier":
        lines += ["```python", "from transformers import pipeline", "",
                  f'clf = pipeline("text-classification", model="{repo}"{py_rev}, top_k=None)',
                  '# truncation: cut where the model was fine-tuned and kopretrain label cuts',
                  'clf(["배송 빨랐어요 최고", "별로예요 다시는 안 사요"], truncation=True)', "```", ""]
        if info.get("examples"):
            lines += ["Outputs of this exact folder, computed when it was released:", "",
                      "| text | label | score |", "|---|---|---|"]
            lines += [f"| {e['text']} | {e['label']} | {e['score']:.3f} |" for e in info["examples"]]
            lines.append("")
    else:
        task = info["pipeline_tag"]
        # the tokenizer's own mask token: [MASK] for BERT/ELECTRA vocabularies, <mask> for XLM-R ones
        example = 'f"이 영화 정말 {pipe.tokenizer.mask_token}."' if task == "fill-mask" else '"배송 빨랐어요 최고"'
        lines += ["```python", "from transformers import pipeline", "",
                  f'pipe = pipeline("{task}", model="{repo}"{py_rev})', f"pipe({example})", "```", ""]
        lines += [RTD_GENERATOR, ""] if info["kind"] == "rtd" else []
        lines += ["Fine-tune it into a sentiment classifier with kopretrain:", "", "```bash",
                  f"kopretrain finetune --model {repo}{cli_rev} --data runs/x/normalize -o runs/x/finetune", "```", ""]
    if info.get("ngram_blend"):
        lines += ["**This folder also holds an n-gram expert** (`ngram_expert.json` + `ngram_expert.safetensors`: a "
                  "TF-IDF character n-gram logistic regression, plain data, no pickle). kopretrain (`kopretrain label`, "
                  "`kopretrain evaluate`, `Classifier.load`) pools it with the encoder, and that pool is the system "
                  "the evaluation below scores; `transformers.pipeline` loads the encoder alone (its score is in "
                  "the evaluation notes).", ""]
    embedded = in_tokenizer(prep)
    if embedded and embedded.get("applied") and not embedded.get("not_applied"):
        lines += ["The model was trained on normalized text, and **the tokenizer applies that normalization itself** "
                  f"({', '.join(embedded['applied'])}): `pipeline` on raw text gives the model the token ids "
                  f"`kopretrain label` gives it ({PIPELINE_AGREEMENT}).", ""]
    elif prep.get("normalize") is not None or prep.get("pretokenize") == "morpheme":
        lines += ["**The model was trained on normalized text.** `transformers.pipeline` feeds raw text to the "
                  "tokenizer" + (f", which applies {', '.join(embedded['applied'])} itself but not "
                                 f"{', '.join(embedded['not_applied'])} (see Preprocessing)" if embedded and
                                 embedded.get("applied") else "")
                  + "; to give the model the input it was trained on, apply the recorded preparation "
                  "(`kopretrain.json`) first:", "", "```python", "from huggingface_hub import snapshot_download",
                  "from kopretrain.text.textprep import load", "from transformers import pipeline", "",
                  f'path = snapshot_download("{repo}"{py_rev})' if info["repo_id"] else 'path = "path/to/this/folder"',
                  "prep = load(path)  # the normalizer rules + pre-tokenization recorded at training time",
                  f'pipe = pipeline("{info["pipeline_tag"]}", model=path)',
                  'pipe(prep.prepare(["배송 빨랐어요 ㅋㅋㅋㅋㅋ!!!!"]))', "```", ""]
    if info["kind"] == "classifier":
        lines += ["Label a file of any size (CSV/TSV/JSONL/Parquet, resumable, normalization applied, every row "
                  "kept with a reason when it cannot be labeled):", "", "```bash",
                  f"kopretrain label --model {repo}{cli_rev} "  # a Hub id works: kopretrain.json is read from the Hub
                  "--input reviews.csv --text-column text --output labeled.parquet --min-confidence 0.6",
                  "```"]
    return "\n".join(lines).rstrip()


# What benchmarks/bench_tokenizer_normalizer.py measured (BENCHMARKS.md "Normalization inside the tokenizer")
PIPELINE_AGREEMENT = ("measured: identical ids on 10,000 of 10,000 NSMC reviews with three tokenizers, against "
                      "78% without the rules inside the tokenizer")


def in_tokenizer(prep: dict[str, Any]) -> dict[str, Any] | None:
    """kopretrain.json's record of the rules the saved tokenizer applies (None: an older folder)."""
    return (prep.get("extra") or {}).get("tokenizer_normalizer")


# transformers versions the saved folders were loaded with (BENCHMARKS.md "Saved tokenizers in transformers 4 and 5")
CHECKED_TRANSFORMERS = "4.57 and 5.24"


def requirements(info: dict[str, Any]) -> str:
    return "\n".join([
        "## Requirements", "",
        f"- `pip install \"transformers>=4.57\" torch safetensors`: the folder loads with stock classes, no remote "
        f"code (checked with transformers {CHECKED_TRANSFORMERS}); weights are safetensors only.",
        "- The recipe that re-applies the recorded text preparation, and `kopretrain label`, need kopretrain "
        f"{info['kopretrain_version']}. It is not on a package index yet: `pip install <path to a kopretrain checkout>`.",
    ])
