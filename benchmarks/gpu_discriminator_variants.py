"""Time variants of the discriminator's CUDA training step at the paper's sizes (batch 64).

    python benchmarks/gpu_discriminator_variants.py

Per variant: the step captured as a CUDA graph (`GraphedDiscriminatorStep`), timed as the median
of 5 runs of 100 bare replays (GPU-bound time per step), then one full epoch over 20,000
sequences through `discriminator_epochs` (adds the per-batch host work). Variants: banks of
consecutive widths grouped 5 / 10 / 1 per matmul, with and without torch.compile of the loss
(`run.compile`, captured inside our graph). Kernels per step come from the profiler.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from seqgan.discriminator import Discriminator
from seqgan.train import GraphedDiscriminatorStep, adam, discriminator_epochs

DEV = torch.device("cuda")


def per_step_ms(step: GraphedDiscriminatorStep, replays: int = 100) -> float:
    times = []
    for _ in range(5):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(replays):
            step.graph.replay()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / replays * 1e3)
    return statistics.median(times)


def kernels_per_step(step: GraphedDiscriminatorStep) -> int | str:
    from torch.profiler import ProfilerActivity, profile
    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                step.graph.replay()
            torch.cuda.synchronize()
        return sum(e.count for e in prof.key_averages() if e.device_type.name == "CUDA") // 10
    except Exception as exc:  # the profiler is a nicety here
        return f"? ({type(exc).__name__})"


def variant(name: str, per_group: int, compiled: bool, tokens: torch.Tensor, count_kernels: bool = False) -> None:
    Discriminator.BANKS_PER_GROUP = {torch.bfloat16: per_group}
    torch.manual_seed(0)
    d = Discriminator(5000, 20).to(DEV)
    d.compute_dtype = torch.bfloat16
    opt = adam(d.parameters(), 1e-4, DEV)
    start = time.perf_counter()
    step = GraphedDiscriminatorStep(d, opt, 64, 0.2, compile=compiled)
    setup = time.perf_counter() - start
    ms = per_step_ms(step)
    half = len(tokens) // 2
    discriminator_epochs(d, opt, tokens[:2000], tokens[half:half + 2000], 1, 64, 0.2, graphed=step)  # warm
    torch.cuda.synchronize()
    start = time.perf_counter()
    loss, acc = discriminator_epochs(d, opt, tokens[:half], tokens[half:], 1, 64, 0.2, graphed=step)
    torch.cuda.synchronize()
    epoch = time.perf_counter() - start
    kernels = kernels_per_step(step) if count_kernels else "-"
    print(f"{name:28s} replay {ms:6.3f} ms/step  epoch20k {epoch:6.3f} s  kernels/step {kernels}  "
          f"capture+warm-up {setup:5.1f} s  loss {loss:.4f}", flush=True)


def main() -> None:
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    tokens = torch.randint(0, 5000, (20_000, 20), device=DEV)
    runs = [("grouped 5 + torch.compile", 5, True, True), ("grouped 10 + torch.compile", 10, True, False),
            ("grouped 5, uncompiled", 5, False, True), ("grouped 10, uncompiled", 10, False, False),
            ("single banks, uncompiled", 1, False, False)]
    only = sys.argv[1:]
    for name, per_group, compiled, count in runs:
        if only and not any(o in name for o in only):
            continue
        try:
            variant(name, per_group, compiled, tokens, count)
        except Exception as exc:  # a variant that fails must not hide the others' numbers
            print(f"{name:28s} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", flush=True)


if __name__ == "__main__":
    main()
