"""Savitzky-Golay smoothing as a window model, streamed through OverlapCrossfade.

N: windows, W: window, C: channels.

``scipy.signal.savgol_filter`` (mode "interp") is linear in its input, so on a
fixed window it is a (W, W) matrix: we build that matrix once by filtering the
identity, and a window's output is one matrix product. The window model is not
causal inside its window; :class:`~sigstream.core.crossfade.OverlapCrossfade`
streams it with a latency of ``window - hop`` samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import signal
from torch import Tensor, nn

from sigstream.core.crossfade import OverlapCrossfade
from sigstream.core.errors import ConfigError


@dataclass(frozen=True)
class SavgolConfig:
    """window/hop: crossfade framing; length/order: the Savitzky-Golay fit."""

    window: int = 64
    hop: int = 16
    length: int = 15
    order: int = 3
    sample_rate: float = 1000.0
    channels: int = 1

    def validate(self) -> None:
        if not 1 <= self.hop <= self.window:
            raise ConfigError(f"need 1 <= hop <= window, got hop={self.hop}, window={self.window}")
        if self.length % 2 == 0 or not self.order < self.length <= self.window:
            raise ConfigError(
                f"Savitzky-Golay length must be odd, > order and <= window; got length="
                f"{self.length}, order={self.order}, window={self.window}"
            )


class SavgolWindow(nn.Module):
    """(N, W, C) -> (N, W, C): Savitzky-Golay smoothing of each window."""

    def __init__(self, config: SavgolConfig) -> None:
        super().__init__()
        config.validate()
        eye = np.eye(config.window)
        mat = signal.savgol_filter(eye, config.length, config.order, axis=0, mode="interp")
        self.register_buffer("matrix", torch.from_numpy(mat).float())  # (W, W): y = M @ x
        self.in_channels = self.out_channels = config.channels

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(self.matrix, x)


def savgol_stream(config: SavgolConfig) -> OverlapCrossfade:
    """The streamable Savitzky-Golay smoother (hop ``config.hop``, latency window - hop)."""
    model = OverlapCrossfade(SavgolWindow(config), config.window, config.hop,
                             in_channels=config.channels)
    model.sample_rate = config.sample_rate
    return model
