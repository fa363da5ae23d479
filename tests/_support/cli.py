"""Run the ``sigstream`` command line in this process, like a subprocess would.

``sigstream(*args)`` returns a :class:`subprocess.CompletedProcess` (``returncode``,
``stdout``, ``stderr``) so a test can switch between the two with one line. Use the
subprocess form only where the process boundary is what is tested: signals (Ctrl-C),
the console script itself, a fresh interpreter (import-time failures), or a server
another process talks to.

What the command writes is captured at the file-descriptor level, so native libraries'
output (PortAudio, JACK, ONNX Runtime) lands in ``stderr`` as it would from a subprocess,
and warnings are shown there under Python's default filters (not pytest's). A command must
leave this process as it found it: the helper fails the test if it leaves a SIGINT/SIGTERM
handler changed, a non-daemon thread running, a child process alive, a socket open or a
matplotlib figure open; it restores torch's thread count and matplotlib's backend (commands
set both on purpose) and torch's global random state (the project uses no other global one).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

EXE = Path(sys.executable).with_name("sigstream")
CMD = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "sigstream"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _children() -> set[int]:
    """Live (not zombie) child processes of this process."""
    me, out = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            out.add(int(entry))
    return out


def _sockets() -> set[str]:
    """This process's open sockets (``socket:[inode]``)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:"):
                out.add(target)
    return out


def _non_daemon_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if not t.daemon and t.is_alive()}


def _settled(check, timeout: float = 5.0):
    """``check()`` once it returns nothing, else its last answer after ``timeout`` s (threads,
    children and sockets a command closed may take a moment to go)."""
    end = time.monotonic() + timeout
    while (left := check()) and time.monotonic() < end:
        time.sleep(0.02)
    return left


@contextlib.contextmanager
def _fd_captured(fd: int, stream_name: str) -> Iterator[list[str]]:
    """File descriptor ``fd`` and ``sys.<stream_name>`` both written to one temporary file;
    the list it yields holds the text once the block has ended."""
    captured: list[str] = []
    saved_stream = getattr(sys, stream_name)
    with contextlib.suppress(Exception):
        saved_stream.flush()
    with tempfile.TemporaryFile() as tmp:
        saved_fd = os.dup(fd)
        os.dup2(tmp.fileno(), fd)
        text = open(fd, "w", encoding="utf-8", errors="backslashreplace", buffering=1,
                    closefd=False)
        setattr(sys, stream_name, text)
        try:
            yield captured
        finally:
            text.close()  # flushes; fd itself stays open (closefd=False)
            setattr(sys, stream_name, saved_stream)
            os.dup2(saved_fd, fd)
            os.close(saved_fd)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", "backslashreplace"))


def _default_warning_filters() -> None:
    """The filters of a plain ``python`` run (what the console script would show)."""
    warnings.resetwarnings()
    warnings.simplefilter("default")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                     ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")


def _mpl_backend() -> tuple[object, str | None]:
    """matplotlib's configured backend (as set, not resolved) and pyplot's, if imported."""
    mpl = sys.modules.get("matplotlib")
    if mpl is None:
        return None, None
    plt = sys.modules.get("matplotlib.pyplot")
    return dict.__getitem__(mpl.rcParams, "backend"), plt.get_backend() if plt else None


def _restore_mpl_backend(before: tuple[object, str | None]) -> None:
    mpl = sys.modules.get("matplotlib")
    if mpl is None:
        return
    configured, pyplot_backend = before
    plt = sys.modules.get("matplotlib.pyplot")
    if pyplot_backend is not None and plt.get_backend() != pyplot_backend:
        plt.switch_backend(pyplot_backend)
    if configured is None:  # matplotlib was first imported by the command
        configured = dict.__getitem__(mpl.rcParamsOrig, "backend")
    dict.__setitem__(mpl.rcParams, "backend", configured)


def _figures() -> set[int]:
    plt = sys.modules.get("matplotlib.pyplot")
    return set(plt.get_fignums()) if plt else set()


def sigstream(*args: str) -> subprocess.CompletedProcess:
    """``sigstream ARGS...`` in-process: the exit status and what it wrote to stdout/stderr."""
    import torch

    from sigstream.cli.main import main

    handlers = {s: signal.getsignal(s) for s in _SIGNALS}
    threads, children, sockets = _non_daemon_threads(), _children(), _sockets()
    figures, backend = _figures(), _mpl_backend()
    torch_threads = torch.get_num_threads()
    try:
        with (torch.random.fork_rng(devices=[]),  # the tests' random streams go on unshifted
              _fd_captured(1, "stdout") as out, _fd_captured(2, "stderr") as err):
            with warnings.catch_warnings(record=True) as shown:
                _default_warning_filters()
                try:
                    code = main(list(args))
                except SystemExit as exc:  # argparse errors and --help / --version
                    code = exc.code if isinstance(exc.code, int) else (
                        0 if exc.code is None else 2)
            for w in shown:  # where the interpreter would have printed them
                sys.stderr.write(warnings.formatwarning(w.message, w.category, w.filename,
                                                        w.lineno, w.line))
    finally:
        torch.set_num_threads(torch_threads)  # commands set their own thread count
        _restore_mpl_backend(backend)
        changed = {s: h for s, h in handlers.items() if signal.getsignal(s) is not h}
        for s, h in changed.items():
            signal.signal(s, h)
    leaks = []
    if changed:
        leaks.append(f"signal handlers left changed: {sorted(s.name for s in changed)}")
    if left := _settled(lambda: _non_daemon_threads() - threads):
        leaks.append(f"non-daemon threads left running: {sorted(t.name for t in left)}")
    if left := _settled(lambda: _children() - children):
        leaks.append(f"child processes left running: {sorted(left)}")
    if left := _settled(lambda: _sockets() - sockets):
        leaks.append(f"sockets left open: {len(left)}")
    if left := _figures() - figures:
        sys.modules["matplotlib.pyplot"].close("all")
        leaks.append(f"matplotlib figures left open: {sorted(left)}")
    assert not leaks, f"sigstream {' '.join(args)}: " + "; ".join(leaks)
    return subprocess.CompletedProcess(["sigstream", *args], code, "".join(out), "".join(err))


def sigstream_process(*args: str, timeout: float = 120, cwd: Path | None = None,
                      env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``sigstream ARGS...`` in a subprocess (the console script when installed)."""
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env, stdin=subprocess.DEVNULL)


__all__ = ["CMD", "EXE", "sigstream", "sigstream_process"]
