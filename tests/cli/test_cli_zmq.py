"""sigstream serve and run over real ZeroMQ sockets on 127.0.0.1, through subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth
from scipy import signal as sps

from sigstream.core.errors import InputError
from sigstream.stream.net.client import Client
from sigstream.stream.net.pipes import ZmqSink

EXE = Path(sys.executable).with_name("sigstream")
CMD = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "sigstream.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 60.0) -> str:
    os.set_blocking(proc.stderr.fileno(), False)
    buf, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = proc.stderr.read()
        if chunk:
            buf += chunk.decode(errors="replace")
            if needle in buf:
                return buf
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not seen; stderr so far: {buf}")


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_serve_streams_and_stops_on_ctrl_c(backend: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*CMD, "serve", "--model", "butterworth:kind=bandpass,low=5,high=50", "--backend",
         backend, "--bind", f"tcp://127.0.0.1:{port}", "--stats-every", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        wait_for_line(proc, "serving")
        x = np.random.default_rng(0).standard_normal((2000, 1)).astype(np.float32)
        outs = {}
        clients = [Client(f"tcp://127.0.0.1:{port}", stream_id=i, sample_rate=1000.0)
                   for i in range(3)]
        for c in clients:
            outs[c] = []
        for pos in range(0, 2000, 50):
            for c in clients:
                c.send(x[pos:pos + 50])
            for c in clients:
                header, y = c.recv(timeout=10.0)
                assert not header.is_error, y
                outs[c].append(y)
        sos = sps.butter(4, [5, 50], btype="bandpass", fs=1000.0, output="sos")
        ref = sps.sosfilt(sos, x.astype(np.float64), axis=0)
        for c in clients:
            np.testing.assert_allclose(np.concatenate(outs[c]), ref, atol=1e-5)
            c.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_zmq_source_to_npy(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "y.npy"
    proc = subprocess.Popen(
        [*CMD, "run", "--model", "identity", "--source",
         f"zmq:tcp://127.0.0.1:{port},mode=bind,pattern=pull", "--sink", f"npy:{out}",
         "--block", "64", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        x = np.random.default_rng(1).standard_normal((5000, 1)).astype(np.float32)
        sink = ZmqSink(f"tcp://127.0.0.1:{port}", mode="connect", pattern="push", linger=30.0)
        sink.open(1000.0, 1)
        for pos in range(0, 5000, 100):
            sink.write(x[pos:pos + 100])
        sink.close()  # sends END: the pipeline drains and exits
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
        np.testing.assert_array_equal(np.load(out), x)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_zmq_source_says_what_it_rejected(tmp_path: Path) -> None:
    """A stream of 2 channels into a 1-channel model: every message is rejected; the run
    says so and why on stderr, even with --quiet, and in --stats-json."""
    port = free_port()
    proc = subprocess.Popen(
        [*CMD, "run", "--model", "identity", "--source",
         f"zmq:tcp://127.0.0.1:{port},mode=bind,pattern=pull", "--sink", "null",
         "--block", "64", "--quiet", "--stats-json", str(tmp_path / "s.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        sink = ZmqSink(f"tcp://127.0.0.1:{port}", mode="connect", pattern="push", linger=30.0)
        sink.open(1000.0, 2)
        for _ in range(5):
            sink.write(np.ones((100, 2), np.float32))
        sink.close()
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read()
        assert "the source rejected 5 message(s) and dropped their samples: " \
               "channels_mismatch x5 (the model takes 1 channel(s))" in err, err
        import json

        assert json.loads((tmp_path / "s.json").read_text())["source_rejected"] == {
            "channels_mismatch": 5}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")
def test_run_zmq_source_with_curve(tmp_path: Path) -> None:
    """``run --source zmq:...,curve_secret=...,curve_clients=...``: a sink with a key the
    source does not admit delivers nothing; the admitted one delivers everything."""
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    server, server_secret = zmq.auth.create_certificates(str(keys), "server")
    client, client_secret = zmq.auth.create_certificates(str(keys), "client")
    _, stranger_secret = zmq.auth.create_certificates(str(keys), "stranger")
    (allowed / "client.key").write_bytes(Path(client).read_bytes())
    port = free_port()
    out = tmp_path / "y.npy"
    proc = subprocess.Popen(
        [*CMD, "run", "--model", "identity", "--source",
         f"zmq:tcp://127.0.0.1:{port},mode=bind,pattern=pull,curve_secret={server_secret},"
         f"curve_clients={allowed}", "--sink", f"npy:{out}", "--block", "64", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        x = np.random.default_rng(2).standard_normal((3000, 1)).astype(np.float32)
        deadline = time.monotonic() + 60
        while True:  # the run is bound once a TCP connect succeeds
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.1)
        stranger = ZmqSink(f"tcp://127.0.0.1:{port}", curve_server=server,
                           curve_secret=stranger_secret, linger=0.0)
        stranger.open(1000.0, 1)
        # refused: a blocking sink queues nothing for a connection that never completes,
        # so it learns of the refusal as it writes, and nothing arrives
        with pytest.raises(InputError, match="CURVE handshake"):
            stranger.write(np.full((500, 1), 7.0, np.float32))
        stranger.abort()  # the run goes on
        sink = ZmqSink(f"tcp://127.0.0.1:{port}", curve_server=server,
                       curve_secret=client_secret, linger=30.0)
        sink.open(1000.0, 1)
        for pos in range(0, 3000, 100):
            sink.write(x[pos:pos + 100])
        sink.close()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
        np.testing.assert_array_equal(np.load(out), x)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
