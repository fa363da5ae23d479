"""Tests for sigstream.stream.net.service: the client socket both services share.

inproc only: high-water marks are exact there (a pipe holds the sender's SNDHWM plus
the receiver's RCVHWM messages), so a full queue is reached deterministically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from unittest import mock

import pytest
import zmq

from sigstream.core.errors import ConfigError
from sigstream.stream.net import wire
from sigstream.stream.net.service import Front, ServiceStats, ThreadedService, split_envelope
from sigstream.stream.net.sockets import SocketOptions
from sigstream.stream.net.wire import Header


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def open_front(ctx: zmq.Context, name: str, hwm: int = 1) -> tuple[Front, ServiceStats]:
    stats = ServiceStats()
    front = Front(f"inproc://{name}", SocketOptions(hwm=hwm, linger=0, router_mandatory=True),
                  stats)
    assert front.open(ctx) == f"inproc://{name}"
    return front, stats


def connect_peer(ctx: zmq.Context, front: Front, rcvhwm: int = 1) -> tuple[zmq.Socket, bytes]:
    """A DEALER that said hello; returns it and its identity on the front."""
    peer = ctx.socket(zmq.DEALER)
    peer.setsockopt(zmq.RCVHWM, rcvhwm)
    peer.setsockopt(zmq.LINGER, 0)
    peer.connect(front.endpoint)
    peer.send(b"hello")
    assert front.sock is not None and front.sock.poll(5000)
    ident, _ = front.sock.recv_multipart()
    return peer, ident


def test_replies_the_client_does_not_read_are_dropped_and_counted(ctx: zmq.Context) -> None:
    front, stats = open_front(ctx, "dropped")
    peer, ident = connect_peer(ctx, front)
    sent = 0
    for _ in range(10):  # SNDHWM 1 + RCVHWM 1: the third reply does not fit
        sent += front.send([ident, b"head", b"payload"])
    assert sent == 2 and stats.replies_dropped == 8
    assert not front.send_reply(ident, b"head", b"payload")
    assert stats.replies_dropped == 9 and stats.unroutable == 0
    assert peer.recv_multipart() == [b"head", b"payload"]  # what was sent arrives whole
    front.close()
    peer.close(0)


def test_replies_to_a_gone_client_are_unroutable(ctx: zmq.Context) -> None:
    front, stats = open_front(ctx, "gone", hwm=10)
    peer, ident = connect_peer(ctx, front, rcvhwm=10)
    assert front.send_reply(ident, b"head", b"payload")
    assert peer.recv_multipart() == [b"head", b"payload"]
    assert not front.send([b"nobody", b"head", b"payload"])
    assert not front.send_reply(b"nobody", b"head", b"payload")
    assert stats.unroutable == 2 and stats.replies_dropped == 0
    front.close()
    peer.close(0)


def test_error_and_stats_replies(ctx: zmq.Context) -> None:
    front, stats = open_front(ctx, "errors", hwm=10)
    peer, ident = connect_peer(ctx, front, rcvhwm=10)
    h = Header(stream_id=5, seq=9, flags=wire.START, timestamp_ns=77)
    front.reply_error([ident], h, "bad_dtype", "dtype code 9")
    front.reply_error([ident], None, "header_size", "short")
    front.reply_error([b"nobody"], h, "bad_dtype", "lost")  # counted though not delivered
    front.reply_stats([ident], Header(flags=wire.STATS, seq=3), {"streams": 4})
    replies = [wire.decode(peer.recv_multipart()) for _ in range(3)]
    (h1, e1), (h2, e2), (h3, s3) = replies
    assert h1.is_error and (h1.stream_id, h1.seq, h1.timestamp_ns) == (5, 9, 77)
    assert not h1.start  # a rejected START started nothing
    assert wire.parse_json(e1) == {"code": "bad_dtype", "message": "dtype code 9"}
    assert h2.is_error and wire.parse_json(e2)["code"] == "header_size"
    assert h3.is_stats and h3.seq == 3 and wire.parse_json(s3) == {"streams": 4}
    assert stats.rejected == {"bad_dtype": 2, "header_size": 1} and stats.rejected_total == 3
    assert stats.unroutable == 1
    front.close()
    peer.close(0)


def test_a_non_loopback_bind_is_refused_before_any_socket() -> None:
    with mock.patch.object(zmq.Context, "socket") as socket:
        with pytest.raises(ConfigError, match="not a loopback address"):
            Front("tcp://0.0.0.0:5555", SocketOptions(), ServiceStats())
        Front("tcp://0.0.0.0:5555", SocketOptions(), ServiceStats(), insecure=True)
        socket.assert_not_called()


def test_a_failed_bind_leaves_nothing_open(ctx: zmq.Context) -> None:
    first, _ = open_front(ctx, "taken")
    second = Front("inproc://taken", SocketOptions(linger=0), ServiceStats())
    with pytest.raises(ConfigError, match="in use"):
        second.open(ctx)
    assert second.sock is None and second.endpoint is None
    first.close()
    first.close()  # idempotent


def test_split_envelope_keeps_a_req_delimiter() -> None:
    assert split_envelope([b"id", b"h", b"p"]) == ([b"id"], [b"h", b"p"])
    assert split_envelope([b"id", b"", b"h", b"p"]) == ([b"id", b""], [b"h", b"p"])
    assert split_envelope([b"id", b"h"]) == ([b"id"], [b"h"])  # malformed: the body says so


def test_service_stats_uptime_and_totals() -> None:
    stats = ServiceStats(started=time.monotonic() - 2.0)
    stats.rejected["a"] += 2
    assert stats.rejected_total == 2 and 2.0 <= stats.uptime_s() < 60


def test_housekeeping_sweeps_and_prints_when_due(capsys: pytest.CaptureFixture) -> None:
    @dataclass
    class Config:
        idle_timeout: float = 0.2
        stats_every: float = 0.01

    class Service(ThreadedService):
        def __init__(self) -> None:
            self.config = Config()
            self._init_lifecycle()
            self.sweeps = 0

        def _sweep(self, now: float) -> None:
            self.sweeps += 1

        def stats_line(self) -> str:
            return f"svc: sweeps {self.sweeps}"

    svc = Service()
    svc._start_housekeeping()
    svc._housekeeping()  # nothing is due yet
    assert svc.sweeps == 0 and capsys.readouterr().err == ""
    assert svc._sweep_interval() == pytest.approx(0.05)  # idle_timeout / 4
    time.sleep(0.06)
    svc._housekeeping()
    svc._housekeeping()  # not due again yet
    assert svc.sweeps == 1
    assert capsys.readouterr().err == "svc: sweeps 1\n"


def test_check_config_names_the_field_of_each_kind() -> None:
    import dataclasses

    from sigstream.core.errors import ConfigError
    from sigstream.stream.net.service import check_config

    @dataclasses.dataclass
    class Cfg:
        n: int = 1
        wait: float = 0.5
        idle: float = 0.0
        max_message_bytes: int = 1 << 20

    kinds = dict(counts=("n",), positive_seconds=("wait",), seconds=("idle",))
    check_config(Cfg(), **kinds)
    for bad, fragment in [(dict(n=0), "n must be a positive integer"),
                          (dict(n=True), "n must be a positive integer"),
                          (dict(wait=0.0), "wait must be a number of seconds > 0"),
                          (dict(wait=float("inf")), "wait must be a number of seconds > 0"),
                          (dict(idle=-1.0), "idle must be a number of seconds >= 0"),
                          (dict(idle=float("nan")), "idle must be a number of seconds >= 0"),
                          (dict(idle=float("inf")), "idle must be a number of seconds >= 0"),
                          (dict(max_message_bytes=10), "max_message_bytes must be >= 64")]:
        with pytest.raises(ConfigError, match=fragment):
            check_config(Cfg(**bad), **kinds)
    check_config(Cfg(idle=float("inf")), **kinds, finite=False)  # the server's "never"
