"""``sigstream demo``: a built-in model cleans a synthetic noisy stream, live.

N: frames, C: channels.

By default the shipped causal enhancer (zero lookahead, 16 kHz) cleans held-out
speech (espeak-ng, when installed) and harmonic tones in mixed noise at 5 dB SNR; any
other model (``--model butterworth`` ...) gets the 1 kHz noisy sines. The live line
shows the pipeline stats, the SNR of the last second in and out, and the latency
budget (model lookahead + block + compute). ``--out`` writes the arrays (``.npz``) or
a before/after figure (``.png`` / ``.pdf``).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from sigstream.cli.args import positive_float, positive_int
from sigstream.core.errors import ConfigError, InputError
from sigstream.core.files import write_atomic


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="enhance a synthetic noisy stream in real time",
                       description="The main job on an embedded default: a built-in model "
                                   "cleans a synthetic noisy stream in real time, with live "
                                   "stats.")
    d.add_argument("--seconds", type=positive_float, default=10.0,
                   help="length of the stream (default 10)")
    d.add_argument("--no-realtime", action="store_true", help="run as fast as possible")
    d.add_argument("--out", metavar="PATH", help="PATH.npz: save input, output, clean "
                                                 "reference and sample rate; PATH.png or "
                                                 ".pdf: a before/after figure")
    d.add_argument("--block", type=positive_int, default=32, help="frames per chunk (32)")
    d.add_argument("--model", default="enhancer",
                   help="model name or checkpoint (default: the shipped causal enhancer)")
    d.set_defaults(func=run)


_OUT_KINDS = (".npz", ".png", ".pdf")
DEMO_SNR_DB = 5.0


class _Prebuilt:
    """A generator over precomputed (noisy, clean) arrays (no work inside the paced loop)."""

    def __init__(self, noisy: np.ndarray, clean: np.ndarray, sample_rate: float) -> None:
        self._noisy, self._clean, self._pos = noisy, clean, 0
        self.sample_rate, self.channels = sample_rate, noisy.shape[1]

    def read(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        a, self._pos = self._pos, self._pos + n
        return self._noisy[a:self._pos], self._clean[a:self._pos]


def _stream(model, seconds: float):
    """(generator, description) for the model: audio-like data for 16 kHz single-channel
    models such as the enhancer, the 1 kHz noisy sines otherwise."""
    from sigstream.models.synth import GENERATORS

    rate = float(model.sample_rate or 1000.0)
    total = int(round(seconds * rate))
    if rate >= 8000 and (model.in_channels or 1) == 1:
        from sigstream.models.enhancer.data import AudioStream, espeak_available

        speech = espeak_available()
        noisy, clean = AudioStream(sample_rate=rate, seed=0, snr_db=DEMO_SNR_DB,
                                   speech=speech).read(total)
        what = ("held-out speech and harmonic tones" if speech else
                "harmonic tones (install espeak-ng for speech)")
        return (_Prebuilt(noisy, clean, rate), total,
                f"{what} in mixed noise at {DEMO_SNR_DB:g} dB SNR, {rate / 1000:g} kHz")
    gen = GENERATORS["sines"].build(sample_rate=rate, channels=model.in_channels or 1, seed=0)
    return gen, total, GENERATORS["sines"].description


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
    gen, total, description = _stream(model, args.seconds)
    source = GeneratorSource(gen, total_frames=total, keep_reference=True)
    sink = ArraySink()
    block = args.block
    if block % model.hop:
        block = model.hop * max(1, round(block / model.hop))
    pipe = Pipeline(source, [ModelStage(model)], sink,
                    PipelineConfig(block=block, realtime=not args.no_realtime))
    max_lag = min(int(0.05 * rate), 64)
    lookahead_ms = model.latency / rate * 1e3
    block_ms = block / rate * 1e3
    print(f"demo: {args.model} on {description}; block {block} ({block_ms:.1f} ms), model "
          f"lookahead {lookahead_ms:.1f} ms, "
          f"{'real time' if not args.no_realtime else 'as fast as possible'}", file=sys.stderr)
    show_stats, done = status_printer(True)
    live = sys.stderr.isatty()
    window = int(rate)  # live SNR over the last second

    def on_status(stats) -> None:
        if not live:
            return
        n = len(sink.data)
        if n <= 2 * max_lag:
            show_stats(stats)
            return
        a = max(0, n - window)
        ref, noisy = source.reference()[a:n], source.consumed()[a:n]
        s_in = snr_db(ref, noisy)
        s_out, _ = aligned_snr_db(ref, sink.data[a:n], max_lag)
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
    s_in = snr_db(ref, noisy)
    s_out, lag = aligned_snr_db(ref, out, max_lag)
    summ = stats.summary()
    c = summ["compute"]
    print(f"samples {summ['samples_in']} in / {summ['samples_out']} out, chunks {summ['chunks']}",
          file=sys.stderr)
    print(f"SNR in {s_in:.1f} dB -> out {s_out:.1f} dB ({s_out - s_in:+.1f} dB, "
          f"after {lag / rate * 1e3:.1f} ms group delay)", file=sys.stderr)
    print(f"latency: lookahead {lookahead_ms:.1f} ms + block {block_ms:.1f} ms + compute "
          f"p99 {c['p99_us'] / 1e3:.2f} ms = {lookahead_ms + block_ms + c['p99_us'] / 1e3:.2f} ms",
          file=sys.stderr)
    print(f"compute per chunk p50 {c['p50_us']:.0f} us, p99 {c['p99_us']:.0f} us; "
          f"real-time factor {summ['real_time_factor']:.3f}; "
          f"overruns {summ['overruns']}, underruns {summ['underruns']}", file=sys.stderr)
    if args.out and ext == ".npz":
        _save_npz(args.out, input=noisy, output=out, clean=ref, sample_rate=np.float64(rate))
        print(f"wrote {args.out}", file=sys.stderr)
    elif args.out:
        _save_figure(args.out, noisy[:, 0], out[:, 0], ref[:, 0], rate, s_in, s_out, args.model)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    try:
        write_atomic(path, lambda fh: np.savez(fh, **arrays))
    except OSError as exc:
        raise InputError(f"cannot write {path!r}: {exc.strerror}") from None


def _save_figure(path: str, noisy: np.ndarray, out: np.ndarray, clean: np.ndarray,
                 rate: float, s_in: float, s_out: float, name: str) -> None:
    """Before/after: waveforms of a stretch of the stream and spectrograms (N,) -> file."""
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
    fig, axes = plt.subplots(2, 2, figsize=(12, 6.5))
    for ax, sig, title in ((axes[0, 0], noisy, f"before: input, SNR {s_in:.1f} dB"),
                           (axes[0, 1], out, f"after: {name}, SNR {s_out:.1f} dB")):
        ax.plot(t[span], sig[span], lw=0.8, color="C0" if sig is noisy else "C3",
                label="input" if sig is noisy else "output")
        ax.plot(t[span], clean[span], lw=0.8, color="k", alpha=0.7, label="clean")
        ax.set(title=title, xlabel="time (s)")
        ax.legend(loc="upper right", fontsize=8)
    nper = 256 if rate >= 8000 else 128
    for ax, sig, title in ((axes[1, 0], noisy, "input spectrogram"),
                           (axes[1, 1], out, "output spectrogram")):
        if len(sig) >= nper:
            f, tt, s = signal.spectrogram(sig, fs=rate, nperseg=nper, noverlap=nper * 3 // 4)
            ax.pcolormesh(tt, f, 10 * np.log10(s + 1e-12), shading="auto")
        ax.set(title=title, xlabel="time (s)", ylabel="Hz")
    fig.tight_layout()
    kind = os.path.splitext(path)[1].lstrip(".").lower()
    try:
        write_atomic(path, lambda fh: fig.savefig(fh, dpi=100, format=kind))
    except OSError as exc:
        raise InputError(f"cannot write {path!r}: {exc.strerror}") from None
    finally:
        plt.close(fig)
