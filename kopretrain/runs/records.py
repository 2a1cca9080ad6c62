"""Run records: atomic stage outputs, ``stage.json`` and the skip/resume rule.

A stage writes into ``<output>.partial/`` and only a complete run is renamed to ``<output>``, so an
interrupted stage never looks done (datatrove's completion markers, reduced to one rename). The
partial directory is kept across a crash when the stage's fingerprint is unchanged, which is how
long stages (pretrain checkpoints, label chunks) resume. ``stage.json`` holds the resolved
config, input fingerprints, library versions, timing and the row accounting
``rows_in == rows_out + sum(rejected)``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from kopretrain import __version__
from kopretrain.runs.config import to_dict
from kopretrain.runs.fingerprints import (  # noqa: F401 - re-exported: stages import them from here
    content_digest, fingerprint_config, fingerprint_path, names_local_files, report_key, stage_fingerprint,
)
from kopretrain.runs.jsonfile import write_json  # noqa: F401 - re-exported: stages import it from here
from kopretrain.runs.outputs import (
    KEY_FILE, STAGE_FILE, OutputError, OutputLock, check_dir_output, check_partial_dir,
)

REJECTED_FILE = "rejected.jsonl"
# Libraries whose versions change results; recorded when installed (no import needed).
TRACKED_LIBS = (
    "torch", "transformers", "tokenizers", "datasets", "accelerate", "kiwipiepy",
    "huggingface_hub", "safetensors", "pandas", "pyarrow", "scikit-learn", "numpy",
)


class StageError(RuntimeError):
    """A stage failed on bad input; the message names the file/line/column or the key to fix."""


def input_error(exc: BaseException) -> str | None:
    """The one-line message for an error caused by the user's input or environment (exit code 2),
    or None for anything else (a bug: the traceback is what a report needs)."""
    import gzip
    import zlib

    if isinstance(exc, (StageError, OutputError, FileNotFoundError)):
        return str(exc)
    if isinstance(exc, (EOFError, gzip.BadGzipFile, zlib.error)):
        return f"a compressed input is truncated or corrupt ({type(exc).__name__}: {exc})"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc} (choose an output folder you can write to)"
    if isinstance(exc, UnicodeError):
        return f"text that is not valid in the given --encoding ({exc})"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return None


def library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version(), "kopretrain": __version__}
    for name in TRACKED_LIBS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    """The kopretrain checkout's commit (None when installed from a wheel)."""
    here = Path(__file__).resolve().parents[2]  # kopretrain/runs/records.py -> the checkout
    if not (here / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _check_not_inside(cfg: Any, fields: Iterable[str], output: Path) -> None:
    """An input inside the output (``--input o/train.parquet -o o``) would be replaced by the run
    that reads it: refused before any work."""
    out = output.resolve()
    for name in fields:
        for value in (v if isinstance(v := getattr(cfg, name, None), (list, tuple)) else [v]):
            if isinstance(value, str) and value and Path(value).exists():
                path = Path(value).resolve()
                if path == out or out in path.parents:  # OutputError: --dry-run says "will fail"
                    raise OutputError(f"--{name.replace('_', '-')} {value} is inside --output {output}, which the "
                                     "run replaces; write the output somewhere else")


def read_stage(output: str | os.PathLike) -> dict[str, Any] | None:
    """The ``stage.json`` of a finished stage output, or None."""
    path = Path(output) / STAGE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


class StageRun:
    """One execution of a stage into ``output``. Use as a context manager::

        with StageRun("ingest", cfg, output) as run:
            write files into run.dir
            run.set_counts(rows_in=..., rows_out=..., rejected={...})

    ``run.done`` is True (and the body should be skipped) when an identical finished output
    exists and ``force`` is False.
    """

    def __init__(self, stage: str, cfg: Any, output: str | os.PathLike, *, force: bool = False,
                 input_fields: Iterable[str] | None = None, log=print):
        self.stage = stage
        self.cfg = cfg
        self.output = Path(output).expanduser()
        if self.output.name in ("", ".", ".."):  # ".", "..", "/": a stage replaces its output folder when done
            raise StageError(f"--output {output}: name the folder to write (e.g. -o runs/x), not the current, "
                             "parent or root directory, which a finished stage would replace")
        self.dir = self.output.with_name(self.output.name + ".partial")
        self.force = force
        self.log = log
        fields = input_fields if input_fields is not None else cfg.INPUTS
        self.config = to_dict(cfg)
        self.inputs = {name: fingerprint_path(getattr(cfg, name)) for name in fields}
        # a field that may name a file (finetune --soft-targets FILE|tfidf): its content when it does
        self.inputs.update({name: fingerprint_path(value) for name in getattr(cfg, "CONTENT_FIELDS", ())
                            if name not in getattr(cfg, "REPORT_FIELDS", ())  # in report_key instead
                            and names_local_files(value := getattr(cfg, name))})
        # an input field added in a later version and left empty keeps earlier fingerprints, as in fingerprint_config
        self.inputs = {k: v for k, v in self.inputs.items() if not (k in cfg.ADDED_FIELDS and v == "none")}
        self.behaviour = cfg.behaviour()
        self.fingerprint = stage_fingerprint(stage, fingerprint_config(cfg, self.config), self.inputs, self.behaviour)
        self.counts: dict[str, Any] | None = None
        self.stats: dict[str, Any] = {}
        self.rejected: Counter[str] = Counter()
        self._rejected_fh = None
        self.resumed = False
        check_dir_output(self.output, stage)  # before any work: never replace what kopretrain did not write
        _check_not_inside(cfg, fields, self.output)
        self._lock = OutputLock(self.output)
        self.previous = read_stage(self.output)
        previous = self.previous or {}
        keys = self._keys(self.behaviour)
        self.done = (not force) and bool(previous) and (previous.get("fingerprint") in keys
                                                         or previous.get("report_free_key") == self.fingerprint
                                                         or self.fingerprint in previous.get("aliases", ()))
        self.report_files: tuple[str, ...] = getattr(cfg, "REPORT_FILES", ())
        self.report_key = report_key(cfg, self.config)
        if "report_key" in previous:
            changed = previous["report_key"] != self.report_key
        else:  # written before report keys: its report was made with the values its config records
            old = previous.get("config") or {}
            changed = any(old.get(f) != self.config.get(f) for f in getattr(cfg, "REPORT_FIELDS", ()))
        self.report_stale = self.done and self.report_key is not None and changed

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> "StageRun":
        if self.done:
            self.log(f"[{self.stage}] up to date: {self.output} (use --force to redo)")
            if self.dir.is_dir():  # an interrupted --force run of the same config
                self.log(f"[{self.stage}] {self.dir} holds an unfinished forced rerun: --force continues it; "
                         "delete it to free the space")
            return self
        self._lock.__enter__()
        try:
            self._open_partial()
        except BaseException:
            self._lock.release()
            raise
        return self

    def _open_partial(self) -> None:
        self._t0 = time.time()
        self._started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        check_dir_output(self.output, self.stage)  # again under the lock: another run may have written it meanwhile
        check_partial_dir(self.dir, self.stage)
        key_file = self.dir / KEY_FILE
        if self.dir.exists():
            # the same config and inputs: continue it, also under --force (an interrupted forced
            # rerun resumes rather than starting over and deleting its checkpoints)
            same = key_file.is_file() and key_file.read_text().split()[:1] == [self.fingerprint]
            if same:
                self.resumed = True
                self.log(f"[{self.stage}] continuing the unfinished run (interrupted or failed) in {self.dir}")
            else:
                shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file.write_text(f"{self.fingerprint}\n{self.stage}\n")  # the stage: another one must not delete it

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.done:
            return False
        try:
            if self._rejected_fh is not None:
                self._rejected_fh.close()
                self._rejected_fh = None
            if exc_type is None:
                self._finish()
            elif input_error(exc) is not None and not any((self.dir / n).exists() for n in ("checkpoints", REJECTED_FILE)):
                # Bad input: nothing here is worth resuming (the rerun after the fix has another
                # fingerprint), so leave no half-written .partial behind; one holding the rejected
                # rows stays, since the error message points at them.
                shutil.rmtree(self.dir, ignore_errors=True)
            # Otherwise the partial directory stays: a rerun with the same fingerprint resumes from it.
        finally:
            self._lock.release()
        return False

    def _finish(self) -> None:
        record = {
            "stage": self.stage,
            "fingerprint": self.fingerprint,
            "complete": True,
            "config": self.config,
            "inputs": self.inputs,
            "versions": library_versions(),
            "git_commit": git_commit(),
            "started": self._started,
            "seconds": round(time.time() - self._t0, 3),
            "resumed": self.resumed,
            "counts": self.counts,
            "stats": self.stats,
        }
        if self.report_key is not None:
            record["report_key"] = self.report_key
        (self.dir / KEY_FILE).unlink(missing_ok=True)
        record["content"] = content_digest(self.dir, self.report_files)
        if self._same_bytes_as_legacy(record["content"]):
            record["legacy_key"] = True
        if self.behaviour:
            record["behaviour"] = self.behaviour
            self._keep_key_if_same_bytes(record)
        write_json(self.dir / STAGE_FILE, record)
        # The previous output (ours: check_dir_output ran under the lock) moves to a hidden name
        # no user file can have, so the swap never touches anything kopretrain did not write.
        old = self.output.with_name(f".{self.output.name}.replaced-{os.getpid()}")
        if self.output.exists():
            os.replace(self.output, old)
        os.replace(self.dir, self.output)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
        self.log(f"[{self.stage}] wrote {self.output} ({record['seconds']:.1f}s)")

    def _same_bytes_as_legacy(self, content: str) -> bool:
        """True when this run rewrote, byte for byte, an output whose readers know it by the key
        without a content digest (written before digests existed, or carried over since): it then
        keeps that key, so a forced byte-identical rerun in an older workdir reruns nothing downstream."""
        old = self.previous
        if not old or not old.get("complete") or not (old.get("legacy_key") or not old.get("content")):
            return False
        return self._same_bytes(content)

    def _same_bytes(self, content: str) -> bool:
        """This run wrote the bytes of the finished output it replaces (its recorded digest, or for a
        record from before digests the folder's, hashed once however often it is asked)."""
        recorded = (self.previous or {}).get("content")
        return (recorded or self._previous_digest) == content

    @functools.cached_property
    def _previous_digest(self) -> str | None:
        return content_digest(self.output, self.report_files) if self.output.is_dir() else None

    def _keys(self, behaviour: dict[str, str] | None) -> tuple[str | None, ...]:
        """The keys an output made with these settings may carry: today's; the one from before
        SPEED_FIELDS left the hash; the one from before MOVED_FIELDS moved; the one with ``unkeyed()``."""
        cfg, config = self.cfg, self.config
        recorded = (self.previous or {}).get("config") or {}
        return (stage_fingerprint(self.stage, fingerprint_config(cfg, config), self.inputs, behaviour),
                stage_fingerprint(self.stage, fingerprint_config(cfg, config, speed=True), self.inputs, behaviour),
                self._moved_key(self.stage, cfg, self.previous or {}, behaviour),
                # keyed before unkeyed() left them out: with the record's own values of those fields
                stage_fingerprint(self.stage, {**fingerprint_config(cfg, config, unkeyed=False),
                                               **{f: recorded[f] for f in cfg.unkeyed() if f in recorded}},
                                  self.inputs, behaviour))

    def _keep_key_if_same_bytes(self, record: dict[str, Any]) -> None:
        """The rerun had today's config and inputs, and only the code's behaviour may have changed
        (a kopretrain upgrade changed a normalize rule, the output predates behaviour digests, or
        ``--force``), and it wrote the same bytes: the output keeps the key its readers were
        fingerprinted with and answers to the new one as an alias, so nothing downstream reruns."""
        old = self.previous
        if not old or not old.get("complete"):
            return
        known = {old["fingerprint"], *old.get("aliases", ())}
        if not known & {*self._keys(old.get("behaviour")), *self._keys(self.behaviour)}:
            return  # its config or inputs changed: a new output
        if self._same_bytes(record["content"]):
            aliases = [*old.get("aliases", ())] + ([record["fingerprint"]] if record["fingerprint"] not in known else [])
            record["aliases"], record["fingerprint"] = aliases[-8:], old["fingerprint"]
            record.pop("legacy_key", None)
            if old.get("legacy_key") or not old.get("content"):  # its readers hashed the key alone
                record["legacy_key"] = True

    def _moved_key(self, stage: str, cfg: Any, previous: dict, behaviour: dict[str, str] | None) -> str | None:
        """The key the version before gave this output, when fields have since left the key
        (``MOVED_FIELDS``): today's settings with the record's own values of those fields. It
        matches when nothing else changed, so upgrading keeps finished outputs up to date."""
        moved, old = getattr(cfg, "MOVED_FIELDS", ()), previous.get("config") or {}
        if not moved or not all(f in old for f in moved):
            return None
        before = {**fingerprint_config(cfg, self.config), **{f: old[f] for f in moved}}
        return stage_fingerprint(stage, before, self.inputs, behaviour)

    def refresh_report(self, write) -> None:
        """Only REPORT_FIELDS changed: ``write(run)`` makes the report files in a staging folder
        (``run.dir``; the output is ``run.output``), each then replaces its old copy atomically, and
        the record takes the new config and report key. Its key stays, so nothing downstream is stale."""
        with self._lock:
            staging = self.output.with_name(f".{self.output.name}.report-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            self.stats, self.dir = dict(self.previous.get("stats") or {}), staging
            try:
                write(self)
                for name in self.report_files:  # a report now turned off (or renamed) leaves no old copy
                    if (staging / name).exists():
                        os.replace(staging / name, self.output / name)
                    else:
                        (self.output / name).unlink(missing_ok=True)
            finally:
                self.dir = self.output.with_name(self.output.name + ".partial")
                shutil.rmtree(staging, ignore_errors=True)
            record = {**self.previous, "config": self.config, "stats": self.stats, "report_key": self.report_key}
            if record["fingerprint"] != self.fingerprint:  # matched by its older key: remember this one too
                record["report_free_key"] = self.fingerprint
            write_json(self.output / STAGE_FILE, record)
        self.log(f"[{self.stage}] report rewritten: {self.output} (only report options changed)")

    # ----------------------------------------------------------------- accounting
    def reject(self, reason: str, **where: Any) -> None:
        """Count one rejected row and append it (file, line, reason, text...) to rejected.jsonl."""
        self.rejected[reason] += 1
        if self._rejected_fh is None:
            self._rejected_fh = open(self.dir / REJECTED_FILE, "a", encoding="utf-8")
        self._rejected_fh.write(json.dumps({"reason": reason, **where}, ensure_ascii=False, default=str) + "\n")

    def set_counts(self, rows_in: int, rows_out: int, rejected: dict[str, int] | None = None) -> None:
        """Row the row accounting; raises if any row is unaccounted for."""
        merged = Counter(self.rejected)
        merged.update(rejected or {})
        total = sum(merged.values())
        if rows_in != rows_out + total:
            raise StageError(
                f"[{self.stage}] row accounting does not add up: rows_in={rows_in} but "
                f"rows_out={rows_out} + rejected={total} ({dict(merged)})"
            )
        self.counts = {"rows_in": rows_in, "rows_out": rows_out, "rejected": dict(sorted(merged.items()))}
