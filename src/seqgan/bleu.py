"""Exact, fast BLEU and Self-BLEU, numerically identical to NLTK's sentence-level BLEU.

Definitions (``n`` is the maximum n-gram order, ``n >= 1``)::

    bleu(references, hypotheses, n) = mean over h in hypotheses of
        nltk.translate.bleu_score.sentence_bleu(
            references, h, weights=(1/n,)*n,
            smoothing_function=SmoothingFunction().method1)

    self_bleu(hypotheses, n) = the same, each ``hypotheses[i]`` scored against
        ``hypotheses[:i] + hypotheses[i+1:]`` (by index, so an identical
        duplicate elsewhere in the list still counts as a reference).

What NLTK's ``sentence_bleu`` computes, and this module mirrors float-op for float-op:

* modified precision ``p_k = num_k / den_k`` for ``k = 1..n``: ``num_k`` is the sum over
  the hypothesis's k-grams of ``min(count in hypothesis, max count in any one reference)``
  and ``den_k = max(1, len(hyp) - k + 1)`` (so a hypothesis with fewer than ``k`` tokens
  gets ``0/1``); the fraction is never reduced (NLTK's ``_normalize=False``);
* if ``num_1 == 0`` (empty hypothesis, or not a single unigram in any reference) the
  score is exactly 0;
* method1 smoothing replaces every ``p_k`` with ``num_k == 0`` by ``0.1 / den_k``;
* ``r`` is the reference length closest to ``len(hyp)``, ties going to the shorter one;
  the brevity penalty is ``1`` if ``len(hyp) > r`` else ``exp(1 - r / len(hyp))``;
* score = ``bp * exp(fsum((1/n) * log(p_k) for k in 1..n))``.

The mean is ``math.fsum(scores) / len(scores)``.  Where NLTK would raise (no references,
so ``closest_ref_length`` sees an empty sequence) these functions raise ``ValueError``.
Tokens are compared as dict keys (hash and ``==``), as NLTK's ``Counter`` does; pass
tensors as ``tensor.tolist()``, since tensor elements hash by identity.

Speed: the references are shared by all hypotheses, so each k-gram order is counted
once for the whole corpus with numpy (tokens -> int ids, k-grams -> dense int ids, one
``np.unique`` over (k-gram, sentence) pairs).  Per k-gram we keep its maximum count over
the references; for Self-BLEU also which sentence holds that maximum and the second
largest count, so "max over all the other sentences" is an O(1) lookup.  Reference
lengths become a sorted array (a multiset for Self-BLEU, so a hypothesis's own length
can be left out).  Only the final ``n`` logs per hypothesis run in Python.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable, Hashable, Sequence
from itertools import chain

import numpy as np

__all__ = ["bleu", "self_bleu", "benchmark_bleu", "benchmark_self_bleu"]

Sentence = Sequence[Hashable]

_EPSILON = 0.1  # SmoothingFunction().method1's default epsilon
_FAR = 1 << 62  # sentinel length "no reference on this side"


def bleu(references: Sequence[Sentence], hypotheses: Sequence[Sentence], n: int = 4) -> float:
    """Mean over ``hypotheses`` of NLTK's ``sentence_bleu`` against ALL ``references``.

    Uniform weights ``(1/n,)*n`` and ``SmoothingFunction().method1``; see the module
    docstring.  Tokens may be any hashable values (str, int, ...), compared by ``==``.
    Raises ``ValueError`` if ``references`` or ``hypotheses`` is empty or ``n < 1``.
    """
    return _mean(_bleu_scores(references, hypotheses, n))


def self_bleu(hypotheses: Sequence[Sentence], n: int = 4) -> float:
    """Mean over ``hypotheses`` of NLTK's ``sentence_bleu`` against all the OTHER hypotheses.

    Same scoring as :func:`bleu`; "other" is by index.  Raises ``ValueError`` for fewer
    than two hypotheses or ``n < 1``.
    """
    return _mean(_self_bleu_scores(hypotheses, n))


# --------------------------------------------------------------------------- internals


def _mean(scores: list[float]) -> float:
    return math.fsum(scores) / len(scores)


def _check_n(n: int) -> int:
    if operator.index(n) < 1:  # operator.index: TypeError unless n is an integer
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return operator.index(n)


def _bleu_scores(
    references: Sequence[Sentence], hypotheses: Sequence[Sentence], n: int
) -> list[float]:
    """Per-hypothesis sentence BLEU of each hypothesis against all references."""
    n = _check_n(n)
    if len(references) == 0:
        raise ValueError("bleu needs at least one reference")
    if len(hypotheses) == 0:
        raise ValueError("bleu needs at least one hypothesis")
    num_refs, num_hyps = len(references), len(hypotheses)
    lengths, counts = _corpus_counts(list(chain(references, hypotheses)), n)

    numerators = np.zeros((n, num_hyps), dtype=np.int64)
    for k, (gram, sent, count) in enumerate(counts):
        is_ref = sent < num_refs
        max_ref = np.zeros(int(gram.max(initial=-1)) + 1, dtype=np.int64)
        np.maximum.at(max_ref, gram[is_ref], count[is_ref])
        hyp = ~is_ref
        clipped = np.minimum(count[hyp], max_ref[gram[hyp]])
        numerators[k] = _sum_by(sent[hyp] - num_refs, clipped, num_hyps)

    hyp_lengths = lengths[num_refs:]
    closest = _closest_lengths(lengths[:num_refs], hyp_lengths, own_length_is_reference=False)
    return _scores(numerators, hyp_lengths, closest, n)


def _self_bleu_scores(hypotheses: Sequence[Sentence], n: int) -> list[float]:
    """Per-hypothesis sentence BLEU of each hypothesis against all the others."""
    n = _check_n(n)
    num_hyps = len(hypotheses)
    if num_hyps < 2:
        raise ValueError("self_bleu needs at least two hypotheses")
    lengths, counts = _corpus_counts(list(hypotheses), n)

    numerators = np.zeros((n, num_hyps), dtype=np.int64)
    for k, (gram, sent, count) in enumerate(counts):
        clipped = np.minimum(count, _max_count_elsewhere(gram, sent, count))
        numerators[k] = _sum_by(sent, clipped, num_hyps)

    closest = _closest_lengths(lengths, lengths, own_length_is_reference=True)
    return _scores(numerators, lengths, closest, n)


def _corpus_counts(
    sentences: list[Sentence], n: int
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Sentence lengths and, for each order ``k = 1..n``, the distinct (k-gram, sentence)
    pairs as three aligned int64 arrays ``(gram_id, sentence_index, count)``."""
    num_sents = len(sentences)
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=num_sents)
    flat = list(chain.from_iterable(sentences))
    vocab = {token: i for i, token in enumerate(dict.fromkeys(flat))}
    tokens = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
    total, vocab_size = len(tokens), max(len(vocab), 1)

    sent_of_pos = np.repeat(np.arange(num_sents, dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    room = lengths[sent_of_pos] - (np.arange(total) - starts[sent_of_pos])  # tokens left in sentence

    counts = []
    gram = tokens  # id of the k-gram starting at each position (valid or not)
    for k in range(1, n + 1):
        if k > 1:  # (id of (k-1)-gram at i, token i+k-1) -> dense id of the k-gram at i
            span = max(0, total - k + 1)
            key = gram[:span] * vocab_size + tokens[k - 1:k - 1 + span]
            _, gram = np.unique(key, return_inverse=True)
            gram = gram.reshape(-1).astype(np.int64, copy=False)
        valid = room[: len(gram)] >= k  # the k-gram does not cross a sentence end
        pair = gram[valid] * num_sents + sent_of_pos[: len(gram)][valid]
        pair, count = np.unique(pair, return_counts=True)
        counts.append((pair // num_sents, pair % num_sents, count.astype(np.int64, copy=False)))
    return lengths, counts


def _max_count_elsewhere(gram: np.ndarray, sent: np.ndarray, count: np.ndarray) -> np.ndarray:
    """For each (k-gram, sentence, count) row: the k-gram's largest count in any OTHER
    sentence.  Keeps per k-gram the largest count, the sentence holding it and the
    second largest count (equal to the largest on ties), so each lookup is O(1)."""
    order = np.lexsort((-count, gram))  # by k-gram, then by count descending
    g, s, c = gram[order], sent[order], count[order]
    start = np.flatnonzero(np.diff(g, prepend=-1))  # first (largest) row of each k-gram
    two = start[np.diff(start, append=len(g)) > 1]  # k-grams found in >= 2 sentences
    size = int(g.max(initial=-1)) + 1
    top1, top2 = np.zeros(size, dtype=np.int64), np.zeros(size, dtype=np.int64)
    top1_sent = np.full(size, -1, dtype=np.int64)
    top1[g[start]], top1_sent[g[start]] = c[start], s[start]
    top2[g[two]] = c[two + 1]
    return np.where(top1_sent[gram] == sent, top2[gram], top1[gram])


def _sum_by(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Integer sums of ``values`` grouped by ``index`` in ``range(size)``."""
    out = np.zeros(size, dtype=np.int64)
    np.add.at(out, index, values)
    return out


def _closest_lengths(
    ref_lengths: np.ndarray, hyp_lengths: np.ndarray, *, own_length_is_reference: bool
) -> np.ndarray:
    """NLTK's ``closest_ref_length`` for every hypothesis: the reference length nearest
    the hypothesis length, ties to the shorter.  With ``own_length_is_reference`` the
    hypotheses are the references, and each one's own length is left out once."""
    values, multiplicity = np.unique(ref_lengths, return_counts=True)
    pos_left = np.searchsorted(values, hyp_lengths, side="left")
    pos_right = np.searchsorted(values, hyp_lengths, side="right")
    multiplicity = np.r_[multiplicity, 0]  # pos_left may be len(values)
    exact_count = np.where(pos_right > pos_left, multiplicity[pos_left], 0)
    exact = exact_count > (1 if own_length_is_reference else 0)  # some reference has hyp's length
    padded = np.r_[-_FAR, values, _FAR]
    below = padded[pos_left]  # largest length < hyp length
    above = padded[pos_right + 1]  # smallest length > hyp length
    nearest = np.where(above - hyp_lengths < hyp_lengths - below, above, below)
    return np.where(exact, hyp_lengths, nearest)


def _scores(
    numerators: np.ndarray, hyp_lengths: np.ndarray, closest: np.ndarray, n: int
) -> list[float]:
    """NLTK's final step (``corpus_bleu`` with method1) for each hypothesis, float op for
    float op: ``numerators`` is [n, H] clipped counts, ``closest`` the reference lengths."""
    weight = 1 / n
    scores = []
    for nums, hyp_len, ref_len in zip(numerators.T.tolist(), hyp_lengths.tolist(), closest.tolist()):
        if nums[0] == 0:
            scores.append(0.0)
            continue
        bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)  # hyp_len > 0 here
        log_p = []
        for k, num in enumerate(nums, start=1):
            den = max(1, hyp_len - k + 1)
            p = num / den if num != 0 else (num + _EPSILON) / den
            log_p.append(weight * math.log(p))
        scores.append(bp * math.exp(math.fsum(log_p)))
    return scores


# --------------------------------------------------------------------------- benchmark


def _markov_sentences(
    rng: np.random.Generator, count: int, vocab_size: int = 5000, branching: int = 4,
    min_len: int = 15, max_len: int = 25,
) -> list[list[int]]:
    """Sentences from a random sparse Markov chain (``branching`` successors per token),
    so that n-grams recur across sentences as in generated text."""
    successors = rng.integers(0, vocab_size, size=(vocab_size, branching))
    seq = np.empty((count, max_len), dtype=np.int64)
    seq[:, 0] = rng.integers(0, vocab_size, size=count)
    for t in range(1, max_len):
        seq[:, t] = successors[seq[:, t - 1], rng.integers(0, branching, size=count)]
    lengths = rng.integers(min_len, max_len + 1, size=count)
    return [row[:length] for row, length in zip(seq.tolist(), lengths.tolist())]


def benchmark_bleu(
    num_hypotheses: int = 1000, num_references: int = 10000, n: int = 4, seed: int = 0,
    *, max_nltk_s: float = 60.0,
) -> dict[str, float]:
    """Time :func:`bleu` against looping NLTK's ``sentence_bleu`` over the hypotheses.

    Data: Markov-chain sentences of 15-25 tokens over a 5,000-token vocabulary (see
    ``_markov_sentences``).  NLTK scores hypothesis after hypothesis until all are done or
    ``max_nltk_s`` seconds have passed; then its time is scaled linearly to all of them.
    Returns ``ours_s``, ``nltk_s`` (possibly extrapolated), ``speedup``,
    ``nltk_hypotheses_timed`` (of ``num_hypotheses``) and ``max_abs_diff`` (per-hypothesis
    scores, ours vs NLTK, over the hypotheses NLTK scored).
    """
    sentences = _markov_sentences(np.random.default_rng(seed), num_hypotheses + num_references)
    hypotheses, references = sentences[:num_hypotheses], sentences[num_hypotheses:]
    return _benchmark(lambda: _bleu_scores(references, hypotheses, n), hypotheses,
                      lambda i: references, n, max_nltk_s)


def benchmark_self_bleu(
    num_hypotheses: int = 1000, n: int = 4, seed: int = 0, *, max_nltk_s: float = 60.0,
) -> dict[str, float]:
    """Time :func:`self_bleu` against looping NLTK's ``sentence_bleu``; as
    :func:`benchmark_bleu`, each hypothesis's references being all the others."""
    hypotheses = _markov_sentences(np.random.default_rng(seed), num_hypotheses)
    return _benchmark(lambda: _self_bleu_scores(hypotheses, n), hypotheses,
                      lambda i: hypotheses[:i] + hypotheses[i + 1:], n, max_nltk_s)


def _benchmark(
    ours: Callable[[], list[float]], hypotheses: list[list[int]],
    references_of: Callable[[int], list[list[int]]], n: int, max_nltk_s: float,
) -> dict[str, float]:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    weights, smooth = (1 / n,) * n, SmoothingFunction().method1
    t0 = time.perf_counter()
    our_scores = ours()
    ours_s = time.perf_counter() - t0

    nltk_scores: list[float] = []
    t0 = time.perf_counter()
    for i, hyp in enumerate(hypotheses):
        nltk_scores.append(sentence_bleu(references_of(i), hyp, weights, smooth))
        if time.perf_counter() - t0 > max_nltk_s:
            break
    timed = len(nltk_scores)
    nltk_s = (time.perf_counter() - t0) * len(hypotheses) / timed
    return {
        "ours_s": ours_s,
        "nltk_s": nltk_s,
        "speedup": nltk_s / ours_s,
        "nltk_hypotheses_timed": timed,
        "num_hypotheses": len(hypotheses),
        "max_abs_diff": max(abs(a - b) for a, b in zip(our_scores, nltk_scores)),
    }
