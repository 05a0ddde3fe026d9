"""Checkpoints: plain dicts of tensors and numbers, written atomically, read without unpickling
arbitrary objects (torch.load(weights_only=True))."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from contextlib import contextmanager, suppress
from pathlib import Path

import torch

from .config import Config, SeqGANError

FORMAT_VERSION = 1
# A run directory's files (and data.VOCAB_NAME for a corpus run).
CHECKPOINT_NAME, CONFIG_NAME = "checkpoint.pt", "config.json"
METRICS_NAME, SAMPLES_NAME = "metrics.jsonl", "samples.txt"
EXPERIMENT_RECORD_NAME = "experiment.json"  # what marks an experiment directory (experiment.py)
LOCK_NAME = ".lock"  # held by the process writing a run or experiment directory (`directory_lock`)


# What `train` writes besides the config (and "rollout" for a delayed roll-out policy): reading a
# run's generator needs the first three, resuming it all.
STATE_KEYS = ("phase", "step", "generator", "log_lines", "rng", "discriminator", "mle_optimizer", "adv_optimizer",
              "d_optimizer")
PHASES = ("init", "mle", "d_pretrain", "adversarial", "done")  # a checkpoint's "phase": the last one completed


def _message_line(e: Exception, last: bool = False) -> str:
    """The first (or last) non-empty line of an exception's message, else its type's name."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
    return lines[-1 if last else 0]


_HELD: dict[str, object] = {}  # directories this process has locked -> the open .lock file


@contextmanager
def directory_lock(directory: Path):
    """Hold DIRECTORY/.lock (an advisory flock, released when the work ends or the process dies)
    while this process writes the directory, so a second seqgan process training, resuming or
    continuing the same directory stops with one line instead of overwriting it. Creates the
    directory. Re-entrant within a process; without fcntl (Windows) nothing is locked."""
    directory = Path(directory)
    key = os.path.realpath(directory)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        fcntl = None
    if fcntl is None or key in _HELD:  # nothing to lock, or this process holds it already (the CLI, then train)
        yield
        return
    if directory.exists() and not directory.is_dir():
        raise SeqGANError(f"{directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / LOCK_NAME, "a+", encoding="utf-8")
    except OSError as e:
        raise SeqGANError(f"cannot write to {directory}: {e.strerror or e}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            raise SeqGANError(f"{directory} is in use by another seqgan process"
                              + (f" (pid {holder})" if holder.isdigit() else "")) from None
        except OSError as e:  # a file system without flock (some network / parallel mounts)
            warnings.warn(f"cannot lock {directory} ({e.strerror or e}); nothing stops a second process "
                          "from writing it", stacklevel=3)
            yield
            return
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _HELD[key] = handle
        try:
            yield
        finally:
            _HELD.pop(key, None)
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_still_locked(directory: Path) -> None:
    """One line, before this process writes into DIRECTORY, which it locked, when DIRECTORY has been
    removed or replaced since (DIRECTORY/.lock is no longer the file this process holds open, whose
    inode cannot be reused while it is): writing on would put this run's files into whatever now
    stands there, e.g. a new run started in the same place. Directories not locked here pass."""
    handle = _HELD.get(os.path.realpath(directory))
    if handle is None:
        return
    try:
        same = os.path.samestat(os.fstat(handle.fileno()), os.stat(Path(directory) / LOCK_NAME))
    except OSError:
        same = False
    if not same:
        raise SeqGANError(f"{directory} was removed or replaced while this run was writing it; stopped "
                          "without writing into what stands there now")


def save_checkpoint(path: Path, cfg: Config, **state) -> None:
    """Write {format_version, config, **state} to ``path`` via a temporary file + fsync + rename,
    so the previous checkpoint stays intact until the new one is complete."""
    path = Path(path)
    payload = {"format_version": FORMAT_VERSION, "config": json.dumps(cfg.to_dict()), **state}
    payload["sha256"] = payload_sha256(payload)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())

    try:
        replace_atomic(path, write)
        _fsync_directory(path.parent)
    except (OSError, RuntimeError) as e:  # disk full, directory gone or read-only; torch wraps some as RuntimeError
        kept = "the previous checkpoint is intact" if path.exists() else "no checkpoint was written"
        reason = getattr(e, "strerror", None) or _message_line(e)[:120]
        raise SeqGANError(f"cannot write checkpoint {path}: {reason}; {kept}") from None


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable: without it a power loss may bring back the old
    entry. Where a directory cannot be opened for that (not POSIX), the rename stays atomic only."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_atomic(path: Path, write, per_process: bool = False) -> None:
    """``write(tmp)`` then a rename of ``tmp`` onto ``path``: a reader, or the next run after a kill,
    finds the old content or the new, never part of it; a failed write (its error is raised)
    leaves no temporary file behind. ``per_process``: the temporary name carries this process's id,
    for files that several processes may write at once (torchrun ranks each building a corpus)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp" if per_process else path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:  # also a writer's own error (e.g. matplotlib's) or Ctrl-C
        with suppress(OSError):  # e.g. the temporary name is a directory: the caller's error says enough
            tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` (UTF-8) into ``path`` as `replace_atomic` writes."""
    replace_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_figure(fig, path: Path) -> None:
    """A matplotlib figure into ``path`` (its format from the suffix) as `replace_atomic` writes."""
    path = Path(path)
    replace_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format=path.suffix[1:].lower() or "png"))


def load_checkpoint(path: Path, resume: bool = False, finite: bool = True) -> tuple[Config, dict]:
    """(config, payload) of a checkpoint, checked to hold a generator (and, to ``resume`` an
    unfinished run, all of `STATE_KEYS`) and, unless ``finite`` is False (to inspect it), weights
    that are all finite; anything else stops with one line."""
    path = Path(path)
    if path.is_dir():
        raise SeqGANError(f"checkpoint {path} is a directory, not a file")
    if not path.is_file():
        raise SeqGANError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about refused globals; our error says it in one line
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        with open(path, "rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
        detail = _message_line(e).split(". ")[0].rstrip(".")  # torch adds "This is an internal error…"
        reason = ("it holds Python objects a seqgan checkpoint never has, so it is not unpickled"
                  if isinstance(e, pickle.UnpicklingError) and "Unsupported global" in str(e)
                  else f"a damaged or truncated archive: {detail[:100]}" if zipped
                  else "not a zip archive as torch.save writes: truncated or another format")
        raise SeqGANError(f"cannot read checkpoint {path}: not a valid seqgan checkpoint ({reason})") from None
    if not isinstance(payload, dict) or "format_version" not in payload or "config" not in payload:
        raise SeqGANError(f"cannot read checkpoint {path}: not a seqgan checkpoint")
    if "sha256" in payload and payload["sha256"] != payload_sha256(payload):  # older checkpoints have none
        raise SeqGANError(f"cannot read checkpoint {path}: its content does not match the checksum saved with it "
                          "(damaged on disk or in a copy, or edited outside seqgan)")
    if payload["format_version"] != FORMAT_VERSION:
        raise SeqGANError(f"checkpoint {path} has format version {payload['format_version']}; "
                          f"this seqgan reads version {FORMAT_VERSION}")
    try:
        cfg = Config.from_dict(json.loads(payload["config"]))
    except (ValueError, TypeError, AttributeError, SeqGANError) as e:
        raise SeqGANError(f"checkpoint {path} holds a config this seqgan cannot use: {e}") from None
    # A finished run has nothing to resume: its checkpoint may hold no optimizer state (scripts/table1_row.py).
    needed = STATE_KEYS if resume and payload.get("phase") != "done" else STATE_KEYS[:3]
    missing = [key for key in needed if key not in payload]
    if missing:
        raise SeqGANError(f"cannot read checkpoint {path}: not a valid seqgan checkpoint (missing {missing[0]!r})")
    bad = _malformed(payload, needed is STATE_KEYS)
    if bad:  # only where no checksum vouches for the writer (older checkpoints) or one was forged
        raise SeqGANError(f"cannot read checkpoint {path}: not a valid seqgan checkpoint (its {bad!r} is not as "
                          "seqgan writes it)")
    for key in ("generator", "discriminator") if finite else ():
        if key in payload and not all(v.isfinite().all() for v in payload[key].values() if v.is_floating_point()):
            raise SeqGANError(f"checkpoint {path}: the {key}'s weights are not all finite (NaN or inf)")
    return cfg, payload


def _malformed(payload: dict, resume: bool) -> str | None:
    """The first entry of a loaded checkpoint that is not as `train` writes it, else None."""
    if payload["phase"] not in PHASES:
        return "phase"
    if type(payload["step"]) is not int or payload["step"] < 0:
        return "step"
    for key in ("generator", "discriminator"):
        if key in payload and not (isinstance(payload[key], dict)
                                   and all(isinstance(v, torch.Tensor) for v in payload[key].values())):
            return key
    if resume:
        if type(payload["log_lines"]) is not int or payload["log_lines"] < 0:
            return "log_lines"
        if not _rng_as_written(payload["rng"]):
            return "rng"
    return None


def _rng_as_written(rng) -> bool:
    """Whether ``rng`` has the shape of `train.rng_state`'s: torch's CPU state, numpy's MT19937 state
    (name, 624 keys, position, has_gauss, cached_gaussian) and Python's (version, 625 ints, gauss)."""
    if not isinstance(rng, dict):
        return False
    cpu, np_state, py_state = rng.get("torch"), rng.get("numpy"), rng.get("python")
    live_cpu = torch.get_rng_state()
    return (isinstance(cpu, torch.Tensor) and cpu.dtype == live_cpu.dtype and cpu.shape == live_cpu.shape
            and isinstance(np_state, list) and len(np_state) == 5 and np_state[0] == "MT19937"
            and isinstance(np_state[1], torch.Tensor) and tuple(np_state[1].shape) == (624,)
            and isinstance(py_state, list) and len(py_state) == 3 and type(py_state[0]) is int
            and isinstance(py_state[1], list) and len(py_state[1]) == 625)


# An optimizer's per-machine settings: a checkpoint written on a CPU resumes on a GPU (where the
# discriminator's step is a CUDA graph and needs capturable Adam) and the other way round.
_MACHINE_OPTIONS = ("capturable", "fused", "foreach")


def restore(target, state, what: str) -> None:
    """``target.load_state_dict(state)`` for a module or optimizer from a checkpoint; weights that
    do not fit the checkpoint's own config stop with one line. An optimizer keeps its own
    device-dependent options (`_MACHINE_OPTIONS`), not the ones it was saved with."""
    if isinstance(target, torch.optim.Optimizer) and isinstance(state, dict) \
            and len(state.get("param_groups", ())) == len(target.param_groups):
        state = {**state, "param_groups": [
            {**saved, **{k: live[k] for k in _MACHINE_OPTIONS if k in live}}
            for saved, live in zip(state["param_groups"], target.param_groups)]}
    try:
        target.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as e:
        reason = _message_line(e, last=True)[:160]  # load_state_dict lists the mismatches last
        raise SeqGANError(f"the checkpoint's {what} does not fit its config ({reason})") from None


def is_experiment_dir(path: Path) -> bool:
    """An experiment directory (its record, no checkpoint of its own), not a run directory."""
    return (Path(path) / EXPERIMENT_RECORD_NAME).is_file() and not (Path(path) / CHECKPOINT_NAME).is_file()


def run_checkpoint(run_dir: Path, resume: bool = False, finite: bool = True) -> tuple[Config, dict]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SeqGANError(f"{run_dir} is a file, not a run directory" if run_dir.exists()
                          else f"run directory not found: {run_dir}")
    if is_experiment_dir(run_dir):
        raise SeqGANError(f"{run_dir} is an experiment directory, not a run: name one of its runs "
                          f"({run_dir / 'runs'}/METHOD-seedN; `seqgan inspect {run_dir}` lists them)")
    return load_checkpoint(run_dir / CHECKPOINT_NAME, resume, finite)


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    return memoryview(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' raw bytes in state-dict order (identifies exact parameters)."""
    digest = hashlib.sha256()
    for tensor in state.values():
        digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


def payload_sha256(payload: dict) -> str:
    """sha256 over a checkpoint's whole content but its own "sha256" entry (keys in sorted order;
    tensors by dtype, shape and bytes; other values by repr). `save_checkpoint` stores it and
    `load_checkpoint` checks it, so bytes damaged on disk or in a copy stop with an error instead of
    loading as silently different weights (torch.load does not notice damage inside a tensor)."""
    digest = hashlib.sha256()

    def feed(value) -> None:
        if isinstance(value, torch.Tensor):
            digest.update(f"tensor {value.dtype} {tuple(value.shape)}:".encode())
            digest.update(_tensor_bytes(value))
        elif isinstance(value, dict):
            digest.update(b"{")
            for key in sorted(value, key=str):
                feed(str(key))
                feed(value[key])
            digest.update(b"}")
        elif isinstance(value, (list, tuple)):
            digest.update(b"[")
            for item in value:
                feed(item)
            digest.update(b"]")
        else:
            digest.update(f"{type(value).__name__} {value!r};".encode())

    feed({key: value for key, value in payload.items() if key != "sha256"})
    return digest.hexdigest()
