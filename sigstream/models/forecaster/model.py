"""Harmonic forecaster: the next H samples of a sum of harmonics from its last L, streamed.

B: batch (streams), T: time, N: windows, L: lookback, H: horizon, F: DFT bins
(L // 2 + 1), C: analytic candidate forecasts, D: decoder hidden size.

Three learned variants share one streaming stage (a :class:`WindowForecaster`:
(B, T, 1) in, (B, T, H) out, row t = forecast of samples t+1 .. t+H from the L
samples ending at t; state = the last L-1 samples):

* ``ar_lstm`` — one LSTM reads the lookback sample by sample and is then rolled
  out H steps, each step fed its own previous prediction;
* ``seq2seq_gru`` — a GRU encoder; the decoder GRU starts from the encoder state
  concatenated with the lookback's DFT features (D = hidden + 3F, :meth:`spectrum`);
  optional teacher forcing while training;
* ``mlp_gru`` — an MLP embeds the lookback, its DFT features and the
  analytic forecasts; a GRU decoder unrolls H steps without teacher forcing.

Analytic part (``analytic=True``, the default). A sum of sinusoids with
integer periods obeys a linear recurrence, so classical linear prediction is
strong where the signal is clean and weak where it is noisy, and which AR
order is best depends on the number of components and the noise. Each window
therefore gets C candidate forecasts: Burg AR fits of every order in
``burg_orders`` (one float64 lattice recursion, rolled out), minimum-norm
least-squares AR fits of every order in ``ls_orders`` to the window's first differences
(SVD-free, so they export; near-exact on clean signals of many components, where Burg is
not; summed back onto the last sample), a persistence candidate and a learned
linear map of the window; every decoder step outputs mixing weights over the
candidates (softmax) plus a residual: ``y_i = sum_c w_ic cand_ci + r_i``. The candidates
are inputs, nothing is looked up from the future; the DFT is a matrix product
with a fixed basis and everything exports to ONNX and TorchScript.

Level and scale (RevIN-style, per window, causal): each window's mean is removed and the
rest divided by its standard deviation before the network (in float64, so a level of 1e6
costs no precision), and the forecast is mapped back, so the stage is equivariant to
offsets and scales: ``f(a x + c) = a f(x) + c`` (a > 0). The AR candidates are fitted to
the window normalised in float64; a persistence candidate (the last value, repeated) is
always among them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from sigstream.core.errors import ConfigError
from sigstream.models.baselines.forecast import (
    WindowForecaster,
    ar_rollout,
    burg,
    min_norm_least_squares,
)

VARIANTS = ("ar_lstm", "seq2seq_gru", "mlp_gru")
PRESETS = ("accurate", "fast")  # shipped weights: with / without least-squares candidates
CLAMP = 8.0  # candidate forecasts are clipped to this many window standard deviations
TINY = 1e-30  # added to a window's standard deviation before dividing by it


@dataclass(frozen=True)
class ForecasterConfig:
    """The harmonic forecaster; each field's help is in its metadata."""

    variant: str = field(default="mlp_gru", metadata={
        "help": "ar_lstm | seq2seq_gru | mlp_gru", "choices": VARIANTS})
    lookback: int = field(default=100, metadata={"help": "lookback samples"})
    horizon: int = field(default=10, metadata={"help": "forecast samples"})
    hidden: int = field(default=64, metadata={"help": "recurrent size"})
    embed: int = field(default=256, metadata={"help": "MLP width"})
    analytic: bool = field(default=True, metadata={
        "help": "analytic candidates (DFT, Burg and least-squares AR forecasts) for the "
                "network to weigh; off: the network alone"})
    burg_orders: tuple[int, ...] = field(default=(12, 32, 80), metadata={
        "help": "AR orders of the Burg candidates, each <= lookback - 2"})
    ls_orders: tuple[int, ...] = field(default=(), metadata={
        "help": "minimum-norm least-squares AR orders, each in lookback/2 .. lookback - 2"})
    teacher_forcing: float = field(default=0.0, metadata={
        "help": "seq2seq_gru: probability of feeding the truth while training"})
    forecast_every: int = field(default=1, metadata={
        "help": "forecast once per N samples (hop and decimation N: the cost divided by N); "
                "1: at every sample. How the model streams, not its weights"})
    memory: int = field(default=0, metadata={
        "help": "long memory: order P of an AR model fitted to everything the stream has seen "
                "(AIC picks the order up to P), combined with the network by their errors so "
                "far (sigstream.models.forecaster.memory); 0: off. Needs forecast_every 1 and "
                "P <= lookback - 1. How the model streams, not its weights"})
    preset: str = field(default="accurate", metadata={
        "help": "which shipped weights: accurate (least-squares candidates) | fast",
        "choices": PRESETS})

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")
        if self.lookback < 4 or self.horizon < 1:
            raise ConfigError(f"need lookback >= 4 and horizon >= 1, got {self.lookback}, "
                              f"{self.horizon}")
        if self.hidden < 1 or self.embed < 1:
            raise ConfigError("hidden and embed must be >= 1")
        if self.analytic and not (self.burg_orders and all(
                1 <= p <= self.lookback - 2 for p in self.burg_orders)):
            raise ConfigError("burg_orders (--burg-orders) must be one or more AR orders in "
                              "1 .. lookback - 2")
        if self.ls_orders and not (self.analytic and all(
                (self.lookback + 1) // 2 <= p <= self.lookback - 2 for p in self.ls_orders)):
            raise ConfigError(f"ls_orders (--ls-orders) must be AR orders in "
                              f"{(self.lookback + 1) // 2} .. {self.lookback - 2} (lookback / 2 "
                              f".. lookback - 2) and need the analytic candidates")
        if isinstance(self.forecast_every, bool) or self.forecast_every < 1:
            raise ConfigError(f"forecast_every must be a whole number >= 1, got "
                              f"{self.forecast_every!r}")
        if isinstance(self.memory, bool) or not 0 <= self.memory <= self.lookback - 1:
            raise ConfigError(f"memory must be an AR order in 0 .. lookback - 1 = "
                              f"{self.lookback - 1} (0: off), got {self.memory!r}")
        if self.memory and self.forecast_every != 1:
            raise ConfigError("memory=P forecasts at every sample: it cannot be combined with "
                              f"forecast_every={self.forecast_every}")
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {PRESETS}")
        if not 0 <= self.teacher_forcing <= 1:
            raise ConfigError("teacher_forcing must be in [0, 1]")


def default_ls_orders(lookback: int) -> tuple[int, ...]:
    """Least-squares candidate orders for a lookback: 0.56, 0.64 and 0.72 of it (56, 64, 72
    at 100), where the minimum-norm fit is near-exact on clean many-component signals."""
    lo, hi = (lookback + 1) // 2, lookback - 2
    return tuple(sorted({min(max(round(f * lookback), lo), hi) for f in (0.56, 0.64, 0.72)}))


def dft_basis(lookback: int) -> Tensor:
    """(L, 2F) float32: ``window @ basis`` = [Re X_k, Im X_k] of the real DFT, divided by L."""
    n = torch.arange(lookback, dtype=torch.float64)
    k = torch.arange(lookback // 2 + 1, dtype=torch.float64)
    ang = 2 * torch.pi * n[:, None] * k[None, :] / lookback
    return (torch.cat([torch.cos(ang), -torch.sin(ang)], dim=1) / lookback).float()


class HarmonicForecaster(WindowForecaster):
    """(B, T, 1) stream -> (B, T / N, H) forecasts (N = ``forecast_every``, 1 by default);
    hop N, latency 0, any sample rate."""

    def __init__(self, config: ForecasterConfig | None = None) -> None:
        self.config = cfg = config or ForecasterConfig()
        cfg.validate()
        super().__init__(cfg.lookback, cfg.horizon, cfg.forecast_every)
        self.sample_rate = None
        self.n_bins = cfg.lookback // 2 + 1
        self.register_buffer("basis", dft_basis(cfg.lookback))
        # Burg, least squares, the learned linear map and persistence
        c = len(cfg.burg_orders) + len(cfg.ls_orders) + 2 if cfg.analytic else 0
        self.n_cand = c
        if cfg.analytic:
            self.linear = nn.Linear(cfg.lookback, cfg.horizon, bias=False)
        h, f2 = cfg.hidden, 3 * self.n_bins
        if cfg.variant == "ar_lstm":
            self.rnn = nn.LSTM(1 + c, h, batch_first=True)
            dec = h
        elif cfg.variant == "seq2seq_gru":
            self.encoder = nn.GRU(1, h, batch_first=True)
            dec = h + f2
            self.decoder = nn.GRUCell(1 + c, dec)
        else:
            self.mlp = nn.Sequential(
                nn.Linear(cfg.lookback + f2 + c * cfg.horizon, cfg.embed), nn.GELU(),
                nn.Linear(cfg.embed, cfg.embed), nn.GELU(), nn.Linear(cfg.embed, h), nn.Tanh())
            dec = h
            self.decoder = nn.GRUCell(1 + c, dec)
        self.head = nn.Sequential(nn.Linear(dec + c, cfg.embed // 2), nn.GELU(),
                                  nn.Linear(cfg.embed // 2, c + 1))

    # -- streaming with long memory ----------------------------------------------------------
    def init_state(self, batch: int):  # noqa: ANN201 - WindowState, or MemoryState with memory
        base = super().init_state(batch)
        if not self.config.memory:
            return base
        from sigstream.models.forecaster.memory import init_memory_state

        return init_memory_state(base.history, self.config.memory, self.horizon)

    def step(self, x: Tensor, state):  # noqa: ANN001, ANN201 - see init_state
        if not self.config.memory:
            return super().step(x, state)
        from sigstream.models.forecaster.memory import memory_step

        b = x.shape[0]
        if not torch.jit.is_tracing() and x.shape[1] == 0:
            return x.new_zeros(b, 0, self.horizon), state
        win, full = self.sliding_windows(x, state)  # (B, T, L)
        y_net = self.forecast(win.reshape(-1, self.lookback)).reshape(b, -1, self.horizon)
        y, new = memory_step(x[..., 0], full, win, y_net, state, self.config.memory)
        keep = full[:, full.shape[1] - (self.lookback - 1):]
        return y, new._replace(history=keep)

    # -- features --------------------------------------------------------------------------
    def spectrum(self, win: Tensor) -> Tensor:
        """(N, L) -> (N, 3F) features of the real DFT (a fixed-basis product): amplitudes,
        then each bin's ``re / (amp + 1)`` and ``im / (amp + 1)``: its phase as a cosine and
        a sine, faded out where the bin is weak. An angle would be ill-conditioned there
        (a bin of a window's spectral zero, e.g. any multiple of 10 for a 10-sample pulse,
        holds rounding noise, and its angle is anything), so the last-bit differences of
        another runtime would reach the forecast; these features move by at most what
        ``re`` and ``im`` move. (Amplitudes are ~L/2 for a unit sinusoid on a bin.)"""
        z = win @ self.basis  # (N, 2F)
        re, im = z[:, :self.n_bins], z[:, self.n_bins:]
        amp = torch.sqrt(re * re + im * im + 1e-12)
        return torch.cat([amp, re / (amp + 1.0), im / (amp + 1.0)], dim=1)

    def candidates(self, win: Tensor, raw: Tensor | None = None,
                   level: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """(N, L) normalised windows -> (N, C, H) analytic forecasts in the same units,
        clipped to +-CLAMP; an AR candidate that leaves +-CLAMP anywhere is 0 instead.

        The AR fits run in float64 on ``raw`` (the windows before normalisation, if given)
        normalised in float64 with ``level`` (their float64 (mean, deviation), each (N, 1)): a
        high-order least-squares fit to a clean many-component window is ill-conditioned,
        so the last-bit differences of a float32 normalisation (another runtime sums in
        another order) would otherwise reach the forecast. Fitted to the mean-removed
        window, every candidate is equivariant to offsets and scales like the network.
        """
        cfg = self.config
        with torch.no_grad():
            if raw is not None and level is not None:
                mean, std = level
                x = (raw.double() - mean) / (std + TINY)
            else:
                x = win.double()
            rms = torch.sqrt((x * x).mean(dim=1, keepdim=True)) + 1e-30
            x = x / rms  # ~1 already; exactly 1 for the AR fits' conditioning
            cands = [ar_rollout(x, a, cfg.horizon) for a in burg(x, list(cfg.burg_orders))]
            if cfg.ls_orders:
                # on the first differences, rolled out and summed onto the last sample: a
                # removed mean would cost an exact fit to a zero-mean sum of harmonics its
                # exactness (the window's mean is not the signal's); a difference removes
                # any level exactly and leaves every harmonic a harmonic
                d = x[:, 1:] - x[:, :-1]
                d_rms = torch.sqrt((d * d).mean(dim=1, keepdim=True)) + 1e-30
                d = d / d_rms
                cands += [x[:, -1:] + torch.cumsum(ar_rollout(d, a, cfg.horizon), dim=1) * d_rms
                          for a in min_norm_least_squares(d, cfg.ls_orders)]
            cand = torch.stack(cands, dim=1) * rms[:, :, None]
            # An AR fit to a window it can interpolate exactly (a stream's first samples
            # after zeros, a window of few distinct values) is unstable: its rollout runs to
            # 1e30 and beyond, where another runtime's last-bit differences flip its sign.
            # Such a candidate (any step beyond CLAMP, or not finite) says nothing: it is
            # replaced by the window's mean (0), a decision far from any rounding.
            size = torch.where(torch.isfinite(cand), cand.abs(),
                               torch.full_like(cand, math.inf)).amax(dim=2, keepdim=True)
            cand = torch.where(size <= CLAMP, cand, torch.zeros_like(cand))
            cand = cand.to(win.dtype)
        last = win[:, -1:, None].expand(-1, 1, cfg.horizon)  # persistence
        cand = torch.cat([cand, self.linear(win)[:, None], last], dim=1)  # (N, C, H)
        return torch.clamp(cand, -CLAMP, CLAMP)

    # -- the network -----------------------------------------------------------------------
    def _out(self, h: Tensor, cand_i: Tensor | None) -> Tensor:
        """(N, D) decoder state, (N, C) candidates at this step -> (N,) prediction."""
        if cand_i is None:
            return self.head(h)[:, 0]
        o = self.head(torch.cat([h, cand_i], dim=1))  # (N, C + 1)
        w = torch.softmax(o[:, :self.n_cand], dim=1)
        return (w * cand_i).sum(dim=1) + o[:, self.n_cand]

    def forecast_normalised(self, win: Tensor, target: Tensor | None = None,
                            raw: Tensor | None = None,
                            level: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """(N, L) normalised windows -> (N, H) normalised forecast.

        ``target`` (N, H), normalised alike, enables teacher forcing (seq2seq_gru, training);
        ``raw`` and ``level``: the windows before normalisation and their (mean, deviation), for
        the float64 candidate fits.
        """
        cfg = self.config
        n = win.shape[0]
        cand = self.candidates(win, raw, level) if cfg.analytic else None  # (N, C, H)
        steps = []
        prev = win[:, -1:]  # (N, 1)

        def dec_in(i: int, prev: Tensor) -> Tensor:
            return prev if cand is None else torch.cat([prev, cand[:, :, i]], dim=1)

        if cfg.variant == "ar_lstm":
            seq = win[:, :-1, None]  # (N, L-1, 1)
            if cand is not None:
                seq = torch.cat([seq, seq.new_zeros(n, seq.shape[1], self.n_cand)], dim=2)
            _, hc = self.rnn(seq)
            for i in range(cfg.horizon):
                out, hc = self.rnn(dec_in(i, prev)[:, None], hc)
                y = self._out(out[:, 0], None if cand is None else cand[:, :, i])
                steps.append(y)
                prev = y[:, None]
            return torch.stack(steps, dim=1)
        if cfg.variant == "seq2seq_gru":
            _, h_enc = self.encoder(win[:, :, None])  # (1, N, hidden)
            h = torch.cat([h_enc[0], self.spectrum(win)], dim=1)  # (N, hidden + 3F)
        else:
            parts = [win, self.spectrum(win)] + ([] if cand is None
                                                 else [cand.reshape(n, -1)])
            h = self.mlp(torch.cat(parts, dim=1))  # (N, hidden)
        force = (target is not None and self.training and cfg.variant == "seq2seq_gru"
                 and cfg.teacher_forcing > 0)
        for i in range(cfg.horizon):
            h = self.decoder(dec_in(i, prev), h)
            y = self._out(h, None if cand is None else cand[:, :, i])
            steps.append(y)
            if force and bool(torch.rand(()) < cfg.teacher_forcing):
                prev = target[:, i:i + 1]
            else:
                prev = y[:, None]
        return torch.stack(steps, dim=1)

    @staticmethod
    def level(windows: Tensor) -> tuple[Tensor, Tensor]:
        """(N, L) raw windows -> their float64 mean and standard deviation, each (N, 1).
        Windows are divided by the deviation plus :data:`TINY` and forecasts multiplied by
        the deviation alone, so a constant window (float32 values: its float64 mean is
        exact and its deviations exactly 0) forecasts exactly the constant."""
        x = windows.double()
        mean = x.mean(dim=1, keepdim=True)
        dev = x - mean
        return mean, torch.sqrt((dev * dev).mean(dim=1, keepdim=True))

    def normalise(self, windows: Tensor, future: Tensor | None = None,
                  ) -> tuple[Tensor, Tensor | None, tuple[Tensor, Tensor]]:
        """(N, L) raw windows (and (N, H) futures) -> normalised float32 ones and the
        level (mean, deviation)."""
        mean, std = self.level(windows)
        div = std + TINY
        win = ((windows.double() - mean) / div).to(windows.dtype)
        fut = None if future is None else ((future.double() - mean) / div).to(future.dtype)
        return win, fut, (mean, std)

    def forecast(self, windows: Tensor, target: Tensor | None = None) -> Tensor:
        """(N, L) raw windows -> (N, H) forecast in the windows' own level and scale."""
        win, tgt, (mean, std) = self.normalise(windows, target)
        y = self.forecast_normalised(win, tgt, windows, (mean, std))
        return (y.double() * std + mean).to(windows.dtype)
