"""The discriminator D_φ: CNN over token embeddings, max over time, highway, dropout, 2-way output.

The authors' model: filter banks of several widths over the whole embedding (VALID padding,
ReLU, max-pool over time), one highway layer (gate bias 0), dropout, softmax over (fake, real).
D_φ(Y) is the probability of class 1, "real".

A filter bank of width k over embeddings of size E is a linear map applied to every window of k
consecutive token embeddings. We compute it that way: the windows are gathered straight from the
embedding table (`embedding(tokens.unfold(1, k, 1))`), so each bank is one matmul whose backward is
a matmul plus an index-add into the table. `reference.PlainDiscriminator` is the per-filter Conv2d
formulation of the authors' code; a test shows the two agree.
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
        self.filter_sizes = tuple(filter_sizes)
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        # Bank k: weight [F, k·E] over a window of k token embeddings laid out token-major.
        self.banks = nn.ModuleList(nn.Linear(k * emb_dim, n) for k, n in zip(filter_sizes, num_filters))
        features = sum(num_filters)
        self.highway = nn.Linear(features, 2 * features)  # [transform | gate], one matmul
        self.dropout = nn.Dropout(1.0 - dropout_keep)
        self.out = nn.Linear(features, 2)
        self.compute_dtype: torch.dtype | None = None  # torch.bfloat16: autocast the matmuls
        self.reset_parameters()

    @property
    def num_features(self) -> int:
        return self.out.in_features

    def reset_parameters(self) -> None:
        """The authors' init: embedding U(-1, 1); conv and output weights truncated N(0, 0.1) with
        bias 0.1; highway layer PyTorch's default init (fan-in 1720 for both halves), gate bias 0."""
        with torch.no_grad():
            self.embedding.weight.uniform_(-1.0, 1.0)
            for layer in [*self.banks, self.out]:
                nn.init.trunc_normal_(layer.weight, std=0.1, a=-0.2, b=0.2)
                layer.bias.fill_(0.1)
            self.highway.bias[self.num_features:].zero_()

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Max-over-time filter-bank features after the highway layer: [B, F]."""
        table = self.embedding.weight
        if self.compute_dtype is not None:
            table = table.to(self.compute_dtype)  # gather half-width windows, not cast them after
        # max_t relu(w·x_t + b) = relu(max_t(w·x_t) + b): pool first, then bias and ReLU on [B, F].
        pooled = torch.relu(torch.cat([(self._windows(tokens, table, k) @ bank.weight.T).amax(dim=1) + bank.bias
                                       for k, bank in zip(self.filter_sizes, self.banks)], dim=1))
        transform, gate = self.highway(pooled).chunk(2, dim=1)
        gate = torch.sigmoid(gate)
        return gate * torch.relu(transform) + (1.0 - gate) * pooled

    @staticmethod
    def _windows(tokens: torch.Tensor, table: torch.Tensor, k: int, gather: bool | None = None) -> torch.Tensor:
        """[B, T-k+1, k·E]: every window of k consecutive token embeddings, token-major.

        Same values two ways, whichever measured faster: on CPU a gather from the table per window
        (its backward is one index-add); on GPU the embedded sequence unfolded (the CUDA embedding
        backward sorts its indices, which costs more than the whole unfold per bank)."""
        if gather is None:
            gather = tokens.device.type != "cuda"
        if gather:
            return nn.functional.embedding(tokens.unfold(1, k, 1), table).flatten(2)
        return nn.functional.embedding(tokens, table).unfold(1, k, 1).transpose(2, 3).flatten(2)

    def forward(self, tokens: torch.Tensor, keep_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits [B, 2] for (fake, real), in the parameters' dtype (float32 under bf16 autocast).
        In training mode dropout multiplies the features by ``keep_mask`` [B, F] (default: a fresh
        `keep_mask`; data-parallel ranks pass their rows of one drawn for the global batch)."""
        with torch.autocast(tokens.device.type, dtype=self.compute_dtype or torch.bfloat16,
                            enabled=self.compute_dtype is not None):
            features = self.features(tokens)
            if self.training and self.dropout.p > 0:
                features = features * (self.keep_mask(len(tokens), tokens.device) if keep_mask is None else keep_mask)
            logits = self.out(features)
        return logits if self.compute_dtype is None else logits.float()

    def keep_mask(self, rows: int, device: torch.device) -> torch.Tensor:
        """Inverted dropout: 1/keep with probability keep, else 0: [rows, F] float32."""
        keep = 1.0 - self.dropout.p
        return torch.empty(rows, self.num_features, device=device).bernoulli_(keep).div_(keep)

    def l2_penalty(self) -> torch.Tensor:
        """½Σw² over the output layer's weight and bias (tf.nn.l2_loss, as the authors)."""
        return 0.5 * (self.out.weight.square().sum() + self.out.bias.square().sum())

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor, l2_reg: float,
             keep_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy + l2_reg · ½Σw²(output layer); also returns the logits."""
        logits = self(tokens, keep_mask)
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
