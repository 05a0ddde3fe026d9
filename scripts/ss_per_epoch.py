"""Scheduled sampling with the paper's wording of its schedule: omega falls by 0.002 per *epoch*.

The Table 1 row (`seqgan experiment table1`) spends one mini-batch per step, as every baseline
replaces one policy-gradient update. This run spends an epoch's worth of updates per step instead
(157 mini-batches of 64, drawn with replacement from the 10,000 training sequences, as every
supervised update draws them), from the experiment's shared MLE pre-training, then sweeps
the sampling temperature of the final generator.

    python scripts/ss_per_epoch.py EXPERIMENT_DIR OUT_DIR [SEED]

EXPERIMENT_DIR: a `seqgan experiment table1` directory (paper preset) whose pre-training for SEED
(default 88) has finished; the run takes its config from its experiment.json (without one, the
paper preset). Writes OUT_DIR/ (run files) and prints the sweep. An OUT_DIR that holds a checkpoint
of this run already resumes it; one holding another run is refused.
"""

import argparse
import sys
from pathlib import Path

from seqgan.checkpoint import CHECKPOINT_NAME, EXPERIMENT_RECORD_NAME, load_checkpoint
from seqgan.cli import _interruptible
from seqgan.config import SeqGANError, differing_fields, preset
from seqgan.experiment import _finished, _run, _with_edits, record_config, temperature_sweep


def ss_per_epoch(experiment: Path, out: Path, seed: int, should_stop=lambda: False) -> None:
    base = record_config(experiment, "table1") if (experiment / EXPERIMENT_RECORD_NAME).is_file() else preset("paper")
    cfg = _with_edits(base, {"run.seed": seed, "schedule.method": "scheduled_sampling",
                             "scheduled_sampling.updates_per_g_step": 157})
    start = experiment / "runs" / f"pretrain-mle-seed{seed}"
    if (out / CHECKPOINT_NAME).is_file():  # OUT_DIR resumes its own checkpoint, if it is this run's
        differ = differing_fields(load_checkpoint(out / CHECKPOINT_NAME)[0], cfg, execution=False)
        if differ:
            raise SeqGANError(f"{out} holds another run than this one (seed {seed}, from {experiment}'s config; "
                              f"differs in {differ}); choose another OUT_DIR")
    else:
        if not experiment.is_dir():
            raise SeqGANError(f"{experiment} is not a directory")
        if not _finished(start):
            raise SeqGANError(f"{start} holds no finished pre-training: EXPERIMENT_DIR needs a `seqgan experiment "
                              f"table1 --preset paper` whose seed-{seed} pre-training has finished")
    _run(cfg, out, False, should_stop, start, "mle")
    print("temperature nll_oracle nll_test")
    for r in temperature_sweep(cfg, out):
        print(f"{r['temperature']} {r['nll_oracle']:.3f} {r['nll_test']:.3f}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="ss_per_epoch.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", type=Path, metavar="EXPERIMENT_DIR")
    parser.add_argument("out", type=Path, metavar="OUT_DIR")
    parser.add_argument("seed", type=int, nargs="?", default=88, metavar="SEED", help="default 88")
    args = parser.parse_args(argv)
    try:  # Ctrl-C / SIGTERM: stop after the current step, checkpointed, one line, exit 130 / 143
        code = _interruptible(lambda stop: ss_per_epoch(args.experiment, args.out, args.seed, stop),
                              f"stopped, checkpointed in {args.out}; run again to go on")
    except (SeqGANError, OSError) as e:
        sys.exit(f"ss_per_epoch.py: error: {e}")
    sys.exit(code or 0)


if __name__ == "__main__":
    main(sys.argv[1:])
