"""The generator G_θ: an LSTM policy over tokens, started from a start token.

Interface used by roll-outs, MLE, policy gradient and evaluation (the oracle is the same module
with frozen parameters):
  log_prob(tokens)            per-token log G(y_t | Y_1:t-1), teacher forcing        [B, T]
  prefix_states(tokens)       recurrent state after each prefix Y_1:t                ([B,T,H], [B,T,H])
  step(tokens, state)         consume one token, return next-token logits and state
  sample(n, temperature)      n sequences [n, T]
"""

from __future__ import annotations

import torch
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]

# Rows per vocabulary-wide chunk on CPU. Measured on the 2-core CPU (10k paper-size samples):
# 64 rows 1.54 s, 256 1.05 s, 1024 0.82 s, 4096 0.89 s — fewer, larger ops beat keeping the
# logits in L2 (an earlier host of the same kind had 64 fastest: the per-op cost varies by host).
_CHUNK_ROWS = 1024


def _block_size(vocab: int) -> int:
    """Block size of the two-level sampler: the whole vocabulary up to 256 tokens, else its largest
    divisor in [64, 256] (no padding), else 256 with padding. Blocks of ~200 contiguous tokens are
    the fastest to sum on CPU (measured: 19 µs for 64 × 5,000 vs 35 µs in blocks of 50)."""
    if vocab <= 256:
        return vocab
    for size in range(256, 63, -1):
        if vocab % size == 0:
            return size
    return 256


# On CPU the unnormalised weights exp(logit) are used as they are (no max subtracted: one pass over
# the logits saved) when each row's total lies in this range, so nothing overflows and whatever
# underflows weighs under 1e-14 of the row's mass, below what a float32 CDF resolves; else the
# logits are made again and their row max subtracted.
_SAFE_TOTAL = (1e-20, 1e30)


def categorical(logits: torch.Tensor, uniform: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Sample one index per row of ``logits`` [R, V] from softmax(logits / temperature), by inverse
    CDF given ``uniform`` [R] in [0, 1). With the same ``uniform`` the result is a deterministic
    function of the logits (tests use this to replay identical samples).

    Exact and two-level, so no row needs a cumulative sum over the whole vocabulary: pick a block
    of the vocabulary by its probability mass, then the token inside it. torch.multinomial over
    5,000 tokens costs ~10x more.
    """
    return _categorical_(logits / temperature, uniform, lambda: logits / temperature)


def _categorical_(logits: torch.Tensor, uniform: torch.Tensor, again) -> torch.Tensor:
    """`categorical` at temperature 1 that overwrites ``logits`` (no copies on the hot path);
    ``again()`` makes the same logits anew for the rare chunk with a row total outside
    `_SAFE_TOTAL`, which is then redone with the row max subtracted."""
    rows, vocab = logits.shape
    size = _block_size(vocab)
    n_blocks = -(-vocab // size)
    on_cpu = logits.device.type == "cpu"  # elsewhere always subtract the max: no host sync per step
    weights = _padded_exp_(logits, n_blocks * size - vocab, subtract_max=not on_cpu)
    block_cdf = weights.view(rows, n_blocks, size).sum(dim=2).cumsum_(dim=1)
    if on_cpu:
        total = block_cdf[:, -1]
        if not bool(((total > _SAFE_TOTAL[0]) & (total < _SAFE_TOTAL[1])).all()):
            weights = _padded_exp_(again(), n_blocks * size - vocab, subtract_max=True)
            block_cdf = weights.view(rows, n_blocks, size).sum(dim=2).cumsum_(dim=1)
    # Token i takes the targets in (cdf[i-1], cdf[i]]: the first index whose CDF reaches the target.
    # A target of 0 (u = 0, or rounding below) would pick a leading token of probability 0: raise it
    # to the smallest positive float, which changes no other draw.
    tiny = torch.finfo(block_cdf.dtype).tiny
    target = (uniform.to(block_cdf.dtype).unsqueeze(1) * block_cdf[:, -1:]).clamp_(min=tiny)
    block = torch.searchsorted(block_cdf, target).clamp_(max=n_blocks - 1)
    inner_cdf = weights.view(rows, n_blocks, size)[torch.arange(rows, device=logits.device), block.squeeze(1)]
    inner_cdf = inner_cdf.cumsum_(dim=1)
    remainder = (target - block_cdf.gather(1, block) + inner_cdf[:, -1:]).clamp_(min=tiny)  # minus the blocks before
    inner = torch.searchsorted(inner_cdf, remainder).clamp_(max=size - 1)
    token = (block * size + inner).squeeze(1)
    return token.clamp_(max=vocab - 1)  # only reachable through float rounding at the very top


def _padded_exp_(logits: torch.Tensor, pad: int, subtract_max: bool) -> torch.Tensor:
    """exp(logits [- row max]) in place, with ``pad`` zero columns on the right (then a copy)."""
    if subtract_max:
        logits.sub_(logits.amax(dim=1, keepdim=True))
    weights = logits.exp_()
    return nn.functional.pad(weights, (0, pad)) if pad else weights


class Generator(nn.Module):
    """LSTM policy G_θ(y_t | Y_1:t-1): embedding -> LSTM -> linear -> softmax over the vocabulary."""

    def __init__(self, vocab_size: int, seq_len: int, emb_dim: int = 32, hidden_dim: int = 32,
                 start_token: int = 0, init_std: float | None = 0.1, single_bias: bool = False):
        super().__init__()
        self.vocab_size, self.seq_len, self.start_token = vocab_size, seq_len, start_token
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim, vocab_size)
        if init_std is not None:
            self.reset_parameters(init_std)
        if single_bias:  # one bias per gate, as the authors' LSTM: the hidden-side one stays 0
            self.lstm.bias_hh_l0.requires_grad_(False)

    def reset_parameters(self, std: float) -> None:
        """The authors' init: every weight and bias ~ N(0, std). nn.LSTM carries two bias vectors
        (input and hidden); the second is zeroed so the effective bias has the stated std."""
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0.0, std)
            self.lstm.bias_hh_l0.zero_()

    @property
    def hidden_dim(self) -> int:
        return self.lstm.hidden_size

    def _inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing inputs: [start, y_1, ..., y_{T-1}]."""
        start = tokens.new_full((tokens.shape[0], 1), self.start_token)
        return torch.cat([start, tokens[:, :-1]], dim=1)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits at every position under teacher forcing: [B, T, V]."""
        hidden, _ = self.lstm(self.embedding(self._inputs(tokens)))
        return self.out(hidden)

    def log_prob(self, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """log G(y_t | Y_1:t-1) for every position: [B, T]; at ``temperature`` τ the policy is
        softmax(logits / τ), the distribution `sample(n, τ)` draws from."""
        logits = self.logits(tokens)
        log_probs = torch.log_softmax(logits / temperature if temperature != 1.0 else logits, dim=-1)
        return log_probs.gather(2, tokens.unsqueeze(2)).squeeze(2)

    def initial_state(self, batch: int) -> State:
        w = self.out.weight
        zeros = torch.zeros(batch, self.hidden_dim, device=w.device, dtype=w.dtype)
        return zeros, zeros.clone()

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Consume ``tokens`` [B] from ``state``; return the next-token logits [B, V] and new state."""
        h, c = self.advance(tokens, state)
        return self.out(h), (h, c)

    def advance(self, tokens: torch.Tensor, state: State) -> State:
        """Consume ``tokens`` [B] from ``state`` without computing logits."""
        return torch.lstm_cell(self.embedding(tokens), state, self.lstm.weight_ih_l0, self.lstm.weight_hh_l0,
                               self.lstm.bias_ih_l0, self.lstm.bias_hh_l0)

    def next_tokens(self, h: torch.Tensor, uniform: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Sample the next token [R] from hidden states ``h`` [R, H] (on CPU in `_CHUNK_ROWS`-row chunks).

        The output layer runs as one plain matmul on [h, 1] @ [Wᵀ; b] / temperature, so the bias is
        not first copied into every row of the logits."""
        weight = torch.cat([self.out.weight.T, self.out.bias.unsqueeze(0)]) / temperature  # [H + 1, V]
        h = torch.cat([h, h.new_ones(h.shape[0], 1)], dim=1)
        rows = _CHUNK_ROWS if h.device.type == "cpu" else max(h.shape[0], 1)
        tokens = []
        for lo in range(0, h.shape[0], rows):
            part = h[lo:lo + rows]
            tokens.append(_categorical_(part @ weight, uniform[lo:lo + rows], lambda: part @ weight))
        return torch.cat(tokens) if tokens else torch.zeros(0, dtype=torch.long, device=h.device)

    def prefix_states(self, tokens: torch.Tensor) -> State:
        """States after consuming [start, y_1..y_t] for t = 0..T-1: each [B, T, H].

        Index t is the state that predicts y_{t+1}; state t (t >= 1) holds the prefix Y_1:t.
        """
        batch, length = tokens.shape
        state = self.initial_state(batch)
        inputs = self._inputs(tokens)
        hs, cs = [], []
        for t in range(length):
            state = self.advance(inputs[:, t], state)
            hs.append(state[0])
            cs.append(state[1])
        return torch.stack(hs, dim=1), torch.stack(cs, dim=1)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, chunk: int = 4096,
               uniforms: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` sequences [n, T] sampled token by token; ``uniforms`` [n, T] replays fixed noise."""
        device = self.out.weight.device
        out = torch.empty(n, self.seq_len, dtype=torch.long, device=device)
        for lo in range(0, n, chunk):
            rows = min(chunk, n - lo)
            state = self.initial_state(rows)
            token = torch.full((rows,), self.start_token, dtype=torch.long, device=device)
            noise = (torch.rand(rows, self.seq_len, device=device, dtype=self.out.weight.dtype)
                     if uniforms is None else uniforms[lo:lo + rows].to(device))
            for t in range(self.seq_len):
                state = self.advance(token, state)
                token = self.next_tokens(state[0], noise[:, t], temperature)
                out[lo:lo + rows, t] = token
        return out
