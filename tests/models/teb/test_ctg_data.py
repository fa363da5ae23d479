"""Synthetic CTG generator: determinism, physiological ranges, contraction-deceleration link,
dropouts."""

from __future__ import annotations

import numpy as np
import pytest

from sigstream.core.errors import ConfigError
from sigstream.models.teb.data import (
    FHR_CENTER,
    FHR_SCALE,
    CtgConfig,
    generate,
    normalise,
)


@pytest.fixture(scope="module")
def data():
    return generate(CtgConfig(records=24), 7)


def test_deterministic_and_record_independent() -> None:
    a = generate(CtgConfig(records=3, minutes=5), 1)
    b = generate(CtgConfig(records=3, minutes=5), 1)
    c = generate(CtgConfig(records=5, minutes=5), 1)
    d = generate(CtgConfig(records=3, minutes=5), 2)
    np.testing.assert_array_equal(a.fhr, b.fhr)
    np.testing.assert_array_equal(a.up, b.up)
    np.testing.assert_array_equal(a.fhr, c.fhr[:3])  # record i does not depend on N
    assert not np.array_equal(a.fhr_clean, d.fhr_clean)
    assert a.fhr.shape == (3, 1200) and a.up.shape == (3, 1200)


def test_ranges(data) -> None:
    fhr, up = data.fhr_clean, data.up_clean
    medians = np.median(fhr, axis=1)
    assert medians.min() > 100 and medians.max() < 165  # baselines 110-160 minus decelerations
    assert fhr.min() >= 50 and fhr.max() <= 220
    assert np.median(up, axis=1).min() > 5 and np.median(up, axis=1).max() < 30  # tone
    for rec, cons in zip(up, data.contractions, strict=True):
        assert len(cons) >= 3
        onsets = np.array([c[0] for c in cons])
        gaps = np.diff(onsets)
        assert gaps.min() >= 120 and gaps.max() <= 300  # every 2-5 minutes
        for _, peak, _, amp in cons:
            assert 25 <= amp <= 70
            i = int(peak * 4)
            if i < rec.shape[0]:
                assert rec[i] > np.median(rec) + 15  # the contraction is visible in the trace


def test_decelerations_follow_contractions(data) -> None:
    """FHR 20-40 s after contraction peaks is lower than at the peaks, by several bpm."""
    drops = []
    for rec, cons in zip(data.fhr_clean, data.contractions, strict=True):
        for _, peak, _, _ in cons:
            a, b = int(peak * 4), int((peak + 30) * 4)
            if b < rec.shape[0]:
                drops.append(rec[a] - rec[b])
    assert np.mean(drops) > 5.0
    # and the UP trace predicts the FHR's future: correlation of UP now with FHR 30 s later
    up = data.up_clean - data.up_clean.mean(1, keepdims=True)
    fhr = data.fhr_clean - data.fhr_clean.mean(1, keepdims=True)
    lag = 30 * 4
    corr_future = np.mean([np.corrcoef(u[:-lag], f[lag:])[0, 1] for u, f in zip(up, fhr,
                                                                                  strict=True)])
    assert corr_future < -0.2


def test_dropouts_are_nan_or_zero_runs_and_normalise_to_nan(data) -> None:
    fhr = data.fhr
    nan_frac, zero_frac = np.isnan(fhr).mean(), (fhr == 0).mean()
    assert 0.002 < nan_frac < 0.1 and 0.002 < zero_frac < 0.1
    lost = np.isnan(fhr) | (fhr == 0)
    np.testing.assert_array_equal(fhr[~lost], data.fhr_clean[~lost])
    f, u = normalise(data.fhr, data.up)
    np.testing.assert_array_equal(np.isnan(f), lost)
    assert f.dtype == np.float32
    np.testing.assert_allclose(f[~lost], (data.fhr_clean[~lost] - FHR_CENTER) / FHR_SCALE,
                               rtol=1e-6)
    assert np.isnan(u).any()
    clean = generate(CtgConfig(records=2, minutes=5, dropouts=False), 3)
    assert not np.isnan(clean.fhr).any() and not (clean.fhr == 0).any()


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        generate(CtgConfig(records=0), 1)
    with pytest.raises(ConfigError):
        generate(CtgConfig(minutes=0), 1)
