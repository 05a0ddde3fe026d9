"""One run of a `seqgan experiment table1` trained elsewhere (a lent GPU), brought back small.

A device call returns files of at most 16 MiB (64 MiB in all) and a paper-size SeqGAN checkpoint
is ~91 MB, mostly optimizer state. So: train the run there from the seed's shared pre-training
(carried over), export it in 15 MiB parts, and import it here. A finished run is exported without
the optimizer state it no longer needs, and the experiment takes it as finished (its checkpoint
says "done"). An unfinished one (stopped with --seconds) is exported whole, packed (its tensors'
bytes in planes, zlib-compressed: 55 MiB for a paper-size SeqGAN run), so that, imported into any
experiment directory of the same config, `run` goes on with it as if it had never moved (carried
to a device, or back). Either way the reassembled checkpoint's sha256 proves it came back whole.

    # on the device (PYTHONPATH=src where seqgan is not installed), EXPERIMENT_DIR holding a
    # copy of runs/pretrain-mle-seedS (e.g. under the repository's ignored runs/, carried over):
    python scripts/table1_row.py run EXPERIMENT_DIR METHOD SEED [--preset NAME] [--seconds N] \
        [--require-pretraining]
    python scripts/table1_row.py export EXPERIMENT_DIR/runs/METHOD-seedS $OUT/METHOD-seedS
    # here, with the files that came back (a finished run, or an unfinished one to go on with):
    python scripts/table1_row.py import FILES/METHOD-seedS EXPERIMENT_DIR [--preset NAME]
    # then, where the experiment's other run directories are gone but its results are kept:
    python scripts/table1_row.py collect EXPERIMENT_DIR RESULTS_DIR

The config is the experiment's own, from EXPERIMENT_DIR/experiment.json (copy it over with the
pre-training), with run.device=auto; without that file, the preset (default paper). The run is
the experiment's own row (same config edits, same pre-training), so only the hardware differs
from a run made here; `import` checks that the run holds that row's config.
Without the seed's pre-training in EXPERIMENT_DIR, `run` trains it first (on this machine: to
share the CPU experiment's pre-training bit for bit, make it on the CPU); with
--require-pretraining it refuses instead, so a carry that went missing costs no device time.
With --seconds N the run stops (checkpointed) at the first step boundary after N seconds and
the command exits 3; Ctrl-C or SIGTERM stops it the same way with exit 130 / 143. Run it again
to go on: on the same machine, or elsewhere after `export` and `import`.
"""

import argparse
import contextlib
import io
import math
import os
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path

import torch

from seqgan.checkpoint import CHECKPOINT_NAME, CONFIG_NAME, EXPERIMENT_RECORD_NAME, METRICS_NAME, SAMPLES_NAME, \
    directory_lock, load_checkpoint, save_checkpoint
from seqgan.cli import _interruptible
from seqgan.config import Config, SeqGANError, differing_fields, preset
from seqgan.experiment import TEMPERATURES_NAME, _Row, _collect, _finished, _pyplot, _run, _stop_between_runs, \
    _with_edits, _write_results, config_in, measures, read_result, record_config, table1_variants, temperature_sweep
from seqgan.train import Interrupted, keep_freed_memory

PART = 15 << 20  # bytes per part of the exported checkpoint
FILES = (CONFIG_NAME, METRICS_NAME, SAMPLES_NAME, TEMPERATURES_NAME)  # a finished run's
UNFINISHED_FILES = (CONFIG_NAME, METRICS_NAME)  # an unfinished one's (samples.txt from its first evaluation on)
OPTIMIZERS = ("mle_optimizer", "adv_optimizer", "d_optimizer")
PACKED_MAGIC = b"seqgan packed checkpoint 1\n"  # what the parts of an unfinished run's export start with
_PACKED = "seqgan_packed_tensor"


def _map_leaves(value, is_leaf, change):
    """``value`` with ``change`` applied to every part that ``is_leaf``, through dicts, lists and tuples."""
    if is_leaf(value):
        return change(value)
    if isinstance(value, dict):
        return {key: _map_leaves(item, is_leaf, change) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_map_leaves(item, is_leaf, change) for item in value)
    return value


def _to_planes(tensor: torch.Tensor) -> dict:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    planes = flat.view(torch.uint8).reshape(-1, flat.element_size()).T.contiguous()
    return {_PACKED: planes, "dtype": str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape)}


def _from_planes(packed: dict) -> torch.Tensor:
    dtype = getattr(torch, packed["dtype"])
    return packed[_PACKED].T.contiguous().reshape(-1).view(dtype).reshape(packed["shape"])


def _pack(value):
    """``value`` with every tensor as its bytes in planes (all first bytes, then all second bytes...):
    float bytes side by side compress poorly, their exponent bytes in a row well (a paper-size
    SeqGAN checkpoint: 87 MiB, 55 MiB zlib-compressed so, 61 MiB without the planes)."""
    return _map_leaves(value, lambda v: isinstance(v, torch.Tensor), _to_planes)


def _unpack(value):
    """`_pack`'s inverse."""
    return _map_leaves(value, lambda v: isinstance(v, dict) and _PACKED in v, _from_planes)


def packed_checkpoint(payload: dict) -> bytes:
    """A whole checkpoint (optimizer state included, so the run can go on) as `PACKED_MAGIC` and a
    zlib stream of `_pack`'s form, saved by torch (read back without unpickling)."""
    buffer = io.BytesIO()
    torch.save(_pack(payload), buffer)
    return PACKED_MAGIC + zlib.compress(buffer.getvalue(), 6)


def unpacked_checkpoint(data: bytes) -> dict:
    """`packed_checkpoint`'s payload; its own sha256 entry then proves it whole (`load_checkpoint`)."""
    try:
        stream = zlib.decompressobj()
        buffer = io.BytesIO(stream.decompress(data[len(PACKED_MAGIC):]))
        if not stream.eof:
            raise ValueError("truncated: a part missing or cut short")
        if stream.unused_data:
            raise ValueError("followed by bytes of another export")
        return _unpack(torch.load(buffer, map_location="cpu", weights_only=True))
    except Exception as e:  # zlib.error, or torch's on a damaged archive
        raise SeqGANError(f"the packed checkpoint is damaged ({type(e).__name__}: {str(e)[:100]})") from None


def _row(experiment: Path, method: str, seed: int, preset_name: str | None = None, device: str | None = None) -> _Row:
    """The experiment's own row METHOD-seedSEED (run.device set to ``device`` where given)."""
    variant = next(v for v in table1_variants() if v.name == method)
    base = experiment_config(experiment, preset_name)
    if device is not None:
        base = _with_edits(base, {"run.device": device})
    return _Row(variant, seed, experiment, _with_edits(base, {"run.seed": seed}))


def experiment_config(experiment: Path, preset_name: str | None) -> Config:
    """The config the experiment in ``experiment`` was started with (its experiment.json), else
    the preset's; a preset named beside a record must be the record's, and the record a table1's."""
    record = experiment / EXPERIMENT_RECORD_NAME
    if not record.is_file():
        return preset(preset_name or "paper")
    held = record_config(experiment, "table1")
    if preset_name is not None and preset(preset_name).to_dict() != held.to_dict():
        raise SeqGANError(f"{record} holds another config than the {preset_name} preset; leave --preset out")
    return held


def run(experiment: Path, method: str, seed: int, preset_name: str | None = None,
        seconds: float | None = None, require_pretraining: bool = False) -> None:
    """Train the row; exits 3 at the --seconds deadline and 130 / 143 on SIGINT / SIGTERM, each at
    a step boundary with the run checkpointed (a second Ctrl-C quits at once; a stop during the
    row's or its pre-training's last step lets that run finish first). With
    ``require_pretraining`` a row that would first have to train (or finish) its seed's shared
    pre-training is refused."""
    row = _row(experiment, method, seed, preset_name, device="auto")
    variant = row.variant
    if require_pretraining and row.start is not None and not _finished(row.start):
        raise SeqGANError(f"{row.start} holds no finished pre-training (--require-pretraining); "
                          "carry it over or leave the flag out to train it here")
    keep_freed_memory()  # as the seqgan command does (CPU speed only)
    deadline = time.monotonic() + (seconds if seconds is not None else float("inf"))

    def work(signalled) -> int:
        should_stop = lambda: signalled() or time.monotonic() > deadline
        training = row.run_dir if row.start is None else row.start  # the run a stop checkpoints
        try:
            pretraining_here = row.start is not None and not _finished(row.start)
            row.pretrain(False, should_stop)
            training = row.run_dir
            if pretraining_here:  # a stop that let the pre-training finish its last step ends the call here
                _stop_between_runs(should_stop)
            _run(row.cfg, row.run_dir, False, should_stop, row.start, variant.after or "mle")
        except Interrupted:
            hint = f"checkpointed in {training}; run again to go on"
            if signalled():
                raise Interrupted(f"stopped, {hint}") from None
            print(f"stopped at the first step boundary after {seconds} s, {hint}")
            return 3
        return 0

    code = _interruptible(work)
    if code:
        sys.exit(code)
    temperature_sweep(row.cfg, row.run_dir)
    print(f"trained {row.run_dir}")


def _new_top(directory: Path) -> Path | None:
    """The outermost folder that making ``directory`` would create (None: it exists)."""
    return None if directory.exists() else next(p for p in (directory, *directory.parents) if p.parent.exists())


@contextlib.contextmanager
def _all_or_nothing(made: Path | None):
    """Should the block fail, the files it lists (in the yielded list) are removed, and the folder
    ``made`` (`_new_top`, taken before) with it: no partial export or half-imported run is left."""
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise


def export(run_dir: Path, out: Path) -> None:
    """A finished run without optimizer state (all a finished row needs), or an unfinished one whole
    and packed (`packed_checkpoint`: to go on elsewhere), in parts of `PART` bytes."""
    cfg, payload = load_checkpoint(run_dir / CHECKPOINT_NAME, resume=True)
    finished = payload["phase"] == "done"
    files = [name for name in FILES if finished or name in UNFINISHED_FILES
             or (name == SAMPLES_NAME and (run_dir / name).is_file())]
    missing = [name for name in files if not (run_dir / name).is_file()]
    if missing:
        raise SeqGANError(f"{run_dir} lacks {', '.join(missing)}; nothing exported")
    if out.exists() and out.resolve() == run_dir.resolve():
        raise SeqGANError(f"{out} is the run directory itself; export to another directory")
    if (out / CHECKPOINT_NAME).exists():  # its files would be overwritten and its checkpoint deleted
        raise SeqGANError(f"{out} holds a run ({CHECKPOINT_NAME}); export to another directory")
    with _all_or_nothing(_new_top(out)) as written:
        out.mkdir(parents=True, exist_ok=True)
        for stale in (*out.glob(f"{CHECKPOINT_NAME}.part*"), out / TEMPERATURES_NAME):  # an earlier export's:
            stale.unlink(missing_ok=True)  # `import` joins every part, and takes a sweep as a finished run's
        for name in files:
            written.append(out / name)
            shutil.copyfile(run_dir / name, out / name)
        if finished:
            state = {k: v for k, v in payload.items() if k not in ("format_version", "config", "sha256", *OPTIMIZERS)}
            whole = out / CHECKPOINT_NAME
            written.append(whole)
            save_checkpoint(whole, cfg, **state)
            data = whole.read_bytes()
            whole.unlink()
        else:
            data = packed_checkpoint(payload)
        for i in range(0, len(data), PART):
            written.append(out / f"{CHECKPOINT_NAME}.part{i // PART:02d}")
            written[-1].write_bytes(data[i:i + PART])
    what = "finished" if finished else f"packed whole, to go on after {payload['phase']} step {payload['step']}"
    print(f"exported {run_dir.name} ({what}): {len(data) / 2**20:.1f} MiB in {-(-len(data) // PART)} parts to {out}")


def import_(exported: Path, experiment: Path, preset_name: str | None = None) -> None:
    """Add the exported run to EXPERIMENT_DIR as its row of the same name, once its checkpoint has
    come back whole and holds that row's config (`experiment_config`, up to the run.* fields that
    say where it ran: ``EXECUTION_FIELDS``): a finished run to collect, or an unfinished one to go on."""
    name = Path(os.path.abspath(exported)).name  # `import . DIR` too
    run_dir = experiment / "runs" / name
    if (run_dir / CHECKPOINT_NAME).exists():
        raise SeqGANError(f"{run_dir} already holds a run; move it aside to import this one")
    # All checked before anything is written in EXPERIMENT_DIR:
    if not exported.is_dir():
        raise SeqGANError(f"{exported} is not a directory (one that `table1_row.py export` wrote)")
    if run_dir.exists() and exported.resolve() == run_dir.resolve():
        raise SeqGANError(f"{exported} is the run directory it would be imported into; export it elsewhere")
    method, _, seed = name.rpartition("-seed")
    if method not in [v.name for v in table1_variants()] or not seed.isdigit():
        raise SeqGANError(f"{exported}: not named as a table1 run (METHOD-seedS, as `export` is told)")
    row = _row(experiment, method, int(seed), preset_name)
    parts = sorted(exported.glob(f"{CHECKPOINT_NAME}.part*"))
    if not parts:
        raise SeqGANError(f"{exported} holds no {CHECKPOINT_NAME}.part* files: "
                          "not one that `table1_row.py export` wrote")
    files = [name for name in FILES if (exported / name).is_file()]
    missing = [name for name in UNFINISHED_FILES if name not in files]
    if missing:
        raise SeqGANError(f"{exported} lacks {', '.join(missing)}: not a whole `table1_row.py export` output")
    with tempfile.TemporaryDirectory(prefix="table1_row-import-") as tmp:  # the exported copy may be read-only
        whole = Path(tmp) / CHECKPOINT_NAME
        data = b"".join(p.read_bytes() for p in parts)
        try:
            if data.startswith(PACKED_MAGIC):  # an unfinished run, whole
                torch.save(unpacked_checkpoint(data), whole)
            else:
                whole.write_bytes(data)
            cfg, payload = load_checkpoint(whole, resume=True)  # checks the sha256: the parts came back whole
        except SeqGANError as e:  # named by the parts, not the temporary file
            raise SeqGANError(str(e).replace(str(whole), f"{exported / CHECKPOINT_NAME}.part*")) from None
        checked = whole.read_bytes()
    finished = payload["phase"] == "done"
    missing = [name for name in FILES if name not in files] if finished else []
    if missing or (not finished and TEMPERATURES_NAME in files):
        raise SeqGANError(f"{exported}: " + (f"its run is finished but lacks {', '.join(missing)}" if finished else
                                             f"its run is not finished (phase {payload['phase']}) but has "
                                             f"{TEMPERATURES_NAME}") + ": not a whole `table1_row.py export` output")
    differ = differing_fields(cfg, row.cfg, execution=False)
    if differ:
        raise SeqGANError(f"{exported}: its config is not the experiment's {name} row's (differs in {differ})")
    # Locked first (refused while an experiment trains this run), cleaned up inside the lock: a
    # failure removes only what this import wrote, never a directory another process has taken.
    made = _new_top(run_dir)  # before the lock makes it
    with directory_lock(run_dir), _all_or_nothing(made) as written:
        if (run_dir / CHECKPOINT_NAME).exists():
            raise SeqGANError(f"{run_dir} already holds a run; move it aside to import this one")
        for name in files:
            written.append(run_dir / name)
            shutil.copyfile(exported / name, run_dir / name)
        written.append(run_dir / f"{CHECKPOINT_NAME}.tmp")
        written[-1].write_bytes(checked)
        written[-1].replace(run_dir / CHECKPOINT_NAME)  # last: the experiment sees a whole run or none
    if finished:
        print(f"imported {run_dir} ({len(parts)} parts); re-run the experiment command to collect it")
    else:
        preset_flag = f" --preset {preset_name}" if preset_name is not None else ""
        print(f"imported {run_dir} ({len(parts)} parts), after {payload['phase']} step {payload['step']}; "
              f"`table1_row.py run {experiment} {method} {seed}{preset_flag}` goes on with it")


def collect(experiment: Path, results: Path) -> None:
    """Add the finished runs in EXPERIMENT_DIR that RESULTS_DIR/table1.json lacks, then rewrite the
    table, the plots and the samples there: the rows already in it stay as written, so a results
    directory can be completed after the run directories of its other rows are gone."""
    record = read_result(results / "table1.json")
    base = config_in(record, results / "table1.json")
    differ = differing_fields(experiment_config(experiment, None), base, execution=False)  # device may differ
    if differ:
        raise SeqGANError(f"{experiment / EXPERIMENT_RECORD_NAME} holds another config than {results / 'table1.json'} "
                          f"(differs in {differ})")
    plt, m, variants = _pyplot(), measures(base), table1_variants()
    names = {v.name for v in variants}
    if not all(isinstance(r, dict) and r.get("method") in names and isinstance(r.get("seed"), int)
               for r in record["runs"]):
        raise SeqGANError(f"{results / 'table1.json'} holds a run without a table1 method and seed (not as written)")
    runs = {(r["method"], r["seed"]): r for r in record["runs"]}
    added = []
    for variant in variants:
        for seed in range(base.run.seed, base.run.seed + record["seeds"]):
            row = _Row(variant, seed, experiment, _with_edits(base, {"run.seed": seed}))
            if (variant.name, seed) in runs or not _finished(row.run_dir):
                continue
            run = runs[variant.name, seed] = _collect(row.cfg, variant, seed, row.run_dir, experiment, m)
            (results / "samples").mkdir(exist_ok=True)
            shutil.copyfile(experiment / run["samples"], results / run["samples"])
            added.append(row.run_dir.name)
    if not runs:  # nothing to write a table of
        raise SeqGANError(f"nothing to collect: no finished run in {experiment} nor in {results / 'table1.json'}")
    order = {v.name: i for i, v in enumerate(variants)}
    ordered = sorted(runs.values(), key=lambda r: (order[r["method"]], r["seed"]))
    _write_results(plt, "table1", base, record["seeds"], ordered, variants, m, results,
                   len(ordered) == len(variants) * record["seeds"])
    print(f"collected {', '.join(added) or 'no new runs'} into {results} ({len(ordered)} runs)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"needs a number of seconds >= 0, got {text!r}")
    return value


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="table1_row.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("run", help="train one row of the experiment in EXPERIMENT_DIR")
    p.add_argument("experiment", type=Path, metavar="EXPERIMENT_DIR")
    p.add_argument("method", choices=[v.name for v in table1_variants()])
    p.add_argument("seed", type=int)
    p.add_argument("--preset", default=None, help="without EXPERIMENT_DIR/experiment.json (default paper)")
    p.add_argument("--seconds", type=_seconds, default=None, help="stop at the first step boundary after N s")
    p.add_argument("--require-pretraining", action="store_true",
                   help="refuse to start when the seed's shared pre-training is not in EXPERIMENT_DIR, finished")
    p = commands.add_parser("export", help="a finished run without optimizer state, or an unfinished one whole "
                                           "and packed, in parts")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("out", type=Path, metavar="OUT_DIR")
    p = commands.add_parser("import", help="an exported run into EXPERIMENT_DIR/runs/")
    p.add_argument("exported", type=Path, metavar="EXPORTED_DIR")
    p.add_argument("experiment", type=Path, metavar="EXPERIMENT_DIR")
    p.add_argument("--preset", default=None, help="without EXPERIMENT_DIR/experiment.json (default paper)")
    p = commands.add_parser("collect", help="add EXPERIMENT_DIR's finished runs to RESULTS_DIR/table1.json")
    p.add_argument("experiment", type=Path, metavar="EXPERIMENT_DIR")
    p.add_argument("results", type=Path, metavar="RESULTS_DIR")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run(args.experiment, args.method, args.seed, args.preset, args.seconds, args.require_pretraining)
        elif args.command == "export":
            export(args.run_dir, args.out)
        elif args.command == "collect":
            collect(args.experiment, args.results)
        else:
            import_(args.exported, args.experiment, args.preset)
    except (SeqGANError, OSError) as e:
        sys.exit(f"table1_row.py: error: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
