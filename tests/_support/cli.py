"""Run the ``sigstream`` command line in this process, like a subprocess would.

``sigstream(*args)`` returns a :class:`subprocess.CompletedProcess` (``returncode``,
``stdout``, ``stderr``) so a test can switch between the two with one line. Use the
subprocess form only where the process boundary is what is tested: signals (Ctrl-C),
the console script itself, a fresh interpreter (import-time failures), or a server
another process talks to.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

EXE = Path(sys.executable).with_name("sigstream")
CMD = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "sigstream"]


def sigstream(*args: str) -> subprocess.CompletedProcess:
    """``sigstream ARGS...`` in-process: the exit status and what it wrote to stdout/stderr."""
    import torch

    from sigstream.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse errors and --help / --version
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        torch.set_num_threads(threads)  # commands set their own thread count
    return subprocess.CompletedProcess(["sigstream", *args], code, out.getvalue(),
                                       err.getvalue())


def sigstream_process(*args: str, timeout: float = 120, cwd: Path | None = None,
                      ) -> subprocess.CompletedProcess:
    """``sigstream ARGS...`` in a subprocess (the console script when installed)."""
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, stdin=subprocess.DEVNULL)
