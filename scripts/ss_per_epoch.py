"""Scheduled sampling with the paper's wording of its schedule: omega falls by 0.002 per *epoch*.

The Table 1 row (`seqgan experiment table1`) spends one mini-batch per step, as every baseline
replaces one policy-gradient update. This run spends one epoch (157 mini-batches of the 10,000
training sequences) per step instead, from the experiment's shared MLE pre-training, then sweeps
the sampling temperature of the final generator.

    python scripts/ss_per_epoch.py EXPERIMENT_DIR OUT_DIR [SEED]

EXPERIMENT_DIR: a `seqgan experiment table1 --preset paper` directory whose pre-training for SEED
(default 88) has finished. Writes OUT_DIR/ (run files) and prints the sweep.
"""

import sys
from pathlib import Path

from seqgan.config import preset
from seqgan.experiment import _run, _with_edits, temperature_sweep

experiment, out = Path(sys.argv[1]), Path(sys.argv[2])
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 88
cfg = _with_edits(preset("paper"), {"run.seed": seed, "schedule.method": "scheduled_sampling",
                                    "scheduled_sampling.updates_per_g_step": 157})
_run(cfg, out, False, lambda: False, experiment / "runs" / f"pretrain-mle-seed{seed}", "mle")
print("temperature nll_oracle nll_test")
for r in temperature_sweep(cfg, out):
    print(f"{r['temperature']} {r['nll_oracle']:.3f} {r['nll_test']:.3f}")
