"""The stage contract: what every stage declares, and the one way any stage is run.

A stage module (``kopretrain/<name>.py``) defines its config, a :class:`StageConfig` whose fields
are documented by the string under each (that text is ``--help``), and ends with one line::

    STAGE = Stage("normalize", NormalizeConfig, run=run)

``run(cfg, run: StageRun)`` writes into ``run.dir``; :meth:`Stage.execute` wraps it in a
:class:`~kopretrain.runs.records.StageRun` (atomic, locked, skipped when up to date, resumed when
interrupted), under torchrun too when the stage is ``distributed``. A stage whose output is one
file (``label``) brings its own ``execute`` and ``status`` and says ``output="file"``. The CLI, the
pipeline runner and ``--dry-run`` only ever talk to a :class:`Stage`, never to a stage module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal


@dataclass
class StageConfig:
    """Base of every stage's config: what a pipeline needs to know besides the fields."""

    INPUTS: ClassVar[tuple[str, ...]] = ()
    """Fields that name inputs (paths or Hub ids): their content fingerprints key the run record."""
    WIRING: ClassVar[dict[str, str | tuple[str, ...]]] = {}
    """Field -> upstream stage whose output fills it inside a pipeline when the YAML leaves it empty
    (a tuple: the first of these stages the pipeline has)."""
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    """Fields a run cannot do without (after wiring): a pipeline checks them before any stage runs,
    so ``--dry-run`` says ``will fail`` instead of a stage failing after the ones before it ran."""
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ()
    """Fields added in a later version: left out of the fingerprint at their default, so upgrading
    kopretrain does not make finished outputs stale (``fingerprints.fingerprint_config``)."""
    CONTENT_FIELDS: ClassVar[tuple[str, ...]] = ()
    """Fields that name a file or a keyword (``soft_targets: FILE|tfidf``), or a list of them: a
    file's content joins the fingerprint beside the value, which stays in the config hash (a keyword
    or a Hub id is only a value)."""
    REPORT_FIELDS: ClassVar[tuple[str, ...]] = ()
    """Fields that change only the stage's ``REPORT_FILES``, never what later stages read (vocab
    --compare-with): left out of the key; a finished output whose report was made with other values
    gets its report rewritten by ``Stage.report``: nothing retrained, nothing downstream stale."""
    REPORT_FILES: ClassVar[tuple[str, ...]] = ()
    """The files ``REPORT_FIELDS`` change: left out of the output's content digest."""
    MOVED_FIELDS: ClassVar[tuple[str, ...]] = ()
    """Fields an earlier version kept in the key and a later one moved out (to ``SPEED_FIELDS`` or
    ``REPORT_FIELDS``): an output keyed with them is matched using its record's values for them."""
    SPEED_FIELDS: ClassVar[tuple[str, ...]] = ()
    """Fields that change how fast a stage runs, never what it writes (thread and worker counts,
    batch sizes of a streaming pass): left out of the fingerprint, so changing them reruns nothing."""

    def unkeyed(self) -> tuple[str, ...]:
        """Fields the other values make irrelevant (``epochs`` once ``max_steps`` decides the length):
        left out of the key, so changing one reruns nothing. Outputs keyed with them stay up to date."""
        return ()

    def behaviour(self) -> dict[str, str]:
        """Digests of what this version's code does with this config, joined to the key: a stage
        whose output follows rules that change between versions (normalize) says so here, and an
        upgrade that changes them reruns it (downstream reruns only if its bytes changed:
        ``StageRun`` keeps the old key for a byte-identical output). Empty: keyed by config alone."""
        return {}


@dataclass(frozen=True)
class Stage:
    name: str
    config: type
    run: Callable[[Any, Any], None] | None = None
    """Writes a directory output into ``run.dir`` (most stages)."""
    own_execute: Callable[..., Path] | None = None
    """``execute(cfg, output, force) -> Path`` for a stage that manages its own output (``label``)."""
    own_status: Callable[[Any, Path], str] | None = None
    """``status(cfg, output) -> str`` for ``--dry-run``, with ``own_execute``."""
    report: Callable[[Any, Any], None] | None = None
    """``report(cfg, run)`` writes the ``REPORT_FILES`` into ``run.dir`` from the finished output in
    ``run.output`` (its ``run.stats``): only ``REPORT_FIELDS`` changed since it was written."""
    finish: Callable[[Any, Path], None] | None = None
    """Runs after the output exists, also when it was up to date (``release``: push or dry run)."""
    output: Literal["dir", "file"] = "dir"
    pipeline_output: str = ""
    """Where the stage writes inside a pipeline's workdir (default: its name)."""
    distributed: bool = False
    """Every torchrun/accelerate rank runs ``run``; rank 0 owns the output directory."""

    def __post_init__(self) -> None:
        if (self.run is None) == (self.own_execute is None):
            raise TypeError(f"stage {self.name}: give exactly one of run= or own_execute=")
        if not issubclass(self.config, StageConfig):
            raise TypeError(f"stage {self.name}: {self.config.__name__} must subclass StageConfig")

    def output_in(self, workdir: Path) -> Path:
        return workdir / (self.pipeline_output or self.name)

    def execute(self, cfg: Any, output: str | os.PathLike, *, force: bool = False) -> Path:
        """Run the stage into ``output`` (skipped when its record says it is up to date)."""
        if self.own_execute is not None:
            path = Path(self.own_execute(cfg, output, force=force))
        elif self.distributed and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            path = self._execute_ranks(cfg, Path(output), force)
        else:
            from kopretrain.runs.records import StageRun

            with StageRun(self.name, cfg, output, force=force) as record:
                if not record.done:
                    self.run(cfg, record)
                elif record.report_stale and self.report is not None:
                    record.refresh_report(lambda run: self.report(cfg, run))
            path = Path(output)
        if self.finish is not None:
            self.finish(cfg, path)
        return path

    def status(self, cfg: Any, output: Path) -> str:
        """What running it now would do: ``up to date``, ``will resume ...``, ``will run`` or ``will fail: ...``."""
        if self.own_status is not None:
            return self.own_status(cfg, output)
        from kopretrain.runs.outputs import OutputError
        from kopretrain.runs.records import StageRun

        try:
            record = StageRun(self.name, cfg, output, log=lambda *a, **k: None)
            done, report_stale = record.done, record.report_stale and self.report is not None
        except OutputError as exc:
            return f"will fail: {exc}"
        except Exception:  # noqa: BLE001 - an input that does not exist yet: the stage will say what is missing
            done = False
        if done:
            return "up to date; its report will be rewritten" if report_stale else "up to date"
        return "will resume or restart its partial run" if Path(f"{output}.partial").exists() else "will run"

    def _execute_ranks(self, cfg: Any, output: Path, force: bool) -> Path:
        """Under torchrun/accelerate every rank trains, but one StageRun must create and rename
        ``<output>.partial``: rank 0 enters it, tells the others whether it resumes, and finishes
        it after they are done."""
        import torch
        from accelerate import PartialState
        from accelerate.utils import broadcast_object_list

        from kopretrain.runs.records import StageRun

        state = PartialState(cpu=not torch.cuda.is_available())
        main = state.is_main_process
        record = StageRun(self.name, cfg, output, force=force, log=print if main else (lambda *a, **k: None))
        if record.done:
            return output
        if main:
            record.__enter__()
        record.resumed = bool(broadcast_object_list([record.resumed])[0])
        state.wait_for_everyone()
        try:
            self.run(cfg, record)
        except BaseException as exc:
            if main:
                record.__exit__(type(exc), exc, exc.__traceback__)
            raise
        state.wait_for_everyone()
        if main:
            record.__exit__(None, None, None)
        state.wait_for_everyone()
        return output
