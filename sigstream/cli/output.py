"""What several commands print or write: the live status line, the run summary, JSON files."""

from __future__ import annotations

import json
import sys

from sigstream.core.errors import InputError
from sigstream.core.files import write_atomic
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


def summary_line(s: dict) -> str:
    """One ``done: ...`` line from a :meth:`Stats.summary` dict."""
    c = s["compute"]
    return (f"done: {s['samples_in']} samples in, {s['samples_out']} out, {s['chunks']} chunks; "
            f"compute p50 {c['p50_us']:.0f} us, p99 {c['p99_us']:.0f} us; "
            f"overruns {s['overruns']}, underruns {s['underruns']}, dropped {s['dropped']}")


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically; an unwritable path is one InputError line."""
    try:
        write_atomic(path, text.encode())
    except OSError as exc:
        raise InputError(f"cannot write {path!r}: {exc.strerror}") from None


def write_json(path: str, data: dict) -> None:
    """``data`` as indented JSON at ``path`` (atomically)."""
    write_text(path, json.dumps(data, indent=2) + "\n")
