"""Persistence, seasonal naive and the global AR fit on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.forecaster.real_baselines import GlobalAR, persistence, seasonal_naive


def test_persistence_is_exact_on_a_constant_and_repeats_the_last_value() -> None:
    x = np.full((3, 20), 4.25)
    np.testing.assert_array_equal(persistence(x, 5), np.full((3, 5), 4.25))
    w = np.arange(12.0).reshape(2, 6)
    np.testing.assert_array_equal(persistence(w, 3), [[5, 5, 5], [11, 11, 11]])


def test_seasonal_naive_is_exact_on_a_pure_period_12_sequence() -> None:
    rng = np.random.default_rng(0)
    period = rng.standard_normal(12)
    series = np.tile(period, 30)
    origins = np.arange(40, 300)
    windows = series[origins[:, None] + np.arange(-39, 1)]  # (N, 40), last sample at t
    future = series[origins[:, None] + np.arange(1, 26)]    # 25 steps: more than two seasons
    np.testing.assert_array_equal(seasonal_naive(windows, 25, 12), future)
    # persistence is not exact here, and a wrong season is not either
    assert np.abs(persistence(windows, 25) - future).max() > 0.1
    assert np.abs(seasonal_naive(windows, 25, 11) - future).max() > 0.1


def test_seasonal_naive_index_convention() -> None:
    w = np.arange(10.0)[None]  # x[t] = 9 is the last sample; one season (4) ago: x[t-3] = 6
    np.testing.assert_array_equal(seasonal_naive(w, 6, 4), [[6, 7, 8, 9, 6, 7]])
    np.testing.assert_array_equal(seasonal_naive(w, 3, None), [[9, 9, 9]])
    np.testing.assert_array_equal(seasonal_naive(w, 3, 1), [[9, 9, 9]])
    with pytest.raises(ConfigError, match="at least 11 samples"):
        seasonal_naive(w, 3, 11)


def _ar2(n: int, phi=(1.3, -0.6), c=0.5, sd=1.0, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(n + 200)
    e = rng.standard_normal(n + 200) * sd
    for t in range(2, n + 200):
        x[t] = c + phi[0] * x[t - 1] + phi[1] * x[t - 2] + e[t]
    return x[200:]


@pytest.mark.parametrize("criterion", ["aic", "bic"])
def test_global_ar_recovers_a_known_ar2_process(criterion: str) -> None:
    x = _ar2(20000)
    ar = GlobalAR(max_order=12, criterion=criterion).fit(x)
    if criterion == "bic":  # consistent: the true order
        assert ar.order == 2
    assert ar.order >= 2  # AIC may add a few lags, all near zero
    np.testing.assert_allclose(ar.coef[:2], [1.3, -0.6], atol=0.03)
    np.testing.assert_allclose(ar.coef[2:], 0.0, atol=0.03)
    assert ar.intercept == pytest.approx(0.5, abs=0.05)
    assert ar.sigma2 == pytest.approx(1.0, rel=0.05)
    assert set(ar.table) == set(range(13)) and ar.rows == 20000 - 12


def test_global_ar_rollout_is_the_recursion() -> None:
    ar = GlobalAR(max_order=2)
    ar.order, ar.intercept, ar.coef = 2, 0.5, np.array([1.3, -0.6])
    w = np.array([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]])
    got = ar.forecast(w, 4)
    for i, row in enumerate(w):
        hist = list(row)
        for h in range(4):
            nxt = 0.5 + 1.3 * hist[-1] - 0.6 * hist[-2]
            assert got[i, h] == pytest.approx(nxt)
            hist.append(nxt)


def test_global_ar_is_exact_on_a_noise_free_recursion_and_handles_gaps() -> None:
    x = np.zeros(600)
    x[:2] = 1.0, 0.2
    for t in range(2, 600):  # a damped oscillation, no noise
        x[t] = 0.3 + 1.6 * x[t - 1] - 0.8 * x[t - 2]
    y = x.copy()
    y[[50, 51, 300]] = np.nan  # rows touching a gap are dropped
    ar = GlobalAR(max_order=8).fit(y)
    windows = np.stack([x[t - 20:t] for t in range(100, 500, 7)])
    future = np.stack([x[t:t + 6] for t in range(100, 500, 7)])
    np.testing.assert_allclose(ar.forecast(windows, 6), future, atol=1e-8)
    assert ar.rows == 600 - 8 - 10 - 9  # gaps at 50, 51 (rows 50..59) and 300 (300..308)


def test_global_ar_on_a_constant_series_picks_order_0() -> None:
    ar = GlobalAR(max_order=10).fit(np.zeros(300))
    assert ar.order == 0 and ar.intercept == 0.0
    np.testing.assert_array_equal(ar.forecast(np.ones((2, 5)), 3), 0.0)
    big = GlobalAR(max_order=10).fit(np.full(300, 1e6))
    assert big.order == 0 and big.intercept == pytest.approx(1e6)


def test_global_ar_bad_input() -> None:
    with pytest.raises(ConfigError, match="criterion"):
        GlobalAR(criterion="hqc").fit(np.zeros(50))
    with pytest.raises(ConfigError, match="max_order"):
        GlobalAR(max_order=-1).fit(np.zeros(50))
    with pytest.raises(InputError, match="AR fit needs"):
        GlobalAR(max_order=4).fit(np.array([1.0]))
    ar = GlobalAR(max_order=6).fit(_ar2(500))
    with pytest.raises(ConfigError, match="windows of at least"):
        ar.forecast(np.zeros((1, ar.order - 1)), 2)
