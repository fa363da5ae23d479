"""Audio-like synthetic data: determinism, exact input SNR, noise colours, sources."""

from __future__ import annotations

import numpy as np
import pytest

from sigstream.models.enhancer import data as ad

SHORT = ad.AudioDataConfig(seconds=0.25, speech=False)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = ad.make_clips(SHORT, 6, seed=3)
    b = ad.make_clips(SHORT, 6, seed=3)
    c = ad.make_clips(SHORT, 6, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == a[1].shape == (6, 4000, 1) and a[0].dtype == np.float32


def test_degrade_clips_deterministic_and_fresh() -> None:
    _, clean, _ = ad.make_clips(SHORT, 4, seed=0)
    x1 = ad.degrade_clips(SHORT, clean, seed=1)
    np.testing.assert_array_equal(x1, ad.degrade_clips(SHORT, clean, seed=1))
    assert not np.array_equal(x1, ad.degrade_clips(SHORT, clean, seed=2))


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 20.0])
def test_input_snr_is_exact(snr: float) -> None:
    noisy, clean, info = ad.make_clips(SHORT, 8, seed=5, snrs=(snr,))
    err = np.sum((noisy - clean).astype(np.float64) ** 2, axis=(1, 2))
    measured = 10 * np.log10(np.sum(clean.astype(np.float64) ** 2, axis=(1, 2)) / err)
    np.testing.assert_allclose(measured, snr, atol=0.01)
    assert all(i["snr_db"] == snr for i in info)


def test_clean_levels_and_sources() -> None:
    cfg = ad.AudioDataConfig(seconds=0.25, speech=False, weights=(0.5, 0.0, 0.5))
    _, clean, info = ad.make_clips(cfg, 12, seed=1)
    rms_db = 20 * np.log10(np.sqrt(np.mean(clean.astype(np.float64) ** 2, axis=(1, 2))))
    assert np.all((rms_db > -30.1) & (rms_db < -9.9))
    assert {i["source"] for i in info} == {"tone", "vibration"}
    assert {i["noise"] for i in info} <= set(ad.NOISES)


def _slope(y: np.ndarray, rate: float) -> float:
    """Log-log slope of the power spectrum between 50 Hz and 4 kHz."""
    f = np.fft.rfftfreq(len(y), 1 / rate)
    p = np.abs(np.fft.rfft(y)) ** 2
    k = (f > 50) & (f < 4000)
    return float(np.polyfit(np.log(f[k]), np.log(p[k]), 1)[0])


@pytest.mark.parametrize(("kind", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_colours(kind: str, slope: float) -> None:
    y = ad.noise(kind, np.random.default_rng(0), 32000, 16000.0)
    assert abs(np.sqrt(np.mean(y**2)) - 1.0) < 1e-6
    assert abs(_slope(y, 16000.0) - slope) < 0.2


def test_hum_has_mains_harmonics() -> None:
    y = ad.noise("hum", np.random.default_rng(2), 16000, 16000.0)
    spec = np.abs(np.fft.rfft(y))  # 1 Hz bins
    peak = int(np.argmax(spec[40:70])) + 40
    assert peak in (49, 50, 51, 59, 60, 61)
    assert spec[peak] > 20 * np.median(spec)
    with pytest.raises(ValueError):
        ad.noise("purple", np.random.default_rng(0), 10, 16000.0)


def test_tone_is_harmonic_with_an_envelope() -> None:
    y = ad.tone_clip(np.random.default_rng(0), 16000, 16000.0)
    assert np.all(np.isfinite(y)) and np.std(y) > 0
    env = np.abs(y).reshape(40, 400).max(axis=1)
    assert env.max() > 3 * np.percentile(env, 10)  # notes and pauses, not a steady drone


def test_vibration_clip_components() -> None:
    y = ad.vibration_clip(np.random.default_rng(0), 2000, 100.0)
    f = np.fft.rfftfreq(2000, 1 / 100.0)
    p = np.abs(np.fft.rfft(y))
    assert 5 <= f[np.argmax(p * (f < 22))] <= 21 and 24 <= f[np.argmax(p * (f > 23))] <= 41


def test_speech_falls_back_to_tones_without_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ad, "espeak_available", lambda: False)
    ad.speech_bank.cache_clear()
    try:
        cfg = ad.AudioDataConfig(seconds=0.25, weights=(0.0, 1.0, 0.0))
        _, _, info = ad.make_clips(cfg, 3, seed=0)
    finally:
        ad.speech_bank.cache_clear()
    assert {i["source"] for i in info} == {"tone"}


def test_heldout_uses_fixed_snrs_and_no_vibration() -> None:
    noisy, clean, info = ad.heldout_clips(0, snrs=(0.0, 10.0), per_snr=2, seconds=0.25,
                                          speech=False)
    assert [i["snr_db"] for i in info] == [0.0, 10.0, 0.0, 10.0]
    assert all(i["source"] != "vibration" for i in info)


def test_stream_reads_continuously() -> None:
    s1 = ad.AudioStream(seed=1, speech=False, clip_seconds=0.25)
    s2 = ad.AudioStream(seed=1, speech=False, clip_seconds=0.25)
    parts = [s1.read(n) for n in (1, 999, 0, 7000)]
    whole = s2.read(8000)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), whole[0])
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), whole[1])
