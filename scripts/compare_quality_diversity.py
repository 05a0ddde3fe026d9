"""Quality–diversity curves of several synthetic experiments' results on one chart.

Every row of one Table 1 continues the same MLE pre-training, so its quality–diversity plot compares
methods at one pre-training length. This puts the curves of several results directories side by
side (e.g. the paper schedule's, 120 MLE epochs, against the quick preset's, 15) and prints, as a
markdown table, each curve's NLL-oracle at a few NLL-test values (interpolated within its
temperature sweep as the table's "at equal NLL-test" column is; – where the sweep does not reach).

    python scripts/compare_quality_diversity.py paper=results/table1 quick=results/table1-quick \
        --methods mle,scheduled_sampling,seqgan --out results/table1/quality_diversity_by_preset.png

Each LABEL=DIR names a directory holding NAME.json (default table1) as `seqgan experiment` writes
it; the curves are its summary's (mean over seeds at each temperature).
"""

import argparse
import sys
from pathlib import Path

from seqgan.checkpoint import save_figure
from seqgan.config import SeqGANError
from seqgan.experiment import LABELS, SYNTHETIC, _pyplot, read_result, table1_variants, value_at

STYLES = ("-", "--", ":", "-.")  # one colour per method (as in table1's plots), one look per results directory:
MARKERS = ("o", "s", "^", "D")  # a line style, then past four directories also another marker


def look(index: int) -> tuple[str, str]:
    """(line style, marker) of the index-th results directory: 16 distinct looks, then repeats."""
    return STYLES[index % len(STYLES)], MARKERS[index // len(STYLES) % len(MARKERS)]


def read_curves(sources: list[str], name: str, methods: list[str]) -> list[tuple[str, str, list[dict]]]:
    """(label, method, temperature sweep) for each LABEL=DIR and method, in the order given."""
    curves = []
    for source in sources:
        label, sep, directory = source.partition("=")
        if not (sep and label and directory):
            raise SeqGANError(f"{source!r} is not LABEL=DIR (e.g. paper=results/table1)")
        path = Path(directory) / f"{name}.json"
        if not path.is_file():
            raise SeqGANError(f"{path} not found")
        summary = read_result(path).get("summary")
        for method in methods:
            row = summary.get(method) if isinstance(summary, dict) else None
            sweep = row.get("temperatures") if isinstance(row, dict) else None
            if not (isinstance(sweep, list) and sweep and all(isinstance(p, dict) for p in sweep)):
                raise SeqGANError(f"{path} has no temperature sweep for {method}")
            if not all(isinstance(p.get(k), (int, float)) and not isinstance(p.get(k), bool)
                       for p in sweep for k in ("temperature", "nll_test", "nll_oracle")):
                raise SeqGANError(f"{path}: {method}'s temperature sweep lacks a number "
                                  "(temperature, nll_test, nll_oracle: a synthetic experiment's result)")
            curves.append((label, method, sweep))
    return curves


def markdown(curves: list[tuple[str, str, list[dict]]], at: list[float]) -> str:
    lines = ["NLL-oracle at equal NLL-test (interpolated within each temperature sweep; – outside it)", "",
             "| curve | " + " | ".join(f"NLL-test {x:g}" for x in at) + " |",
             "|---|" + "---|" * len(at)]
    for label, method, sweep in curves:
        values = [value_at(sweep, x) for x in at]
        lines.append(f"| {LABELS.get(method, method)} ({label}) | "
                     + " | ".join("–" if v is None else f"{v:.3f}" for v in values) + " |")
    return "\n".join(lines)


def plot(curves: list[tuple[str, str, list[dict]]], methods: list[str], out: Path) -> None:
    plt = _pyplot()
    labels = list(dict.fromkeys(label for label, _, _ in curves))
    order = [v.name for v in table1_variants()] + methods  # table1's colours; other methods after them
    fig, ax = plt.subplots(figsize=(7, 5))
    for label, method, sweep in curves:
        ls, marker = look(labels.index(label))
        ax.plot([p["nll_test"] for p in sweep], [p["nll_oracle"] for p in sweep], marker=marker, ms=3,
                ls=ls, color=f"C{order.index(method)}",
                label=f"{LABELS.get(method, method)} ({label})")
    ax.set_xlabel(SYNTHETIC.x[1])  # the axes of the experiments' own quality-diversity plots
    ax.set_ylabel(SYNTHETIC.y[1])
    ax.set_title("Quality vs diversity across sampling temperatures (lower-left is better)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="compare_quality_diversity.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", metavar="LABEL=DIR", help="a label and a results directory")
    parser.add_argument("--name", default="table1", help="the experiment's result, DIR/NAME.json (default table1)")
    parser.add_argument("--methods", default="mle,seqgan", help="comma-separated methods (default mle,seqgan)")
    parser.add_argument("--at", default="8,8.5,9,9.5,10", help="NLL-test values for the printed table (default 8,8.5,9,9.5,10)")
    parser.add_argument("--out", type=Path, help="also draw the curves into this PNG")
    args = parser.parse_args(argv)
    try:
        methods = [m for m in args.methods.split(",") if m]
        try:
            at = [float(x) for x in args.at.split(",")]
        except ValueError:
            raise SeqGANError(f"--at {args.at!r} is not a comma-separated list of numbers") from None
        curves = read_curves(args.sources, args.name, methods)
        print(markdown(curves, at))
        if args.out:
            plot(curves, methods, args.out)
    except (SeqGANError, OSError) as e:
        sys.exit(f"compare_quality_diversity.py: error: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
