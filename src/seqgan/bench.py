"""`seqgan bench`: our fast paths against plain reference implementations, timed in one run."""

from __future__ import annotations

import time

import torch

from .config import DiscriminatorConfig
from .discriminator import Discriminator
from .generator import Generator
from .reference import plain_rollout_rewards
from .rollout import rollout_rewards


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_rollout(repeats: int = 1, batch: int = 64, num_rollouts: int = 16, seq_len: int = 20,
                  vocab_size: int = 5000, seed: int = 0) -> dict:
    """Q-values for one batch at the paper's sizes (paper discriminator, fp32): batched roll-out
    vs a plain port of the authors' per-(n, prefix) loop with torch.multinomial."""
    torch.manual_seed(seed)
    generator = Generator(vocab_size, seq_len)
    banks = [(k, n) for k, n in zip(DiscriminatorConfig.filter_sizes, DiscriminatorConfig.num_filters) if k <= seq_len]
    discriminator = Discriminator(vocab_size, seq_len, filter_sizes=tuple(k for k, _ in banks),
                                  num_filters=tuple(n for _, n in banks))
    seqs = generator.sample(batch)
    ours = _best_time(lambda: rollout_rewards(generator, discriminator, seqs, num_rollouts), repeats)
    plain = _best_time(lambda: plain_rollout_rewards(generator, discriminator, seqs, num_rollouts), repeats)
    return {"ours_s": round(ours, 4), "plain_s": round(plain, 4), "speedup": round(plain / ours, 2)}
