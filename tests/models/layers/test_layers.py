"""Causal blocks: streamed equals offline for any chunking, and causality."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hs

from sigstream.core import state as st
from sigstream.core.contract import StreamSequential
from sigstream.core.testing import assert_causal, assert_streams_like_offline, chunkings
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


def step_at_phases(model, x: torch.Tensor, prefixes: list[int], sizes: list[int]
                   ) -> list[torch.Tensor]:
    """Stream b of ``x`` (B, T, C) steps its first ``prefixes[b]`` frames alone, then the B
    streams step together over the next ``sizes`` frames of each; returns every stream's
    concatenated output (1, T_b', C_out)."""
    outs, states = [], []
    with torch.inference_mode():
        for b, p in enumerate(prefixes):
            y, s = model.step(x[b:b + 1, :p], model.init_state(1))
            outs.append([y])
            states.append(s)
        tail = torch.stack([x[b, p:p + sum(sizes)] for b, p in enumerate(prefixes)])
        state, pos = st.concat(states), 0  # tail: (B, sum(sizes), C)
        for n in sizes:
            y, state = model.step(tail[:, pos:pos + n], state)
            for b, out in enumerate(outs):
                out.append(y[b:b + 1])
            pos += n
    return [torch.cat(out, dim=1) for out in outs]


@pytest.mark.parametrize("kind", STRIDED)
@given(data=hs.data())
def test_streams_at_different_phases_stream_like_offline(kind: str, data) -> None:
    """Streams batched at different decimation phases and stepped in chunks that are multiples
    of the decimation: each stream equals the offline output of its own signal."""
    model = make(kind)
    d = model.decimation
    prefixes = data.draw(hs.lists(hs.integers(0, 3 * d - 1), min_size=3, max_size=3),
                         label="prefixes")
    sizes = data.draw(chunkings(10 * d, d), label="sizes")
    x = torch.randn(3, max(prefixes) + 10 * d, model.in_channels,
                    generator=torch.Generator().manual_seed(5))
    got = step_at_phases(model, x, prefixes, sizes)
    with torch.inference_mode():
        for b, p in enumerate(prefixes):
            want = model(x[b:b + 1, :p + 10 * d])
            assert got[b].shape == want.shape
            torch.testing.assert_close(got[b], want, atol=1e-5, rtol=1e-5)


def test_mixed_phases_take_stride_multiples_only() -> None:
    conv = make("conv_stride3_dil2")
    x = torch.randn(3, 40, 3, generator=torch.Generator().manual_seed(6))
    # phases 0, 1, 2: chunks of 3, 6, 0 and 12 give every stream its own offline output
    got = step_at_phases(conv, x, [3, 4, 5], [3, 6, 0, 12])
    with torch.inference_mode():
        for b, p in enumerate([3, 4, 5]):
            torch.testing.assert_close(got[b], conv(x[b:b + 1, :p + 21]), atol=1e-5, rtol=1e-5)
    state = st.concat([conv.step(x[b:b + 1, :p], conv.init_state(1))[1] for b, p in
                       enumerate([3, 4, 5])])
    assert state.rem.tolist() == [0, 1, 2]
    before = [leaf.clone() for leaf in st.leaves(state)]
    for t in (1, 4, 5):  # the streams would complete different numbers of groups
        with pytest.raises(ValueError, match=rf"decimation phases need chunks that are a "
                                             rf"multiple of the stride 3 \(got {t}\); step "
                                             rf"them separately"):
            conv.step(x[:, :t], state)
    for a, b in zip(st.leaves(state), before, strict=True):  # a refused step changes nothing
        assert torch.equal(a, b)
    # equal phases take any chunk length, and stay equal
    y, same = conv.step(x[:, :4], state._replace(rem=torch.tensor([2, 2, 2])))
    assert y.shape == (3, 2, 2) and same.rem.tolist() == [0, 0, 0]


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
