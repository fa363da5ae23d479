"""The user's own sensor pairs: reading (.npz, two .npy, two WAV), the time split, windows,
bad input (one InputError line each), and the synthetic degradation applied to a recording."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.augmentor.data import VibrationConfig, degrade, lowpass_response
from sigstream.models.augmentor.pairs import (
    check_pairs,
    describe,
    load_pairs,
    min_samples,
    pair_splits,
    pair_windows,
    split_bounds,
)


def _signal(n: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 100.0
    return np.stack([np.sin(2 * np.pi * (3 + c) * t) + 0.1 * rng.normal(size=n)
                     for c in range(channels)], axis=1).astype(np.float32)


def test_npz_with_rate_and_1d_arrays(tmp_path) -> None:
    high = _signal(2000, 1)[:, 0]
    p = tmp_path / "p.npz"
    np.savez(p, low=high + 1, high=high, rate=np.float64(200))
    pairs = load_pairs(str(p))
    assert pairs.low.shape == (2000, 1) and pairs.low.dtype == np.float32
    assert pairs.rate == 200.0 and pairs.channels == 1
    np.testing.assert_allclose(pairs.low[:, 0] - pairs.high[:, 0], 1.0, atol=1e-6)


def test_two_npy_files_and_two_wav_files(tmp_path) -> None:
    high = _signal(1500, 3)
    np.save(tmp_path / "l.npy", high * 0.5)
    np.save(tmp_path / "h.npy", high)
    pairs = load_pairs(f"{tmp_path / 'l.npy'},{tmp_path / 'h.npy'}")
    assert pairs.low.shape == (1500, 3) and pairs.rate is None
    sf.write(tmp_path / "l.wav", high * 0.5, 100, subtype="FLOAT")
    sf.write(tmp_path / "h.wav", high, 100, subtype="FLOAT")
    w = load_pairs(f"{tmp_path / 'l.wav'},{tmp_path / 'h.wav'}")
    assert w.rate == 100.0 and w.low.shape == (1500, 3)
    np.testing.assert_allclose(w.high, high, atol=1e-6)


def _npz(tmp_path, **arrays) -> str:
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    return str(p)


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda d: _npz(d, low=np.zeros(2000), high=np.zeros(1999)),
     "lengths differ: low has 2000 samples, high 1999"),
    (lambda d: _npz(d, low=np.zeros((2000, 2)), high=np.zeros((2000, 3))),
     "channel counts differ: low has 2, high 3"),
    (lambda d: _npz(d, low=np.r_[np.zeros(1999), np.nan], high=np.zeros(2000)),
     "'low' has 1 NaN/inf values (first at sample 1999, channel 0)"),
    (lambda d: _npz(d, low=np.zeros(2000)), "has no array 'high'"),
    (lambda d: _npz(d, lq=np.zeros(2000), hq=np.zeros(2000)),
     "has no array 'low' or 'high' (it has: lq, hq)"),
    (lambda d: _npz(d, low=np.zeros((10, 10, 10)), high=np.zeros((10, 10, 10))),
     "must be (T,) or (T, C)"),
    (lambda d: _npz(d, low=np.zeros(2000), high=np.zeros(2000), rate=-5.0),
     "'rate' in"),
    (lambda d: str(d / "missing.npz"), "no such file"),
    (lambda d: "a.npz,b.npy,c.npy", "expected PAIRS.npz or LOW,HIGH"),
])
def test_bad_pairs_are_one_clear_input_error(tmp_path, make, fragment: str) -> None:
    with pytest.raises(InputError) as exc:
        load_pairs(make(tmp_path))
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_mismatched_wav_rates_and_mixed_kinds(tmp_path) -> None:
    x = _signal(1500, 1)
    sf.write(tmp_path / "l.wav", x, 100, subtype="FLOAT")
    sf.write(tmp_path / "h.wav", x, 200, subtype="FLOAT")
    with pytest.raises(InputError, match="the rates differ: .* is 100 Hz, .* is 200 Hz"):
        load_pairs(f"{tmp_path / 'l.wav'},{tmp_path / 'h.wav'}")
    np.save(tmp_path / "h.npy", x)
    with pytest.raises(InputError, match="not one of each"):
        load_pairs(f"{tmp_path / 'l.wav'},{tmp_path / 'h.npy'}")


def test_too_short_names_the_minimum(tmp_path) -> None:
    need = min_samples(128)
    # each part holds one window at the minimum, not one sample before
    assert all(b - a >= 128 for a, b in split_bounds(need).values())
    assert any(b - a < 128 for a, b in split_bounds(need - 1).values())
    short = check_pairs(np.zeros(need - 1), np.zeros(need - 1), 100.0)
    with pytest.raises(InputError, match=f"too short: {need - 1} samples; need at least "
                                         f"{need}"):
        pair_splits(short, 128, 8)
    assert pair_splits(check_pairs(np.zeros(need), np.zeros(need), None), 128, 8).test.size


def test_split_is_in_time_70_15_30_and_windows_stay_inside() -> None:
    b = split_bounds(10000)
    assert b == {"train": (0, 5950), "val": (5950, 7000), "test": (7000, 10000)}
    t = np.arange(10000, dtype=np.float32)
    pairs = check_pairs(t, t, None)  # the value of a sample is its time index
    s = pair_splits(pairs, 32, 4)
    for part, (a, z) in zip(s, b.values(), strict=True):
        assert part.hq.min() >= a and part.hq.max() < z
    assert s.test.size == (3000 // 32)  # back to back
    assert s.val.size == (1050 - 32) // 16 + 1  # every half window


def test_channels_are_pooled_and_flip_negates_both() -> None:
    x = _signal(1000, 3)
    w = pair_windows(x * 2, x, 100, 100)
    assert w.lq.shape == (30, 100) and w.actuator.shape == (30, 2)
    np.testing.assert_array_equal(w.hq[10], x[:100, 1])  # channel-major
    f = pair_windows(x * 2, x, 100, 100, flip=True)
    assert f.size == 60
    np.testing.assert_array_equal(f.lq[30:], -w.lq)
    np.testing.assert_array_equal(f.hq[30:], -w.hq)


def test_describe_records_the_source_and_its_hash(tmp_path) -> None:
    p = tmp_path / "p.npz"
    np.savez(p, low=np.zeros(2000), high=np.zeros(2000))
    d = describe(load_pairs(str(p)), str(p))
    assert d["samples"] == 2000 and d["split"]["test"] == [1400, 2000]
    assert len(d["sha256"]["p.npz"]) == 64


def test_degrade_is_the_sensor_model() -> None:
    """On silence: the noise (std 0.2) plus the drift (amplitude 0.2 at 0.1 Hz); on a tone
    at f: amplitude divided by 1 + 0.1 f; seeded; the shape kept."""
    cfg = VibrationConfig()
    n = 60000  # 600 s: the drift's mean square is about A^2 / 2
    low = degrade(np.zeros((n, 2)), cfg, seed=3)
    assert low.shape == (n, 2) and low.dtype == np.float32
    assert np.var(low) == pytest.approx(0.2 ** 2 + 0.2 ** 2 / 2, rel=0.05)
    np.testing.assert_array_equal(low, degrade(np.zeros((n, 2)), cfg, seed=3))
    assert not np.array_equal(low, degrade(np.zeros((n, 2)), cfg, seed=4))
    quiet = VibrationConfig(lq_noise=0.0, drift_amplitude=0.0)
    t = np.arange(4000) / 100.0
    tone = np.sin(2 * np.pi * 10.0 * t)
    out = degrade(tone, quiet)
    assert out.shape == tone.shape
    mid = slice(500, 3500)
    np.testing.assert_allclose(out[mid], tone[mid] / 2.0, atol=0.01)  # 1 + 0.1 * 10
    np.testing.assert_allclose(out[mid], lowpass_response(tone, 100.0)[mid], atol=0.01)
    with pytest.raises(ConfigError, match="shape"):
        degrade(np.zeros((2, 2, 2)))
