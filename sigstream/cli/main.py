"""The ``sigstream`` command line.

Every command builds frozen configs from its arguments and hands them to the
library; errors a user can cause end with one ``error: ...`` line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from sigstream.cli.args import positive_float, positive_int
from sigstream.core.errors import SigstreamError

# Modules that each add one top-level command: ``add_parser(sub)`` adds it and
# sets ``func`` (imports heavy libraries lazily, inside the command).
COMMAND_PLUGINS: tuple[str, ...] = ("sigstream.cli.devices", "sigstream.cli.http")


def _version() -> str:
    try:
        return version("sigstream")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sigstream",
        description="Real-time streaming signal processing with small neural models.",
    )
    p.add_argument("--version", action="version", version=f"sigstream {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("models", help="list the built-in models",
                   description="List the built-in models with hop, latency, state size, "
                               "sample rate and whether pretrained weights ship.")

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

    r = sub.add_parser("run", help="run any source -> model -> sink pipeline",
                       description="Run a pipeline. Sources: npy:PATH[,rate=HZ], wav:PATH, "
                                   "synth:NAME[,seconds=S,rate=HZ,channels=C,seed=N,snr=DB], "
                                   "mic[:DEVICE]. "
                                   "Sinks: npy:PATH (.npy/.npz), wav:PATH[,subtype=PCM_16], "
                                   "null, speaker[:DEVICE].")
    r.add_argument("--model", required=True,
                   help="NAME, NAME:key=value,... or a checkpoint path")
    r.add_argument("--source", required=True, help="source spec")
    r.add_argument("--sink", required=True, help="sink spec")
    r.add_argument("--backend", default="torch", choices=("torch", "torchscript", "onnx"),
                   help="run the model in eager torch, TorchScript or ONNX Runtime (torch)")
    r.add_argument("--threads", type=positive_int, default=1,
                   help="threads for the torchscript/onnx runtimes, and for torch with "
                        "mic/speaker (1)")
    r.add_argument("--block", type=positive_int, default=256,
                   help="frames per chunk; a multiple of the model's hop (256)")
    r.add_argument("--realtime", action="store_true",
                   help="pace file and synthetic sources at their sample rate")
    r.add_argument("--seconds", type=positive_float, help="stop after this much input")
    r.add_argument("--stats-json", metavar="PATH", help="write the run's stats as JSON")
    r.add_argument("--quiet", action="store_true", help="no live status line")
    r.add_argument("--rate", type=positive_float,
                   help="live audio: device sample rate in Hz (default: the device's); a model "
                        "at another rate is resampled")
    r.add_argument("--latency", default="low",
                   help="live audio: PortAudio latency, low | high | SECONDS (low)")
    r.add_argument("--channels", type=positive_int,
                   help="live audio: input channels (default: the model's)")
    r.add_argument("--buffer", type=positive_int, default=1, metavar="BLOCKS",
                   help="live audio: output buffering in blocks (1): each more block adds one "
                        "block of latency and gives the worker one more block period to deliver")
    r.add_argument("--record", metavar="DIR",
                   help="write the raw input (input.wav), the processed output (output.wav) "
                        "and, with a speaker, what was played (played.wav) to DIR")

    from sigstream.cli.train import add_train_parser

    add_train_parser(sub)

    from sigstream.cli.export import add_export_parser
    from sigstream.cli.route import add_route_parser
    from sigstream.cli.serve import add_serve_parser

    add_export_parser(sub)
    add_serve_parser(sub)
    add_route_parser(sub)
    for name in COMMAND_PLUGINS:
        importlib.import_module(name).add_parser(sub)

    b = sub.add_parser("bench", help="latency, throughput, capacity and overhead benchmarks",
                       description="Per model x backend x chunk size: latency p50/p99, "
                                   "throughput, real-time factor, memory; concurrent streams "
                                   "batched vs one by one; pipeline overhead. Results as a "
                                   "Markdown table, JSON and a PNG plot.")
    b.add_argument("--quick", action="store_true", help="shorter measurements (under a minute)")
    b.add_argument("--threads", type=positive_int, default=1, help="threads per backend (1)")
    b.add_argument("--models", help="comma-separated built-in models, each NAME or "
                                    "NAME:key=value, e.g. forecaster:preset=fast (default: all)")
    b.add_argument("--backends", help="comma-separated: torch,torchscript,onnx (default: all)")
    b.add_argument("--plot", metavar="PATH", help="write a PNG plot of latency vs chunk size")
    b.add_argument("--no-zmq", action="store_true", help="skip the ZeroMQ measurements")
    b.add_argument("--lsl", action="store_true",
                   help="also time Lab Streaming Layer (needs pylsl; liblsl listens on all "
                        "interfaces while it runs)")
    b.add_argument("--quiet", action="store_true", help="no progress lines")
    b.add_argument("--json", metavar="PATH", help="write the results as JSON")
    b.add_argument("--markdown", metavar="PATH", help="write the results as a Markdown table")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "models":
            from sigstream.cli.commands import cmd_models

            return cmd_models(args)
        if args.command == "demo":
            from sigstream.cli.demo import cmd_demo

            return cmd_demo(args)
        if args.command == "run":
            from sigstream.cli.commands import cmd_run

            return cmd_run(args)
        if getattr(args, "func", None) is not None:  # train/eval and plug-in commands
            return args.func(args)
        if args.command == "route":
            from sigstream.cli.route import cmd_route

            return cmd_route(args)
        if args.command == "serve":
            from sigstream.cli.serve import cmd_serve

            return cmd_serve(args)
        if args.command == "export":
            from sigstream.cli.export import cmd_export

            return cmd_export(args)
        if args.command == "bench":
            from sigstream.cli.commands import cmd_bench

            return cmd_bench(args)
    except SigstreamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2


def write_json(path: str, data: dict) -> None:
    from sigstream.core.errors import InputError

    try:
        with open(path, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
    except OSError as exc:
        raise InputError(f"cannot write {path!r}: {exc.strerror}") from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
