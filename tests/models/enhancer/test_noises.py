"""Synthetic noises, babble, looping and mixing, and the mixtures drawn from a corpus.

The corpus here is written by hand (a manifest and a few WAVs): every talker is a harmonic
tone with its own fundamental and every real noise a tone with its own frequency, so a
test can tell from the audio alone which talker or noise a mixture used.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import welch

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.enhancer import noises as nz
from sigstream.models.enhancer.corpus import SAMPLE_RATE, load_corpus

SR = SAMPLE_RATE
TALKERS = {  # group -> (split, f0)
    "t:a": ("train", 110.0), "t:b": ("train", 140.0), "t:c": ("train", 170.0),
    "t:d": ("train", 200.0),
    "v:e": ("val", 260.0), "v:f": ("val", 290.0),
    "x:g": ("test", 350.0), "x:h": ("test", 380.0), "x:i": ("test", 410.0),
}
NOISES = {  # source -> (split, family, frequency)
    "trainpkg:sfx": ("train", "sfx", 3000.0), "trainpkg:music": ("train", "music", 3500.0),
    "testpkg:sfx": ("test", "sfx", 7000.0), "testpkg:music": ("test", "music", 7500.0),
    "valpkg:music": ("val", "music", 5000.0),
}


def _utterance(f0: float, seconds: float, k: int) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f0 * h * t + k) / h for h in (1, 2, 3))
    return 0.5 * np.hanning(len(t)) ** 0.3 * x / 1.8


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    clips = []
    for group, (split, f0) in TALKERS.items():
        for k in range(3):
            rel = f"speech/{split}/{group.replace(':', '_')}/{k}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            x = _utterance(f0, 0.4 + 0.1 * k, k)
            sf.write(root / rel, x, SR, subtype="PCM_16")
            clips.append({"path": rel, "kind": "speech", "split": split, "source": group,
                          "group": group, "seconds": len(x) / SR})
    for source, (split, family, f) in NOISES.items():
        for k in range(2):
            rel = f"noise/{split}/{source.replace(':', '_')}/{k}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            secs = 0.2 if family == "sfx" else 3.0
            x = 0.5 * np.sin(2 * np.pi * f * np.arange(int(secs * SR)) / SR)
            sf.write(root / rel, x, SR, subtype="PCM_16")
            clips.append({"path": rel, "kind": "noise", "split": split, "source": source,
                          "group": family, "seconds": secs})
    (root / "manifest.json").write_text(json.dumps({"version": 1, "sample_rate": SR,
                                                    "clips": clips}))
    return load_corpus(root)


@pytest.fixture
def small_bank(monkeypatch):
    """A tiny synthetic-noise bank, so the tests do not pay for the real one."""
    monkeypatch.setattr(nz, "_BANK_SECONDS", 2.5)
    monkeypatch.setattr(nz, "_BANK_VARIANTS", dict.fromkeys(nz.SYNTH_KINDS, 2))
    monkeypatch.setattr(nz, "_BANK", {})


def _psd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return welch(x.astype(np.float64), SR, nperseg=4096)


def _band_db(f, p, lo, hi) -> float:
    return 10 * np.log10(p[(f >= lo) & (f < hi)].mean())


def _peak_hz(x: np.ndarray, lo: float = 50.0, hi: float = 20000.0) -> float:
    f, p = _psd(x)
    sel = (f >= lo) & (f <= hi)
    return float(f[sel][np.argmax(p[sel])])


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    c, n = clean.astype(np.float64), noisy.astype(np.float64) - clean
    return 10 * np.log10(np.mean(c * c) / np.mean(n * n))


# -- synthetic noise ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", nz.SYNTH_KINDS)
def test_synth_noise_unit_rms_float32_and_seeded(kind):
    n = 48000
    a = nz.synth_noise(kind, n, np.random.default_rng(1))
    assert a.shape == (n,) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert np.sqrt(np.mean(a.astype(np.float64) ** 2)) == pytest.approx(1.0, abs=1e-3)
    assert np.array_equal(a, nz.synth_noise(kind, n, np.random.default_rng(1)))
    assert not np.allclose(a, nz.synth_noise(kind, n, np.random.default_rng(2)))
    assert nz.synth_noise(kind, 0, np.random.default_rng(1)).shape == (0,)


@pytest.mark.parametrize("kind", ["babble", "real", "grey"])
def test_synth_noise_rejects_other_kinds(kind):
    with pytest.raises(ConfigError, match="unknown synthetic noise"):
        nz.synth_noise(kind, 100, np.random.default_rng(0))


@pytest.mark.parametrize("kind, slope_db", [("white", 0.0), ("pink", 12.0), ("brown", 24.0)])
def test_coloured_noise_slopes(kind, slope_db):
    """150 Hz against 2.4 kHz is four octaves: 1/f is 12 dB down, 1/f^2 24 dB."""
    x = nz.synth_noise(kind, 4 * SR, np.random.default_rng(0))
    f, p = _psd(x)
    drop = _band_db(f, p, 100, 200) - _band_db(f, p, 1600, 3200)
    assert drop == pytest.approx(slope_db, abs=1.5)


def test_hum_is_mains_periodic_with_both_frequencies():
    mains = set()
    for s in range(12):
        x = nz.synth_noise("hum", SR, np.random.default_rng(s)).astype(np.float64)
        corr = {f: np.dot(x[:-SR // f], x[SR // f:]) / np.dot(x[:-SR // f], x[:-SR // f])
                for f in (50, 60)}
        best = max(corr, key=corr.get)
        assert corr[best] > 0.95, corr
        mains.add(best)
    assert mains == {50, 60}


def test_clicks_are_sparse():
    from scipy.stats import kurtosis

    k = [kurtosis(nz.synth_noise("clicks", 2 * SR, np.random.default_rng(s))) for s in range(12)]
    assert min(k) > 6 and np.median(k) > 20, k  # Gaussian noise: 0


def test_bursts_switch_on_and_off_across_the_band():
    centroids = []
    for s in range(30):
        x = nz.synth_noise("bursts", 4 * SR, np.random.default_rng(s)).astype(np.float64)
        e = np.sqrt(np.mean(x.reshape(-1, 480) ** 2, axis=1))
        assert np.mean(e < 0.1 * e.max()) > 0.1  # off periods
        assert np.mean(e > 0.3 * e.max()) > 0.03  # on periods
        f, p = _psd(x)
        centroids.append(float((f * p).sum() / p.sum()))
    assert min(centroids) < 1000 and max(centroids) > 8000, sorted(centroids)


# -- loop_to, babble, mix -----------------------------------------------------------------

def test_loop_to_slices_a_long_recording():
    x = np.arange(1000, dtype=np.float32)
    y = nz.loop_to(x, 300, np.random.default_rng(0))
    assert y.shape == (300,) and np.array_equal(y, x[int(y[0]):int(y[0]) + 300])
    offsets = {int(nz.loop_to(x, 300, np.random.default_rng(s))[0]) for s in range(10)}
    assert len(offsets) > 5


def test_loop_to_tiles_a_short_recording_with_crossfades():
    x = np.sin(2 * np.pi * 440 * np.arange(2000) / SR).astype(np.float32) + 0.1
    y = nz.loop_to(x, 10000, np.random.default_rng(3))
    assert y.shape == (10000,) and y.dtype == np.float32
    period = 2000 - min(480, 2000 // 4)
    assert np.allclose(y[period:], y[:-period], atol=1e-6)   # tiled
    assert np.max(np.abs(y)) <= np.max(np.abs(x)) * np.sqrt(2) + 1e-6  # equal-power joins
    assert np.max(np.abs(np.diff(y))) < 3 * np.max(np.abs(np.diff(x)))  # no jumps
    assert np.array_equal(nz.loop_to(np.zeros(0), 5, np.random.default_rng(0)), np.zeros(5))


def test_babble_mixes_distinct_talkers_at_unit_rms():
    t = np.arange(SR) / SR
    tones = [np.sin(2 * np.pi * f * t) for f in (300.0, 1100.0, 2300.0, 4100.0)]
    y = nz.babble(tones, SR // 2, np.random.default_rng(0), voices=2)
    assert y.shape == (SR // 2,) and y.dtype == np.float32
    assert np.sqrt(np.mean(y.astype(np.float64) ** 2)) == pytest.approx(1.0, abs=1e-3)
    f, p = _psd(y)
    present = [fr for fr in (300.0, 1100.0, 2300.0, 4100.0)
               if p[np.argmin(np.abs(f - fr))] > 1e-3 * p.max()]
    assert len(present) == 2
    with pytest.raises(InputError):
        nz.babble([], 10, np.random.default_rng(0))


@pytest.mark.parametrize("snr", [-5.0, 0.0, 12.5])
def test_mix_sets_the_snr_over_the_whole_clip(snr):
    rng = np.random.default_rng(0)
    clean = (rng.standard_normal(4000) * 0.1).astype(np.float32)
    noise = (rng.standard_normal(4000) * 3).astype(np.float32)
    c0, n0 = clean.copy(), noise.copy()
    noisy = nz.mix(clean, noise, snr)
    assert noisy.shape == clean.shape and noisy.dtype == np.float32
    assert _snr_db(clean, noisy) == pytest.approx(snr, abs=0.01)
    assert np.array_equal(clean, c0) and np.array_equal(noise, n0)
    assert np.array_equal(nz.mix(clean, np.zeros(4000), snr), clean)
    with pytest.raises(InputError):
        nz.mix(clean, noise[:10], snr)


# -- mixtures from a corpus ---------------------------------------------------------------

def _f0(x: np.ndarray) -> float:
    return _peak_hz(x, 80, 600)


def test_test_mixtures_conditions_and_splits(corpus):
    snrs, kinds = (-5.0, 5.0), ("white", "pink", "babble", "real")
    mixes = nz.test_mixtures(corpus, snrs=snrs, kinds=kinds, per_condition=3, seconds=1.0)
    assert len(mixes) == 4 * 2 * 3
    assert [(m.kind, m.snr_db) for m in mixes] == [(k, s) for k in kinds for s in snrs
                                                   for _ in range(3)]
    test_talkers = {g for g, (split, _) in TALKERS.items() if split == "test"}
    for m in mixes:
        assert m.clean.shape == m.noisy.shape == (SR,) and m.noisy.dtype == np.float32
        assert _snr_db(m.clean, m.noisy) == pytest.approx(m.snr_db, abs=0.05)
        assert np.max(np.abs(m.noisy)) == pytest.approx(10 ** (-6 / 20), rel=1e-4)
        assert m.talker in test_talkers
        assert _f0(m.clean) == pytest.approx(TALKERS[m.talker][1], abs=12)
        if m.kind == "babble":
            voices = m.noise_source.removeprefix("babble:").split("+")
            assert m.talker not in voices and set(voices) <= test_talkers
        if m.kind == "real":
            assert m.noise_source in ("testpkg:sfx", "testpkg:music")
            noise = m.noisy - m.clean
            assert _peak_hz(noise) == pytest.approx(NOISES[m.noise_source][2], abs=20)
    assert {m.talker for m in mixes} == test_talkers


def test_test_mixtures_are_deterministic_per_condition(corpus):
    kw = dict(snrs=(0.0, 10.0), per_condition=2, seconds=0.5)
    a = nz.test_mixtures(corpus, kinds=("pink", "babble"), seed=3, **kw)
    b = nz.test_mixtures(corpus, kinds=("pink", "babble"), seed=3, **kw)
    only = nz.test_mixtures(corpus, kinds=("babble",), seed=3, **kw)
    other = nz.test_mixtures(corpus, kinds=("pink", "babble"), seed=4, **kw)
    assert all(np.array_equal(x.noisy, y.noisy) and x.talker == y.talker
               for x, y in zip(a, b, strict=True))
    assert all(np.array_equal(x.noisy, y.noisy) for x, y in zip(a[4:], only, strict=True))
    assert not all(np.array_equal(x.noisy, y.noisy) for x, y in zip(a, other, strict=True))


def test_test_mixtures_on_val_use_val_only(corpus):
    mixes = nz.test_mixtures(corpus, split="val", kinds=("babble", "real"), snrs=(0.0,),
                             per_condition=4, seconds=0.5)
    assert {m.talker for m in mixes} == {"v:e", "v:f"}
    assert {m.noise_source for m in mixes if m.kind == "real"} == {"valpkg:music"}
    for m in mixes:
        if m.kind == "babble":
            assert m.noise_source == "babble:" + ({"v:e", "v:f"} - {m.talker}).pop()


def test_unknown_kinds_and_splits_are_config_errors(corpus):
    with pytest.raises(ConfigError, match="unknown noise kind"):
        nz.test_mixtures(corpus, kinds=("whale",))
    with pytest.raises(ConfigError, match="unknown split"):
        nz.test_mixtures(corpus, split="holdout")


def test_training_batch_shapes_levels_snrs_and_train_talkers_only(corpus, small_bank):
    rng = np.random.default_rng(0)
    noisy, clean = nz.training_batch(corpus, rng, 24, 0.5, snr_range=(0.0, 10.0))
    assert noisy.shape == clean.shape == (24, SR // 2)
    assert noisy.dtype == clean.dtype == np.float32 and np.all(np.isfinite(noisy))
    peaks = np.max(np.abs(noisy), axis=1)
    assert np.all(peaks <= 1.0 + 1e-6) and np.all(peaks >= 10 ** (-30 / 20) - 1e-6)
    train_f0 = [f0 for split, f0 in TALKERS.values() if split == "train"]
    for x, y in zip(noisy, clean, strict=True):
        assert -0.05 <= _snr_db(y, x) <= 10.05
        assert min(abs(_f0(y) - f) for f in train_f0) < 12
    again = nz.training_batch(corpus, np.random.default_rng(0), 24, 0.5, snr_range=(0.0, 10.0))
    assert np.array_equal(again[0], noisy) and np.array_equal(again[1], clean)


def test_training_batch_real_noise_comes_from_the_split(corpus):
    train = {NOISES[s][2] for s in ("trainpkg:sfx", "trainpkg:music")}
    noisy, clean = nz.training_batch(corpus, np.random.default_rng(1), 8, 0.5, kinds=("real",))
    for x, y in zip(noisy, clean, strict=True):
        assert min(abs(_peak_hz(x - y) - f) for f in train) < 20
    with pytest.raises(InputError, match="no test speech"):
        empty = load_corpus(corpus.root)
        empty.manifest = {**empty.manifest, "clips": []}
        nz.training_batch(empty, np.random.default_rng(0), 2, 0.1, split="test")


def test_training_batch_is_fast(corpus, small_bank):
    rng = np.random.default_rng(0)
    nz.training_batch(corpus, rng, 16, 2.0)  # loads the clips and the bank
    times = []
    for _ in range(8):
        t = time.perf_counter()
        nz.training_batch(corpus, rng, 16, 2.0)
        times.append(time.perf_counter() - t)
    # the target is < 20 ms on an idle core; leave room for a busy test machine
    assert np.median(times) < 0.05, times


def test_bank_is_fixed_whatever_the_rng(monkeypatch, small_bank):
    a = [x.copy() for x in nz._bank("hum")]
    monkeypatch.setattr(nz, "_BANK", {})
    np.random.default_rng(99).standard_normal(10)
    assert all(np.array_equal(x, y) for x, y in zip(a, nz._bank("hum"), strict=True))


def test_corpus_clips_are_read_only(corpus):
    clip = corpus.speech("train")[0]
    assert clip.audio.dtype == np.float32 and not clip.audio.flags.writeable
    assert Path(corpus.root).is_dir()
