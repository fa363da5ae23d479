"""``sigstream demo``: a built-in model cleans a noisy stream, live.

N: frames, C: channels.

What the model gets depends on its sample rate:

* 48 kHz, one channel (the speech enhancer, ``enhancer``): real speech in real noise,
  the two clips shipped in ``sigstream/models/enhancer/demo/`` (a Galician talker and
  recorded sliding noise, both in the test split of the enhancer's corpus; sources and
  licence in its ``CREDITS.md``, made by ``scripts/make_demo_clips.py``), looped to
  ``--seconds`` and mixed at 5 dB SNR.
  The SNR and SI-SDR it reports compare output sample ``t`` with clean sample
  ``t - latency`` (the model's stated latency); blocks default to 5 ms.
* other audio rates (>= 8 kHz, one channel, e.g. the 16 kHz ``audio-enhancer``):
  held-out synthetic speech (espeak-ng, when installed) and harmonic tones in mixed
  noise at 5 dB SNR; the SNR out is taken after the best delay up to 64 samples
  (50 ms at most).
* anything else (``--model butterworth`` ...): the 1 kHz noisy sines, likewise.

The live line shows the pipeline stats, the SNR of the last second in and out, and the
latency budget (model lookahead + block + compute). ``--out`` writes the arrays
(``.npz``: input, output, clean reference, sample rate, latency) or a before/after
figure (``.png`` / ``.pdf``).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from sigstream.cli.args import block_size, positive_float
from sigstream.core.errors import ConfigError, InputError
from sigstream.core.files import write_atomic


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="enhance a noisy stream in real time",
                       epilog="example: sigstream demo --seconds 5",
                       description="The main job on an embedded default: a built-in model "
                                   "cleans a noisy stream in real time, with live stats. A "
                                   "48 kHz model (the speech enhancer) gets the shipped real "
                                   "speech in real noise at 5 dB SNR and is scored against "
                                   "the clean speech delayed by its latency; a 16 kHz one "
                                   "synthetic speech and tones in noise; any other the 1 kHz "
                                   "noisy sines.")
    d.add_argument("--seconds", type=positive_float, default=10.0,
                   help="length of the stream (default: 10)")
    d.add_argument("--no-realtime", action="store_true", help="run as fast as possible")
    d.add_argument("--quiet", action="store_true",
                   help="no start line, live status or timing lines: only the result (the "
                        "SNR line) and what was written")
    d.add_argument("--out", metavar="PATH", help="PATH.npz: save input, output, clean "
                                                 "reference and sample rate; PATH.png or "
                                                 ".pdf: a before/after figure")
    d.add_argument("--block", type=block_size,
                   help="frames per chunk (default: 5 ms for the 48 kHz speech stream, "
                        "240 frames, one STFT hop of the speech enhancer; 32 otherwise)")
    d.add_argument("--model", default="enhancer",
                   help="model name or checkpoint (default: enhancer, the shipped speech "
                        "enhancer)")
    d.set_defaults(func=run)


_OUT_KINDS = (".npz", ".png", ".pdf")
DEMO_SNR_DB = 5.0
CLIP_RATE = 48000.0  # the shipped speech and noise clips
SPEECH_BLOCK_S = 0.005


class _Prebuilt:
    """A generator over precomputed (noisy, clean) arrays (no work inside the paced loop)."""

    def __init__(self, noisy: np.ndarray, clean: np.ndarray, sample_rate: float) -> None:
        self._noisy, self._clean, self._pos = noisy, clean, 0
        self.sample_rate, self.channels = sample_rate, noisy.shape[1]

    def read(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        a, self._pos = self._pos, self._pos + n
        return self._noisy[a:self._pos], self._clean[a:self._pos]


def demo_clips() -> tuple[str, str]:
    """Paths of the shipped clean speech and noise clips (48 kHz mono WAV)."""
    import sigstream.models.enhancer as family

    folder = os.path.join(os.path.dirname(os.path.abspath(family.__file__)), "demo")
    return os.path.join(folder, "speech.wav"), os.path.join(folder, "noise.wav")


def speech_mixture(total: int, snr_db: float = DEMO_SNR_DB) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean), each (total, 1) float32 at 48 kHz: the shipped speech clip looped to
    ``total`` frames, plus the shipped noise clip looped likewise and scaled so that the
    whole stream is at ``snr_db``."""
    import soundfile as sf

    speech_path, noise_path = demo_clips()
    try:
        speech, r1 = sf.read(speech_path, dtype="float32")
        noise, r2 = sf.read(noise_path, dtype="float32")
    except (OSError, RuntimeError) as exc:  # soundfile raises LibsndfileError (RuntimeError)
        raise InputError(f"cannot read the demo clips in {os.path.dirname(speech_path)}: "
                         f"{exc}; reinstall sigstream") from None
    if r1 != CLIP_RATE or r2 != CLIP_RATE or speech.ndim != 1 or noise.ndim != 1:
        raise InputError(f"the demo clips in {os.path.dirname(speech_path)} are not 48 kHz "
                         "mono; reinstall sigstream")
    clean = np.resize(speech, total)
    noise = np.resize(noise, total).astype(np.float64)
    gain = np.sqrt(np.mean(clean.astype(np.float64) ** 2)
                   / (np.mean(noise**2) * 10 ** (snr_db / 10))) if total else 0.0
    noisy = (clean + gain * noise).astype(np.float32)
    return noisy[:, None], clean[:, None]


def si_sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB of ``estimate`` against ``reference`` (same shape, any
    rank, flattened): 10 log10(|a s|^2 / |a s - y|^2) with a = <y, s> / <s, s>."""
    s = np.asarray(reference, dtype=np.float64).ravel()
    y = np.asarray(estimate, dtype=np.float64).ravel()
    ss = float(s @ s)
    if ss == 0 or s.size == 0:
        return float("nan")
    target = (float(y @ s) / ss) * s
    err = float(np.sum((y - target) ** 2))
    return float("inf") if err == 0 else 10 * np.log10(float(target @ target) / err)


def _stream(model, seconds: float):
    """(generator, total frames, description, lag) for the model: the shipped speech in
    noise for 48 kHz single-channel models such as the speech enhancer (``lag``: the
    model's latency, the fixed delay at which output is compared with the clean speech),
    audio-like data for other audio rates and the 1 kHz noisy sines otherwise (``lag``
    None: the best delay is searched)."""
    from sigstream.models.synth import GENERATORS

    rate = float(model.sample_rate or 1000.0)
    total = int(round(seconds * rate))
    mono = (model.in_channels or 1) == 1
    if rate == CLIP_RATE and mono:
        noisy, clean = speech_mixture(total)
        return (_Prebuilt(noisy, clean, rate), total,
                f"real speech (a held-out Galician talker) in held-out real noise at "
                f"{DEMO_SNR_DB:g} dB SNR, {rate / 1000:g} kHz", int(model.latency))
    if rate >= 8000 and mono:
        from sigstream.models.enhancer.data import AudioStream, espeak_available

        speech = espeak_available()
        noisy, clean = AudioStream(sample_rate=rate, seed=0, snr_db=DEMO_SNR_DB,
                                   speech=speech).read(total)
        what = ("held-out speech and harmonic tones" if speech else
                "harmonic tones (install espeak-ng for speech)")
        return (_Prebuilt(noisy, clean, rate), total,
                f"{what} in mixed noise at {DEMO_SNR_DB:g} dB SNR, {rate / 1000:g} kHz", None)
    gen = GENERATORS["sines"].build(sample_rate=rate, channels=model.in_channels or 1, seed=0)
    return gen, total, GENERATORS["sines"].description, None


def _scores(ref: np.ndarray, noisy: np.ndarray, out: np.ndarray, lag: int | None,
            max_lag: int) -> tuple[float, float, int]:
    """(SNR in, SNR out, lag used): the output against the clean reference delayed by
    ``lag`` frames, or by the best delay up to ``max_lag`` when ``lag`` is None."""
    from sigstream.models.metrics import aligned_snr_db, snr_db

    s_in = snr_db(ref, noisy)
    if lag is None:
        s_out, lag = aligned_snr_db(ref, out, max_lag)
        return s_in, s_out, lag
    n = min(len(ref), len(out))
    return s_in, (snr_db(ref[: n - lag], out[lag:n]) if n > lag else float("nan")), lag


def run(args: argparse.Namespace) -> int:
    from sigstream.cli.output import status_printer
    from sigstream.models.metrics import aligned_snr_db, snr_db
    from sigstream.models.registry import build_model
    from sigstream.stream.io.sinks import ArraySink
    from sigstream.stream.io.sources import GeneratorSource
    from sigstream.stream.pipeline import Pipeline, PipelineConfig
    from sigstream.stream.stage import ModelStage

    ext = os.path.splitext(args.out or "")[1].lower()
    if args.out and ext not in _OUT_KINDS:
        raise ConfigError(f"--out must name a .npz (arrays), .png or .pdf (figure) file, "
                          f"got {args.out!r}")
    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise InputError(f"cannot write {args.out!r}: the folder does not exist")
    import torch

    torch.set_num_threads(1)  # one stream, small chunks: threads only add hand-off latency
    model = build_model(args.model)
    rate = float(model.sample_rate or 1000.0)
    gen, total, description, fixed_lag = _stream(model, args.seconds)
    source = GeneratorSource(gen, total_frames=total, keep_reference=True)
    sink = ArraySink()
    block = args.block or (int(round(SPEECH_BLOCK_S * rate)) if fixed_lag is not None else 32)
    if block % model.hop:
        block = model.hop * max(1, round(block / model.hop))
    pipe = Pipeline(source, [ModelStage(model)], sink,
                    PipelineConfig(block=block, realtime=not args.no_realtime))
    max_lag = min(int(0.05 * rate), 64)
    lookahead_ms = model.latency / rate * 1e3
    block_ms = block / rate * 1e3
    say = _printer(not args.quiet)
    say(f"demo: {args.model} on {description}; block {block} ({block_ms:.1f} ms), model "
        f"lookahead {lookahead_ms:.1f} ms, "
        f"{'real time' if not args.no_realtime else 'as fast as possible'}")
    show_stats, done = status_printer(not args.quiet)
    live = sys.stderr.isatty() and not args.quiet
    window = int(rate)  # live SNR over the last second

    def on_status(stats) -> None:
        if not live:
            return
        n = len(sink.data)
        if n <= 2 * max_lag:
            show_stats(stats)
            return
        a = max(0, n - window)
        ref, noisy, out = source.reference()[:n], source.consumed()[:n], sink.data[:n]
        s_in = snr_db(ref[a:], noisy[a:])
        if fixed_lag is None:
            s_out, _ = aligned_snr_db(ref[a:], out[a:], max_lag)
        else:  # the output's last second against the clean one `latency` frames before
            a = max(a, fixed_lag)
            s_out = snr_db(ref[a - fixed_lag:n - fixed_lag], out[a:]) if n > a else float("nan")
        c = stats.compute.percentiles_us()
        print(f"\r{stats.samples_in / rate:6.1f}s  SNR (last 1 s) {s_in:5.1f} dB -> "
              f"{s_out:5.1f} dB  latency {lookahead_ms:.1f} + {block_ms:.1f} + "
              f"{c['p99_us'] / 1e3:.2f} ms (lookahead + block + compute p99)  "
              f"overruns {stats.overruns}  ", end="", file=sys.stderr, flush=True)

    stats = pipe.run(on_status=on_status)
    done()
    out = sink.data
    ref = source.reference()[: len(out)]
    noisy = source.consumed()[: len(out)]
    s_in, s_out, lag = _scores(ref, noisy, out, fixed_lag, max_lag)
    summ = stats.summary()
    c = summ["compute"]
    say(f"samples {summ['samples_in']} in / {summ['samples_out']} out, chunks {summ['chunks']}")
    if fixed_lag is None:
        print(f"SNR in {s_in:.1f} dB -> out {s_out:.1f} dB ({s_out - s_in:+.1f} dB, "
              f"after {lag / rate * 1e3:.1f} ms group delay)", file=sys.stderr)
    else:  # output t against clean t - latency, the model's stated alignment
        n = len(out)
        sdr_in = si_sdr_db(ref, noisy)
        sdr_out = si_sdr_db(ref[: n - lag], out[lag:]) if n > lag else float("nan")
        print(f"SNR in {s_in:.1f} dB -> out {s_out:.1f} dB ({s_out - s_in:+.1f} dB); SI-SDR in "
              f"{sdr_in:.1f} dB -> out {sdr_out:.1f} dB ({sdr_out - sdr_in:+.1f} dB); output "
              f"against the clean speech {lag} samples ({lag / rate * 1e3:.2f} ms, the model's "
              "latency) before", file=sys.stderr)
    say(f"latency: lookahead {lookahead_ms:.1f} ms + block {block_ms:.1f} ms + compute "
        f"p99 {c['p99_us'] / 1e3:.2f} ms = {lookahead_ms + block_ms + c['p99_us'] / 1e3:.2f} ms")
    say(f"compute per chunk p50 {c['p50_us']:.0f} us, p99 {c['p99_us']:.0f} us; "
        f"real-time factor {summ['real_time_factor']:.3f}; "
        f"overruns {summ['overruns']}, underruns {summ['underruns']}")
    if args.out and ext == ".npz":
        _save_npz(args.out, input=noisy, output=out, clean=ref, sample_rate=np.float64(rate),
                  latency=np.int64(model.latency))
        print(f"wrote {args.out}", file=sys.stderr)
    elif args.out:
        _save_figure(args.out, noisy[:, 0], out[:, 0], ref[:, 0], rate, s_in, s_out, args.model,
                     lag)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _printer(enabled: bool):  # noqa: ANN202
    """A print to stderr, or a no-op for --quiet."""
    def say(line: str) -> None:
        if enabled:
            print(line, file=sys.stderr)
    return say


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    try:
        write_atomic(path, lambda fh: np.savez(fh, **arrays))
    except OSError as exc:
        raise InputError(f"cannot write {path!r}: {exc.strerror}") from None


def _save_figure(path: str, noisy: np.ndarray, out: np.ndarray, clean: np.ndarray,
                 rate: float, s_in: float, s_out: float, name: str, lag: int = 0) -> None:
    """Before/after: waveforms of a stretch of the stream and spectrograms (N,) -> file. The
    output is drawn against the clean signal ``lag`` samples earlier (the delay the SNR
    was taken at), so a model with latency is compared with what it estimates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import signal

    t = np.arange(len(clean)) / rate
    if rate >= 8000:  # audio: the loudest 50 ms of the clean signal
        frame = int(0.05 * rate)
        start = 0
        if len(clean) > 2 * frame:
            power = np.convolve(clean**2, np.ones(frame), "valid")[::frame // 2]
            start = int(np.argmax(power)) * (frame // 2)
        span = slice(start, start + frame)
    else:  # slow signals: two seconds from the middle
        mid = len(clean) // 2
        span = slice(max(0, mid - int(rate)), mid + int(rate))
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), layout="constrained")
    delayed = np.concatenate([np.zeros(lag), clean])[:len(clean)] if lag else clean
    for ax, sig, ref, title in (
            (axes[0, 0], noisy, clean, f"before: input, SNR {s_in:.1f} dB"),
            (axes[0, 1], out, delayed, f"after: {name}, SNR {s_out:.1f} dB")):
        ax.plot(t[span], sig[span], lw=0.8, color="C0" if sig is noisy else "C3",
                label="input" if sig is noisy else "output")
        label = "clean" if ref is clean else f"clean, {1e3 * lag / rate:.2f} ms earlier"
        ax.plot(t[span], ref[span], lw=0.8, color="k", alpha=0.7, label=label)
        ax.set(xlabel="time (s)", ylabel="amplitude (full scale 1)")
        ax.set_title(title, pad=16)
        # between the title and the panel: the legend covers no samples
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8,
                  frameon=False, borderaxespad=0.1)
    nper = 256 if rate >= 8000 else 128
    for ax, sig, title in ((axes[1, 0], noisy, "input spectrogram"),
                           (axes[1, 1], out, "output spectrogram")):
        if len(sig) >= nper:
            f, tt, s = signal.spectrogram(sig, fs=rate, nperseg=nper, noverlap=nper * 3 // 4)
            db = 10 * np.log10(s + 1e-12)
            mesh = ax.pcolormesh(tt, f / 1e3 if rate >= 8000 else f, db, shading="auto",
                                 vmin=float(db.max()) - 90, vmax=float(db.max()))
            fig.colorbar(mesh, ax=ax, label="power (dB)")
        ax.set(title=title, xlabel="time (s)", ylabel="frequency (kHz)" if rate >= 8000
               else "frequency (Hz)")
    kind = os.path.splitext(path)[1].lstrip(".").lower()
    try:
        write_atomic(path, lambda fh: fig.savefig(fh, dpi=100, format=kind))
    except OSError as exc:
        raise InputError(f"cannot write {path!r}: {exc.strerror}") from None
    finally:
        plt.close(fig)
