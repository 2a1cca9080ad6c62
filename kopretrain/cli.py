"""``kopretrain <stage> [--flags] --output DIR`` and ``kopretrain run PIPELINE.yaml``.

The stage flags are generated from the stage's config dataclass, so ``--help`` shows the same
names and docs as the pipeline YAMLs. Only the requested stage's module is imported.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kopretrain import __version__
from kopretrain.runs.config import ConfigError, add_arguments, from_dict, namespace_to_dict
from kopretrain.runs.registry import STAGES


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kopretrain",
        description="Adapt Korean language models to noisy user text and turn them into sentiment labelers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="stages:\n" + "\n".join(f"  {name:<10} {summary}" for name, (_, summary) in STAGES.items())
        + "\n  run        run a pipeline YAML, or a bundled one by name (quickstart, nsmc-3class, ...)\n\n"
        "`kopretrain STAGE --help` lists a stage's options.",
    )
    parser.add_argument("--version", action="version", version=f"kopretrain {__version__}")
    parser.add_argument("command", nargs="?", help="a stage name or 'run'")
    return parser


def _stage_parser(name: str, cfg_cls: type, summary: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"kopretrain {name}", description=summary)
    add_arguments(parser, cfg_cls)
    parser.add_argument("--output", "-o", dest="_output", required=True, metavar="PATH",
                        help="where the stage writes its output (written atomically)")
    parser.add_argument("--force", dest="_force", action="store_true",
                        help="redo the stage even if an identical finished output exists")
    parser.add_argument("--config", dest="_config", metavar="YAML",
                        help="read options from a YAML mapping first (flags override it)")
    return parser


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kopretrain run", description="Run a pipeline YAML end to end.")
    parser.add_argument("pipeline", help="a pipeline YAML, or a bundled pipeline's name (quickstart, nsmc-3class, ...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="override any key, e.g. --set finetune.epochs=3 (repeatable)")
    parser.add_argument("--force", nargs="*", metavar="STAGE", default=None,
                        help="redo these stages (all when no stage is named; spaces or commas) even if up to date")
    parser.add_argument("--only", nargs="+", metavar="STAGE", help="run only these stages (spaces or commas)")
    parser.add_argument("--until", metavar="STAGE", help="stop after this stage")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the resolved plan only")
    return parser


def _stage_list(names: list[str] | None, flag: str = "--only") -> list[str] | None:
    """``--only finetune evaluate`` and ``--only finetune,evaluate`` mean the same. An empty list
    (``--only "$STAGES"`` with the variable unset) is an error: it would mean every stage."""
    if names is None or not names:  # absent, or a bare --force (every stage, as its help says)
        return names
    found = [n for name in names for n in name.split(",") if n.strip()]
    if not found:
        raise ConfigError(f"{flag}: no stage named (an empty value would mean every stage; name them, "
                          "e.g. finetune,evaluate)")
    return found


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "--version"):
        _top_parser().parse_args(argv or ["--help"])
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "run":
            from kopretrain.pipeline import run_pipeline

            args = _run_parser().parse_args(rest)
            run_pipeline(args.pipeline, overrides=args.overrides, force=_stage_list(args.force, "--force"),
                         only=_stage_list(args.only),
                         until=args.until, dry_run=args.dry_run)
            return 0
        if command not in STAGES:
            _top_parser().error(f"unknown command '{command}' (stages: {', '.join(STAGES)}, run)")
        return _run_stage(command, rest)
    except ConfigError as exc:
        print(f"kopretrain: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kopretrain: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - turn input errors into one clear line; bugs keep their traceback
        from kopretrain.runs.records import input_error

        message = input_error(exc)
        if message is None or os.environ.get("KOPRETRAIN_DEBUG"):
            raise
        print(f"kopretrain: error: {message}", file=sys.stderr)
        return 2


def _run_stage(name: str, argv: list[str]) -> int:
    from kopretrain.runs import registry

    stage = registry.get(name)
    cfg_cls = stage.config
    parser = _stage_parser(name, cfg_cls, STAGES[name][1])
    ns = parser.parse_args(argv)
    data: dict = {}
    if ns._config:
        from kopretrain.runs.config import load_yaml

        data = load_yaml(Path(ns._config).expanduser().read_text(encoding="utf-8"), ns._config) or {}
    from kopretrain.runs.config import deep_merge

    data = deep_merge(data, namespace_to_dict(ns, cfg_cls))
    cfg = from_dict(cfg_cls, data, prefix=name)
    out = stage.execute(cfg, Path(ns._output).expanduser(), force=ns._force)
    print(f"[{name}] output: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
