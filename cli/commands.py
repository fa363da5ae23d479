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
    from sigstream.models.registry import MODELS, shipped_weights
    from sigstream.stream import state as st

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
    from sigstream.cli.specs import make_sink, make_source
    from sigstream.stream.pipeline import Pipeline, PipelineConfig
    from sigstream.stream.stage import ModelStage

    model = make_model(args.model, args.backend, args.threads)
    stage = ModelStage(model)
    source = make_source(args.source, default_rate=model.sample_rate,
                         default_channels=model.in_channels or 1)
    try:
        sink = make_sink(args.sink)
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


def _summary_line(s: dict) -> str:
    c = s["compute"]
    return (f"done: {s['samples_in']} samples in, {s['samples_out']} out, {s['chunks']} chunks; "
            f"compute p50 {c['p50_us']:.0f} us, p99 {c['p99_us']:.0f} us; "
            f"overruns {s['overruns']}, underruns {s['underruns']}, dropped {s['dropped']}")


def cmd_bench(args: argparse.Namespace) -> int:
    from sigstream.bench.suite import BenchConfig, markdown, plot, run_suite
    from sigstream.export.backends import BACKENDS
    from sigstream.models.registry import MODELS
    from sigstream.stream.errors import ConfigError, InputError

    models = tuple(args.models.split(",")) if args.models else BenchConfig().models
    for m in models:
        if m not in MODELS:
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
