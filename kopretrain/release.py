"""Assemble a folder people can upload or load directly, with its model card; optionally push it.

    kopretrain release --model runs/nsmc/finetune --evaluation runs/nsmc/evaluate \\
        --data-card data_cards/nsmc.md --repo-id me/kcbert-nsmc-3class --out runs/nsmc/release [--push]

The folder holds safetensors weights, ``config.json`` (with ``id2label`` for a classifier),
tokenizer files, ``kopretrain.json`` (normalizer + pre-tokenization), ``README.md`` (model card:
Hub metadata, model-index with the evaluate metrics, intended use, preprocessing, provenance),
``data_card.md`` and ``provenance.json`` (every upstream ``stage.json``). A pretrain output
(no sentiment ``id2label``) is released as an encoder: ``fill-mask`` for MLM, ``feature-extraction``
for an ELECTRA discriminator, with its pretraining metrics.

Without ``--push`` the stage ends with a dry run listing what would be uploaded. ``--push`` runs
``HfApi.create_repo`` + ``upload_folder`` (one commit) with the token huggingface_hub finds itself
(``HF_TOKEN`` or ``hf auth login``): kopretrain never reads, stores or prints it. The local folder
is complete before any upload starts, so a failed push leaves nothing half-done on either side.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kopretrain.runs.stage import Stage, StageConfig
from kopretrain.runs.records import StageError, StageRun, write_json

# What a loadable folder needs; anything else in a stage output (training_args.json, dev metrics,
# checkpoints, pickles) stays behind.
MODEL_FILES = ("config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
               "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
               "vocab.txt", "vocab.json", "merges.txt", "kopretrain.json", "ngram_expert.json",
               # SentencePiece models by the names tokenizers save them under: a bare *.model could be a pickle
               "spiece.model", "spm.model", "sentencepiece.bpe.model", "sentencepiece.model",
               "tokenizer.model")
EXAMPLES = ["배송 빨랐어요 최고", "그냥 그래요", "별로예요 다시는 안 사요"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@dataclass
class ReleaseConfig(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("model", "evaluation", "data_card")
    REQUIRED: ClassVar[tuple[str, ...]] = ("model",)
    WIRING: ClassVar[dict[str, str]] = {"model": "finetune", "evaluation": "evaluate"}
    # Whether and how the folder is uploaded, not what it holds: adding --push after a dry run
    # uploads the folder that was previewed instead of rebuilding it.
    SPEED_FIELDS: ClassVar[tuple[str, ...]] = ("push", "private")
    MOVED_FIELDS: ClassVar[tuple[str, ...]] = ("push", "private")  # in the key until 2026-12-07

    model: str = ""
    """Model directory to release: a finetune output (classifier) or a pretrain output (encoder)."""
    evaluation: str = ""
    """evaluate output whose metrics.json fills the card's model-index (optional; must have scored this model)."""
    data_card: str = ""
    """Data card to ship as data_card.md (e.g. data_cards/nsmc.md); the ingest README is appended when found."""
    repo_id: str = ""
    """Hub repository ORG/NAME: used in the card's usage snippets and by --push."""
    push: bool = False
    """Upload the folder to the Hub (otherwise: a dry run listing what would be uploaded)."""
    private: bool = False
    """Create the repository as private; an existing public one is refused (never published by mistake).
    Without it a new repository follows the account's default visibility."""
    revision: str = ""
    """Hub branch to upload to (created from main if missing; default main)."""
    license: str = ""
    """License of the released model (card metadata). Empty: the base checkpoint's, read from its model
    card (a fine-tune inherits its terms), else apache-2.0. The data keeps its own (see data_card.md)."""
    base_model: str = ""
    """Hub id of the base model for the card (default: read from the pretrain/finetune records)."""
    base_model_revision: str = ""
    """Revision of base_model (default: the recorded one)."""
    datasets: list[str] = field(default_factory=list)
    """Hub dataset ids the model was trained on, for the card metadata."""
    model_name: str = ""
    """Title of the card and name in model-index (default: the repo name or the folder name)."""
    verify: bool = True
    """Load the assembled folder with transformers (offline) and run it on example reviews for the card."""

    def __post_init__(self):
        if self.repo_id and not _REPO_ID.match(self.repo_id):
            raise ValueError(f"--repo-id: {self.repo_id!r} is not ORG/NAME")
        if self.repo_id:  # the Hub's own rules ("--", "..", ".git", 96 characters), before any work
            from huggingface_hub.errors import HFValidationError
            from huggingface_hub.utils import validate_repo_id

            try:
                validate_repo_id(self.repo_id)
            except HFValidationError as exc:
                raise ValueError(f"--repo-id {self.repo_id!r}: the Hub would refuse it ({exc})") from None
        if self.license and not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", self.license):
            raise ValueError(f"--license {self.license!r}: give a Hub license id (mit, apache-2.0, cc-by-nc-4.0, "
                             "other ...): the card's metadata would be refused")
        for flag, ref in [("--base-model", self.base_model)] + [("--datasets", d) for d in self.datasets]:
            if ref:
                from huggingface_hub.errors import HFValidationError
                from huggingface_hub.utils import validate_repo_id

                try:
                    validate_repo_id(ref)
                except HFValidationError as exc:
                    raise ValueError(f"{flag} {ref!r}: not a Hub id ({exc})") from None
        card = Path(self.data_card).expanduser() if self.data_card else None
        if card is not None and not card.is_file():  # a typo fails the plan, not the end of an hour's pipeline
            raise ValueError(f"--data-card {self.data_card}: " + ("a directory; give the card's .md file"
                                                                  if card.is_dir() else "no such file"))
        if self.base_model_revision and not self.base_model:
            raise ValueError("--base-model-revision pins --base-model: give --base-model too (the recorded base "
                             "keeps its recorded revision)")
        if self.push and not self.repo_id:
            raise ValueError("--push needs --repo-id ORG/NAME")
        if self.revision and not self.push and not self.repo_id:
            raise ValueError("--revision is the Hub branch to push to: give --repo-id too")



def model_kind(config: dict[str, Any]) -> str:
    """``classifier``, ``mlm``, ``rtd`` (ELECTRA discriminator) or ``encoder`` from ``config.architectures``."""
    arch = (config.get("architectures") or [""])[0]
    if arch.endswith("ForSequenceClassification"):
        return "classifier"
    if arch == "ElectraForPreTraining":
        return "rtd"
    if arch.endswith(("ForMaskedLM", "ForPreTraining")):
        return "mlm"
    return "encoder"


def run(cfg: ReleaseConfig, run: StageRun) -> None:
    from kopretrain.hub.modelcard import PIPELINE_TAGS, render

    src = _check_model(cfg)
    try:
        config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StageError(f"{src / 'config.json'}: cannot be read as JSON ({exc})") from None
    kind = model_kind(config)
    if kind == "classifier":
        from transformers import AutoConfig

        from kopretrain.inference.classifier import label_order

        label_order(AutoConfig.from_pretrained(src), cfg.model)  # clear error without sentiment id2label
    if cfg.evaluation:  # before anything is copied: a wrong --evaluation fails at once
        if kind != "classifier":
            raise StageError(f"--evaluation scores a sentiment classifier; --model {cfg.model} is a {kind} "
                             "(its card shows its pretraining metrics)")
        from kopretrain.hub.provenance import evaluation

        evaluation(cfg)
    copied = copy_model(src, run.dir)
    if (src / "generator").is_dir():  # RTD: the generator, for continued pretraining
        copied += [f"generator/{n}" for n in copy_model(src / "generator", run.dir / "generator")]
    from kopretrain.hub.provenance import gather

    info = gather(cfg, src, run.dir, kind, config)
    info["pipeline_tag"] = PIPELINE_TAGS[kind]
    info["widget"] = EXAMPLES
    info["ngram_blend"] = (src / "ngram_expert.json").is_file()  # finetune --ngram-blend's expert
    info["data_card"] = write_data_card(cfg, info, run.dir)
    info["dataset"]["card"] = info["data_card"]
    if cfg.verify:
        info["examples"] = verify(run.dir, kind, info)
        labels = {e.get("label") for e in info["examples"] or []}
        if kind == "classifier" and len(info["examples"] or []) > 1 and len(labels) == 1:
            run.log(f"[release] warning: the model labels every example {labels.pop()} (see the card's outputs): "
                    "check its evaluation before publishing")
    write_json(run.dir / "provenance.json", portable(info.pop("provenance")))
    (run.dir / "README.md").write_text(render(info), encoding="utf-8")
    files = upload_list(run.dir)  # what a push uploads: the same count the dry run lists
    run.stats.update({"kind": kind, "pipeline_tag": info["pipeline_tag"], "files": len(files),
                      "bytes": sum(size for _, size in files), "copied": copied,
                      "evaluation": bool(info.get("evaluation")), "examples": info.get("examples")})
    print(f"[release] {kind} ({info['pipeline_tag']}): {len(files)} files in the release folder")


def _check_model(cfg: ReleaseConfig) -> Path:
    from kopretrain.hub.loading import check_model_ref

    check_model_ref(cfg.model)
    src = Path(cfg.model).expanduser()
    if not src.is_dir():
        raise StageError(f"--model {cfg.model}: release needs a local model directory (a finetune or pretrain output)")
    if not list(src.glob("*.safetensors")):
        bins = [p.name for p in src.glob("*.bin")]
        raise StageError(f"--model {src}: no .safetensors weights" + (f" (found {', '.join(bins)}; kopretrain "
                         "releases safetensors only: load and save_pretrained it first)" if bins else ""))
    return src


def copy_model(src: Path, dst: Path) -> list[str]:
    """Copy the model files; a config's ``auto_map`` is dropped, since the code it points to is not
    shipped (and kopretrain never loads remote code): the release loads with stock classes."""
    dst.mkdir(parents=True, exist_ok=True)
    names = sorted({p.name for pattern in MODEL_FILES for p in src.glob(pattern) if p.is_file()})
    for name in names:
        shutil.copy2(src / name, dst / name)
    config = dst / "config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        if data.pop("auto_map", None) is not None:
            write_json(config, data)
    return names


def portable(value: Any, root: Path | None = None) -> Any:
    """``value`` with every absolute local path made relative to ``root`` (default: the current
    directory), or reduced to ``<local>/name`` outside it: a release must not publish where the
    files sat on the author's machine (home directories, user names)."""
    import os

    root = (root or Path.cwd()).resolve()
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    if isinstance(value, str) and os.path.isabs(value) and "\n" not in value:
        path = Path(value)
        try:
            return str(path.resolve().relative_to(root))
        except ValueError:
            return f"<local>/{path.name}"
    return value


_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.-]+/)*[\w.-]+")


def portable_text(text: str) -> str:
    """``text`` with every absolute path that exists on this machine made :func:`portable` (the
    ingest card names its input file, e.g. ``/home/me/data/reviews.csv``); URLs and ratios stay."""
    return _ABS_PATH.sub(lambda m: portable(m.group(0)) if Path(m.group(0)).exists() else m.group(0), text)


def write_data_card(cfg: ReleaseConfig, info: dict[str, Any], out: Path) -> str | None:
    """``data_card.md``: the given data card, then the ingest README (measured numbers) if found."""
    parts = []
    if cfg.data_card:
        path = Path(cfg.data_card).expanduser()
        try:
            parts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise StageError(f"--data-card {path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    ingest = info["dataset"].get("ingest_readme")
    if ingest and Path(ingest).is_file():
        from kopretrain.data.card import away_from_data

        # The release ships no data files: the card must not say its numbers come from this folder.
        text = away_from_data(Path(ingest).read_text(encoding="utf-8"), portable(str(Path(ingest).parent.resolve())))
        text = portable_text(text)
        if parts:  # the second card's YAML header would be body text here: drop it
            text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
            text = "\n\n## Measured by kopretrain ingest\n\n" + text
        parts.append(text)
    if not parts:
        return None
    (out / "data_card.md").write_text("".join(parts), encoding="utf-8")
    return "data_card.md"


def verify(folder: Path, kind: str, info: dict[str, Any]) -> list[dict[str, Any]]:
    """Load the folder as a user would (transformers only, offline) and run it; examples for the card."""
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from kopretrain.text.textprep import load

    prep = load(folder)
    # An ELECTRA discriminator loads as ElectraModel for feature extraction: its unused head is
    # expected, so transformers' load report would only be noise here.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        if kind == "classifier":
            pipe = pipeline("text-classification", model=str(folder), device=-1)
            texts = prep.prepare(EXAMPLES) if prep else EXAMPLES
            return [{"text": raw, "label": r["label"], "score": float(r["score"])}
                    for raw, r in zip(EXAMPLES, pipe(texts))]
        if kind == "mlm":
            pipe = pipeline("fill-mask", model=str(folder), device=-1, top_k=3)
            text = f"이 영화 정말 {pipe.tokenizer.mask_token}"
            return [{"text": text, "label": r["token_str"], "score": float(r["score"])} for r in pipe(text)]
        pipe = pipeline("feature-extraction", model=str(folder), device=-1)
        width = len(pipe(EXAMPLES[0])[0][0])
        if width != info["hidden_size"]:
            raise StageError(f"feature-extraction gave vectors of {width}, config says {info['hidden_size']}")
        return []
    except (OSError, ValueError, KeyError) as exc:
        raise StageError(f"the release folder does not load with transformers: {exc}") from exc
    finally:
        hf_logging.set_verbosity(verbosity)


# ----------------------------------------------------------------------------- push / dry run


def publish(cfg: ReleaseConfig, folder: Path, client=None) -> None:
    """Once the folder exists (built now or up to date): push it, or print what a push would send."""
    if cfg.push:
        push(folder, cfg, client=client)
    else:
        print(dry_run(folder, cfg))


def execute(cfg: ReleaseConfig, output: str | Path, force: bool = False, *, client=None) -> Path:
    """:data:`STAGE` with a given Hub client (tests pass a fake one)."""
    import dataclasses
    import functools

    return dataclasses.replace(STAGE, finish=functools.partial(publish, client=client)).execute(cfg, output, force=force)


def upload_list(folder: Path) -> list[tuple[str, int]]:
    return [(str(p.relative_to(folder)), p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")
            and p.relative_to(folder).as_posix() != "stage.json"]  # the local run record stays local


def dry_run(folder: Path, cfg: ReleaseConfig) -> str:
    files = upload_list(folder)
    total = sum(size for _, size in files)
    target = cfg.repo_id or "<no --repo-id given>"
    # visibility is set only when the repo is created: an existing repo keeps its own
    where = (f"repo {target} ({'private: refused if it exists public' if cfg.private else 'new: the account default'}"
             f"), branch {cfg.revision or 'main'}, mirrored (files of an earlier release not here are deleted)")
    lines = [f"[release] dry run (add --push to upload): {len(files)} files, {_size(total)} -> {where}"]
    lines += [f"    {name:<40} {_size(size):>10}" for name, size in files]
    return "\n".join(lines)


def push(folder: Path, cfg: ReleaseConfig, client=None) -> str:
    """create_repo + (create_branch) + upload_folder; errors become one clear StageError."""
    if client is None:
        from huggingface_hub import HfApi, get_token

        if get_token() is None:
            raise StageError("--push: no Hugging Face token; set HF_TOKEN or run `hf auth login` "
                             f"(the release folder {folder} is complete and can be pushed later)")
        client = HfApi()
    files = upload_list(folder)
    print(f"[release] pushing {len(files)} files ({_size(sum(s for _, s in files))}) to {cfg.repo_id}"
          + (f" (branch {cfg.revision})" if cfg.revision else ""))
    try:
        # None, not False: an organization whose repositories are private by default keeps them so
        client.create_repo(cfg.repo_id, private=True if cfg.private else None, exist_ok=True, repo_type="model")
        if cfg.private and not client.repo_info(cfg.repo_id, repo_type="model").private:
            raise StageError(f"--private: {cfg.repo_id} exists and is public; nothing was uploaded. Make it "
                             "private on the Hub, or drop --private to publish")
        if cfg.revision:
            client.create_branch(cfg.repo_id, branch=cfg.revision, exist_ok=True, repo_type="model")
        # The branch mirrors this folder: a file of an earlier release that this one lacks is deleted
        # in the same commit (a stale ngram_expert.* would be pooled into the new model's predictions).
        info = client.upload_folder(repo_id=cfg.repo_id, folder_path=str(folder), repo_type="model",
                                    revision=cfg.revision or None, allow_patterns=[name for name, _ in files],
                                    delete_patterns="*", commit_message=f"kopretrain release of {folder.name}")
    except StageError:
        raise
    except Exception as exc:  # noqa: BLE001 - network, auth and Hub errors: one line that says what to do
        raise StageError(f"--push to {cfg.repo_id} failed ({type(exc).__name__}: {_first_line(exc)}); no release was "
                         f"committed. The release folder {folder} is complete: rerun with --push to retry") from None
    url = getattr(info, "commit_url", None) or f"https://huggingface.co/{cfg.repo_id}"
    print(f"[release] pushed: {url}")
    return str(url)


def _first_line(exc: Exception) -> str:
    import os

    text = (str(exc).strip().splitlines() or [""])[0][:300]
    token = os.environ.get("HF_TOKEN")
    return text.replace(token, "***") if token else text  # never echo a credential


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


STAGE = Stage("release", ReleaseConfig, run=run, finish=publish)
