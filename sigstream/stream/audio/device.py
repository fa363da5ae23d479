"""The audio device: sounddevice loading, device lookup, configuration and the duplex stream.

N: frames, C: channels.
"""

from __future__ import annotations

import gc
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

from sigstream.core.errors import ConfigError, InputError
from sigstream.stream.audio.bridge import AudioBridge, LatencyBudget

__all__ = ["AudioConfig", "AudioDevice", "PORTAUDIO_HINT", "find_device", "list_devices",
           "load_sounddevice", "parse_latency", "probe_devices"]


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
        assert info is not None  # input or output (checked above) found its device
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
                assert in_dev is not None and out_dev is not None
                self.stream = sd.Stream(device=(in_dev["index"], out_dev["index"]),
                                        channels=(self.in_channels, self.out_channels),
                                        callback=self.bridge.duplex, **kwargs)
            elif input:
                assert in_dev is not None
                self.stream = sd.InputStream(device=in_dev["index"], channels=self.in_channels,
                                             callback=self.bridge.capture, **kwargs)
            else:
                assert out_dev is not None
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
        devices = sd.query_devices()
        if spec is None or not len(devices):
            raise InputError(
                f"no default audio {kind} device found (PortAudio sees {len(devices)} "
                "device(s)); connect one, or start a JACK server without a sound card "
                "(jackd -d dummy -r 48000 -p 256), then check `sigstream devices`"
            ) from None
        names = "; ".join(f"{i} {d['name']}" for i, d in enumerate(devices)
                          if d[f"max_{kind}_channels"] > 0)
        raise InputError(f"no audio {kind} device {spec!r}; {kind} devices: "
                         f"{names or 'none'} (`sigstream devices` lists them all)") from None
    return dict(dev)


def probe_devices(input_device: int | str | None | bool = False,
                  output_device: int | str | None | bool = False) -> None:
    """Fail fast: load PortAudio and resolve the devices (False: not used), or InputError."""
    sd = load_sounddevice()
    if input_device is not False:
        find_device(sd, input_device, "input")
    if output_device is not False:
        find_device(sd, output_device, "output")
