"""Harmonic forecaster: the next H samples of a sum of harmonics from its last L, streamed.

B: batch (streams), T: time, N: windows, L: lookback, H: horizon, F: DFT bins
(L // 2 + 1), C: analytic candidate forecasts, D: decoder hidden size.

Three learned variants share one streaming stage (a :class:`WindowForecaster`:
(B, T, 1) in, (B, T, H) out, row t = forecast of samples t+1 .. t+H from the L
samples ending at t; state = the last L-1 samples):

* ``ar_lstm`` — one LSTM reads the lookback sample by sample and is then rolled
  out H steps, each step fed its own previous prediction;
* ``seq2seq_gru`` — a GRU encoder; the decoder GRU starts from the encoder state
  concatenated with the lookback's DFT amplitudes and phases (D = hidden + 2F);
  optional teacher forcing while training;
* ``mlp_gru`` — an MLP embeds the lookback, its DFT amplitudes/phases and the
  analytic forecasts; a GRU decoder unrolls H steps without teacher forcing.

Analytic part (``analytic=True``, the default). A sum of sinusoids with
integer periods obeys a linear recurrence, so classical linear prediction is
strong where the signal is clean and weak where it is noisy, and which AR
order is best depends on the number of components and the noise. Each window
therefore gets C candidate forecasts: Burg AR fits of every order in
``burg_orders`` (one float64 lattice recursion, rolled out), minimum-norm
least-squares AR fits of every order in ``ls_orders`` (SVD-free, so they export;
near-exact on clean signals of many components, where Burg is not) and a learned
linear map of the window; every decoder step outputs mixing weights over the
candidates (softmax) plus a residual: ``y_i = sum_c w_ic cand_ci + r_i``. The candidates
are inputs, nothing is looked up from the future; the DFT is a matrix product
with a fixed basis and everything exports to ONNX and TorchScript.

Each window is scaled by its RMS before the network and the forecast scaled
back, so the stage is scale-equivariant.
"""

from __future__ import annotations

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
CLAMP = 6.0  # candidate forecasts are clipped to this many window RMS


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
        "help": "minimum-norm least-squares AR orders, each in lookback/2 .. lookback - 1"})
    teacher_forcing: float = field(default=0.0, metadata={
        "help": "seq2seq_gru: probability of feeding the truth while training"})
    forecast_every: int = field(default=1, metadata={
        "help": "forecast once per N samples (hop and decimation N: the cost divided by N); "
                "1: at every sample. How the model streams, not its weights"})
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
                (self.lookback + 1) // 2 <= p <= self.lookback - 1 for p in self.ls_orders)):
            raise ConfigError(f"ls_orders (--ls-orders) must be AR orders in "
                              f"{(self.lookback + 1) // 2} .. {self.lookback - 1} (lookback / 2 "
                              f".. lookback - 1) and need the analytic candidates")
        if isinstance(self.forecast_every, bool) or self.forecast_every < 1:
            raise ConfigError(f"forecast_every must be a whole number >= 1, got "
                              f"{self.forecast_every!r}")
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {PRESETS}")
        if not 0 <= self.teacher_forcing <= 1:
            raise ConfigError("teacher_forcing must be in [0, 1]")


def default_ls_orders(lookback: int) -> tuple[int, ...]:
    """Least-squares candidate orders for a lookback: 0.56, 0.64 and 0.72 of it (56, 64, 72
    at 100), where the minimum-norm fit is near-exact on clean many-component signals."""
    lo, hi = (lookback + 1) // 2, lookback - 1
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
        c = len(cfg.burg_orders) + len(cfg.ls_orders) + 1 if cfg.analytic else 0
        self.n_cand = c
        if cfg.analytic:
            self.linear = nn.Linear(cfg.lookback, cfg.horizon, bias=False)
        h, f2 = cfg.hidden, 2 * self.n_bins
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

    # -- features --------------------------------------------------------------------------
    def spectrum(self, win: Tensor) -> tuple[Tensor, Tensor]:
        """(N, L) -> amplitudes, phases (N, F) of the real DFT (a fixed-basis product)."""
        z = win @ self.basis  # (N, 2F)
        re, im = z[:, :self.n_bins], z[:, self.n_bins:]
        # DC and Nyquist are real: their "phase" is a sign (+-pi flips on -0.0), so they
        # enter as signed values; the other bins as amplitude and phase
        last = self.n_bins - 1 if self.config.lookback % 2 == 0 else self.n_bins
        re_in, im_in = re[:, 1:last], im[:, 1:last]
        # ONNX has no atan2: the exporter writes atan(y / x) with quadrant terms, NaN at
        # x = y = 0 (a silent window). atan2(0, 1) = 0 = atan2(0, 0) there, in every runtime.
        re_in = torch.where((re_in == 0) & (im_in == 0), torch.ones_like(re_in), re_in)
        phase = torch.atan2(im_in, re_in)
        return torch.sqrt(re * re + im * im + 1e-12), torch.cat(
            [re[:, :1], phase, re[:, last:]], dim=1)

    def candidates(self, win: Tensor, raw: Tensor | None = None) -> Tensor:
        """(N, L) normalised windows -> (N, C, H) analytic forecasts, clipped to +-CLAMP.

        The AR fits run in float64 on ``raw`` (the windows before normalisation, if given)
        normalised in float64: a high-order least-squares fit to a clean many-component
        window is ill-conditioned, so the last-bit differences of a float32 normalisation
        (another runtime sums in another order) would otherwise reach the forecast.
        """
        cfg = self.config
        with torch.no_grad():
            x = (win if raw is None else raw).double()
            x = x / (torch.sqrt((x * x).mean(dim=1, keepdim=True)) + 1e-6)
            coefs = burg(x, list(cfg.burg_orders))
            if cfg.ls_orders:
                coefs += min_norm_least_squares(x, cfg.ls_orders)
            cand = torch.stack([ar_rollout(x, a, cfg.horizon).to(win.dtype) for a in coefs],
                               dim=1)
        cand = torch.cat([cand, self.linear(win)[:, None]], dim=1)  # (N, C, H)
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
                            raw: Tensor | None = None) -> Tensor:
        """(N, L) RMS-normalised windows -> (N, H) normalised forecast.

        ``target`` (N, H), normalised alike, enables teacher forcing (seq2seq_gru, training);
        ``raw``: the windows before normalisation, for the float64 candidate fits.
        """
        cfg = self.config
        n = win.shape[0]
        cand = self.candidates(win, raw) if cfg.analytic else None  # (N, C, H)
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
            amp, phase = self.spectrum(win)
            h = torch.cat([h_enc[0], amp, phase], dim=1)  # (N, hidden + 2F)
        else:
            amp, phase = self.spectrum(win)
            parts = [win, amp, phase] + ([] if cand is None else [cand.reshape(n, -1)])
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

    def forecast(self, windows: Tensor, target: Tensor | None = None) -> Tensor:
        """(N, L) raw windows -> (N, H) forecast in the windows' own scale."""
        scale = torch.sqrt((windows * windows).mean(dim=1, keepdim=True)) + 1e-6  # (N, 1)
        tgt = None if target is None else target / scale
        return self.forecast_normalised(windows / scale, tgt, windows) * scale
