"""Training pieces: policy gradient = REINFORCE by hand, MLE and D learn, Algorithm 1 end to end."""

import json

import pytest
import torch

from seqgan.discriminator import Discriminator
from seqgan.generator import Generator
from seqgan.train import discriminator_epochs, mle_epoch, policy_gradient_loss, train

from conftest import log_probs_by_hand


def test_policy_gradient_equals_reinforce_by_hand():
    torch.manual_seed(3)
    gen = Generator(11, 5, emb_dim=3, hidden_dim=4, init_std=0.5).double()
    seqs = gen.sample(6)
    rewards = torch.rand(6, 5, dtype=torch.float64)
    gen.zero_grad()
    policy_gradient_loss(gen, seqs, rewards).backward()
    grads = {name: p.grad.clone() for name, p in gen.named_parameters()}

    # REINFORCE: -Σ_{b,t} Q_bt ∇ log G(y_bt | prefix), one autograd call per term.
    expected = {name: torch.zeros_like(p) for name, p in gen.named_parameters()}
    for b in range(6):
        for t in range(5):
            term = gen.log_prob(seqs[b:b + 1])[0, t]
            for (name, p), g in zip(gen.named_parameters(), torch.autograd.grad(term, list(gen.parameters()),
                                                                                  allow_unused=True)):
                if g is not None:
                    expected[name] -= rewards[b, t] * g
    for name in grads:
        assert torch.allclose(grads[name], expected[name], atol=1e-10, rtol=0), name

    # Closed form for the output bias: ∂ log softmax(z)_y / ∂z = onehot(y) - p.
    with torch.no_grad():
        probs = torch.softmax(gen.logits(seqs), dim=-1)
        onehot = torch.nn.functional.one_hot(seqs, 11).double()
        bias_grad = -(rewards.unsqueeze(-1) * (onehot - probs)).sum(dim=(0, 1))
    assert torch.allclose(grads["out.bias"], bias_grad, atol=1e-10, rtol=0)


def test_mle_epoch_lowers_nll():
    torch.manual_seed(4)
    data = torch.randint(0, 5, (256, 6)) * 2  # only even tokens: easy to learn
    gen = Generator(10, 6, emb_dim=4, hidden_dim=8)
    opt = torch.optim.Adam(gen.parameters(), lr=0.01)
    first = mle_epoch(gen, opt, data, 32, 5.0)
    for _ in range(5):
        last = mle_epoch(gen, opt, data, 32, 5.0)
    assert last < first - 0.3


def test_what_an_epoch_returns_is_the_direct_computation_when_nothing_moves():
    """With a learning rate of 0 the weights stay put, so what an epoch returns must equal one
    computation over all its data: MLE's mean token NLL (2 equal batches; log-softmax and gather
    in float64, 1e-5), the discriminator's last-epoch loss (4 equal batches: mean cross-entropy +
    0.2 · ½Σw² of the output layer, 1e-5) and accuracy (all 128 rows, exact), and the supervised
    baselines' mean loss over their random batches (every row alike: each batch's loss is that row's)."""
    import copy

    from seqgan.baselines import supervised_updates

    torch.manual_seed(6)
    gen = Generator(10, 6, emb_dim=4, hidden_dim=8)
    data = gen.sample(64)
    wide = copy.deepcopy(gen).double()
    loss = mle_epoch(gen, torch.optim.SGD(gen.parameters(), lr=0.0), data, 32, 5.0)
    assert loss == pytest.approx(-log_probs_by_hand(wide, data).mean().item(), abs=1e-5, rel=0)
    row = data[:1].repeat(40, 1)
    loss = supervised_updates(gen, torch.optim.SGD(gen.parameters(), lr=0.0), row, 3, 8, 5.0).item()
    assert loss == pytest.approx(-log_probs_by_hand(wide, data[:1]).mean().item(), abs=1e-5, rel=0)

    dis = Discriminator(10, 6, emb_dim=4, filter_sizes=(1, 2), num_filters=(4, 4), dropout_keep=1.0)
    positives = torch.randint(0, 10, (64, 6))
    d_loss, d_acc = discriminator_epochs(dis, torch.optim.SGD(dis.parameters(), lr=0.0), positives, data, 2, 32, 0.2)
    tokens, labels = torch.cat([positives, data]), torch.cat([torch.ones(64), torch.zeros(64)]).long()
    with torch.no_grad():
        logits = dis(tokens)
        l2 = 0.5 * (dis.out.weight.square().sum() + dis.out.bias.square().sum())
        expected = torch.nn.functional.cross_entropy(logits, labels) + 0.2 * l2
    assert d_loss == pytest.approx(expected.item(), abs=1e-5, rel=0)
    assert d_acc == (logits.argmax(1) == labels).float().mean().item() and 0 < d_acc < 1


def test_discriminator_learns_to_separate():
    torch.manual_seed(5)
    positives = torch.randint(0, 5, (256, 8))
    negatives = torch.randint(5, 10, (256, 8))
    dis = Discriminator(10, 8, emb_dim=4, filter_sizes=(1, 2), num_filters=(4, 4))
    opt = torch.optim.Adam(dis.parameters(), lr=1e-2)
    _, acc = discriminator_epochs(dis, opt, positives, negatives, 5, 32, 0.2)
    assert acc > 0.95
    assert dis.prob_real(positives).mean() > 0.9 and dis.prob_real(negatives).mean() < 0.1


def test_tiny_run_end_to_end(tmp_path, tiny_cfg):
    records = train(tiny_cfg, tmp_path, progress=False)
    assert records[0]["phase"] == "init" and "nll_oracle" in records[0]
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == records
    phases = [r["phase"] for r in lines]
    s = tiny_cfg.schedule
    assert phases.count("mle") == s.mle_epochs
    assert phases.count("d_pretrain") == s.d_pretrain_rounds
    assert phases.count("adversarial") == s.adv_steps
    assert all("d_acc" in r and "d_loss" in r for r in lines if r["phase"] in ("d_pretrain", "adversarial"))
    assert all({"g_loss", "mean_reward"} <= r.keys() for r in lines if r["phase"] == "adversarial")
    assert lines[-1]["phase"] == "adversarial" and "nll_oracle" in lines[-1]
    assert json.loads((tmp_path / "config.json").read_text()) == json.loads(json.dumps(tiny_cfg.to_dict()))
    samples = (tmp_path / "samples.txt").read_text().splitlines()
    assert len(samples) == s.num_eval and len(samples[0].split()) == tiny_cfg.data.seq_len
    assert (tmp_path / "checkpoint.pt").is_file()
    import math
    assert all(math.isfinite(v) for r in lines for v in r.values() if isinstance(v, float))
    assert all(0.0 <= r["d_acc"] <= 1.0 for r in lines if "d_acc" in r)
    after_mle = [r for r in lines if r["phase"] == "mle" and "nll_oracle" in r][-1]
    # MLE learns the oracle (tiny, seed 88: 3.722 / 3.031 before, 2.981 / 2.702 after; margin 0.2)
    assert after_mle["nll_oracle"] < records[0]["nll_oracle"] - 0.2
    assert after_mle["nll_test"] < records[0]["nll_test"] - 0.2


def test_same_seed_same_run(tmp_path, tiny_cfg):
    a = train(tiny_cfg, tmp_path / "a", progress=False)
    b = train(tiny_cfg, tmp_path / "b", progress=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rs]  # noqa: E731
    assert strip(a) == strip(b)


def test_nan_loss_stops_with_phase_and_step():
    from seqgan.config import SeqGANError

    gen = Generator(10, 6, emb_dim=4, hidden_dim=8)
    with torch.no_grad():
        gen.out.bias[3] = float("nan")
    opt = torch.optim.Adam(gen.parameters(), lr=0.01)
    with pytest.raises(SeqGANError, match="phase mle at step 7"):
        mle_epoch(gen, opt, torch.randint(0, 10, (64, 6)), 32, 5.0, step=7)


def test_deterministic_flag_runs_and_changes_nothing_on_cpu(tmp_path, tiny_cfg):
    plain = train(tiny_cfg, tmp_path / "plain", progress=False)
    tiny_cfg.run.deterministic = True
    try:
        strict = train(tiny_cfg, tmp_path / "strict", progress=False)
    finally:
        torch.use_deterministic_algorithms(False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rs]  # noqa: E731
    assert strip(plain) == strip(strict)


def test_compile_auto_only_for_long_discriminator_schedules():
    """`run.compile=auto` compiles where ~15 s of compiling pays back (>= 100k D batches): the paper
    preset (200 × 5 × 3 epochs of 313 batches + pre-training = 985,950), not tiny or quick, never a
    baseline (which trains no discriminator); on / off override."""
    from seqgan.config import preset
    from seqgan.train import discriminator_batches, use_compile

    paper = preset("paper")
    assert discriminator_batches(paper) == 313 * (50 * 3 + 200 * 5 * 3) and use_compile(paper)
    assert not use_compile(preset("quick")) and not use_compile(preset("tiny"))
    paper.schedule.method = "mle"
    assert discriminator_batches(paper) == 0 and not use_compile(paper)
    quick = preset("quick")
    quick.run.compile = "on"
    assert use_compile(quick)
    paper.schedule.method, paper.run.compile = "seqgan", "off"
    assert not use_compile(paper)


def test_graphed_epochs_sum_like_eager_steps():
    """`discriminator_epochs` with a graph-like step object (full batches through it, which keeps
    its own sums; the partial last batch eager): the same loss, accuracy and parameters, bit for
    bit, as all-eager epochs. A CPU stand-in for `GraphedDiscriminatorStep`."""
    from seqgan.discriminator import Discriminator
    from seqgan.train import discriminator_epochs, discriminator_step

    class StandIn:
        def __init__(self, d, opt):
            self.d, self.opt, self.calls = d, opt, 0
            self.loss_sum, self.correct_sum = torch.zeros(()), torch.zeros((), dtype=torch.long)

        def zero_sums(self):
            self.loss_sum.zero_()
            self.correct_sum.zero_()

        def __call__(self, tokens, labels):
            self.calls += 1
            loss, correct = discriminator_step(self.d, self.opt, tokens, labels, 0.2)
            self.loss_sum.add_(loss)
            self.correct_sum.add_(correct)

    positives, negatives = torch.randint(0, 25, (150, 10)), torch.randint(15, 40, (150, 10))  # 300 = 4 × 64 + 44
    results = []
    for graphed in (False, True):
        torch.manual_seed(1)
        d = Discriminator(40, 10, emb_dim=8, filter_sizes=(1, 2, 3), num_filters=(8, 8, 8))
        opt = torch.optim.Adam(d.parameters(), lr=1e-3)
        stand_in = StandIn(d, opt) if graphed else None
        result = discriminator_epochs(d, opt, positives, negatives, 2, 64, 0.2, graphed=stand_in)
        results.append((result, [p.detach().clone() for p in d.parameters()]))
    assert stand_in.calls == 2 * 4
    (eager, eager_params), (graph, graph_params) = results
    assert eager == graph and all(torch.equal(a, b) for a, b in zip(eager_params, graph_params))


def test_masked_mle_loss_summed_over_ranks_is_the_whole_batch_mean():
    """Data-parallel MLE on a corpus: ranks' rows end at different EOS positions, and the sum of
    their `mle_loss` gradients must be the one-process gradient of the batch's per-token mean, which
    is itself checked against the loss written out with a hand-made mask (EOS counted, nothing after)."""
    from seqgan.data import EOS
    from seqgan.train import mle_loss

    torch.manual_seed(0)
    generator = Generator(12, 6, emb_dim=4, hidden_dim=5).double()
    batch = torch.randint(4, 12, (5, 6))
    batch[0, 1] = batch[1, 4] = batch[3, 2] = EOS  # rows end at different places; rows 2 and 4 never
    # Independent reference: the masks written out by hand (each row up to and including its EOS).
    by_hand = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0], [1] * 6, [1, 1, 1, 0, 0, 0], [1] * 6],
                           dtype=torch.float64)
    for masked, mask in ((True, by_hand), (False, torch.ones(5, 6, dtype=torch.float64))):
        expected = -(generator.log_prob(batch) * mask).sum() / mask.sum()
        assert mle_loss(generator, batch, slice(0, 5), 1.0, masked).item() == pytest.approx(expected.item(), abs=1e-12)
        generator.zero_grad()
        expected.backward()
        reference = [p.grad.clone() for p in generator.parameters()]
        generator.zero_grad()
        mle_loss(generator, batch, slice(0, 5), 1.0, masked).backward()
        whole = [p.grad.clone() for p in generator.parameters()]
        assert all(torch.allclose(p, r, rtol=0, atol=1e-12) for p, r in zip(whole, reference))
        generator.zero_grad()
        for mine in (slice(0, 3), slice(3, 5)):  # two ranks: 3 rows and 2
            mle_loss(generator, batch, mine, (mine.stop - mine.start) / 5, masked).backward()
        for p, one_process in zip(generator.parameters(), whole):
            assert torch.allclose(p.grad, one_process, rtol=0, atol=1e-12)


def test_nan_in_adversarial_updates_stops_with_phase_and_step():
    """The policy-gradient and discriminator NaN checks, as the MLE one above."""
    from seqgan.config import SeqGANError
    from seqgan.train import policy_gradient_step

    gen = Generator(10, 6, emb_dim=4, hidden_dim=8)
    seqs = gen.sample(8)
    rewards = torch.full((8, 6), 0.5)
    rewards[2, 3] = float("nan")
    with pytest.raises(SeqGANError, match="policy-gradient loss is nan in phase adversarial at step 4"):
        policy_gradient_step(gen, torch.optim.Adam(gen.parameters(), lr=0.01), seqs, rewards, 5.0, step=4)
    dis = Discriminator(10, 6, emb_dim=4, filter_sizes=(1, 2), num_filters=(3, 3))
    with torch.no_grad():
        dis.out.bias[0] = float("nan")
    with pytest.raises(SeqGANError, match="discriminator loss is nan in phase adversarial at step 9"):
        discriminator_epochs(dis, torch.optim.Adam(dis.parameters(), lr=1e-4), seqs, gen.sample(8), 1, 4, 0.2,
                             "adversarial", 9)


def test_training_on_cpu_flushes_subnormal_floats(tmp_path, tiny_cfg):
    """A trained discriminator's Adam moments fill with subnormal floats, which the CPU computes on
    ~100x slower (paper-size D epoch 15.5 s vs 6.9 s, measured): train() flushes them to zero."""
    torch.set_flush_denormal(False)
    assert (torch.tensor([1e-30]) * 1e-10).item() != 0.0  # a subnormal result, kept
    tiny_cfg.schedule.adv_steps = 1
    train(tiny_cfg, tmp_path, progress=False)
    assert (torch.tensor([1e-30]) * 1e-10).item() == 0.0


def test_progress_lines_where_there_are_no_bars(tmp_path, capsys):
    """Without bars, `report_every` gives one stderr line per step at most that often, never after a
    phase's last step: run name, phase, step/last, time a step, time left, the latest NLL."""
    from seqgan.config import preset

    cfg = preset("tiny")
    train(cfg, tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""  # the library is silent unless asked
    train(cfg, tmp_path / "r", progress=False, report_every=1e-9)
    lines = capsys.readouterr().err.splitlines()
    s = cfg.schedule
    expected = [f"MLE pre-training {i}/{s.mle_epochs}" for i in range(1, s.mle_epochs)] \
        + [f"D pre-training {i}/{s.d_pretrain_rounds}" for i in range(1, s.d_pretrain_rounds)] \
        + [f"adversarial {i}/{s.adv_steps}" for i in range(1, s.adv_steps)]
    assert len(lines) == len(expected)
    for line, phase in zip(lines, expected):
        assert line.startswith(f"seqgan: r: {phase}, ") and " a step, about " in line and " left in the phase" in line
    records = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    at_2 = next(r for r in records if r["phase"] == "adversarial" and r["step"] == 2)  # adv_eval_every 2
    assert lines[-1].endswith(f", NLL-oracle {at_2['nll_oracle']:.3f} after adversarial 2")


def test_progress_line_times_the_steps_since_the_previous_line(monkeypatch, capsys):
    """A long pause (here step 3 takes 100 s, the others 1 s) shows in the next line only; later
    lines say 1 s a step again, where a mean since the start would still say ~10 s."""
    from types import SimpleNamespace

    from seqgan.train import ProgressLines

    clock = iter([0.0, 1.0, 2.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0, 108.0, 109.0])
    monkeypatch.setattr("seqgan.train.time.perf_counter", lambda: next(clock))
    for _ in ProgressLines("r", 2.0, SimpleNamespace(records=[])).over(range(1, 11), "adversarial"):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["seqgan: r: adversarial 2/10, 1.0 s a step, about 8.0 s left in the phase",
                     "seqgan: r: adversarial 3/10, 100 s a step, about 11.7 min left in the phase",
                     "seqgan: r: adversarial 5/10, 1.0 s a step, about 5.0 s left in the phase",
                     "seqgan: r: adversarial 7/10, 1.0 s a step, about 3.0 s left in the phase",
                     "seqgan: r: adversarial 9/10, 1.0 s a step, about 1.0 s left in the phase"]


def _copy_adam_or_skip(discriminator, lr=1e-3):
    """`discriminator_optimizer` with compiling on (bf16, CPU): CopyAdam; a skip where this
    machine cannot compile at all (no C++ compiler: the fallback test below covers what runs then),
    a failure where it can but our kernel did not compile."""
    import warnings

    from seqgan.train import CopyAdam, discriminator_optimizer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt = discriminator_optimizer(discriminator, lr, torch.device("cpu"), compile=True)
    if not isinstance(opt, CopyAdam):
        from conftest import compiled_optimizer_or_skip
        compiled_optimizer_or_skip(type(opt).__name__, [w.message for w in caught])
    return opt


def _small_discriminator(seed=0):
    torch.manual_seed(seed)
    d = Discriminator(50, 8, emb_dim=8, filter_sizes=(2, 3, 8), num_filters=(12, 10, 6))
    d.compute_dtype = torch.bfloat16
    return d


def test_copy_adam_is_adam_through_the_bf16_copy():
    """CPU bf16 training with compiling on: the highway weight is used through a bf16 copy and
    updated by one compiled kernel from the copy's gradient. The same step with plain fused Adam
    (autocast casting the weight and its gradient) gives the same loss, and the same weights and
    moments to fp32 rounding (rtol 1e-6, moments atol 2e-7; the kernel orders Adam's arithmetic its
    own way); so do two more steps from the same given gradients, with no recompiling of the kernel."""
    from seqgan.train import adam, discriminator_step
    plain, copied = _small_discriminator(), _small_discriminator()
    plain_opt, copied_opt = adam(plain.parameters(), 1e-3, torch.device("cpu")), _copy_adam_or_skip(copied)
    tokens, labels = torch.randint(0, 50, (16, 8)), torch.arange(16) % 2
    losses = []
    with torch._dynamo.config.patch(error_on_recompile=True):
        for model, opt in ((plain, plain_opt), (copied, copied_opt)):
            torch.manual_seed(5)  # the same dropout mask
            losses.append(discriminator_step(model, opt, tokens, labels, 0.2)[0])
        assert losses[0] == losses[1]  # the forward saw the same bf16 weights
        assert copied.highway.weight.grad is None and copied.highway_copy.value.dtype == torch.bfloat16
        torch.manual_seed(6)
        for _ in range(2):
            for p, q in zip(plain.parameters(), copied.parameters()):
                grad = torch.randn_like(p).bfloat16().float()
                p.grad = grad
                if q is copied.highway.weight:
                    copied.highway_copy.value.grad = grad.bfloat16()
                else:
                    q.grad = grad.clone()
            plain_opt.step()
            copied_opt.step()
    for (name, p), q in zip(plain.named_parameters(), copied.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-9, msg=name)
        for key in ("exp_avg", "exp_avg_sq"):
            # moments of O(1) gradients: within ~1 ulp of 1 where two terms nearly cancel
            torch.testing.assert_close(copied_opt.state[q][key], plain_opt.state[p][key], rtol=1e-6, atol=2e-7)
    step = copied_opt.state[copied.highway.weight]["step"]
    assert (float(step), step.dtype, step.device.type) == (3.0, torch.float32, "cpu")  # as fused Adam's
    # The copy is the new weight in bf16, and the state dict is plain Adam's: it loads into one.
    assert torch.equal(copied.highway_copy.value, copied.highway.weight.detach().bfloat16())
    # Its state_dict is a plain Adam's: it loads into one and gives the same moments there.
    target = _small_discriminator()
    fresh = adam(target.parameters(), 1e-3, torch.device("cpu"))
    fresh.load_state_dict(copied_opt.state_dict())
    for p, q in zip(target.parameters(), copied.parameters()):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert fresh.state[p][key].shape == copied_opt.state[q][key].shape
            assert torch.equal(fresh.state[p][key], copied_opt.state[q][key])


def test_copy_adam_refuses_what_it_does_not_implement():
    from seqgan.train import discriminator_optimizer
    d = _small_discriminator()
    opt = _copy_adam_or_skip(d)
    with pytest.raises(ValueError, match="no closure"):
        opt.step(lambda: 0.0)
    opt.param_groups[0]["weight_decay"] = 0.1
    with pytest.raises(ValueError, match="without weight decay"):
        opt.step()
    opt.param_groups[0]["weight_decay"] = 0.0
    discriminator_optimizer(d, 1e-3, torch.device("cpu"), compile=True)  # a newer one takes the copy
    with pytest.raises(RuntimeError, match="newer optimizer"):
        opt.step()


def test_weight_copy_follows_a_weight_changed_outside_the_optimizer():
    copied = _small_discriminator()
    _copy_adam_or_skip(copied)
    other = _small_discriminator(seed=1)
    tokens = torch.randint(0, 50, (4, 8))
    copied.load_state_dict(other.state_dict())  # e.g. a checkpoint restored
    copied.eval(), other.eval()
    assert torch.equal(copied.highway_copy.get(), other.highway.weight.detach().bfloat16())
    assert torch.equal(copied(tokens), other(tokens))


def test_discriminator_optimizer_falls_back_to_adam_when_compiling_fails(monkeypatch):
    from seqgan.train import discriminator_optimizer

    def broken(*args, **kwargs):
        raise RuntimeError("no working compiler")

    monkeypatch.setattr(torch, "compile", broken)
    d = _small_discriminator()
    with pytest.warns(UserWarning, match="torch.compile of the discriminator's Adam failed"):
        opt = discriminator_optimizer(d, 1e-3, torch.device("cpu"), compile=True)
    assert type(opt) is torch.optim.Adam and d.highway_copy is None
    d.compute_dtype = None  # fp32 training: no copy, nothing compiled
    monkeypatch.undo()
    assert type(discriminator_optimizer(d, 1e-3, torch.device("cpu"), compile=True)) is torch.optim.Adam


def test_discriminator_is_trained_with_the_real_data_as_positives(tmp_path, tiny_cfg, monkeypatch):
    """Every D update in `train` (pre-training and adversarial) gets the oracle's training
    sequences as positives and fresh generator samples as negatives, in that order: swapped, D
    would call generated text real and SeqGAN's reward would point the wrong way."""
    import seqgan.train as training
    from seqgan.oracle import build_oracle, oracle_samples

    calls, real_epochs = [], training.discriminator_epochs

    def spy(discriminator, optimizer, positives, negatives, *args, **kwargs):
        calls.append((positives.clone(), negatives.clone()))
        return real_epochs(discriminator, optimizer, positives, negatives, *args, **kwargs)

    monkeypatch.setattr(training, "discriminator_epochs", spy)
    train(tiny_cfg, tmp_path, progress=False)
    d, s = tiny_cfg.data, tiny_cfg.schedule
    assert len(calls) == s.d_pretrain_rounds + s.adv_steps * s.d_steps
    real = {tuple(row) for row in oracle_samples(build_oracle(d), d.num_train, d.data_seed,
                                                 tiny_cfg.run.sample_batch).tolist()}
    for positives, negatives in calls:
        assert len(positives) == len(negatives) == min(s.num_negatives, d.num_train)
        assert all(tuple(row) in real for row in positives.tolist())
        # generated: mostly not training sequences (tiny's 20-token, 8-long oracle repeats few)
        assert sum(tuple(row) in real for row in negatives.tolist()) < 0.1 * len(negatives)
    assert not torch.equal(calls[0][1], calls[1][1])  # fresh negatives each round
    assert not torch.equal(calls[0][0], calls[1][0])  # and a fresh draw of 256 of the 512 positives


def test_adversarial_loop_wires_rewards_optimizer_and_step_counts(tmp_path, tiny_cfg, monkeypatch):
    """Algorithm 1's loop as `train` runs it: each of the g-steps feeds the roll-out's Q-values
    unchanged to the policy-gradient update (the last position's = D(Y), the discriminator's
    P(real) of the whole sequence), through its own optimizer at `generator.adv_lr`, not the MLE
    one; each adversarial step makes g-steps generator and d-steps discriminator updates of
    d_epochs epochs, D pre-training rounds d_pretrain_epochs."""
    import seqgan.train as training

    s = tiny_cfg.schedule
    s.adv_steps, s.g_steps, s.d_steps, s.d_epochs, s.d_pretrain_rounds, s.d_pretrain_epochs = 2, 2, 3, 2, 2, 1
    tiny_cfg.generator.adv_lr = 0.003  # the MLE optimizer keeps generator.lr = 0.01
    seen = {"q": [], "pg": [], "mle": [], "d": []}
    real = {name: getattr(training, name) for name in ("rollout_shared", "policy_gradient_step", "mle_epoch",
                                                       "discriminator_epochs")}

    def rollout_spy(policy, reward, seqs, *args, **kwargs):
        q = real["rollout_shared"](policy, reward, seqs, *args, **kwargs)
        assert torch.allclose(q[:, -1], reward.prob_real(seqs), atol=1e-6, rtol=0)
        seen["q"].append(q.clone())
        return q

    def pg_spy(generator, optimizer, seqs, rewards, *args, **kwargs):
        seen["pg"].append((optimizer, rewards.clone()))
        seen.setdefault("g_loss", []).append(real["policy_gradient_step"](generator, optimizer, seqs, rewards,
                                                                          *args, **kwargs))
        return seen["g_loss"][-1]

    def mle_spy(generator, optimizer, *args, **kwargs):
        seen["mle"].append(optimizer)
        return real["mle_epoch"](generator, optimizer, *args, **kwargs)

    def d_spy(*args, **kwargs):
        seen["d"].append((args[7], args[4]))  # phase, epochs
        seen.setdefault("d_out", []).append(real["discriminator_epochs"](*args, **kwargs))
        return seen["d_out"][-1]

    for name, spy in (("rollout_shared", rollout_spy), ("policy_gradient_step", pg_spy), ("mle_epoch", mle_spy),
                      ("discriminator_epochs", d_spy)):
        monkeypatch.setattr(training, name, spy)
    train(tiny_cfg, tmp_path, progress=False)
    assert len(seen["q"]) == len(seen["pg"]) == 2 * 2
    for q, (optimizer, rewards) in zip(seen["q"], seen["pg"]):
        assert torch.equal(rewards, q) and 0 < q.min() and q.max() < 1
        assert optimizer is not seen["mle"][0] and [g["lr"] for g in optimizer.param_groups] == [0.003]
    assert [g["lr"] for g in seen["mle"][0].param_groups] == [0.01] and len(seen["mle"]) == s.mle_epochs
    assert seen["d"] == [("d_pretrain", 1)] * 2 + [("adversarial", 2)] * (2 * 3)
    # Each step's log line: its last g-step's loss and mean Q-value, its last d-step's loss and accuracy
    logged = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
              if r["phase"] == "adversarial"]
    assert [r["step"] for r in logged] == [1, 2]
    for r in logged:
        last_g, last_d = 2 * r["step"] - 1, 2 + 3 * r["step"] - 1
        assert r["g_loss"] == seen["g_loss"][last_g] and r["mean_reward"] == seen["pg"][last_g][1].mean().item()
        assert (r["d_loss"], r["d_acc"]) == seen["d_out"][last_d]


def test_pg_bleu_rewards_against_the_training_sequences(tmp_path, tiny_cfg, monkeypatch):
    """PG-BLEU's reward references are the oracle's training sequences (the real data S), never
    the held-out test samples NLL-test is measured on."""
    import seqgan.train as training
    from seqgan.oracle import build_oracle, oracle_samples

    references, real_class = [], training.BleuReward

    def spy(refs, *args, **kwargs):
        references.append(refs.clone())
        return real_class(refs, *args, **kwargs)

    monkeypatch.setattr(training, "BleuReward", spy)
    tiny_cfg.schedule.method, tiny_cfg.schedule.adv_steps = "pg_bleu", 1
    train(tiny_cfg, tmp_path, progress=False)
    d = tiny_cfg.data
    assert len(references) == 1
    assert torch.equal(references[0], oracle_samples(build_oracle(d), d.num_train, d.data_seed, tiny_cfg.run.sample_batch))


def test_logged_nll_test_is_the_final_generator_on_the_held_out_oracle_samples(tmp_path, tiny_cfg):
    """The last logged NLL-test equals, within 1e-5 nats (float32 model vs a float64 recomputation),
    the final generator's mean token NLL on num_test oracle samples drawn with data_seed + 1 — a
    set apart from the training samples (data_seed) — computed here by log-softmax and gather."""
    from seqgan.checkpoint import run_checkpoint
    from seqgan.oracle import build_oracle, oracle_samples
    from seqgan.train import build_generator

    records = train(tiny_cfg, tmp_path, progress=False)
    d, chunk = tiny_cfg.data, tiny_cfg.run.sample_batch
    oracle = build_oracle(d)
    test = oracle_samples(oracle, d.num_test, d.data_seed + 1, chunk)
    training = oracle_samples(oracle, d.num_train, d.data_seed, chunk)
    assert not torch.equal(test, training[:d.num_test])
    generator = build_generator(tiny_cfg).double()
    generator.load_state_dict(run_checkpoint(tmp_path)[1]["generator"])
    assert abs(records[-1]["nll_test"] - (-log_probs_by_hand(generator, test).mean().item())) < 1e-5
    train_nll = -log_probs_by_hand(generator, training).mean().item()
    assert abs(records[-1]["nll_test"] - train_nll) > 1e-3  # a different set: a different number


def test_nll_at_a_temperature_is_the_tempered_softmax_by_hand():
    """NLL-test at τ (the temperature sweep's x axis) = mean -log softmax(logits / τ)[y], float64."""
    from seqgan.metrics import nll_test

    torch.manual_seed(6)
    gen = Generator(13, 7, emb_dim=4, hidden_dim=6, init_std=0.7).double()
    data = torch.randint(0, 13, (40, 7))
    for tau in (0.5, 1.0, 2.0):
        by_hand = -log_probs_by_hand(gen, data, tau).mean().item()
        assert abs(nll_test(gen, data, chunk=16, temperature=tau) - by_hand) < 1e-12, tau
    assert nll_test(gen, data, temperature=0.5) != nll_test(gen, data, temperature=2.0)


def test_generator_updates_clip_the_gradient_norm():
    """MLE and policy-gradient steps clip the global gradient norm at grad_clip: with SGD at lr 1
    the parameters move by exactly the clipped gradient (norm = grad_clip, 1e-6), where the raw
    gradient's norm is far above it."""
    from seqgan.train import policy_gradient_step

    torch.manual_seed(7)
    gen = Generator(10, 6, emb_dim=4, hidden_dim=8, init_std=0.5).double()
    data = torch.randint(0, 10, (32, 6))
    for update in ("mle", "policy gradient"):
        before = torch.cat([p.detach().flatten().clone() for p in gen.parameters()])
        opt = torch.optim.SGD(gen.parameters(), lr=1.0)
        if update == "mle":
            mle_epoch(gen, opt, data, 32, 0.01)
        else:
            policy_gradient_step(gen, opt, data, torch.full((32, 6), 50.0, dtype=torch.float64), 0.01, 1)
        moved = torch.cat([p.detach().flatten() for p in gen.parameters()]) - before
        assert abs(moved.norm().item() - 0.01) < 1e-6, update
