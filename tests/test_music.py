"""The music corpus: pitch sampling on a fixed grid and cutting into sequences (pure functions),
and, where music21 is installed, building the corpus from one of its ABC files."""

import gzip
import json

import pytest

from seqgan.config import SeqGANError
from seqgan.music import REST, build, pitch_grid, sequences_of, write_midi


def test_pitch_grid_samples_the_sounding_note_every_step():
    # a quarter note G4 at 0, an eighth rest, an eighth A4 at 1.5, a dotted quarter B4 at 2.0
    notes = [(0.0, 1.0, 67), (1.5, 0.5, 69), (2.0, 1.5, 71)]
    assert pitch_grid(notes, step=0.5) == ["67", "67", REST, "69", "71", "71", "71"]


def test_pitch_grid_off_grid_onsets_and_overlaps():
    # a note starting between grid points is first sampled at the next grid point; where notes
    # overlap the later-starting one is sampled
    assert pitch_grid([(0.25, 0.5, 60)], step=0.5) == [REST, "60"]
    assert pitch_grid([(0.0, 2.0, 60), (1.0, 0.5, 64)], step=0.5) == ["60", "60", "64", "60"]
    assert pitch_grid([(1.0, 0.5, 64), (0.0, 2.0, 60)], step=0.5) == ["60", "60", "64", "60"]  # in any order
    assert pitch_grid([]) == []


def test_sequences_are_whole_windows_without_all_rest_ones():
    grid = [str(60 + i % 5) for i in range(8)] + [REST] * 4 + ["70"]
    assert sequences_of(grid, length=4) == ["60 61 62 63", "64 60 61 62"]  # the all-rest window and the tail dropped


def test_build_from_one_music21_file(tmp_path):
    music21 = pytest.importorskip("music21")
    from pathlib import Path

    path = Path(music21.__file__).parent / "corpus" / "ryansMammoth" / "LanigansBallJig.abc"
    out = tmp_path / "music.txt.gz"
    provenance = build(out, [path], workers=1)
    lines = gzip.open(out, "rt").read().splitlines()
    assert provenance["tunes"] == 1 and provenance["sequences"] == len(lines) > 0
    assert all(len(line.split()) == 32 for line in lines)
    assert all(t == REST or 20 < int(t) < 110 for line in lines for t in line.split())
    assert json.loads(out.with_name("music.txt.gz.provenance.json").read_text())["length"] == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music.txt.gz", "music.txt.gz.provenance.json"]  # no .tmp left
    twice = build(tmp_path / "twice.txt.gz", [path, path], workers=1)  # the same tune twice: its sequences once
    assert (twice["tunes"], twice["sequences"]) == (2, len(lines))
    assert gzip.open(tmp_path / "twice.txt.gz", "rt").read().splitlines() == lines


def test_missing_music21_is_a_one_line_error(block_import):
    block_import("music21")
    from seqgan.music import abc_files

    with pytest.raises(SeqGANError, match=r"pip install 'seqgan\[music\]'"):
        abc_files()


def test_missing_music21_announces_no_build(block_import, monkeypatch, tmp_path, capsys):
    """Without music21 the first use of the music corpus is the error alone, not a "building …"
    line followed by it."""
    block_import("music21")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from seqgan.music import corpus_file

    with pytest.raises(SeqGANError, match=r"needs music21"):
        corpus_file()
    assert capsys.readouterr().err == ""


def test_write_midi_merges_held_pitches(tmp_path):
    pytest.importorskip("music21")
    from music21 import converter

    path = tmp_path / "x.mid"
    write_midi(["60 60 62 r 64 64 64 64"], path)
    notes = list(converter.parse(str(path)).flatten().notes)
    assert [(n.pitch.midi, float(n.quarterLength)) for n in notes] == [(60, 1.0), (62, 0.5), (64, 2.0)]
    # the rest keeps its half beat and a bar's rest (4 quarters) follows each sequence: onsets show both
    write_midi(["60 60 62 r 64 64 64 64", "65 r"], path)
    notes = list(converter.parse(str(path)).flatten().notes)
    assert [(n.pitch.midi, float(n.offset), float(n.quarterLength)) for n in notes] == [
        (60, 0.0, 1.0), (62, 1.0, 0.5), (64, 2.0, 2.0), (65, 8.0, 0.5)]
