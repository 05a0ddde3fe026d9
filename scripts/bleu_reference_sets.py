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
from pathlib import Path

from seqgan.bleu import bleu
from seqgan.config import Config
from seqgan.data import load_corpus, tokenize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a `seqgan experiment realdata` output directory")
    parser.add_argument("--n", type=int, default=2, help="BLEU order (default 2)")
    args = parser.parse_args()
    cfg = Config.from_dict(json.loads((args.dir / "experiment.json").read_text())["config"])
    corpus = load_corpus(cfg.data)
    splits = {name: [corpus.vocab.decode(row) for row in getattr(corpus, name).tolist()]
              for name in ("test", "train", "valid")}
    references = {"test": splits["test"], "train": splits["train"],
                  "all": splits["train"] + splits["valid"] + splits["test"]}
    print(f"{args.dir}: BLEU-{args.n} of each run's samples against "
          + ", ".join(f"{name} ({len(refs):,} sequences)" for name, refs in references.items()))
    print("method seed " + " ".join(references))
    by_method: dict[str, list[list[float]]] = {}
    for path in sorted((args.dir / "samples").glob("*-seed*.txt")):
        method, seed = path.stem.rsplit("-seed", 1)
        hypotheses = [tokenize(line, cfg.data.tokenize) for line in path.read_text(encoding="utf-8").splitlines()]
        scores = [bleu(refs, hypotheses, args.n) for refs in references.values()]
        by_method.setdefault(method, []).append(scores)
        print(method, seed, " ".join(f"{s:.3f}" for s in scores))
    for method, rows in by_method.items():
        means = [statistics.fmean(column) for column in zip(*rows)]
        print(f"{method} mean", " ".join(f"{s:.3f}" for s in means))


if __name__ == "__main__":
    main()
