"""The 48 kHz speech enhancer live: ``sigstream run --source mic --sink speaker`` on a
private JACK dummy server at 48 kHz, against a bare pass-through in the same test.

Speech (Debian alsa-utils' recording, or a synthetic voice; ``_support.jack.speech``) is
played into the run's microphone by a second PortAudio stream, connected with
jack_connect as soon as the command's input port appears. The model is a checkpoint of
``SpeechEnhancer()`` (seeded random weights, near the identity) saved in tmp_path, which
the registry loads as the speech enhancer (``--model PATH``); timing does not depend on
the weights. The device runs at the model's rate, so nothing is resampled. The model runs
on ONNX Runtime, as the README's live command has it (``--backend onnx``): eager torch
takes about 1.9 ms per 256-frame block on this 2-core machine against 0.5 ms on ONNX
Runtime, and with JACK, the feeder and the command sharing two cores the eager path's
tail reaches the 5.3 ms period.

The floor: the JACK dummy driver's timer itself overruns now and then (1-2 % of
callbacks on a loaded 2-core machine), so the enhancer's xruns are compared with those
of ``identity:sample_rate=48000`` run with the same options and the same feeder, plus 1 %
of the callbacks and one per callback the server itself delivered off time (late or
early), the allowance of the other live tests. Glitches come in bursts (one stall of the
host costs several callbacks), so one run of each is a sample of one burst or none: the
test runs the pair twice, interleaved, and compares the totals.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from _support import jack as jf
from _support.cli import sigstream as sig

from sigstream.models.enhancer.speech import SpeechEnhancer

SECONDS = 4
BLOCK = jf.PERIOD  # 256 frames = 5.33 ms at 48 kHz
BUFFER = 2  # `--buffer 2`: shared hosts stall for milliseconds (see test_audio.py)


@pytest.fixture(scope="module")
def jack():
    with jf.jack_server(period=jf.PERIOD) as name:
        yield name


@pytest.fixture(scope="module")
def speech_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sigstream.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = SpeechEnhancer().eval()
    path = tmp_path_factory.mktemp("speech") / "enhancer.pt"
    save_checkpoint(str(path), "enhancer", model.config, model)
    return path


def test_the_registry_loads_the_speech_checkpoint(speech_checkpoint: Path) -> None:
    """A checkpoint saved under the name ``enhancer`` with a SpeechConfig comes back as the
    speech enhancer (old 16 kHz checkpoints, with ``taps``, go to ``audio-enhancer``)."""
    from sigstream.models.registry import build_model

    model = build_model(str(speech_checkpoint))
    assert isinstance(model, SpeechEnhancer)
    assert model.sample_rate == 48000 and model.latency == 479


class Feeder:
    """Plays ``x`` in a loop from a second PortAudio stream and connects it to the first
    new JACK input port that appears (the command's microphone), from a daemon thread."""

    def __init__(self, jack: str, x: np.ndarray) -> None:
        import sounddevice as sd

        before = set(jf.jack_ports(jack))
        self.x, self.pos, self.jack = x, 0, jack
        self.stream = sd.OutputStream(samplerate=jf.RATE, channels=1, dtype="float32",
                                      callback=self._cb)
        self.known = set(jf.jack_ports(jack))
        src = sorted(self.known - before)
        assert len(src) == 1, src
        self.src, self.connected = src[0], threading.Event()
        self.stream.start()
        self.thread = threading.Thread(target=self._connect, daemon=True)
        self.thread.start()

    def _cb(self, outdata, frames, time_info, status) -> None:
        i = np.arange(self.pos, self.pos + frames) % self.x.size
        outdata[:, 0] = self.x[i]
        self.pos += frames

    def _connect(self) -> None:
        def ours() -> list[str]:
            return [p for p in set(jf.jack_ports(self.jack)) - self.known if ":in_" in p]

        end = time.monotonic() + 20
        while time.monotonic() < end:  # every 50 ms: jack_lsp is a process of its own
            if found := ours():
                jf.jack_connect(self.jack, self.src, found[0])
                self.connected.set()
                return
            time.sleep(0.05)

    def close(self) -> None:
        self.thread.join(timeout=25)
        self.stream.close()


def live_run(jack: str, tmp_path: Path, model: str, feed: bool,
             tag: str = "", backend: str = "torch") -> tuple[dict, str, Path]:
    """``sigstream run --model MODEL --backend BACKEND --source mic --sink speaker`` for
    SECONDS; returns (stats JSON, stderr, record folder)."""
    name = f"{'feed' if feed else 'bare'}{tag}"
    stats, rec = tmp_path / f"{name}-stats.json", tmp_path / f"rec-{name}"
    feeder = Feeder(jack, jf.speech(2.0)) if feed else None
    try:
        p = sig("run", "--model", model, "--backend", backend, "--source", "mic", "--sink",
                "speaker", "--block", str(BLOCK), "--seconds", str(SECONDS), "--buffer",
                str(BUFFER), "--record", str(rec), "--stats-json", str(stats))
    finally:
        if feeder is not None:
            feeder.close()
    assert p.returncode == 0, p.stderr
    if feeder is not None:
        assert feeder.connected.is_set(), "the command's input port never appeared"
    return json.loads(stats.read_text()), p.stderr, rec


def test_speech_enhancer_live_at_48k_against_a_pass_through(
        jack: str, tmp_path: Path, speech_checkpoint: Path) -> None:
    floors, runs = [], []
    for r in range(2):  # interleaved: floor, model, floor, model
        floors.append(live_run(jack, tmp_path, "identity:sample_rate=48000", True, f"id{r}")[0])
        runs.append(live_run(jack, tmp_path, str(speech_checkpoint), True, f"enh{r}",
                             backend="onnx"))
    s, err, rec = runs[-1]
    floor = floors[-1]
    a, f = s["audio"], floor["audio"]
    # at the model's rate: no resampler
    assert a["rate"] == 48000 and a["model_rate"] == 48000 and not a["resampled"]
    c = a["counters"]
    assert c["min_frames"] == c["max_frames"] == BLOCK and c["errors"] == 0
    assert c["callbacks"] >= 0.95 * SECONDS * jf.RATE / BLOCK
    # xruns, both rounds together: no more than the pass-through's under the same feeder,
    # beyond 1 % and the callbacks the server itself delivered off time
    cs = [run[0]["audio"]["counters"] for run in runs]
    fcs = [fl["audio"]["counters"] for fl in floors]
    allowance = sum(0.01 * k["callbacks"] + k["late_callbacks"] + k["early_callbacks"]
                    for k in cs)
    detail = {"model": cs, "floor": fcs,
              "compute_us": [{q: run[0]["compute"][q] for q in ("p50_us", "p99_us")}
                             for run in runs]}
    assert sum(k["xruns"] for k in cs) <= sum(k["xruns"] for k in fcs) + allowance, \
        json.dumps(detail)
    # per-block compute stays inside the output ring (the worker's deadline)
    for run in runs:
        assert run[0]["compute"]["p99_us"] < 1e6 * BUFFER * BLOCK / jf.RATE, json.dumps(detail)

    # the latency budget: the model's 479 samples, the output ring, no resampler
    b = a["budget"]
    assert b["lookahead_ms"] == pytest.approx(479 / 48, abs=1e-6)  # 9.98 ms
    assert b["resampler_ms"] == 0.0
    assert b["ring_ms"] == pytest.approx(BUFFER * BLOCK / 48, abs=1e-6)
    assert b["block_ms"] == pytest.approx(BLOCK / 48, abs=1e-6)
    assert b["added_ms"] == pytest.approx(b["block_ms"] + b["ring_ms"] + b["lookahead_ms"])
    assert b["total_ms"] == pytest.approx(b["device_in_ms"] + b["device_out_ms"]
                                          + b["ring_ms"] + b["lookahead_ms"])
    fb = f["budget"]
    assert b["added_ms"] - fb["added_ms"] == pytest.approx(479 / 48, abs=1e-6)
    # ... and the line the command prints states them
    line = next(ln for ln in err.splitlines() if ln.startswith("audio: "))
    assert f"xruns {c['xruns']} " in line
    m = re.search(r"latency ([\d.]+) ms = device ([\d.]+)\+([\d.]+) \+ ring ([\d.]+) \+ "
                  r"model ([\d.]+) \+ resampler ([\d.]+) \(added ([\d.]+) ms", line)
    assert m, line
    assert m.group(5) == "9.98" and m.group(6) == "0.00", line
    assert float(m.group(1)) == pytest.approx(b["total_ms"], abs=0.006)
    assert float(m.group(7)) == pytest.approx(b["added_ms"], abs=0.006)

    # finite output that is the model's offline processing of what the microphone got
    x, rx = sf.read(rec / "input.wav", dtype="float32")
    y, ry = sf.read(rec / "output.wav", dtype="float32")
    assert rx == ry == 48000 and x.shape == y.shape == (SECONDS * jf.RATE,)
    assert np.isfinite(y).all()
    assert np.sqrt(np.mean(x[jf.RATE:] ** 2)) > 0.01  # the fed speech reached the mic
    from sigstream.models.registry import build_model

    model = build_model(str(speech_checkpoint))
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)[None, :, None])[0, :, 0].numpy()
    np.testing.assert_allclose(y, ref, atol=2e-4)
    assert np.sqrt(np.mean(y[jf.RATE:] ** 2)) > 0.01
    played, _ = sf.read(rec / "played.wav", dtype="float32")
    assert np.isfinite(played).all() and played.size >= y.size
