"""``sigstream bench``: latency, throughput, capacity and overhead benchmarks."""

from __future__ import annotations

import argparse

from sigstream.cli.args import positive_int
from sigstream.cli.output import write_json, write_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="latency, throughput, capacity and overhead benchmarks",
                       epilog="example: sigstream bench --quick --models extractor,teb --no-zmq "
                              "--markdown bench.md",
                       description="Per model x backend x chunk size: latency p50/p99, "
                                   "throughput, real-time factor, memory; concurrent streams "
                                   "batched vs one by one; pipeline overhead. Results as a "
                                   "Markdown table, JSON and a PNG plot.")
    b.add_argument("--quick", action="store_true",
                   help="shorter measurements: under a minute on 2 cores; a model's longer "
                   "chunks are skipped once a call takes (or would take) 0.25 s, and the "
                   "forecaster runs its fast preset")
    b.add_argument("--threads", type=positive_int, default=1,
                   help="threads per backend (default: 1)")
    b.add_argument("--models", help="comma-separated built-in models, each NAME or "
                                    "NAME:key=value[,key=value], e.g. "
                                    "forecaster:preset=fast,forecast_every=16 (default: all)")
    b.add_argument("--backends", help="comma-separated: torch,torchscript,onnx (default: all)")
    b.add_argument("--plot", metavar="PATH", help="write a PNG plot of latency vs chunk size")
    b.add_argument("--no-zmq", action="store_true", help="skip the ZeroMQ measurements")
    b.add_argument("--lsl", action="store_true",
                   help="also time Lab Streaming Layer (needs pylsl; liblsl listens on all "
                        "interfaces while it runs)")
    b.add_argument("--quiet", action="store_true", help="no progress lines")
    b.add_argument("--json", metavar="PATH", help="write the results as JSON")
    b.add_argument("--markdown", metavar="PATH", help="write the results as a Markdown table")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sigstream.bench.suite import BenchConfig, default_models, markdown, plot, run_suite
    from sigstream.core.errors import ConfigError, InputError
    from sigstream.export.backends import BACKENDS
    from sigstream.models.registry import MODELS

    models = split_models(args.models) if args.models else default_models(args.quick)
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
    if args.markdown:
        write_text(args.markdown, table + "\n")
    if args.plot:
        try:
            plot(result, args.plot)
        except OSError as exc:
            raise InputError(f"cannot write {args.plot!r}: {exc.strerror}") from None
    return 0


def split_models(text: str) -> tuple[str, ...]:
    """``"a,b:k=1,j=2,c"`` -> ``("a", "b:k=1,j=2", "c")``: a comma-separated item holding
    ``=`` but no ``:`` is one more option of the model before it."""
    out: list[str] = []
    for item in text.split(","):
        if out and "=" in item and ":" not in item:
            out[-1] += "," + item
        else:
            out.append(item)
    return tuple(out)
