"""One run of a `seqgan experiment table1` trained elsewhere (a lent GPU), brought back small.

A device call returns files of at most 16 MiB (64 MiB in all) and a finished paper-size SeqGAN
checkpoint is ~91 MB, mostly optimizer state that a finished run no longer needs. So: train the
run there from the seed's shared pre-training (carried over), export it without optimizer state
in 15 MiB parts, and import it here, where the experiment takes it as finished (its checkpoint
says "done"; the reassembled checkpoint's sha256 proves the parts came back whole).

    # on the device (PYTHONPATH=src where seqgan is not installed), EXPERIMENT_DIR holding a
    # copy of runs/pretrain-mle-seedS (e.g. under the repository's ignored runs/, carried over):
    python scripts/table1_row.py run EXPERIMENT_DIR METHOD SEED [PRESET] [--seconds N]
    python scripts/table1_row.py export EXPERIMENT_DIR/runs/METHOD-seedS $OUT/METHOD-seedS
    # here, with the files that came back:
    python scripts/table1_row.py import FILES/METHOD-seedS EXPERIMENT_DIR

PRESET defaults to paper. With --seconds N the run stops (checkpointed) at the first step boundary
after N seconds and the command exits 3; run it again, on the same machine, to go on. The run is the experiment's own row (same config edits, same
pre-training), so only the hardware differs from a run made here.
"""

import shutil
import sys
import time
from pathlib import Path

from seqgan.checkpoint import CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME, SAMPLES_NAME, directory_lock, \
    load_checkpoint, save_checkpoint
from seqgan.config import SeqGANError, preset
from seqgan.experiment import _Row, _run, _with_edits, table1_variants, temperature_sweep
from seqgan.train import Interrupted

PART = 15 << 20  # bytes per part of the exported checkpoint
FILES = (CONFIG_NAME, METRICS_NAME, SAMPLES_NAME, "temperatures.json")
OPTIMIZERS = ("mle_optimizer", "adv_optimizer", "d_optimizer")


def run(experiment: Path, method: str, seed: int, preset_name: str = "paper", seconds: float | None = None) -> None:
    variant = next(v for v in table1_variants() if v.name == method)
    base = preset(preset_name)
    row = _Row(variant, seed, experiment, _with_edits(base, {"run.seed": seed}))
    deadline = time.monotonic() + (seconds if seconds is not None else float("inf"))
    try:
        _run(row.cfg, row.run_dir, False, lambda: time.monotonic() > deadline, row.start, variant.after or "mle")
    except Interrupted:
        print(f"stopped after {seconds} s, checkpointed in {row.run_dir}; run again to go on")
        sys.exit(3)
    temperature_sweep(row.cfg, row.run_dir)
    print(f"trained {row.run_dir}")


def export(run_dir: Path, out: Path) -> None:
    cfg, payload = load_checkpoint(run_dir / CHECKPOINT_NAME)
    if payload["phase"] != "done":
        sys.exit(f"{run_dir} is not finished (phase {payload['phase']})")
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(run_dir / name, out / name)
    state = {k: v for k, v in payload.items() if k not in ("format_version", "config", "sha256", *OPTIMIZERS)}
    whole = out / CHECKPOINT_NAME
    save_checkpoint(whole, cfg, **state)
    data = whole.read_bytes()
    whole.unlink()
    for i in range(0, len(data), PART):
        (out / f"{CHECKPOINT_NAME}.part{i // PART:02d}").write_bytes(data[i:i + PART])
    print(f"exported {run_dir.name}: {len(data) / 2**20:.1f} MiB in {-(-len(data) // PART)} parts to {out}")


def import_(exported: Path, experiment: Path) -> None:
    run_dir = experiment / "runs" / exported.name
    if (run_dir / CHECKPOINT_NAME).exists():
        sys.exit(f"{run_dir} already holds a run")
    parts = sorted(exported.glob(f"{CHECKPOINT_NAME}.part*"))
    whole = experiment / "runs" / f".{exported.name}.{CHECKPOINT_NAME}"  # the exported copy may be read-only
    whole.parent.mkdir(parents=True, exist_ok=True)
    whole.write_bytes(b"".join(p.read_bytes() for p in parts))
    try:
        load_checkpoint(whole)  # checks the sha256: the parts came back whole
    finally:
        checked = whole.read_bytes()
        whole.unlink()
    with directory_lock(run_dir):  # refused while a running experiment trains this run
        if (run_dir / CHECKPOINT_NAME).exists():
            sys.exit(f"{run_dir} already holds a run")
        for name in FILES:
            shutil.copyfile(exported / name, run_dir / name)
        (run_dir / CHECKPOINT_NAME).write_bytes(checked)  # last: the experiment sees a whole run or none
    print(f"imported {run_dir} ({len(parts)} parts); re-run the experiment command to collect it")


if __name__ == "__main__":
    command, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    try:
        seconds = None
        if "--seconds" in args:
            i = args.index("--seconds")
            seconds, args = float(args[i + 1]), args[:i] + args[i + 2:]
        if command == "run" and len(args) in (3, 4):
            run(Path(args[0]), args[1], int(args[2]), *args[3:], seconds=seconds)
        elif command == "export" and len(args) == 2:
            export(Path(args[0]), Path(args[1]))
        elif command == "import" and len(args) == 2:
            import_(Path(args[0]), Path(args[1]))
        else:
            sys.exit(__doc__)
    except (SeqGANError, OSError) as e:
        sys.exit(f"table1_row.py: error: {e}")
