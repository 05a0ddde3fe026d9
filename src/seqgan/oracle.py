"""The oracle ("target LSTM"): a Generator with frozen parameters that defines the real data.

`paper` loads the authors' fixed parameters shipped with the package (converted from their
save/target_params_py3.pkl into data/seqgan_oracle_params.npz: embedding [V, E]; per gate g in
i, f, o, c: W_g [E, H], U_g [H, H], b_g [H], the gate x @ W_g + h @ U_g + b_g; W_out [H, V],
b_out [V]). `random` draws a new oracle with N(0, 1) parameters from a seed, for any size.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch

from .config import DataConfig, SeqGANError
from .generator import Generator

PAPER_ORACLE_FILE = "seqgan_oracle_params.npz"
PAPER_ORACLE_SHA256 = "4f1a3c02bcce12b528caa4f38505393ab6d276c8501b18539b69023e34c433d4"
_PAPER_ARRAYS = ("embedding", "W_i", "U_i", "b_i", "W_f", "U_f", "b_f", "W_o", "U_o", "b_o",
                 "W_c", "U_c", "b_c", "W_out", "b_out")


def paper_oracle_path():
    return resources.files("seqgan") / "data" / PAPER_ORACLE_FILE


def load_oracle_params(path) -> dict[str, np.ndarray]:
    """Read oracle arrays from an .npz file (no pickle)."""
    try:
        with open(path, "rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"
        if not zipped:  # np.load would try it as a pickle and say so
            raise SeqGANError(f"cannot read oracle file {path}: not an .npz archive (numpy.savez writes one)")
        with np.load(path, allow_pickle=False) as f:
            params = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise SeqGANError(f"oracle file not found: {path}") from None
    except IsADirectoryError:
        raise SeqGANError(f"oracle file {path} is a directory") from None
    except SeqGANError:
        raise
    except Exception as e:  # zip / format errors from numpy
        raise SeqGANError(f"cannot read oracle file {path}: {str(e).splitlines()[0][:120]}") from None
    missing = [k for k in _PAPER_ARRAYS if k not in params]
    if missing:
        raise SeqGANError(f"oracle file {path} lacks arrays: {', '.join(missing)}")
    for name in _PAPER_ARRAYS:
        if not np.issubdtype(params[name].dtype, np.floating) or not np.isfinite(params[name]).all():
            raise SeqGANError(f"oracle file {path}: {name} is not all finite floating-point numbers "
                              f"(dtype {params[name].dtype})")
    if params["embedding"].ndim != 2 or params["U_i"].ndim != 2:
        raise SeqGANError(f"oracle file {path}: embedding and U_i must be matrices")
    (vocab, emb), hidden = params["embedding"].shape, params["U_i"].shape[0]
    if min(vocab, emb, hidden) == 0:
        raise SeqGANError(f"oracle file {path}: an empty oracle (vocabulary {vocab}, embedding {emb}, "
                          f"hidden {hidden}); every size must be at least 1")
    shapes = {"W": (emb, hidden), "U": (hidden, hidden), "b": (hidden,)}
    expected = {f"{m}_{g}": shapes[m] for m in "WUb" for g in "ifoc"} | {"W_out": (hidden, vocab), "b_out": (vocab,)}
    for name, shape in expected.items():
        if params[name].shape != shape:
            raise SeqGANError(f"oracle file {path}: {name} has shape {params[name].shape}, expected {shape} "
                              f"(vocabulary {vocab}, embedding {emb}, hidden {hidden})")
    return params


def oracle_from_params(params: dict[str, np.ndarray], seq_len: int, start_token: int = 0) -> Generator:
    """Build a frozen Generator whose LSTM computes exactly the authors' gate equations."""
    vocab, emb = params["embedding"].shape
    hidden = params["U_i"].shape[0]
    oracle = Generator(vocab, seq_len, emb, hidden, start_token, init_std=None)
    t = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in params.items()}
    # nn.LSTM: gates = x @ weight_ih.T + b_ih + h @ weight_hh.T + b_hh, rows in order i, f, g(=c̃), o.
    with torch.no_grad():
        oracle.embedding.weight.copy_(t["embedding"])
        oracle.lstm.weight_ih_l0.copy_(torch.cat([t["W_i"], t["W_f"], t["W_c"], t["W_o"]], dim=1).T)
        oracle.lstm.weight_hh_l0.copy_(torch.cat([t["U_i"], t["U_f"], t["U_c"], t["U_o"]], dim=1).T)
        oracle.lstm.bias_ih_l0.copy_(torch.cat([t["b_i"], t["b_f"], t["b_c"], t["b_o"]]))
        oracle.lstm.bias_hh_l0.zero_()
        oracle.out.weight.copy_(t["W_out"].T)
        oracle.out.bias.copy_(t["b_out"])
    return oracle.requires_grad_(False).eval()


def random_oracle_params(vocab_size: int, emb_dim: int, hidden_dim: int, seed: int) -> dict[str, np.ndarray]:
    """The arrays of a new oracle, every one ~ N(0, 1), drawn from its own generator (seed)."""
    rng = np.random.default_rng(seed)
    shapes = {"embedding": (vocab_size, emb_dim), "W_out": (hidden_dim, vocab_size), "b_out": (vocab_size,)}
    for gate in "ifoc":
        shapes |= {f"W_{gate}": (emb_dim, hidden_dim), f"U_{gate}": (hidden_dim, hidden_dim),
                   f"b_{gate}": (hidden_dim,)}
    return {k: rng.standard_normal(shapes[k]).astype(np.float32) for k in _PAPER_ARRAYS}


def random_oracle(vocab_size: int, seq_len: int, emb_dim: int, hidden_dim: int, seed: int,
                  start_token: int = 0) -> Generator:
    """A new oracle with every parameter ~ N(0, 1), drawn from its own generator (seed)."""
    return oracle_from_params(random_oracle_params(vocab_size, emb_dim, hidden_dim, seed), seq_len, start_token)


def oracle_params(data: DataConfig) -> dict[str, np.ndarray]:
    """The arrays of the oracle ``data`` names: the paper's, or the random one it seeds."""
    if data.oracle == "paper":
        return load_oracle_params(paper_oracle_path())
    return random_oracle_params(data.vocab_size, data.emb_dim, data.hidden_dim, data.oracle_seed)


def build_oracle(data: DataConfig) -> Generator:
    return oracle_from_params(oracle_params(data), data.seq_len, data.start_token)


def oracle_test_samples(oracle: Generator, data: DataConfig, chunk: int = 4096) -> torch.Tensor:
    """The held-out test set: data.num_test oracle samples from data.data_seed + 1 (the training
    samples use data.data_seed)."""
    return oracle_samples(oracle, data.num_test, data.data_seed + 1, chunk)


def oracle_and_test_set(data: DataConfig, device: torch.device,
                        chunk: int = 4096) -> tuple[Generator, torch.Tensor]:
    """The oracle on ``device`` and its held-out test set there, the set drawn on the CPU first as
    `train` draws it, so it holds the same tokens whatever the device."""
    oracle = build_oracle(data)
    test = oracle_test_samples(oracle, data, chunk).to(device)
    return oracle.to(device), test


def oracle_samples(oracle: Generator, n: int, seed: int, chunk: int = 4096) -> torch.Tensor:
    """``n`` oracle sequences drawn with their own RNG, independent of the run's global seed."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    uniforms = torch.rand(n, oracle.seq_len, generator=gen)
    return oracle.sample(n, chunk=chunk, uniforms=uniforms)
