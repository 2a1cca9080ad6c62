"""The same `kopretrain pretrain` command under torchrun: 2 CPU processes (gloo), ranks must agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.fixtures.pretrain import TINY, write_data_stage, write_tokenizer_dir


def test_two_cpu_ranks_train_the_same_model(tmp_path):
    data, tok = write_data_stage(tmp_path / "data"), write_tokenizer_dir(tmp_path / "tok")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "kopretrain", "pretrain", "--input", str(data), "--tokenizer", str(tok), "--objective", "rtd",
           *flags, "--max-steps", "3", "--eval-steps", "100", "--save-steps", "100", "--batch-size", "8",
           "--max-length", "32", "--precision", "fp32", "-o", str(tmp_path / "out")]
    # One thread per rank: two ranks on two cores; more threads only spin against each other.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "stage.json").read_text())
    ddp, train = record["stats"]["ddp"], record["stats"]["train"]
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo"
    hashes = ddp["weights_sha256_per_rank"]
    assert len(hashes) == 2 and hashes[0] == hashes[1] and ddp["ranks_agree"]
    assert train["global_step"] == 3 and train["world_size"] == 2 and train["effective_batch"] == 16
    # Each step consumed a batch per rank: tokens seen are counted over both ranks.
    assert train["tokens_seen"] > 0.9 * 2 * 3 * 8 * 32
    assert (tmp_path / "out" / "generator" / "model.safetensors").is_file()
    assert not (tmp_path / "out.partial").exists()
