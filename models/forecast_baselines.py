"""Classical forecasters over a sliding lookback window, streamed sample by sample.

B: batch (streams), T: time, N: windows, L: lookback, H: horizon, p: AR order.

Every forecaster here is a :class:`WindowForecaster`: a (B, T, 1) stream in, a
(B, T, H) stream out, where row t holds the forecast of samples t+1 .. t+H made
from the L samples ending at t (zeros before the stream starts). Its state is
the last L-1 samples; streamed output equals the offline sliding-window output.

* :class:`DFTForecaster` — the real DFT of the lookback, evaluated past its end.
  The inverse DFT is periodic in L, so without a window this is the lookback
  repeated: exact only when every period divides L. With a Hamming window the
  spectrum leaks less, but the extension is the *windowed* lookback, repeated.
  Both are one fixed (L, H) matrix, built from the DFT basis.
* :class:`LinearPredictor` — an autoregressive fit on the lookback, rolled out
  H steps: Burg's method (float64 lattice recursion, stable) or least squares
  (covariance method, minimum-norm solution). A noise-free sum of k sinusoids
  obeys an order-2k recurrence, so least squares predicts it exactly when
  L >= 4k. :func:`select_order` picks method and order on validation windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from sigstream.stream.contract import StreamingModule
from sigstream.stream.errors import ConfigError

METHODS = ("burg", "lstsq")
WINDOWS = ("none", "hamming")


class WindowState(NamedTuple):
    """history: (B, L-1) the most recent input samples, newest last."""

    history: Tensor


class WindowForecaster(StreamingModule):
    """Base: sliding windows of ``lookback`` samples -> ``horizon`` future samples each.

    Subclasses implement ``forecast(windows (N, L)) -> (N, H)``.
    """

    def __init__(self, lookback: int, horizon: int) -> None:
        super().__init__()
        if lookback < 2 or horizon < 1:
            raise ConfigError(f"need lookback >= 2 and horizon >= 1, got {lookback}, {horizon}")
        self.lookback, self.horizon = lookback, horizon
        self.in_channels, self.out_channels = 1, horizon
        self.hop, self.latency = 1, 0
        self.register_buffer("_offsets", torch.arange(lookback), persistent=False)

    def forecast(self, windows: Tensor) -> Tensor:
        raise NotImplementedError

    def init_state(self, batch: int) -> WindowState:
        return WindowState(torch.zeros(batch, self.lookback - 1, device=self._offsets.device))

    def sliding_windows(self, x: Tensor, state: WindowState) -> tuple[Tensor, Tensor]:
        """(B, T, 1) chunk -> ((B, T, L) windows ending at each sample, (B, L-1+T) history)."""
        full = torch.cat([state.history, x[..., 0]], dim=1)  # (B, L-1+T)
        t = torch.arange(x.shape[1], device=x.device)
        idx = t[:, None] + self._offsets[None, :]  # (T, L)
        return full[:, idx], full

    def step(self, x: Tensor, state: WindowState) -> tuple[Tensor, WindowState]:
        b = x.shape[0]
        if not torch.jit.is_tracing() and x.shape[1] == 0:
            return x.new_zeros(b, 0, self.horizon), state
        win, full = self.sliding_windows(x, state)  # (B, T, L)
        y = self.forecast(win.reshape(-1, self.lookback))  # (B * T, H)
        keep = full[:, full.shape[1] - (self.lookback - 1):]
        return y.reshape(b, -1, self.horizon), WindowState(keep)


# -- DFT extrapolation ----------------------------------------------------------------------
def dft_extrapolation_matrix(lookback: int, horizon: int, window: str = "none") -> Tensor:
    """(L, H) float64 matrix M: ``lookback_window @ M`` is the DFT reconstruction at L .. L+H-1.

    Real DFT of the (optionally Hamming-windowed) lookback, one-sided amplitudes
    (DC and Nyquist once, the others twice), divided by the window's coherent gain,
    and the Fourier series evaluated at the future sample indices.
    """
    if window not in WINDOWS:
        raise ConfigError(f"unknown window {window!r}; choose one of {WINDOWS}")
    n = torch.arange(lookback, dtype=torch.float64)
    w = (torch.hamming_window(lookback, periodic=False, dtype=torch.float64)
         if window == "hamming" else torch.ones(lookback, dtype=torch.float64))
    k = torch.arange(lookback // 2 + 1, dtype=torch.float64)  # rfft bins
    ang = 2 * torch.pi * n[:, None] * k[None, :] / lookback  # (L, F)
    a_re, a_im = w[:, None] * torch.cos(ang), -w[:, None] * torch.sin(ang)  # analysis
    weight = torch.full_like(k, 2.0)
    weight[0] = 1.0
    if lookback % 2 == 0:
        weight[-1] = 1.0
    m = torch.arange(lookback, lookback + horizon, dtype=torch.float64)
    syn = 2 * torch.pi * k[:, None] * m[None, :] / lookback  # (F, H)
    s_re, s_im = weight[:, None] * torch.cos(syn), -weight[:, None] * torch.sin(syn)
    gain = float(w.sum())  # L times the coherent gain
    return (a_re @ s_re + a_im @ s_im) / gain  # Re(X e^{i.}) = Re X cos - Im X sin


@dataclass(frozen=True)
class DFTConfig:
    lookback: int = 100
    horizon: int = 10
    window: str = "none"  # none | hamming


class DFTForecaster(WindowForecaster):
    """(B, T, 1) -> (B, T, H): DFT extrapolation of each lookback window."""

    def __init__(self, config: DFTConfig | None = None) -> None:
        self.config = cfg = config or DFTConfig()
        super().__init__(cfg.lookback, cfg.horizon)
        self.register_buffer("matrix", dft_extrapolation_matrix(
            cfg.lookback, cfg.horizon, cfg.window).float())

    def forecast(self, windows: Tensor) -> Tensor:
        return windows @ self.matrix


# -- linear prediction ----------------------------------------------------------------------
def burg(windows: Tensor, orders: Sequence[int]) -> list[Tensor]:
    """Burg AR coefficients of each window, float64: one (N, p) tensor per requested order.

    Convention: ``x[n] ~ -sum_i a[i-1] x[n-i]``. Every order comes from one
    lattice recursion (Levinson update of the reflection coefficients).
    """
    x = windows.double()
    p_max = max(orders)
    if not torch.jit.is_tracing() and p_max > x.shape[1] - 2:
        raise ConfigError(f"AR order {p_max} needs a lookback of at least {p_max + 2}")
    energy = (x * x).sum(dim=1)  # (N,)
    f, b = x[:, 1:], x[:, :-1]
    a = x.new_zeros(x.shape[0], 0)
    out: dict[int, Tensor] = {}
    for m in range(p_max):
        num = -2.0 * (f * b).sum(dim=1)
        den = (f * f + b * b).sum(dim=1) + 1e-12 * energy + 1e-300
        k = (num / den)[:, None]  # (N, 1) reflection coefficient, |k| <= 1
        a = torch.cat([a + k * a.flip(1), k], dim=1)
        f, b = (f + k * b)[:, 1:], (b + k * f)[:, :-1]
        if m + 1 in orders:
            out[m + 1] = a
    return [out[p] for p in orders]


def least_squares(windows: Tensor, order: int) -> Tensor:
    """(N, p) float64 AR coefficients (same convention as :func:`burg`) by least squares.

    Covariance method: every n in [p, L) gives one equation; minimum-norm
    solution (SVD), so orders above the signal's own are harmless when noise-free.
    """
    x = windows.double()
    n_win, length = x.shape
    if order > length - 1:
        raise ConfigError(f"AR order {order} needs a lookback of at least {order + 1}")
    rows = torch.arange(order, length)[:, None] - torch.arange(1, order + 1)[None, :]
    lhs = x[:, rows]  # (N, L-p, p): x[n-1], ..., x[n-p]
    rhs = x[:, order:, None]  # (N, L-p, 1)
    sol = torch.linalg.lstsq(lhs, rhs, driver="gelsd").solution[..., 0]
    return -sol


def ar_rollout(windows: Tensor, a: Tensor, horizon: int) -> Tensor:
    """(N, L) windows, (N, p) coefficients -> (N, H) recursive forecast (dtype of ``a``)."""
    p = a.shape[1]
    rev = windows[:, windows.shape[1] - p:].to(a.dtype).flip(1)  # (N, p): x[n-1], x[n-2], ...
    outs = []
    for _ in range(horizon):
        nxt = -(a * rev).sum(dim=1, keepdim=True)  # (N, 1)
        outs.append(nxt)
        rev = torch.cat([nxt, rev[:, :p - 1]], dim=1)
    return torch.cat(outs, dim=1)


@dataclass(frozen=True)
class LinearPredictionConfig:
    lookback: int = 100
    horizon: int = 10
    order: int = 40
    method: str = "burg"  # burg | lstsq


class LinearPredictor(WindowForecaster):
    """(B, T, 1) -> (B, T, H): an AR(order) fit on each lookback window, rolled out."""

    def __init__(self, config: LinearPredictionConfig | None = None) -> None:
        self.config = cfg = config or LinearPredictionConfig()
        if cfg.method not in METHODS:
            raise ConfigError(f"unknown method {cfg.method!r}; choose one of {METHODS}")
        if not 1 <= cfg.order <= cfg.lookback - 2:
            raise ConfigError(f"AR order must be in 1 .. lookback - 2, got {cfg.order}")
        super().__init__(cfg.lookback, cfg.horizon)

    def forecast(self, windows: Tensor) -> Tensor:
        return lp_forecast(windows, self.config.order, self.horizon, self.config.method)


def lp_forecast(windows: Tensor, order: int, horizon: int, method: str = "burg") -> Tensor:
    """(N, L) -> (N, H) float32 linear-prediction forecast."""
    a = burg(windows, [order])[0] if method == "burg" else least_squares(windows, order)
    return ar_rollout(windows, a, horizon).to(windows.dtype)


def select_order(lookback: Tensor, target: Tensor, orders: Sequence[int],
                 methods: Sequence[str] = METHODS) -> dict:
    """Method and order with the lowest MSE on validation windows (N, L) -> (N, H).

    Returns ``{"method", "order", "mse", "table": {method: {order: mse}}}``.
    """
    table: dict[str, dict[int, float]] = {}
    horizon = target.shape[1]
    for method in methods:
        if method == "burg":
            coefs = burg(lookback, list(orders))
        else:
            coefs = [least_squares(lookback, p) for p in orders]
        table[method] = {}
        for p, a in zip(orders, coefs, strict=True):
            pred = ar_rollout(lookback, a, horizon).float()
            mse = float(torch.mean((pred - target) ** 2))
            table[method][int(p)] = mse if np.isfinite(mse) else float("inf")
    method, order = min(((m, p) for m in table for p in table[m]),
                        key=lambda mp: table[mp[0]][mp[1]])
    return {"method": method, "order": int(order), "mse": table[method][order], "table": table}

