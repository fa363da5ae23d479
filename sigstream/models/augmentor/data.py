"""The vibration-sensor enhancement task: low-quality windows in, high-quality windows out.

N: windows, W: window length (128), T: time (samples of a long stream).

A vibration is two sinusoids, ``a1 sin(2π f1 t + p1) + a2 sin(2π f2 t + p2)`` with
``f1 ~ U(5, 20) Hz``, ``f2 ~ U(25, 40) Hz``, ``a1 ~ U(0.7, 1.0)``, ``a2 ~ U(0.3, 0.6)`` and
phases ``~ U(0, 2π)``. The high-quality sensor reads it with ``N(0, 0.02)`` noise. The
low-quality sensor sees the high-quality signal through the low-pass response
``1 / (1 + 0.1 f)`` (f in Hz: 40 Hz keeps a fifth of its amplitude), plus ``N(0, 0.2)`` noise
and a slow drift ``0.2 sin(2π 0.1 t + pd)``.

Actuator targets of a window, from its high-quality signal:
``damping = 0.5 + 0.5 (max - min)`` and
``stiffness = 0.2 + 0.8 k / (W/2)`` where ``k >= 1`` is the strongest non-DC bin of
``|rfft(window)|`` (``W/2`` is the last bin index, 64 for 128 samples).

Sample rate: 100 Hz (t = n / 100), the rate the source document uses for its filter;
a window is 1.28 s. Two deliberate departures from the source document, both so that
windows are crops of a real stream: the low-pass response is applied to a segment three
windows long and the middle window kept (the source filters each window circularly,
wrapping its end onto its start), and the drift has a random phase per window (the
source's fixed phase puts the same ramp into every window).

``generate_stream`` is the long-stream version: the same sensors over a continuous
signal whose frequencies and amplitudes wander slowly (periods of tens of seconds)
within the same ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from sigstream.core.errors import ConfigError

__all__ = ["VibrationConfig", "VibrationSet", "VibrationSplits", "VibrationStream",
           "lowpass_response", "actuator_targets", "generate_windows", "make_splits",
           "generate_stream", "frame", "redraw_noise", "degrade"]


@dataclass(frozen=True)
class VibrationConfig:
    """The sensor model; defaults are the source document's figures."""

    window: int = field(default=128, metadata={"help": "window length in samples"})
    sample_rate: float = field(default=100.0, metadata={"help": "sample rate (Hz)"})
    f1: tuple[float, float] = field(default=(5.0, 20.0), metadata={
        "help": "frequency range of the first component (Hz)"})
    f2: tuple[float, float] = field(default=(25.0, 40.0), metadata={
        "help": "frequency range of the second component (Hz), below Nyquist"})
    a1: tuple[float, float] = field(default=(0.7, 1.0), metadata={
        "help": "amplitude range of the first component"})
    a2: tuple[float, float] = field(default=(0.3, 0.6), metadata={
        "help": "amplitude range of the second component"})
    hq_noise: float = field(default=0.02, metadata={"help": "noise std of the high-quality "
                                                            "sensor"})
    lq_noise: float = field(default=0.2, metadata={"help": "noise std of the low-quality "
                                                           "sensor"})
    lowpass_k: float = field(default=0.1, metadata={
        "help": "low-quality response 1 / (1 + k f)"})
    drift_amplitude: float = field(default=0.2, metadata={"help": "low-quality drift "
                                                                  "amplitude"})
    drift_freq: float = field(default=0.1, metadata={"help": "low-quality drift frequency "
                                                             "(Hz)"})

    def validate(self) -> None:
        if self.window < 8:
            raise ConfigError(f"vibration window must be >= 8 samples, got {self.window}")
        if not self.sample_rate > 0:
            raise ConfigError(f"sample_rate must be > 0, got {self.sample_rate}")
        if max(self.f2) >= self.sample_rate / 2:
            raise ConfigError(f"f2 range {self.f2} must stay below Nyquist "
                              f"({self.sample_rate / 2} Hz)")


class VibrationSet(NamedTuple):
    """lq, hq, clean: (N, W) float32; actuator: (N, 2) float32 (damping, stiffness);
    filtered: (N, W) float32, the high-quality signal through the low-pass response (the
    low-quality reading before its noise and drift, for :func:`redraw_noise`)."""

    lq: np.ndarray
    hq: np.ndarray
    clean: np.ndarray
    actuator: np.ndarray
    filtered: np.ndarray

    @property
    def size(self) -> int:
        """N, the number of windows (``len()`` of a NamedTuple is its field count)."""
        return int(self.lq.shape[0])

    def take(self, idx: np.ndarray) -> VibrationSet:
        return VibrationSet(*(a[idx] for a in self))


class VibrationSplits(NamedTuple):
    train: VibrationSet
    val: VibrationSet
    test: VibrationSet


class VibrationStream(NamedTuple):
    """lq, hq, clean: (T,) float32; f1, f2: (T,) instantaneous frequencies in Hz."""

    lq: np.ndarray
    hq: np.ndarray
    clean: np.ndarray
    f1: np.ndarray
    f2: np.ndarray
    sample_rate: float


def lowpass_response(x: np.ndarray, sample_rate: float, k: float = 0.1) -> np.ndarray:
    """(..., T) -> (..., T): multiply the spectrum by ``1 / (1 + k f)`` (zero phase, circular)."""
    spec = np.fft.rfft(x, axis=-1)
    f = np.fft.rfftfreq(x.shape[-1], 1.0 / sample_rate)
    return np.fft.irfft(spec / (1.0 + k * f), n=x.shape[-1], axis=-1)


def actuator_targets(hq: np.ndarray) -> np.ndarray:
    """(..., W) high-quality windows -> (..., 2) float32 (damping, stiffness), as defined above."""
    hq = np.asarray(hq, dtype=np.float64)
    mag = np.abs(np.fft.rfft(hq, axis=-1))
    peak_bin = np.argmax(mag[..., 1:], axis=-1) + 1
    damping = 0.5 + 0.5 * (hq.max(axis=-1) - hq.min(axis=-1))
    stiffness = 0.2 + 0.8 * peak_bin / (mag.shape[-1] - 1)
    return np.stack([damping, stiffness], axis=-1).astype(np.float32)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], size=(n, 1))


def generate_windows(n: int, config: VibrationConfig = VibrationConfig(),
                     seed: int = 0) -> VibrationSet:
    """``n`` independent windows of the task (seeded)."""
    config.validate()
    if n < 1:
        raise ConfigError(f"need at least one window, got n={n}")
    rng = np.random.default_rng(seed)
    w, fs = config.window, config.sample_rate
    f1, f2 = _uniform(rng, config.f1, n), _uniform(rng, config.f2, n)
    a1, a2 = _uniform(rng, config.a1, n), _uniform(rng, config.a2, n)
    p1, p2, pd = (rng.uniform(0, 2 * np.pi, size=(n, 1)) for _ in range(3))
    t = np.arange(-w, 2 * w) / fs  # (3W,): the window is the middle third
    clean = a1 * np.sin(2 * np.pi * f1 * t + p1) + a2 * np.sin(2 * np.pi * f2 * t + p2)
    hq = clean + rng.normal(0.0, config.hq_noise, size=clean.shape)
    filtered = lowpass_response(hq, fs, config.lowpass_k)[:, w:2 * w]
    mid = slice(w, 2 * w)
    drift = config.drift_amplitude * np.sin(2 * np.pi * config.drift_freq * t[mid] + pd)
    lq = filtered + rng.normal(0.0, config.lq_noise, size=(n, w)) + drift
    hq = hq[:, mid].astype(np.float32)
    return VibrationSet(lq.astype(np.float32), hq,
                        clean[:, mid].astype(np.float32), actuator_targets(hq),
                        filtered.astype(np.float32))


def redraw_noise(data: VibrationSet, config: VibrationConfig = VibrationConfig(),
                 seed: int = 0) -> VibrationSet:
    """The same windows with a fresh draw of the low-quality sensor's noise and drift phase
    (training-set augmentation: targets and actuator commands are unchanged)."""
    rng = np.random.default_rng(seed)
    n, w = data.lq.shape
    t = np.arange(w) / config.sample_rate
    pd = rng.uniform(0, 2 * np.pi, size=(n, 1))
    drift = config.drift_amplitude * np.sin(2 * np.pi * config.drift_freq * t + pd)
    lq = data.filtered + rng.normal(0.0, config.lq_noise, size=(n, w)) + drift
    return data._replace(lq=lq.astype(np.float32))


def make_splits(n: int = 20000, config: VibrationConfig = VibrationConfig(), seed: int = 0,
                fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> VibrationSplits:
    """``n`` windows from ``seed``, shuffled with ``seed`` and split 80/10/10 (train/val/test)."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) <= 0:
        raise ConfigError(f"split fractions must be three positive numbers summing to 1, "
                          f"got {fractions}")
    if n < 10:
        raise ConfigError(f"need at least 10 windows for a train/val/test split, got {n}")
    data = generate_windows(n, config, seed)
    order = np.random.default_rng([seed, 1]).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return VibrationSplits(data.take(order[:n_train]),
                           data.take(order[n_train:n_train + n_val]),
                           data.take(order[n_train + n_val:]))


def _slow_wander(rng: np.random.Generator, t: np.ndarray, bounds: tuple[float, float],
                 periods: tuple[float, float] = (15.0, 90.0), parts: int = 3) -> np.ndarray:
    """(T,) a smooth random trajectory inside ``bounds``: a few slow sinusoids, rescaled."""
    u = np.zeros_like(t)
    for _ in range(parts):
        period = rng.uniform(*periods)
        u += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    u = u / max(np.max(np.abs(u)), 1e-12)  # in [-1, 1]
    centre = rng.uniform(0.35, 0.65)  # keeps some room so the whole range is not always swept
    frac = np.clip(centre + 0.35 * u, 0.0, 1.0)
    return bounds[0] + frac * (bounds[1] - bounds[0])


def generate_stream(seconds: float, config: VibrationConfig = VibrationConfig(),
                    seed: int = 0) -> VibrationStream:
    """A continuous vibration with slowly wandering frequencies and amplitudes (seeded)."""
    config.validate()
    fs = config.sample_rate
    n = int(round(seconds * fs))
    if n < 1:
        raise ConfigError(f"stream must be at least one sample long, got {seconds} s")
    rng = np.random.default_rng(seed)
    pad = config.window  # filter over a longer stretch, keep the middle (no wrap-around)
    t = np.arange(-pad, n + pad) / fs
    f1, f2 = _slow_wander(rng, t, config.f1), _slow_wander(rng, t, config.f2)
    a1, a2 = _slow_wander(rng, t, config.a1), _slow_wander(rng, t, config.a2)
    ph1 = 2 * np.pi * np.cumsum(f1) / fs + rng.uniform(0, 2 * np.pi)
    ph2 = 2 * np.pi * np.cumsum(f2) / fs + rng.uniform(0, 2 * np.pi)
    clean = a1 * np.sin(ph1) + a2 * np.sin(ph2)
    hq = clean + rng.normal(0.0, config.hq_noise, size=clean.shape)
    filtered = lowpass_response(hq, fs, config.lowpass_k)
    keep = slice(pad, pad + n)
    drift = config.drift_amplitude * np.sin(2 * np.pi * config.drift_freq * t[keep]
                                            + rng.uniform(0, 2 * np.pi))
    lq = filtered[keep] + rng.normal(0.0, config.lq_noise, size=n) + drift
    return VibrationStream(lq.astype(np.float32), hq[keep].astype(np.float32),
                           clean[keep].astype(np.float32), f1[keep].astype(np.float32),
                           f2[keep].astype(np.float32), fs)


def frame(x: np.ndarray, window: int, hop: int) -> np.ndarray:
    """(..., T) -> (..., N, W): the complete windows starting every ``hop`` samples (a copy)."""
    x = np.asarray(x)
    if x.shape[-1] < window:
        return np.zeros((*x.shape[:-1], 0, window), dtype=x.dtype)
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=-1)
    return np.ascontiguousarray(view[..., ::hop, :])


def degrade(high: np.ndarray, config: VibrationConfig = VibrationConfig(),
            seed: int = 0) -> np.ndarray:
    """(T,) or (T, C) high-quality recording at ``config.sample_rate`` -> the low-quality
    reading of the same shape (float32), as the sensor model above degrades its synthetic
    signal: the low-pass response ``1 / (1 + lowpass_k f)`` (zero phase; the recording is
    mirrored at both ends for one window so that the filter does not wrap its end onto
    its start), plus ``N(0, lq_noise)`` noise and the drift
    ``drift_amplitude sin(2π drift_freq t + pd)`` with a random phase per channel. The
    recording itself is the high-quality reading (no noise is added to it). Seeded."""
    config.validate()
    x = np.asarray(high, dtype=np.float64)
    flat = x.ndim == 1
    x2 = x[:, None] if flat else x
    if x2.ndim != 2 or x2.shape[0] < 2:
        raise ConfigError(f"degrade takes a (T,) or (T, C) recording, got shape {x.shape}")
    rng = np.random.default_rng(seed)
    n, channels = x2.shape
    pad = min(config.window, n - 1)
    padded = np.concatenate([x2[1:pad + 1][::-1], x2, x2[-pad - 1:-1][::-1]], axis=0)
    filtered = lowpass_response(padded.T, config.sample_rate, config.lowpass_k).T[pad:pad + n]
    t = np.arange(n)[:, None] / config.sample_rate
    pd = rng.uniform(0, 2 * np.pi, size=(1, channels))
    drift = config.drift_amplitude * np.sin(2 * np.pi * config.drift_freq * t + pd)
    low = filtered + rng.normal(0.0, config.lq_noise, size=(n, channels)) + drift
    return (low[:, 0] if flat else low).astype(np.float32)
