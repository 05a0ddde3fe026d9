"""Re-score every run's kept samples of a synthetic experiment with the `seqgan score-oracle` command.

Table 1's acceptance asks that each reported NLL-oracle (the final evaluation's, 10,000 samples)
match an independent scoring of the run's committed samples (the first 2,000 of them) within 0.1.

    python scripts/rescore_samples.py DIR [NAME] > DIR/rescoring.txt

DIR: an experiment directory on the paper's oracle (default NAME: table1). Prints one line per run,
then a FAILED line for each difference over 0.1 (or NaN) and each samples file that cannot be
scored, and exits 1 if there is any.
"""

import json
import subprocess
import sys
from pathlib import Path

TOLERANCE = 0.1

out = Path(sys.argv[1])
name = sys.argv[2] if len(sys.argv) > 2 else "table1"
oracle = json.loads((out / "experiment.json").read_text())["config"]["data"]["oracle"]
if oracle != "paper":
    sys.exit(f"{out}: data.oracle is {oracle!r}; this script scores against the paper's oracle only")
runs = json.loads((out / f"{name}.json").read_text())["runs"]
print("method seed reported_nll_oracle rescored_2000 diff   (seqgan score-oracle SAMPLES --json)")
worst, failed = 0.0, []
for run in runs:
    scored = subprocess.run([sys.executable, "-m", "seqgan", "score-oracle", str(out / run["samples"]), "--json"],
                            capture_output=True, text=True)
    if scored.returncode != 0:
        failed.append(f"{run['samples']}: {scored.stderr.strip()}")
        continue
    rescored = json.loads(scored.stdout.splitlines()[-1])["nll_oracle"]
    diff = rescored - float(run["nll_oracle"])
    if not abs(diff) <= TOLERANCE:  # NaN fails too
        failed.append(f"{run['method']} seed {run['seed']}: |diff| {abs(diff):.4f}")
    worst = max(worst, abs(diff))
    print(f"{run['method']} {run['seed']} {run['nll_oracle']:.4f} {rescored:.4f} {diff:+.4f}")
print(f"largest |diff| {worst:.4f} (tolerance {TOLERANCE})")
for line in failed:
    print(f"FAILED {line}")
sys.exit(1 if failed else 0)
