"""`seqgan bench`: our fast paths against plain reference implementations, timed in one run.

Every comparison builds both sides at the paper's sizes and times them in the same process, so
machine noise affects both; speed-ups are ratios of the best of ``repeats`` timings.
"""

from __future__ import annotations

import time

import torch

from .config import Config, DiscriminatorConfig
from .discriminator import Discriminator
from .generator import Generator
from .reference import PlainDiscriminator, plain_discriminator_epoch, plain_rollout_rewards, plain_sample
from .rollout import rollout_rewards
from .train import (GraphedDiscriminatorStep, adam, build_discriminator, build_generator, discriminator_epoch_rows,
                    discriminator_epochs, discriminator_optimizer, flush_denormals, mle_epoch, policy_gradient_step,
                    resolve_device, resolve_precision, use_compile)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _best_time(fn, repeats: int, device: torch.device = torch.device("cpu")) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def _paper_discriminator(vocab_size: int, seq_len: int) -> Discriminator:
    banks = [(k, n) for k, n in zip(DiscriminatorConfig.filter_sizes, DiscriminatorConfig.num_filters) if k <= seq_len]
    return Discriminator(vocab_size, seq_len, filter_sizes=tuple(k for k, _ in banks),
                         num_filters=tuple(n for _, n in banks))


def discriminator_flops(d: Discriminator) -> int:
    """Forward FLOPs per sequence (2 per multiply-add; no padding): filter banks over their valid
    windows, the highway layer (transform + gate) and the output layer."""
    emb = d.embedding.embedding_dim
    conv = sum(2 * (d.seq_len - k + 1) * k * emb * bank.out_features for k, bank in zip(d.filter_sizes, d.banks))
    return conv + 2 * d.highway.in_features * d.highway.out_features + 2 * d.out.in_features * d.out.out_features


def matmul_peak_gflops(device: torch.device, size: int = 2048, repeats: int = 5) -> dict:
    """Best of fp32 and bf16 size² matmul rates on ``device``."""
    rates = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, device=device).to(dtype)
        a @ a  # warm-up
        rates[name] = 2 * size ** 3 / _best_time(lambda: a @ a, repeats, device) / 1e9
    return rates


def bench_rollout(repeats: int = 1, batch: int = 64, num_rollouts: int = 16, seq_len: int = 20,
                  vocab_size: int = 5000, seed: int = 0, device: str = "cpu") -> dict:
    """Q-values for one batch at the paper's sizes and the paper's discriminator: our batched
    roll-out (discriminator at the automatic precision) vs a plain port of the authors' per-(n,
    prefix) loop with torch.multinomial and the per-filter Conv2d discriminator in fp32."""
    dev = resolve_device(device)
    torch.manual_seed(seed)
    generator = Generator(vocab_size, seq_len).to(dev)
    discriminator = _paper_discriminator(vocab_size, seq_len).to(dev)
    plain_discriminator = PlainDiscriminator.copy_of(discriminator).to(dev)
    discriminator.compute_dtype = resolve_precision("auto", dev)
    seqs = generator.sample(batch)
    rollout_rewards(generator, discriminator, seqs[:2], 2)  # warm-up
    ours = _best_time(lambda: rollout_rewards(generator, discriminator, seqs, num_rollouts), repeats, dev)
    plain = _best_time(lambda: plain_rollout_rewards(generator, plain_discriminator, seqs, num_rollouts), repeats, dev)
    return {"ours_s": round(ours, 4), "plain_s": round(plain, 4), "speedup": round(plain / ours, 2)}


class _Setup:
    """The paper-sized models, data and optimizers both sides of a comparison use."""

    def __init__(self, device: str, seed: int, num_seqs: int):
        self.device = resolve_device(device)
        flush_denormals(self.device)  # as train() does
        self.cfg = cfg = Config()  # the paper's settings
        torch.manual_seed(seed)
        self.generator = build_generator(cfg).to(self.device)
        self.discriminator = build_discriminator(cfg).to(self.device)
        self.discriminator.compute_dtype = resolve_precision("auto", self.device)
        self.plain_discriminator = PlainDiscriminator.copy_of(self.discriminator).to(self.device)
        self.tokens = torch.randint(0, cfg.data.vocab_size, (num_seqs, cfg.data.seq_len), device=self.device)
        self.half = num_seqs // 2
        dis = cfg.discriminator
        compiled = use_compile(cfg)
        self.d_opt = discriminator_optimizer(self.discriminator, dis.lr, self.device, compiled)
        self.graphed = (GraphedDiscriminatorStep(self.discriminator, self.d_opt, dis.batch_size, dis.l2_reg,
                                                 compile=compiled)
                        if self.device.type == "cuda" else None)
        self.plain_d_opt = torch.optim.Adam(self.plain_discriminator.parameters(), lr=dis.lr)

    def ours_d_epoch(self) -> None:
        dis = self.cfg.discriminator
        discriminator_epochs(self.discriminator, self.d_opt, self.tokens[:self.half], self.tokens[self.half:],
                             1, dis.batch_size, dis.l2_reg, graphed=self.graphed)

    def plain_d_epoch(self) -> None:
        """The reference: per-filter Conv2d discriminator, fp32, PyTorch's default Adam, eager."""
        dis = self.cfg.discriminator
        plain_discriminator_epoch(self.plain_discriminator, self.plain_d_opt, self.tokens[:self.half],
                                  self.tokens[self.half:], dis.batch_size, dis.l2_reg)


def bench_discriminator(repeats: int = 1, num_seqs: int = 20_000, device: str = "cpu", seed: int = 0) -> dict:
    """One training epoch (batch 64, Adam) over ``num_seqs`` paper-sized sequences."""
    s = _Setup(device, seed, num_seqs)
    s.ours_d_epoch()  # warm-up (allocations, kernels)
    ours = _best_time(s.ours_d_epoch, repeats, s.device)
    reference = _best_time(s.plain_d_epoch, repeats, s.device)
    gflops = 3 * discriminator_flops(s.discriminator) * num_seqs / ours / 1e9
    peak = max(matmul_peak_gflops(s.device).values())
    return {"ours_s": round(ours, 3), "reference_s": round(reference, 3), "speedup": round(reference / ours, 2),
            "gflops": round(gflops, 1), "peak_gflops": round(peak, 1), "fraction_of_peak": round(gflops / peak, 4)}


def bench_sampling(repeats: int = 1, n: int = 10_000, device: str = "cpu", seed: int = 0) -> dict:
    """Sampling ``n`` paper-sized sequences: our sampler vs torch.multinomial step by step."""
    dev = resolve_device(device)
    torch.manual_seed(seed)
    generator = Generator(5000, 20).to(dev)
    generator.sample(64)  # warm-up
    ours = _best_time(lambda: generator.sample(n), repeats, dev)
    multinomial = _best_time(lambda: plain_sample(generator, n), repeats, dev)
    return {"ours_s": round(ours, 4), "multinomial_s": round(multinomial, 4), "speedup": round(multinomial / ours, 2)}


def adversarial_components(repeats: int = 1, device: str = "cpu", seed: int = 0,
                           reference: bool = True) -> dict:
    """Each piece of one paper adversarial step (and an MLE epoch), ours and optionally the
    reference's, measured in this run."""
    s = _Setup(device, seed, 20_000)
    g, gc, n = s.generator, s.cfg.generator, s.cfg.schedule.rollout_num
    seqs = g.sample(gc.batch_size)
    rewards = rollout_rewards(g, s.discriminator, seqs, n)
    g_opt = adam(g.parameters(), gc.adv_lr, s.device, fused_on_cpu=False)
    mle_opt = adam(g.parameters(), gc.lr, s.device, fused_on_cpu=False)
    real = g.sample(s.cfg.data.num_train)
    s.ours_d_epoch()  # warm-up
    g_update = _best_time(lambda: policy_gradient_step(g, g_opt, seqs, rewards, gc.grad_clip), max(repeats, 3),
                          s.device)
    parts = {"ours": {
        "rollout_s": _best_time(lambda: rollout_rewards(g, s.discriminator, seqs, n), repeats, s.device),
        "g_update_s": g_update,
        "sample_10k_s": _best_time(lambda: g.sample(10_000), repeats, s.device),
        "d_epoch_s": _best_time(s.ours_d_epoch, repeats, s.device),
        "mle_epoch_s": _best_time(lambda: mle_epoch(g, mle_opt, real, gc.batch_size, gc.grad_clip), repeats,
                                  s.device)}}
    if reference:
        parts["reference"] = {
            "rollout_s": _best_time(lambda: plain_rollout_rewards(g, s.plain_discriminator, seqs, n), repeats,
                                    s.device),
            "g_update_s": g_update,  # the same code on both sides
            "sample_10k_s": _best_time(lambda: plain_sample(g, 10_000), repeats, s.device),
            "d_epoch_s": _best_time(s.plain_d_epoch, repeats, s.device)}
    return parts


def adversarial_step_seconds(c: dict) -> float:
    """roll-out + generator update + 5 × (sampling 10k negatives + 3 × discriminator epoch)."""
    return c["rollout_s"] + c["g_update_s"] + 5 * (c["sample_10k_s"] + 3 * c["d_epoch_s"])


def bench_adversarial_step(repeats: int = 1, device: str = "cpu") -> tuple[dict, dict]:
    """Returns the result ({"ours_s", "reference_s", "speedup"}) and the measured components."""
    c = adversarial_components(repeats, device)
    ours, reference = adversarial_step_seconds(c["ours"]), adversarial_step_seconds(c["reference"])
    return {"ours_s": round(ours, 2), "reference_s": round(reference, 2), "speedup": round(reference / ours, 2)}, c


def projected_schedule_seconds(ours: dict, cfg: Config | None = None) -> dict:
    """Wall time of a full schedule (default: the paper preset) from measured phase costs.
    Evaluation = sampling num_eval sequences (scoring them costs far less and is not counted)."""
    cfg = cfg or Config()
    s = cfg.schedule
    eval_s = ours["sample_10k_s"] * s.num_eval / 10_000
    d_epoch_s = ours["d_epoch_s"] * discriminator_epoch_rows(cfg) / 20_000
    n_mle_evals = len([e for e in range(1, s.mle_epochs + 1) if e % s.mle_eval_every == 0 or e == s.mle_epochs])
    n_adv_evals = len([e for e in range(1, s.adv_steps + 1) if e % s.adv_eval_every == 0 or e == s.adv_steps])
    d_round = ours["sample_10k_s"] * s.num_negatives / 10_000
    phases = {
        "mle_s": s.mle_epochs * ours["mle_epoch_s"] + (1 + n_mle_evals) * eval_s,
        "d_pretrain_s": s.d_pretrain_rounds * (d_round + s.d_pretrain_epochs * d_epoch_s),
        "adversarial_s": s.adv_steps * (s.g_steps * (ours["rollout_s"] + ours["g_update_s"])
                                        + s.d_steps * (d_round + s.d_epochs * d_epoch_s))
                         + n_adv_evals * eval_s,
    }
    return {"projected_s": round(sum(phases.values()), 1), **{k: round(v, 1) for k, v in phases.items()}}
