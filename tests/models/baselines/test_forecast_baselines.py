"""DFT extrapolation and linear prediction: exactness where theory says so, streaming contract."""

from __future__ import annotations

import pytest
import torch

from sigstream.core.errors import ConfigError
from sigstream.core.testing import assert_causal, assert_streams_like_offline
from sigstream.models.baselines.forecast import (
    DFTConfig,
    DFTForecaster,
    LinearPredictionConfig,
    LinearPredictor,
    ar_rollout,
    dft_extrapolation_matrix,
    least_squares,
    lp_forecast,
    min_norm_least_squares,
    select_order,
)
from sigstream.models.forecaster.data import HarmonicsConfig, windows


def sines(periods, n_from: int, n_to: int, seed: int = 0) -> torch.Tensor:
    """(1, n_to - n_from) float64 sum of sinusoids with random phases and amplitudes."""
    g = torch.Generator().manual_seed(seed)
    n = torch.arange(n_from, n_to, dtype=torch.float64)
    amps = torch.rand(len(periods), generator=g, dtype=torch.float64) + 0.2
    phases = torch.rand(len(periods), generator=g, dtype=torch.float64) * 6.28
    return sum(a * torch.sin(2 * torch.pi * n / p + ph)
               for a, p, ph in zip(amps, periods, phases, strict=True))[None]


def test_dft_exact_when_every_period_divides_the_lookback() -> None:
    periods = [2, 4, 5, 10, 20, 25, 50, 100]  # every divisor of 100 above 1
    x = sines(periods, 0, 130)
    for window in ("none", "hamming"):
        m = dft_extrapolation_matrix(100, 30, window)
        err = (x[:, :100] @ m - x[:, 100:]).abs().max()
        if window == "none":
            assert err < 1e-10
        else:  # the windowed series extends the *windowed* lookback: not exact
            assert err > 0.05
    # a period that does not divide 100: the DFT repeats the lookback and misses
    y = sines([30], 0, 130)
    assert (y[:, :100] @ dft_extrapolation_matrix(100, 30) - y[:, 100:]).abs().max() > 0.1


def test_dft_without_window_repeats_the_lookback() -> None:
    m = dft_extrapolation_matrix(100, 10)
    torch.testing.assert_close(m, torch.eye(100, dtype=torch.float64)[:, :10], atol=1e-12,
                               rtol=0)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_lstsq_linear_prediction_is_exact_for_k_sinusoids(k: int) -> None:
    periods = [7.3, 23.0, 3.1, 41.7, 12.2, 5.6][:k]  # need not be integers
    x = sines(periods, 0, 110, seed=k)
    pred = lp_forecast(x[:, :100], 2 * k, 10, "lstsq")
    torch.testing.assert_close(pred, x[:, 100:], atol=1e-6, rtol=0)
    # orders above 2k are harmless (minimum-norm solution)
    torch.testing.assert_close(lp_forecast(x[:, :100], 2 * k + 20, 10, "lstsq"), x[:, 100:],
                               atol=1e-6, rtol=0)
    # too low an order is not exact: the test can fail
    assert (lp_forecast(x[:, :100], max(1, 2 * k - 2), 10, "lstsq") - x[:, 100:]).abs().max() \
        > 1e-3


@pytest.mark.parametrize("comps,noise", [((3, 7), 0.0), (45, 0.0), (45, 0.1)])
def test_svd_free_least_squares_equals_the_svd_solution(comps, noise) -> None:
    w = windows(HarmonicsConfig(num_components=comps, noise=noise), 64, 100, 10, 4)
    x = w.lookback / w.lookback.pow(2).mean(dim=1, keepdim=True).sqrt()
    for p in (56, 64, 72, 98):
        svd, ours = least_squares(x, p), min_norm_least_squares(x, p)
        assert ours.dtype == torch.float64 and ours.shape == (64, p)
        # rank-deficient (few components, clean) rows get the same minimum-norm answer
        torch.testing.assert_close(ar_rollout(x, ours, 10), ar_rollout(x, svd, 10),
                                   atol=1e-6, rtol=0)
        # and it is the minimum-norm one (few clean components: rank-deficient systems)
        assert bool((ours.norm(dim=1) <= svd.norm(dim=1) * (1 + 1e-6)).all())
    # several orders in one padded loop give what each gives alone
    together = min_norm_least_squares(x, [56, 72, 98])
    for p, a in zip((56, 72, 98), together, strict=True):
        assert a.shape == (64, p)
        torch.testing.assert_close(ar_rollout(x, a, 10),
                                   ar_rollout(x, min_norm_least_squares(x, p), 10),
                                   atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="lookback / 2"):
        min_norm_least_squares(x, 40)
    with pytest.raises(ConfigError, match="lookback / 2"):
        min_norm_least_squares(x, [60, 40])


def test_eager_and_traceable_solvers_agree() -> None:
    from sigstream.models.baselines.forecast import _cgs2_eager, _cgs2_traceable

    g = torch.Generator().manual_seed(0)
    lhs = torch.randn(300, 12, 20, generator=g, dtype=torch.float64)
    lhs[:, 5] = lhs[:, 2] + lhs[:, 3]  # a dependent row: skipped by both
    rhs = torch.randn(300, 12, generator=g, dtype=torch.float64)
    rhs[:, 5] = rhs[:, 2] + rhs[:, 3]
    floor = torch.full((300, 1), 1e-9, dtype=torch.float64)
    a, b = _cgs2_eager(lhs, rhs, floor), _cgs2_traceable(lhs, rhs, floor)
    torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    # and both are the minimum-norm solution of the rank-deficient systems
    torch.testing.assert_close(a, (torch.linalg.pinv(lhs) @ rhs[..., None])[..., 0],
                               atol=1e-8, rtol=0)


def test_burg_converges_with_order() -> None:
    x = sines([7.3, 23.0, 3.1], 0, 110)
    errs = [float((lp_forecast(x[:, :100], p, 10, "burg") - x[:, 100:]).abs().max())
            for p in (6, 12, 30)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3


def test_select_order_on_validation() -> None:
    w = windows(HarmonicsConfig(num_components=3), 64, 100, 10, 1)
    r = select_order(w.lookback, w.target, [2, 8, 16])
    assert r["order"] >= 8 and r["mse"] < 1e-4
    assert set(r["table"]) == {"burg", "lstsq"} and set(r["table"]["burg"]) == {2, 8, 16}
    assert r["mse"] == min(min(t.values()) for t in r["table"].values())


FORECASTERS = {
    "dft": lambda: DFTForecaster(DFTConfig(lookback=20, horizon=4)),
    "dft_hamming": lambda: DFTForecaster(DFTConfig(lookback=20, horizon=4, window="hamming")),
    "lp_burg": lambda: LinearPredictor(LinearPredictionConfig(lookback=20, horizon=4, order=6)),
    "lp_lstsq": lambda: LinearPredictor(LinearPredictionConfig(lookback=20, horizon=4, order=6,
                                                               method="lstsq")),
}


@pytest.mark.parametrize("name", list(FORECASTERS))
@pytest.mark.parametrize("sizes", [[1] * 50, [7] * 7 + [1], [0, 13, 0, 37], [50]])
def test_baselines_stream_like_offline(name: str, sizes: list[int]) -> None:
    m = FORECASTERS[name]()
    x = torch.randn(2, 50, 1)
    assert_streams_like_offline(m, x, sizes)


@pytest.mark.parametrize("name", list(FORECASTERS))
def test_baselines_are_causal_sliding_windows(name: str) -> None:
    m = FORECASTERS[name]()
    x = torch.randn(2, 50, 1)
    assert_causal(m, x, 30)
    with torch.inference_mode():
        y = m(x)  # (B, T, H): row t forecasts from the 20 samples ending at t
        assert y.shape == (2, 50, 4)
        torch.testing.assert_close(y[:, 33], m.forecast(x[:, 14:34, 0]))
        padded = torch.cat([torch.zeros(2, 15), x[:, :5, 0]], dim=1)
        torch.testing.assert_close(y[:, 4], m.forecast(padded))


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="method"):
        LinearPredictor(LinearPredictionConfig(method="yule"))
    with pytest.raises(ConfigError, match="order"):
        LinearPredictor(LinearPredictionConfig(lookback=20, order=30))
    with pytest.raises(ConfigError, match="window"):
        DFTForecaster(DFTConfig(window="hann"))
