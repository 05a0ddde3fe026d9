"""Plain reference implementations: slow, obvious, and used to check the fast paths (tests) and
to measure them (`seqgan bench`). Not used in training."""

from __future__ import annotations

import torch

from .discriminator import Discriminator
from .generator import Generator, categorical


@torch.no_grad()
def plain_rollout_rewards(policy: Generator, discriminator: Discriminator, seqs: torch.Tensor,
                          num_rollouts: int, uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """A port of the authors' get_reward: for each n and each prefix length, one generator pass
    over the batch (prefix fed, the rest sampled), then D on those B sequences.

    Samples with torch.multinomial, or, given ``uniforms`` [N, T-1, B, T], with the same inverse-CDF
    draws as the batched roll-out so the two can be compared exactly.
    """
    batch, length = seqs.shape
    was_training = discriminator.training
    discriminator.eval()
    rewards = torch.zeros(batch, length, dtype=torch.float64)
    for n in range(num_rollouts):
        for given in range(1, length):
            state = policy.initial_state(batch)
            token = torch.full((batch,), policy.start_token, dtype=torch.long, device=seqs.device)
            completion = seqs.clone()
            for p in range(length):
                logits, state = policy.step(token, state)
                if p >= given:
                    if uniforms is None:
                        completion[:, p] = torch.multinomial(torch.softmax(logits, dim=1), 1).squeeze(1)
                    else:
                        completion[:, p] = categorical(logits, uniforms[n, given - 1, :, p])
                token = completion[:, p]
            rewards[:, given - 1] += torch.softmax(discriminator(completion), dim=1)[:, 1].double().cpu()
        rewards[:, length - 1] += torch.softmax(discriminator(seqs), dim=1)[:, 1].double().cpu()
    discriminator.train(was_training)
    return (rewards / num_rollouts).to(seqs.device)
