"""Speech-quality metrics and reference enhancers (sigstream.models.enhancer.quality), on the
real pesq / pystoi / pyrnnoise packages (the ``eval`` extra, also in ``dev``)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sigstream.core.errors import ConfigError
from sigstream.models.enhancer import quality as q
from sigstream.models.enhancer.data import tone_clip

RATE = 48000


def voice(seed: int = 0, seconds: float = 2.0, rms: float = 0.05) -> np.ndarray:
    """A speech-like clip: harmonic tones with formants, vibrato and syllable envelopes."""
    x = tone_clip(np.random.default_rng(seed), int(seconds * RATE), RATE)
    return rms * x / np.sqrt(np.mean(x**2))


def with_noise(x: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(x.size)
    return x + n * np.sqrt(np.mean(x**2) / np.mean(n**2)) * 10 ** (-snr_db / 20)


def lag_corr(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Correlation of a[t + lag] with b[t]."""
    if lag >= 0:
        return float(np.corrcoef(a[lag:], b[:b.size - lag])[0, 1])
    return lag_corr(b, a, -lag)


# -- SI-SDR, SNR ----------------------------------------------------------------------------
def test_si_sdr_equals_the_analytic_value() -> None:
    rng = np.random.default_rng(0)
    ref = voice(0, 1.0)
    r0 = ref - ref.mean()
    n = rng.standard_normal(ref.size)
    n -= n.mean()
    n -= np.dot(n, r0) / np.dot(r0, r0) * r0  # orthogonal to the zero-mean reference
    n *= 0.1 * np.linalg.norm(r0) / np.linalg.norm(n)
    est = 0.5 * ref + n + 0.3  # a gain, a known distortion and an offset
    expected = 10 * np.log10(0.25 * np.dot(r0, r0) / np.dot(n, n))  # = 20 log10(5) dB
    assert q.si_sdr(ref, est) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(20 * np.log10(5.0))
    assert q.si_sdr(ref, 7.0 * est) == pytest.approx(expected, abs=1e-9)  # scale-invariant
    assert q.si_sdr(ref, -est) == pytest.approx(expected, abs=1e-9)  # any gain, sign too
    assert q.si_sdr(ref, np.roll(ref, 5)) < q.si_sdr(ref, est)  # a delay costs


def test_snr_db_equals_the_analytic_value_and_lengths_must_agree() -> None:
    ref = voice(1, 1.0)
    noise = 0.1 * np.random.default_rng(2).standard_normal(ref.size)
    assert q.snr_db(ref, ref + noise) == pytest.approx(
        10 * np.log10(np.sum(ref**2) / np.sum(noise**2)), abs=1e-9)
    assert q.snr_db(ref, 2 * ref) == pytest.approx(0.0, abs=1e-9)  # no scale invariance
    with pytest.raises(ValueError, match="differ in length"):
        q.si_sdr(ref, ref[:-1])


# -- PESQ, STOI -----------------------------------------------------------------------------
def test_pesq_wb_and_stoi_rank_clean_above_noisy() -> None:
    ref = voice(2, 2.0)
    mild, harsh = with_noise(ref, 15), with_noise(ref, 0)
    p_self, p_mild, p_harsh = (q.pesq_wb(ref, e, RATE) for e in (ref, mild, harsh))
    assert p_self > 4.5 and p_self > p_mild > p_harsh >= 1.0
    s_self, s_mild, s_harsh = (q.stoi(ref, e, RATE) for e in (ref, mild, harsh))
    assert s_self > 0.99 and s_self > s_mild > s_harsh
    e_mild, e_harsh = (q.stoi(ref, e, RATE, extended=True) for e in (mild, harsh))
    assert 1 >= e_mild > e_harsh and e_harsh < s_harsh  # ESTOI is the stricter one
    # PESQ-WB resamples to 16 kHz itself: scoring at 16 kHz gives the same figure
    down = q.resample(np.stack([ref, mild]), RATE, 16000)
    assert q.pesq_wb(down[0], down[1], 16000) == pytest.approx(p_mild, abs=1e-6)


def test_stoi_of_a_clip_too_short_to_score_is_nan() -> None:
    ref = voice(0, 0.2)
    assert np.isnan(q.stoi(ref, ref, RATE)) and np.isnan(q.pesq_wb(ref, 0 * ref, RATE))


@pytest.mark.parametrize(("module", "metric", "call"), [
    ("pesq", "pesq_wb", lambda r: q.pesq_wb(r, r, RATE)),
    ("pystoi", "stoi", lambda r: q.stoi(r, r, RATE)),
    ("pystoi", "estoi", lambda r: q.stoi(r, r, RATE, extended=True)),
])
def test_a_missing_package_is_one_line_naming_the_install(monkeypatch, module: str,
                                                          metric: str, call) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(ConfigError) as err:
        call(voice(0, 0.5))
    msg = str(err.value)
    assert "pip install 'sigstream[eval]'" in msg and module in msg and "\n" not in msg
    assert isinstance(err.value, q.MissingPackage) and err.value.package == module
    available = q.available_metrics()
    assert available[metric] is False and available["si_sdr"] is True
    others = {"pesq": "stoi", "pystoi": "pesq_wb"}[module]
    assert available[others] is True


def test_every_metric_is_available_here() -> None:
    assert q.available_metrics() == {"si_sdr": True, "snr": True, "pesq_wb": True,
                                     "stoi": True, "estoi": True}
    assert q.rnnoise_available()


# -- RNNoise --------------------------------------------------------------------------------
def test_rnnoise_delay_is_measured_as_960_samples() -> None:
    assert q.rnnoise_delay() == q.RNNOISE_DELAY == 960


def test_rnnoise_output_is_aligned_with_its_input() -> None:
    x = voice(0, 2.0)
    y = q.rnnoise(x)
    assert y.shape == x.shape
    assert lag_corr(y, x, 0) > 0.9
    assert lag_corr(y, x, 0) > max(lag_corr(y, x, 1), lag_corr(y, x, -1))
    raw = q._rnnoise_raw(x.astype(np.float32))  # unaligned: 20 ms late
    assert lag_corr(raw, x, 0) < 0.5 and lag_corr(raw, x, 960) > 0.9


def test_rnnoise_denoises_white_noise() -> None:
    x = voice(1, 2.0)
    noisy = with_noise(x, 0)
    assert q.si_sdr(x, q.rnnoise(noisy)) - q.si_sdr(x, noisy) > 5.0


def test_rnnoise_float_path_matches_pyrnnoise_int16_frames() -> None:
    """The frames go to the C library in int16 units, as RNNoise.denoise_frame sends them
    (after rounding to int16): both agree up to that rounding."""
    from pyrnnoise import RNNoise

    x = voice(3, 1.0)
    ref = RNNoise(RATE)
    ref.channels = 1  # what denoise_chunk sets before calling denoise_frame
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    frames = [ref.denoise_frame(pcm[None, i:i + 480])[1][0]
              for i in range(0, pcm.size - 479, 480)]
    via_int16 = np.concatenate(frames).astype(np.float64) / 32767
    ours = q._rnnoise_raw(x.astype(np.float32))[:via_int16.size]
    assert np.corrcoef(ours, via_int16)[0, 1] > 0.999
    assert np.sqrt(np.mean((ours - via_int16) ** 2)) < 0.02 * np.sqrt(np.mean(ours**2))


def test_rnnoise_at_another_rate_is_resampled_and_aligned() -> None:
    x = q.resample(voice(0, 1.5), RATE, 16000)
    y = q.rnnoise(x, 16000)
    assert y.shape == x.shape and lag_corr(y, x, 0) > 0.9


def test_rnnoise_rtf_is_measured_on_10ms_chunks() -> None:
    r = q.rnnoise_rtf(seconds=0.3)
    assert r["chunk_samples"] == 480 and r["sample_rate"] == 48000 and r["chunks"] == 30
    assert 0 < r["rtf_p50"] <= r["rtf_p99"] and 0 < r["rtf"] < 1.0


def test_missing_pyrnnoise_is_reported(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyrnnoise.rnnoise", None)
    assert not q.rnnoise_available()
    with pytest.raises(q.MissingPackage, match=r"RNNoise needs the pyrnnoise package.*"
                                               r"pip install 'sigstream\[eval\]'"):
        q.rnnoise(voice(0, 0.1))


# -- the offline spectral baseline ----------------------------------------------------------
@pytest.mark.parametrize(("snr", "gain_db"), [(0.0, 8.0), (10.0, 4.0)])
def test_spectral_offline_improves_si_sdr_on_white_noise(snr: float, gain_db: float) -> None:
    x = voice(0, 2.0)
    noisy = with_noise(x, snr)
    y = q.spectral_offline(noisy, RATE)
    assert y.shape == x.shape
    assert q.si_sdr(x, y) - q.si_sdr(x, noisy) > gain_db


def test_spectral_offline_leaves_noise_free_speech_nearly_alone() -> None:
    x = voice(1, 2.0)
    assert q.si_sdr(x, q.spectral_offline(x + 1e-6 * np.random.default_rng(0)
                                          .standard_normal(x.size), RATE)) > 15.0
