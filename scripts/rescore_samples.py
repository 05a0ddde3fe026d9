"""Re-score every run's kept samples of a synthetic experiment with the `seqgan score-oracle` command.

Table 1's acceptance asks that each reported NLL-oracle (the final evaluation's, 10,000 samples)
match an independent scoring of the run's committed samples (the first 2,000 of them) within 0.1.

    python scripts/rescore_samples.py DIR [NAME] > DIR/rescoring.txt

DIR: an experiment directory (default NAME: table1). Prints one line per run and exits 1 when a
difference exceeds 0.1 (or a run has no samples file).
"""

import json
import subprocess
import sys
from pathlib import Path

TOLERANCE = 0.1

out = Path(sys.argv[1])
name = sys.argv[2] if len(sys.argv) > 2 else "table1"
runs = json.loads((out / f"{name}.json").read_text())["runs"]
print("method seed reported_nll_oracle rescored_2000 diff   (seqgan score-oracle SAMPLES --json)")
worst = 0.0
for run in runs:
    scored = subprocess.run([sys.executable, "-m", "seqgan", "score-oracle", str(out / run["samples"]), "--json"],
                            capture_output=True, text=True)
    if scored.returncode != 0:
        sys.exit(f"{run['samples']}: {scored.stderr.strip()}")
    rescored = json.loads(scored.stdout.splitlines()[-1])["nll_oracle"]
    diff = rescored - run["nll_oracle"]
    worst = max(worst, abs(diff))
    print(f"{run['method']} {run['seed']} {run['nll_oracle']:.4f} {rescored:.4f} {diff:+.4f}")
print(f"largest |diff| {worst:.4f} (tolerance {TOLERANCE})")
sys.exit(1 if worst > TOLERANCE else 0)
