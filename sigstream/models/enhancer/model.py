"""A causal streaming enhancer: a frame-rate GRU steering a per-sample adaptive FIR filter.

B: batch (streams), T: time (samples), C: channels (1), F: frame length, M: frames,
W: analysis window, L: filter taps, H: GRU hidden size.

Zero lookahead, ``hop = 1``, ``latency = 0``: output sample ``t`` depends on input
samples ``<= t`` only.

* Analysis, every ``frame`` samples: at the last sample of each frame the log power
  spectrum of the last ``window`` input samples (a fixed Hann-windowed DFT, a matrix
  product) is layer-normalised and, with the frame's log level and its mean (drift),
  fed to a one-layer GRU running at the frame rate (``sample_rate / frame``).
* Synthesis, every sample: a head maps the GRU output of the **last completed frame**
  to ``taps`` FIR coefficients and an offset; sample ``t`` of frame ``m`` is
  ``y[t] = sum_j w_{m-1}[j] x[t - j] + b_{m-1}``. The frame that contains ``t`` is not
  used, so no sample waits for the rest of its frame: the filter changes every
  ``frame`` samples and always describes the past.

The state is :class:`EnhancerState`: the last ``max(window, taps) - 1`` input samples,
the GRU state and the phase within the current frame. ``step`` handles any chunk
length and any mix of phases across the batch with gathers whose shapes depend only on
T, so the same code traces to ONNX/TorchScript. Monte-Carlo dropout acts on the GRU
output (``dropout``); it is off in eval mode, so streaming is deterministic unless a
caller asks for :meth:`CausalEnhancer.enhance` with ``uncertainty > 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sigstream.core.contract import StreamingModule
from sigstream.core.errors import ConfigError

__all__ = ["EnhancerConfig", "EnhancerState", "CausalEnhancer"]


@dataclass(frozen=True)
class EnhancerConfig:
    """The causal enhancer; each field's help is in its metadata. Dropout acts only in
    training or under ``mc_dropout``."""

    sample_rate: float = field(default=16000.0, metadata={"help": "sample rate (Hz)"})
    frame: int = field(default=16, metadata={"help": "samples per GRU step"})
    window: int = field(default=256, metadata={"help": "analysis window (samples)"})
    taps: int = field(default=128, metadata={
        "help": "FIR taps; with --init of fewer taps the filter is grown: the new taps start "
                "at zero, so training starts from the same output"})
    hidden: int = field(default=64, metadata={"help": "GRU size"})
    dropout: float = field(default=0.05, metadata={
        "help": "Monte-Carlo dropout on the GRU output (needed for --uncertainty)"})

    def validate(self) -> None:
        for name in ("frame", "window", "taps", "hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.window < 2:
            raise ConfigError(f"window must be >= 2, got {self.window}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.sample_rate <= 0:
            raise ConfigError(f"sample_rate must be > 0, got {self.sample_rate}")


class EnhancerState(NamedTuple):
    """hist: (B, max(window, taps) - 1) past input samples, newest last;
    h: (B, 1, H) GRU output after the last completed frame;
    phase: (B,) int64 samples already seen of the current frame (0 <= phase < frame)."""

    hist: Tensor
    h: Tensor
    phase: Tensor


class CausalEnhancer(StreamingModule):
    """Zero-lookahead enhancer for one channel; see the module docstring."""

    def __init__(self, config: EnhancerConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or EnhancerConfig()
        cfg.validate()
        self.in_channels = self.out_channels = 1
        self.hop, self.latency, self.decimation = 1, 0, 1
        self.sample_rate = float(cfg.sample_rate)
        self.frame, self.window, self.taps = cfg.frame, cfg.window, cfg.taps
        self.context = max(cfg.window, cfg.taps) - 1
        bins = cfg.window // 2 + 1
        n = torch.arange(cfg.window, dtype=torch.float64)
        k = torch.arange(bins, dtype=torch.float64)
        hann = 0.5 - 0.5 * torch.cos(2 * math.pi * (n + 0.5) / cfg.window)
        ang = 2 * math.pi * n[:, None] * k[None, :] / cfg.window  # (W, bins)
        scale = hann[:, None] / math.sqrt(float((hann**2).sum()))
        dft = torch.cat([torch.cos(ang) * scale, -torch.sin(ang) * scale], dim=1)  # (W, 2 bins)
        self.register_buffer("dft", dft.float(), persistent=False)
        self.norm_spec = nn.LayerNorm(bins)
        self.gru = nn.GRU(bins + 2, cfg.hidden, batch_first=True)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, cfg.taps + 1)
        with torch.no_grad():  # start as the identity filter: tap 0 = 1, the rest small
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.head.bias[0] = 1.0

    # -- pieces shared by step and forward ------------------------------------------------
    def _features(self, frames: Tensor) -> Tensor:
        """(B, M, W) analysis windows ending at frame ends -> (B, M, bins + 2) GRU inputs."""
        spec = frames @ self.dft  # (B, M, 2 bins)
        re, im = spec.chunk(2, dim=-1)
        logpow = torch.log(re * re + im * im + 1e-8)  # (B, M, bins)
        level = torch.log(frames.pow(2).mean(-1, keepdim=True) + 1e-8) / 10.0  # (B, M, 1)
        mean = frames.mean(-1, keepdim=True)  # (B, M, 1): drift
        return torch.cat([self.norm_spec(logpow), level, mean], dim=-1)

    def _coefficients(self, hs: Tensor) -> Tensor:
        """(B, S, H) GRU outputs -> (B, S, taps + 1) FIR taps and offset."""
        return self.head(self.drop(hs))

    # -- streaming contract ---------------------------------------------------------------
    def init_state(self, batch: int) -> EnhancerState:
        w = self.head.weight
        return EnhancerState(
            torch.zeros(batch, self.context, dtype=w.dtype, device=w.device),
            torch.zeros(batch, 1, self.config.hidden, dtype=w.dtype, device=w.device),
            torch.zeros(batch, dtype=torch.long, device=w.device),
        )

    def step(self, x: Tensor, state: EnhancerState) -> tuple[Tensor, EnhancerState]:
        """x: (B, T, 1) -> y: (B, T, 1); any T (including 0), any phases across B."""
        if not torch.jit.is_tracing() and x.shape[1] == 0:
            return x, state
        f, ctx = self.frame, self.context
        b, t = x.shape[0], x.shape[1]
        full = torch.cat([state.hist, x[..., 0]], dim=1)  # (B, ctx + T)
        last = full.shape[1] - 1
        phase = state.phase.unsqueeze(1)  # (B, 1)
        m = (t + f - 1) // f  # frame ends that can fall in this chunk (upper bound)
        ks = torch.arange(m, device=x.device).unsqueeze(0)  # (1, M)
        ends = ctx + (f - 1) - phase + ks * f  # (B, M) index in `full` of each frame end
        offs = torch.arange(self.window - 1, -1, -1, device=x.device)  # (W,)
        idx = (ends.unsqueeze(-1) - offs).clamp(0, last)  # (B, M, W)
        frames = torch.gather(full, 1, idx.reshape(b, -1)).reshape(b, -1, self.window)
        out, _ = self.gru(self._features(frames), state.h.transpose(0, 1).contiguous())
        hs = torch.cat([state.h, out], dim=1)  # (B, M + 1, H): slot s = after s frames
        done = torch.div(state.phase + t, f, rounding_mode="floor")  # (B,) frames completed
        h_new = torch.gather(hs, 1, done.view(b, 1, 1).expand(b, 1, hs.shape[2]))
        coef = self._coefficients(hs)  # (B, M + 1, taps + 1)
        pos = torch.arange(t, device=x.device).unsqueeze(0)  # (1, T)
        slot = torch.div(phase + pos, f, rounding_mode="floor")  # (B, T): frames done before t
        rows = slot + torch.arange(b, device=x.device).unsqueeze(1) * hs.shape[1]  # (B, T)
        w = coef.reshape(-1, coef.shape[2]).index_select(0, rows.reshape(-1))
        w = w.reshape(b, t, coef.shape[2])  # (B, T, L + 1): the filter of each sample
        lags = torch.arange(self.taps, device=x.device)  # (L,)
        widx = (ctx + pos).reshape(-1, 1) - lags  # (T, L): x[t - j], the same for every stream
        win = full.index_select(1, widx.reshape(-1)).reshape(b, t, self.taps)  # (B, T, L)
        y = (win * w[..., :self.taps]).sum(-1) + w[..., self.taps]  # (B, T)
        hist = full[:, full.shape[1] - ctx:]
        new_phase = torch.remainder(state.phase + t, f)
        return y.unsqueeze(-1), EnhancerState(hist, h_new, new_phase)

    def forward(self, x: Tensor) -> Tensor:
        """Offline from a fresh state: x (B, T, 1) -> (B, T, 1), without per-sample gathers."""
        f, b, t = self.frame, x.shape[0], x.shape[1]
        if t == 0:
            return x
        xs = x[..., 0]  # (B, T)
        xp = F.pad(xs, (self.context, 0))  # (B, ctx + T)
        s = -(-t // f)  # frames touched, the last possibly partial
        h0 = x.new_zeros(b, 1, self.config.hidden)
        n_full = t // f
        if n_full:
            start = self.context - (self.window - 1) + f - 1  # first window ends at sample f-1
            frames = xp[:, start:].unfold(1, self.window, f)[:, :n_full]  # (B, M, W)
            out, _ = self.gru(self._features(frames), h0.transpose(0, 1).contiguous())
            hs = torch.cat([h0, out], dim=1)[:, :s]  # (B, S, H)
        else:
            hs = h0
        coef = self._coefficients(hs)  # (B, S, L + 1)
        xq = F.pad(xs, (self.taps - 1, s * f - t))  # (B, L - 1 + S F)
        win = xq.unfold(1, self.taps, 1).flip(-1).reshape(b, s, f, self.taps)  # x[t - j]
        y = torch.einsum("bsfl,bsl->bsf", win, coef[..., :self.taps]) + coef[..., self.taps:]
        return y.reshape(b, s * f)[:, :t].unsqueeze(-1)

    # -- uncertainty ---------------------------------------------------------------------
    def enhance(self, x: Tensor, uncertainty: int = 0,
                seed: int | None = None) -> tuple[Tensor, Tensor | None]:
        """Offline enhancement of x (B, T, 1): (mean, std) with ``uncertainty`` MC-dropout
        passes, or (output, None) for 0. std is exactly zero when ``dropout == 0``."""
        if uncertainty < 0:
            raise ConfigError(f"uncertainty must be >= 0 passes, got {uncertainty}")
        if uncertainty == 0:
            with torch.no_grad():
                was = self.training
                self.eval()
                try:
                    return self(x), None
                finally:
                    self.train(was)
        from sigstream.models.uncertainty import mc_dropout

        mean, std = mc_dropout(self, x, uncertainty, seed=seed)
        return mean, std
