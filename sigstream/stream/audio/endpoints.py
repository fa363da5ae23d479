"""Pipeline endpoints on an audio device: microphone source, speaker sink, recording
wrappers, and the helpers that fit a stage to the device rate.

N: frames, C: channels.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sigstream.core.errors import ConfigError, InputError
from sigstream.stream.audio.device import AudioConfig, AudioDevice
from sigstream.stream.io.sinks import Sink, WavSink
from sigstream.stream.io.sources import Source

__all__ = ["open_audio", "MicSource", "RecordingSink", "RecordingSource", "SpeakerSink",
           "rate_adapted", "warm_up"]


class MicSource(Source):
    """Frames the device captured; live (never ends by itself: :meth:`stop` ends it).

    N: frames, C: channels. ``read`` waits (sleeping ``poll_s`` at a time) until the
    callback has delivered something, then returns what is there (up to the request).
    ``overruns``/``dropped``: callbacks/frames the callback dropped on a full input ring.
    """

    live = True

    def __init__(self, device: AudioDevice) -> None:
        if not device.has_input:
            raise ConfigError("MicSource needs a device opened with input")
        self.device = device
        self.sample_rate = device.rate
        self.channels = device.in_channels
        self.frames_read = 0
        self._stop = threading.Event()
        ring = device.bridge.in_ring
        assert ring is not None  # a device opened with input has an input ring
        self._ring = ring
        self._poll = device.config.poll_s
        self.priority = "normal"
        """The worker's scheduling while reading: "normal", "fifo:N" or "normal (why)"."""
        self._restore_sched: Callable[[], None] | None = None
        self._prioritised = False

    @property
    def overruns(self) -> int:
        return self.device.bridge.counters.ring_overruns

    @property
    def dropped(self) -> int:
        return self.device.bridge.counters.ring_overrun_frames

    def stop(self) -> None:
        self._stop.set()

    def _read(self, max_frames: int) -> np.ndarray | None:
        dev = self.device
        if not self._prioritised:
            self._prioritised = True
            self._raise_priority(dev.config.worker_priority)
        dev.start()
        ring = self._ring
        waited = 0.0
        while True:
            if self._stop.is_set():
                return None
            n = ring.available
            if n:
                return ring.read(min(n, max_frames))
            if waited > 2.0 and not dev.active:
                raise InputError("the audio input stopped delivering (device gone?)")
            # sleep until just before the next callback is due, at least poll_s
            c = dev.bridge.counters
            due = c.t_last + (c.max_frames or dev.config.block) / dev.rate - time.perf_counter()
            nap = max(self._poll, due - self._poll)
            time.sleep(nap)
            waited += nap

    def _raise_priority(self, priority: int) -> None:
        """SCHED_FIFO for the calling (worker) thread, restored at :meth:`close`."""
        if priority <= 0:
            return
        if not hasattr(os, "sched_setscheduler"):
            self.priority = "normal (no SCHED_FIFO on this system)"
            return
        try:
            old_policy = os.sched_getscheduler(0)
            old_param = os.sched_getparam(0)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except OSError as err:
            self.priority = f"normal (SCHED_FIFO refused: {err.strerror})"
            return
        self.priority = f"fifo:{priority}"
        thread = threading.get_ident()

        def restore() -> None:
            if threading.get_ident() == thread:
                try:
                    os.sched_setscheduler(0, old_policy, old_param)
                except OSError:
                    pass

        self._restore_sched = restore

    def _close(self) -> None:
        self.device.bridge.capturing = False
        if self._restore_sched is not None:
            self._restore_sched()
        self.device.release()


class SpeakerSink(Sink):
    """Frames to play: into the output ring, which the callback plays at delay ``D``.

    N: frames, C: channels. ``write`` waits while the ring is full (so a file source is
    paced by the device clock); ``close`` waits until everything written has been played
    (or discarded as late), then releases the device. ``underruns``: callbacks that found
    the ring short. ``monitor``: an optional sink receiving exactly what was played.
    """

    def __init__(self, device: AudioDevice, monitor: Sink | None = None) -> None:
        if not device.has_output:
            raise ConfigError("SpeakerSink needs a device opened with output")
        self.device = device
        ring = device.bridge.out_ring
        assert ring is not None  # a device opened with output has an output ring
        self._ring = ring
        self._monitor = monitor
        self._written = 0

    @property
    def underruns(self) -> int:
        return self.device.bridge.counters.ring_underruns

    def _open(self, sample_rate: float | None, channels: int) -> None:
        dev = self.device
        if sample_rate is not None and float(sample_rate) != dev.rate:
            raise InputError(
                f"the output runs at {float(sample_rate):g} Hz but the speaker at "
                f"{dev.rate:g} Hz; use --rate {float(sample_rate):g} or let sigstream resample"
            )
        if channels != dev.out_channels:
            raise InputError(
                f"the output has {channels} channel(s) but the speaker was opened with "
                f"{dev.out_channels}"
            )
        if self._monitor is not None:
            self._monitor.open(dev.rate, channels)

    def _write(self, block: np.ndarray) -> None:
        ring = self._ring
        dev = self.device
        n = block.shape[0]
        pos = 0
        waited = 0.0
        while pos < n:
            free = ring.free
            if free:
                m = min(free, n - pos)
                ring.write(block[pos:pos + m])
                pos += m
                waited = 0.0
                continue
            dev.start()  # output only: the stream starts once the ring is full
            if waited > 2.0 and not dev.active:
                raise InputError("the audio output stopped playing (device gone?)")
            time.sleep(dev.config.poll_s * 5)
            waited += dev.config.poll_s * 5
        self._written += n
        self._drain_monitor()

    def _drain_monitor(self) -> None:
        mon = self.device.bridge.monitor
        if self._monitor is not None and mon is not None and mon.available:
            self._monitor.write(mon.read(mon.available))

    def _close(self) -> None:
        dev = self.device
        dev.start()  # a short output that never filled the ring still gets played
        bridge = dev.bridge
        bridge.end = self._written  # frames after the end are silence, not underruns
        deadline = time.perf_counter() + 2.0 + (self._written + (bridge.delay or 0)) / dev.rate
        while bridge.consumed < self._written and time.perf_counter() < deadline:
            if not dev.active:
                break
            time.sleep(0.002)
            self._drain_monitor()
        # let the callback play the last frames it took, then stop
        if dev.active and bridge.consumed >= self._written:
            time.sleep(2 * (bridge.counters.max_frames or dev.config.block) / dev.rate)
        dev.release()
        self._drain_monitor()
        if self._monitor is not None:
            self._monitor.close()

    def _abort(self) -> None:
        self.device.release()
        if self._monitor is not None:
            self._monitor.abort()


class RecordingSource(Source):
    """Any source, with every frame it delivers also written to ``sink`` (e.g. a WAV)."""

    def __init__(self, source: Source, sink: Sink) -> None:
        self.inner, self.sink = source, sink
        self.sample_rate, self.channels = source.sample_rate, source.channels
        self.total_frames = getattr(source, "total_frames", None)
        self.frames_read = 0
        self.live = bool(getattr(source, "live", False))
        sink.open(self.sample_rate, self.channels)

    def __getattr__(self, name: str) -> Any:  # overruns, dropped, stop, ... of the inner source
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def _read(self, max_frames: int) -> np.ndarray | None:
        data = self.inner.read(max_frames)
        if data is not None:
            self.sink.write(data)
        return data

    def _close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.sink.close()


class RecordingSink(Sink):
    """Any sink, with every block it is given also written to ``copy`` (e.g. a WAV)."""

    def __init__(self, sink: Sink, copy: Sink) -> None:
        self.inner, self.copy = sink, copy

    def __getattr__(self, name: str) -> Any:  # underruns, ... of the inner sink
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def _open(self, sample_rate: float | None, channels: int) -> None:
        self.copy.open(sample_rate, channels)
        try:
            self.inner.open(sample_rate, channels)
        except BaseException:
            self.copy.abort()
            raise

    def _write(self, block: np.ndarray) -> None:
        self.copy.write(block)
        self.inner.write(block)

    def _close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.copy.close()

    def _abort(self) -> None:
        self.inner.abort()
        self.copy.abort()


def rate_adapted(stage: Any, rate: float, zero_crossings: int = 12
                 ) -> tuple[Any, float, float]:
    """``stage`` as a stage at the device ``rate``: itself when its model runs at that rate
    (or any rate), else wrapped in a :class:`~sigstream.stream.resample.ResampledStage`.

    Returns (stage, model lookahead in s, resampler delay incl. hop buffering in s).
    """
    from sigstream.stream.resample import ResampledStage

    model_rate = getattr(stage, "sample_rate", None)
    if not model_rate or float(model_rate) == float(rate):
        lookahead = int(getattr(stage, "latency", 0)) / float(rate)
        return stage, lookahead, 0.0
    wrapped = ResampledStage(stage, rate, float(model_rate), zero_crossings=zero_crossings)
    lookahead = int(getattr(stage, "latency", 0)) / float(model_rate)
    return wrapped, lookahead, wrapped.latency_s - lookahead


def warm_up(stage: Any, block: int, channels: int) -> None:
    """Run one block of zeros through ``stage`` and reset it, so the first live block does
    not pay for lazy initialisation (allocations, kernel selection) inside its deadline."""
    stage.process(np.zeros((block, channels), dtype=np.float32))
    reset = getattr(stage, "reset", None)
    if callable(reset):
        reset()


def open_audio(config: AudioConfig, *, mic: bool, speaker: bool,
               record_dir: str | os.PathLike | None = None
               ) -> tuple[AudioDevice, MicSource | None, SpeakerSink | None]:
    """One device (duplex when both ``mic`` and ``speaker``), its source and/or sink.

    With ``record_dir`` the sink also writes ``played.wav``: exactly what the device
    played (the output delay's leading silence, zeros where it underran).
    """
    monitor = speaker and record_dir is not None
    device = AudioDevice(config, input=mic, output=speaker, monitor=monitor)
    source = MicSource(device) if mic else None
    played = (WavSink(os.path.join(os.fspath(record_dir), "played.wav"))
              if monitor and record_dir is not None else None)
    sink = SpeakerSink(device, monitor=played) if speaker else None
    return device, source, sink
