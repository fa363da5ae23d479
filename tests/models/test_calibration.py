"""Post-hoc interval calibration (sigstream.models.calibration) on synthetic data whose
answer is known: Gaussian errors of a known multiple of the stated sigma."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sigstream.models.calibration import (
    LEVELS,
    Calibration,
    coverage,
    fit_calibration,
    fit_quantile_margin,
    fit_sigma_scale,
    interval_coverage,
    normal_quantile,
    reliability,
)


def _data(n: int, true_factor: float, seed: int) -> tuple[np.ndarray, ...]:
    """Predictions, stated sigmas (heteroscedastic) and truths whose error is
    N(0, (true_factor * sigma)^2): the right scale is ``true_factor``."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=n)
    sigma = rng.uniform(0.05, 2.0, size=n)
    truth = mean + true_factor * sigma * rng.normal(size=n)
    return mean, sigma, truth


def test_normal_quantile_known_values() -> None:
    assert normal_quantile(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert normal_quantile(0.6826894921) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError):
        normal_quantile(1.0)


@pytest.mark.parametrize("factor", [0.2, 1.0, 7.0])
def test_scale_recovers_the_true_factor(factor: float) -> None:
    mean, sigma, truth = _data(40000, factor, seed=1)
    assert fit_sigma_scale(mean, sigma, truth) == pytest.approx(factor, rel=0.03)
    assert fit_calibration(mean, sigma, truth).scale == pytest.approx(factor, rel=0.03)


def test_raw_coverage_is_the_gaussian_probability_and_calibration_fixes_it() -> None:
    """Sigma 5x too small: ±1.96σ covers P(|Z| < 1.96/5) = 0.305; calibrated on one draw,
    the 95 % interval covers 0.95 of a fresh draw."""
    cal_set, test_set = _data(20000, 5.0, seed=2), _data(20000, 5.0, seed=3)
    expected_raw = math.erf(1.959964 / 5 / math.sqrt(2))
    assert coverage(*test_set, 0.95) == pytest.approx(expected_raw, abs=0.01)
    cal = fit_calibration(*cal_set)
    assert coverage(*test_set, 0.95, calibration=cal) == pytest.approx(0.95, abs=0.006)


def test_every_tabulated_level_is_calibrated_for_non_gaussian_errors() -> None:
    """Laplace errors: a single Gaussian scale is wrong away from 95 %, the table is not."""
    rng = np.random.default_rng(4)

    def draw(n: int) -> tuple[np.ndarray, ...]:
        sigma = rng.uniform(0.1, 1.0, size=n)
        return np.zeros(n), sigma, 3.0 * sigma * rng.laplace(size=n)

    cal = fit_calibration(*draw(30000))
    rel = reliability(*draw(30000), calibration=cal)
    assert rel["nominal"] == list(LEVELS)
    np.testing.assert_allclose(rel["empirical"], LEVELS, atol=0.012)
    # Laplace |e|/b quantile at p is -ln(1 - p): the table recovers it (b = 3 sigma)
    for p in (0.5, 0.9, 0.95):
        assert cal.q(p) == pytest.approx(-3.0 * math.log(1 - p), rel=0.04)


def test_conformal_quantile_is_the_finite_sample_rank() -> None:
    """n = 19 scores 1..19: level 0.95 takes the ceil(20 * 0.95) = 19th smallest, level 0.5
    the ceil(20 * 0.5) = 10th."""
    scores = np.arange(1.0, 20.0)
    cal = fit_calibration(np.zeros(19), np.ones(19), scores, levels=(0.5, 0.95))
    assert cal.quantiles == (10.0, 19.0) and cal.n == 19


def test_interval_and_round_trip() -> None:
    mean, sigma, truth = _data(5000, 2.0, seed=5)
    cal = fit_calibration(mean, sigma, truth)
    lo, hi = cal.interval(mean, sigma, 0.95)
    np.testing.assert_allclose(hi - lo, 2 * cal.q(0.95) * sigma)
    again = Calibration.from_dict(cal.to_dict())
    assert again == cal and cal.to_dict()["scale_95"] == pytest.approx(cal.scale)
    # between the tabulated levels: interpolated; beyond them: the Gaussian ratio
    assert cal.q(0.1) < cal.q(0.15) < cal.q(0.2)
    assert cal.q(0.995) == pytest.approx(cal.q(0.99) / normal_quantile(0.99)
                                         * normal_quantile(0.995))


def test_zero_sigma_does_not_give_infinite_scores() -> None:
    mean = np.zeros(100)
    sigma = np.r_[np.zeros(10), np.ones(90)]
    truth = np.r_[np.zeros(10), np.linspace(-1, 1, 90)]
    cal = fit_calibration(mean, sigma, truth)
    assert np.isfinite(cal.quantiles).all() and cal.floor > 0
    assert coverage(mean, sigma, truth, 0.95, cal) >= 0.95


def test_quantile_margin_widens_too_narrow_quantiles() -> None:
    """Truth N(0, 1) with the stated 95 % quantiles ±1: the margin is 1.96 - 1."""
    rng = np.random.default_rng(6)
    truth = rng.normal(size=50000)
    q = fit_quantile_margin(-np.ones_like(truth), np.ones_like(truth), truth)
    assert q == pytest.approx(normal_quantile(0.95) - 1.0, abs=0.03)
    fresh = rng.normal(size=50000)
    assert interval_coverage(-1 - q, 1 + q, fresh) == pytest.approx(0.95, abs=0.005)
    # too wide quantiles give a negative margin
    assert fit_quantile_margin(-3 * np.ones(1000), 3 * np.ones(1000),
                               rng.normal(size=1000)) < 0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        fit_calibration([0.0, np.nan], [1.0, 1.0], [0.0, 0.0])
    with pytest.raises(ValueError, match=">= 0"):
        fit_calibration([0.0], [-1.0], [0.0])
    with pytest.raises(ValueError, match="at least one"):
        fit_calibration([], [], [])
    with pytest.raises(ValueError, match="levels"):
        fit_calibration([0.0], [1.0], [0.0], levels=(1.5,))
