"""The harmonics generator: statistics, normalisation, determinism, the on-the-fly dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sigstream.core.errors import ConfigError
from sigstream.models.forecaster.data import (
    HarmonicsConfig,
    HarmonicsWindows,
    generate,
    parse_components,
    windows,
)


def test_periods_components_and_amplitudes() -> None:
    h = generate(HarmonicsConfig(num_samples=50, num_components=(3, 7)), 4000, 1)
    assert h.signal.shape == (4000, 50) and h.signal.dtype == np.float32
    assert h.components.min() == 3 and h.components.max() == 7  # inclusive range, both ends
    used = h.periods > 0
    np.testing.assert_array_equal(used.sum(axis=1), h.components)
    p = h.periods[used]
    assert p.dtype.kind == "i" and p.min() == 2 and p.max() == 100  # inclusive, both ends
    assert np.all(h.amplitudes[~used] == 0) and np.all(h.amplitudes >= 0)
    np.testing.assert_allclose(h.amplitudes.sum(axis=1), 1.0, atol=1e-12)
    assert np.all((h.phases >= 0) & (h.phases < 2 * np.pi))
    # periods are uniform over 2..100: every value drawn, none far from its share
    counts = np.bincount(p, minlength=101)[2:]
    assert counts.min() > 0.5 * counts.mean()


def test_peak_one_and_signal_is_the_sum_of_its_components() -> None:
    h = generate(HarmonicsConfig(num_samples=110, num_components=(1, 45)), 64, 2)
    np.testing.assert_allclose(np.abs(h.signal).max(axis=1), 1.0, atol=1e-6)
    n = np.arange(110)
    for i in range(5):
        used = h.periods[i] > 0
        raw = sum(a * np.sin(2 * np.pi * n / p + ph) for a, p, ph in
                  zip(h.amplitudes[i, used], h.periods[i, used], h.phases[i, used], strict=True))
        np.testing.assert_allclose(h.signal[i], raw * h.scale[i], atol=2e-5)
    np.testing.assert_array_equal(h.signal, h.clean)  # no noise: the two are the same


def test_noise_is_renormalised_to_peak_one() -> None:
    h = generate(HarmonicsConfig(num_samples=200, num_components=10, noise=0.1), 200, 3)
    np.testing.assert_allclose(np.abs(h.signal).max(axis=1), 1.0, atol=1e-6)
    resid = (h.signal - h.clean).std(axis=1)
    # the noise std 0.1 shrinks by the second peak normalisation (peak of signal + noise >= 1)
    assert 0.05 < resid.mean() < 0.1
    assert h.noisy.all()
    half = generate(HarmonicsConfig(num_components=10, noise=0.1, noise_fraction=0.5), 400, 3)
    assert 0.4 < half.noisy.mean() < 0.6
    np.testing.assert_array_equal(half.signal[~half.noisy], half.clean[~half.noisy])


def test_seeded_and_dataset_is_resumable() -> None:
    cfg = HarmonicsConfig(num_components=(1, 45), noise=0.1, noise_fraction=0.5)
    a, b, c = windows(cfg, 8, 100, 10, 5), windows(cfg, 8, 100, 10, 5), windows(cfg, 8, 100, 10, 6)
    torch.testing.assert_close(a.lookback, b.lookback)
    assert not torch.equal(a.lookback, c.lookback)
    assert a.lookback.shape == (8, 100) and a.target.shape == (8, 10)
    ds = HarmonicsWindows(cfg, batch=4, seed=1)
    it = iter(ds)
    first = [next(it) for _ in range(3)]
    resumed = next(iter(HarmonicsWindows(cfg, batch=4, seed=1, start=2)))
    torch.testing.assert_close(first[2].lookback, resumed.lookback)
    assert not torch.equal(first[0].lookback, first[1].lookback)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="periods_range"):
        generate(HarmonicsConfig(periods_range=(1, 10)), 1)
    with pytest.raises(ConfigError, match="num_components"):
        generate(HarmonicsConfig(num_components=(5, 3)), 1)
    assert parse_components("3-7") == (3, 7) and parse_components("45") == 45
    with pytest.raises(ConfigError, match="LO-HI"):
        parse_components("many")
