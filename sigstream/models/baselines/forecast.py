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
  (covariance method, minimum-norm solution; :func:`min_norm_least_squares` is an
  SVD-free version for orders >= L / 2 that exports). A noise-free sum of k sinusoids
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

from sigstream.core.contract import StreamingModule
from sigstream.core.errors import ConfigError

METHODS = ("burg", "lstsq")
WINDOWS = ("none", "hamming")


class WindowState(NamedTuple):
    """history: (B, L-1) the most recent input samples, newest last."""

    history: Tensor


class WindowForecaster(StreamingModule):
    """Base: sliding windows of ``lookback`` samples -> ``horizon`` future samples each.

    Subclasses implement ``forecast(windows (N, L)) -> (N, H)``.

    ``every`` = N > 1 forecasts once per N samples instead of at every sample (the cost
    divided by N): ``hop = decimation = N``, chunks are whole groups of N samples, and
    output row j is the forecast made at the group's last sample, input sample
    ``(j + 1) N - 1`` (the rows ``N - 1 :: N`` of the every-sample output).
    """

    def __init__(self, lookback: int, horizon: int, every: int = 1) -> None:
        super().__init__()
        if lookback < 2 or horizon < 1:
            raise ConfigError(f"need lookback >= 2 and horizon >= 1, got {lookback}, {horizon}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"forecast_every must be a whole number >= 1, got {every!r}")
        self.lookback, self.horizon, self.every = lookback, horizon, every
        self.in_channels, self.out_channels = 1, horizon
        self.hop, self.latency, self.decimation = every, 0, every
        self.register_buffer("_offsets", torch.arange(lookback), persistent=False)

    def forecast(self, windows: Tensor) -> Tensor:
        raise NotImplementedError

    def init_state(self, batch: int) -> WindowState:
        return WindowState(torch.zeros(batch, self.lookback - 1, device=self._offsets.device))

    def sliding_windows(self, x: Tensor, state: WindowState) -> tuple[Tensor, Tensor]:
        """(B, T, 1) chunk -> ((B, T / N, L) windows ending at each forecast sample (every
        sample for N = 1), (B, L-1+T) history)."""
        full = torch.cat([state.history, x[..., 0]], dim=1)  # (B, L-1+T)
        t = torch.arange(self.every - 1, x.shape[1], self.every, device=x.device)
        idx = t[:, None] + self._offsets[None, :]  # (T / N, L)
        return full[:, idx], full

    def step(self, x: Tensor, state: WindowState) -> tuple[Tensor, WindowState]:
        b = x.shape[0]
        if not torch.jit.is_tracing() and x.shape[1] == 0:
            return x.new_zeros(b, 0, self.horizon), state
        win, full = self.sliding_windows(x, state)  # (B, T / N, L)
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
        den = (f * f + b * b).sum(dim=1) + 1e-12 * energy
        # a silent window has num = den = 0: k = 0 there. (Not ``den + 1e-300``: ONNX keeps
        # such a constant in float32, where it is 0, and the graph then gives 0 / 0 = NaN.)
        den = torch.where(den > 0, den, torch.ones_like(den))
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


def min_norm_least_squares(windows: Tensor, orders: int | Sequence[int],
                           tol: float = 1e-9) -> Tensor | list[Tensor]:
    """Float64 AR coefficients by least squares for orders ``>= L / 2``, exportable.

    ``orders`` an int: one (N, p) tensor; a sequence: one per order, solved together.
    The same minimum-norm solution as :func:`least_squares` (tested to agree), without
    an SVD, so it traces to ONNX and TorchScript. With ``p >= L / 2`` the covariance
    method has ``m = L - p <= p`` equations ``A a = b``; the minimum-norm solution lies in
    the row space of A. Classical Gram-Schmidt with reorthogonalisation (CGS2) builds
    ``A^T = Q R`` one row at a time, ``R^T y = b`` is solved by forward substitution in
    the same loop, and ``a = Q y``. A row that is (numerically) a combination of earlier
    rows, as in a clean signal of few components, adds nothing: its residual norm is below
    ``tol`` times the largest row norm, so it gets neither a direction nor a coefficient —
    the truncation the SVD solution applies to zero singular values.

    Several orders share one loop: each system is padded to the largest order's columns
    and the lowest order's rows with zeros (a zero column keeps a zero coefficient in the
    minimum-norm solution; a zero row is skipped like a dependent one), and the systems
    are stacked along the batch. That is max(m) steps of (O N, m, p) products instead of
    sum(m) smaller ones: a graph a fifth the size for seven orders.
    """
    single = isinstance(orders, int)
    ords = [orders] if single else [int(p) for p in orders]
    x = windows.double()
    n_win, length = x.shape
    for p in ords:
        if not torch.jit.is_tracing() and not 1 <= length - p <= p:
            raise ConfigError(f"minimum-norm least squares needs lookback / 2 <= order < "
                              f"lookback, got order {p} for lookback {length}")
    m, p_max = length - min(ords), max(ords)
    j_idx = torch.arange(m)[:, None]  # row j of system o is the equation for n = p_o + j
    i_idx = torch.arange(p_max + 1)[None, :]  # column i holds lag i: x[n - i]
    idx, mask = [], []
    for p in ords:
        valid = (j_idx < length - p) & (i_idx <= p)  # (m, p_max + 1)
        idx.append(torch.where(valid, p + j_idx - i_idx, torch.zeros_like(j_idx + i_idx)))
        mask.append(valid)
    rows = x[:, torch.stack(idx)] * torch.stack(mask).to(x.dtype)  # (N, O, m, p_max + 1)
    rows = rows.transpose(0, 1).reshape(len(ords) * n_win, m, p_max + 1)  # order-major
    lhs, rhs = rows[:, :, 1:], rows[:, :, 0]  # x[n-1] .. x[n-p]; x[n]
    floor = tol * torch.sqrt((lhs * lhs).sum(dim=2).amax(dim=1, keepdim=True))  # (O N, 1)
    if torch.jit.is_tracing():
        sol = _cgs2_traceable(lhs, rhs, floor)
    else:  # the same arithmetic in cache-sized blocks of systems, directions in place
        sol = lhs.new_zeros(lhs.shape[0], p_max)
        for i in range(0, lhs.shape[0], EAGER_BLOCK):
            blk = slice(i, i + EAGER_BLOCK)
            sol[blk] = _cgs2_eager(lhs[blk], rhs[blk], floor[blk])
    out = [-sol[k * n_win:(k + 1) * n_win, :p] for k, p in enumerate(ords)]
    return out[0] if single else out


EAGER_BLOCK = 224  # systems per eager block: 224 x 48 x 76 float64 directions, ~4 MB


def _cgs2_direction(v: Tensor, b_j: Tensor, acc: Tensor, floor: Tensor
                    ) -> tuple[Tensor, Tensor]:
    """One row's residual ``v`` (S, p) after projection, its right-hand side ``b_j`` (S, 1)
    less ``acc`` (R^T y so far) -> its unit direction (S, p) and coefficient (S, 1); both
    zero where the residual is below ``floor`` (a dependent or padding row)."""
    r_jj = torch.sqrt((v * v).sum(dim=1, keepdim=True))  # (S, 1)
    keep = r_jj > floor
    safe = torch.where(keep, r_jj, torch.ones_like(r_jj))
    return (torch.where(keep, v / safe, torch.zeros_like(v)),
            torch.where(keep, (b_j - acc) / safe, torch.zeros_like(r_jj)))


def _cgs2_traceable(lhs: Tensor, rhs: Tensor, floor: Tensor) -> Tensor:
    """(S, m, p) rows, (S, m) right-hand sides, (S, 1) floors -> (S, p) minimum-norm solutions.

    Out of place (directions grow by concatenation), so it traces to ONNX/TorchScript.
    """
    n_sys, m, p = lhs.shape
    q = lhs.new_zeros(n_sys, 0, p)  # (S, j, p) orthonormal directions found so far
    y = lhs.new_zeros(n_sys, 0)  # (S, j) their coefficients
    sol = lhs.new_zeros(n_sys, p)
    for j in range(m):
        v = lhs[:, j:j + 1]  # (S, 1, p)
        acc = torch.zeros_like(floor)
        if j:
            c1 = v @ q.transpose(1, 2)  # (S, 1, j) projections on earlier directions
            v = v - c1 @ q
            c2 = v @ q.transpose(1, 2)
            v = v - c2 @ q
            acc = ((c1 + c2)[:, 0] * y).sum(dim=1, keepdim=True)
        q_j, y_j = _cgs2_direction(v[:, 0], rhs[:, j:j + 1], acc, floor)
        q = torch.cat([q, q_j[:, None]], dim=1)
        y = torch.cat([y, y_j], dim=1)
        sol = sol + y_j * q_j
    return sol


def _cgs2_eager(lhs: Tensor, rhs: Tensor, floor: Tensor) -> Tensor:
    """:func:`_cgs2_traceable` with preallocated directions written in place: about five
    times faster in eager mode on a block of systems that fits in cache."""
    n_sys, m, p = lhs.shape
    q = lhs.new_zeros(n_sys, m, p)
    y = lhs.new_zeros(n_sys, m)
    sol = lhs.new_zeros(n_sys, p)
    for j in range(m):
        v = lhs[:, j]  # (S, p)
        acc = torch.zeros_like(floor)
        if j:
            qj = q[:, :j]  # (S, j, p)
            c1 = torch.bmm(qj, v[:, :, None])[:, :, 0]  # (S, j)
            v = v - torch.bmm(c1[:, None], qj)[:, 0]
            c2 = torch.bmm(qj, v[:, :, None])[:, :, 0]
            v = v - torch.bmm(c2[:, None], qj)[:, 0]
            acc = ((c1 + c2) * y[:, :j]).sum(dim=1, keepdim=True)
        q_j, y_j = _cgs2_direction(v, rhs[:, j:j + 1], acc, floor)
        q[:, j] = q_j
        y[:, j] = y_j[:, 0]
        sol += y_j * q_j
    return sol


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

