"""The floor under `seqgan bench discriminator` on CPU.

A training epoch at batch 64 over 20,000 sequences is 313 Adam steps over the paper
discriminator's 7.0M parameters, and each step reads and writes every parameter and both moment
buffers whatever the model's arithmetic costs. This times those 313 fused Adam steps alone (random
gradients, best of 3) and sets them against the time in which the whole epoch would have to run to
reach 50 % of the matmul peak measured in the same run.

Run: python3 benchmarks/adam_floor.py
"""

import time

import torch

from seqgan.bench import _Setup, discriminator_flops, matmul_peak_gflops
from seqgan.train import adam, keep_freed_memory


def main() -> None:
    keep_freed_memory()
    discriminator = _Setup("cpu", 0, 256).discriminator
    optimizer = adam(discriminator.parameters(), 1e-4, torch.device("cpu"))
    for p in discriminator.parameters():
        p.grad = torch.randn_like(p)
    for _ in range(5):
        optimizer.step()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(313):
            optimizer.step()
        best = min(best, time.perf_counter() - start)
    params = sum(p.numel() for p in discriminator.parameters())
    flops = 3 * discriminator_flops(discriminator) * 20_000
    peak = max(matmul_peak_gflops(torch.device("cpu")).values())
    print(f"parameters {params}; 313 fused Adam steps (one epoch of batch-64 steps): {best:.3f} s; "
          f"epoch FLOPs {flops / 1e12:.3f} TFLOP; peak {peak:.0f} GFLOP/s; 50% of peak needs the whole epoch "
          f"in {flops / (0.5 * peak * 1e9):.3f} s")


if __name__ == "__main__":
    main()
