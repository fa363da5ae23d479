"""Tests for sigstream.stream.net.server: many streams, batching, bad input, lifecycle, security.

B: batch (streams), T: time (frames), C: channels.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import struct
import threading
import time
from unittest import mock

import numpy as np
import pytest
import torch
import zmq
import zmq.asyncio
import zmq.auth
from torch import Tensor, nn

from sigstream.cli.commands.serve import add_parser as add_serve_parser
from sigstream.cli.commands.serve import run as cmd_serve
from sigstream.core.contract import StreamingModule
from sigstream.core.errors import ConfigError
from sigstream.models.baselines.butterworth import Butterworth
from sigstream.models.layers.recurrent import StatefulGRU
from sigstream.stream.net import wire
from sigstream.stream.net.client import AsyncClient, Client
from sigstream.stream.net.server import Server, ServerConfig
from sigstream.stream.net.wire import Header
from sigstream.stream.runner import StreamRunner

LOCAL = "tcp://127.0.0.1:*"


class GRUHead(StreamingModule):
    """StatefulGRU(1, 8) with a linear read-out to one channel."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = StatefulGRU(1, 8)
        self.head = nn.Linear(8, 1)
        self.in_channels, self.out_channels = 1, 1
        self.hop, self.latency = 1, 0

    def init_state(self, batch: int):
        return self.gru.init_state(batch)

    def step(self, x: Tensor, state):
        y, state = self.gru.step(x, state)
        return self.head(y), state

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.gru(x))


def offline(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """model(x) on a (B, T, C) numpy array."""
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def test_many_streams_match_offline() -> None:
    torch.manual_seed(0)
    model = GRUHead().eval()
    n_clients, per_client, n_chunks, window = 4, 16, 500, 4
    n_streams = n_clients * per_client
    sizes = np.array([8, 12, 16, 24])
    # chunk length of stream s, chunk k: differs between streams, changes every 50 chunks
    plan = sizes[(np.arange(n_streams)[:, None] + np.arange(n_chunks)[None, :] // 50) % 4]
    rng = np.random.default_rng(7)
    lengths = plan.sum(axis=1)
    total = int(lengths.max())
    x = rng.standard_normal((n_streams, total, 1)).astype(np.float32)
    offsets = np.concatenate([np.zeros((n_streams, 1), int), np.cumsum(plan, axis=1)], axis=1)

    t0 = time.perf_counter()
    with Server(model, LOCAL, ServerConfig(idle_timeout=30)) as srv:
        clients = [Client(srv.endpoint, channels=1, sample_rate=1000.0)
                   for _ in range(n_clients)]
        poller = zmq.Poller()
        for c in clients:
            poller.register(c.socket, zmq.POLLIN)
        sent = np.zeros(n_streams, int)
        got = np.zeros(n_streams, int)
        out = [np.empty(int(lengths[s]), np.float32) for s in range(n_streams)]
        while got.min() < n_chunks:
            for s in range(n_streams):
                client = clients[s // per_client]
                while sent[s] < n_chunks and sent[s] - got[s] < window:
                    k = sent[s]
                    client.send(x[s, offsets[s, k]:offsets[s, k + 1]], start=k == 0,
                                end=k == n_chunks - 1, stream_id=s)
                    sent[s] += 1
            ready = dict(poller.poll(10_000))
            assert ready, "no reply within 10 s"
            for c in clients:
                while c.poll(0):
                    h, y = c.recv()
                    s = h.stream_id
                    assert not h.is_error, y
                    assert h.seq == got[s], "chunk lost, duplicated or reordered"
                    assert y.shape == (plan[s, h.seq], 1)
                    out[s][offsets[s, h.seq]:offsets[s, h.seq + 1]] = y[:, 0]
                    got[s] += 1
        stats = clients[0].request_stats()
        for c in clients:
            c.close()
    elapsed = time.perf_counter() - t0

    assert stats["chunks"] == n_streams * n_chunks
    assert stats["rejected_total"] == 0 and stats["gaps"] == 0
    assert stats["streams"] == 0 and stats["streams_closed"] == n_streams
    assert stats["batch_size"]["mean"] > 2
    ref = offline(model, x)
    for s in range(n_streams):
        np.testing.assert_allclose(out[s], ref[s, : lengths[s], 0], atol=1e-5, rtol=0)
    print(f"{n_streams * n_chunks} chunks in {elapsed:.1f} s, batch mean "
          f"{stats['batch_size']['mean']:.1f}")


# -- a small exact model: running sum (numpy state, integer-valued samples are exact) -------------


class RunningSum:
    """Numpy streaming model: y[t] = x[0] + ... + x[t]; fails on the sample value 1234."""

    hop, latency, in_channels, out_channels, sample_rate = 1, 0, 1, 1, None

    def init_state(self, batch: int):
        return (np.zeros((batch, 1), np.float32),)

    def step(self, x: np.ndarray, state):
        if (x == 1234).any():
            raise RuntimeError("boom")
        y = np.cumsum(x, axis=1, dtype=np.float32) + state[0][:, None, :]
        return y, (y[:, -1, :].copy(),)


def raw_header(**fields) -> bytes:
    """A v1 header packed field by field (for malformed input)."""
    v = dict(magic=b"SIGS", version=1, flags=0, dtype=1, channels=1, frames=16, stream_id=9,
             seq=0, rate=1000.0, stamp=0)
    v.update(fields)
    return struct.pack("<4sBBBBHHIQQdQ16x", v["magic"], v["version"], v["flags"], v["dtype"], 0,
                       v["channels"], 0, v["frames"], v["stream_id"], v["seq"], v["rate"],
                       v["stamp"])


def ones(n: int, c: int = 1) -> bytes:
    return np.ones((n, c), "<f4").tobytes()


def replies(client: Client, n: int, timeout: float = 5.0) -> list:
    return [client.recv(timeout) for _ in range(n)]


def test_bad_input_gets_error_replies_and_other_streams_stay_exact() -> None:
    model = Butterworth()
    model.hop = 4  # any multiple of 4 is still exact for this filter; tests hop_mismatch
    cfg = ServerConfig(max_frames=256, max_message_bytes=32 * 1024)
    nan = np.ones((16, 1), "<f4")
    nan[3] = np.nan
    inf = np.ones((16, 1), "<f4")
    inf[0] = np.inf
    cases = [
        ([raw_header()[:30], ones(16)], "header_size"),
        ([raw_header() + b"\0" * 8, ones(16)], "header_size"),
        ([raw_header()], "frame_count"),
        ([raw_header(), ones(16), b"extra"], "frame_count"),
        ([raw_header(), ones(15)], "size_mismatch"),
        ([raw_header(), ones(17)], "size_mismatch"),
        ([raw_header(magic=b"SIGZ"), ones(16)], "bad_magic"),
        ([raw_header(version=2), ones(16)], "bad_version"),
        ([raw_header(dtype=7), ones(16)], "bad_dtype"),
        ([raw_header(flags=0x80), ones(16)], "bad_flags"),
        ([raw_header(frames=0), b""], "bad_frames"),
        ([raw_header(frames=1024), ones(1024)], "too_large"),
        ([raw_header(frames=2**32 - 1), ones(16)], "too_large"),
        ([raw_header(channels=0, frames=16), b""], "bad_channels"),
        ([raw_header(), nan.tobytes()], "non_finite"),
        ([raw_header(), inf.tobytes()], "non_finite"),
        ([raw_header(rate=float("inf")), ones(16)], "bad_sample_rate"),
        ([raw_header(channels=2), ones(16, 2)], "channels_mismatch"),
        ([raw_header(frames=6), ones(6)], "hop_mismatch"),
        ([raw_header(rate=8000.0), ones(16)], "rate_mismatch"),
        ([raw_header(flags=wire.ERROR, dtype=0, frames=0), b""], "unexpected_flags"),
        ([raw_header(dtype=0, frames=0), b""], "unexpected_flags"),
        ([raw_header(flags=wire.START, dtype=0, frames=0), b"not json"], "bad_json"),
        ([raw_header(flags=wire.RESET, dtype=0, frames=0), b"[1, 2]"], "bad_json"),
        ([raw_header(flags=wire.STATS, dtype=0, frames=0), b"{"], "bad_json"),
    ]
    x = np.random.default_rng(3).standard_normal((len(cases) + 8) * 16).astype(np.float32)
    with Server(model, LOCAL, cfg) as srv:
        good = Client(srv.endpoint, stream_id=1, sample_rate=1000.0)
        bad = Client(srv.endpoint, sample_rate=1000.0)
        out = []
        for k, (frames, code) in enumerate(cases):
            good.send(x[k * 16:(k + 1) * 16])
            bad.send_raw(frames)
            h, err = bad.recv()
            assert h.is_error and err["code"] == code, (k, err)
            if code not in ("header_size", "bad_magic", "bad_version"):
                assert h.stream_id == 9  # parsed headers are echoed (frame_count's too)
            h, y = good.recv()
            assert not h.is_error and h.seq == k
            out.append(y)
        # sequence errors on a second stream of the good client's connection
        k = len(cases)
        good.send(np.ones(16, np.float32), stream_id=2, seq=0)
        good.send(np.ones(16, np.float32), stream_id=2, seq=0)  # duplicate
        good.send(np.ones(16, np.float32), stream_id=2, seq=5)  # gap: fine
        good.send(np.ones(16, np.float32), stream_id=2, seq=3)  # older
        good.send(x[k * 16:(k + 1) * 16])
        got = [good.recv() for _ in range(5)]
        codes = [y["code"] for h, y in got if h.is_error]
        assert codes == ["duplicate", "out_of_order"]
        out.extend(y for h, y in got if h.stream_id == 1)
        # a message over ZMQ_MAXMSGSIZE: ZeroMQ drops that connection, nobody else notices
        rogue = Client(srv.endpoint)
        rogue.send_raw([raw_header(frames=20_000), ones(20_000)])
        with pytest.raises(TimeoutError):
            rogue.recv(timeout=0.3)
        for k in range(len(cases) + 1, len(cases) + 8):
            good.send(x[k * 16:(k + 1) * 16])
            h, y = good.recv()
            assert not h.is_error
            out.append(y)
        stats = bad.request_stats()
        for c in (good, bad, rogue):
            c.close()
    np.testing.assert_allclose(np.concatenate(out)[:, 0], offline(model, x[None, :, None])[0, :, 0],
                               atol=1e-5, rtol=0)
    expected: dict[str, int] = {}
    for _, code in cases:
        expected[code] = expected.get(code, 0) + 1
    expected.update(duplicate=1, out_of_order=1)
    assert stats["rejected"] == expected
    assert stats["gaps"] == 1 and stats["missing"] == 4


def test_model_failure_answers_internal_and_spares_other_batches() -> None:
    with Server(RunningSum(), LOCAL) as srv, Client(srv.endpoint) as c:
        c.send(np.ones(4, np.float32), stream_id=1)
        c.send(np.ones(3, np.float32), stream_id=2)
        (h1, y1), (h2, y2) = sorted(replies(c, 2), key=lambda r: r[0].stream_id)
        np.testing.assert_array_equal(y1[:, 0], [1, 2, 3, 4])
        c.send(np.full(4, 1234, np.float32), stream_id=1)  # fails with whatever shares its call
        c.send(np.ones(4, np.float32), stream_id=3)
        c.send(np.ones(3, np.float32), stream_id=2)  # other length: another call, fine
        got = {h.stream_id: (h, y) for h, y in replies(c, 3)}
        assert got[1][0].is_error and got[1][1]["code"] == "internal"
        if got[3][0].is_error:  # it arrived in time to be batched with stream 1
            assert got[3][1]["code"] == "internal"
        else:
            np.testing.assert_array_equal(got[3][1][:, 0], [1, 2, 3, 4])
        np.testing.assert_array_equal(got[2][1][:, 0], [4, 5, 6])
        c.send(np.ones(2, np.float32), stream_id=1)  # state untouched by the failed call
        h, y = c.recv()
        assert h.seq == 2  # the failed chunk used sequence number 1
        np.testing.assert_array_equal(y[:, 0], [5, 6])


def test_subsets_of_streams_step_exactly_with_a_numpy_model() -> None:
    rng = np.random.default_rng(5)
    n, chunks = 6, 40
    with Server(RunningSum(), LOCAL) as srv, Client(srv.endpoint) as c:
        sent = {s: [] for s in range(n)}
        out = {s: [] for s in range(n)}
        for _ in range(chunks):
            for s in rng.permutation(n)[: rng.integers(1, n + 1)]:
                x = rng.integers(-3, 4, int(rng.choice([2, 3, 5]))).astype(np.float32)
                c.send(x, stream_id=int(s))
                sent[int(s)].append(x)
            while c.poll(0.002):
                h, y = c.recv()
                out[h.stream_id].append(y[:, 0])
        while sum(map(len, out.values())) < sum(map(len, sent.values())):
            h, y = c.recv()
            out[h.stream_id].append(y[:, 0])
        stats = c.request_stats()
    for s in range(n):
        if sent[s]:
            expected = np.cumsum(np.concatenate(sent[s]))
            np.testing.assert_array_equal(np.concatenate(out[s]), expected)
    assert stats["batch_size"]["mean"] > 1


def test_lifecycle_start_reset_end() -> None:
    with Server(RunningSum(), LOCAL) as srv, Client(srv.endpoint, stream_id=4) as c:
        def run(x, **kw):
            c.send(np.asarray(x, np.float32), **kw)
            h, y = c.recv()
            assert not h.is_error, y
            return h, list(y[:, 0])

        assert run([1, 1, 1], start=True)[1] == [1, 2, 3]
        assert run([1])[1] == [4]
        h, y = run([1], reset=True)
        assert y == [1] and h.reset
        h, y = run([2], start=True, seq=0)  # restart with a new sequence
        assert y == [2] and h.start
        assert c.request_stats()["streams"] == 1
        h, y = run([1], end=True)
        assert y == [3] and h.end
        assert c.request_stats()["streams"] == 0
        h, y = run([5])  # the same id starts afresh, and its reply says so: its sequence
        assert y == [5] and h.reset  # number continues, the state does not
        c.send(None, end=True)  # a bare END
        h, y = c.recv()
        assert h.end and not h.is_error and y.shape[0] == 0
        stats = c.request_stats()
        assert stats["streams"] == 0 and stats["streams_closed"] == 2
        assert stats["resets"] == 3 and stats["streams_opened"] == 2


@pytest.mark.parametrize("reset_on_gap", [False, True])
def test_sequence_gap_is_counted_and_resets_when_asked(reset_on_gap: bool) -> None:
    cfg = ServerConfig(reset_on_gap=reset_on_gap)
    with Server(RunningSum(), LOCAL, cfg) as srv, Client(srv.endpoint) as c:
        c.send(np.ones(2, np.float32), seq=0)
        c.send(np.ones(2, np.float32), seq=3)
        ys = [list(y[:, 0]) for _, y in replies(c, 2)]
        stats = c.request_stats()
    assert ys[0] == [1, 2]
    assert ys[1] == ([1, 2] if reset_on_gap else [3, 4])
    assert stats["gaps"] == 1 and stats["missing"] == 2
    assert stats["resets"] == (1 if reset_on_gap else 0)


def test_vanished_client_streams_are_freed_on_idle_timeout() -> None:
    with Server(RunningSum(), LOCAL, ServerConfig(idle_timeout=0.3)) as srv:
        watcher = Client(srv.endpoint)
        gone = Client(srv.endpoint)
        for s in range(3):
            gone.send(np.ones(4, np.float32), stream_id=s)
        replies(gone, 3)
        gone.send(np.ones(4, np.float32), stream_id=0)  # mid-stream, never read
        gone.close()
        assert watcher.request_stats()["streams"] == 3
        deadline = time.monotonic() + 10
        while (stats := watcher.request_stats())["streams"] and time.monotonic() < deadline:
            time.sleep(0.1)
        watcher.close()
    assert stats["streams"] == 0 and stats["streams_expired"] == 3


def test_stats_request_and_periodic_stats_line(capsys: pytest.CaptureFixture) -> None:
    with Server(RunningSum(), LOCAL, ServerConfig(stats_every=0.1)) as srv:
        with Client(srv.endpoint) as c:
            for s in range(5):
                c.send(np.ones(8, np.float32), stream_id=s)
            replies(c, 5)
            c.send_raw([b"junk", b""])
            c.recv()
            stats = c.request_stats()
            time.sleep(0.35)
    assert stats["schema"] == "sigstream-server-stats/1"
    assert stats["streams"] == 5 and stats["chunks"] == 5 and stats["samples_in"] == 40
    assert stats["rejected"] == {"header_size": 1} and stats["rejected_total"] == 1
    assert stats["batches"] >= 1 and sum(stats["batch_size"]["histogram"].values()) >= 1
    assert stats["batch_size"]["mean"] >= 1
    assert set(stats["compute_us"]) == {"p50", "p99", "max"}
    json.dumps(stats)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("serve:")]
    assert lines and "chunks 5" in lines[-1] and "rejected 1" in lines[-1]


def test_graceful_stop_drains_in_flight_messages() -> None:
    srv = Server(RunningSum(), LOCAL).start()
    c = Client(srv.endpoint)
    for k in range(300):
        c.send(np.ones(4, np.float32), stream_id=k % 4)
    srv.stop()  # returns once drained, replied and closed
    got = replies(c, 300, timeout=5.0)
    c.close()
    assert sorted(h.seq for h, _ in got) == sorted(k // 4 for k in range(300))
    assert all(not h.is_error for h, _ in got)
    assert srv.counters.chunks == 300


@pytest.mark.parametrize("endpoint", [
    "tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.168.1.10:5555", "tcp://[::]:5555",
    "tcp://eth0:5555", "tcp://example.com:5555",
])
def test_non_loopback_bind_is_refused_before_any_socket(endpoint: str) -> None:
    with mock.patch.object(zmq.Context, "socket") as socket:
        with pytest.raises(ConfigError, match="not a loopback address"):
            Server(RunningSum(), endpoint)
        socket.assert_not_called()


def test_non_loopback_needs_insecure_or_curve(tmp_path) -> None:
    with mock.patch.object(zmq.Context, "socket") as socket:
        Server(RunningSum(), "tcp://0.0.0.0:5555", ServerConfig(insecure=True))
        if zmq.has("curve"):
            _, secret = zmq.auth.create_certificates(str(tmp_path), "server")
            Server(RunningSum(), "tcp://0.0.0.0:5555", ServerConfig(curve_secret_file=secret))
        with pytest.raises(ConfigError, match="not found"):
            Server(RunningSum(), "tcp://0.0.0.0:5555",
                   ServerConfig(curve_secret_file=str(tmp_path / "nope")))
        socket.assert_not_called()  # constructing never opens a socket


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")
def test_curve_encryption_and_client_authorisation(tmp_path) -> None:
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    server_public, server_secret = zmq.auth.create_certificates(str(keys), "server")
    client_public, client_secret = zmq.auth.create_certificates(str(keys), "client")
    (allowed / "client.key").write_bytes(open(client_public, "rb").read())
    _, stranger_secret = zmq.auth.create_certificates(str(keys), "stranger")
    server_key = zmq.auth.load_certificate(server_public)[0]
    cfg = ServerConfig(curve_secret_file=server_secret, curve_clients_dir=str(allowed))
    with Server(RunningSum(), LOCAL, cfg) as srv:
        pub, sec = zmq.auth.load_certificate(client_secret)
        with Client(srv.endpoint, server_public_key=server_key, public_key=pub,
                    secret_key=sec) as c:
            c.send(np.ones(3, np.float32))
            _, y = c.recv()
            np.testing.assert_array_equal(y[:, 0], [1, 2, 3])
        pub, sec = zmq.auth.load_certificate(stranger_secret)
        with Client(srv.endpoint, server_public_key=server_key, public_key=pub,
                    secret_key=sec, send_timeout=0.3) as c:
            with pytest.raises(TimeoutError):  # refused: the send or the reply times out
                c.send(np.ones(3, np.float32))
                c.recv(timeout=0.3)
        with Client(srv.endpoint, send_timeout=0.3) as plain:  # no encryption: no handshake
            with pytest.raises(TimeoutError):
                plain.send(np.ones(3, np.float32))
                plain.recv(timeout=0.3)


def test_async_client() -> None:
    async def main(endpoint: str) -> tuple[list, dict]:
        ctx = zmq.asyncio.Context()
        try:
            async with AsyncClient(endpoint, stream_id=2, context=ctx) as c:
                for _ in range(5):
                    await c.send(np.ones(2, np.float32))
                got = [await c.recv() for _ in range(5)]
                return got, await c.request_stats()
        finally:
            ctx.term()

    with Server(RunningSum(), LOCAL) as srv:
        got, stats = asyncio.run(main(srv.endpoint))
    assert [h.seq for h, _ in got] == list(range(5))
    np.testing.assert_array_equal(np.concatenate([y for _, y in got])[:, 0], np.arange(1, 11))
    assert stats["chunks"] == 5


def test_req_socket_and_int16_payloads_work() -> None:
    with Server(RunningSum(), LOCAL) as srv:
        ctx = zmq.Context.instance()
        with ctx.socket(zmq.REQ) as req:
            req.connect(srv.endpoint)
            req.send_multipart(wire.encode(Header(stream_id=1), np.full((4, 1), 16384, np.int16)))
            assert req.poll(5000)
            h, y = wire.decode(req.recv_multipart())
    assert h.stream_id == 1
    np.testing.assert_array_equal(y[:, 0], [0.5, 1.0, 1.5, 2.0])


def test_server_accepts_a_runner_or_a_factory_and_refuses_other_things() -> None:
    runner = StreamRunner(RunningSum(), batch=3)
    assert Server(runner, LOCAL).runner is runner and runner.batch == 0
    assert isinstance(Server(RunningSum, LOCAL).runner.model, RunningSum)
    with pytest.raises(ConfigError, match="cannot serve"):
        Server(42, LOCAL)
    with pytest.raises(ConfigError, match="max_batch"):
        Server(RunningSum(), LOCAL, ServerConfig(max_batch=0))


# -- the CLI --------------------------------------------------------------------------------------


def serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def test_cli_serve_refuses_a_busy_port_and_a_public_address() -> None:
    with zmq.Context.instance().socket(zmq.ROUTER) as taken:
        port = taken.bind_to_random_port("tcp://127.0.0.1")
        with pytest.raises(ConfigError) as info:
            cmd_serve(serve_args("--model", "identity", "--bind", f"tcp://127.0.0.1:{port}"))
    assert str(info.value) == f"address tcp://127.0.0.1:{port} is in use; pick another port"
    with mock.patch.object(zmq.Context, "socket") as socket:
        with pytest.raises(ConfigError, match="--insecure"):
            cmd_serve(serve_args("--model", "identity", "--bind", "tcp://0.0.0.0:5555"))
        socket.assert_not_called()


def test_cli_serve_runs_until_ctrl_c(capsys: pytest.CaptureFixture) -> None:
    with zmq.Context.instance().socket(zmq.ROUTER) as probe:
        port = probe.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    result: dict = {}

    def client() -> None:
        try:
            with Client(endpoint, sample_rate=1000.0) as c:
                result["stats"] = c.request_stats(timeout=30)
                c.send(np.arange(4, dtype=np.float32))
                result["reply"] = c.recv(timeout=10)
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    helper = threading.Thread(target=client)
    helper.start()
    code = cmd_serve(serve_args("--model", "identity", "--bind", endpoint, "--stats-every", "0"))
    helper.join(10)
    assert code == 0
    h, y = result["reply"]
    np.testing.assert_array_equal(y[:, 0], np.arange(4))
    err = capsys.readouterr().err
    assert f"serving identity on {endpoint}" in err and "stopped;" in err


def test_non_finite_chunk_of_a_running_stream_is_rejected_and_batch_mates_stay_exact() -> None:
    """A steady-state chunk with NaN, batched with other streams' chunks: only it is
    rejected, its sequence number stays expected, and every other stream is exact."""
    model = Butterworth()
    x = np.random.default_rng(5).standard_normal((6, 8 * 16)).astype(np.float32)
    with Server(model, LOCAL) as srv, Client(srv.endpoint, sample_rate=1000.0) as c:
        outs: dict[int, list] = {sid: [] for sid in range(6)}
        errors = []
        for k in range(8):
            for sid in range(6):  # one burst per k: the server batches what is ready
                chunk = x[sid, k * 16:(k + 1) * 16].copy()
                if sid == 2 and k == 4:
                    bad = chunk.copy()
                    bad[5] = np.nan
                    c.send(bad, stream_id=sid, seq=k)
                c.send(chunk, stream_id=sid, seq=k)  # after a rejection: the same seq again
            for h, y in replies(c, 7 if k == 4 else 6):
                if h.is_error:
                    errors.append((h, y))
                else:
                    outs[h.stream_id].append(y)
        stats = c.request_stats()
    assert len(errors) == 1
    h, err = errors[0]
    assert err["code"] == "non_finite" and (h.stream_id, h.seq) == (2, 4), err
    assert "frame 5" in err["message"]
    for sid in range(6):
        np.testing.assert_allclose(np.concatenate(outs[sid])[:, 0],
                                   offline(model, x[sid][None, :, None])[0, :, 0],
                                   atol=1e-5, rtol=0)
    assert stats["rejected"] == {"non_finite": 1} and stats["gaps"] == 0


def test_serve_warns_when_any_client_key_is_accepted() -> None:
    from sigstream.cli.commands.serve import security_warnings

    def warn(bind: str = "tcp://127.0.0.1:5555", **kw) -> list[str]:
        base = dict(insecure=False, curve_secret=None, curve_clients=None)
        return security_warnings(bind, **{**base, **kw})

    assert warn() == []
    assert warn(curve_secret="s.key_secret", curve_clients="clients/") == []
    (line,) = warn(curve_secret="s.key_secret")
    assert "any client key is accepted" in line and "--curve-clients" in line
    (line,) = warn("tcp://0.0.0.0:5555", insecure=True)
    assert "unencrypted and unauthenticated" in line
    assert warn("tcp://127.0.0.1:5555", insecure=True) == []
    (line,) = warn(curve_secret="s.key_secret", role="router")  # `route` says the same
    assert "the router's public key" in line
    (line,) = warn("tcp://0.0.0.0:5555", insecure=True, role="router")
    assert line.startswith("routing tcp://0.0.0.0:5555 unencrypted")


def test_a_flooding_client_gets_its_quota_and_others_are_served() -> None:
    """One client opens streams until refused (client_quota at its quota, half the table by
    default); a second client is still served exactly. The new-stream rate limit is off:
    with it, whether the 6th request meets the quota or the limit depends on how fast the
    round trips were (the limit has its own test below)."""
    cfg = ServerConfig(max_streams=8, new_stream_rate=0)
    with Server(RunningSum(), LOCAL, cfg) as srv, Client(srv.endpoint) as flood, \
            Client(srv.endpoint) as polite:
        codes = []
        for sid in range(6):
            flood.send(np.ones(2, np.float32), stream_id=sid)
            h, y = flood.recv()
            codes.append(y["code"] if h.is_error else "ok")
        assert codes == ["ok"] * 4 + ["client_quota"] * 2
        polite.send(np.arange(3, dtype=np.float32), stream_id=0)
        h, y = polite.recv()
        assert not h.is_error and list(y[:, 0]) == [0, 1, 3]
        stats = polite.request_stats()
        assert stats["streams"] == 5


def test_serve_takes_stream_limits(monkeypatch) -> None:  # noqa: ANN001
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_serve_parser(sub)
    seen = {}

    class Fake:
        def __init__(self, model, bind, config) -> None:  # noqa: ANN001
            seen["config"] = config
            raise SystemExit(0)

    monkeypatch.setattr("sigstream.stream.net.server.Server", Fake)
    args = parser.parse_args(["serve", "--model", "identity", "--max-streams", "10",
                              "--max-streams-per-client", "3"])
    with pytest.raises(SystemExit):
        cmd_serve(args)
    assert seen["config"].max_streams == 10 and seen["config"].max_streams_per_client == 3
    with pytest.raises(ConfigError, match="max_streams_per_client"):
        ServerConfig(max_streams=2, max_streams_per_client=3).validate()


def test_replies_dropped_at_the_high_water_mark_are_counted_by_the_client() -> None:
    """A client that does not read while it sends 3,000 chunks loses replies at the
    high-water marks; every reply it does get is in order, and ``Client.lost`` counts
    exactly the replies the server dropped. The chunks are 32 KiB so that the replies
    (96 MiB) cannot all wait in the kernel's loopback buffers, which on some hosts hold
    several MiB: the server must meet its high-water mark."""
    n = 3000
    chunk = np.ones(8192, np.float32)
    with Server(RunningSum(), LOCAL, ServerConfig(hwm=20)) as srv, \
            Client(srv.endpoint, hwm=20) as c:
        for _ in range(n):
            c.send(chunk, stream_id=1)
        got = []
        while c.poll(1.0):
            h, y = c.recv()
            assert not h.is_error, y
            got.append(h.seq)
        dropped = c.request_stats()["replies_dropped"]
    assert got == sorted(got) and len(got) + c.lost_total + c.unanswered(1) == n
    assert c.lost_total + c.unanswered(1) == dropped > 0 and c.lost.get(1, 0) == c.lost_total


def test_a_reply_either_continues_the_state_or_says_reset() -> None:
    """Idle expiry, a reconnect under a new identity and a server restart all lose a
    stream's state; the next reply carries RESET and equals a fresh start from its chunk
    (RunningSum: the output restarts from the chunk's own samples)."""
    import socket as pysocket

    with pysocket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    cfg = ServerConfig(idle_timeout=0.3)

    def run(c: Client, x: list[float], **kw) -> tuple[Header, list[float]]:  # noqa: ANN003
        c.send(np.asarray(x, np.float32), stream_id=7, **kw)
        h, y = c.recv(timeout=5)
        assert not h.is_error, y
        return h, list(y[:, 0])

    srv = Server(RunningSum(), endpoint, cfg).start()
    try:
        with Client(endpoint) as c:
            h, y = run(c, [1, 1])
            assert y == [1, 2] and not h.reset  # a new stream from seq 0
            h, y = run(c, [1])
            assert y == [3] and not h.reset  # continues exactly
            time.sleep(0.8)  # idle expiry frees the stream
            h, y = run(c, [1])
            assert y == [1] and h.reset  # fresh state, and it says so
            h, y = run(c, [1])
            assert y == [2] and not h.reset
            with Client(endpoint) as other:  # the same stream reconnected elsewhere
                h, y = run(other, [5], seq=4)
                assert y == [5] and h.reset
            resets = c.request_stats()["resets"]
            assert resets == 2
            srv.stop()
            srv = Server(RunningSum(), endpoint, cfg).start()  # a restart: all state gone
            h, y = run(c, [2])
            assert y == [2] and h.reset
            h, y = run(c, [2])
            assert y == [4] and not h.reset
    finally:
        srv.stop()


def test_abandoned_streams_of_one_client_leave_the_others_served_exactly() -> None:
    """One client opens 10,000 streams with one chunk each and abandons them, with junk
    in between; a well-behaved client's stream stays exact throughout, and the server
    holds no more than the flooder's quota. (Without the new-stream rate limit, so every
    message is answered: see the next test for the limit.)"""
    with Server(RunningSum(), LOCAL, ServerConfig(max_streams=4096, new_stream_rate=0)) as srv, \
            Client(srv.endpoint, hwm=100_000) as flood, Client(srv.endpoint) as polite:
        total, codes = 0.0, collections.Counter()
        for k in range(10_000):
            flood.send(np.ones(1, np.float32), stream_id=10_000 + k)
            if k % 100 == 0:
                flood.send_raw([b"junk"])
                polite.send(np.full(2, float(k), np.float32), stream_id=1)
                h, y = polite.recv(timeout=10)
                assert not h.is_error and not h.reset, y
                np.testing.assert_array_equal(y[:, 0], [total + k, total + 2 * k])
                total += 2 * k
        for _ in range(10_000 + 100):
            h, y = flood.recv(timeout=10)
            codes[y["code"] if h.is_error else "ok"] += 1
        stats = polite.request_stats()
    assert codes["ok"] == 2048 and codes["client_quota"] == 10_000 - 2048
    assert codes["frame_count"] == 100
    assert stats["streams"] == 2048 + 1


def test_a_flood_of_new_streams_is_dropped_beyond_the_clients_rate() -> None:
    """The default new-stream rate limit: a client opening 10,000 streams gets its burst
    (the quota, 2048) answered, then one rate_limited ERROR per second and nothing for the
    rest, counted as throttled; its established streams and other clients (their own
    buckets) are served exactly throughout."""
    cfg = ServerConfig(max_streams=4096, new_stream_rate=50.0)
    with Server(RunningSum(), LOCAL, cfg) as srv, Client(srv.endpoint, hwm=100_000) as flood, \
            Client(srv.endpoint) as polite, Client(srv.endpoint) as late:
        flood.send(np.ones(2, np.float32), stream_id=7)
        h, y = flood.recv(timeout=5)
        assert list(y[:, 0]) == [1, 2]
        t0 = time.monotonic()
        for k in range(10_000):
            flood.send(np.ones(1, np.float32), stream_id=10_000 + k)
        flood.send(np.ones(2, np.float32), stream_id=7)  # an established stream goes on
        codes = collections.Counter()
        seven = None
        while flood.poll(1.0):
            h, y = flood.recv(timeout=1)
            if h.is_error:
                codes[y["code"]] += 1
                assert h.stream_id == 0 or y["code"] != "rate_limited"
            elif h.stream_id == 7:
                seven = y
            else:
                codes["ok"] += 1
        elapsed = time.monotonic() - t0
        assert seven is not None and list(seven[:, 0]) == [3, 4]
        # the burst (2048 tokens, one spent on stream 7) plus at most 50 per second since
        assert 2047 <= codes["ok"] + codes["client_quota"] <= 2047 + 50 * elapsed + 1
        assert 1 <= codes["rate_limited"] <= elapsed + 2
        polite.send(np.full(2, 3.0, np.float32), stream_id=1)
        h, y = polite.recv(timeout=5)
        assert not h.is_error and list(y[:, 0]) == [3, 6]
        late.send(np.ones(1, np.float32), stream_id=1)  # a new client: its own full bucket
        h, y = late.recv(timeout=5)
        assert not h.is_error
        stats = polite.request_stats()
    answered = codes["ok"] + codes["client_quota"]
    assert stats["throttled"] == 10_000 - answered
    assert stats["rejected"].get("rate_limited") == codes["rate_limited"]


def test_an_oversized_message_drops_the_connection_and_the_next_reply_says_reset() -> None:
    """A message over the server's 16 MiB limit makes ZeroMQ drop the connection; the
    client reconnects under a new identity, so its stream starts afresh: the next reply
    carries RESET and equals a fresh start, and the unanswered chunk is counted lost."""
    with Server(RunningSum(), LOCAL, ServerConfig(max_message_bytes=1 << 20)) as srv, \
            Client(srv.endpoint) as c:
        c.send(np.ones(3, np.float32), stream_id=4)
        h, y = c.recv(timeout=5)
        assert list(y[:, 0]) == [1, 2, 3] and not h.reset
        c.send(np.ones(300_000, np.float32), stream_id=4)  # 1.2 MB > 1 MiB: dropped
        time.sleep(0.5)  # the DEALER reconnects
        c.send(np.full(2, 5.0, np.float32), stream_id=4)
        h, y = c.recv(timeout=5)
        assert not h.is_error and h.reset and list(y[:, 0]) == [5, 10]
        assert c.lost_total == 1 and c.lost == {4: 1}
