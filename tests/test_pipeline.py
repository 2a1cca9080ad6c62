"""Pipelines: every shipped YAML validates against the code, and the quickstart runs end to end.

The end-to-end test runs every stage on the bundled sample with a model shrunk to test size
(2 layers, hidden 32, a few steps), then reruns to check that finished stages are skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kopretrain.runs.config import ConfigError
from kopretrain.pipeline import load_pipeline, plan, run_pipeline
from kopretrain.runs.records import read_stage

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = sorted((ROOT / "pipelines").glob("*.yaml"))

# Shrinks the quickstart to test size; every key must exist (a typo fails the test).
TINY = [
    "pretrain.hidden_size=32", "pretrain.num_layers=2", "pretrain.heads=2", "pretrain.intermediate_size=64",
    "pretrain.max_steps=6", "pretrain.eval_steps=3", "pretrain.save_steps=3", "pretrain.logging_steps=2",
    "pretrain.max_eval_texts=32", "pretrain.batch_size=8",
    "finetune.max_steps=6", "finetune.eval_steps=3", "finetune.batch_size=8",
    "vocab.vocab_size=2000", "vocab.report_texts=50",
]


@pytest.mark.parametrize("path", PIPELINES, ids=[p.name for p in PIPELINES])
def test_shipped_pipelines_validate(path, monkeypatch):
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert re.match(rf"# kopretrain run pipelines/{re.escape(path.name)}\b", first), (
        f"{path.name} must open with the command that runs it"
    )
    monkeypatch.chdir(ROOT)
    steps = plan(load_pipeline(path))
    assert [s[0] for s in steps][:2] == ["ingest", "normalize"]


def test_relative_inputs_resolve_next_to_the_yaml_from_any_folder(tmp_path, monkeypatch):
    """#15 item 3: a YAML's relative input paths point next to the YAML; workdir and --set values
    stay relative to where kopretrain runs; ~ expands; Hub ids are left alone."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "reviews.csv").write_text("review,rating\n좋아요,5\n", encoding="utf-8")
    (project / "pipelines").mkdir()
    yaml = project / "pipelines" / "p.yaml"
    yaml.write_text("workdir: out\ningest: {input: ../data/reviews.csv, label_scheme: stars5}\nnormalize: {}\n"
                    "pretrain: {init: checkpoint, checkpoint: some-org/ko-base, input: ~/corpus}\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    raw = load_pipeline(yaml)
    assert Path(raw["ingest"]["input"]).resolve() == (project / "data" / "reviews.csv").resolve()
    assert raw["pretrain"]["checkpoint"] == "some-org/ko-base"
    assert raw["pretrain"]["input"] == str(tmp_path / "home" / "corpus")
    steps = {name: output for name, _, output in plan(raw)}
    assert steps["ingest"] == Path("out") / "ingest"  # outputs: relative to where it runs
    # --set values are typed in the shell: relative to the current folder, not the YAML's
    raw = load_pipeline(yaml, ["ingest.input=mine.csv"])
    assert raw["ingest"]["input"] == "mine.csv"
    # the repository's own YAMLs still record tidy paths when run from the checkout
    monkeypatch.chdir(ROOT)
    assert load_pipeline("pipelines/quickstart.yaml")["ingest"]["input"] == "data/sample/reviews.csv"


def test_bundled_pipeline_runs_by_name_from_an_empty_folder(tmp_path, monkeypatch, capsys):
    """``kopretrain run quickstart`` after ``pip install``: the YAML, the sample and the data card
    are package data (kopretrain/bundled), found by name, with outputs under the current folder."""
    import tomllib

    from kopretrain.cli import main
    from kopretrain.pipeline import BUNDLED

    monkeypatch.chdir(tmp_path)
    assert main(["run", "quickstart", "--dry-run"]) == 0
    assert "runs/quickstart/ingest" in capsys.readouterr().out
    raw = load_pipeline("quickstart")
    for stage, field in (("ingest", "input"), ("label", "input"), ("release", "data_card")):
        assert Path(raw[stage][field]).is_file(), (stage, raw[stage][field])
    with pytest.raises(FileNotFoundError, match="bundled pipelines: kcelectra-continue, nsmc-1k-selftrain, nsmc-3class, nsmc-3class-scratch, quickstart"):
        load_pipeline("no-such-pipeline")
    # the files the wheel ships: pyproject's package-data globs must match them (a wheel build
    # copies what the globs match, through kopretrain/bundled's symlinks)
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["kopretrain"]
    shipped = {p.relative_to(ROOT / "kopretrain").as_posix() for g in globs for p in (ROOT / "kopretrain").glob(g)}
    for need in ("bundled/pipelines/quickstart.yaml", "bundled/data/sample/reviews.csv",
                 "bundled/data_cards/kopretrain-sample.md"):
        assert need in shipped
    assert BUNDLED.resolve() == (ROOT / "pipelines").resolve()


def test_pretrain_reads_analyze_else_normalize(tmp_path, monkeypatch):
    """A checkpoint continued without analyze/vocab stages: pretrain's input wires to normalize."""
    monkeypatch.chdir(ROOT)
    yaml = tmp_path / "p.yaml"
    yaml.write_text("workdir: out\ningest: {input: x.csv, label_scheme: stars5}\nnormalize: {}\n"
                    "pretrain: {init: checkpoint, checkpoint: some-org/ko-base}\n", encoding="utf-8")
    steps = {name: (cfg, out) for name, cfg, out in plan(load_pipeline(yaml))}
    assert "analyze" not in steps and steps["pretrain"][0].input == str(steps["normalize"][1])
    steps = {name: (cfg, out) for name, cfg, out in plan(load_pipeline("pipelines/quickstart.yaml"))}
    assert steps["pretrain"][0].input == str(steps["analyze"][1])


def test_wiring_keeps_to_the_untagged_section(tmp_path, monkeypatch):
    """An evaluate@dev written after evaluate became what release published (the dev split's scores)."""
    monkeypatch.chdir(ROOT)
    yaml = tmp_path / "p.yaml"
    yaml.write_text("workdir: out\ningest: {input: x.csv, label_scheme: stars5}\nnormalize: {}\n"
                    "finetune: {model: some-org/ko-base}\nfinetune@other: {model: some-org/ko-large}\n"
                    "evaluate: {}\nevaluate@dev: {split: dev}\nlabel: {input: r.csv}\nrelease: {}\n", encoding="utf-8")
    steps = {name: (cfg, out) for name, cfg, out in plan(load_pipeline(yaml))}
    finetune, evaluate = steps["finetune"][1], steps["evaluate"][1]
    assert steps["release"][0].evaluation == str(evaluate) and steps["release"][0].model == str(finetune)
    assert steps["evaluate@dev"][0].model == str(finetune) == steps["label"][0].model
    yaml.write_text("workdir: out\nfinetune@teacher: {model: m, data: d}\nevaluate: {data: d}\n", encoding="utf-8")
    steps = {name: (cfg, out) for name, cfg, out in plan(load_pipeline(yaml))}
    assert steps["evaluate"][0].model == str(steps["finetune@teacher"][1])  # no untagged one: the tagged one


@pytest.mark.parametrize("sections, message", [
    ("ingest: {input: x.csv}", "ingest.label_scheme: required; set it$"),
    ("ingest: {input: x.csv, label_scheme: stars5}\nevaluate: {baseline: true}",
     "evaluate.model: required; set it, or add a finetune section for it to read"),
    ("finetune: {data: d}", "finetune.model: required; set it, or add a pretrain section"),
    ("label: {model: m}", "label.input: required; set it$"),
])
def test_a_missing_required_option_fails_before_any_stage_runs(tmp_path, sections, message):
    """--dry-run said "will run" and the real run failed at that stage, after the ones before it ran."""
    yaml = tmp_path / "p.yaml"
    yaml.write_text(f"workdir: out\n{sections}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        plan(load_pipeline(yaml))


def test_unknown_keys_fail_with_the_key_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("workdir: x\ningest:\n  input: a.csv\n  label_scheme: nsmc\n  lable_column: y\n")
    with pytest.raises(ConfigError, match=r"ingest\.lable_column.*did you mean 'ingest\.label_column'"):
        plan(load_pipeline(bad))
    bad.write_text("workdir: x\ningets:\n  input: a.csv\n")
    with pytest.raises(ConfigError, match="unknown key 'ingets'.*did you mean 'ingest'"):
        load_pipeline(bad)
    with pytest.raises(ConfigError, match=r"finetune\.epochs: expected a number"):
        plan(load_pipeline(ROOT / "pipelines" / "quickstart.yaml", ["finetune.epochs=many"]))


def test_nested_values_are_validated_when_planning(tmp_path):
    """A bad masking rate fails while planning, before ingest..vocab have run (it used to pass
    validation and fail an hour later, inside pretrain)."""
    quick = ROOT / "pipelines" / "quickstart.yaml"
    with pytest.raises(ConfigError, match=r"pretrain\.masking: mlm_probability: must be in \(0, 1\)"):
        plan(load_pipeline(quick, ["pretrain.masking.mlm_probability=1.5"]))
    with pytest.raises(ConfigError, match=r"--masking\.mask_replace_prob.*mlm: 0\.95 \+ 0\.1"):
        plan(load_pipeline(quick, ["pretrain.objective=mlm", "pretrain.masking.mask_replace_prob=0.95"]))
    steps = {name: cfg for name, cfg, _ in plan(load_pipeline(quick, ["pretrain.masking.mlm_probability=0.2"]))}
    assert steps["pretrain"].masking.mlm_probability == 0.2
    with pytest.raises(ConfigError, match=r"--masking\.span-p: only with --objective span"):  # it did nothing
        plan(load_pipeline(quick, ["pretrain.masking.span_p=0.3"]))


def test_only_names_an_unfinished_upstream_stage(tmp_path, monkeypatch, capsys):
    """--only pretrain in an empty workdir must say which stage to run first, not fail inside
    transformers with "Repo id must be in the form ..." for the missing vocab dir."""
    monkeypatch.chdir(ROOT)
    pipeline = ROOT / "pipelines" / "quickstart.yaml"
    overrides = [f"workdir={tmp_path / 'empty'}"]
    with pytest.raises(ConfigError, match=r"--only pretrain: pretrain reads .*analyze; pretrain reads .*vocab: the "
                                          r"output of analyze, vocab, not finished; run `kopretrain run .* --until vocab`"):
        run_pipeline(pipeline, overrides=overrides, only=["pretrain"])
    assert not (tmp_path / "empty" / "pretrain").exists() and not (tmp_path / "empty" / "pretrain.partial").exists()
    run_pipeline(pipeline, overrides=overrides, only=["pretrain"], dry_run=True)
    out = capsys.readouterr().out
    assert "will fail: --only pretrain: pretrain reads" in out and "--until vocab" in out
    # a stage that --only keeps is not "missing": vocab runs first in the same run
    run_pipeline(pipeline, overrides=overrides, only=["vocab", "pretrain"], dry_run=True)
    out = capsys.readouterr().out
    assert "the output of analyze, not finished" in out and "--until analyze" in out


def test_quickstart_end_to_end_and_rerun_skips(tmp_path, monkeypatch, sample_path, capsys):
    monkeypatch.chdir(ROOT)
    overrides = TINY + [f"ingest.input={sample_path}", f"label.input={sample_path}"]
    pipeline = ROOT / "pipelines" / "quickstart.yaml"
    raw = load_pipeline(pipeline)
    workdir = tmp_path / "qs"
    overrides.append(f"workdir={workdir}")
    outputs = run_pipeline(pipeline, overrides=overrides)
    assert list(outputs) == [s for s in raw if s not in ("workdir", "description", "stages")]
    for stage, out in outputs.items():
        if out.is_file():  # label writes a file and its record beside it
            record = json.loads(out.with_name(out.name + ".stage.json").read_text())
        else:
            record = read_stage(out)
        assert record is not None and record["complete"], stage
        counts = record["counts"]
        if counts:
            assert counts["rows_in"] == counts["rows_out"] + sum(counts["rejected"].values()), stage
    # the data flows: ingest rows out == normalize rows in
    assert read_stage(outputs["ingest"])["counts"]["rows_out"] == read_stage(outputs["normalize"])["counts"]["rows_in"]
    metrics = json.loads((outputs["evaluate"] / "metrics.json").read_text())
    import pandas as pd

    scored = pd.read_parquet(outputs["evaluate"] / "predictions.parquet")
    test_rows = pd.read_parquet(outputs["normalize"] / "test.parquet")
    assert metrics["split"] == "test" and metrics["n"] == len(scored) == test_rows["label"].notna().sum() > 0
    assert metrics["model"]["accuracy"] == pytest.approx((scored["label"] == scored["pred"]).mean())
    assert read_stage(outputs["evaluate"])["stats"]["accuracy"] == metrics["model"]["accuracy"]
    assert metrics["baseline"]["accuracy"] == pytest.approx((scored["label"] == scored["baseline_pred"]).mean())
    assert (outputs["evaluate"] / "report.html").is_file()
    for stage in ("vocab", "pretrain", "finetune"):  # the rules travel with the model, not local paths
        normalize = json.loads((outputs[stage] / "kopretrain.json").read_text())["normalize"]
        assert normalize and not {"input", "batch_size", "num_workers"} & set(normalize), stage

    labeled = pd.read_parquet(outputs["label"])
    assert len(labeled) == 600 and {"label", "confidence", "needs_review"} <= set(labeled.columns)
    printed = capsys.readouterr().out
    assert "report.html" in printed

    # second run: everything is up to date and skipped
    run_pipeline(pipeline, overrides=overrides)
    assert printed.count("up to date") == 0
    assert capsys.readouterr().out.count("up to date") == len(outputs)

    # --dry-run says what a run would do, without doing it
    run_pipeline(pipeline, overrides=overrides, dry_run=True)
    states = {line.split()[0]: line.split("(", 1)[1] for line in capsys.readouterr().out.splitlines() if " -> " in line}
    assert states["ingest"] == states["evaluate"] == states["label"] == "up to date)"  # label: its record beside the file
    run_pipeline(pipeline, overrides=overrides + ["finetune.seed=7"], dry_run=True)
    states = {line.split()[0]: line.split("(", 1)[1] for line in capsys.readouterr().out.splitlines() if " -> " in line}
    assert states["pretrain"] == "up to date)" and states["finetune"] == "will run)"
    assert states["evaluate"] == states["label"] == "will run if its inputs change: finetune runs first)"
    # a stage that reads none of the stages that run keeps its own status (it said "will run if ...")
    run_pipeline(pipeline, overrides=overrides + ["evaluate.max_errors_shown=3"], dry_run=True)
    states = {line.split()[0]: line.split("(", 1)[1] for line in capsys.readouterr().out.splitlines() if " -> " in line}
    assert states["evaluate"] == "will run)" and states["label"] == "up to date)"
    assert read_stage(outputs["finetune"])["config"]["seed"] != 7  # nothing was run

    # --only on a finished workdir: nothing upstream is missing
    run_pipeline(pipeline, overrides=overrides, only=["finetune", "evaluate"], dry_run=True)
    out = capsys.readouterr().out
    assert "will fail" not in out and "finetune" in out

    # changing a finetune key reruns finetune and what depends on it, not the data stages
    run_pipeline(pipeline, overrides=overrides + ["finetune.seed=7"])
    out = capsys.readouterr().out
    for stage in ("ingest", "normalize", "analyze", "vocab", "pretrain"):
        assert f"[{stage}] up to date" in out
    assert "[finetune] up to date" not in out and "[evaluate] up to date" not in out
