"""The discriminator D_φ: CNN over token embeddings, max over time, highway, dropout, 2-way output.

The authors' model: filter banks of several widths over the whole embedding (VALID padding,
ReLU, max-pool over time), one highway layer (gate pre-activation + 0), dropout, softmax over
(fake, real).
D_φ(Y) is the probability of class 1, "real".

A filter bank of width k over embeddings of size E is a linear map applied to every window of k
consecutive token embeddings; we compute it that way, two ways, each measured fastest for its job:
- scoring (no gradient: roll-out rewards, evaluation): each bank's windows are gathered straight
  from the embedding table (`embedding(tokens.unfold(1, k, 1))`) and multiplied once;
- training: the sequence is embedded once ([B, T, E]) and the windows are made by a matmul with a
  constant 0/1 selection matrix (row (t, j) picks position t + j), so the backward is matmuls plus
  one index-add into the table. Under bf16 (matmuls cheap, op count not) banks of consecutive
  widths share one window matrix and one matmul: bank k's weight is zero-padded to the group's
  widest window and its positions past T - k are masked before the max.
`reference.PlainDiscriminator` is the per-filter Conv2d formulation of the authors' code; tests
show both ways agree with it.
"""

from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Module):
    # Banks of consecutive widths computed as one matmul, by compute dtype (default 1: each alone).
    BANKS_PER_GROUP = {torch.bfloat16: 5}

    def __init__(self, vocab_size: int, seq_len: int, emb_dim: int = 64,
                 filter_sizes: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20),
                 num_filters: tuple[int, ...] = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160),
                 dropout_keep: float = 0.75, highway_init: str = "pytorch"):
        super().__init__()
        if highway_init not in ("pytorch", "glorot"):
            raise ValueError(f"highway_init must be pytorch or glorot, got {highway_init!r}")
        self.highway_init = highway_init
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
        self.highway_copy: WeightCopy | None = None  # set with `train.CopyAdam`: see there
        self._plans: dict = {}  # (T, device, dtype) -> window plans, see `_window_plans`
        self.reset_parameters()

    @property
    def num_features(self) -> int:
        return self.out.in_features

    def reset_parameters(self) -> None:
        """The authors' init: embedding U(-1, 1); conv and output weights truncated N(0, 0.1) with
        bias 0.1. The highway layer (both halves F x F, F = 1720): ``highway_init="glorot"`` is the
        authors' too (their `tf.get_variable` default: weights and biases U(±√(6/2F)), the gate's
        bias random with 0 added); the default "pytorch" keeps PyTorch's nn.Linear init (U(±1/√F))
        with gate bias 0, what the Table 1 runs were started with (README, "Where we differ"). Called
        again, "pytorch" zeroes the gate bias but keeps the highway weight and transform bias as
        they are (redrawing them would change every default run's random numbers)."""
        with torch.no_grad():
            self.embedding.weight.uniform_(-1.0, 1.0)
            for layer in [*self.banks, self.out]:
                nn.init.trunc_normal_(layer.weight, std=0.1, a=-0.2, b=0.2)
                layer.bias.fill_(0.1)
            if self.highway_init == "glorot":  # drawn last: every other parameter is as with "pytorch"
                bound = (6.0 / (2 * self.num_features)) ** 0.5
                self.highway.weight.uniform_(-bound, bound)
                self.highway.bias.uniform_(-bound, bound)
            else:
                self.highway.bias[self.num_features:].zero_()

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Max-over-time filter-bank features after the highway layer: [B, F]."""
        table = self.embedding.weight
        if self.compute_dtype is not None:
            table = table.to(self.compute_dtype)  # embed in half width, not cast afterwards
        # max_t relu(w·x_t + b) = relu(max_t(w·x_t) + b): pool first, then bias and ReLU on [B, F].
        if torch.is_grad_enabled():
            embedded = nn.functional.embedding(tokens, table)
            pooled = torch.cat([self._group_max(embedded, plan) for plan in self._window_plans(embedded)], dim=1)
        else:
            pooled = torch.cat([_max_over_positions(nn.functional.embedding(tokens.unfold(1, k, 1), table).flatten(2)
                                                    @ bank.weight.T) for k, bank in zip(self.filter_sizes, self.banks)],
                               dim=1)
        pooled = torch.relu(pooled + torch.cat([bank.bias for bank in self.banks]))
        weight = self.highway.weight if self.highway_copy is None else self.highway_copy.get()
        transform, gate = nn.functional.linear(pooled, weight, self.highway.bias).chunk(2, dim=1)
        gate = torch.sigmoid(gate)
        return gate * torch.relu(transform) + (1.0 - gate) * pooled

    def _group_max(self, embedded: torch.Tensor, plan: tuple) -> torch.Tensor:
        """max over valid positions of every filter of one group of banks: [B, F_group]."""
        banks, width, select, mask = plan
        batch, emb = len(embedded), embedded.shape[2]
        positions = select.shape[0] // width
        windows = torch.matmul(select, embedded).view(batch * positions, width * emb)
        weight = self.banks[banks[0]].weight if len(banks) == 1 else torch.cat(
            [nn.functional.pad(self.banks[i].weight.to(embedded.dtype), (0, (width - self.filter_sizes[i]) * emb))
             for i in banks])
        scores = (windows @ weight.T).view(batch, positions, -1)
        return _max_over_positions(scores if mask is None else scores + mask)

    def _window_plans(self, embedded: torch.Tensor) -> list[tuple]:
        """Per group of banks: (bank indices, window width K, selection matrix [P·K, T], mask).

        Groups are runs of consecutive widths, up to `BANKS_PER_GROUP` banks (5 under bf16, single
        banks in fp32: measured fastest each way on CPU). A single bank's windows cover its
        T - k + 1 valid positions; a group's cover all T positions (zero rows past the end) and
        ``mask`` [T, F] is -inf where a bank's window would run past T. Built once per
        (T, device, dtype)."""
        length, device, dtype = embedded.shape[1], embedded.device, embedded.dtype
        key = (length, device, dtype)
        if key not in self._plans:
            most = self.BANKS_PER_GROUP.get(dtype, 1)
            groups: list[list[int]] = []
            for i, k in enumerate(self.filter_sizes):
                if groups and len(groups[-1]) < most and k == self.filter_sizes[groups[-1][-1]] + 1:
                    groups[-1].append(i)
                else:
                    groups.append([i])
            plans = []
            for banks in groups:
                width = self.filter_sizes[banks[-1]]
                positions = length if len(banks) > 1 else length - width + 1
                rows = torch.arange(positions * width)
                source = rows // width + rows % width  # row (t, j) reads position t + j
                inside = source < length
                select = torch.zeros(positions * width, length)
                select[rows[inside], source[inside]] = 1.0
                mask = None
                if len(banks) > 1:
                    t = torch.arange(positions).unsqueeze(1)
                    mask = torch.cat([torch.zeros(positions, self.banks[i].out_features).masked_fill(
                        t > length - self.filter_sizes[i], float("-inf")) for i in banks], dim=1).to(device, dtype)
                plans.append((banks, width, select.to(device, dtype), mask))
            self._plans[key] = plans
        return self._plans[key]

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
        return (torch.rand(rows, self.num_features, device=device) < keep).float().div_(keep)

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
        return torch.cat(parts) if parts else self.out.weight.new_zeros(0)


class WeightCopy:
    """A low-precision copy of a weight that the forward uses in place of autocast's cast of it.

    Autocast casts an fp32 weight to bf16 in every forward and casts its gradient back in every
    backward; for the 5.9M-parameter highway weight those two casts cost more than Adam's update of
    it. With a copy the backward leaves the bf16 gradient on `value` and `train.CopyAdam` updates
    the weight from it and writes the new copy in the same pass. Should the weight change any other
    way (a checkpoint loaded, an in-place edit, a move), the next `get` copies it again; it notices
    by the weight's version counter, data pointer and device, so an edit through ``weight.data``
    (which bumps no version) goes unnoticed — edit the parameter itself, under torch.no_grad."""

    def __init__(self, weight: torch.Tensor, dtype: torch.dtype):
        self.weight, self.dtype = weight, dtype
        self.value = weight.detach().to(dtype).requires_grad_()
        self._seen = self._stamp()

    def _stamp(self) -> tuple:
        return self.weight._version, self.weight.data_ptr(), self.weight.device

    def get(self) -> torch.Tensor:
        if self._stamp() != self._seen:
            if self.value.device != self.weight.device:
                self.value = self.weight.detach().to(self.dtype).requires_grad_()
            else:
                with torch.no_grad():
                    self.value.copy_(self.weight)
            self._seen = self._stamp()
        return self.value

    def mark_synced(self) -> None:
        """The weight and `value` were both just updated, `value` from the weight."""
        self._seen = self._stamp()


def _max_over_positions(scores: torch.Tensor) -> torch.Tensor:
    """[B, P, F] -> [B, F]. Max-pooling, as the authors' tf.nn.max_pool: at a tie the gradient goes
    to one position; the backward scatters through saved indices (~10 % off a bf16 training step
    against amax, whose backward compares every score with the max)."""
    return nn.functional.adaptive_max_pool1d(scores.transpose(1, 2), 1).squeeze(2)
