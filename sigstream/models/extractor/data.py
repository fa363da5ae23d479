"""Data for the frequency extractor: a mixture of sinusoids in, the pure components out.

S: sequences, T: time, K: components (4: 1, 3, 5, 7 Hz).

Two presets, both at 1000 Hz, 10 s (10,000 samples) per sequence:

``seed`` — the source document's recipe. Each component is
``A(t) sin(2 pi f t + phi(t))`` with amplitude ``A(t) ~ U(0.8, 1.2)`` and phase
``phi(t) ~ U(0, 2 pi)`` drawn afresh for *every sample*; the mixture
``S(t)`` is the mean of the four; the targets are the pure ``sin(2 pi f t)``.
Because the phase is redrawn every sample, ``S(t)`` is zero-mean noise that
carries almost no information about the targets: they are fixed functions of
time, and a model can only learn to be a clock started at the sequence start.
Train set seed 1, test set seed 2.

``realistic`` — extraction that must use the input. Each component has one
random phase per sequence, an amplitude ``a ~ U(0.8, 1.2)`` that drifts
slowly (``a (1 + depth sin(2 pi t / P + psi))``, period P ~ U(3, 12) s, depth
~ U(0, 0.3)); the mixture is the mean of the four plus white Gaussian noise at
``snr_db`` relative to the clean mixture's power; the targets are the clean
components (with their drift). Train set seed 1, test set seed 2, each with
many sequences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sigstream.core.errors import ConfigError

FREQS = (1.0, 3.0, 5.0, 7.0)
PRESETS = ("seed", "realistic")


@dataclass(frozen=True)
class ExtractorData:
    """mixture (S, T) float32, targets (S, T, K) float32, plus the recipe."""

    mixture: np.ndarray
    targets: np.ndarray
    freqs: tuple[float, ...]
    sample_rate: float
    preset: str
    seed: int

    @property
    def inputs(self) -> np.ndarray:
        """(S, T, 1) mixture as a model input."""
        return self.mixture[..., None]


@dataclass(frozen=True)
class DataConfig:
    """One generated set of sequences (see the module docstring for the presets)."""

    preset: str = field(default="realistic", metadata={
        "help": "which preset to train, as --model extractor:preset=P loads it: realistic "
                "(noisy mixtures of random amplitudes and phases) | seed (the source "
                "document's fixed mixture)",
        "choices": PRESETS})
    sequences: int = field(default=1, metadata={"help": "sequences in the set"})
    seconds: float = field(default=10.0, metadata={
        "help": "length of each sequence (s)", "option": "--clip-seconds",
        "renamed": ("--seconds",)})
    sample_rate: float = field(default=1000.0, metadata={"help": "sample rate (Hz)"})
    snr_db: float = field(default=0.0, metadata={"help": "realistic preset: SNR of the "
                                                         "mixture (dB)"})
    freqs: tuple[float, ...] = field(default=FREQS, metadata={"help": "component frequencies "
                                                                      "(Hz)"})

    def validate(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {PRESETS}")
        if self.sequences < 1 or self.seconds <= 0 or self.sample_rate <= 0:
            raise ConfigError("sequences, seconds and sample_rate must be positive")


def generate(config: DataConfig, seed: int) -> ExtractorData:
    """Generate a data set with the given recipe and seed (deterministic)."""
    config.validate()
    rng = np.random.default_rng(seed)
    n = int(round(config.seconds * config.sample_rate))
    t = np.arange(n) / config.sample_rate  # (T,)
    f = np.asarray(config.freqs)[:, None]  # (K, 1)
    k, s = len(config.freqs), config.sequences
    if config.preset == "seed":
        amp = rng.uniform(0.8, 1.2, size=(s, k, n))
        phi = rng.uniform(0.0, 2 * np.pi, size=(s, k, n))
        noisy = amp * np.sin(2 * np.pi * f * t + phi)  # (S, K, T)
        mixture = noisy.mean(axis=1)
        targets = np.broadcast_to(np.sin(2 * np.pi * f * t), (s, k, n))
    else:
        phase = rng.uniform(0.0, 2 * np.pi, size=(s, k, 1))
        base = rng.uniform(0.8, 1.2, size=(s, k, 1))
        period = rng.uniform(3.0, 12.0, size=(s, k, 1))
        depth = rng.uniform(0.0, 0.3, size=(s, k, 1))
        psi = rng.uniform(0.0, 2 * np.pi, size=(s, k, 1))
        amp = base * (1 + depth * np.sin(2 * np.pi * t / period + psi))
        targets = amp * np.sin(2 * np.pi * f * t + phase)  # (S, K, T)
        clean = targets.mean(axis=1)  # (S, T)
        power = np.mean(clean**2, axis=1, keepdims=True)
        sigma = np.sqrt(power / 10 ** (config.snr_db / 10))
        mixture = clean + sigma * rng.standard_normal((s, n))
    return ExtractorData(
        mixture=np.ascontiguousarray(mixture, dtype=np.float32),
        targets=np.ascontiguousarray(np.transpose(targets, (0, 2, 1)), dtype=np.float32),
        freqs=tuple(config.freqs), sample_rate=config.sample_rate,
        preset=config.preset, seed=seed,
    )


class MixtureStream:
    """An endless ``realistic``-preset stream for ``synth:mixture``: read(n) -> (mixture, targets).

    N: frames. ``mixture`` is (N, 1); the clean reference returned is the
    (N, 1) clean mixture (sum of components / K).
    """

    def __init__(self, sample_rate: float = 1000.0, seed: int = 0, snr_db: float = 0.0,
                 channels: int = 1) -> None:
        if channels != 1:
            raise ConfigError("the mixture source is mono; use channels=1")
        self.sample_rate, self.channels = sample_rate, 1
        self._rng = np.random.default_rng(seed)
        k = len(FREQS)
        self._f = np.asarray(FREQS)
        self._phase = self._rng.uniform(0, 2 * np.pi, k)
        self._amp = self._rng.uniform(0.8, 1.2, k)
        self._sigma = float(np.sqrt(np.mean(self._amp**2) / 2 / k / 10 ** (snr_db / 10)))
        self._n = 0

    def read(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        t = (self._n + np.arange(n)) / self.sample_rate
        comps = self._amp[:, None] * np.sin(2 * np.pi * self._f[:, None] * t + self._phase[:, None])
        clean = comps.mean(axis=0)[:, None]
        self._n += n
        noisy = clean + self._sigma * self._rng.standard_normal((n, 1))
        return noisy.astype(np.float32), clean.astype(np.float32)
