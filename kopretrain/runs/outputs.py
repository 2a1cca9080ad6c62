"""Output safety: kopretrain replaces only what it wrote itself, and one run writes an output at a time.

Two rules every stage goes through (``StageRun`` for directory outputs, ``label`` for files):

1. ``--output`` may name a new path, an empty directory, or an earlier output of the same stage (a
   directory with its ``stage.json``, or a labelled file with its ``<file>.stage.json``). Anything
   else is refused before any work starts, so a mistyped ``-o raw`` never deletes the user's data.
2. An OS-level lock (``flock`` on ``.<name>.lock`` beside the output) makes a second run on the
   same output fail at once, naming the first. The lock dies with its process, so a ``kill -9``
   leaves nothing stale behind; the empty lock file itself stays (deleting it while another process
   waits on it would let two runs hold two different files).
"""

from __future__ import annotations

import os
from pathlib import Path

STAGE_FILE = "stage.json"
KEY_FILE = ".fingerprint"


def _stage_record(folder: Path) -> dict | None:
    """The ``stage.json`` kopretrain wrote in ``folder`` (a JSON object with its ``stage`` and
    ``fingerprint``), or None: a user's folder with a file of that name is not taken for an output."""
    import json

    try:
        record = json.loads((folder / STAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "stage" in record and "fingerprint" in record else None


def has_stage_record(folder: Path) -> bool:
    return _stage_record(folder) is not None


def is_run_artifact(path: Path) -> bool:
    """True for what kopretrain itself leaves beside or inside an output: a finished stage directory
    (its ``stage.json``), a ``*.partial`` work directory or file, a ``.<name>.lock`` file, a
    ``.<name>.replaced-<pid>`` swap directory and a labelled file's ``<file>.stage.json``. An
    output written inside an input directory must not become part of that input: the rerun would
    read its own rejected.jsonl and never be up to date (the lock file's pid changes each run)."""
    name = path.name
    if name.endswith(".partial") or name.endswith(".stage.json"):
        return True
    if name.startswith(".") and (name.endswith(".lock") or ".replaced-" in name):
        return True
    return path.is_dir() and has_stage_record(path)


def walk_inputs(root: Path) -> list[Path]:
    """Every file under ``root`` (sorted, recursive) except kopretrain's own outputs (above)."""
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not is_run_artifact(here / d)]  # prune: never descend into one
        found += [here / f for f in files if not is_run_artifact(here / f)]
    return sorted(found)


class OutputError(RuntimeError):
    """An output path kopretrain must not write to (not ours, or in use by another run)."""


def _listing(path: Path, limit: int = 3) -> str:
    names = sorted(p.name for p in path.iterdir())
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_dir_output(output: Path, stage: str | None = None) -> None:
    """Refuse a directory output that kopretrain did not write (see the module docstring), or that
    another stage wrote (``release -o runs/x/ingest`` deleted the data the model came from)."""
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise OutputError(f"--output {output} is an existing file; a stage writes a directory there. "
                          f"Choose a new path (nothing was changed)")
    if output.is_dir() and any(output.iterdir()) and not has_stage_record(output):
        raise OutputError(f"--output {output} is a directory kopretrain did not write (it holds "
                          f"{_listing(output)} and no {STAGE_FILE}); refusing to replace it. Choose a new "
                          f"path or move its contents yourself (nothing was changed)")
    other = (_stage_record(output) or {}).get("stage") if stage and output.is_dir() else None
    if other and other != stage:
        a = "an" if other[0] in "aeiou" else "a"
        raise OutputError(f"--output {output} holds {a} {other} output (its {STAGE_FILE}); this {stage} run would "
                          f"replace it. Choose another path, or delete it yourself first (nothing was changed)")


def check_partial_dir(partial: Path, stage: str | None = None) -> None:
    """``<output>.partial`` is removed on restart only when it is ours (its fingerprint or record),
    and of the same stage: an interrupted finetune's checkpoints are not a release's to delete."""
    if partial.is_symlink() or (partial.exists() and not partial.is_dir()):
        raise OutputError(f"{partial} exists and is not a kopretrain work directory; move it away first")
    ours = (partial / KEY_FILE).is_file() or (partial / STAGE_FILE).is_file()
    if partial.is_dir() and any(partial.iterdir()) and not ours:
        raise OutputError(f"{partial} exists and was not written by kopretrain (no {KEY_FILE}); "
                          f"kopretrain works there, so move it away first (nothing was changed)")
    try:  # "<fingerprint>\n<stage>" (the stage since 2026-12-08; older key files hold the fingerprint only)
        other = (partial / KEY_FILE).read_text(encoding="utf-8").split()[1:2]
    except (OSError, UnicodeDecodeError):
        other = []
    if stage and other and other[0] != stage:
        raise OutputError(f"{partial} holds an unfinished {other[0]} run; this {stage} run would delete it. "
                          f"Choose another --output, or delete it yourself first (nothing was changed)")


def check_file_output(output: Path, record: Path) -> None:
    """A file output (``label``) may replace only a file kopretrain labelled (with ``record`` beside it)."""
    if output.is_dir():
        raise OutputError(f"--output {output} is a directory; label writes one file (e.g. {output}/labeled.csv)")
    # a run killed between writing the file and its record left its work folder: the file is ours
    ours = record.is_file() or (output.with_name(output.name + ".partial") / "manifest.json").is_file()
    if output.exists() and not ours:
        raise OutputError(f"--output {output} exists and was not written by kopretrain (no {record.name} "
                          f"beside it); refusing to overwrite it. Choose a new file name (nothing was changed)")


class OutputLock:
    """Exclusive, non-blocking lock on one output path for the life of a run::

        with OutputLock(output):
            ...  # only this process writes output / output.partial

    A second process entering the same lock gets ``OutputError`` naming the holder's pid.
    """

    def __init__(self, output: Path):
        self.path = output.with_name(f".{output.name}.lock")
        self.output = output
        self._fh = None

    def __enter__(self) -> "OutputLock":
        try:
            import fcntl
        except ImportError:  # Windows: no flock; one writer per output is then the user's to keep
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise OutputError(f"{self.output} is being written by another kopretrain run ({holder}); "
                              f"wait for it to finish or stop it, then rerun") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> bool:
        self.release()
        return False

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the flock
            self._fh = None
