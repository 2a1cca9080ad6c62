"""The transformers ``Trainer`` pieces the pretrain stage adds: evaluation, logs, progress.

- :class:`PretrainTrainer` trains the wrapper modules of :mod:`kopretrain.train.objectives` /
  :mod:`kopretrain.train.rtd`, which are ``PreTrainedModel`` s: the Trainer's own checkpointing
  saves and resumes them (the stage exports the plain models at the end). Its ``evaluate`` sums masked-token cross-entropy over the whole eval set (perplexity =
  exp(sum CE / masked tokens), not a mean of batch means) and, for RTD, collects the
  discriminator scores for ROC AUC.
- it counts real and padded tokens per step, so logs carry the pad share and effective
  (non-pad) tokens/s measured over training time only (evaluation and checkpoint writes excluded).
- :class:`JsonlLogger` appends every log to ``logs.jsonl``; :class:`Progress` is the Trainer's progress
  bar with tokens/s; :class:`BucketBatchSampler` feeds length-bucketed batches and reshuffles per epoch.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from transformers import ProgressCallback, Trainer, TrainerCallback

from kopretrain.train.budget import BudgetedScheduler
from kopretrain.train.checkpoints import StopsWhenFinished
from kopretrain.train.rates import GroupedRates

SUM_KEYS = ("ce_sum", "n_masked", "n_correct", "disc_bce_sum", "n_tokens", "disc_correct", "n_replaced")
TALLY_FILE = "loss_tally.json"


class PretrainTrainer(StopsWhenFinished, GroupedRates, BudgetedScheduler, Trainer):
    def __init__(self, *args, eval_seed: int = 0, eval_collator=None, bucket: tuple | None = None,
                 budget=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.budget = budget
        self.eval_seed = eval_seed
        self.eval_collator = eval_collator
        self.bucket = bucket  # (lengths, batch_size, seed) for length-bucketed batches
        self.tokens = {"real": 0, "padded": 0}       # this process, the whole run (a resumed one restores it)
        self.loss_tally = [0.0, 0]                   # sum and count of batch losses, saved with checkpoints
        self.clock_before = {"seconds": 0.0, "cpu_seconds": 0.0}  # training time of the run it resumes
        self._clock0 = (time.perf_counter(), time.process_time())
        self._interval = {"real": 0, "t": time.perf_counter(), "excluded": 0.0}
        self._parts: dict[str, list[float]] = defaultdict(list)

    @property
    def eval_history(self) -> list[dict[str, Any]]:
        """Every evaluation so far, from the Trainer's log history: a resumed run gets the evaluations
        of the run it continues back from the checkpoint, so its record equals an uninterrupted run's."""
        return [{"step": h["step"], **{k: v for k, v in h.items() if k.startswith("eval_")}}
                for h in self.state.log_history if any(k.startswith("eval_") for k in h)]

    # ------------------------------------------------------------------ data
    def get_train_dataloader(self):
        if self.bucket is None:
            return super().get_train_dataloader()
        from torch.utils.data import DataLoader

        lengths, batch_size, seed = self.bucket
        loader = DataLoader(self.train_dataset, batch_sampler=BucketBatchSampler(lengths, batch_size, seed),
                            collate_fn=self.data_collator, num_workers=self.args.dataloader_num_workers)
        return self.accelerator.prepare(loader)

    def get_eval_dataloader(self, eval_dataset=None):
        """Every rank evaluates the whole (small, pre-masked) eval set with the padding-only collator.

        Sharding it would make accelerate pad the last batches with repeated rows, so summed
        metrics would depend on the number of processes; a full pass on each rank is exact."""
        from torch.utils.data import DataLoader

        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        return DataLoader(dataset, batch_size=self.args.eval_batch_size, shuffle=False,
                          collate_fn=self.eval_collator or self.data_collator)

    # ------------------------------------------------------------------ training step
    def save_model(self, *args, **kwargs):
        from kopretrain.hub.loading import quiet_progress

        with quiet_progress():  # no "Writing model shards" bar at every checkpoint
            super().save_model(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if model.training:
            real, total = int(inputs["attention_mask"].sum()), inputs["attention_mask"].numel()
            self.tokens["real"] += real
            self.tokens["padded"] += total
            self._interval["real"] += real
            for key in ("gen_loss", "disc_loss"):
                if key in outputs:
                    self._parts[key].append(float(outputs[key]))
            self.loss_tally[0] += float(outputs["loss"].detach())
            self.loss_tally[1] += 1
        return (outputs["loss"], outputs) if return_outputs else outputs["loss"]

    @property
    def mean_train_loss(self) -> float | None:
        """Mean loss over every training batch of the run, a resumed run's included (the Trainer's
        own ``training_loss`` covers only the batches of the current process)."""
        total, n = self.loss_tally
        return total / n if n else None

    def restore_tally(self, checkpoint: str | None) -> None:
        path = Path(checkpoint) / TALLY_FILE if checkpoint else None
        if path is not None and path.is_file():
            saved = json.loads(path.read_text())
            self.loss_tally = saved["loss_tally"]
            self.tokens = saved.get("tokens", self.tokens)  # older checkpoints: this session's only
            self.clock_before = saved.get("clock", self.clock_before)

    def train(self, *args, **kwargs):
        self._clock0 = (time.perf_counter(), time.process_time())
        return super().train(*args, **kwargs)

    def clock(self) -> dict[str, float]:
        """Wall and CPU seconds of training so far, a resumed run's earlier attempts included (the
        Trainer's train_runtime covers only this process)."""
        return {"seconds": self.clock_before["seconds"] + time.perf_counter() - self._clock0[0],
                "cpu_seconds": self.clock_before["cpu_seconds"] + time.process_time() - self._clock0[1]}

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log (not eval, not the final summary)
            now = time.perf_counter()
            elapsed = now - self._interval["t"] - self._interval["excluded"]
            world = self.args.world_size
            if elapsed > 0:
                # Every rank processes about as many tokens; report the job's rate.
                logs["tokens_per_s"] = round(self._interval["real"] * world / elapsed, 1)
            if self.tokens["padded"]:
                logs["pad_share"] = round(1 - self.tokens["real"] / self.tokens["padded"], 4)
            for key, values in self._parts.items():
                logs[key] = sum(values) / len(values)
            self._parts.clear()
            self._interval = {"real": 0, "t": now, "excluded": 0.0}
        super().log(logs, start_time)

    def checkpoint_extras(self) -> dict:
        # written before trainer_state.json (CheckpointExtras): a resumed run's train_loss then
        # covers every batch, not only its own
        return {**super().checkpoint_extras(),
                TALLY_FILE: {"loss_tally": self.loss_tally, "tokens": dict(self.tokens), "clock": self.clock()}}

    def _save_checkpoint(self, model, trial):
        t0 = time.perf_counter()
        super()._save_checkpoint(model, trial)
        self._interval["excluded"] += time.perf_counter() - t0

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Exact corpus-level metrics on the pre-masked eval set (same masks every time)."""
        t0 = time.perf_counter()
        model = self.model
        was_training = model.training
        model.eval()
        if hasattr(model, "sample_generator"):  # RTD: identical replacements at every evaluation
            model.sample_generator = torch.Generator(device=self.args.device).manual_seed(self.eval_seed)
        sums = defaultdict(float)
        scores, truth = [], []
        with torch.no_grad(), self.autocast_smart_context_manager():
            for batch in self.get_eval_dataloader(eval_dataset):
                out = model(**self._prepare_inputs(batch))
                for key in SUM_KEYS:
                    if key in out:
                        sums[key] += float(out[key])
                if "disc_scores" in out:
                    scores.append(out["disc_scores"].float().cpu())
                    truth.append(out["disc_truth"].cpu())
        if hasattr(model, "sample_generator"):
            model.sample_generator = None
        model.train(was_training)
        if "disc_bce_sum" in sums:
            metrics = rtd_metrics(sums, torch.cat(scores).numpy(), torch.cat(truth).numpy(), model.rtd_weight)
        else:
            metrics = mlm_metrics(sums)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in metrics.items()}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.perf_counter() - t0, 3)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        self._interval["excluded"] += time.perf_counter() - t0
        return metrics


def mlm_metrics(sums: dict[str, float]) -> dict[str, float]:
    n = max(sums.get("n_masked", 0.0), 1.0)
    loss = sums.get("ce_sum", 0.0) / n
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
            "mlm_accuracy": sums.get("n_correct", 0.0) / n, "masked_tokens": int(sums.get("n_masked", 0))}


def rtd_metrics(sums: dict[str, float], scores, truth, rtd_weight: float) -> dict[str, float]:
    """Generator MLM loss/accuracy and discriminator loss/accuracy/ROC AUC over non-pad tokens."""
    gen = mlm_metrics(sums)
    n_tok = max(sums.get("n_tokens", 0.0), 1.0)
    disc_loss = sums.get("disc_bce_sum", 0.0) / n_tok
    out = {
        "loss": gen["loss"] + rtd_weight * disc_loss,
        "gen_loss": gen["loss"], "gen_perplexity": gen["perplexity"], "gen_accuracy": gen["mlm_accuracy"],
        "disc_loss": disc_loss, "disc_accuracy": sums.get("disc_correct", 0.0) / n_tok,
        "replaced_share": sums.get("n_replaced", 0.0) / n_tok, "masked_tokens": gen["masked_tokens"],
    }
    if len(truth) and 0 < truth.sum() < len(truth):
        from sklearn.metrics import roc_auc_score

        out["disc_auc"] = float(roc_auc_score(truth, scores))
    return out


class JsonlLogger(TrainerCallback):
    """One JSON object per Trainer log (train, eval, summary) in ``path``, appended across resumes.

    A resumed run first drops the lines logged after its checkpoint (the killed run got further than
    the checkpoint it resumes from), so no step appears twice."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or not self.path.is_file() or state.global_step == 0:
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        keep = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= state.global_step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
        os.replace(tmp, self.path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time(), 3), **logs}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False, default=float) + "\n")


class Progress(ProgressCallback):
    """The Trainer's own progress bar (its lifecycle, its step counting), showing the last loss and
    effective tokens/s as a postfix and one line per evaluation instead of every log dict."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        bar = self.training_bar
        if not state.is_world_process_zero or bar is None or not logs:
            return
        if "loss" in logs:
            post = {"loss": f"{logs['loss']:.3f}"}
            if "tokens_per_s" in logs:
                post["tok/s"] = f"{logs['tokens_per_s']:,.0f}"
            bar.set_postfix(post, refresh=False)
        elif any(k.startswith("eval_") for k in logs):
            shown = {k[5:]: round(v, 4) for k, v in logs.items()
                     if k.startswith("eval_") and k[5:] in ("perplexity", "gen_accuracy", "disc_accuracy", "disc_auc")}
            bar.write(f"step {state.global_step}: eval {shown}")


class ContentSeededCollator:
    """Masks as a pure function of ``(seed, batch content)``: the masking RNG is re-seeded per batch.

    A collator with its own running RNG cannot be put back where it was after a resume (the
    Trainer restores torch/numpy RNG states, not the collator's), and DataLoader workers each
    hold a copy of it. Seeding from the batch's token ids makes a resumed run mask exactly as the
    uninterrupted one, with any number of workers or ranks. Batches differ between epochs
    (shuffled), so their masks do too."""

    def __init__(self, collator, seed: int):
        self.collator, self.seed = collator, seed

    def __call__(self, features):
        import hashlib

        import numpy as np

        h = hashlib.blake2b(str(self.seed).encode(), digest_size=8)
        for f in features:
            h.update(np.asarray(f["input_ids"], dtype=np.int32).tobytes())
        self.collator.generator = torch.Generator().manual_seed(int.from_bytes(h.digest(), "little") >> 1)
        return self.collator(features)


class BucketBatchSampler(torch.utils.data.BatchSampler):
    """Length-bucketed batches from :func:`kopretrain.train.packing.bucket_batches`, new order each epoch.

    The order is a pure function of ``(seed, epoch)``, which is what lets the Trainer skip to the
    exact batch after a resume (``set_epoch`` is called by the Trainer before iterating)."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, mega: int = 50):
        self.lengths, self.batch_size, self.seed, self.mega = list(lengths), batch_size, seed, mega
        self.drop_last = False
        self.epoch = 0
        self._len = len(self._batches())

    def _batches(self) -> list[list[int]]:
        from kopretrain.train import packing

        return [list(b) for b in packing.bucket_batches(self.lengths, self.batch_size, self.seed + self.epoch,
                                                        mega=self.mega)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        yield from self._batches()

    def __len__(self) -> int:
        return self._len
