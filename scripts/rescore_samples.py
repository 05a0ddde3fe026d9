"""Re-score every run's kept samples of a synthetic experiment with the `seqgan score-oracle` command.

Table 1's acceptance asks that each reported NLL-oracle (the final evaluation's, 10,000 samples)
match an independent scoring of the run's committed samples (the first 2,000 of them) within 0.1.

    python scripts/rescore_samples.py DIR [NAME] > DIR/rescoring.txt

DIR: an experiment directory on the paper's oracle (default NAME: table1). Prints one line per run,
then a FAILED line for each difference over 0.1 (or NaN) and each samples file that cannot be
scored, and exits 1 if there is any. A DIR that is not such a directory stops with one error line
before anything is printed.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from seqgan.config import SeqGANError

TOLERANCE = 0.1
RUN_KEYS = ("method", "seed", "samples", "nll_oracle")


def read_json(path: Path):
    """The JSON content of ``path``; one line (SeqGANError) when it is missing or not UTF-8 JSON."""
    if not path.is_file():
        raise SeqGANError(f"{path} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise SeqGANError(f"{path} is not UTF-8 JSON ({str(e).splitlines()[0][:100]})") from None


def read_runs(out: Path, name: str) -> list[dict]:
    """The runs of DIR/NAME.json, checked to be on the paper's oracle and to hold what is printed."""
    if not out.is_dir():
        raise SeqGANError(f"{out} is not a directory")
    record = read_json(out / "experiment.json")
    try:
        oracle = record["config"]["data"]["oracle"]
    except (KeyError, TypeError):
        raise SeqGANError(f"{out / 'experiment.json'} records no config.data.oracle: "
                          "not an experiment record") from None
    if oracle != "paper":
        raise SeqGANError(f"{out}: data.oracle is {oracle!r}; this script scores against the paper's oracle only")
    path = out / f"{name}.json"
    result = read_json(path)
    runs = result.get("runs") if isinstance(result, dict) else None
    if not isinstance(runs, list):
        raise SeqGANError(f"{path} holds no list of runs: not an experiment result")
    for i, run in enumerate(runs):
        if not (isinstance(run, dict) and all(k in run for k in RUN_KEYS) and isinstance(run["samples"], str)
                and isinstance(run["nll_oracle"], (int, float)) and not isinstance(run["nll_oracle"], bool)):
            raise SeqGANError(f"{path}: run {i} is not as written (needs {', '.join(RUN_KEYS)})")
    return runs


def rescore(out: Path, runs: list[dict]) -> int:
    print("method seed reported_nll_oracle rescored_2000 diff   (seqgan score-oracle SAMPLES --json)")
    worst, failed = 0.0, []
    for run in runs:
        command = ["score-oracle", str(out / run["samples"]), "--oracle", "paper", "--json"]
        scored = subprocess.run([sys.executable, "-m", "seqgan", *command], capture_output=True, text=True)
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
    return 1 if failed else 0


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="rescore_samples.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, metavar="DIR", help="an experiment directory on the paper's oracle")
    parser.add_argument("name", nargs="?", default="table1", metavar="NAME",
                        help="the experiment's result, DIR/NAME.json (default table1)")
    args = parser.parse_args(argv)
    try:
        runs = read_runs(args.dir, args.name)
    except (SeqGANError, OSError) as e:
        sys.exit(f"rescore_samples.py: error: {e}")
    sys.exit(rescore(args.dir, runs))


if __name__ == "__main__":
    main(sys.argv[1:])
