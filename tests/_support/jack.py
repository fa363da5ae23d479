"""A private JACK server with the dummy backend, for the live-audio tests (no sound card).

Loaded by tests/stream/test_audio.py and tests/cli/test_cli_audio.py (not a test module).
The server gets a unique name, so it never clashes with another JACK server; it is stopped
by its pid. Tests skip only when jackd or PortAudio is missing AND we are not on CI
(``CI`` set): on CI they must run, and fail if JACK cannot start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

RATE, PERIOD = 48000, 256
ON_CI = bool(os.environ.get("CI"))


def _missing(what: str) -> None:
    if ON_CI:
        pytest.fail(f"{what} is required on CI (.ci/run installs libportaudio2 jackd2)")
    pytest.skip(f"{what} is not installed (apt-get install libportaudio2 jackd2)")


def jack_ports(name: str) -> list[str]:
    out = subprocess.run(["jack_lsp", "-s", name], capture_output=True, text=True, timeout=10)
    return out.stdout.split()


def jack_connect(name: str, src: str, dst: str) -> None:
    subprocess.run(["jack_connect", "-s", name, src, dst], check=True, capture_output=True,
                   timeout=10)


@contextmanager
def jack_server(period: int = PERIOD) -> Iterator[str]:
    """Start ``jackd -n NAME -R -d dummy -r 48000 -p PERIOD`` (``-r``, no real-time, if -R
    cannot start), wait for it with jack_wait, point this process's PortAudio at it, and
    stop it by its pid at the end. Yields the server name."""
    if shutil.which("jackd") is None or shutil.which("jack_wait") is None:
        _missing("jackd (Debian package jackd2)")
    try:
        import sounddevice as sd
    except OSError:
        _missing("the PortAudio library (Debian package libportaudio2)")
    name = f"sigstream-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    proc = None
    log = ""
    for rt in ("-R", "-r"):
        proc = subprocess.Popen(["jackd", "-n", name, rt, "-d", "dummy", "-r", str(RATE),
                                 "-p", str(period)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        ok = subprocess.run(["jack_wait", "-s", name, "-w", "-t", "5"], env=env,
                            capture_output=True, text=True, timeout=20)
        if ok.returncode == 0 and proc.poll() is None:
            break
        proc.terminate()
        try:
            log = proc.communicate(timeout=5)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            log = proc.communicate()[1]
        proc = None
    if proc is None:
        pytest.fail(f"JACK dummy server did not start: {log.strip()[-500:]}")
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"
    sd._terminate()  # PortAudio scans its host APIs at initialisation: rescan for this server
    sd._initialize()
    try:
        yield name
    finally:
        sd._terminate()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        sd._initialize()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def speech(seconds: float) -> object:
    """(T,) float32 at 48 kHz: Debian alsa-utils' recorded speech, looped, when installed;
    otherwise a synthetic voiced signal (harmonics with a moving pitch, plus noise)."""
    import numpy as np

    n = int(seconds * RATE)
    path = "/usr/share/sounds/alsa/Front_Center.wav"
    if os.path.exists(path):
        import soundfile as sf

        x, rate = sf.read(path, dtype="float32", always_2d=True)
        if rate == RATE:
            x = x[:, 0]
            return np.resize(x, n).astype(np.float32)
    t = np.arange(n) / RATE
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.2
    x = x + 0.02 * np.random.default_rng(0).standard_normal(n)
    return x.astype(np.float32)


def wait_until(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return False
