"""Output safety: -o never replaces what kopretrain did not write; one writer per output."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kopretrain.cli import main
from kopretrain.runs.outputs import OutputError, OutputLock


def tree_hash(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*")) if path.is_dir() else [path]:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


def ingest_args(src: Path, out: Path) -> list[str]:
    return ["ingest", "--input", str(src), "--label-scheme", "stars5", "--output", str(out)]


def test_output_onto_a_user_directory_is_refused_and_leaves_it_intact(sample_path, tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "reviews.csv").write_bytes(sample_path.read_bytes())
    before = tree_hash(raw)
    assert main(ingest_args(raw, raw)) == 2
    err = capsys.readouterr().err
    assert "kopretrain: error:" in err and "did not write" in err and "reviews.csv" in err
    assert tree_hash(raw) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no .partial, no .old left behind


def test_output_onto_a_file_is_refused_and_the_file_kept(sample_path, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert main(ingest_args(sample_path, target)) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert target.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("output", [".", "..", "./"])
def test_output_onto_the_working_directory_is_a_clear_error(sample_path, tmp_path, monkeypatch, capsys, output):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # empty: it would pass the user-folder check, then be replaced under the shell
    assert main(ingest_args(sample_path, Path(output))) == 2
    assert "name the folder to write" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and not any(work.iterdir())


def test_own_output_and_empty_directory_are_replaced(sample_path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert main(ingest_args(sample_path, out)) == 0
    assert (out / "stage.json").is_file()
    assert main(ingest_args(sample_path, out) + ["--force"]) == 0
    assert not [p for p in tmp_path.iterdir() if "replaced" in p.name or p.name.endswith(".old")]


def test_another_stages_output_is_refused_and_left_intact(sample_path, tmp_path, capsys):
    """-o onto another stage's output (release -o runs/x/ingest) deleted what it held."""
    ingest = tmp_path / "ingest"
    assert main(ingest_args(sample_path, ingest)) == 0
    before = tree_hash(ingest)
    assert main(["normalize", "--input", str(ingest), "--output", str(ingest)]) == 2  # also its input
    assert main(["normalize", "--input", str(ingest), "--output", str(tmp_path / "n")]) == 0
    assert main(["normalize", "--input", str(tmp_path / "n"), "--output", str(ingest)]) == 2
    err = capsys.readouterr().err
    assert "holds an ingest output" in err and "this normalize run" in err
    assert tree_hash(ingest) == before


def test_another_stages_unfinished_run_is_not_deleted(sample_path, tmp_path, capsys):
    """An interrupted stage's .partial (a finetune's checkpoints) was deleted by another stage's -o."""
    from kopretrain.runs.outputs import KEY_FILE

    ingest = tmp_path / "ingest"
    assert main(ingest_args(sample_path, ingest)) == 0
    partial = tmp_path / "ft.partial"
    (partial / "checkpoints").mkdir(parents=True)
    (partial / KEY_FILE).write_text("abc123\nfinetune\n")
    assert main(["normalize", "--input", str(ingest), "--output", str(tmp_path / "ft")]) == 2
    assert "holds an unfinished finetune run" in capsys.readouterr().err
    assert (partial / "checkpoints").is_dir()
    (partial / KEY_FILE).write_text("abc123")  # before the stage was recorded: replaced as it always was
    assert main(["normalize", "--input", str(ingest), "--output", str(tmp_path / "ft")]) == 0


def test_foreign_partial_directory_is_not_deleted(sample_path, tmp_path, capsys):
    partial = tmp_path / "out.partial"
    partial.mkdir()
    (partial / "thesis.tex").write_text("years of work")
    assert main(ingest_args(sample_path, tmp_path / "out")) == 2
    assert "not written by kopretrain" in capsys.readouterr().err
    assert (partial / "thesis.tex").read_text() == "years of work"


def test_second_writer_fails_at_once_naming_the_first(sample_path, tmp_path, capsys):
    out = tmp_path / "out"
    with OutputLock(out):
        assert main(ingest_args(sample_path, out)) == 2
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err and "another kopretrain run" in err
    assert not out.exists() and not Path(f"{out}.partial").exists()
    assert main(ingest_args(sample_path, out)) == 0  # released: the next run proceeds


def test_lock_dies_with_a_killed_process(tmp_path):
    out = tmp_path / "out"
    code = ("import sys, time; from pathlib import Path; from kopretrain.runs.outputs import OutputLock\n"
            f"l = OutputLock(Path({str(out)!r})).__enter__(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=f"pid {proc.pid}"):
            OutputLock(out).__enter__()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    with OutputLock(out):  # no stale lock after kill -9
        pass


def test_two_concurrent_ingests_one_fails_the_other_equals_a_single_run(sample_path, tmp_path):
    out, single = tmp_path / "race", tmp_path / "single"
    cmd = [sys.executable, "-m", "kopretrain", "ingest", "--input", str(sample_path), "--label-scheme", "stars5",
           "--group-column", "item_id"]
    procs = [subprocess.Popen(cmd + ["-o", str(out)], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    # Either they overlapped (one refused by the lock) or the second found the first finished (skipped).
    assert codes in ([0, 2], [0, 0]), results
    if codes == [0, 2]:
        assert any("another kopretrain run" in err for code, err in results if code == 2)
    assert subprocess.run(cmd + ["-o", str(single)], capture_output=True).returncode == 0
    for name in ("train.parquet", "dev.parquet", "test.parquet", "rejected.jsonl"):
        assert (out / name).read_bytes() == (single / name).read_bytes(), name


def test_label_refuses_a_foreign_file_and_a_directory(tmp_path, capsys):
    from kopretrain.testing import tiny_classifier

    model = tiny_classifier(tmp_path / "model")
    src = tmp_path / "in.csv"
    src.write_text("text\n좋아요\n", encoding="utf-8")
    mine = tmp_path / "labeled.csv"
    mine.write_text("precious\n")
    args = ["label", "--model", str(model), "--input", str(src), "--no-progress"]
    assert main(args + ["--output", str(mine)]) == 2
    assert "not written by kopretrain" in capsys.readouterr().err
    assert mine.read_text() == "precious\n"
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    assert main(args + ["--output", str(folder)]) == 2
    assert "is a directory" in capsys.readouterr().err
    out = tmp_path / "out.csv"
    assert main(args + ["--output", str(out)]) == 0
    assert main(args + ["--output", str(out), "--force"]) == 0  # its own output: replaced
