"""Synthetic cardiotocography-like records at 4 Hz: uterine pressure (UP) and fetal heart rate.

N: records, T: samples (4 Hz; 20 minutes = 4,800 samples).

Each record is drawn from a ``numpy.random.Generator`` seeded with ``(seed, record index)``,
so a record does not depend on how many others are drawn with it.

UP (mmHg)
    A baseline tone of 8-20 mmHg wandering slowly (+-3 mmHg), plus contractions: the first
    onset within the first 3 minutes, then intervals of 2-5 minutes (uniform); each lasts
    45-90 s with a peak of 25-70 mmHg above the tone and a slightly skewed bell shape
    (faster rise than fall); plus white noise (0.8 mmHg) and slow noise (1 mmHg).

FHR (bpm)
    A baseline of 110-160 bpm with a slow drift (+-4 bpm over the record); long-term
    variability: low-passed noise (10 s moving average, below ~0.1 Hz) of 2-6 bpm; short-term
    variability: AR(1) noise of 0.8-2 bpm; accelerations (about 2 per 20 minutes, 15-25
    bpm, 15-40 s); and decelerations that follow contractions: with a record-specific
    probability of 0.4-1.0 a contraction is followed by a deceleration whose nadir comes
    20-40 s after the contraction's peak, with a depth of 0.15-0.45 bpm per mmHg of the
    contraction's amplitude (times a record sensitivity of 0.5-1.5) and about the
    contraction's duration. So the UP trace carries real information about the FHR's
    next minutes.

Dropouts
    Sensor loss as runs of NaN or of zeros (half each): on average 3 FHR runs of 2-30 s and
    1 UP run of 5-40 s per 20 minutes. A zero is not a valid value of either trace
    (FHR >= 50 bpm, UP tone >= 8 mmHg), so :func:`normalise` treats NaN and zero alike as
    missing and returns NaN there; models and losses skip NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from sigstream.core.errors import ConfigError

SAMPLE_RATE = 4.0
FHR_CENTER, FHR_SCALE = 140.0, 20.0  # normalised FHR = (bpm - 140) / 20
UP_CENTER, UP_SCALE = 25.0, 25.0  # normalised UP = (mmHg - 25) / 25


@dataclass(frozen=True)
class CtgConfig:
    """N (``records``) records; each field's help is in its metadata. With ``dropouts`` the
    clean traces are returned too."""

    records: int = field(default=16, metadata={"help": "records"})
    minutes: float = field(default=20.0, metadata={
        "help": "record length in minutes (at 4 Hz, 20 minutes are 4,800 samples: 300 "
                "steps of 16)", "option": "--record-minutes", "renamed": ("--minutes",)})
    dropouts: bool = field(default=True, metadata={"help": "sensor-loss runs (NaN or zeros)"})
    fhr_dropouts_per_20min: float = field(default=3.0, metadata={
        "help": "FHR sensor-loss runs per 20 minutes (2-30 s each)"})
    up_dropouts_per_20min: float = field(default=1.0, metadata={
        "help": "UP sensor-loss runs per 20 minutes (5-40 s each)"})

    def validate(self) -> None:
        if self.records < 1:
            raise ConfigError(f"records must be >= 1, got {self.records}")
        if not self.minutes > 0:
            raise ConfigError(f"minutes must be > 0, got {self.minutes}")

    @property
    def samples(self) -> int:
        return int(round(self.minutes * 60 * SAMPLE_RATE))


@dataclass
class CtgData:
    """fhr, up: (N, T) with dropouts (NaN or 0); fhr_clean, up_clean: (N, T) without;
    contractions: per record, a list of (onset_s, peak_s, duration_s, amplitude_mmHg)."""

    fhr: np.ndarray
    up: np.ndarray
    fhr_clean: np.ndarray
    up_clean: np.ndarray
    contractions: list[list[tuple[float, float, float, float]]]

    def normalised(self) -> tuple[np.ndarray, np.ndarray]:
        """(fhr, up) normalised, float32, NaN where missing."""
        return normalise(self.fhr, self.up)


def normalise(fhr: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw FHR (bpm) and UP (mmHg) -> normalised float32 arrays; NaN and exact zeros -> NaN."""
    fhr = np.asarray(fhr, dtype=np.float64)
    up = np.asarray(up, dtype=np.float64)
    f = np.where(np.isnan(fhr) | (fhr == 0), np.nan, (fhr - FHR_CENTER) / FHR_SCALE)
    u = np.where(np.isnan(up) | (up == 0), np.nan, (up - UP_CENTER) / UP_SCALE)
    return f.astype(np.float32), u.astype(np.float32)


def _bell(t: np.ndarray, start: float, duration: float, skew: float = 1.0) -> np.ndarray:
    """0 outside [start, start + duration]; sin^2 bell inside, peak moved earlier by skew<1."""
    u = (t - start) / duration
    inside = (u > 0) & (u < 1)
    v = np.clip(u, 0, 1) ** skew
    return np.where(inside, np.sin(np.pi * v) ** 2, 0.0)


def _smooth_noise(rng: np.random.Generator, n: int, cutoff_hz: float, std: float) -> np.ndarray:
    """Gaussian noise low-passed by a moving average of ~1/cutoff seconds, scaled to ``std``."""
    w = max(1, int(SAMPLE_RATE / cutoff_hz))
    x = np.convolve(rng.standard_normal(n + w), np.ones(w) / w, mode="valid")[:n]
    return x / (x.std() + 1e-12) * std


def _dropout_runs(rng: np.random.Generator, x: np.ndarray, rate: float, min_s: float,
                  max_s: float) -> np.ndarray:
    y = x.copy()
    n = len(x)
    count = rng.poisson(rate * n / (20 * 60 * SAMPLE_RATE))
    for _ in range(count):
        length = int(rng.uniform(min_s, max_s) * SAMPLE_RATE)
        start = int(rng.integers(0, max(1, n - length)))
        y[start:start + length] = np.nan if rng.random() < 0.5 else 0.0
    return y


def _record(rng: np.random.Generator, n: int, cfg: CtgConfig):
    t = np.arange(n) / SAMPLE_RATE
    dur_s = n / SAMPLE_RATE
    # -- UP ---------------------------------------------------------------------------------
    tone = rng.uniform(8, 20) + _smooth_noise(rng, n, 1 / 300, rng.uniform(0.5, 3.0))
    up = tone.copy()
    contractions = []
    onset = rng.uniform(0, 180)
    while onset < dur_s:
        duration = rng.uniform(45, 90)
        amp = rng.uniform(25, 70)
        skew = rng.uniform(0.7, 0.95)
        up += amp * _bell(t, onset, duration, skew)
        peak = onset + duration * 0.5 ** (1 / skew)
        contractions.append((float(onset), float(peak), float(duration), float(amp)))
        onset += rng.uniform(120, 300)
    up += rng.normal(0, 0.8, n) + _smooth_noise(rng, n, 0.1, 1.0)
    up = np.maximum(up, 1.0)
    # -- FHR --------------------------------------------------------------------------------
    base = rng.uniform(110, 160)
    drift = np.linspace(0, rng.uniform(-4, 4), n)
    ltv = _smooth_noise(rng, n, 0.1, rng.uniform(2, 6))
    phi, stv_std = 0.7, rng.uniform(0.8, 2.0)
    stv = lfilter([1.0], [1.0, -phi], rng.normal(0, stv_std * np.sqrt(1 - phi ** 2), n))
    fhr = base + drift + ltv + stv
    for _ in range(rng.poisson(2.0 * dur_s / 1200)):
        fhr += rng.uniform(15, 25) * _bell(t, rng.uniform(0, dur_s), rng.uniform(15, 40))
    p_decel = rng.uniform(0.4, 1.0)
    sensitivity = rng.uniform(0.5, 1.5)
    for _onset, peak, duration, amp in contractions:
        if rng.random() < p_decel:
            lag = rng.uniform(20, 40)
            width = duration * rng.uniform(0.8, 1.2)
            depth = amp * rng.uniform(0.15, 0.45) * sensitivity
            fhr -= depth * _bell(t, peak + lag - width / 2, width)
    fhr = np.clip(fhr, 50, 220)
    return fhr, up, contractions


def generate(cfg: CtgConfig, seed: int) -> CtgData:
    """``cfg.records`` records; record i uses ``default_rng([seed, i])``."""
    cfg.validate()
    n = cfg.samples
    fhr, up, fc, uc, cons = [], [], [], [], []
    for i in range(cfg.records):
        rng = np.random.default_rng([seed, i])
        f, u, c = _record(rng, n, cfg)
        fc.append(f)
        uc.append(u)
        cons.append(c)
        if cfg.dropouts:
            f = _dropout_runs(rng, f, cfg.fhr_dropouts_per_20min, 2, 30)
            u = _dropout_runs(rng, u, cfg.up_dropouts_per_20min, 5, 40)
        fhr.append(f)
        up.append(u)
    return CtgData(np.stack(fhr), np.stack(up), np.stack(fc), np.stack(uc), cons)


class CtgStream:
    """Synthetic CTG as an endless stream (``synth:ctg``): 20-minute records of
    :func:`generate` (seed ``seed``, record after record), 4 Hz, two channels [FHR bpm,
    UP mmHg] with sensor-loss runs (NaN or zeros); ``read(n)`` -> (noisy, clean), each
    (n, 2) float32, the clean pair without sensor loss."""

    RECORD_MINUTES = 20.0

    def __init__(self, seed: int = 0) -> None:
        self.seed, self.sample_rate, self.channels = int(seed), SAMPLE_RATE, 2
        self._record = 0
        self._noisy = np.zeros((0, 2), dtype=np.float32)
        self._clean = np.zeros((0, 2), dtype=np.float32)

    def _more(self) -> None:
        cfg = CtgConfig(records=1, minutes=self.RECORD_MINUTES)
        n = cfg.samples
        rng = np.random.default_rng([self.seed, self._record])
        f, u, _ = _record(rng, n, cfg)
        fd = _dropout_runs(rng, f, cfg.fhr_dropouts_per_20min, 2, 30)
        ud = _dropout_runs(rng, u, cfg.up_dropouts_per_20min, 5, 40)
        self._noisy = np.concatenate([self._noisy, np.stack([fd, ud], 1).astype(np.float32)])
        self._clean = np.concatenate([self._clean, np.stack([f, u], 1).astype(np.float32)])
        self._record += 1

    def read(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        while self._noisy.shape[0] < n:
            self._more()
        noisy, clean = self._noisy[:n], self._clean[:n]
        self._noisy, self._clean = self._noisy[n:], self._clean[n:]
        return noisy, clean


def ctg_stream(sample_rate: float = SAMPLE_RATE, channels: int = 2, seed: int = 0,
               snr_db: float = 0.0) -> CtgStream:
    """The ``synth:ctg`` generator; CTG runs at 4 Hz with two channels."""
    if float(sample_rate) != SAMPLE_RATE or int(channels) != 2:
        raise ConfigError(f"synth:ctg is CTG at {SAMPLE_RATE:g} Hz with 2 channels (FHR bpm, "
                          f"UP mmHg); got rate={sample_rate:g}, channels={channels}")
    return CtgStream(seed)
