"""bf16 autocast vs fp32 for one training step on this CPU (what ``precision: auto`` decides).

    .venv/bin/python benchmarks/bench_precision.py                      # 2 threads, 4x256 and 2x128
    .venv/bin/python benchmarks/bench_precision.py --threads 1 --shapes 4x256

One step = forward + backward + fused AdamW of ``ElectraForPreTraining`` (the RTD discriminator,
vocab 16k) on a random B32 x L128 batch, the shape pretraining runs at after packing. fp32 and bf16
steps alternate in rounds and the best round of each is kept, so a burst of load from other jobs
hits both. Wall-clock seconds per step: run it on a quiet machine (check ``uptime``) — under load
the comparison flips, as an earlier run in BENCHMARKS.md showed.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default="4x256,2x128", help="layers x hidden, comma separated")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per round")
    args = ap.parse_args()

    import torch
    from transformers import ElectraConfig, ElectraForPreTraining

    from kopretrain.train.device import cpu_bf16_supported

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, "
          f"mkldnn bf16 {cpu_bf16_supported()}, {args.threads} thread(s), B{args.batch} x L{args.length}")
    for shape in args.shapes.split(","):
        layers, hidden = (int(x) for x in shape.split("x"))
        cfg = ElectraConfig(vocab_size=16000, embedding_size=min(128, hidden), hidden_size=hidden,
                            num_hidden_layers=layers, num_attention_heads=max(2, hidden // 64),
                            intermediate_size=4 * hidden)
        model = ElectraForPreTraining(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        ids = torch.randint(5, cfg.vocab_size, (args.batch, args.length))
        labels = torch.randint(0, 2, (args.batch, args.length)).float()

        def step(bf16: bool) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()

        best = {False: float("inf"), True: float("inf")}
        for _ in range(args.rounds):
            for bf16 in (False, True):
                step(bf16)  # warm-up: first autocast step builds the bf16 weight casts
                t = time.perf_counter()
                for _ in range(args.steps):
                    step(bf16)
                best[bf16] = min(best[bf16], (time.perf_counter() - t) / args.steps)
        tokens = args.batch * args.length
        for bf16 in (False, True):
            print(f"{shape:>6} {'bf16' if bf16 else 'fp32'}: {best[bf16]:.3f} s/step, {tokens / best[bf16]:,.0f} tokens/s")
        print(f"{shape:>6} bf16 / fp32 speed: {best[False] / best[True]:.2f}x")


if __name__ == "__main__":
    main()
