"""Timing and memory helpers every benchmark shares: repeated calls with warm-up, percentile
summaries, resident memory, and the built-in models as the benchmarks build them."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable

import numpy as np

__all__ = ["summarise_us", "time_calls", "default_model", "rss_mb", "peak_rss_mb"]


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - not Linux
        return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summarise_us(samples_s: np.ndarray) -> dict:
    us = samples_s * 1e6
    q25, p50, q75, p99 = np.percentile(us, [25, 50, 75, 99])
    return {"p50_us": float(p50), "p99_us": float(p99), "iqr_us": float(q75 - q25),
            "n": int(us.size)}


def time_calls(fn: Callable[[], object], budget_s: float, min_reps: int = 30,
               max_reps: int = 20000, warmup: int = 10) -> np.ndarray:
    """Per-call wall times (s): warm-up calls first, then repeat until the budget is spent.

    A call that alone takes a tenth of the budget or more (the least-squares forecaster on
    long chunks) gets two warm-up calls and at least five timed ones instead, and one that
    alone takes the whole budget or more only the first call as warm-up and three timed
    ones: a p50 of those is still a fair figure, and the benchmark does not run for many
    minutes.
    """
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first >= budget_s:
        warmup, min_reps = 1, min(min_reps, 3)
    elif first >= budget_s / 10:
        warmup, min_reps = min(warmup, 2), min(min_reps, 5)
    for _ in range(warmup - 1):
        fn()
    out = np.empty(max_reps)
    clock = time.perf_counter
    start = clock()
    n = 0
    while n < max_reps and (n < min_reps or clock() - start < budget_s):
        t0 = clock()
        fn()
        out[n] = clock() - t0
        n += 1
    return out[:n]


def default_model(name: str):
    """A built-in model with its default config; random weights where none ship yet
    (timings do not depend on the weights' values)."""
    from sigstream.core.errors import ConfigError
    from sigstream.models.registry import MODELS, build_model, make_config, parse_options

    try:
        return build_model(name)  # NAME or NAME:key=value,...
    except ConfigError:
        base, _, opts = name.partition(":")
        entry = MODELS[base]
        return entry.build(make_config(entry.config_type, parse_options(opts))).eval()
