"""Fingerprints: what makes a stage output up to date.

A stage's key hashes its config (minus speed-only fields and input path strings) with the content
fingerprints of its inputs: a finished stage output by its own key and content digest, a file by
its bytes, a directory by its files, anything else (a Hub id) by its name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from kopretrain import __version__
from kopretrain.runs.outputs import KEY_FILE, STAGE_FILE, walk_inputs


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint_path(value: str | os.PathLike | list | None) -> str:
    """Content fingerprint of an input: a stage output (its own fingerprint), a file, a directory
    (its files, recursively), a list of those, or, for anything that is not a local path, the
    string itself (a Hub id; pin its revision in the config for a stable record)."""
    if value in (None, "", []):
        return "none"
    if isinstance(value, (list, tuple)):
        joined = "|".join(fingerprint_path(v) for v in value)
        return "list:" + hashlib.sha256(joined.encode()).hexdigest()
    path = Path(value)
    stage = path / STAGE_FILE
    if stage.is_file():
        record = json.loads(stage.read_text())
        # The content digest makes a rerun that wrote other files (--force of a non-deterministic
        # stage: WordPiece vocab, training) a changed input downstream; a record written before
        # digests existed keeps the key its readers were fingerprinted with.
        content = f":{record['content'][:16]}" if record.get("content") and not record.get("legacy_key") else ""
        return "stage:" + record["fingerprint"] + content
    if path.is_file():
        return "sha256:" + _sha256_file(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in walk_inputs(path):  # an output kept inside an input directory is not its content
            h.update(str(f.relative_to(path)).encode())
            h.update(_sha256_file(f).encode())
        return "dir:" + h.hexdigest()
    return "name:" + str(value)


def names_local_files(value: Any) -> bool:
    """A CONTENT_FIELDS value worth hashing: a path, or a list with a path in it, that exists here."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, str) and v and Path(v).exists() for v in values)


def content_digest(folder: Path, skip: tuple[str, ...] = ()) -> str:
    """sha256 over a finished output's files (names and bytes), its run record and the report files
    ``skip`` names left out: what a downstream stage reads, so a byte-identical rerun (a deterministic
    stage forced) or a rewritten report changes nothing."""
    h = hashlib.sha256()
    for f in walk_inputs(folder):
        if f.parent == folder and f.name in (STAGE_FILE, KEY_FILE, *skip):
            continue
        h.update(f.relative_to(folder).as_posix().encode() + b"\0")
        h.update(_sha256_file(f).encode())
    return h.hexdigest()


def stage_fingerprint(stage: str, config: dict[str, Any], inputs: dict[str, str],
                      behaviour: dict[str, str] | None = None) -> str:
    """The key of a stage output: its config, its inputs' fingerprints and, for a stage whose
    code's behaviour is digested (``StageConfig.behaviour``), that digest (left out when empty, so
    the keys of the other stages are those of earlier versions)."""
    payload = {"stage": stage, "config": config, "inputs": inputs, "version": __version__}
    if behaviour:
        payload["behaviour"] = behaviour
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def fingerprint_config(cfg: Any, config: dict[str, Any], speed: bool = False,
                       drop: tuple[str, ...] | None = None, unkeyed: bool = True) -> dict[str, Any]:
    """``config`` minus its ``SPEED_FIELDS``, its ``REPORT_FIELDS`` and its ``INPUTS`` path strings (their content is
    fingerprinted beside it: ``../data/x.csv`` and ``data/x.csv`` from another folder are one input;
    both kept with ``speed=True``: how earlier versions hashed)
    and minus the fields listed in the config class's ``ADDED_FIELDS`` that are at their
    default: an option added in a later version then changes nothing about a finished output's
    fingerprint, so upgrading kopretrain does not make every earlier output stale (setting the
    new option does). ``drop``: the fields to leave out instead (label keys its own way).
    ``unkeyed``: also leave out what ``cfg.unkeyed()`` names (False: how earlier versions hashed)."""
    added = cfg.ADDED_FIELDS
    dropped = () if speed else (*getattr(cfg, "SPEED_FIELDS", ()), *getattr(cfg, "REPORT_FIELDS", ()), *cfg.INPUTS,
                                *(cfg.unkeyed() if unkeyed and hasattr(cfg, "unkeyed") else ()))
    dropped = dropped if drop is None else drop
    defaults = {f.name: f.default for f in dataclasses.fields(cfg) if f.default is not dataclasses.MISSING}
    return {k: v for k, v in config.items()
            if k not in dropped and not (k in added and k in defaults and v == defaults[k])}


def report_key(cfg: Any, config: dict[str, Any]) -> str | None:
    """The key of what a stage's report depends on alone (``REPORT_FIELDS``, a local file's content
    for those in ``CONTENT_FIELDS``), or None for a stage without such fields."""
    fields = getattr(cfg, "REPORT_FIELDS", ())
    if not fields:
        return None
    content = {name: fingerprint_path(config[name]) for name in fields
               if name in getattr(cfg, "CONTENT_FIELDS", ()) and names_local_files(config[name])}
    payload = json.dumps({"config": {name: config[name] for name in fields}, "content": content},
                         sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]
