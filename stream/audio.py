"""Live audio: a microphone source, a speaker sink and a duplex mode, on sounddevice.

N: frames, C: channels.

::

    device ──callback──> input ring ──worker: Pipeline (stages)──> output ring ──callback──> device

The PortAudio callback (:class:`AudioBridge`) only copies: captured frames into the
input ring, the output ring into the device buffer, and (when recording) the played
frames into a monitor ring. It allocates no sample memory, never blocks, logs
nothing and never calls the model. The worker is the thread that runs
:meth:`~sigstream.stream.pipeline.Pipeline.run`: :class:`MicSource` hands it what the
callback captured (it sleeps in short steps while the ring is empty: no lock is ever
shared with the callback), the stages run, :class:`SpeakerSink` puts the result into
the output ring.

Timing of the output. Processed frame ``i`` is played at device frame ``i + D``:
``D`` (the output delay, "ring depth") is ``max(prefill, first callback size)``, so
the worker has one block period to process a block before it is due. When the worker
is late, the callback plays zeros for the missing frames (an output *ring underrun*,
counted) and the frames that arrive after their slot are discarded (``late_frames``),
so the delay never creeps up: the played stream stays sample-aligned with the input,
with zeros where it was late. When the worker falls so far behind that the input ring
is full, the callback drops the captured block (an input *ring overrun*, counted).
PortAudio's own flags (``input_overflow``, ``output_underflow``, ...; the device or
JACK missed a deadline) are counted separately.

sounddevice is imported lazily (:func:`load_sounddevice`), so the rest of sigstream
works on machines without PortAudio; a missing library or device is one
:class:`~sigstream.stream.errors.InputError` line naming what to install.
"""

from __future__ import annotations

import gc
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sigstream.stream.errors import ConfigError, InputError
from sigstream.stream.ring_buffer import RingBuffer
from sigstream.stream.sinks import Sink, WavSink
from sigstream.stream.sources import Source

__all__ = [
    "AudioConfig", "AudioBridge", "AudioDevice", "MicSource", "SpeakerSink", "XrunCounters",
    "LatencyBudget", "RecordingSource", "RecordingSink", "load_sounddevice", "open_audio",
    "parse_latency", "list_devices", "rate_adapted", "warm_up", "find_device",
    "probe_devices",
]

PORTAUDIO_HINT = (
    "install it: Debian/Ubuntu 'apt-get install libportaudio2', Fedora 'dnf install "
    "portaudio', macOS/Windows 'pip install --force-reinstall sounddevice' (its wheels bundle it)"
)


def load_sounddevice() -> Any:
    """Import sounddevice; a missing package or PortAudio library is one InputError line."""
    try:
        import sounddevice
    except OSError as err:  # raised by sounddevice when libportaudio cannot be loaded
        raise InputError(f"audio needs the PortAudio library ({err}); {PORTAUDIO_HINT}") from None
    except ImportError as err:
        raise InputError(
            f"audio needs the sounddevice package ({err}); install it: pip install sounddevice"
        ) from None
    return sounddevice


def list_devices() -> str:
    """What ``python -m sounddevice`` prints: every device, '>' default input, '<' output."""
    sd = load_sounddevice()
    devices = sd.query_devices()
    apis = sd.query_hostapis()
    lines = [str(devices)] if len(devices) else [
        "no audio devices found: connect one, or start a JACK server without a sound card "
        "(jackd -d dummy -r 48000 -p 256)"]
    lines.append("host APIs: " + ", ".join(
        f"{a['name']} ({len(a['devices'])} device(s))" for a in apis))
    return "\n".join(lines)


def parse_latency(text: str | float) -> str | float:
    """``low`` | ``high`` | a number of seconds (PortAudio's suggested latency)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        word = str(text).strip().lower()
        if word in ("low", "high"):
            return word
        try:
            value = float(word)
        except ValueError:
            raise ConfigError(f"latency must be low, high or seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"latency must be low, high or seconds >= 0, got {text!r}")
    return value


@dataclass(frozen=True)
class AudioConfig:
    """rate: device Hz (None: the device's default); block: pipeline block in frames, also
    the output prefill; device_block: frames per callback asked of PortAudio (0: the host's
    natural size, e.g. JACK's period, which adds no buffering); channels: input channels;
    out_channels: output channels (None: same); latency: low | high | seconds;
    input_device / output_device: index or name substring (None: default);
    ring_blocks: input and output ring capacity in blocks; prefill: output delay in frames
    (None: block); poll_s: the worker's sleep while waiting for input; switch_interval:
    the interpreter's GIL switch interval while the stream runs (None: unchanged), short
    so the callback thread gets the GIL within a fraction of a block; worker_priority:
    SCHED_FIFO priority (1-99) for the worker thread while it reads the microphone, 0 for
    the normal scheduler (Linux; needs root or CAP_SYS_NICE / an rtprio limit, otherwise
    it stays normal and :attr:`MicSource.priority` says so)."""

    rate: float | None = None
    block: int = 256
    device_block: int = 0
    channels: int = 1
    out_channels: int | None = None
    latency: str | float = "low"
    input_device: int | str | None = None
    output_device: int | str | None = None
    ring_blocks: int = 8
    prefill: int | None = None
    poll_s: float = 0.0002
    switch_interval: float | None = 0.0002
    worker_priority: int = 1

    def validate(self) -> None:
        if self.block < 1:
            raise ConfigError(f"block must be >= 1, got {self.block}")
        if self.device_block < 0:
            raise ConfigError(f"device block must be >= 0, got {self.device_block}")
        if self.channels < 1 or (self.out_channels is not None and self.out_channels < 1):
            raise ConfigError("audio channels must be >= 1")
        if self.ring_blocks < 2:
            raise ConfigError(f"ring_blocks must be >= 2, got {self.ring_blocks}")
        if self.prefill is not None and self.prefill < 0:
            raise ConfigError(f"prefill must be >= 0 frames, got {self.prefill}")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ConfigError(f"rate must be a positive number of Hz, got {self.rate}")
        parse_latency(self.latency)


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
        if ring.free >= frames:  # free only grows meanwhile, so the write cannot overflow
            ring.write(indata)
            c.frames_in += frames
        else:
            c.ring_overruns += 1
            c.ring_overrun_frames += frames

    def _play(self, outdata: np.ndarray, frames: int) -> None:
        ring = self.out_ring
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


class AudioDevice:
    """One PortAudio stream (input, output or duplex) and its :class:`AudioBridge`.

    Opened (devices resolved, stream created) at construction, started by the first
    :meth:`start`, stopped when every user has called :meth:`release`.
    """

    def __init__(self, config: AudioConfig, *, input: bool, output: bool,
                 monitor: bool = False) -> None:
        config.validate()
        if not (input or output):
            raise ConfigError("an audio device needs input, output or both")
        self.config = config
        self.sd = sd = load_sounddevice()
        self.has_input, self.has_output = input, output
        self.in_channels = config.channels if input else 0
        self.out_channels = (config.out_channels or config.channels) if output else 0
        in_dev = find_device(sd, config.input_device, "input") if input else None
        out_dev = find_device(sd, config.output_device, "output") if output else None
        info = in_dev or out_dev
        self.device_names = tuple(d["name"] for d in (in_dev, out_dev) if d)
        self.rate = float(config.rate or info["default_samplerate"])
        for dev, kind, ch in ((in_dev, "input", self.in_channels),
                              (out_dev, "output", self.out_channels)):
            if dev is not None and dev[f"max_{kind}_channels"] < ch:
                raise InputError(
                    f"the {kind} device '{dev['name']}' has {dev[f'max_{kind}_channels']} "
                    f"{kind} channel(s), {ch} requested; use --channels "
                    f"{dev[f'max_{kind}_channels']} or another device (sigstream devices)"
                )
        prefill = config.block if config.prefill is None else config.prefill
        capacity = max(config.ring_blocks * max(config.block, config.device_block),
                       prefill + 2 * max(config.block, config.device_block, 1024))
        self.bridge = AudioBridge(self.in_channels, self.out_channels, capacity, prefill,
                                  monitor=monitor, rate=self.rate)
        kwargs = dict(samplerate=self.rate, blocksize=config.device_block, dtype="float32",
                      latency=parse_latency(config.latency))
        try:
            if input and output:
                self.stream = sd.Stream(device=(in_dev["index"], out_dev["index"]),
                                        channels=(self.in_channels, self.out_channels),
                                        callback=self.bridge.duplex, **kwargs)
            elif input:
                self.stream = sd.InputStream(device=in_dev["index"], channels=self.in_channels,
                                             callback=self.bridge.capture, **kwargs)
            else:
                self.stream = sd.OutputStream(device=out_dev["index"],
                                              channels=self.out_channels,
                                              callback=self.bridge.playback, **kwargs)
        except (sd.PortAudioError, ValueError) as err:
            raise InputError(
                f"cannot open audio {'/'.join(self.device_names)} at {self.rate:g} Hz with "
                f"{self.in_channels} in / {self.out_channels} out channel(s): {err}; "
                "check --rate/--channels against `sigstream devices`"
            ) from None
        self._users = int(input) + int(output)
        self._started = False
        self._closed = False
        self._old_switch: float | None = None
        self._frozen = False
        self.t_start = 0.0

    @property
    def active(self) -> bool:
        return self._started and not self._closed and bool(self.stream.active)

    @property
    def latency(self) -> tuple[float, float]:
        """(input, output) latency in seconds as PortAudio reports it (0 for a missing side)."""
        lat = self.stream.latency
        if self.has_input and self.has_output:
            return float(lat[0]), float(lat[1])
        return (float(lat), 0.0) if self.has_input else (0.0, float(lat))

    def start(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        if self.config.switch_interval is not None:
            self._old_switch = sys.getswitchinterval()
            sys.setswitchinterval(self.config.switch_interval)
        gc.collect()
        gc.freeze()  # what exists now is never scanned again: short collections while live
        self._frozen = True
        self.t_start = time.perf_counter()
        try:
            self.stream.start()
        except self.sd.PortAudioError as err:
            self._restore()
            raise InputError(f"cannot start the audio stream: {err}") from None

    def release(self) -> None:
        """One user is done; the last one stops and closes the stream."""
        self._users -= 1
        if self._users <= 0:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._started:
                self.stream.stop()
            self.stream.close()
        except self.sd.PortAudioError:
            pass
        finally:
            self._restore()

    def _restore(self) -> None:
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
        if self._old_switch is not None:
            sys.setswitchinterval(self._old_switch)
            self._old_switch = None

    def budget(self, *, lookahead_s: float = 0.0, resampler_s: float = 0.0,
               compute_p50_s: float = 0.0, compute_p99_s: float = 0.0) -> LatencyBudget:
        c = self.bridge.counters
        block = c.max_frames or self.config.device_block or self.config.block
        if self.has_output:
            ring = self.bridge.delay if self.bridge.delay is not None else max(
                self.bridge.prefill, block)
        else:
            ring = 0
        din, dout = self.latency
        return LatencyBudget(rate=self.rate, device_in=din, device_out=dout,
                             block=block / self.rate, ring=ring / self.rate,
                             lookahead=lookahead_s, resampler=resampler_s,
                             compute_p50=compute_p50_s, compute_p99=compute_p99_s)


def find_device(sd: Any, spec: int | str | None, kind: str) -> dict:
    """The device info of ``spec`` (index, name substring, None: default) for ``kind``
    (input/output); InputError when there is none."""
    if isinstance(spec, str) and spec.strip().lstrip("-").isdigit():
        spec = int(spec)
    try:
        dev = sd.query_devices(spec, kind=kind)
    except ValueError as err:
        raise InputError(f"{err}; list the devices with `sigstream devices`") from None
    except sd.PortAudioError:
        what = "no default" if spec is None else f"no {spec!r}"
        raise InputError(
            f"{what} audio {kind} device found (PortAudio sees {len(sd.query_devices())} "
            "device(s)); connect one, or start a JACK server without a sound card "
            "(jackd -d dummy -r 48000 -p 256), then check `sigstream devices`"
        ) from None
    return dict(dev)


def probe_devices(input_device: int | str | None | bool = False,
                  output_device: int | str | None | bool = False) -> None:
    """Fail fast: load PortAudio and resolve the devices (False: not used), or InputError."""
    sd = load_sounddevice()
    if input_device is not False:
        find_device(sd, input_device, "input")
    if output_device is not False:
        find_device(sd, output_device, "output")


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
        self._ring = device.bridge.in_ring
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
        self._ring = device.bridge.out_ring
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
    played = WavSink(os.path.join(os.fspath(record_dir), "played.wav")) if monitor else None
    sink = SpeakerSink(device, monitor=played) if speaker else None
    return device, source, sink


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
