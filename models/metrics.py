"""Signal-quality metrics. N: frames, C: channels."""

from __future__ import annotations

import numpy as np


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
