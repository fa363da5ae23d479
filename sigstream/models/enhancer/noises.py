"""Noises and mixtures for the 48 kHz speech enhancer: synthetic noise, babble, real noise.

N: samples, B: batch.

* :func:`synth_noise`: white; pink and brown by spectral shaping (power 1/f and 1/f^2,
  flat below 20 Hz, no DC); hum (50 or 60 Hz mains, harmonics and a clipped-sine buzz,
  slow frequency drift); clicks (sparse impulses with short decays, damped ringing or
  noise tails, from a few a second to crackle); bursts (band-limited noise or tone bursts
  with a centre between 200 Hz and 16 kHz and on/off envelopes, including alarm-like
  beeping in groups). All unit RMS, float32.
* :func:`babble`: several other talkers at once; :func:`loop_to`: any recording at any
  length (random offset, tiled with equal-power cross-fades); :func:`mix`: clean plus
  noise at an SNR over the whole clip.
* :func:`test_mixtures`: the fixed evaluation set of a split (deterministic for a seed);
  :func:`training_batch`: fresh random mixtures for a training step (fast: synthetic noise
  comes from a bank generated once per process with a fixed seed, sliced at random
  offsets with a random sign).

Speech for one example is one talker group's utterances, drawn at random and joined with
random pauses; talker groups are drawn with probability proportional to the square root
of their duration (small groups are heard, large ones do not dominate). Babble uses other
talkers of the same split; "real" noise uses the split's recorded noise (sound effects as
events with random gaps, music as a continuous excerpt).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import numpy as np

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.enhancer.corpus import SAMPLE_RATE, Corpus

__all__ = ["NOISE_KINDS", "SYNTH_KINDS", "synth_noise", "babble", "loop_to", "mix", "Mixture",
           "test_mixtures", "training_batch"]

NOISE_KINDS = ("white", "pink", "brown", "babble", "hum", "clicks", "bursts", "real")
SYNTH_KINDS = ("white", "pink", "brown", "hum", "clicks", "bursts")

_BANK_SECONDS = 5.0
_BANK_VARIANTS = {"white": 2, "pink": 2, "brown": 2, "hum": 16, "clicks": 16, "bursts": 32}
_BANK_SEED = 20240601


# -- synthetic noise ----------------------------------------------------------------------

def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    rms = math.sqrt(float(np.mean(x * x))) if len(x) else 0.0
    return (x / rms if rms > 0 else x).astype(np.float32)


def _fftconv(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Linear convolution of ``x`` and ``k``, first ``len(x)`` samples (numpy FFT)."""
    m = 1 << max(1, int(len(x) + len(k) - 1).bit_length())
    return np.fft.irfft(np.fft.rfft(x, m) * np.fft.rfft(k, m), m)[:len(x)]


def _coloured(n: int, rng: np.random.Generator, rate: int, power: float) -> np.ndarray:
    """Gaussian noise with power spectral density ~ 1/f^power (flat below 20 Hz, no DC)."""
    m = max(n, 2)
    f = np.fft.rfftfreq(m, 1.0 / rate)
    spec = rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))
    shape = np.maximum(f, 20.0) ** (-power / 2)
    shape[0] = 0.0
    return np.fft.irfft(spec * shape, m)[:n]


def _hum(n: int, rng: np.random.Generator, rate: int) -> np.ndarray:
    mains = float(rng.choice([50.0, 60.0])) * (1 + rng.uniform(-0.004, 0.004))
    t = np.arange(n) / rate
    depth, fm = rng.uniform(0.0, 0.003), rng.uniform(0.05, 0.5)
    inst = mains * (1 + depth * np.sin(2 * np.pi * fm * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(inst) / rate
    harmonics = int(rng.integers(2, 12))
    tilt = rng.uniform(0.5, 2.0)
    x = np.zeros(n)
    for k in range(1, harmonics + 1):
        if k * mains * 1.01 >= rate / 2:
            break
        amp = k ** -tilt * (rng.uniform(0.3, 1.0) if k > 1 else 1.0)
        x += amp * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.5:  # buzz: a clipped sine at twice the mains frequency (rich harmonics)
        drive = rng.uniform(2.0, 20.0)
        x += rng.uniform(0.2, 1.0) * np.tanh(drive * np.sin(2 * phase + rng.uniform(0, 6.3)))
    return x


def _clicks(n: int, rng: np.random.Generator, rate: int) -> np.ndarray:
    per_s = math.exp(rng.uniform(math.log(0.5), math.log(200.0)))
    count = max(1, int(rng.poisson(per_s * n / rate)))
    x = np.zeros(n)
    amps = np.exp(rng.uniform(math.log(0.05), 0.0, count)) * rng.choice([-1.0, 1.0], count)
    np.add.at(x, rng.integers(0, n, count), amps)
    tau = math.exp(rng.uniform(math.log(5e-5), math.log(5e-3)))
    k = np.arange(max(2, int(6 * tau * rate)))
    decay = np.exp(-k / (tau * rate))
    style = rng.integers(3)
    if style == 0:    # plain impulse with a short decay
        kernel = decay
    elif style == 1:  # damped ringing (relays, keys, ticks)
        f0 = math.exp(rng.uniform(math.log(500.0), math.log(min(12000.0, rate * 0.4))))
        kernel = decay * np.sin(2 * np.pi * f0 * k / rate + rng.uniform(0, 2 * np.pi))
    else:             # noise tail (crackle, scratches)
        kernel = decay * rng.standard_normal(len(k))
    return _fftconv(x, kernel)


def _segments(n: int, rng: np.random.Generator, rate: int, beep: bool) -> np.ndarray:
    """A 0/1 gate of on/off segments: random bursts, or regular beeps in groups."""
    gate = np.zeros(n)
    pos = int(rng.uniform(0, 0.3) * rate)
    if beep:
        on, off = rng.uniform(0.04, 0.3), rng.uniform(0.04, 0.3)
        group, gap = int(rng.integers(1, 5)), rng.uniform(0.2, 1.5)
        while pos < n:
            for _ in range(group):
                gate[pos:pos + int(on * rate)] = 1.0
                pos += int((on + off) * rate)
            pos += int(gap * rate)
    else:
        while pos < n:
            length = int(rng.uniform(0.03, 0.8) * rate)
            gate[pos:pos + length] = 1.0
            pos += length + int(rng.uniform(0.03, 1.0) * rate)
    if not gate.any():
        gate[: max(1, n // 2)] = 1.0
    return gate


def _bursts(n: int, rng: np.random.Generator, rate: int) -> np.ndarray:
    hi = min(16000.0, rate * 0.45)
    mode = int(rng.integers(3))  # 0: noise bursts, 1: tone bursts, 2: alarm-like beeping
    if mode == 2:
        fc = math.exp(rng.uniform(math.log(1500.0), math.log(hi)))
    else:
        fc = math.exp(rng.uniform(math.log(200.0), math.log(hi)))
    t = np.arange(n) / rate
    if mode == 0:
        f = np.fft.rfftfreq(max(n, 2), 1.0 / rate)
        width = fc * rng.uniform(0.1, 1.0)
        band = np.exp(-0.5 * ((f - fc) / (width / 2)) ** 2)
        spec = (rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))) * band
        carrier = np.fft.irfft(spec, max(n, 2))[:n]
    else:
        second = fc * rng.uniform(0.7, 1.4) if rng.random() < 0.3 else fc  # two-tone alarms
        period = rng.uniform(0.2, 1.0)
        freq = np.where((t // period) % 2 == 0, fc, second)
        phase = 2 * np.pi * np.cumsum(freq) / rate
        carrier = np.sin(phase)
        if fc < 4000 and rng.random() < 0.5:  # square-ish buzzer, harmonics below Nyquist
            carrier = np.tanh(3.0 * carrier)
    gate = _segments(n, rng, rate, beep=mode == 2)
    ramp = max(2, int(rng.uniform(0.002, 0.005) * rate))
    win = np.hanning(ramp + 2)[1:-1]
    envelope = _fftconv(np.concatenate([gate, np.zeros(len(win) // 2)]), win / win.sum())
    envelope = envelope[len(win) // 2:]  # centred ("same") smoothing
    return carrier * np.clip(envelope, 0.0, 1.0)


def synth_noise(kind: str, n: int, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """``n`` samples of synthetic noise of ``kind`` (one of :data:`SYNTH_KINDS`), float32,
    unit RMS."""
    if kind not in SYNTH_KINDS:
        raise ConfigError(f"unknown synthetic noise {kind!r}: use one of {', '.join(SYNTH_KINDS)}")
    n = int(n)
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind in ("pink", "brown"):
        x = _coloured(n, rng, rate, 1.0 if kind == "pink" else 2.0)
    elif kind == "hum":
        x = _hum(n, rng, rate)
    elif kind == "clicks":
        x = _clicks(n, rng, rate)
    else:
        x = _bursts(n, rng, rate)
    return _unit(x)


# -- babble, looping, mixing --------------------------------------------------------------

def loop_to(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` at length ``n``: a random-offset slice if it is long enough, else tiled from a
    random offset with 10 ms equal-power cross-fades at the joins (float32)."""
    x = np.asarray(x, dtype=np.float32)
    n = int(n)
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    if len(x) == 0:
        return np.zeros(n, dtype=np.float32)
    if len(x) >= n:
        off = int(rng.integers(0, len(x) - n + 1))
        return x[off:off + n].copy()
    fade = min(SAMPLE_RATE // 100, len(x) // 4)
    period = len(x) - fade
    one = x[:period].copy()  # one period of the steady-state tiling
    if fade:
        a = (np.arange(fade) + 0.5) / fade * (np.pi / 2)
        one[:fade] = x[:fade] * np.sin(a) + x[period:] * np.cos(a)
    off = int(rng.integers(0, period))
    reps = -(-(n + off) // period)
    return np.tile(one, reps)[off:off + n]


def babble(talkers: Sequence[np.ndarray], n: int, rng: np.random.Generator,
           voices: int = 4) -> np.ndarray:
    """``voices`` talkers at once (each a talker's speech, looped to ``n`` at a random offset,
    at equal RMS); distinct talkers while there are enough. Unit RMS, float32."""
    if not len(talkers):
        raise InputError("babble needs at least one talker")
    voices = max(1, int(voices))
    idx = rng.permutation(len(talkers))[:voices]
    if len(idx) < voices:
        idx = np.concatenate([idx, rng.integers(0, len(talkers), voices - len(idx))])
    out = np.zeros(int(n), dtype=np.float32)
    for i in idx:
        out += _unit(loop_to(talkers[int(i)], n, rng))
    return _unit(out)


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean`` plus ``noise`` scaled so that 10 log10(P_clean / P_noise) = ``snr_db``, the
    powers taken over the whole clip; same length (a silent noise or clean adds nothing)."""
    clean = np.asarray(clean, dtype=np.float32)
    noise = np.asarray(noise, dtype=np.float32)
    if clean.shape != noise.shape:
        raise InputError(f"clean {clean.shape} and noise {noise.shape} differ in shape")
    pc = float(np.mean(clean.astype(np.float64) ** 2)) if clean.size else 0.0
    pn = float(np.mean(noise.astype(np.float64) ** 2)) if noise.size else 0.0
    if pn <= 0 or pc <= 0:
        return clean.copy()
    g = math.sqrt(pc / (pn * 10 ** (snr_db / 10)))
    return (clean + np.float32(g) * noise).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Mixture:
    """One evaluation mixture: ``noisy = clean + noise`` at ``snr_db``."""

    clean: np.ndarray
    noisy: np.ndarray
    snr_db: float
    kind: str          # the noise kind, one of NOISE_KINDS
    talker: str        # the speech's talker group
    noise_source: str  # "synthetic:pink", "babble:<groups>", or the real noise's source


# -- what a split offers ------------------------------------------------------------------

class _Split:
    """A split's speech by talker group and real noise by family and source."""

    def __init__(self, corpus: Corpus, split: str) -> None:
        by: dict[str, list[np.ndarray]] = {}
        for c in corpus.speech(split):
            by.setdefault(c.group, []).append(c.audio)
        self.groups = sorted(by)
        self.utts = [by[g] for g in self.groups]
        secs = np.array([sum(len(u) for u in us) / SAMPLE_RATE for us in self.utts])
        self.weights = np.sqrt(secs) / np.sqrt(secs).sum() if len(secs) else secs
        real: dict[str, dict[str, list[np.ndarray]]] = {}
        for c in corpus.noise(split):
            real.setdefault(c.group, {}).setdefault(c.source, []).append(c.audio)
        self.families = sorted(real)
        self.real = {f: (sorted(real[f]), [real[f][s] for s in sorted(real[f])])
                     for f in self.families}
        self.split = split


_SPLITS: WeakKeyDictionary = WeakKeyDictionary()
_BANK: dict[str, list[np.ndarray]] = {}


def _split_data(corpus: Corpus, split: str) -> _Split:
    per = _SPLITS.setdefault(corpus, {})
    if split not in per:
        per[split] = _Split(corpus, split)
    data = per[split]
    if not data.groups:
        raise InputError(f"the corpus at {corpus.root} has no {split} speech: rebuild it with "
                         "`sigstream data speech`")
    return data


def _bank(kind: str) -> list[np.ndarray]:
    """Synthetic noise of ``kind`` generated once per process from a fixed seed."""
    if kind not in _BANK:
        rng = np.random.default_rng([_BANK_SEED, SYNTH_KINDS.index(kind)])
        n = int(_BANK_SECONDS * SAMPLE_RATE)
        _BANK[kind] = [synth_noise(kind, n, rng) for _ in range(_BANK_VARIANTS[kind])]
    return _BANK[kind]


def _fill(utts: list[np.ndarray], out: np.ndarray, rng: np.random.Generator,
          pause: tuple[float, float], lead: float) -> None:
    """Fill ``out`` (zeros) with random utterances joined by random pauses."""
    n, pos = len(out), int(rng.uniform(0, lead) * SAMPLE_RATE)
    while pos < n:
        u = utts[int(rng.integers(len(utts)))]
        k = min(len(u), n - pos)
        out[pos:pos + k] = u[:k]
        pos += len(u) + int(rng.uniform(*pause) * SAMPLE_RATE)


def _speech(data: _Split, g: int, n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    _fill(data.utts[g], out, rng, (0.05, 0.5), 0.3)
    return out


def _babble(data: _Split, g: int, n: int, rng: np.random.Generator, voices: int
            ) -> tuple[np.ndarray, str]:
    others = [i for i in range(len(data.groups)) if i != g]
    if not others:
        raise InputError(f"babble needs a second talker group in the {data.split} split")
    pick = rng.permutation(others)[:voices]
    streams = []
    for i in pick:
        s = np.zeros(n, dtype=np.float32)
        _fill(data.utts[int(i)], s, rng, (0.02, 0.25), 0.0)
        streams.append(s)
    names = "+".join(sorted(data.groups[int(i)] for i in pick))
    return babble(streams, n, rng, voices=voices), f"babble:{names}"


def _real(data: _Split, n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Recorded noise: a music excerpt, or sound effects of one source with random gaps."""
    if not data.families:
        raise InputError(f"the corpus has no real noise in the {data.split} split")
    fam = data.families[int(rng.integers(len(data.families)))]
    names, clips = data.real[fam]
    s = int(rng.integers(len(names)))
    pool = clips[s]
    if fam != "sfx":
        return loop_to(pool[int(rng.integers(len(pool)))], n, rng), names[s]
    out = np.zeros(n, dtype=np.float32)
    pos = int(rng.uniform(0, 0.2) * SAMPLE_RATE)
    while pos < n:
        c = pool[int(rng.integers(len(pool)))]
        k = min(len(c), n - pos)
        out[pos:pos + k] += c[:k]
        pos += len(c) + int(rng.uniform(0.0, 0.5) * SAMPLE_RATE)
    return out, names[s]


def _check_kinds(kinds: Sequence[str]) -> None:
    if not len(kinds):
        raise ConfigError("no noise kinds given")
    for k in kinds:
        if k not in NOISE_KINDS:
            raise ConfigError(f"unknown noise kind {k!r}: use some of {', '.join(NOISE_KINDS)}")


# -- evaluation and training sets ---------------------------------------------------------

def test_mixtures(corpus: Corpus, *, snrs=(-5.0, 0.0, 5.0, 10.0, 15.0),
                  kinds=("white", "pink", "babble", "real"), per_condition: int = 8,
                  seconds: float = 4.0, seed: int = 0, split: str = "test") -> list[Mixture]:
    """``per_condition`` mixtures of ``seconds`` per noise kind and SNR from ``split``, in
    order kind, SNR, index; deterministic for a seed (each mixture has its own generator,
    seeded by seed, kind, SNR and index, so a condition does not depend on the others).

    Talkers cycle through the split's groups (from an offset per condition); babble is 4
    other talkers of the split; "real" is the split's recorded noise. Both signals are
    scaled together so that the noisy peak is at -6 dBFS."""
    _check_kinds(kinds)
    data = _split_data(corpus, split)
    n = int(round(seconds * SAMPLE_RATE))
    out = []
    for kind in kinds:
        for snr in snrs:
            key = zlib.crc32(f"{kind}|{float(snr):.3f}".encode())
            for i in range(int(per_condition)):
                rng = np.random.default_rng([int(seed), key, i])
                g = (key + i) % len(data.groups)
                clean = _speech(data, g, n, rng)
                if kind == "babble":
                    noise, source = _babble(data, g, n, rng, 4)
                elif kind == "real":
                    noise, source = _real(data, n, rng)
                else:
                    noise, source = synth_noise(kind, n, rng), f"synthetic:{kind}"
                noisy = mix(clean, noise, float(snr))
                peak = float(np.max(np.abs(noisy))) if n else 0.0
                gain = np.float32(10 ** (-6 / 20) / peak) if peak > 0 else np.float32(1)
                out.append(Mixture(clean * gain, noisy * gain, float(snr), kind,
                                   data.groups[g], source))
    return out


def training_batch(corpus: Corpus, rng: np.random.Generator, batch: int, seconds: float, *,
                   split: str = "train", snr_range=(-5.0, 20.0),
                   kinds: Sequence[str] = NOISE_KINDS) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean), float32 (batch, n), n = seconds x 48 kHz: random talkers and
    utterances, a random noise kind and SNR (uniform over ``snr_range``) per example, and a
    random level (noisy peak uniform in -30..0 dBFS) applied to both."""
    _check_kinds(kinds)
    data = _split_data(corpus, split)
    n, b = int(round(seconds * SAMPLE_RATE)), int(batch)
    clean = np.zeros((b, n), dtype=np.float32)
    noise = np.empty((b, n), dtype=np.float32)
    for i in range(b):
        g = int(rng.choice(len(data.groups), p=data.weights))
        _fill(data.utts[g], clean[i], rng, (0.05, 0.5), 0.3)
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "babble":
            noise[i] = _babble(data, g, n, rng, int(rng.integers(2, 7)))[0]
        elif kind == "real":
            noise[i] = _real(data, n, rng)[0]
        else:
            bank = _bank(kind)
            noise[i] = loop_to(bank[int(rng.integers(len(bank)))], n, rng)
    snr = rng.uniform(snr_range[0], snr_range[1], b)
    pc = np.einsum("bn,bn->b", clean, clean, dtype=np.float64) / max(n, 1)
    pn = np.einsum("bn,bn->b", noise, noise, dtype=np.float64) / max(n, 1)
    ok = (pc > 0) & (pn > 0)
    scale = np.zeros(b)
    scale[ok] = np.sqrt(pc[ok] / (pn[ok] * 10 ** (snr[ok] / 10)))
    scale *= rng.choice([-1.0, 1.0], b)
    noise *= scale[:, None].astype(np.float32)
    noise += clean  # now the noisy signal
    peak = np.max(np.abs(noise), axis=1) if n else np.zeros(b)
    level = 10 ** (rng.uniform(-30.0, 0.0, b) / 20)
    gain = np.where(peak > 0, level / np.maximum(peak, 1e-12), 1.0).astype(np.float32)[:, None]
    noise *= gain
    clean *= gain
    return noise, clean
