"""Post-hoc calibration of predictive intervals: any model, any spread estimate.

...: any shape (predictions, spreads and truths broadcast elementwise; all samples pooled).

A model that gives a prediction ``mu`` and a spread ``sigma`` per sample (Monte-Carlo
dropout, a variance head, an ensemble) states the interval ``mu ± z_p sigma`` for the
nominal central level ``p`` (``z_p`` the standard normal quantile: 1.96 for 95 %). When
``sigma`` is too small or too large that interval covers the truth far less or more often
than ``p``. Calibration fixes this on held-back data the model was not trained on:

* :func:`fit_calibration` (split conformal on normalised residuals): the scores
  ``s = |truth - mu| / sigma`` of the calibration samples; the calibrated half-width at
  level ``p`` is ``q_p sigma`` with ``q_p`` the ``ceil((n + 1) p)``-th smallest score
  (the finite-sample conformal quantile: with exchangeable samples the interval covers a
  new sample with probability at least ``p``). ``q_p`` is tabulated at a grid of levels,
  so the whole reliability curve is calibrated, not only the 95 % point; the single
  number ``scale = q_0.95 / 1.96`` is what ``sigma`` is multiplied by for the nominal
  95 % Gaussian interval (:func:`fit_sigma_scale`).
* :func:`fit_quantile_margin` (conformalised quantile regression) for models that give
  quantiles instead of a spread: the margin ``q`` by which ``[lower - q, upper + q]``
  covers ``p`` of the calibration samples.
* :func:`coverage`, :func:`reliability`: how often intervals cover held-out truths, for
  reports and the reliability plot (nominal vs empirical coverage).

Torch-free (numpy only), so the speech enhancer, the forecaster and the augmentor can all
use it. A :class:`Calibration` is a small JSON-able dict (:meth:`Calibration.to_dict`) to
store in a checkpoint's metadata or a side file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = ["normal_quantile", "Calibration", "fit_calibration", "fit_sigma_scale",
           "fit_quantile_margin", "coverage", "interval_coverage", "reliability",
           "LEVELS"]

# the levels the calibration tabulates (and the reliability plot shows)
LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98,
                             0.99)


def normal_quantile(level: float) -> float:
    """``z`` with ``P(|N(0, 1)| <= z) = level`` (1.96 for 0.95)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"a central level is in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def _flat(*arrays: Any) -> list[np.ndarray]:
    arrs = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in arrays))
    out = [a.reshape(-1) for a in arrs]
    if out[0].size == 0:
        raise ValueError("calibration needs at least one sample")
    if not all(np.isfinite(a).all() for a in out):
        raise ValueError("calibration inputs must be finite (no NaN/inf)")
    return out


def _floor(sigma: np.ndarray) -> float:
    """The smallest spread used (a zero spread would make a score infinite)."""
    pos = sigma[sigma > 0]
    return float(1e-6 * np.mean(pos)) if pos.size else 1e-12


def _conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ``ceil((n + 1) level)``-th smallest score (the largest when that exceeds n)."""
    s = np.sort(scores)
    k = min(math.ceil((len(s) + 1) * level), len(s))
    return float(s[max(k, 1) - 1])


@dataclass(frozen=True)
class Calibration:
    """Calibrated half-widths ``q_p sigma`` at the tabulated ``levels`` (module docstring).

    ``quantiles[i]``: ``q`` at ``levels[i]``; ``floor``: the smallest sigma used; ``n``: the
    calibration samples; ``method``: how it was fitted."""

    levels: tuple[float, ...]
    quantiles: tuple[float, ...]
    floor: float
    n: int
    method: str = "split-conformal on |truth - mean| / sigma"
    extra: dict = field(default_factory=dict)

    @property
    def scale(self) -> float:
        """The factor on sigma that makes the nominal 95 % Gaussian interval calibrated."""
        return self.q(0.95) / normal_quantile(0.95)

    def q(self, level: float) -> float:
        """The calibrated multiple of sigma at ``level`` (interpolated between the
        tabulated levels; outside them, the Gaussian ratio at the nearest one)."""
        lv, qs = np.asarray(self.levels), np.asarray(self.quantiles)
        if level in self.levels:
            return float(qs[self.levels.index(level)])
        if lv[0] <= level <= lv[-1]:
            return float(np.interp(level, lv, qs))
        edge = 0 if level < lv[0] else -1
        return float(qs[edge] / normal_quantile(float(lv[edge])) * normal_quantile(level))

    def interval(self, mean: Any, sigma: Any, level: float = 0.95
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` = ``mean ∓ q(level) max(sigma, floor)``."""
        mu, sd = np.asarray(mean, np.float64), np.asarray(sigma, np.float64)
        half = self.q(level) * np.maximum(sd, self.floor)
        return mu - half, mu + half

    def to_dict(self) -> dict:
        return {"method": self.method, "levels": list(self.levels),
                "quantiles": list(self.quantiles), "floor": self.floor, "n": self.n,
                "scale_95": self.scale, **({"extra": self.extra} if self.extra else {})}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(tuple(float(x) for x in d["levels"]),
                   tuple(float(x) for x in d["quantiles"]), float(d["floor"]), int(d["n"]),
                   str(d.get("method", cls.method)), dict(d.get("extra", {})))


def fit_calibration(mean: Any, sigma: Any, truth: Any,
                    levels: tuple[float, ...] = LEVELS) -> Calibration:
    """Fit on calibration data (never the data it is then evaluated on): the split-conformal
    quantile of ``|truth - mean| / sigma`` at every level in ``levels``."""
    mu, sd, y = _flat(mean, sigma, truth)
    if (sd < 0).any():
        raise ValueError("sigma must be >= 0")
    floor = _floor(sd)
    scores = np.abs(y - mu) / np.maximum(sd, floor)
    lv = tuple(sorted(float(p) for p in levels))
    if not lv or not all(0.0 < p < 1.0 for p in lv):
        raise ValueError(f"levels must be in (0, 1), got {levels}")
    qs = np.maximum.accumulate([_conformal_quantile(scores, p) for p in lv])
    return Calibration(lv, tuple(float(q) for q in qs), floor, int(len(scores)))


def fit_sigma_scale(mean: Any, sigma: Any, truth: Any, level: float = 0.95) -> float:
    """The single factor ``c`` such that ``mean ± z_level c sigma`` covers ``level`` of these
    samples (split-conformal quantile / ``z_level``)."""
    cal = fit_calibration(mean, sigma, truth, levels=(level,))
    return cal.q(level) / normal_quantile(level)


def fit_quantile_margin(lower: Any, upper: Any, truth: Any, level: float = 0.95) -> float:
    """Conformalised quantile regression: the margin ``q`` (may be negative) such that
    ``[lower - q, upper + q]`` covers ``level`` of these samples; ``lower``/``upper`` are a
    model's quantile predictions for that level."""
    lo, hi, y = _flat(lower, upper, truth)
    return _conformal_quantile(np.maximum(lo - y, y - hi), level)


def interval_coverage(lower: Any, upper: Any, truth: Any) -> float:
    """The fraction of samples with ``lower <= truth <= upper``."""
    lo, hi, y = _flat(lower, upper, truth)
    return float(np.mean((lo <= y) & (y <= hi)))


def coverage(mean: Any, sigma: Any, truth: Any, level: float = 0.95,
             calibration: Calibration | None = None) -> float:
    """How often ``truth`` lies in the level-``level`` interval: ``mean ± z sigma`` (raw,
    Gaussian) or, with ``calibration``, its calibrated interval."""
    if calibration is None:
        mu, sd, y = _flat(mean, sigma, truth)
        return float(np.mean(np.abs(y - mu) <= normal_quantile(level) * sd))
    lo, hi = calibration.interval(mean, sigma, level)
    return interval_coverage(lo, hi, truth)


def reliability(mean: Any, sigma: Any, truth: Any, levels: tuple[float, ...] = LEVELS,
                calibration: Calibration | None = None) -> dict:
    """Nominal vs empirical coverage at each level (raw Gaussian intervals, or the
    calibrated ones): ``{"nominal": [...], "empirical": [...]}``."""
    return {"nominal": [float(p) for p in levels],
            "empirical": [coverage(mean, sigma, truth, p, calibration) for p in levels]}
