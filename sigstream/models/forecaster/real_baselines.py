"""Classical baselines for real series: persistence, seasonal naive and a global AR fit.

N: windows, L: lookback (or a longer context), H: horizon, p: AR order. numpy, vectorised
over the windows; float64 inside.

* :func:`persistence` — the last value, repeated.
* :func:`seasonal_naive` — the value one season ago, repeated cyclically:
  ``y[t+h] = x[t + h - m ceil(h / m)]``; exact on any sequence of period m. Without a season
  it is persistence. It needs m samples of context: pass windows at least m long.
* :class:`GlobalAR` — one AR(p) model per series, ``x[t] = c + sum_i phi_i x[t-i]``, fitted
  by least squares (with intercept) on the series' training prefix, order chosen by AIC or
  BIC among 0 .. ``max_order`` on the same rows for every order (rows with a gap dropped),
  then rolled out recursively over the horizon from each window's last p values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sigstream.core.errors import ConfigError, InputError

__all__ = ["persistence", "seasonal_naive", "GlobalAR", "CRITERIA"]

CRITERIA = ("aic", "bic")


def _windows(windows: np.ndarray) -> np.ndarray:
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ConfigError(f"windows must be (N, L) with L >= 1, got shape {x.shape}")
    return x


def persistence(windows: np.ndarray, horizon: int) -> np.ndarray:
    """(N, L) -> (N, H): each window's last value, repeated."""
    x = _windows(windows)
    return np.repeat(x[:, -1:], horizon, axis=1)


def seasonal_naive(windows: np.ndarray, horizon: int, season: int | None) -> np.ndarray:
    """(N, C) -> (N, H): the value one season ``m`` ago, repeated cyclically; persistence when
    ``season`` is None (or 1). The windows must hold at least m samples."""
    x = _windows(windows)
    if season is None or season <= 1:
        return persistence(x, horizon)
    if season > x.shape[1]:
        raise ConfigError(f"seasonal naive with season {season} needs windows of at least "
                          f"{season} samples, got {x.shape[1]}")
    h = np.arange(horizon)  # step h + 1
    idx = x.shape[1] - season + (h % season)
    return x[:, idx]


@dataclass
class GlobalAR:
    """An AR(p) model with intercept, fitted on one series (see the module docstring).

    ``fit(values)`` sets ``order``, ``intercept``, ``coef`` (``phi_1 .. phi_p``, lag order),
    ``sigma2`` (residual variance), ``rows`` (equations used) and ``table`` (order ->
    criterion value)."""

    max_order: int = 48
    criterion: str = "aic"
    order: int = 0
    intercept: float = 0.0
    coef: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sigma2: float = float("nan")
    rows: int = 0
    table: dict[int, float] = field(default_factory=dict)

    def fit(self, values: np.ndarray) -> GlobalAR:
        """Least squares on ``values`` (1-D; NaN are gaps: rows touching one are dropped)."""
        if self.criterion not in CRITERIA:
            raise ConfigError(f"unknown criterion {self.criterion!r}; choose one of {CRITERIA}")
        if self.max_order < 0:
            raise ConfigError(f"max_order must be >= 0, got {self.max_order}")
        x = np.asarray(values, dtype=np.float64).ravel()
        # at most a third of the samples: enough equations per coefficient
        p_max = min(self.max_order, max(0, (int(np.isfinite(x).sum()) - 1) // 3))
        if x.size - p_max < 2:
            raise InputError(f"an AR fit needs at least {p_max + 2} samples, got {x.size}")
        t = np.arange(p_max, x.size)
        lags = x[t[:, None] - np.arange(1, p_max + 1)[None, :]] if p_max else np.zeros(
            (t.size, 0))  # (rows, P): x[t-1] .. x[t-P]
        y = x[t]
        ok = np.isfinite(y) & np.isfinite(lags).all(axis=1)
        lags, y = lags[ok], y[ok]
        m = y.size
        if m < p_max + 2:
            raise InputError(f"an AR fit needs {p_max + 2} gap-free rows, got {m}")
        design = np.concatenate([np.ones((m, 1)), lags], axis=1)
        scale = float(np.mean(y * y))
        floor = max(1e-12 * scale, 1e-300)
        penalty = 2.0 if self.criterion == "aic" else float(np.log(m))
        fits, table = {}, {}
        for p in range(p_max + 1):
            sol, *_ = np.linalg.lstsq(design[:, :p + 1], y, rcond=None)
            rss = float(np.sum((y - design[:, :p + 1] @ sol) ** 2))
            fits[p] = (sol, rss)
            table[p] = m * float(np.log(max(rss / m, floor))) + penalty * (p + 1)
        best = min(table, key=lambda p: (table[p], p))
        sol, rss = fits[best]
        self.order, self.intercept, self.coef = best, float(sol[0]), np.asarray(sol[1:])
        self.sigma2, self.rows, self.table = rss / m, m, table
        return self

    def forecast(self, windows: np.ndarray, horizon: int) -> np.ndarray:
        """(N, L) -> (N, H): the recursive rollout from each window's last ``order`` values."""
        x = _windows(windows)
        p = self.order
        if p > x.shape[1]:
            raise ConfigError(f"AR order {p} needs windows of at least {p} samples, got "
                              f"{x.shape[1]}")
        hist = x[:, x.shape[1] - p:][:, ::-1].copy() if p else np.zeros((x.shape[0], 0))
        out = np.empty((x.shape[0], horizon))
        for h in range(horizon):  # hist[:, 0] is the newest value
            nxt = self.intercept + hist @ self.coef
            out[:, h] = nxt
            if p:
                hist = np.concatenate([nxt[:, None], hist[:, :-1]], axis=1)
        return out

    def describe(self) -> dict:
        return {"order": self.order, "criterion": self.criterion, "max_order": self.max_order,
                "intercept": self.intercept, "coef": [float(c) for c in self.coef],
                "sigma2": self.sigma2, "rows": self.rows}
