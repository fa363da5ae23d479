"""Synthetic streams: endless, seeded, phase-continuous test signals.

N: frames, C: channels.

A generator is stateful: ``read(n)`` returns the next ``n`` frames of the noisy
signal and of its clean reference, continuing where the last call stopped, so
a stream read in chunks of any size is identical to one read at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np


@dataclass(frozen=True)
class NoisySinesConfig:
    """Sines at ``freqs`` (Hz) with ``amps``, plus white noise at ``snr_db`` (per channel)."""

    freqs: tuple[float, ...] = (5.0, 11.0)
    amps: tuple[float, ...] = (0.6, 0.4)
    snr_db: float = 0.0
    sample_rate: float = 1000.0
    channels: int = 1
    seed: int = 0


class NoisySines:
    """A sum of sines with random phases per channel, plus white Gaussian noise."""

    def __init__(self, config: NoisySinesConfig | None = None) -> None:
        self.config = cfg = config or NoisySinesConfig()
        if len(cfg.freqs) != len(cfg.amps):
            raise ValueError("freqs and amps must have the same length")
        self._rng = np.random.default_rng(cfg.seed)
        self._phase = self._rng.uniform(0, 2 * np.pi, size=(len(cfg.freqs), cfg.channels))
        self._freqs = np.asarray(cfg.freqs, dtype=np.float64)[:, None, None]  # (K, 1, 1)
        self._amps = np.asarray(cfg.amps, dtype=np.float64)[:, None, None]
        clean_power = float(np.sum(np.asarray(cfg.amps) ** 2) / 2)
        self.noise_std = float(np.sqrt(clean_power / 10 ** (cfg.snr_db / 10)))
        self._n = 0
        self.sample_rate = cfg.sample_rate
        self.channels = cfg.channels

    def read(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``n`` frames: (noisy, clean), each (n, C) float32."""
        t = (self._n + np.arange(n)) / self.config.sample_rate  # (n,)
        arg = 2 * np.pi * self._freqs * t[None, :, None] + self._phase[:, None, :]  # (K, n, C)
        clean = np.sum(self._amps * np.sin(arg), axis=0)  # (n, C)
        noise = self._rng.standard_normal((n, self.channels)) * self.noise_std
        self._n += n
        return (clean + noise).astype(np.float32), clean.astype(np.float32)


@dataclass(frozen=True)
class GeneratorEntry:
    name: str
    description: str
    build: Callable[..., object]
    sample_rate: float


def _mixture(sample_rate: float = 1000.0, channels: int = 1, seed: int = 0,
             snr_db: float = 0.0):
    from sigstream.models.extractor.data import MixtureStream

    return MixtureStream(sample_rate=sample_rate, seed=seed, snr_db=snr_db, channels=channels)


def _ctg(sample_rate: float = 4.0, channels: int = 2, seed: int = 0, snr_db: float = 0.0):
    from sigstream.models.teb.data import ctg_stream

    return ctg_stream(sample_rate=sample_rate, channels=channels, seed=seed, snr_db=snr_db)


GENERATORS: Mapping[str, GeneratorEntry] = MappingProxyType({
    "sines": GeneratorEntry(
        "sines", "5 Hz + 11 Hz sines in white noise at 0 dB SNR, 1 kHz",
        lambda sample_rate=1000.0, channels=1, seed=0, snr_db=0.0: NoisySines(
            NoisySinesConfig(sample_rate=sample_rate, channels=channels, seed=seed,
                             snr_db=snr_db)),
        1000.0,
    ),
    "mixture": GeneratorEntry(
        "mixture", "1, 3, 5, 7 Hz sines (random phases) averaged, in white noise, 1 kHz",
        _mixture, 1000.0,
    ),
    "ctg": GeneratorEntry(
        "ctg", "synthetic cardiotocography: FHR (bpm) and UP (mmHg) with sensor loss, 4 Hz",
        _ctg, 4.0,
    ),
})
