"""What a pretraining run's ``stage.json`` says about training: steps, tokens, speed, DDP agreement."""

from __future__ import annotations

import hashlib


def train_summary(trainer, seconds: float) -> dict:
    """``seconds``: training wall time of the whole run, resumed attempts included."""
    logs = [r for r in trainer.state.log_history if "tokens_per_s" in r]
    tok = trainer.tokens
    return {
        "global_step": trainer.state.global_step, "epoch": trainer.state.epoch,
        "tokens_seen": trainer.state.num_input_tokens_seen,
        "pad_share": round(1 - tok["real"] / tok["padded"], 4) if tok["padded"] else None,
        "tokens_per_s": round(sum(r["tokens_per_s"] for r in logs) / len(logs), 1) if logs else None,
        "train_loss": trainer.mean_train_loss, "seconds": round(seconds, 3),
        "precision": "bf16" if trainer.args.bf16 else ("fp16" if trainer.args.fp16 else "fp32"),
        "world_size": trainer.args.world_size,
        "effective_batch": trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps
        * trainer.args.world_size,
    }


def cpu_total(args, seconds: float) -> float:
    """CPU seconds of training summed over ranks (on a shared machine, steadier than wall time)."""
    if args.world_size > 1:
        from accelerate.utils import gather_object

        seconds = sum(gather_object([seconds]))
    return round(seconds, 1)


def weights_sha256(module) -> str:
    """Hash of every parameter, in name order: equal on all DDP ranks after a correct run."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return h.hexdigest()


def ddp_record(args, module) -> dict | None:
    if args.world_size <= 1:
        return None
    from accelerate.utils import gather_object

    hashes = gather_object([weights_sha256(module)])
    return {"world_size": args.world_size, "backend": args.distributed_state.backend,
            "weights_sha256_per_rank": hashes, "ranks_agree": len(set(hashes)) == 1}
