from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional

import pytest

from kopretrain.runs.config import (
    ConfigError, add_arguments, deep_merge, field_docs, from_dict, namespace_to_dict, parse_set, to_dict,
)


@dataclass
class Inner:
    hidden_size: int = 32
    """Hidden size of the model."""


@dataclass
class Demo:
    INPUTS: ClassVar[tuple[str, ...]] = ("input",)
    input: str = ""
    """Input file."""
    scheme: Literal["nsmc", "stars5"] = "nsmc"
    """Label scheme preset."""
    rate: float = 0.15
    """Masking rate."""
    steps: int = 10
    """Number of steps."""
    flag: bool = False
    """A switch."""
    names: list[str] = field(default_factory=list)
    """Some names."""
    mapping: dict[str, str] = field(default_factory=dict)
    """A value mapping."""
    limit: Optional[int] = None
    """Optional limit."""
    model: Inner = field(default_factory=Inner)
    """Nested model options."""


def test_field_docs_become_help():
    docs = field_docs(Demo)
    assert docs["rate"] == "Masking rate."
    assert docs["model"] == "Nested model options."
    parser = argparse.ArgumentParser()
    add_arguments(parser, Demo)
    text = parser.format_help()
    assert "--label" not in text and "--scheme" in text and "Label scheme preset." in text
    assert "--model.hidden-size" in text and "Hidden size of the model." in text


def test_from_dict_coerces_and_nests():
    cfg = from_dict(Demo, {"steps": "5", "flag": "yes", "rate": 1, "names": "a,b", "model": {"hidden_size": 64}})
    assert cfg.steps == 5 and cfg.flag is True and cfg.rate == 1.0 and cfg.names == ["a", "b"]
    assert cfg.model.hidden_size == 64
    assert to_dict(cfg)["model"] == {"hidden_size": 64}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"sheme": "nsmc"}, "unknown key 'ingest.sheme' (did you mean 'ingest.scheme'?)"),
        ({"scheme": "stars10"}, "ingest.scheme: 'stars10' is not one of"),
        ({"steps": "ten"}, "ingest.steps: expected an integer"),
        ({"flag": "maybe"}, "ingest.flag: expected true/false"),
        ({"model": {"hiden_size": 3}}, "unknown key 'ingest.model.hiden_size'"),
        ({"mapping": [1]}, "ingest.mapping: expected a mapping"),
        ({"rate": "nan"}, "ingest.rate: expected a finite number"),
        ({"rate": float("inf")}, "ingest.rate: expected a finite number"),
        ({"rate": "-Infinity"}, "ingest.rate: expected a finite number"),
    ],
)
def test_bad_keys_and_values_name_the_key(data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(Demo, data, prefix="ingest")
    assert message in str(info.value)


def test_cli_namespace_and_set_overrides():
    parser = argparse.ArgumentParser()
    add_arguments(parser, Demo)
    ns = parser.parse_args(["--steps", "4", "--no-flag", "--mapping", '{"0": "negative"}', "--model.hidden-size", "8"])
    data = namespace_to_dict(ns, Demo)
    assert data == {"steps": "4", "flag": False, "mapping": {"0": "negative"}, "model": {"hidden_size": "8"}}
    assert from_dict(Demo, data).model.hidden_size == 8
    sets = parse_set(["ingest.steps=3", "ingest.model.hidden_size=16", "ingest.names=[a, b]"])
    assert sets == {"ingest": {"steps": 3, "model": {"hidden_size": 16}, "names": ["a", "b"]}}
    merged = deep_merge({"ingest": {"steps": 1, "flag": True}}, sets)
    assert merged["ingest"]["flag"] is True and merged["ingest"]["steps"] == 3
    with pytest.raises(ConfigError, match="STAGE.KEY=VALUE"):
        parse_set(["ingest..steps=3"])
    assert parse_set(["workdir=runs/x"]) == {"workdir": "runs/x"}


def test_yaml_reads_yes_no_and_leading_zeros_as_written():
    """YAML 1.2 scalars: PyYAML's 1.1 turned a label_map {yes: positive} into {"True": ...} (every
    row then unmapped) and the id 0123 into 83."""
    from kopretrain.runs.config import load_yaml, parse_set

    data = load_yaml("label_map: {yes: positive, no: negative}\nid: 0123\nn: 1_000\nflag: true\nk: 12\n", "t.yaml")
    assert data == {"label_map": {"yes": "positive", "no": "negative"}, "id": "0123", "n": "1_000", "flag": True,
                    "k": 12}
    assert parse_set(["ingest.name=no", "vocab.add_words=[yes, 010]"]) == {
        "ingest": {"name": "no"}, "vocab": {"add_words": ["yes", "010"]}}
