"""The oracle: shipped parameters, exact NLL against a direct numpy computation, reference levels."""

import hashlib

import numpy as np
import torch

from seqgan.config import DataConfig
from seqgan.metrics import nll_oracle
from seqgan.oracle import (PAPER_ORACLE_SHA256, build_oracle, load_oracle_params, oracle_samples,
                           paper_oracle_path, random_oracle, random_oracle_params)


def numpy_nll(params: dict, seqs: np.ndarray, start_token: int = 0) -> float:
    """Mean per-token NLL computed directly from the authors' equations in float64."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    batch, length = seqs.shape
    hidden = p["U_i"].shape[0]
    h = np.zeros((batch, hidden))
    c = np.zeros((batch, hidden))
    x = p["embedding"][np.full(batch, start_token)]
    total = 0.0
    for t in range(length):
        i = sig(x @ p["W_i"] + h @ p["U_i"] + p["b_i"])
        f = sig(x @ p["W_f"] + h @ p["U_f"] + p["b_f"])
        o = sig(x @ p["W_o"] + h @ p["U_o"] + p["b_o"])
        c_tilde = np.tanh(x @ p["W_c"] + h @ p["U_c"] + p["b_c"])
        c = f * c + i * c_tilde
        h = o * np.tanh(c)
        logits = h @ p["W_out"] + p["b_out"]
        logits -= logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        total -= log_probs[np.arange(batch), seqs[:, t]].sum()
        x = p["embedding"][seqs[:, t]]
    return total / seqs.size


def test_packaged_oracle_file_is_the_papers():
    """The packaged file is the one this project shipped (written out here, not read from the code
    under test), and the constant the code checks against is the same."""
    digest = hashlib.sha256(paper_oracle_path().read_bytes()).hexdigest()
    assert digest == "4f1a3c02bcce12b528caa4f38505393ab6d276c8501b18539b69023e34c433d4" == PAPER_ORACLE_SHA256


def test_paper_oracle_nll_matches_numpy_to_1e5():
    params = load_oracle_params(paper_oracle_path())
    oracle = build_oracle(DataConfig())
    rng = np.random.default_rng(1)
    seqs = rng.integers(0, 5000, size=(32, 20))
    seqs[:16] = oracle_samples(oracle, 16, seed=3).numpy()  # half realistic, half uniform
    ours = nll_oracle(oracle, torch.from_numpy(seqs))
    assert abs(ours - numpy_nll(params, seqs)) < 1e-5


def test_random_oracle_is_seeded_and_matches_numpy():
    a = random_oracle(30, 7, 6, 5, seed=11)
    b = random_oracle(30, 7, 6, 5, seed=11)
    c = random_oracle(30, 7, 6, 5, seed=12)
    assert torch.equal(a.out.weight, b.out.weight) and not torch.equal(a.out.weight, c.out.weight)
    params = random_oracle_params(30, 6, 5, seed=11)  # the arrays the oracle is built from
    everything = np.concatenate([v.ravel() for v in params.values()])
    assert abs(everything.std() - 1) < 0.1 and abs(everything.mean()) < 0.1  # N(0, 1), 600 draws
    assert all(0.4 < v.std() < 1.6 for v in params.values())  # each array, not only W_out
    seqs = oracle_samples(a, 64, seed=0)
    # The numpy LSTM on those arrays (not on the module's weights): the gate layout round-trips.
    assert abs(nll_oracle(a, seqs) - numpy_nll(params, seqs.numpy())) < 1e-5


def test_paper_oracle_reference_levels():
    """Uniform-random tokens score ~11.42 nats/token and the oracle's own samples ~5.75."""
    oracle = build_oracle(DataConfig())
    uniform = torch.randint(0, 5000, (2000, 20), generator=torch.Generator().manual_seed(0))
    own = oracle_samples(oracle, 2000, seed=5)
    assert abs(nll_oracle(oracle, uniform) - 11.42) < 0.05
    assert abs(nll_oracle(oracle, own) - 5.75) < 0.05


def test_oracle_samples_are_reproducible():
    oracle = build_oracle(DataConfig(oracle="random", vocab_size=20, seq_len=6, emb_dim=4, hidden_dim=4))
    assert torch.equal(oracle_samples(oracle, 50, seed=9), oracle_samples(oracle, 50, seed=9))
    assert not torch.equal(oracle_samples(oracle, 50, seed=9), oracle_samples(oracle, 50, seed=10))
