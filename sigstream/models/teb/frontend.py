"""Causal, streamable scattering-style feature front-end for the TEB-VAE.

B: batch (streams), T: raw samples (4 Hz), S: signals (FHR, UP), L = T // 16: decimated
steps, C: feature channels.

Per signal, from the raw stream (NaN = missing):

1. *Hold-last imputation*: a missing sample takes the last observed value (0, the
   normalised centre, before the first); a ``missing`` indicator (1/0) is kept.
2. *Complex band-pass bank*: J causal gammatone-like wavelets (order 4) with centre
   frequencies ``f_max * 2**(-j / per_octave)``, bandwidth ``bandwidth * f_j``, zero-mean
   (no DC leak), unit gain at the centre frequency, at most ``max_taps`` taps.
3. *Non-linearities*, sample by sample: the modulus ``|z_j|`` (first-order scattering) and
   phase-harmonic channels for each band pair one octave apart, ``sqrt(|z_j| |z_k|)
   exp(i (phi_j - 2 phi_k))`` with ``f_j = 2 f_k`` (real and imaginary parts): the phase
   of band k, doubled, aligned with band j, so the pair's coherence survives low-passing.
4. *Low-pass and decimate by 16*: one depthwise causal FIR (a Hann window of
   ``lowpass_taps`` taps) applied only at the last sample of every group of 16 (the
   strided :class:`~sigstream.models.layers.conv.CausalConv1d`, which keeps the partial group
   in its state), so step ``l`` depends on samples ``<= 16 l + 15`` only.

Channels per signal, in order: ``st`` = [instant value (the imputed sample at the end of
the group), local mean, missing fraction, |z_0| ... |z_{J-1}|] (3 + J) then ``ph`` =
[Re, Im of each octave pair] (2 (J - per_octave)). The output stacks the signals:
``[st(FHR), ph(FHR), st(UP), ph(UP)]``; :meth:`TebFrontEnd.split` cuts it into the
model's ``y_st``, ``y_ph`` and ``x_ph`` (the source path takes all of the UP channels).

All filters are fixed (no gradients). ``step`` carries the last observed values, the
band-pass history and the low-pass history with its decimation phase; streamed output
equals ``forward`` for any chunking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from sigstream.core.contract import StreamingModule
from sigstream.core.errors import ConfigError
from sigstream.models.layers.conv import CausalConv1d, ConvState


@dataclass(frozen=True)
class FrontEndConfig:
    sample_rate: float = 4.0
    decimation: int = 16
    n_filters: int = 6
    per_octave: int = 1
    f_max: float = 1.0  # Hz, centre of the highest band
    bandwidth: float = 0.6  # gammatone bandwidth / centre frequency
    max_taps: int = 512
    lowpass_taps: int = 32
    signals: int = 2  # FHR, UP

    def validate(self) -> None:
        if self.n_filters <= self.per_octave:
            raise ConfigError("n_filters must exceed per_octave (phase harmonics need octave "
                              "pairs)")
        if not 0 < self.f_max < self.sample_rate / 2:
            raise ConfigError(f"f_max must lie in (0, {self.sample_rate / 2}) Hz")
        if self.decimation < 1 or self.lowpass_taps < 1 or self.max_taps < 2:
            raise ConfigError("decimation, lowpass_taps and max_taps must be positive")

    @property
    def st_channels(self) -> int:
        return 3 + self.n_filters

    @property
    def ph_channels(self) -> int:
        return 2 * (self.n_filters - self.per_octave)

    @property
    def per_signal(self) -> int:
        return self.st_channels + self.ph_channels

    def centres(self) -> list[float]:
        return [self.f_max * 2.0 ** (-j / self.per_octave) for j in range(self.n_filters)]


def wavelet_bank(cfg: FrontEndConfig) -> np.ndarray:
    """(J, max_taps) complex128 causal impulse responses h_j[n], n = lag in samples."""
    n = np.arange(cfg.max_taps, dtype=np.float64)
    out = np.zeros((cfg.n_filters, cfg.max_taps), dtype=np.complex128)
    order = 4
    for j, f in enumerate(cfg.centres()):
        b = cfg.bandwidth * f
        env = n ** (order - 1) * np.exp(-2 * np.pi * b * n / cfg.sample_rate)
        env /= env.max()
        carrier = np.exp(2j * np.pi * f * n / cfg.sample_rate)
        kappa = (env * carrier).sum() / env.sum()  # remove the DC response
        h = env * (carrier - kappa)
        gain = abs((h * np.exp(-2j * np.pi * f * n / cfg.sample_rate)).sum())
        out[j] = h / gain
    return out


class FrontEndState(NamedTuple):
    """last: (B, S) last observed value per signal; bank: the band-pass ConvState;
    lowpass: the low-pass/decimation ConvState (history and phase). Float64, like the
    front-end's fixed filters; inputs and outputs are float32."""

    last: Tensor
    bank: ConvState
    lowpass: ConvState


class TebFrontEnd(StreamingModule):
    """(B, T, S) raw normalised signals (NaN = missing) -> (B, T // 16, S * C) features."""

    def __init__(self, config: FrontEndConfig | None = None) -> None:
        super().__init__()
        cfg = config or FrontEndConfig()
        cfg.validate()
        self.config = cfg
        s, j = cfg.signals, cfg.n_filters
        self.in_channels, self.out_channels = s, s * cfg.per_signal
        self.hop, self.latency, self.decimation = 1, 0, cfg.decimation
        self.sample_rate = cfg.sample_rate
        self.bank = CausalConv1d(s, 2 * j * s, cfg.max_taps, groups=s, bias=False)
        self.pre = s * (3 + j + cfg.ph_channels)  # channels before the low-pass
        self.lowpass = CausalConv1d(self.pre, self.pre, cfg.lowpass_taps, groups=self.pre,
                                    stride=cfg.decimation, bias=False, ragged=True)
        with torch.no_grad():
            h = wavelet_bank(cfg)  # (J, K)
            w = np.concatenate([h.real, h.imag], axis=0)[:, ::-1]  # (2J, K), oldest tap first
            w = torch.from_numpy(w.copy()).float()
            self.bank.conv.weight.copy_(w.repeat(s, 1).unsqueeze(1))
            hann = torch.hann_window(cfg.lowpass_taps + 2, periodic=False)[1:-1]
            hann = hann / hann.sum()
            k = torch.zeros(self.pre, cfg.lowpass_taps)
            k[:] = hann
            per = self.pre // s
            for i in range(s):
                k[i * per] = 0.0
                k[i * per, -1] = 1.0  # instant value: the newest sample of the group
            self.lowpass.conv.weight.copy_(k.unsqueeze(1))
        self.requires_grad_(False)
        self.double()  # fixed filters run in float64: streamed and offline agree to ~1e-15
        pairs = [(a, a + cfg.per_octave) for a in range(j - cfg.per_octave)]
        self.register_buffer("_pj", torch.tensor([p[0] for p in pairs]), persistent=False)
        self.register_buffer("_pk", torch.tensor([p[1] for p in pairs]), persistent=False)

    def init_state(self, batch: int) -> FrontEndState:
        w = self.bank.conv.weight
        return FrontEndState(torch.zeros(batch, self.in_channels, dtype=w.dtype, device=w.device),
                             self.bank.init_state(batch), self.lowpass.init_state(batch))

    def _impute(self, x: Tensor, last: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Hold-last imputation of (B, T, S); returns (filled, missing 0/1, new last).

        Export-safe (no ``cummax``): the k-th observed sample of a chunk is written to slot k
        of a table whose slot 0 holds the value carried in, every missing sample to a slot
        of its own past the observed ones; sample t then reads slot ``count(t)``, the
        number of observed samples up to t."""
        b, t, s = x.shape
        observed = ~torch.isnan(x)
        count = torch.cumsum(observed.long(), dim=1)  # (B, T, S)
        pos = torch.arange(t, device=x.device).view(1, -1, 1)
        slot = torch.where(observed, count, pos + (t + 1))  # distinct slots in 1 .. 2T
        zeros = torch.zeros_like(x)
        table = torch.cat([last.unsqueeze(1), zeros, zeros], dim=1)  # (B, 2T + 1, S)
        table = table.scatter(1, slot, torch.nan_to_num(x))
        filled = torch.gather(table, 1, count)
        total = observed.long().sum(dim=1, keepdim=True)  # (B, 1, S); 0 for an empty chunk
        new_last = torch.gather(table, 1, total).squeeze(1)
        return filled, (~observed).to(x.dtype), new_last

    def _pointwise(self, filled: Tensor, missing: Tensor, z: Tensor) -> Tensor:
        """(B, T, S), (B, T, S), (B, T, 2 J S) -> (B, T, pre): the channels before low-pass."""
        b, t, s = filled.shape
        j = self.config.n_filters
        z = z.reshape(b, t, s, 2, j)  # per signal: [re_0..re_J-1, im_0..im_J-1]
        re, im = z[..., 0, :], z[..., 1, :]  # (B, T, S, J)
        mod = torch.sqrt(re * re + im * im + 1e-20)
        # exp(i (phi_j - 2 phi_k)) = u_j conj(u_k)^2 with u = z / |z|: no atan2, cos or sin
        # (ONNX Runtime has no float64 Atan), the same values to rounding
        ur, ui = re / mod, im / mod
        pj, pk = self._pj, self._pk
        ar, ai = ur[..., pj], ui[..., pj]
        br, bi = ur[..., pk], ui[..., pk]
        cr, ci = br * br - bi * bi, -2.0 * br * bi  # conj(u_k)^2
        amp = torch.sqrt(mod[..., pj] * mod[..., pk])
        ph = torch.cat([amp * (ar * cr - ai * ci), amp * (ar * ci + ai * cr)],
                       dim=-1)  # (B, T, S, 2P)
        feats = torch.cat([filled.unsqueeze(-1), filled.unsqueeze(-1), missing.unsqueeze(-1),
                           mod, ph], dim=-1)  # (B, T, S, pre / S)
        return feats.reshape(b, t, self.pre)

    def step(self, x: Tensor, state: FrontEndState) -> tuple[Tensor, FrontEndState]:
        filled, missing, last = self._impute(x.double(), state.last)
        z, bank = self.bank.step(filled, state.bank)
        y, low = self.lowpass.step(self._pointwise(filled, missing, z), state.lowpass)
        return y.to(x.dtype), FrontEndState(last, bank, low)

    def forward(self, x: Tensor) -> Tensor:
        xd = x.double()
        filled, missing, _ = self._impute(xd, torch.zeros_like(xd[:, 0]))
        return self.lowpass(self._pointwise(filled, missing, self.bank(filled))).to(x.dtype)

    def split(self, feats: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, L, S * C) -> (y_st, y_ph, x_ph): FHR's st and ph channels, and all UP channels."""
        cfg = self.config
        n = cfg.per_signal
        fhr, up = feats[..., :n], feats[..., n:2 * n]
        return fhr[..., :cfg.st_channels], fhr[..., cfg.st_channels:], up
