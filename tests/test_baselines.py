"""Baselines: PG-BLEU's tensor BLEU against NLTK, scheduled sampling against a plain loop, and each
method's training path end to end on the tiny preset."""

import json

import pytest
import torch
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from seqgan.baselines import BleuReward, sampling_probability, scheduled_sampling_loss
from seqgan.bleu import _bleu_scores
from seqgan.config import METHODS, SeqGANError, set_field
from seqgan.generator import Generator, categorical
from seqgan.rollout import rollout_completions, rollout_rewards
from seqgan.train import train

V, T = 6, 8  # a small vocabulary: many repeated and shared n-grams


def test_bleu_reward_equals_nltk():
    """Sentence BLEU-n per hypothesis equals NLTK's sentence_bleu (method1) to 1e-6 (float32)."""
    refs = torch.randint(V, (40, T))
    hyps = torch.cat([torch.randint(V, (30, T)), refs[:3], torch.full((2, T), V - 1)])
    for n in (1, 2, 4, 5):
        ours = BleuReward(refs, n, V)(hyps)
        weights = (1 / n,) * n
        smooth = SmoothingFunction().method1
        expected = [sentence_bleu(refs.tolist(), h, weights, smoothing_function=smooth) for h in hyps.tolist()]
        assert torch.allclose(ours.double(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-6)
    assert torch.allclose(BleuReward(refs, 4, V)(refs[:3]), torch.ones(3))  # a reference scores 1


def test_bleu_reward_no_overlap_and_order_longer_than_sequence():
    refs = torch.zeros(4, 3, dtype=torch.long)
    hyps = torch.tensor([[1, 2, 3], [0, 0, 1]])
    ours = BleuReward(refs, 4, 5)(hyps)
    assert ours[0] == 0.0  # no unigram in any reference: exactly 0, as NLTK
    nltk = sentence_bleu(refs.tolist(), hyps[1].tolist(), (0.25,) * 4, smoothing_function=SmoothingFunction().method1)
    assert ours[1] == pytest.approx(nltk, abs=1e-7)  # 4-grams in a 3-token sequence: NLTK's smoothing
    with pytest.raises(ValueError, match="BLEU-30 n-gram ids over 5000 tokens do not fit in 64 bits"):
        BleuReward(refs, 30, 5000)


def test_pg_bleu_q_values_are_mean_bleu_of_completions():
    """PG-BLEU's Q = mean BLEU (list-based, NLTK-equal scorer) of the same completions; D(Y)'s
    place at t = T is the sequence's own BLEU."""
    gen = Generator(V, T, emb_dim=4, hidden_dim=5, init_std=0.5).double()
    refs = gen.sample(50)
    seqs, n_roll = gen.sample(3), 4
    u = torch.rand(n_roll, T - 1, 3, T, dtype=torch.float64)
    q = rollout_rewards(gen, BleuReward(refs, 3, V), seqs, n_roll, uniforms=u)
    completions = rollout_completions(gen, seqs, n_roll, u)
    for b in range(3):
        for t in range(1, T):
            scores = _bleu_scores(refs.tolist(), completions[t - 1, :, b].tolist(), 3)
            assert q[b, t - 1].item() == pytest.approx(sum(scores) / n_roll, abs=1e-6)
        assert q[b, T - 1].item() == pytest.approx(_bleu_scores(refs.tolist(), [seqs[b].tolist()], 3)[0], abs=1e-6)


def plain_scheduled_sampling_loss(gen, batch, prob, uniforms):
    """One row and one position at a time: feed the true token or, when the coin says so, a token
    drawn from the model's prediction (the same inverse-CDF draw)."""
    total = 0.0
    for b in range(batch.shape[0]):
        state, token = gen.initial_state(1), torch.tensor([gen.start_token])
        for t in range(batch.shape[1]):
            logits, state = gen.step(token, state)
            total = total - torch.log_softmax(logits, dim=-1)[0, batch[b, t]]
            sampled = categorical(logits.detach(), uniforms[1, b:b + 1, t])
            token = sampled if uniforms[0, b, t] < prob else batch[b:b + 1, t]
    return total / batch.numel()


@pytest.mark.parametrize("prob", [0.0, 0.5, 1.0])
def test_scheduled_sampling_equals_plain_loop(prob):
    gen = Generator(V, T, emb_dim=4, hidden_dim=5, init_std=0.5).double()
    batch = torch.randint(V, (4, T))
    u = torch.rand(2, 4, T, dtype=torch.float64)
    ours = scheduled_sampling_loss(gen, batch, prob, u)
    assert ours.item() == pytest.approx(plain_scheduled_sampling_loss(gen, batch, prob, u).item(), abs=1e-12)
    if prob == 0.0:  # no replacement: exactly the MLE loss
        assert ours.item() == pytest.approx(-gen.log_prob(batch).mean().item(), abs=1e-12)


def test_sampling_probability_schedule():
    assert sampling_probability(1, 0.0, 0.002) == pytest.approx(0.002)
    assert sampling_probability(200, 0.0, 0.002) == pytest.approx(0.4)
    assert sampling_probability(10_000, 0.5, 0.1) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_on_tiny_preset(tiny_cfg, tmp_path, method, monkeypatch):
    """Each method's log has its phases and fields, and its generator updates are wired to its own
    machinery: MLE and scheduled sampling call `supervised_updates` (at p = 0, and at the schedule's
    p of each step), PG-BLEU's roll-outs are scored by BLEU and SeqGAN's by the discriminator."""
    import seqgan.train as training
    from seqgan.discriminator import Discriminator

    supervised, rewards = [], []
    real_supervised, real_rollout = training.supervised_updates, training.rollout_shared

    def spy_supervised(generator, optimizer, data, num_batches, batch_size, grad_clip, sample_prob=0.0, masked=False):
        supervised.append((num_batches, sample_prob))
        return real_supervised(generator, optimizer, data, num_batches, batch_size, grad_clip, sample_prob, masked)

    def spy_rollout(policy, reward, *args, **kwargs):
        rewards.append(type(reward))
        return real_rollout(policy, reward, *args, **kwargs)

    monkeypatch.setattr(training, "supervised_updates", spy_supervised)
    monkeypatch.setattr(training, "rollout_shared", spy_rollout)
    set_field(tiny_cfg, "schedule.method", method)
    records = train(tiny_cfg, tmp_path, progress=False)
    s = tiny_cfg.schedule
    steps = range(1, s.adv_steps + 1) if method != "random" else range(0)
    if method == "mle":
        assert supervised == [(s.g_steps * tiny_cfg.mle.updates_per_g_step, 0.0) for _ in steps]
    elif method == "scheduled_sampling":
        ss = tiny_cfg.scheduled_sampling
        assert supervised == [(s.g_steps * ss.updates_per_g_step,
                               sampling_probability(step, ss.start_prob, ss.increase_per_step)) for step in steps]
        assert all(p > 0 for _, p in supervised)
    else:
        assert supervised == []
    want = {"pg_bleu": BleuReward, "seqgan": Discriminator}.get(method)
    assert rewards == ([want] * (s.adv_steps * s.g_steps) if want else [])
    phases = [r["phase"] for r in records]
    if method == "random":
        assert phases == ["init"]
        return
    assert phases.count("mle") == tiny_cfg.schedule.mle_epochs
    assert phases.count("d_pretrain") == (tiny_cfg.schedule.d_pretrain_rounds if method == "seqgan" else 0)
    adversarial = [r for r in records if r["phase"] == "adversarial"]
    assert len(adversarial) == tiny_cfg.schedule.adv_steps
    assert all(("d_loss" in r) == (method == "seqgan") for r in adversarial)
    assert all(("mean_reward" in r) == (method in ("seqgan", "pg_bleu")) for r in adversarial)
    assert all(("sample_prob" in r) == (method == "scheduled_sampling") for r in adversarial)
    assert "nll_oracle" in adversarial[-1]
    assert json.loads((tmp_path / "config.json").read_text())["schedule"]["method"] == method


def test_supervised_updates_lower_the_nll_and_clip_the_gradient():
    """The MLE baseline's updates descend the NLL (a sign slip would climb it), and, like every
    generator update, clip the gradient norm: with SGD at lr 1 the parameters move by exactly
    grad_clip (1e-6), with and without scheduled sampling."""
    from seqgan.baselines import supervised_updates

    torch.manual_seed(8)
    data = torch.randint(0, 5, (256, 6)) * 2  # only even tokens: easy to learn
    gen = Generator(10, 6, emb_dim=4, hidden_dim=8)
    nll = lambda: -gen.log_prob(data).mean().item()  # noqa: E731
    before = nll()
    supervised_updates(gen, torch.optim.Adam(gen.parameters(), lr=0.01), data, 40, 32, 5.0)
    assert nll() < before - 0.3
    for prob in (0.0, 0.5):
        start = torch.cat([p.detach().flatten().clone() for p in gen.parameters()])
        supervised_updates(gen, torch.optim.SGD(gen.parameters(), lr=1.0), data, 1, 32, 1e-3, prob)
        moved = torch.cat([p.detach().flatten() for p in gen.parameters()]) - start
        assert abs(moved.norm().item() - 1e-3) < 1e-6, prob


def test_method_validation(tiny_cfg):
    set_field(tiny_cfg, "schedule.method", "gan")
    with pytest.raises(SeqGANError, match="schedule.method must be one of"):
        tiny_cfg.validate()
