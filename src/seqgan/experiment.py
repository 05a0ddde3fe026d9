"""Experiments: many runs, one command, results as JSON + markdown + PNG.

    table1      the paper's Table 1: random, mle, scheduled_sampling, pg_bleu, seqgan × seeds
    strategies  the paper's Figure 3: SeqGAN with four (g-steps, d-steps, k) settings × seeds
    realdata    MLE vs SeqGAN on a corpus (data.corpus): BLEU and Self-BLEU × seeds

Every run is an ordinary run directory (DIR/runs/NAME-seedS, resumable with `seqgan train
--resume`). Runs that share a pre-training share it for real: for each seed one run does the
MLE pre-training (and for `strategies` the discriminator pre-training) and every method continues
from a copy of its checkpoint — on CPU bit-identical to running each method from scratch (test).
Re-running the same command continues an interrupted experiment; finished runs are skipped. Runs
go row by row (every seed of a method, then the next method), and NAME.json, NAME.md and the plots
are rewritten after each finished run ("complete": false until all are in), so a long experiment
shows its finished rows while the rest trains.

Each run also gets a temperature sweep of its final generator (Caccia et al., "Language GANs
Falling Short"): NLL-oracle of samples drawn at temperature τ against NLL-test of the held-out
oracle samples under the same tempered policy — the quality–diversity picture. On a corpus the
sweep measures BLEU (quality, against the test split) against Self-BLEU (lack of diversity).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import (CHECKPOINT_NAME, EXPERIMENT_RECORD_NAME, METRICS_NAME, SAMPLES_NAME, STATE_KEYS,
                         directory_lock, load_checkpoint, restore, save_figure, state_sha256, write_text_atomic)
from .config import Config, SeqGANError, check_seed, differing_fields, set_field, too_large_message
from .bleu import bleu, self_bleu
from .data import VOCAB_NAME, Vocab, check_run_corpus, pad_after_eos, split_lines
from .metrics import nll_oracle, nll_test
from .oracle import oracle_and_test_set
from .train import (PROGRESS_LINE_SECONDS, Interrupted, build_generator, keep_freed_memory, latest_nll,
                    read_metrics, resolve_corpus, resolve_device, train, use_compile)

PAPER_TABLE1 = {"random": 10.310, "mle": 9.038, "scheduled_sampling": 8.985, "pg_bleu": 8.946, "seqgan": 8.736}
LABELS = {"random": "Random", "mle": "MLE", "scheduled_sampling": "Scheduled Sampling", "pg_bleu": "PG-BLEU",
          "seqgan": "SeqGAN"}
TEMPERATURES = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4)
TEMPERATURES_NAME = "temperatures.json"  # in each run directory
SAMPLES_KEPT = 2_000  # generated sequences per run kept in DIR/samples (the run dir keeps num_eval)


@dataclass
class Variant:
    """One row of an experiment: a name, config edits, and which shared pre-training it continues."""
    name: str
    edits: dict = field(default_factory=dict)
    after: str | None = "mle"  # "mle" | "d_pretrain" | None (trains from scratch)
    paper: float | None = None  # the paper's NLL-oracle for this row, if it has one


def table1_variants() -> list[Variant]:
    """The paper's rows, in its order; all but random continue one shared MLE pre-training."""
    return [Variant(m, {"schedule.method": m}, None if m == "random" else "mle", PAPER_TABLE1[m]) for m in PAPER_TABLE1]


# The paper's Figure 3, panels (a)-(d): (g-steps, d-steps, k).
STRATEGIES = {"a": (100, 1, 10), "b": (30, 1, 30), "c": (1, 1, 10), "d": (1, 5, 3)}


def strategy_variants() -> list[Variant]:
    return [Variant(f"{panel}_g{g}_d{d}_k{k}", {"schedule.g_steps": g, "schedule.d_steps": d, "schedule.d_epochs": k},
                    "d_pretrain") for panel, (g, d, k) in STRATEGIES.items()]


# The paper's real-data results (Tables 2-4): the metric and its MLE / SeqGAN values, by corpus.
PAPER_REALDATA = {"poems": ("bleu2", {"mle": 0.667, "seqgan": 0.739})}


def realdata_variants(corpus: str = "") -> list[Variant]:
    paper = PAPER_REALDATA.get(corpus, ("", {}))[1]
    return [Variant(m, {"schedule.method": m}, "mle", paper.get(m)) for m in ("mle", "seqgan")]


EXPERIMENTS = {"table1": table1_variants, "strategies": strategy_variants, "realdata": realdata_variants}


@dataclass
class Measures:
    """What an experiment reports: table columns (label, key), the quality–diversity plot's axes,
    and the metrics-log key of its learning curves."""
    columns: list[tuple[str, str]]
    x: tuple[str, str]  # (key, axis label)
    y: tuple[str, str]
    curve: str


SYNTHETIC = Measures([("NLL-oracle", "nll_oracle"), ("NLL-test", "nll_test")],
                     ("nll_test", "NLL-test (held-out oracle samples; lower = more coverage)"),
                     ("nll_oracle", "NLL-oracle (generated samples; lower = higher quality)"), "nll_oracle")
CORPUS = Measures([("BLEU-2", "bleu2"), ("Self-BLEU-2", "self_bleu2"), ("BLEU-4", "bleu4"),
                   ("Self-BLEU-4", "self_bleu4"), ("NLL-test", "nll_test")],
                  ("self_bleu2", "Self-BLEU-2 of the samples (lower = more diverse)"),
                  ("bleu2", "BLEU-2 against the test split (higher = higher quality)"), "nll_test")


def measures(cfg: Config) -> Measures:
    return CORPUS if cfg.data.corpus else SYNTHETIC


def _say(message: str) -> None:
    print(f"seqgan experiment: {message}", file=sys.stderr, flush=True)


def _with_edits(base: Config, edits: dict) -> Config:
    cfg = Config.from_dict(base.to_dict())
    for key, value in edits.items():
        set_field(cfg, key, value)
    cfg.validate()
    return cfg


def _finished(run_dir: Path) -> bool:
    path = run_dir / CHECKPOINT_NAME
    return path.is_file() and load_checkpoint(path)[1]["phase"] == "done"


def _run(cfg: Config, run_dir: Path, progress: bool, should_stop, start_from: Path | None = None,
         start_phase: str = "mle") -> None:
    """Train ``run_dir`` to the end: resume its own checkpoint, else continue from the finished
    pre-training run ``start_from`` (its end state relabelled as the end of ``start_phase``)."""
    own = run_dir / CHECKPOINT_NAME
    if own.is_file():
        saved, state = load_checkpoint(own, resume=True)
        differ = differing_fields(saved, cfg, execution=False)  # e.g. a run imported under another preset
        if differ:
            raise SeqGANError(f"{run_dir} holds a run of another config than this one (differs in {differ}); "
                              "it is not continued")
        if state["phase"] != "done":
            train(cfg, run_dir, progress, resume=state, should_stop=should_stop, report_every=PROGRESS_LINE_SECONDS)
        return
    if start_from is None:
        train(cfg, run_dir, progress, should_stop=should_stop, report_every=PROGRESS_LINE_SECONDS)
        return
    _, state = load_checkpoint(start_from / CHECKPOINT_NAME, resume=True)
    missing = [key for key in STATE_KEYS if key not in state]  # a finished run may have been saved without them
    if missing:
        raise SeqGANError(f"{start_from} cannot be continued: its checkpoint holds no {missing[0]!r} (a finished "
                          "run exported without optimizer state); train that pre-training again")
    s = cfg.schedule
    state["phase"], state["step"] = start_phase, s.mle_epochs if start_phase == "mle" else s.d_pretrain_rounds
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(start_from / METRICS_NAME, run_dir / METRICS_NAME)
    if (start_from / VOCAB_NAME).is_file():  # a corpus run continues its pre-training's vocabulary
        shutil.copyfile(start_from / VOCAB_NAME, run_dir / VOCAB_NAME)
    train(cfg, run_dir, progress, resume=state, should_stop=should_stop, report_every=PROGRESS_LINE_SECONDS)


def _pretraining_config(cfg: Config, through: str) -> Config:
    """The shared pre-training run: the same config, stopped after MLE or D pre-training (and
    compiling the discriminator or not as the whole schedule would, `use_compile`)."""
    edits = {"schedule.adv_steps": 0, "schedule.method": "seqgan" if through == "d_pretrain" else "mle",
             "run.compile": "on" if use_compile(cfg) else "off"}
    if through == "mle":
        edits["schedule.d_pretrain_rounds"] = 0
    return _with_edits(cfg, edits)


@torch.no_grad()
def temperature_sweep(cfg: Config, run_dir: Path, temperatures=TEMPERATURES) -> list[dict]:
    """NLL-oracle and NLL-test of the run's final generator at each temperature, cached in
    RUN_DIR/temperatures.json with the sha256 of the generator it measured (a cache of another
    generator, e.g. of a run trained again, is measured again; one from before the sha256 was
    kept is taken as is). Samples are drawn with torch seeded from run.seed."""
    cache = run_dir / TEMPERATURES_NAME
    weights = load_checkpoint(run_dir / CHECKPOINT_NAME)[1]["generator"]
    sha = state_sha256(weights)
    held = _read_json(cache) if cache.is_file() else None
    if isinstance(held, list):  # written before the generator's sha256 was kept
        held = {"rows": held}
    rows = held.get("rows") if isinstance(held, dict) else None
    if isinstance(rows, list) and all(isinstance(r, dict) for r in rows) \
            and [r.get("temperature") for r in rows] == list(temperatures) \
            and held.get("generator_sha256", sha) == sha:
        return rows  # else (absent, another sweep or generator, or unreadable) measured again
    corpus = None
    if cfg.data.corpus:  # sizes fitted to the corpus as `train` fitted them (a re-run's row config is not)
        cfg = Config.from_dict(cfg.to_dict())
        corpus = resolve_corpus(cfg)
    device = resolve_device(cfg.run.device)
    d, chunk = cfg.data, cfg.run.sample_batch
    generator = build_generator(cfg).to(device)
    restore(generator, weights, "generator")
    generator.eval()
    torch.manual_seed(cfg.run.seed)
    if corpus is not None:
        rows = _corpus_sweep(cfg, corpus, generator, run_dir, temperatures)
        write_text_atomic(cache, json.dumps({"generator_sha256": sha, "rows": rows}, indent=1) + "\n")
        return rows
    oracle, test = oracle_and_test_set(d, device, chunk)
    rows = []
    for tau in temperatures:
        samples = generator.sample(cfg.schedule.num_eval, temperature=tau, chunk=chunk)
        rows.append({"temperature": tau, "nll_oracle": nll_oracle(oracle, samples, chunk),
                     "nll_test": nll_test(generator, test, chunk, temperature=tau)})
    write_text_atomic(cache, json.dumps({"generator_sha256": sha, "rows": rows}, indent=1) + "\n")
    return rows


def _corpus_sweep(cfg: Config, corpus, generator, run_dir: Path, temperatures) -> list[dict]:
    """BLEU-2..4 of SAMPLES_KEPT samples against the test split, their Self-BLEU-2..4, and NLL-test,
    at each temperature."""
    vocab = Vocab.load(run_dir / VOCAB_NAME, cfg.data.vocab_size)
    check_run_corpus(corpus, run_dir, cfg.data.corpus, vocab)
    device = generator.out.weight.device
    test = corpus.test.to(device)
    references = [vocab.decode(row) for row in corpus.test.tolist()]
    rows = []
    for tau in temperatures:
        samples = pad_after_eos(generator.sample(SAMPLES_KEPT, temperature=tau, chunk=cfg.run.sample_batch))
        hypotheses = [vocab.decode(row) for row in samples.tolist()]
        row = {"temperature": tau}
        for n in (2, 3, 4):
            row[f"bleu{n}"] = bleu(references, hypotheses, n)
            row[f"self_bleu{n}"] = self_bleu(hypotheses, n)
        row["nll_test"] = nll_test(generator, test, cfg.run.sample_batch, temperature=tau, masked=True)
        rows.append(row)
    return rows


def run_experiment(name: str, base: Config, seeds: int, out: Path, progress: bool = True,
                   should_stop=lambda: False, jobs: int = 1) -> dict:
    """Run (or continue) experiment ``name`` with ``seeds`` seeds from run.seed upward; write
    NAME.json, NAME.md and the plots into ``out`` and return the JSON's content. ``jobs`` > 1 trains
    that many runs at once in worker processes (`_run_in_parallel`). Without ``progress`` bars each
    run prints `train.ProgressLines` (an experiment is long work)."""
    if name not in EXPERIMENTS:
        raise SeqGANError(f"unknown experiment {name!r} (choose from: {', '.join(EXPERIMENTS)})")
    if jobs < 1:
        raise SeqGANError(f"jobs must be at least 1, got {jobs}")
    if seeds < 1:
        raise SeqGANError(f"seeds must be at least 1, got {seeds}")
    plt = _pyplot()  # fail now, not after hours of training
    out = Path(out)
    check_seed("the last seed (run.seed + seeds - 1)", base.run.seed + seeds - 1)
    if (name == "realdata") != bool(base.data.corpus):
        raise SeqGANError("the realdata experiment needs a corpus (--dataset), the others the synthetic task")
    with directory_lock(out):  # one process per experiment directory
        _check_experiment_dir(out, name, base)
        return _run_rows(name, base, seeds, out, progress, should_stop, jobs, plt)


def _run_rows(name: str, base: Config, seeds: int, out: Path, progress: bool, should_stop, jobs: int, plt) -> dict:
    variants = realdata_variants(base.data.corpus) if name == "realdata" else EXPERIMENTS[name]()
    m = measures(base)
    rows = [_Row(variant, base.run.seed + i, out, _with_edits(base, {"run.seed": base.run.seed + i}))
            for variant in variants for i in range(seeds)]  # a row's seeds one after another
    collect = lambda row: _collect(row.cfg, row.variant, row.seed, row.run_dir, out, m)
    write = lambda done: _write_results(plt, name, base, seeds, [done[i] for i in sorted(done)], variants, m, out,
                                        len(done) == len(rows))
    # Runs finished in an earlier call are collected first, so the results hold all of them from the
    # start, also those that come after a run still to train (in table order, or with --jobs).
    done = {i: collect(row) for i, row in enumerate(rows) if _finished(row.run_dir)}
    result = write(done) if done else None
    if jobs > 1:
        return _run_in_parallel(rows, jobs, collect, write, should_stop, done) or result
    pretrained: set[Path] = set()  # shared pre-training runs known to be finished (each checked once)
    for i, row in enumerate(rows):
        if i in done:
            continue
        if row.start not in pretrained:
            _stop_between_runs(should_stop)
            row.pretrain(progress, should_stop)
            pretrained.add(row.start)
        _stop_between_runs(should_stop)
        _say(f"[{len(done) + 1}/{len(rows)}] {row.variant.name}, seed {row.seed}")
        _run(row.cfg, row.run_dir, progress, should_stop, row.start, row.variant.after or "mle")
        done[i] = collect(row)
        result = write(done)
    return result


def _stop_between_runs(should_stop) -> None:
    """A stop requested while a run finished (its last step, its sweep) ends the experiment before
    the next run trains a step (each run polls only after a step)."""
    if should_stop():
        raise Interrupted("stopped between two runs; every finished run is saved")


class _Row:
    """One run of an experiment: its config, directory, and the shared pre-training it continues
    (``start``, None for a run from scratch or one that has its own checkpoint already)."""

    def __init__(self, variant: Variant, seed: int, out: Path, seeded: Config):
        self.variant, self.seed = variant, seed
        self.cfg = _with_edits(seeded, variant.edits)
        self.run_dir = out / "runs" / f"{variant.name}-seed{seed}"
        self.start = self.pretraining = None
        if variant.after is not None and not (self.run_dir / CHECKPOINT_NAME).is_file():
            self.start = out / "runs" / f"pretrain-{variant.after}-seed{seed}"
            self.pretraining = _pretraining_config(seeded, variant.after)

    def pretrain(self, progress: bool, should_stop) -> None:
        """Train the shared pre-training this run continues, unless it has finished."""
        if self.start is not None and not _finished(self.start):
            _say(f"seed {self.seed}: shared pre-training through {self.variant.after}")
            _run(self.pretraining, self.start, progress, should_stop)


_INTERRUPTED = 3  # a worker's exit code after a requested stop (its checkpoint is written)
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _run_in_parallel(rows: list[_Row], jobs: int, collect, write, should_stop,
                     finished: dict[int, dict]) -> dict | None:
    """Train up to ``jobs`` runs at once, each in its own process with 1/jobs of torch's threads;
    a run starts once the shared pre-training it continues has finished. Results are written as
    runs finish, in table order. Workers ignore SIGINT / SIGTERM (a terminal's Ctrl-C or a job
    scheduler's SIGTERM reaches the whole process group): this process turns the first one into a
    stop request that every worker obeys after its current step, checkpointing; a second Ctrl-C
    kills them. A failed run stops the others the same way, then its error is raised. Workers stop
    by themselves if this process dies, train without progress bars and take the process-wide CPU
    settings `seqgan` takes (`train.keep_freed_memory`). ``finished``: index in rows -> collected
    run, for the runs finished before this call (not trained again); the runs collected here join it.
    Returns the last result written here (None: every run was finished already)."""
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    stop, errors = context.Event(), context.SimpleQueue()
    threads = max(1, torch.get_num_threads() // jobs)
    starts = {row.start: row.pretraining for row in rows if row.start is not None}
    waiting = {start: cfg for start, cfg in starts.items() if not _finished(start)}
    # Work in table order, each unfinished pre-training (row None) before the first run that needs it.
    todo: list[tuple[Config, Path, _Row | None]] = []
    for i, row in enumerate(rows):
        if i in finished:
            continue
        if row.start in waiting and all(path != row.start for _, path, _ in todo):
            todo.append((waiting[row.start], row.start, None))
        todo.append((row.cfg, row.run_dir, row))
    running: dict = {}  # process sentinel -> (process, run dir, row or None)
    failure, result = None, None

    def collected(row: _Row) -> dict:
        finished[rows.index(row)] = collect(row)
        return write(finished)

    def launch(cfg: Config, run_dir: Path, row: _Row | None) -> None:
        _say(f"started {run_dir.name} ({threads} CPU thread{'s' * (threads > 1)})")
        process = context.Process(target=_worker, name=run_dir.name, daemon=True, args=(
            cfg, run_dir, row and row.start, row and (row.variant.after or "mle"), threads, stop, errors, os.getpid()))
        blocking = hasattr(signal, "pthread_sigmask")  # POSIX: the worker inherits the blocked signals
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS) if blocking else None
        try:  # blocked until the worker ignores them: a signal while it imports torch would kill it
            process.start()
        finally:
            if blocking:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        running[process.sentinel] = (process, run_dir, row)

    try:
        try:
            while running or (todo and not stop.is_set()):
                if (failure or should_stop()) and not stop.is_set():
                    stop.set()
                while todo and not stop.is_set() and len(running) < jobs:
                    task = next((t for t in todo if t[2] is None or t[2].start not in waiting), None)
                    if task is None:  # every waiting task needs a pre-training that is still running
                        break
                    todo.remove(task)
                    launch(*task)
                for sentinel in multiprocessing.connection.wait(list(running), timeout=0.5):
                    process, run_dir, row = running.pop(sentinel)
                    process.join()
                    if process.exitcode == 0 and row is None:
                        del waiting[run_dir]
                        _say(f"finished {run_dir.name}")
                    elif process.exitcode == 0:
                        result = collected(row)
                        _say(f"[{len(finished)}/{len(rows)}] finished {run_dir.name}")
                    elif not errors.empty() or not stop.is_set():  # failed, not stopped on request
                        message = errors.get() if not errors.empty() else \
                            f"{run_dir.name}: its worker process ended with exit code {process.exitcode}"
                        if failure is None:
                            failure = message
                            _say(f"{message}; stopping the other runs after their current step")
        except KeyboardInterrupt:  # a second Ctrl-C: the workers are killed below
            raise
        except BaseException:  # an error here (e.g. writing the results): let the workers checkpoint first
            stop.set()
            for process, _, _ in running.values():
                process.join()
            running.clear()
            raise
    finally:
        for process, _, _ in running.values():
            process.kill()
    if failure:
        raise SeqGANError(failure)
    if stop.is_set() and len(finished) < len(rows):
        raise Interrupted("stopped; every unfinished run keeps its checkpoint")
    return result


def _worker(cfg: Config, run_dir: Path, start: Path | None, start_phase: str | None, threads: int,
            stop, errors, parent: int) -> None:
    """One run in a worker process of `_run_in_parallel`: a shared pre-training (``start_phase``
    None) or an experiment row, which also measures its temperature sweep (the parent reads the
    cache). It stops (checkpointing) when ``stop`` is set or its parent process has gone."""
    for sig in _STOP_SIGNALS:  # the parent turns them into ``stop``
        signal.signal(sig, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    torch.set_num_threads(threads)
    keep_freed_memory()
    try:
        _run(cfg, run_dir, False, lambda: stop.is_set() or os.getppid() != parent, start, start_phase or "mle")
        if start_phase is not None:
            temperature_sweep(cfg, run_dir)
    except Interrupted:
        sys.exit(_INTERRUPTED)
    except (SeqGANError, OSError) as e:
        errors.put(f"{run_dir.name}: {e}")
        sys.exit(1)
    except (MemoryError, RuntimeError) as e:  # sizes too large: one line, as `seqgan` without --jobs
        message = too_large_message(e)
        if message is None:
            raise
        errors.put(f"{run_dir.name}: {message}")
        sys.exit(1)


def _write_results(plt, name: str, base: Config, seeds: int, runs: list[dict], variants: list[Variant],
                   m: Measures, out: Path, complete: bool) -> dict:
    """NAME.json, NAME.md and the plots from the runs finished so far (rewritten after each run, so
    a long experiment shows its finished rows; ``complete`` says whether every run is in)."""
    result = {"experiment": name, "seeds": seeds, "complete": complete, "config": base.to_dict(), "runs": runs,
              "summary": _summarise(runs, variants, m)}
    write_text_atomic(out / f"{name}.json", json.dumps(result, indent=1) + "\n")
    write_text_atomic(out / f"{name}.md", markdown_table(result, variants, m))
    _plot_learning_curves(plt, runs, variants, out / f"{name}_learning_curves.png", base, m)
    _plot_quality_diversity(plt, result["summary"], variants, out / f"{name}_quality_diversity.png", m)
    return result


def _read_json(path: Path):
    """The JSON content of ``path``, or None when it is not valid UTF-8 JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def read_result(path: Path) -> dict:
    """NAME.json as `_write_results` writes it (at least its runs and seeds); else one line."""
    result = _read_json(path)
    if not (isinstance(result, dict) and isinstance(result.get("runs"), list) and isinstance(result.get("seeds"), int)):
        raise SeqGANError(f"{path} is not an experiment result (unreadable or not as written)")
    return result


def config_in(held, path: Path) -> Config:
    """The config in ``held``, the parsed content of ``path`` (experiment.json or NAME.json); one
    line when it holds none that reads."""
    try:
        return Config.from_dict(held["config"])
    except (AttributeError, TypeError, ValueError, KeyError, SeqGANError):
        raise SeqGANError(f"{path} holds no readable config") from None


def record_config(out: Path, name: str | None = None) -> Config:
    """The config DIR/experiment.json records; with ``name``, only from a record of that experiment."""
    record = _read_json(out / EXPERIMENT_RECORD_NAME)
    cfg = config_in(record, out / EXPERIMENT_RECORD_NAME)
    if name is not None and record.get("experiment") != name:
        raise SeqGANError(f"{out / EXPERIMENT_RECORD_NAME} records a {record.get('experiment')} experiment, not {name}")
    return cfg


def experiment_status(out: Path) -> dict:
    """What an experiment directory holds, for `seqgan inspect DIR`: the experiment, how many of its
    runs NAME.json has (and of how many), and every run in table order (shared pre-trainings first)
    with its checkpoint's phase and step, the phase's last step, its latest NLL and elapsed time
    (``phase`` None: no checkpoint yet; ``started`` False: no directory yet; ``kept`` False: in
    NAME.json, its directory gone, as in a committed copy; ``error``: a file of the run could not be
    read — the other runs are still shown)."""
    out = Path(out)
    record = _read_json(out / EXPERIMENT_RECORD_NAME)
    if not isinstance(record, dict) or record.get("experiment") not in EXPERIMENTS:
        raise SeqGANError(f"{out / EXPERIMENT_RECORD_NAME} is not an experiment record")
    name = record["experiment"]
    result = read_result(out / f"{name}.json") if (out / f"{name}.json").is_file() else None
    names = [v.name for v in (realdata_variants() if name == "realdata" else EXPERIMENTS[name]())]
    expected = []
    if result is not None:
        first = record_config(out).run.seed
        expected = [f"{n}-seed{first + i}" for n in names for i in range(result["seeds"])]

    def order(run: str):
        variant, _, seed = run.rpartition("-seed")
        return (0 if variant.startswith("pretrain-") else 1, names.index(variant) if variant in names else len(names),
                int(seed) if seed.isdigit() else 0, run)

    recorded = {f"{r['method']}-seed{r['seed']}": r for r in (result["runs"] if result else [])
                if isinstance(r, dict) and isinstance(r.get("method"), str) and type(r.get("seed")) is int}

    def absent(run: str) -> dict:
        row = {"run": run, "started": False, "phase": None, "step": None, "last_step": None, "elapsed_s": None}
        if run in recorded:  # finished, its directory not kept (e.g. a committed copy of the results)
            elapsed = recorded[run].get("elapsed_s")
            row.update(started=True, phase="done", kept=False,
                       elapsed_s=elapsed if type(elapsed) in (int, float) else None)
            found = latest_nll([recorded[run]])
            if found is not None:
                row.update(metric=found[0], value=found[1][found[0]] if math.isfinite(found[1][found[0]]) else None,
                           at=f"{name}.json")
        return row

    present = {p.name for p in (out / "runs").glob("*") if p.is_dir()}
    runs = [_run_status(out / "runs" / run) if run in present else absent(run)
            for run in sorted(present | set(expected), key=order)]
    return {"experiment": name, "out": str(out), "finished": len(result["runs"]) if result else 0,
            "total": len(expected) or None, "complete": bool(result and result.get("complete")), "runs": runs}


def _run_status(run_dir: Path) -> dict:
    row = {"run": run_dir.name, "started": True, "phase": None, "step": None, "last_step": None, "elapsed_s": None}
    try:  # a line being written as we read is not an error here
        records = read_metrics(run_dir / METRICS_NAME, required=False)
    except SeqGANError:
        lines = (run_dir / METRICS_NAME).read_text(encoding="utf-8", errors="replace").splitlines()
        records = [r for r in map(_json_or_none, lines) if isinstance(r, dict)]
    elapsed = records[-1].get("elapsed_s") if records else None
    if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool):  # a damaged log may hold anything
        row["elapsed_s"] = elapsed
    found = latest_nll(records)
    if found is not None:
        key, r = found
        row.update(metric=key, value=r[key] if math.isfinite(r[key]) else None, at=f"{r.get('phase')} {r.get('step')}")
    if (run_dir / CHECKPOINT_NAME).is_file():
        try:
            cfg, payload = load_checkpoint(run_dir / CHECKPOINT_NAME)
        except SeqGANError as e:
            row["error"] = str(e)
            return row
        s = cfg.schedule
        row.update(phase=payload["phase"], step=payload["step"],
                   last_step={"mle": s.mle_epochs,
                              "d_pretrain": s.d_pretrain_rounds}.get(payload["phase"], s.adv_steps))
    return row


def _json_or_none(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def _check_experiment_dir(out: Path, name: str, base: Config) -> None:
    """DIR/experiment.json records what DIR holds; continuing needs the same experiment and config,
    apart from where it runs (`EXECUTION_FIELDS`)."""
    record = {"experiment": name, "config": base.to_dict()}
    path = out / EXPERIMENT_RECORD_NAME
    if path.is_file():
        held = _read_json(path)
        if not isinstance(held, dict):
            raise SeqGANError(f"{path} is not an experiment record (unreadable or not a JSON object); "
                              "choose another --out")
        try:  # through the current Config, so fields added since it was written take their defaults
            held_config = Config.from_dict(held.get("config", {}))
        except (SeqGANError, AttributeError, TypeError, ValueError) as e:  # not a config this seqgan reads
            reason = e if isinstance(e, SeqGANError) else "not a config"
            raise SeqGANError(f"{path} holds a config this seqgan cannot read ({reason}); choose another --out") \
                from None
        if held.get("experiment") != name:
            raise SeqGANError(f"{out} holds another experiment ({held.get('experiment')}); choose another --out")
        differ = differing_fields(held_config, base, execution=False)
        if differ:
            raise SeqGANError(f"{out} holds this experiment with another config (differs in {differ}); run it "
                              "with the same preset and --set, or choose another --out")
        moved = differing_fields(held_config, base)  # where it runs (EXECUTION_FIELDS) may change, e.g. CPU -> GPU
        _say(f"continuing the experiment in {out}" + (f" (with another {moved} than it was started with)" if moved else ""))
        return
    if (out / CHECKPOINT_NAME).is_file():
        raise SeqGANError(f"{out} holds a `seqgan train` run (its {CHECKPOINT_NAME}), not an experiment; "
                          "choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    except OSError as e:
        raise SeqGANError(f"cannot write to {out}: {e.strerror or e}") from None


def _collect(cfg: Config, variant: Variant, seed: int, run_dir: Path, out: Path, m: Measures) -> dict:
    records = [r for r in read_metrics(run_dir / METRICS_NAME) if m.curve in r]
    final = records[-1]
    samples = out / "samples" / f"{variant.name}-seed{seed}.txt"
    samples.parent.mkdir(exist_ok=True)
    lines = split_lines((run_dir / SAMPLES_NAME).read_text(encoding="utf-8"))[:SAMPLES_KEPT]  # may hold \x85 ...
    write_text_atomic(samples, "\n".join(lines) + "\n")
    curve = [{"x": _curve_x(r, cfg), m.curve: r[m.curve]} for r in records if r["phase"] != "d_pretrain"]
    sweep = temperature_sweep(cfg, run_dir)
    # Reported numbers: the final evaluation's where the log has them, else the sweep's at τ = 1.
    at_one = next((t for t in sweep if t["temperature"] == 1.0), {})
    values = {key: final[key] if key in final else at_one[key] for _, key in m.columns}
    distinct = len(set(lines)) / max(len(lines), 1)  # a collapsed generator repeats itself: near 0
    return {"method": variant.name, "seed": seed, **values, "distinct": distinct,
            "samples": str(samples.relative_to(out)),
            "run": str(run_dir.relative_to(out)), "elapsed_s": final["elapsed_s"], "temperatures": sweep,
            "curve": curve}


def _curve_x(record: dict, cfg: Config) -> int:
    """Figure 2's x axis: MLE epochs, then adversarial steps counted on from the end of MLE."""
    return record["step"] + (cfg.schedule.mle_epochs if record["phase"] == "adversarial" else 0)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _summarise(runs: list[dict], variants: list[Variant], m: Measures) -> dict:
    summary = {}
    for v in variants:
        mine = [r for r in runs if r["method"] == v.name]
        if not mine:
            continue
        row = {"n": len(mine), "paper": v.paper}
        for key in [key for _, key in m.columns] + ["distinct"]:
            row[key], row[key + "_std"] = _mean_std([r[key] for r in mine])
        row["temperatures"] = [
            {"temperature": t["temperature"],
             **{key: statistics.fmean(r["temperatures"][i][key] for r in mine) for key in t if key != "temperature"}}
            for i, t in enumerate(mine[0]["temperatures"])]
        summary[v.name] = row
    return summary


def value_at(sweep: list[dict], target: float, x: str = "nll_test", y: str = "nll_oracle") -> float | None:
    """``y`` where a method's temperature sweep reaches ``x`` = ``target``: linear interpolation
    between neighbouring temperatures; where the sweep crosses ``target`` more than once (it need
    not be monotone), the crossing nearest temperature 1; None where it never reaches it. Default:
    NLL-oracle at an NLL-test."""
    points = [(p["temperature"], p[x], p[y]) for p in sorted(sweep, key=lambda p: p["temperature"])]
    crossings = []  # (distance of the crossing's temperature from 1, y there)
    for (t0, x0, y0), (t1, x1, y1) in zip(points, points[1:]):
        if min(x0, x1) <= target <= max(x0, x1):
            f = 0.0 if x1 == x0 else (target - x0) / (x1 - x0)
            crossings.append((abs(t0 + f * (t1 - t0) - 1.0), y0 + f * (y1 - y0)))
    return min(crossings)[1] if crossings else None


def markdown_table(result: dict, variants: list[Variant], m: Measures = SYNTHETIC) -> str:
    summary, seeds = result["summary"], result["seeds"]
    (x, _), (y, _) = m.x, m.y
    x_name = next(label for label, key in m.columns if key == x)
    y_name = next(label for label, key in m.columns if key == y)
    ref_key = "mle" if "mle" in summary else next(iter(summary))
    target = summary[ref_key][x]
    partial = "" if result.get("complete", True) else (
        f"PARTIAL: {len(result['runs'])} runs finished so far; n = seeds per row: "
        + ", ".join(f"{LABELS.get(k, k)} {row['n']}" for k, row in summary.items()) + ". ")
    lines = [f"{partial}Mean ± std over {seeds} seed(s) at temperature 1. {y_name} at equal {x_name}: "
             f"where the method's temperature sweep reaches {x_name} {target:.3f} "
             f"({LABELS.get(ref_key, ref_key)} at temperature 1; interpolated, – outside the sweep). Distinct: "
             "different sequences among a run's kept samples, as a share of them (1.000: no two alike; a "
             "collapsed generator repeats itself, which NLL-oracle rewards)", "",
             "| method | " + " | ".join(label for label, _ in m.columns)
             + f" | paper {y_name} | {y_name} at equal {x_name} | distinct samples |",
             "|---|" + "---|" * (len(m.columns) + 3)]
    for v in variants:
        row = summary.get(v.name)
        if row:
            paper = f"{v.paper:.3f}" if v.paper is not None else "–"
            matched = value_at(row["temperatures"], target, x, y)
            cells = " | ".join(f"{row[key]:.3f} ± {row[key + '_std']:.3f}" for _, key in m.columns)
            lines.append(f"| {LABELS.get(v.name, v.name)} | {cells} | {paper} | "
                         f"{'–' if matched is None else f'{matched:.3f}'} | {row['distinct']:.3f} |")
    temps = [t["temperature"] for t in next(iter(summary.values()))["temperatures"]]
    lines += ["", f"Temperature sweep: {y_name} / {x_name} (mean over seeds)", "",
              "| method | " + " | ".join(f"τ={t:g}" for t in temps) + " |", "|---|" + "---|" * len(temps)]
    for v in variants:
        row = summary.get(v.name)
        if row:
            cells = " | ".join(f"{t[y]:.3f} / {t[x]:.3f}" for t in row["temperatures"])
            lines.append(f"| {LABELS.get(v.name, v.name)} | {cells} |")
    return "\n".join(lines) + "\n"


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SeqGANError("seqgan experiment writes PNG plots and needs matplotlib: "
                          "pip install 'seqgan[plot]'") from None
    return plt


def _plot_learning_curves(plt, runs: list[dict], variants: list[Variant], path: Path, base: Config,
                          m: Measures = SYNTHETIC) -> None:
    """NLL-oracle (NLL-test on a corpus) against Figure 2's x axis, mean over seeds, one line per variant."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, v in enumerate(variants):  # colour C{i}: the same method has the same colour in every plot
        curves = [r["curve"] for r in runs if r["method"] == v.name]
        if not curves:
            continue
        xs = sorted(set.intersection(*(set(p["x"] for p in c) for c in curves)))
        ys = [statistics.fmean(p[m.curve] for c in curves for p in c if p["x"] == x) for x in xs]
        if len(xs) == 1:  # random: one evaluation, drawn across the chart
            ax.axhline(ys[0], ls=":", color="grey", label=f"{LABELS.get(v.name, v.name)} ({ys[0]:.2f})")
        else:
            ax.plot(xs, ys, marker="o", ms=2.5, lw=1.2, color=f"C{i}", label=LABELS.get(v.name, v.name))
    ax.axvline(base.schedule.mle_epochs, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("MLE epochs, then steps after pre-training (dashed line: end of MLE pre-training)")
    ax.set_ylabel(("NLL-oracle" if m.curve == "nll_oracle" else "NLL-test") + " (nats / token)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _zoom_window(curves: dict[str, list[tuple[float, float]]]) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The (x, y) limits of a close-up on MLE's curve (its points' range plus a 10 % margin each
    side), or None when there is no MLE curve or every curve stays within twice those limits' span
    on both axes (a collapsed method, or the untrained Random row, far away squeezes the others
    together on one chart). Points are finite."""
    if len(curves.get("mle", [])) < 2:
        return None
    limits = []
    for axis in (0, 1):
        lo, hi = min(p[axis] for p in curves["mle"]), max(p[axis] for p in curves["mle"])
        pad = 0.1 * (hi - lo) or 0.1
        limits.append((lo - pad, hi + pad))
    every = [p for points in curves.values() for p in points]
    spans = [max(p[axis] for p in every) - min(p[axis] for p in every) for axis in (0, 1)]
    if all(span <= 2 * (hi - lo) for span, (lo, hi) in zip(spans, limits)):
        return None
    return limits[0], limits[1]


def _plot_quality_diversity(plt, summary: dict, variants: list[Variant], path: Path, m: Measures = SYNTHETIC) -> None:
    """Quality (NLL-oracle; BLEU) against diversity (NLL-test; Self-BLEU) across temperatures; with
    a second panel, a close-up on MLE's curve where a far-away method squeezes the rest (`_zoom_window`)."""
    (x, x_label), (y, y_label) = m.x, m.y
    finite = {v.name: [p for p in summary[v.name]["temperatures"]
                       if math.isfinite(p[x]) and math.isfinite(p[y])]  # a diverged run's NaN: no point
              for v in variants if summary.get(v.name)}
    curves = {name: [(p[x], p[y]) for p in points] for name, points in finite.items()}
    window = _zoom_window(curves)
    fig, axes = plt.subplots(1, 2 if window else 1, figsize=(12, 5) if window else (6.5, 5), squeeze=False)
    best = "lower-left" if m is SYNTHETIC else "upper-left"
    for ax in axes[0]:
        for i, v in enumerate(variants):
            if v.name not in curves:
                continue
            t, label = finite[v.name], LABELS.get(v.name, v.name)
            if not t:  # every temperature diverged: the legend says so instead of the plot failing
                ax.plot([], [], color=f"C{i}", label=f"{label} (no finite point)")
                continue
            line, = ax.plot(*zip(*curves[v.name]), marker="o", ms=3, color=f"C{i}", label=label)
            for p in (t[0], t[-1]):  # outside a close-up's limits, matplotlib leaves the label out
                ax.annotate(f"τ={p['temperature']:g}", (p[x], p[y]), fontsize=7,
                            color=line.get_color(), xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(f"Quality vs diversity across sampling temperatures ({best} is better)", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if window:
        close_up = axes[0][1]
        close_up.set_xlim(*window[0])
        close_up.set_ylim(*window[1])
        close_up.set_title(f"Close-up on MLE's range ({best} is better)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
