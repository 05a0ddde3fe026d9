"""The discriminator D_φ: CNN over token embeddings, max over time, highway, dropout, 2-way output.

Follows the authors' model: filter banks of several widths over the whole embedding (VALID
padding, ReLU, max-pool over time), one highway layer (gate bias 0), dropout, softmax over
(fake, real). D_φ(Y) is the probability of class 1, "real".
"""

from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Module):
    def __init__(self, vocab_size: int, seq_len: int, emb_dim: int = 64,
                 filter_sizes: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20),
                 num_filters: tuple[int, ...] = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160),
                 dropout_keep: float = 0.75):
        super().__init__()
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.convs = nn.ModuleList(nn.Conv1d(emb_dim, n, k) for k, n in zip(filter_sizes, num_filters))
        features = sum(num_filters)
        self.highway_transform = nn.Linear(features, features)
        self.highway_gate = nn.Linear(features, features)
        self.dropout = nn.Dropout(1.0 - dropout_keep)
        self.out = nn.Linear(features, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' init: embedding U(-1, 1); conv and output weights truncated N(0, 0.1) with
        bias 0.1; highway layers keep PyTorch's default init, gate bias 0."""
        with torch.no_grad():
            self.embedding.weight.uniform_(-1.0, 1.0)
            for layer in [*self.convs, self.out]:
                nn.init.trunc_normal_(layer.weight, std=0.1, a=-0.2, b=0.2)
                layer.bias.fill_(0.1)
            self.highway_gate.bias.zero_()

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Max-over-time conv features after the highway layer: [B, F]."""
        x = self.embedding(tokens).transpose(1, 2)  # [B, E, T]
        pooled = torch.cat([torch.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1)
        gate = torch.sigmoid(self.highway_gate(pooled))
        return gate * torch.relu(self.highway_transform(pooled)) + (1.0 - gate) * pooled

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits [B, 2] for (fake, real)."""
        return self.out(self.dropout(self.features(tokens)))

    def l2_penalty(self) -> torch.Tensor:
        """½Σw² over the output layer's weight and bias (tf.nn.l2_loss, as the authors)."""
        return 0.5 * (self.out.weight.square().sum() + self.out.bias.square().sum())

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor, l2_reg: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy + l2_reg · ½Σw²(output layer); also returns the logits."""
        logits = self(tokens)
        return nn.functional.cross_entropy(logits, labels) + l2_reg * self.l2_penalty(), logits

    @torch.no_grad()
    def prob_real(self, tokens: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """D_φ(Y) = P(real | Y) for each row of ``tokens`` [N, T], dropout off, in large batches."""
        was_training = self.training
        self.eval()
        try:
            device = self.out.weight.device
            parts = [torch.softmax(self(tokens[lo:lo + chunk].to(device)), dim=1)[:, 1]
                     for lo in range(0, tokens.shape[0], chunk)]
        finally:
            self.train(was_training)
        return torch.cat(parts)
