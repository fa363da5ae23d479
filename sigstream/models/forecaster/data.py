"""Sums of harmonics with random integer periods: the forecaster's data, seeded and vectorised.

N: signals (windows), S: samples per signal, K: components, L: lookback, H: horizon.

Each signal is ``sum_k a_k sin(2 pi n / P_k + phi_k)`` for ``n = 0 .. S-1`` with

* ``K`` components, a fixed number or drawn uniformly from an inclusive range;
* integer periods ``P_k`` drawn uniformly from ``periods_range`` (inclusive, in samples);
* phases ``phi_k ~ U(0, 2 pi)``;
* amplitudes ``a_k ~ U(0, 1)`` normalised to sum to one;

then scaled so that its peak ``max |x|`` over the S samples is 1. With ``noise > 0``
white Gaussian noise of that standard deviation is added and the signal is scaled
to peak 1 again; the clean signal gets the same second scale, so ``clean`` is the
noise-free part of ``signal`` exactly.

Everything for N signals is drawn and computed in a handful of array operations,
so millions of training windows are cheap; a seed fixes the draw.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import IterableDataset

from sigstream.core.errors import ConfigError

Components = int | tuple[int, int]


@dataclass(frozen=True)
class HarmonicsConfig:
    """N signals of S (``num_samples``) samples with K (``num_components``) components;
    each field's help is in its metadata."""

    num_samples: int = field(default=110, metadata={"help": "samples per signal"})
    num_components: Components = field(default=(3, 7), metadata={
        "help": "components: a count or an inclusive (lo, hi) range"})
    periods_range: tuple[int, int] = field(default=(2, 100), metadata={
        "help": "inclusive range of the integer periods (samples)"})
    noise: float = field(default=0.0, metadata={
        "help": "standard deviation of the added white noise (0: none)",
        "option": "--noise-std", "renamed": ("--noise",)})
    noise_fraction: float = field(default=1.0, metadata={"help": "share of the signals that "
                                                                 "get noise"})

    def component_range(self) -> tuple[int, int]:
        k = self.num_components
        lo, hi = (k, k) if isinstance(k, int) else (int(k[0]), int(k[1]))
        return lo, hi

    def validate(self) -> None:
        lo, hi = self.component_range()
        if not 1 <= lo <= hi:
            raise ConfigError(
                f"num_components must be >= 1 and lo <= hi, got {self.num_components}")
        p_lo, p_hi = self.periods_range
        if not 2 <= p_lo <= p_hi:
            raise ConfigError(f"periods_range needs 2 <= lo <= hi, got {self.periods_range}")
        if self.num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.noise < 0 or not 0 <= self.noise_fraction <= 1:
            raise ConfigError("noise must be >= 0 and noise_fraction in [0, 1]")


class Harmonics(NamedTuple):
    """A batch of signals and what they are made of.

    signal, clean: (N, S) float32; periods: (N, K) int64 (0 where a slot is unused);
    amplitudes, phases: (N, K) float64 (amplitude 0 where unused); components: (N,) int64;
    noisy: (N,) bool; scale: (N,) float64, the total factor applied to the raw sum.
    """

    signal: np.ndarray
    clean: np.ndarray
    periods: np.ndarray
    amplitudes: np.ndarray
    phases: np.ndarray
    components: np.ndarray
    noisy: np.ndarray
    scale: np.ndarray


def parse_components(text: str) -> Components:
    """``"3-7"`` -> (3, 7), ``"45"`` -> 45."""
    lo, sep, hi = text.partition("-")
    try:
        return (int(lo), int(hi)) if sep else int(lo)
    except ValueError:
        raise ConfigError(f"bad component count {text!r}: expected N or LO-HI") from None


def components_label(k: Components) -> str:
    return f"{k[0]}-{k[1]}" if isinstance(k, tuple) else str(k)


def generate(config: HarmonicsConfig, n: int,
             seed: int | np.random.Generator | np.random.SeedSequence = 0) -> Harmonics:
    """``n`` signals drawn from ``config``; the same seed gives the same signals."""
    config.validate()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lo, hi = config.component_range()
    k_max, s = hi, config.num_samples
    comps = rng.integers(lo, hi + 1, size=n)  # (N,)
    used = np.arange(k_max)[None, :] < comps[:, None]  # (N, K)
    periods = rng.integers(config.periods_range[0], config.periods_range[1] + 1, size=(n, k_max))
    phases = rng.uniform(0.0, 2 * np.pi, size=(n, k_max))
    amps = rng.uniform(0.0, 1.0, size=(n, k_max)) * used
    amps /= np.maximum(amps.sum(axis=1, keepdims=True), 1e-12)
    periods = np.where(used, periods, 0)
    t = np.arange(s, dtype=np.float64)
    # phase of every component at every sample, wrapped before the sine for float32 accuracy
    omega = np.where(used, 2 * np.pi / np.maximum(periods, 1), 0.0)  # (N, K)
    arg = np.mod(omega[:, :, None] * t[None, None, :] + phases[:, :, None], 2 * np.pi)
    raw = np.einsum("nk,nks->ns", amps, np.sin(arg.astype(np.float32)).astype(np.float64))
    scale = 1.0 / np.maximum(np.abs(raw).max(axis=1), 1e-12)  # (N,)
    clean = raw * scale[:, None]
    noisy = np.zeros(n, dtype=bool)
    signal = clean
    if config.noise > 0 and config.noise_fraction > 0:
        noisy = rng.uniform(size=n) < config.noise_fraction
        noise = rng.normal(0.0, config.noise, size=(n, s)) * noisy[:, None]
        signal = clean + noise
        second = 1.0 / np.maximum(np.abs(signal).max(axis=1), 1e-12)
        signal = signal * second[:, None]
        clean = clean * second[:, None]
        scale = scale * second
    return Harmonics(signal.astype(np.float32), clean.astype(np.float32), periods.astype(np.int64),
                     amps, phases, comps.astype(np.int64), noisy, scale)


class WindowBatch(NamedTuple):
    """lookback: (B, L) observed past; target: (B, H) clean future; observed: (B, H) future as
    observed (with noise, if any); components: (B,); noisy: (B,) bool; periods: (B, K)
    int64 true periods of the components (0 where a slot is unused)."""

    lookback: torch.Tensor
    target: torch.Tensor
    observed: torch.Tensor
    components: torch.Tensor
    noisy: torch.Tensor
    periods: torch.Tensor


def windows(config: HarmonicsConfig, n: int, lookback: int, horizon: int,
            seed: int | np.random.Generator | np.random.SeedSequence = 0) -> WindowBatch:
    """``n`` (lookback, future) pairs; each signal has ``lookback + horizon`` samples."""
    cfg = HarmonicsConfig(lookback + horizon, config.num_components, config.periods_range,
                          config.noise, config.noise_fraction)
    h = generate(cfg, n, seed)
    sig, clean = torch.from_numpy(h.signal), torch.from_numpy(h.clean)
    return WindowBatch(sig[:, :lookback], clean[:, lookback:], sig[:, lookback:],
                       torch.from_numpy(h.components), torch.from_numpy(h.noisy),
                       torch.from_numpy(h.periods))


@dataclass(frozen=True)
class RichConfig:
    """What real series have and sums of integer-period harmonics do not: each part is
    present in a window with its probability; amplitudes are relative to the harmonic part's
    peak (1)."""

    offset: float = field(default=3.0, metadata={"help": "std of the constant level"})
    trend: float = field(default=0.5, metadata={"help": "probability of a linear trend"})
    ar: float = field(default=0.5, metadata={"help": "probability of an AR(1) process"})
    walk: float = field(default=0.2, metadata={"help": "probability of a random walk"})
    shift: float = field(default=0.2, metadata={"help": "probability of a level shift"})
    noise: float = field(default=0.5, metadata={
        "help": "probability of white measurement noise (std up to 0.2, not in the target)"})


def rich_windows(n: int, lookback: int, horizon: int, components: int,
                 seed: int | np.random.Generator | np.random.SeedSequence = 0,
                 config: RichConfig = RichConfig()) -> WindowBatch:
    """``n`` windows of richer signals: harmonics of non-integer periods (2 .. 100, 0 to
    ``components`` of them) plus a level, and with their probabilities a linear trend, an
    AR(1) process (coefficient 0.3 .. 0.995), a random walk, a level shift and white
    measurement noise; everything times a random scale 10^U(-1, 1). The target is the
    future without the measurement noise; ``noisy`` marks windows with a stochastic part
    (their future is not a function of their past)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    s = lookback + horizon
    t = np.arange(s, dtype=np.float64)
    k = max(int(components), 1)
    comps = rng.integers(0, k + 1, size=n)
    used = np.arange(k)[None, :] < comps[:, None]
    periods = rng.uniform(2.0, 100.0, size=(n, k))
    amps = rng.uniform(0.0, 1.0, size=(n, k)) * used
    amps /= np.maximum(amps.sum(axis=1, keepdims=True), 1e-12)
    phases = rng.uniform(0.0, 2 * np.pi, size=(n, k))
    x = np.einsum("nk,nks->ns", amps, np.sin(2 * np.pi * t[None, None, :] / periods[:, :, None]
                                             + phases[:, :, None]))
    x /= np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-12) * (comps[:, None] > 0) + \
        (comps[:, None] == 0)
    x += rng.normal(0.0, config.offset, size=(n, 1))
    on = {name: rng.uniform(size=n) < getattr(config, name)
          for name in ("trend", "ar", "walk", "shift", "noise")}
    x += on["trend"][:, None] * rng.normal(0.0, 1.0, size=(n, 1)) * t[None, :] / s
    phi = rng.uniform(0.3, 0.995, size=(n, 1))
    innov = rng.normal(size=(n, s)) * rng.uniform(0.0, 0.5, size=(n, 1)) * np.sqrt(1 - phi ** 2)
    ar = np.zeros((n, s))
    for i in range(s):  # an AR(1) started in its stationary distribution
        ar[:, i] = (phi[:, 0] * ar[:, i - 1] if i else innov[:, 0] / np.sqrt(1 - phi[:, 0] ** 2)
                    ) + (innov[:, i] if i else 0.0)
    x += on["ar"][:, None] * ar
    x += on["walk"][:, None] * np.cumsum(rng.normal(size=(n, s)), axis=1) * \
        rng.uniform(0.0, 0.1, size=(n, 1))
    at = rng.integers(1, s, size=(n, 1))
    x += on["shift"][:, None] * (t[None, :] >= at) * rng.normal(0.0, 1.0, size=(n, 1))
    observed = x + on["noise"][:, None] * rng.normal(size=(n, s)) * rng.uniform(
        0.0, 0.2, size=(n, 1))
    scale = 10.0 ** rng.uniform(-1.0, 1.0, size=(n, 1))
    x, observed = x * scale, observed * scale
    noisy = on["ar"] | on["walk"] | on["noise"] | (on["shift"] & (at[:, 0] >= lookback))
    obs = torch.from_numpy(observed.astype(np.float32))
    return WindowBatch(obs[:, :lookback], torch.from_numpy(x[:, lookback:].astype(np.float32)),
                       obs[:, lookback:], torch.from_numpy(comps.astype(np.int64)),
                       torch.from_numpy(noisy), torch.zeros(n, k, dtype=torch.int64))


def mixed_windows(config: HarmonicsConfig, n: int, lookback: int, horizon: int, rich: float,
                  seed: int | np.random.Generator | np.random.SeedSequence = 0) -> WindowBatch:
    """``n`` windows: a share ``rich`` from :func:`rich_windows` (up to the largest component
    count of ``config``), the rest from :func:`windows`; the same seed, the same windows."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n_rich = int(round(rich * n))
    parts = []
    if n - n_rich:
        parts.append(windows(config, n - n_rich, lookback, horizon, rng))
    if n_rich:
        parts.append(rich_windows(n_rich, lookback, horizon, config.component_range()[1], rng))
    if len(parts) == 1:
        return parts[0]
    a, b = parts
    k = max(a.periods.shape[1], b.periods.shape[1])

    def pad(p: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(p, (0, k - p.shape[1]))

    return WindowBatch(*(torch.cat([x, y]) for x, y in zip(a[:5], b[:5], strict=True)),
                       torch.cat([pad(a.periods), pad(b.periods)]))


class HarmonicsWindows(IterableDataset):
    """An endless, seeded stream of :class:`WindowBatch` es drawn on the fly.

    Batch ``i`` is drawn from ``SeedSequence([seed, i])``: the stream is reproducible,
    every batch is new, and resuming at batch ``start`` gives the same batches as an
    uninterrupted run.
    """

    def __init__(self, config: HarmonicsConfig, batch: int, lookback: int = 100,
                 horizon: int = 10, seed: int = 0, start: int = 0) -> None:
        super().__init__()
        config.validate()
        self.config, self.batch = config, batch
        self.lookback, self.horizon = lookback, horizon
        self.seed, self.start = seed, start

    def batch_at(self, i: int) -> WindowBatch:
        return windows(self.config, self.batch, self.lookback, self.horizon,
                       np.random.SeedSequence([self.seed, i]))

    def __iter__(self) -> Iterator[WindowBatch]:
        i = self.start
        while True:
            yield self.batch_at(i)
            i += 1
