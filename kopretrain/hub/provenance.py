"""What a released model is made of, read from the records behind it (for the card and provenance.json).

Walks the ``stage.json`` chain from the model directory (:func:`kopretrain.hub.modelcard.stage_chain`)
and collects: base model (id, pinned revision, resolved commit), data (name, label mapping, split
sizes, source fingerprints, the ingest README), text preparation (normalizer config, the
kopretrain version that normalized the training data), hyperparameters, metrics, vocab hash and
the versions/commits of every stage. Missing links (a model trained outside kopretrain) leave
fields empty; they are never guessed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from kopretrain import __version__
from kopretrain.runs.records import StageError, fingerprint_path, git_commit, read_stage
from kopretrain.runs.registry import PIPELINE_ORDER, STAGES


def gather(cfg, src: Path, folder: Path, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The facts the card needs; ``info["provenance"]`` is the full record for provenance.json."""
    from kopretrain.runs.config import to_dict
    from kopretrain.hub.modelcard import normalizer_rules
    from kopretrain.runs.chain import stage_chain
    from kopretrain.text.textprep import load

    chain = stage_chain(src)
    prep = load(folder)
    prep_dict = dataclasses.asdict(prep) if prep else {"normalize": None, "pretokenize": "eojeol", "extra": {}}
    normalize = chain.get("normalize", {}).get("record")
    vocab_hash, vocab_size = _vocab(folder)
    info: dict[str, Any] = {
        "kind": kind,
        "architecture": (config.get("architectures") or ["?"])[0],
        "hidden_size": config.get("hidden_size"),
        "parameters": _parameters(folder),
        "labels": [config.get("id2label", {}).get(str(i)) for i in range(len(config.get("id2label", {})))],
        "model_name": cfg.model_name or (cfg.repo_id.split("/")[-1] if cfg.repo_id else _folder_name(src)),
        "repo_id": cfg.repo_id,
        "revision": cfg.revision or None,
        "license": license_of(cfg, chain),
        "datasets": list(cfg.datasets),
        "textprep": prep_dict,
        "recorded": prep is not None,  # kopretrain.json ships: the card may point at it
        "rules": normalizer_rules(prep_dict.get("normalize")),
        "normalizer_version": (normalize or {}).get("versions", {}).get("kopretrain"),
        "max_length": prep_dict.get("extra", {}).get("max_length") or config.get("max_position_embeddings"),
        "vocab_hash": vocab_hash,
        "vocab_size": vocab_size,
        "base_model": base_model(cfg, chain),
        "dataset": dataset(cfg, chain),
        "finetune": _config_stats(chain, "finetune"),
        "pretrain": _config_stats(chain, "pretrain"),
        "pretrain_metrics": pretrain_metrics(src, chain) if kind != "classifier" else None,
        "evaluation": evaluation(cfg) if kind == "classifier" else None,
        "kopretrain_version": __version__,
        "git_commit": git_commit(),
        "stages": [_stage_row(chain[s]["record"]) for s in PIPELINE_ORDER if s in chain],
    }
    info["provenance"] = {
        "kopretrain_version": __version__, "git_commit": info["git_commit"], "release_config": to_dict(cfg),
        "model_fingerprint": fingerprint_path(src), "vocab_sha256": vocab_hash, "base_model": info["base_model"],
        "textprep": prep_dict, "stages": {s: chain[s]["record"] for s in PIPELINE_ORDER if s in chain},
    }
    return info


def base_checkpoint(chain: dict[str, dict]) -> tuple[str, str | None] | None:
    """``(ref, revision)`` of the checkpoint the chain started from (local folder or Hub id), or None.
    A vocab output (``--prune-from``/``--extend-from`` of a checkpoint) stands for that checkpoint."""
    pretrain = chain.get("pretrain", {}).get("record")
    if pretrain:
        config = pretrain.get("config") or {}
        return _origin(config["checkpoint"], config.get("revision") or None) if config.get("init") == "checkpoint" \
            and config.get("checkpoint") else None
    finetune = (chain.get("finetune", {}).get("record") or {}).get("config") or {}
    return _origin(finetune["model"], finetune.get("revision") or None) if finetune.get("model") else None


def _origin(ref: str, revision: str | None) -> tuple[str, str | None]:
    """``ref`` itself, or for a vocab output the checkpoint it pruned or extended (its license and
    card are that checkpoint's: the output has no README of its own)."""
    for _ in range(5):
        record = read_stage(ref) if Path(ref).expanduser().is_dir() else None
        config = (record or {}).get("config") or {}
        source = config.get("prune_from") or config.get("extend_from")
        if (record or {}).get("stage") != "vocab" or not source:
            break
        ref, revision = source, config.get("revision") or None
    return ref, revision


def license_of(cfg, chain: dict[str, dict]) -> str:
    """--license, else the base checkpoint's card license (a fine-tune inherits its terms), else, for
    a model kopretrain trained from scratch, apache-2.0. A base whose license cannot be read, or a
    model without records, needs --license: a guessed license would be published as a fact. A
    --license that differs from the base's is said, not silently published."""
    from kopretrain.hub.loading import model_file

    base = base_checkpoint(chain)
    if cfg.license and not base:
        return cfg.license
    if not chain:
        raise StageError(f"--model {cfg.model} has no kopretrain records (stage.json): its origin and license are "
                         "unknown; pass --license (the base model's terms apply to a fine-tune of it)")
    inherited = None
    readme = model_file(base[0], "README.md", base[1]) if base else None
    if readme is not None:
        from huggingface_hub import ModelCard

        try:
            inherited = ModelCard.load(readme).data.license
        except (ValueError, OSError):  # a README without valid YAML metadata: nothing to inherit
            inherited = None
    if cfg.license and inherited and cfg.license != inherited:
        print(f"[release] note: the base checkpoint {base[0]} is licensed {inherited}; the card says --license "
              f"{cfg.license}: check that its terms allow that")
    if base and not (cfg.license or inherited):
        raise StageError(f"the license of the base checkpoint {base[0]} could not be read (no model card with a "
                         "license in its metadata, or the Hub is out of reach); pass --license with its terms "
                         "(a fine-tune inherits them)")
    return cfg.license or inherited or "apache-2.0"


def base_model(cfg, chain: dict[str, dict]) -> dict[str, Any] | None:
    """``{"id", "revision", "commit"}`` of the Hub model this one started from, or None (scratch)."""
    from kopretrain.hub.loading import is_local

    if cfg.base_model:
        return {"id": cfg.base_model, "revision": cfg.base_model_revision or None, "commit": None}
    pretrain = chain.get("pretrain", {}).get("record")
    if pretrain:
        base = (pretrain.get("stats") or {}).get("base_model") or {}
        if base.get("init") == "checkpoint" and base.get("id"):
            if is_local(base["id"]):
                return _local_base(base["id"])
            return {"id": base["id"], "revision": base.get("revision"), "commit": base.get("commit")}
        return None
    finetune = chain.get("finetune", {}).get("record")
    if finetune:
        model = finetune["config"].get("model", "")
        if model and is_local(model):
            return _local_base(model)
        if model:
            return {"id": model, "revision": finetune["config"].get("revision") or None,
                    "commit": (finetune.get("stats") or {}).get("base_commit")}
    return None


def _local_base(path: str) -> dict[str, Any]:
    """A local checkpoint folder the chain started from (a Hub model downloaded by hand, the shared
    one): its Hub origin is its own card's ``base_model`` when it declares one; ``local`` names the
    folder either way, so the card never says "trained from scratch" of a fine-tuned checkpoint."""
    origin, revision = _origin(path, None)  # a pruned/extended copy: the checkpoint it was made from
    if origin != path:
        from kopretrain.hub.loading import is_local

        if not is_local(origin):
            return {"id": origin, "revision": revision, "commit": None}
        path = origin
    out: dict[str, Any] = {"id": None, "revision": None, "commit": None, "local": Path(path).name}
    readme = Path(path).expanduser() / "README.md"
    if readme.is_file():
        from huggingface_hub import ModelCard

        try:
            declared = ModelCard.load(readme).data.base_model
        except (ValueError, OSError):
            declared = None
        declared = declared[0] if isinstance(declared, list) and declared else declared
        if isinstance(declared, str) and declared.strip():
            out["id"] = declared.strip()
    return out


def dataset(cfg, chain: dict[str, dict]) -> dict[str, Any]:
    """Name, license, label mapping, split sizes and source fingerprints of the training data."""
    out: dict[str, Any] = {"name": "the training data", "type": cfg.datasets[0] if cfg.datasets else "custom"}
    ingest = chain.get("ingest")
    if not ingest:
        return out
    record, icfg, stats = ingest["record"], ingest["record"]["config"], ingest["record"].get("stats") or {}
    name = icfg.get("name") or Path(str(icfg.get("input") or "data")).name
    out.update({
        "name": name,
        "type": cfg.datasets[0] if cfg.datasets else name,
        "license": icfg.get("license"),
        "label_mapping": (stats.get("label_scheme") or {}).get("description"),
        "splits": {s: v.get("rows") for s, v in (stats.get("splits") or {}).items()},
        "fingerprints": {s["name"]: s["fingerprint"] for s in stats.get("sources") or [] if s.get("fingerprint")}
        or record.get("inputs") or {},
        "ingest_readme": str(Path(ingest["path"]) / "README.md"),
    })
    return out


def evaluation(cfg) -> dict[str, Any] | None:
    """evaluate's metrics.json, after checking it scored exactly this model."""
    import json

    if not cfg.evaluation:
        return None
    path = Path(cfg.evaluation) / "metrics.json"
    if not path.is_file():
        raise StageError(f"--evaluation {cfg.evaluation}: no metrics.json (is it an evaluate output?)")
    record = read_stage(cfg.evaluation)
    if record is not None and record.get("stage") != "evaluate":
        raise StageError(f"--evaluation {cfg.evaluation} is a {record.get('stage')} output; give an evaluate output")
    if record is not None:
        scored, ours = record.get("inputs", {}).get("model"), fingerprint_path(cfg.model)
        if scored and scored != ours:
            raise StageError(f"--evaluation {cfg.evaluation} scored another model ({record['config'].get('model')}, "
                             f"{scored}) than --model {cfg.model} ({ours}); its metrics would be wrong in the card")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StageError(f"{path}: not valid JSON ({exc}); rerun evaluate") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("model"), dict):
        raise StageError(f"{path}: no model metrics (is {cfg.evaluation} an evaluate output?)")
    if metrics.get("split") == "train":  # scores on the rows the model learned: not results to publish
        raise StageError(f"--evaluation {cfg.evaluation} scored the train split; the card publishes held-out "
                         "results: evaluate --split test")
    return metrics


def pretrain_metrics(src: Path, chain: dict[str, dict]) -> dict[str, Any] | None:
    import json

    path = src / "metrics.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8")).get("final")
    record = chain.get("pretrain", {}).get("record")
    return (record.get("stats") or {}).get("final_metrics") if record else None


def _config_stats(chain: dict[str, dict], stage: str) -> dict[str, Any] | None:
    record = chain.get(stage, {}).get("record")
    return {"config": record.get("config"), "stats": record.get("stats")} if record else None


def _stage_row(record: dict[str, Any]) -> dict[str, Any]:
    return {"stage": record["stage"], "fingerprint": record.get("fingerprint"),
            "kopretrain": record.get("versions", {}).get("kopretrain"), "git_commit": record.get("git_commit"),
            "started": record.get("started")}


def _vocab(folder: Path) -> tuple[str, int]:
    from transformers import AutoTokenizer

    from kopretrain.tokenizer.fingerprint import vocab_hash

    try:
        tok = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise StageError(f"the model's tokenizer does not load from the release folder: {exc}") from None
    return vocab_hash(tok), len(tok)


def _parameters(folder: Path) -> int:
    """Parameter count from the safetensors headers (no weights are read)."""
    from math import prod

    from safetensors import safe_open

    total = 0
    for path in folder.glob("*.safetensors"):
        if path.name.startswith("ngram_expert"):  # the n-gram expert's coefficients are not the encoder's
            continue
        with safe_open(str(path), framework="np") as fh:
            total += sum(prod(fh.get_slice(k).get_shape()) for k in fh.keys())
    return total


def _folder_name(src: Path) -> str:
    """``runs/quickstart/finetune`` -> ``quickstart-finetune``: a pipeline's model folder is named
    after its stage, which alone says nothing on a card."""
    path = src.resolve()
    return f"{path.parent.name}-{path.name}" if path.name in STAGES else path.name
