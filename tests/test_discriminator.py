"""The CNN + highway discriminator: the window-matmul form against the authors' Conv2d form."""

import pytest
import torch

from seqgan.discriminator import Discriminator
from seqgan.reference import PlainDiscriminator


def test_paper_shapes_and_init():
    d = Discriminator(5000, 20)
    assert d.num_features == 1720  # sum of the paper's filter counts
    assert d.filter_sizes == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
    assert [b.in_features for b in d.banks] == [64 * k for k in d.filter_sizes]
    emb = d.embedding.weight
    assert emb.abs().max() <= 1.0 and emb.min() < -0.99 and emb.max() > 0.99  # U(-1, 1)
    assert abs(emb.std().item() - 3 ** -0.5) < 0.01
    for layer in (*d.banks, d.out):  # truncated N(0, 0.1) weights (|w| <= 0.2), biases 0.1
        assert layer.weight.abs().max() <= 0.2 + 1e-7 and torch.all(layer.bias == 0.1)
        assert abs(layer.weight.std().item() - 0.0880) < 0.01  # a N(0, 0.1) cut at 2σ has std 0.0880
    assert torch.all(d.highway.bias[1720:] == 0)
    assert abs(d.dropout.p - 0.25) < 1e-12
    assert d(torch.randint(0, 5000, (3, 20))).shape == (3, 2)


def test_dropout_is_inverted_and_applied_to_the_highway_features_in_training_only():
    """keep_mask: each entry 1/keep with probability keep, else 0 (share of zeros within 5σ); in
    training the logits are out(highway features · mask) (1e-6), in eval mode no mask is applied."""
    torch.manual_seed(9)
    d = Discriminator(30, 8, emb_dim=4, filter_sizes=(1, 2, 3), num_filters=(5, 5, 5), dropout_keep=0.75)
    mask = d.keep_mask(400, torch.device("cpu"))
    assert mask.unique().tolist() == [0.0, pytest.approx(1 / 0.75, abs=1e-7, rel=0)]  # float32 1/keep
    zeros, n = (mask == 0).float().mean().item(), mask.numel()
    assert abs(zeros - 0.25) < 5 * (0.25 * 0.75 / n) ** 0.5
    tokens = torch.randint(0, 30, (400, 8))
    d.train()
    with torch.no_grad():
        assert torch.allclose(d(tokens, keep_mask=mask), d.out(d.features(tokens) * mask), atol=1e-6, rtol=0)
        d.eval()
        assert torch.allclose(d(tokens), d.out(d.features(tokens)), atol=1e-6, rtol=0)


def test_glorot_highway_init_is_the_authors_and_changes_nothing_else():
    """highway_init="glorot": every highway weight and bias (gate bias included) U(±√(6/3440)) =
    U(±0.0418), as TensorFlow's default initializer in the authors' code; the default keeps
    PyTorch's U(±1/√1720) = U(±0.0241) and gate bias 0. Both draw every other parameter alike."""
    torch.manual_seed(0)
    default = Discriminator(5000, 20)
    torch.manual_seed(0)
    glorot = Discriminator(5000, 20, highway_init="glorot")
    bound = (6 / 3440) ** 0.5
    for tensor in (glorot.highway.weight, glorot.highway.bias, glorot.highway.bias[1720:]):
        assert tensor.abs().max() <= bound
        assert abs(tensor.std().item() - bound / 3 ** 0.5) < 0.05 * bound / 3 ** 0.5  # uniform's std
    assert default.highway.weight.abs().max() <= 1720 ** -0.5 < bound
    assert torch.all(default.highway.bias[1720:] == 0) and not torch.any(glorot.highway.bias[1720:] == 0)
    others = lambda d: {k: v for k, v in d.state_dict().items() if not k.startswith("highway")}  # noqa: E731
    assert all(torch.equal(v, others(glorot)[k]) for k, v in others(default).items())


def assert_every_gradient_matches(d: Discriminator, plain: PlainDiscriminator, atol: float) -> None:
    """Every parameter's gradient of ``d`` against the same parameter's in the Conv2d form."""
    f = d.num_features
    pairs = [(d.embedding.weight.grad, plain.embedding.weight.grad)]
    for bank, conv in zip(d.banks, plain.convs):
        pairs += [(bank.weight.grad, conv.weight.grad.flatten(1)), (bank.bias.grad, conv.bias.grad)]
    pairs += [(d.highway.weight.grad[:f], plain.highway_transform.weight.grad),
              (d.highway.weight.grad[f:], plain.highway_gate.weight.grad),
              (d.highway.bias.grad[:f], plain.highway_transform.bias.grad),
              (d.highway.bias.grad[f:], plain.highway_gate.bias.grad),
              (d.out.weight.grad, plain.out.weight.grad), (d.out.bias.grad, plain.out.bias.grad)]
    assert len(pairs) == len(list(d.parameters())) + 2  # the highway's weight and bias each in two halves
    for ours, theirs in pairs:
        assert ours is not None and theirs is not None
        assert torch.allclose(ours, theirs, atol=atol, rtol=0)


def test_matches_plain_conv2d_discriminator_forward_and_backward():
    """Same parameters: logits, loss and every parameter's gradient to 1e-5 (float32)."""
    d = Discriminator(50, 12, emb_dim=8, filter_sizes=(1, 2, 3, 5, 12), num_filters=(4, 6, 6, 5, 3), dropout_keep=1.0)
    plain = PlainDiscriminator.copy_of(d)
    tokens = torch.randint(0, 50, (16, 12))
    labels = torch.randint(0, 2, (16,))
    ours, _ = d.loss(tokens, labels, 0.2)
    theirs, _ = plain.loss(tokens, labels, 0.2)
    assert torch.allclose(d(tokens), plain(tokens), atol=1e-5, rtol=0)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)
    ours.backward()
    theirs.backward()
    assert_every_gradient_matches(d, plain, atol=1e-5)


@pytest.mark.parametrize("per_group", [1, 3, 5])
def test_grouped_banks_match_plain_conv2d(monkeypatch, per_group):
    """Banks sharing one zero-padded, position-masked matmul (as under bf16), here in float32:
    logits and every gradient equal the Conv2d form to 1e-5, for groups of 1, 3 and 5 banks."""
    monkeypatch.setattr(Discriminator, "BANKS_PER_GROUP", {torch.float32: per_group})
    torch.manual_seed(3)
    d = Discriminator(40, 11, emb_dim=8, filter_sizes=(1, 2, 3, 4, 5, 6, 9, 11), num_filters=(3, 4, 2, 5, 3, 2, 4, 3),
                      dropout_keep=1.0)
    plain = PlainDiscriminator.copy_of(d)
    tokens = torch.randint(0, 40, (9, 11))
    labels = torch.randint(0, 2, (9,))
    ours, logits = d.loss(tokens, labels, 0.2)
    theirs, plain_logits = plain.loss(tokens, labels, 0.2)
    assert torch.allclose(logits, plain_logits, atol=1e-5, rtol=0) and torch.allclose(ours, theirs, atol=1e-5, rtol=0)
    ours.backward()
    theirs.backward()
    assert_every_gradient_matches(d, plain, atol=1e-5)
    with torch.no_grad():  # the scoring path (windows gathered per bank)
        assert torch.allclose(d(tokens), plain_logits, atol=1e-5, rtol=0)
    groups = [plan[0] for plan in d._window_plans(d.embedding(tokens))]
    assert max(len(g) for g in groups) == min(per_group, 6)  # widths 1-6 are consecutive


def test_bf16_scoring_path_matches_training_path():
    """Under bf16 the no-gradient path (per-bank gathered windows) and the training path (grouped
    banks) round differently: P(real) within 0.01 on the paper-sized model."""
    torch.manual_seed(0)
    d = Discriminator(5000, 20, dropout_keep=1.0)
    d.compute_dtype = torch.bfloat16
    tokens = torch.randint(0, 5000, (128, 20))
    training = torch.softmax(d(tokens), dim=1)[:, 1]
    with torch.no_grad():
        scoring = torch.softmax(d(tokens), dim=1)[:, 1]
    assert (training.detach() - scoring).abs().max() < 0.01


def test_loss_is_mean_ce_plus_l2_of_output_layer():
    d = Discriminator(30, 8, emb_dim=4, filter_sizes=(1, 3), num_filters=(2, 3), dropout_keep=1.0)
    tokens = torch.randint(0, 30, (5, 8))
    labels = torch.tensor([0, 1, 1, 0, 1])
    loss, logits = d.loss(tokens, labels, l2_reg=0.2)
    ce = -torch.log_softmax(logits, dim=1)[torch.arange(5), labels].mean()
    l2 = 0.5 * (d.out.weight.pow(2).sum() + d.out.bias.pow(2).sum())
    assert torch.allclose(loss, ce + 0.2 * l2)


def test_prob_real_has_no_dropout_and_keeps_mode():
    d = Discriminator(30, 8, emb_dim=4, filter_sizes=(1, 3), num_filters=(2, 3), dropout_keep=0.5)
    d.train()
    tokens = torch.randint(0, 30, (50, 8))
    a, b = d.prob_real(tokens, chunk=7), d.prob_real(tokens)
    assert torch.allclose(a, b, atol=1e-6, rtol=0) and d.training  # chunk size only changes float32 rounding
    d.eval()
    assert torch.allclose(a, torch.softmax(d(tokens), dim=1)[:, 1])


def test_bf16_matches_fp32_within_tolerance():
    """bf16 autocast (8-bit mantissa): paper-sized D, loss within 1 % and P(real) within 0.02 of
    fp32 on random sequences; gradients point the same way (cosine > 0.99)."""
    torch.manual_seed(0)
    d = Discriminator(5000, 20, dropout_keep=1.0)
    tokens = torch.randint(0, 5000, (256, 20))
    labels = torch.randint(0, 2, (256,))
    loss32, _ = d.loss(tokens, labels, 0.2)
    grad32 = torch.autograd.grad(loss32, d.highway.weight)[0]
    p32 = d.prob_real(tokens)
    d.compute_dtype = torch.bfloat16
    loss16, _ = d.loss(tokens, labels, 0.2)
    grad16 = torch.autograd.grad(loss16, d.highway.weight)[0]
    p16 = d.prob_real(tokens)
    assert abs(loss16.item() - loss32.item()) < 0.01 * loss32.item()
    assert (p16 - p32).abs().max() < 0.02
    assert torch.nn.functional.cosine_similarity(grad16.flatten(), grad32.flatten(), dim=0) > 0.99
    assert p16.dtype == torch.float32


def test_bf16_training_matches_fp32_training():
    """Three epochs on the same data and batches: final training loss within 5 % and accuracy
    within 2 points of fp32."""
    from seqgan.train import discriminator_epochs

    positives = torch.randint(0, 25, (512, 10))
    negatives = torch.randint(15, 40, (512, 10))
    results = {}
    for dtype in (None, torch.bfloat16):
        torch.manual_seed(1)
        d = Discriminator(40, 10, emb_dim=16, filter_sizes=(1, 2, 3, 5), num_filters=(16, 16, 16, 16))
        d.compute_dtype = dtype
        opt = torch.optim.Adam(d.parameters(), lr=1e-3)
        results[dtype] = discriminator_epochs(d, opt, positives, negatives, 3, 64, 0.2)
    (loss32, acc32), (loss16, acc16) = results[None], results[torch.bfloat16]
    assert abs(loss16 - loss32) < 0.05 * loss32 and abs(acc16 - acc32) < 0.02
    assert acc32 > 0.8  # it learned something, so the comparison means something


@pytest.mark.parametrize("bad", [30, -1])
def test_out_of_range_tokens_raise(bad):
    d = Discriminator(30, 8, emb_dim=4, filter_sizes=(1, 3), num_filters=(2, 3))
    tokens = torch.zeros(2, 8, dtype=torch.long)
    tokens[1, 3] = bad
    with pytest.raises(IndexError, match="index out of range"):  # the embedding's check (CPU)
        d(tokens)


def test_unknown_highway_init_is_refused():
    with pytest.raises(ValueError, match="highway_init must be pytorch or glorot"):
        Discriminator(20, 8, highway_init="Glorot")
