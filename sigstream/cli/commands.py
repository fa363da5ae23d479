"""``sigstream models``, ``run`` and ``bench``."""

from __future__ import annotations

import argparse
import sys

from sigstream.cli.main import write_json
from sigstream.stream.stats import Stats


def status_printer(enabled: bool):
    """A callback drawing one live status line on a terminal (nothing when not a TTY)."""
    live = enabled and sys.stderr.isatty()

    def show(stats: Stats) -> None:
        if live:
            print("\r" + stats.line(), end="", file=sys.stderr, flush=True)

    def done() -> None:
        if live:
            print(file=sys.stderr)

    return show, done


def cmd_models(args: argparse.Namespace) -> int:
    from sigstream.core import state as st
    from sigstream.models.registry import MODELS, shipped_weights

    rows = [("model", "hop", "latency", "state/stream", "rate Hz", "in->out", "pretrained",
             "description")]
    for name, entry in MODELS.items():
        m = entry.build(entry.config_type())
        size = st.state_size(m.init_state(1))
        rate = f"{m.sample_rate:g}" if m.sample_rate else "any"
        if entry.weights:
            files = shipped_weights(entry)
            weights = ("yes: " + ", ".join(files)) if files else "not yet (train it)"
        else:
            weights = "none needed"
        rows.append((name, str(m.hop), str(m.latency), str(size), rate,
                     f"{m.in_channels}->{m.out_channels}", weights, entry.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0


def make_model(spec: str, backend: str = "torch", threads: int = 1):
    """A streamable model for ``--model`` on ``--backend``: an exported file (.onnx / .ts) is
    loaded as it is; a registry spec or checkpoint is built in torch and put on the backend."""
    import os

    from sigstream.export.backends import on_backend

    if os.path.isfile(spec) and os.path.splitext(spec)[1] in (".onnx", ".ts"):
        from sigstream.export.runtime import load_runner

        return load_runner(spec, threads=threads)
    from sigstream.models.registry import build_model

    model = build_model(spec)
    return on_backend(model, backend, name=os.path.basename(spec).split(":")[0],
                      threads=threads)


def cmd_run(args: argparse.Namespace) -> int:
    if _is_audio(args):  # before the model and torch load: a missing device fails at once
        _probe_audio(args)
    from sigstream.cli.specs import make_sink, make_source
    from sigstream.stream.pipeline import Pipeline, PipelineConfig
    from sigstream.stream.stage import ModelStage

    model = make_model(args.model, args.backend, args.threads)
    stage = ModelStage(model)
    if _is_audio(args):
        return cmd_run_live(args, stage)
    live_only = [o for o, v in (("--rate", args.rate), ("--channels", args.channels),
                                ("--latency", args.latency != "low")) if v]
    if live_only:
        from sigstream.core.errors import ConfigError

        raise ConfigError(f"{', '.join(live_only)} {'apply' if len(live_only) > 1 else 'applies'}"
                          " only to a mic source or speaker sink; give a file's rate in its "
                          "spec (e.g. npy:x.npy,rate=HZ)")
    source = make_source(args.source, default_rate=model.sample_rate,
                         default_channels=model.in_channels or 1)
    try:
        sink = make_sink(args.sink)
        if getattr(args, "record", None):
            source, sink = _recording(args.record, source, sink)
        rate = source.sample_rate or model.sample_rate
        max_frames = int(round(args.seconds * rate)) if args.seconds and rate else None
        pipe = Pipeline(source, [stage], sink,
                        PipelineConfig(block=args.block, realtime=args.realtime,
                                       max_frames=max_frames))
    except BaseException:
        source.close()
        raise
    show, done = status_printer(not args.quiet)

    def started() -> None:
        if not args.quiet:
            print(f"running {args.model} ({args.backend}): {args.source} -> {args.sink}, block "
                  f"{args.block}; Ctrl-C stops and drains", file=sys.stderr, flush=True)

    stats = pipe.run(on_status=show, on_start=started)
    done()
    summary = stats.summary()
    if not args.quiet:
        print(_summary_line(summary), file=sys.stderr)
    if args.stats_json:
        write_json(args.stats_json, summary)
    return 0


def _is_audio(args: argparse.Namespace) -> bool:
    from sigstream.cli.specs import audio_target

    return audio_target(args.source, "source")[0] or audio_target(args.sink, "sink")[0]


def _probe_audio(args: argparse.Namespace) -> None:
    from sigstream.cli.specs import audio_target
    from sigstream.stream.audio.device import probe_devices

    is_mic, in_dev = audio_target(args.source, "source")
    is_spk, out_dev = audio_target(args.sink, "sink")
    probe_devices(in_dev if is_mic else False, out_dev if is_spk else False)


def _recording(folder: str, source, sink):
    """Wrap ``source``/``sink`` so they also write DIR/input.wav and DIR/output.wav."""
    import os

    from sigstream.core.errors import InputError
    from sigstream.stream.audio.endpoints import RecordingSink, RecordingSource
    from sigstream.stream.io.sinks import WavSink

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create --record folder {folder!r}: {exc.strerror}") from None
    return (RecordingSource(source, WavSink(os.path.join(folder, "input.wav"))),
            RecordingSink(sink, WavSink(os.path.join(folder, "output.wav"))))


def cmd_run_live(args: argparse.Namespace, stage) -> int:
    """``run`` with ``mic`` and/or ``speaker``: one PortAudio stream (duplex for both), the
    model in the pipeline's (worker) thread, resampled when the device runs at another rate."""
    import torch

    from sigstream.cli.specs import audio_target, make_sink, make_source
    from sigstream.core.errors import ConfigError
    from sigstream.stream.audio.device import AudioConfig
    from sigstream.stream.audio.endpoints import open_audio, rate_adapted, warm_up
    from sigstream.stream.pipeline import Pipeline, PipelineConfig

    # One intra-op thread: the worker runs at real-time priority, and torch's helper threads
    # (normal priority) would make it wait on a busy machine (measured: 100% xruns with 2).
    torch.set_num_threads(args.threads)
    is_mic, in_dev = audio_target(args.source, "source")
    is_spk, out_dev = audio_target(args.sink, "sink")
    in_ch = args.channels or stage.in_channels or 1
    file_source = None
    if not is_mic:  # a file/synthetic source played on the speaker: the device runs at its rate
        file_source = make_source(args.source, default_rate=stage.sample_rate,
                                  default_channels=in_ch)
        in_ch = file_source.channels
    rate = args.rate or (file_source.sample_rate if file_source is not None else None)
    if rate is None and not is_mic and stage.sample_rate:
        rate = float(stage.sample_rate)
    out_ch = stage.out_channels or in_ch
    config = AudioConfig(rate=rate, block=args.block, channels=in_ch, out_channels=out_ch,
                         latency=args.latency, input_device=in_dev, output_device=out_dev,
                         prefill=args.buffer * args.block)
    record = getattr(args, "record", None)
    device, mic, speaker = open_audio(config, mic=is_mic, speaker=is_spk, record_dir=record)
    try:
        source = mic if is_mic else file_source
        if is_mic:
            live_stage, lookahead_s, resampler_s = rate_adapted(stage, device.rate)
        else:
            live_stage, lookahead_s, resampler_s = stage, stage.latency / device.rate, 0.0
            if file_source.sample_rate and file_source.sample_rate != device.rate:
                raise ConfigError(
                    f"the source runs at {file_source.sample_rate:g} Hz but --rate is "
                    f"{device.rate:g} Hz; play it at its own rate (omit --rate)")
        sink = speaker if is_spk else make_sink(args.sink)
        if record:
            source, sink = _recording(record, source, sink)
        max_frames = int(round(args.seconds * device.rate)) if args.seconds else None
        pipe = Pipeline(source, [live_stage], sink,
                        PipelineConfig(block=args.block, max_frames=max_frames,
                                       status_interval=0.5))
        warm_up(live_stage, args.block, in_ch)
    except BaseException:
        device.close()
        if file_source is not None:
            file_source.close()
        raise
    live = not args.quiet and sys.stderr.isatty()

    def budget(stats):
        c = stats.compute.percentiles_us()
        return device.budget(lookahead_s=lookahead_s, resampler_s=resampler_s,
                             compute_p50_s=c["p50_us"] / 1e6, compute_p99_s=c["p99_us"] / 1e6)

    def show(stats) -> None:
        if live:
            print("\r" + audio_status_line(stats, device, budget(stats)), end="",
                  file=sys.stderr, flush=True)

    if not args.quiet:
        names = " / ".join(device.device_names)
        print(f"live: {args.model} ({args.backend}) {args.source} -> {args.sink} on {names}, "
              f"{device.rate:g} Hz, block {args.block}"
              + (f", model at {stage.sample_rate:g} Hz (resampled)"
                 if live_stage is not stage else "")
              + "; Ctrl-C stops and drains", file=sys.stderr, flush=True)
    stats = pipe.run(on_status=show)
    if live:
        print(file=sys.stderr)
    b = budget(stats)
    counters = device.bridge.counters.as_dict()
    summary = stats.summary()
    summary["audio"] = {
        "devices": list(device.device_names), "rate": device.rate, "block": args.block,
        "model_rate": stage.sample_rate, "resampled": live_stage is not stage,
        "counters": counters, "budget": b.as_dict(),
        "output_delay_frames": device.bridge.delay, "worker": getattr(mic, "priority", None),
        "callback_rate_hz": (counters["callbacks"] / counters["callback_span_s"]
                             if counters["callback_span_s"] > 0 else None),
    }
    if not args.quiet:
        print(_summary_line(summary), file=sys.stderr)
        print(f"audio: {counters['callbacks']} callbacks, xruns {counters['xruns']} "
              f"({100 * counters['xrun_fraction']:.3f}%): input overflow "
              f"{counters['input_overflow']}, output underflow {counters['output_underflow']}, "
              f"ring overruns {counters['ring_overruns']}, ring underruns "
              f"{counters['ring_underruns']}; device timing: late callbacks "
              f"{counters['late_callbacks']}, early {counters['early_callbacks']}, longest gap "
              f"{counters['interval_max_s'] * 1e3:.1f} ms; {b.line()}",
              file=sys.stderr)
    if args.stats_json:
        write_json(args.stats_json, summary)
    return 0


def audio_status_line(stats: Stats, device, budget) -> str:
    """Block time, model time p50/p99, xruns and the latency budget, on one line."""
    c = device.bridge.counters
    return (f"{stats.samples_in / device.rate:7.1f}s  block {budget.block * 1e3:.2f} ms  model "
            f"p50 {budget.compute_p50 * 1e3:.2f} p99 {budget.compute_p99 * 1e3:.2f} ms  xruns "
            f"{c.xruns} (dev in {c.input_overflow} out {c.output_underflow}, ring over "
            f"{c.ring_overruns} under {c.ring_underruns}; callbacks late {c.late_callbacks} "
            f"early {c.early_callbacks})"
            f"  latency {budget.total * 1e3:.2f} ms "
            f"(added {budget.added * 1e3:.2f})")


def _summary_line(s: dict) -> str:
    c = s["compute"]
    return (f"done: {s['samples_in']} samples in, {s['samples_out']} out, {s['chunks']} chunks; "
            f"compute p50 {c['p50_us']:.0f} us, p99 {c['p99_us']:.0f} us; "
            f"overruns {s['overruns']}, underruns {s['underruns']}, dropped {s['dropped']}")


def cmd_bench(args: argparse.Namespace) -> int:
    from sigstream.bench.suite import BenchConfig, markdown, plot, run_suite
    from sigstream.core.errors import ConfigError, InputError
    from sigstream.export.backends import BACKENDS
    from sigstream.models.registry import MODELS

    models = tuple(args.models.split(",")) if args.models else BenchConfig().models
    for m in models:
        if m.partition(":")[0] not in MODELS:
            raise ConfigError(f"unknown model {m!r}; built-in models: {', '.join(MODELS)}")
    backends = tuple(args.backends.split(",")) if args.backends else BACKENDS
    for b in backends:
        if b not in BACKENDS:
            raise ConfigError(f"unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
    cfg = BenchConfig(quick=args.quick, threads=args.threads, models=models, backends=backends,
                      zmq=not args.no_zmq, lsl=args.lsl)
    result = run_suite(cfg, progress=not args.quiet)
    table = markdown(result)
    print(table)
    if args.json:
        write_json(args.json, result)
    for path, write in ((args.markdown, lambda p: open(p, "w").write(table + "\n")),
                        (args.plot, lambda p: plot(result, p))):
        if path:
            try:
                write(path)
            except OSError as exc:
                raise InputError(f"cannot write {path!r}: {exc.strerror}") from None
    return 0
