"""SeqGAN training: the paper's Algorithm 1.

    pre-train G_θ by MLE on S                                    -> mle_epoch
    generate negatives, pre-train D_φ (real = 1, generated = 0)  -> discriminator_epochs
    repeat: g-steps: Y ~ G_θ, Q by Monte Carlo roll-out, PG step -> rollout_rewards, policy_gradient_step
            β ← θ (or β ← rβ + (1−r)θ)                           -> RolloutPolicy.update
            d-steps: fresh negatives, k epochs of D              -> discriminator_epochs

`train` runs it end to end, on the synthetic task or a corpus, and writes the run directory:
config.json, metrics.jsonl, checkpoint.pt, samples.txt (vocab.json on a corpus, tensorboard/ with
run.tensorboard). With ``schedule.method`` set to a baseline
(baselines.py) the same schedule runs with the baseline's generator update in place of the
adversarial one, and no discriminator is trained; its steps are still logged as phase
"adversarial" (the adversarial phase's budget of steps and generator updates).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import dist
from .baselines import BleuReward, sampling_probability, supervised_updates
from .checkpoint import (CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME, PHASES, SAMPLES_NAME, _message_line,
                         check_still_locked, directory_lock, restore, save_checkpoint, write_text_atomic)
from .config import Config, SeqGANError, is_device_name
from .discriminator import Discriminator, WeightCopy
from .generator import Generator
from .data import BOS, VOCAB_NAME, Corpus, check_run_corpus, eos_mask, load_corpus, pad_after_eos
from .metrics import nll_oracle, nll_test
from .oracle import build_oracle, oracle_samples, oracle_test_samples
from .rollout import RolloutPolicy, as_reward, rollout_rewards


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not is_device_name(name):
        raise SeqGANError(f"unknown device {name!r} (choose from auto, cpu, cuda, cuda:N, mps)")
    kind, _, index = name.partition(":")
    if kind == "cuda" and not torch.cuda.is_available():
        raise SeqGANError(f"--device {name} requested but no CUDA device is available")
    if index and int(index) >= torch.cuda.device_count():
        raise SeqGANError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          f"numbered from 0")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise SeqGANError("--device mps requested but MPS is not available")
    if index:  # the current device too: CUDA graphs' streams and synchronize() use it
        torch.cuda.set_device(int(index))
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The discriminator's autocast dtype: None (float32) or torch.bfloat16. `auto` picks bf16 on
    GPUs that support it and on CPUs with AMX tiles (bf16 matmuls ~6x faster than fp32 there)."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        return torch.bfloat16 if amx() else None
    return None


def flush_denormals(device: torch.device) -> None:
    """On CPU, compute with floats below 1.2e-38 as 0 (flush-to-zero; process-wide). A trained
    discriminator's Adam moments fill with such subnormal numbers (measured: 48 % of the highway
    weight's first moment after the paper's D pre-training), and the CPU works on them ~100x
    slower: a paper-size D epoch took 15.5 s instead of 6.9 s. Their updates (< 1e-30 of a weight)
    are nothing; flushing them is deterministic, so same-seed runs stay bit-identical."""
    if device.type == "cpu":
        torch.set_flush_denormal(True)


def keep_freed_memory() -> None:
    """Stop glibc from handing freed memory back to the kernel. By default every allocation of
    more than a few MB (the discriminator's bf16 highway weight and its gradient, the generator's
    logits on a large vocabulary, ...) is a fresh mmap, which the kernel zero-fills page by page
    on first touch and unmaps on free. Serving everything from the heap and keeping freed memory
    measured 35.5 -> 26.1 ms per CPU discriminator step and 52 -> 28 s per PTB MLE epoch (vocab
    10k: 105 MB logits; sys time 51 -> 1 s). Freed blocks are reused, so peak memory rises only by
    fragmentation (measured in README). No-op where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_max = -1, -4
    mallopt(m_mmap_max, 0)  # no mmap-backed blocks: every allocation from the heap
    mallopt(m_trim_threshold, 512 << 20)


def adam(params, lr: float, device: torch.device, fused_on_cpu: bool = True) -> torch.optim.Adam:
    """Adam with the fused kernel (one pass over the parameters, not ~10) on CUDA, capturable so
    its step can live inside a CUDA graph; on CPU fused where it measured faster (the
    discriminator's 7M parameters: ~1.5x per epoch; the generator's 0.3M: slower than foreach)."""
    fused = device.type == "cuda" or (device.type == "cpu" and fused_on_cpu)
    return torch.optim.Adam(params, lr=lr, fused=fused, capturable=device.type == "cuda")


def _adam_from_copy(weight, grad, exp_avg, exp_avg_sq, copy, step_size, bias2_sqrt, beta1: float, beta2: float,
                    eps: float) -> None:
    """Adam's update of ``weight`` from the low-precision gradient of its ``copy``, then the new
    copy: torch.optim.Adam's arithmetic, step_size = lr / (1 - beta1^t) and bias2_sqrt =
    sqrt(1 - beta2^t) as 0-d tensors (computed outside: inside they would be per element)."""
    g = grad.float()
    exp_avg.lerp_(g, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    weight.sub_(exp_avg / (exp_avg_sq.sqrt() / bias2_sqrt + eps) * step_size)
    copy.copy_(weight)


class CopyAdam(torch.optim.Adam):
    """Fused Adam for the discriminator on CPU under bf16, with its highway weight (5.9M of 7.0M
    parameters) used through a bf16 `WeightCopy`: one torch.compile'd pass reads the copy's bf16
    gradient, updates the fp32 weight and both moments and writes the new copy, where otherwise
    autocast casts the weight, the backward casts its gradient back and fused Adam makes a third
    pass (README, Speed: a D epoch 0.81-0.89x, `benchmarks/copy_adam_ab.py`). The arithmetic is Adam's
    in fp32 (no weight decay, amsgrad or maximize); the state dict is plain Adam's, so checkpoints
    move between this and `torch.optim.Adam` (CUDA). Build with `discriminator_optimizer`; the
    discriminator's copy belongs to the newest such optimizer (an older one refuses to step)."""

    def __init__(self, discriminator: Discriminator, lr: float, kernel):
        super().__init__(discriminator.parameters(), lr=lr, fused=True)
        self.discriminator, self.copy, self.kernel = discriminator, discriminator.highway_copy, kernel
        self.group = next(g for g in self.param_groups if any(p is self.copy.weight for p in g["params"]))

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        self.copy.value.grad = None

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("CopyAdam.step takes no closure")
        if self.discriminator.highway_copy is not self.copy:
            raise RuntimeError("the discriminator's highway copy belongs to a newer optimizer")
        group = self.group
        if group["weight_decay"] or group["amsgrad"] or group["maximize"] or group["differentiable"]:
            raise ValueError("CopyAdam implements Adam without weight decay, amsgrad, maximize or differentiable")
        adam_step = torch.optim.Adam.step  # without the step hooks, which this step's own wrapper runs
        (adam_step.__wrapped__ if getattr(adam_step, "hooked", False) else adam_step)(self)
        copy, weight = self.copy, self.copy.weight  # Adam skipped the weight: its gradient is the copy's
        if copy.value.grad is None:
            return
        state = self.state[weight]
        if not state:  # as torch.optim.Adam(fused=True) creates it
            state["step"] = torch.zeros((), dtype=torch.float32, device=weight.device)
            state["exp_avg"] = torch.zeros_like(weight, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(weight, memory_format=torch.preserve_format)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        step = state["step"].double()  # a CPU tensor: CopyAdam runs on CPU only
        tensors = (weight, copy.value.grad, state["exp_avg"], state["exp_avg_sq"], copy.value)
        flat = [t.detach().view(-1) for t in tensors]
        self.kernel(*flat, (group["lr"] / (1 - beta1 ** step)).float(), (1 - beta2 ** step).sqrt().float(),
                    beta1, beta2, group["eps"])
        copy.mark_synced()


def discriminator_optimizer(discriminator: Discriminator, lr: float, device: torch.device,
                            compile: bool) -> torch.optim.Adam:
    """The discriminator's Adam: `CopyAdam` on one CPU process training in bf16 where ``compile``
    (`use_compile`) and compiling works, else `adam` (the model then casts as before). Build one
    per discriminator: it replaces any copy an earlier call attached."""
    discriminator.highway_copy = None
    if not (compile and device.type == "cpu" and discriminator.compute_dtype is not None and dist.world() == 1):
        return adam(discriminator.parameters(), lr, device)
    try:
        # Static shapes (a dynamic-size kernel measured 2.4x slower): compiled now for the weight's
        # size, on scratch tensors under no_grad as in `step`, so a failure shows here, not mid-run,
        # and `step`'s flat tensors find it compiled.
        kernel = torch.compile(_adam_from_copy, dynamic=False)
        size, low = discriminator.highway.weight.numel(), discriminator.compute_dtype
        with torch.no_grad():
            kernel(torch.zeros(size), torch.zeros(size, dtype=low), torch.zeros(size), torch.zeros(size),
                   torch.zeros(size, dtype=low), torch.tensor(1.0), torch.tensor(1.0), 0.9, 0.999, 1e-8)
    except Exception as e:  # no C++ compiler, a compiler bug: the plain fused Adam
        warnings.warn(f"torch.compile of the discriminator's Adam failed ({type(e).__name__}); "
                      "using the uncompiled optimizer", stacklevel=2)
        return adam(discriminator.parameters(), lr, device)
    discriminator.highway_copy = WeightCopy(discriminator.highway.weight, discriminator.compute_dtype)
    return CopyAdam(discriminator, lr, kernel)


# torch.compile of the discriminator's loss costs ~15 s once and saves ~0.37 ms per training batch
# (H200: 0.89 -> 0.51 ms), so `run.compile=auto` compiles from this many batches on (the paper
# preset: ~990k, ~6 min saved; with it forced on, tiny went 5.3 -> 19.9 s and quick 16.0 -> 34.1 s).
COMPILE_FROM_BATCHES = 100_000


def discriminator_epoch_rows(cfg: Config) -> int:
    """Sequences in one discriminator epoch: as many real as generated (`negatives_and_positives`)."""
    return 2 * min(cfg.data.num_train, cfg.schedule.num_negatives)


def discriminator_batches(cfg: Config) -> int:
    """Discriminator training batches in the whole schedule (SeqGAN only; baselines train no D)."""
    s = cfg.schedule
    if s.method != "seqgan":
        return 0
    per_epoch = -(-discriminator_epoch_rows(cfg) // cfg.discriminator.batch_size)
    return per_epoch * (s.d_pretrain_rounds * s.d_pretrain_epochs + s.adv_steps * s.d_steps * s.d_epochs)


def use_compile(cfg: Config) -> bool:
    if cfg.run.compile != "auto":
        return cfg.run.compile == "on"
    return discriminator_batches(cfg) >= COMPILE_FROM_BATCHES


def use_deterministic_kernels() -> None:
    """Ask PyTorch for deterministic kernels (warn, not fail, where an op has none) and cuBLAS for a
    fixed workspace. CPU runs are reproducible without this; on CUDA it makes runs repeatable on
    the same GPU and software, at some speed cost."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_generator(cfg: Config) -> Generator:
    d, g = cfg.data, cfg.generator
    return Generator(d.vocab_size, d.seq_len, g.emb_dim, g.hidden_dim, d.start_token, g.init_std, g.single_bias)


def build_discriminator(cfg: Config) -> Discriminator:
    d, dis = cfg.data, cfg.discriminator
    return Discriminator(d.vocab_size, d.seq_len, dis.emb_dim, dis.filter_sizes, dis.num_filters,
                         dis.dropout_keep, dis.highway_init)


def _check_finite(loss: torch.Tensor, what: str, phase: str, step: int) -> float:
    """The loss as a float; a NaN or infinite loss stops the run with a one-line error."""
    value = loss.item()
    if not math.isfinite(value):
        raise SeqGANError(f"{what} loss is {value} in phase {phase} at step {step}; stopping "
                          "(any checkpoint written before it is intact)")
    return value


def _my_rows(batch_rows: int) -> tuple[slice, float]:
    """This rank's rows of a global batch and their share of it (the whole batch, 1.0, alone)."""
    mine = dist.share(batch_rows)
    return mine, (mine.stop - mine.start) / batch_rows


def mle_loss(generator: Generator, batch: torch.Tensor, mine: slice, weight: float, masked: bool) -> torch.Tensor:
    """This rank's part of the batch's mean token NLL: summed over ranks it is the whole batch's.
    Unmasked every row has T tokens (the mean of its rows times its share of them); masked (corpus)
    its rows' NLL summed over their tokens up to each first EOS, over the whole batch's count."""
    log_prob = generator.log_prob(batch[mine])
    if not masked:
        return -log_prob.mean() * weight
    mask = eos_mask(batch)
    return -(log_prob * mask[mine]).sum() / mask.sum()


def mle_epoch(generator: Generator, optimizer: torch.optim.Optimizer, data: torch.Tensor,
              batch_size: int, grad_clip: float, step: int = 0, masked: bool = False) -> float:
    """One epoch of teacher-forced maximum likelihood (mean token NLL); returns the mean loss.
    Losses are summed on the device and read once per epoch (no per-batch GPU sync). Data-parallel:
    each rank's share of every batch, gradients summed over ranks (see dist.py)."""
    generator.train()
    order = torch.randperm(data.shape[0], device=data.device)
    total = torch.zeros((), device=data.device)
    batches = 0
    for lo in range(0, data.shape[0], batch_size):
        batch = data[order[lo:lo + batch_size]]
        mine, weight = _my_rows(len(batch))
        optimizer.zero_grad(set_to_none=True)
        if weight > 0:  # weight is exactly 1.0 in one process: the products below change no bit
            loss = mle_loss(generator, batch, mine, weight, masked)
            loss.backward()
            total += loss.detach()
        dist.sum_gradients(generator)
        torch.nn.utils.clip_grad_norm_(generator.parameters(), grad_clip)
        optimizer.step()
        batches += 1
    return _check_finite(dist.sum_tensor(total) / batches, "generator MLE", "mle", step)


def policy_gradient_loss(generator: Generator, seqs: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """−Σ_{b,t} log G_θ(y_t | Y_1:t-1) · Q(Y_1:t-1, y_t): the authors' loss (sum, no baseline)."""
    return -(generator.log_prob(seqs) * rewards).sum()


def policy_gradient_step(generator: Generator, optimizer: torch.optim.Optimizer, seqs: torch.Tensor,
                         rewards: torch.Tensor, grad_clip: float, step: int = 0) -> float:
    generator.train()
    loss = policy_gradient_loss(generator, seqs, rewards)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(generator.parameters(), grad_clip)
    optimizer.step()
    return _check_finite(loss, "policy-gradient", "adversarial", step)


def discriminator_step(discriminator: Discriminator, optimizer: torch.optim.Optimizer, tokens: torch.Tensor,
                       labels: torch.Tensor, l2_reg: float, loss_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One Adam step on a batch; returns the loss and the number of correct predictions (tensors).
    Data-parallel: the dropout mask is drawn for the whole batch, each rank runs its rows (one
    process: all rows, weight exactly 1.0). ``loss_fn``: `Discriminator.loss` or a compiled form."""
    mine, weight = _my_rows(len(tokens))
    mask = discriminator.keep_mask(len(tokens), tokens.device)[mine] if discriminator.dropout.p > 0 else None
    optimizer.zero_grad(set_to_none=True)
    loss = torch.zeros((), device=tokens.device)
    correct = torch.zeros((), dtype=torch.long, device=tokens.device)  # the dtype of the others' count
    if weight > 0:
        loss, logits = (loss_fn or discriminator.loss)(tokens[mine], labels[mine], l2_reg, mask)
        loss = loss * weight
        loss.backward()
        loss, correct = loss.detach(), (logits.argmax(dim=1) == labels[mine]).sum()
    dist.sum_gradients(discriminator)
    optimizer.step()
    return dist.sum_tensor(loss), dist.sum_tensor(correct)


class GraphedDiscriminatorStep:
    """`discriminator_step` for one batch shape, captured once as a CUDA graph and then replayed.

    A batch-64 step launches ~200 small kernels; on a GPU their launch cost, not the arithmetic,
    bounds it. Replaying the graph is one launch. With ``compile`` the loss inside the graph is
    torch.compile'd (fused elementwise work: 202 -> 120 kernels and 0.88 -> 0.51 ms a step on an
    H200, `benchmarks/gpu_discriminator_variants.py`); where compiling fails the step falls back
    to the plain loss with a warning. Capture needs a few warm-up steps: parameters, optimizer
    state and the CUDA random generator are restored afterwards (in place, so the graph's
    addresses stay valid), so training continues exactly where it was and draws the random
    numbers an eager run would. Needs Adam(capturable=True) (see `adam`).
    """

    def __init__(self, discriminator: Discriminator, optimizer: torch.optim.Optimizer, batch_size: int,
                 l2_reg: float, warmup: int = 3, compile: bool = False):
        device = discriminator.out.weight.device
        self.tokens = torch.zeros(batch_size, discriminator.seq_len, dtype=torch.long, device=device)
        self.labels = torch.arange(batch_size, device=device) % 2
        params = [p for group in optimizer.param_groups for p in group["params"]]
        saved_params = [p.detach().clone() for p in params]
        saved_state = {id(p): {k: v.clone() for k, v in optimizer.state[p].items()}
                       for p in params if optimizer.state[p]}
        saved_rng = torch.cuda.get_rng_state(device)

        def undo_warmup() -> None:  # undo the warm-up and capture steps
            with torch.no_grad():
                for p, saved in zip(params, saved_params):
                    p.copy_(saved)
                for p in params:  # state created by the warm-up is zeroed: the same as fresh Adam state
                    for key, value in optimizer.state[p].items():
                        if id(p) in saved_state:
                            value.copy_(saved_state[id(p)][key])
                        else:
                            value.zero_()
            torch.cuda.set_rng_state(saved_rng, device)

        discriminator.train()
        self.loss_sum = torch.zeros((), device=device)  # summed inside the graph: no per-batch host work
        self.correct_sum = torch.zeros((), dtype=torch.long, device=device)
        if compile:
            try:
                with warnings.catch_warnings():  # Inductor's tuning advice, not actionable here
                    warnings.filterwarnings("ignore", message="(?s).*(Online softmax|TensorFloat32)")
                    self._capture(discriminator, optimizer, l2_reg, warmup, torch.compile(discriminator.loss))
                undo_warmup()
                return
            except Exception as e:  # no Triton, an unsupported GPU, a compiler bug: run uncompiled
                warnings.warn(f"torch.compile of the discriminator failed ({type(e).__name__}); "
                              "running its CUDA graph uncompiled", stacklevel=2)
                undo_warmup()
        self._capture(discriminator, optimizer, l2_reg, warmup, discriminator.loss)
        undo_warmup()

    def _capture(self, discriminator, optimizer, l2_reg, warmup, loss_fn) -> None:
        """``warmup`` eager steps on a side stream (a compiled ``loss_fn`` compiles here), then the
        step's capture into `graph`."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    discriminator_step(discriminator, optimizer, self.tokens, self.labels, l2_reg, loss_fn)
        finally:
            torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss, self.correct = discriminator_step(discriminator, optimizer, self.tokens, self.labels, l2_reg,
                                                         loss_fn)
            self.loss_sum.add_(self.loss)
            self.correct_sum.add_(self.correct)

    def __call__(self, tokens: torch.Tensor, labels: torch.Tensor) -> None:
        """One step; its loss and correct count land in `loss` / `correct` and are added to
        `loss_sum` / `correct_sum`."""
        self.tokens.copy_(tokens)
        self.labels.copy_(labels)
        self.graph.replay()

    def zero_sums(self) -> None:
        self.loss_sum.zero_()
        self.correct_sum.zero_()


def discriminator_epochs(discriminator: Discriminator, optimizer: torch.optim.Optimizer,
                         positives: torch.Tensor, negatives: torch.Tensor, epochs: int,
                         batch_size: int, l2_reg: float, phase: str = "", step: int = 0,
                         graphed: GraphedDiscriminatorStep | None = None) -> tuple[float, float]:
    """``epochs`` passes over positives (label 1) + negatives (label 0), shuffled; returns the
    last epoch's mean loss and training accuracy. ``graphed`` replays full batches as a CUDA graph."""
    tokens = torch.cat([positives, negatives])
    labels = torch.cat([torch.ones(len(positives), dtype=torch.long, device=tokens.device),
                        torch.zeros(len(negatives), dtype=torch.long, device=tokens.device)])
    discriminator.train()
    loss_sum = correct = torch.zeros((), device=tokens.device)
    batches = 0
    for _ in range(epochs):
        order = torch.randperm(len(tokens), device=tokens.device)
        shuffled, shuffled_labels = tokens[order], labels[order]
        loss_sum = correct = torch.zeros((), device=tokens.device)
        batches = 0
        if graphed is not None:
            graphed.zero_sums()
        for lo in range(0, len(tokens), batch_size):
            batch, batch_labels = shuffled[lo:lo + batch_size], shuffled_labels[lo:lo + batch_size]
            if graphed is not None and len(batch) == batch_size:
                graphed(batch, batch_labels)  # sums its loss and count itself, added below
            else:
                loss, right = discriminator_step(discriminator, optimizer, batch, batch_labels, l2_reg)
                loss_sum = loss_sum + loss
                correct = correct + right
            batches += 1
        if graphed is not None:  # only the last batch can be partial: the sum's order is unchanged
            loss_sum, correct = loss_sum + graphed.loss_sum, correct + graphed.correct_sum
        _check_finite(loss_sum, "discriminator", phase, step)
    return loss_sum.item() / max(batches, 1), correct.item() / len(tokens)


def sample_shared(generator: Generator, n: int, chunk: int, masked: bool = False) -> torch.Tensor:
    """``n`` samples [n, T] from noise drawn for all n rows at once; data-parallel ranks each
    sample their share of the rows and all-gather, so every rank gets what one process gets.
    ``masked`` (corpus data): PAD after each first EOS."""
    weight = generator.out.weight
    uniforms = torch.rand(n, generator.seq_len, device=weight.device, dtype=weight.dtype)
    mine = dist.share(n)
    tokens = dist.gather_rows(generator.sample(mine.stop - mine.start, chunk=chunk, uniforms=uniforms[mine]), n)
    return pad_after_eos(tokens) if masked else tokens


def rollout_shared(policy: Generator, reward, seqs: torch.Tensor, num_rollouts: int, chunk: int,
                   masked: bool = False) -> torch.Tensor:
    """`rollout_rewards` of ``seqs`` with noise drawn for the whole batch; data-parallel ranks each
    roll out their share of the sequences and all-gather the Q-values. ``masked`` (corpus data):
    completions are scored with PAD after their first EOS, as real sequences look."""
    if masked:
        score = as_reward(reward, chunk)
        reward = lambda tokens: score(pad_after_eos(tokens))  # noqa: E731
    batch, length = seqs.shape
    weight = policy.out.weight
    uniforms = torch.rand(num_rollouts, length - 1, batch, length, device=weight.device, dtype=weight.dtype)
    mine = dist.share(batch)
    q = rollout_rewards(policy, reward, seqs[mine], num_rollouts, uniforms=uniforms[:, :, mine], chunk=chunk)
    return dist.gather_rows(q, batch)


def resolve_corpus(cfg: Config) -> Corpus:
    """Load ``data.corpus`` and fit the config to it: vocab_size, seq_len (max_len + 1 for EOS),
    start_token = BOS, and discriminator filters no wider than seq_len (wider ones are dropped)."""
    corpus = load_corpus(cfg.data)
    d, dis = cfg.data, cfg.discriminator
    d.vocab_size, d.seq_len, d.start_token = len(corpus.vocab), corpus.seq_len, BOS
    d.num_train, d.num_test = len(corpus.train), max(len(corpus.test), 1)
    kept = [(k, n) for k, n in zip(dis.filter_sizes, dis.num_filters) if k <= d.seq_len]
    if not kept:
        raise SeqGANError(f"every discriminator filter {dis.filter_sizes} is wider than the corpus's sequences "
                          f"(seq_len {d.seq_len}: data.max_len or the longest line, + 1 for <eos>)")
    dis.filter_sizes, dis.num_filters = tuple(k for k, _ in kept), tuple(n for _, n in kept)
    cfg.validate()
    return corpus


def write_tokens(path: Path, tokens: torch.Tensor) -> None:
    """One sequence a line, space-separated token ids."""
    lines = (" ".join(map(str, row)) for row in tokens.cpu().tolist())
    write_text_atomic(path, "\n".join(lines) + "\n")


def tensorboard_writer_class():
    """torch's SummaryWriter, or a one-line error naming the missing package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise SeqGANError("--tensorboard needs the tensorboard package: pip install 'seqgan[tensorboard]'") from None
    return SummaryWriter


def read_metrics(path: Path, required: bool = True, lines: int | None = None) -> list[dict]:
    """The records of a metrics.jsonl (its first ``lines`` only, if given: what a checkpoint
    keeps, so a line being written after it does not matter); errors name the line. Each record
    is an object with a ``phase`` string, an integer ``step``, ``elapsed_s`` and otherwise numbers.
    Not ``required``: [] if absent or empty."""
    path = Path(path)
    if not path.is_file():
        if required:
            raise SeqGANError(f"no metrics log in {path.parent} (expected {path.name})")
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SeqGANError(f"{path}: not UTF-8 text (a damaged metrics log)") from None
    records = []
    for number, line in enumerate(text.splitlines()[:lines], start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise SeqGANError(f"{path}:{number}: not a JSON line") from None
        if not (isinstance(record, dict) and isinstance(record.get("phase"), str) and _in_range(record.get("step"), (int,))
                and "elapsed_s" in record and all(_in_range(v, (int, float)) for k, v in record.items()
                                                  if k not in ("phase", "step"))):
            raise SeqGANError(f"{path}:{number}: not a metrics record (phase, integer step, elapsed_s, numbers)")
        records.append(record)
    if not records and required:
        raise SeqGANError(f"{path}: empty metrics log")
    return records


def _in_range(value, types: tuple[type, ...]) -> bool:
    """A JSON number of one of ``types`` that a float holds (json reads integers of any length)."""
    return type(value) in types and (type(value) is float or abs(value) <= 2 ** 53)


class _NoLog:
    """What a data-parallel rank other than 0 logs: nothing."""
    records: list[dict] = []
    writer = None

    def write(self, phase: str, step: int, **values) -> dict:
        return {}


TENSORBOARD_NAME = "tensorboard"  # the run directory's folder of TensorBoard events (--tensorboard)


class RunLog:
    """The run directory's metrics.jsonl: one JSON object per line, flushed as written. ``keep``
    lines of an existing log are kept (a resumed run continues its checkpoint's log). With
    ``tensorboard`` every number also goes to TensorBoard as PHASE/FIELD against the line index."""

    def __init__(self, path: Path, started: float, keep: int = 0, tensorboard: bool = False):
        self.path = Path(path)
        self.writer = tensorboard_writer_class()(str(self.path.parent / TENSORBOARD_NAME)) if tensorboard else None
        self.records = read_metrics(self.path, required=False, lines=keep) if keep else []
        self.started = started - (self.records[-1]["elapsed_s"] if self.records else 0.0)
        write_text_atomic(self.path, "".join(json.dumps(record) + "\n" for record in self.records))

    def write(self, phase: str, step: int, **values) -> dict:
        record = {"phase": phase, "step": step, **{k: v for k, v in values.items() if v is not None},
                  "elapsed_s": round(time.perf_counter() - self.started, 3)}
        self.records.append(record)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("phase", "step", "elapsed_s") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{phase}/{key}", value, len(self.records))
            self.writer.flush()
        return record


def _bar(steps: range, desc: str, enabled: bool, lines: "ProgressLines | None" = None):
    """A progress bar over a phase's steps, or where bars are off and ``lines`` is given, lines."""
    if lines is not None and not enabled:
        return lines.over(steps, desc)
    return tqdm(steps, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True, file=sys.stderr)


PROGRESS_LINE_SECONDS = 120.0  # the commands' `ProgressLines` interval where there are no bars


def _duration(seconds: float) -> str:
    if round(seconds, 1) < 10:
        return f"{seconds:.2g} s" if seconds < 0.95 else f"{seconds:.1f} s"
    if round(seconds) < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if round(seconds / 60, 1) < 120 else f"{seconds / 3600:.1f} h"


class ProgressLines:
    """Progress for runs without a terminal (a log file, `nohup`, experiment workers): after a step,
    at most once every ``every`` seconds, one line on stderr —
    ``seqgan: NAME: PHASE STEP/LAST, TIME a step, about TIME left in the phase[, the latest NLL]``.
    The time a step is the mean over the steps since the previous line: a pause (a suspended
    process, a busy machine) or the first step's warm-up colours one line, not the rest of the run."""

    def __init__(self, name: str, every: float, log: RunLog):
        self.name, self.every, self.log = name, every, log

    def over(self, steps: range, desc: str):
        last, done_at_last = time.perf_counter(), 0
        for done, step in enumerate(steps, 1):
            yield step  # the caller's loop body runs before this generator resumes
            now = time.perf_counter()
            if now - last >= self.every and step < steps[-1]:
                per_step = (now - last) / (done - done_at_last)
                done_at_last = done
                print(f"seqgan: {self.name}: {desc} {step}/{steps[-1]}, {_duration(per_step)} a step, about "
                      f"{_duration(per_step * (steps[-1] - step))} left in the phase{self._latest()}",
                      file=sys.stderr, flush=True)
                last = now

    def _latest(self) -> str:
        found = latest_nll(self.log.records)
        if found is None:
            return ""
        key, record = found
        return f", {key.replace('nll_', 'NLL-')} {record[key]:.3f} after {record['phase']} {record['step']}"


def latest_nll(records: list[dict]) -> tuple[str, dict] | None:
    """The newest metrics record with a number for NLL-oracle (preferred) or NLL-test, and that key."""
    for record in reversed(records):
        for key in ("nll_oracle", "nll_test"):
            if isinstance(record.get(key), (int, float)):
                return key, record
    return None


class Interrupted(Exception):
    """Raised after a requested stop: the checkpoint for the last completed step is written."""


def rng_state(device: torch.device) -> dict:
    """Every random generator the run draws from, as tensors and plain lists (weights_only-safe):
    on CUDA, that of the run's own device only. (Every rank of a data-parallel run draws the same
    numbers, so rank 0's state, which the checkpoint holds, is every rank's; other GPUs are not
    touched, and no CUDA context is made for a CPU run.)"""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
             "python": [py_state[0], list(py_state[1]), py_state[2]]}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda")
    if cuda is not None and device.type == "cuda":
        if isinstance(cuda, list):  # checkpoints before 2026-11-27: one state per visible GPU
            cuda = cuda[min(device.index or 0, len(cuda) - 1)]
        torch.cuda.set_rng_state(cuda, device)


def train(cfg: Config, run_dir: Path, progress: bool = True, resume: dict | None = None,
          should_stop=lambda: False, report_every: float | None = None) -> list[dict]:
    """Algorithm 1 on the synthetic oracle task, or on ``data.corpus``; returns the metrics records.

    A checkpoint is written after each completed step (MLE epoch, D pre-training round,
    adversarial step) once ``run.checkpoint_seconds`` have passed since the last, and at the end
    of every phase. ``resume`` (a loaded checkpoint) continues from it: same seed and config give
    the same run, bit for bit on CPU (a corpus run needs its vocab.json in ``run_dir``: the corpus
    is checked against it, `data.check_run_corpus`). ``should_stop`` is polled after every step; when it returns
    True the step's checkpoint is written and `Interrupted` raised. ``progress`` shows bars on
    stderr; without them, ``report_every`` (seconds) prints `ProgressLines`. The run directory is
    locked meanwhile (`checkpoint.directory_lock`: another process training it stops with an error).
    On CPU, call `keep_freed_memory` once first, as the `seqgan` command does: it changes how the
    whole process allocates, so a library function does not do it behind your back, and without it
    a paper-sized discriminator step is ~26 % slower.
    """
    cfg.validate()
    with directory_lock(run_dir) if dist.is_main() else contextlib.nullcontext():
        return _train(cfg, Path(run_dir), progress, resume, should_stop, report_every)


def _train(cfg: Config, run_dir: Path, progress: bool, resume: dict | None, should_stop,
           report_every: float | None) -> list[dict]:
    started = time.perf_counter()
    main = dist.is_main()  # data-parallel: rank 0 alone writes files
    corpus = resolve_corpus(cfg) if cfg.data.corpus else None
    if corpus is not None and resume is not None:  # before the run's files change
        check_run_corpus(corpus, run_dir, cfg.data.corpus)
    if corpus is not None and main and any(corpus.truncated):
        (train_cut, valid_cut, test_cut), d = corpus.truncated, cfg.data
        print(f"seqgan: {run_dir.name}: lines cut to data.max_len = {d.max_len} tokens (data.truncate): "
              f"{train_cut} of {len(corpus.train)} training, {valid_cut} of {len(corpus.valid)} valid, "
              f"{test_cut} of {len(corpus.test)} test", file=sys.stderr)

    def write_config() -> None:
        write_text_atomic(run_dir / CONFIG_NAME, json.dumps(cfg.to_dict(), indent=2) + "\n")

    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume is None:  # a resumed run's config.json changes with its next checkpoint, not before
            write_config()
        if corpus is not None:
            corpus.vocab.save(run_dir / VOCAB_NAME, corpus.fingerprint())
    log = (RunLog(run_dir / METRICS_NAME, started, keep=resume["log_lines"] if resume else 0,
                  tensorboard=cfg.run.tensorboard) if main else _NoLog())
    lines = ProgressLines(run_dir.name, report_every, log) if main and report_every else None
    device = resolve_device(cfg.run.device)
    flush_denormals(device)
    if cfg.run.deterministic:
        use_deterministic_kernels()
    d, g, dis, s = cfg.data, cfg.generator, cfg.discriminator, cfg.schedule
    chunk = cfg.run.sample_batch

    # The real data S and the held-out test set: oracle samples from a fixed data seed, or the
    # corpus's train and test splits (then there is no oracle, and sequences end at EOS).
    if corpus is None:
        oracle = build_oracle(d)
        real = oracle_samples(oracle, d.num_train, d.data_seed, chunk).to(device)
        test = oracle_test_samples(oracle, d, chunk).to(device)
        oracle.to(device)
    else:
        oracle, real, test = None, corpus.train.to(device), corpus.test.to(device)
        valid = corpus.valid.to(device)  # NLL-valid: overfitting seen without looking at the test split
    masked = corpus is not None

    seed_everything(cfg.run.seed)
    generator = build_generator(cfg).to(device)
    discriminator = build_discriminator(cfg).to(device)
    discriminator.compute_dtype = resolve_precision(cfg.run.precision, device)
    rollout = RolloutPolicy(generator, s.rollout_update_rate)
    mle_opt = adam(generator.parameters(), g.lr, device, fused_on_cpu=False)
    adv_opt = adam(generator.parameters(), g.adv_lr, device, fused_on_cpu=False)
    compiled = use_compile(cfg)
    d_opt = discriminator_optimizer(discriminator, dis.lr, device, compiled)
    done_phase, done_step = "init", 0
    if resume:
        restore(generator, resume["generator"], "generator")
        restore(discriminator, resume["discriminator"], "discriminator")
        if "rollout" in resume:
            restore(rollout.module, resume["rollout"], "roll-out policy")
        for opt, key in ((mle_opt, "mle_optimizer"), (adv_opt, "adv_optimizer"), (d_opt, "d_optimizer")):
            restore(opt, resume[key], key.replace("_", " "))
        done_phase, done_step = resume["phase"], resume["step"]
    # Captured after loading: the graph holds the optimizer's state tensors.
    graphed = (GraphedDiscriminatorStep(discriminator, d_opt, dis.batch_size, dis.l2_reg, compile=compiled)
               if device.type == "cuda" and cfg.run.cuda_graphs and dist.world() == 1 and discriminator_batches(cfg)
               else None)
    if resume:  # after the capture (which restores the generator it draws from)
        try:
            set_rng_state(resume["rng"], device)
        except (RuntimeError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError) as e:
            raise SeqGANError(f"cannot resume: the checkpoint's 'rng' is not as seqgan writes it "
                              f"({_message_line(e)[:120]})") from None

    def on_rank0(what: str, action) -> None:
        """``action`` (a file write) on rank 0 alone. Should it fail, every rank stops with one line
        (the others would otherwise fail at their next collective with a traceback, or wait)."""
        failed = None
        if main:
            try:
                check_still_locked(run_dir)
                action()
            except (SeqGANError, OSError) as e:
                failed = e if isinstance(e, SeqGANError) else SeqGANError(f"cannot write {what}: {e.strerror or e}")
        if dist.any_rank(failed is not None):
            raise failed or SeqGANError(f"rank 0 could not write {what} (its error says why)")

    last_checkpoint = time.perf_counter()
    vocab_id = {"vocab_sha256": corpus.vocab.sha256()} if corpus is not None else {}  # checked by `sample`

    def checkpoint(phase: str, step: int, force: bool = False) -> None:
        nonlocal last_checkpoint
        stop = dist.any_rank(should_stop())  # a signal seen by any rank stops all at the same step
        due = time.perf_counter() - last_checkpoint >= cfg.run.checkpoint_seconds
        if not (force or stop or dist.any_rank(due)):
            return
        extra = {"rollout": rollout.module.state_dict()} if rollout.module is not generator else {}

        def save() -> None:  # config.json says what the checkpoint holds, also after a resume changed run.*
            save_checkpoint(
                run_dir / CHECKPOINT_NAME, cfg, phase=phase, step=step, log_lines=len(log.records),
                rng=rng_state(device), generator=generator.state_dict(), discriminator=discriminator.state_dict(),
                mle_optimizer=mle_opt.state_dict(), adv_optimizer=adv_opt.state_dict(), d_optimizer=d_opt.state_dict(),
                **extra, **vocab_id)
            write_config()

        on_rank0("the checkpoint", save)  # also the barrier after it
        last_checkpoint = time.perf_counter()
        if stop and phase != "done" and (phase, step) != last_step:  # nothing left to stop: it finishes
            raise Interrupted(f"stopped after {phase} step {step}; resume with: seqgan train --resume {run_dir}")

    def first_step(phase: str) -> int:
        """1 for a phase not yet started, the next step for the one interrupted, past the end for done ones."""
        if PHASES.index(phase) < PHASES.index(done_phase):
            return 1 << 30
        return done_step + 1 if phase == done_phase else 1

    def record(phase: str, step: int, **values) -> None:
        on_rank0(str(run_dir / METRICS_NAME), lambda: log.write(phase, step, **values))

    def eval_record(phase: str, step: int, **values) -> None:
        samples = sample_shared(generator, s.num_eval, chunk, masked)

        def write() -> None:
            if corpus is None:
                log.write(phase, step, nll_oracle=nll_oracle(oracle, samples, chunk),
                          nll_test=nll_test(generator, test, chunk), **values)
                write_tokens(run_dir / SAMPLES_NAME, samples)  # the latest evaluation's samples
            else:
                held_out = {"nll_valid": nll_test(generator, valid, chunk, masked=True)} if len(valid) else {}
                log.write(phase, step, nll_test=nll_test(generator, test, chunk, masked=True), **held_out, **values)
                lines = (corpus.vocab.text(row) for row in samples.tolist())
                write_text_atomic(run_dir / SAMPLES_NAME, "\n".join(lines) + "\n")

        on_rank0(f"the metrics log or samples in {run_dir}", write)

    def negatives_and_positives(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = min(n, len(real))  # D sees as many generated sequences as real ones
        negatives = sample_shared(generator, n, chunk, masked)
        positives = real if n >= len(real) else real[torch.randperm(len(real), device=device)[:n]]
        return positives, negatives

    if not resume:
        eval_record("init", 0)
    method = s.method
    mle_epochs = 0 if method == "random" else s.mle_epochs
    d_pretrain_rounds = s.d_pretrain_rounds if method == "seqgan" else 0
    adv_steps = 0 if method == "random" else s.adv_steps
    last_step = next(((phase, n) for phase, n in (("adversarial", adv_steps), ("d_pretrain", d_pretrain_rounds),
                                                  ("mle", mle_epochs)) if n > 0), None)  # the schedule's last
    bleu_reward = BleuReward(real, cfg.pg_bleu.n, d.vocab_size) if method == "pg_bleu" else None

    # 1. MLE pre-training.
    for epoch in _bar(range(first_step("mle"), mle_epochs + 1), "MLE pre-training", progress, lines):
        loss = mle_epoch(generator, mle_opt, real, g.batch_size, g.grad_clip, epoch, masked)
        if epoch % s.mle_eval_every == 0 or epoch == mle_epochs:
            eval_record("mle", epoch, g_loss=loss)
        else:
            record("mle", epoch, g_loss=loss)
        checkpoint("mle", epoch, force=epoch == mle_epochs)

    # 2. Discriminator pre-training on fresh negatives each round.
    for round_ in _bar(range(first_step("d_pretrain"), d_pretrain_rounds + 1), "D pre-training", progress, lines):
        positives, negatives = negatives_and_positives(s.num_negatives)
        d_loss, d_acc = discriminator_epochs(discriminator, d_opt, positives, negatives, s.d_pretrain_epochs,
                                             dis.batch_size, dis.l2_reg, "d_pretrain", round_, graphed)
        record("d_pretrain", round_, d_loss=d_loss, d_acc=d_acc)
        checkpoint("d_pretrain", round_, force=round_ == d_pretrain_rounds)

    # 3. Adversarial training (or the baseline's generator updates in its place).
    desc = "adversarial" if method == "seqgan" else method
    if first_step("adversarial") == 1:
        rollout.reset()  # β ← θ: the delayed copy starts from the pre-trained generator
    for step in _bar(range(first_step("adversarial"), adv_steps + 1), desc, progress, lines):
        g_loss = mean_reward = d_loss = d_acc = sample_prob = None
        if method in ("mle", "scheduled_sampling"):
            section = cfg.mle if method == "mle" else cfg.scheduled_sampling
            if method == "scheduled_sampling":
                sample_prob = sampling_probability(step, section.start_prob, section.increase_per_step)
            loss = supervised_updates(generator, mle_opt, real, s.g_steps * section.updates_per_g_step,
                                      g.batch_size, g.grad_clip, sample_prob or 0.0, masked)
            g_loss = _check_finite(loss, "generator " + method, "adversarial", step)
            dist.broadcast_parameters(generator)  # every rank made these updates alike: rank 0's bits
        for _ in range(s.g_steps if method in ("seqgan", "pg_bleu") else 0):
            seqs = sample_shared(generator, g.batch_size, chunk, masked)
            reward = discriminator if method == "seqgan" else bleu_reward
            rewards = rollout_shared(rollout.module, reward, seqs, s.rollout_num, chunk, masked)
            if masked:  # no credit for positions after the sequence ended
                rewards = rewards * eos_mask(seqs)
            g_loss = policy_gradient_step(generator, adv_opt, seqs, rewards, g.grad_clip, step)
            dist.broadcast_parameters(generator)
            mean_reward = rewards.mean().item()
        rollout.update()
        for _ in range(s.d_steps if method == "seqgan" else 0):
            positives, negatives = negatives_and_positives(s.num_negatives)
            d_loss, d_acc = discriminator_epochs(discriminator, d_opt, positives, negatives, s.d_epochs,
                                                 dis.batch_size, dis.l2_reg, "adversarial", step, graphed)
        values = dict(g_loss=g_loss, mean_reward=mean_reward, d_loss=d_loss, d_acc=d_acc, sample_prob=sample_prob)
        if step % s.adv_eval_every == 0 or step == adv_steps:
            eval_record("adversarial", step, **values)
        else:
            record("adversarial", step, **values)
        checkpoint("adversarial", step)

    if done_phase != "done":
        checkpoint("done", adv_steps, force=True)
    if log.writer is not None:
        log.writer.close()
    return log.records
