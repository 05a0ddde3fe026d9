"""How fast the CPU discriminator's batch-64 training step could be without framework overhead.

Times, at the paper's sizes in bf16 with the optimizer training uses on CPU (`CopyAdam`):
- the whole `discriminator_step` (forward, backward, Adam);
- its heavy kernels alone, back to back on random data of the model's own shapes: per group of
  filter banks the window matmul, score matmul, max over positions, the scatter of the max's
  gradient and the three gradient matmuls, the embedding gradient's index-add, and the highway
  and output layers' forward and gradient matmuls;
- the optimizer's step alone (the gradients of one real step kept).
Kernels + optimizer is a floor for the step in eager PyTorch; the rest of the step (casts, small
elementwise ops, autograd's bookkeeping) is overhead. Prints medians of 5 x 40 steps, the D epoch
(313 batches) each implies, and the model's FLOP rate at the floor (counted as `seqgan bench
discriminator` counts it) against the matmul peak measured in the same run.

Run: python3 benchmarks/step_floor.py
"""

import statistics
import time

import torch

from seqgan.bench import discriminator_flops, matmul_peak_gflops
from seqgan.config import Config
from seqgan.train import (build_discriminator, discriminator_optimizer, discriminator_step, flush_denormals,
                          keep_freed_memory)


def median_ms(fn) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(40):
            fn()
        times.append((time.perf_counter() - start) / 40 * 1e3)
    return statistics.median(times)


def paper_cpu_step():
    """A paper-sized discriminator training in bf16 on CPU as a `paper` run does (`CopyAdam`), with
    the process settings `seqgan` takes: (config, discriminator, optimizer, tokens, labels, step),
    ``step()`` one training step on the random batch."""
    keep_freed_memory()
    cpu = torch.device("cpu")
    flush_denormals(cpu)
    cfg = Config()
    dis = cfg.discriminator
    torch.manual_seed(0)
    d = build_discriminator(cfg)
    d.compute_dtype = torch.bfloat16
    optimizer = discriminator_optimizer(d, dis.lr, cpu, compile=True)
    tokens = torch.randint(0, cfg.data.vocab_size, (dis.batch_size, cfg.data.seq_len))
    labels = torch.randint(0, 2, (dis.batch_size,))
    return cfg, d, optimizer, tokens, labels, lambda: discriminator_step(d, optimizer, tokens, labels, dis.l2_reg)


def main() -> None:
    cfg, d, optimizer, tokens, _, train_step = paper_cpu_step()
    cpu, low = torch.device("cpu"), torch.bfloat16
    batch, length = tokens.shape

    emb_dim, features = d.embedding.embedding_dim, d.num_features
    embedded = torch.randn(batch, length, emb_dim, dtype=low)
    groups = [(select, torch.randn(sum(d.banks[i].out_features for i in banks), width * emb_dim, dtype=low), width)
              for banks, width, select, _ in d._window_plans(embedded)]
    highway = torch.randn(2 * features, features, dtype=low)
    out = torch.randn(2, features, dtype=low)

    def kernels() -> None:
        pooled = []
        grad_embedded = torch.zeros_like(embedded)
        for select, weight, width in groups:
            windows = torch.matmul(select, embedded).view(-1, width * emb_dim)
            scores = (windows @ weight.T).view(batch, -1, weight.shape[0])
            best, where = scores.max(1)
            grad_scores = torch.zeros_like(scores).scatter_(1, where.unsqueeze(1), 1.0).view(-1, weight.shape[0])
            grad_scores.T @ windows  # the banks' weight gradient
            grad_embedded += torch.matmul(select.T, (grad_scores @ weight).view(batch, -1, emb_dim))
            pooled.append(best)
        pooled = torch.cat(pooled, 1)
        grad_highway = pooled @ highway.T
        grad_highway @ highway, grad_highway.T @ pooled  # gradients of its input and weight
        grad_out = pooled @ out.T
        grad_out @ out, grad_out.T @ pooled
        torch.zeros(cfg.data.vocab_size, emb_dim, dtype=low).index_add_(0, tokens.view(-1),
                                                                        grad_embedded.view(-1, emb_dim))

    step = median_ms(train_step)
    kernel = median_ms(kernels)
    adam = median_ms(optimizer.step)
    batches = -(-20_000 // batch)
    print(f"{type(optimizer).__name__}, median of 5 x 40 (ms): whole step {step:.2f}; kernels alone {kernel:.2f}; "
          f"optimizer step alone {adam:.2f}; kernels + optimizer {kernel + adam:.2f} "
          f"({(kernel + adam) / step:.0%} of the step)")
    print(f"D epoch ({batches} batches): whole steps {batches * step / 1e3:.2f} s; "
          f"kernels + optimizer only {batches * (kernel + adam) / 1e3:.2f} s")
    floor_gflops = 3 * discriminator_flops(d) * batch / (kernel + adam) / 1e6
    peak = max(matmul_peak_gflops(cpu).values())
    print(f"at the floor: {floor_gflops:.0f} GFLOP/s, {floor_gflops / peak:.1%} of this run's {peak:.0f} GFLOP/s "
          f"matmul peak")


if __name__ == "__main__":
    main()
