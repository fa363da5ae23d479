"""``sigstream export MODEL --format onnx|torchscript --out PATH [--threads N]``.

The model (a registry spec or a checkpoint path) is exported to a temporary file
next to ``--out``, loaded back with :func:`sigstream.export.runtime.load_runner`
and compared with the eager torch model over consecutive chunks of varying
length with the state carried; only a file that passes is renamed to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

from sigstream.cli.args import positive_int
from sigstream.core.errors import ConfigError, InputError, SigstreamError

FORMATS = ("onnx", "torchscript")
PARITY_ATOL = 1e-4
PARITY_CHUNKS = 32
_SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".pts": "torchscript", ".ts": "torchscript",
             ".torchscript": "torchscript"}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``export`` sub-command to ``sub`` (the parser's sub-parsers); returns it."""
    e = sub.add_parser(
        "export", help="export a model to ONNX or TorchScript (parity-checked)",
        epilog="example: sigstream export teb --out teb.onnx",
        description="Export a model's streaming step (x, *state) -> (y, *state) with dynamic "
                    "batch and time axes and its metadata. The file is written only after "
                    "the exported model matches the eager one over "
                    f"{PARITY_CHUNKS} chunks (atol {PARITY_ATOL:g}).")
    e.add_argument("model", metavar="MODEL", nargs="?",
                   help="NAME, NAME:key=value,... or a checkpoint path (or --model, as in "
                        "run and serve)")
    e.add_argument("--model", dest="model_option", metavar="MODEL",
                   help="the same as the positional MODEL")
    e.add_argument("--format", choices=FORMATS,
                   help="onnx | torchscript (default: from the --out suffix, .onnx -> onnx, "
                        ".pt/.ts -> torchscript; else onnx)")
    e.add_argument("--out", required=True, metavar="PATH", help="the file to write")
    e.add_argument("--quiet", action="store_true",
                   help="no progress lines on stderr (the result line is still printed)")
    e.add_argument("--threads", type=positive_int, default=1,
                   help="runtime threads for the parity check (default: 1)")
    e.set_defaults(func=run)
    return e


def _model_name(spec: str) -> str:
    """The registry name of a spec, or of the model a checkpoint holds."""
    from sigstream.models.registry import MODELS

    name = spec.partition(":")[0]
    if name in MODELS:
        return name
    from sigstream.models.checkpoint import read_checkpoint

    return str(read_checkpoint(spec)["model"])


def check_parity(model: Any, runner: Any, *, chunks: int = PARITY_CHUNKS, batch: int = 2,
                 seed: int = 0) -> tuple[float, int]:
    """Max |runner - eager| over ``chunks`` consecutive chunks (outputs, absolute; final
    state, relative to max(1, |state|)).

    Chunk lengths are multiples of the hop, varying from none to 64 hops, with the
    state carried on both sides. Returns ``(max_error, samples)``.
    """
    import torch

    from sigstream.core import state as st

    rng = np.random.default_rng(seed)
    hop = int(model.hop)
    units = [1, 0, 7, 64, 2, *rng.integers(0, 40, size=max(0, chunks - 5))][:chunks]
    s_eager = model.init_state(batch)
    s_run = runner.init_state(batch)
    err, total = 0.0, 0
    c = int(model.in_channels) or 1
    example = getattr(model, "example_input", None)  # a model whose input has units
    for u in units:
        x = (example(rng, batch, int(u) * hop) if example is not None
             else rng.standard_normal((batch, int(u) * hop, c)).astype(np.float32))
        with torch.inference_mode():
            y_ref, s_eager = model.step(torch.from_numpy(x), s_eager)
        y, s_run = runner.step(x, s_run)
        y_ref = y_ref.numpy()
        if y.shape != y_ref.shape or not np.array_equal(np.isnan(y), np.isnan(y_ref)):
            return float("inf"), total  # NaN (no output) where the other has a value
        diff = np.abs(y.astype(np.float64) - y_ref)
        err = max(err, float(np.max(diff, initial=0.0, where=~np.isnan(diff))))
        total += x.shape[1]
    for a, b in zip(st.leaves(s_eager), st.leaves(s_run), strict=True):
        a = a.numpy().astype(np.float64)
        # states are compared relative to their size (an LSTM cell state can grow large,
        # and float32 then resolves it no finer than ~1e-7 of its magnitude)
        diff = np.abs(a - np.asarray(b, dtype=np.float64)) / np.maximum(1.0, np.abs(a))
        err = max(err, float(np.max(diff, initial=0.0)))
    return err, total


def run(args: argparse.Namespace) -> int:
    """Export, check parity, then move the file into place; raises SigstreamError on failure."""
    from sigstream.core.files import temp_name
    from sigstream.export.runtime import load_runner
    from sigstream.models.registry import build_model

    fmt = args.format or _SUFFIXES.get(os.path.splitext(args.out)[1].lower(), "onnx")
    out = os.path.abspath(args.out)
    folder = os.path.dirname(out)
    if not os.path.isdir(folder):
        raise InputError(f"cannot write {args.out!r}: folder {folder!r} does not exist")
    if os.path.isdir(out):
        raise InputError(f"cannot write {args.out!r}: it is a folder; give a file name")
    option = getattr(args, "model_option", None)
    if option and args.model and option != args.model:
        raise ConfigError(f"two models given ({args.model!r} and --model {option!r}); "
                          "give one")
    args.model = args.model or option
    if not args.model:
        raise ConfigError("export needs a model: sigstream export NAME --out FILE (or "
                          "--model NAME)")
    model = build_model(args.model)
    name = _model_name(args.model)
    tmp = temp_name(out)
    start = time.monotonic()

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    try:
        progress(f"exporting {name} to {fmt} (tracing its step; large models take minutes)")
        _export(model, tmp, name, fmt, shown=args.out)
        progress(f"loading the {fmt} file and checking parity over {PARITY_CHUNKS} chunks")
        runner = load_runner(tmp, threads=args.threads)
        err, samples = check_parity(model, runner)
        if not err <= PARITY_ATOL:
            raise SigstreamError(
                f"the {fmt} export of {name} does not match the eager model: max |error| "
                f"{err:.3g} > {PARITY_ATOL:g} over {PARITY_CHUNKS} chunks; nothing written")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    size = os.path.getsize(out)
    print(f"exported {name} ({fmt}, {size / 1024:.1f} KiB) to {args.out}: hop {runner.hop}, "
          f"latency {runner.latency}, {runner.in_channels}->{runner.out_channels} channels, "
          f"state {', '.join(runner.state_names) or 'none'}; parity over {PARITY_CHUNKS} "
          f"chunks ({samples} samples x 2 streams): max |error| {err:.2g}")
    return 0


def _export(model: Any, path: str, name: str, fmt: str, shown: str) -> None:
    from sigstream.export.backends import export_file

    try:
        export_file(model, path, fmt, name=name)
    except SigstreamError:
        raise
    except OSError as exc:
        raise InputError(f"cannot write {shown!r}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - tracing failures surface as one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SigstreamError(f"cannot export {name} to {fmt}: {first[:200]}") from None
