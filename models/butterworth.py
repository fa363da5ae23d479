"""Causal Butterworth filters as a streamable model: the classical baseline.

B: batch, T: time, C: channels, S: second-order sections.

The filter is designed with ``scipy.signal.butter(output="sos")`` and run with
``scipy.signal.sosfilt``; its memory (``zi``) is the stream state, so the
streamed output equals ``sosfilt`` over the whole signal. Filtering runs in
float64 (IIR memories of low cut-offs need the precision); input and output
are float32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch
from scipy import signal
from torch import Tensor

from sigstream.stream.contract import StreamingModule
from sigstream.stream.errors import ConfigError

KINDS = ("lowpass", "highpass", "bandpass", "bandstop")


@dataclass(frozen=True)
class ButterworthConfig:
    """kind: lowpass | highpass | bandpass | bandstop; ``low``/``high`` in Hz.

    Low-pass uses ``high`` as its cut-off, high-pass uses ``low``; band filters use both.
    """

    kind: str = "lowpass"
    order: int = 4
    low: float = 1.0
    high: float = 40.0
    sample_rate: float = 1000.0
    channels: int = 1

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown Butterworth kind {self.kind!r}; choose one of {KINDS}")
        if not 1 <= self.order <= 16:
            raise ConfigError(f"Butterworth order must be 1..16, got {self.order}")
        if self.channels < 1:
            raise ConfigError(f"channels must be >= 1, got {self.channels}")
        nyq = self.sample_rate / 2
        edges = self.edges()
        for e in edges:
            if not 0 < e < nyq:
                raise ConfigError(
                    f"cut-off {e} Hz must lie strictly between 0 and Nyquist ({nyq} Hz)"
                )
        if len(edges) == 2 and not edges[0] < edges[1]:
            raise ConfigError(f"need low < high for a {self.kind} filter, got {edges}")

    def edges(self) -> tuple[float, ...]:
        if self.kind == "lowpass":
            return (self.high,)
        if self.kind == "highpass":
            return (self.low,)
        return (self.low, self.high)

    def sos(self) -> np.ndarray:
        """(S, 6) second-order sections."""
        self.validate()
        wn = self.edges()
        return signal.butter(self.order, wn if len(wn) == 2 else wn[0], btype=self.kind,
                             fs=self.sample_rate, output="sos")


class ButterworthState(NamedTuple):
    """zi: (B, S, 2, C) float64 filter memory (``sosfilt``'s axis-1 ``zi``, B and S swapped)."""

    zi: Tensor


class Butterworth(StreamingModule):
    """A causal IIR Butterworth filter, applied to every channel independently."""

    def __init__(self, config: ButterworthConfig | None = None) -> None:
        super().__init__()
        self.config = config or ButterworthConfig()
        self._sos = self.config.sos()
        self.in_channels = self.out_channels = self.config.channels
        self.sample_rate = self.config.sample_rate
        self.hop, self.latency = 1, 0

    @property
    def sos(self) -> np.ndarray:
        return self._sos.copy()

    def init_state(self, batch: int) -> ButterworthState:
        s = self._sos.shape[0]
        return ButterworthState(torch.zeros(batch, s, 2, self.in_channels, dtype=torch.float64))

    def step(self, x: Tensor, state: ButterworthState) -> tuple[Tensor, ButterworthState]:
        if x.shape[1] == 0:  # sosfilt cannot take an empty signal
            return x.new_zeros(x.shape), state
        zi = state.zi.detach().cpu().numpy().transpose(1, 0, 2, 3)  # (S, B, 2, C) for sosfilt
        xd = x.detach().cpu().numpy().astype(np.float64)
        y, zf = signal.sosfilt(self._sos, xd, axis=1, zi=zi)
        zf = np.ascontiguousarray(zf.transpose(1, 0, 2, 3))
        return torch.from_numpy(y.astype(np.float32)), ButterworthState(torch.from_numpy(zf))

    def forward(self, x: Tensor) -> Tensor:
        y = signal.sosfilt(self._sos, x.detach().numpy().astype(np.float64), axis=1)
        return torch.from_numpy(y.astype(np.float32))

    def describe(self) -> dict:
        return asdict(self.config)
