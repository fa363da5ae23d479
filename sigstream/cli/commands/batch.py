"""``sigstream batch``: many files through one model, locally or on Ray."""

from __future__ import annotations

import argparse
import sys

from sigstream.cli.args import block_size, positive_int, renamed_argument
from sigstream.cli.commands.run import add_channel_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "batch", help="stream many files through one model (local processes or Ray)",
        description="Stream every file the --inputs patterns match through the model, each "
                    "exactly as `sigstream run --source FILE --sink OUT/FILE` would (same "
                    "output, bit for bit, on the same backend), and write OUT/<its name>. "
                    "--engine local runs --jobs processes on this machine; --engine ray "
                    "runs --jobs Ray actors (a private local Ray, or --address of a "
                    "cluster whose workers see the same paths). A file that fails is one "
                    "line; the others go on; the exit status is 1 if any failed.",
        epilog="example: sigstream batch --model enhancer --inputs 'noisy/*.wav' --out clean/ "
               "--jobs 2")
    b.add_argument("--model", required=True, help="NAME, NAME:key=value,... or a checkpoint")
    b.add_argument("--inputs", required=True, action="append", metavar="GLOB",
                   help="files to process (a glob, quoted; repeat for more): .wav, .flac, "
                        ".npy, .npz")
    b.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (created); each output keeps its input's name")
    b.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local processes, or Ray actors (needs sigstream[ray]) (default: local)")
    jobs = b.add_argument("--jobs", "-j", type=positive_int, default=1, dest="workers",
                          help="files processed at once: processes or Ray actors, each "
                               "holding the model once (default: 1)")
    renamed_argument(b, "--workers", jobs)
    b.add_argument("--address", metavar="ADDR",
                   help="--engine ray: an existing cluster (auto, ray://HOST:PORT); default: "
                        "a private local Ray on 127.0.0.1, stopped at the end")
    b.add_argument("--backend", choices=("torch", "torchscript", "onnx"), default=None,
                   help="runtime, as for run (default: torch; an exported file: its own runtime)")
    b.add_argument("--threads", type=positive_int, default=1,
                   help="runtime threads per worker (default: 1)")
    b.add_argument("--block", type=block_size, default=256,
                   help="frames per chunk, as for run (default: 256)")
    b.add_argument("--resample", action="store_true",
                   help="files at another rate than the model's: resample (as run --resample)")
    add_channel_options(b)
    b.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    b.add_argument("--json", metavar="PATH", help="write every file's summary as JSON")
    b.add_argument("--quiet", action="store_true", help="only errors and the summary")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    import time

    from sigstream.cli.batch import Settings, plan, report, run_local, run_ray
    from sigstream.cli.output import write_json
    from sigstream.core.errors import ConfigError
    from sigstream.export.backends import resolve_backend

    if args.address and args.engine != "ray":
        raise ConfigError("--address is the Ray cluster's: it needs --engine ray")
    jobs = plan(args.inputs, args.out, overwrite=args.overwrite)
    settings = Settings(args.model, resolve_backend(args.model, args.backend), args.threads,
                        args.block, args.resample,
                        tuple(args.pick) if args.pick else None, args.mix)
    if args.engine == "ray":
        from sigstream.cli.ray_engine import import_ray

        import_ray()  # one line before any work when Ray is missing
        if args.address:
            from sigstream.cli.ray_engine import check_address

            check_address(args.address)
    os.makedirs(args.out, exist_ok=True)
    if not args.quiet:
        print(f"batch: {len(jobs)} file(s) through {args.model} ({settings.backend}) on "
              f"{args.engine} with {args.workers} worker(s) -> {args.out}", file=sys.stderr,
              flush=True)
    t0 = time.perf_counter()
    results = (run_ray(jobs, settings, args.workers, args.address) if args.engine == "ray"
               else run_local(jobs, settings, args.workers))
    done = report(results, len(jobs), args.quiet)
    failed = [r for r in done if not r["ok"]]
    samples = sum(r.get("samples_in", 0) for r in done)
    print(f"done: {len(done) - len(failed)} of {len(jobs)} file(s), {samples} samples in, "
          f"{time.perf_counter() - t0:.1f} s" + (f"; {len(failed)} failed" if failed else ""),
          file=sys.stderr)
    if args.json:
        write_json(args.json, {"schema": "sigstream-batch/1", "engine": args.engine,
                               "workers": args.workers, "model": args.model,
                               "backend": settings.backend, "files": done})
    return 1 if failed else 0
