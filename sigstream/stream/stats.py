"""Pipeline statistics: counters and per-chunk timing percentiles.

Timings go into a preallocated ring of the most recent ``window`` samples, so
recording one is a store and an increment (no allocation on the hot path).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class TimingWindow:
    """The most recent ``window`` durations in seconds; percentiles on demand."""

    def __init__(self, window: int = 65536) -> None:
        self._buf = np.zeros(window, dtype=np.float64)
        self._n = 0

    def add(self, seconds: float) -> None:
        self._buf[self._n % self._buf.shape[0]] = seconds
        self._n += 1

    @property
    def count(self) -> int:
        return self._n

    def values(self) -> np.ndarray:
        return self._buf[: min(self._n, self._buf.shape[0])]

    def percentiles_us(self) -> dict[str, float]:
        """p50, p99 and max in microseconds (zeros before the first sample)."""
        v = self.values()
        if v.size == 0:
            return {"p50_us": 0.0, "p99_us": 0.0, "max_us": 0.0}
        p50, p99 = np.percentile(v, [50, 99])
        return {"p50_us": p50 * 1e6, "p99_us": p99 * 1e6, "max_us": float(v.max()) * 1e6}


@dataclass
class Stats:
    """What a :class:`~sigstream.stream.pipeline.Pipeline` run did.

    ``compute`` times the stages of each chunk; ``latency`` is the wall time
    from the arrival of a chunk's first sample to the moment its output was
    written (queueing + compute + sink), excluding the model's algorithmic
    latency, which ``algorithmic_latency_s`` states separately.
    """

    sample_rate: float | None = None
    chunks: int = 0
    samples_in: int = 0
    samples_out: int = 0
    nan_rows: int = 0  # output rows holding a NaN (a model's "no output here")
    overruns: int = 0
    underruns: int = 0
    dropped: int = 0
    rejected: int = 0
    algorithmic_latency_s: float = 0.0
    wall_s: float = 0.0
    compute: TimingWindow = field(default_factory=TimingWindow)
    latency: TimingWindow = field(default_factory=TimingWindow)

    def summary(self) -> dict:
        """A JSON-ready dict of every counter and percentile."""
        rate = self.sample_rate
        audio_s = self.samples_in / rate if rate else None
        return {
            "chunks": self.chunks,
            "samples_in": self.samples_in,
            "samples_out": self.samples_out,
            "nan_rows": self.nan_rows,
            "overruns": self.overruns,
            "underruns": self.underruns,
            "dropped": self.dropped,
            "rejected": self.rejected,
            "sample_rate": rate,
            "wall_s": self.wall_s,
            "signal_s": audio_s,
            "real_time_factor": (self.wall_s / audio_s) if audio_s else None,
            "compute": self.compute.percentiles_us(),
            "latency": self.latency.percentiles_us(),
            "algorithmic_latency_ms": self.algorithmic_latency_s * 1e3,
        }

    def line(self) -> str:
        """One status line for a terminal."""
        c = self.compute.percentiles_us()
        lat = self.latency.percentiles_us()
        t = f"{self.samples_in / self.sample_rate:7.2f}s " if self.sample_rate else ""
        return (
            f"{t}chunks {self.chunks}  compute p50 {c['p50_us']:.0f} us p99 {c['p99_us']:.0f} us"
            f"  latency p99 {lat['p99_us'] / 1e3:.2f} ms  overruns {self.overruns}"
            f"  underruns {self.underruns}  dropped {self.dropped}"
        )
