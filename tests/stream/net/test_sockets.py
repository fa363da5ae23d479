"""Tests for sigstream.stream.net.sockets: endpoints, the bind check, options, CURVE keys.

Everything binds loopback or inproc; no test waits unboundedly.
"""

from __future__ import annotations

from unittest import mock

import pytest
import zmq
import zmq.auth

from sigstream.core.errors import ConfigError
from sigstream.stream.net.sockets import (
    CurveClient,
    CurveServer,
    SocketOptions,
    check_bind_allowed,
    connect_socket,
    curve_for,
    is_loopback_endpoint,
    load_public_key,
    make_socket,
    open_socket,
)


@pytest.mark.parametrize("endpoint, loopback", [
    ("tcp://127.0.0.1:5555", True), ("tcp://127.8.9.10:1", True), ("tcp://[::1]:5555", True),
    ("tcp://localhost:5555", True), ("inproc://x", True), ("ipc:///tmp/x", True),
    ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False), ("tcp://192.168.1.2:5555", False),
    ("tcp://[::]:5555", False), ("tcp://eth0:5555", False), ("tcp://example.com:1", False),
    ("udp://127.0.0.1:1", False), ("tcp://127.0.0.1", False),
])
def test_loopback_detection(endpoint: str, loopback: bool) -> None:
    assert is_loopback_endpoint(endpoint) is loopback


def test_check_bind_allowed() -> None:
    check_bind_allowed("tcp://127.0.0.1:5555")
    check_bind_allowed("tcp://0.0.0.0:5555", insecure=True)
    check_bind_allowed("tcp://0.0.0.0:5555", curve=True)
    with pytest.raises(ConfigError, match="not a loopback address.*--curve-secret.*--insecure"):
        check_bind_allowed("tcp://0.0.0.0:5555")
    with pytest.raises(ConfigError, match="bad endpoint"):
        check_bind_allowed("127.0.0.1:5555")


# -- options --------------------------------------------------------------------------------------


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def test_options_are_set_before_the_socket_binds(ctx: zmq.Context) -> None:
    options = SocketOptions(hwm=7, rcvhwm=9, linger=0.25, max_message_bytes=4096,
                            router_mandatory=True, send_timeout=1.5)
    sock, endpoint = open_socket(ctx, zmq.ROUTER, "tcp://127.0.0.1:*", "bind", options)
    try:
        assert endpoint.startswith("tcp://127.0.0.1:") and not endpoint.endswith("*")
        assert sock.getsockopt(zmq.SNDHWM) == 7 and sock.getsockopt(zmq.RCVHWM) == 9
        assert sock.getsockopt(zmq.LINGER) == 250
        assert sock.getsockopt(zmq.MAXMSGSIZE) == 4096
        assert sock.getsockopt(zmq.SNDTIMEO) == 1500
        assert sock.getsockopt(zmq.IPV6) == 0
    finally:
        sock.close(0)
    sub = make_socket(ctx, zmq.SUB, "tcp://[::1]:5555", SocketOptions(subscribe=b""))
    try:
        assert sub.getsockopt(zmq.IPV6) == 1  # an IPv6 host needs the option
    finally:
        sub.close(0)


def test_open_socket_errors_are_one_line_and_close_the_socket(ctx: zmq.Context) -> None:
    taken, endpoint = open_socket(ctx, zmq.PULL, "tcp://127.0.0.1:*", "bind")
    made: list[zmq.Socket] = []
    real = ctx.socket

    def socket(kind: int) -> zmq.Socket:
        made.append(real(kind))
        return made[-1]

    with mock.patch.object(ctx, "socket", socket):
        with pytest.raises(ConfigError, match=f"^address {endpoint} is in use; pick another"):
            open_socket(ctx, zmq.PULL, endpoint, "bind")
        with pytest.raises(ConfigError, match="^cannot connect to worker tcp://nohost"):
            connect_socket(made[-1], "tcp://nohost", "worker")
    assert made[0].closed
    taken.close(0)


# -- CURVE ----------------------------------------------------------------------------------------

curve = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")


@curve
def test_curve_server_and_client_keys_from_certificates(tmp_path) -> None:
    public_file, secret_file = zmq.auth.create_certificates(str(tmp_path), "server")
    public, secret = zmq.auth.load_certificate(secret_file)
    server = CurveServer.load(secret_file)
    assert (server.public, server.secret, server.clients_dir) == (public, secret, None)
    assert secret.decode() not in repr(server)  # never print a secret key
    assert CurveServer.configure(None) is None
    client = CurveClient.load(public_file)  # a certificate file ...
    assert client.server_key == public and len(client.public) == len(client.secret) == 40
    assert CurveClient.load(public.decode()).server_key == public  # ... or a Z85 key
    assert load_public_key(secret_file) == public  # a secret certificate holds it too
    assert secret.decode() not in repr(client)
    own = CurveClient.load(public, secret_file)
    assert (own.public, own.secret) == (public, secret)


@curve
def test_curve_key_errors_name_the_fix(tmp_path) -> None:
    public_file, secret_file = zmq.auth.create_certificates(str(tmp_path), "server")
    with pytest.raises(ConfigError, match="not found; create one with zmq.auth"):
        CurveServer.load(str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="holds no secret key"):
        CurveServer.load(public_file)
    with pytest.raises(ConfigError, match="clients directory .* not found"):
        CurveServer.configure(None, str(tmp_path / "nope"))
    (tmp_path / "junk").write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot read CURVE certificate|holds no secret"):
        CurveServer.load(str(tmp_path / "junk"))
    for bad in ("short", "~" * 40, str(tmp_path / "missing.key")):
        with pytest.raises(ConfigError, match="neither a certificate file .* nor a 40-character"):
            load_public_key(bad)


@curve
def test_curve_for_picks_the_side_by_mode(tmp_path) -> None:
    public_file, secret_file = zmq.auth.create_certificates(str(tmp_path), "server")
    clients = tmp_path / "clients"
    clients.mkdir()
    assert curve_for("bind") is None and curve_for("connect") is None
    server = curve_for("bind", secret=secret_file, clients=str(clients))
    assert isinstance(server, CurveServer) and server.clients_dir == str(clients)
    client = curve_for("connect", server=public_file, secret=secret_file)
    assert isinstance(client, CurveClient) and client.public == server.public
    for mode, kw, match in [
        ("bind", dict(server=public_file), "curve_server= is for a connecting socket"),
        ("bind", dict(clients=str(clients)), "curve_clients= needs curve_secret="),
        ("connect", dict(clients=str(clients)), "curve_clients= is for a binding socket"),
        ("connect", dict(secret=secret_file), "also needs curve_server="),
    ]:
        with pytest.raises(ConfigError, match=match):
            curve_for(mode, **kw)


@curve
def test_curve_sockets_talk_and_a_wrong_server_key_is_refused(ctx: zmq.Context,
                                                              tmp_path) -> None:
    public_file, secret_file = zmq.auth.create_certificates(str(tmp_path), "server")
    _, stranger_file = zmq.auth.create_certificates(str(tmp_path), "stranger")
    server = CurveServer.load(secret_file)
    pull, endpoint = open_socket(ctx, zmq.PULL, "tcp://127.0.0.1:*", "bind", curve=server)
    wrong, _ = open_socket(ctx, zmq.PUSH, endpoint, "connect", SocketOptions(linger=0),
                           CurveClient.load(stranger_file))
    right, _ = open_socket(ctx, zmq.PUSH, endpoint, "connect", SocketOptions(linger=0),
                           CurveClient.load(public_file))
    try:
        wrong.send(b"from a stranger")
        right.send(b"hello")
        assert pull.poll(5000)
        assert pull.recv() == b"hello"
        assert not pull.poll(300)  # the stranger's message never arrives
    finally:
        for s in (pull, wrong, right):
            s.close(0)
