"""The LSTM policy: exact sampler, teacher forcing vs stepping, temperature."""

import pytest
import torch

from seqgan import generator as generator_module
from seqgan.generator import Generator, categorical


@pytest.mark.parametrize("vocab", [150, 1000, 997])  # one block; 4 blocks of 250; 4 padded blocks of 256
@pytest.mark.parametrize("scale,shift", [(2, 0), (300, 0), (2, -120), (2, 150)])  # normal, overflow, underflow
def test_categorical_matches_full_inverse_cdf(vocab, scale, shift):
    """Same uniforms -> same index as a plain searchsorted over the full CDF (float64), also for
    logits whose plain exp overflows or underflows (the sampler then subtracts the row max)."""
    torch.manual_seed(1)
    logits = torch.randn(500, vocab, dtype=torch.float64) * scale + shift
    logits[:3] = torch.randn(3, vocab, dtype=torch.float64)  # a few ordinary rows among them
    u = torch.rand(500, dtype=torch.float64)
    probs = torch.softmax(logits, dim=1)
    cdf = probs.cumsum(dim=1)
    expected = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1)).squeeze(1).clamp(max=vocab - 1)
    kept = logits.clone()
    assert torch.equal(categorical(logits, u), expected)
    assert torch.equal(logits, kept)  # the caller's logits are left alone


def test_categorical_distribution():
    """Empirical frequencies of 200k draws match softmax(logits / temperature) (5 sigma)."""
    torch.manual_seed(2)
    logits = torch.randn(1, 70) * 1.5
    n = 200_000
    for temperature in (1.0, 0.5):
        draws = categorical(logits.expand(n, -1), torch.rand(n), temperature)
        freq = torch.bincount(draws, minlength=70).double() / n
        p = torch.softmax(logits[0].double() / temperature, dim=0)
        sigma = (p * (1 - p) / n).sqrt()
        assert ((freq - p).abs() <= 5 * sigma + 1e-9).all()


def test_log_prob_equals_stepping():
    gen = Generator(vocab_size=23, seq_len=7, emb_dim=5, hidden_dim=6).double()
    seqs = torch.randint(0, 23, (9, 7))
    state = gen.initial_state(9)
    token = torch.full((9,), gen.start_token)
    stepped = []
    for t in range(7):
        logits, state = gen.step(token, state)
        stepped.append(torch.log_softmax(logits, dim=1).gather(1, seqs[:, t:t + 1]).squeeze(1))
        token = seqs[:, t]
    assert torch.allclose(gen.log_prob(seqs), torch.stack(stepped, dim=1), atol=1e-12, rtol=0)


def test_prefix_states_match_lstm_outputs():
    gen = Generator(vocab_size=23, seq_len=7, emb_dim=5, hidden_dim=6).double()
    seqs = torch.randint(0, 23, (4, 7))
    h, c = gen.prefix_states(seqs)
    hidden, (h_last, c_last) = gen.lstm(gen.embedding(gen._inputs(seqs)))
    assert torch.allclose(h, hidden, atol=1e-12, rtol=0)
    assert torch.allclose(c[:, -1], c_last[0], atol=1e-12, rtol=0)


def test_sample_shapes_replay_and_low_temperature(monkeypatch):
    gen = Generator(vocab_size=40, seq_len=6, emb_dim=4, hidden_dim=4)
    u = torch.rand(300, 6)
    a = gen.sample(300, uniforms=u, chunk=128)
    assert a.shape == (300, 6) and a.dtype == torch.long and a.min() >= 0 and a.max() < 40
    assert torch.equal(a, gen.sample(300, uniforms=u, chunk=64))  # chunking does not change samples
    monkeypatch.setattr(generator_module, "_CHUNK_ROWS", 7)
    assert torch.equal(a, gen.sample(300, uniforms=u))  # nor do the sampler's row chunks
    monkeypatch.undo()
    cold = gen.sample(50, temperature=1e-4)
    greedy = []
    state, token = gen.initial_state(1), torch.tensor([gen.start_token])
    for _ in range(6):
        logits, state = gen.step(token, state)
        token = logits.argmax(dim=1)
        greedy.append(token.item())
    assert (cold == torch.tensor(greedy)).all()


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_sample_at_a_temperature_is_the_tempered_softmax_replayed(temperature):
    """`sample` at temperature τ with fixed noise = stepping the LSTM and drawing each token by a
    plain inverse CDF of softmax(logits / τ) (float64: exact); and τ changes the draws."""
    torch.manual_seed(4)
    gen = Generator(vocab_size=300, seq_len=6, emb_dim=5, hidden_dim=7, init_std=0.5).double()
    u = torch.rand(400, 6, dtype=torch.float64)
    expected, state = [], gen.initial_state(400)
    token = torch.full((400,), gen.start_token)
    for t in range(6):
        logits, state = gen.step(token, state)
        cdf = torch.softmax(logits / temperature, dim=1).cumsum(dim=1)
        token = torch.searchsorted(cdf, (u[:, t] * cdf[:, -1]).unsqueeze(1)).squeeze(1).clamp(max=299)
        expected.append(token)
    drawn = gen.sample(400, temperature=temperature, uniforms=u)
    assert torch.equal(drawn, torch.stack(expected, dim=1))
    assert (drawn != gen.sample(400, uniforms=u)).float().mean() > 0.2  # τ = 1 draws other tokens


def test_init_std():
    """The authors' init: every parameter ~ N(0, 0.1) (each tensor's std and mean within 5 standard
    errors), except the second LSTM bias, kept at 0."""
    gen = Generator(vocab_size=5000, seq_len=20, init_std=0.1)
    for name, p in gen.named_parameters():
        if name == "lstm.bias_hh_l0":
            assert p.abs().sum() == 0
            continue
        n = p.numel()
        assert abs(p.std().item() - 0.1) < 5 * 0.1 / (2 * n) ** 0.5 + 1e-3, name  # 1e-3: float32 sums
        assert abs(p.mean().item()) < 5 * 0.1 / n ** 0.5, name


def test_categorical_never_picks_a_zero_probability_token():
    """u = 0 (a possible torch.rand draw) must land on the first token with probability > 0."""
    logits = torch.tensor([[-200.0, 0.0, 0.0], [-200.0, -200.0, 0.0]])  # exp(-200) is 0 in float32
    assert categorical(logits, torch.zeros(2)).tolist() == [1, 2]
    wide = torch.zeros(1, 512)
    wide[0, :300] = -200.0  # the whole first block (and part of the second) has probability 0
    assert categorical(wide, torch.zeros(1)).tolist() == [300]


@pytest.mark.parametrize("single_bias, ratio", [(False, 2.0), (True, 1.0)])
def test_each_gates_bias_moves_once_or_twice_as_far_as_the_authors(tiny_cfg, single_bias, ratio):
    """One Adam step of the MLE loss: the effective gate bias (bias_ih + bias_hh) moves as far as
    bias_ih alone (~lr per element, as the authors' single bias) with `generator.single_bias`, and
    twice as far without it (both vectors get the same gradient); 1e-7."""
    from seqgan.train import adam, build_generator

    tiny_cfg.generator.single_bias = single_bias
    g = build_generator(tiny_cfg)
    before, ih_before = (g.lstm.bias_ih_l0 + g.lstm.bias_hh_l0).detach().clone(), g.lstm.bias_ih_l0.detach().clone()
    opt = adam(g.parameters(), 0.01, torch.device("cpu"), fused_on_cpu=False)
    tokens = torch.randint(0, tiny_cfg.data.vocab_size, (16, tiny_cfg.data.seq_len))
    (-g.log_prob(tokens).mean()).backward()
    opt.step()
    moved = (g.lstm.bias_ih_l0 + g.lstm.bias_hh_l0).detach() - before
    own = g.lstm.bias_ih_l0.detach() - ih_before  # the authors' single bias would move this much
    assert torch.allclose(moved, ratio * own, atol=1e-7, rtol=0) and own.abs().median() > 0.009
    assert (g.lstm.bias_hh_l0.detach().abs().max() == 0) == single_bias
