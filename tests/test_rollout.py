"""Monte Carlo roll-out: the batched path against a plain per-prefix loop, and reward placement."""

import torch

from seqgan.discriminator import Discriminator
from seqgan.generator import Generator
from seqgan.reference import plain_rollout_rewards
from seqgan.rollout import RolloutPolicy, rollout_completions, rollout_rewards

V, T, B, N = 17, 6, 5, 3


def tiny_models():
    gen = Generator(V, T, emb_dim=4, hidden_dim=5, init_std=0.5).double()
    dis = Discriminator(V, T, emb_dim=4, filter_sizes=(1, 2, 4), num_filters=(3, 3, 3)).double()
    return gen, dis


def test_batched_equals_plain_loop_with_same_noise():
    """Same uniforms: identical completions, hence identical Q (float64, tolerance 1e-12)."""
    gen, dis = tiny_models()
    seqs = gen.sample(B)
    u = torch.rand(N, T - 1, B, T, dtype=torch.float64)
    batched = rollout_rewards(gen, dis, seqs, N, uniforms=u, chunk=7)  # small chunk: exercise chunking
    plain = plain_rollout_rewards(gen, dis, seqs, N, uniforms=u)
    assert batched.shape == (B, T)
    assert torch.allclose(batched, plain, rtol=0, atol=1e-12)


def test_completions_keep_prefixes():
    gen, _ = tiny_models()
    seqs = gen.sample(B)
    comp = rollout_completions(gen, seqs, N)
    assert comp.shape == (T - 1, N, B, T)
    for t in range(1, T):
        assert torch.equal(comp[t - 1, :, :, :t], seqs[:, :t].expand(N, B, t))


class PositionDiscriminator(Discriminator):
    """P(real) ≈ 1 exactly when token `token` sits at position `pos`, else ≈ 0."""

    def __init__(self, pos: int, token: int):
        super().__init__(V, T, emb_dim=2, filter_sizes=(1,), num_filters=(1,))
        self.pos, self.token = pos, token

    def forward(self, tokens):
        hit = (tokens[:, self.pos] == self.token).double() * 60 - 30
        return torch.stack([torch.zeros_like(hit), hit], dim=1)


def rewards_on_right_pairs(q: torch.Tensor, seqs: torch.Tensor, pos: int, token: int) -> bool:
    """Once the prefix contains position `pos` (t > pos), Q[b, t] is D's verdict on sequence b."""
    expected = (seqs[:, pos] == token).double()
    return all(torch.allclose(q[:, t], expected, atol=1e-9) for t in range(pos, T))


def test_rewards_land_on_the_right_sequence_and_position():
    gen, _ = tiny_models()
    seqs = gen.sample(8)
    pos = 2
    seqs[::2, pos] = 7  # half the sequences carry the rewarded token
    seqs[1::2, pos] = 8
    dis = PositionDiscriminator(pos, token=7)
    q = rollout_rewards(gen, dis, seqs, N)
    assert rewards_on_right_pairs(q, seqs, pos, 7)
    # TextGAN-PyTorch's bug (issue #62): a [T·B] reward list reshaped with .view(B, T) without a
    # transpose. The same values in that layout must fail the check.
    buggy = q.T.reshape(-1).view(8, T)
    assert not rewards_on_right_pairs(buggy, seqs, pos, 7)


def test_rollout_policy_delayed_copy():
    gen, _ = tiny_models()
    same = RolloutPolicy(gen, 0.0)
    assert same.module is gen
    delayed = RolloutPolicy(gen, 0.8)
    before = delayed.module.out.weight.clone()
    with torch.no_grad():
        gen.out.weight.add_(1.0)
        gen.embedding.weight.add_(1.0)
    delayed.update()
    assert torch.allclose(delayed.module.out.weight, 0.8 * before + 0.2 * gen.out.weight)
    assert torch.equal(delayed.module.embedding.weight, gen.embedding.weight)  # the authors' live embedding
    assert [name for name, _ in delayed.module.named_parameters()] == [name for name, _ in gen.named_parameters()]


def test_delayed_rollout_policy_starts_from_the_pretrained_generator(tmp_path, tiny_cfg, monkeypatch):
    """Algorithm 1: β ← θ after pre-training. With r > 0 the first adversarial roll-out must use the
    MLE-trained generator, not the copy made before pre-training."""
    import seqgan.train as train_module

    seen, states = [], []

    def spy(policy, reward, seqs, num_rollouts, chunk, masked=False):
        generator = generator_of[0]
        seen.append(max((b - t).abs().max().item() for b, t in zip(policy.parameters(), generator.parameters())))
        states.append(({k: v.clone() for k, v in policy.state_dict().items()},
                       {k: v.clone() for k, v in generator.state_dict().items()}))
        return real_rollout_shared(policy, reward, seqs, num_rollouts, chunk, masked)

    real_rollout_shared, real_build = train_module.rollout_shared, train_module.build_generator
    generator_of = []
    monkeypatch.setattr(train_module, "build_generator", lambda cfg: generator_of.append(real_build(cfg)) or generator_of[0])
    monkeypatch.setattr(train_module, "rollout_shared", spy)
    tiny_cfg.schedule.rollout_update_rate = 0.8
    tiny_cfg.schedule.adv_steps = 2
    train_module.train(tiny_cfg, tmp_path, progress=False)
    assert seen[0] == 0.0  # β = θ at the first g-step (the copy used to be the untrained generator)
    assert seen[-1] > 0.0  # then a delayed copy: β ← 0.8β + 0.2θ lags the updated θ
    # At step 2: β = 0.8 θ_0 + 0.2 θ_1 (θ_0: the generator at step 1's roll-out, θ_1: after its
    # policy-gradient update), the embedding θ_1's; 1e-6 (float32).
    (_, theta0), (beta, theta1) = states
    for name, value in beta.items():
        want = theta1[name] if name.startswith("embedding.") else 0.8 * theta0[name] + 0.2 * theta1[name]
        assert torch.allclose(value, want, atol=1e-6, rtol=0), name
    assert not torch.equal(theta0["out.weight"], theta1["out.weight"])


def test_rollout_of_no_rows():
    """A data-parallel rank may get no share of a batch: an empty [0, T] result, no error."""
    from seqgan.baselines import BleuReward

    gen, dis = tiny_models()
    seqs = gen.sample(B)
    assert rollout_rewards(gen, dis, seqs[:0], N).shape == (0, T)
    assert rollout_rewards(gen, BleuReward(seqs, 2, V), seqs[:0], N).shape == (0, T)
