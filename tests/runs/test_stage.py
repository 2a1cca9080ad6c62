"""The stage contract: every registered stage declares a Stage whose config says its inputs and wiring."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from kopretrain.runs.registry import PIPELINE_ORDER, STAGES, get
from kopretrain.runs.stage import Stage, StageConfig


@pytest.mark.parametrize("name", list(STAGES))
def test_every_stage_declares_inputs_and_wiring_that_exist(name):
    stage = get(name)
    assert stage.name == name and issubclass(stage.config, StageConfig)
    fields = {f.name for f in dataclasses.fields(stage.config)}
    assert set(stage.config.INPUTS) <= fields
    assert set(stage.config.ADDED_FIELDS) <= fields
    for field, upstreams in stage.config.WIRING.items():
        for upstream in (upstreams,) if isinstance(upstreams, str) else upstreams:
            assert field in fields and upstream in STAGES
            assert PIPELINE_ORDER.index(upstream) < PIPELINE_ORDER.index(name)  # wiring only reads earlier stages


def test_a_stage_needs_exactly_one_way_to_run_and_a_stage_config():
    @dataclass
    class Cfg(StageConfig):
        input: str = ""

    with pytest.raises(TypeError, match="exactly one"):
        Stage("x", Cfg)
    with pytest.raises(TypeError, match="exactly one"):
        Stage("x", Cfg, run=lambda cfg, run: None, own_execute=lambda cfg, out, force: out)
    with pytest.raises(TypeError, match="must subclass StageConfig"):
        Stage("x", dataclass(type("Plain", (), {})), run=lambda cfg, run: None)


def test_status_and_execute_go_through_the_run_record(tmp_path):
    @dataclass
    class Cfg(StageConfig):
        k: int = 1

    finished = []
    stage = Stage("demo", Cfg, run=lambda cfg, run: (run.dir / "x.txt").write_text(str(cfg.k)),
                  finish=lambda cfg, path: finished.append(path))
    out = tmp_path / "out"
    assert stage.status(Cfg(), out) == "will run"
    assert stage.execute(Cfg(), out) == out and (out / "x.txt").read_text() == "1"
    assert stage.status(Cfg(), out) == "up to date" and stage.status(Cfg(k=2), out) == "will run"
    stage.execute(Cfg(), out)  # up to date: skipped, but finish still runs (release pushes then)
    assert finished == [out, out]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    assert stage.status(Cfg(), tmp_path / "mine").startswith("will fail: --output")
