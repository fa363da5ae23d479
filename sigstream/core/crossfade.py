"""OverlapCrossfade: stream a fixed-window model with overlapping, crossfaded windows.

B: batch, T: time, C: channels, W: window, H: hop, L = W - H: latency.

A window model maps ``(N, W, C_in) -> (N, W, C_out)`` and is not causal inside
its window. The stream is cut into windows that start every H samples; each
window's output is multiplied by crossfade weights and overlap-added. The
weights are normalised so that, at every sample, the weights of the windows
covering it sum to one — an identity model gives its input back exactly.

Alignment: the stream is preceded by L zeros, so window k covers input samples
``[k*H - L, (k+1)*H)``. When input sample ``(k+1)*H - 1`` arrives, window k is
complete, and output samples up to ``(k+1)*H - L - 1`` have received every
contribution. Output sample t is therefore the crossfaded result for input
sample ``t - L``: ``latency = L`` samples, and exactly as many samples come out
as go in. ``forward`` pads the end with zeros up to a multiple of H and trims,
so it works for any length; ``step`` takes multiples of H.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sigstream.core.contract import StreamingModule


class CrossfadeState(NamedTuple):
    """in_tail: (B, L, C_in) last L inputs; out_tail: (B, L, C_out) partial sums not yet final."""

    in_tail: Tensor
    out_tail: Tensor


def crossfade_weights(window: int, hop: int) -> np.ndarray:
    """(W,) float64 weights whose shifted copies (by multiples of ``hop``) sum to exactly one.

    A raised-sine taper (never zero) divided by the sum of its overlapping copies.
    """
    if not 1 <= hop <= window:
        raise ValueError(f"need 1 <= hop <= window, got window={window}, hop={hop}")
    n = np.arange(window)
    taper = np.sin(np.pi * (n + 0.5) / window) ** 2 if hop < window else np.ones(window)
    cover = np.zeros(hop)
    for start in range(0, window, hop):  # fold the taper onto one hop period
        seg = taper[start:start + hop]
        cover[: len(seg)] += seg
    return taper / cover[n % hop]


class OverlapCrossfade(StreamingModule):
    """Run a window model over a stream; implements the streaming contract itself.

    ``hop`` is the contract's hop (chunks are multiples of it), ``latency`` is
    ``window - hop`` samples.
    """

    weights: Tensor  # (W,) crossfade weights, a non-persistent buffer

    def __init__(self, model: nn.Module, window: int, hop: int, *,
                 in_channels: int | None = None, out_channels: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.window, self.hop = int(window), int(hop)
        self.latency = self.window - self.hop
        w = torch.from_numpy(crossfade_weights(self.window, self.hop)).float()
        self.register_buffer("weights", w, persistent=False)
        self.in_channels = in_channels if in_channels else getattr(model, "in_channels", 1)
        self.out_channels = (out_channels if out_channels
                             else getattr(model, "out_channels", self.in_channels))
        self.sample_rate = getattr(model, "sample_rate", None)

    def init_state(self, batch: int) -> CrossfadeState:
        dev, dt = self.weights.device, self.weights.dtype
        return CrossfadeState(
            torch.zeros(batch, self.latency, self.in_channels, device=dev, dtype=dt),
            torch.zeros(batch, self.latency, self.out_channels, device=dev, dtype=dt),
        )

    def step(self, x: Tensor, state: CrossfadeState) -> tuple[Tensor, CrossfadeState]:
        # Only reshapes, static pads, slices and sums: this traces and exports to ONNX with
        # dynamic B and T (F.unfold/F.fold do not). With m = ceil(W / H) and the window
        # zero-padded to m*H, window k is the blocks k .. k+m-1 of the H-sample blocks of
        # ``buf``, and its block j lands on output block k + j.
        b, t, _ = x.shape
        tracing = torch.jit.is_tracing()
        if not tracing:  # traced graphs take T > 0 multiples of the hop (runners check)
            if t % self.hop:
                raise ValueError(f"chunk length {t} is not a multiple of the hop {self.hop}")
            if t == 0:
                return x.new_zeros(b, 0, self.out_channels), state
        w, h, lat = self.window, self.hop, self.latency
        m = -(-w // h)  # H-blocks per (padded) window
        extra = m * h - w  # (n_win + m - 1) * H == L + T + extra
        buf = torch.cat([state.in_tail, x], dim=1)  # (B, L + T, C_in)
        blocks = _pad_time(buf, 0, extra)
        blocks = blocks.reshape(b, -1, h, self.in_channels)  # (B, n_win + m - 1, H, C_in)
        nb = blocks.shape[1]
        frames = torch.stack([blocks[:, j:nb - (m - 1 - j)] for j in range(m)], dim=2)
        frames = frames.reshape(b, -1, m * h, self.in_channels)[:, :, :w]  # (B, n_win, W, C)
        n_win = frames.shape[1]
        out = self.model(frames.reshape(-1, w, self.in_channels))  # (B * n_win, W, C_out)
        out = (out * self.weights[:, None]).reshape(b, n_win, w, self.out_channels)
        out = _pad_time(out.transpose(1, 2), 0, extra)  # (B, m * H, n_win, C_out)
        out = out.reshape(b, m, h, n_win, self.out_channels).transpose(2, 3)  # (B, m, n_win, H, C)
        acc = _pad_time(out[:, 0], 0, m - 1)  # (B, n_win + m - 1, H, C_out)
        for j in range(1, m):  # overlap-add: block j of window k goes to block k + j
            acc = acc + _pad_time(out[:, j], j, m - 1 - j)
        acc = acc.reshape(b, -1, self.out_channels)  # (B, L + T + extra, C_out)
        if lat:
            acc = torch.cat([acc[:, :lat] + state.out_tail, acc[:, lat:]], 1)
        y = acc[:, :t]
        return y, CrossfadeState(buf[:, t:], acc[:, t:t + lat])

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        pad = -t % self.hop
        xp = F.pad(x, (0, 0, 0, pad))  # zeros after the end, up to a whole hop
        y, _ = self.step(xp, self.init_state(x.shape[0]))
        return y[:, :t]


def _pad_time(x: Tensor, before: int, after: int) -> Tensor:
    """Zeros before and after along dim 1 (a concatenation: exports to ONNX more cleanly
    than ``F.pad`` on an inner dimension)."""
    if not before and not after:
        return x
    parts = [x]
    if before:
        parts.insert(0, x.new_zeros(x.shape[0], before, *x.shape[2:]))
    if after:
        parts.append(x.new_zeros(x.shape[0], after, *x.shape[2:]))
    return torch.cat(parts, dim=1)
