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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from sigstream.stream.contract import StreamingModule
from sigstream.stream.errors import ConfigError

VARIANTS = ("stateful", "sequence", "multi")


@dataclass(frozen=True)
class ExtractorConfig:
    """variant: stateful | sequence | multi; hidden/layers/dropout of the LSTM."""

    variant: str = "multi"
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0
    freqs: tuple[float, ...] = (1.0, 3.0, 5.0, 7.0)
    sample_rate: float = 1000.0
    preset: str = "seed"  # the data preset the weights were trained on (metadata)

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")
        if self.hidden < 1 or self.layers < 1 or not 0 <= self.dropout < 1:
            raise ConfigError("need hidden >= 1, layers >= 1 and 0 <= dropout < 1")


class ExtractorState(NamedTuple):
    """h, c: (B, R, layers, hidden); R = K for conditional variants, 1 for multi."""

    h: Tensor
    c: Tensor


class FrequencyExtractor(StreamingModule):
    """(B, T, 1) mixture -> (B, T, K) extracted components; sample-causal (hop 1, latency 0)."""

    def __init__(self, config: ExtractorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ExtractorConfig()
        cfg.validate()
        self.n_freqs = k = len(cfg.freqs)
        self.conditional = cfg.variant != "multi"
        self.rows = k if self.conditional else 1
        n_in = 1 + k if self.conditional else 1
        self.lstm = nn.LSTM(n_in, cfg.hidden, cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.head = nn.Linear(cfg.hidden, 1 if self.conditional else k)
        self.register_buffer("in_mean", torch.zeros(()))
        self.register_buffer("in_std", torch.ones(()))
        self.register_buffer("onehot", torch.eye(k))  # (K, K)
        self.in_channels, self.out_channels = 1, k
        self.sample_rate = cfg.sample_rate
        self.hop, self.latency = 1, 0

    def set_normalisation(self, mean: float, std: float) -> None:
        self.in_mean.fill_(float(mean))
        self.in_std.fill_(max(float(std), 1e-8))

    def init_state(self, batch: int) -> ExtractorState:
        w = self.head.weight
        z = torch.zeros(batch, self.rows, self.config.layers, self.config.hidden,
                        dtype=w.dtype, device=w.device)
        return ExtractorState(z, z.clone())

    def _features(self, x: Tensor) -> Tensor:
        """(B, T, 1) -> (B * R, T, F): normalised mixture, plus the one-hot condition."""
        x = (x - self.in_mean) / self.in_std
        if not self.conditional:
            return x
        b, t, _ = x.shape
        k = self.n_freqs
        xs = x[:, None].expand(b, k, t, 1)  # (B, K, T, 1)
        cond = self.onehot[None, :, None, :].expand(b, k, t, k)  # (B, K, T, K)
        return torch.cat([xs, cond], dim=-1).reshape(b * k, t, 1 + k)

    def _unrows(self, y: Tensor, b: int) -> Tensor:
        """(B * R, T, out) head output -> (B, T, K)."""
        if not self.conditional:
            return y
        return y.reshape(b, self.n_freqs, -1).transpose(1, 2)

    def step(self, x: Tensor, state: ExtractorState) -> tuple[Tensor, ExtractorState]:
        b, t, _ = x.shape
        if t == 0:
            return x.new_zeros(b, 0, self.n_freqs), state
        layers, hidden = self.config.layers, self.config.hidden
        h0 = state.h.reshape(b * self.rows, layers, hidden).transpose(0, 1).contiguous()
        c0 = state.c.reshape(b * self.rows, layers, hidden).transpose(0, 1).contiguous()
        y, (h, c) = self.lstm(self._features(x), (h0, c0))  # h, c: (layers, B * R, hidden)
        out = self._unrows(self.head(y), b)
        h = h.transpose(0, 1).reshape(b, self.rows, layers, hidden)
        c = c.transpose(0, 1).reshape(b, self.rows, layers, hidden)
        return out, ExtractorState(h, c)
