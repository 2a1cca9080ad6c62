"""``kopretrain run PIPELINE.yaml``: the stages in order, each into ``<workdir>/<stage>``.

A pipeline YAML is ``workdir`` plus one section per stage, using the stage's config field names.
Relative input paths in a YAML (each stage's ``INPUTS``: ``ingest.input``, ``release.data_card``...)
are looked up next to the YAML first, so a pipeline runs the same from any folder; ``workdir``
(the outputs) and ``--set`` values are relative to where you run it. ``~`` expands everywhere.
A name without a folder or suffix (``kopretrain run quickstart``) that is not a file here is a
pipeline bundled with kopretrain (``kopretrain/bundled/pipelines``).
A stage field listed in its config's ``WIRING`` (e.g. ``normalize.input``) is filled with the
upstream stage's output when the YAML leaves it empty, so YAMLs only say what differs. Finished
stages whose config and inputs are unchanged are skipped; ``--force`` redoes them.
A stage may run twice under another name: ``finetune@teacher`` is a second ``finetune`` section,
written to ``<workdir>/finetune-teacher``. Any input field may name such a section (``teacher:
finetune@teacher``) to read its output; sections of one stage run in YAML order, except that a
section another reads runs before its reader. Wiring reads the upstream stage's own (untagged)
section once it has run, else its latest tagged one: ``evaluate@dev`` after ``evaluate`` does not
become what ``release`` publishes.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from kopretrain.runs.config import ConfigError, deep_merge, from_dict, load_yaml, parse_set
from kopretrain.runs.registry import PIPELINE_ORDER, STAGES, get

TOP_KEYS = ("workdir", "stages", "description")
_TAG = re.compile(r"[a-z0-9][a-z0-9_-]*")
BUNDLED = Path(__file__).resolve().parent / "bundled" / "pipelines"


def find_pipeline(path: str | Path) -> Path:
    """``path`` itself, or for a bare name (``quickstart``) the bundled ``<name>.yaml``."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    bundled = BUNDLED / f"{path.name}.yaml"
    if path.parent == Path(".") and not path.suffix and bundled.is_file():
        return bundled
    names = ", ".join(sorted(p.stem for p in BUNDLED.glob("*.yaml")))
    raise FileNotFoundError(f"pipeline file not found: {path} (bundled pipelines: {names})")


def kind(name: str) -> str:
    """The stage a pipeline section runs: ``finetune@teacher`` is a ``finetune``."""
    return name.split("@", 1)[0]


def is_section(name: str) -> bool:
    """A stage name, or ``stage@tag`` (lowercase letters, digits, ``-`` and ``_``) for a second one."""
    stage, at, tag = name.partition("@")
    return stage in STAGES and (not at or bool(_TAG.fullmatch(tag)))


def output_of(name: str, workdir: Path) -> Path:
    """Where a section writes: ``finetune@teacher`` -> ``<workdir>/finetune-teacher``."""
    out = get(kind(name)).output_in(workdir)
    if name == kind(name):
        return out
    first, *rest = out.relative_to(workdir).parts
    return workdir.joinpath(name.replace("@", "-"), *rest)


def resolve_inputs(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Relative input paths that exist next to the YAML point there; others (Hub ids, paths
    relative to where kopretrain runs) stay as written. Paths are normalized, not made absolute:
    ``pipelines/../data/x.csv`` is recorded as ``data/x.csv``."""
    out = dict(raw)
    for name, section in raw.items():
        if not is_section(name) or not isinstance(section, dict):
            continue
        section = dict(section)
        config = get(kind(name)).config
        for field in (*config.INPUTS, *config.CONTENT_FIELDS):
            value = section.get(field)
            if isinstance(value, list):
                section[field] = [_near(v, folder) for v in value]
            elif isinstance(value, str):
                section[field] = _near(value, folder)
        out[name] = section
    return out


def _near(value: Any, folder: Path) -> Any:
    if not isinstance(value, str) or not value:
        return value
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded
    candidate = os.path.normpath(os.path.join(folder, expanded))
    return candidate if os.path.exists(candidate) else value


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a pipeline YAML (a path or a bundled pipeline's name), resolve its relative input
    paths against its folder, then apply ``--set`` overrides (validated later, per stage)."""
    path = find_pipeline(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file (is it a pipeline YAML?)") from None
    raw = load_yaml(text, str(path)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a pipeline is a mapping of workdir and stage sections")
    overrides = parse_set(overrides or [])
    for key in overrides:  # a tagged section exists only in the YAML: a typo must not add a new fine-tune
        if "@" in key and key not in raw:
            sections = ", ".join(k for k in raw if "@" in k) or "none"
            raise ConfigError(f"--set {key}...: '{key}' is not a section of {path} (its tagged sections: {sections})")
        if key not in TOP_KEYS and not is_section(key):  # the YAML is fine: name the --set
            _unknown_key(f"--set {key}...", key)
    raw = deep_merge(resolve_inputs(raw, path.parent), overrides)
    for key in raw:
        if key not in TOP_KEYS and not is_section(key):
            _unknown_key(str(path), key)
    for key, section in raw.items():
        if is_section(key) and section is not None and not isinstance(section, dict):
            raise ConfigError(f"{path}: '{key}' must be a mapping of its options (e.g. {key}.seed=3), got {section!r}")
    if "workdir" not in raw:
        raise ConfigError(f"{path}: missing 'workdir' (where stage outputs go)")
    return raw


def _unknown_key(where: str, key: str) -> None:
    import difflib

    guess = difflib.get_close_matches(kind(key), list(STAGES) + list(TOP_KEYS), n=1)
    hint = f" (did you mean '{guess[0]}'?)" if guess else ""
    raise ConfigError(f"{where}: unknown key '{key}'{hint}; expected workdir, stages or a stage name")


def stage_names(raw: dict[str, Any]) -> list[str]:
    """The pipeline's sections in run order: ``stages:`` if given, else in pipeline order (sections of
    the same stage, ``finetune@teacher`` and ``finetune``, in YAML order)."""
    sections = [k for k in raw if is_section(k)]
    if isinstance(raw.get("stages"), str):  # stages: ingest (or "ingest,normalize") is a list of one or more
        raw = {**raw, "stages": [s.strip() for s in raw["stages"].split(",") if s.strip()]}
    if raw.get("stages") is not None and not isinstance(raw["stages"], list):
        raise ConfigError(f"stages: expected a list of stage names, got {raw['stages']!r}")
    names = raw.get("stages") or _references_first(
        sorted(sections, key=lambda k: (PIPELINE_ORDER.index(kind(k)), sections.index(k))), raw)
    for name in names:
        if not is_section(name):
            raise ConfigError(f"stages: unknown stage '{name}'")
    return list(names)


def _references_first(names: list[str], raw: dict[str, Any]) -> list[str]:
    """``names`` with every section that another names in an input (``teacher: finetune@teacher``)
    moved just before the first section that reads it."""
    order = list(names)
    for _ in range(len(order) ** 2):  # a bound, not a fixpoint guess: each move fixes one pair
        pair = next(((i, order.index(ref)) for i, name in enumerate(order) for ref in _references(name, raw)
                     if ref in order and order.index(ref) > i), None)
        if pair is None:
            return order
        order.insert(pair[0], order.pop(pair[1]))
    raise ConfigError(f"pipeline sections read each other in a cycle: {', '.join(order)}")


def _references(name: str, raw: dict[str, Any]) -> list[str]:
    section = raw.get(name) or {}
    return [v for f in get(kind(name)).config.INPUTS if _is_reference(v := section.get(f))]


def _is_reference(value: Any) -> bool:
    """An input value naming a ``stage@tag`` section (plain stage names stay paths or Hub ids)."""
    return isinstance(value, str) and "@" in value and is_section(value)


def plan(raw: dict[str, Any], until: str | None = None) -> list[tuple[str, Any, Path]]:
    """Resolve the pipeline into ``[(stage, config, output), ...]`` in run order (up to ``until``).
    Every config is validated before anything runs, so a typo fails in seconds, not hours."""
    if not isinstance(raw.get("workdir"), str) or not raw["workdir"].strip():
        raise ConfigError(f"workdir: expected a folder path, got {raw.get('workdir')!r}")
    try:
        workdir = Path(raw["workdir"]).expanduser()
    except RuntimeError as exc:  # ~nosuchuser/x
        raise ConfigError(f"workdir: {raw['workdir']!r}: {exc}") from None
    names = stage_names(raw)
    if until:
        names = names[: names.index(until) + 1]
    outputs: dict[str, Path] = {}  # section -> output
    latest: dict[str, Path] = {}  # stage -> what wiring reads: its untagged section, else its latest tagged one
    steps = []
    for name in names:
        stage = get(kind(name))
        section = dict(raw.get(name) or {})
        for field in stage.config.INPUTS:  # `teacher: finetune@teacher` reads that section's output
            value = section.get(field)
            if _is_reference(value):
                if value not in outputs:
                    where = "runs after it (see stages:)" if value in names else "is not a section of this pipeline"
                    raise ConfigError(f"{name}.{field}: '{value}' {where}")
                section[field] = str(outputs[value])
        for field, upstream in stage.config.WIRING.items():
            # The first upstream stage the pipeline has (pretrain reads analyze, else normalize).
            # Without one the field stays as written (e.g. pretrain.tokenizer is unused when
            # continuing from a checkpoint); the stage itself says if it needs it.
            present = [u for u in ((upstream,) if isinstance(upstream, str) else upstream) if u in latest]
            if not section.get(field) and present:
                section[field] = str(latest[present[0]])
        cfg = from_dict(stage.config, section, prefix=name)
        _check_required(name, stage.config, cfg)
        output = outputs[name] = output_of(name, workdir)
        # a tagged section is a side run (evaluate@dev, finetune@teacher) that others read by name:
        # wiring keeps to the stage's own section (release must not publish the dev split's scores)
        if "@" not in name or kind(name) not in outputs:
            latest[kind(name)] = output
        steps.append((name, cfg, output))
    return steps


def _check_required(name: str, config: type, cfg: Any) -> None:
    for field in getattr(config, "REQUIRED", ()):
        if getattr(cfg, field) in (None, "", []):
            upstream = config.WIRING.get(field)
            upstream = (upstream,) if isinstance(upstream, str) else upstream or ()
            hint = f", or add a {' or '.join(upstream)} section for it to read" if upstream else ""
            raise ConfigError(f"{name}.{field}: required; set it{hint}")


def run_pipeline(path: str | Path, overrides: list[str] | None = None, force: list[str] | None = None,
                 only: list[str] | None = None, until: str | None = None, dry_run: bool = False) -> dict[str, Path]:
    from kopretrain.runs.registry import execute

    raw = load_pipeline(path, overrides)
    names = stage_names(raw)
    for stage in (only or []) + ([until] if until else []) + [s for s in (force or []) if s]:
        if stage not in names:
            raise ConfigError(f"stage '{stage}' is not in this pipeline ({', '.join(names)})")
    if only and until:  # both: the --only stages up to --until
        only = [s for s in only if names.index(s) <= names.index(until)]
        if not only:
            raise ConfigError(f"--only and --until {until}: none of the --only stages runs by {until}")
    if only:
        until = max(only, key=names.index)
    steps = plan(raw, until)
    missing = None
    if only:
        steps, missing = _only(steps, only, path)
        if missing and not dry_run:
            raise ConfigError(missing)
    if dry_run:
        if missing:
            print(f"will fail: {missing}")
        running: dict[str, str] = {}  # output path -> the stage that will (or may) write it
        for name, cfg, output in steps:
            forced = force is not None and (not force or name in force)
            state = _status(name, cfg, output, forced, _reads(cfg, running))
            if state.startswith("will"):
                running[str(output)] = name
            print(f"{name:<{_width(steps)}} -> {output}  ({state})")
        return {name: output for name, _, output in steps}
    results: dict[str, Path] = {}
    t0 = time.time()
    for name, cfg, output in steps:
        redo = force is not None and (not force or name in force)
        print(f"== {name} -> {output}", flush=True)
        results[name] = execute(kind(name), cfg, output, force=redo)
    print(f"\npipeline finished in {time.time() - t0:.1f}s; outputs:")
    for name, output in results.items():
        print(f"  {name:<{_width(steps)}} {output}")
    _print_highlights(results)
    return results


def _width(steps: list) -> int:
    """Column width for section names (``finetune@teacher`` is longer than any stage name)."""
    return max([10] + [len(name) for name, _, _ in steps])


def _only(steps: list, only: list[str], path: str | Path) -> tuple[list, str | None]:
    """The ``--only`` stages, and what is wrong if they read the output of a stage that ``--only``
    leaves out and that has not finished: without this check a selected stage fails deep inside a
    library with a bare "not found" for a path the user never typed."""
    from kopretrain.runs.records import read_stage

    left_out = {str(output): name for name, _, output in steps if name not in only}
    selected = [step for step in steps if step[0] in only]
    reads: dict[str, list[str]] = {}  # unfinished upstream stage -> "stage reads path" lines
    for name, cfg, _ in selected:
        for value in vars(cfg).values():
            upstream = left_out.get(value) if isinstance(value, str) else None
            if upstream and not (read_stage(value) or {}).get("complete"):
                reads.setdefault(upstream, []).append(f"{name} reads {value}")
    if not reads:
        return selected, None
    missing = [name for name in left_out.values() if name in reads]  # pipeline order
    return selected, (f"--only {','.join(only)}: {'; '.join(r for m in missing for r in reads[m])}: the output of "
                      f"{', '.join(missing)}, not finished; run `kopretrain run {path} --until {missing[-1]}` first "
                      f"or add {'it' if len(missing) == 1 else 'them'} to --only")


def _reads(cfg: Any, running: dict[str, str]) -> list[str]:
    """The stages in ``running`` whose output ``cfg`` reads (a field naming the path, or a list holding it)."""
    found = []
    for value in vars(cfg).values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str) and item in running and running[item] not in found:
                found.append(running[item])
    return found


def _status(name: str, cfg: Any, output: Path, forced: bool, upstream_runs: list[str]) -> str:
    """What ``kopretrain run`` would do with this stage, for ``--dry-run``."""
    if forced:
        return "will run: --force"
    if upstream_runs:  # a stage that reads none of them keeps its own status
        return f"will run if its inputs change: {', '.join(upstream_runs)} runs first"
    return get(kind(name)).status(cfg, output)


def _print_highlights(results: dict[str, Path]) -> None:
    """Point the reader at the files people open first."""
    picks = [("evaluate", "report.html"), ("evaluate", "report.md"), ("release", "README.md"),
             ("ingest", "README.md")]
    lines = [f"  {results[s] / f}" for s, f in picks if s in results and (results[s] / f).exists()]
    if lines:
        print("open these first:\n" + "\n".join(lines))
