"""The CLI: instant help (no heavy imports), generated stage flags, clear errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from kopretrain.cli import main
from kopretrain.runs.registry import STAGES

HEAVY = ("torch", "transformers", "datasets", "pandas", "pyarrow", "kiwipiepy", "sklearn", "matplotlib")
PRESENT = [name for name, (mod, _) in STAGES.items() if importlib.util.find_spec(mod) is not None]


def test_top_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in STAGES:
        assert name in out
    assert "run" in out


@pytest.mark.parametrize("stage", PRESENT)
def test_stage_help_imports_nothing_heavy(stage):
    """`kopretrain STAGE --help` must stay instant: stage modules import heavy libraries lazily."""
    code = (
        "import sys, contextlib, io\n"
        "from kopretrain.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as buf:\n"
        "    try:\n"
        f"        main([{stage!r}, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "import json; print(json.dumps({'heavy': heavy, 'help': buf.getvalue()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], f"{stage} --help imported {result['heavy']}"
    assert "--output" in result["help"]


def test_unknown_stage_and_bad_flag_values(capsys):
    with pytest.raises(SystemExit):
        main(["injest"])
    assert "unknown command 'injest'" in capsys.readouterr().err


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "kopretrain", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "kopretrain" in out.stdout


@pytest.mark.parametrize("only", [["finetune,evaluate"], ["finetune", "evaluate"]])
def test_run_only_takes_spaces_or_commas(only, capsys):
    assert main(["run", "pipelines/quickstart.yaml", "--only", *only, "--dry-run"]) == 0
    planned = [line.split()[0] for line in capsys.readouterr().out.splitlines() if "->" in line]
    assert planned == ["finetune", "evaluate"]


def test_run_only_and_until_together_run_the_only_stages_up_to_until(capsys):
    assert main(["run", "pipelines/quickstart.yaml", "--only", "vocab,finetune,evaluate", "--until", "finetune",
                 "--dry-run"]) == 0
    planned = [line.split()[0] for line in capsys.readouterr().out.splitlines() if "->" in line]
    assert planned == ["vocab", "finetune"]  # --until used to be ignored: evaluate ran too
    assert main(["run", "pipelines/quickstart.yaml", "--only", "evaluate", "--until", "vocab", "--dry-run"]) == 2
    assert "none of the --only stages runs by vocab" in capsys.readouterr().err


@pytest.mark.parametrize("sets, message", [
    (["finetune@teachr.seed=2"], "'finetune@teachr' is not a section of"),  # it used to add a fine-tune
    (["workdir=x", "workdir.x=1"], "workdir was set to a value before, not a section"),
    (["pretrain=3", "pretrain.lr=2"], "pretrain was set to a value before, not a section"),
    (["workdir=~nosuchuser_kop/x"], "workdir: '~nosuchuser_kop/x'"),
    (["stages=7"], "stages: expected a list of stage names"),
])
def test_bad_set_values_are_one_line_config_errors(sets, message, capsys):
    args = [a for s in sets for a in ("--set", s)]
    assert main(["run", "pipelines/quickstart.yaml", *args, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_stages_given_as_one_string(capsys):
    assert main(["run", "pipelines/quickstart.yaml", "--set", "stages=ingest,normalize", "--dry-run"]) == 0
    planned = [line.split()[0] for line in capsys.readouterr().out.splitlines() if "->" in line]
    assert planned == ["ingest", "normalize"]  # it was read one letter at a time


def test_empty_stage_lists_and_workdir_are_errors(tmp_path, capsys):
    """--only "$S" with S unset must not run every stage; a workdir of null/no must not write ./None."""
    import yaml

    from kopretrain.cli import main

    pipe = tmp_path / "p.yaml"
    pipe.write_text(yaml.safe_dump({"workdir": str(tmp_path / "w"), "ingest": {"input": "x.csv"}}))
    for flag in (["--only", ""], ["--force", ","]):
        assert main(["run", str(pipe), *flag, "--dry-run"]) == 2
        assert "no stage named" in capsys.readouterr().err
    for bad in ("workdir=", "workdir=null", "workdir.x=1"):
        assert main(["run", str(pipe), "--set", bad, "--dry-run"]) == 2
        assert "workdir: expected a folder path" in capsys.readouterr().err
    assert not (tmp_path / "None").exists()
