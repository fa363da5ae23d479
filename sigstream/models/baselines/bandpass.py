"""The classical baseline for extraction: one causal Butterworth band-pass per frequency.

S: sequences, T: time, K: components.

Each component is estimated as ``gain * sosfilt(bandpass(f_k), mixture)`` —
causal, zero lookahead. The mixture is the mean of K components, so the
natural gain is K. Order and bandwidth are chosen per frequency by the lowest
MSE on the *training* data from a small grid, so the baseline is tuned as
fairly as the model is trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

ORDERS = (1, 2, 3)
BANDWIDTHS = (0.25, 0.5, 1.0, 1.5)  # Hz, total width around the centre frequency


@dataclass(frozen=True)
class BandSpec:
    freq: float
    order: int
    bandwidth: float

    def sos(self, sample_rate: float) -> np.ndarray:
        lo = max(self.freq - self.bandwidth / 2, 1e-3)
        hi = self.freq + self.bandwidth / 2
        return signal.butter(self.order, [lo, hi], btype="bandpass", fs=sample_rate,
                             output="sos")


def apply(bands: list[BandSpec], mixture: np.ndarray, sample_rate: float,
          gain: float) -> np.ndarray:
    """(S, T) mixture -> (S, T, K) causal band-pass estimates."""
    out = [gain * signal.sosfilt(b.sos(sample_rate), mixture.astype(np.float64), axis=-1)
           for b in bands]
    return np.stack(out, axis=-1).astype(np.float32)


def tune(freqs: tuple[float, ...], mixture: np.ndarray, targets: np.ndarray,
         sample_rate: float, gain: float) -> list[BandSpec]:
    """Per frequency, the (order, bandwidth) with the lowest training MSE."""
    best: list[BandSpec] = []
    for k, f in enumerate(freqs):
        scored = []
        for order in ORDERS:
            for bw in BANDWIDTHS:
                spec = BandSpec(f, order, bw)
                est = apply([spec], mixture, sample_rate, gain)[..., 0]
                scored.append((float(np.mean((est - targets[..., k]) ** 2)), order, bw))
        _, order, bw = min(scored)
        best.append(BandSpec(f, order, bw))
    return best
