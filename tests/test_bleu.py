"""bleu / self_bleu must equal looping NLTK's sentence_bleu (uniform weights, method1)."""

import math
import random

import pytest

from seqgan.bleu import benchmark_bleu, benchmark_self_bleu, bleu, self_bleu

bleu_score = pytest.importorskip("nltk.translate.bleu_score")
SMOOTH = bleu_score.SmoothingFunction().method1


def nltk_bleu(references, hypotheses, n):
    weights = (1 / n,) * n
    scores = [bleu_score.sentence_bleu(references, h, weights, SMOOTH) for h in hypotheses]
    return math.fsum(scores) / len(scores)


def nltk_self_bleu(hypotheses, n):
    weights = (1 / n,) * n
    scores = [bleu_score.sentence_bleu(hypotheses[:i] + hypotheses[i + 1:], h, weights, SMOOTH)
              for i, h in enumerate(hypotheses)]
    return math.fsum(scores) / len(scores)


def assert_bleu_matches(references, hypotheses, n):
    expected = nltk_bleu(references, hypotheses, n)
    assert bleu(references, hypotheses, n) == pytest.approx(expected, abs=1e-9)


def random_corpus(rng, count, vocab, lengths):
    return [[rng.randrange(vocab) for _ in range(rng.choice(lengths))] for _ in range(count)]


@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_inputs_match_nltk(n, seed):
    rng = random.Random(seed)
    lengths = [0, 1, 2, 3, 5, 8, 10, 12, 15]
    references = random_corpus(rng, 40, 6, lengths)
    hypotheses = random_corpus(rng, 30, 6, lengths)
    assert_bleu_matches(references, hypotheses, n)
    assert self_bleu(hypotheses, n) == pytest.approx(nltk_self_bleu(hypotheses, n), abs=1e-9)


def test_many_small_random_cases_match_nltk():
    rng = random.Random(123)
    for _ in range(150):
        vocab = rng.choice([2, 3, 5, 10])
        lengths = [0, 1, 2, 3, 4, 5, 6, 8]
        references = random_corpus(rng, rng.randint(1, 5), vocab, lengths)
        hypotheses = random_corpus(rng, rng.randint(2, 5), vocab, lengths)
        n = rng.randint(1, 5)
        assert_bleu_matches(references, hypotheses, n)
        assert self_bleu(hypotheses, n) == pytest.approx(nltk_self_bleu(hypotheses, n), abs=1e-9)


S = "the cat sat on the mat".split()
EDGE_CASES = {  # name: (references, hypotheses)
    "empty hypothesis": ([S], [[]]),
    "empty hypothesis among others": ([S], [[], S, S[:3]]),
    "hypothesis of one token": ([S], [["cat"]]),
    "hypothesis shorter than n": ([S], [["the", "cat"], ["on", "the", "mat"]]),
    "no overlap at all": ([S], [["a", "dog", "ran", "off", "quickly"]]),
    "unigrams but no bigrams": ([S], [["mat", "the", "on", "sat", "cat"]]),
    "clipped repeats": ([S, "there is a cat on the mat".split()], [["the"] * 7]),
    "identical": ([S], [S]),
    "duplicate references": ([S, S, S, "a cat sat".split()], [S[:4], S[::-1]]),
    "references of different lengths": ([S[:1], S[:2], S, S + S], [S[:3], S + ["."], S * 3]),
    "reference shorter than n only": ([["the", "cat"]], [["the", "cat", "sat"], ["the", "cat"]]),
    "length tie goes to shorter reference": ([S[:2], S[:2] + S], [S[:5]]),
    "length tie, longer listed first": ([S + S[:2], S[:2]], [S[:4]]),
    "hypothesis shorter than all references": ([S + S, S * 3], [S]),
    "hypothesis longer than all references": ([S[:2], S[:3]], [S * 2]),
    "empty reference only": ([[]], [S, []]),
    "empty reference among others": ([[], S[:2]], [S[:1], S]),
    "int tokens": ([[1, 2, 3, 4, 2, 3], [2, 3, 4]], [[2, 3, 4, 1], [5, 6], [2, 3, 4, 2, 3, 4]]),
}


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_cases_match_nltk(name, n):
    references, hypotheses = EDGE_CASES[name]
    assert_bleu_matches(references, hypotheses, n)
    pool = references + hypotheses
    assert self_bleu(pool, n) == pytest.approx(nltk_self_bleu(pool, n), abs=1e-9)


SELF_CASES = {
    "all identical": [S, S, S],
    "duplicate counts as a reference": [S, S, "a dog ran".split()],
    "two sentences": [S, S[:3]],
    "own length excluded, unique": [S[:2], S[:4], S],
    "own length excluded, shared": [S[:4], S[:4], S[1:5], S],
    "all empty": [[], [], []],
    "empty and non-empty": [[], S],
    "max count held by self": [["a", "a", "a", "b"], ["a", "b"], ["a", "a", "c"]],
    "tied max counts": [["a", "a", "b"], ["a", "a", "c"], ["a", "a", "a"]],
}


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("name", list(SELF_CASES))
def test_self_bleu_edge_cases_match_nltk(name, n):
    hypotheses = SELF_CASES[name]
    assert self_bleu(hypotheses, n) == pytest.approx(nltk_self_bleu(hypotheses, n), abs=1e-9)


def test_known_values():
    assert bleu([S], [S], 4) == 1.0
    assert bleu([S], [[]], 4) == 0.0
    assert bleu([S], [["dog"]], 4) == 0.0
    # one matching token, n = 4: p = (1, 0.1, 0.1, 0.1), r = 6 -> bp = exp(1 - 6)
    assert bleu([S], [["cat"]], 4) == pytest.approx(math.exp(-5) * 0.1 ** 0.75, rel=1e-12)
    assert self_bleu([S, S, S], 4) == 1.0


def test_invalid_arguments():
    with pytest.raises(ValueError, match="at least one reference"):
        bleu([], [S], 4)
    with pytest.raises(ValueError, match="at least one hypothesis"):
        bleu([S], [], 4)
    with pytest.raises(ValueError, match="at least two hypotheses"):
        self_bleu([S], 4)
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        bleu([S], [S], 0)


def test_benchmark_smoke():
    for row in (benchmark_bleu(num_hypotheses=4, num_references=10, n=3, max_nltk_s=5.0),
                benchmark_self_bleu(num_hypotheses=4, n=3, max_nltk_s=5.0)):
        assert row["nltk_hypotheses_timed"] == row["num_hypotheses"] == 4
        assert row["max_abs_diff"] < 1e-9
        assert row["speedup"] > 0
