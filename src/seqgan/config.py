"""One typed config: where the run's defaults live (a named corpus's data defaults: data.CORPUS_DEFAULTS).

Defaults are the authors' synthetic-experiment settings (LantaoYu/SeqGAN, HEAD) except two
initialisations kept from the Table 1 runs' start, `generator.single_bias` and
`discriminator.highway_init` (README, "Where we differ"); the README's "Presets and config" lists them. Presets (`paper`, `quick`, `tiny`) are built from these dataclasses, the CLI's
``--set section.field=value`` edits them, and checkpoints record the resolved config.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field


class SeqGANError(Exception):
    """An error meant for people: the CLI prints its message on one line and exits non-zero."""


def too_large_message(e: BaseException) -> str | None:
    """The one line for an error that means "sizes too large for this machine" (out of memory, or a
    tensor size past what torch can count), else None: a bug, whose traceback should be seen."""
    text = str(e).strip()
    first = (text.splitlines()[0] if text else type(e).__name__)[:160]
    lowered = text.lower()
    if isinstance(e, MemoryError) or any(k in lowered for k in ("allocate memory", "out of memory",
                                                                 "not enough memory")):
        return f"out of memory ({first}); choose smaller sizes"
    if isinstance(e, RuntimeError) and "overflow" in lowered and "size" in lowered:
        return f"sizes too large ({first}); choose smaller sizes"
    return None


SEED_LIMIT = 2 ** 63  # seeds go to Python's, numpy's and torch's generators alike: 0 <= seed < this
INFINITY_MEANS_NEVER = ("generator.grad_clip", "run.checkpoint_seconds")  # the only float fields where inf makes sense


def check_seed(name: str, value: int, room: int = 0) -> int:
    """``value`` if it is a usable seed (with ``room`` more seeds after it), else a SeqGANError."""
    if not 0 <= value < SEED_LIMIT - room:
        raise SeqGANError(f"{name} must be in [0, 2^63{f' - {room}' if room else ''}), got {value}")
    return value


@dataclass
class DataConfig:
    """The synthetic task (real data are samples of an oracle LSTM), or with ``corpus`` a text file
    (data.py): then vocab_size, seq_len, start_token, num_train and num_test are set from the corpus
    when the run starts, and discriminator filters wider than seq_len are dropped (train.resolve_corpus)."""

    oracle: str = "paper"  # "paper" (the authors' shipped parameters) or "random" (N(0,1) from oracle_seed)
    vocab_size: int = 5000
    seq_len: int = 20
    emb_dim: int = 32  # oracle embedding size
    hidden_dim: int = 32  # oracle LSTM size
    start_token: int = 0  # its embedding is the first input of oracle and generator
    oracle_seed: int = 0  # seeds a random oracle's parameters
    data_seed: int = 88  # seeds the oracle samples (train / test), fixed across run seeds
    num_train: int = 10_000  # oracle samples = the real data S
    num_test: int = 10_000  # held-out oracle samples for NLL-test, never trained on
    corpus: str = ""  # a UTF-8 text file, one sequence a line, or poems | shakespeare | music | ptb ("" = the oracle task)
    tokenize: str = "char"  # corpus tokens: char | word (whitespace-separated)
    max_len: int = 0  # corpus tokens per sequence before EOS; 0 = the longest line
    truncate: bool = False  # cut (and count) longer lines instead of stopping with an error
    min_freq: int = 1  # rarer corpus tokens become <unk>
    max_vocab: int = 0  # vocabulary size cap, specials included (0 = none)
    max_lines: int = 0  # use a random subset (seeded by data_seed) of this many corpus lines; 0 = all (ptb: of its training split)
    valid_fraction: float = 0.1  # held-out corpus lines (split seeded by data_seed; ptb keeps its own split)
    test_fraction: float = 0.1


@dataclass
class GeneratorConfig:
    emb_dim: int = 32
    hidden_dim: int = 32
    init_std: float = 0.1  # every parameter ~ N(0, init_std)
    batch_size: int = 64
    lr: float = 0.01  # Adam, MLE pre-training
    adv_lr: float = 0.01  # Adam, policy-gradient updates (separate optimizer state)
    grad_clip: float = 5.0  # global grad-norm clip, both phases
    # nn.LSTM has two bias vectors per gate (input, hidden) where the authors have one. True: the
    # second stays 0 and untrained, as theirs. False (the default until the paper-schedule Table 1
    # is complete, so its rows share one model): both train on the same gradient, so under Adam each
    # gate's bias moves twice as far per update as the authors' does.
    single_bias: bool = False


@dataclass
class DiscriminatorConfig:
    emb_dim: int = 64
    filter_sizes: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
    num_filters: tuple[int, ...] = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160)
    dropout_keep: float = 0.75  # training only; off when scoring rewards
    # pytorch: PyTorch's default (U(±1/√F)) with gate bias 0, what the Table 1 runs used | glorot:
    # the authors' code (Glorot-uniform U(±√(6/2F)) weights and biases, gate bias random + 0)
    highway_init: str = "pytorch"
    l2_reg: float = 0.2  # times ½Σw² of the output layer (weight and bias)
    lr: float = 1e-4
    batch_size: int = 64


METHODS = ("seqgan", "mle", "scheduled_sampling", "pg_bleu", "random")


@dataclass
class ScheduleConfig:
    # What trains the generator after MLE pre-training, for adv_steps steps of g_steps updates each:
    # seqgan (policy gradient, reward D), pg_bleu (policy gradient, reward BLEU), mle (more MLE),
    # scheduled_sampling, or random (no training at all: the initial generator).
    method: str = "seqgan"
    mle_epochs: int = 120
    mle_eval_every: int = 5  # epochs between NLL evaluations during MLE
    d_pretrain_rounds: int = 50  # each: fresh negatives, then d_pretrain_epochs epochs
    d_pretrain_epochs: int = 3
    adv_steps: int = 200  # adversarial iterations ("total batches")
    g_steps: int = 1  # policy-gradient updates per adversarial step
    d_steps: int = 5  # fresh-negative rounds per adversarial step
    d_epochs: int = 3  # k: epochs over positives + negatives per d-step
    rollout_num: int = 16  # N Monte Carlo completions per prefix
    rollout_update_rate: float = 0.0  # r in β ← rβ + (1−r)θ; 0 means β = θ (Algorithm 1)
    num_negatives: int = 10_000  # generated sequences per d-step
    adv_eval_every: int = 5  # adversarial steps between NLL evaluations (and the last step)
    num_eval: int = 10_000  # generated sequences scored by the oracle per evaluation


@dataclass
class MLEConfig:
    """The `mle` baseline: MLE continues after pre-training, for as many generator updates as the
    adversarial phase (adv_steps × g_steps mini-batches of generator.batch_size)."""
    updates_per_g_step: int = 1  # MLE mini-batches in place of each policy-gradient update


@dataclass
class ScheduledSamplingConfig:
    """The `scheduled_sampling` baseline (Bengio et al., 2015), continuing from MLE pre-training:
    each input token y_t-1 is replaced by a token sampled from the model's own prediction with
    probability p = min(1, start_prob + increase_per_step · step), step = 1..adv_steps. The paper
    decreases its curriculum rate ω (teacher forcing) "by 0.002 for every training epoch"."""
    updates_per_g_step: int = 1  # mini-batches in place of each policy-gradient update
    start_prob: float = 0.0
    increase_per_step: float = 0.002


@dataclass
class PGBleuConfig:
    """The `pg_bleu` baseline: SeqGAN's policy gradient and roll-outs with the reward = sentence
    BLEU-n (uniform weights, NLTK's smoothing method1) of each completed sequence against the real
    training data S, instead of D."""
    n: int = 4


@dataclass
class RunConfig:
    seed: int = 88
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # discriminator matmuls: auto (bf16 where the hardware is fast at it) | fp32 | bf16
    sample_batch: int = 4096  # rows per sampling / scoring chunk (memory bound, not semantics)
    cuda_graphs: bool = True  # on CUDA, replay the discriminator's training step as a CUDA graph
    # torch.compile (one process only): on CUDA the discriminator's loss inside its CUDA graph; on a CPU
    # in bf16 the discriminator's Adam (train.CopyAdam). auto (schedules of >= 100k D batches) | on | off
    compile: str = "auto"
    tensorboard: bool = False  # also write TensorBoard event files to RUN_DIR/tensorboard
    deterministic: bool = False  # CUDA: deterministic kernels where PyTorch has them (CPU runs already are)
    checkpoint_seconds: float = 60.0  # checkpoint after a step once this long since the last (and at phase ends)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    mle: MLEConfig = field(default_factory=MLEConfig)
    scheduled_sampling: ScheduledSamplingConfig = field(default_factory=ScheduledSamplingConfig)
    pg_bleu: PGBleuConfig = field(default_factory=PGBleuConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        cfg = cls()
        for section, values in d.items():
            if not hasattr(cfg, section):
                raise SeqGANError(f"unknown config section {section!r}")
            for key, value in values.items():
                set_field(cfg, f"{section}.{key}", value)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        d, g, dis, s, r = self.data, self.generator, self.discriminator, self.schedule, self.run
        for section in dataclasses.fields(self):
            for f in dataclasses.fields(getattr(self, section.name)):
                value = getattr(getattr(self, section.name), f.name)
                name = f"{section.name}.{f.name}"
                if isinstance(value, float) and not math.isfinite(value) and not (
                        value > 0 and name in INFINITY_MEANS_NEVER):  # +inf allowed there
                    raise SeqGANError(f"{name} must be a finite number, got {value}")
        check_seed("run.seed", r.seed)
        check_seed("data.oracle_seed", d.oracle_seed)
        check_seed("data.data_seed", d.data_seed, room=1)  # data_seed + 1 seeds the test samples
        positive = {
            "data.vocab_size": d.vocab_size, "data.seq_len": d.seq_len, "data.emb_dim": d.emb_dim,
            "data.hidden_dim": d.hidden_dim, "data.num_train": d.num_train, "data.num_test": d.num_test,
            "generator.emb_dim": g.emb_dim, "generator.hidden_dim": g.hidden_dim,
            "generator.batch_size": g.batch_size, "generator.lr": g.lr, "generator.adv_lr": g.adv_lr,
            "generator.grad_clip": g.grad_clip, "generator.init_std": g.init_std,
            "discriminator.emb_dim": dis.emb_dim, "discriminator.lr": dis.lr,
            "discriminator.batch_size": dis.batch_size, "discriminator.dropout_keep": dis.dropout_keep,
            "schedule.mle_eval_every": s.mle_eval_every, "schedule.adv_eval_every": s.adv_eval_every,
            "schedule.rollout_num": s.rollout_num, "schedule.num_negatives": s.num_negatives,
            "schedule.num_eval": s.num_eval, "run.sample_batch": r.sample_batch,
            "mle.updates_per_g_step": self.mle.updates_per_g_step,
            "scheduled_sampling.updates_per_g_step": self.scheduled_sampling.updates_per_g_step,
            "pg_bleu.n": self.pg_bleu.n,
        }
        for name, value in positive.items():
            if not value > 0:
                raise SeqGANError(f"{name} must be > 0, got {value}")
        non_negative = {
            "schedule.mle_epochs": s.mle_epochs, "schedule.d_pretrain_rounds": s.d_pretrain_rounds,
            "schedule.d_pretrain_epochs": s.d_pretrain_epochs, "schedule.adv_steps": s.adv_steps,
            "schedule.g_steps": s.g_steps, "schedule.d_steps": s.d_steps, "schedule.d_epochs": s.d_epochs,
            "discriminator.l2_reg": dis.l2_reg, "run.checkpoint_seconds": r.checkpoint_seconds,
        }
        for name, value in non_negative.items():
            if value < 0:
                raise SeqGANError(f"{name} must be >= 0, got {value}")
        for epochs, count, of in (("d_pretrain_epochs", "d_pretrain_rounds", s.d_pretrain_rounds),
                                  ("d_epochs", "d_steps", s.d_steps)):
            if s.method == "seqgan" and getattr(s, epochs) == 0 and of > 0:  # D sampled, trained nothing, logged 0
                raise SeqGANError(f"schedule.{epochs} = 0 with schedule.{count} = {of} trains D on nothing; "
                                  f"set {count} to 0 (no D training) or {epochs} >= 1")
        for name, value in {"data.vocab_size": d.vocab_size, "data.emb_dim": d.emb_dim,
                            "data.hidden_dim": d.hidden_dim, "generator.emb_dim": g.emb_dim,
                            "generator.hidden_dim": g.hidden_dim, "data.num_train": d.num_train}.items():
            if value > 2 ** 31 - 1:  # one tensor dimension; memory runs out long before
                raise SeqGANError(f"{name} = {value} is beyond any tensor dimension (at most 2147483647)")
        if d.oracle not in ("paper", "random"):
            raise SeqGANError(f"data.oracle must be 'paper' or 'random', got {d.oracle!r}")
        if d.tokenize not in ("char", "word"):
            raise SeqGANError(f"data.tokenize must be char or word, got {d.tokenize!r}")
        if not (0 <= d.valid_fraction < 1 and 0 < d.test_fraction < 1 and d.valid_fraction + d.test_fraction < 1):
            raise SeqGANError("data.valid_fraction must be in [0, 1) and data.test_fraction in (0, 1) (NLL-test needs "
                              "a test split), with a sum below 1")
        if min(d.max_len, d.min_freq, d.max_vocab, d.max_lines) < 0:
            raise SeqGANError("data.max_len, data.min_freq, data.max_vocab and data.max_lines must be >= 0")
        if 0 < d.max_vocab <= 4:  # the 4 specials alone: every token would be <unk>
            raise SeqGANError(f"data.max_vocab = {d.max_vocab} leaves no room beside the 4 special tokens "
                              "(<pad>, <bos>, <eos>, <unk>): use 0 (no cap) or more than 4")
        if d.corpus and s.method == "pg_bleu":
            raise SeqGANError("pg_bleu is implemented for the synthetic task (equal-length sequences) only")
        if not d.corpus and d.oracle == "paper" and (d.vocab_size, d.emb_dim, d.hidden_dim) != (5000, 32, 32):
            raise SeqGANError(
                "the paper oracle has vocab_size 5000, emb_dim 32, hidden_dim 32; "
                "use --set data.oracle=random for other sizes")
        if not 0 <= d.start_token < d.vocab_size:
            raise SeqGANError(f"data.start_token must be in [0, {d.vocab_size}), got {d.start_token}")
        if dis.dropout_keep > 1:
            raise SeqGANError(f"discriminator.dropout_keep must be in (0, 1], got {dis.dropout_keep}")
        if len(dis.filter_sizes) != len(dis.num_filters) or not dis.filter_sizes:
            raise SeqGANError("discriminator.filter_sizes and num_filters must be non-empty and the same length")
        if min(dis.filter_sizes) < 1 or min(dis.num_filters) < 1:
            raise SeqGANError("discriminator filter sizes and counts must be >= 1")
        if max(dis.filter_sizes) > d.seq_len and not d.corpus:  # a corpus sets seq_len, dropping wider filters
            raise SeqGANError(
                f"discriminator filter size {max(dis.filter_sizes)} exceeds data.seq_len {d.seq_len}")
        if not 0 <= s.rollout_update_rate < 1:
            raise SeqGANError(f"schedule.rollout_update_rate must be in [0, 1), got {s.rollout_update_rate}")
        if s.method not in METHODS:
            raise SeqGANError(f"schedule.method must be one of {', '.join(METHODS)}, got {s.method!r}")
        for name in ("start_prob", "increase_per_step"):
            prob = getattr(self.scheduled_sampling, name)
            if not 0 <= prob <= 1:
                raise SeqGANError(f"scheduled_sampling.{name} must be in [0, 1], got {prob}")
        if s.method == "pg_bleu" and (self.pg_bleu.n > 63 or d.vocab_size ** self.pg_bleu.n >= 2 ** 63):
            raise SeqGANError(f"pg_bleu.n = {self.pg_bleu.n} is too large for vocab_size {d.vocab_size} "
                              "(n-gram ids must fit in 64 bits)")
        if dis.highway_init not in ("pytorch", "glorot"):
            raise SeqGANError(f"discriminator.highway_init must be pytorch or glorot, got {dis.highway_init!r}")
        if r.precision not in ("auto", "fp32", "bf16"):
            raise SeqGANError(f"run.precision must be auto, fp32 or bf16, got {r.precision!r}")
        if r.compile not in ("auto", "on", "off"):
            raise SeqGANError(f"run.compile must be auto, on or off, got {r.compile!r}")
        if not is_device_name(r.device):
            raise SeqGANError(f"run.device must be auto, cpu, cuda, cuda:N or mps, got {r.device!r}")


def is_device_name(name: str) -> bool:
    """auto, cpu, cuda, cuda:N or mps: the run.device values (whether the machine has it is
    `train.resolve_device`'s question)."""
    return name in ("auto", "cpu", "cuda", "mps") or re.fullmatch("cuda:(0|[1-9][0-9]*)", name) is not None


def _convert(value, type_, name: str):
    """Convert a CLI string (or a JSON value) to the field's declared type."""
    origin = typing.get_origin(type_)
    try:
        if origin is tuple:
            (inner, _) = typing.get_args(type_)
            if isinstance(value, str):
                value = [v for v in re.split(r"[,\s]+", value) if v]  # "1,2", "1, 2" or "1 2"
            return tuple(_convert(v, inner, name) for v in value)
        if type_ is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if type_ is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            if isinstance(value, str):
                value = value.replace("_", "")
            return int(value)
        if type_ is float:
            return float(value)
        if type_ is str:
            return str(value)
    except (TypeError, ValueError):
        pass
    raise SeqGANError(f"{name}: cannot read {value!r} as {getattr(type_, '__name__', type_)}")


# run.* fields that say where and how a run executes, not what it computes: a run copied to or from
# another machine is still "the same run" if only these differ.
EXECUTION_FIELDS = ("device", "deterministic", "tensorboard")


def differing_fields(held: Config, wanted: Config, shown: int = 4, execution: bool = True) -> str:
    """The fields in which ``held`` differs from ``wanted``, as "section.key, ..." (the first
    ``shown`` of them, then " ..."), for an error message; "" where the two are the same.
    ``execution=False`` leaves out `EXECUTION_FIELDS`."""
    theirs, ours = held.to_dict(), wanted.to_dict()
    fields = [f"{section}.{key}" for section, values in ours.items() for key, value in values.items()
              if theirs[section][key] != value
              and (execution or section != "run" or key not in EXECUTION_FIELDS)]
    return ", ".join(fields[:shown]) + (" ..." if len(fields) > shown else "")


def set_field(cfg: Config, key: str, value) -> None:
    """Set ``section.field`` from a string or JSON value; unknown keys are errors."""
    section_name, _, field_name = key.partition(".")
    section = getattr(cfg, section_name, None) if section_name in _sections() else None
    if section is None or not field_name:
        raise SeqGANError(f"unknown config key {key!r} (sections: {', '.join(_sections())})")
    hints = typing.get_type_hints(type(section))
    if field_name not in hints:
        names = ", ".join(f.name for f in dataclasses.fields(section))
        raise SeqGANError(f"unknown config key {key!r} ({section_name} has: {names})")
    setattr(section, field_name, _convert(value, hints[field_name], key))


def _sections() -> list[str]:
    return [f.name for f in dataclasses.fields(Config)]


def preset(name: str) -> Config:
    """`paper`: the authors' schedule exactly. `quick`: same models and oracle, a short schedule
    (<= 10 minutes on 2 CPU cores). `tiny`: small vocab and models, seconds (tests)."""
    cfg = Config()
    if name == "paper":
        pass
    elif name == "quick":
        s = cfg.schedule
        s.mle_epochs, s.mle_eval_every = 15, 5
        s.d_pretrain_rounds, s.d_pretrain_epochs = 3, 1
        s.adv_steps, s.adv_eval_every = 25, 5
        s.d_steps, s.d_epochs = 1, 1
        s.num_negatives = 3_000  # D sees 3k real + 3k generated per d-step
        cfg.data.num_test = 5_000
    elif name == "tiny":
        cfg.data = DataConfig(oracle="random", vocab_size=20, seq_len=8, emb_dim=8, hidden_dim=8,
                              num_train=512, num_test=256)
        cfg.generator = GeneratorConfig(emb_dim=8, hidden_dim=8, batch_size=32)
        cfg.discriminator = DiscriminatorConfig(emb_dim=8, filter_sizes=(1, 2, 3, 5, 8),
                                                num_filters=(8, 8, 8, 8, 8), lr=1e-3, batch_size=32)
        cfg.schedule = ScheduleConfig(mle_epochs=4, mle_eval_every=2, d_pretrain_rounds=2,
                                      d_pretrain_epochs=1, adv_steps=3, adv_eval_every=2, d_steps=1,
                                      d_epochs=1, rollout_num=4, num_negatives=256, num_eval=256)
    else:
        raise SeqGANError(f"unknown preset {name!r} (choose from: {', '.join(PRESETS)})")
    cfg.validate()
    return cfg


PRESETS = ("paper", "quick", "tiny")
