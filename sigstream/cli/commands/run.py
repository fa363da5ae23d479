"""``sigstream run``: any source -> model -> sink pipeline, files or live audio."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sigstream.cli.args import block_size, positive_float, positive_int
from sigstream.cli.output import status_printer, summary_line, write_json
from sigstream.export.backends import load_model, resolve_backend
from sigstream.stream.stats import Stats


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run any source -> model -> sink pipeline",
                       epilog="example: sigstream run --model teb --source npy:ctg.npy,rate=4 "
                              "--sink npy:out.npy",
                       description="Run a pipeline. Sources: npy:PATH[,rate=HZ], wav:PATH, "
                                   "synth:NAME[,seconds=S,rate=HZ,channels=C,seed=N,snr=DB], "
                                   "mic[:DEVICE], zmq:ENDPOINT[,...] (ZeroMQ PULL). "
                                   "Sinks: npy:PATH (.npy/.npz), wav:PATH[,subtype=PCM_16], "
                                   "null, speaker[:DEVICE], zmq:ENDPOINT[,...] (ZeroMQ "
                                   "PUSH). A bare file name takes its kind from its "
                                   "extension (in.wav, out.npy).")
    r.add_argument("--model", required=True,
                   help="NAME, NAME:key=value,... or a checkpoint path")
    r.add_argument("--source", required=True, help="source spec")
    r.add_argument("--sink", required=True, help="sink spec")
    r.add_argument("--backend", default=None, choices=("torch", "torchscript", "onnx"),
                   help="run the model in eager torch, TorchScript or ONNX Runtime (default: "
                        "torch; an exported .onnx/.ts file: its own runtime)")
    r.add_argument("--threads", type=positive_int, default=1,
                   help="threads of the model's runtime: torch, TorchScript or ONNX Runtime "
                        "(default: 1)")
    r.add_argument("--block", type=block_size, default=256,
                   help="frames per chunk; a multiple of the model's hop (default: 256)")
    r.add_argument("--realtime", action="store_true",
                   help="pace file and synthetic sources at their sample rate")
    r.add_argument("--seconds", type=positive_float, help="stop after this much input")
    r.add_argument("--resample", action="store_true",
                   help="a file or stream at another rate than the model's: resample it to the "
                        "model's rate and the output back (polyphase, the live-audio "
                        "resampler; its delay is added and reported)")
    add_channel_options(r)
    r.add_argument("--stats-json", metavar="PATH", help="write the run's stats as JSON")
    r.add_argument("--quiet", action="store_true", help="no live status line")
    r.add_argument("--rate", type=positive_float,
                   help="live audio: device sample rate in Hz (default: the device's); a model "
                        "at another rate is resampled")
    r.add_argument("--latency", default="low",
                   help="live audio: PortAudio latency, low | high | SECONDS (default: low)")
    r.add_argument("--channels", type=positive_int,
                   help="live audio: input channels to open (default: the model's, or the "
                        "highest of --pick)")
    r.add_argument("--buffer", type=positive_int, default=1, metavar="BLOCKS",
                   help="live audio: output buffering in blocks (1): each more block adds one "
                        "block of latency and gives the worker one more block period to deliver")
    r.add_argument("--record", metavar="DIR",
                   help="write the raw input (input.wav), the processed output (output.wav) "
                        "and, with a speaker, what was played (played.wav) to DIR")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if _is_audio(args):  # before the model and torch load: a missing device fails at once
        _probe_audio(args)
    from sigstream.cli.specs import make_sink
    from sigstream.stream.pipeline import Pipeline, PipelineConfig
    from sigstream.stream.stage import ModelStage

    args.backend = resolve_backend(args.model, args.backend)
    import torch

    # eager torch as well: with torch's default (every core) the forecaster ran 9x slower
    # on 2 cores than with one thread; live, the worker runs at real-time priority and
    # torch's helper threads (normal priority) would make it wait (100% xruns with 2)
    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.backend, threads=args.threads)
    stage = ModelStage(model)
    if _is_audio(args):
        return run_live(args, stage)
    _check_channel_choice(args.pick, args.mix)
    live_only = [o for o, v in (("--rate", args.rate), ("--channels", args.channels),
                                ("--latency", args.latency != "low")) if v]
    if live_only:
        from sigstream.core.errors import ConfigError

        raise ConfigError(f"{', '.join(live_only)} {'apply' if len(live_only) > 1 else 'applies'}"
                          " only to a mic source or speaker sink; give a file's rate in its "
                          "spec (e.g. npy:x.npy,rate=HZ)")
    source = model_source(args.source, model)
    try:
        sink = make_sink(args.sink)
        if getattr(args, "record", None):
            source, sink = _recording(args.record, source, sink)
        rate = source.sample_rate or model.sample_rate
        stages = model_stages(stage, source, args.model, args.source, args.resample,
                              quiet=args.quiet, pick=args.pick, mix=args.mix)
        if args.seconds and not rate:
            from sigstream.core.errors import ConfigError

            raise ConfigError(f"--seconds needs a sample rate, and neither {args.source!r} nor "
                              f"{args.model!r} has one: give the source's (e.g. "
                              f"npy:x.npy,rate=HZ)")
        max_frames = int(round(args.seconds * rate)) if args.seconds and rate else None
        pipe = Pipeline(source, stages, sink,
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
    summary = {**stats.summary(), "interrupted": pipe.interrupted}
    rejected = dict(getattr(source, "rejected_reasons", None) or {})
    if rejected:
        summary["source_rejected"] = rejected
    if not args.quiet:
        print(summary_line(summary), file=sys.stderr)
        for line in _notes(model, stats):
            print(line, file=sys.stderr)
    if rejected:  # dropped input is never silent, --quiet or not
        print(f"the source rejected {sum(rejected.values())} message(s) and dropped their "
              f"samples: " + ", ".join(f"{k} x{v}" for k, v in sorted(rejected.items()))
              + (f" (the model takes {stage.in_channels} channel(s))"
                 if "channels_mismatch" in rejected else ""), file=sys.stderr)
    if args.stats_json:
        write_json(args.stats_json, summary)
    if pipe.interrupted:  # drained and written, but not the whole input: say so, exit 130
        print("stopped by Ctrl-C: the output holds what was read until then",
              file=sys.stderr)
        return 130
    return 0


def model_source(spec: str, model: Any) -> Any:
    """The file or synthetic source ``spec`` names, with ``model``'s rate and channels as
    its defaults and NaN samples allowed only when the model accepts them (``run`` and
    ``batch`` both open their inputs here, so they read a file alike)."""
    from sigstream.cli.specs import make_source

    return make_source(spec, default_rate=model.sample_rate,
                       default_channels=model.in_channels or 1,
                       allow_nan=bool(getattr(model, "accepts_nan", False)))


def add_channel_options(p: argparse.ArgumentParser) -> None:
    """``--pick`` and ``--mix`` (run and batch)."""
    p.add_argument("--pick", type=channel_list, metavar="LIST",
                   help="use these input channels, in this order (1-based, e.g. 2 or 1,3), "
                        "e.g. one channel of a stereo file into a mono model")
    p.add_argument("--mix", action="store_true",
                   help="average all input channels into one (a stereo file into a mono "
                        "model)")


def channel_list(text: str) -> list[int]:
    """``--pick``: 1-based channel numbers, comma-separated, to 0-based indices."""
    try:
        picked = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected channel numbers from 1, comma-separated (e.g. 2 or 1,3), got {text!r}"
        ) from None
    if not picked or min(picked) < 1:
        raise argparse.ArgumentTypeError(f"channels count from 1, got {text!r}")
    return [p - 1 for p in picked]


def _check_channel_choice(pick: list[int] | None, mix: bool) -> None:
    if pick is not None and mix:
        from sigstream.core.errors import ConfigError

        raise ConfigError("--pick and --mix both choose the input channels: give one")


def channel_mapped(stages: list[Any], channels: int, pick: list[int] | None,
                   mix: bool) -> list[Any]:
    """``--pick``/``--mix``: the first stage fed the chosen channels of a ``channels``-channel
    input; one error line for a channel the input does not have, or a choice that does not
    give the model its channel count."""
    if pick is None and not mix:
        return stages
    from sigstream.core.errors import InputError
    from sigstream.stream.stage import ChannelMapStage

    first = stages[0]
    want = int(first.in_channels or 0)
    if pick is not None:
        missing = [p + 1 for p in pick if p >= channels]
        if missing:
            raise InputError(f"--pick {','.join(str(p + 1) for p in pick)}: the input has "
                             f"{channels} channel(s), so there is no channel "
                             f"{', '.join(map(str, missing))}")
        if want and len(pick) != want:
            raise InputError(f"--pick gives {len(pick)} channel(s) but the model expects "
                             f"{want}")
    elif want and want != 1:
        raise InputError(f"--mix gives one channel but the model expects {want}")
    return [ChannelMapStage(first, channels, pick=pick, mix=mix), *stages[1:]]


def model_stages(stage: Any, source: Any, model: str, source_spec: str, resample: bool,
                 quiet: bool = False, pick: list[int] | None = None, mix: bool = False
                 ) -> list[Any]:
    """The pipeline's stages: ``stage``, inside the resampler with ``--resample``, fed the
    channels ``--pick``/``--mix`` choose."""
    _check_channel_choice(pick, mix)
    if resample:
        stage = resampled(stage, source.sample_rate, model, source_spec, quiet=quiet)
    return channel_mapped([stage], source.channels, pick, mix)


def resampled(stage: Any, source_rate: float | None, model: str, source: str,
              quiet: bool = False) -> Any:
    """``stage`` wrapped in the polyphase resampler for ``--resample`` (itself when the
    rates already agree); one error line when either rate is unknown. ``model`` and
    ``source`` name them in messages."""
    from sigstream.core.errors import ConfigError
    from sigstream.stream.audio.endpoints import rate_adapted

    if not stage.sample_rate:
        raise ConfigError(f"--resample: {model!r} takes any sample rate; leave it out")
    if not source_rate:
        raise ConfigError(f"--resample needs the source's rate, and {source!r} has none: "
                          f"give it (e.g. npy:x.npy,rate=HZ)")
    wrapped, _, delay_s = rate_adapted(stage, source_rate)
    if wrapped is not stage and not quiet:
        print(f"resampling {source_rate:g} Hz -> {float(stage.sample_rate):g} Hz -> "
              f"{source_rate:g} Hz around the model (adds {delay_s * 1e3:.2f} ms of delay, "
              f"{wrapped.latency} samples in all with the model's)", file=sys.stderr)
    return wrapped


def _notes(model: Any, stats: Any) -> list[str]:
    """What a user should know about an output that looks odd: none at all (the input was
    shorter than one output step), or rows of NaN (a model's "no output here")."""
    notes = []
    dec = int(getattr(model, "decimation", 1) or 1)
    if dec > 1 and stats.samples_out == 0 and stats.samples_in < dec:
        notes.append(f"note: the input ({stats.samples_in} samples) is shorter than one output "
                     f"step of the model ({dec} samples): no output rows")
    if stats.nan_rows:
        meaning = getattr(model, "nan_meaning", "the model's output there is undefined")
        notes.append(f"note: {stats.nan_rows} of {stats.samples_out} output rows hold NaN "
                     f"({meaning})")
    return notes


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


def run_live(args: argparse.Namespace, stage) -> int:
    """``run`` with ``mic`` and/or ``speaker``: one PortAudio stream (duplex for both), the
    model in the pipeline's (worker) thread, resampled when the device runs at another rate."""

    from sigstream.cli.specs import audio_target, make_sink, make_source
    from sigstream.core.errors import ConfigError
    from sigstream.stream.audio.device import AudioConfig
    from sigstream.stream.audio.endpoints import open_audio, rate_adapted, warm_up
    from sigstream.stream.pipeline import Pipeline, PipelineConfig

    is_mic, in_dev = audio_target(args.source, "source")
    is_spk, out_dev = audio_target(args.sink, "sink")
    _check_channel_choice(args.pick, args.mix)
    if args.mix and is_mic and not args.channels:
        raise ConfigError("--mix with a mic needs --channels N: how many of its channels to "
                          "open and mix")
    in_ch = args.channels or (max(args.pick) + 1 if args.pick else 0) or stage.in_channels or 1
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
        live_stage = channel_mapped([live_stage], in_ch, args.pick, args.mix)[0]
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
        print(summary_line(summary), file=sys.stderr)
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
