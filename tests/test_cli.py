"""The `seqgan` command: happy paths and one-line errors for bad input."""

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqgan.bench import bench_discriminator, bench_rollout
from seqgan.checkpoint import payload_sha256
from seqgan.cli import main
from seqgan.config import DataConfig, SeqGANError
from seqgan.metrics import nll_oracle
from seqgan.oracle import build_oracle, oracle_samples
from seqgan.train import read_metrics

from conftest import TINY_FAST, log_probs_by_hand


def save_payload(payload: dict, path) -> None:
    """Write an edited checkpoint payload as save_checkpoint would (with its checksum)."""
    torch.save({**payload, "sha256": payload_sha256(payload)}, path)


def run_cli(*args):
    """Run `python -m seqgan` in a subprocess: exit code, stdout, stderr."""
    p = subprocess.run([sys.executable, "-m", "seqgan", *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def assert_one_line_error(code, stderr, *needles):
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqgan: error:"), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_train_writes_run_dir_and_summary(tiny_run):
    """The run directory's files, and the printed table: the last NLL-oracle / NLL-test of each
    phase from the metrics log (tiny's random oracle: no paper column; the next test has it)."""
    assert {p.name for p in tiny_run.iterdir()} >= {"config.json", "metrics.jsonl", "checkpoint.pt", "samples.txt"}
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["phase"] == "init" and records[0]["step"] == 0 and "nll_oracle" in records[0]
    assert json.loads((tiny_run / "config.json").read_text())["schedule"]["mle_epochs"] == 2
    printed = (tiny_run.parent / "stdout.txt").read_text().splitlines()
    assert printed[0].split() == ["step", "NLL-oracle", "NLL-test"]  # no paper column: not its oracle
    for label, phase in (("untrained G", "init"), ("after MLE", "mle"), ("after SeqGAN", "adversarial")):
        last = [r for r in records if r["phase"] == phase and "nll_oracle" in r][-1]
        line = next(x for x in printed if x.startswith(label))
        assert line.split()[-3:] == [str(last["step"]), f"{last['nll_oracle']:.3f}", f"{last['nll_test']:.3f}"], line


def test_summary_on_the_papers_oracle_sets_table_1_beside_each_phase():
    from seqgan.cli import _summary

    records = [{"phase": "init", "step": 0, "nll_oracle": 10.9876, "nll_test": 8.5},
               {"phase": "mle", "step": 120, "nll_oracle": 9.0123, "nll_test": 9.1},
               {"phase": "adversarial", "step": 5, "nll_oracle": 9.5, "nll_test": 9.0},
               {"phase": "adversarial", "step": 10, "nll_oracle": 8.7001, "nll_test": 9.2}]
    lines = _summary(records, "seqgan").splitlines()
    assert lines[0].split() == ["step", "NLL-oracle", "NLL-test", "paper", "Table", "1"]
    assert lines[1].split() == ["untrained", "G", "0", "10.988", "8.500", "10.310", "(Random)"]
    assert lines[2].split() == ["after", "MLE", "120", "9.012", "9.100", "9.038", "(MLE)"]
    assert lines[3].split() == ["after", "SeqGAN", "10", "8.700", "9.200", "8.736", "(SeqGAN)"]
    assert _summary(records, "pg_bleu").splitlines()[3].split()[-2:] == ["8.946", "(PG-BLEU)"]
    assert "paper" not in _summary(records, "seqgan", paper_oracle=False)


def test_reported_nll_matches_a_rescoring_of_the_samples_file(tiny_run):
    """The logged NLL-oracle is that of the sequences in samples.txt, read back from the file: equal
    to `nll_oracle` of them and, independently, to the oracle's equations in float64 numpy (1e-5)."""
    from test_oracle import numpy_nll

    from seqgan.oracle import oracle_params

    last = json.loads((tiny_run / "metrics.jsonl").read_text().splitlines()[-1])
    data = DataConfig(**json.loads((tiny_run / "config.json").read_text())["data"])
    samples = torch.tensor([[int(x) for x in line.split()]
                            for line in (tiny_run / "samples.txt").read_text().splitlines()])
    # CPU: the same computation on the same samples, equal (1e-9). On a GPU the run scored with
    # cuDNN's LSTM (TF32): ~1e-5.
    tolerance = 1e-4 if torch.cuda.is_available() else 1e-9
    assert abs(nll_oracle(build_oracle(data), samples) - last["nll_oracle"]) < tolerance
    assert numpy_nll(oracle_params(data), samples.numpy(), data.start_token) == pytest.approx(last["nll_oracle"], abs=1e-5)


def test_sample_command(tiny_run, tmp_path, capsys):
    out = tmp_path / "s.txt"
    assert main(["sample", "--run", str(tiny_run), "--n", "7", "--temperature", "0.8", "--out", str(out)]) == 0
    rows = [list(map(int, line.split())) for line in out.read_text().splitlines()]
    assert len(rows) == 7 and all(len(r) == 8 and all(0 <= x < 20 for x in r) for r in rows)
    capsys.readouterr()
    assert main(["sample", "--run", str(tiny_run), "--n", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    before = (tiny_run / "checkpoint.pt").read_bytes()
    for name in ("checkpoint.pt", "metrics.jsonl"):  # the run's own files are not overwritten
        assert_one_line_error(main(["sample", "--run", str(tiny_run), "--n", "3", "--out", str(tiny_run / name)]),
                              capsys.readouterr().err, f"is a run's own {name}; write the samples elsewhere")
    assert (tiny_run / "checkpoint.pt").read_bytes() == before


def test_sample_shows_poems_as_four_lines_of_five_and_midi_needs_a_music_run(tiny_run, tmp_path, capsys, monkeypatch):
    """A char-level run whose samples are all 20 characters (five-character quatrains) prints each
    as 4 lines of 5 and a blank line, and writes them unchanged with --out; one sample of another
    length prints every sample as it is. --midi on a run not trained on music: one line."""
    import random

    from seqgan import cli
    from seqgan.data import EOS, Vocab

    assert_one_line_error(main(["sample", "--run", str(tiny_run), "--n", "2", "--midi", str(tmp_path / "x.mid")]),
                          capsys.readouterr().err, "--midi is for runs trained on --data music")
    assert not (tmp_path / "x.mid").exists()
    chars = "春眠不觉晓处处闻啼鸟夜来风雨声花落知多少"
    rng = random.Random(0)
    (tmp_path / "poems.txt").write_text("\n".join("".join(rng.choices(chars, k=20)) for _ in range(60)) + "\n",
                                        encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", *TINY_FAST, "--data", str(tmp_path / "poems.txt"), "--tokenize", "char",
                 "--out", str(run)]) == 0
    vocab = Vocab.load(run / "vocab.json")
    poems = ["春眠不觉晓处处闻啼鸟夜来风雨声花落知多少", "花落知多少夜来风雨声春眠不觉晓处处闻啼鸟"]
    for shown, expected in ((poems, "春眠不觉晓\n处处闻啼鸟\n夜来风雨声\n花落知多少\n\n花落知多少\n夜来风雨声\n春眠不觉晓\n"
                                    "处处闻啼鸟\n\n"),
                            ([poems[0], poems[1][:19]], f"{poems[0]}\n{poems[1][:19]}\n")):
        tokens = torch.tensor([vocab.encode(list(p)) + [EOS] * (21 - len(p)) for p in shown])
        monkeypatch.setattr(cli, "_generate", lambda *a, tokens=tokens: tokens)
        capsys.readouterr()
        assert main(["sample", "--run", str(run), "--n", "2"]) == 0
        assert capsys.readouterr().out == expected
    tokens = torch.tensor([vocab.encode(list(p)) + [EOS] for p in poems])
    monkeypatch.setattr(cli, "_generate", lambda *a: tokens)
    assert main(["sample", "--run", str(run), "--n", "2", "--out", str(tmp_path / "s.txt")]) == 0
    assert (tmp_path / "s.txt").read_text(encoding="utf-8") == f"{poems[0]}\n{poems[1]}\n"


def test_sample_midi_of_a_music_run_holds_the_printed_samples(tmp_path, capsys, monkeypatch):
    """`seqgan sample --midi` on a run trained on --data music (its corpus cache written here: 60
    random melodies of 32 grid steps): the MIDI file is the printed samples in turn — each run of
    one pitch a held note of 0.5 quarters a step, rests and unknown tokens silent, a bar's rest
    after each sample (reference: itertools.groupby over the printed tokens)."""
    import gzip
    import itertools
    import random

    pytest.importorskip("music21")
    from music21 import converter

    from seqgan.music import cache_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = random.Random(0)
    cache_path().parent.mkdir(parents=True)
    with gzip.open(cache_path(), "wt") as f:
        f.writelines(" ".join(rng.choice(["60", "62", "64", "65", "67", "r"]) for _ in range(32)) + "\n" for _ in range(60))
    run, midi = tmp_path / "run", tmp_path / "s.mid"
    assert main(["train", *TINY_FAST, "--data", "music", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["sample", "--run", str(run), "--n", "3", "--midi", str(midi)]) == 0
    printed = capsys.readouterr()
    assert printed.err.strip() == f"wrote 3 sequences as MIDI to {midi}"
    lines = printed.out.splitlines()
    assert len(lines) == 3  # seed 0 prints one with <unk> and an empty one (EOS first): a bar's rest alone
    expected, onset = [], 0.0
    for line in lines:
        for token, run_of in itertools.groupby(line.split()):
            length = 0.5 * len(list(run_of))
            if token.isdigit():
                expected.append((int(token), onset, length))
            onset += length
        onset += 4.0
    notes = converter.parse(str(midi)).flatten().notes
    assert [(n.pitch.midi, float(n.offset), float(n.quarterLength)) for n in notes] == expected
    assert expected  # a tiny model trained on pitches samples some pitches


def test_sample_that_cannot_write_keeps_the_old_file_and_says_where(tiny_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "s.txt"
    out.write_text("old samples\n")

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    assert_one_line_error(main(["sample", "--run", str(tiny_run), "--n", "3", "--out", str(out)]),
                          capsys.readouterr().err, f"cannot write the samples to {out}: No space left on device")
    monkeypatch.undo()
    assert out.read_text() == "old samples\n" and not (tmp_path / "s.txt.tmp").exists()


def test_evaluate_on_the_synthetic_task_equals_direct_computations(tiny_run, tmp_path, capsys):
    """`evaluate --seed S` scores the samples `sample --seed S` prints: NLL-oracle = the run's oracle
    on them and NLL-test = the generator on the data_seed+1 oracle set, both by log-softmax and
    gather in float64 (1e-5: evaluate scores in float32); BLEU-2 and Self-BLEU-2 = nltk's
    sentence BLEU (method1) against those held-out sequences / the other samples (1e-9)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    from seqgan.checkpoint import run_checkpoint
    from seqgan.train import build_generator

    out = tmp_path / "s.txt"
    assert main(["sample", "--run", str(tiny_run), "--n", "30", "--seed", "3", "--temperature", "0.9",
                 "--out", str(out)]) == 0
    assert main(["evaluate", "--run", str(tiny_run), "--n", "30", "--seed", "3", "--temperature", "0.9",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    samples = torch.tensor([list(map(int, line.split())) for line in out.read_text().splitlines()])
    cfg, payload = run_checkpoint(tiny_run)
    d = cfg.data
    oracle = build_oracle(d).double()
    test = oracle_samples(build_oracle(d), d.num_test, d.data_seed + 1, cfg.run.sample_batch)
    generator = build_generator(cfg).double()
    generator.load_state_dict(payload["generator"])

    assert result["nll_oracle"] == pytest.approx(-log_probs_by_hand(oracle, samples).mean().item(), abs=1e-5, rel=0)
    assert result["nll_test"] == pytest.approx(-log_probs_by_hand(generator, test, 0.9).mean().item(), abs=1e-5,
                                               rel=0)
    hyps, refs, smooth = samples.tolist(), test.tolist(), SmoothingFunction().method1
    for n in (2, 3, 4, 5):
        bleu = sum(sentence_bleu(refs, h, (1 / n,) * n, smoothing_function=smooth) for h in hyps) / len(hyps)
        self_bleu = sum(sentence_bleu(hyps[:i] + hyps[i + 1:], h, (1 / n,) * n, smoothing_function=smooth)
                        for i, h in enumerate(hyps)) / len(hyps)
        assert result[f"bleu{n}"] == pytest.approx(bleu, abs=1e-9, rel=0), n
        assert result[f"self_bleu{n}"] == pytest.approx(self_bleu, abs=1e-9, rel=0), n
    assert (result["samples"], result["references"], result["temperature"]) == (30, d.num_test, 0.9)
    assert list(result) == ["nll_oracle", "nll_test", "bleu2", "bleu3", "bleu4", "bleu5", "self_bleu2", "self_bleu3",
                            "self_bleu4", "self_bleu5", "samples", "references", "temperature"]
    # ... and the samples are the generator's at τ = 0.9 from torch seed 3, not at τ = 1
    sampler = build_generator(cfg)
    sampler.load_state_dict(payload["generator"])
    torch.manual_seed(3)
    assert torch.equal(samples, sampler.eval().sample(30, temperature=0.9))


def test_sizes_past_what_torch_can_count_are_one_line(tiny_run, tmp_path):
    """A tensor size that overflows torch's count (`sample --n 1e18`, an experiment worker's 1e18
    evaluation samples) is one line naming the cause, as out of memory is, with --jobs too."""
    assert_one_line_error(*run_cli("sample", "--run", str(tiny_run), "--n", "1000000000000000000")[::2],
                          "sizes too large (", "choose smaller sizes")
    code, _, err = run_cli("experiment", "table1", "--preset", "tiny", "--seeds", "1", "--jobs", "2",
                           "--out", str(tmp_path / "x"), "--set", "schedule.num_eval=1000000000000000000")
    assert code == 1 and "Traceback" not in err, err
    assert "sizes too large (" in err.strip().splitlines()[-1]


def test_world_size_without_torchrun_is_one_line(tmp_path):
    """WORLD_SIZE > 1 without the rest of torchrun's environment: one line, not torch's ValueError."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "MASTER_ADDR", "MASTER_PORT")}
    p = subprocess.run([sys.executable, "-m", "seqgan", "train", *TINY_FAST, "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=120, env={**env, "WORLD_SIZE": "2"})
    assert_one_line_error(p.returncode, p.stderr, "WORLD_SIZE=2 but RANK, MASTER_ADDR, MASTER_PORT not set")
    assert not (tmp_path / "r").exists()


def test_score_oracle_refuses_a_run_config_it_cannot_use(tmp_path):
    """A config.json beside the samples whose data section cannot build an oracle (start token out
    of range) is the one-line "holds no data config" error, not an IndexError."""
    (tmp_path / "config.json").write_text(json.dumps({"data": {"oracle": "paper", "start_token": 99999}}))
    (tmp_path / "samples.txt").write_text("1 2 3\n")
    assert_one_line_error(*run_cli("score-oracle", str(tmp_path / "samples.txt"))[::2],
                          "holds no data config this seqgan reads")


def test_bleu_reads_a_pipe(tmp_path):
    """Process substitution (a pipe, not a regular file) is read, not "file not found"."""
    p = subprocess.run(["bash", "-c", f"{sys.executable} -m seqgan bleu --references <(printf 'a b c\\n') "
                        f"--hypotheses <(printf 'a b c\\n') --n 2 --json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == {"bleu": 1.0}


def test_score_oracle_json_matches_direct_scoring(tmp_path, capsys):
    oracle = build_oracle(DataConfig())
    seqs = oracle_samples(oracle, 40, seed=1)
    path = tmp_path / "seqs.txt"
    path.write_text("\n".join(" ".join(map(str, r)) for r in seqs.tolist()) + "\n")
    assert main(["score-oracle", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(result) == ["nll_oracle", "sequences"] and type(result["sequences"]) is int  # noqa: E721
    assert result["sequences"] == 40
    assert abs(result["nll_oracle"] - nll_oracle(oracle, seqs)) < 1e-9


def test_score_oracle_finds_the_random_oracle_of_the_run_that_wrote_the_samples(tiny_run, tmp_path, capsys):
    """The tiny preset's oracle is random (data.oracle_seed): its samples.txt scored with --oracle
    left out reproduces the run's last logged NLL-oracle (it was scored on CPU the same way; 1e-6);
    the same file copied out of its run directory, or with --oracle paper, is scored under the
    paper's oracle, as that flag says."""
    last = [r for r in read_metrics(tiny_run / "metrics.jsonl") if "nll_oracle" in r][-1]["nll_oracle"]
    assert main(["score-oracle", str(tiny_run / "samples.txt"), "--json"]) == 0
    out, err = capsys.readouterr()
    assert abs(json.loads(out.splitlines()[-1])["nll_oracle"] - last) < 1e-6
    assert "random oracle of the run" in err and "data.oracle_seed 0" in err
    alone = tmp_path / "samples.txt"
    alone.write_text((tiny_run / "samples.txt").read_text())
    scores = []
    for args in (["score-oracle", str(alone), "--json"], ["score-oracle", str(tiny_run / "samples.txt"),
                                                          "--oracle", "paper", "--json"]):
        assert main(args) == 0
        out, err = capsys.readouterr()
        scores.append(json.loads(out.splitlines()[-1])["nll_oracle"])
        assert err == ""
    assert scores[0] == scores[1] and abs(scores[0] - last) > 1.0


def test_bench_rollout_small():
    result = bench_rollout(batch=4, num_rollouts=2, seq_len=6, vocab_size=30)
    assert set(result) == {"ours_s", "plain_s", "speedup"} and result["ours_s"] > 0


def test_bench_discriminator_small():
    """Smoke test of the benchmark's report: both sides run (paper-sized models, 4 batches). That
    the two sides compute the same training: test_discriminator; that the reference loop learns:
    the next test."""
    result = bench_discriminator(num_seqs=256)
    assert set(result) == {"ours_s", "reference_s", "speedup", "gflops", "peak_gflops", "fraction_of_peak"}
    assert result["ours_s"] > 0 and result["reference_s"] > 0 and 0 < result["fraction_of_peak"] < 1


def test_bench_step_and_schedule_add_up_the_measured_parts_and_print_json_last(monkeypatch, capsys):
    """`bench adversarial-step` / `schedule` from given component times (the timing itself is
    paper-sized: benchmarks, not tests), worked out by hand for the paper preset: a step is
    roll-out + G update + 5 x (sample 10k + 3 x D epoch); the schedule adds 120 MLE epochs with 25
    evaluations of 10k samples, 50 D pre-training rounds of (10k negatives + 3 epochs over 20k
    rows), and 200 steps with 40 evaluations. --json: the result alone on the last line."""
    from seqgan import bench

    ours = {"rollout_s": 2.0, "g_update_s": 0.5, "sample_10k_s": 1.0, "d_epoch_s": 4.0, "mle_epoch_s": 3.0}
    reference_parts = {"rollout_s": 20.0, "g_update_s": 0.5, "sample_10k_s": 10.0, "d_epoch_s": 8.0}
    calls = []

    def components(repeats=1, device="cpu", reference=True):
        calls.append((repeats, device, reference))
        return {"ours": ours, "reference": reference_parts} if reference else {"ours": ours}

    monkeypatch.setattr(bench, "adversarial_components", components)
    assert main(["bench", "adversarial-step", "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == {"ours_s": 67.5, "reference_s": 190.5, "speedup": 2.82}  # 2.5 + 5 x 13; 20.5 + 5 x 34
    assert list(json.loads(last)) == ["ours_s", "reference_s", "speedup"]
    assert main(["bench", "schedule", "--repeats", "2", "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == {"projected_s": 14575.0, "mle_s": 385.0, "d_pretrain_s": 650.0, "adversarial_s": 13540.0}
    assert list(last) == ["projected_s", "mle_s", "d_pretrain_s", "adversarial_s"]
    assert calls == [(1, "cpu", True), (2, "cpu", False)]  # the schedule times our side only


def test_bench_sampling_json_last_line(monkeypatch, capsys):
    from seqgan import bench

    assert list(bench.bench_sampling(n=64)) == ["ours_s", "multinomial_s", "speedup"]  # the real one, small
    monkeypatch.setattr(bench, "bench_sampling", lambda **kw: {"ours_s": 0.5, "multinomial_s": 12.0, "speedup": 24.0})
    assert main(["bench", "sampling", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == \
        {"ours_s": 0.5, "multinomial_s": 12.0, "speedup": 24.0}


def test_plain_discriminator_epoch_learns():
    """The reference training loop the benchmark times: three epochs separate two easy classes."""
    from seqgan.reference import PlainDiscriminator, plain_discriminator_epoch

    torch.manual_seed(0)
    d = PlainDiscriminator(40, 8, (1, 2, 3), (8, 8, 8))
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    positives, negatives = torch.randint(0, 20, (256, 10)), torch.randint(20, 40, (256, 10))
    losses = [plain_discriminator_epoch(d, opt, positives, negatives, 64, 0.2) for _ in range(3)]
    assert losses[-1] < 0.5 * losses[0]  # measured 0.696 -> 0.148


@pytest.mark.parametrize("args, needles", [
    (["train", "--set", "generator.hidden_dim=-4"], ["generator.hidden_dim", "-4"]),
    (["train", "--set", "generator.nope=1"], ["generator.nope"]),
    (["train", "--set", "nosection.x=1"], ["nosection.x"]),
    (["train", "--set", "generator.lr=fast"], ["generator.lr", "fast"]),
    (["train", "--set", "schedule.adv_steps"], ["key=value"]),
    (["train", "--set", "data.vocab_size=100"], ["paper oracle"]),
    (["train", "--set", "discriminator.filter_sizes=1,30", "discriminator.num_filters=2,2"], ["exceeds"]),
    (["train", "--device", "tpu"], ["run.device", "tpu"]),
    (["train", "--device", "cuda:x"], ["run.device", "cuda:x"]),
    (["train", "--set", "run.compile=maybe"], ["run.compile", "maybe"]),
    (["train", "--set", "data.corpus=poems"], ["choose the corpus with --data, not --set data.corpus"]),
    (["experiment", "table1", "--set", "data.corpus=x.txt"], ["experiment table1 runs on the synthetic oracle"]),
    (["experiment", "realdata", "--dataset", "poems", "--set", "data.corpus=x.txt"],
     ["choose the corpus with --dataset"]),
    (["train", "--set", "schedule.d_pretrain_epochs=0"],
     ["schedule.d_pretrain_epochs = 0 with schedule.d_pretrain_rounds = ", "trains D on nothing"]),
    (["train", "--set", "schedule.d_epochs=0"], ["schedule.d_epochs = 0 with schedule.d_steps = "]),
    (["train", "--resume", ""], ["--resume needs a run directory, got ''"]),
    (["sample", "--run", "/nonexistent/run", "--n", "3"], ["run directory not found"]),
    (["score-oracle", "/nonexistent/file.txt"], ["file not found"]),
    (["score-oracle", "x.txt", "--oracle", "/nonexistent/o.npz"], ["oracle file not found"]),
])
def test_bad_input_one_line_errors(args, needles, tmp_path):
    if args[0] in ("train", "experiment"):  # where a check regressed, the run would write here, not into the repository
        args = [*args, "--out", str(tmp_path / "run")]
    assert_one_line_error(*run_cli(*args)[::2], *needles)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is absent")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_gpu_is_one_line_error(device):
    assert_one_line_error(*run_cli("train", "--preset", "tiny", "--device", device, "--out", "/tmp/x-never")[::2],
                          "no CUDA device")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the error when MPS is absent")
def test_mps_without_mps_is_one_line_error(tmp_path, capsys):
    assert_one_line_error(main(["train", "--preset", "tiny", "--device", "mps", "--out", str(tmp_path / "run")]),
                          capsys.readouterr().err, "--device mps requested but MPS is not available")


def test_one_numbered_gpu_under_torchrun_is_one_line_error(monkeypatch, tmp_path, capsys):
    """cuda:N names one GPU for every process; under torchrun each process takes GPU LOCAL_RANK."""
    from seqgan import dist

    monkeypatch.setattr(dist, "world", lambda: 2)
    code = main(["train", "--preset", "tiny", "--device", "cuda:1", "--out", str(tmp_path / "run")])
    assert_one_line_error(code, capsys.readouterr().err, "cuda:1 under torchrun", "--device cuda")
    assert not (tmp_path / "run").exists()


def test_unknown_preset_is_rejected():
    code, _, err = run_cli("train", "--preset", "huge")
    assert code == 2 and "huge" in err.strip().splitlines()[-1] and "Traceback" not in err


@pytest.mark.parametrize("content, needles", [
    (b"", ["no sequences (the file is empty)"]),
    (b"\n \n\n", ["no sequences (the file is blank lines only)"]),
    (b"1 2 3\n4 5 x\n", [":2:", "token ids"]),
    (b"1 2 3\n4 5000 6\n", [":2:", "5000", "out of range"]),
    (b"1 2 3\n-1 2 3\n", [":2:", "-1"]),
    (b"1 2 3\n\xff\xfe 2\n", [":2:", "UTF-8"]),
])
def test_score_oracle_bad_files(tmp_path, content, needles):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    assert_one_line_error(*run_cli("score-oracle", str(path))[::2], *needles)


def test_corrupt_checkpoint_and_existing_run_dir(tiny_run, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    assert_one_line_error(*run_cli("sample", "--run", str(bad), "--n", "2")[::2], "checkpoint")
    truncated = tmp_path / "trunc"
    truncated.mkdir()
    (truncated / "checkpoint.pt").write_bytes((tiny_run / "checkpoint.pt").read_bytes()[:1000])
    assert_one_line_error(*run_cli("sample", "--run", str(truncated), "--n", "2")[::2], "checkpoint")
    assert_one_line_error(*run_cli("train", "--preset", "tiny", "--out", str(tiny_run))[::2], "already holds a run")


def test_flags_that_would_be_ignored_or_clobber_are_refused(tmp_path):
    """--tokenize without a corpus changed nothing computed but entered the config (so an experiment
    re-run without it was refused as another config); train --out into an experiment directory
    wrote a run over its record."""
    for command in (["train", "--preset", "tiny", "--tokenize", "word", "--out", str(tmp_path / "t")],
                    ["experiment", "table1", "--preset", "tiny", "--tokenize", "word", "--out", str(tmp_path / "e")]):
        flag = "--dataset" if command[0] == "experiment" else "--data"
        assert_one_line_error(*run_cli(*command)[::2], f"--tokenize applies to a corpus ({flag})")
        assert not (tmp_path / command[-1]).exists()
    experiment = tmp_path / "experiment"
    experiment.mkdir()
    (experiment / "experiment.json").write_text("{}")
    assert_one_line_error(*run_cli("train", "--preset", "tiny", "--out", str(experiment))[::2],
                          f"--out {experiment} holds an experiment")
    assert {p.name for p in experiment.iterdir()} <= {"experiment.json", ".lock"}  # the lock file stays, as for any run


def test_bad_sample_count_is_a_usage_error(tiny_run):
    code, _, err = run_cli("sample", "--run", str(tiny_run), "--n", "0")
    assert code == 2 and "positive integer" in err and "Traceback" not in err


def test_bleu_and_self_bleu_commands_match_nltk(tmp_path, capsys):
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    refs = ["the cat sat on the mat", "a dog sat on a log", "the cat ate the rat"]
    hyps = ["the cat sat on a log", "a dog ate", "", "the rat sat on the cat mat"]
    (tmp_path / "refs.txt").write_text("\n".join(refs) + "\n")
    (tmp_path / "hyps.txt").write_text("\n".join(hyps) + "\n")
    smooth = nltk_bleu.SmoothingFunction().method1

    def score(references, hypothesis, n):
        return nltk_bleu.sentence_bleu([r.split() for r in references], hypothesis.split(),
                                       weights=(1 / n,) * n, smoothing_function=smooth)

    assert main(["bleu", "--references", str(tmp_path / "refs.txt"), "--hypotheses", str(tmp_path / "hyps.txt"),
                 "--n", "3", "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["bleu"]
    assert abs(got - sum(score(refs, h, 3) for h in hyps) / len(hyps)) < 1e-9

    assert main(["self-bleu", "--hypotheses", str(tmp_path / "refs.txt"), "--n", "2", "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(last) == ["self_bleu"]
    got = last["self_bleu"]
    expected = sum(score(refs[:i] + refs[i + 1:], refs[i], 2) for i in range(3)) / 3
    assert abs(got - expected) < 1e-9


def test_bleu_of_char_level_lines_with_tokenize_char(tmp_path, capsys):
    """Char-level samples (e.g. poems: 20 characters, no spaces) are one whitespace token each:
    `--tokenize char` scores them character by character, equal to nltk on character lists."""
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    refs, hyps = ["床前明月光疑是地上霜", "举头望明月低头思故乡"], ["床前明月光低头思故乡", "疑是地上霜", "明月光"]
    (tmp_path / "refs.txt").write_text("\n".join(refs) + "\n", encoding="utf-8")
    (tmp_path / "hyps.txt").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    smooth = nltk_bleu.SmoothingFunction().method1
    expected = sum(nltk_bleu.sentence_bleu([list(r) for r in refs], list(h), weights=(0.5, 0.5),
                                           smoothing_function=smooth) for h in hyps) / len(hyps)
    for tokenize, want in (("char", expected), ("word", 0.0)):
        assert main(["bleu", "--references", str(tmp_path / "refs.txt"), "--hypotheses", str(tmp_path / "hyps.txt"),
                     "--n", "2", "--tokenize", tokenize, "--json"]) == 0
        got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["bleu"]
        assert abs(got - want) < 1e-9 and (tokenize == "word" or got > 0.3)
    assert main(["self-bleu", "--hypotheses", str(tmp_path / "hyps.txt"), "--n", "2", "--tokenize", "char",
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["self_bleu"]
    expected = sum(nltk_bleu.sentence_bleu([list(r) for r in hyps[:i] + hyps[i + 1:]], list(hyps[i]),
                                           weights=(0.5, 0.5), smoothing_function=smooth) for i in range(3)) / 3
    assert abs(got - expected) < 1e-9


@pytest.mark.parametrize("content, needles", [(b"", ["empty"]), (b"a b\n\xc3\x28 c\n", [":2:", "UTF-8"])])
def test_bleu_bad_files(tmp_path, content, needles):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("a b c\n")
    bad.write_bytes(content)
    assert_one_line_error(*run_cli("bleu", "--references", str(bad), "--hypotheses", str(good))[::2], *needles)
    assert_one_line_error(*run_cli("self-bleu", "--hypotheses", str(bad))[::2], *needles)
    assert_one_line_error(*run_cli("self-bleu", "--hypotheses", str(good))[::2], "at least 2")


def test_inspect(tiny_run, tmp_path, capsys):
    from seqgan.checkpoint import state_sha256

    assert main(["inspect", str(tiny_run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    payload = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    assert list(info) == ["run", "phase", "step", "generator_sha256", "discriminator_sha256", "last_metrics", "config"]
    assert info["run"] == str(tiny_run) and info["phase"] == "done" and info["step"] == 1
    assert info["generator_sha256"] == state_sha256(payload["generator"]) != info["discriminator_sha256"]
    import hashlib

    for part in ("generator", "discriminator"):  # sha256 of the tensors' bytes in state-dict order, by hand
        digest = hashlib.sha256(b"".join(t.contiguous().numpy().tobytes() for t in payload[part].values()))
        assert info[f"{part}_sha256"] == digest.hexdigest(), part
    assert info["last_metrics"] == json.loads((tiny_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert info["config"]["schedule"]["mle_epochs"] == 2
    assert_one_line_error(*run_cli("inspect", "/nonexistent/run")[::2], "run directory not found")
    afile = tmp_path / "afile"
    afile.write_text("not a run\n")
    assert_one_line_error(main(["inspect", str(afile)]), capsys.readouterr().err, f"{afile} is a file, not a run directory")


def test_train_without_flags_runs_the_quick_preset_in_a_new_timestamped_directory(tmp_path, capsys, monkeypatch):
    """`seqgan train` alone: the quick preset, seed 88, into runs/quick-seed88-YYYYmmdd-HHMMSS
    under the current directory (training itself replaced here by a stand-in that records them)."""
    import re

    from seqgan import train as training
    from seqgan.config import preset

    seen = []

    def stand_in(cfg, run_dir, **kwargs):
        seen.append((cfg, run_dir))
        raise SeqGANError("stand-in")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(training, "train", stand_in)
    assert main(["train"]) == 1
    ((cfg, run_dir),) = seen
    assert cfg.to_dict() == preset("quick").to_dict() and cfg.run.seed == 88
    assert re.fullmatch(r"runs/quick-seed88-\d{8}-\d{6}", run_dir.as_posix()) and (tmp_path / run_dir).is_dir()
    assert f"seqgan train: preset quick, seed 88, run directory {run_dir}\n" in capsys.readouterr().err


def test_an_empty_or_file_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the default run directory would go
    afile = tmp_path / "afile"
    afile.write_text("kept\n")
    for command in (["train", "--preset", "tiny"], ["experiment", "table1", "--preset", "tiny", "--seeds", "1"]):
        with pytest.raises(SystemExit) as usage:  # not the default directory instead (an unset shell variable)
            main([*command, "--out", ""])
        err = capsys.readouterr().err
        assert usage.value.code == 2 and err.strip().splitlines()[-1].endswith("argument --out: an empty path"), err
        assert_one_line_error(main([*command, "--out", str(afile)]), capsys.readouterr().err,
                              f"{afile} exists and is not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and afile.read_text() == "kept\n"


def test_plot(tiny_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    assert main(["plot", str(tiny_run), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    import shutil

    shutil.copytree(tiny_run, tmp_path / "r")
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "r")]) == 0  # without --out: DIR/learning_curves.png
    assert capsys.readouterr().out == f"wrote {tmp_path / 'r' / 'learning_curves.png'}\n"
    assert (tmp_path / "r" / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(*run_cli("plot", str(empty))[::2], "no metrics log")


def test_tensorboard_events(tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out = tmp_path / "tb"
    assert main(["train", *TINY_FAST, "--tensorboard", "--out", str(out)]) == 0
    events = accumulator.EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"init/nll_oracle", "mle/g_loss", "mle/nll_test", "d_pretrain/d_acc", "adversarial/mean_reward"} <= tags
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    mle_losses = [r["g_loss"] for r in log if r["phase"] == "mle"]
    assert [round(e.value, 5) for e in events.Scalars("mle/g_loss")] == [round(v, 5) for v in mle_losses]


@pytest.mark.parametrize("setting,needle", [("generator.lr=inf", "generator.lr must be a finite number"),
                                            ("run.checkpoint_seconds=nan", "must be a finite number"),
                                            ("data.oracle_seed=-1", "data.oracle_seed must be in [0, 2^63)"),
                                            ("data.max_vocab=4", "data.max_vocab = 4 leaves no room beside"),
                                            ("run.seed=99999999999999999999", "run.seed must be in [0, 2^63)")])
def test_bad_config_values_stop_before_anything_runs(setting, needle, tmp_path, capsys):
    assert_one_line_error(main(["train", *TINY_FAST, "--out", str(tmp_path / "r"), "--set", setting]),
                          capsys.readouterr().err, needle)
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


def test_infinity_is_accepted_where_it_means_never():
    from seqgan.config import preset, set_field

    cfg = preset("tiny")
    set_field(cfg, "generator.grad_clip", "inf")  # no clipping
    set_field(cfg, "run.checkpoint_seconds", "inf")  # checkpoints at phase ends only
    cfg.validate()
    assert cfg.generator.grad_clip == cfg.run.checkpoint_seconds == float("inf")
    set_field(cfg, "generator.lr", "inf")  # elsewhere it is an error
    with pytest.raises(SeqGANError, match="generator.lr must be a finite number"):
        cfg.validate()


@pytest.mark.parametrize("args,needle", [(["sample", "--run", "r", "--n", "2", "--seed", "99999999999999999999"],
                                          "--seed: the seed must be in [0, 2^63)"),
                                         (["bleu", "--references", "a", "--hypotheses", "b", "--n", "100000000000"],
                                          "an n-gram order from 1 to 100"),
                                         (["sample", "--run", "r", "--n", "2", "--temperature", "0"],
                                          "--temperature: expected a positive number, got '0'"),
                                         (["experiment", "table1", "--seeds", "0"],
                                          "--seeds: expected a positive integer, got '0'"),
                                         (["experiment", "table1", "--jobs", "0"],
                                          "--jobs: expected a positive integer, got '0'"),
                                         (["train", "--seed", "-1"], "--seed: the seed must be in [0, 2^63), got -1"),
                                         (["evaluate", "--run", "r", "--temperature", "1e-40"],
                                          "--temperature: expected a temperature of at least 0.001, got '1e-40'"),
                                         (["train", "--preset", "huge"], "--preset: invalid choice: 'huge'"),
                                         (["frobnicate"], "invalid choice: 'frobnicate'"),
                                         (["train", "--frob"], "unrecognized arguments: --frob")])
def test_bad_flags_are_usage_errors(args, needle, capsys):
    """argparse's usage errors: the usage block, then one error line naming the flag; exit 2."""
    with pytest.raises(SystemExit) as stop:
        main(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and needle in err.strip().splitlines()[-1] and err.startswith("usage: seqgan")


def test_unknown_device_is_one_line_error_in_every_command(tiny_run, capsys):
    for command in (["sample", "--run", str(tiny_run), "--n", "2"], ["evaluate", "--run", str(tiny_run), "--n", "2"],
                    ["train", "--resume", str(tiny_run)], ["bench", "sampling"]):
        assert_one_line_error(main([*command, "--device", "tpu"]), capsys.readouterr().err, "'tpu'", "cuda")


def test_checkpoint_with_missing_or_misfitting_state_is_one_line_error(tiny_run, tmp_path, capsys):
    payload = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    (tmp_path / "nogen").mkdir()
    save_payload({k: v for k, v in payload.items() if k != "generator"}, tmp_path / "nogen" / "checkpoint.pt")
    for command in (["inspect", str(tmp_path / "nogen")], ["sample", "--run", str(tmp_path / "nogen"), "--n", "2"]):
        assert_one_line_error(main(command), capsys.readouterr().err, "missing 'generator'")
    config = json.loads(payload["config"])
    config["data"]["vocab_size"] += 10  # weights for 20 tokens, a config for 30
    (tmp_path / "misfit").mkdir()
    save_payload({**payload, "config": json.dumps(config)}, tmp_path / "misfit" / "checkpoint.pt")
    assert_one_line_error(main(["sample", "--run", str(tmp_path / "misfit"), "--n", "2"]), capsys.readouterr().err,
                          "the checkpoint's generator does not fit its config")


def test_resuming_needs_optimizer_state_only_for_an_unfinished_run(tiny_run, tmp_path):
    """A finished run has nothing to resume, so its checkpoint may lack optimizer state
    (scripts/table1_row.py exports it so); an unfinished one may not."""
    from seqgan.checkpoint import load_checkpoint

    payload = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    slim = {k: v for k, v in payload.items() if k != "d_optimizer"}
    save_payload(slim, tmp_path / "done.pt")
    assert load_checkpoint(tmp_path / "done.pt", resume=True)[1]["phase"] == "done"
    save_payload({**slim, "phase": "adversarial"}, tmp_path / "unfinished.pt")
    with pytest.raises(SeqGANError, match="missing 'd_optimizer'"):
        load_checkpoint(tmp_path / "unfinished.pt", resume=True)


def test_corrupt_experiment_record_is_one_line_error(tmp_path, capsys):
    for content in (b"{broken", b"\xff\xfe", b"[1]", b'{"experiment": "table1", "config": [1]}'):
        (tmp_path / "experiment.json").write_bytes(content)
        assert_one_line_error(main(["experiment", "table1", "--preset", "tiny", "--seeds", "1", "--out", str(tmp_path)]),
                              capsys.readouterr().err, "choose another --out")


def test_oracle_file_with_wrong_shapes_is_one_line_error(tmp_path, capsys):
    import numpy as np

    from seqgan.oracle import paper_oracle_path

    with np.load(paper_oracle_path()) as f:
        params = dict(f)
    params["U_f"] = params["U_f"][:20]
    np.savez(tmp_path / "bad.npz", **params)
    (tmp_path / "s.txt").write_text("1 2 3\n")
    assert_one_line_error(main(["score-oracle", str(tmp_path / "s.txt"), "--oracle", str(tmp_path / "bad.npz")]),
                          capsys.readouterr().err, "U_f has shape (20, 32), expected (32, 32)")


def test_a_run_stopped_before_its_first_checkpoint_can_be_started_again(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    stale = '{"phase": "stale", "step": 0}\n'
    (out / "metrics.jsonl").write_text(stale)  # what a run that died early leaves (or one whose checkpoint was deleted)
    (out / "samples.txt").write_text("1 2 3\n")
    (out / "tensorboard").mkdir()  # its events would mix with the new run's
    (out / "tensorboard" / "events").write_text("old")
    assert main(["train", *TINY_FAST, "--out", str(out)]) == 0
    assert (out / "checkpoint.pt").is_file()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["phase"] == "init" and all(r["phase"] != "stale" for r in records)
    aside, = out.glob("replaced-*")  # the earlier files are kept, not overwritten
    assert (aside / "metrics.jsonl").read_text() == stale and (aside / "samples.txt").read_text() == "1 2 3\n"
    assert sorted(p.name for p in aside.iterdir()) == ["metrics.jsonl", "samples.txt", "tensorboard"]
    assert (aside / "tensorboard" / "events").read_text() == "old" and not (out / "tensorboard").exists()


def test_earlier_files_moved_aside_twice_within_a_second_go_to_two_folders(tmp_path, capsys):
    from seqgan.cli import _prepare_run_dir

    for content in ("first", "second"):
        (tmp_path / "metrics.jsonl").write_text(content)
        with contextlib.ExitStack() as lock:
            _prepare_run_dir(str(tmp_path), "tiny", 88, lock)
    kept = sorted((p.name, (p / "metrics.jsonl").read_text()) for p in tmp_path.glob("replaced-*"))
    assert [text for _, text in kept] == ["first", "second"] and kept[1][0] == kept[0][0] + "-2", kept


def test_a_directory_in_use_by_another_process_is_refused(tiny_run, tmp_path, capsys):
    """A second process training, resuming or continuing a directory another seqgan process holds
    stops with one line naming it (and the holder's pid) and writes nothing; once the holder has
    ended, the same command works."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom seqgan.checkpoint import directory_lock\n"
                               "with directory_lock(sys.argv[1]), directory_lock(sys.argv[2]):\n"
                               "    print('locked', flush=True); time.sleep(120)",
                               str(tmp_path / "new"), str(tmp_path / "exp")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert_one_line_error(main(["train", *TINY_FAST, "--out", str(tmp_path / "new")]), capsys.readouterr().err,
                              str(tmp_path / "new"), f"in use by another seqgan process (pid {holder.pid})")
        assert not (tmp_path / "new" / "config.json").exists()
        assert_one_line_error(main(["experiment", "table1", "--preset", "tiny", "--seeds", "1", "--no-progress",
                                    "--out", str(tmp_path / "exp")]), capsys.readouterr().err, "in use")
        assert not (tmp_path / "exp" / "experiment.json").exists()
        held = tmp_path / "held"  # a finished run, resumed while another process holds it
        subprocess.run(["cp", "-r", str(tiny_run), str(held)], check=True)
        payload = torch.load(held / "checkpoint.pt", weights_only=True)
        payload["phase"], payload["step"] = "adversarial", 0
        save_payload(payload, held / "checkpoint.pt")
        with subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom seqgan.checkpoint import directory_lock\n"
                               "with directory_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(120)",
                               str(held)], stdout=subprocess.PIPE, text=True) as second:
            assert second.stdout.readline() == "locked\n"
            assert_one_line_error(main(["train", "--resume", str(held)]), capsys.readouterr().err, "in use")
            second.kill()
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", *TINY_FAST, "--out", str(tmp_path / "new")]) == 0
    assert (tmp_path / "new" / ".lock").read_text().strip().isdigit()
    assert main(["train", "--resume", str(held)]) == 0


def test_a_run_whose_directory_is_replaced_stops_without_writing_into_the_new_one(tmp_path, capsys, monkeypatch):
    """A run directory moved away (or deleted) while its run goes on, and a new run started in its
    place: the old run's next write (here its second MLE epoch's log line) is refused in one line,
    exit 1, and nothing of it lands in the new directory; what it wrote before stays where it went."""
    from seqgan import train as training

    run, moved = tmp_path / "run", tmp_path / "moved"
    real_epoch, epochs = training.mle_epoch, []

    def epoch_then_replace(*args, **kwargs):
        epochs.append(1)
        if len(epochs) == 2:  # between epochs 1 and 2: another run now owns the path
            run.rename(moved)
            run.mkdir()
            (run / ".lock").write_text("4242\n")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "mle_epoch", epoch_then_replace)
    assert main(["train", *TINY_FAST, "--out", str(run)]) == 1
    err = capsys.readouterr().err  # the start line, then the error
    assert err.splitlines()[-1] == (f"seqgan: error: {run} was removed or replaced while this run was writing it; "
                                    "stopped without writing into what stands there now") and "Traceback" not in err
    assert [p.name for p in run.iterdir()] == [".lock"] and (run / ".lock").read_text() == "4242\n"
    logged = [json.loads(line) for line in (moved / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["step"]) for r in logged] == [("init", 0), ("mle", 1)]


def test_a_file_system_without_flock_runs_unlocked_with_a_warning(tmp_path, monkeypatch):
    import errno
    import fcntl

    from seqgan.checkpoint import directory_lock

    def no_flock(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.warns(UserWarning, match=r"cannot lock .* \(No locks available\)"):
        with directory_lock(tmp_path / "d"):
            (tmp_path / "d" / "x").write_text("written")
    assert (tmp_path / "d" / "x").read_text() == "written"


def test_damaged_checkpoint_bytes_are_an_error_not_different_weights(tiny_run, tmp_path, capsys):
    """torch.load reads a checkpoint whose tensor bytes were damaged without complaint; the checksum
    saved with it turns that into a one-line error. Flipping 64 bytes at 20 random places of the
    tensor data: every one is caught. A checkpoint without a checksum (older versions) still loads."""
    import random

    raw = (tiny_run / "checkpoint.pt").read_bytes()
    payload = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    start = raw.index(b"data/0")  # the first tensor record; the archive's index sits at the end
    rng = random.Random(0)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    by_checksum = 0
    for _ in range(20):
        where = rng.randrange(start, len(raw) * 3 // 4)
        flipped = bytearray(raw)
        flipped[where:where + 64] = bytes(b ^ 0xFF for b in flipped[where:where + 64])
        (damaged / "checkpoint.pt").write_bytes(bytes(flipped))
        assert main(["inspect", str(damaged)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("seqgan: error: cannot read checkpoint") and len(err.splitlines()) == 1
        by_checksum += "does not match the checksum saved with it" in err
    assert by_checksum >= 10  # 14 with this seed; the rest hit zip headers (torch's own error)
    (tmp_path / "old").mkdir()
    torch.save({k: v for k, v in payload.items() if k != "sha256"}, tmp_path / "old" / "checkpoint.pt")
    assert main(["inspect", str(tmp_path / "old")]) == 0


def test_config_values_read_as_written():
    """A tuple given with spaces ("1 2") is (1, 2), not (12,); device names are canonical (torch
    itself refuses cuda:00, which passed and then ended in a traceback on a GPU machine); a corpus
    run's filters are checked once the corpus has set seq_len (they were checked against the
    default 20); a huge pg_bleu.n fails at once (vocab_size ** n was computed in full)."""
    import time

    from seqgan.config import SeqGANError, is_device_name, preset, set_field

    cfg = preset("quick")
    for text in ("1 2", "1, 2", "1,2", " 1,  2 "):
        set_field(cfg, "discriminator.filter_sizes", text)
        assert cfg.discriminator.filter_sizes == (1, 2), text
    assert [is_device_name(n) for n in ("cuda:0", "cuda:10", "cuda:00", "cuda:01", "cuda:-1")] == \
        [True, True, False, False, False]
    set_field(cfg, "data.corpus", "poems")
    set_field(cfg, "discriminator.filter_sizes", "1,30")
    set_field(cfg, "discriminator.num_filters", "4,4")
    cfg.validate()
    cfg = preset("quick")
    set_field(cfg, "schedule.method", "pg_bleu")
    set_field(cfg, "pg_bleu.n", "100000000")
    start = time.perf_counter()
    with pytest.raises(SeqGANError, match="pg_bleu.n = 100000000 is too large"):
        cfg.validate()
    assert time.perf_counter() - start < 1.0


def test_output_into_a_closed_pipe_is_quiet(tiny_run):
    """`seqgan sample … | head -1`: the first line, then nothing on stderr (it said 'error: Broken
    pipe'), exit 141 as a Unix tool killed by SIGPIPE."""
    script = (f"{sys.executable} -m seqgan sample --run {tiny_run} --n 20000 | head -1; "
              "echo \"rc=${PIPESTATUS[0]}\" >&2")
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert len(p.stdout.splitlines()) == 1 and p.stderr.strip().splitlines()[-1] == "rc=141", p.stderr
    assert "error" not in p.stderr and "Traceback" not in p.stderr, p.stderr
