"""Pipeline overhead: the cost of source -> ring -> stage -> sink around an identity model.

Per-chunk time is the interval between consecutive sink writes, so it covers
the whole loop (source read, ring write/read, stage call through the runner,
sink write, stats). The same chunk loop without the pipeline (slice, runner
step, write) is timed in the same run, and the ratio between the two reported.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sigstream.core.contract import Identity
from sigstream.stream.io.sinks import Sink
from sigstream.stream.io.sources import ArraySource
from sigstream.stream.pipeline import Pipeline, PipelineConfig
from sigstream.stream.runner import StreamRunner
from sigstream.stream.stage import ModelStage


class TimestampSink(Sink):
    """A null sink that records ``perf_counter()`` at every write into a preallocated array."""

    def __init__(self, capacity: int) -> None:
        self.stamps = np.zeros(capacity, dtype=np.float64)
        self.n = 0

    def _write(self, block: np.ndarray) -> None:
        self.stamps[self.n] = time.perf_counter()
        self.n += 1

    def intervals_us(self, warmup: int) -> np.ndarray:
        return np.diff(self.stamps[: self.n])[warmup:] * 1e6


def _summary(us: np.ndarray) -> dict[str, float]:
    q25, p50, q75, p99 = np.percentile(us, [25, 50, 75, 99])
    return {"p50_us": float(p50), "p99_us": float(p99), "iqr_us": float(q75 - q25),
            "mean_us": float(us.mean()), "n": int(us.size)}


def measure_pipeline(block: int, chunks: int, warmup: int, model: Any = None) -> np.ndarray:
    """``model`` (default: identity, one channel) in the whole pipeline: source, ring, stage,
    sink."""
    x = np.random.default_rng(0).standard_normal((block * chunks, 1)).astype(np.float32)
    sink = TimestampSink(chunks + 1)
    stage = ModelStage(Identity(1) if model is None else model)
    pipe = Pipeline(ArraySource(x, sample_rate=1000.0), [stage], sink,
                    PipelineConfig(block=block))
    pipe.run()
    return sink.intervals_us(warmup)


def measure_bare_loop(block: int, chunks: int, warmup: int, model: Any = None) -> np.ndarray:
    """The same chunks through the same model's runner, without source, ring, stats or
    pipeline (slice, step, write)."""
    x = np.random.default_rng(0).standard_normal((block * chunks, 1)).astype(np.float32)
    runner = StreamRunner(Identity(1) if model is None else model, batch=1, validate=False)
    sink = TimestampSink(chunks + 1)
    sink.open(1000.0, 1)
    for i in range(chunks):
        y = runner.step(x[i * block:(i + 1) * block][None])
        sink.write(y[0])
    return sink.intervals_us(warmup)


def _size(quick: bool) -> tuple[int, int]:
    """(chunks per measurement, repetitions) of the overhead and Butterworth sections."""
    return (1000, 3) if quick else (20000, 5)


def _best_interleaved(measures: dict[str, Callable[[], np.ndarray]], reps: int
                      ) -> dict[str, dict[str, float]]:
    """Each measure's summary with the lowest median over ``reps`` rounds; within a round
    every measure runs once, so drift on a shared machine hits them alike."""
    runs: dict[str, list[np.ndarray]] = {k: [] for k in measures}
    for _ in range(reps):
        for name, fn in measures.items():
            runs[name].append(fn())
    return {k: min((_summary(r) for r in v), key=lambda s: s["p50_us"])
            for k, v in runs.items()}


def _butterworth() -> Any:
    """The registry's default Butterworth (low-pass, order 4, 40 Hz at 1 kHz)."""
    from sigstream.models.registry import build_model

    return build_model("butterworth")


def measure_sosfilt_loop(block: int, chunks: int, warmup: int) -> np.ndarray:
    """The floor: the same filter as a bare ``scipy.signal.sosfilt`` loop on 1-D float32
    blocks, its ``zi`` carried, each output written to the same null sink."""
    from scipy import signal

    from sigstream.models.baselines.butterworth import ButterworthConfig

    x = np.random.default_rng(0).standard_normal((block * chunks, 1)).astype(np.float32)
    sos = ButterworthConfig().sos()
    zi = np.zeros((sos.shape[0], 2))
    sink = TimestampSink(chunks + 1)
    sink.open(1000.0, 1)
    for i in range(chunks):
        y, zi = signal.sosfilt(sos, x[i * block:(i + 1) * block, 0], zi=zi)
        sink.write(y[:, None])
    return sink.intervals_us(warmup)


def run_butterworth(quick: bool = False, blocks: tuple[int, ...] = (1, 256)) -> list[dict]:
    """Butterworth per chunk: pipeline and step alone against the bare ``sosfilt`` loop,
    interleaved repetitions, best median of each."""
    chunks, reps = _size(quick)
    rows = []
    for block in blocks:
        best = _best_interleaved({
            "pipeline": lambda b=block: measure_pipeline(b, chunks, 100, _butterworth()),
            "step": lambda b=block: measure_bare_loop(b, chunks, 100, _butterworth()),
            "sosfilt_loop": lambda b=block: measure_sosfilt_loop(b, chunks, 100)}, reps)
        floor = best["sosfilt_loop"]["p50_us"]
        rows.append({"block": block, **best,
                     "pipeline_vs_sosfilt_p50": best["pipeline"]["p50_us"] / floor,
                     "step_vs_sosfilt_p50": best["step"]["p50_us"] / floor})
    return rows


def machine() -> dict:
    try:
        import torch

        torch_version, threads = torch.__version__, torch.get_num_threads()
    except ImportError:  # pragma: no cover
        torch_version, threads = None, None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch_version, "torch_threads": threads,
            "platform": platform.platform()}


def run_overhead(quick: bool = False, progress: bool = False,
                 blocks: tuple[int, ...] = (1, 256)) -> dict:
    """Pipeline vs bare loop per block size; medians over chunks, best of a few repetitions."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    chunks, reps = _size(quick)
    rows = []
    for block in blocks:
        best = _best_interleaved({
            "pipeline": lambda b=block: measure_pipeline(b, chunks, 100),
            "bare_loop": lambda b=block: measure_bare_loop(b, chunks, 100)}, reps)
        pipe, bare = best["pipeline"], best["bare_loop"]
        rows.append({
            "block": block, "pipeline": pipe, "bare_loop": bare,
            "overhead_p50_us": pipe["p50_us"] - bare["p50_us"],
            "ratio_p50": pipe["p50_us"] / bare["p50_us"],
        })
        if progress:
            print(f"block {block}: pipeline p50 {pipe['p50_us']:.1f} us", flush=True)
    return {"schema": "sigstream-bench/overhead/1", "machine": machine(),
            "chunks": chunks, "repetitions": reps, "pipeline_overhead": rows}
