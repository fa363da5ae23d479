"""Tests for sigstream.stream.net.router: consistent hashing, exact routing, failover, security.

Everything binds loopback; every wait is bounded.
"""

from __future__ import annotations

import argparse
import collections
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from unittest import mock

import numpy as np
import pytest
import zmq
import zmq.auth
from scipy import signal as sps

from sigstream.cli.commands.route import add_parser as add_route_parser
from sigstream.cli.commands.route import run as cmd_route
from sigstream.core.errors import ConfigError
from sigstream.models.baselines.butterworth import Butterworth
from sigstream.stream.net import wire
from sigstream.stream.net.client import Client
from sigstream.stream.net.router import HashRing, Router, RouterConfig, stream_key
from sigstream.stream.net.server import Server, ServerConfig
from sigstream.stream.net.wire import Header

LOCAL = "tcp://127.0.0.1:*"
SOS = Butterworth().sos


def offline(x: np.ndarray) -> np.ndarray:
    """The Butterworth model over a whole 1-D signal, from a fresh state."""
    return sps.sosfilt(SOS, np.asarray(x, np.float64)).astype(np.float32)


def fast(**overrides: object) -> RouterConfig:
    """Short health-check timeouts, so failures are noticed quickly in tests."""
    opts: dict = dict(worker_timeout=0.3, probe_timeout=0.3, connect_timeout=3.0,
                      rejoin_interval=0.2)
    opts.update(overrides)
    return RouterConfig(**opts)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def worker_alive(router: Router, endpoint: str) -> bool:
    return next(w["alive"] for w in router.stats()["workers"] if w["endpoint"] == endpoint)


def free_port() -> int:
    """A loopback port nobody listens on (a plain socket closes synchronously)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- routing --------------------------------------------------------------------------------------


def test_streams_stick_to_one_worker_and_match_offline() -> None:
    """3 clients x 4 streams (the same stream ids in every client) over two workers."""
    n_clients, n_streams, n_chunks, depth = 3, 4, 30, 3
    sizes = np.array([8, 16, 24, 32])
    plan = sizes[(np.arange(n_clients * n_streams)[:, None] + np.arange(n_chunks)) % 4]
    offsets = np.concatenate([np.zeros((plan.shape[0], 1), int), np.cumsum(plan, 1)], 1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((plan.shape[0], int(offsets[:, -1].max()))).astype(np.float32)
    a = Server(Butterworth(), LOCAL).start()
    b = Server(Butterworth(), LOCAL).start()
    clients: list[Client] = []
    try:
        with Router(LOCAL, [a.endpoint, b.endpoint], fast()) as router:
            clients = [Client(router.endpoint, sample_rate=1000.0) for _ in range(n_clients)]
            got: dict[int, list[tuple[Header, np.ndarray]]] = collections.defaultdict(list)
            snapshot: dict = {}
            for k0 in range(0, n_chunks, depth):  # a few rounds in flight at once
                for k in range(k0, min(k0 + depth, n_chunks)):
                    for c, cl in enumerate(clients):
                        for s in range(n_streams):
                            i = c * n_streams + s
                            cl.send(x[i, offsets[i, k]:offsets[i, k + 1]], stream_id=s,
                                    end=k == n_chunks - 1)
                for c, cl in enumerate(clients):
                    for _ in range(n_streams * (min(k0 + depth, n_chunks) - k0)):
                        h, y = cl.recv(timeout=10)
                        assert not h.is_error, y
                        got[c * n_streams + h.stream_id].append((h, y))
                if k0 == 12:
                    snapshot = router.assignments()
                    router_stats = clients[0].request_stats()
                    worker_streams = [Client(w.endpoint).request_stats()["streams"]
                                      for w in (a, b)]
            final = clients[0].request_stats()
        worker_stats = [Client(w.endpoint).request_stats() for w in (a, b)]
    finally:
        for cl in clients:
            cl.close()
        a.stop()
        b.stop()
    # exact, complete, in order, never reset
    for i in range(plan.shape[0]):
        hs = [h for h, _ in got[i]]
        assert [h.seq for h in hs] == list(range(n_chunks))
        assert not any(h.reset for h in hs) and hs[-1].end
        y = np.concatenate([y for _, y in got[i]])[:, 0]
        np.testing.assert_allclose(y, offline(x[i, :offsets[i, -1]]), atol=1e-5, rtol=0)
    # placement: the ring's choice, one worker per stream
    assert len(snapshot) == n_clients * n_streams
    assert len({ident for ident, _ in snapshot}) == n_clients
    ring = HashRing([a.endpoint, b.endpoint])
    assert all(ring.lookup(stream_key(*key)) == ep for key, ep in snapshot.items())
    per_worker = collections.Counter(snapshot.values())
    assert router_stats["schema"] == "sigstream-router-stats/1"
    assert [w["streams"] for w in router_stats["workers"]] == \
        [per_worker[a.endpoint], per_worker[b.endpoint]] == worker_streams
    # each stream was opened on exactly one worker, and every stream is closed
    assert [s["streams_opened"] for s in worker_stats] == worker_streams
    assert all(s["streams"] == 0 and s["rejected_total"] == 0 for s in worker_stats)
    total = n_clients * n_streams * n_chunks
    assert final["streams"] == 0 and final["failovers"] == 0 and final["errors_total"] == 0
    assert final["forwarded"] == final["replied"] == total
    assert final["stale_replies"] == 0 and final["in_flight"] == 0
    assert sum(w["replied"] for w in final["workers"]) == total


def test_router_answers_like_serve() -> None:
    """Errors, control messages and REQ clients behave as with ``serve`` directly."""
    raw = Header(stream_id=5, channels=1, frames=16).pack()
    ones = np.ones(16, "<f4").tobytes()
    cases = [
        [raw[:30], ones],  # header_size
        [raw],  # frame_count
        [b"SIGZ" + raw[4:], ones],  # bad_magic
        [raw, ones[:-4]],  # size_mismatch
        [Header(stream_id=5, channels=2, frames=8).pack(), ones],  # channels_mismatch
        [Header(stream_id=5, flags=wire.ERROR, dtype=0).pack(), b""],  # unexpected_flags
        [Header(stream_id=5, flags=0x80, channels=1, frames=4).pack(), ones[:16]],  # bad_flags
    ]
    with Server(Butterworth(), LOCAL) as srv, \
            Router(LOCAL, [srv.endpoint], fast()) as router:
        direct, routed = Client(srv.endpoint), Client(router.endpoint)
        for frames in cases:
            replies = []
            for c in (direct, routed):
                c.send_raw(frames)
                replies.append(c.recv(timeout=5))
            (hd, ed), (hr, er) = replies
            assert hd.is_error and hr.is_error and ed["code"] == er["code"], (ed, er)
            assert hd._replace(timestamp_ns=0) == hr._replace(timestamp_ns=0)
        # control messages and a REQ socket
        routed.send(np.ones(4, np.float32), stream_id=3)
        routed.send(None, stream_id=3, end=True)
        h1, y1 = routed.recv()
        h2, y2 = routed.recv()
        assert (h1.stream_id, h1.seq, h2.seq) == (3, 0, 1) and h2.end and y2.shape[0] == 0
        req = zmq.Context.instance().socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(router.endpoint)
        req.send_multipart(wire.encode(Header(stream_id=3), np.ones(4, np.float32)))
        assert req.poll(5000)
        h, y = wire.decode(req.recv_multipart())
        req.close()
        assert not h.is_error and h.stream_id == 3 and y.shape == (4, 1)
        stats = routed.request_stats()
        direct.close()
        routed.close()
    assert stats["schema"] == "sigstream-router-stats/1"
    # answered by the router itself: undecodable messages, and a bad header on a stream it
    # does not hold (no state is kept for it)
    assert stats["errors"] == {"header_size": 1, "frame_count": 1, "bad_magic": 1,
                               "bad_flags": 1}


# -- failover -------------------------------------------------------------------------------------


def spawn_worker() -> tuple[subprocess.Popen, queue.Queue]:
    """``sigstream serve --model butterworth`` on a free loopback port."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sigstream.cli.main", "serve", "--model", "butterworth",
         "--bind", LOCAL, "--stats-every", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def worker_endpoint(lines: queue.Queue, timeout: float = 60.0) -> str:
    """The endpoint a spawned worker prints once it is bound."""
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        assert line is not None, "the worker exited before serving"
        match = re.match(r"serving butterworth on (tcp://\S+):\s", line)
        if match:
            return match.group(1)


def test_killed_worker_streams_fail_over_with_reset_and_fresh_state() -> None:
    """Two real ``sigstream serve`` processes; one is SIGKILLed with chunks in flight."""
    n_clients, n_streams, n_chunks, size, kill_at = 3, 4, 30, 32, 12
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n_clients, n_streams, n_chunks * size)).astype(np.float32)
    procs = [spawn_worker() for _ in range(2)]
    clients: list[Client] = []
    router = None
    try:
        endpoints = [worker_endpoint(lines) for _, lines in procs]
        router = Router(LOCAL, endpoints, fast()).start()
        clients = [Client(router.endpoint) for _ in range(n_clients)]
        got: dict[tuple[int, int], list] = collections.defaultdict(list)
        identity: dict[bytes, int] = {}

        def send_round(k: int, c: int) -> None:
            for s in range(n_streams):
                clients[c].send(x[c, s, k * size:(k + 1) * size], stream_id=s,
                                end=k == n_chunks - 1)

        def recv_round(c: int) -> None:
            for _ in range(n_streams):
                h, y = clients[c].recv(timeout=10)  # every request is answered, promptly
                assert not h.is_error, y
                got[c, h.stream_id].append((h, y))

        for c in range(n_clients):  # round 0 client by client: learn their identities
            send_round(0, c)
            recv_round(c)
            new = {ident for ident, _ in router.assignments()} - set(identity)
            assert len(new) == 1
            identity[new.pop()] = c
        victim = ""
        placement: dict[tuple[int, int], str | None] = {}
        for k in range(1, n_chunks):
            for c in range(n_clients):
                send_round(k, c)
            if k == kill_at:
                placement = {(identity[i], s): ep for (i, s), ep in router.assignments().items()}
                victim = collections.Counter(placement.values()).most_common(1)[0][0]
                procs[endpoints.index(victim)][0].kill()  # chunks of round k are in flight
            for c in range(n_clients):
                recv_round(c)
        stats = clients[0].request_stats()
    finally:
        for cl in clients:
            cl.close()
        if router is not None:
            router.stop()
        for proc, _ in procs:
            proc.kill()
            proc.wait(10)
    moved = [key for key, ep in placement.items() if ep == victim]
    assert moved and len(placement) == n_clients * n_streams
    for (c, s), replies in got.items():
        hs = [h for h, _ in replies]
        assert [h.seq for h in hs] == list(range(n_chunks))  # nothing lost, doubled, reordered
        y = np.concatenate([y for _, y in replies])[:, 0]
        resets = [k for k, h in enumerate(hs) if h.reset]
        if (c, s) not in moved:
            assert resets == []
            np.testing.assert_allclose(y, offline(x[c, s]), atol=1e-5, rtol=0)
            continue
        # the first reply from the new worker says RESET; from there on: a fresh state
        assert len(resets) == 1 and kill_at <= resets[0] <= kill_at + 1, resets
        cut = resets[0] * size
        np.testing.assert_allclose(y[:cut], offline(x[c, s, :cut]), atol=1e-5, rtol=0)
        np.testing.assert_allclose(y[cut:], offline(x[c, s, cut:]), atol=1e-5, rtol=0)
    workers = {w["endpoint"]: w for w in stats["workers"]}
    survivor = next(e for e in endpoints if e != victim)
    assert not workers[victim]["alive"] and workers[victim]["failovers"] == 1
    assert workers[survivor]["alive"] and workers[survivor]["failovers"] == 0
    assert stats["failovers"] == 1 and stats["streams_moved"] == len(moved)
    assert stats["errors_total"] == 0 and stats["replied"] == n_clients * n_streams * n_chunks


def test_hung_worker_is_probed_then_no_workers_is_answered_promptly() -> None:
    """A worker that accepts but never answers; then one that is not there at all."""
    hung = zmq.Context.instance().socket(zmq.ROUTER)
    hung.setsockopt(zmq.LINGER, 0)
    port = hung.bind_to_random_port("tcp://127.0.0.1")
    try:
        with Router(LOCAL, [f"tcp://127.0.0.1:{port}"], fast(rejoin_interval=0)) as router, \
                Client(router.endpoint) as c:
            t0 = time.monotonic()
            sent = c.send(np.arange(8, dtype=np.float32), stream_id=7)
            h, err = c.recv(timeout=10)
            waited = time.monotonic() - t0
            assert h.is_error and err["code"] == "no_workers" and h.stream_id == 7
            assert 0.3 <= waited < 5, waited  # worker_timeout + probe_timeout
            t0 = time.monotonic()
            c.send(np.ones(8, np.float32), stream_id=8)
            h, err = c.recv(timeout=5)
            assert err["code"] == "no_workers" and time.monotonic() - t0 < 1.0
            stats = c.request_stats()
        # the worker saw the chunk under the router's id, then a liveness probe
        seen = []
        while hung.poll(100):
            seen.append(hung.recv_multipart()[1:])
    finally:
        hung.close()
    chunk, probe = seen[0], seen[1]
    assert chunk[0][:16] + chunk[0][24:] == sent.pack()[:16] + sent.pack()[24:]
    assert wire.decode_header(chunk[0]).stream_id != 7 and chunk[1] == sent_payload(8)
    assert wire.decode_header(probe[0]).is_stats
    assert stats["workers_alive"] == 0 and "probe" in stats["workers"][0]["reason"]
    assert stats["errors"] == {"no_workers": 2}

    with Router(LOCAL, [f"tcp://127.0.0.1:{free_port()}"], fast(connect_timeout=0.2)) as router, \
            Client(router.endpoint) as c:
        assert wait_for(lambda: router.stats()["workers_alive"] == 0, 5)
        t0 = time.monotonic()
        c.send(np.ones(8, np.float32))
        h, err = c.recv(timeout=5)
        assert err["code"] == "no_workers" and time.monotonic() - t0 < 1.0
        stats = router.stats()
    assert "not connected" in stats["workers"][0]["reason"]
    assert stats["failovers"] == 0  # it never came up: nothing failed over


def sent_payload(n: int) -> bytes:
    return np.arange(n, dtype="<f4").tobytes()


def test_unanswered_request_on_a_live_worker_times_out() -> None:
    """A worker that answers probes but loses a chunk: the client gets ERROR timeout."""
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def probes_only() -> None:
        while not stop.is_set():
            if sock.poll(20):
                ident, head, _ = sock.recv_multipart()
                h = wire.decode_header(head)
                if h.is_stats:
                    sock.send_multipart([ident, *wire.encode_json(h, {}, wire.STATS)])

    thread = threading.Thread(target=probes_only, daemon=True)
    thread.start()
    try:
        cfg = fast(request_timeout=1.0, worker_timeout=0.2, probe_timeout=0.5)
        with Router(LOCAL, [f"tcp://127.0.0.1:{port}"], cfg) as router, \
                Client(router.endpoint) as c:
            c.send(np.ones(8, np.float32), stream_id=2)
            h, err = c.recv(timeout=10)
            stats = router.stats()
    finally:
        stop.set()
        thread.join(5)
        sock.close()
    assert h.is_error and err["code"] == "timeout" and h.stream_id == 2
    assert stats["workers_alive"] == 1 and stats["workers"][0]["probes"] >= 1


def test_dead_worker_rejoins_and_lost_state_is_flagged() -> None:
    a = Server(Butterworth(), LOCAL).start()
    b = Server(Butterworth(), LOCAL).start()
    endpoint_a = a.endpoint
    assert endpoint_a is not None
    chunk = np.random.default_rng(3).standard_normal(16).astype(np.float32)
    # enough streams that both workers get some whatever the ports and the client identity
    # place on the ring (8 left all on one worker about once in a hundred runs)
    n = 32

    def round_trip(c: Client) -> list[tuple[Header, object]]:
        for s in range(n):
            c.send(chunk, stream_id=s)
        return sorted((c.recv(timeout=10) for _ in range(n)), key=lambda r: r[0].stream_id)

    with Router(LOCAL, [endpoint_a, b.endpoint], fast()) as router, \
            Client(router.endpoint) as c:
        first = round_trip(c)
        on_a = {s for (_, s), ep in router.assignments().items() if ep == endpoint_a}
        assert all(not h.is_error and not h.reset for h, _ in first) and 0 < len(on_a) < n
        a.stop()  # a graceful stop: the router sees the connection drop
        assert wait_for(lambda: not worker_alive(router, endpoint_a), 5)
        second = round_trip(c)
        assert [h.reset for h, _ in second] == [s in on_a for s in range(n)]
        assert all(not h.is_error for h, _ in second)
        fresh = offline(chunk)
        for h, y in second:  # moved streams restart from a fresh state
            if h.reset:
                np.testing.assert_allclose(y[:, 0], fresh, atol=1e-5, rtol=0)
        b.stop()  # now nobody is left: errors, flagged RESET as the state is gone
        assert wait_for(lambda: router.stats()["workers_alive"] == 0, 5)
        third = round_trip(c)
        assert all(h.is_error and y["code"] == "no_workers" and h.reset for h, y in third)
        a = Server(Butterworth(), endpoint_a).start()  # the same address again
        assert wait_for(lambda: worker_alive(router, endpoint_a), 10)
        fourth = round_trip(c)
        stats = c.request_stats()
    a.stop()
    assert all(not h.is_error and h.reset for h, _ in fourth)
    for _, y in fourth:
        np.testing.assert_allclose(y[:, 0], fresh, atol=1e-5, rtol=0)
    workers = {w["endpoint"]: w for w in stats["workers"]}
    assert workers[endpoint_a]["alive"] and workers[endpoint_a]["rejoins"] == 1
    assert workers[endpoint_a]["streams"] == n and stats["failovers"] == 2


# -- security and configuration -------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", [
    "tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.168.1.10:5555", "tcp://[::]:5555",
])
def test_non_loopback_bind_is_refused_before_any_socket(endpoint: str) -> None:
    with mock.patch.object(zmq.Context, "socket") as make_socket:
        with pytest.raises(ConfigError, match="not a loopback address"):
            Router(endpoint, ["tcp://127.0.0.1:5601"])
        with pytest.raises(ConfigError, match="--insecure"):
            cmd_route(route_args("--bind", endpoint, "--workers", "tcp://127.0.0.1:5601"))
        Router(endpoint, ["tcp://127.0.0.1:5601"], RouterConfig(insecure=True))
        make_socket.assert_not_called()


def test_bad_worker_lists_and_configs_are_refused() -> None:
    for workers, match in [([], "at least one"), (["127.0.0.1:5601"], "bad worker"),
                           (["tcp://127.0.0.1:1", "tcp://127.0.0.1:1"], "twice")]:
        with pytest.raises(ConfigError, match=match):
            Router(LOCAL, workers)
    assert Router(LOCAL, "tcp://127.0.0.1:1, tcp://127.0.0.1:2").ring.nodes == \
        ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"]
    for bad in (dict(worker_timeout=0), dict(probe_timeout=-1.0), dict(vnodes=0),
                dict(rejoin_interval=float("inf")), dict(max_streams=0)):
        with pytest.raises(ConfigError):
            Router(LOCAL, ["tcp://127.0.0.1:1"], RouterConfig(**bad))
    with pytest.raises(SystemExit):
        route_args("--workers", "localhost:5601")


def route_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_route_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["route", *argv])


def test_cli_route_runs_until_ctrl_c(capsys: pytest.CaptureFixture) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    result: dict = {}
    with Server(Butterworth(), LOCAL) as srv:
        def client() -> None:
            try:
                with Client(endpoint) as c:
                    result["stats"] = c.request_stats(timeout=30)
                    c.send(np.ones(4, np.float32))
                    result["reply"] = c.recv(timeout=10)
            finally:
                os.kill(os.getpid(), signal.SIGINT)

        helper = threading.Thread(target=client)
        helper.start()
        code = cmd_route(route_args("--bind", endpoint, "--workers", str(srv.endpoint),
                                    "--stats-every", "0"))
        helper.join(10)
    assert code == 0
    h, y = result["reply"]
    assert not h.is_error and y.shape == (4, 1)
    assert result["stats"]["workers_alive"] == 1
    err = capsys.readouterr().err
    assert f"routing on {endpoint} to 1 worker(s)" in err and "stopped; route:" in err


# -- CURVE ----------------------------------------------------------------------------------------

curve = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")


@pytest.fixture
def certs(tmp_path) -> dict[str, str]:
    """Certificates of a router, a worker, a client and a stranger, and who admits whom:
    ``router_clients`` holds the client's public certificate, ``worker_clients`` the
    router's."""
    keys = tmp_path / "keys"
    keys.mkdir()
    out: dict[str, str] = {}
    for name in ("router", "worker", "client", "stranger"):
        out[name], out[name + "_secret"] = zmq.auth.create_certificates(str(keys), name)
    for folder, admitted in (("router_clients", "client"), ("worker_clients", "router")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{admitted}.key").write_bytes(open(out[admitted], "rb").read())
        out[folder] = str(tmp_path / folder)
    return out


def curve_client(endpoint: str, server_cert: str, own_cert: str, **kw: object) -> Client:
    server_key = zmq.auth.load_certificate(server_cert)[0]
    public, secret = zmq.auth.load_certificate(own_cert)
    return Client(endpoint, server_public_key=server_key, public_key=public, secret_key=secret,
                  **kw)


@curve
def test_router_front_speaks_curve_and_refuses_wrong_keys(certs: dict[str, str]) -> None:
    chunk = np.random.default_rng(6).standard_normal(32).astype(np.float32)
    cfg = fast(curve_secret_file=certs["router_secret"], curve_clients_dir=certs["router_clients"])
    with Server(Butterworth(), LOCAL) as srv, Router(LOCAL, [srv.endpoint], cfg) as router:
        refused = [
            curve_client(router.endpoint, certs["router"], certs["stranger_secret"],
                         send_timeout=0.3),  # a key pair the router does not admit
            curve_client(router.endpoint, certs["stranger"], certs["client_secret"],
                         send_timeout=0.3),  # the wrong router key
            Client(router.endpoint, send_timeout=0.3),  # no encryption
        ]
        for c in refused:
            with pytest.raises(TimeoutError):  # the send or the reply times out
                c.send(chunk, stream_id=1)
                c.recv(timeout=0.5)
            c.close()
        assert router.stats()["requests"] == 0 and srv.counters.received == 0  # nothing got in
        with curve_client(router.endpoint, certs["router"], certs["client_secret"]) as c:
            c.send(chunk, stream_id=1)
            h, y = c.recv(timeout=10)
            stats = c.request_stats()
    assert not h.is_error and h.stream_id == 1
    np.testing.assert_allclose(y[:, 0], offline(chunk), atol=1e-5, rtol=0)
    assert stats["requests"] == 2 and stats["replied"] == 1 and stats["errors_total"] == 0


@curve
def test_router_is_a_curve_client_of_its_workers(certs: dict[str, str]) -> None:
    """The worker runs ``Server(curve_secret_file=...)`` admitting only the router's key."""
    chunk = np.random.default_rng(7).standard_normal(32).astype(np.float32)
    worker_cfg = ServerConfig(curve_secret_file=certs["worker_secret"],
                              curve_clients_dir=certs["worker_clients"])
    with Server(Butterworth(), LOCAL, worker_cfg) as srv:
        wrong = [  # (the router's certificate, the worker key it is given)
            ("router", "stranger"),  # the wrong worker key
            ("stranger", "worker"),  # a router key the worker does not admit
            (None, "worker"),  # a fresh key pair: not admitted either
        ]
        for own, worker_key in wrong:
            keys = dict(curve_secret_file=certs[f"{own}_secret"] if own else None,
                        curve_worker_key=certs[worker_key])
            with Router(LOCAL, [srv.endpoint], fast(rejoin_interval=0, **keys)) as router:
                c = (curve_client(router.endpoint, certs[own], certs["client_secret"]) if own
                     else Client(router.endpoint))  # no router certificate: a plain front
                t0 = time.monotonic()
                c.send(chunk, stream_id=3)
                h, err = c.recv(timeout=10)
                c.close()
                stats = router.stats()
            assert h.is_error and err["code"] == "no_workers", (keys, err)
            assert time.monotonic() - t0 < 5
            assert "CURVE handshake failed" in stats["workers"][0]["reason"], stats
            assert stats["failovers"] == 0  # it never came up
        assert srv.counters.received == 0  # the worker never saw a message
        # the right keys: the router's certificate is admitted, the worker's key is right
        cfg = fast(curve_secret_file=certs["router_secret"], curve_worker_key=certs["worker"])
        with Router(LOCAL, [srv.endpoint], cfg) as router, \
                curve_client(router.endpoint, certs["router"], certs["client_secret"]) as c:
            c.send(chunk, stream_id=3)
            h, y = c.recv(timeout=10)
            stats = c.request_stats()
    assert not h.is_error and h.stream_id == 3
    np.testing.assert_allclose(y[:, 0], offline(chunk), atol=1e-5, rtol=0)
    assert stats["workers_alive"] == 1 and stats["workers"][0]["connected"]
    assert stats["workers"][0]["replied"] == 1 and srv.counters.chunks == 1


@curve
def test_router_with_curve_may_bind_off_loopback_before_any_socket(certs: dict[str, str]) -> None:
    with mock.patch.object(zmq.Context, "socket") as make_socket:
        Router("tcp://0.0.0.0:5555", ["tcp://127.0.0.1:5601"],
               RouterConfig(curve_secret_file=certs["router_secret"]))
        with pytest.raises(ConfigError, match="not found"):
            Router(LOCAL, ["tcp://127.0.0.1:5601"], RouterConfig(curve_worker_key="/nope.key"))
        with pytest.raises(ConfigError, match="clients directory"):
            Router(LOCAL, ["tcp://127.0.0.1:5601"], RouterConfig(curve_clients_dir="/nope"))
        make_socket.assert_not_called()


@curve
def test_cli_route_with_curve_on_both_sides(certs: dict[str, str],
                                            capsys: pytest.CaptureFixture) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    result: dict = {}
    chunk = np.ones(4, np.float32)
    worker_cfg = ServerConfig(curve_secret_file=certs["worker_secret"],
                              curve_clients_dir=certs["worker_clients"])
    with Server(Butterworth(), LOCAL, worker_cfg) as srv:
        def client() -> None:
            try:
                with curve_client(endpoint, certs["router"], certs["client_secret"]) as c:
                    result["stats"] = c.request_stats(timeout=30)
                    c.send(chunk)
                    result["reply"] = c.recv(timeout=10)
            finally:
                os.kill(os.getpid(), signal.SIGINT)

        helper = threading.Thread(target=client)
        helper.start()
        code = cmd_route(route_args(
            "--bind", endpoint, "--workers", str(srv.endpoint), "--stats-every", "0",
            "--curve-secret", certs["router_secret"], "--curve-clients", certs["router_clients"],
            "--worker-key", certs["worker"]))
        helper.join(10)
    assert code == 0
    h, y = result["reply"]
    assert not h.is_error and y.shape == (4, 1)
    assert result["stats"]["workers_alive"] == 1
    err = capsys.readouterr().err
    assert f"routing on {endpoint} to 1 worker(s)" in err and "CURVE" in err


def test_router_keeps_nothing_for_streams_every_worker_refuses_and_applies_quotas() -> None:
    """500 messages with an invalid flag bit on fresh stream ids: each is answered with the
    worker's bad_flags and the router holds no stream afterwards. A client is held to
    its quota (half of max_streams) while another is still routed exactly."""
    ones = np.ones(16, "<f4").tobytes()
    with Server(Butterworth(), LOCAL) as srv, \
            Router(LOCAL, [srv.endpoint], fast(max_streams=8)) as router:
        junk, flood, polite = (Client(router.endpoint, sample_rate=1000.0) for _ in range(3))
        for sid in range(500):
            junk.send_raw([Header(stream_id=sid, flags=0x80, channels=1, frames=4).pack(),
                           ones])
        codes = {junk.recv(timeout=5)[1]["code"] for _ in range(500)}
        assert codes == {"bad_flags"}
        assert router.stats()["streams"] == 0
        got = []
        for sid in range(6):
            flood.send(np.ones(8, np.float32), stream_id=sid)
            h, y = flood.recv(timeout=5)
            got.append(y["code"] if h.is_error else "ok")
        assert got == ["ok"] * 4 + ["client_quota"] * 2
        x = np.arange(8, dtype=np.float32)
        polite.send(x, stream_id=0)
        h, y = polite.recv(timeout=5)
        assert not h.is_error
        np.testing.assert_allclose(y[:, 0], offline(x), rtol=1e-5, atol=1e-6)
        for c in (junk, flood, polite):
            c.close()


def test_a_router_restart_gives_reset_and_a_fresh_start() -> None:
    """The router's stream table dies with it; the worker then sees the stream under a new
    router connection: the next reply carries RESET and equals a fresh start from its
    chunk, the ones after continue exactly."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    x = np.random.default_rng(5).standard_normal(64).astype(np.float32)
    with Server(Butterworth(), LOCAL) as srv:
        router = Router(endpoint, [srv.endpoint], fast()).start()
        try:
            with Client(endpoint, sample_rate=1000.0) as c:
                c.send(x[:16], stream_id=2)
                h, y = c.recv(timeout=10)
                assert not h.is_error and not h.reset
                np.testing.assert_allclose(y[:, 0], offline(x[:16]), rtol=1e-5, atol=1e-6)
                router.stop()
                router = Router(endpoint, [srv.endpoint], fast()).start()
                assert wait_for(lambda: worker_alive(router, srv.endpoint))
                c.send(x[16:32], stream_id=2)
                h, y = c.recv(timeout=10)
                assert not h.is_error and h.reset, h
                np.testing.assert_allclose(y[:, 0], offline(x[16:32]), rtol=1e-5, atol=1e-6)
                c.send(x[32:], stream_id=2)
                h, y = c.recv(timeout=10)
                assert not h.is_error and not h.reset
                np.testing.assert_allclose(y[:, 0], offline(x[16:])[16:], rtol=1e-5, atol=1e-6)
        finally:
            router.stop()


def test_a_stopped_and_continued_worker_never_yields_a_silently_wrong_reply() -> None:
    """Two real ``sigstream serve`` processes; the one holding streams is SIGSTOPped with
    chunks in flight and SIGCONTed three rounds later. Every chunk is answered, and every
    reply either continues its stream exactly or carries RESET and equals a fresh start
    from its chunk."""
    n_streams, n_chunks, size, stop_at = 4, 16, 32, 5
    x = np.random.default_rng(6).standard_normal((n_streams, n_chunks * size)).astype(np.float32)
    procs = [spawn_worker() for _ in range(2)]
    router = client = None
    try:
        endpoints = [worker_endpoint(lines) for _, lines in procs]
        router = Router(LOCAL, endpoints, fast()).start()
        client = Client(router.endpoint)
        got: dict[int, list] = collections.defaultdict(list)
        stopped = None
        for k in range(n_chunks):
            for s in range(n_streams):
                client.send(x[s, k * size:(k + 1) * size], stream_id=s)
            if k == stop_at:
                victim = collections.Counter(router.assignments().values()).most_common(1)[0][0]
                stopped = procs[endpoints.index(victim)][0]
                stopped.send_signal(signal.SIGSTOP)
            if k == stop_at + 3 and stopped is not None:
                stopped.send_signal(signal.SIGCONT)
            for _ in range(n_streams):
                h, y = client.recv(timeout=15)
                assert not h.is_error, y
                got[h.stream_id].append((h, y[:, 0]))
    finally:
        if client is not None:
            client.close()
        if router is not None:
            router.stop()
        for proc, _ in procs:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(10)
    resets = 0
    for s, replies in got.items():
        assert [h.seq for h, _ in replies] == list(range(n_chunks))
        start = 0  # the sample where the stream's current state began
        for k, (h, y) in enumerate(replies):
            if h.reset:
                start, resets = k * size, resets + 1
            want = offline(x[s, start:(k + 1) * size])[k * size - start:]
            np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    assert resets >= 1  # the stopped worker's streams moved, and said so
