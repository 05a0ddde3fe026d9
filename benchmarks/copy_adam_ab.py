"""CopyAdam against plain fused Adam for the CPU bf16 discriminator, interleaved in one process.

Two paper-sized discriminators with the same initial weights, one trained with
`discriminator_optimizer(..., compile=True)` (CopyAdam: the highway weight through a bf16 copy,
one compiled Adam pass) and one with plain fused Adam (autocast casts), alternate whole training
epochs over the same 20,000 random sequences (batch 64), so drifts in the host's speed hit both
alike. Prints each epoch's seconds and the medians' ratio.

Run: python3 benchmarks/copy_adam_ab.py [ROUNDS]
"""

import statistics
import sys
import time

import torch

from seqgan.config import Config
from seqgan.train import (adam, build_discriminator, discriminator_epochs, discriminator_optimizer, flush_denormals,
                          keep_freed_memory)


def main(rounds: int) -> None:
    keep_freed_memory()
    cpu = torch.device("cpu")
    flush_denormals(cpu)
    cfg = Config()
    tokens = torch.randint(0, cfg.data.vocab_size, (20_000, cfg.data.seq_len))
    sides = {}
    for name in ("plain Adam", "CopyAdam"):
        torch.manual_seed(0)
        d = build_discriminator(cfg)
        d.compute_dtype = torch.bfloat16
        opt = discriminator_optimizer(d, cfg.discriminator.lr, cpu, compile=True) if name == "CopyAdam" else \
            adam(d.parameters(), cfg.discriminator.lr, cpu)
        assert type(opt).__name__ == name.replace("plain ", "")
        sides[name] = (d, opt, [])
    def epoch(d, opt):
        discriminator_epochs(d, opt, tokens[:10_000], tokens[10_000:], 1, cfg.discriminator.batch_size,
                             cfg.discriminator.l2_reg)
    for d, opt, _ in sides.values():
        epoch(d, opt)  # warm-up
    for _ in range(rounds):
        for d, opt, times in sides.values():
            start = time.perf_counter()
            epoch(d, opt)
            times.append(time.perf_counter() - start)
    for name, (_, _, times) in sides.items():
        print(f"{name:10s} epoch s: {' '.join(f'{t:.2f}' for t in times)}  median {statistics.median(times):.2f}")
    plain, copy = (statistics.median(sides[k][2]) for k in ("plain Adam", "CopyAdam"))
    print(f"CopyAdam / plain Adam (medians): {copy / plain:.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
