"""Plain reference implementations: slow, obvious, and used to check the fast paths (tests) and
to measure them (`seqgan bench`). Not used in training."""

from __future__ import annotations

import torch
from torch import nn

from .discriminator import Discriminator
from .generator import Generator, categorical


@torch.no_grad()
def plain_rollout_rewards(policy: Generator, discriminator: Discriminator | PlainDiscriminator, seqs: torch.Tensor,
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


@torch.no_grad()
def plain_sample(policy: Generator, n: int, batch: int = 64) -> torch.Tensor:
    """Sampling as the authors and peers do it: batches of 64, torch.multinomial at every step."""
    device = policy.out.weight.device
    out = []
    for lo in range(0, n, batch):
        rows = min(batch, n - lo)
        state = policy.initial_state(rows)
        token = torch.full((rows,), policy.start_token, dtype=torch.long, device=device)
        seq = []
        for _ in range(policy.seq_len):
            logits, state = policy.step(token, state)
            token = torch.multinomial(torch.softmax(logits, dim=1), 1).squeeze(1)
            seq.append(token)
        out.append(torch.stack(seq, dim=1))
    return torch.cat(out)


class PlainDiscriminator(nn.Module):
    """The authors' discriminator as they wrote it: one Conv2d (kernel k × E) per filter size over
    the [T, E] embedding "image", max-pool over time, separate highway transform and gate layers."""

    def __init__(self, vocab_size: int, emb_dim: int, filter_sizes: tuple[int, ...],
                 num_filters: tuple[int, ...], dropout_keep: float = 0.75):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.convs = nn.ModuleList(nn.Conv2d(1, n, (k, emb_dim)) for k, n in zip(filter_sizes, num_filters))
        features = sum(num_filters)
        self.highway_transform = nn.Linear(features, features)
        self.highway_gate = nn.Linear(features, features)
        self.dropout = nn.Dropout(1.0 - dropout_keep)
        self.out = nn.Linear(features, 2)

    @classmethod
    def copy_of(cls, d: Discriminator) -> PlainDiscriminator:
        """A PlainDiscriminator holding exactly ``d``'s parameters."""
        emb_dim = d.embedding.embedding_dim
        plain = cls(d.vocab_size, emb_dim, d.filter_sizes, tuple(b.out_features for b in d.banks), 1.0 - d.dropout.p)
        f = d.num_features
        with torch.no_grad():
            plain.embedding.weight.copy_(d.embedding.weight)
            for conv, bank, k in zip(plain.convs, d.banks, d.filter_sizes):
                conv.weight.copy_(bank.weight.view(-1, 1, k, emb_dim))
                conv.bias.copy_(bank.bias)
            plain.highway_transform.weight.copy_(d.highway.weight[:f])
            plain.highway_transform.bias.copy_(d.highway.bias[:f])
            plain.highway_gate.weight.copy_(d.highway.weight[f:])
            plain.highway_gate.bias.copy_(d.highway.bias[f:])
            plain.out.load_state_dict(d.out.state_dict())
        return plain

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens).unsqueeze(1)  # [B, 1, T, E]
        pooled = torch.cat([torch.relu(conv(x)).squeeze(3).amax(dim=2) for conv in self.convs], dim=1)
        gate = torch.sigmoid(self.highway_gate(pooled))
        highway = gate * torch.relu(self.highway_transform(pooled)) + (1.0 - gate) * pooled
        return self.out(self.dropout(highway))

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor, l2_reg: float) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(tokens)
        l2 = 0.5 * (self.out.weight.square().sum() + self.out.bias.square().sum())
        return nn.functional.cross_entropy(logits, labels) + l2_reg * l2, logits


def plain_discriminator_epoch(discriminator: PlainDiscriminator, optimizer: torch.optim.Optimizer,
                              positives: torch.Tensor, negatives: torch.Tensor, batch_size: int,
                              l2_reg: float) -> float:
    """One epoch as the authors train D: shuffle positives (label 1) and negatives (label 0),
    then one optimizer step per mini-batch with dropout on; returns the mean loss."""
    tokens = torch.cat([positives, negatives])
    labels = torch.cat([torch.ones(len(positives), dtype=torch.long, device=tokens.device),
                        torch.zeros(len(negatives), dtype=torch.long, device=tokens.device)])
    order = torch.randperm(len(tokens), device=tokens.device)
    discriminator.train()
    total = 0.0
    for lo in range(0, len(tokens), batch_size):
        idx = order[lo:lo + batch_size]
        loss, _ = discriminator.loss(tokens[idx], labels[idx], l2_reg)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    return total / len(tokens)
