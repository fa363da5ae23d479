"""LSTM frequency extractor: a mixture of sinusoids in, each component out, streamed.

B: batch, T: time, K: components (frequencies), R: LSTM rows per stream.

Three variants share one streaming interface — 1 input channel (the mixture),
K output channels (one per frequency):

* ``stateful`` (L = 1): the conditional model of the source document, input
  ``[S(t), one-hot(K)]`` one sample per step; trained sample by sample with
  the state carried from the sequence start.
* ``sequence`` (L > 1): the same conditional network trained on windows of L
  samples, state carried from window to window; streamed with state carried,
  so online output equals offline output.
* ``multi``: all K components from one pass over ``S(t)`` (K heads); the
  default for streaming.

The conditional variants run their K conditions as K rows of one LSTM batch,
so a stream's state holds K rows: ``h, c: (B, R, layers, hidden)`` with R = K
for conditional variants and R = 1 for ``multi``. Input normalisation
(mean/std of the training mixture) is part of the module (buffers), so
exported files carry it.

With ``frontend="bandpass"`` the LSTM also sees causal Butterworth band-pass
outputs around every frequency (a 0.5 Hz and a 2 Hz wide band), scaled by K:
classical features whose bandwidth is fixed, which the LSTM combines with
the raw mixture over time (fast lock-in at the start, low noise later). The
band-pass memories are part of the state (``zi``). The eight filters run as one
state-space system (:class:`~sigstream.models.baselines.butterworth.SosBank`, float64,
equal to ``sosfilt`` to ~1e-12): four matrix products per chunk of up to 64 samples,
which is what keeps the exported graph cheap at one sample per call.

With ``frontend="oscillator"`` the LSTM also sees ``cos(w_k n)`` and
``sin(w_k n)`` for every frequency, ``n`` the samples since the stream started
and ``w_k`` learnable angular steps initialised at ``2 pi f_k / rate``: a phase
reference, which the output head also reads directly (a linear skip past the
LSTM). It is what the ``seed`` preset needs, whose mixture carries no
information and whose targets are fixed functions of the time since the
sequence start (a model must be a clock); an LSTM alone drifts after a few
seconds. The clock ``n`` is part of the state (float32, exact integers; it
restarts every 2^23 samples, 2.3 h at 1 kHz). Streamed and offline outputs are
identical because both compute ``w_k * n`` from the same integer ``n``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from sigstream.core.contract import StreamingModule
from sigstream.core.errors import ConfigError
from sigstream.models.baselines.butterworth import ButterworthConfig, SosBank
from sigstream.models.extractor.data import FREQS

VARIANTS = ("stateful", "sequence", "multi")
FRONTENDS = ("none", "bandpass", "oscillator")
CLOCK_WRAP = float(1 << 23)  # the oscillator clock restarts here (float32 integers exact)
FRONT_BANDWIDTHS = (0.5, 2.0)  # Hz: a narrow and a wide band around every frequency


@dataclass(frozen=True)
class ExtractorConfig:
    """The LSTM extractor; each field's help is in its metadata."""

    variant: str = field(default="multi", metadata={
        "help": "stateful (one sample per step) | sequence (windows, state carried) | multi "
                "(all components from one pass)", "choices": VARIANTS})
    hidden: int = field(default=64, metadata={"help": "LSTM hidden size"})
    layers: int = field(default=1, metadata={"help": "LSTM layers"})
    dropout: float = field(default=0.0, metadata={"help": "dropout between LSTM layers"})
    freqs: tuple[float, ...] = field(default=FREQS, metadata={"help": "component frequencies "
                                                                      "(Hz)"})
    sample_rate: float = field(default=1000.0, metadata={"help": "sample rate (Hz)"})
    preset: str = field(default="realistic", metadata={
        "help": "the data preset the weights were trained on (metadata)"})
    frontend: str = field(default="none", metadata={
        "help": "none | bandpass (causal band-pass features) | oscillator (a learnable phase "
                "reference, for the seed preset)", "choices": FRONTENDS})

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")
        if self.frontend not in FRONTENDS:
            raise ConfigError(f"unknown frontend {self.frontend!r}; choose one of {FRONTENDS}")
        if self.hidden < 1 or self.layers < 1 or not 0 <= self.dropout < 1:
            raise ConfigError("need hidden >= 1, layers >= 1 and 0 <= dropout < 1")


class ExtractorState(NamedTuple):
    """h, c: (B, R, layers, hidden); R = K for conditional variants, 1 for multi."""

    h: Tensor
    c: Tensor


class FrontendExtractorState(NamedTuple):
    """h, c as in :class:`ExtractorState`; zi: (B, bands, S, 2, 1) float64 band-pass memories."""

    h: Tensor
    c: Tensor
    zi: Tensor


class ClockExtractorState(NamedTuple):
    """h, c as in :class:`ExtractorState`; n: (B, 1) samples since the stream started."""

    h: Tensor
    c: Tensor
    n: Tensor


class FrequencyExtractor(StreamingModule):
    """(B, T, 1) mixture -> (B, T, K) extracted components; sample-causal (hop 1, latency 0)."""

    def __init__(self, config: ExtractorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ExtractorConfig()
        cfg.validate()
        self.n_freqs = k = len(cfg.freqs)
        self.conditional = cfg.variant != "multi"
        self.rows = k if self.conditional else 1
        self.bands = 0  # band-pass filters of the front-end, run as one state-space system
        if cfg.frontend == "bandpass":
            self.sosbank = SosBank([ButterworthConfig(
                kind="bandpass", order=2, low=max(f - bw / 2, 0.05), high=f + bw / 2,
                sample_rate=cfg.sample_rate).sos() for f in cfg.freqs for bw in FRONT_BANDWIDTHS])
            self.bands = self.sosbank.outputs
            self.max_chunk = self.sosbank.max_chunk  # an exported graph's longest chunk
        self.clock = cfg.frontend == "oscillator"
        if self.clock:  # angular step per sample of each reference oscillator
            self.omega = nn.Parameter(torch.tensor(
                [2 * math.pi * f / cfg.sample_rate for f in cfg.freqs], dtype=torch.float32))
        n_in = 1 + self.bands + 2 * k * self.clock + (k if self.conditional else 0)
        self.lstm = nn.LSTM(n_in, cfg.hidden, cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        # with the oscillator front-end the head also reads the references directly
        self.head = nn.Linear(cfg.hidden + 2 * k * self.clock, 1 if self.conditional else k)
        self.register_buffer("in_mean", torch.zeros(()))
        self.register_buffer("in_std", torch.ones(()))
        self.register_buffer("onehot", torch.eye(k))  # (K, K)
        self.in_channels, self.out_channels = 1, k
        self.sample_rate = cfg.sample_rate
        self.hop, self.latency = 1, 0

    def set_normalisation(self, mean: float, std: float) -> None:
        self.in_mean.fill_(float(mean))
        self.in_std.fill_(max(float(std), 1e-8))

    def init_state(self, batch: int) -> ExtractorState | FrontendExtractorState:
        w = self.head.weight
        z = torch.zeros(batch, self.rows, self.config.layers, self.config.hidden,
                        dtype=w.dtype, device=w.device)
        if self.clock:
            return ClockExtractorState(z, z.clone(), z.new_zeros(batch, 1))
        if not self.bands:
            return ExtractorState(z, z.clone())
        zi = torch.zeros(batch, self.bands, self.sosbank.sections, 2, 1, dtype=torch.float64,
                         device=w.device)
        return FrontendExtractorState(z, z.clone(), zi)

    def _frontend(self, x: Tensor, zi: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, 1) mixture -> (B, T, bands) band-pass outputs scaled to component size."""
        gain = float(self.n_freqs)  # the mixture is the mean of the components
        y, zi = self.sosbank.step(x[..., 0], zi)
        return y.to(x.dtype) * gain, zi

    def _oscillators(self, x: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, 1) chunk, (B, 1) clock -> (B, T, 2K) [cos, sin] references, new clock."""
        t = n + torch.cumsum(torch.ones_like(x[..., 0]), dim=1) - 1  # (B, T) exact integers
        angle = t[..., None] * self.omega  # (B, T, K)
        ref = torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)
        return ref, torch.remainder(t[:, -1:] + 1, CLOCK_WRAP)

    def _features(self, x: Tensor, bands: Tensor | None = None) -> Tensor:
        """(B, T, 1) -> (B * R, T, F): normalised mixture, band features, one-hot condition."""
        x = (x - self.in_mean) / self.in_std
        if bands is not None:
            x = torch.cat([x, bands], dim=-1)
        if not self.conditional:
            return x
        b, t, _ = x.shape
        k = self.n_freqs
        f = x.shape[-1]
        xs = x[:, None].expand(b, k, t, f)  # (B, K, T, F)
        cond = self.onehot[None, :, None, :].expand(b, k, t, k)  # (B, K, T, K)
        return torch.cat([xs, cond], dim=-1).reshape(b * k, t, f + k)

    def _unrows(self, y: Tensor, b: int) -> Tensor:
        """(B * R, T, out) head output -> (B, T, K)."""
        if not self.conditional:
            return y
        return y.reshape(-1, self.n_freqs, y.shape[1]).transpose(1, 2)

    # Reshapes use -1 for the batch so an exported graph needs no shape arithmetic; with one
    # layer the (B * R, 1, H) <-> (1, B * R, H) swap is a reshape, not a transpose.
    def _to_lstm(self, s: Tensor) -> Tensor:
        layers, hidden = self.config.layers, self.config.hidden
        if layers == 1:
            return s.reshape(1, -1, hidden)
        return s.reshape(-1, layers, hidden).transpose(0, 1).contiguous()

    def _from_lstm(self, s: Tensor) -> Tensor:
        layers, hidden = self.config.layers, self.config.hidden
        if layers == 1:
            return s.reshape(-1, self.rows, 1, hidden)
        return s.transpose(0, 1).reshape(-1, self.rows, layers, hidden)

    def step(self, x: Tensor, state):
        b, t, _ = x.shape
        if not torch.jit.is_tracing() and t == 0:
            return x.new_zeros(b, 0, self.n_freqs), state
        bands, zi, n = None, None, None
        if self.bands:
            bands, zi = self._frontend(x, state.zi)
        elif self.clock:
            bands, n = self._oscillators(x, state.n)
        h0, c0 = self._to_lstm(state.h), self._to_lstm(state.c)  # (layers, B * R, hidden)
        feats = self._features(x, bands)
        y, (h, c) = self.lstm(feats, (h0, c0))
        if n is not None:  # the references, per LSTM row: (B * R, T, 2K)
            refs = feats[..., 1:1 + 2 * self.n_freqs]
            y = torch.cat([y, refs], dim=-1)
        out = self._unrows(self.head(y), b)
        h, c = self._from_lstm(h), self._from_lstm(c)  # (B, R, layers, hidden)
        if n is not None:
            return out, ClockExtractorState(h, c, n)
        if zi is None:
            return out, ExtractorState(h, c)
        return out, FrontendExtractorState(h, c, zi)
