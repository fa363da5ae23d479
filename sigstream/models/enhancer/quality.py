"""Speech-quality metrics and the reference enhancers the 48 kHz speech enhancer is judged by.

T: samples. Every function takes and returns 1-D float signals ``(T,)``; ``ref`` is the
clean signal, ``est`` an estimate of it, both at ``rate`` Hz and already time-aligned.

Metrics (higher is better):

* :func:`si_sdr`: scale-invariant signal-to-distortion ratio (dB; Le Roux et al. 2019):
  both signals made zero-mean, ``est`` projected on ``ref``; the projection is the target,
  the rest the distortion. A gain error costs nothing, a delay costs a lot.
* :func:`snr_db`: plain SNR of ``est`` against ``ref`` (dB).
* :func:`pesq_wb`: wide-band PESQ (ITU-T P.862.2, MOS-LQO 1.04..4.64) on both signals
  resampled to 16 kHz with ``scipy.signal.resample_poly``; the ``pesq`` package.
* :func:`stoi`: STOI (0..1), or ESTOI with ``extended=True``; the ``pystoi`` package
  (which resamples to 10 kHz itself).

:func:`available_metrics` says which of them can run; a metric whose package is missing
raises :class:`MissingPackage`, a :class:`~sigstream.core.errors.ConfigError` whose one
line names ``pip install 'sigstream[eval]'``.

Reference enhancers:

* :func:`rnnoise`: RNNoise (Valin 2018; the library ``pyrnnoise`` ships) at 48 kHz on
  480-sample (10 ms) frames. The library takes samples in int16 units (the reference
  demo feeds 16-bit PCM values as floats), so the signal is scaled by 32768 on the way
  in and back on the way out. The frames go straight to the C function
  ``rnnoise_process_frame`` through pyrnnoise's ctypes binding (what
  ``pyrnnoise.RNNoise.denoise_frame`` calls), in float32: ``denoise_frame`` would round
  the frame to int16 and cast the output back with ``astype(int16)``, which wraps
  around instead of clipping; the test suite checks that both paths agree.
  **Delay: 960 samples (20 ms)**, two 480-sample frames, of the RNNoise build that
  pyrnnoise 0.4.5 ships. Measured (:func:`rnnoise_delay`, pyrnnoise 0.4.5)
  as the peak of the GCC-PHAT cross-correlation of output and input on a speech-like
  probe. On clean harmonic voices the output correlates best with the input advanced by
  960 samples (0.99-0.999 on most), ahead of 959 and 961 on every one tried.
  :func:`rnnoise` returns its output advanced by that delay, aligned with the input
  sample for sample (the input is padded with zeros so the output has its full length).
* :func:`rnnoise_rtf`: RNNoise's real-time factor on 10 ms chunks, one thread.
* :func:`spectral_offline`: a non-causal classical reference: an STFT log-spectral
  amplitude (MMSE-LSA, Ephraim & Malah 1985) gain with the noise power spectrum
  estimated over the whole file (a low percentile of each bin's power over time,
  smoothed over 125 ms, corrected for its bias) and the a-priori SNR from
  decision-directed smoothing run forwards and backwards in time (geometric mean of the
  two), so it sees the future.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import time
import warnings
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import ndimage, signal, special

from sigstream.core.errors import ConfigError

__all__ = ["MissingPackage", "INSTALL", "si_sdr", "snr_db", "pesq_wb", "stoi",
           "available_metrics", "rnnoise_available", "rnnoise", "rnnoise_delay",
           "rnnoise_rtf", "rtf_summary", "RNNoiseStream", "RNNOISE_RATE", "RNNOISE_FRAME",
           "RNNOISE_DELAY", "spectral_offline", "resample", "METRIC_PACKAGES"]

INSTALL = "pip install 'sigstream[eval]'"
RNNOISE_RATE = 48000
RNNOISE_FRAME = 480
RNNOISE_DELAY = 960  # samples at 48 kHz (20 ms), measured: see the module docstring
_SCALE = 32768.0  # RNNoise works in int16 units
_EPS = 1e-20

# metric -> (its package, what it is called in messages)
METRIC_PACKAGES = {"pesq_wb": ("pesq", "PESQ-WB"), "stoi": ("pystoi", "STOI"),
                   "estoi": ("pystoi", "ESTOI")}


class MissingPackage(ConfigError):
    """A metric or reference method whose package is not installed (one line, with the
    command that installs it); ``package`` and ``what`` name them."""

    def __init__(self, what: str, package: str) -> None:
        super().__init__(f"{what} needs the {package} package, which is not installed: "
                         f"{INSTALL}")
        self.what, self.package = what, package


def _require(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except (ImportError, OSError):  # OSError: a binding whose shared library cannot load
        raise MissingPackage(what, module.partition(".")[0]) from None


def _pair(ref: Any, est: Any) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    e = np.asarray(est, dtype=np.float64).reshape(-1)
    if r.shape != e.shape:
        raise ValueError(f"reference and estimate differ in length: {r.size} vs {e.size}")
    return r, e


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # einsum, not np.dot: a multi-threaded BLAS dot can take milliseconds to wake its
    # threads on a busy machine, and the evaluation calls this thousands of times
    return float(np.einsum("i,i->", a, b))


def si_sdr(ref: Any, est: Any) -> float:
    """Scale-invariant SDR of ``est`` against ``ref`` in dB (both made zero-mean)."""
    r, e = _pair(ref, est)
    r, e = r - r.mean(), e - e.mean()
    alpha = _dot(e, r) / max(_dot(r, r), _EPS)
    target = alpha * r
    err = e - target
    return float(10 * np.log10(max(_dot(target, target), _EPS) / max(_dot(err, err), _EPS)))


def snr_db(ref: Any, est: Any) -> float:
    """SNR of ``est`` against ``ref`` in dB (no scaling, no mean removal)."""
    r, e = _pair(ref, est)
    err = e - r
    return float(10 * np.log10(max(_dot(r, r), _EPS) / max(_dot(err, err), _EPS)))


def resample(x: np.ndarray, rate: float, to: float, axis: int = -1) -> np.ndarray:
    """``x`` from ``rate`` to ``to`` Hz with ``scipy.signal.resample_poly`` (zero phase: no
    delay); the identity when the rates agree."""
    if float(rate) == float(to):
        return np.asarray(x)
    ratio = Fraction(float(to) / float(rate)).limit_denominator(1000)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=axis)


def pesq_wb(ref: Any, est: Any, rate: float) -> float:
    """Wide-band PESQ (MOS-LQO) of ``est`` against ``ref``, both resampled to 16 kHz.
    NaN when PESQ cannot score the pair (no utterance in the reference, too short)."""
    pesq = _require("pesq", "PESQ-WB")
    r, e = _pair(ref, est)
    r16, e16 = resample(r, rate, 16000), resample(e, rate, 16000)
    try:
        return float(pesq.pesq(16000, r16, e16, "wb"))
    except pesq.PesqError:
        return float("nan")


def stoi(ref: Any, est: Any, rate: float, extended: bool = False) -> float:
    """STOI (or ESTOI with ``extended``) of ``est`` against ``ref`` (0..1). NaN when the
    reference has too little speech for it (pystoi warns and returns 1e-5 then)."""
    pystoi = _require("pystoi", "ESTOI" if extended else "STOI")
    r, e = _pair(ref, est)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(pystoi.stoi(r, e, int(round(rate)), extended=extended))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return float("nan")
    return value


def available_metrics() -> dict[str, bool]:
    """Metric name -> whether it can run here (its package imports)."""
    out = {"si_sdr": True, "snr": True}
    for name, (module, what) in METRIC_PACKAGES.items():
        try:
            _require(module, what)
            out[name] = True
        except MissingPackage:
            out[name] = False
    return out


# -- RNNoise --------------------------------------------------------------------------------
def _rnnoise_binding() -> Any:
    """pyrnnoise's ctypes binding of the RNNoise C library (``create``, ``destroy``,
    ``lib.rnnoise_process_frame``)."""
    return _require("pyrnnoise.rnnoise", "RNNoise")


def rnnoise_available() -> bool:
    try:
        _rnnoise_binding()
    except MissingPackage:
        return False
    return True


class RNNoiseStream:
    """One RNNoise state: :meth:`process` takes 480-sample frames at 48 kHz (float, full
    scale 1.0) and returns the denoised frames, delayed by :data:`RNNOISE_DELAY`."""

    def __init__(self) -> None:
        self._rn = _rnnoise_binding()
        if int(self._rn.FRAME_SIZE) != RNNOISE_FRAME:
            raise ConfigError(f"this RNNoise build uses {self._rn.FRAME_SIZE}-sample frames, "
                              f"not {RNNOISE_FRAME}")
        self._state = self._rn.create()
        self._buf = np.zeros(RNNOISE_FRAME, np.float32)
        self._ptr = self._buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

    def close(self) -> None:
        if getattr(self, "_state", None) is not None:
            self._rn.destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()

    def process(self, frame: np.ndarray) -> np.ndarray:
        """One frame (480,) -> the denoised frame (480,) float32."""
        np.multiply(frame, _SCALE, out=self._buf, casting="unsafe")
        self._rn.lib.rnnoise_process_frame(self._state, self._ptr, self._ptr)
        return self._buf / np.float32(_SCALE)


def _rnnoise_raw(x48: np.ndarray) -> np.ndarray:
    """RNNoise over ``x48`` (T,) at 48 kHz, zero-padded to whole frames; the raw (delayed)
    output, trimmed to T."""
    n = x48.size
    padded = np.zeros(-(-n // RNNOISE_FRAME) * RNNOISE_FRAME, np.float32)
    padded[:n] = x48
    out = np.empty_like(padded)
    stream = RNNoiseStream()
    try:
        for i in range(0, padded.size, RNNOISE_FRAME):
            out[i:i + RNNOISE_FRAME] = stream.process(padded[i:i + RNNOISE_FRAME])
    finally:
        stream.close()
    return out[:n]


def _probe(rate: int = RNNOISE_RATE, seconds: float = 1.5) -> np.ndarray:
    """A deterministic speech-like signal: a harmonic voice (f0 gliding 110-190 Hz, 1/k
    harmonics to 4 kHz) in syllables of 4 per second, at about -25 dBFS RMS."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase + 0.3 * k) / k for k in range(1, 27))
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    x = voice * syllables
    return (0.056 * x / np.sqrt(np.mean(x**2))).astype(np.float32)


@functools.lru_cache(maxsize=1)
def rnnoise_delay() -> int:
    """RNNoise's delay in samples at 48 kHz, measured: the peak lag (0..100 ms) of the
    phase-transform cross-correlation (GCC-PHAT, 200 Hz-6 kHz) of its output with its
    input, on :func:`_probe` plus white noise at -40 dBFS. PHAT weighs every frequency
    alike: the plain cross-correlation peak of a bass-heavy signal lands one sample early
    (959) because RNNoise's input high-pass advances the phase of the lowest
    frequencies."""
    x = _probe()
    x = x + np.random.default_rng(0).normal(0, 0.01, x.size).astype(np.float32)
    y = _rnnoise_raw(x)
    n = 2 * x.size
    cross = np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n))
    cross /= np.maximum(np.abs(cross), 1e-20)
    f = np.fft.rfftfreq(n, 1 / RNNOISE_RATE)
    cross[(f < 200) | (f > 6000)] = 0
    corr = np.fft.irfft(cross, n)[:RNNOISE_RATE // 10 + 1]
    return int(np.argmax(corr))


def rnnoise(x: Any, rate: float = RNNOISE_RATE) -> np.ndarray:
    """RNNoise over ``x`` (T,), aligned with it: output sample t estimates clean sample t
    (RNNoise's delay, :func:`rnnoise_delay`, removed). Other rates than 48 kHz are
    resampled to 48 kHz and back (zero phase)."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    x48 = resample(a, rate, RNNOISE_RATE).astype(np.float32)
    delay = rnnoise_delay()
    y = _rnnoise_raw(np.concatenate([x48, np.zeros(delay, np.float32)]))[delay:]
    y = resample(y.astype(np.float64), RNNOISE_RATE, rate)
    out = np.zeros(a.size)
    out[:min(a.size, y.size)] = y[:a.size]
    return out


def rnnoise_rtf(seconds: float = 2.0, warmup: int = 20, seed: int = 0) -> dict:
    """RNNoise's real-time factor on 10 ms chunks (480 samples at 48 kHz), one thread:
    wall time per chunk through the Python binding (copies included) over the chunk's
    duration. ``rtf`` is total time over audio time; p50/p99 per chunk too."""
    stream = RNNoiseStream()
    n = max(int(seconds * RNNOISE_RATE) // RNNOISE_FRAME, 1)
    x = (0.05 * np.random.default_rng(seed).standard_normal((n + warmup, RNNOISE_FRAME))
         ).astype(np.float32)
    times = np.empty(n)
    try:
        for i in range(warmup):
            stream.process(x[i])
        clock = time.perf_counter
        for i in range(n):
            t0 = clock()
            stream.process(x[warmup + i])
            times[i] = clock() - t0
    finally:
        stream.close()
    return rtf_summary(times, RNNOISE_FRAME, RNNOISE_RATE)


def rtf_summary(times: np.ndarray, chunk: int, rate: float) -> dict:
    """Real-time factors of per-chunk wall times ``times`` (s) for chunks of ``chunk``
    samples at ``rate``: mean (total time over audio time), p50 and p99."""
    dur = chunk / rate
    p50, p99 = np.percentile(times, [50, 99])
    return {"rtf": float(times.sum() / (times.size * dur)), "rtf_p50": float(p50 / dur),
            "rtf_p99": float(p99 / dur), "p50_chunk_ms": float(1e3 * p50),
            "p99_chunk_ms": float(1e3 * p99), "chunk_samples": int(chunk),
            "sample_rate": float(rate), "chunks": int(times.size), "threads": 1}


# -- the non-causal spectral reference ------------------------------------------------------
def _lsa_gain(xi: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """The MMSE log-spectral amplitude gain (Ephraim & Malah 1985)."""
    v = np.maximum(xi * gamma / (1 + xi), 1e-10)
    return xi / (1 + xi) * np.exp(0.5 * special.exp1(v))


def _decision_directed(gamma: np.ndarray, alpha: float, xi_min: float,
                       gain_floor: float) -> np.ndarray:
    """A-priori SNR (F, T) by decision-directed smoothing over the frames of ``gamma``
    (a-posteriori SNR, (F, T)) in time order."""
    xi = np.empty_like(gamma)
    prev = np.ones(gamma.shape[0])  # |G X|^2 / noise of the previous frame
    for t in range(gamma.shape[1]):
        g = gamma[:, t]
        xi_t = np.maximum(alpha * prev + (1 - alpha) * np.maximum(g - 1, 0), xi_min)
        xi[:, t] = xi_t
        gain = np.clip(_lsa_gain(xi_t, g), gain_floor, 1.0)
        prev = gain**2 * g
    return xi


def _noise_floor(power: np.ndarray, percentile: float, frames: int) -> np.ndarray:
    """Per bin (F,): the ``percentile``-th percentile over time of ``power`` (F, T) averaged
    over ``frames`` consecutive frames."""
    if frames > 1:
        power = ndimage.uniform_filter1d(power, min(frames, power.shape[1]), axis=1,
                                         mode="nearest")
    return np.percentile(power, percentile, axis=1)


def spectral_offline(x: Any, rate: float, *, frame_s: float = 0.032, percentile: float = 10.0,
                     smooth_s: float = 0.125, alpha: float = 0.98,
                     floor_db: float = -20.0) -> np.ndarray:
    """Non-causal STFT enhancement of ``x`` (T,); returns (T,) float64.

    Frames of ``frame_s`` (Hann, 75 % overlap). Noise power per bin: the bin's power
    averaged over ``smooth_s``, its ``percentile``-th percentile over the whole file,
    divided by the same statistic's ratio to the true power on white noise of the same
    length (the estimator's bias for noise alone, measured with a fixed seed). A-priori
    SNR by decision-directed smoothing (``alpha``) forwards and backwards in time
    (geometric mean), MMSE-LSA gain floored at ``floor_db``.
    """
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    n = a.size
    nper = max(2 * int(round(frame_s * rate / 2)), 16)
    if n < nper:
        return a.copy()
    hop = nper // 4
    stft = functools.partial(signal.stft, fs=rate, window="hann", nperseg=nper,
                             noverlap=nper - hop)
    spec = stft(a)[2]
    power = np.abs(spec) ** 2  # (F, T)
    frames = max(int(round(smooth_s * rate / hop)), 1)
    white = np.abs(stft(np.random.default_rng(0).standard_normal(n))[2]) ** 2
    inner = slice(1, -1)  # DC and Nyquist are real: another distribution
    bias = float(np.median(_noise_floor(white, percentile, frames)[inner]
                           / white.mean(axis=1)[inner]))
    noise = _noise_floor(power, percentile, frames) / bias
    noise = np.maximum(noise, max(float(noise.max()), _EPS) * 1e-10)[:, None]
    gamma = np.minimum(power / noise, 1e6)
    xi_min, floor = 10 ** (floor_db / 10), 10 ** (floor_db / 20)
    forward = _decision_directed(gamma, alpha, xi_min, floor)
    backward = _decision_directed(gamma[:, ::-1], alpha, xi_min, floor)[:, ::-1]
    xi = np.sqrt(forward * backward)
    gain = np.clip(_lsa_gain(xi, gamma), floor, 1.0)
    _, y = signal.istft(gain * spec, fs=rate, window="hann", nperseg=nper,
                        noverlap=nper - hop)
    out = np.zeros(n)
    out[:min(n, y.size)] = y[:n]
    return out
