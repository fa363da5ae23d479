"""Streaming polyphase resampler: streamed == offline for any chunking, the stated delay is
the measured one, and the rate-adapting stage keeps output length == input length."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy import signal

from sigstream.core.errors import ConfigError
from sigstream.stream.resample import (
    ResampledStage,
    Resampler,
    ResamplerConfig,
    rate_ratio,
)

PAIRS = [(48000, 16000), (16000, 48000), (44100, 16000), (16000, 44100), (8000, 12000),
         (48000, 48000)]


def stream(r: Resampler, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Feed x (B, T, C) in chunks of ``sizes`` (the rest in one chunk); concatenate."""
    state = r.init_state(x.shape[0])
    out, i = [], 0
    for n in [*sizes, x.shape[1]]:
        y, state = r.step(x[:, i:i + n], state)
        out.append(y)
        i += n
        if i >= x.shape[1]:
            break
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize(("rate_in", "rate_out"), PAIRS)
def test_streamed_equals_offline_and_upfirdn(rate_in: int, rate_out: int) -> None:
    rng = np.random.default_rng(1)
    r = Resampler(ResamplerConfig(rate_in, rate_out, channels=2))
    x = rng.standard_normal((3, 1001, 2)).astype(np.float32)  # B = 3
    offline = r.forward(x)
    assert offline.shape == (3, -(-1001 * r.up // r.down), 2)
    # the reference computed independently: scipy's upfirdn over the whole signal
    ref = signal.upfirdn(r.taps, x[0, :, 1].astype(np.float64), r.up, r.down)
    np.testing.assert_allclose(offline[0, :, 1], ref[: offline.shape[1]], atol=1e-5)
    for sizes in ([1] * 40, [7] * 30, [0, 128, 0, 333], [3, 5, 11, 13, 0, 17]):
        np.testing.assert_allclose(stream(r, x, sizes), offline, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(hs.lists(hs.integers(0, 97), min_size=1, max_size=12),
       hs.sampled_from(PAIRS[:5]))
def test_any_chunking(sizes: list[int], pair: tuple[int, int]) -> None:
    r = Resampler(ResamplerConfig(*pair))
    x = np.random.default_rng(2).standard_normal((1, 400, 1)).astype(np.float32)
    np.testing.assert_allclose(stream(r, x, sizes), r.forward(x), atol=1e-5)


def test_step_is_pure_and_output_count_is_exact() -> None:
    r = Resampler(ResamplerConfig(48000, 16000))
    state = r.init_state(1)
    x = np.ones((1, 128, 1), np.float32)
    y1, s1 = r.step(x, state)
    y2, _ = r.step(x, state)  # same state again: same output, state untouched
    np.testing.assert_array_equal(y1, y2)
    assert not state.tail.any() and state.offset[0] == 0
    total = y1.shape[1]
    for _ in range(10):
        y, s1 = r.step(x, s1)
        total += y.shape[1]
    assert total == -(-11 * 128 // 3)  # ceil(N L / M) after N inputs


def test_causal() -> None:
    r = Resampler(ResamplerConfig(16000, 48000))
    x = np.random.default_rng(3).standard_normal((1, 300, 1)).astype(np.float32)
    x2 = x.copy()
    x2[:, 200:] += 1.0
    y, y2 = r.forward(x), r.forward(x2)
    np.testing.assert_array_equal(y[:, : 200 * 3], y2[:, : 200 * 3])
    assert not np.allclose(y[:, 200 * 3:], y2[:, 200 * 3:])


@pytest.mark.parametrize(("rate_in", "rate_out"), [(48000, 16000), (16000, 48000),
                                                   (44100, 16000), (8000, 12000)])
def test_delay_matches_stated_value(rate_in: int, rate_out: int) -> None:
    """A band-limited tone comes out as the same tone, delayed by ``delay_s``: the measured
    delay (phase of the output against the input's tone) equals the stated one."""
    r = Resampler(ResamplerConfig(rate_in, rate_out))
    f = 100.0  # well inside the pass-band; its period (10 ms) is longer than twice the delay
    n_in = int(0.2 * rate_in)
    t_in = np.arange(n_in) / rate_in
    x = np.sin(2 * np.pi * f * t_in).astype(np.float32)[None, :, None]
    y = stream(r, x, [97] * 100)[0, :, 0]
    t_out = np.arange(y.shape[0]) / rate_out
    steady = t_out > r.delay_s + 0.02  # skip the filter's start-up
    # least-squares phase of the output tone, relative to the input tone
    basis = np.stack([np.sin(2 * np.pi * f * t_out), np.cos(2 * np.pi * f * t_out)], 1)[steady]
    (a, b), *_ = np.linalg.lstsq(basis, y[steady], rcond=None)
    measured = -np.arctan2(b, a) / (2 * np.pi * f)  # y = g sin(2 pi f (t - delay))
    assert measured == pytest.approx(r.delay_s, abs=2e-6)  # a tenth of a 48 kHz sample
    assert np.hypot(a, b) == pytest.approx(1.0, abs=0.01)  # unit gain in the pass-band
    # an impulse on a sample shared by both grids peaks exactly `delay` output samples later
    k = 60 * r.down  # input sample k lands on output sample k * L / M
    imp = np.zeros((1, 2 * k, 1), np.float32)
    imp[0, k, 0] = 1.0
    peak = int(np.argmax(r.forward(imp)[0, :, 0]))
    assert peak == pytest.approx(k * r.up / r.down + r.delay, abs=0.5)


def test_stated_delay_is_whole_samples_for_integer_ratios() -> None:
    down = Resampler(ResamplerConfig(48000, 16000, zero_crossings=12))
    up = Resampler(ResamplerConfig(16000, 48000, zero_crossings=12))
    assert down.delay == 12 and up.delay == 36
    assert down.delay_s == pytest.approx(12 / 16000) and up.delay_s == pytest.approx(12 / 16000)


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="positive"):
        Resampler(ResamplerConfig(0, 16000))
    with pytest.raises(ConfigError, match="too fine"):
        rate_ratio(48000, 16000.123)
    with pytest.raises(ConfigError, match="zero_crossings"):
        Resampler(ResamplerConfig(48000, 16000, zero_crossings=0))


class _Hop:
    """A stage at 16 kHz with hop 4 and latency 2 (delays by 2 samples)."""

    hop, latency, in_channels, out_channels, sample_rate = 4, 2, 1, 1, 16000.0

    def __init__(self) -> None:
        self.tail = np.zeros((2, 1), np.float32)
        self.seen: list[int] = []

    def process(self, block: np.ndarray) -> np.ndarray:
        assert block.shape[0] % 4 == 0
        self.seen.append(block.shape[0])
        both = np.concatenate([self.tail, block])
        self.tail = both[-2:]
        return both[:-2]

    def reset(self) -> None:
        self.tail[:] = 0


def test_resampled_stage_lengths_delay_and_offline() -> None:
    inner = _Hop()
    st = ResampledStage(inner, 48000, 16000)
    assert st.pad == 9  # (hop - 1) * 3
    assert st.latency == 36 + 36 + 2 * 3 + 9
    assert st.latency_s == pytest.approx(st.latency / 48000)
    rng = np.random.default_rng(4)
    t = np.arange(48000 // 4) / 48000
    clean = np.sin(2 * np.pi * 440 * t)
    x = (clean + 0.003 * rng.standard_normal(t.size)).astype(np.float32)
    outs = []
    i = 0
    for n in [128, 1, 7, 0, 250, 3] * 30 + [x.size]:
        blk = x[i:i + n, None]
        y = st.process(blk)
        assert y.shape == blk.shape  # as many frames out as in, always
        outs.append(y)
        i += n
    y = np.concatenate(outs)[:, 0]
    assert y.size == x.size and all(s % 4 == 0 for s in inner.seen)
    # offline, independently: upfirdn down, delay by 2 (the inner model), upfirdn up, pad
    d = signal.upfirdn(st.down.taps, x.astype(np.float64), 1, 3)[: -(-x.size // 3)]
    d = np.concatenate([np.zeros(2), d])[: d.size]
    d = d[: d.size - d.size % 4]  # what the hop-4 model has seen by the end
    u = signal.upfirdn(st.up.taps, d, 3, 1)[: 3 * d.size]
    ref = np.concatenate([np.zeros(st.pad), u])[: x.size]
    np.testing.assert_allclose(y[: ref.size], ref, atol=1e-5)
    # and the whole chain passes the tone delayed by `latency` (the noise is mostly removed)
    lag = st.latency
    np.testing.assert_allclose(y[2000:], clean[2000 - lag: x.size - lag], atol=0.02)
    st.reset()
    np.testing.assert_allclose(st.process(x[:128, None])[:, 0], ref[:128], atol=1e-5)
