"""Monte-Carlo dropout: spread only from dropout, batch-norm untouched, flags restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sigstream.models.uncertainty import dropout_layers, has_dropout, mc_dropout


def _net(p: float) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(16, 3))


def test_spread_with_dropout_and_none_without() -> None:
    x = torch.randn(5, 6)
    mean, std = mc_dropout(_net(0.3).eval(), x, 16, seed=1)
    assert mean.shape == std.shape == (5, 3)
    assert float(std.min()) > 0
    _, std0 = mc_dropout(_net(0.0).eval(), x, 16, seed=1)
    assert float(std0.abs().max()) == 0.0
    assert not has_dropout(_net(0.0)) and has_dropout(_net(0.3))


def test_batchnorm_stays_in_eval_and_flags_are_restored() -> None:
    net = _net(0.3)
    net.train()  # caller's mode: restored afterwards
    bn = net[1]
    before = bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)
    x = torch.randn(4, 6)
    mean, _ = mc_dropout(net, x, 8, seed=2)
    assert torch.equal(bn.running_mean, before[0]) and int(bn.num_batches_tracked) == before[2]
    assert net.training and bn.training and net[3].training
    # the mean is the eval-mode network with dropout only: close to the plain eval output
    net.eval()
    with torch.no_grad():
        plain = net(x)
    assert torch.allclose(mean, plain, atol=1.0)
    assert not net[3].training


def test_seed_reproducible_batched_callable_and_structures() -> None:
    net = _net(0.3).eval()
    x = torch.randn(3, 6)
    a = mc_dropout(net, x, 10, seed=4)
    b = mc_dropout(net, x, 10, seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    mb, sb = mc_dropout(net, x, 10, seed=4, batched=True)
    assert mb.shape == (3, 3) and float(sb.min()) > 0
    # a plain callable needs module=; tuple outputs keep their structure
    (m1, m2), (s1, s2) = mc_dropout(lambda v: (net(v), net(v).sum(1)), x, 6, module=net, seed=0)
    assert m1.shape == (3, 3) and m2.shape == (3,) and float(s2.min()) > 0
    with pytest.raises(TypeError, match="module"):
        mc_dropout(lambda v: net(v), x, 3)
    with pytest.raises(ValueError):
        mc_dropout(net, x, 0)
    n1 = mc_dropout(lambda v: net(torch.from_numpy(v)).numpy(), np.ones((2, 6), np.float32),
                    1, module=net)
    assert np.all(n1[1] == 0)  # one pass: no spread


def test_recurrent_dropout_is_found() -> None:
    gru = nn.GRU(4, 8, num_layers=2, dropout=0.2)
    assert gru in dropout_layers(gru)
    assert dropout_layers(nn.GRU(4, 8, num_layers=1)) == []
