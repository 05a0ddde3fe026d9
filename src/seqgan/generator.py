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

_CACHE_ROWS = 64  # rows per vocabulary-wide chunk on CPU: logits stay in L2 (~2x faster than 4096)


def _block_size(vocab: int) -> int:
    """Block size of the two-level sampler: a divisor of the vocabulary near its square root when
    there is one (no padding), else 64 with padding."""
    for size in range(int(vocab ** 0.5), 15, -1):
        if vocab % size == 0 and size <= 256:
            return size
    return 64


def categorical(logits: torch.Tensor, uniform: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Sample one index per row of ``logits`` [R, V] from softmax(logits / temperature), by inverse
    CDF given ``uniform`` [R] in [0, 1). With the same ``uniform`` the result is a deterministic
    function of the logits (tests use this to replay identical samples)."""
    return categorical_(logits / temperature if temperature != 1.0 else logits.clone(), uniform)


def categorical_(logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """`categorical` at temperature 1 that overwrites ``logits`` (no copies on the hot path).

    Exact and two-level, so no row needs a cumulative sum over the whole vocabulary: pick a block
    of the vocabulary by its probability mass, then the token inside it. torch.multinomial over
    5,000 tokens costs ~10x more.
    """
    rows, vocab = logits.shape
    weights = logits.sub_(logits.amax(dim=1, keepdim=True)).exp_()  # unnormalised probabilities
    size = _block_size(vocab)
    n_blocks = -(-vocab // size)
    if n_blocks * size != vocab:
        weights = nn.functional.pad(weights, (0, n_blocks * size - vocab))
    blocks = weights.view(rows, n_blocks, size)
    block_mass = blocks.sum(dim=2)
    block_cdf = block_mass.cumsum(dim=1)
    target = uniform.to(block_cdf.dtype).unsqueeze(1) * block_cdf[:, -1:]
    block = torch.searchsorted(block_cdf, target).clamp_(max=n_blocks - 1)
    remainder = target - (block_cdf.gather(1, block) - block_mass.gather(1, block))
    inner_cdf = blocks[torch.arange(rows, device=logits.device), block.squeeze(1)].cumsum(dim=1)
    inner = torch.searchsorted(inner_cdf, remainder).clamp_(max=size - 1)
    token = (block * size + inner).squeeze(1)
    return token.clamp_(max=vocab - 1)  # only reachable through float rounding at the very top


class Generator(nn.Module):
    """LSTM policy G_θ(y_t | Y_1:t-1): embedding -> LSTM -> linear -> softmax over the vocabulary."""

    def __init__(self, vocab_size: int, seq_len: int, emb_dim: int = 32, hidden_dim: int = 32,
                 start_token: int = 0, init_std: float | None = 0.1):
        super().__init__()
        self.vocab_size, self.seq_len, self.start_token = vocab_size, seq_len, start_token
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim, vocab_size)
        if init_std is not None:
            self.reset_parameters(init_std)

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
        """Sample the next token [R] from hidden states ``h`` [R, H] (on CPU in cache-sized row chunks).

        The output layer runs as one plain matmul on [h, 1] @ [Wᵀ; b] / temperature, so the bias is
        not first copied into every row of the logits."""
        weight = torch.cat([self.out.weight.T, self.out.bias.unsqueeze(0)]) / temperature  # [H + 1, V]
        h = torch.cat([h, h.new_ones(h.shape[0], 1)], dim=1)
        rows = _CACHE_ROWS if h.device.type == "cpu" else h.shape[0]
        return torch.cat([categorical_(h[lo:lo + rows] @ weight, uniform[lo:lo + rows])
                          for lo in range(0, h.shape[0], rows)])

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
