"""OverlapCrossfade: exact weights, stated latency, length in == length out, streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hs

from sigstream.core.crossfade import OverlapCrossfade, crossfade_weights
from sigstream.core.testing import assert_causal, assert_streams_like_offline, chunkings

SHAPES = [(128, 64), (128, 32), (100, 30), (16, 16), (7, 3), (5, 1), (48, 47)]


class WindowNet(torch.nn.Module):
    """A non-causal window model: mixes every sample of its window (N, W, C) -> (N, W, C)."""

    def __init__(self, window: int, channels: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mix = torch.nn.Linear(window, window)
        self.chan = torch.nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.chan(torch.tanh(self.mix(x.transpose(1, 2)).transpose(1, 2)))


def reference_ola(model, x: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """Independent, slow overlap-add: frames start at k*hop - L on a zero-padded signal."""
    lat = window - hop
    b, t, c = x.shape
    n_frames = -(-t // hop)
    xp = torch.cat([torch.zeros(b, lat, c), x, torch.zeros(b, n_frames * hop - t, c)], 1)
    w = torch.from_numpy(crossfade_weights(window, hop)).float()
    acc = torch.zeros(b, lat + n_frames * hop, c)
    for k in range(n_frames):
        with torch.no_grad():
            acc[:, k * hop:k * hop + window] += model(xp[:, k * hop:k * hop + window]) * w[:, None]
    return acc[:, :t]  # output t is the crossfaded result for input t - lat


@pytest.mark.parametrize(("window", "hop"), SHAPES)
def test_weights_sum_to_one(window: int, hop: int) -> None:
    w = crossfade_weights(window, hop)
    assert w.shape == (window,) and np.all(w > 0)
    cover = np.zeros(hop)
    for start in range(0, window, hop):
        seg = w[start:start + hop]
        cover[: len(seg)] += seg
    np.testing.assert_allclose(cover, 1.0, rtol=0, atol=1e-15)


@pytest.mark.parametrize(("window", "hop"), SHAPES)
@pytest.mark.parametrize("length", [0, 1, 5, 64, 333, 1000])
def test_identity_reproduces_input_delayed(window: int, hop: int, length: int) -> None:
    xf = OverlapCrossfade(torch.nn.Identity(), window, hop, in_channels=2)
    x = torch.randn(3, length, 2)
    y = xf(x)
    assert y.shape == x.shape  # output length == input length, always
    lat = xf.latency
    assert lat == window - hop
    torch.testing.assert_close(y[:, lat:], x[:, : max(0, length - lat)], atol=1e-6, rtol=0)
    assert torch.all(y[:, :lat] == 0)


@pytest.mark.parametrize(("window", "hop"), SHAPES)
def test_matches_independent_overlap_add(window: int, hop: int) -> None:
    model = WindowNet(window, 2).eval()
    xf = OverlapCrossfade(model, window, hop, in_channels=2, out_channels=2).eval()
    x = torch.randn(2, 7 * hop + 3, 2)
    with torch.no_grad():
        torch.testing.assert_close(xf(x), reference_ola(model, x, window, hop),
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("window", "hop"), [(128, 32), (7, 3), (16, 16)])
@given(data=hs.data())
def test_streamed_equals_offline(window: int, hop: int, data) -> None:
    xf = OverlapCrossfade(WindowNet(window, 2), window, hop, in_channels=2).eval()
    n_hops = data.draw(hs.integers(0, 20), label="hops")
    b = data.draw(hs.integers(1, 3), label="batch")
    x = torch.randn(b, n_hops * hop, 2)
    assert_streams_like_offline(xf, x, data.draw(chunkings(n_hops * hop, hop)))


def test_causal_up_to_latency() -> None:
    xf = OverlapCrossfade(WindowNet(32, 1), 32, 8, in_channels=1).eval()
    x = torch.randn(1, 200, 1)
    for t in (40, 99, 150):
        assert_causal(xf, x, t)


def test_step_rejects_partial_hop() -> None:
    xf = OverlapCrossfade(torch.nn.Identity(), 8, 4, in_channels=1)
    with pytest.raises(ValueError, match="multiple of the hop"):
        xf.step(torch.zeros(1, 5, 1), xf.init_state(1))


def test_bad_window_hop() -> None:
    with pytest.raises(ValueError):
        crossfade_weights(8, 9)
    with pytest.raises(ValueError):
        crossfade_weights(8, 0)
