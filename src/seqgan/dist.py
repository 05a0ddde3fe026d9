"""Data parallelism across processes (torchrun): gloo on CPU, NCCL on GPUs (`backend_for`).

Every rank holds the same models and the same random-generator state: all random draws that
decide what is computed (data order, sampling noise, dropout masks) are drawn for the whole global
batch on every rank, and each rank uses its own rows. So K processes compute what one process
computes, split K ways:

  - sampling (negatives, evaluation) and roll-outs: each rank takes a contiguous share of the rows
    and the results are all-gathered;
  - MLE and discriminator updates: each rank's share of a global mini-batch, gradients weighted by
    share size and summed with one all-reduce, so every rank applies the same update (what
    DistributedDataParallel does, made explicit because our training steps are not `forward`);
  - the policy-gradient update (64 sequences) runs on every rank alike.

Rank 0 alone writes logs and checkpoints. With one process every function here is the identity.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import torch
import torch.distributed as dist

from .config import SeqGANError


def backend_for(device: str) -> str:
    """The process-group backend for a run on ``device`` (a run.device value): NCCL when it trains
    on CUDA ("cuda", "cuda:N", or "auto" on a machine with CUDA), else gloo; SEQGAN_DIST_BACKEND=gloo
    forces gloo (e.g. two ranks sharing one GPU, which NCCL refuses)."""
    on_cuda = device.partition(":")[0] in ("auto", "cuda") and torch.cuda.is_available()
    return "nccl" if on_cuda and os.environ.get("SEQGAN_DIST_BACKEND", "") != "gloo" else "gloo"


def init_from_env(device: str = "auto") -> bool:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), with `backend_for`
    ``device``; under NCCL each rank trains on GPU LOCAL_RANK. True if distributed."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise SeqGANError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number; launch with torchrun") from None
    if world <= 1 or dist.is_initialized():
        return dist.is_initialized()
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise SeqGANError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: launch with torchrun")
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    global _joined
    _joined = True
    return True


_joined = False  # this process joined a process group (it is a torchrun rank)


def joined() -> bool:
    return _joined


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def leave(code: int) -> NoReturn:
    """End a torchrun rank with exit status ``code``, skipping the interpreter's teardown: after
    gloo's process group is destroyed, a normal exit can still abort in C++ destructors ("terminate
    called without an active exception", SIGABRT, seen in CI under load), and torchrun then reports
    that rank as the run's failure. Every file is written and closed by then; only the standard
    streams are left to flush."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or gone reader: nothing more can be said
            pass
    os._exit(code)


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def share(rows: int) -> slice:
    """This rank's contiguous share of ``rows`` rows (sizes differ by at most one)."""
    size, extra = divmod(rows, world())
    r = rank()
    lo = r * size + min(r, extra)
    return slice(lo, lo + size + (r < extra))


def gather_rows(part: torch.Tensor, rows: int) -> torch.Tensor:
    """Concatenate every rank's share (`share(rows)` of each) into the full [rows, ...] tensor."""
    if world() == 1:
        return part
    longest = -(-rows // world())
    padded = part.new_zeros((longest, *part.shape[1:]))
    padded[:len(part)] = part
    pieces = [torch.empty_like(padded) for _ in range(world())]
    dist.all_gather(pieces, padded)
    sizes = [rows // world() + (r < rows % world()) for r in range(world())]
    return torch.cat([piece[:size] for piece, size in zip(pieces, sizes)])


def sum_gradients(module: torch.nn.Module) -> None:
    """Sum the parameters' gradients over ranks with one flat all-reduce (each rank has already
    weighted its own by its share of the global batch)."""
    if world() == 1:
        return
    for p in module.parameters():
        if p.requires_grad and p.grad is None:  # a rank with no rows this batch contributes zeros
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Rank 0's parameters on every rank, with one flat broadcast: after an update that every rank
    makes alike on the same rows (the policy-gradient step, the baselines' updates), so that CUDA
    kernels that are not bit-reproducible (atomic adds) cannot let the ranks' models drift apart."""
    if world() == 1:
        return
    params = [p.data for p in module.parameters()]
    flat = torch.cat([p.reshape(-1) for p in params])
    dist.broadcast(flat, src=0)
    offset = 0
    for p in params:
        p.copy_(flat[offset:offset + p.numel()].view_as(p))
        offset += p.numel()


def sum_tensor(value: torch.Tensor) -> torch.Tensor:
    """The sum over ranks of a tensor (a copy; the identity with one process)."""
    if world() == 1:
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is True on any (a stop request seen by one rank stops all)."""
    if world() == 1:
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    if world() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world() > 1:
        dist.barrier()
