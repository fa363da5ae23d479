"""Live audio: the callback bridge without a device, then real duplex streams on a private
JACK dummy server (48 kHz, period 256): device-rate callbacks, few xruns, recorded output ==
offline processing of the recorded input, played output == processed output delayed by the
stated ring depth; an overloaded worker makes the counters rise."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from _support import jack as jf
from scipy import signal

from sigstream.core.errors import ConfigError, InputError
from sigstream.stream.audio.bridge import AudioBridge, LatencyBudget
from sigstream.stream.audio.device import AudioConfig, parse_latency
from sigstream.stream.audio.endpoints import (
    RecordingSink,
    RecordingSource,
    open_audio,
    rate_adapted,
    warm_up,
)
from sigstream.stream.io.sinks import WavSink
from sigstream.stream.pipeline import Pipeline, PipelineConfig
from sigstream.stream.stage import ModelStage


class Flags:
    """A stand-in for sounddevice.CallbackFlags."""

    def __init__(self, **flags: bool) -> None:
        self.input_overflow = self.input_underflow = False
        self.output_underflow = self.output_overflow = False
        self.__dict__.update(flags)

    def __bool__(self) -> bool:
        return any(self.__dict__.values())


NO = Flags()


# -- the callback bridge, without a device ------------------------------------------------
def test_bridge_duplex_delay_underrun_and_alignment() -> None:
    b = AudioBridge(1, 1, capacity=64, prefill=8)
    out = np.empty((8, 1), np.float32)
    played = []

    def cb(values: np.ndarray) -> None:
        b.duplex(values[:, None].astype(np.float32), out, len(values), None, NO)
        played.append(out[:, 0].copy())

    x = np.arange(1, 49, dtype=np.float32)
    cb(x[:8])  # first callback: D = 8 frames of silence, not an underrun
    assert b.delay == 8 and b.counters.ring_underruns == 0
    np.testing.assert_array_equal(played[-1], 0)
    got = b.in_ring.read(8)[:, 0]  # the worker takes block 0 ...
    b.out_ring.write((got * 10)[:, None])  # ... and returns it processed
    cb(x[8:16])
    np.testing.assert_array_equal(played[-1], x[:8] * 10)  # played one block later
    b.in_ring.read(8)  # the worker misses block 1's deadline:
    cb(x[16:24])
    assert b.counters.ring_underruns == 1 and b.counters.ring_underrun_frames == 8
    np.testing.assert_array_equal(played[-1], 0)  # zeros, counted
    b.out_ring.write((x[8:16] * 10)[:, None])  # block 1 arrives late ...
    b.out_ring.write((b.in_ring.read(8)[:, 0] * 10)[:, None])  # ... then block 2 in time
    cb(x[24:32])
    assert b.counters.late_frames == 8  # block 1 was discarded, block 2 plays on time:
    np.testing.assert_array_equal(played[-1], x[16:24] * 10)  # the delay did not grow
    assert b.counters.xruns == 1 and b.counters.callbacks == 4
    assert b.counters.frames_in == b.counters.frames_out == 32


def test_bridge_ring_overrun_flags_errors_and_end() -> None:
    b = AudioBridge(2, 2, capacity=16, prefill=4, monitor=True)
    out = np.empty((8, 2), np.float32)
    blk = np.ones((8, 2), np.float32)
    b.duplex(blk, out, 8, None, Flags(input_overflow=True, output_underflow=True))
    b.duplex(blk, out, 8, None, NO)
    b.duplex(blk, out, 8, None, NO)  # the input ring (16) is full: this block is dropped
    c = b.counters
    assert (c.input_overflow, c.output_underflow, c.ring_overruns) == (1, 1, 1)
    assert c.ring_overrun_frames == 8 and c.frames_in == 16
    assert b.monitor.available == 24  # what was played, for played.wav
    b.end = 0  # the output is complete: silence after it is not an underrun
    before = c.ring_underruns
    b.duplex(blk, out, 8, None, NO)
    assert c.ring_underruns == before and not out.any()
    b.duplex(blk, np.empty((8, 3), np.float32), 8, None, NO)  # wrong shape: caught, counted
    assert c.errors == 1


def test_bridge_counts_late_callbacks_from_the_device_clock() -> None:
    now = [0.0]
    b = AudioBridge(1, 1, capacity=64, prefill=8, clock=lambda: now[0], rate=1000.0)
    blk, out = np.zeros((8, 1), np.float32), np.empty((8, 1), np.float32)
    for gap in (0.0, 0.008, 0.0119, 0.0121, 0.008, 0.030, 0.002):  # period 8 ms
        now[0] += gap
        b.duplex(blk, out, 8, None, NO)
    c = b.counters
    assert c.late_callbacks == 2  # 12.1 ms and 30 ms are over 1.5 periods; 11.9 ms is not
    assert c.early_callbacks == 1  # 2 ms is under half a period (catching up)
    assert c.interval_max_s == pytest.approx(0.030)
    assert c.as_dict()["late_callbacks"] == 2
    unknown = AudioBridge(1, 1, capacity=64, prefill=8, clock=lambda: now[0])
    for gap in (0.0, 1.0):  # no rate: the gap is kept, nothing is called late
        now[0] += gap
        unknown.duplex(blk, out, 8, None, NO)
    assert unknown.counters.late_callbacks == 0 and unknown.counters.interval_max_s == 1.0


def test_latency_budget_and_parse() -> None:
    b = LatencyBudget(rate=48000, device_in=0.0, device_out=128 / 48000, block=128 / 48000,
                      ring=128 / 48000, lookahead=0.0, resampler=72 / 48000)
    assert b.added == pytest.approx((128 + 128 + 72) / 48000)
    assert b.total == pytest.approx(b.added)
    assert b.as_dict()["added_ms"] == pytest.approx(6.8333, abs=1e-3)
    assert parse_latency("low") == "low" and parse_latency("0.01") == 0.01
    with pytest.raises(ConfigError, match="low, high or seconds"):
        parse_latency("fast")
    with pytest.raises(ConfigError, match="ring_blocks"):
        AudioConfig(ring_blocks=1).validate()


def test_missing_portaudio_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """sounddevice raises OSError('PortAudio library not found') at import: one InputError."""
    import builtins
    import sys

    from sigstream.stream import audio

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(InputError) as err:
        audio.load_sounddevice()
    msg = str(err.value)
    assert "\n" not in msg and "PortAudio library not found" in msg
    assert "apt-get install libportaudio2" in msg


# -- real streams on a JACK dummy server --------------------------------------------------
@pytest.fixture(scope="module")
def jack():
    with jf.jack_server(period=jf.PERIOD) as name:
        yield name


def enhancer_stage() -> ModelStage:
    """The 16 kHz audio-enhancer (its shipped weights, or random seeded ones while none
    ship: streaming and timing do not depend on them) when the registry has it, else a
    16 kHz Butterworth; either runs at 16 kHz, so the 48 kHz device goes through the
    resampler (the 48 kHz speech enhancer's live test is test_speech_live.py)."""
    from sigstream.core.errors import SigstreamError
    from sigstream.models.registry import MODELS, build_model

    torch.manual_seed(0)
    if "audio-enhancer" in MODELS:
        try:
            model = build_model("audio-enhancer")
        except SigstreamError:  # no weights shipped yet
            entry = MODELS["audio-enhancer"]
            model = entry.build(entry.config_type()).eval()
    else:
        model = build_model("butterworth:sample_rate=16000,high=3000")
    return ModelStage(model)


def offline(stage: ModelStage, x: np.ndarray, live) -> np.ndarray:
    """What the live chain must give for the whole input, computed independently:
    scipy.signal.upfirdn down, the model's offline forward, upfirdn up."""
    n = x.shape[0]
    d = signal.upfirdn(live.down.taps, x.astype(np.float64), 1, 3)[: -(-n // 3)]
    with torch.inference_mode():
        y = stage.runner.model(torch.from_numpy(d.astype(np.float32))[None, :, None])
    u = signal.upfirdn(live.up.taps, y[0, :, 0].double().numpy(), 3, 1)
    return np.concatenate([np.zeros(live.pad), u])[:n]


class Player:
    """A second PortAudio stream that loops a signal into the JACK graph."""

    def __init__(self, sd, x: np.ndarray) -> None:
        self.x, self.pos = x, 0
        self.stream = sd.OutputStream(samplerate=jf.RATE, channels=1, dtype="float32",
                                      callback=self._cb)

    def _cb(self, outdata, frames, time, status) -> None:
        i = np.arange(self.pos, self.pos + frames) % self.x.size
        outdata[:, 0] = self.x[i]
        self.pos += frames


def run_live(jack: str, tmp_path: Path, stage, seconds: float, *, player: bool = True,
             **config) -> tuple:
    import sounddevice as sd

    before = set(jf.jack_ports(jack))
    feeder = Player(sd, jf.speech(2.0)) if player else None
    middle = set(jf.jack_ports(jack))
    cfg = AudioConfig(rate=jf.RATE, block=jf.PERIOD, channels=1, **config)
    device, mic, spk = open_audio(cfg, mic=True, speaker=True, record_dir=tmp_path)
    if feeder is not None:  # route the player into our input (the dummy capture is silence)
        src = sorted(middle - before)
        ours = [p for p in set(jf.jack_ports(jack)) - middle if ":in_" in p]
        assert len(src) == 1 and len(ours) == 1, (src, ours)
        jf.jack_connect(jack, src[0], ours[0])
        feeder.stream.start()
    live, lookahead_s, resampler_s = rate_adapted(stage, device.rate)
    warm_up(live, jf.PERIOD, 1)
    source = RecordingSource(mic, WavSink(tmp_path / "input.wav"))
    sink = RecordingSink(spk, WavSink(tmp_path / "output.wav"))
    pipe = Pipeline(source, [live], sink, PipelineConfig(
        block=jf.PERIOD, max_frames=int(seconds * jf.RATE)))
    try:
        stats = pipe.run()
    finally:
        if feeder is not None:
            feeder.stream.close()
    return device, live, stats, device.budget(lookahead_s=lookahead_s, resampler_s=resampler_s)


def test_duplex_stream_through_the_enhancer(jack: str, tmp_path: Path) -> None:
    from sigstream.models.registry import build_model

    # the floor: a pass-through at the enhancer's rate (so through the same resamplers), with
    # the same feeder and options, just before, on the same JACK server; the dummy driver's
    # timer and the host's stalls glitch it too (1-2 % of callbacks on a loaded 2-core host)
    floor_dir = tmp_path / "floor"
    floor_dir.mkdir()
    floor_device = run_live(jack, floor_dir, ModelStage(build_model("identity:sample_rate=16000")),
                            3.0, prefill=2 * jf.PERIOD)[0]
    fc = floor_device.bridge.counters
    stage = enhancer_stage()
    # two blocks of output buffering (`--buffer 2`): shared CI hosts stall for milliseconds
    # and JACK then runs cycles back to back, which one block cannot absorb
    device, live, stats, budget = run_live(jack, tmp_path, stage, 3.0, prefill=2 * jf.PERIOD)
    c = device.bridge.counters
    # callbacks arrive at the device rate, in JACK-period blocks
    assert c.min_frames == c.max_frames == jf.PERIOD
    span = c.t_last - c.t_first
    assert (c.callbacks - 1) * jf.PERIOD / span == pytest.approx(jf.RATE, rel=0.05)
    # no more glitches than the pass-through's, beyond 1 % of callbacks and one per callback
    # that the server itself delivered off time (a host stall: late; JACK catching up after
    # it: early)
    assert c.xruns <= fc.xruns + 0.01 * c.callbacks + c.late_callbacks + c.early_callbacks, \
        {"model": c.as_dict(), "floor": fc.as_dict()}
    assert c.errors == 0
    x, rate_in = sf.read(tmp_path / "input.wav", dtype="float32")
    y, rate_out = sf.read(tmp_path / "output.wav", dtype="float32")
    played, _ = sf.read(tmp_path / "played.wav", dtype="float32")
    assert rate_in == rate_out == jf.RATE
    assert x.shape == y.shape == (3 * jf.RATE,)  # output length matches input
    assert np.sqrt(np.mean(x**2)) > 0.01  # the player's speech reached the microphone
    # the recorded output is the offline processing of the recorded input
    np.testing.assert_allclose(y, offline(stage, x, live), atol=2e-4)
    assert not np.allclose(y, 0)
    # the device played the output delayed by exactly the ring depth D (zeros where late)
    D = device.bridge.delay
    assert D == 2 * jf.PERIOD and budget.ring == pytest.approx(D / jf.RATE)
    n = min(y.size, played.size - D)
    assert np.all(played[:D] == 0)
    wrong = played[D:D + n] != y[:n]
    assert np.all(played[D:D + n][wrong] == 0)
    assert wrong.sum() <= c.ring_underrun_frames
    # the budget states every term: 48 kHz <-> 16 kHz filters 2 x 12 samples at 16 kHz
    assert budget.resampler == pytest.approx(live.latency_s - stage.latency / 16000)
    assert budget.block == pytest.approx(jf.PERIOD / jf.RATE)
    assert budget.added == pytest.approx(budget.block + budget.ring + budget.lookahead
                                         + budget.resampler)


class Slow:
    """A stage slower than real time: sleeps ``factor`` block durations per block."""

    hop, latency, in_channels, out_channels, sample_rate = 1, 0, 1, 1, float(jf.RATE)

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def process(self, block: np.ndarray) -> np.ndarray:
        time.sleep(self.factor * block.shape[0] / jf.RATE)
        return block


class GilHog(Slow):
    """A stage that holds the GIL in pure Python for 30 ms every 10th block, so the
    callback thread cannot run: the device (JACK) itself misses deadlines."""

    def __init__(self) -> None:
        self.n = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        self.n += 1
        if self.n % 10 == 0:
            end = time.perf_counter() + 0.03
            while time.perf_counter() < end:
                pass
        return block


def test_overload_makes_the_counters_rise(jack: str, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    device, _, stats, _ = run_live(jack, tmp_path / "a", Slow(2.0), 0.75, player=False)
    c = device.bridge.counters
    assert c.ring_underruns > 0.2 * c.callbacks  # the speaker starved ...
    assert c.ring_overruns > 0 and c.ring_overrun_frames > 0  # ... and the mic ring filled up
    assert c.late_frames > 0 and c.xruns > 0.2 * c.callbacks
    # a slow model is not excused as host timing: the callbacks themselves stayed on time
    assert c.xruns > 0.01 * c.callbacks + c.late_callbacks + c.early_callbacks, c.as_dict()
    assert stats.overruns >= c.ring_overruns and stats.underruns >= c.ring_underruns
    # a stage that hogs the GIL starves the callback itself: PortAudio's own flags count
    (tmp_path / "b").mkdir()
    device, _, _, _ = run_live(jack, tmp_path / "b", GilHog(), 1.0, player=False,
                               switch_interval=0.05)
    c = device.bridge.counters
    assert c.input_overflow > 0 and c.output_underflow > 0, c.as_dict()


def test_mic_only_to_a_file(jack: str, tmp_path: Path) -> None:
    """An input-only stream (mic -> WAV): device-rate blocks, every frame recorded."""
    device, mic, spk = open_audio(AudioConfig(rate=jf.RATE, block=jf.PERIOD),
                                  mic=True, speaker=False)
    assert spk is None and device.latency[1] == 0.0
    out = tmp_path / "mic.wav"
    stats = Pipeline(mic, [], WavSink(out), PipelineConfig(
        block=jf.PERIOD, max_frames=jf.RATE // 2)).run()
    y, rate = sf.read(out)
    assert rate == jf.RATE and y.shape == (jf.RATE // 2,) and stats.samples_in == y.size
    c = device.bridge.counters
    assert c.frames_in >= y.size and c.max_frames == jf.PERIOD and c.frames_out == 0


def test_unknown_device_is_one_line(jack: str) -> None:
    with pytest.raises(InputError) as err:
        open_audio(AudioConfig(rate=jf.RATE, input_device="no-such-device-xyz"),
                   mic=True, speaker=False)
    assert "no-such-device-xyz" in str(err.value) and "\n" not in str(err.value)
    assert "sigstream devices" in str(err.value)
    with pytest.raises(InputError) as err:  # an index that is not there: the ones that are
        open_audio(AudioConfig(rate=jf.RATE, input_device=7), mic=True, speaker=False)
    msg = str(err.value)
    assert msg.startswith("no audio input device 7; input devices: 0 ") and "\n" not in msg
    assert "jackd" not in msg  # a JACK server is running: starting one is no advice
    with pytest.raises(InputError, match="channel"):
        open_audio(AudioConfig(rate=jf.RATE, channels=9), mic=True, speaker=False)


def test_no_device_at_all_is_one_line(jack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PortAudio without any device (no sound card, no JACK): one line saying so. (The JACK
    fixture only provides the skip-or-fail rule for a missing PortAudio.)"""
    import sounddevice as sd

    def none(*args, **kwargs):
        if kwargs.get("kind") or args:
            raise sd.PortAudioError("Error querying device -1")
        return sd.DeviceList([])

    monkeypatch.setattr(sd, "query_devices", none)
    with pytest.raises(InputError) as err:
        open_audio(AudioConfig(rate=jf.RATE), mic=True, speaker=True)
    msg = str(err.value)
    assert "no default audio input device found" in msg and "jackd -d dummy" in msg
    assert "\n" not in msg


def test_recording_wrappers_forward(tmp_path: Path) -> None:
    from sigstream.stream.io.sinks import ArraySink
    from sigstream.stream.io.sources import ArraySource

    x = np.random.default_rng(0).standard_normal((1000, 1)).astype(np.float32)
    src = RecordingSource(ArraySource(x, 8000), WavSink(tmp_path / "in.wav"))
    sink = RecordingSink(ArraySink(), WavSink(tmp_path / "out.wav"))
    stats = Pipeline(src, [], sink, PipelineConfig(block=64)).run()
    assert stats.samples_out == 1000
    np.testing.assert_array_equal(sf.read(tmp_path / "in.wav", dtype="float32")[0], x[:, 0])
    np.testing.assert_array_equal(sf.read(tmp_path / "out.wav", dtype="float32")[0], x[:, 0])
    assert sink.inner.data.shape == (1000, 1)
