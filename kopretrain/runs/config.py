"""Typed stage configs: one dataclass per stage, the docstring under each field is its help.

The same class is the CLI (``kopretrain ingest --label-scheme nsmc``), the YAML section
(``ingest: {label_scheme: nsmc}``) and the ``--set ingest.label_scheme=nsmc`` override, so the
three can never drift apart. Unknown or mistyped keys fail with the full dotted key and a
suggestion. Only the standard library is imported here: ``kopretrain --help`` must stay instant.

Why not jsonargparse (which does most of this from the same dataclasses): it was weighed for the
2026-12 restructuring and kept out for three reasons users see. (1) Errors: a typo here says
``unknown key 'ingest.lable_column' (did you mean 'ingest.label_column'?)`` with the YAML path, and a
bad value names the flag; jsonargparse reports a validation tree without a suggestion. (2) Start-up:
this module imports only the standard library, so ``kopretrain --help`` and every stage's help stay
instant; jsonargparse pulls in its typing machinery and docstring parsers. (3) One schema, three
surfaces: field docstrings become ``--help``, ``--set stage.key=value`` overrides and nested YAML
sections (``pretrain.masking``) with no extra annotations. It is ~260 lines; should it grow much
beyond that, switching is the better trade.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import functools
import inspect
import json
import math
import os
import re
import textwrap
import types
import typing
from typing import Any, get_args, get_origin


class ConfigError(ValueError):
    """A config key or value that does not fit the stage's config class."""


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Map field name -> the string literal written under it (litgpt/jsonargparse style)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML/CLI value to the declared type, or raise ConfigError naming ``key``."""
    tp, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key}: null is not allowed (expected {_type_name(tp)})")
    origin = get_origin(tp)
    if origin is typing.Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if tp is float:
        return _finite(value, key)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v] if value else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp, *_) = get_args(tp) or (Any,)
        items = [coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        _, val_tp = get_args(tp) or (Any, Any)
        return {str(k): coerce(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=key)
    return value


def _finite(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if not math.isfinite(number):  # nan/inf parse as floats; a nan learning rate trains silently on nothing
        raise ConfigError(f"{key}: expected a finite number, got {value!r} (0 switches a limit off where allowed)")
    return number


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build ``cls`` from a mapping; unknown keys and bad values raise ConfigError with the dotted key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {data!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            guess = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix + '.' if prefix else ''}{guess[0]}'?)" if guess else ""
            raise ConfigError(f"unknown key '{dotted}'{hint}; valid keys: {', '.join(names)}")
        kwargs[key] = coerce(value, hints[key], dotted)
        if key in getattr(cls, "INPUTS", ()) and isinstance(kwargs[key], str) and kwargs[key].startswith("~"):
            kwargs[key] = os.path.expanduser(kwargs[key])  # ~/reviews.csv from a YAML or a quoted flag
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from exc


def to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of a config (for stage.json and fingerprints)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML safely (plain data only: a ``!!python/object`` tag is an error, not code) and
    refuse duplicate keys, which PyYAML would otherwise resolve silently to the last one."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    # YAML 1.2 scalars, not PyYAML's 1.1: yes/no/on/off stay strings (a label_map {yes: positive}
    # became {"True": ...}), 0123 stays "0123" (an id, not octal 83), 1_000 stays a string.
    bool_tag, int_tag = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int"
    StrictLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (bool_tag, int_tag)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    StrictLoader.add_implicit_resolver(bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
    StrictLoader.add_implicit_resolver(int_tag, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"),
                                       list("-+0123456789"))

    def mapping(loader, node, deep=False):
        keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
        dup = next((i for i, k in enumerate(keys) if k in keys[:i]), None)
        if dup is not None:  # the line of the second one (the mapping's own line named the wrong key)
            first, second = node.value[keys.index(keys[dup])][0].start_mark, node.value[dup][0].start_mark
            raise ConfigError(f"{source}: key {keys[dup]!r} appears twice in one mapping (lines {first.line + 1} "
                              f"and {second.line + 1}); keep one")
        return loader.construct_mapping(node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None


def parse_set(assignments: list[str]) -> dict[str, Any]:
    """``["ingest.seed=3", "pretrain.model.hidden=64"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected STAGE.KEY=VALUE")
        dotted, raw = item.split("=", 1)
        parts = dotted.strip().split(".")
        if not all(parts):
            raise ConfigError(f"--set {item!r}: expected STAGE.KEY=VALUE (or workdir=DIR)")
        node = out
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # workdir=X then workdir.x=1
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[:i + 1])} was set to a value before, not a section")
        node[parts[-1]] = load_yaml(raw, f"--set {item}") if raw.strip() else ""
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# ---------------------------------------------------------------- argparse bridge


def add_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """One ``--flag`` per field (nested dataclasses become ``--model.hidden-size``)."""
    docs = field_docs(cls)
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, _ = _strip_optional(hints[f.name])
        dest = f"{prefix}{f.name}"
        flag = "--" + dest.replace("_", "-")
        if dataclasses.is_dataclass(tp):
            add_arguments(parser, tp, prefix=f"{dest}.")
            continue
        default = _default_of(f)
        help_text = docs.get(f.name, "")
        shown = "" if default in (None, "", [], {}) else f" [default: {_show(default)}]"
        origin = get_origin(tp)
        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": (help_text + shown).replace("%", "%%")}
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if origin is typing.Literal:
            kwargs["choices"] = list(get_args(tp))
        elif origin in (list, tuple, dict):
            kwargs["metavar"] = "JSON|A,B" if origin is not dict else "JSON"
        else:
            kwargs["metavar"] = _type_name(tp).upper()
        parser.add_argument(flag, **kwargs)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        return None if dataclasses.is_dataclass(value) else value
    return None


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


def namespace_to_dict(ns: argparse.Namespace, cls: type) -> dict[str, Any]:
    """Only the flags the user gave, as a nested dict (JSON strings decoded for dict/list fields)."""
    out: dict[str, Any] = {}
    for dest, value in vars(ns).items():
        if dest.startswith("_"):
            continue
        parts = dest.split(".")
        tp = _field_type(cls, parts)
        if tp is None:
            continue
        if isinstance(value, str) and get_origin(tp) in (list, dict, tuple) and value[:1] in "[{":
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--{dest.replace('_', '-')}: invalid JSON: {exc}") from None
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _field_type(cls: type, parts: list[str]) -> Any:
    tp: Any = cls
    for part in parts:
        tp, _ = _strip_optional(tp)
        if not dataclasses.is_dataclass(tp):
            return None
        hints = _hints(tp)
        if part not in hints:
            return None
        tp = hints[part]
    return _strip_optional(tp)[0]
