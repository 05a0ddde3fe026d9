"""The `seqgan` command: train | experiment | sample | evaluate | score-oracle | inspect | plot | bleu |
self-bleu | bench."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import torch

from . import __version__
from .checkpoint import CHECKPOINT_NAME, CONFIG_NAME, EXPERIMENT_RECORD_NAME, METRICS_NAME, SAMPLES_NAME, save_figure, \
    write_text_atomic
from .config import METHODS, PRESETS, Config, DataConfig, SeqGANError, check_seed, preset, set_field, too_large_message
from .data import VOCAB_NAME, read_lines, tokenize

RUN_FILES = (CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME, VOCAB_NAME, SAMPLES_NAME)  # `sample --out` keeps off them


def _path(text: str) -> str:
    if not text:  # Path("") is the current directory; an empty --out is a slip (an unset shell variable)
        raise argparse.ArgumentTypeError("an empty path")
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _several(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2 (Self-BLEU compares samples with each other), "
                                         f"got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _bleu_order(text: str) -> int:
    value = _positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"expected an n-gram order from 1 to 100, got {text!r}")
    return value


def _temperature(text: str) -> float:
    value = _positive_float(text)
    if value < 1e-3:  # colder: logits / τ overflow float32 and the NLL is NaN
        raise argparse.ArgumentTypeError(f"expected a temperature of at least 0.001, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        return check_seed("the seed", int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    except SeqGANError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _apply_run_flags(cfg: Config, args) -> None:
    """Flags that choose how a run executes, not what it computes: allowed with --resume too."""
    if args.device is not None:
        set_field(cfg, "run.device", args.device)
    if args.deterministic:
        cfg.run.deterministic = True
    if args.tensorboard:
        cfg.run.tensorboard = True


def _config_from_args(args) -> Config:
    cfg = preset(args.preset)
    corpus_flag = "--dataset" if hasattr(args, "dataset") else "--data"  # experiment's name for --data
    if args.seed is not None:
        cfg.run.seed = args.seed
    if getattr(args, "method", None) is not None:
        cfg.schedule.method = args.method
    if getattr(args, "data", None) is not None:
        from .data import CORPUS_DEFAULTS

        if args.data in CORPUS_DEFAULTS:  # loaded (or its absence reported) by _check_corpus
            cfg.data.corpus = args.data
            for key, value in CORPUS_DEFAULTS[args.data].items():
                setattr(cfg.data, key, value)
        elif not Path(args.data).is_file():
            what = ("is a directory, not a text file" if Path(args.data).is_dir()
                    else "is not a regular file (a pipe?): a corpus is read again on resume; save it to a file"
                    if Path(args.data).exists() else "file not found")
            raise SeqGANError(f"{corpus_flag} {args.data}: {what}")
        else:
            cfg.data.corpus = str(Path(args.data).resolve())
    if getattr(args, "tokenize", None) is not None:
        cfg.data.tokenize = args.tokenize
    _apply_run_flags(cfg, args)
    for item in [kv for group in (args.set or []) for kv in group]:
        key, sep, value = item.partition("=")
        if not sep:
            raise SeqGANError(f"--set expects key=value, got {item!r}")
        if key.strip() == "data.corpus":  # --data also takes the corpus's defaults and a full path
            if getattr(args, "name", "realdata") != "realdata":
                raise SeqGANError(f"experiment {args.name} runs on the synthetic oracle; a corpus is for "
                                  "`seqgan experiment realdata --dataset …`")
            raise SeqGANError(f"choose the corpus with {corpus_flag}, not --set data.corpus")
        set_field(cfg, key.strip(), value.strip())
    if getattr(args, "tokenize", None) is not None and not cfg.data.corpus:
        raise SeqGANError(f"--tokenize applies to a corpus ({corpus_flag}); the synthetic task's tokens are ids")
    cfg.validate()
    return cfg


def _prepare_run_dir(out: str | None, preset_name: str, seed: int, lock: contextlib.ExitStack) -> Path:
    """The new run's directory, created, writable and locked (into ``lock``) for this process."""
    from .checkpoint import directory_lock, is_experiment_dir

    run_dir = Path(out) if out else Path("runs") / f"{preset_name}-seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    if run_dir.exists() and not run_dir.is_dir():
        raise SeqGANError(f"--out {run_dir} exists and is not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise SeqGANError(f"cannot write to run directory {run_dir}: {e.strerror or e}") from None
    lock.enter_context(directory_lock(run_dir))  # before the check: a holder may be about to write its checkpoint
    if (run_dir / CHECKPOINT_NAME).exists():  # a run stopped before its first checkpoint has nothing to resume
        raise SeqGANError(f"--out {run_dir} already holds a run; choose another directory")
    if is_experiment_dir(run_dir):
        raise SeqGANError(f"--out {run_dir} holds an experiment; choose another directory")
    from .train import TENSORBOARD_NAME

    left = [name for name in (*RUN_FILES, TENSORBOARD_NAME) if (run_dir / name).exists()]
    if left:  # a run stopped before its first checkpoint, or one whose checkpoint was deleted: kept, not overwritten
        stamp = f"replaced-{time.strftime('%Y%m%d-%H%M%S')}"
        names = itertools.chain([stamp], (f"{stamp}-{n}" for n in itertools.count(2)))  # two tries within a second
        aside = next(run_dir / name for name in names if not (run_dir / name).exists())
        try:
            aside.mkdir()
            for name in left:
                os.replace(run_dir / name, aside / name)
        except OSError as e:
            raise SeqGANError(f"cannot move the files of an earlier run in {run_dir} aside: {e.strerror or e}") from None
        print(f"seqgan train: {run_dir} held {', '.join(left)} with no checkpoint (a run stopped before its first); "
              f"moved into {aside}", file=sys.stderr)
    return run_dir


def _summary(records: list[dict], method: str = "seqgan", paper_oracle: bool = True) -> str:
    """The run's table: NLL after each phase, beside the paper's Table 1 on the paper's oracle;
    NLL-test alone on a corpus (there is no oracle)."""
    from .experiment import LABELS, PAPER_TABLE1

    evaluated = [r for r in records if "nll_test" in r]
    synthetic = paper_oracle and any("nll_oracle" in r for r in evaluated)  # the paper's numbers mean something
    final = (f"after {LABELS[method]}", PAPER_TABLE1[method], LABELS[method])
    lines = [f"{'':26}{'step':>6}{'NLL-oracle':>12}{'NLL-test':>10}" + ("   paper Table 1" if synthetic else "")]
    for phase, (label, paper, name) in (("init", ("untrained G", PAPER_TABLE1["random"], "Random")),
                                        ("mle", ("after MLE", PAPER_TABLE1["mle"], "MLE")), ("adversarial", final)):
        last = [r for r in evaluated if r["phase"] == phase]
        if last:
            r = last[-1]
            oracle = f"{r['nll_oracle']:>12.3f}" if "nll_oracle" in r else f"{'–':>12}"
            lines.append(f"{label:26}{r['step']:>6}{oracle}{r['nll_test']:>10.3f}"
                         + (f"   {paper:.3f} ({name})" if synthetic else ""))
    return "\n".join(lines)


def _check_corpus(cfg: Config, resumed: Path | None = None) -> None:
    """Load the run's corpus once up front (on a copy of the config) so a bad file is a one-line
    error before anything is created, or for the ``resumed`` run, before anything changes."""
    if cfg.data.corpus:
        from .data import check_run_corpus
        from .train import resolve_corpus

        corpus = resolve_corpus(Config.from_dict(cfg.to_dict()))
        if resumed is not None:
            check_run_corpus(corpus, resumed, cfg.data.corpus)


def _progress(args) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _interruptible(work, resume_hint: str | None = None):
    """Run ``work(should_stop)`` with SIGINT / SIGTERM handlers: the first signal lets the current
    step finish and checkpoint, then the exit code is 130 / 143; a second SIGINT stops at once.
    Returns work's result, or the exit code when it was interrupted. Under torchrun a rank stopped
    because another rank got the signal (`train` stops all at the same step) returns 143, and only
    rank 0 prints the resume line."""
    from . import dist
    from .train import Interrupted

    requested: list[int] = []

    def on_signal(signum, frame):
        if requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested.append(signum)
        print("\nseqgan: stopping after the current step (Ctrl-C again to quit at once)", file=sys.stderr)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return work(lambda: bool(requested))
    except Interrupted as e:
        if dist.is_main():
            print(f"seqgan: {resume_hint or e}", file=sys.stderr)
        return 130 if requested[:1] == [signal.SIGINT] else 143  # none: another torchrun rank got the signal
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_train(args) -> int:
    """`seqgan train`; under torchrun (WORLD_SIZE > 1) every rank runs this, data-parallel."""
    from . import dist

    if args.resume is not None and not args.resume.strip():  # e.g. an unset $DIR: not a new run
        raise SeqGANError("--resume needs a run directory, got ''")
    dist.init_from_env(_requested_device(args))
    try:
        code = _train(args, dist.is_main())
        dist.barrier()  # no rank tears the group down while another still uses it
        return code
    finally:
        dist.shutdown()


def _requested_device(args) -> str:
    """The run.device `seqgan train` will train on, known before the process group exists (it
    picks the backend): --device, else the resumed run's checkpoint's config (what the resume trains
    with), else the config the flags make; "auto" where that cannot be read (the error is then
    reported once, by `_train`)."""
    if args.device is not None:
        return args.device
    try:
        if args.resume:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                payload = torch.load(Path(args.resume) / CHECKPOINT_NAME, map_location="cpu", weights_only=True,
                                     mmap=True)  # only the config is read: the tensors stay on disk
            device = json.loads(payload["config"])["run"]["device"]
        else:
            named = argparse.Namespace(**{**vars(args), "preset": args.preset or "quick"})
            device = _config_from_args(named).run.device
    except Exception:  # whatever is unreadable: `_train` reports it in one line
        return "auto"
    return device if isinstance(device, str) else "auto"


def _train(args, main: bool) -> int:
    with contextlib.ExitStack() as lock:  # holds the run directory's lock (rank 0) from before the first message
        return _locked_train(args, main, lock)


def _locked_train(args, main: bool, lock: contextlib.ExitStack) -> int:
    from . import dist
    from .checkpoint import directory_lock, run_checkpoint
    from .train import PROGRESS_LINE_SECONDS, read_metrics, resolve_device, tensorboard_writer_class, train

    def say(message: str) -> None:
        if main:
            print(message, file=sys.stderr)

    resume = None
    if args.resume:
        given = [flag for flag, value in (("--preset", args.preset), ("--seed", args.seed), ("--set", args.set),
                                          ("--out", args.out), ("--method", args.method), ("--data", args.data),
                                          ("--tokenize", args.tokenize)) if value is not None]
        if given:
            raise SeqGANError(f"--resume continues a run with its own config; drop {', '.join(given)}")
        run_dir, error = Path(args.resume), None
        if main and run_dir.is_dir():  # locked before reading: the holder may be writing it
            try:
                lock.enter_context(directory_lock(run_dir))
            except SeqGANError as e:
                error = str(e)
        error = dist.broadcast_object(error)  # every rank stops, not only rank 0
        if error:
            raise SeqGANError(error)
        cfg, resume = run_checkpoint(run_dir, resume=True)
        if resume["phase"] != "done":  # the log lines the checkpoint keeps: a damaged one stops here, before
            log = run_dir / METRICS_NAME  # "resuming" is said; a missing or empty one loses only history
            kept = len(read_metrics(log, required=False, lines=resume["log_lines"]))
            if kept < resume["log_lines"]:
                has = f"has {kept} of" if log.is_file() else "is gone, with"
                say(f"seqgan train: warning: {log} {has} the {resume['log_lines']} lines the checkpoint was "
                    "written after; the missing history stays missing")
        _apply_run_flags(cfg, args)
        cfg.validate()  # the flags just applied (e.g. --device)
        if resume["phase"] == "done":
            say(f"seqgan train: {run_dir} is already complete")
            return 0
    else:
        args.preset = args.preset or "quick"
        cfg = _config_from_args(args)
    if dist.world() > 1 and ":" in cfg.run.device:
        raise SeqGANError(f"--device {cfg.run.device} under torchrun would put every process on one GPU; "
                          "use --device cuda (each process takes GPU LOCAL_RANK)")
    resolve_device(cfg.run.device)  # fail before creating or changing anything
    _check_corpus(cfg, run_dir if resume else None)  # a bad corpus file stops here, before the run dir exists
    if cfg.run.tensorboard:
        tensorboard_writer_class()
    if resume:
        say(f"seqgan train: resuming {run_dir} after {resume['phase']} step {resume['step']}")
    else:  # rank 0 chooses and checks the directory (its name has a timestamp), the others follow
        run_dir = error = None
        if main:
            try:
                run_dir = _prepare_run_dir(args.out, args.preset, cfg.run.seed, lock)
            except SeqGANError as e:
                error = str(e)
        run_dir, error = dist.broadcast_object((run_dir, error))
        if error:
            raise SeqGANError(error)
        say(f"seqgan train: preset {args.preset}, seed {cfg.run.seed}, run directory {run_dir}")
    if dist.world() > 1:
        say(f"seqgan train: data-parallel over {dist.world()} processes")

    result = _interruptible(lambda stop: train(cfg, run_dir, progress=_progress(args) and main, resume=resume,
                                               should_stop=stop, report_every=PROGRESS_LINE_SECONDS))
    if isinstance(result, int):
        return result
    records = result
    if not main:
        return 0
    print(_summary(records, cfg.schedule.method, cfg.data.oracle == "paper"))
    print(f"elapsed {records[-1]['elapsed_s']:.1f} s; metrics, checkpoint and samples in {run_dir}")
    return 0


def cmd_experiment(args) -> int:
    from .experiment import EXPERIMENTS, run_experiment
    from .train import resolve_device

    if args.name not in EXPERIMENTS:
        raise SeqGANError(f"unknown experiment {args.name!r} (choose from: {', '.join(EXPERIMENTS)})")
    args.method, args.data = None, args.dataset
    if (args.name == "realdata") != (args.dataset is not None):
        raise SeqGANError("--dataset is required by the realdata experiment and taken by no other")
    cfg = _config_from_args(args)
    resolve_device(cfg.run.device)
    _check_corpus(cfg)
    label = f"{args.name}-{Path(args.dataset).stem}" if args.dataset else args.name
    out = Path(args.out) if args.out else Path("runs") / f"experiment-{label}-{args.preset}"
    hint = f"stopped; continue with the same command: seqgan experiment {args.name} --out {out} ..."
    bars = _progress(args) and args.jobs == 1
    result = _interruptible(lambda stop: run_experiment(args.name, cfg, args.seeds, out, bars, stop, args.jobs), hint)
    if isinstance(result, int):
        return result
    print((out / f"{args.name}.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {out / (args.name + '.json')}, {args.name}.md and PNG plots in {out}")
    if args.json:
        print(json.dumps({"experiment": args.name, "out": str(out), "summary": result["summary"]}))
    return 0


def _load_run(run: str, device: str | None):
    """A run's config, generator (on ``device``, default CPU) and vocabulary (None: synthetic task)."""
    from .checkpoint import restore, run_checkpoint
    from .data import VOCAB_NAME, Vocab
    from .train import build_generator, resolve_device

    run_dir = Path(run)
    cfg, payload = run_checkpoint(run_dir)
    vocab = Vocab.load(run_dir / VOCAB_NAME, cfg.data.vocab_size) if cfg.data.corpus else None
    if vocab is not None and payload.get("vocab_sha256", vocab.sha256()) != vocab.sha256():  # older: size only
        raise SeqGANError(f"{run_dir / VOCAB_NAME} does not belong to this run: its checkpoint was trained with "
                          "another vocabulary (same size, different tokens)")
    generator = build_generator(cfg)
    restore(generator, payload["generator"], "generator")
    return cfg, generator.to(resolve_device(device or "cpu")).eval(), vocab


def _generate(generator, vocab, n: int, temperature: float) -> torch.Tensor:
    from .data import pad_after_eos

    tokens = generator.sample(n, temperature=temperature)
    return tokens if vocab is None else pad_after_eos(tokens)


def cmd_sample(args) -> int:
    cfg, generator, vocab = _load_run(args.run, args.device)
    if args.midi and cfg.data.corpus != "music":
        raise SeqGANError("--midi is for runs trained on --data music")
    torch.manual_seed(args.seed)
    tokens = _generate(generator, vocab, args.n, args.temperature).tolist()
    if vocab is None:
        lines = [" ".join(map(str, row)) for row in tokens]
    else:  # decoded text; poems (4 lines of 5 characters, written as 20) are shown as 4 lines
        lines = [vocab.text(row) for row in tokens]
        if cfg.data.tokenize == "char" and all(len(line) == 20 for line in lines) and not args.out:
            lines = ["\n".join(line[i:i + 5] for i in range(0, 20, 5)) + "\n" for line in lines]
    if args.midi:
        from .music import write_midi

        write_midi(lines, Path(args.midi))
        print(f"wrote {args.n} sequences as MIDI to {args.midi}", file=sys.stderr)
    if args.out:
        out = Path(args.out)
        if out.name in RUN_FILES and (out.parent / CHECKPOINT_NAME).is_file():
            raise SeqGANError(f"--out {out} is a run's own {out.name}; write the samples elsewhere")
        try:  # through a temporary file: a failed write leaves the old file as it was
            write_text_atomic(out, "\n".join(lines) + "\n")
        except OSError as e:
            raise SeqGANError(f"cannot write the samples to {out}: {e.strerror or e}") from None
        print(f"wrote {args.n} sequences to {args.out}", file=sys.stderr)
    else:
        for line in lines:
            print(line)
    return 0


def cmd_evaluate(args) -> int:
    from .bleu import bleu, self_bleu
    from .data import check_run_corpus, load_corpus
    from .metrics import nll_oracle, nll_test
    from .oracle import oracle_and_test_set

    cfg, generator, vocab = _load_run(args.run, args.device)
    corpus = None
    if vocab is not None:  # the corpus the run was trained on, checked before any work
        corpus = load_corpus(cfg.data)
        check_run_corpus(corpus, Path(args.run), cfg.data.corpus, vocab)
    torch.manual_seed(args.seed)
    samples = _generate(generator, vocab, args.n, args.temperature)
    if vocab is None:  # synthetic: references are held-out oracle samples, tokens are ids
        oracle, test = oracle_and_test_set(cfg.data, samples.device, cfg.run.sample_batch)
        hypotheses, references = samples.tolist(), test.tolist()
        result = {"nll_oracle": nll_oracle(oracle, samples)}
    else:
        test = corpus.test.to(samples.device)
        hypotheses = [vocab.decode(row) for row in samples.tolist()]
        references = [vocab.decode(row) for row in test.tolist()]
        result = {}
    result["nll_test"] = nll_test(generator, test, temperature=args.temperature, masked=vocab is not None)
    for n in (2, 3, 4, 5):
        result[f"bleu{n}"] = bleu(references, hypotheses, n)
    for n in (2, 3, 4, 5):
        result[f"self_bleu{n}"] = self_bleu(hypotheses, n)
    result.update(samples=len(hypotheses), references=len(references), temperature=args.temperature)
    print(f"run {args.run}: {len(hypotheses)} samples at temperature {args.temperature:g} against "
          f"{len(references)} held-out references")
    for key, value in result.items():
        if isinstance(value, float) and key != "temperature":
            print(f"  {key:12} {value:.4f}")
    if args.json:
        print(json.dumps(result))
    return 0


def cmd_plot(args) -> int:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SeqGANError("seqgan plot needs matplotlib: pip install 'seqgan[plot]'") from None
    from .train import read_metrics

    run_dir = Path(args.run)
    records = read_metrics(run_dir / METRICS_NAME)
    # One x axis through all phases: MLE epochs, then D pre-training rounds, then adversarial steps.
    offsets, x, start = {}, [], 0
    for r in records:
        if r["phase"] not in offsets:
            offsets[r["phase"]] = start
        x.append(offsets[r["phase"]] + r["step"])
        start = x[-1]
    # (panel title, [(field, phases or None for all, label)]); MLE and PG losses differ in scale.
    panels = [("NLL (nats / token)", [("nll_oracle", None, "NLL-oracle"), ("nll_test", None, "NLL-test")]),
              ("loss (log scale)", [("g_loss", ("mle",), "G: MLE (mean NLL)"),
                                    ("g_loss", ("adversarial",), "G: policy gradient (sum)"),
                                    ("d_loss", None, "D: CE + L2")]),
              ("D accuracy / mean reward", [("d_acc", None, "D training accuracy"),
                                            ("mean_reward", None, "mean Q (reward)")])]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 9), sharex=True)
    for ax, (title, series) in zip(axes, panels):
        for key, phases, label in series:
            points = [(xi, r[key]) for xi, r in zip(x, records)
                      if key in r and (phases is None or r["phase"] in phases)]
            if points:
                ax.plot(*zip(*points), marker="o" if key.startswith("nll") else None, ms=3, label=label)
        for offset in offsets.values():
            if offset:
                ax.axvline(offset, color="grey", lw=0.6, ls="--")
        ax.set_ylabel(title)
        if ax.lines:
            ax.legend(fontsize=8)
            if title.startswith("loss"):
                ax.set_yscale("log")
    axes[-1].set_xlabel("MLE epochs | D pre-training rounds | adversarial steps")
    fig.suptitle(f"seqgan run {run_dir}")
    fig.tight_layout()
    out = Path(args.out) if args.out else run_dir / "learning_curves.png"
    if out.is_dir():
        raise SeqGANError(f"--out {out} is a directory; name the image file (e.g. {out / 'learning_curves.png'})")
    if not out.suffix:  # matplotlib would add .png itself; say the file it writes
        out = out.with_suffix(".png")
    formats = fig.canvas.get_supported_filetypes()
    if out.suffix[1:].lower() not in formats:
        raise SeqGANError(f"--out {out}: unknown image format {out.suffix!r} "
                          f"(choose from {', '.join(sorted(formats))})")
    try:  # through a temporary file: a failed write leaves the old image as it was
        save_figure(fig, out)
    except OSError as e:
        raise SeqGANError(f"cannot write the plot to {out}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    print(f"wrote {out}")
    return 0


def cmd_inspect(args) -> int:
    from .checkpoint import is_experiment_dir, run_checkpoint, state_sha256
    from .train import read_metrics

    run_dir = Path(args.run)
    if is_experiment_dir(run_dir):
        return _inspect_experiment(run_dir, args.json)
    cfg, payload = run_checkpoint(run_dir, finite=False)  # a run that diverged can still be inspected
    records = read_metrics(run_dir / METRICS_NAME, required=False)
    last = records[-1] if records else None
    info = {"run": str(run_dir), "phase": payload.get("phase"), "step": payload.get("step"),
            "generator_sha256": state_sha256(payload["generator"]),
            "discriminator_sha256": state_sha256(payload["discriminator"]) if "discriminator" in payload else None,
            "last_metrics": last, "config": cfg.to_dict()}
    print(f"run {run_dir}: checkpoint after phase {info['phase']}, step {info['step']}")
    for section, values in info["config"].items():
        print(f"  {section}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    print(f"  last metrics: {json.dumps(last)}")
    print(f"  generator_sha256 {info['generator_sha256']}\n  discriminator_sha256 {info['discriminator_sha256']}")
    if args.json:
        print(json.dumps(info))
    return 0


def _inspect_experiment(out: Path, as_json: bool) -> int:
    from .experiment import experiment_status

    status = experiment_status(out)
    of = f" of {status['total']}" if status["total"] else ""
    print(f"experiment {status['experiment']} in {out}: {status['finished']}{of} runs finished"
          + (" (complete)" if status["complete"] else ""))
    for run in status["runs"]:
        state = ("not started" if not run["started"] else "unreadable" if "error" in run
                 else "started, no checkpoint yet" if run["phase"] is None
                 else "done, directory not kept" if run.get("kept") is False
                 else "done" if run["phase"] == "done" else f"{run['phase']} {run['step']}/{run['last_step']}")
        value = "nan" if run.get("value") is None else f"{run['value']:.3f}"
        where = "in" if run.get("kept") is False else "after"
        metric = f"{run['metric'].replace('nll_', 'NLL-')} {value} {where} {run['at']}" if "metric" in run else ""
        elapsed = f"{run['elapsed_s'] / 3600:.2f} h" if run["elapsed_s"] is not None else ""
        print(f"  {run['run']:<28} {state:<26} {metric:<40} {elapsed}".rstrip())
        if "error" in run:
            print(f"    {run['error']}")
    if as_json:
        print(json.dumps(status))
    return 0


def read_token_file(path: Path, vocab_size: int) -> list[list[int]]:
    """Token-id sequences, one a line, space-separated (blank lines skipped); errors name the line."""
    seqs = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            ids = [int(tok) for tok in line.split()]
        except ValueError:
            raise SeqGANError(f"{path}:{number}: expected space-separated token ids, "
                              f"got {line.strip()[:40]!r}") from None
        bad = [i for i in ids if not 0 <= i < vocab_size]
        if bad:
            raise SeqGANError(f"{path}:{number}: token id {bad[0]} out of range [0, {vocab_size})")
        seqs.append(ids)
    return seqs


def _text_tokens(path: Path, how: str) -> list[list[str]]:
    """One sequence a line, its whitespace-separated words or (``how`` = char) its characters, as a
    corpus run tokenises; a blank line is an empty sequence."""
    return [tokenize(line, how) for line in read_lines(path)]


def cmd_bleu(args) -> int:
    from .bleu import bleu

    score = bleu(_text_tokens(Path(args.references), args.tokenize),
                 _text_tokens(Path(args.hypotheses), args.tokenize), args.n)
    print(f"BLEU-{args.n} {score:.6f}")
    if args.json:
        print(json.dumps({"bleu": score}))
    return 0


def cmd_self_bleu(args) -> int:
    from .bleu import self_bleu

    hypotheses = _text_tokens(Path(args.hypotheses), args.tokenize)
    if len(hypotheses) < 2:
        raise SeqGANError(f"{args.hypotheses}: Self-BLEU needs at least 2 sequences, got {len(hypotheses)}")
    score = self_bleu(hypotheses, args.n)
    print(f"Self-BLEU-{args.n} {score:.6f}")
    if args.json:
        print(json.dumps({"self_bleu": score}))
    return 0


def _samples_data(file: Path) -> tuple[DataConfig, Path] | None:
    """The data config of the run (its config.json beside FILE) or experiment (experiment.json a
    folder up, as for DIR/samples/*.txt) that wrote FILE, and that file; None where there is none.
    A file that is there but does not read is an error: scoring on would be against a guess."""
    for path, inside in ((file.parent / CONFIG_NAME, ()), (file.parent.parent / EXPERIMENT_RECORD_NAME, ("config",))):
        if not path.is_file():
            continue
        try:
            held = json.loads(path.read_text(encoding="utf-8"))
            for key in inside:
                held = held[key]
            read = Config()  # the data section alone, not validated against the rest of a default config
            for key, value in held["data"].items():
                set_field(read, f"data.{key}", value)
            d = read.data
            if d.oracle not in ("paper", "random") or min(d.vocab_size, d.seq_len, d.emb_dim, d.hidden_dim) < 1 \
                    or not 0 <= d.start_token < d.vocab_size:
                raise ValueError(d)
            return d, path
        except (OSError, ValueError, TypeError, KeyError, AttributeError, SeqGANError):
            raise SeqGANError(f"{path} holds no data config this seqgan reads, so the oracle that {file} "
                              "was sampled from is unknown; name it with --oracle paper|PATH") from None
    return None


def cmd_score_oracle(args) -> int:
    from .metrics import mean_nll
    from .oracle import load_oracle_params, oracle_from_params, oracle_params, paper_oracle_path

    found = _samples_data(Path(args.file)) if args.oracle is None else None
    if found is not None and found[0].corpus:
        raise SeqGANError(f"{args.file} was sampled by a run on a corpus ({found[1]}), which has no oracle; "
                          "name one with --oracle paper|PATH to score it anyway")
    run_data = found[0] if found is not None else None  # the run's oracle and start token
    if run_data is not None:
        params = oracle_params(run_data)
    else:
        params = load_oracle_params(paper_oracle_path() if args.oracle in (None, "paper") else Path(args.oracle))
    start_token = run_data.start_token if run_data is not None else 0
    vocab_size = params["embedding"].shape[0]
    seqs = read_token_file(Path(args.file), vocab_size)
    if run_data is not None and run_data.oracle == "random":
        print(f"seqgan score-oracle: scoring against the random oracle of the run that wrote {args.file} "
              f"(data.oracle_seed {run_data.oracle_seed}, vocabulary {run_data.vocab_size}, from {found[1]}); "
              "--oracle paper for the paper's", file=sys.stderr)
    by_length: dict[int, list[list[int]]] = {}
    for s in seqs:
        by_length.setdefault(len(s), []).append(s)
    total = tokens = 0.0
    for length, group in by_length.items():
        oracle = oracle_from_params(params, length, start_token)
        batch = torch.tensor(group, dtype=torch.long)
        total += mean_nll(oracle, batch) * batch.numel()
        tokens += batch.numel()
    nll = total / tokens
    print(f"NLL-oracle {nll:.4f} nats/token over {len(seqs)} sequences ({int(tokens)} tokens)")
    if args.json:
        print(json.dumps({"nll_oracle": nll, "sequences": len(seqs)}))
    return 0


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def cmd_bench(args) -> int:
    from . import bench
    from .train import resolve_device

    device = resolve_device(args.device)
    where = _machine(device)
    if args.what == "rollout":
        result = bench.bench_rollout(repeats=args.repeats, device=args.device)
        print(f"roll-out rewards (B 64, N 16, T 20, vocab 5000, paper D; {where}): ours {result['ours_s']:.3f} s, "
              f"plain port (multinomial, Conv2d D, fp32) {result['plain_s']:.3f} s, speed-up {result['speedup']:.1f}x")
    elif args.what == "discriminator":
        result = bench.bench_discriminator(repeats=args.repeats, device=args.device)
        print(f"discriminator training epoch, 20,000 sequences, batch 64 ({where}): ours {result['ours_s']:.2f} s, "
              f"per-filter Conv2d reference {result['reference_s']:.2f} s, speed-up {result['speedup']:.1f}x; "
              f"{result['gflops']:.0f} GFLOP/s of a {result['peak_gflops']:.0f} GFLOP/s matmul peak "
              f"({100 * result['fraction_of_peak']:.1f} %)")
    elif args.what == "sampling":
        result = bench.bench_sampling(repeats=args.repeats, device=args.device)
        print(f"sampling 10,000 sequences (T 20, vocab 5000; {where}): ours {result['ours_s']:.3f} s, "
              f"torch.multinomial {result['multinomial_s']:.3f} s, speed-up {result['speedup']:.1f}x")
    elif args.what == "adversarial-step":
        result, parts = bench.bench_adversarial_step(repeats=args.repeats, device=args.device)
        for side, c in parts.items():
            print(f"{side:>9}: " + ", ".join(f"{k} {v:.3f}" for k, v in c.items()))
        print(f"one paper adversarial step = roll-out + G update + 5 x (sample 10k + 3 x D epoch) ({where}): "
              f"ours {result['ours_s']:.1f} s, reference {result['reference_s']:.1f} s, "
              f"speed-up {result['speedup']:.1f}x")
    else:  # schedule
        parts = bench.adversarial_components(repeats=args.repeats, device=args.device, reference=False)["ours"]
        result = bench.projected_schedule_seconds(parts)
        print("measured: " + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()))
        print(f"projected wall time of the paper preset ({where}): {result['projected_s'] / 3600:.2f} h "
              f"(MLE {result['mle_s']:.0f} s, D pre-training {result['d_pretrain_s']:.0f} s, "
              f"adversarial {result['adversarial_s']:.0f} s)")
    if args.json:
        print(json.dumps(result))
    return 0


TEMPERATURE_HELP = "softmax temperature of sampling, at least 0.001: below 1 sharper, above 1 flatter (default 1)"
SAMPLE_SEED_HELP = "torch seed of the sampling: on one device the same seed gives the same samples (default 0)"
NO_PROGRESS_HELP = "no progress bars (a progress line every 2 minutes instead)"
BLEU_TOKENS_HELP = ("word: whitespace-separated tokens (default); char: each character of the line, as a "
                    "char-level corpus run (e.g. poems) tokenises")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqgan", description="SeqGAN: sequence GANs trained with policy gradient.")
    parser.add_argument("--version", action="version", version=f"seqgan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="run Algorithm 1 (or a baseline) on the synthetic oracle task or a corpus")
    p.add_argument("--preset", default=None, choices=PRESETS, help="schedule and sizes (default: quick)")
    p.add_argument("--seed", type=_seed, default=None, help="run seed (default: the preset's, 88)")
    p.add_argument("--out", default=None, type=_path, help="run directory (default: runs/PRESET-seedN-TIME)")
    p.add_argument("--set", action="append", nargs="+", metavar="KEY=VALUE",
                   help="override a config field, e.g. --set schedule.adv_steps=50 generator.lr=0.005")
    p.add_argument("--device", default=None,
                   help="auto | cpu | cuda | cuda:N | mps (default: auto; with --resume, the run's own)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files (DIR/tensorboard)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic CUDA kernels where available (CPU runs are reproducible anyway)")
    p.add_argument("--data", default=None, metavar="poems|shakespeare|music|ptb|PATH",
                   help="train on a named corpus (poems, shakespeare: shipped; music, ptb: from installed "
                        "packages) or a UTF-8 text file, one sequence a line "
                        "(default: the synthetic oracle task)")
    p.add_argument("--tokenize", default=None, choices=("char", "word"),
                   help="corpus tokens (default: the named corpus's, else char)")
    p.add_argument("--method", default=None, choices=METHODS,
                   help="what trains G after MLE pre-training: seqgan (default) or a baseline "
                        "(= --set schedule.method=...)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run in DIR from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("experiment", help="many runs, one table: table1 (the paper's Table 1) | strategies "
                                          "(Figure 3) | realdata (MLE vs SeqGAN on a corpus)")
    p.add_argument("name", help="table1 | strategies | realdata")
    p.add_argument("--dataset", default=None, metavar="poems|shakespeare|music|ptb|FILE",
                   help="realdata: a named corpus (as train's --data) or a text file")
    p.add_argument("--tokenize", default=None, choices=("char", "word"),
                   help="realdata: corpus tokens (default: the named corpus's, else char)")
    p.add_argument("--preset", default="quick", choices=PRESETS,
                   help="schedule and sizes of every run (default: quick)")
    p.add_argument("--seeds", type=_positive_int, default=3,
                   help="seeds per method: run.seed, run.seed+1, ... (default 3)")
    p.add_argument("--seed", type=_seed, default=None, help="first seed (default: the preset's, 88)")
    p.add_argument("--out", default=None, type=_path, help="experiment directory (default: runs/experiment-NAME-PRESET, "
                                               "realdata: runs/experiment-realdata-DATASET-PRESET); "
                                               "re-run the same command to continue it")
    p.add_argument("--set", action="append", nargs="+", metavar="KEY=VALUE", help="config override for every run")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps (default: auto, also when "
                                                 "continuing: it may differ from the one the experiment started on)")
    p.add_argument("--jobs", type=_positive_int, default=1,
                   help="runs trained at once, each in its own process with 1/JOBS of the CPU threads "
                        "(no progress bars; default 1: one after another in this process)")
    p.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    p.add_argument("--json", action="store_true",
                   help="last stdout line: {\"experiment\", \"out\", \"summary\"}")
    p.set_defaults(func=cmd_experiment, deterministic=False, tensorboard=False)

    p = sub.add_parser("sample", help="sample sequences from a trained run (token ids, or text for a corpus run)")
    p.add_argument("--run", required=True, help="run directory written by `seqgan train`")
    p.add_argument("--n", type=_positive_int, required=True, help="number of sequences")
    p.add_argument("--temperature", type=_temperature, default=1.0, help=TEMPERATURE_HELP)
    p.add_argument("--seed", type=_seed, default=0, help=SAMPLE_SEED_HELP)
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps (default: cpu)")
    p.add_argument("--out", default=None, type=_path, help="file to write (default: stdout)")
    p.add_argument("--midi", default=None, metavar="FILE", help="music runs: also write the samples as MIDI (music21)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("evaluate", help="BLEU-2..5, Self-BLEU-2..5, NLL-test (and NLL-oracle) of a run's samples")
    p.add_argument("--run", required=True, help="run directory written by `seqgan train`")
    p.add_argument("--n", type=_several, default=2000, help="generated sequences, at least 2 (default 2000)")
    p.add_argument("--temperature", type=_temperature, default=1.0, help=TEMPERATURE_HELP)
    p.add_argument("--seed", type=_seed, default=0, help=SAMPLE_SEED_HELP)
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps (default: cpu)")
    p.add_argument("--json", action="store_true", help="last stdout line: all numbers as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("plot", help="learning curves (NLL, losses, D accuracy; PNG by default) from a run's metrics log")
    p.add_argument("run", help="run directory written by `seqgan train`")
    p.add_argument("--out", default=None, type=_path,
                   help="image file, its format from the suffix (default: RUN/learning_curves.png; no suffix: .png)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("inspect", help="a run's config, phase/step, last metrics and parameter hashes; "
                                       "for an experiment directory, the state of each of its runs")
    p.add_argument("run", help="run directory written by `seqgan train`, or an experiment directory")
    p.add_argument("--json", action="store_true", help="last stdout line: the same as JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("score-oracle", help="mean per-token NLL of token-id sequences under the oracle")
    p.add_argument("file", help="token-id sequences, one a line, space-separated")
    p.add_argument("--oracle", default=None,
                   help="'paper' (shipped) or the path of an oracle .npz (default: the oracle of the run that wrote "
                        "FILE, found from its config.json or its experiment's experiment.json, else paper)")
    p.add_argument("--json", action="store_true", help="last stdout line: {\"nll_oracle\", \"sequences\"}")
    p.set_defaults(func=cmd_score_oracle)

    p = sub.add_parser("bleu", help="BLEU-n of hypotheses against references (nltk's definition, exact)")
    p.add_argument("--references", required=True, help="text file, one sequence a line")
    p.add_argument("--hypotheses", required=True, help="text file, one sequence a line")
    p.add_argument("--n", type=_bleu_order, default=4, help="maximum n-gram order, 1-100 (default 4)")
    p.add_argument("--tokenize", default="word", choices=("word", "char"), help=BLEU_TOKENS_HELP)
    p.add_argument("--json", action="store_true", help="last stdout line: {\"bleu\": <float>}")
    p.set_defaults(func=cmd_bleu)

    p = sub.add_parser("self-bleu", help="Self-BLEU-n: each hypothesis against all the others")
    p.add_argument("--hypotheses", required=True, help="text file, one sequence a line")
    p.add_argument("--n", type=_bleu_order, default=4, help="maximum n-gram order, 1-100 (default 4)")
    p.add_argument("--tokenize", default="word", choices=("word", "char"), help=BLEU_TOKENS_HELP)
    p.add_argument("--json", action="store_true", help="last stdout line: {\"self_bleu\": <float>}")
    p.set_defaults(func=cmd_self_bleu)

    p = sub.add_parser("bench", help="speed benchmarks against plain reference implementations")
    p.add_argument("what", choices=["rollout", "discriminator", "sampling", "adversarial-step", "schedule"],
                   help="what to time (README, Speed, says what each measures)")
    p.add_argument("--repeats", type=_positive_int, default=1,
                   help="timed repetitions, the best reported (default 1)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N | mps (default: cpu)")
    p.add_argument("--json", action="store_true", help="last stdout line: JSON result")
    p.set_defaults(func=cmd_bench)
    return parser


def _error_line(message: str) -> None:
    """One write for the line and its newline: the ranks of a torchrun job share stderr."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from .train import keep_freed_memory

        keep_freed_memory()
        return args.func(args)
    except SeqGANError as e:
        _error_line(f"seqgan: error: {e}")
        return 1
    except KeyboardInterrupt:
        _error_line("seqgan: interrupted")
        return 130
    except (MemoryError, RuntimeError) as e:  # sizes too large for the machine: --set, --n or --jobs
        message = too_large_message(e)
        if message is None:
            raise
        _error_line(f"seqgan: error: {message}")
        return 1
    except BrokenPipeError:  # `seqgan sample … | head`: the reader has gone; quiet, as other Unix tools
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141
    except OSError as e:
        where = f" {e.filename}:" if getattr(e, "filename", None) else ""
        _error_line(f"seqgan: error:{where} {e.strerror or e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
