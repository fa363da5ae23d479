"""``sigstream demo``: a built-in model cleans a synthetic noisy stream, live."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from sigstream.stream.errors import ConfigError, InputError


def cmd_demo(args: argparse.Namespace) -> int:
    from sigstream.cli.commands import status_printer
    from sigstream.models.metrics import aligned_snr_db, snr_db
    from sigstream.models.registry import build_model
    from sigstream.models.synth import GENERATORS
    from sigstream.stream.pipeline import Pipeline, PipelineConfig
    from sigstream.stream.sinks import ArraySink
    from sigstream.stream.sources import GeneratorSource
    from sigstream.stream.stage import ModelStage

    if args.out and not args.out.endswith(".npz"):
        raise ConfigError(f"--out must name a .npz file, got {args.out!r}")
    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise InputError(f"cannot write {args.out!r}: the folder does not exist")
    model = build_model(args.model)
    rate = model.sample_rate or 1000.0
    gen = GENERATORS["sines"].build(sample_rate=rate, channels=model.in_channels or 1, seed=0)
    source = GeneratorSource(gen, total_frames=int(round(args.seconds * rate)),
                             keep_reference=True)
    sink = ArraySink()
    block = args.block
    if block % model.hop:
        block = model.hop * max(1, round(block / model.hop))
    pipe = Pipeline(source, [ModelStage(model)], sink,
                    PipelineConfig(block=block, realtime=not args.no_realtime))
    max_lag = int(0.05 * rate)
    print(f"demo: {args.model} on {GENERATORS['sines'].description}, block {block}, "
          f"{'real time' if not args.no_realtime else 'as fast as possible'}", file=sys.stderr)
    show_stats, done = status_printer(True)
    live = sys.stderr.isatty()

    def on_status(stats) -> None:
        if not live:
            return
        out = sink.data
        ref = source.reference()[: len(out)]
        noisy = source.consumed()[: len(out)]
        if len(out) > max_lag * 2:
            s_in = snr_db(ref, noisy)
            s_out, lag = aligned_snr_db(ref, out, max_lag)
            print(f"\r{stats.line()}  SNR {s_in:5.1f} dB -> {s_out:5.1f} dB", end="",
                  file=sys.stderr, flush=True)
        else:
            show_stats(stats)

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
    print(f"SNR in {s_in:.1f} dB -> out {s_out:.1f} dB (+{s_out - s_in:.1f} dB, "
          f"after {lag / rate * 1e3:.0f} ms group delay)", file=sys.stderr)
    print(f"compute per chunk p50 {c['p50_us']:.0f} us, p99 {c['p99_us']:.0f} us; "
          f"real-time factor {summ['real_time_factor']:.3f}; "
          f"overruns {summ['overruns']}, underruns {summ['underruns']}", file=sys.stderr)
    if args.out:
        _save_npz(args.out, input=noisy, output=out, clean=ref, sample_rate=np.float64(rate))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    tmp = path + ".partial.npz"
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise InputError(f"cannot write {path!r}: {exc.strerror}") from None
