"""Evaluation: NLL-oracle (quality of generated samples) and NLL-test (the model's fit to held-out
real data, i.e. diversity / coverage). Both are mean negative log-likelihood per token, in nats."""

from __future__ import annotations

import torch

from .generator import Generator


@torch.no_grad()
def mean_nll(model: Generator, tokens: torch.Tensor, chunk: int = 4096) -> float:
    """Mean per-token -log model(y_t | Y_1:t-1) over ``tokens`` [N, T]."""
    device = model.out.weight.device
    total = 0.0
    for lo in range(0, tokens.shape[0], chunk):
        batch = tokens[lo:lo + chunk].to(device)
        total += -model.log_prob(batch).double().sum().item()
    return total / tokens.numel()


def nll_oracle(oracle: Generator, samples: torch.Tensor, chunk: int = 4096) -> float:
    """The paper's NLL-oracle: generated ``samples`` scored by the oracle."""
    return mean_nll(oracle, samples, chunk)


def nll_test(generator: Generator, test_data: torch.Tensor, chunk: int = 4096) -> float:
    """The generator's NLL of held-out oracle samples (Caccia et al.'s diversity side)."""
    return mean_nll(generator, test_data, chunk)
