"""Continue a checkpoint with unsupervised SimCSE on review texts: a screen, not a kopretrain stage
(BENCHMARKS.md "Soft targets", #13).

MLM and RTD continuation lowered fine-tuning on multilingual-e5-small-ko, a checkpoint trained
contrastively; SimCSE (Gao et al. 2021: each text twice through the encoder with dropout, the two
views of a text are each other's positive, the batch's other texts the negatives) is an objective
close to its own. The [CLS] vector is pooled, because that is what the fine-tuned classifier reads.
Linear warmup over the first 10% of the time budget, then linear decay to 0 at the deadline.

    python benchmarks/screen_simcse.py ../shared/models/multilingual-e5-small-ko runs/screen/data \\
        runs/screen/pre-simcse10 --minutes 10
    kopretrain finetune --model runs/screen/pre-simcse10 --data runs/screen/data --label-budget 1000 --seed 1 \
        --class-weight balanced --max-length 128 --epochs 5 --batch-size 16 --eval-steps 63 --lr 1e-4 \
        --dev-max-examples 2000 --early-stopping-patience 3 -o runs/screen/ft-simcse10-1k-s1
    kopretrain evaluate --model runs/screen/ft-simcse10-1k-s1 --data runs/screen/data --precision fp32 \
        -o runs/screen/ev-simcse10-1k-s1

The output is a plain save_pretrained directory (safetensors) with the checkpoint's tokenizer.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    import numpy as np
    import pandas as pd
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("data", help="a data stage output: its train.parquet text column is the corpus")
    p.add_argument("output")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--pool", choices=["cls", "mean"], default="cls")
    p.add_argument("--lr", type=float, default=3e-5, help="SimCSE's rate for BERT-base, unsupervised")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    torch.manual_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.checkpoint)
    model = AutoModel.from_pretrained(a.checkpoint, add_pooling_layer=False, use_safetensors=True).train()
    texts = pd.read_parquet(f"{a.data}/train.parquet", columns=["text"])["text"] \
        .sample(frac=1.0, random_state=a.seed).tolist()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    budget, t0, step, i, losses = a.minutes * 60, time.time(), 0, 0, []
    while (elapsed := time.time() - t0) < budget:
        frac = elapsed / budget
        for group in opt.param_groups:
            group["lr"] = a.lr * (frac / 0.1 if frac < 0.1 else (1 - frac) / 0.9)
        if i + a.batch_size > len(texts):
            i = 0
        batch = texts[i:i + a.batch_size]
        i += a.batch_size
        enc = tok(batch, truncation=True, max_length=a.max_length, padding=True, return_tensors="pt")
        twice = {k: torch.cat([v, v]) for k, v in enc.items()}  # two dropout masks, one forward pass
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = model(**twice).last_hidden_state
        if a.pool == "cls":
            z = hidden[:, 0].float()
        else:
            mask = twice["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            z = ((hidden * mask).sum(1) / mask.sum(1)).float()
        z1, z2 = z[:len(batch)], z[len(batch):]
        sim = F.cosine_similarity(z1.unsqueeze(1), z2.unsqueeze(0), dim=-1) / a.temperature
        loss = F.cross_entropy(sim, torch.arange(len(batch)))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        step += 1
        losses.append(loss.item())
        if step % 20 == 0:
            print(f"step {step} loss {np.mean(losses[-20:]):.4f} {elapsed:.0f}s", flush=True)
    model.save_pretrained(a.output)
    tok.save_pretrained(a.output)
    print(f"done: {step} steps, {step * a.batch_size} texts, {time.time() - t0:.0f}s, "
          f"final loss {np.mean(losses[-20:]):.4f}")


if __name__ == "__main__":
    main()
