"""The vibration data generator: the source document's figures, splits, long stream."""

from __future__ import annotations

import numpy as np
import pytest

from sigstream.core.errors import ConfigError
from sigstream.models.augmentor.data import (
    VibrationConfig,
    actuator_targets,
    frame,
    generate_stream,
    generate_windows,
    lowpass_response,
    make_splits,
    redraw_noise,
)


def test_actuator_targets_hand_computed() -> None:
    w = 128
    n = np.arange(w)
    x = 0.8 * np.sin(2 * np.pi * 10 * n / w)  # exactly bin 10
    damping, stiffness = actuator_targets(x)
    assert damping == pytest.approx(0.5 + 0.5 * (x.max() - x.min()), rel=1e-6)
    assert stiffness == pytest.approx(0.2 + 0.8 * 10 / 64, rel=1e-6)
    # a DC offset does not count as the dominant bin
    d2, s2 = actuator_targets(x + 5.0)
    assert s2 == pytest.approx(stiffness) and d2 == pytest.approx(damping, rel=1e-6)
    assert actuator_targets(np.stack([x, x]))[1].tolist() == pytest.approx([damping, stiffness])


def test_lowpass_response_scales_a_bin_centred_tone() -> None:
    fs, w = 100.0, 200
    f = 20.0  # bin 40 of a 200-sample window at 100 Hz
    x = np.sin(2 * np.pi * f * np.arange(w) / fs)
    y = lowpass_response(x, fs, 0.1)
    np.testing.assert_allclose(y, x / (1 + 0.1 * f), atol=1e-12)


def test_windows_shapes_ranges_and_noise_levels() -> None:
    d = generate_windows(3000, seed=3)
    assert d.lq.shape == d.hq.shape == d.clean.shape == (3000, 128)
    assert d.actuator.shape == (3000, 2) and d.lq.dtype == np.float32
    np.testing.assert_allclose(np.std(d.hq - d.clean), 0.02, rtol=0.03)
    resid = d.lq - d.filtered  # sensor noise 0.2 plus drift (amplitude 0.2)
    assert 0.2 < np.std(resid) < np.sqrt(0.2**2 + 0.2**2 / 2) + 0.01
    amp = np.abs(d.clean).max(axis=1)
    assert amp.max() <= 1.6 + 1e-6 and amp.min() > 0.3
    np.testing.assert_allclose(d.actuator, actuator_targets(d.hq))
    assert d.actuator[:, 1].min() >= 0.2 and d.actuator[:, 1].max() <= 1.0
    # the dominant bin of high-quality windows is the f1 component (5-20 Hz at 100 Hz ->
    # bins 6.4-25.6) in nearly all windows, since a1 > a2
    bins = (d.actuator[:, 1] - 0.2) / 0.8 * 64
    assert np.mean((bins >= 5) & (bins <= 27)) > 0.97


def test_seeded_and_split_80_10_10() -> None:
    a, b = make_splits(200, seed=5), make_splits(200, seed=5)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.lq, y.lq)
    assert (a.train.size, a.val.size, a.test.size) == (160, 20, 20)
    rows = {r.tobytes() for part in a for r in part.hq}
    assert len(rows) == 200  # disjoint
    c = make_splits(200, seed=6)
    assert not np.array_equal(a.train.lq, c.train.lq)
    with pytest.raises(ConfigError):
        make_splits(200, fractions=(0.5, 0.5, 0.5))


def test_redraw_noise_keeps_targets() -> None:
    d = generate_windows(50, seed=1)
    r = redraw_noise(d, seed=9)
    np.testing.assert_array_equal(r.hq, d.hq)
    np.testing.assert_array_equal(r.actuator, d.actuator)
    assert not np.allclose(r.lq, d.lq)
    assert np.std(r.lq - r.filtered) == pytest.approx(np.std(d.lq - d.filtered), rel=0.15)


def test_long_stream() -> None:
    s = generate_stream(120.0, seed=2)
    assert s.lq.shape == s.hq.shape == (12000,) and s.sample_rate == 100.0
    assert 5.0 <= s.f1.min() and s.f1.max() <= 20.0
    assert 25.0 <= s.f2.min() and s.f2.max() <= 40.0
    assert np.ptp(s.f1) > 0.5  # the components wander
    assert np.max(np.abs(np.diff(s.f1))) < 0.02  # ... slowly (Hz per sample)
    np.testing.assert_allclose(np.std(s.hq - s.clean), 0.02, rtol=0.05)
    again = generate_stream(120.0, seed=2)
    np.testing.assert_array_equal(s.lq, again.lq)
    f = frame(s.lq, 128, 32)
    assert f.shape == ((12000 - 128) // 32 + 1, 128)
    np.testing.assert_array_equal(f[3], s.lq[96:224])


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="Nyquist"):
        generate_windows(4, VibrationConfig(sample_rate=60.0))
    with pytest.raises(ConfigError):
        generate_windows(0)
