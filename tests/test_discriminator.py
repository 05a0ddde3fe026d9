"""The CNN + highway discriminator."""

import torch

from seqgan.discriminator import Discriminator


def test_paper_shapes_and_init():
    d = Discriminator(5000, 20)
    assert d.out.in_features == 1720  # sum of the paper's filter counts
    assert [c.kernel_size[0] for c in d.convs] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20]
    assert d.embedding.weight.abs().max() <= 1.0
    assert torch.all(d.highway_gate.bias == 0) and torch.all(d.out.bias == 0.1)
    assert abs(d.dropout.p - 0.25) < 1e-12
    tokens = torch.randint(0, 5000, (3, 20))
    assert d(tokens).shape == (3, 2)


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
    assert torch.allclose(a, b, atol=1e-6) and d.training  # chunk size only changes float32 rounding
    d.eval()
    assert torch.allclose(a, torch.softmax(d(tokens), dim=1)[:, 1])
