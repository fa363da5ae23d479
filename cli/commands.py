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


def cmd_run(args: argparse.Namespace) -> int:
    from sigstream.cli.specs import make_sink, make_source
    from sigstream.models.registry import build_model
    from sigstream.stream.pipeline import Pipeline, PipelineConfig
    from sigstream.stream.stage import ModelStage

    model = build_model(args.model)
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
    stats = pipe.run(on_status=show)
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
    from sigstream.bench.overhead import markdown_table, run_overhead

    results = run_overhead(quick=args.quick, progress=sys.stderr.isatty())
    print(markdown_table(results))
    if args.json:
        write_json(args.json, results)
    if args.markdown:
        try:
            with open(args.markdown, "w") as fh:
                fh.write(markdown_table(results) + "\n")
        except OSError as exc:
            from sigstream.stream.errors import InputError

            raise InputError(f"cannot write {args.markdown!r}: {exc.strerror}") from None
    return 0
