"""`seqgan experiment`: the tiny table1 end to end — output structure, shared pre-training equal to
independent runs, samples that re-score to the reported numbers, continuation."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from seqgan.checkpoint import payload_sha256, run_checkpoint, state_sha256
from seqgan.cli import main
from seqgan.config import SeqGANError, preset, set_field
from seqgan.experiment import PAPER_TABLE1, _plot_quality_diversity, _pyplot, _zoom_window, experiment_status, \
    run_experiment, table1_variants
from seqgan.metrics import nll_oracle
from seqgan.oracle import build_oracle
from seqgan.train import train


@pytest.fixture(scope="module")
def table1(tmp_path_factory):
    out = tmp_path_factory.mktemp("table1")
    assert main(["experiment", "table1", "--preset", "tiny", "--seeds", "2", "--out", str(out), "--no-progress"]) == 0
    return out


def test_table1_outputs(table1):
    result = json.loads((table1 / "table1.json").read_text())
    runs = result["runs"]
    assert sorted((r["method"], r["seed"]) for r in runs) == sorted((m, s) for m in PAPER_TABLE1 for s in (88, 89))
    for r in runs:
        assert set(r) >= {"method", "seed", "nll_oracle", "nll_test", "samples", "temperatures"}
        lines = (table1 / r["samples"]).read_text().splitlines()
        assert len(lines) == preset("tiny").schedule.num_eval  # min(2000, num_eval)
        assert r["distinct"] == len(set(lines)) / len(lines) and 0 < r["distinct"] <= 1
        assert [t["temperature"] for t in r["temperatures"]] == [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4]
        at_one = r["temperatures"][4]  # the sweep's τ = 1 NLL-test is the run's: same generator and test set
        assert at_one["nll_test"] == pytest.approx(r["nll_test"], abs=1e-9, rel=0), (r["method"], r["seed"])
        assert r["temperatures"][0]["nll_test"] != pytest.approx(r["nll_test"], abs=1e-3)  # τ matters
    assert set(result["summary"]) == set(PAPER_TABLE1) and result["complete"] is True
    import statistics

    for method, row in result["summary"].items():  # mean ± sample std over seeds, recomputed here
        mine = [r for r in runs if r["method"] == method]
        assert row["n"] == len(mine) == 2 and row["paper"] == PAPER_TABLE1[method]
        for key in ("nll_oracle", "nll_test", "distinct"):
            values = [r[key] for r in mine]
            assert row[key] == pytest.approx(sum(values) / 2, abs=1e-12, rel=0), (method, key)
            assert row[f"{key}_std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5, abs=1e-12, rel=0)
        for i, point in enumerate(row["temperatures"]):  # the mean sweep, point by point
            for key in ("nll_oracle", "nll_test"):
                assert point[key] == pytest.approx(statistics.fmean(r["temperatures"][i][key] for r in mine),
                                                   abs=1e-12, rel=0), (method, i, key)
    # Figure 2's x axis (tiny: MLE evaluated every 2 of 4 epochs, then adversarial steps 2 and 3
    # (the last) counted on from epoch 4); the MLE row's continued MLE epochs count on the same way.
    for r in runs:
        assert [p["x"] for p in r["curve"]] == ([0] if r["method"] == "random" else [0, 2, 4, 6, 7]), r["method"]
    table = (table1 / "table1.md").read_text()
    assert "| PG-BLEU |" in table and "8.946" in table and "τ=1.4" in table and "distinct samples |" in table
    for png in ("table1_learning_curves.png", "table1_quality_diversity.png"):
        assert (table1 / png).read_bytes()[:4] == b"\x89PNG"


def test_reported_nll_oracle_matches_rescoring_the_samples(table1):
    """The kept samples are the final evaluation's (all of them at tiny size): re-scoring them with
    the oracle gives the reported number to float precision."""
    cfg = preset("tiny")
    oracle = build_oracle(cfg.data)
    for r in json.loads((table1 / "table1.json").read_text())["runs"]:
        tokens = torch.tensor([list(map(int, line.split())) for line in (table1 / r["samples"]).read_text().splitlines()])
        assert nll_oracle(oracle, tokens) == pytest.approx(r["nll_oracle"], abs=1e-9)


def test_shared_pretraining_equals_an_independent_run(table1, tmp_path):
    """SeqGAN and PG-BLEU continue a copy of the shared MLE pre-training; on CPU that is bit-identical
    to training each one from scratch with the same seed."""
    for method in ("seqgan", "pg_bleu"):
        cfg = preset("tiny")
        set_field(cfg, "schedule.method", method)
        train(cfg, tmp_path / method, progress=False)
        _, independent = run_checkpoint(tmp_path / method)
        _, shared = run_checkpoint(table1 / "runs" / f"{method}-seed88")
        assert state_sha256(independent["generator"]) == state_sha256(shared["generator"])
        lines = (tmp_path / method / "metrics.jsonl").read_text().splitlines()
        shared_lines = (table1 / "runs" / f"{method}-seed88" / "metrics.jsonl").read_text().splitlines()
        strip = lambda ls: [{k: v for k, v in json.loads(x).items() if k != "elapsed_s"} for x in ls]  # noqa: E731
        assert strip(lines) == strip(shared_lines)


def test_rerun_continues_and_other_config_is_refused(table1, capsys, monkeypatch):
    from seqgan import experiment

    before = json.loads((table1 / "table1.json").read_text())
    monkeypatch.setattr(experiment, "_run", lambda *args: pytest.fail("a finished run was trained again"))
    assert main(["experiment", "table1", "--preset", "tiny", "--seeds", "2", "--out", str(table1),
                 "--no-progress", "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(last) == ["experiment", "out", "summary"] and (last["experiment"], last["out"]) == ("table1", str(table1))
    assert last["summary"] == before["summary"]  # nothing retrained, same numbers
    def _refused(args):
        assert main(["experiment", "table1", "--preset", "tiny", "--seeds", "2", "--out", str(table1), *args]) == 1
        return capsys.readouterr().err

    assert main(["experiment", "table1", "--preset", "quick", "--out", str(table1)]) == 1
    assert "holds this experiment with another config (differs in data.oracle, data.vocab_size" in capsys.readouterr().err
    assert "differs in run.seed" in _refused(["--seed", "90"])
    # where it runs may change (an experiment started on a laptop goes on on a GPU): run.device,
    # run.deterministic, run.tensorboard
    assert main(["experiment", "table1", "--preset", "tiny", "--seeds", "2", "--out", str(table1), "--device", "cpu",
                 "--set", "run.deterministic=true", "--no-progress"]) == 0
    assert "(with another run.device, run.deterministic than it was started with)" in capsys.readouterr().err
    assert main(["experiment", "strategies", "--preset", "tiny", "--out", str(table1)]) == 1
    assert "holds another experiment (table1)" in capsys.readouterr().err


def test_finished_rows_are_written_before_the_experiment_ends(tmp_path, monkeypatch):
    """Runs go row by row and the results are rewritten after each run: an experiment stopped after
    two runs has a partial table1.json / table1.md with those rows; running it again (here with
    another run.deterministic, which may change like run.device) completes it."""
    import seqgan.experiment as experiment

    written = experiment._write_results
    calls = []

    def stop_after_two(*args, **kwargs):
        result = written(*args, **kwargs)
        calls.append(result)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(experiment, "_write_results", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_experiment("table1", preset("tiny"), 1, tmp_path, progress=False)
    partial = json.loads((tmp_path / "table1.json").read_text())
    assert partial["complete"] is False
    assert [r["method"] for r in partial["runs"]] == ["random", "mle"]
    assert "PARTIAL: 2 runs finished so far" in (tmp_path / "table1.md").read_text()
    status = experiment_status(tmp_path)  # what `seqgan inspect DIR` shows
    assert (status["finished"], status["total"], status["complete"]) == (2, 5, False)
    states = {r["run"]: (r["started"], r["phase"]) for r in status["runs"]}
    assert [r["run"] for r in status["runs"]][:3] == ["pretrain-mle-seed88", "random-seed88", "mle-seed88"]
    assert states["pretrain-mle-seed88"] == states["mle-seed88"] == (True, "done")
    assert states["seqgan-seed88"] == (False, None) and len(states) == 6
    monkeypatch.undo()
    elsewhere = preset("tiny")  # continued where it runs otherwise (as on another device): the same experiment
    set_field(elsewhere, "run.deterministic", True)
    done = run_experiment("table1", elsewhere, 1, tmp_path, progress=False)
    assert done["complete"] is True and [r["method"] for r in done["runs"]] == list(PAPER_TABLE1)
    assert json.loads((tmp_path / "runs" / "seqgan-seed88" / "config.json").read_text())["run"]["deterministic"] is True
    assert done["runs"][:2] == partial["runs"]  # the finished runs were kept, not retrained
    assert "PARTIAL" not in (tmp_path / "table1.md").read_text()


def test_a_stop_while_a_run_finishes_ends_the_experiment_before_the_next_run(tmp_path):
    """A stop requested during a run's last step or its sweep lets that run finish and be saved,
    then ends the experiment before the next run trains a step (each run polls only after one)."""
    from seqgan.train import Interrupted

    out = tmp_path / "exp"
    stop = lambda: (out / "table1.json").is_file()  # noqa: E731  (true once the first run is saved)
    with pytest.raises(Interrupted, match="stopped between two runs"):
        run_experiment("table1", preset("tiny"), 1, out, progress=False, should_stop=stop)
    results = json.loads((out / "table1.json").read_text())["runs"]
    assert [(r["method"], r["seed"]) for r in results] == [("random", 88)]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["random-seed88"]


def test_inspect_an_experiment_directory(table1, capsys):
    assert main(["inspect", str(table1), "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"experiment table1 in {table1}: 10 of 10 runs finished (complete)"
    status = json.loads(out[-1])
    assert [r["run"] for r in status["runs"]][:3] == ["pretrain-mle-seed88", "pretrain-mle-seed89", "random-seed88"]
    assert all(r["phase"] == "done" and r["metric"] == "nll_oracle" for r in status["runs"]) and len(status["runs"]) == 12
    finished = json.loads((table1 / "table1.json").read_text())["runs"]
    assert {r["run"]: r["value"] for r in status["runs"]}["seqgan-seed89"] == next(
        r["nll_oracle"] for r in finished if r["method"] == "seqgan" and r["seed"] == 89)


@pytest.mark.parametrize("command", [["sample", "--n", "2"], ["evaluate"], ["train"]])
def test_commands_for_one_run_given_an_experiment_directory_name_its_runs(table1, capsys, command):
    args = [*command, "--resume" if command == ["train"] else "--run", str(table1)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"seqgan: error: {table1} is an experiment directory, not a run: name one of its runs "
                   f"({table1 / 'runs'}/METHOD-seedN; `seqgan inspect {table1}` lists them)"]


def test_score_oracle_of_an_experiments_samples_reproduces_its_table(table1, capsys):
    """Each run's samples file, scored by `seqgan score-oracle` with no --oracle (the tiny preset's
    random oracle, found from experiment.json a folder up), gives the NLL-oracle in table1.json
    (both CPU float32 sums over the same sequences; 1e-6)."""
    for run in json.loads((table1 / "table1.json").read_text())["runs"]:
        assert main(["score-oracle", str(table1 / run["samples"]), "--json"]) == 0
        scored = json.loads(capsys.readouterr().out.splitlines()[-1])["nll_oracle"]
        assert abs(scored - run["nll_oracle"]) < 1e-6, run["samples"]


def test_inspect_a_results_copy_without_run_directories(table1, tmp_path, capsys):
    """A committed copy of the results (the record and table1.json, no runs/): every run in
    table1.json shows as done, its directory not kept, with the NLL recorded there."""
    import shutil

    for name in ("experiment.json", "table1.json"):
        shutil.copyfile(table1 / name, tmp_path / name)
    assert main(["inspect", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    status = json.loads(out[-1])
    finished = json.loads((table1 / "table1.json").read_text())["runs"]
    assert {r["run"]: (r["phase"], r["kept"], r["value"]) for r in status["runs"]} == {
        f"{r['method']}-seed{r['seed']}": ("done", False, r["nll_oracle"]) for r in finished}
    assert len(out) == 2 + len(finished) and all("done, directory not kept" in line for line in out[1:-1])
    assert "in table1.json" in out[1]


def test_inspect_shows_every_run_when_one_is_unreadable(table1, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(table1, copy)
    (copy / "runs" / "mle-seed88" / "checkpoint.pt").write_bytes(b"junk")
    with open(copy / "runs" / "seqgan-seed89" / "metrics.jsonl", "a") as f:
        f.write('{"phase": "ml')  # a line being written while we read
    with open(copy / "runs" / "mle-seed89" / "metrics.jsonl", "a") as f:
        f.write('{"elapsed_s": "soon"}\n{"phase": "ml')  # damaged: was a TypeError traceback in the hours column
    assert main(["inspect", str(copy), "--json"]) == 0
    status = json.loads(capsys.readouterr().out.splitlines()[-1])
    rows = {r["run"]: r for r in status["runs"]}
    assert "not a valid seqgan checkpoint" in rows["mle-seed88"]["error"] and len(rows) == 12
    assert rows["seqgan-seed89"]["phase"] == "done" and rows["seqgan-seed89"]["metric"] == "nll_oracle"
    assert rows["mle-seed89"]["phase"] == "done" and rows["mle-seed89"]["elapsed_s"] is None
    assert main(["inspect", str(copy)]) == 0
    capsys.readouterr()
    (copy / "table1.json").write_text("{}")
    assert main(["inspect", str(copy)]) == 1
    assert capsys.readouterr().err.strip().endswith("table1.json is not an experiment result (unreadable or not as written)")


def test_a_resumed_experiment_keeps_every_finished_run_in_its_results(table1, tmp_path):
    """Re-run with a run directory gone (here MLE seed 88, the table's third run): the results keep
    the runs after it while it trains again (they were rewritten with the runs before it only)."""
    import shutil

    from seqgan.train import Interrupted

    copy = tmp_path / "copy"
    shutil.copytree(table1, copy)
    shutil.rmtree(copy / "runs" / "mle-seed88")
    with pytest.raises(Interrupted):
        run_experiment("table1", preset("tiny"), 2, copy, progress=False, should_stop=lambda: True)
    result = json.loads((copy / "table1.json").read_text())
    want = [(r["method"], r["seed"]) for r in json.loads((table1 / "table1.json").read_text())["runs"]]
    assert [(r["method"], r["seed"]) for r in result["runs"]] == [run for run in want if run != ("mle", 88)]
    assert result["complete"] is False


def test_temperature_sweep_cache_belongs_to_its_generator(table1, tmp_path):
    """temperatures.json is reused for the generator it measured only: marked with another
    generator's sha256 (a run trained again) it is measured again; a cache from before the sha256
    was kept (a bare list) is taken as is."""
    import shutil

    from seqgan.checkpoint import run_checkpoint
    from seqgan.experiment import temperature_sweep

    run = tmp_path / "mle-seed88"
    shutil.copytree(table1 / "runs" / "mle-seed88", run)
    cfg, _ = run_checkpoint(run)
    held = json.loads((run / "temperatures.json").read_text())
    measured = held["rows"]
    assert len(held["generator_sha256"]) == 64 and temperature_sweep(cfg, run) == measured
    forged = [dict(r, nll_oracle=999.0) for r in measured]
    (run / "temperatures.json").write_text(json.dumps({"generator_sha256": "0" * 64, "rows": forged}))
    assert temperature_sweep(cfg, run) == measured  # measured again, the same numbers
    (run / "temperatures.json").write_text(json.dumps(forged))
    assert temperature_sweep(cfg, run) == forged
    # A sweep over other temperatures is measured, not read from a cache of another list: τ 0.6
    # first draws what the full sweep drew first; τ 1 second, other samples but the same NLL-test.
    two = temperature_sweep(cfg, run, temperatures=(0.6, 1.0))
    assert [r["temperature"] for r in two] == [0.6, 1.0] and two[0] == measured[0]
    assert two[1]["nll_test"] == measured[4]["nll_test"] and two[1]["nll_oracle"] != measured[4]["nll_oracle"]
    assert json.loads((run / "temperatures.json").read_text())["rows"] == two
    assert temperature_sweep(cfg, run) == measured  # and the whole list again, measured again


def test_the_temperature_sweep_is_recomputed_by_hand_at_every_temperature(table1):
    """Each point of a run's sweep from scratch: torch seeded from run.seed, num_eval samples drawn
    at each temperature in turn, scored by the oracle, and the held-out test set scored under
    softmax(logits / τ), both by log-softmax and gather in float64 (tolerance 1e-6)."""
    import copy

    from conftest import log_probs_by_hand
    from seqgan.cli import _load_run
    from seqgan.oracle import oracle_and_test_set

    for method in ("mle", "seqgan"):
        cfg, generator, _ = _load_run(str(table1 / "runs" / f"{method}-seed88"), "cpu")
        torch.manual_seed(cfg.run.seed)  # before the oracle is built (its initialisation draws), as the sweep does
        oracle, test = oracle_and_test_set(cfg.data, torch.device("cpu"))
        wide, wide_oracle = copy.deepcopy(generator).double(), copy.deepcopy(oracle).double()
        sweep = json.loads((table1 / "table1.json").read_text())["runs"]
        (sweep,) = [r["temperatures"] for r in sweep if (r["method"], r["seed"]) == (method, 88)]
        for point in sweep:
            tau = point["temperature"]
            samples = generator.sample(cfg.schedule.num_eval, temperature=tau, chunk=cfg.run.sample_batch)
            assert point["nll_oracle"] == pytest.approx(-log_probs_by_hand(wide_oracle, samples).mean().item(),
                                                        abs=1e-6, rel=0), (method, tau)
            assert point["nll_test"] == pytest.approx(-log_probs_by_hand(wide, test, tau).mean().item(),
                                                      abs=1e-6, rel=0), (method, tau)


def test_collect_puts_rows_trained_apart_back_in_table_order(table1, tmp_path):
    """scripts/table1_row.py collect on a results copy lacking a first seed and a last one (MLE 88,
    SeqGAN 89): the rows come back in table order, seed by seed — the whole experiment's result,
    byte for byte (the same runs: nothing differs, not even elapsed_s)."""
    import shutil

    from conftest import load_script

    table1_row = load_script("table1_row")
    want = json.loads((table1 / "table1.json").read_text())
    kept, experiment = tmp_path / "kept", tmp_path / "experiment"
    kept.mkdir()
    shutil.copytree(table1, experiment)  # collect writes the added rows' samples there too: not into the shared fixture
    runs = [r for r in want["runs"] if (r["method"], r["seed"]) not in {("mle", 88), ("seqgan", 89)}]
    (kept / "table1.json").write_text(json.dumps({**want, "complete": False, "runs": runs}))
    table1_row.collect(experiment, kept)
    assert (kept / "table1.json").read_text() == (table1 / "table1.json").read_text()
    assert (kept / "table1.md").read_text() == (table1 / "table1.md").read_text()
    assert sorted(p.name for p in (kept / "samples").iterdir()) == ["mle-seed88.txt", "seqgan-seed89.txt"]


def test_a_run_keeps_at_most_samples_kept_of_its_samples(table1, tmp_path, monkeypatch):
    """DIR/samples holds the first SAMPLES_KEPT of the run's final samples (here 7 of 256) and
    `distinct` counts those; the reported NLL-oracle stays the final evaluation's, of all of them."""
    import shutil

    from seqgan import experiment

    monkeypatch.setattr(experiment, "SAMPLES_KEPT", 7)
    shutil.copytree(table1 / "runs" / "mle-seed88", tmp_path / "runs" / "mle-seed88")
    cfg, _ = run_checkpoint(tmp_path / "runs" / "mle-seed88")
    mle = next(v for v in table1_variants() if v.name == "mle")
    got = experiment._collect(cfg, mle, 88, tmp_path / "runs" / "mle-seed88", tmp_path, experiment.SYNTHETIC)
    every = (table1 / "runs" / "mle-seed88" / "samples.txt").read_text().splitlines()
    kept = (tmp_path / got["samples"]).read_text().splitlines()
    assert len(every) == cfg.schedule.num_eval > 7 and kept == every[:7]
    assert got["distinct"] == len(set(kept)) / 7
    (want,) = [r for r in json.loads((table1 / "table1.json").read_text())["runs"] if (r["method"], r["seed"]) == ("mle", 88)]
    assert got["nll_oracle"] == want["nll_oracle"] and got["temperatures"] == want["temperatures"]


def test_unknown_experiment(tmp_path, capsys):
    assert main(["experiment", "table9", "--preset", "tiny", "--out", str(tmp_path)]) == 1
    assert "unknown experiment 'table9'" in capsys.readouterr().err
    with pytest.raises(SeqGANError):
        run_experiment("nope", preset("tiny"), 1, tmp_path)


def test_strategies_tiny(tmp_path):
    cfg = preset("tiny")
    set_field(cfg, "schedule.adv_steps", 1)
    set_field(cfg, "data.num_train", 128)
    result = run_experiment("strategies", cfg, 1, tmp_path, progress=False)
    assert [r["method"] for r in result["runs"]] == ["a_g100_d1_k10", "b_g30_d1_k30", "c_g1_d1_k10", "d_g1_d5_k3"]
    assert json.loads((tmp_path / "strategies.json").read_text()) == json.loads(json.dumps(result)) and result["complete"]
    assert (tmp_path / "strategies.md").read_text().splitlines()[4].startswith("| a_g100_d1_k10 | ")
    for png in ("strategies_learning_curves.png", "strategies_quality_diversity.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = (tmp_path / "runs" / "a_g100_d1_k10-seed88" / "metrics.jsonl").read_text().splitlines()
    assert sum(json.loads(x)["phase"] == "d_pretrain" for x in log) == cfg.schedule.d_pretrain_rounds
    # Shared, once: one pre-training run, whose log lines every row starts with.
    assert len([p for p in (tmp_path / "runs").iterdir() if p.name.startswith("pretrain-")]) == 1
    pretrain_lines = [x for x in log if json.loads(x)["phase"] in ("init", "mle", "d_pretrain")]
    for run in result["runs"]:
        lines = (tmp_path / "runs" / f"{run['method']}-seed88" / "metrics.jsonl").read_text().splitlines()
        assert lines[:len(pretrain_lines)] == pretrain_lines, run["method"]
    from seqgan.experiment import STRATEGIES
    for run in result["runs"]:  # each row trained with its own panel's (g-steps, d-steps, k)
        schedule = json.loads((tmp_path / "runs" / f"{run['method']}-seed88" / "config.json").read_text())["schedule"]
        assert (schedule["g_steps"], schedule["d_steps"], schedule["d_epochs"]) == STRATEGIES[run["method"][0]]


def test_oracle_at_test_interpolates_along_the_sweep():
    from seqgan.experiment import value_at as oracle_at_test

    sweep = [{"temperature": 0.8, "nll_test": 9.0, "nll_oracle": 7.0}, {"temperature": 1.2, "nll_test": 8.0, "nll_oracle": 9.0},
             {"temperature": 1.0, "nll_test": 8.5, "nll_oracle": 8.0}]  # in any order: walked by temperature
    assert oracle_at_test(sweep, 8.25) == pytest.approx(8.5)
    assert oracle_at_test(sweep, 9.0) == pytest.approx(7.0)
    assert oracle_at_test(sweep, 7.9) is None
    # Not monotone (NLL-test lowest at 1.2, rising after): the crossing nearest temperature 1, never
    # two points from opposite sides of the dip (sorted by NLL-test, 8.97 fell between τ 1.4 and 0.8: 8.8).
    sweep = [{"temperature": 0.8, "nll_test": 9.0, "nll_oracle": 7.0}, {"temperature": 1.2, "nll_test": 8.0, "nll_oracle": 9.0},
             {"temperature": 1.4, "nll_test": 8.95, "nll_oracle": 10.0}]
    assert oracle_at_test(sweep, 8.97) == pytest.approx(7.06)  # τ 0.812, the only crossing
    assert oracle_at_test(sweep, 8.9) == pytest.approx(7.2)  # τ 0.84 (0.16 from 1), not τ 1.389's 9.947 (0.389)
    # The nearest crossing comes second (not the first found) ...
    sweep = [{"temperature": t, "nll_test": x, "nll_oracle": y} for t, x, y in ((0.6, 9.0, 6.0), (0.9, 8.0, 7.0),
                                                                                (1.2, 9.0, 8.0))]
    assert oracle_at_test(sweep, 8.9) == pytest.approx(7.9)  # τ 1.17, not τ 0.63's 6.1
    # ... or lies in the segment whose start is farther from 1 (the crossing's own τ counts)
    sweep = [{"temperature": t, "nll_test": x, "nll_oracle": y} for t, x, y in ((0.5, 9.0, 5.0), (1.05, 8.0, 7.0),
                                                                                (1.5, 9.0, 9.0))]
    assert oracle_at_test(sweep, 8.05) == pytest.approx(6.9)  # τ 1.0225, not τ 1.0725's 7.1


def test_the_table_is_the_runs_summarised_and_written_out():
    """Hand-made runs through `_summarise` and `markdown_table`, every line written out: mean ±
    sample std (0 for one seed), the mean sweep, the paper's number, NLL-oracle at MLE's NLL-test
    (MLE's own sweep crosses it at τ = 1; SeqGAN's between τ 1 and 1.2; Random's never), and the
    PARTIAL line naming each row's seeds."""
    from seqgan.experiment import SYNTHETIC, _summarise, markdown_table

    def run(method, oracle, test, distinct, sweep):
        return {"method": method, "nll_oracle": oracle, "nll_test": test, "distinct": distinct,
                "temperatures": [{"temperature": t, "nll_oracle": y, "nll_test": x} for t, y, x in sweep]}

    runs = [run("random", 10.31, 10.35, 0.999, [(0.8, 10.30, 10.40), (1.0, 10.31, 10.35), (1.2, 10.32, 10.30)]),
            run("mle", 9.0, 8.4, 1.0, [(0.8, 8.0, 9.4), (1.0, 8.9, 8.4), (1.2, 10.0, 7.9)]),
            run("mle", 9.2, 8.6, 0.998, [(0.8, 8.2, 9.6), (1.0, 9.1, 8.6), (1.2, 10.2, 8.1)]),
            run("seqgan", 8.7, 8.9, 0.75, [(0.8, 7.5, 9.0), (1.0, 8.7, 8.9), (1.2, 9.9, 8.1)])]
    summary = _summarise(runs, table1_variants(), SYNTHETIC)
    assert list(summary) == ["random", "mle", "seqgan"] and summary["random"]["nll_oracle_std"] == 0.0
    table = markdown_table({"seeds": 3, "complete": False, "runs": runs, "summary": summary}, table1_variants())
    assert table.splitlines() == [
        "PARTIAL: 4 runs finished so far; n = seeds per row: Random 1, MLE 2, SeqGAN 1. Mean ± std over 3 "
        "seed(s) at temperature 1. NLL-oracle at equal NLL-test: where the method's temperature sweep reaches "
        "NLL-test 8.500 (MLE at temperature 1; interpolated, – outside the sweep). Distinct: different sequences "
        "among a run's kept samples, as a share of them (1.000: no two alike; a collapsed generator repeats "
        "itself, which NLL-oracle rewards)",
        "",
        "| method | NLL-oracle | NLL-test | paper NLL-oracle | NLL-oracle at equal NLL-test | distinct samples |",
        "|---|---|---|---|---|---|",
        "| Random | 10.310 ± 0.000 | 10.350 ± 0.000 | 10.310 | – | 0.999 |",
        "| MLE | 9.100 ± 0.141 | 8.500 ± 0.141 | 9.038 | 9.000 | 0.999 |",
        "| SeqGAN | 8.700 ± 0.000 | 8.900 ± 0.000 | 8.736 | 9.300 | 0.750 |",
        "",
        "Temperature sweep: NLL-oracle / NLL-test (mean over seeds)",
        "",
        "| method | τ=0.8 | τ=1 | τ=1.2 |",
        "|---|---|---|---|",
        "| Random | 10.300 / 10.400 | 10.310 / 10.350 | 10.320 / 10.300 |",
        "| MLE | 8.100 / 9.500 | 9.000 / 8.500 | 10.100 / 8.000 |",
        "| SeqGAN | 7.500 / 9.000 | 8.700 / 8.900 | 9.900 / 8.100 |"]
    complete = markdown_table({"seeds": 3, "runs": runs, "summary": summary}, table1_variants())
    assert complete.startswith("Mean ± std over 3 seed(s)")  # no "complete" key: an older result, taken as whole


def test_paper_numbers_are_the_papers():
    """Tables 1 and 2 of Yu et al. (2017), written out here rather than read back from the code."""
    from seqgan.experiment import PAPER_REALDATA, realdata_variants

    assert PAPER_TABLE1 == {"random": 10.310, "mle": 9.038, "scheduled_sampling": 8.985, "pg_bleu": 8.946,
                            "seqgan": 8.736}
    assert PAPER_REALDATA == {"poems": ("bleu2", {"mle": 0.667, "seqgan": 0.739})}
    assert [(v.name, v.paper) for v in realdata_variants("poems")] == [("mle", 0.667), ("seqgan", 0.739)]


def test_realdata_tiny_on_a_text_file(tmp_path, capsys):
    """MLE vs SeqGAN on a small text file: BLEU / Self-BLEU / NLL-test per run and per temperature,
    the table and both plots."""
    import random

    data = tmp_path / "c.txt"
    words = "the a cat dog sat ran on far mat big".split()  # 100 lines of 2-6 words, few alike: test ≠ train
    rng = random.Random(0)
    data.write_text("\n".join(" ".join(rng.choices(words, k=rng.randint(2, 6))) for _ in range(100)) + "\n")
    out = tmp_path / "exp"
    assert main(["experiment", "realdata", "--dataset", str(data), "--tokenize", "word", "--preset", "tiny",
                 "--seeds", "2", "--out", str(out), "--no-progress", "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last["summary"]) == {"mle", "seqgan"}
    result = json.loads((out / "realdata.json").read_text())
    for r in result["runs"]:
        assert 0 <= r["bleu2"] <= 1 and 0 <= r["self_bleu2"] <= 1 and r["nll_test"] > 0
        assert {"bleu4", "self_bleu4", "nll_test"} <= set(r["temperatures"][0])
        assert (out / r["samples"]).read_text().strip()
    assert "| Self-BLEU-2 |" in (out / "realdata.md").read_text()
    # The reported BLEU / Self-BLEU are the sweep's at τ = 1: SAMPLES_KEPT sequences drawn after
    # those of the lower temperatures (torch seeded from run.seed), cut at their first EOS and
    # scored against the test split's lines — recomputed here with seqgan.bleu (itself checked
    # against nltk in test_bleu).
    from seqgan.bleu import bleu, self_bleu
    from seqgan.cli import _load_run
    from seqgan.data import load_corpus, pad_after_eos
    from seqgan.experiment import SAMPLES_KEPT, TEMPERATURES

    (mle,) = [r for r in result["runs"] if (r["method"], r["seed"]) == ("mle", 88)]
    (at_one,) = [t for t in mle["temperatures"] if t["temperature"] == 1.0]
    assert all(mle[key] == at_one[key] for key in ("bleu2", "self_bleu2", "bleu4", "self_bleu4", "nll_test"))
    cfg, generator, _ = _load_run(str(out / "runs" / "mle-seed88"), "cpu")
    corpus = load_corpus(cfg.data)
    references = [corpus.vocab.decode(row) for row in corpus.test.tolist()]
    assert 0 < len(corpus.test) < len(corpus.train)  # a tenth of the lines: the training ones score otherwise
    torch.manual_seed(cfg.run.seed)
    for tau, point in zip(TEMPERATURES[:TEMPERATURES.index(1.0) + 1], mle["temperatures"]):  # 0.6 ... 1
        samples = generator.sample(SAMPLES_KEPT, temperature=tau, chunk=cfg.run.sample_batch)
        hypotheses = [corpus.vocab.decode(row) for row in pad_after_eos(samples).tolist()]
        for n in (2, 4):
            assert point[f"bleu{n}"] == pytest.approx(bleu(references, hypotheses, n), abs=1e-12, rel=0), (tau, n)
            assert point[f"self_bleu{n}"] == pytest.approx(self_bleu(hypotheses, n), abs=1e-12, rel=0), (tau, n)
    assert (out / "realdata_quality_diversity.png").is_file()
    # A re-run whose finished run must be swept again (its cache gone) fits the sweep's generator to
    # the corpus as training did (the re-run's row config has the preset's sizes): same numbers.
    swept = json.loads((out / "runs" / "mle-seed88" / "temperatures.json").read_text())
    (out / "runs" / "mle-seed88" / "temperatures.json").unlink()
    assert main(["experiment", "realdata", "--dataset", str(data), "--tokenize", "word", "--preset", "tiny",
                 "--seeds", "2", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "runs" / "mle-seed88" / "temperatures.json").read_text()) == swept
    assert json.loads((out / "realdata.json").read_text())["runs"] == result["runs"]
    assert main(["experiment", "table1", "--dataset", str(data), "--out", str(tmp_path / "x")]) == 1


def test_shared_pretraining_compiles_as_the_whole_schedule_would():
    """The shared pre-training run stops before the adversarial phase, so by its own length
    `run.compile=auto` would not compile; it takes the whole schedule's decision instead."""
    from seqgan.config import preset
    from seqgan.experiment import _pretraining_config

    assert _pretraining_config(preset("paper"), "d_pretrain").run.compile == "on"
    assert _pretraining_config(preset("quick"), "d_pretrain").run.compile == "off"


def _table(result: dict) -> list:
    return [(r["method"], r["seed"], r["nll_oracle"], r["nll_test"], r["distinct"], r["temperatures"], r["curve"])
            for r in result["runs"]]


def test_parallel_jobs_give_the_sequential_results(tmp_path):
    """`--jobs 2`: runs in two worker processes of one thread each give bit for bit the table of a
    one-thread run in this process (table order too); a stop request (here: once the first row is
    collected) checkpoints the running workers and raises Interrupted, and running the experiment
    again finishes it with the same numbers; a worker's error ends the experiment with that error."""
    from seqgan.train import Interrupted

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        sequential = run_experiment("table1", preset("tiny"), 1, tmp_path / "seq", progress=False)
        torch.set_num_threads(2)  # each of the 2 workers gets 1
        parallel = run_experiment("table1", preset("tiny"), 1, tmp_path / "par", progress=False, jobs=2)
        assert _table(parallel) == _table(sequential) and parallel["complete"] is True
        stopped = tmp_path / "stopped"
        with pytest.raises(Interrupted):
            run_experiment("table1", preset("tiny"), 1, stopped, progress=False, jobs=2,
                           should_stop=lambda: (stopped / "samples" / "random-seed88.txt").is_file())
        assert json.loads((stopped / "table1.json").read_text())["complete"] is False
        resumed = run_experiment("table1", preset("tiny"), 1, stopped, progress=False, jobs=2)
        assert _table(resumed) == _table(sequential)
    finally:
        torch.set_num_threads(threads)
    broken = tmp_path / "par" / "runs" / "seqgan-seed88" / "checkpoint.pt"
    payload = torch.load(broken, weights_only=True)
    payload["phase"], payload["step"] = "adversarial", 1  # unfinished, so a worker resumes it ...
    payload["generator"]["embedding.weight"] = torch.zeros(3, 3)  # ... and finds it does not fit
    torch.save({**payload, "sha256": payload_sha256(payload)}, broken)
    with pytest.raises(SeqGANError, match="seqgan-seed88: the checkpoint's generator does not fit"):
        run_experiment("table1", preset("tiny"), 1, tmp_path / "par", progress=False, jobs=2)
    with pytest.raises(SeqGANError, match="jobs must be at least 1"):
        run_experiment("table1", preset("tiny"), 1, tmp_path / "par", progress=False, jobs=0)


@pytest.mark.parametrize("sig, code, delay", [(signal.SIGINT, 130, 0.0), (signal.SIGTERM, 143, 2.0)])
def test_parallel_workers_stop_on_a_signal_to_the_process_group(tmp_path, sig, code, delay):
    """Ctrl-C (SIGINT to the terminal's process group, here while the workers are still starting)
    or a scheduler's SIGTERM to the group: the workers ignore it, the parent turns it into a stop
    request, every worker checkpoints, and the command ends with the resume hint (no traceback);
    the same command then finishes the experiment."""
    command = [sys.executable, "-m", "seqgan", "experiment", "table1", "--preset", "tiny", "--seeds", "1",
               "--jobs", "2", "--no-progress", "--out", str(tmp_path), "--set", "schedule.mle_epochs=400"]
    p = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    started = p.stderr.readline()
    assert started.startswith("seqgan experiment: started"), started
    time.sleep(delay)
    os.killpg(p.pid, sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert "Traceback" not in err and "continue with the same command" in err.splitlines()[-1], err
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "table1.json").read_text())["complete"] is True


def test_the_quality_diversity_plot_adds_a_close_up_only_where_a_far_curve_squeezes_the_rest():
    """(NLL-test, NLL-oracle) points as in results/table1: a collapsed PG-BLEU curve (NLL-oracle ~2)
    gets the close-up on MLE's range, padded by 10 % on each axis; curves near MLE's get none."""
    mle = [(11.0, 8.0), (9.0, 9.0), (8.0, 9.5)]
    near = {"mle": mle, "seqgan": [(12.0, 7.5), (8.5, 9.4)]}
    assert _zoom_window(near) is None
    window = _zoom_window({**near, "pg_bleu": [(16.5, 1.5), (9.0, 2.5)]})
    assert [pytest.approx(limits) for limits in window] == [(7.7, 11.3), (7.85, 9.65)]
    assert _zoom_window({"seqgan": near["seqgan"], "pg_bleu": [(16.5, 1.5)]}) is None  # no MLE curve to zoom on



def test_the_quality_diversity_plot_draws_the_close_up_beside_the_chart_and_skips_nan(tmp_path):
    """Two panels (a PNG twice as wide) where PG-BLEU's curve is far from MLE's, one otherwise; a
    NaN in MLE's sweep (a diverged run) is left out instead of stopping the plot."""
    def summary(pg_bleu_oracle, mle_nan=False):
        sweep = lambda shift: [{"temperature": t, "nll_test": x, "nll_oracle": y + shift}
                               for t, x, y in ((0.8, 10.0, 8.0), (1.0, 9.0, 9.0), (1.2, 8.0, 10.0))]
        mle = [{"temperature": 0.6, "nll_test": float("nan"), "nll_oracle": 7.5}] * mle_nan + sweep(0.0)
        return {"mle": {"temperatures": mle}, "pg_bleu": {"temperatures": sweep(pg_bleu_oracle)}}

    def width(path):  # the PNG's IHDR width
        return int.from_bytes(path.read_bytes()[16:20], "big")

    widths = []
    for name, s in (("near", summary(-0.5)), ("far", summary(-7.0)), ("far_nan", summary(-7.0, mle_nan=True))):
        _plot_quality_diversity(_pyplot(), s, table1_variants(), tmp_path / f"{name}.png")
        widths.append(width(tmp_path / f"{name}.png"))
    assert widths[1] == widths[2] and widths[1] > 1.5 * widths[0]


def test_the_quality_diversity_plot_names_a_method_whose_whole_sweep_diverged(tmp_path):
    """A method with NaN at every temperature gets a legend entry saying it has no finite point,
    in both panels, instead of the plot failing; the other curves are drawn as usual."""
    nan = float("nan")
    sweep = lambda shift: [{"temperature": t, "nll_test": x, "nll_oracle": y + shift}
                           for t, x, y in ((0.8, 10.0, 8.0), (1.0, 9.0, 9.0), (1.2, 8.0, 10.0))]
    summary = {"mle": {"temperatures": sweep(0.0)}, "pg_bleu": {"temperatures": sweep(-7.0)},
               "seqgan": {"temperatures": [{"temperature": t, "nll_test": nan, "nll_oracle": nan} for t in (0.8, 1.0)]}}
    real, figures = _pyplot(), []

    class Recording:  # pyplot, keeping each figure it closes
        subplots = staticmethod(real.subplots)

        @staticmethod
        def close(fig):
            figures.append(fig)
            real.close(fig)

    _plot_quality_diversity(Recording, summary, table1_variants(), tmp_path / "qd.png")
    assert (tmp_path / "qd.png").stat().st_size > 0
    (fig,) = figures
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]
    assert len(legends) == 2  # PG-BLEU far from MLE: the close-up is there too
    for labels in legends:
        assert sum("(no finite point)" in label for label in labels) == 1
        assert any("SeqGAN" in label and "(no finite point)" in label for label in labels), labels
        assert len(labels) == 3
