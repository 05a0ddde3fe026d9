"""Damaged files and impossible sizes end in one line naming the problem, exit != 0, nothing lost:
metrics logs, checkpoints written by hand or by an older seqgan, oracle files, experiment
records, sizes beyond the machine, and a Ctrl-C while torch is still importing."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from seqgan.checkpoint import payload_sha256
from seqgan.cli import main


def one_line(code, capsys, *needles):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("seqgan: error:") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def copy_run(tiny_run, tmp_path, name, metrics=None, **edits):
    """A copy of the tiny run with its checkpoint edited (``None`` drops a key) and, if given, its
    metrics log replaced; ``sha256=False`` writes it as an older seqgan did, without a checksum."""
    run = tmp_path / name
    run.mkdir()
    payload = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    checksum = edits.pop("sha256", True)
    payload = {k: v for k, v in {**payload, **edits}.items() if v is not None and k != "sha256"}
    if checksum:
        payload["sha256"] = payload_sha256(payload)
    torch.save(payload, run / "checkpoint.pt")
    for name in ("config.json", "samples.txt"):
        (run / name).write_bytes((tiny_run / name).read_bytes())
    (run / "metrics.jsonl").write_bytes(metrics if metrics is not None else (tiny_run / "metrics.jsonl").read_bytes())
    return run


@pytest.mark.parametrize("metrics, needle", [
    (b'{"phase": "mle", "step": 0, "elapsed_s": 0.1, "note": "caf\xe9"}\n', "not UTF-8 text"),
    (b"[1, 2]\n", "metrics.jsonl:1: not a metrics record"),
    (b'{"a": 1}\n', "metrics.jsonl:1: not a metrics record"),
    (b'{"phase": "mle", "step": "1", "elapsed_s": 0.1}\n', "metrics.jsonl:1: not a metrics record"),
    (b'{"phase": "mle", "step": 1}\n', "metrics.jsonl:1: not a metrics record"),
    (b'{"phase": "mle", "step": 1, "elapsed_s": 1' + b"0" * 400 + b'}\n', "metrics.jsonl:1: not a metrics record"),
])
def test_a_damaged_metrics_log_is_one_line_in_plot_and_resume(tiny_run, tmp_path, capsys, metrics, needle):
    run = copy_run(tiny_run, tmp_path, "r", metrics=metrics, phase="mle", step=1, log_lines=1)
    kept = (run / "checkpoint.pt").read_bytes()
    pytest.importorskip("matplotlib")
    one_line(main(["plot", str(run)]), capsys, needle)
    one_line(main(["train", "--resume", str(run), "--no-progress"]), capsys, needle)
    assert (run / "checkpoint.pt").read_bytes() == kept


def test_a_partial_line_after_the_checkpoint_does_not_block_resume(tiny_run, tmp_path, capsys):
    """The checkpoint keeps the log's first lines; a line cut while being written after them is
    dropped on resume, as every later line is."""
    lines = (tiny_run / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    done = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    run = copy_run(tiny_run, tmp_path, "r", metrics=b"".join(lines[:2]) + b'{"phase": "ml', phase="mle", step=1,
                   log_lines=2)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == len(lines) == done["log_lines"]


def test_plot_to_an_unknown_format_or_a_directory_is_one_line(tiny_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    one_line(main(["plot", str(tiny_run), "--out", str(tmp_path / "p.xyz")]), capsys, "unknown image format '.xyz'")
    one_line(main(["plot", str(tiny_run), "--out", str(tmp_path)]), capsys, "is a directory")
    assert list(tmp_path.iterdir()) == []


def test_a_plot_that_cannot_be_written_keeps_the_old_image(tiny_run, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def disk_full(self, path, **kwargs):  # part of the image written, then the disk is full
        Path(path).write_bytes(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    out = tmp_path / "p.png"
    out.write_bytes(b"the old image")
    monkeypatch.setattr(Figure, "savefig", disk_full)
    one_line(main(["plot", str(tiny_run), "--out", str(out)]), capsys,
             f"cannot write the plot to {out}: No space left on device")
    assert out.read_bytes() == b"the old image" and sorted(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize("part", ["torch", "numpy", "python"])
def test_a_random_generator_state_not_as_seqgan_writes_it_is_one_line(tiny_run, tmp_path, capsys, part):
    rng = torch.load(tiny_run / "checkpoint.pt", weights_only=True)["rng"]
    forged = {"torch": torch.zeros(3, dtype=torch.uint8),  # well-typed: a checksum over it is still right
              "numpy": ["MT19937", torch.zeros(3, dtype=torch.int64), 0, 0, 0.0],
              "python": [3, [1, 2], None]}[part]
    run = copy_run(tiny_run, tmp_path, "r", phase="mle", rng={**rng, part: forged})
    one_line(main(["train", "--resume", str(run)]), capsys, "its 'rng' is not as seqgan writes it")
    # of the right shape but values Python refuses (position 999 of 624; a key beyond 32 bits): refused when set
    for name, internal in (("r2", [*rng["python"][1][:624], 999]), ("r3", [2 ** 70, *rng["python"][1][1:]])):
        python = [rng["python"][0], internal, rng["python"][2]]
        run = copy_run(tiny_run, tmp_path, name, phase="mle", rng={**rng, "python": python})
        assert main(["train", "--resume", str(run)]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.splitlines()[-1].startswith(
            "seqgan: error: cannot resume: the checkpoint's 'rng' is not as seqgan writes it"), err


@pytest.mark.parametrize("edits, needle", [
    ({"phase": "bogus"}, "its 'phase' is not as seqgan writes it"),
    ({"step": "3"}, "its 'step' is not as seqgan writes it"),
    ({"step": -5}, "its 'step' is not as seqgan writes it"),
    ({"phase": "mle", "log_lines": -1}, "its 'log_lines' is not as seqgan writes it"),
    ({"generator": "weights"}, "its 'generator' is not as seqgan writes it"),
    ({"phase": "mle", "log_lines": "2"}, "its 'log_lines' is not as seqgan writes it"),
    ({"phase": "mle", "rng": {"python": 1}}, "its 'rng' is not as seqgan writes it"),
])
@pytest.mark.parametrize("sha256", [True, False])
def test_a_checkpoint_not_as_seqgan_writes_it_is_one_line(tiny_run, tmp_path, capsys, edits, needle, sha256):
    run = copy_run(tiny_run, tmp_path, "r", sha256=sha256, **edits)
    command = ["train", "--resume", str(run)] if edits.get("phase") == "mle" else ["inspect", str(run)]
    one_line(main(command), capsys, needle)


def test_a_foreign_or_newer_checkpoint_is_one_line(tiny_run, tmp_path, capsys):
    """A torch file that is no seqgan checkpoint (a bare state dict), and one of a newer format
    version (checksum right, so the version is what stops it), each in one line."""
    from seqgan.checkpoint import FORMAT_VERSION

    foreign = copy_run(tiny_run, tmp_path, "foreign")
    torch.save(torch.load(tiny_run / "checkpoint.pt", weights_only=True)["generator"], foreign / "checkpoint.pt")
    one_line(main(["inspect", str(foreign)]), capsys, f"cannot read checkpoint {foreign / 'checkpoint.pt'}: "
                                                     "not a seqgan checkpoint")
    newer = copy_run(tiny_run, tmp_path, "newer", format_version=FORMAT_VERSION + 1)
    one_line(main(["sample", "--run", str(newer), "--n", "2"]), capsys,
             f"has format version {FORMAT_VERSION + 1}; this seqgan reads version {FORMAT_VERSION}")


def test_an_unwritable_run_directory_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    """The write probe of a new run directory (here failing as on a read-only file system; as root
    a chmod would not stop it) ends `train` before anything is trained or kept."""
    import errno

    from seqgan import train

    real_write_text = Path.write_text

    def read_only(self, *args, **kwargs):
        if self.name == ".write-test":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", read_only)
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("trained in an unwritable directory"))
    one_line(main(["train", "--preset", "tiny", "--no-progress", "--out", str(tmp_path / "run")]), capsys,
             f"cannot write to run directory {tmp_path / 'run'}: Read-only file system")
    assert list((tmp_path / "run").iterdir()) == []


def test_a_checkpoint_with_non_finite_weights_is_one_line(tiny_run, tmp_path, capsys):
    payload = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    generator = {k: v.clone() for k, v in payload["generator"].items()}
    next(v for v in generator.values() if v.is_floating_point()).view(-1)[0] = float("nan")
    run = copy_run(tiny_run, tmp_path, "r", generator=generator)
    for command in (["sample", "--run", str(run), "--n", "2"], ["evaluate", "--run", str(run), "--n", "4"]):
        one_line(main(command), capsys, "the generator's weights are not all finite")
    assert main(["inspect", str(run)]) == 0  # a run that diverged can still be looked at


def test_a_checkpoint_holding_other_python_objects_is_refused_not_unpickled(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path, "r")
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save({**payload, "extra": Stranger()}, run / "checkpoint.pt")  # an intact archive, not seqgan's
    one_line(main(["sample", "--run", str(run), "--n", "2"]), capsys, "holds Python objects", "not unpickled")
    (tmp_path / "d" / "checkpoint.pt").mkdir(parents=True)
    one_line(main(["sample", "--run", str(tmp_path / "d"), "--n", "2"]), capsys, "is a directory, not a file")


class Stranger:
    """An object no seqgan checkpoint holds."""


def _oracle_arrays(**edits):
    arrays = dict(np.load(os.path.join(os.path.dirname(__import__("seqgan").__file__), "data",
                                       "seqgan_oracle_params.npz")))
    return {**arrays, **edits}


@pytest.mark.parametrize("kind, needle", [
    ("text", "not an .npz archive"),
    ("strings", "embedding is not all finite floating-point numbers"),
    ("nan", "b_out is not all finite floating-point numbers"),
    ("empty", "an empty oracle (vocabulary 5000, embedding 32, hidden 0)"),
])
def test_a_bad_oracle_file_is_one_line(tmp_path, capsys, kind, needle):
    ids = tmp_path / "ids.txt"
    ids.write_text("1 2 3\n4 5 6\n")
    oracle = tmp_path / "o.npz"
    if kind == "text":
        oracle.write_text("not an archive\n")
    else:
        base = _oracle_arrays()
        if kind == "strings":
            edit = {"embedding": np.full(base["embedding"].shape, "a")}
        elif kind == "nan":
            edit = {"b_out": np.full(base["b_out"].shape, np.nan, dtype=np.float32)}
        else:  # shapes that agree with each other, with no hidden unit (nn.LSTM would raise)
            edit = {f"{m}_{g}": np.zeros(shape, np.float32) for g in "ifoc"
                    for m, shape in (("W", (32, 0)), ("U", (0, 0)), ("b", (0,)))}
            edit["W_out"] = np.zeros((0, 5000), np.float32)
        np.savez(oracle, **{**base, **edit})
    one_line(main(["score-oracle", str(ids), "--oracle", str(oracle)]), capsys, needle)


def test_an_experiment_record_with_an_unreadable_config_is_named(tmp_path, capsys):
    out = tmp_path / "ex"
    out.mkdir()
    from seqgan.config import preset

    config = preset("tiny").to_dict()
    config["generator"]["nope"] = 1
    (out / "experiment.json").write_text(json.dumps({"experiment": "table1", "config": config}))
    one_line(main(["experiment", "table1", "--preset", "tiny", "--seeds", "1", "--out", str(out), "--no-progress"]),
             capsys, "experiment.json holds a config this seqgan cannot read", "generator.nope")


def test_sizes_beyond_the_machine_are_one_line(tmp_path, capsys, monkeypatch):
    one_line(main(["train", "--preset", "tiny", "--set", "data.vocab_size=99999999999999999999",
                   "--out", str(tmp_path / "a")]), capsys, "data.vocab_size", "beyond any tensor dimension")
    assert not (tmp_path / "a").exists()
    from seqgan import cli

    def out_of_memory(args):  # what torch raises when an allocation fails (e.g. --set generator.hidden_dim=10**9)
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 4000000000000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(cli, "cmd_sample", out_of_memory)
    one_line(main(["sample", "--run", str(tmp_path), "--n", "2"]), capsys, "out of memory", "choose smaller sizes")

    def a_bug(args):  # any other RuntimeError is a bug and keeps its traceback
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(cli, "cmd_sample", a_bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["sample", "--run", str(tmp_path), "--n", "2"])


def test_ctrl_c_while_torch_imports_is_one_line():
    """SIGINT once torch's shared library is mapped, i.e. while `import torch` runs (~1-2 s; a
    KeyboardInterrupt inside its C++ initialisation used to abort the process): exit 130 and one
    line. Should it land after the import, the command's own handling answers the same way."""
    process = subprocess.Popen([sys.executable, "-m", "seqgan", "bench", "sampling"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while "libtorch" not in open(f"/proc/{process.pid}/maps").read() and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines() == ["seqgan: interrupted"]


def test_a_numbered_device_that_cannot_be_is_one_line(tiny_run, capsys):
    for device in ("cpu:x", "cuda:x", f"cuda:{torch.cuda.device_count()}"):
        one_line(main(["sample", "--run", str(tiny_run), "--n", "2", "--device", device]), capsys, device)


def test_score_oracle_beside_an_unreadable_run_config_asks_for_the_oracle(tiny_run, tmp_path, capsys):
    (tmp_path / "samples.txt").write_text((tiny_run / "samples.txt").read_text())
    (tmp_path / "config.json").write_text('{"data": {"oracle": "mine"}}')
    one_line(main(["score-oracle", str(tmp_path / "samples.txt")]), capsys, "holds no data config", "--oracle")
    assert main(["score-oracle", str(tmp_path / "samples.txt"), "--oracle", "paper"]) == 0
    (tmp_path / "config.json").write_text(json.dumps({"data": {"corpus": "poems"}}))  # no oracle: was the paper's
    one_line(main(["score-oracle", str(tmp_path / "samples.txt")]), capsys, "sampled by a run on a corpus", "--oracle")


def test_evaluate_needs_two_samples_for_self_bleu(tiny_run, capsys):
    with pytest.raises(SystemExit) as usage:  # was a ValueError traceback from self_bleu
        main(["evaluate", "--run", str(tiny_run), "--n", "1"])
    assert usage.value.code == 2 and "expected an integer >= 2 (Self-BLEU" in capsys.readouterr().err


def test_an_experiment_into_a_train_run_directory_is_refused(tiny_run, capsys):
    one_line(main(["experiment", "table1", "--preset", "tiny", "--seeds", "1", "--out", str(tiny_run),
                   "--no-progress"]), capsys, "holds a `seqgan train` run")
    assert not (tiny_run / "experiment.json").exists()


@pytest.mark.parametrize("log, warning", [
    ("first line", "has 1 of the 2 lines the checkpoint was written after"),
    ("empty", "has 0 of the 2 lines the checkpoint was written after"),
    ("deleted", "is gone, with the 2 lines the checkpoint was written after"),
])
def test_a_metrics_log_shorter_than_its_checkpoint_resumes_with_a_warning(tiny_run, tmp_path, capsys, log, warning):
    first = (tiny_run / "metrics.jsonl").read_bytes().splitlines(keepends=True)[0]
    run = copy_run(tiny_run, tmp_path, "r", metrics=first if log == "first line" else b"", phase="mle", step=1,
                   log_lines=2)
    if log == "deleted":
        (run / "metrics.jsonl").unlink()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0  # the checkpoint is the work: not lost
    assert warning in capsys.readouterr().err
    lines = (run / "metrics.jsonl").read_bytes().splitlines(keepends=True)  # kept history, then the new records
    assert (lines[0] == first) == (log == "first line") and json.loads(lines[-1])["phase"] == "adversarial"


def test_a_nan_loss_in_seqgan_train_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    """A NaN reaching the policy-gradient loss (here: injected into the rewards) stops `seqgan
    train` with exit 1 and one error line naming the phase and step; the checkpoint written at the
    end of discriminator pre-training is intact and resumable."""
    import seqgan.train as training
    from conftest import TINY_FAST

    from seqgan.checkpoint import run_checkpoint

    real = training.policy_gradient_step

    def poisoned(generator, optimizer, seqs, rewards, *args, **kwargs):
        rewards = rewards.clone()
        rewards[0, 0] = float("nan")
        return real(generator, optimizer, seqs, rewards, *args, **kwargs)

    monkeypatch.setattr(training, "policy_gradient_step", poisoned)
    out = tmp_path / "run"
    code = main(["train", *TINY_FAST, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("seqgan: error: policy-gradient loss is nan in phase adversarial at step 1; "
                                            "stopping (any checkpoint written before it is intact)")
    _, payload = run_checkpoint(out, resume=True)  # verifies its checksum and finite weights
    rounds = json.loads((out / "config.json").read_text())["schedule"]["d_pretrain_rounds"]
    assert (payload["phase"], payload["step"]) == ("d_pretrain", rounds)  # the last phase end before the NaN
