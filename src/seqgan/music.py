"""The music corpus (`--data music`): pitch sequences of folk tunes from music21's bundled corpus.

The paper's Nottingham tunes do not ship with any package here (music21 carries 2 of them), so we
use the closest collections music21 does carry: British-Isles fiddle tunes in ABC notation
(O'Neill's 1850, Ryan's Mammoth Collection, Aird's Airs). As in the paper (which sampled the pitch
every 0.4 s into sequences of 32 numbers), each tune's melody is sampled on a fixed grid, here
every eighth note (quarterLength 0.5): the token is the MIDI number of the note sounding at that
time (the top note of a chord) or ``r`` for a rest; the grid is cut into non-overlapping
sequences of 32 tokens (4 bars of 4/4), all-rest sequences and exact duplicates dropped.

music21 is an optional dependency (`pip install 'seqgan[music]'`) and its corpus files are not
copied into this repository. Parsing costs tens of ms per tune, so it runs once, in parallel, and
the sequences are cached in ``$XDG_CACHE_HOME/seqgan/music.txt.gz`` (default ``~/.cache``) with a
provenance file beside it. music21 reads ABC accidentals with some errors (carried accidentals
within a bar are sometimes dropped), so a few pitches are a semitone off.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .checkpoint import replace_atomic
from .config import SeqGANError

COLLECTIONS = ("oneills1850", "ryansMammoth", "airdsAirs")
STEP = 0.5  # quarterLength between samples
LENGTH = 32  # tokens per sequence
REST = "r"


def pitch_grid(notes: list[tuple[float, float, int]], step: float = STEP) -> list[str]:
    """Tokens at times 0, step, 2·step, … up to the end of the last note: the MIDI number of the
    note sounding at each time (a later-starting note wins an overlap) or REST.
    ``notes``: (offset, duration, midi) in quarter lengths."""
    if not notes:
        return []
    end = max(offset + duration for offset, duration, _ in notes)
    grid = [REST] * int(round(end / step))
    for offset, duration, midi in sorted(notes):
        first, last = int(-(-offset // step)), int(-(-(offset + duration) // step))  # ceil
        for k in range(first, min(last, len(grid))):
            grid[k] = str(midi)
    return grid


def sequences_of(grid: list[str], length: int = LENGTH) -> list[str]:
    """Non-overlapping windows of exactly ``length`` tokens, space-separated; all-rest ones dropped."""
    windows = [grid[i:i + length] for i in range(0, len(grid) - length + 1, length)]
    return [" ".join(w) for w in windows if any(t != REST for t in w)]


def _tune_notes(score) -> list[tuple[float, float, int]]:
    notes = []
    for n in score.flatten().notes:
        midi = n.pitch.midi if n.isNote else max(p.midi for p in n.pitches)
        notes.append((float(n.offset), float(n.quarterLength), int(midi)))
    return notes


def _parse_file(path: str) -> list[list[str]]:
    """The grids of every tune in one ABC file (a file may hold one tune or an opus of many)."""
    from music21 import converter, stream

    parsed = converter.parse(path)
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    return [pitch_grid(_tune_notes(s)) for s in scores]


def abc_files() -> list[Path]:
    """The ABC files of COLLECTIONS in music21's corpus, in sorted order."""
    try:
        import music21
    except ImportError:
        raise SeqGANError("--data music needs music21: pip install 'seqgan[music]'") from None
    root = Path(music21.__file__).parent / "corpus"
    return sorted(p for c in COLLECTIONS for p in (root / c).glob("*.abc"))


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seqgan" / "music.txt.gz"


def _replace(path: Path, data: bytes) -> None:
    """``data`` into ``path`` whole (torchrun ranks may each build the corpus at once)."""
    replace_atomic(path, lambda tmp: tmp.write_bytes(data), per_process=True)


def build(out: Path, files: list[Path], workers: int = 2) -> dict:
    """Parse ``files`` in ``workers`` processes and write the deduplicated sequences to ``out``
    (gzip, one sequence a line) and ``out``.provenance.json; returns the provenance."""
    import music21

    tunes, kept = 0, {}
    with ProcessPoolExecutor(workers) as pool:
        for done, grids in enumerate(pool.map(_parse_file, map(str, files), chunksize=8), start=1):
            tunes += len(grids)
            for grid in grids:
                for seq in sequences_of(grid):
                    kept.setdefault(seq)
            if done % 100 == 0 or done == len(files):
                print(f"parsed {done}/{len(files)} files of music21 folk tunes", file=sys.stderr)
    if not kept:
        raise SeqGANError("no music sequences could be built from music21's corpus")
    provenance = {"music21": music21.__version__, "collections": list(COLLECTIONS), "files": len(files),
                  "tunes": tunes, "sequences": len(kept), "step_quarter_length": STEP, "length": LENGTH,
                  "tokens": "MIDI number of the sounding note (top of a chord) or 'r' for a rest"}
    out.parent.mkdir(parents=True, exist_ok=True)
    # Provenance first, so that a corpus file never stands without it; each written whole and renamed.
    _replace(out.with_name(out.name + ".provenance.json"), (json.dumps(provenance, indent=2) + "\n").encode())
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, filename="") as gz:
        gz.write(("\n".join(kept) + "\n").encode())
    _replace(out, packed.getvalue())
    return provenance


def corpus_file() -> Path:
    """The cached music corpus, built on first use (about 2 minutes on 2 cores)."""
    out = cache_path()
    if not out.is_file():
        files = abc_files()  # music21 missing: its error, without announcing a build first
        print(f"building the music corpus once from music21's folk tunes into {out} ...", file=sys.stderr)
        build(out, files, workers=max(1, min(8, os.cpu_count() or 1)))
    return out


def write_midi(sequences: list[str], path: Path) -> None:
    """The token lines as one MIDI file: each sequence in turn (repeated pitches on consecutive
    grid steps merged into one held note, STEP quarter lengths per step), a bar's rest between
    sequences. Needs music21."""
    try:
        from music21 import note, stream
    except ImportError:
        raise SeqGANError("--midi needs music21: pip install 'seqgan[music]'") from None
    melody = stream.Stream()
    for line in sequences:
        tokens = line.split()
        start = 0
        for i in range(1, len(tokens) + 1):
            if i == len(tokens) or tokens[i] != tokens[start]:
                length = STEP * (i - start)
                if tokens[start] == REST or not tokens[start].isdigit():
                    melody.append(note.Rest(quarterLength=length))
                else:
                    melody.append(note.Note(int(tokens[start]), quarterLength=length))
                start = i
        melody.append(note.Rest(quarterLength=4.0))
    melody.write("midi", fp=str(path))
