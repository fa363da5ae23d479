"""Classical enhancement baselines with one call signature, for side-by-side evaluation.

B: batch (independent signals), T: time.

Every baseline is a small frozen dataclass with ``name``, ``causal`` (True when output
sample t uses no input after t) and ``__call__(x, rate) -> y`` taking and returning
``(B, T)`` float arrays (a 1-D ``(T,)`` signal works too). Parameters are in seconds and Hz,
so one baseline serves any sample rate.

* ``WienerBaseline`` — ``scipy.signal.wiener``: local-mean/variance adaptive smoothing over a
  centred window (not causal).
* ``ButterworthBaseline`` — causal Butterworth low-pass with drift removal: a causal
  high-pass (drift) and a low-pass, both ``butter(output="sos")`` run with ``sosfilt`` from a
  zero state (causal; it delays the signal by its group delay).
* ``SavgolBaseline`` — ``scipy.signal.savgol_filter`` over a centred window (not causal).
* ``SpectralGateBaseline`` — spectral gating with ``noisereduce`` (STFT-based, not causal);
  an optional dependency: ``available()`` says whether it can run, and the evaluation
  skips it with a note when it cannot.

``tune`` picks a baseline's parameter from a small grid on validation data, so the
comparison with a trained model is against baselines fitted to the same task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from scipy import signal

from sigstream.core.errors import ConfigError

__all__ = ["tune_all", "Baseline", "WienerBaseline", "ButterworthBaseline", "SavgolBaseline",
           "SpectralGateBaseline", "noisereduce_available", "default_baselines",
           "causal_baselines", "tune"]


class Baseline(Protocol):
    """``baseline(x, rate)``: (B, T) -> (B, T)."""

    name: str
    causal: bool

    def __call__(self, x: np.ndarray, rate: float) -> np.ndarray: ...


def _as_batch(x: np.ndarray) -> tuple[np.ndarray, bool]:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        return a[None], True
    if a.ndim != 2:
        raise ValueError(f"baselines take (B, T) or (T,) signals, got shape {a.shape}")
    return a, False


def _odd(n: float, minimum: int = 3) -> int:
    k = max(int(round(n)), minimum)
    return k if k % 2 else k + 1


@dataclass(frozen=True)
class WienerBaseline:
    """scipy.signal.wiener over a centred window of ``window_s`` seconds (odd samples >= 3)."""

    window_s: float = 0.05
    name: str = "wiener"
    causal: ClassVar[bool] = False

    def __call__(self, x: np.ndarray, rate: float) -> np.ndarray:
        a, flat = _as_batch(x)
        size = _odd(self.window_s * rate)
        if a.shape[1] == 0:
            return a[0] if flat else a
        y = np.empty_like(a)
        for i, row in enumerate(a):  # per signal: the noise estimate is per signal
            if np.ptp(row) == 0:
                y[i] = row
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                y[i] = signal.wiener(row, mysize=min(size, _odd(len(row), 1)))
        y = np.where(np.isfinite(y), y, a)
        return y[0] if flat else y


@dataclass(frozen=True)
class ButterworthBaseline:
    """Causal: high-pass at ``drift_hz`` (drift removal, off when 0) then low-pass at
    ``cutoff_hz``, each Butterworth of ``order``, from a zero state."""

    cutoff_hz: float = 40.0
    order: int = 4
    drift_hz: float = 0.5
    name: str = "butterworth"
    causal: ClassVar[bool] = True

    def sos(self, rate: float) -> np.ndarray:
        nyq = rate / 2
        if not 0 < self.cutoff_hz < nyq:
            raise ConfigError(f"butterworth cutoff must be in (0, {nyq}) Hz at {rate} Hz, "
                              f"got {self.cutoff_hz}")
        parts = [signal.butter(self.order, self.cutoff_hz, "lowpass", fs=rate, output="sos")]
        if self.drift_hz > 0:
            if not self.drift_hz < self.cutoff_hz:
                raise ConfigError(f"drift_hz ({self.drift_hz}) must be below cutoff_hz "
                                  f"({self.cutoff_hz})")
            parts.insert(0, signal.butter(2, self.drift_hz, "highpass", fs=rate, output="sos"))
        return np.concatenate(parts, axis=0)

    def __call__(self, x: np.ndarray, rate: float) -> np.ndarray:
        a, flat = _as_batch(x)
        y = signal.sosfilt(self.sos(rate), a, axis=-1)
        return y[0] if flat else y


@dataclass(frozen=True)
class SavgolBaseline:
    """scipy.signal.savgol_filter, window ``window_s`` seconds (odd samples), polynomial
    ``order``; mode "interp" at the ends."""

    window_s: float = 0.11
    order: int = 3
    name: str = "savgol"
    causal: ClassVar[bool] = False

    def __call__(self, x: np.ndarray, rate: float) -> np.ndarray:
        a, flat = _as_batch(x)
        length = _odd(self.window_s * rate, self.order + 2)
        if a.shape[1] < length:
            length = _odd(a.shape[1] - 2 if a.shape[1] % 2 == 0 else a.shape[1], 1)
            if length <= self.order:
                return a[0] if flat else a
        y = signal.savgol_filter(a, length, self.order, axis=-1, mode="interp")
        return y[0] if flat else y


def noisereduce_available() -> bool:
    try:
        import noisereduce  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class SpectralGateBaseline:
    """noisereduce.reduce_noise (spectral gating): a stationary noise estimate per signal,
    ``prop_decrease`` of the gated noise removed; STFT frames of about ``frame_s`` seconds
    (a power of two >= 16 samples, at most a quarter of the signal), hop a quarter frame."""

    prop_decrease: float = 1.0
    frame_s: float = 0.032
    stationary: bool = True
    name: str = "spectral_gate"
    causal: ClassVar[bool] = False
    note: ClassVar[str] = ("spectral gating skipped: noisereduce is not installed "
                           "(pip install 'sigstream[enhance]')")

    def available(self) -> bool:
        return noisereduce_available()

    def __call__(self, x: np.ndarray, rate: float) -> np.ndarray:
        if not self.available():
            raise ConfigError(self.note)
        import warnings

        import noisereduce

        a, flat = _as_batch(x)
        if a.shape[1] < 64:
            return a[0] if flat else a
        n_fft = 2 ** int(np.ceil(np.log2(max(self.frame_s * rate, 16))))
        n_fft = int(min(n_fft, 2 ** int(np.log2(a.shape[1] // 4))))
        hop = max(n_fft // 4, 1)
        y = np.empty_like(a)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, row in enumerate(a):  # per signal: each gets its own noise estimate
                y[i] = noisereduce.reduce_noise(
                    y=row.astype(np.float32), sr=int(round(rate)), stationary=self.stationary,
                    prop_decrease=self.prop_decrease, n_fft=n_fft, win_length=n_fft,
                    hop_length=hop, time_mask_smooth_ms=max(50.0, 1000.0 * hop / rate) + 1e-6,
                    freq_mask_smooth_hz=max(500.0, rate / n_fft) + 1e-6, padding=2 * n_fft,
                    chunk_size=max(a.shape[1], 4 * n_fft), use_tqdm=False, n_jobs=1,
                )[: a.shape[1]]
        return y[0] if flat else y


def default_baselines(rate: float, band_hz: float | None = None) -> list[Any]:
    """One of each baseline with defaults for ``rate`` (``band_hz``: the highest frequency of
    interest, the low-pass cutoff; default 0.4 * rate). Spectral gating only when installed."""
    cutoff = band_hz if band_hz is not None else 0.4 * rate
    out: list[Any] = [WienerBaseline(), ButterworthBaseline(cutoff_hz=cutoff),
                      SavgolBaseline()]
    if noisereduce_available():
        out.append(SpectralGateBaseline())
    return out


def causal_baselines(baselines: Iterable[Any]) -> list[Any]:
    """The causal ones (zero lookahead)."""
    return [b for b in baselines if b.causal]


def tune(baseline: Any, field: str, values: Sequence[Any], x: np.ndarray, target: np.ndarray,
         rate: float, score: Callable[[np.ndarray, np.ndarray], float]) -> tuple[Any, float]:
    """The copy of ``baseline`` with ``field`` set to the value of ``values`` that maximises
    ``score(target, baseline(x, rate))`` on (validation) data; returns (baseline, score)."""
    best, best_score = baseline, -np.inf
    for v in values:
        try:
            cand = dataclasses.replace(baseline, **{field: v})
            s = float(score(target, cand(x, rate)))
        except ConfigError:
            continue
        if s > best_score:
            best, best_score = cand, s
    return best, best_score


def tune_all(baselines: Iterable[Any], grids: dict[str, tuple[str, Sequence[Any]]],
             x: np.ndarray, target: np.ndarray, rate: float) -> list[dict]:
    """Every baseline with its grid parameter (``grids[name] = (field, values)``) tuned by
    mean PSNR on (validation) windows ``x`` -> ``target``; entries ``{"name", "causal",
    "baseline": the tuned copy or None, "param", "skipped": why it did not run or None}``.
    Spectral gating is tuned on the first 500 windows (it is slow), and skipped with its
    note when ``noisereduce`` is missing; a baseline none of whose values runs is skipped."""
    from sigstream.models.metrics import psnr

    def score(t: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(psnr(t, y)))

    out = []
    for base in baselines:
        entry: dict[str, Any] = {"name": base.name, "causal": base.causal}
        gate = isinstance(base, SpectralGateBaseline)
        if gate and not base.available():
            entry.update(baseline=None, skipped=base.note)
            out.append(entry)
            continue
        field, grid = grids[base.name]
        sub = slice(0, 500) if gate else slice(None)
        best, best_score = tune(base, field, grid, x[sub], target[sub], rate, score)
        if not np.isfinite(best_score):
            entry.update(baseline=None, skipped=f"no {field} in its grid runs at {rate:g} Hz")
        else:
            entry.update(baseline=best, param={field: getattr(best, field)}, skipped=None)
        out.append(entry)
    return out
