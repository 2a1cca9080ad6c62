from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest

from kopretrain.runs.stage import StageConfig
from kopretrain.runs.chain import upstream
from kopretrain.runs.records import StageError, StageRun, fingerprint_path, read_stage


@dataclass
class Cfg(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("input",)
    input: str = ""
    """Input."""
    k: int = 1
    """Knob."""


def _run(tmp_path, cfg, out, fail_after_write=False, force=False):
    with StageRun("demo", cfg, out, force=force, log=lambda *a: None) as run:
        if run.done:
            return run
        (run.dir / "data.txt").write_text("x")
        run.reject("empty_text", file="in.txt", line=3)
        if fail_after_write:
            raise RuntimeError("killed")
        run.set_counts(rows_in=5, rows_out=4)
    return run


def test_atomic_output_record_and_skip(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hello")
    out = tmp_path / "out"
    run = _run(tmp_path, Cfg(input=str(src)), out)
    record = read_stage(out)
    assert record["complete"] and record["counts"] == {"rows_in": 5, "rows_out": 4, "rejected": {"empty_text": 1}}
    assert record["inputs"]["input"].startswith("sha256:")
    from importlib import metadata
    import platform

    versions = record["versions"]
    assert versions["python"] == platform.python_version()
    assert versions["torch"] == metadata.version("torch") and versions["numpy"] == metadata.version("numpy")
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert rejected == [{"reason": "empty_text", "file": "in.txt", "line": 3}]
    assert not (tmp_path / "out.partial").exists()
    # unchanged config and input: skipped
    assert _run(tmp_path, Cfg(input=str(src)), out).done
    # force redoes; changed input or config invalidates
    assert not _run(tmp_path, Cfg(input=str(src)), out, force=True).done
    src.write_text("changed")
    assert not _run(tmp_path, Cfg(input=str(src)), out).done
    assert not _run(tmp_path, Cfg(input=str(src), k=2), out).done


def test_interrupted_stage_never_counts_as_done_and_resumes(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        _run(tmp_path, Cfg(), out, fail_after_write=True)
    assert not out.exists() and (tmp_path / "out.partial" / "data.txt").exists()
    with StageRun("demo", Cfg(), out, log=lambda *a: None) as run:
        assert run.resumed and (run.dir / "data.txt").exists()
        run.set_counts(1, 1)
    assert read_stage(out)["resumed"] is True
    # a different config does not resume from someone else's partial output
    with pytest.raises(RuntimeError):
        _run(tmp_path, Cfg(k=7), tmp_path / "b", fail_after_write=True)
    with StageRun("demo", Cfg(k=8), tmp_path / "b", log=lambda *a: None) as run:
        assert not run.resumed and not (run.dir / "data.txt").exists()
        run.set_counts(0, 0)


def test_counts_must_add_up(tmp_path):
    with pytest.raises(StageError, match="does not add up"):
        with StageRun("demo", Cfg(), tmp_path / "o", log=lambda *a: None) as run:
            run.set_counts(rows_in=3, rows_out=1, rejected={"too_short": 1})
    assert not (tmp_path / "o").exists()


def test_fingerprints_chain_through_stage_outputs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with StageRun("normalize", Cfg(), a, log=lambda *x: None) as run:
        run.set_counts(0, 0)
    assert fingerprint_path(a) == f"stage:{read_stage(a)['fingerprint']}:{read_stage(a)['content'][:16]}"
    with StageRun("vocab", Cfg(input=str(a)), b, log=lambda *x: None) as run:
        run.set_counts(0, 0)
    assert upstream(b, "normalize")["fingerprint"] == read_stage(a)["fingerprint"]
    assert upstream(b, "ingest") is None
    assert fingerprint_path("beomi/KcELECTRA-base") == "name:beomi/KcELECTRA-base"
    assert fingerprint_path(tmp_path) .startswith("dir:")


def _write(out, text, force=False, cfg=None):
    with StageRun("demo", cfg or Cfg(), out, force=force, log=lambda *a: None) as run:
        if not run.done:
            (run.dir / "vocab.txt").write_text(text)
            run.set_counts(0, 0)
    return run


def test_a_forced_rerun_that_writes_other_bytes_makes_readers_stale(tmp_path):
    """--force of a non-deterministic stage (WordPiece vocab, training): same config, other output,
    so every stage that read it must rerun; a byte-identical rerun leaves them up to date."""
    up, down = tmp_path / "vocab", tmp_path / "pretrain"
    _write(up, "a b c")
    assert _write(down, "m", cfg=Cfg(input=str(up))) and read_stage(down)["complete"]
    assert _write(down, "m", cfg=Cfg(input=str(up))).done
    _write(up, "a b c", force=True)  # deterministic: the same bytes again
    assert _write(down, "m", cfg=Cfg(input=str(up))).done
    _write(up, "a c b", force=True)  # same config, other vocabulary
    assert read_stage(up)["fingerprint"] == StageRun("demo", Cfg(), up, log=lambda *a: None).fingerprint
    assert not _write(down, "m", cfg=Cfg(input=str(up))).done


def test_a_record_without_a_content_digest_keeps_its_old_key(tmp_path):
    """Outputs finished by an earlier version (no ``content``) are still up to date downstream."""
    up, down = tmp_path / "vocab", tmp_path / "pretrain"
    _write(up, "a b c")
    record = read_stage(up)
    del record["content"]
    (up / "stage.json").write_text(json.dumps(record))
    assert fingerprint_path(up) == "stage:" + record["fingerprint"]


@dataclass
class CfgV2(Cfg):  # Cfg plus an option added in a later version
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ("new_knob",)
    new_knob: int = 0


def test_an_option_added_later_keeps_finished_outputs_valid_until_it_is_set(tmp_path):
    (tmp_path / "in.txt").write_text("data")
    inp = str(tmp_path / "in.txt")
    old = StageRun("demo", Cfg(input=inp), tmp_path / "o", log=lambda *a: None).fingerprint
    assert StageRun("demo", CfgV2(input=inp), tmp_path / "o", log=lambda *a: None).fingerprint == old
    assert StageRun("demo", CfgV2(input=inp, new_knob=2), tmp_path / "o", log=lambda *a: None).fingerprint != old
    # the stage record still shows the option, default or not
    assert StageRun("demo", CfgV2(input=inp), tmp_path / "o", log=lambda *a: None).config["new_knob"] == 0


@dataclass
class CfgV3(Cfg):  # Cfg plus an input added in a later version (finetune's teacher)
    INPUTS: ClassVar[tuple[str, ...]] = ("input", "extra_input")
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ("extra_input",)
    extra_input: str = ""


def test_an_input_added_later_keeps_finished_outputs_valid_until_it_is_given(tmp_path):
    (tmp_path / "in.txt").write_text("data")
    (tmp_path / "teacher.txt").write_text("t")
    inp = str(tmp_path / "in.txt")
    old = StageRun("demo", Cfg(input=inp), tmp_path / "o", log=lambda *a: None).fingerprint
    assert StageRun("demo", CfgV3(input=inp), tmp_path / "o", log=lambda *a: None).fingerprint == old
    given = StageRun("demo", CfgV3(input=inp, extra_input=str(tmp_path / "teacher.txt")), tmp_path / "o",
                     log=lambda *a: None)
    assert given.fingerprint != old and given.inputs["extra_input"].startswith("sha256:")


@dataclass
class CfgFast(Cfg):  # Cfg plus a thread count that never changes the output
    SPEED_FIELDS: ClassVar[tuple[str, ...]] = ("workers",)
    workers: int = 0


def test_speed_settings_rerun_nothing_and_older_outputs_stay_valid(tmp_path):
    (tmp_path / "in.txt").write_text("data")
    inp, out = str(tmp_path / "in.txt"), tmp_path / "o"
    assert not _run(tmp_path, CfgFast(input=inp, workers=2), out).done
    assert _run(tmp_path, CfgFast(input=inp, workers=8), out).done  # a thread count is not a new output
    assert not _run(tmp_path, CfgFast(input=inp, workers=8, k=2), out).done  # a real option still is
    # an output finished while speed fields were hashed (earlier versions) is still up to date
    from kopretrain.runs.config import to_dict
    from kopretrain.runs.records import stage_fingerprint

    cfg = CfgFast(input=inp, workers=8, k=2)
    record = json.loads((out / "stage.json").read_text())
    record["fingerprint"] = stage_fingerprint("demo", to_dict(cfg), record["inputs"])
    (out / "stage.json").write_text(json.dumps(record))
    assert _run(tmp_path, cfg, out).done


def test_the_same_input_named_from_another_folder_is_up_to_date(tmp_path, monkeypatch):
    """A pipeline run from another folder spells a relative input differently: same content, same output."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("data")
    out = tmp_path / "o"
    monkeypatch.chdir(tmp_path)
    assert not _run(tmp_path, Cfg(input="data/in.txt"), out).done
    monkeypatch.chdir(tmp_path / "data")
    assert _run(tmp_path, Cfg(input="in.txt"), out).done
    (tmp_path / "data" / "in.txt").write_text("changed")
    assert not _run(tmp_path, Cfg(input="in.txt"), out).done


def test_ancestors_are_found_after_the_workdir_moves(tmp_path, monkeypatch):
    """A record keeps its inputs' paths as written; after `mv workdir` (or a relative workdir run
    from another folder) the chain must still reach them, or vocab trained without its normalize
    rules, silently."""
    monkeypatch.chdir(tmp_path)
    with StageRun("normalize", Cfg(), "w/normalize", log=lambda *x: None) as run:
        run.set_counts(0, 0)
    with StageRun("vocab", Cfg(input="w/normalize"), "w/vocab", log=lambda *x: None) as run:
        run.set_counts(0, 0)
    (tmp_path / "w").rename(tmp_path / "moved")
    assert upstream(tmp_path / "moved" / "vocab", "normalize")["stage"] == "normalize"
    # a folder of that name whose record is another run's is not taken for it
    with StageRun("normalize", Cfg(k=5), "w/normalize", log=lambda *x: None) as run:
        run.set_counts(0, 0)
    assert upstream(tmp_path / "moved" / "vocab", "normalize")["config"]["k"] == 1
    # gone: required says so instead of returning nothing
    import shutil

    shutil.rmtree(tmp_path / "moved" / "normalize")
    shutil.rmtree(tmp_path / "w")
    assert upstream(tmp_path / "moved" / "vocab", "normalize") is None
    with pytest.raises(StageError, match="was made from w/normalize, which is no longer there"):
        upstream(tmp_path / "moved" / "vocab", "normalize", required=True)


def test_an_interrupted_forced_rerun_resumes_under_force(tmp_path):
    out = tmp_path / "out"
    _run(tmp_path, Cfg(), out)
    with pytest.raises(RuntimeError):
        _run(tmp_path, Cfg(), out, fail_after_write=True, force=True)
    logs = []
    with StageRun("demo", Cfg(), out, log=logs.append) as run:  # without --force: up to date, and says so
        assert run.done
    assert any("unfinished forced rerun" in line for line in logs)
    with StageRun("demo", Cfg(), out, force=True, log=lambda *a: None) as run:
        assert run.resumed and (run.dir / "data.txt").exists()  # it used to start over
        run.set_counts(0, 0)


def test_a_byte_identical_rerun_keeps_the_key_its_older_readers_have(tmp_path):
    """An output finished before content digests existed is known downstream as "stage:<fp>"; a
    forced rerun that writes the same bytes keeps that key (nothing downstream reruns), one that
    writes other bytes gets the digest key."""
    up = tmp_path / "vocab"
    _write(up, "a b c")
    record = read_stage(up)
    del record["content"]
    (up / "stage.json").write_text(json.dumps(record))
    old_key = fingerprint_path(up)
    _write(up, "a b c", force=True)
    assert read_stage(up)["legacy_key"] and fingerprint_path(up) == old_key
    _write(up, "a b c", force=True)  # still the same bytes: still the old key
    assert fingerprint_path(up) == old_key
    _write(up, "a c b", force=True)
    assert fingerprint_path(up) != old_key and "legacy_key" not in read_stage(up)


def test_git_commit_is_the_checkouts(tmp_path):
    """It looked for .git one folder too deep (kopretrain/), so every stage.json said null."""
    import re
    import subprocess
    from pathlib import Path

    from kopretrain.runs.records import git_commit

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert re.fullmatch("[0-9a-f]{40}", git_commit() or "") and git_commit() == head


def test_a_field_the_others_make_irrelevant_reruns_nothing(tmp_path):
    """finetune --epochs changed while --max-steps decided the length: it retrained."""
    from kopretrain.finetune import FinetuneConfig
    from kopretrain.runs.fingerprints import fingerprint_config
    from kopretrain.runs.config import to_dict

    def key(**kw):
        cfg = FinetuneConfig(model="m", data="d", **kw)
        return fingerprint_config(cfg, to_dict(cfg))

    assert key(max_steps=12, epochs=3) == key(max_steps=12, epochs=5)
    assert key(max_steps=0, epochs=3) != key(max_steps=0, epochs=5)  # epochs decide then
    old = FinetuneConfig(model="m", data="d", max_steps=12, epochs=5)
    assert "epochs" in fingerprint_config(old, to_dict(old), unkeyed=False)  # how outputs before were keyed


def test_outputs_keyed_before_a_field_became_unkeyed_stay_up_to_date(tmp_path, monkeypatch):
    src = tmp_path / "in.txt"
    src.write_text("hello")
    out = tmp_path / "out"
    _run(tmp_path, Cfg(input=str(src), k=2), out)  # k keyed: how the version before did it
    monkeypatch.setattr(Cfg, "unkeyed", lambda self: ("k",))
    assert _run(tmp_path, Cfg(input=str(src), k=2), out).done
    assert _run(tmp_path, Cfg(input=str(src), k=3), out).done  # k no longer matters
