"""Signal-quality metrics, numpy-based. N: frames, C: channels; ...: any leading (batch) axes.

Two families:

* ``snr_db`` / ``aligned_snr_db``: one figure over *all* samples of the arrays.
* ``mse``, ``mae``, ``rmse``, ``psnr``, ``ssim``, ``snr``, ``snr_improvement``: batched. They
  reduce over the last axis (time, ``axis=-1`` by default) and return one value per leading
  index, e.g. ``(B, T) -> (B,)``; a 1-D input gives a 0-d result (use ``float(...)``).
  ``summarize`` averages them over a batch into a plain dict for JSON reports.

Conventions: ``reference`` is the clean (high-quality) signal, ``estimate`` the signal being
judged. PSNR and SSIM need a data range L; by default it is the peak-to-peak range of each
reference signal (``max - min`` over the reduced axis), falling back to 1.0 for a constant
reference. Identical signals give ``mse == 0``, ``psnr == snr == inf`` and ``ssim == 1``.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

__all__ = ["snr_db", "aligned_snr_db", "mse", "mae", "rmse", "psnr", "ssim", "snr",
           "snr_improvement", "summarize"]


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(|reference|^2 / |estimate - reference|^2) over all samples."""
    ref = np.asarray(reference, dtype=np.float64)
    err = np.asarray(estimate, dtype=np.float64) - ref
    noise = float(np.sum(err**2))
    power = float(np.sum(ref**2))
    if noise == 0.0:
        return float("inf")
    if power == 0.0:
        return float("-inf")
    return 10.0 * np.log10(power / noise)


def aligned_snr_db(reference: np.ndarray, estimate: np.ndarray,
                   max_lag: int) -> tuple[float, int]:
    """Best SNR of ``estimate`` against ``reference`` delayed by 0..max_lag frames.

    Causal filters delay the signal (group delay); this reports the SNR after
    compensating that delay, and the delay found. Returns (snr_db, lag).
    """
    n = min(len(reference), len(estimate))
    best, best_lag = float("-inf"), 0
    for lag in range(0, min(max_lag, max(n - 1, 0)) + 1):
        s = snr_db(reference[: n - lag], estimate[lag:n])
        if s > best:
            best, best_lag = s, lag
    return best, best_lag


# ---------------------------------------------------------------- batched metrics


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    if ref.shape != est.shape:
        raise ValueError(f"reference and estimate must have the same shape, "
                         f"got {ref.shape} and {est.shape}")
    if ref.ndim == 0:
        raise ValueError("metrics need at least one axis (time)")
    return ref, est


def _ratio_db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """10 log10(num / den) with den == 0 -> +inf and num == 0 (den > 0) -> -inf."""
    num, den = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(den, np.float64))
    out = np.empty(num.shape, dtype=np.float64)
    zero_den = den == 0.0
    zero_num = (num == 0.0) & ~zero_den
    ok = ~zero_den & ~zero_num
    out[zero_den] = np.inf
    out[zero_num] = -np.inf
    out[ok] = 10.0 * np.log10(num[ok] / den[ok])
    return out[()] if out.ndim == 0 else out


def _data_range(ref: np.ndarray, axis: int, data_range: float | None) -> np.ndarray:
    if data_range is not None:
        if not data_range > 0:
            raise ValueError(f"data_range must be > 0, got {data_range}")
        return np.asarray(float(data_range))
    rng = np.ptp(ref, axis=axis)
    return np.where(rng > 0, rng, 1.0)


def mse(reference: np.ndarray, estimate: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean squared error along ``axis``: (..., T) -> (...)."""
    ref, est = _pair(reference, estimate)
    return np.mean((est - ref) ** 2, axis=axis)


def mae(reference: np.ndarray, estimate: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean absolute error along ``axis``: (..., T) -> (...)."""
    ref, est = _pair(reference, estimate)
    return np.mean(np.abs(est - ref), axis=axis)


def rmse(reference: np.ndarray, estimate: np.ndarray, axis: int = -1) -> np.ndarray:
    """Root mean squared error along ``axis``: (..., T) -> (...)."""
    return np.sqrt(mse(reference, estimate, axis=axis))


def psnr(reference: np.ndarray, estimate: np.ndarray, axis: int = -1,
         data_range: float | None = None) -> np.ndarray:
    """Peak SNR in dB: 10 log10(L^2 / MSE), (..., T) -> (...).

    L is ``data_range`` or, by default, the peak-to-peak range of each reference signal.
    """
    ref, est = _pair(reference, estimate)
    rng = _data_range(ref, axis, data_range)
    return _ratio_db(rng**2, np.mean((est - ref) ** 2, axis=axis))


def ssim(reference: np.ndarray, estimate: np.ndarray, axis: int = -1,
         data_range: float | None = None, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """Structural similarity of 1-D signals (Wang et al. 2004), (..., T) -> (...).

    Local means, variances and the covariance come from a Gaussian window of std ``sigma``
    samples (truncated at 3.5 sigma, reflected at the ends, as in the 2-D original);
    C1 = (k1 L)^2, C2 = (k2 L)^2 with L the data range (see ``psnr``). The SSIM map is
    averaged over time. 1 for identical signals, lower for any difference, can go
    negative for anti-correlated ones.
    """
    ref, est = _pair(reference, estimate)
    ref = np.moveaxis(ref, axis, -1)
    est = np.moveaxis(est, axis, -1)
    rng = _data_range(ref, -1, data_range)[..., None]
    c1, c2 = (k1 * rng) ** 2, (k2 * rng) ** 2

    def smooth(v: np.ndarray) -> np.ndarray:
        return gaussian_filter1d(v, sigma, axis=-1, mode="reflect", truncate=3.5)

    mu_x, mu_y = smooth(ref), smooth(est)
    var_x = smooth(ref * ref) - mu_x**2
    var_y = smooth(est * est) - mu_y**2
    cov = smooth(ref * est) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return np.mean(num / den, axis=-1)


def snr(reference: np.ndarray, estimate: np.ndarray, axis: int = -1) -> np.ndarray:
    """SNR in dB of ``estimate`` against ``reference``: 10 log10(sum ref^2 / sum err^2).

    (..., T) -> (...); +inf for a perfect estimate.
    """
    ref, est = _pair(reference, estimate)
    return _ratio_db(np.sum(ref**2, axis=axis), np.sum((est - ref) ** 2, axis=axis))


def snr_improvement(reference: np.ndarray, degraded: np.ndarray, enhanced: np.ndarray,
                    axis: int = -1) -> np.ndarray:
    """SNR(reference, enhanced) - SNR(reference, degraded) in dB, (..., T) -> (...)."""
    return snr(reference, enhanced, axis=axis) - snr(reference, degraded, axis=axis)


def summarize(reference: np.ndarray, estimate: np.ndarray, degraded: np.ndarray | None = None,
              axis: int = -1, data_range: float | None = None) -> dict[str, float]:
    """All metrics averaged over the leading (batch) axes, as plain floats.

    Keys: ``mse, mae, rmse, psnr, ssim, snr`` and, when ``degraded`` is given,
    ``snr_in`` and ``snr_improvement``. ``rmse`` is the square root of the mean MSE;
    the dB figures are means of the per-signal values (infinite values are left out
    of the mean and the mean is inf only when every signal is perfect).
    """
    def mean_db(v: np.ndarray) -> float:
        v = np.atleast_1d(np.asarray(v, dtype=np.float64))
        fin = v[np.isfinite(v)]
        if fin.size:
            return float(np.mean(fin))
        return float(v[0]) if v.size else float("nan")

    m = float(np.mean(mse(reference, estimate, axis=axis)))
    out = {
        "mse": m,
        "mae": float(np.mean(mae(reference, estimate, axis=axis))),
        "rmse": float(np.sqrt(m)),
        "psnr": mean_db(psnr(reference, estimate, axis=axis, data_range=data_range)),
        "ssim": float(np.mean(ssim(reference, estimate, axis=axis, data_range=data_range))),
        "snr": mean_db(snr(reference, estimate, axis=axis)),
    }
    if degraded is not None:
        out["snr_in"] = mean_db(snr(reference, degraded, axis=axis))
        out["snr_improvement"] = out["snr"] - out["snr_in"]
    return out
