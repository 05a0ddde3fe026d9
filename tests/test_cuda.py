"""The CUDA fast paths against the CPU / plain references (skipped where no CUDA device exists).

Run on a GPU machine: `python -m pytest tests/test_cuda.py` (benchmarks/gpu_checks.sh does).
"""

import warnings

import pytest
import torch

from seqgan.checkpoint import run_checkpoint
from seqgan.discriminator import Discriminator
from seqgan.generator import Generator, categorical
from seqgan.reference import PlainDiscriminator, plain_rollout_rewards
from seqgan.rollout import rollout_rewards
from seqgan.train import GraphedDiscriminatorStep, Interrupted, adam, discriminator_epochs, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("vocab", [150, 5000, 997])
def test_sampler_on_cuda_equals_cpu(vocab):
    """Same float64 logits and uniforms: the same tokens on CUDA (row max always subtracted) as on
    CPU (row max subtracted only where needed); a boundary hit needs a ~1e-13 coincidence."""
    logits = torch.randn(4096, vocab, dtype=torch.float64) * 3
    uniform = torch.rand(4096, dtype=torch.float64)
    assert torch.equal(categorical(logits.to(CUDA), uniform.to(CUDA)).cpu(), categorical(logits, uniform))


def test_batched_rollout_equals_plain_loop_on_cuda():
    """The CPU test's check on CUDA: same noise, float64, Q-values equal within 1e-12."""
    V, T, B, N = 17, 6, 5, 3
    gen = Generator(V, T, emb_dim=4, hidden_dim=5, init_std=0.5).double().to(CUDA)
    dis = Discriminator(V, T, emb_dim=4, filter_sizes=(1, 2, 4), num_filters=(3, 3, 3)).double().to(CUDA)
    seqs = gen.sample(B)
    u = torch.rand(N, T - 1, B, T, dtype=torch.float64, device=CUDA)
    batched = rollout_rewards(gen, dis, seqs, N, uniforms=u, chunk=7)
    assert torch.allclose(batched, plain_rollout_rewards(gen, dis, seqs, N, uniforms=u), rtol=0, atol=1e-12)


def test_bf16_discriminator_on_cuda_matches_plain_fp32():
    """Paper-sized D on CUDA under bf16 (training and scoring paths) against the per-filter Conv2d
    form in fp32 on CPU: P(real) within 0.02, loss within 1 %, gradient cosine > 0.99."""
    d = Discriminator(5000, 20, dropout_keep=1.0)
    plain = PlainDiscriminator.copy_of(d)
    tokens, labels = torch.randint(0, 5000, (256, 20)), torch.randint(0, 2, (256,))
    ref_loss, ref_logits = plain.loss(tokens, labels, 0.2)
    ref_grad = torch.autograd.grad(ref_loss, plain.highway_transform.weight)[0]
    ref_p = torch.softmax(ref_logits.detach(), dim=1)[:, 1]
    d = d.to(CUDA)
    d.compute_dtype = torch.bfloat16
    loss, _ = d.loss(tokens.to(CUDA), labels.to(CUDA), 0.2)
    grad = torch.autograd.grad(loss, d.highway.weight)[0][:d.num_features].cpu()  # the transform half
    assert abs(loss.item() - ref_loss.item()) < 0.01 * ref_loss.item()
    assert (d.prob_real(tokens.to(CUDA)).cpu() - ref_p).abs().max() < 0.02
    assert torch.nn.functional.cosine_similarity(grad.flatten(), ref_grad.flatten(), dim=0) > 0.99


def _trained(graph: bool, tokens: torch.Tensor, compile: bool = False):
    torch.manual_seed(1)
    d = Discriminator(5000, 20).to(CUDA)
    d.compute_dtype = torch.bfloat16
    opt = adam(d.parameters(), 1e-4, CUDA)
    discriminator_epochs(d, opt, tokens[:320], tokens[320:640], 1, 64, 0.2)  # optimizer state before capture
    graphed = GraphedDiscriminatorStep(d, opt, 64, 0.2, compile=compile) if graph else None
    result = discriminator_epochs(d, opt, tokens[:1000], tokens[1000:], 2, 64, 0.2, graphed=graphed)
    return result, [p.detach().clone() for p in d.parameters()]


def test_graphed_discriminator_step_equals_eager():
    """The CUDA-graph replay of a training step computes what the eager step computes, dropout
    included: the capture's warm-up leaves no trace in parameters, optimizer state or the random
    generator, and replays draw the random numbers eager steps draw (identical kernels; tolerance
    1e-6 for safety)."""
    tokens = torch.randint(0, 5000, (2030, 20), device=CUDA)  # 2030: a last, partial (eager) batch
    (loss_e, acc_e), eager = _trained(False, tokens)
    (loss_g, acc_g), graphed = _trained(True, tokens)
    assert abs(loss_e - loss_g) < 1e-6 and acc_e == acc_g
    assert max((a - b).abs().max().item() for a, b in zip(eager, graphed)) < 1e-6


def test_compiled_graphed_step_matches_eager():
    """torch.compile'd loss in the graph (`run.compile`): fused kernels round bf16 differently, so
    the same training (same batches, same dropout masks) agrees within bf16 tolerance: last
    epoch's loss within 1 %, accuracy within 2 points, and the two runs' parameters closer to each
    other than 10 % of how far training moved them (a frozen mask or a wrong gradient: ~100 %)."""
    tokens = torch.randint(0, 5000, (2030, 20), device=CUDA)
    torch.manual_seed(1)  # the initial parameters `_trained` starts from
    start = [p.detach().clone() for p in Discriminator(5000, 20).parameters()]
    (loss_e, acc_e), eager = _trained(False, tokens)
    with warnings.catch_warnings():  # compiled, not the fallback (which would match eager exactly)
        warnings.filterwarnings("error", message="torch.compile of the discriminator failed")
        (loss_c, acc_c), compiled = _trained(True, tokens, compile=True)
    assert abs(loss_e - loss_c) < 0.01 * loss_e and abs(acc_e - acc_c) <= 0.02
    moved = sum(((e - s.to(CUDA)) ** 2).sum() for e, s in zip(eager, start)) ** 0.5
    apart = sum(((e - c) ** 2).sum() for e, c in zip(eager, compiled)) ** 0.5
    assert apart < 0.1 * moved


def test_compile_failure_falls_back_to_the_plain_graph(monkeypatch):
    """A compiler that fails part-way through the warm-up (after one real step): the step warns,
    undoes that step and trains exactly as the plain graph does."""
    real_compile = torch.compile

    def broken(fn):
        calls = []

        def once_then_fail(*args, **kwargs):
            calls.append(1)
            if len(calls) > 1:
                raise RuntimeError("no working compiler")
            return fn(*args, **kwargs)
        return once_then_fail
    monkeypatch.setattr(torch, "compile", broken)
    tokens = torch.randint(0, 5000, (2030, 20), device=CUDA)
    with pytest.warns(UserWarning, match="torch.compile of the discriminator failed"):
        (loss_f, acc_f), fallback = _trained(True, tokens, compile=True)
    monkeypatch.setattr(torch, "compile", real_compile)
    (loss_e, acc_e), eager = _trained(False, tokens)
    assert abs(loss_e - loss_f) < 1e-6 and acc_e == acc_f
    assert max((a - b).abs().max().item() for a, b in zip(eager, fallback)) < 1e-6


def test_capture_leaves_the_random_generator_as_it_was():
    d = Discriminator(5000, 20).to(CUDA)
    d.compute_dtype = torch.bfloat16
    opt = adam(d.parameters(), 1e-4, CUDA)
    before = torch.cuda.get_rng_state()
    GraphedDiscriminatorStep(d, opt, 64, 0.2)
    assert torch.equal(torch.cuda.get_rng_state(), before)


def test_graphed_step_draws_fresh_dropout_each_replay():
    """Dropout inside the graph: each replay must draw a new mask (a frozen mask would train a
    different model). Same batch, same parameters (lr 0): the loss differs across replays."""
    d = Discriminator(5000, 20).to(CUDA)
    d.compute_dtype = torch.bfloat16
    opt = adam(d.parameters(), 0.0, CUDA)
    step = GraphedDiscriminatorStep(d, opt, 64, 0.2)
    tokens, labels = torch.randint(0, 5000, (64, 20), device=CUDA), torch.arange(64, device=CUDA) % 2
    losses = set()
    for _ in range(5):
        step(tokens, labels)
        losses.add(round(step.loss.item(), 6))
    assert len(losses) == 5


def test_tiny_run_on_cuda_is_reproducible(tmp_path, tiny_cfg):
    """End to end on CUDA with --deterministic: finite metrics, same seed -> same metrics log."""
    tiny_cfg.run.device = "cuda"
    tiny_cfg.run.deterministic = True
    try:
        a = train(tiny_cfg, tmp_path / "a", progress=False)
        b = train(tiny_cfg, tmp_path / "b", progress=False)
    finally:
        torch.use_deterministic_algorithms(False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rs]  # noqa: E731
    assert strip(a) == strip(b)
    assert a[-1]["phase"] == "adversarial" and torch.isfinite(torch.tensor(a[-1]["nll_oracle"]))


def test_tiny_run_with_compiled_discriminator_on_cuda(tmp_path, tiny_cfg):
    """`train` end to end with `run.compile=on` (the path `auto` takes on long schedules)."""
    tiny_cfg.run.device, tiny_cfg.run.compile = "cuda", "on"
    with warnings.catch_warnings():  # compiled, not the uncompiled fallback
        warnings.filterwarnings("error", message="torch.compile of the discriminator failed")
        records = train(tiny_cfg, tmp_path, progress=False)
    assert records[-1]["phase"] == "adversarial" and torch.isfinite(torch.tensor(records[-1]["nll_oracle"]))


@pytest.mark.parametrize("stop_at_poll", [2, 6])  # tiny: MLE epoch 2 (no D state yet), D round 2
def test_checkpoint_written_on_cpu_resumes_on_cuda(tmp_path, tiny_cfg, stop_at_poll):
    """A run pre-trained on a CPU continues on a GPU (how scripts/table1_row.py trains a Table 1
    row): the CPU-built Adam state (empty, or with CPU step counts) must become capturable for
    the graphed discriminator step."""
    polls = []
    with pytest.raises(Interrupted):
        train(tiny_cfg, tmp_path, progress=False, should_stop=lambda: polls.append(1) or len(polls) == stop_at_poll)
    cfg, payload = run_checkpoint(tmp_path)
    cfg.run.device = "cuda"
    records = train(cfg, tmp_path, progress=False, resume=payload)
    assert records[-1]["phase"] == "adversarial" and torch.isfinite(torch.tensor(records[-1]["nll_oracle"]))
