"""Streaming polyphase resampling, and a stage that runs a model at another rate.

B: batch (streams), T: time (frames), C: channels; L/M: the up/down factors of the
rate ratio ``rate_out / rate_in = L / M`` in lowest terms; K: filter taps; P: taps
per polyphase branch (``ceil(K / L)``).

:class:`Resampler` computes, chunk by chunk, exactly what
``scipy.signal.upfirdn(h, x, L, M)`` computes over the whole signal: up-sample by
L (zero stuffing), filter with the linear-phase low-pass ``h`` (a Kaiser-window
``scipy.signal.firwin`` design, gain L), down-sample by M. Only the outputs whose
newest input has arrived are emitted: after N input frames in total, exactly
``ceil(N L / M)`` outputs have come out, whatever the chunking. The state is one
NamedTuple of batch-first arrays (the last P - 1 inputs and the phase of the next
output), so one resampler object serves any number of streams.

The filter has ``K = 2 q max(L, M) + 1`` taps for ``q = zero_crossings``, so its
delay, ``(K - 1) / 2`` samples at the up-sampled rate, is exactly ``q`` samples at
the lower of the two rates (:attr:`Resampler.delay_s`, :attr:`Resampler.delay`).

:class:`ResampledStage` wraps a pipeline stage that runs at ``inner_rate`` (e.g. a
16 kHz model) as a stage at ``outer_rate`` (e.g. a 48 kHz sound card): down-sample,
the inner stage, up-sample. It returns exactly as many frames as it is given (the
remainders of the inner hop and of the rate ratio are carried), and states its whole
delay — both filters, the inner model's latency and the hop buffering — as
``latency`` (outer frames) and ``latency_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
from scipy import signal

from sigstream.core.errors import ConfigError

__all__ = ["ResamplerConfig", "ResamplerState", "Resampler", "ResampledStage", "rate_ratio"]


def rate_ratio(rate_in: float, rate_out: float) -> tuple[int, int]:
    """(L, M) with ``rate_out / rate_in == L / M`` in lowest terms (rates to 1e-6 Hz)."""
    for name, rate in (("rate_in", rate_in), ("rate_out", rate_out)):
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ConfigError(f"resampler {name} must be a positive number of Hz, got {rate!r}")
    ratio = Fraction(round(rate_out * 1_000_000), round(rate_in * 1_000_000))
    if ratio.numerator > 4096 or ratio.denominator > 4096:
        raise ConfigError(
            f"cannot resample {rate_in:g} Hz -> {rate_out:g} Hz: the ratio "
            f"{ratio.numerator}/{ratio.denominator} is too fine; use rates with a simpler ratio"
        )
    return ratio.numerator, ratio.denominator


@dataclass(frozen=True)
class ResamplerConfig:
    """rate_in/rate_out in Hz; zero_crossings: filter half-length in samples of the lower rate
    (its delay); cutoff: pass-band edge as a fraction of the lower Nyquist frequency;
    attenuation_db: Kaiser-window stop-band attenuation; channels: C."""

    rate_in: float
    rate_out: float
    zero_crossings: int = 12
    cutoff: float = 0.9
    attenuation_db: float = 60.0
    channels: int = 1

    def validate(self) -> None:
        rate_ratio(self.rate_in, self.rate_out)
        if self.zero_crossings < 1:
            raise ConfigError(f"zero_crossings must be >= 1, got {self.zero_crossings}")
        if not 0 < self.cutoff <= 1:
            raise ConfigError(f"cutoff must be in (0, 1], got {self.cutoff}")
        if self.attenuation_db < 21:
            raise ConfigError(f"attenuation_db must be >= 21, got {self.attenuation_db}")
        if self.channels < 1:
            raise ConfigError(f"channels must be >= 1, got {self.channels}")


class ResamplerState(NamedTuple):
    """Per-stream state, batch-first.

    tail: (B, P - 1, C) float32, the last P - 1 input frames (zeros at the start);
    offset: (B,) int64, position of the next output relative to the next input, in
    samples of the up-sampled rate (0 <= offset < M).
    """

    tail: np.ndarray
    offset: np.ndarray


class Resampler:
    """Streaming polyphase resampler on numpy (B, T, C) float32 chunks.

    ``step(x, state) -> (y, state)`` is pure; ``forward(x)`` is the offline
    computation (``scipy.signal.upfirdn``, trimmed to the samples a stream has emitted).
    """

    def __init__(self, config: ResamplerConfig) -> None:
        config.validate()
        self.config = config
        self.rate_in, self.rate_out = float(config.rate_in), float(config.rate_out)
        self.up, self.down = rate_ratio(self.rate_in, self.rate_out)
        self.channels = config.channels
        L, M = self.up, self.down
        if L == M == 1:
            self.taps = np.ones(1, dtype=np.float64)
        else:
            n_taps = 2 * config.zero_crossings * max(L, M) + 1
            fs_up = L * self.rate_in
            cut = config.cutoff * min(self.rate_in, self.rate_out) / 2
            beta = signal.kaiser_beta(config.attenuation_db)
            self.taps = signal.firwin(n_taps, cut, window=("kaiser", beta), fs=fs_up) * L
        K = self.taps.shape[0]
        self.branch = P = -(-K // L)
        h = np.zeros(L * P, dtype=np.float64)
        h[:K] = self.taps
        # (L, P): branch p holds h[p], h[p + L], ...; reversed so it meets windows oldest-first
        self._branches = np.ascontiguousarray(h.reshape(P, L).T[:, ::-1], dtype=np.float32)
        self._plans: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        delay_up = (K - 1) / 2  # samples at the up-sampled rate L * rate_in
        self.delay_s = delay_up / (L * self.rate_in)
        """Group delay of the linear-phase filter in seconds."""
        self.delay = delay_up / M
        """Group delay in output samples (a whole number for integer rate ratios)."""

    def __repr__(self) -> str:
        return (f"Resampler({self.rate_in:g} Hz -> {self.rate_out:g} Hz, L={self.up}, "
                f"M={self.down}, taps={self.taps.shape[0]}, delay={self.delay:g} out samples)")

    def init_state(self, batch: int) -> ResamplerState:
        return ResamplerState(
            tail=np.zeros((batch, self.branch - 1, self.channels), dtype=np.float32),
            offset=np.zeros(batch, dtype=np.int64),
        )

    def n_out(self, n_in: int, offset: int = 0) -> int:
        """Outputs emitted for ``n_in`` more input frames when the next output is at
        ``offset`` (up-sampled samples past the next input)."""
        span = n_in * self.up - offset
        return -(-span // self.down) if span > 0 else 0

    def _plan(self, T: int, offset: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Window starts (n,) and branch weights (n, P, 1) of the n outputs of a T-frame chunk
        whose first output is at ``offset``; cached, since a fixed block size repeats them."""
        key = (T, offset)
        plan = self._plans.get(key)
        if plan is None:
            pos = offset + self.down * np.arange(n)  # (n,) up-sampled positions in the chunk
            start, phase = np.divmod(pos, self.up)  # window start (oldest frame) and branch
            plan = (start, np.ascontiguousarray(self._branches[phase][:, :, None]))
            if len(self._plans) > 256:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def step(self, x: np.ndarray, state: ResamplerState) -> tuple[np.ndarray, ResamplerState]:
        """x (B, T, C) -> y (B, T', C) with T' = ``n_out(T, offset)``; state is not mutated."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[2] != self.channels:
            raise ValueError(f"expected a (B, T, {self.channels}) chunk, got shape {x.shape}")
        B, T, C = x.shape
        offset = int(state.offset[0]) if B else 0
        ext = np.ascontiguousarray(np.concatenate([state.tail, x], axis=1))  # (B, P - 1 + T, C)
        n = self.n_out(T, offset)
        if n and B:
            start, weights = self._plan(T, offset, n)
            P = self.branch
            sb, st, sc = ext.strides
            # (B, T, C, P) view: window t holds ext[:, t:t + P] (no copy)
            windows = np.ndarray((B, T, C, P), np.float32, ext, 0, (sb, st, sc, st))
            # (B, n, C, P) @ (n, P, 1) -> (B, n, C, 1): one dot product per output and channel
            y = np.matmul(windows[:, start], weights)[..., 0]
        else:
            y = np.zeros((B, 0, C), dtype=np.float32)
        keep = self.branch - 1
        tail = ext[:, ext.shape[1] - keep:] if keep else ext[:, :0]
        new_offset = offset + n * self.down - T * self.up
        return y, ResamplerState(np.ascontiguousarray(tail),
                                 np.full(B, new_offset, dtype=np.int64))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Offline: (B, T, C) -> (B, ceil(T L / M), C) with ``scipy.signal.upfirdn``."""
        x = np.asarray(x, dtype=np.float32)
        n = self.n_out(x.shape[1])
        y = signal.upfirdn(self.taps, x.astype(np.float64), self.up, self.down, axis=1)
        return y[:, :n].astype(np.float32)


class ResampledStage:
    """A stage at ``outer_rate`` that runs ``inner`` (a stage at ``inner_rate``) in between a
    down- and an up-sampler.   N: frames, C: channels.

    ``process((N, C_in)) -> (N, C_out)``: always N frames out. The inner stage only gets
    whole multiples of its hop; what is left over waits for the next block, and the
    output starts with ``pad`` zero frames (the most the hop buffering can fall short),
    so there is always enough to return. ``latency`` (outer frames, rounded) and
    ``latency_s`` (exact) add both filters, the inner latency and the padding.
    """

    def __init__(self, inner: Any, outer_rate: float, inner_rate: float,
                 zero_crossings: int = 12) -> None:
        self.inner = inner
        self.in_channels = int(inner.in_channels or 1)
        self.out_channels = int(inner.out_channels or self.in_channels)
        if int(getattr(inner, "decimation", 1)) != 1:
            raise ConfigError("a resampled model stage cannot also decimate")
        self.sample_rate = float(outer_rate)
        self.inner_rate = float(inner_rate)
        self.hop, self.decimation = 1, 1
        self.down = Resampler(ResamplerConfig(outer_rate, inner_rate, zero_crossings,
                                              channels=self.in_channels))
        self.up = Resampler(ResamplerConfig(inner_rate, outer_rate, zero_crossings,
                                            channels=self.out_channels))
        self.inner_hop = int(getattr(inner, "hop", 1))
        L, M = self.down.up, self.down.down  # outer -> inner is L / M
        self.pad = math.ceil((self.inner_hop - 1) * M / L)
        """Zero frames the output starts with (hop buffering), in outer frames."""
        self.latency_s = (self.down.delay_s + self.up.delay_s
                          + int(getattr(inner, "latency", 0)) / self.inner_rate
                          + self.pad / self.sample_rate)
        self.latency = round(self.latency_s * self.sample_rate)
        self.reset()

    def reset(self) -> None:
        """Start afresh: filter states, hop remainder and output carry."""
        self._down_state = self.down.init_state(1)
        self._up_state = self.up.init_state(1)
        self._hold = np.zeros((0, self.in_channels), dtype=np.float32)  # inner-rate remainder
        self._carry = np.zeros((self.pad, self.out_channels), dtype=np.float32)
        reset = getattr(self.inner, "reset", None)
        if callable(reset):
            reset()

    def process(self, block: np.ndarray) -> np.ndarray:
        n = block.shape[0]
        d, self._down_state = self.down.step(block[None], self._down_state)  # (1, n', C)
        held = np.concatenate([self._hold, d[0]]) if self._hold.shape[0] else d[0]
        usable = held.shape[0] - held.shape[0] % self.inner_hop
        self._hold = held[usable:]
        if usable:
            y = np.asarray(self.inner.process(held[:usable]), dtype=np.float32)
            u, self._up_state = self.up.step(y[None], self._up_state)
            out = np.concatenate([self._carry, u[0]]) if self._carry.shape[0] else u[0]
        else:
            out = self._carry
        if out.shape[0] < n:  # cannot happen: pad covers the worst hop shortfall
            raise RuntimeError(f"resampled stage fell short: {out.shape[0]} < {n} frames")
        self._carry = out[n:]
        return out[:n]
