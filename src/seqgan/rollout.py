"""Monte Carlo Q-values (paper, Eq. 4), batched.

    Q(Y_1:t-1, y_t) = 1/N Σ_n D(Y^n_1:T),  Y^n ~ MC^{G_β}(Y_1:t; N)   for t < T
    Q(Y_1:T-1, y_T) = D(Y_1:T)

One teacher-forced pass of the roll-out policy gives the state after every prefix; then all
B·N·(T−1) completions advance together, position by position. Rows are ordered by prefix length,
so at position p the active rows (prefix length t <= p) are a leading slice: prefixes join the
batch when their own tokens run out, and no state is recomputed. The discriminator then scores
every completed sequence in large batches.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from .discriminator import Discriminator
from .generator import Generator


@torch.no_grad()
def rollout_completions(policy: Generator, seqs: torch.Tensor, num_rollouts: int,
                        uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """Completions of every proper prefix: [T-1, N, B, T], entry [t-1, n] completes Y_1:t.

    ``uniforms`` [N, T-1, B, T] fixes the sampling noise: entry [n, t-1, b, p] draws token p of
    completion n of prefix Y_1:t of sequence b (tests replay it in a plain loop).
    """
    batch, length = seqs.shape
    n_prefix = length - 1
    device = seqs.device
    if uniforms is None:
        uniforms = torch.rand(num_rollouts, n_prefix, batch, length, device=device,
                              dtype=policy.out.weight.dtype)
    # Row order (t, n, b): prefix length major, so rows active at position p form a prefix slice.
    noise = uniforms.transpose(0, 1).reshape(n_prefix * num_rollouts * batch, length)
    out = seqs.repeat(n_prefix * num_rollouts, 1)  # prefixes already in place; the rest is overwritten
    h_all, c_all = policy.prefix_states(seqs)  # [B, T, H]; index t = state after Y_1:t
    block = num_rollouts * batch  # rows per prefix length
    h = torch.empty(n_prefix * block, policy.hidden_dim, device=device, dtype=h_all.dtype)
    c = torch.empty_like(h)
    for p in range(1, length):
        # Rows with prefix length t = p start here, from the teacher-forced state after Y_1:p.
        new = slice((p - 1) * block, p * block)
        h[new] = h_all[:, p].repeat(num_rollouts, 1)
        c[new] = c_all[:, p].repeat(num_rollouts, 1)
        active = p * block
        out[:active, p] = policy.next_tokens(h[:active], noise[:active, p])
        if p < length - 1:  # feed the sampled tokens to get the state for position p + 1
            h[:active], c[:active] = policy.advance(out[:active, p], (h[:active], c[:active]))
    return out.view(n_prefix, num_rollouts, batch, length)


Reward = Callable[[torch.Tensor], torch.Tensor]  # complete sequences [M, T] -> rewards [M]


@torch.no_grad()
def q_values(reward: Reward, seqs: torch.Tensor, completions: torch.Tensor) -> torch.Tensor:
    """Q [B, T] from completions [T-1, N, B, T]: the mean reward of the N completions; the
    sequence's own reward at t = T."""
    n_prefix, num_rollouts, batch, length = completions.shape
    scores = reward(completions.reshape(-1, length))
    q_prefix = scores.view(n_prefix, num_rollouts, batch).mean(dim=1).T  # [B, T-1]
    q_last = reward(seqs).unsqueeze(1)
    return torch.cat([q_prefix, q_last], dim=1)


def rollout_rewards(policy: Generator, reward: Discriminator | Reward, seqs: torch.Tensor,
                    num_rollouts: int, uniforms: torch.Tensor | None = None,
                    chunk: int = 4096) -> torch.Tensor:
    """Q-values [B, T] of the generated ``seqs`` [B, T] (the rewards of the policy gradient).
    ``reward`` is the discriminator (SeqGAN: D(Y), scored ``chunk`` rows at a time) or any
    function of complete sequences (PG-BLEU: their BLEU)."""
    completions = rollout_completions(policy, seqs, num_rollouts, uniforms)
    return q_values(as_reward(reward, chunk), seqs, completions)


def as_reward(reward: Discriminator | Reward, chunk: int = 4096) -> Reward:
    """A reward function of complete sequences: the discriminator's D(Y) (scored ``chunk`` rows at
    a time), or ``reward`` itself when it already is one."""
    if isinstance(reward, Discriminator):
        return lambda tokens: reward.prob_real(tokens, chunk)
    return reward


class RolloutPolicy:
    """G_β. With rate r = 0 it is the generator itself (β = θ, Algorithm 1 and what the authors'
    code effectively runs); with r > 0 a delayed copy updated as β ← rβ + (1−r)θ for the LSTM and
    the output layer, with θ's embedding as is (the authors' `update_params` blends those two and
    takes the live embedding)."""

    def __init__(self, generator: Generator, update_rate: float = 0.0):
        self.generator, self.update_rate = generator, update_rate
        self.module = generator if update_rate == 0 else copy.deepcopy(generator).requires_grad_(False)

    @torch.no_grad()
    def reset(self) -> None:
        """β ← θ: Algorithm 1 before its first adversarial step (the copy was made before pre-training)."""
        if self.module is not self.generator:
            self.module.load_state_dict(self.generator.state_dict())

    @torch.no_grad()
    def update(self) -> None:
        if self.module is self.generator:
            return
        for (name, beta), theta in zip(self.module.named_parameters(), self.generator.parameters()):
            if name.startswith("embedding."):
                beta.copy_(theta)
            else:
                beta.mul_(self.update_rate).add_(theta.detach(), alpha=1.0 - self.update_rate)
