"""Audio-like synthetic data for the causal enhancer: clean sources, noises and degradations.

N: clips, T: samples, C: channels (1).

Clean sources (one per clip, drawn with ``AudioDataConfig.weights``):

* ``tone``: harmonic tones with vibrato (rate 3-7 Hz, depth up to 3 %) whose harmonic
  amplitudes follow a formant-like envelope (three resonances gliding slowly, spectral
  tilt), in notes with attacks, decays and pauses; f0 80-400 Hz (log-uniform).
* ``speech``: phrases spoken by ``espeak-ng`` (voices, pitch and speed varied) when the
  program is installed; otherwise these clips fall back to ``tone``. Training and
  held-out data use disjoint phrase lists.
* ``vibration``: the vibration-sensor task (two components f1 ~ U(5, 20) Hz and
  f2 ~ U(25, 40) Hz, amplitudes U(0.7, 1.0) and U(0.3, 0.6), components changing slowly),
  sampled at ``vibration_rate`` and fed to the enhancer sample for sample (the same
  figures as :func:`sigstream.models.augmentor.data.generate_stream`, drawn here so this
  data set, and the shipped weights trained on it, never change with that module).

Degradations of the low-quality input: an optional low-pass (first/second-order, cut-off
1.5-6 kHz), slow drift (sub-hertz sines plus a smoothed random walk), and additive noise
(white, pink, brown, mains hum at 50/60 Hz with harmonics, or a mixture of two or three
of them). The noise is scaled so that the input SNR against the clean clip — everything
that is not the clean signal counts as noise — is exactly the drawn SNR (uniform over
``snr_range``; held-out sets use fixed SNRs). Clips get a random level (clean RMS
-30..-10 dBFS). Everything is drawn from ``numpy.random.default_rng(seed)``: the same
seed gives the same data, bit for bit.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

__all__ = ["AudioDataConfig", "make_clips", "heldout_clips", "AudioStream", "NOISES",
           "SOURCES", "degrade_clips", "speech_bank", "espeak_available", "noise", "vibration_clip"]

SOURCES = ("tone", "speech", "vibration")
NOISES = ("white", "pink", "brown", "hum", "mixture")

_TRAIN_PHRASES = (
    "the quick brown fox jumps over the lazy dog",
    "signals travel through the wire at night",
    "please measure the vibration of the second motor",
    "a small model cleans the noisy stream in real time",
    "seven green bottles stand on the kitchen wall",
    "the weather station reports light rain and wind",
    "turn the valve slowly until the pressure drops",
    "every sample counts when the buffer runs low",
    "she sells sea shells by the sea shore",
    "the pilot checked the engine before take off",
    "numbers one two three four five six seven eight",
    "listen carefully to the sound of the river",
    "our train leaves the station at half past nine",
    "the microphone picks up the hum of the fridge",
    "bright lights flicker over the empty street",
    "good morning how are you doing today",
)
_HELDOUT_PHRASES = (
    "the orange cat sleeps on the warm window sill",
    "filters remove the noise but keep the voice",
    "bring me the blue folder from the top shelf",
    "the factory floor is loud during the day shift",
    "can you hear the difference between these two",
    "winter evenings are long and very quiet",
)
_VOICES = ("en", "en-us", "en+m3", "en+f2", "en-us+f4", "en+m7", "en+f5", "en-us+m2")


@dataclass(frozen=True)
class AudioDataConfig:
    """One clip set; each field's help is in its metadata."""

    sample_rate: float = field(default=16000.0, metadata={"help": "sample rate (Hz)"})
    seconds: float = field(default=1.0, metadata={
        "help": "length of each training clip (s)", "option": "--clip-seconds",
        "renamed": ("--seconds",)})
    snr_range: tuple[float, float] = field(default=(-5.0, 20.0), metadata={
        "help": "lowest and highest input SNR (dB), drawn uniformly"})
    weights: tuple[float, float, float] = field(default=(0.45, 0.45, 0.1), metadata={
        "help": "probabilities of tone, speech and vibration clips", "low": 0})
    lowpass: float = field(default=0.5, metadata={"help": "probability of a low-pass "
                                                          "degradation", "low": 0, "high": 1})
    drift: float = field(default=0.5, metadata={"help": "probability of a drift "
                                                        "degradation", "low": 0, "high": 1})
    speech: bool = field(default=True, metadata={"help": "espeak-ng speech clips (when "
                                                         "espeak-ng is installed)"})
    vibration_rate: float = field(default=100.0, metadata={
        "help": "sample rate of the vibration clips' source (Hz)", "above": 0})
    heldout: bool = field(default=False, metadata={"help": "held-out phrase list and "
                                                           "voices"})

    @property
    def samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))


# -- clean sources ----------------------------------------------------------------------
def _envelope(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Notes and pauses: (n,) amplitude envelope with attacks and exponential decays."""
    env = np.zeros(n)
    pos = int(rng.uniform(0, 0.15) * rate)
    while pos < n:
        length = int(rng.uniform(0.15, 0.7) * rate)
        seg = np.arange(min(length, n - pos)) / rate
        attack = rng.uniform(0.005, 0.05)
        decay = rng.uniform(0.2, 2.0)
        env[pos:pos + len(seg)] = np.minimum(seg / attack, 1.0) * np.exp(-seg / decay)
        pos += len(seg) + int(rng.uniform(0.0, 0.25) * rate)
    return env


def tone_clip(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """(n,) harmonic tone with vibrato, a gliding formant envelope and note envelopes."""
    t = np.arange(n) / rate
    f0 = np.exp(rng.uniform(np.log(80.0), np.log(400.0)))
    glide = 1 + rng.uniform(-0.15, 0.15) * t / max(t[-1], 1e-9) if n > 1 else np.ones(n)
    vib = 1 + rng.uniform(0, 0.03) * np.sin(2 * np.pi * rng.uniform(3, 7) * t
                                             + rng.uniform(0, 2 * np.pi))
    inst = f0 * glide * vib  # (n,) instantaneous f0
    phase0 = np.cumsum(inst) / rate * 2 * np.pi
    formants = np.sort(rng.uniform([250, 800, 1900], [900, 2400, 3500]))
    widths = rng.uniform(60, 250, size=3)
    drift = 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.2, 1.5) * t)[:, None]  # (n, 1)
    tilt = rng.uniform(0.3, 1.2)
    out = np.zeros(n)
    for k in range(1, min(40, int(0.45 * rate / f0)) + 1):
        fk = k * inst  # (n,)
        gain = np.sum(np.exp(-0.5 * ((fk[:, None] - formants * drift) / widths) ** 2), axis=1)
        gain = (gain + 0.05) * k ** (-tilt)
        out += gain * np.sin(k * phase0 + rng.uniform(0, 2 * np.pi))
    return out * _envelope(rng, n, rate)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


@functools.lru_cache(maxsize=4)
def speech_bank(rate: float, heldout: bool = False) -> tuple[np.ndarray, ...]:
    """Utterances from espeak-ng at ``rate`` (empty without espeak-ng); deterministic."""
    if not espeak_available():
        return ()
    import soundfile as sf

    phrases = _HELDOUT_PHRASES if heldout else _TRAIN_PHRASES
    voices = _VOICES[-3:] if heldout else _VOICES[:-3]
    rng = np.random.default_rng(1234 if heldout else 4321)
    out = []
    for i, text in enumerate(phrases):
        for j in range(2):
            voice = voices[(i + j) % len(voices)]
            pitch, speed = int(rng.integers(25, 80)), int(rng.integers(130, 190))
            try:
                wav = subprocess.run(
                    ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout",
                     text], capture_output=True, timeout=30, check=True).stdout
                y, fs = sf.read(io.BytesIO(wav), dtype="float64")
            except (OSError, subprocess.SubprocessError, RuntimeError):
                continue
            if y.ndim > 1:
                y = y.mean(axis=1)
            g = np.gcd(int(rate), int(fs))
            y = signal.resample_poly(y, int(rate) // g, int(fs) // g)
            out.append(y / (np.sqrt(np.mean(y**2)) + 1e-12))
    return tuple(out)


def speech_clip(rng: np.random.Generator, n: int, rate: float,
                bank: tuple[np.ndarray, ...]) -> np.ndarray:
    """(n,) a random stretch of utterances (with short pauses) from ``bank``."""
    parts, total = [], 0
    while total < n:
        u = bank[int(rng.integers(len(bank)))]
        start = int(rng.integers(0, max(1, len(u) // 2)))
        seg = u[start:] * rng.uniform(0.6, 1.4)
        gap = np.zeros(int(rng.uniform(0.0, 0.2) * rate))
        parts += [seg, gap]
        total += len(seg) + len(gap)
    return np.concatenate(parts)[:n]


def vibration_clip(rng: np.random.Generator, n: int, rate: float = 100.0) -> np.ndarray:
    """(n,) the vibration task's clean signal as a long stream: two components
    (f1 ~ U(5, 20), f2 ~ U(25, 40) Hz, amplitudes U(0.7, 1.0), U(0.3, 0.6)) at ``rate`` Hz
    whose frequencies and amplitudes wander slowly."""
    t = np.arange(n) / rate
    out = np.zeros(n)
    for lo, hi, alo, ahi in ((5, 20, 0.7, 1.0), (25, 40, 0.3, 0.6)):
        f = rng.uniform(lo, hi) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.01, 0.1) * t))
        f = np.minimum(f, 0.45 * rate)
        a = rng.uniform(alo, ahi) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.01, 0.1) * t))
        out += a * np.sin(2 * np.pi * np.cumsum(f) / rate + rng.uniform(0, 2 * np.pi))
    return out


# -- noises and degradations --------------------------------------------------------------
def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """(n,) Gaussian noise with power spectrum ~ 1 / f^exponent, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / f ** (exponent / 2), n)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def noise(kind: str, rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """(n,) unit-RMS noise of ``kind`` (one of :data:`NOISES`)."""
    if kind == "white":
        y = rng.standard_normal(n)
    elif kind == "pink":
        y = _colored(rng, n, 1.0)
    elif kind == "brown":
        y = _colored(rng, n, 2.0)
    elif kind == "hum":
        t = np.arange(n) / rate
        mains = 50.0 if rng.random() < 0.5 else 60.0
        mains *= 1 + rng.uniform(-0.01, 0.01)
        y = np.zeros(n)
        for k in range(1, 11):
            if k * mains < 0.45 * rate:
                y += rng.uniform(0, 1) / k**0.7 * np.sin(2 * np.pi * k * mains * t
                                                         + rng.uniform(0, 2 * np.pi))
        y += 0.1 * rng.standard_normal(n)  # hum never comes alone
    elif kind == "mixture":
        kinds = rng.choice(NOISES[:4], size=int(rng.integers(2, 4)), replace=False)
        y = np.asarray(sum(rng.uniform(0.3, 1.0) * noise(str(k), rng, n, rate) for k in kinds))
    else:
        raise ValueError(f"unknown noise {kind!r}; choose one of {NOISES}")
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def _drift(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    t = np.arange(n) / rate
    y = np.zeros(n)
    for _ in range(2):
        y += rng.uniform(0, 1) * np.sin(2 * np.pi * rng.uniform(0.05, 1.0) * t
                                        + rng.uniform(0, 2 * np.pi))
    walk = np.cumsum(rng.standard_normal(n)) / np.sqrt(rate)
    y += signal.lfilter([0.002], [1, -0.998], walk)  # smoothed random walk
    return y


def degrade(rng: np.random.Generator, clean: np.ndarray, rate: float, snr_db: float,
            cfg: AudioDataConfig, noise_kind: str | None = None) -> np.ndarray:
    """(n,) low-quality version of ``clean`` with input SNR exactly ``snr_db``."""
    n = len(clean)
    p_clean = float(np.mean(clean**2)) + 1e-20
    target = p_clean / 10 ** (snr_db / 10)  # allowed error power
    err0 = np.zeros(n)
    if rng.random() < cfg.lowpass:
        cut = rng.uniform(1500.0, min(6000.0, 0.45 * rate))
        b, a = signal.butter(int(rng.integers(1, 3)), cut, fs=rate)
        err0 += signal.lfilter(b, a, clean) - clean
    if rng.random() < cfg.drift:
        d = _drift(rng, n, rate)
        err0 += d * rng.uniform(0.05, 0.5) * np.sqrt(p_clean / (np.mean(d**2) + 1e-20))
    p0 = float(np.mean(err0**2))
    if p0 > 0.5 * target:  # keep at least half of the error budget for the noise
        err0 *= np.sqrt(0.5 * target / p0)
    kind = noise_kind or str(rng.choice(NOISES))
    nz = noise(kind, rng, n, rate)
    # g such that mean((err0 + g nz)^2) == target
    a2, b1, c0 = np.mean(nz**2), 2 * np.mean(err0 * nz), np.mean(err0**2) - target
    g = (-b1 + np.sqrt(max(b1 * b1 - 4 * a2 * c0, 0.0))) / (2 * a2)
    return clean + err0 + g * nz


# -- clip sets ----------------------------------------------------------------------------
def _clean(rng: np.random.Generator, cfg: AudioDataConfig, n: int) -> tuple[np.ndarray, str]:
    bank = speech_bank(cfg.sample_rate, cfg.heldout) if cfg.speech else ()
    w = np.asarray(cfg.weights, dtype=np.float64)
    kind = SOURCES[int(rng.choice(3, p=w / w.sum()))]
    if kind == "speech" and not bank:
        kind = "tone"
    if kind == "tone":
        x = tone_clip(rng, n, cfg.sample_rate)
    elif kind == "speech":
        x = speech_clip(rng, n, cfg.sample_rate, bank)
    else:
        x = vibration_clip(rng, n, cfg.vibration_rate)
    if np.mean(x**2) < 1e-12:  # a clip of pure silence has no SNR: add a quiet tone
        x = x + tone_clip(rng, n, cfg.sample_rate) + 1e-3
    level = 10 ** (rng.uniform(-30, -10) / 20)
    return x * level / np.sqrt(np.mean(x**2)), kind


def make_clips(cfg: AudioDataConfig, count: int, seed: int,
               snrs: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """``count`` clips: (noisy (N, T, 1), clean (N, T, 1)) float32 and per-clip info
    (source, noise, snr_db). ``snrs``: cycle through these SNRs instead of drawing them."""
    rng = np.random.default_rng(seed)
    n = cfg.samples
    noisy = np.empty((count, n, 1), dtype=np.float32)
    clean = np.empty((count, n, 1), dtype=np.float32)
    info = []
    for i in range(count):
        x, kind = _clean(rng, cfg, n)
        s = float(snrs[i % len(snrs)]) if snrs else float(rng.uniform(*cfg.snr_range))
        nk = str(rng.choice(NOISES))
        clean[i, :, 0] = x
        noisy[i, :, 0] = degrade(rng, x, cfg.sample_rate, s, cfg, nk)
        info.append({"source": kind, "noise": nk, "snr_db": s})
    return noisy, clean, info


def degrade_clips(cfg: AudioDataConfig, clean: np.ndarray, seed: int,
                  snrs: tuple[float, ...] | None = None) -> np.ndarray:
    """Fresh degradations of ``clean`` (N, T, 1) clips: the noisy (N, T, 1) float32 inputs
    (new noise, SNR, low-pass and drift per clip; training redraws them every epoch)."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(clean, dtype=np.float32)
    for i in range(clean.shape[0]):
        s = float(snrs[i % len(snrs)]) if snrs else float(rng.uniform(*cfg.snr_range))
        x = clean[i, :, 0].astype(np.float64)
        out[i, :, 0] = degrade(rng, x, cfg.sample_rate, s, cfg, str(rng.choice(NOISES)))
    return out


def heldout_clips(seed: int, snrs: tuple[float, ...] = (0.0, 5.0, 10.0), per_snr: int = 16,
                  seconds: float = 2.0, sample_rate: float = 16000.0,
                  speech: bool = True) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Held-out evaluation clips: held-out phrases and voices, ``per_snr`` clips at each
    input SNR in ``snrs`` (tones and speech only; vibration is evaluated by its own task)."""
    cfg = AudioDataConfig(sample_rate=sample_rate, seconds=seconds, weights=(0.5, 0.5, 0.0),
                          speech=speech, heldout=True)
    return make_clips(cfg, per_snr * len(snrs), seed=10_000 + seed, snrs=snrs)


class AudioStream:
    """A continuous noisy stream for demos: ``read(n) -> (noisy, clean)`` each (n, 1)
    float32, from clips of held-out data at ``snr_db`` joined end to end."""

    def __init__(self, sample_rate: float = 16000.0, seed: int = 0, snr_db: float = 5.0,
                 clip_seconds: float = 2.0, speech: bool = True) -> None:
        self.sample_rate = sample_rate
        self.channels = 1
        self._cfg = AudioDataConfig(sample_rate=sample_rate, seconds=clip_seconds,
                                    weights=(0.5, 0.5, 0.0), speech=speech, heldout=True,
                                    drift=0.0)
        self._seed, self._snr, self._k = seed, snr_db, 0
        self._buf = (np.zeros((0, 1), np.float32), np.zeros((0, 1), np.float32))

    def read(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        noisy, clean = self._buf
        while len(noisy) < n:
            x, c, _ = make_clips(self._cfg, 1, seed=20_000 + 1000 * self._seed + self._k,
                                 snrs=(self._snr,))
            self._k += 1
            noisy, clean = np.concatenate([noisy, x[0]]), np.concatenate([clean, c[0]])
        self._buf = (noisy[n:], clean[n:])
        return noisy[:n], clean[:n]
