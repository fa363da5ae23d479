"""The PortAudio callback side: the bridge that only copies, its xrun counters and the
latency budget.

N: frames, C: channels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sigstream.stream.ring_buffer import RingBuffer

__all__ = ["AudioBridge", "LatencyBudget", "XrunCounters"]


class XrunCounters:
    """What the callback counted. Each kind of glitch separately:

    input_overflow / output_underflow (and the rarer input_underflow, output_overflow):
    callbacks whose PortAudio status flag was set (the device or JACK missed a deadline);
    ring_overruns: callbacks whose captured block was dropped because the input ring was
    full (the worker fell behind), ring_overrun_frames the frames dropped;
    ring_underruns: callbacks that found the output ring short (played zeros),
    ring_underrun_frames the zero frames; late_frames: processed frames discarded because
    they arrived after their slot; errors: exceptions caught in the callback;
    xruns: callbacks with any of these glitches (each callback counted once).

    The device's own timing, which no client controls: late_callbacks counts callbacks
    that came more than 1.5 periods (frames / rate) after the one before,
    early_callbacks those that came less than half a period after it (a server catching
    up after a stall, e.g. JACK running late cycles back to back), and interval_max_s is
    the longest gap. An early callback leaves the worker less than a period for the
    block it plays, so ring underruns follow; when they come with many early and late
    callbacks, the host (not the model) is what glitches, and ``--buffer 2`` is the
    remedy."""

    __slots__ = ("callbacks", "frames_in", "frames_out", "max_frames", "min_frames",
                 "input_overflow", "input_underflow", "output_underflow", "output_overflow",
                 "ring_overruns", "ring_overrun_frames", "ring_underruns",
                 "ring_underrun_frames", "late_frames", "monitor_dropped", "errors", "xruns",
                 "late_callbacks", "early_callbacks", "interval_max_s", "t_first", "t_last")

    callbacks: int
    frames_in: int
    frames_out: int
    max_frames: int
    min_frames: int
    input_overflow: int
    input_underflow: int
    output_underflow: int
    output_overflow: int
    ring_overruns: int
    ring_overrun_frames: int
    ring_underruns: int
    ring_underrun_frames: int
    late_frames: int
    monitor_dropped: int
    errors: int
    xruns: int
    late_callbacks: int
    early_callbacks: int
    interval_max_s: float
    t_first: float
    t_last: float

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)
        self.t_first = self.t_last = self.interval_max_s = 0.0

    def as_dict(self) -> dict:
        d = {name: getattr(self, name) for name in self.__slots__ if not name.startswith("t_")}
        d["xrun_fraction"] = self.xruns / self.callbacks if self.callbacks else 0.0
        span = self.t_last - self.t_first
        d["callback_span_s"] = span
        return d


class AudioBridge:
    """The callback side: copies between device buffers and rings.   N: frames, C: channels.

    ``duplex(indata, outdata, frames, time, status)``, ``capture(indata, ...)`` and
    ``playback(outdata, ...)`` are sounddevice callbacks; they are plain methods on numpy
    arrays, so they are tested without a sound card. Only the callback thread calls them;
    the worker only touches the consumer side of ``in_ring`` and the producer side of
    ``out_ring`` (and the consumer side of ``monitor``).
    """

    SCRATCH = 4096  # frames of the preallocated buffer late output is skipped through

    def __init__(self, in_channels: int, out_channels: int, capacity: int, prefill: int,
                 monitor: bool = False, clock: Callable[[], float] = time.perf_counter,
                 rate: float | None = None) -> None:
        self.in_ring = RingBuffer(capacity, in_channels) if in_channels else None
        self.out_ring = RingBuffer(capacity, out_channels) if out_channels else None
        self.monitor = (RingBuffer(capacity * 4, out_channels)
                        if monitor and out_channels else None)
        self.counters = XrunCounters()
        self.prefill = int(prefill)
        self.delay: int | None = None  # output delay D, fixed at the first output callback
        self.played = 0  # device frames output so far
        self.consumed = 0  # processed frames taken (played or discarded) from out_ring
        self.capturing = True  # the worker clears it when it stops reading (no more overruns)
        self.end: int | None = None  # processed frames in total, set once the output is complete
        self._scratch = np.zeros((self.SCRATCH, max(out_channels, 1)), dtype=np.float32)
        self._clock = clock
        self._frame_s = 1.0 / rate if rate else 0.0  # seconds per frame; 0: rate unknown

    # -- callbacks ------------------------------------------------------------------------
    def duplex(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time: Any,
               status: Any) -> None:
        try:
            glitches = self._glitches()
            self._begin(frames, status)
            self._capture(indata, frames)
            self._play(outdata, frames)
            if self._glitches() != glitches:
                self.counters.xruns += 1
        except Exception:  # never let an exception stop the stream; counted
            self.counters.errors += 1
            outdata.fill(0.0)

    def capture(self, indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        try:
            glitches = self._glitches()
            self._begin(frames, status)
            self._capture(indata, frames)
            if self._glitches() != glitches:
                self.counters.xruns += 1
        except Exception:
            self.counters.errors += 1

    def playback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        try:
            glitches = self._glitches()
            self._begin(frames, status)
            self._play(outdata, frames)
            if self._glitches() != glitches:
                self.counters.xruns += 1
        except Exception:
            self.counters.errors += 1
            outdata.fill(0.0)

    # -- the copies -----------------------------------------------------------------------
    def _glitches(self) -> int:
        c = self.counters
        return (c.input_overflow + c.input_underflow + c.output_underflow + c.output_overflow
                + c.ring_overruns + c.ring_underruns)

    def _begin(self, frames: int, status: Any) -> None:
        c = self.counters
        now = self._clock()
        if not c.callbacks:
            c.t_first = now
            c.min_frames = frames
        else:
            gap = now - c.t_last
            if gap > c.interval_max_s:
                c.interval_max_s = gap
            period = self._frame_s * frames
            if period and gap > 1.5 * period:
                c.late_callbacks += 1
            elif gap < 0.5 * period:
                c.early_callbacks += 1
        c.t_last = now
        c.callbacks += 1
        if frames > c.max_frames:
            c.max_frames = frames
        if frames < c.min_frames:
            c.min_frames = frames
        if status:
            if status.input_overflow:
                c.input_overflow += 1
            if status.input_underflow:
                c.input_underflow += 1
            if status.output_underflow:
                c.output_underflow += 1
            if status.output_overflow:
                c.output_overflow += 1

    def _capture(self, indata: np.ndarray, frames: int) -> None:
        ring = self.in_ring
        c = self.counters
        if not self.capturing:
            return
        assert ring is not None  # only the callbacks of a device with input capture
        if ring.free >= frames:  # free only grows meanwhile, so the write cannot overflow
            ring.write(indata)
            c.frames_in += frames
        else:
            c.ring_overruns += 1
            c.ring_overrun_frames += frames

    def _play(self, outdata: np.ndarray, frames: int) -> None:
        ring = self.out_ring
        assert ring is not None  # only the callbacks of a device with output play
        c = self.counters
        if self.delay is None:
            self.delay = max(self.prefill, frames)
        first = self.played - self.delay  # processed index due at outdata[0]
        lead = min(frames, -first) if first < 0 else 0
        if lead:
            outdata[:lead] = 0.0  # before the first processed frame is due: silence
        due = max(first, 0)
        late = due - self.consumed
        while late > 0:  # discard frames that arrived after their slot
            n = min(late, ring.available, self.SCRATCH)
            if n == 0:
                break
            ring.read_into(self._scratch[:n])
            self.consumed += n
            c.late_frames += n
            late -= n
        need = frames - lead
        end = self.end
        if end is not None and due + need > end:  # past the end of the output: silence
            need = max(0, end - due)
            outdata[lead + need:] = 0.0
        got = 0
        if need and self.consumed == due:
            got = min(need, ring.available)
            if got:
                ring.read_into(outdata[lead:lead + got])
                self.consumed += got
        if got < need:  # due frames that are not there: zeros, counted
            outdata[lead + got:lead + need] = 0.0
            c.ring_underruns += 1
            c.ring_underrun_frames += need - got
        self.played += frames
        c.frames_out += frames
        mon = self.monitor
        if mon is not None:
            if mon.free >= frames:
                mon.write(outdata)
            else:
                c.monitor_dropped += frames


@dataclass(frozen=True)
class LatencyBudget:
    """End-to-end latency of a live run, in seconds, term by term.

    device_in/device_out: what PortAudio reports for the stream (they include the
    device's own block, e.g. JACK's period); block: the callback size seen; ring: the
    output delay D (the worker's deadline: one pipeline block); lookahead: the model's
    algorithmic latency; resampler: both resampling filters and the hop buffering of a
    resampled model; compute_p50/p99: per-block model time, which must stay below
    ``ring`` (it is hidden inside it, not added).

    ``added`` = block + ring + lookahead + resampler (what sigstream's choices add);
    ``total`` = device_in + device_out + ring + lookahead + resampler.
    """

    rate: float
    device_in: float
    device_out: float
    block: float
    ring: float
    lookahead: float
    resampler: float
    compute_p50: float = 0.0
    compute_p99: float = 0.0

    @property
    def added(self) -> float:
        return self.block + self.ring + self.lookahead + self.resampler

    @property
    def total(self) -> float:
        return self.device_in + self.device_out + self.ring + self.lookahead + self.resampler

    def as_dict(self) -> dict:
        ms = {k: getattr(self, k) * 1e3 for k in (
            "device_in", "device_out", "block", "ring", "lookahead", "resampler",
            "compute_p50", "compute_p99", "added", "total")}
        return {f"{k}_ms": v for k, v in ms.items()}

    def line(self) -> str:
        return (f"latency {self.total * 1e3:.2f} ms = device {self.device_in * 1e3:.2f}+"
                f"{self.device_out * 1e3:.2f} + ring {self.ring * 1e3:.2f} + model "
                f"{self.lookahead * 1e3:.2f} + resampler {self.resampler * 1e3:.2f} "
                f"(added {self.added * 1e3:.2f} ms incl. block {self.block * 1e3:.2f})")
