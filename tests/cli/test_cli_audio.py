"""``sigstream run`` with mic / speaker and ``sigstream devices`` on a private JACK dummy
server; a missing PortAudio library or device is one error line.

The commands run in this process (``_support.cli.sigstream``; the ``jack`` fixture points
this process's PortAudio at the server), except the missing-PortAudio case, which needs a
fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _support import jack as jf
from _support.cli import sigstream as sig


@pytest.fixture(scope="module")
def jack():
    """The server's name; while it runs, this process's PortAudio (and JACK clients) use it
    and never start a server of their own (JACK_DEFAULT_SERVER, JACK_NO_START_SERVER)."""
    with jf.jack_server(period=jf.PERIOD) as name:
        assert os.environ["JACK_DEFAULT_SERVER"] == name
        assert os.environ["JACK_NO_START_SERVER"] == "1"
        yield name


def one_error_line(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def test_devices_lists_the_jack_device(jack: str) -> None:
    p = sig("devices")
    assert p.returncode == 0, p.stderr
    assert "system" in p.stdout and "JACK Audio Connection Kit" in p.stdout


def test_run_mic_to_speaker_resampled_with_record(jack: str, tmp_path: Path) -> None:
    """A 16 kHz model on the 48 kHz JACK device: duplex, resampled both ways, recorded."""
    stats = tmp_path / "s.json"
    rec = tmp_path / "rec"
    p = sig("run", "--model", "butterworth:sample_rate=16000,high=3000", "--source", "mic",
            "--sink", "speaker", "--block", "256", "--seconds", "2", "--record", str(rec),
            "--buffer", "2", "--stats-json", str(stats))
    assert p.returncode == 0, p.stderr
    assert "audio:" in p.stderr and "latency" in p.stderr
    s = json.loads(stats.read_text())
    a = s["audio"]
    assert a["rate"] == 48000 and a["model_rate"] == 16000 and a["resampled"]
    c = a["counters"]
    assert c["callbacks"] > 300 and c["max_frames"] == jf.PERIOD
    # 1 % at most, beyond the callbacks the server delivered off time (see test_audio.py)
    assert c["xruns"] <= 0.01 * c["callbacks"] + c["late_callbacks"] + c["early_callbacks"]
    b = a["budget"]
    assert b["resampler_ms"] == pytest.approx(2 * 12 / 16, abs=1e-6)  # 2 x 12 samples @ 16k
    assert b["ring_ms"] == pytest.approx(2 * 256 / 48, abs=1e-6)  # --buffer 2
    assert b["added_ms"] == pytest.approx(b["block_ms"] + b["ring_ms"] + b["lookahead_ms"]
                                          + b["resampler_ms"])
    x, rx = sf.read(rec / "input.wav")
    y, ry = sf.read(rec / "output.wav")
    played, _ = sf.read(rec / "played.wav")
    assert rx == ry == 48000 and x.shape == y.shape == (2 * 48000,)
    assert played.size >= x.size


@pytest.mark.parametrize("buffer", [1, 2])
def test_run_file_to_speaker_plays_it_delayed(jack: str, tmp_path: Path, buffer: int) -> None:
    """A WAV played on the speaker: played.wav is the file, delayed by the ring depth
    (``--buffer`` blocks)."""
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(24000) / 48000)).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 48000, subtype="FLOAT")
    rec = tmp_path / "rec"
    p = sig("run", "--model", "identity:sample_rate=48000", "--source",
            f"wav:{tmp_path / 'in.wav'}", "--sink", "speaker", "--block", "256",
            "--record", str(rec), "--stats-json", str(tmp_path / "s.json"), "--quiet",
            "--buffer", str(buffer))
    assert p.returncode == 0, p.stderr
    a = json.loads((tmp_path / "s.json").read_text())["audio"]
    played, _ = sf.read(rec / "played.wav", dtype="float32")
    D = a["output_delay_frames"]
    assert D == 256 * buffer and not played[:D].any()  # the output delay: silence first
    assert a["budget"]["ring_ms"] == pytest.approx(D / 48, abs=1e-6)
    wrong = played[D:D + x.size] != x  # then the file, sample for sample (zeros if late)
    assert not played[D:D + x.size][wrong].any()
    assert wrong.sum() <= a["counters"]["ring_underrun_frames"]
    assert played.size >= D + x.size


def test_unknown_device_is_one_line(jack: str) -> None:
    err = one_error_line(sig("run", "--model", "identity:sample_rate=48000", "--source",
                             "mic:no-such-device-xyz", "--sink", "null"))
    assert "no-such-device-xyz" in err and "sigstream devices" in err


def test_missing_portaudio_is_one_line() -> None:
    """No PortAudio library: sounddevice's import fails (simulated by hiding the library
    from ctypes' search in a fresh interpreter); the CLI says what to install, exit 2."""
    shim = ("import ctypes.util, sys; ctypes.util.find_library = lambda name: None; "
            "from sigstream.cli.main import main; sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    procs = [subprocess.Popen([sys.executable, "-c", shim, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                              env=env)
             for args in (["devices"], ["run", "--model", "identity", "--source", "mic",
                                        "--sink", "null"])]  # both at once
    try:
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        err = one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        assert "PortAudio library" in err and "apt-get install libportaudio2" in err


def test_record_works_for_file_runs_too(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    rec = tmp_path / "rec"
    p = sig("run", "--model", "butterworth", "--source", f"npy:{tmp_path / 'x.npy'},rate=1000",
            "--sink", f"npy:{tmp_path / 'y.npy'}", "--record", str(rec), "--quiet")
    assert p.returncode == 0, p.stderr
    xi, _ = sf.read(rec / "input.wav", dtype="float32")
    yo, _ = sf.read(rec / "output.wav", dtype="float32")
    np.testing.assert_array_equal(xi, x)
    np.testing.assert_array_equal(yo, np.load(tmp_path / "y.npy")[:, 0])
