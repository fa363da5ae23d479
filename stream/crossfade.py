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

from sigstream.stream.contract import StreamingModule


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

    def __init__(self, model: nn.Module, window: int, hop: int, *,
                 in_channels: int | None = None, out_channels: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.window, self.hop = int(window), int(hop)
        self.latency = self.window - self.hop
        w = torch.from_numpy(crossfade_weights(self.window, self.hop)).float()
        self.register_buffer("weights", w, persistent=False)
        self.in_channels = in_channels or getattr(model, "in_channels", 1)
        self.out_channels = out_channels or getattr(model, "out_channels", self.in_channels)
        self.sample_rate = getattr(model, "sample_rate", None)

    def init_state(self, batch: int) -> CrossfadeState:
        dev, dt = self.weights.device, self.weights.dtype
        return CrossfadeState(
            torch.zeros(batch, self.latency, self.in_channels, device=dev, dtype=dt),
            torch.zeros(batch, self.latency, self.out_channels, device=dev, dtype=dt),
        )

    def step(self, x: Tensor, state: CrossfadeState) -> tuple[Tensor, CrossfadeState]:
        b, t, _ = x.shape
        if t % self.hop:
            raise ValueError(f"chunk length {t} is not a multiple of the hop {self.hop}")
        n_win = t // self.hop
        buf = torch.cat([state.in_tail, x], dim=1)  # (B, L + T, C_in)
        if n_win == 0:
            return x.new_zeros(b, 0, self.out_channels), state
        frames = buf.unfold(1, self.window, self.hop)  # (B, n_win, C_in, W)
        frames = frames.permute(0, 1, 3, 2).reshape(b * n_win, self.window, -1)
        out = self.model(frames)  # (B * n_win, W, C_out)
        out = out * self.weights[:, None]
        out = out.reshape(b, n_win, self.window, self.out_channels)
        # overlap-add: fold treats (C_out * W) as the column and n_win as the positions
        cols = out.permute(0, 3, 2, 1).reshape(b, self.out_channels * self.window, n_win)
        acc = F.fold(cols, output_size=(1, t + self.latency), kernel_size=(1, self.window),
                     stride=(1, self.hop))  # (B, C_out, 1, L + T)
        acc = acc[:, :, 0].transpose(1, 2)  # (B, L + T, C_out)
        if self.latency:
            acc = torch.cat([acc[:, : self.latency] + state.out_tail, acc[:, self.latency:]], 1)
        y = acc[:, :t]
        return y, CrossfadeState(buf[:, t:], acc[:, t:])

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        pad = -t % self.hop
        xp = F.pad(x, (0, 0, 0, pad))  # zeros after the end, up to a whole hop
        y, _ = self.step(xp, self.init_state(x.shape[0]))
        return y[:, :t]
