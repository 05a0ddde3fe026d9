#!/usr/bin/env python3
"""Build the Chinese five-character quatrain corpus (``poems.txt.gz``).

Source: the npm package ``chinese-poetry@2.0.1`` (MIT licence), which holds
the complete Tang and Song shi poetry (Traditional Chinese) as JSON lists of
``{author, title, paragraphs, id}`` in
``package/dist/quantangshi/poet.tang.<N>.json`` and ``poet.song.<N>.json``.

Pipeline:
  1. ``npm pack chinese-poetry@2.0.1`` into a temporary directory; record the
     tarball's sha256; read the poem files with ``tarfile``.
  2. Keep poems of exactly four clauses of exactly five CJK characters:
     join ``paragraphs``, split on ，。？！；、 and , . ? ! ; (empty pieces are
     dropped), require 4 clauses each made of 5 CJK ideographs only.
  3. Convert to Simplified Chinese with OpenCC ``t2s``; re-check the 4x5 shape.
  4. Deduplicate exactly on the 20-character string, first-seen order:
     Tang before Song, files in numeric order of <N>, poems in file order.
  5. Write one poem per line (20 characters, no punctuation), UTF-8,
     gzip with mtime=0 so the output is byte-reproducible.

Also writes ``poems.provenance.json`` next to the output.

Requirements: ``npm`` on PATH and ``pip install opencc``.
Usage: python3 scripts/build_poems.py [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import importlib.metadata
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "chinese-poetry"
VERSION = "2.0.1"
SPEC = f"{PACKAGE}@{VERSION}"
# sha256 of chinese-poetry-2.0.1.tgz as first downloaded (a mismatch only warns).
KNOWN_TARBALL_SHA256 = "25b549e46919c3a0569db6b68ddc96956b04a484ea4518ad2bbd4f137e307e86"
ERAS = ("tang", "song")
MEMBER_RE = re.compile(r"^package/dist/quantangshi/poet\.(tang|song)\.(\d+)\.json$")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "src" / "seqgan" / "data" / "poems.txt.gz"

CLAUSE_SPLIT = re.compile(r"[，。？！；、,.?!;]")
# CJK ideographs: Extension A, the Unified block, Compatibility Ideographs, and
# planes 2-3 (Extensions B-H, compatibility supplement). OpenCC t2s maps some
# Unified-block characters to Extension B+ code points (e.g. 鑪 -> 𬬻), so the
# post-conversion check must accept them too.
CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
CLAUSE_RE = re.compile(f"[{CJK}]{{5}}")
POEM_RE = re.compile(f"[{CJK}]{{20}}")
FILTER_RULE = (
    "join paragraphs; split on [，。？！；、,.?!;] dropping empty pieces; keep if exactly 4 "
    "clauses each of exactly 5 CJK ideographs (U+3400-4DBF, U+4E00-9FFF, U+F900-FAFF, "
    "U+20000-3FFFF); OpenCC t2s; re-check 20 CJK ideographs; exact dedup, first seen "
    "(Tang before Song, files in numeric order)"
)


def die(msg: str) -> None:
    """Print a one-line error and exit."""
    print(f"build_poems.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def load_converter():
    """Return (OpenCC t2s converter, opencc version) or exit with install hint."""
    try:
        import opencc
    except ImportError:
        die("opencc is not installed; install it with: pip install opencc")
    try:
        version = importlib.metadata.version("opencc")
    except importlib.metadata.PackageNotFoundError:
        version = getattr(opencc, "__version__", "unknown")
    for config in ("t2s", "t2s.json"):
        try:
            return opencc.OpenCC(config), version
        except Exception:  # config name differs between opencc builds
            continue
    die("opencc cannot load the 't2s' config; reinstall with: pip install -U opencc")


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def npm_pack(workdir: Path) -> Path:
    """Download the package tarball with ``npm pack`` into workdir."""
    npm = shutil.which("npm")
    if npm is None:
        die("npm is not installed; install Node.js/npm (e.g. apt-get install npm)")
    proc = subprocess.run(
        [npm, "pack", SPEC, "--silent"], cwd=workdir, capture_output=True, text=True
    )
    if proc.returncode != 0:
        die(f"npm pack {SPEC} failed: {proc.stderr.strip().splitlines()[-1:]}")
    tarballs = list(workdir.glob("*.tgz"))
    if len(tarballs) != 1:
        die(f"expected one tarball from npm pack, found {tarballs}")
    return tarballs[0]


def tarball_url() -> str:
    """Ask npm for the registry URL of the tarball (falls back to the usual one)."""
    fallback = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
    try:
        proc = subprocess.run(
            ["npm", "view", SPEC, "dist.tarball"], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired):
        return fallback
    url = proc.stdout.strip()
    return url if proc.returncode == 0 and url.startswith("http") else fallback


def read_tarball(tarball: Path) -> tuple[dict, dict[str, list[tuple[str, int, list[str]]]]]:
    """Read the tarball once; return (package.json, {era: [(file, n_read, quatrains)]}).

    Only the 4x5 candidates of each file are kept in memory; files are returned
    in numeric order of <N>.
    """
    files: dict[str, list[tuple[int, str, int, list[str]]]] = {era: [] for era in ERAS}
    with tarfile.open(tarball, "r:gz") as tf:
        meta = json.load(tf.extractfile("package/package.json"))
        for member in tf:
            m = MEMBER_RE.match(member.name)
            if not (m and member.isfile()):
                continue
            records = json.load(tf.extractfile(member))
            texts = [t for rec in records if (t := quatrain(rec.get("paragraphs") or []))]
            files[m.group(1)].append((int(m.group(2)), member.name, len(records), texts))
    if not all(files.values()):
        die("no poet.tang/poet.song files found under package/dist/quantangshi/")
    return meta, {era: [(name, n, t) for _, name, n, t in sorted(fs)] for era, fs in files.items()}


def quatrain(paragraphs: list[str]) -> str | None:
    """Return the 20 characters of a 4x5 quatrain, or None if the shape differs."""
    clauses = [c for c in CLAUSE_SPLIT.split("".join(paragraphs)) if c]
    if len(clauses) == 4 and all(CLAUSE_RE.fullmatch(c) for c in clauses):
        return "".join(clauses)
    return None


def build(files: dict, converter) -> tuple[list[str], dict]:
    """Convert and deduplicate the 4x5 candidates; return (poems, counts)."""
    counts = {era: {"read": 0, "shape_ok": 0, "converted_ok": 0, "unique": 0} for era in ERAS}
    seen: set[str] = set()
    poems: list[str] = []
    for era in ERAS:
        c = counts[era]
        for _, n_read, texts in files[era]:
            c["read"] += n_read
            c["shape_ok"] += len(texts)
            for text in texts:
                simp = converter.convert(text)
                if not POEM_RE.fullmatch(simp):
                    continue
                c["converted_ok"] += 1
                if simp not in seen:
                    seen.add(simp)
                    poems.append(simp)
                    c["unique"] += 1
    return poems, counts


def write_gzip(poems: list[str], out: Path) -> bytes:
    """Write poems one per line as byte-reproducible gzip; return the bytes."""
    raw = "".join(p + "\n" for p in poems).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    data = buf.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return data


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"output .txt.gz (default: {DEFAULT_OUT.relative_to(REPO_ROOT)})")
    args = ap.parse_args(argv)
    out: Path = args.out.resolve()

    converter, opencc_version = load_converter()
    with tempfile.TemporaryDirectory(prefix="build_poems_") as tmp:
        tarball = npm_pack(Path(tmp))
        tar_sha = sha256_file(tarball)
        if tar_sha != KNOWN_TARBALL_SHA256:
            print(f"warning: tarball sha256 {tar_sha} differs from the known "
                  f"{KNOWN_TARBALL_SHA256}", file=sys.stderr)
        meta, files = read_tarball(tarball)
    poems, counts = build(files, converter)
    data = write_gzip(poems, out)
    out_sha = hashlib.sha256(data).hexdigest()
    total = {k: sum(counts[e][k] for e in ERAS) for k in counts["tang"]}

    provenance = {
        "package": meta.get("name", PACKAGE),
        "version": meta.get("version", VERSION),
        "licence": meta.get("license"),
        "tarball_url": tarball_url(),
        "tarball_sha256": tar_sha,
        "source_files": {era: f"package/dist/quantangshi/poet.{era}.<N>.json ({len(files[era])} files)"
                         for era in ERAS},
        "opencc_version": opencc_version,
        "opencc_config": "t2s",
        "filter_rule": FILTER_RULE,
        "counts": {**counts, "total": total},
        "output": {
            "path": out.relative_to(REPO_ROOT).as_posix() if out.is_relative_to(REPO_ROOT) else str(out),
            "poems": len(poems),
            "format": "one poem per line, 20 characters, UTF-8, gzip (mtime=0, level 9)",
            "bytes": len(data),
            "sha256": out_sha,
        },
        "built_on": dt.date.today().isoformat(),
        "script": "scripts/build_poems.py",
    }
    prov_path = out.with_name(out.name.removesuffix(".txt.gz").removesuffix(".gz") + ".provenance.json")
    prov_path.write_text(json.dumps(provenance, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    print(f"source:        {SPEC} ({provenance['licence']}), {provenance['tarball_url']}")
    print(f"tarball sha256 {tar_sha}")
    print(f"opencc:        {opencc_version} (t2s)")
    for era in ERAS:
        c = counts[era]
        print(f"{era:5s} read {c['read']:7d}  4x5 shape {c['shape_ok']:6d}  "
              f"after t2s {c['converted_ok']:6d}  unique {c['unique']:6d}")
    print(f"total read {total['read']:7d}  4x5 shape {total['shape_ok']:6d}  "
          f"after t2s {total['converted_ok']:6d}  unique {total['unique']:6d}")
    print(f"wrote {out} ({len(data):,} bytes, {len(poems)} poems)")
    print(f"output sha256  {out_sha}")
    print(f"provenance     {prov_path}")


if __name__ == "__main__":
    main()
