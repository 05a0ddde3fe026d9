"""Data parallelism: torchrun with 2 CPU processes (gloo) against one process, tiny preset."""

import json
import os
import re
import subprocess
import sys

import pytest

import torch

from seqgan.checkpoint import CHECKPOINT_NAME, CONFIG_NAME, run_checkpoint, save_checkpoint
from seqgan.cli import _requested_device, build_parser, main
from seqgan.dist import backend_for, share
from seqgan.train import Interrupted, train


def _torchrun(out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "seqgan", "train", "--preset", "tiny", "--device", "cpu", "--no-progress", "--out", str(out),
           "--set", "run.precision=fp32", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_share_covers_rows_once(monkeypatch):
    import seqgan.dist as dist
    for world in (1, 2, 3, 5):
        monkeypatch.setattr(dist, "world", lambda: world)
        for rows in (0, 1, 7, 64):
            parts = []
            for rank in range(world):
                monkeypatch.setattr(dist, "rank", lambda: rank)
                parts.extend(range(rows)[share(rows)])
            assert parts == list(range(rows))


def test_gather_rows_puts_every_ranks_share_back_in_order(monkeypatch):
    """`gather_rows` undoes `share` for any world size and row count (a fake all_gather hands over
    every rank's padded share): the whole tensor, no padding row kept, none dropped; shares differ
    in size by at most one, the larger first (the layout gather_rows assumes)."""
    import seqgan.dist as dist

    for world in (2, 3, 5):
        monkeypatch.setattr(dist, "world", lambda: world)
        for rows in (1, 7, 64, 65):
            data = torch.arange(1, 2 * rows + 1).reshape(rows, 2)  # no row of zeros, as the padding is
            parts = []
            for rank in range(world):
                monkeypatch.setattr(dist, "rank", lambda: rank)
                parts.append(data[share(rows)])
            sizes = [len(part) for part in parts]
            assert sizes == [rows // world + (r < rows % world) for r in range(world)], (world, rows)

            def all_gather(pieces, padded):  # this rank (0) sends what gather_rows padded; the others their shares
                pieces[0].copy_(padded)
                for piece, part in zip(pieces[1:], parts[1:]):
                    piece.zero_()
                    piece[:len(part)] = part

            monkeypatch.setattr(dist.dist, "all_gather", all_gather)
            assert torch.equal(dist.gather_rows(parts[0], rows), data), (world, rows)


@pytest.mark.parametrize("device, forced, backend", [
    ("cpu", "", "gloo"), ("mps", "", "gloo"), ("auto", "", "nccl"), ("cuda", "", "nccl"), ("cuda:1", "", "nccl"),
    ("cuda", "gloo", "gloo"),
])
def test_backend_follows_the_runs_device_on_a_cuda_machine(monkeypatch, device, forced, backend):
    """`train --device cpu` under torchrun on a machine with CUDA joins with gloo, not NCCL."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("SEQGAN_DIST_BACKEND", forced)
    assert backend_for(device) == backend


def test_backend_without_cuda_is_gloo(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert {backend_for(d) for d in ("auto", "cpu", "cuda")} == {"gloo"}


def test_requested_device_is_read_before_the_process_group_exists(tmp_path, tiny_cfg):
    """The device that picks the backend: --device, else --set / the preset, else the resumed
    run's checkpoint (what the resume trains with, also should config.json say otherwise); "auto"
    where that is unreadable (the error comes later, once)."""
    parse = build_parser().parse_args
    assert _requested_device(parse(["train", "--preset", "tiny", "--device", "cpu"])) == "cpu"
    assert _requested_device(parse(["train", "--set", "run.device=cpu"])) == "cpu"
    assert _requested_device(parse(["train", "--preset", "tiny"])) == tiny_cfg.run.device
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tiny_cfg.run.device = "cpu"
    save_checkpoint(run_dir / CHECKPOINT_NAME, tiny_cfg, phase="mle", step=1, generator={})
    tiny_cfg.run.device = "cuda"  # a config.json out of step (edited by hand, or written by an older seqgan)
    (run_dir / CONFIG_NAME).write_text(json.dumps(tiny_cfg.to_dict()))
    assert _requested_device(parse(["train", "--resume", str(run_dir)])) == "cpu"
    assert _requested_device(parse(["train", "--resume", str(run_dir), "--device", "auto"])) == "auto"
    assert _requested_device(parse(["train", "--resume", str(tmp_path / "missing")])) == "auto"
    (run_dir / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    assert _requested_device(parse(["train", "--resume", str(run_dir)])) == "auto"
    assert _requested_device(parse(["train", "--set", "run.nope=1"])) == "auto"


def test_torchrun_two_processes_match_one(tmp_path):
    """The same run split over 2 ranks: one metrics log, no duplicated lines, and every logged number
    equal to the single-process run's within 1e-5 relative: the random draws are the same by
    construction (dist.py), only float sums run in another order. fp32, because bf16 rounding of
    the discriminator's matmuls depends on the per-rank batch shape (differences then reach ~1e-3)."""
    done = _torchrun(tmp_path / "ddp")
    assert done.returncode == 0, done.stderr[-6000:]
    assert main(["train", "--preset", "tiny", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "one"),
                 "--set", "run.precision=fp32"]) == 0
    ddp, one = _records(tmp_path / "ddp"), _records(tmp_path / "one")
    keys = [(r["phase"], r["step"]) for r in ddp]
    assert len(keys) == len(set(keys))  # rank 0 alone writes
    assert keys == [(r["phase"], r["step"]) for r in one]
    _assert_same_numbers(ddp, one)
    assert not (tmp_path / "ddp" / "checkpoint.pt.tmp").exists()


def _assert_same_numbers(records, expected):
    """Every logged number but the time equal to rel 1e-5 / abs 1e-7, record by record."""
    for a, b in zip(records, expected):
        assert set(a) == set(b), (a["phase"], a["step"])
        for key, value in b.items():
            if key not in ("phase", "step", "elapsed_s"):  # the first two are compared by the caller
                assert a[key] == pytest.approx(value, rel=1e-5, abs=1e-7), (a["phase"], a["step"], key)


def test_torchrun_resumes_a_checkpoint(tmp_path, tiny_cfg):
    """A run stopped in the adversarial phase (one process) and continued with `torchrun ... --resume`
    on 2 processes ends where the uninterrupted run ends: both models' parameters and every logged
    number to rel 1e-5."""
    tiny_cfg.run.precision = "fp32"
    train(tiny_cfg, tmp_path / "full", progress=False)
    polls = []
    with pytest.raises(Interrupted):
        train(tiny_cfg, tmp_path / "cut", progress=False, should_stop=lambda: polls.append(1) or len(polls) == 8)
    assert run_checkpoint(tmp_path / "cut")[1]["phase"] == "adversarial"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "seqgan", "train", "--resume", str(tmp_path / "cut"), "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]
    cut, full = _records(tmp_path / "cut"), _records(tmp_path / "full")
    assert [(r["phase"], r["step"]) for r in cut] == [(r["phase"], r["step"]) for r in full]
    _assert_same_numbers(cut, full)
    _, a = run_checkpoint(tmp_path / "cut")
    _, b = run_checkpoint(tmp_path / "full")
    for model in ("generator", "discriminator"):
        assert a[model].keys() == b[model].keys()
        for name, value in b[model].items():
            assert torch.allclose(a[model][name], value, rtol=1e-5, atol=1e-7), (model, name)


def test_a_write_failing_on_rank0_stops_every_rank_with_one_line(tmp_path):
    """Rank 0 alone writes files; when it cannot (here the checkpoint's temporary name is taken by a
    directory), both ranks stop at once with one error line each, no traceback from either."""
    out = tmp_path / "ddp"
    (out / "checkpoint.pt.tmp").mkdir(parents=True)
    done = _torchrun(out)
    assert done.returncode != 0
    assert done.stderr.count("seqgan: error:") == 2, done.stderr[-4000:]  # one line from each rank
    assert "seqgan: error: cannot write checkpoint" in done.stderr
    assert "seqgan: error: rank 0 could not write the checkpoint" in done.stderr
    assert "[rank0]" not in done.stderr and "[rank1]" not in done.stderr  # torchrun's prefix on a traceback


def test_a_signal_to_one_rank_stops_both_after_the_same_step(tmp_path):
    """SIGTERM sent to rank 1 alone (as when one node's processes are stopped): both ranks stop with
    the adversarial checkpoint written, both exit 143 (or are ended by torchrun once out of the
    run) with no traceback (rank 0, which got no signal, crashed with an IndexError before), and
    the resume line is printed once. (That they stop
    after the same step is the all-reduce in `dist.any_rank`: a rank stopping alone would leave the
    other waiting in its next collective, and this test would time out.)"""
    if not os.path.isdir("/proc/self"):
        pytest.skip("finds rank 1's process through /proc")
    import signal
    import time

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "seqgan", "train", "--preset", "tiny", "--device", "cpu", "--no-progress", "--out", str(out),
           "--set", "run.precision=fp32", "schedule.adv_steps=100000", "schedule.adv_eval_every=100000"]
    launcher = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "metrics.jsonl").is_file() or '"adversarial"' not in (out / "metrics.jsonl").read_text():
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()[1][-4000:]
            time.sleep(0.2)
        rank1 = None
        for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
            try:
                environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            except OSError:
                continue
            if b"TORCHELASTIC_RUN_ID" in b"".join(environ) and b"RANK=1" in environ \
                    and str(out).encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                rank1 = pid
        assert rank1 is not None
        os.kill(rank1, signal.SIGTERM)
        _, stderr = launcher.communicate(timeout=240)
    finally:
        launcher.kill()
    ours = stderr.split("failed (exitcode")[0]  # the ranks' output; then torchrun's report of their exit codes
    assert "Traceback" not in ours and "IndexError" not in stderr, stderr[-4000:]
    assert ours.count("resume with: seqgan train --resume") == 1, stderr[-4000:]
    # torchrun ends the other ranks with SIGTERM once one exits non-zero: a rank still leaving
    # (past the final barrier, every file written) may be reported as -15 instead of 143. A rank
    # that crashes on its way out (-6, SIGABRT in gloo's teardown) fails here.
    codes = sorted(int(c) for c in re.findall(r"exitcode  : (-?\d+)", stderr))
    assert codes in ([143, 143], [-15, 143]) and launcher.returncode != 0, stderr[-4000:]
    _, payload = run_checkpoint(out)
    assert payload["phase"] == "adversarial" and payload["step"] >= 1


def test_leave_flushes_what_was_printed_and_exits_with_the_code():
    """`dist.leave` skips the interpreter's teardown (os._exit: no atexit handler runs): what the
    rank printed, buffered on a pipe, still comes out, and the exit status is the one given."""
    code = ("import atexit, sys; from seqgan import dist; atexit.register(print, 'teardown ran'); "
            "print('to stdout', end=''); print('to stderr', file=sys.stderr, end=''); dist.leave(143)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout on a pipe is buffered
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert (done.returncode, done.stdout, done.stderr) == (143, "to stdout", "to stderr")


def test_a_rank_whose_command_raises_prints_the_traceback_and_leaves_with_1():
    """An exception `main` does not turn into one line (e.g. gloo's error when a peer has gone)
    on a torchrun rank: the traceback, then `dist.leave(1)` (no teardown), not a normal exit."""
    code = ("import atexit; from seqgan import cli, dist; from seqgan.__main__ import run; "
            "dist._joined = True; atexit.register(print, 'teardown ran'); "
            "cli.main = lambda: 1 / 0; run()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "ZeroDivisionError" in done.stderr, done.stderr
    assert "teardown ran" not in done.stdout


@pytest.mark.parametrize("exit_with, code, err", [("'seqgan: error: a message'", 1, "seqgan: error: a message\n"),
                                                  ("None", 0, ""), ("3", 3, "")])
def test_a_rank_whose_command_calls_sys_exit_leaves_as_python_would(exit_with, code, err):
    """sys.exit inside `main` on a torchrun rank: the status and message Python gives it (a string
    is printed and exits 1, None exits 0), through `dist.leave` (no teardown)."""
    program = ("import atexit, sys; from seqgan import cli, dist; from seqgan.__main__ import run; "
               f"dist._joined = True; atexit.register(print, 'teardown ran'); cli.main = lambda: sys.exit({exit_with}); run()")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr, done.stdout) == (code, err, "")
