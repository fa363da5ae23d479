"""What the ZeroMQ services (``Server``, ``Router``) share: lifecycle, client socket, counters.

- :class:`ThreadedService`: ``start()`` binds in the caller's thread and serves in a
  daemon thread; ``stop()`` finishes gracefully; plus the periodic housekeeping
  both loops run (sweeping idle streams, the one-line stats on stderr).
- :class:`Front`: the client-facing ROUTER socket. It refuses a non-loopback bind
  without CURVE or ``insecure`` before any socket exists, opens the socket with the
  service's options (high-water marks, LINGER, ZMQ_MAXMSGSIZE, ROUTER_MANDATORY,
  IPv6, CURVE with an optional authenticator), and sends every reply without
  blocking, with accounting: a reply the client's queue does not take (``zmq.Again``)
  counts in ``replies_dropped``, one to a client that is gone (EHOSTUNREACH) in
  ``unroutable``; ERROR replies (:func:`wire.encode_error`) count by reason.
- :class:`ServiceStats`: the counters both services keep; each extends it with its
  own (``ServerStats``, ``RouterStats``) and names them in its STATS reply.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from sigstream.core.errors import ConfigError
from sigstream.stream.net import wire
from sigstream.stream.net.sockets import (
    CurveServer,
    SocketOptions,
    bind_socket,
    check_bind_allowed,
    make_socket,
)
from sigstream.stream.net.wire import Header

__all__ = ["ThreadedService", "ServiceStats", "Front", "split_envelope"]

_NOBLOCK = int(zmq.NOBLOCK)  # plain ints: enum operations cost microseconds on a hot path
_SNDMORE_NOBLOCK = int(zmq.SNDMORE) | int(zmq.NOBLOCK)


class ThreadedService:
    """``start()`` binds in the caller's thread (so errors raise there) and runs
    ``serve_forever()`` in a daemon thread; ``stop()`` asks it to finish gracefully.

    Subclasses provide ``bind()``, ``serve_forever()``, ``stats_line()`` and
    ``_sweep(now)``, have a ``config`` with ``idle_timeout`` and ``stats_every``, call
    ``_init_lifecycle()`` in ``__init__``, set ``self._serving`` once they serve, call
    ``_start_housekeeping()`` before their loop and ``_housekeeping()`` in it, and
    honour ``self._stop``.
    """

    _thread_name = "sigstream-service"
    config: Any
    front: Front

    @property
    def endpoint(self) -> str | None:
        """The bound client-facing endpoint (None before :meth:`bind`)."""
        return self.front.endpoint

    def _init_lifecycle(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serving = threading.Event()
        self._next_sweep = 0.0
        self._next_print = float("inf")

    def bind(self) -> Any:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def serve_forever(self) -> None:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def stats_line(self) -> str:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def _sweep(self, now: float) -> None:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def start(self, timeout: float = 10.0):
        """Bind here, then serve in a daemon thread; returns self once it serves."""
        self.bind()
        self._stop.clear()
        self._thread = threading.Thread(target=self.serve_forever, name=self._thread_name,
                                        daemon=True)
        self._thread.start()
        if not self._serving.wait(timeout):
            raise RuntimeError(f"the {self._thread_name} thread did not start")
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Graceful stop: finish what is in flight, reply, close. Callable from any thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if not thread.is_alive():
                self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- housekeeping -----------------------------------------------------------------------------
    def _sweep_interval(self) -> float:
        idle = self.config.idle_timeout
        return min(1.0, idle / 4) if idle > 0 else 1.0

    def _start_housekeeping(self) -> None:
        now = time.monotonic()
        every = self.config.stats_every
        self._next_sweep = now + self._sweep_interval()
        self._next_print = now + every if every else float("inf")

    def _housekeeping(self) -> None:
        """Sweep idle streams and print the stats line when they are due."""
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
            self._next_sweep = now + self._sweep_interval()
        if now >= self._next_print:
            print(self.stats_line(), file=sys.stderr, flush=True)
            self._next_print = now + self.config.stats_every


@dataclass
class ServiceStats:
    """Counters every ZeroMQ service keeps about its clients.

    received: messages taken off the client socket (a server's ``messages``, a
    router's ``requests`` in the STATS reply); rejected: ERROR replies by reason
    code (a server's ``rejected``, a router's ``errors``); replies_dropped: replies
    the client's queue did not take (it does not read them); unroutable: replies to
    a client that is gone.
    """

    started: float = field(default_factory=time.monotonic)
    received: int = 0
    rejected: collections.Counter = field(default_factory=collections.Counter)
    replies_dropped: int = 0
    unroutable: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started, 3)


def check_config(config: Any, *, counts: tuple[str, ...] = (),
                 positive_seconds: tuple[str, ...] = (), seconds: tuple[str, ...] = (),
                 finite: bool = True) -> None:
    """Validate a service config's fields by kind; one ConfigError line naming the field.

    counts: positive integers; positive_seconds: finite numbers > 0; seconds: numbers >= 0
    (finite unless ``finite=False``); ``max_message_bytes`` must hold a header.
    """
    for name in counts:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    for name in positive_seconds:
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}")
    limit = float("inf") if finite else float("nan")
    for name in seconds:
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or not value >= 0 or value == limit:
            raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")
    if config.max_message_bytes < wire.HEADER_SIZE:
        raise ConfigError(f"max_message_bytes must be >= {wire.HEADER_SIZE}")


def split_envelope(parts: list[Any]) -> tuple[list[Any], list[Any]]:
    """``(envelope, body)`` of a message received on a ROUTER socket.

    The envelope is the peer identity, plus the empty delimiter a REQ socket adds
    (replies must carry it back).
    """
    if len(parts) == 4 and len(parts[1]) == 0:
        return parts[:2], parts[2:]
    return parts[:1], parts[1:]


class Front:
    """A service's client-facing ROUTER socket: bind checks, options, CURVE, replies.

    ``bind`` is checked here, before any socket exists: a non-loopback address needs
    ``curve`` or ``insecure``. :meth:`open` creates the socket in a context the
    service owns (and, with ``curve.clients_dir``, the authenticator) and binds it;
    :meth:`close` undoes that. Every send is non-blocking and counted in ``stats``
    when it fails (see the module docstring).
    """

    def __init__(self, bind: str, options: SocketOptions, stats: ServiceStats, *,
                 curve: CurveServer | None = None, insecure: bool = False) -> None:
        check_bind_allowed(bind, curve=curve is not None, insecure=insecure)
        self.bind_address = bind
        self.options = options
        self.stats = stats
        self.curve = curve
        self.insecure = insecure
        self.endpoint: str | None = None
        self.sock: zmq.Socket | None = None
        self._send: Any = None  # sock.send, bound once for the hot path
        self._auth: Any = None

    def open(self, ctx: zmq.Context) -> str:
        """Create the ROUTER socket in ``ctx`` and bind it; returns the bound endpoint."""
        check_bind_allowed(self.bind_address, curve=self.curve is not None,
                           insecure=self.insecure)
        sock = None
        try:
            if self.curve is not None:
                self._auth = self.curve.authenticator(ctx)
            sock = make_socket(ctx, zmq.ROUTER, self.bind_address, self.options, self.curve)
            self.endpoint = bind_socket(sock, self.bind_address)
        except BaseException:
            if sock is not None:
                sock.close(0)
            self._stop_auth()
            raise
        self.sock = sock
        self._send = sock.send
        return self.endpoint

    def close(self) -> None:
        """Close the socket (flushing replies for LINGER) and stop the authenticator."""
        if self.sock is not None:
            self.sock.close()
            self.sock = self._send = None
        self._stop_auth()

    def _stop_auth(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    # -- replies ----------------------------------------------------------------------------------
    def send(self, parts: list[Any]) -> bool:
        """Send a whole message (envelope + frames) without blocking; False if not sent."""
        sock = self.sock
        assert sock is not None
        try:
            sock.send_multipart(parts, flags=_NOBLOCK, copy=False)
        except zmq.Again:
            self.stats.replies_dropped += 1  # the client does not read its replies
            return False
        except zmq.ZMQError as err:
            if err.errno == zmq.EHOSTUNREACH:
                self.stats.unroutable += 1  # the client is gone
                return False
            raise
        return True

    def send_reply(self, identity: bytes, header: bytes, payload: Any) -> bool:
        """:meth:`send` of ``[identity, header, payload]``, frame by frame (a hot path)."""
        send = self._send
        try:
            send(identity, _SNDMORE_NOBLOCK)
        except zmq.Again:
            self.stats.replies_dropped += 1
            return False
        except zmq.ZMQError as err:
            if err.errno == zmq.EHOSTUNREACH:
                self.stats.unroutable += 1
                return False
            raise
        send(header, _SNDMORE_NOBLOCK)  # the rest of a started message is always accepted
        send(payload, _NOBLOCK)
        return True

    def reply_error(self, envelope: list[Any], header: Header | None, code: str,
                    message: str, reset: bool = False) -> None:
        """An ERROR reply echoing ``header`` (see :func:`wire.encode_error`), counted by code;
        ``reset``: the stream's state was lost (the reply carries RESET)."""
        self.stats.rejected[code] += 1
        self.send(envelope + wire.encode_error(header, code, message, reset))

    def reply_stats(self, envelope: list[Any], header: Header, stats: dict) -> None:
        """The STATS reply to a STATS request ``header``."""
        self.send(envelope + wire.encode_json(header, stats, wire.STATS))
