"""TEB-VAE building blocks: schedules, MLPs, channel reduction, residual modes, smoothing,
upsampling, initialisation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from torch import nn

from sigstream.core.testing import assert_causal, assert_streams_like_offline, chunkings
from sigstream.models.layers.blocks import (
    ChannelReductionBlock,
    FastTemporalSmoother,
    ResidualMLP,
    UpsamplingBlock,
    gaussian_kernel,
    geometric_schedule,
    init_weights,
)
from sigstream.models.layers.conv import CausalResidualBlock, ConvState, ResidualBlockState


def test_geometric_schedule() -> None:
    assert geometric_schedule(16, 128, 6) == [22, 29, 39, 53, 71, 95, 128]
    assert geometric_schedule(66, 16, 5) == [52, 41, 32, 26, 20, 16]
    assert geometric_schedule(10, 10, 2) == [10, 10, 10]
    assert geometric_schedule(4, 8, 0) == [8]
    s = geometric_schedule(176, 480, 10)
    assert len(s) == 11 and s[-1] == 480 and s == sorted(s)
    with pytest.raises(ValueError):
        geometric_schedule(0, 4, 1)


def test_residual_mlp_shapes_and_skip() -> None:
    torch.manual_seed(0)
    m = ResidualMLP(32, [26, 32, 32])
    assert isinstance(m.skip, nn.Identity)
    x = torch.randn(3, 7, 32)
    assert m(x).shape == (3, 7, 32)
    p = ResidualMLP(128, [102, 82, 66, 53], dropout=0.1)
    assert isinstance(p.skip, nn.Linear) and p(torch.randn(5, 128)).shape == (5, 53)
    # the skip path really carries the input: zero the body's last layer -> output = skip(x)
    with torch.no_grad():
        m.body[-1].weight.zero_()
        m.body[-1].bias.zero_()
    torch.testing.assert_close(m(x), x)
    # post-norm output is LayerNorm'ed then GELU'd
    q = ResidualMLP(8, [8], post_norm=True)
    assert q(torch.randn(4, 8)).min() >= -0.2


def test_channel_reduction_streams_and_is_causal() -> None:
    torch.manual_seed(0)
    m = ChannelReductionBlock(19, 8, kernel_size=3).eval()
    x = torch.randn(2, 40, 19)
    assert m(x).shape == (2, 40, 8)
    for sizes in ([1] * 40, [7] * 5 + [5], [0, 13, 0, 27]):
        assert_streams_like_offline(m, x, sizes)
    assert_causal(m, x, 17)


RESIDUAL_VARIANTS = {
    "pointwise": lambda: CausalResidualBlock(6, 3, dilation=2, hidden=10),
    "standard": lambda: CausalResidualBlock(6, 5, mode="standard", dilation=2, expansion=2.0),
    "standard_gated_contract": lambda: CausalResidualBlock(6, 3, mode="standard", gated=True,
                                                           expansion=0.5, out_channels=4),
    "depthwise": lambda: CausalResidualBlock(6, 7, mode="depthwise", dilation=3),
    "depthwise_gated_expand": lambda: CausalResidualBlock(6, 3, mode="depthwise", gated=True,
                                                          expansion=1.5, out_channels=9),
}


@pytest.mark.parametrize("name", sorted(RESIDUAL_VARIANTS))
@given(sizes=chunkings(48))
def test_residual_block_modes_stream(name: str, sizes: list[int]) -> None:
    torch.manual_seed(1)
    m = RESIDUAL_VARIANTS[name]().eval()
    x = torch.randn(3, 48, 6)
    assert_streams_like_offline(m, x, sizes)


@pytest.mark.parametrize("name", sorted(RESIDUAL_VARIANTS))
def test_residual_block_modes_shapes_state_causality(name: str) -> None:
    torch.manual_seed(2)
    m = RESIDUAL_VARIANTS[name]().eval()
    x = torch.randn(2, 30, 6)
    assert m(x).shape == (2, 30, m.out_channels)
    state = m.init_state(2)
    assert isinstance(state, ResidualBlockState if m.mode == "standard" else ConvState)
    assert_causal(m, x, 11)


def test_residual_block_gate_and_errors() -> None:
    torch.manual_seed(3)
    m = CausalResidualBlock(4, 3, mode="depthwise", gated=True).eval()
    assert m.pw2.out_features == 8  # doubled for the GLU gate
    with pytest.raises(ValueError, match="unknown mode"):
        CausalResidualBlock(4, mode="bidirectional")
    with pytest.raises(ValueError, match="pointwise"):
        CausalResidualBlock(4, out_channels=6)


def test_fast_temporal_smoother_starts_as_gaussian_blend() -> None:
    m = FastTemporalSmoother(3, kernel_size=11).eval()
    x = torch.zeros(2, 50, 3)
    x[:, 25] = 1.0  # an impulse in the middle of the horizon
    y = m(x)
    k = gaussian_kernel(11)
    # blend 0.5: half the impulse, plus half the Gaussian kernel around it
    torch.testing.assert_close(y[0, 20:31, 0], 0.5 * k + 0.5 * (torch.arange(11) == 5).float())
    assert y.shape == x.shape
    with pytest.raises(ValueError):
        FastTemporalSmoother(3, kernel_size=10)


@pytest.mark.parametrize(("length", "factor"), [(30, 4), (7, 3), (5, 1)])
def test_upsampling_block_exact_length(length: int, factor: int) -> None:
    torch.manual_seed(4)
    m = UpsamplingBlock(6, 4, factor).eval()
    x = torch.randn(3, length, 6)
    assert m(x).shape == (3, length * factor, 4)
    assert m(x, length * factor + 3).shape == (3, length * factor + 3, 4)
    assert m(x, length * factor - 2).shape == (3, length * factor - 2, 4)


def test_init_weights() -> None:
    torch.manual_seed(5)
    model = nn.ModuleDict({"lin": nn.Linear(20, 30), "lstm": nn.LSTM(8, 16, 2),
                           "ln": nn.LayerNorm(5), "smooth": FastTemporalSmoother(2, 5)})
    with torch.no_grad():
        model["ln"].weight.fill_(3.0)
        model["smooth"].smooth.weight.fill_(7.0)
    init_weights(model)
    bound = (6 / (20 + 30)) ** 0.5
    assert model["lin"].weight.detach().abs().max() <= bound
    assert float(model["lin"].bias.detach().abs().sum()) == 0
    lstm = model["lstm"]
    w = lstm.weight_hh_l1  # (64, 16): orthogonal columns
    torch.testing.assert_close(w.T @ w, torch.eye(16), atol=1e-5, rtol=0)
    assert torch.all(lstm.bias_ih_l0[16:32] == 1) and torch.all(lstm.bias_ih_l0[:16] == 0)
    assert torch.all(lstm.bias_hh_l0 == 0)
    assert torch.all(model["ln"].weight == 1)
    torch.testing.assert_close(model["smooth"].smooth.weight[0, 0], gaussian_kernel(5))
