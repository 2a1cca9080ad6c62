"""kill -9 (a real SIGKILL, in a subprocess) in the middle of a stage, then the same command again:
the final output and its records equal an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.pretrain import TINY, write_data_stage, write_tokenizer_dir

pytestmark = pytest.mark.kill

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def kopretrain(*args: str) -> list[str]:
    return [sys.executable, "-m", "kopretrain", *args]


def kill_when(cmd: list[str], ready, timeout: float = 120.0) -> None:
    """Start ``cmd``, SIGKILL it as soon as ``ready()`` is true; fail if it finished first."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"finished before it could be killed: {cmd}")
            if time.time() > deadline:
                pytest.fail(f"never reached the kill point: {cmd}")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()


def run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_label(tmp_path):
    from kopretrain.testing import tiny_classifier

    model = tiny_classifier(tmp_path / "model")
    src = tmp_path / "in.csv"
    src.write_text("id,text\n" + "".join(f"{i},리뷰 {i} {'정말 좋아요' if i % 3 else '별로'}\n" for i in range(3000)),
                   encoding="utf-8")
    args = ("label", "--model", str(model), "--input", str(src), "--chunk-size", "100", "--no-progress",
            "--precision", "fp32")
    run(kopretrain(*args, "-o", str(tmp_path / "straight.csv")))

    out = tmp_path / "out.csv"
    manifest = tmp_path / "out.csv.partial" / "manifest.json"

    def some_chunks_done() -> bool:
        try:
            return len(json.loads(manifest.read_text())["chunks"]) >= 3
        except (OSError, ValueError):
            return False

    kill_when(kopretrain(*args, "-o", str(out)), some_chunks_done)
    assert not out.exists()
    run(kopretrain(*args, "-o", str(out)))
    assert out.read_bytes() == (tmp_path / "straight.csv").read_bytes()
    record = json.loads((tmp_path / "out.csv.stage.json").read_text())
    straight = json.loads((tmp_path / "straight.csv.stage.json").read_text())
    assert record["resumed"] is True and record["counts"] == straight["counts"]
    assert record["stats"]["labels"] == straight["stats"]["labels"]


def test_pretrain(tmp_path):
    data, tok = write_data_stage(tmp_path / "data"), write_tokenizer_dir(tmp_path / "tok")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    args = ("pretrain", "--input", str(data), "--tokenizer", str(tok), "--objective", "mlm", *flags, "--max-steps",
            "16", "--save-steps", "4", "--eval-steps", "8", "--logging-steps", "5", "--batch-size", "8",
            "--max-length", "32", "--precision", "fp32", "--dropout", "0")
    run(kopretrain(*args, "-o", str(tmp_path / "straight")))
    checkpoints = tmp_path / "out.partial" / "checkpoints"

    def a_checkpoint_saved() -> bool:
        return checkpoints.is_dir() and any((p / "trainer_state.json").is_file() for p in checkpoints.iterdir())

    kill_when(kopretrain(*args, "-o", str(tmp_path / "out")), a_checkpoint_saved)
    run(kopretrain(*args, "-o", str(tmp_path / "out")))
    from safetensors.torch import load_file

    import torch

    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("straight", "out"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads((tmp_path / d / "stage.json").read_text()) for d in ("straight", "out")]
    assert records[1]["resumed"] and records[0]["stats"]["train"]["train_loss"] == records[1]["stats"]["train"]["train_loss"]

    def history(d: str) -> list:
        return [{k: v for k, v in h.items() if not k.endswith("runtime")}
                for h in json.loads((tmp_path / d / "metrics.json").read_text())["history"]]

    assert history("out") == history("straight")


def test_ingest(tmp_path):
    src = tmp_path / "big.csv"
    with open(src, "w", encoding="utf-8") as fh:
        fh.write("review_id,item_id,rating,review\n")
        for i in range(150_000):
            fh.write(f"{i},p{i % 997},{i % 5 + 1},리뷰 {i} 상품 {i % 997} {'최고' if i % 2 else '별로'}예요\n")
    args = ("ingest", "--input", str(src), "--label-scheme", "stars5", "--group-column", "item_id")
    run(kopretrain(*args, "-o", str(tmp_path / "straight")))
    partial = tmp_path / "out.partial"
    kill_when(kopretrain(*args, "-o", str(tmp_path / "out")),
              lambda: partial.is_dir() and any(partial.glob("*.parquet")))
    assert not (tmp_path / "out").exists()
    run(kopretrain(*args, "-o", str(tmp_path / "out")))
    for name in ("train.parquet", "dev.parquet", "test.parquet"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
    a, b = (json.loads((tmp_path / d / "stage.json").read_text()) for d in ("straight", "out"))
    assert a["counts"] == b["counts"] and b["resumed"]


def test_finetune(tmp_path):
    from tests.fixtures.sentiment import make_model, write_data

    write_data(tmp_path / "data")
    make_model(tmp_path / "pre", kind="bert")
    # 150 rows in batches of 16: 10 steps an epoch; the first checkpoint (step 15) is inside the
    # second epoch, whose length-grouped order must not depend on the RNG state the resume restores
    args = ("finetune", "--model", str(tmp_path / "pre"), "--data", str(tmp_path / "data"), "--max-steps", "60",
            "--eval-steps", "15", "--batch-size", "16", "--lr", "3e-3", "--precision", "fp32",
            "--early-stopping-patience", "0")
    run(kopretrain(*args, "-o", str(tmp_path / "straight")))
    checkpoints = tmp_path / "out.partial" / "checkpoints"
    kill_when(kopretrain(*args, "-o", str(tmp_path / "out")),
              lambda: checkpoints.is_dir() and any((p / "trainer_state.json").is_file() for p in checkpoints.iterdir()))
    run(kopretrain(*args, "-o", str(tmp_path / "out")))
    from safetensors.torch import load_file

    import torch

    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("straight", "out"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    dev = [json.loads((tmp_path / d / "dev_metrics.json").read_text()) for d in ("straight", "out")]
    strip = [[{k: v for k, v in h.items() if "runtime" not in k and "per_second" not in k} for h in m["history"]] for m in dev]
    assert strip[0] == strip[1] and dev[0]["selected_step"] == dev[1]["selected_step"]


@pytest.mark.parametrize("fresh", [False, True], ids=["training", "before-cleanup"])
def test_finetune_killed_in_a_restart_resumes_that_restart(tmp_path, fresh):
    """SIGKILL while the second attempt (seed 1042) of a stuck fine-tune trains: the rerun continues
    that attempt from its checkpoint, not the first seed, and ends as an uninterrupted run does.
    before-cleanup: attempt.json still says the attempt has not begun (a kill between a restart's
    record and the removal of the stuck seed's checkpoints): the rerun must not resume from the
    checkpoints in the folder, it starts the attempt afresh."""
    from tests.fixtures.sentiment import stuck_model, write_data

    write_data(tmp_path / "data")
    stuck_model(tmp_path / "pre")
    args = ("finetune", "--model", str(tmp_path / "pre"), "--data", str(tmp_path / "data"), "--max-steps", "40",
            "--eval-steps", "4", "--batch-size", "16", "--lr", "1e-9", "--precision", "fp32",
            "--early-stopping-patience", "0", "--restarts", "1", "--report-to", "none")
    run(kopretrain(*args, "-o", str(tmp_path / "straight")))
    partial = tmp_path / "out.partial"

    def second_attempt_checkpointed() -> bool:
        try:
            attempt = json.loads((partial / "attempt.json").read_text())
        except (OSError, ValueError):
            return False
        # past its own first two evaluations (steps 4, 8), where a rerun that forgot the attempt
        # could not recover by being judged stuck again
        return attempt["index"] == 1 and any((p / "trainer_state.json").is_file() and int(p.name.split("-")[1]) >= 12
                                             for p in (partial / "checkpoints").glob("checkpoint-*"))

    kill_when(kopretrain(*args, "-o", str(tmp_path / "out")), second_attempt_checkpointed)
    if fresh:
        record = json.loads((partial / "attempt.json").read_text())
        (partial / "attempt.json").write_text(json.dumps({**record, "fresh": True}))
    log = run(kopretrain(*args, "-o", str(tmp_path / "out")))
    assert ("[finetune] resuming from" in log) is not fresh, log[-2000:]
    from safetensors.torch import load_file

    import torch

    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("straight", "out"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads((tmp_path / d / "stage.json").read_text())["stats"] for d in ("straight", "out")]
    assert records[1]["seed_used"] == records[0]["seed_used"] == 1042
    strip = [[{k: v for k, v in r.items() if k != "minutes"} for r in rec["restarted"]] for rec in records]
    assert strip[0] == strip[1] and len(strip[0]) == 1
    dev = [json.loads((tmp_path / d / "dev_metrics.json").read_text()) for d in ("straight", "out")]
    history = [[{k: v for k, v in h.items() if "runtime" not in k and "per_second" not in k} for h in m["history"]]
               for m in dev]
    assert history[0] == history[1]


def test_finetune_self_trained(tmp_path):
    """Self-training (--teacher): killed after the teacher's labels are stored and a checkpoint is
    saved, the rerun reuses those labels (it does not score the pool again) and ends with the
    weights, pseudo-label choice and counts of an uninterrupted run."""
    from tests.fixtures.sentiment import make_model, write_data

    write_data(tmp_path / "data")
    make_model(tmp_path / "pre", kind="bert")
    make_model(tmp_path / "teacher", kind="bert", classifier=True, init_range=0.5)  # gives varied labels
    args = ("finetune", "--model", str(tmp_path / "pre"), "--data", str(tmp_path / "data"), "--max-steps", "40",
            "--eval-steps", "10", "--batch-size", "16", "--lr", "3e-3", "--precision", "fp32",
            "--early-stopping-patience", "0", "--report-to", "none", "--label-budget", "30",
            "--teacher", str(tmp_path / "teacher"), "--pseudo-pool", "90", "--pseudo-per-class", "20")
    run(kopretrain(*args, "-o", str(tmp_path / "straight")))
    partial = tmp_path / "out.partial"
    kill_when(kopretrain(*args, "-o", str(tmp_path / "out")),
              lambda: (partial / "pseudo_labels.parquet").is_file() and (partial / "checkpoints").is_dir()
              and any((p / "trainer_state.json").is_file() for p in (partial / "checkpoints").iterdir()))
    log = run(kopretrain(*args, "-o", str(tmp_path / "out")))
    assert "[finetune] resuming from" in log
    from safetensors.torch import load_file

    import torch

    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("straight", "out"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads((tmp_path / d / "stage.json").read_text()) for d in ("straight", "out")]
    pseudo = [r["stats"]["pseudo_labels"] for r in records]
    assert pseudo[1].pop("teacher_scoring") == "reused pseudo_labels.parquet" and pseudo[0].pop("teacher_scoring")
    assert pseudo[0] == pseudo[1] and pseudo[0]["rows"] > 0 and records[0]["counts"] == records[1]["counts"]
