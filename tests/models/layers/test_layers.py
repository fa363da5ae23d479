"""Causal blocks: streamed equals offline for any chunking, and causality."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hs

from sigstream.core import state as st
from sigstream.core.contract import StreamSequential
from sigstream.core.testing import (
    assert_causal,
    assert_streams_like_offline,
    chunkings,
    stream_in_chunks,
)
from sigstream.models.layers.conv import CausalConv1d, CausalResidualBlock
from sigstream.models.layers.recurrent import StatefulGRU, StatefulLSTM

T = 60


def make(kind: str) -> torch.nn.Module:
    torch.manual_seed(1)
    models = {
        "conv": lambda: CausalConv1d(3, 4, 3),
        "conv_dilated": lambda: CausalConv1d(3, 4, 5, dilation=3),
        "conv_groups": lambda: CausalConv1d(4, 8, 3, dilation=2, groups=4),
        "conv_stride2": lambda: CausalConv1d(3, 5, 4, stride=2),
        "conv_stride3_dil2": lambda: CausalConv1d(3, 2, 3, dilation=2, stride=3),
        "conv_k1_stride4": lambda: CausalConv1d(3, 3, 1, stride=4),
        "residual": lambda: CausalResidualBlock(3, 3, dilation=4, hidden=8),
        "lstm": lambda: StatefulLSTM(3, 6, num_layers=2, dropout=0.3),
        "gru": lambda: StatefulGRU(3, 6, num_layers=3, dropout=0.3),
        "stack": lambda: StreamSequential(
            CausalConv1d(3, 6, 3, stride=2), CausalResidualBlock(6, 3, dilation=2),
            StatefulGRU(6, 5), CausalConv1d(5, 2, 2, dilation=3)),
    }
    return models[kind]().eval()


KINDS = ["conv", "conv_dilated", "conv_groups", "conv_stride2", "conv_stride3_dil2",
         "conv_k1_stride4", "residual", "lstm", "gru", "stack"]


@pytest.mark.parametrize("kind", KINDS)
@given(data=hs.data())
def test_streamed_equals_offline(kind: str, data) -> None:
    model = make(kind)
    batch = data.draw(hs.integers(1, 3), label="batch")
    x = torch.randn(batch, T, model.in_channels, generator=torch.Generator().manual_seed(batch))
    sizes = data.draw(chunkings(T, 1), label="sizes")
    assert_streams_like_offline(model, x, sizes)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sizes", [[1] * T, [7] * 8 + [4], [0, 13, 0, 47], [T], [0] * 3 + [T]])
def test_fixed_chunkings(kind: str, sizes: list[int]) -> None:
    model = make(kind)
    x = torch.randn(2, T, model.in_channels, generator=torch.Generator().manual_seed(3))
    assert_streams_like_offline(model, x, sizes)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("t", [1, 17, 40])
def test_causal(kind: str, t: int) -> None:
    model = make(kind)
    x = torch.randn(2, T, model.in_channels, generator=torch.Generator().manual_seed(4))
    assert_causal(model, x, t)


def test_conv_output_lengths_and_decimation_phase() -> None:
    conv = make("conv_stride3_dil2")
    assert conv.decimation == 3 and conv.hop == 1 and conv.latency == 0
    assert conv(torch.randn(1, 10, 3)).shape == (1, 3, 2)  # T // stride outputs
    assert conv(torch.randn(1, 2, 3)).shape == (1, 0, 2)
    state = conv.init_state(2)
    _, state = conv.step(torch.randn(2, 4, 3), state)
    assert state.rem.tolist() == [1, 1]
    mixed = state._replace(rem=torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="decimation phase"):
        conv.step(torch.randn(2, 1, 3), mixed)


STRIDED = ["conv_stride2", "conv_stride3_dil2", "conv_k1_stride4", "stack"]


def _step_at_phases(model, x: torch.Tensor, prefixes: list[int], sizes: list[int]):
    """Stream b of ``x`` (B, T, C) steps its first ``prefixes[b]`` frames alone, then all
    streams step together over ``sizes``; returns each stream's outputs, offline included."""
    outs, states = [], []
    with torch.inference_mode():
        for b, p in enumerate(prefixes):
            y, s = model.step(x[b:b + 1, :p], model.init_state(1))
            outs.append([y])
            states.append(s)
        state, pos = st.concat(states), 0
        for n in sizes:
            y, state = model.step(x[:, pos:pos + n], state)
            for b in range(len(prefixes)):
                outs[b].append(y[b:b + 1])
            pos += n
    return [torch.cat(o, dim=1) for o in outs], state


@pytest.mark.parametrize("kind", STRIDED)
@given(data=hs.data())
def test_streams_at_different_phases_stream_like_offline(kind: str, data) -> None:
    """Streams batched at different decimation phases, stepped in chunks that are multiples
    of the decimation: each stream equals the offline output of its own signal."""
    model = make(kind)
    d = model.decimation
    prefixes = data.draw(hs.lists(hs.integers(0, 3 * d - 1), min_size=3, max_size=3),
                         label="prefixes")
    rest = 10 * d
    sizes = data.draw(chunkings(rest, d), label="sizes")
    x = torch.randn(3, max(prefixes) + rest, model.in_channels,
                    generator=torch.Generator().manual_seed(5))
    xs = [torch.cat([x[b:b + 1, :p], x[b:b + 1, p:p + rest]], dim=1)
          for b, p in enumerate(prefixes)]  # (1, p + rest, C) each stream's whole signal
    got, _ = _step_at_phases(model, torch.cat([x[:, :max(prefixes)], x[:, :rest]], dim=1)
                             if False else _aligned(x, prefixes, rest), prefixes, sizes)
    with torch.inference_mode():
        for b, xb in enumerate(xs):
            torch.testing.assert_close(got[b], model(xb), atol=1e-5, rtol=1e-5)


def test_step_is_pure() -> None:
    model = make("lstm")
    state = model.init_state(2)
    before = [t.clone() for t in state]
    with torch.inference_mode():
        model.step(torch.randn(2, 5, 3), state)
    for a, b in zip(state, before, strict=True):
        assert torch.equal(a, b)


def test_state_is_batch_first() -> None:
    for kind in KINDS:
        model = make(kind)
        from sigstream.core.state import leaves

        for leaf in leaves(model.init_state(5)):
            assert leaf.shape[0] == 5, kind


def test_stack_attributes() -> None:
    stack = make("stack")
    assert stack.decimation == 2 and stack.hop == 1 and stack.latency == 0
    assert stack(torch.randn(1, 20, 3)).shape == (1, 10, 2)


@given(data=hs.data())
def test_identity_streams_like_offline_and_is_causal(data) -> None:
    from sigstream.core.contract import Identity

    model = Identity(2)
    x = torch.randn(2, T, 2)
    assert_streams_like_offline(model, x, data.draw(chunkings(T)))
    assert_causal(model, x, 30)
