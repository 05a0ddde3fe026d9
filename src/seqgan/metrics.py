"""Evaluation: NLL-oracle (quality of generated samples) and NLL-test (the model's fit to held-out
real data, i.e. diversity / coverage). Both are mean negative log-likelihood per token, in nats."""

from __future__ import annotations

import torch

from .data import eos_mask
from .generator import Generator


_SCORE_ELEMENTS = 1 << 24  # logits per scoring chunk: 64 MB of float32 whatever the vocabulary


@torch.no_grad()
def mean_nll(model: Generator, tokens: torch.Tensor, chunk: int | None = None,
             temperature: float = 1.0, masked: bool = False) -> float:
    """Mean per-token -log model(y_t | Y_1:t-1) over ``tokens`` [N, T], scored in chunks whose
    [chunk, T, V] logits stay within a fixed memory budget (4096 paper-sized sequences would be
    1.6 GB of logits, twice over with the log-softmax)."""
    device = model.out.weight.device
    budget = max(1, _SCORE_ELEMENTS // (tokens.shape[1] * model.vocab_size))
    chunk = min(chunk, budget) if chunk else budget
    total = count = 0.0
    for lo in range(0, tokens.shape[0], chunk):
        batch = tokens[lo:lo + chunk].to(device)
        log_prob = model.log_prob(batch, temperature).double()
        if masked:  # corpus sequences: count tokens up to and including each first EOS
            mask = eos_mask(batch)
            total += -(log_prob * mask).sum().item()
            count += mask.sum().item()
        else:
            total += -log_prob.sum().item()
            count += batch.numel()
    return total / count


def nll_oracle(oracle: Generator, samples: torch.Tensor, chunk: int | None = None) -> float:
    """The paper's NLL-oracle: generated ``samples`` scored by the oracle."""
    return mean_nll(oracle, samples, chunk)


def nll_test(generator: Generator, test_data: torch.Tensor, chunk: int | None = None,
             temperature: float = 1.0, masked: bool = False) -> float:
    """The generator's NLL of held-out oracle samples (Caccia et al.'s diversity side), under
    its policy at ``temperature`` (the distribution its samples at that temperature come from)."""
    return mean_nll(generator, test_data, chunk, temperature, masked)
