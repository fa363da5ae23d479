"""Checks of the streaming contract, for this project's tests and for users' own models.

B: batch, T: time, C: channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sigstream.core.contract import StreamingModule


def stream_in_chunks(model: StreamingModule, x: Tensor, sizes: Sequence[int]) -> Tensor:
    """Concatenated ``step`` outputs for ``x`` (B, T, C) cut into pieces of ``sizes``."""
    if sum(sizes) != x.shape[1]:
        raise ValueError(f"chunk sizes add up to {sum(sizes)}, the signal has {x.shape[1]}")
    state = model.init_state(x.shape[0])
    outs, pos = [], 0
    for n in sizes:
        y, state = model.step(x[:, pos:pos + n], state)
        outs.append(y)
        pos += n
    return torch.cat(outs, dim=1)


def assert_streams_like_offline(model: StreamingModule, x: Tensor, sizes: Sequence[int],
                                atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Streamed output over ``sizes`` equals ``forward(x)``."""
    with torch.inference_mode():
        offline = model(x)
        streamed = stream_in_chunks(model, x, sizes)
    torch.testing.assert_close(streamed, offline, atol=atol, rtol=rtol)


def assert_causal(model: StreamingModule, x: Tensor, t: int, atol: float = 0.0) -> None:
    """Changing input at and after sample ``t`` changes no output before ``t - latency``.

    ``t`` counts input samples; for decimating models output index ``j`` covers
    input up to ``(j + 1) * decimation - 1``.
    """
    with torch.inference_mode():
        y1 = model(x)
        x2 = x.clone()
        x2[:, t:] = torch.randn_like(x2[:, t:]) * 10 + 3
        y2 = model(x2)
    n_safe = max(0, (t - model.latency) // model.decimation)
    torch.testing.assert_close(y1[:, :n_safe], y2[:, :n_safe], atol=atol, rtol=0)
    if n_safe < y1.shape[1]:  # the change must be visible somewhere after t, or the test is void
        assert not torch.allclose(y1[:, n_safe:], y2[:, n_safe:]), "future change had no effect"


def chunkings(total: int, hop: int = 1, max_pieces: int = 12):
    """A hypothesis strategy: ways to cut ``total`` frames (a multiple of ``hop``) into pieces
    that are multiples of ``hop``, empty pieces and one-hop pieces included."""
    from hypothesis import strategies as hs  # a test-only dependency

    units = total // hop

    @hs.composite
    def _draw(draw) -> list[int]:
        cuts = sorted(draw(hs.lists(hs.integers(0, units), max_size=max_pieces - 1)))
        sizes, prev = [], 0
        for c in [*cuts, units]:
            sizes.append((c - prev) * hop)
            prev = c
        return sizes

    return _draw()
