"""Progress of long work on stderr: a tqdm bar on a terminal, plain lines elsewhere.

A pipe or a log file gets one line at most every ``every_s`` seconds and one at the end
(``eval forecaster: 6/12 conditions, 41.3 s``), so a user who redirects stderr still sees
that the work moves, and a log is not flooded. Nothing is printed before the first item
is done: an error in the setup stays the only line. ``eval --quiet`` drops it all (it
redirects stderr around the evaluation).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

__all__ = ["iterate", "note"]


def iterate(items: Sequence[T] | Iterable[T], label: str, unit: str, *, total: int | None = None,
            every_s: float = 5.0) -> Iterator[T]:
    """``items``, with progress on stderr: ``label`` names the work (``eval forecaster``),
    ``unit`` one item (``condition``; an s is added for several)."""
    if total is None and isinstance(items, Sequence):
        total = len(items)
    stream = sys.stderr
    if stream.isatty():
        from tqdm.auto import tqdm

        yield from tqdm(items, total=total, desc=label, unit=unit, dynamic_ncols=True)
        return
    t0 = last = time.perf_counter()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.perf_counter()
        if now - last >= every_s or done == total:
            of = f"/{total}" if total else ""
            many = (total or done) != 1 and not unit.endswith("s")
            print(f"{label}: {done}{of} {unit}{'s' if many else ''}, {now - t0:.1f} s",
                  file=stream, flush=True)
            last = now


def note(label: str, what: str, since: float | None = None) -> None:
    """One progress line on stderr: ``label: what`` (and the seconds since ``since``)."""
    took = f" ({time.perf_counter() - since:.1f} s)" if since is not None else ""
    print(f"{label}: {what}{took}", file=sys.stderr, flush=True)
