"""Metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from sigstream.models import metrics as M


def test_identical_signals() -> None:
    x = np.sin(np.linspace(0, 6, 128))[None].repeat(3, 0)  # (3, 128)
    assert np.all(M.mse(x, x) == 0)
    assert np.all(M.psnr(x, x) == np.inf)
    assert np.all(M.snr(x, x) == np.inf)
    np.testing.assert_allclose(M.ssim(x, x), 1.0, atol=1e-12)
    assert M.ssim(x, x).shape == (3,)


def test_hand_computed_errors() -> None:
    ref = np.array([0.0, 1.0, 0.0, -1.0])
    est = np.array([0.5, 1.0, -0.5, -1.0])
    assert float(M.mse(ref, est)) == pytest.approx(0.125)
    assert float(M.mae(ref, est)) == pytest.approx(0.25)
    assert float(M.rmse(ref, est)) == pytest.approx(np.sqrt(0.125))
    # data range of ref is 2 -> PSNR = 10 log10(4 / 0.125)
    assert float(M.psnr(ref, est)) == pytest.approx(10 * np.log10(32.0))
    assert float(M.psnr(ref, est, data_range=1.0)) == pytest.approx(10 * np.log10(8.0))
    # SNR = 10 log10(sum ref^2 / sum err^2) = 10 log10(2 / 0.5)
    assert float(M.snr(ref, est)) == pytest.approx(10 * np.log10(4.0))
    assert M.snr_db(ref, est) == pytest.approx(10 * np.log10(4.0))


def test_known_snr_and_improvement() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(4096)
    clean = np.sin(2 * np.pi * t / 64)  # power 0.5
    noise = rng.standard_normal(4096)
    noise *= np.sqrt(0.5 / np.mean(noise**2)) / 10 ** (5 / 20)  # exactly 5 dB below
    assert float(M.snr(clean, clean + noise)) == pytest.approx(5.0, abs=1e-9)
    half = clean + noise / 2  # half the noise amplitude: +6.02 dB
    imp = M.snr_improvement(clean, clean + noise, half)
    assert float(imp) == pytest.approx(20 * np.log10(2), abs=1e-9)


def test_batched_over_leading_axes() -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((2, 3, 50))
    est = ref + 0.1 * rng.standard_normal((2, 3, 50))
    for fn in (M.mse, M.mae, M.rmse, M.psnr, M.ssim, M.snr):
        out = fn(ref, est)
        assert out.shape == (2, 3)
        np.testing.assert_allclose(out[1, 2], fn(ref[1, 2], est[1, 2]))
    np.testing.assert_allclose(M.mse(ref.swapaxes(1, 2), est.swapaxes(1, 2), axis=1),
                               M.mse(ref, est))
    np.testing.assert_allclose(M.ssim(ref.swapaxes(1, 2), est.swapaxes(1, 2), axis=1),
                               M.ssim(ref, est))


def test_ssim_orders_degradation() -> None:
    rng = np.random.default_rng(2)
    ref = np.sin(np.linspace(0, 20, 256))
    n = rng.standard_normal(256)
    s1, s2 = float(M.ssim(ref, ref + 0.05 * n)), float(M.ssim(ref, ref + 0.5 * n))
    assert 1.0 > s1 > s2


def test_ssim_hand_computed_constant_signals() -> None:
    # constant ref a and estimate b: local variances are 0, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = np.full(32, 1.0), np.full(32, 0.5)
    c1 = (0.01 * 1.0) ** 2  # constant reference -> data range falls back to 1
    want = (2 * 1.0 * 0.5 + c1) / (1.0 + 0.25 + c1)
    assert float(M.ssim(a, b)) == pytest.approx(want)


def test_summary_and_errors() -> None:
    ref = np.ones((2, 8))
    est = ref.copy()
    est[0, 0] = 0.0
    s = M.summarize(ref, est, degraded=np.zeros((2, 8)))
    assert s["mse"] == pytest.approx(1 / 16)
    assert s["snr"] == pytest.approx(10 * np.log10(8.0))  # the perfect signal is left out
    assert s["snr_in"] == pytest.approx(0.0)
    assert s["snr_improvement"] == pytest.approx(s["snr"])
    with pytest.raises(ValueError, match="same shape"):
        M.mse(ref, est[:, :4])
