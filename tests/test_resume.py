"""Interruption and resume: a resumed run ends bit-identical to an uninterrupted one (CPU)."""

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from seqgan.checkpoint import run_checkpoint, state_sha256
from seqgan.train import Interrupted, train


def without_time(records):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records]


def final_hashes(run_dir):
    _, payload = run_checkpoint(run_dir)
    return state_sha256(payload["generator"]), state_sha256(payload["discriminator"]), payload["phase"]


@pytest.mark.parametrize("stop_at_poll", [2, 8])  # tiny: polls 1-4 MLE epochs, 5-6 D rounds, 7-9 adversarial
def test_resume_in_process_is_bit_identical(tmp_path, tiny_cfg, stop_at_poll):
    full = train(tiny_cfg, tmp_path / "full", progress=False)
    polls = []

    def stop():
        polls.append(1)
        return len(polls) == stop_at_poll

    with pytest.raises(Interrupted, match="resume with"):
        train(tiny_cfg, tmp_path / "cut", progress=False, should_stop=stop)
    cfg, payload = run_checkpoint(tmp_path / "cut")
    assert payload["phase"] == ("mle" if stop_at_poll == 2 else "adversarial")
    resumed = train(cfg, tmp_path / "cut", progress=False, resume=payload)
    assert without_time(resumed) == without_time(full)
    log = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert without_time(log) == without_time(full)  # one log, no duplicated or lost lines
    assert final_hashes(tmp_path / "cut") == final_hashes(tmp_path / "full")
    assert (tmp_path / "cut" / "samples.txt").read_text() == (tmp_path / "full" / "samples.txt").read_text()


@pytest.mark.parametrize("first_stopped_poll", [9, 10])  # tiny: poll 9 ends the last adversarial step, 10 is "done"
def test_a_stop_during_the_last_step_lets_the_run_finish(tmp_path, tiny_cfg, first_stopped_poll):
    """A stop requested during the schedule's last step (or while its final checkpoint is written)
    leaves nothing to stop: the run finishes ("done", the uninterrupted run's log and weights) and
    does not report itself interrupted with a resume line."""
    full = train(tiny_cfg, tmp_path / "full", progress=False)
    polls = []

    def stop():
        polls.append(1)
        return len(polls) >= first_stopped_poll

    records = train(tiny_cfg, tmp_path / "cut", progress=False, should_stop=stop)
    assert len(polls) == 10
    assert run_checkpoint(tmp_path / "cut")[1]["phase"] == "done"
    assert without_time(records) == without_time(full)
    assert final_hashes(tmp_path / "cut") == final_hashes(tmp_path / "full")


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "seqgan", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _wait_for_line(path, phase, min_step, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                r = json.loads(line)
                if r["phase"] == phase and r["step"] >= min_step:
                    return
        assert proc.poll() is None, "run ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError(f"no {phase} step {min_step} within {timeout} s")


@pytest.mark.parametrize("sig, code, phase, sets", [
    (signal.SIGINT, 130, "adversarial", ["schedule.adv_steps=150"]),
    (signal.SIGTERM, 143, "mle", ["schedule.mle_epochs=150", "schedule.mle_eval_every=50"]),
])
def test_signal_checkpoints_and_resume_matches_uninterrupted(tmp_path, sig, code, phase, sets):
    args = ["train", "--preset", "tiny", "--no-progress", "--set", *sets]
    ref = _cli(*args, "--out", str(tmp_path / "ref"))
    cut = _cli(*args, "--out", str(tmp_path / "cut"))
    _wait_for_line(tmp_path / "cut" / "metrics.jsonl", phase, 3, cut)
    cut.send_signal(sig)
    _, err = cut.communicate(timeout=120)
    assert cut.returncode == code, err
    assert "resume with: seqgan train --resume" in err and "Traceback" not in err
    assert ref.wait(timeout=300) == 0
    resumed = _cli("train", "--resume", str(tmp_path / "cut"))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    ref_log = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    cut_log = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert without_time(map(json.loads, cut_log)) == without_time(map(json.loads, ref_log))
    assert final_hashes(tmp_path / "cut") == final_hashes(tmp_path / "ref")


def test_a_second_ctrl_c_quits_at_once_keeping_the_last_checkpoint(tmp_path):
    """Ctrl-C asks for a stop after the current step; a second one, mid-step, quits at once: exit
    130, one line, the checkpoint of the last finished step as it was (same bytes, the last logged
    step). The first is sent just after a checkpoint (one after every step here), as the next MLE
    epoch begins; that epoch is 2,000 mini-batches of 4 (8,000 sequences), long enough on any CPU
    for the second to land inside it."""
    import os
    import select

    run, checkpoint = tmp_path / "run", tmp_path / "run" / "checkpoint.pt"
    proc = subprocess.Popen([sys.executable, "-m", "seqgan", "train", "--preset", "tiny", "--no-progress",
                             "--out", str(run), "--set", "data.num_train=8000", "generator.batch_size=4",
                             "schedule.mle_epochs=50", "schedule.mle_eval_every=50", "run.checkpoint_seconds=0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # tiny ops: threads only wait on each other
    try:
        _wait_for_line(run / "metrics.jsonl", "mle", 1, proc, timeout=300)
        deadline = time.time() + 300
        while not checkpoint.exists():  # step 1's, written just after its log line
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.01)
        first = checkpoint.stat().st_mtime_ns
        while checkpoint.stat().st_mtime_ns == first:  # the next epoch's checkpoint ...
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)  # ... and the stop request just after it, as the next epoch begins
        err = b""
        while b"stopping after the current step" not in err:  # the handler's line, read with a deadline
            assert select.select([proc.stderr], [], [], max(0.0, deadline - time.time()))[0], err
            chunk = os.read(proc.stderr.fileno(), 4096)
            assert chunk, err
            err += chunk
        before = checkpoint.read_bytes()
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 130 and rest.decode().strip().splitlines() == ["seqgan: interrupted"], err + rest
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert checkpoint.read_bytes() == before and run_checkpoint(run)[1]["step"] == logged[-1]["step"] >= 2
    assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoint.pt", "config.json", "metrics.jsonl",
                                                     "samples.txt"]  # no temporary file left


def test_resume_errors(tmp_path, tiny_cfg):
    train(tiny_cfg, tmp_path / "run", progress=False)
    p = subprocess.run([sys.executable, "-m", "seqgan", "train", "--resume", str(tmp_path / "run"), "--seed", "3"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "drop --seed" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "seqgan", "train", "--resume", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "already complete" in p.stderr
    p = subprocess.run([sys.executable, "-m", "seqgan", "train", "--resume", str(tmp_path / "nothing")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "run directory not found" in p.stderr


class _Payload:
    """Unpickling this would create a marker file: a checkpoint must never be unpickled that way."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_bad_checkpoints_are_refused_in_one_line(tmp_path, tiny_cfg, capsys):
    import pickle

    from seqgan.cli import main

    train(tiny_cfg, tmp_path / "good", progress=False)
    good = (tmp_path / "good" / "checkpoint.pt").read_bytes()
    marker = tmp_path / "pwned"
    cases = {f"truncated at {n}": good[:n] for n in (0, 1, 64, 1000, len(good) // 2, len(good) - 1)}
    cases["random bytes"] = bytes(range(256)) * 40
    cases["pickle with a payload"] = pickle.dumps({"format_version": 1, "config": _Payload(marker)})
    for name, data in cases.items():
        run = tmp_path / name.replace(" ", "_")
        run.mkdir()
        (run / "checkpoint.pt").write_bytes(data)
        # A real process for one command (what a user sees on stderr), in process for the others.
        p = subprocess.run([sys.executable, "-m", "seqgan", "sample", "--run", str(run), "--n", "2"],
                           capture_output=True, text=True, timeout=120)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 1 and len(lines) == 1 and "checkpoint" in lines[0], (name, p.stderr)
        for args in (["train", "--resume", str(run)], ["inspect", str(run)]):
            assert main(args) == 1, (name, args)
            lines = capsys.readouterr().err.strip().splitlines()
            assert len(lines) == 1 and "checkpoint" in lines[0], (name, args, lines)
    assert not marker.exists()


def test_full_disk_during_checkpoint_is_one_line_and_keeps_the_last_checkpoint(tmp_path, tiny_cfg, monkeypatch, capsys):
    """A checkpoint write failing with ENOSPC (simulated) stops the run with one line naming the
    file; the previous checkpoint is intact and resumable, and no temporary file is left."""
    import errno

    import seqgan.checkpoint as ckpt
    from seqgan.cli import main

    real_save, calls = ckpt.torch.save, []

    def failing_save(obj, f):
        calls.append(1)
        if len(calls) == 2:  # the first checkpoint (end of MLE) succeeds, the second fails
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f)

    monkeypatch.setattr(ckpt.torch, "save", failing_save)
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--no-progress", "--out", str(out)]) == 1
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("seqgan train:")]
    assert len(err) == 1 and err[0].startswith("seqgan: error: cannot write checkpoint")
    assert "No space left on device" in err[0] and "previous checkpoint is intact" in err[0]
    assert not (out / "checkpoint.pt.tmp").exists()
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    cfg, payload = run_checkpoint(out)
    assert payload["phase"] == "mle"
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert run_checkpoint(out)[1]["phase"] == "done"


def test_checkpoint_rename_is_made_durable_by_syncing_its_directory(tmp_path, tiny_cfg, monkeypatch):
    """After the file's own fsync and the rename, the directory holding it is fsynced too (else a
    power loss may bring back the old directory entry); the order is file, rename, directory."""
    import os
    import stat

    import seqgan.checkpoint as ckpt

    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append("fsync directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "fsync", fsync)
    monkeypatch.setattr(ckpt.os, "replace", replace)
    ckpt.save_checkpoint(tmp_path / "checkpoint.pt", tiny_cfg, phase="done", step=0, generator={})
    assert events == ["fsync file", "rename", "fsync directory"]
    assert ckpt.load_checkpoint(tmp_path / "checkpoint.pt")[1]["phase"] == "done"


def test_checkpoint_written_with_gpu_optimizer_options_resumes_on_cpu(tmp_path, tiny_cfg):
    """A checkpoint's Adam state carries its machine's options (capturable / fused on CUDA, where
    the discriminator step is a CUDA graph). Resuming elsewhere keeps this machine's options: a
    GPU-written checkpoint resumes on a CPU and ends as the uninterrupted run (the CPU-to-GPU
    direction is in tests/test_cuda.py)."""
    full = train(tiny_cfg, tmp_path / "full", progress=False)
    polls = []
    with pytest.raises(Interrupted):
        train(tiny_cfg, tmp_path / "cut", progress=False, should_stop=lambda: polls.append(1) or len(polls) == 8)
    cfg, payload = run_checkpoint(tmp_path / "cut")
    for key in ("mle_optimizer", "adv_optimizer", "d_optimizer"):
        for group in payload[key]["param_groups"]:
            group["capturable"] = group["fused"] = True  # as Adam is built on CUDA
    resumed = train(cfg, tmp_path / "cut", progress=False, resume=payload)
    assert without_time(resumed) == without_time(full)
    assert final_hashes(tmp_path / "cut") == final_hashes(tmp_path / "full")


def test_resume_with_the_compiled_discriminator_optimizer_on_cpu(tmp_path, tiny_cfg, monkeypatch):
    """`run.compile=on` in bf16 on a CPU (what `auto` picks for the paper preset): the
    discriminator trains with `CopyAdam`; a resumed run ends bit-identical to an uninterrupted one
    (the restored weight reaches the bf16 copy), and its checkpoint also resumes uncompiled."""
    import seqgan.train as training
    built = []
    real = training.discriminator_optimizer

    def recording(*args, **kwargs):
        opt = real(*args, **kwargs)
        built.append(type(opt).__name__)
        return opt

    monkeypatch.setattr(training, "discriminator_optimizer", recording)
    tiny_cfg.run.compile, tiny_cfg.run.precision = "on", "bf16"
    full = train(tiny_cfg, tmp_path / "full", progress=False)
    if built != ["CopyAdam"]:
        from conftest import compiled_optimizer_or_skip
        compiled_optimizer_or_skip(str(built), [])
    polls = []
    with pytest.raises(Interrupted):
        train(tiny_cfg, tmp_path / "cut", progress=False, should_stop=lambda: polls.append(1) or len(polls) == 8)
    shutil.copytree(tmp_path / "cut", tmp_path / "plain")
    cfg, payload = run_checkpoint(tmp_path / "cut")
    resumed = train(cfg, tmp_path / "cut", progress=False, resume=payload)
    assert built == ["CopyAdam"] * 3
    assert without_time(resumed) == without_time(full)
    assert final_hashes(tmp_path / "cut") == final_hashes(tmp_path / "full")
    cfg, payload = run_checkpoint(tmp_path / "plain")
    cfg.run.compile = "off"
    plain = train(cfg, tmp_path / "plain", progress=False, resume=payload)
    assert built[-1] == "Adam" and len(plain) == len(full) and run_checkpoint(tmp_path / "plain")[1]["phase"] == "done"


def test_config_json_follows_the_checkpoint_on_resume(tmp_path, tiny_cfg):
    """A resume with a changed run.* setting rewrites config.json with its first checkpoint, not
    before: stopped before that checkpoint (here an error at the first step's poll), config.json
    still says what the checkpoint holds."""
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupted):
        train(tiny_cfg, run_dir, progress=False, should_stop=lambda: True)
    cfg, payload = run_checkpoint(run_dir)
    held = json.loads((run_dir / "config.json").read_text())
    assert held == json.loads(payload["config"]) and held["run"]["checkpoint_seconds"] != 123.0
    cfg.run.checkpoint_seconds = 123.0

    def fail():
        raise RuntimeError("stopped before the checkpoint")

    with pytest.raises(RuntimeError, match="before the checkpoint"):
        train(cfg, run_dir, progress=False, resume=payload, should_stop=fail)
    assert json.loads((run_dir / "config.json").read_text()) == held
    with pytest.raises(Interrupted):
        train(cfg, run_dir, progress=False, resume=payload, should_stop=lambda: True)
    _, payload = run_checkpoint(run_dir)
    assert json.loads((run_dir / "config.json").read_text()) == json.loads(payload["config"])
    assert json.loads(payload["config"])["run"]["checkpoint_seconds"] == 123.0


def test_rng_state_holds_the_runs_own_cuda_device_only(monkeypatch):
    """A checkpoint's CUDA RNG state is that of the run's device (every rank draws the same numbers,
    so rank 0's is every rank's): not one per visible GPU, whose entry k rank k restored although
    rank 0 never drew on GPU k, and none for a CPU run (no CUDA context on a GPU host). Checkpoints
    with the old per-GPU list restore the entry of the run's device. (CUDA calls stubbed: CPU CI.)"""
    from seqgan.train import rng_state, set_rng_state

    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("every GPU's state read"))
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: calls.append(("get", device)) or "state of it")
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: calls.append(("set", state, device)))
    assert "cuda" not in rng_state(torch.device("cpu")) and calls == []
    state = rng_state(torch.device("cuda", 1))
    assert state["cuda"] == "state of it" and calls == [("get", torch.device("cuda", 1))]
    set_rng_state(state, torch.device("cuda", 1))
    set_rng_state({**state, "cuda": ["gpu0", "gpu1", "gpu2"]}, torch.device("cuda", 1))
    set_rng_state({**state, "cuda": ["gpu0"]}, torch.device("cuda"))
    set_rng_state(state, torch.device("cpu"))  # a CUDA run resumed on the CPU: nothing to restore there
    assert calls[1:] == [("set", "state of it", torch.device("cuda", 1)), ("set", "gpu1", torch.device("cuda", 1)),
                         ("set", "gpu0", torch.device("cuda"))]
