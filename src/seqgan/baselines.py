"""The paper's baselines for the synthetic task (Table 1), beside SeqGAN in train.py:

    mle                 MLE continued after pre-training           -> supervised_updates(sample_prob=0)
    scheduled_sampling  Bengio et al. (2015)                       -> scheduled_sampling_loss
    pg_bleu             policy gradient with reward = BLEU vs S    -> BleuReward (+ rollout_rewards)
    random              the randomly initialised generator         (no training; train.py)
"""

from __future__ import annotations

import torch

from .data import token_mean
from .generator import Generator, categorical


def sampling_probability(step: int, start: float, increase_per_step: float) -> float:
    """Scheduled sampling's probability of feeding a model sample at ``step`` (1, 2, ...): linear
    growth from ``start``, capped at 1."""
    return min(1.0, start + increase_per_step * step)


def scheduled_sampling_loss(generator: Generator, batch: torch.Tensor, sample_prob: float,
                            uniforms: torch.Tensor | None = None, masked: bool = False) -> torch.Tensor:
    """Mean token NLL of ``batch`` [B, T] when each input token y_t-1 (t >= 2) is, with probability
    ``sample_prob``, replaced by a token sampled from the model's own prediction at t-1.

    As in Bengio et al. the sample and the coin flip carry no gradient. ``uniforms`` [2, B, T]
    fixes the noise (coin flips, sampling). With ``sample_prob`` 0 this is the MLE loss.
    ``masked`` (corpus data): the mean over positions up to each first EOS of ``batch``.
    """
    rows, length = batch.shape
    if uniforms is None:
        uniforms = torch.rand(2, rows, length, device=batch.device)
    state = generator.initial_state(rows)
    token = batch.new_full((rows,), generator.start_token)
    losses = []
    for t in range(length):
        logits, state = generator.step(token, state)
        losses.append(-torch.log_softmax(logits, dim=-1).gather(1, batch[:, t:t + 1]))
        if t < length - 1:
            own = categorical(logits.detach(), uniforms[1, :, t])
            token = torch.where(uniforms[0, :, t] < sample_prob, own, batch[:, t])
    return token_mean(torch.cat(losses, dim=1), batch, masked)


def supervised_updates(generator: Generator, optimizer: torch.optim.Optimizer, data: torch.Tensor,
                       num_batches: int, batch_size: int, grad_clip: float,
                       sample_prob: float = 0.0, masked: bool = False) -> torch.Tensor:
    """``num_batches`` Adam updates on random mini-batches of ``data``: teacher-forced MLE when
    ``sample_prob`` is 0, scheduled sampling otherwise. Returns the mean loss (a tensor)."""
    generator.train()
    total = torch.zeros((), device=data.device)
    for _ in range(num_batches):
        batch = data[torch.randint(len(data), (batch_size,), device=data.device)]
        loss = (scheduled_sampling_loss(generator, batch, sample_prob, masked=masked) if sample_prob > 0
                else -token_mean(generator.log_prob(batch), batch, masked))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(generator.parameters(), grad_clip)
        optimizer.step()
        total += loss.detach()
    return total / max(num_batches, 1)


class BleuReward:
    """Sentence BLEU-n of equal-length token sequences against a fixed reference set, as a tensor
    function (PG-BLEU's reward): NLTK's ``sentence_bleu(references, hyp, (1/n,)*n,
    SmoothingFunction().method1)``, which `seqgan.bleu` computes for general inputs.

    With every sequence of length T the brevity penalty is 1 and each order k has T-k+1 k-grams.
    The references' maximum count of every k-gram is computed once; scoring a batch is a sort per
    row (the occurrence index of each k-gram within its hypothesis) and a binary search: the
    clipped count min(count in hyp, max count in a reference) is the number of occurrences whose
    index is below the reference maximum.
    """

    def __init__(self, references: torch.Tensor, n: int, vocab_size: int):
        if vocab_size ** n >= 2 ** 63:
            raise ValueError(f"BLEU-{n} n-gram ids over {vocab_size} tokens do not fit in 64 bits")
        self.n, self.vocab_size, self.length = n, vocab_size, references.shape[1]
        self.tables = []  # per order: sorted distinct k-gram ids, their max count in one reference
        for k in range(1, n + 1):
            grams, occurrence = self._occurrences(references, k)
            if grams.numel() == 0:
                self.tables.append((grams.new_empty(0), grams.new_empty(0)))
                continue
            # max count of a k-gram in one reference = 1 + its largest occurrence index there
            ids, inverse = torch.unique(grams.flatten(), return_inverse=True)
            top = torch.zeros_like(ids).scatter_reduce_(0, inverse, occurrence.flatten() + 1, "amax")
            self.tables.append((ids, top))

    def _occurrences(self, tokens: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's k-gram ids sorted [R, T-k+1], and each one's 0-based occurrence index among
        equal k-grams of its row."""
        span = tokens.shape[1] - k + 1
        if span <= 0:
            empty = tokens.new_empty(tokens.shape[0], 0)
            return empty, empty
        grams = torch.zeros(tokens.shape[0], span, dtype=torch.long, device=tokens.device)
        for i in range(k):
            grams = grams * self.vocab_size + tokens[:, i:i + span]
        grams = grams.sort(dim=1).values
        position = torch.arange(span, device=tokens.device).expand_as(grams)
        starts = torch.ones_like(grams, dtype=torch.bool)
        starts[:, 1:] = grams[:, 1:] != grams[:, :-1]
        run_start = torch.where(starts, position, torch.zeros_like(position)).cummax(dim=1).values
        return grams, position - run_start

    @torch.no_grad()
    def __call__(self, hypotheses: torch.Tensor) -> torch.Tensor:
        """BLEU-n [H] (float32) of ``hypotheses`` [H, T]."""
        if hypotheses.shape[1] != self.length:
            raise ValueError(f"hypotheses have length {hypotheses.shape[1]}, references {self.length}")
        log_p = torch.zeros(hypotheses.shape[0], dtype=torch.float64, device=hypotheses.device)
        matched_unigram = None
        for k, (ids, top) in enumerate(self.tables, start=1):
            denominator = max(1, self.length - k + 1)
            grams, occurrence = self._occurrences(hypotheses, k)
            if ids.numel() and grams.numel():
                where = torch.searchsorted(ids, grams).clamp_(max=len(ids) - 1)
                ref_max = torch.where(ids[where] == grams, top[where], torch.zeros_like(grams))
                numerator = (occurrence < ref_max).sum(dim=1).double()
            else:
                numerator = torch.zeros_like(log_p)
            if k == 1:
                matched_unigram = numerator > 0
            smoothed = torch.where(numerator > 0, numerator, torch.full_like(numerator, 0.1))
            log_p += torch.log(smoothed / denominator) / self.n
        return torch.where(matched_unigram, log_p.exp(), torch.zeros_like(log_p)).float()
