"""Timing and memory helpers every benchmark shares: repeated calls with warm-up, percentile
summaries, resident memory, and the built-in models as the benchmarks build them."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

__all__ = ["summarise_us", "time_calls", "default_model", "rss_mb", "peak_rss_mb",
           "peak_child_rss_mb", "exported_bytes", "bench_target"]


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - not Linux
        return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_child_rss_mb() -> float:
    """The largest peak RSS of the child processes waited for so far (exports, servers)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


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


_EXPORTS: dict[tuple[str, str], bytes] = {}
# (spec, backend) -> (the file base name a background export writes, the process writing it)
_AHEAD: dict[tuple[str, str], tuple[str, subprocess.Popen]] = {}


def _export(spec: str, backend: str, model=None) -> bytes:  # noqa: ANN001
    from sigstream.export.backends import export_bytes

    return export_bytes(model if model is not None else default_model(spec), backend,
                        name=spec.partition(":")[0])


def _export_worker(folder: str, jobs: list[list[str]]) -> None:
    """The background process of :func:`exports_ahead`: each job's bytes to FOLDER/<i>.bin
    (renamed into place when whole), or its error to FOLDER/<i>.err."""
    import torch

    torch.set_num_threads(1)
    for i, (spec, backend) in enumerate(jobs):
        base = os.path.join(folder, str(i))
        try:
            data = _export(spec, backend)
        except Exception as exc:  # noqa: BLE001 - the main process reports it
            with open(base + ".err", "w") as fh:
                fh.write(f"{type(exc).__name__}: {exc}")
            continue
        with open(base + ".part", "wb") as fh:
            fh.write(data)
        os.replace(base + ".part", base + ".bin")


@contextmanager
def exports_ahead(jobs: list[tuple[str, str]]) -> Iterator[None]:
    """Export ``jobs`` ((spec, backend) pairs, in the order they will be needed) in one
    background process while the caller measures something else; :func:`exported_bytes`
    then waits for the one it needs (or exports it itself if that process died). The
    process uses one core: on a 2-core machine the caller's figures are noisier meanwhile
    (``bench --quick`` uses it, the full bench does not). It is stopped on exit."""
    import json
    import sys
    import tempfile

    todo = [key for key in dict.fromkeys(jobs) if key not in _EXPORTS]
    if not todo:
        yield
        return
    with tempfile.TemporaryDirectory() as folder:
        code = ("import json, sys; from sigstream.bench.timing import _export_worker; "
                "_export_worker(sys.argv[1], json.loads(sys.argv[2]))")
        proc = subprocess.Popen([sys.executable, "-c", code, folder, json.dumps(todo)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        for i, key in enumerate(todo):
            _AHEAD[key] = (os.path.join(folder, str(i)), proc)
        try:
            yield
        finally:
            for key in todo:
                _AHEAD.pop(key, None)
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _from_ahead(key: tuple[str, str]) -> bytes | None:
    """The background export of ``key``, waited for; None when there is none (or its
    process died before writing it)."""
    ahead = _AHEAD.pop(key, None)
    if ahead is None:
        return None
    base, proc = ahead
    while True:
        ended = proc.poll() is not None  # before looking: a file written before exit is seen
        if os.path.exists(base + ".bin"):
            with open(base + ".bin", "rb") as fh:
                return fh.read()
        if os.path.exists(base + ".err"):
            with open(base + ".err") as fh:
                raise RuntimeError(f"export of {key[0]} to {key[1]} failed: {fh.read()}")
        if ended:
            return None
        time.sleep(0.01)


def exported_bytes(spec: str, backend: str, model=None) -> bytes:  # noqa: ANN001
    """The ``backend`` export (onnx | torchscript) of the built-in model ``spec``, made once
    per process (or by :func:`exports_ahead`): every section of a benchmark that runs the
    same model on the same runtime loads the same file (an export takes seconds; the
    forecaster's over ten)."""
    key = (spec, backend)
    if key not in _EXPORTS:
        data = _from_ahead(key)
        _EXPORTS[key] = data if data is not None else _export(spec, backend, model)
    return _EXPORTS[key]


def bench_target(spec: str, backend: str, model=None, threads: int = 1):  # noqa: ANN001
    """``model`` (built from ``spec`` when None) on ``backend``: itself for torch, else a
    runner of its export (:func:`exported_bytes`, made once per process)."""
    if backend == "torch":
        return model if model is not None else default_model(spec)
    from sigstream.export.runtime import load_runner

    return load_runner(exported_bytes(spec, backend, model), threads=threads)
