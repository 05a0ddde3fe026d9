"""BLEU-n of a realdata experiment's committed samples against three reference sets.

    python3 scripts/bleu_reference_sets.py results/realdata-poems-quick [--n 2]

Our tables score samples against the held-out test split. The paper does not say which references
it used; with the training data among them (as its PG-BLEU reward does) BLEU rises a lot, because
the references are ~10x more numerous and include what the model was fitted to. This prints, per
run, BLEU-n against the test split, the training split, and the whole corpus, so the size of that
effect is measured, not guessed. Same corpus, split and tokenisation as the experiment (read from
DIR/experiment.json); samples are the 2,000 per run in DIR/samples.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from seqgan.bleu import bleu
from seqgan.cli import _bleu_order
from seqgan.config import Config, SeqGANError
from seqgan.data import load_corpus, split_lines, tokenize


def experiment_config(directory: Path) -> Config:
    """The config DIR/experiment.json records, checked to be a corpus (realdata) experiment's."""
    if not directory.is_dir():
        raise SeqGANError(f"{directory} is not a directory")
    path = directory / "experiment.json"
    if not path.is_file():
        raise SeqGANError(f"{path} not found: not an experiment directory")
    try:
        cfg = Config.from_dict(json.loads(path.read_text(encoding="utf-8"))["config"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, SeqGANError):
        raise SeqGANError(f"{path} holds no readable config") from None
    if not cfg.data.corpus:
        raise SeqGANError(f"{directory} is a synthetic (oracle) experiment; BLEU against reference sets needs a "
                          "corpus experiment (`seqgan experiment realdata`)")
    return cfg


def report(directory: Path, n: int) -> None:
    cfg = experiment_config(directory)
    samples = {}  # every samples file read before anything is printed
    for path in sorted((directory / "samples").glob("*-seed*.txt")):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SeqGANError(f"{path} is not UTF-8 text") from None
        samples[path] = [tokenize(line, cfg.data.tokenize) for line in split_lines(text)]  # as they were written
        if not any(samples[path]):  # a blank line is an empty sample; only blank lines, none
            raise SeqGANError(f"{path} holds no samples")
    if not samples:
        raise SeqGANError(f"{directory / 'samples'} holds no METHOD-seedS.txt sample files")
    corpus = load_corpus(cfg.data)
    splits = {name: [corpus.vocab.decode(row) for row in getattr(corpus, name).tolist()]
              for name in ("test", "train", "valid")}
    references = {"test": splits["test"], "train": splits["train"],
                  "all": splits["train"] + splits["valid"] + splits["test"]}
    print(f"{directory}: BLEU-{n} of each run's samples against "
          + ", ".join(f"{name} ({len(refs):,} sequences)" for name, refs in references.items()))
    print("method seed " + " ".join(references))
    by_method: dict[str, list[list[float]]] = {}
    for path, hypotheses in samples.items():
        method, seed = path.stem.rsplit("-seed", 1)
        scores = [bleu(refs, hypotheses, n) for refs in references.values()]
        by_method.setdefault(method, []).append(scores)
        print(method, seed, " ".join(f"{s:.3f}" for s in scores))
    for method, rows in by_method.items():
        means = [statistics.fmean(column) for column in zip(*rows)]
        print(f"{method} mean", " ".join(f"{s:.3f}" for s in means))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bleu_reference_sets.py", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a `seqgan experiment realdata` output directory")
    parser.add_argument("--n", type=_bleu_order, default=2, help="BLEU order, 1-100 (default 2)")
    args = parser.parse_args(argv)
    try:
        report(args.dir, args.n)
    except (SeqGANError, OSError) as e:
        sys.exit(f"bleu_reference_sets.py: error: {e}")


if __name__ == "__main__":
    main()
