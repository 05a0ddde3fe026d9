"""The A/B table of README.md from the committed metrics: NLL-oracle / NLL-test after MLE (15
epochs) and after the 25 adversarial steps, per run and as mean ± std over seeds 88-90.

    python results/core/authors-init-ab/summarise.py results/core/authors-init-ab
"""
import json
import statistics
import sys
from pathlib import Path

CONFIGS = ("default", "single_bias", "glorot", "both")
SEEDS = (88, 89, 90)


def ends(path: Path) -> tuple[float, float, float, float]:
    """(NLL-oracle, NLL-test) of the last MLE evaluation, then of the last adversarial one."""
    evals = [r for r in map(json.loads, path.read_text().splitlines()) if "nll_oracle" in r]
    mle = [r for r in evals if r["phase"] == "mle"][-1]
    adv = [r for r in evals if r["phase"] == "adversarial"][-1]
    return mle["nll_oracle"], mle["nll_test"], adv["nll_oracle"], adv["nll_test"]


def main(root: Path) -> None:
    runs = {c: [ends(root / f"{c}-seed{s}.metrics.jsonl") for s in SEEDS] for c in CONFIGS}
    print("| config | seed | after MLE: NLL-oracle / NLL-test | after 25 steps | NLL-oracle drop |")
    print("|---|---|---|---|---|")
    for c, rows in runs.items():
        for s, (mo, mt, ao, at) in zip(SEEDS, rows):
            print(f"| {c} | {s} | {mo:.3f} / {mt:.3f} | {ao:.3f} / {at:.3f} | {mo - ao:.3f} |")
    print()
    print("| config | after MLE: NLL-oracle | after 25 steps: NLL-oracle | NLL-test | NLL-oracle drop |")
    print("|---|---|---|---|---|")
    ms = lambda xs: f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}"  # noqa: E731
    for c, rows in runs.items():
        print(f"| {c} | {ms([r[0] for r in rows])} | {ms([r[2] for r in rows])} | {ms([r[3] for r in rows])} "
              f"| {ms([r[0] - r[2] for r in rows])} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
