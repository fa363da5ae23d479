"""The ``sigstream`` command line: one dispatch table of command modules.

Each module in :data:`COMMANDS` adds its sub-command(s) with ``add_parser(sub)`` and
sets ``func``; :func:`main` parses and calls ``args.func(args)``. Modules import heavy
libraries (torch, zmq, ...) inside their commands, so ``--help`` stays fast. Errors a
user can cause end with one ``error: ...`` line on stderr and exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import sigstream
from sigstream.core.errors import SigstreamError

COMMANDS: tuple[str, ...] = tuple(f"sigstream.cli.commands.{name}" for name in (
    "models", "demo", "run", "batch", "train", "export", "serve", "route", "devices", "http",
    "bench", "data",
))
"""The command modules, in the order ``sigstream --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sigstream",
        description="Real-time streaming signal processing with small neural models.",
    )
    p.add_argument("--version", action="version", version=f"sigstream {sigstream.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except SigstreamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
