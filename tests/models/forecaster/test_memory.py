"""The forecaster's long memory (memory=P): an AR fit to everything the stream has seen,
combined with the network by recent errors; streamed, causal, exact least squares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sigstream.core.errors import ConfigError
from sigstream.core.testing import assert_causal, stream_in_chunks
from sigstream.models.forecaster import memory as mem
from sigstream.models.registry import build_model


def _series(n: int = 1500, seed: int = 0, level: float = 5.0) -> np.ndarray:
    """An AR(2) around a level plus two tones: the long past predicts it better than any
    100-sample window does."""
    rng = np.random.default_rng(seed)
    e = np.zeros(n)
    for t in range(2, n):
        e[t] = 1.6 * e[t - 1] - 0.8 * e[t - 2] + rng.normal(0, 0.3)
    t = np.arange(n)
    return (level + e + np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 7.3)
            ).astype(np.float32)


@pytest.fixture(scope="module")
def models():
    return (build_model("forecaster:preset=fast"),
            build_model("forecaster:preset=fast,memory=24"))


def _targets(x: np.ndarray, h: int) -> np.ndarray:
    out = np.full((x.size, h), np.nan)
    for i in range(x.size - h):
        out[i] = x[i + 1:i + 1 + h]
    return out


def test_memory_streams_like_offline_and_is_causal(models) -> None:
    _, m = models
    x = torch.from_numpy(np.stack([_series(700, 1), _series(700, 2, level=-3.0)]))[..., None]
    x[1, 300:305] = float("nan")  # a gap: skipped by the fit and the scores
    with torch.inference_mode():
        offline = m(x)
        for sizes in ([1, 15, 16, 17, 0, 100, 3, 250, 298], [1] * 40 + [660], [700]):
            torch.testing.assert_close(stream_in_chunks(m, x, sizes), offline, atol=1e-5,
                                       rtol=1e-5, equal_nan=True)
    assert torch.isnan(offline[1, 300:404]).all()  # the windows holding the gap
    assert torch.isfinite(offline[1, 404:]).all() and torch.isfinite(offline[0]).all()
    assert_causal(m, torch.nan_to_num(x), 400)


def test_the_memory_fit_is_the_least_squares_fit_of_everything_seen(models) -> None:
    """After N samples the state holds the Gram matrix of every fit row: the AR fit from it
    equals numpy's least squares with intercept (the order AIC picked), to 1e-9."""
    _, m = models
    x = _series(1000, 3).astype(np.float64)
    with torch.inference_mode():
        _, st = m.step(torch.from_numpy(x.astype(np.float32))[None, :, None], m.init_state(1))
    beta, rows = mem.fit_ar_aic(st.done + st.part)
    b = beta[0].numpy()
    order = int(np.max(np.nonzero(b[1:])[0])) + 1
    p = 24
    assert rows.item() == 1000 - p
    z = x.astype(np.float32).astype(np.float64) - st.ref.item()
    design = np.stack([np.ones(1000 - p)] + [z[p - k:1000 - k] for k in range(1, order + 1)], 1)
    sol = np.linalg.lstsq(design, z[p:], rcond=None)[0]
    np.testing.assert_allclose(b[:order + 1], sol, rtol=1e-5, atol=1e-8)  # ridge 1e-9
    assert 2 <= order <= p


def test_memory_beats_the_window_network_on_a_long_series(models) -> None:
    net, m = models
    x = _series(3000, 4)
    tgt = _targets(x, 10)
    with torch.inference_mode():
        xt = torch.from_numpy(x)[None, :, None]
        err_net = np.nanmean((net(xt)[0].numpy() - tgt)[2000:] ** 2)
        err_mem = np.nanmean((m(xt)[0].numpy() - tgt)[2000:] ** 2)
    assert err_mem < 0.8 * err_net, (err_mem, err_net)


def test_memory_is_equivariant_to_offsets_and_scales(models) -> None:
    """f(x + c) = f(x) + c and f(a x) = a f(x) after the first lookback (before it the
    window holds the zero-filled start, which is not shifted); the input is quantised to
    2^-10 so that x and x + 1e4 are both exact in float32."""
    _, m = models
    x = torch.round(torch.from_numpy(_series(600, 5)) * 1024)[None, :, None] / 1024
    with torch.inference_mode():
        y = m(x).double()
        y_big = m(x + 1e4).double()
        y_scaled = m(4 * x).double()
    torch.testing.assert_close(y_big[:, 100:] - 1e4, y[:, 100:], atol=3e-3, rtol=0)
    torch.testing.assert_close(y_scaled[:, 100:], 4 * y[:, 100:], atol=1e-3, rtol=1e-4)


def test_the_combination_uses_the_network_alone_before_enough_is_scored(models) -> None:
    net, m = models
    x = torch.from_numpy(_series(mem.MIN_ROWS + 24, 6))[None, :, None]
    with torch.inference_mode():
        torch.testing.assert_close(m(x), net(x), atol=1e-6, rtol=0)


def test_memory_bad_values() -> None:
    for spec, match in [("forecaster:memory=100", "memory"), ("forecaster:memory=-1", "memory"),
                        ("forecaster:memory=8,forecast_every=4", "forecast_every")]:
        with pytest.raises(ConfigError, match=match):
            build_model(spec)


def test_constant_and_silent_input_stay_finite(models) -> None:
    _, m = models
    x = torch.zeros(2, 700, 1)
    x[1] = 7.0
    with torch.inference_mode():
        y = m(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y[0], torch.zeros_like(y[0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[1, 200:], torch.full_like(y[1, 200:], 7.0), atol=1e-4, rtol=0)


@pytest.mark.parametrize("backend", ["onnx", "torchscript"])
def test_memory_exports_with_parity(models, backend: str) -> None:
    """The exported step equals eager across chunkings, on a long series, silence, a
    constant and a NaN gap (NaN rows in the same places)."""
    from sigstream.export.backends import on_backend
    from sigstream.stream.runner import StreamRunner

    _, m = models
    x = np.stack([_series(700, 1), np.zeros(700, np.float32), np.full(700, 3.5, np.float32),
                  _series(700, 2, level=-2.0)])[..., None]
    x[3, 200:203] = np.nan
    with torch.inference_mode():
        ref = m(torch.from_numpy(x)).numpy()
    runner = StreamRunner(on_backend(m, backend, name="forecaster"), batch=4)
    sizes = [1, 15, 16, 17, 100, 3, 250, 298]
    got = np.concatenate([runner.step(x[:, a:a + n])
                          for a, n in zip(np.cumsum([0, *sizes[:-1]]), sizes, strict=True)],
                         axis=1)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)  # NaN where ref has NaN
    assert np.isfinite(got[:3]).all()
