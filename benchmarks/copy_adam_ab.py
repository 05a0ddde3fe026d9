"""CopyAdam against plain fused Adam for the CPU bf16 discriminator, interleaved in one process.

Each round builds, for each side in turn, a paper-sized discriminator from the same seed, trains
one warm-up epoch and times a second one over the same 20,000 random sequences (batch 64), then
drops it: one model alive at a time, and drifts in the host's speed hit both sides alike. One side
uses `discriminator_optimizer(..., compile=True)` (CopyAdam: the highway weight through a bf16
copy, one compiled Adam pass), the other plain fused Adam (autocast casts). Prints each timed
epoch's seconds and the medians' ratio.

Run: python3 benchmarks/copy_adam_ab.py [ROUNDS]
"""

import gc
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
    dis = cfg.discriminator
    tokens = torch.randint(0, cfg.data.vocab_size, (20_000, cfg.data.seq_len))
    times = {"plain Adam": [], "CopyAdam": []}
    for _ in range(rounds):
        for name, epochs in times.items():
            torch.manual_seed(0)
            d = build_discriminator(cfg)
            d.compute_dtype = torch.bfloat16
            opt = (discriminator_optimizer(d, dis.lr, cpu, compile=True) if name == "CopyAdam"
                   else adam(d.parameters(), dis.lr, cpu))
            assert type(opt).__name__ == name.removeprefix("plain ")
            for timed in (False, True):
                start = time.perf_counter()
                discriminator_epochs(d, opt, tokens[:10_000], tokens[10_000:], 1, dis.batch_size, dis.l2_reg)
                if timed:
                    epochs.append(time.perf_counter() - start)
            del d, opt
            gc.collect()
    for name, epochs in times.items():
        print(f"{name:10s} epoch s: {' '.join(f'{t:.2f}' for t in epochs)}  median {statistics.median(epochs):.2f}")
    ratio = statistics.median(times["CopyAdam"]) / statistics.median(times["plain Adam"])
    print(f"CopyAdam / plain Adam (medians): {ratio:.3f}")


if __name__ == "__main__":
    arg = sys.argv[1] if len(sys.argv) > 1 else "5"
    if not arg.isdigit() or int(arg) < 1:
        sys.exit(f"copy_adam_ab.py: error: ROUNDS must be a whole number >= 1, got {arg!r}")
    main(int(arg))
