"""ZeroMQ sources and sinks speaking wire format v1 (:mod:`sigstream.stream.net.wire`).

N: frames, C: channels.

- :class:`ZmqSource` receives one stream on a PULL (bind or connect) or SUB
  (connect) socket and hands its samples to a pipeline as (n, C) float32 blocks.
- :class:`ZmqSink` sends a pipeline's output on a PUSH or PUB socket, one message
  per block, with a ``block`` (wait) or ``drop`` (count and discard) policy when
  the consumer is slower.
- :func:`parse_zmq_spec` reads ``zmq:ENDPOINT[,key=value...]`` specs.

Binding a socket on anything but a loopback address (127.0.0.0/8, ::1,
localhost) or a local transport (``ipc://``, ``inproc://``) is refused with a
:class:`~sigstream.core.errors.ConfigError` before the socket exists, unless the
socket is encrypted or ``insecure=True``: the wire format is not authenticated.

CURVE (see :mod:`sigstream.stream.net.sockets`): the side that binds is the CURVE
server and takes its certificate with the secret key (``curve_secret``), plus
optionally a directory of authorised client certificates (``curve_clients``; the
socket then gets a context of its own, with the authenticator, unless one is
passed); the side that connects takes the binding side's public key
(``curve_server``: a certificate file or a Z85 key) and optionally its own
certificate (``curve_secret``; else a fresh key pair). A peer with a wrong key never
completes the handshake: nothing it sends is delivered. Messages are parsed with
:func:`wire.decode`; nothing is unpickled.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from sigstream.core.errors import ConfigError, InputError
from sigstream.stream.io.sinks import Sink
from sigstream.stream.io.sources import Source
from sigstream.stream.net import wire
from sigstream.stream.net.sockets import (
    HANDSHAKE_FAILED,
    SPEC_REMEDY,
    Curve,
    CurveClient,
    CurveServer,
    SocketOptions,
    bind_socket,
    check_bind_allowed,
    close_monitored,
    connect_socket,
    curve_for,
    make_socket,
)
from sigstream.stream.net.wire import Header, WireError

__all__ = ["ZmqSpec", "parse_zmq_spec", "ZmqSource", "ZmqSink"]


# -- spec strings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZmqSpec:
    """A parsed ``zmq:`` spec; see :func:`parse_zmq_spec`."""

    endpoint: str
    pattern: str
    mode: str
    hwm: int = 1000
    policy: str = "block"
    channels: int | None = None
    sample_rate: float | None = None
    timeout: float | None = None
    stream_id: int | None = None
    allow_non_finite: bool = False
    dtype: str = "float32"
    insecure: bool = False
    curve_secret: str | None = None
    curve_server: str | None = None
    curve_clients: str | None = None

    @property
    def is_source(self) -> bool:
        return self.pattern in ("pull", "sub")

    def make_source(self, *, default_channels: int = 1,
                    default_rate: float | None = None) -> ZmqSource:
        if not self.is_source:
            raise ConfigError(f"a {self.pattern.upper()} socket cannot be a source; use "
                              "pattern=pull or pattern=sub")
        return ZmqSource(self.endpoint, mode=self.mode, pattern=self.pattern, hwm=self.hwm,
                         channels=self.channels or default_channels,
                         sample_rate=self.sample_rate or default_rate, timeout=self.timeout,
                         stream_id=self.stream_id, allow_non_finite=self.allow_non_finite,
                         insecure=self.insecure, curve_secret=self.curve_secret,
                         curve_server=self.curve_server, curve_clients=self.curve_clients)

    def make_sink(self) -> ZmqSink:
        if self.is_source:
            raise ConfigError(f"a {self.pattern.upper()} socket cannot be a sink; use "
                              "pattern=push or pattern=pub")
        return ZmqSink(self.endpoint, mode=self.mode, pattern=self.pattern, hwm=self.hwm,
                       policy=self.policy, stream_id=self.stream_id or 0,
                       send_timeout=self.timeout, dtype=self.dtype, insecure=self.insecure,
                       curve_secret=self.curve_secret, curve_server=self.curve_server,
                       curve_clients=self.curve_clients)


_SPEC_KEYS = ("mode", "pattern", "hwm", "policy", "channels", "rate", "timeout", "stream",
              "nonfinite", "dtype", "insecure", "curve_secret", "curve_server", "curve_clients")


def parse_zmq_spec(spec: str, role: str | None = None) -> ZmqSpec:
    """Parse ``zmq:ENDPOINT[,key=value...]``; ``role`` ("source"/"sink") sets the default pattern.

    Keys: ``mode=bind|connect`` (default: bind for pull, connect for sub and push, bind for
    pub), ``pattern=pull|sub|push|pub``, ``hwm=N`` (high-water mark, messages),
    ``policy=block|drop`` (sinks), ``channels=C`` and ``rate=HZ`` (what a source delivers),
    ``timeout=S`` (a source ends after S s without a message; a blocking sink fails after
    S s), ``stream=ID`` (a sink's stream id; a source accepts only that stream),
    ``nonfinite=reject|pass``, ``dtype=float32|int16`` (sinks), ``insecure=1`` (allow a
    non-loopback bind without CURVE), and CURVE: ``curve_secret=FILE`` (this side's
    certificate with its secret key; on a bind side it turns CURVE on),
    ``curve_server=FILE|Z85`` (a connect side: the binding side's public key; turns CURVE
    on), ``curve_clients=DIR`` (a bind side: only clients whose certificates are in DIR).
    Files are read when the source or sink is made. Example:
    ``zmq:tcp://127.0.0.1:5555,mode=bind,pattern=pull,hwm=1000``.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"bad zmq spec {spec!r}")
    text = spec[4:] if spec.lower().startswith("zmq:") else spec
    endpoint, *parts = [p.strip() for p in text.split(",")]
    if "://" not in endpoint:
        raise ConfigError(f"bad zmq spec {spec!r}: expected zmq:tcp://HOST:PORT[,key=value...]")
    opts: dict[str, str] = {}
    for part in filter(None, parts):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise ConfigError(f"bad option {part!r} in {spec!r}: expected key=value")
        if key not in _SPEC_KEYS:
            raise ConfigError(f"unknown option {key!r} in {spec!r}; options: "
                              f"{', '.join(_SPEC_KEYS)}")
        opts[key] = value.strip()

    def number(key: str, cast: type, minimum: float) -> Any:
        if key not in opts:
            return None
        try:
            value = cast(opts[key])
        except ValueError:
            raise ConfigError(f"option {key}= in {spec!r} needs a number, "
                              f"got {opts[key]!r}") from None
        if not (isinstance(value, int) or math.isfinite(value)) or value < minimum:
            raise ConfigError(f"option {key}= in {spec!r} must be >= {minimum}, got {value}")
        return value

    default_pattern = {"source": "pull", "sink": "push", None: None}.get(role, None)
    pattern = opts.get("pattern", default_pattern)
    if pattern is None:
        raise ConfigError(f"{spec!r}: give pattern=pull|sub|push|pub")
    pattern = pattern.lower()
    if pattern not in ("pull", "sub", "push", "pub"):
        raise ConfigError(f"unknown pattern {pattern!r} in {spec!r}; use pull, sub, push or pub")
    if role == "source" and pattern not in ("pull", "sub"):
        raise ConfigError(f"{spec!r}: a source needs pattern=pull or pattern=sub")
    if role == "sink" and pattern not in ("push", "pub"):
        raise ConfigError(f"{spec!r}: a sink needs pattern=push or pattern=pub")
    mode = opts.get("mode", "bind" if pattern in ("pull", "pub") else "connect").lower()
    if mode not in ("bind", "connect"):
        raise ConfigError(f"unknown mode {mode!r} in {spec!r}; use bind or connect")
    policy = opts.get("policy", "block").lower()
    if policy not in ("block", "drop"):
        raise ConfigError(f"unknown policy {policy!r} in {spec!r}; use block or drop")
    nonfinite = opts.get("nonfinite", "reject").lower()
    if nonfinite not in ("reject", "pass"):
        raise ConfigError(f"nonfinite= must be reject or pass in {spec!r}")
    dtype = opts.get("dtype", "float32").lower()
    if dtype not in ("float32", "int16"):
        raise ConfigError(f"dtype= must be float32 or int16 in {spec!r}")
    insecure = opts.get("insecure", "0").lower() in ("1", "true", "yes", "on")
    hwm = number("hwm", int, 0)
    return ZmqSpec(endpoint=endpoint, pattern=pattern, mode=mode,
                   hwm=1000 if hwm is None else hwm, policy=policy,
                   channels=number("channels", int, 1), sample_rate=number("rate", float, 1e-9),
                   timeout=number("timeout", float, 0.0), stream_id=number("stream", int, 0),
                   allow_non_finite=nonfinite == "pass", dtype=dtype, insecure=insecure,
                   curve_secret=opts.get("curve_secret") or None,
                   curve_server=opts.get("curve_server") or None,
                   curve_clients=opts.get("curve_clients") or None)


# -- the socket of a source or sink -----------------------------------------------------------


class _Socket:
    """A source's or sink's socket, with the context and CURVE authenticator it may own.

    With an authorised-clients directory (``curve.clients_dir``) and no ``context``
    given, the socket gets a context of its own: ZeroMQ runs one authenticator per
    context, and the shared ``Context.instance()`` may serve other sockets. A CURVE
    client (the connecting side) watches its handshakes: :meth:`check` raises
    InputError once one failed, since ZeroMQ then never delivers anything (and after
    a refusal stops trying, so a blocking send would wait forever).
    """

    def __init__(self, context: zmq.Context | None, curve: Curve | None) -> None:
        self.curve = curve
        self.sock: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        self.endpoint = ""
        self._context = context
        self._own: zmq.Context | None = None
        self._auth: Any = None

    def open(self, kind: int, endpoint: str, mode: str, options: SocketOptions) -> zmq.Socket:
        """Create, bind or connect the socket; its endpoint (a ``*`` port resolved) is
        :attr:`endpoint`."""
        ctx = self._context
        server = self.curve if isinstance(self.curve, CurveServer) else None
        if ctx is None:
            if server is not None and server.clients_dir:
                ctx = self._own = zmq.Context()
            else:
                ctx = zmq.Context.instance()
        try:
            if server is not None:
                self._auth = server.authenticator(ctx)
            sock = self.sock = make_socket(ctx, kind, endpoint, options, self.curve)
            if isinstance(self.curve, CurveClient):  # before connecting: no event is missed
                self.monitor = sock.get_monitor_socket(HANDSHAKE_FAILED)
            self.endpoint = (bind_socket(sock, endpoint) if mode == "bind"
                             else connect_socket(sock, endpoint))
        except BaseException:
            self.close(0)
            raise
        return sock

    def check(self) -> None:
        """InputError if a CURVE handshake of this (connecting) socket failed."""
        while self.monitor is not None:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] & HANDSHAKE_FAILED:
                raise InputError(f"the CURVE handshake with {self.endpoint} failed: check "
                                 "curve_server= (the binding side's public key) and that the "
                                 "binding side admits this side's key (its curve_clients=)")

    def close(self, linger: int | None = None) -> None:
        close_monitored(self.sock, self.monitor, linger)
        self.sock = self.monitor = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._own is not None:
            self._own.term()
            self._own = None


# -- source ---------------------------------------------------------------------------------------


class ZmqSource(Source):
    """One stream received over ZeroMQ (PULL bind/connect, or SUB connect); live.

    N: frames, C: channels. ``channels`` (and optionally ``sample_rate``) declare what
    the stream carries: messages with another channel count or rate are rejected.
    :meth:`read` returns the next message's samples, split into pieces of at most
    ``max_frames`` (the rest is kept for the next call); it blocks until a message
    arrives, polling every ``poll_interval`` s so that :meth:`stop` (thread-safe)
    takes effect. The source ends (``read`` returns None) after a message with the
    END flag, on :meth:`stop`, or after ``timeout`` s without a message (None: wait
    forever).

    The first stream id seen is locked in (or ``stream_id``); other streams'
    messages are rejected. Counters: :attr:`rejected` (with :attr:`rejected_reasons`,
    reason code -> count), :attr:`gaps` (sequence discontinuities), :attr:`missing`
    (sequence numbers skipped), :attr:`dropped` (frames discarded with rejected
    messages), :attr:`messages` (accepted).

    ``curve_secret`` / ``curve_server`` / ``curve_clients``: CURVE, as in the module
    docstring. A connecting source whose CURVE handshake fails raises InputError
    from :meth:`read` instead of waiting for messages that cannot come.
    """

    live = True

    def __init__(self, endpoint: str, *, mode: str | None = None, pattern: str = "pull",
                 channels: int = 1, sample_rate: float | None = None, hwm: int = 1000,
                 timeout: float | None = None, poll_interval: float = 0.05,
                 stream_id: int | None = None, allow_non_finite: bool = False,
                 max_frames: int = wire.MAX_FRAMES, insecure: bool = False,
                 curve_secret: str | None = None, curve_server: bytes | str | None = None,
                 curve_clients: str | None = None,
                 context: zmq.Context | None = None) -> None:
        pattern = pattern.lower()
        if pattern not in ("pull", "sub"):
            raise ConfigError(f"a ZmqSource needs pattern pull or sub, got {pattern!r}")
        mode = (mode or ("bind" if pattern == "pull" else "connect")).lower()
        if mode not in ("bind", "connect"):
            raise ConfigError(f"mode must be bind or connect, got {mode!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ConfigError(f"channels must be a positive integer, got {channels!r}")
        if sample_rate is not None and not (math.isfinite(sample_rate) and sample_rate > 0):
            raise ConfigError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
        curve = curve_for(mode, secret=curve_secret, server=curve_server, clients=curve_clients)
        if mode == "bind":
            check_bind_allowed(endpoint, curve=curve is not None, insecure=insecure,
                               remedy=SPEC_REMEDY)
        self.channels = channels
        self.sample_rate = None if sample_rate is None else float(sample_rate)
        self.timeout = timeout
        self.poll_ms = max(1, int(poll_interval * 1000))
        self.stream_id = stream_id
        self.allow_non_finite = allow_non_finite
        self.max_frames = max_frames
        self.frames_read = 0
        self.messages = 0
        self.rejected = 0
        self.rejected_reasons: dict[str, int] = {}
        self.gaps = 0
        self.missing = 0
        self.dropped = 0
        self.resets = 0
        self._next_seq: int | None = None
        self._pending: np.ndarray | None = None
        self._pos = 0
        self._end_after_pending = False
        self._stop = threading.Event()
        self._socket = _Socket(context, curve)
        options = SocketOptions(rcvhwm=int(hwm), linger=0,
                                subscribe=b"" if pattern == "sub" else None)
        self._sock = self._socket.open(zmq.PULL if pattern == "pull" else zmq.SUB, endpoint,
                                       mode, options)
        self.endpoint = self._socket.endpoint

    def stop(self) -> None:
        """Make :meth:`read` return None within one poll interval (callable from any thread)."""
        self._stop.set()

    def _reject(self, reason: str, frames: int = 0) -> None:
        self.rejected += 1
        self.rejected_reasons[reason] = self.rejected_reasons.get(reason, 0) + 1
        self.dropped += frames

    def _recv(self) -> list[bytes] | None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not self._stop.is_set():
            wait = self.poll_ms
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = max(1, min(wait, int(left * 1000) + 1))
            if self._sock.poll(wait, zmq.POLLIN):
                return self._sock.recv_multipart()
            self._socket.check()
        return None

    def _accept(self, parts: list[bytes]) -> np.ndarray | None:
        """Validate one message; its samples, an empty array for a control END, or None."""
        try:
            h, data = wire.decode(parts, max_frames=self.max_frames,
                                  allow_non_finite=self.allow_non_finite)
        except WireError as err:
            self._reject(err.reason, err.header.frames if err.header else 0)
            return None
        if h.flags & (wire.ERROR | wire.STATS):
            self._reject("unexpected_control", h.frames)
            return None
        if self.stream_id is None:
            self.stream_id = h.stream_id
        elif h.stream_id != self.stream_id:
            self._reject("other_stream", h.frames)
            return None
        if not h.is_control:
            if h.channels != self.channels:
                self._reject("channels_mismatch", h.frames)
                return None
            if self.sample_rate and h.sample_rate and h.sample_rate != self.sample_rate:
                self._reject("rate_mismatch", h.frames)
                return None
        if self._next_seq is not None and not h.start:
            if h.seq < self._next_seq:
                self._reject("duplicate" if h.seq == self._next_seq - 1 else "out_of_order",
                             h.frames)
                return None
            if h.seq > self._next_seq:
                self.gaps += 1
                self.missing += h.seq - self._next_seq
        self._next_seq = h.seq + 1
        self.messages += 1
        if h.reset:
            self.resets += 1
        if h.end:
            self._end_after_pending = True
        if h.is_control:
            return np.empty((0, self.channels), dtype=np.float32)
        return data

    def _read(self, max_frames: int) -> np.ndarray | None:
        while self._pending is None:
            if self._end_after_pending:
                return None
            parts = self._recv()
            if parts is None:
                return None
            data = self._accept(parts)
            if data is not None and data.shape[0]:
                self._pending, self._pos = data, 0
        start = self._pos
        stop = min(start + max_frames, self._pending.shape[0])
        block = np.array(self._pending[start:stop], dtype=np.float32, order="C")
        if stop >= self._pending.shape[0]:
            self._pending = None
        else:
            self._pos = stop
        return block

    def _close(self) -> None:
        self._socket.close(0)


# -- sink -----------------------------------------------------------------------------------------


class ZmqSink(Sink):
    """Send blocks as wire-format messages on a PUSH (default) or PUB socket.

    N: frames, C: channels. One message per written block, sequence numbers from 0,
    the first flagged START; :meth:`close` sends a control END message. ``policy``:
    ``"block"`` waits for the consumer (up to ``send_timeout`` s if given, then
    InputError); ``"drop"`` never waits: a message the high-water mark does not
    admit is discarded and counted in :attr:`dropped` (frames) and
    :attr:`dropped_messages` (its sequence number is used up, so the receiver sees a
    gap). A PUB socket never blocks: it silently drops for slow subscribers
    (ZeroMQ semantics), so its drops cannot be counted here. ``dtype="int16"``
    sends ``round(x * 32767)`` clipped to int16. CURVE keys as for
    :class:`ZmqSource`; a connecting blocking sink whose CURVE handshake fails
    raises InputError instead of waiting forever.
    """

    def __init__(self, endpoint: str, *, mode: str | None = None, pattern: str = "push",
                 hwm: int = 1000, policy: str = "block", stream_id: int = 0,
                 send_timeout: float | None = None, linger: float = 1.0,
                 dtype: str = "float32", insecure: bool = False,
                 curve_secret: str | None = None, curve_server: bytes | str | None = None,
                 curve_clients: str | None = None,
                 context: zmq.Context | None = None) -> None:
        pattern = pattern.lower()
        if pattern not in ("push", "pub"):
            raise ConfigError(f"a ZmqSink needs pattern push or pub, got {pattern!r}")
        self.mode = (mode or ("connect" if pattern == "push" else "bind")).lower()
        if self.mode not in ("bind", "connect"):
            raise ConfigError(f"mode must be bind or connect, got {self.mode!r}")
        if policy not in ("block", "drop"):
            raise ConfigError(f"policy must be 'block' or 'drop', got {policy!r}")
        if dtype not in ("float32", "int16"):
            raise ConfigError(f"dtype must be float32 or int16, got {dtype!r}")
        curve = curve_for(self.mode, secret=curve_secret, server=curve_server,
                          clients=curve_clients)
        if self.mode == "bind":
            check_bind_allowed(endpoint, curve=curve is not None, insecure=insecure,
                               remedy=SPEC_REMEDY)
        self.endpoint = endpoint
        self.pattern, self.hwm, self.policy = pattern, int(hwm), policy
        self.stream_id, self.send_timeout, self.linger = int(stream_id), send_timeout, linger
        self.dtype = dtype
        self.dropped = 0
        self.dropped_messages = 0
        self.messages = 0
        self._seq = 0
        self._noted = False  # the "waiting for a receiver" note was printed
        self._socket = _Socket(context, curve)
        self._sock: zmq.Socket | None = None

    def _open(self, sample_rate: float | None, channels: int) -> None:
        # a blocking PUSH queues only to a connected receiver: with none it waits (or
        # times out) instead of counting as sent what nobody may ever take
        options = SocketOptions(sndhwm=self.hwm, linger=self.linger,
                                send_timeout=self.send_timeout,
                                immediate=self.pattern == "push" and self.policy == "block")
        self._sock = self._socket.open(zmq.PUSH if self.pattern == "push" else zmq.PUB,
                                       self.endpoint, self.mode, options)
        self.endpoint = self._socket.endpoint

    def _header(self, flags: int) -> Header:
        return Header(stream_id=self.stream_id, seq=self._seq, flags=flags,
                      channels=int(self.channels or 0), sample_rate=float(self.sample_rate or 0),
                      timestamp_ns=time.time_ns())

    def _send(self, msg: list[Any], frames: int) -> None:
        assert self._sock is not None
        self._seq += 1
        if self.policy == "drop":
            try:
                self._sock.send_multipart(msg, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self.dropped += frames
                self.dropped_messages += 1
                return
        else:
            try:
                if self._socket.monitor is None:
                    self._wait_note()
                    self._sock.send_multipart(msg, copy=False)
                else:
                    self._send_watched(msg)
            except zmq.Again:  # SNDTIMEO: send_timeout, or the linger time of close()
                waited = cast(int, self._sock.getsockopt(zmq.SNDTIMEO)) / 1000
                raise InputError(f"no receiver took a message on {self.endpoint} within "
                                 f"{waited:g} s; is the consumer running?") from None
        self.messages += 1

    def _wait_note(self) -> None:
        """Once: say so on stderr when no receiver has taken a message for 2 s (a blocking
        sink waits for one rather than drop anything)."""
        assert self._sock is not None
        if self._noted or self._sock.poll(2000, zmq.POLLOUT):
            return
        self._noted = True
        print(f"note: waiting for a receiver on {self.endpoint} (policy=block drops nothing; "
              "give the spec timeout=S to give up, or policy=drop)", file=sys.stderr,
              flush=True)

    def _send_watched(self, msg: list[Any]) -> None:
        """A blocking send (up to SNDTIMEO) that gives up once the CURVE handshake failed."""
        assert self._sock is not None
        wait_ms = cast(int, self._sock.getsockopt(zmq.SNDTIMEO))  # -1: forever
        deadline = None if wait_ms < 0 else time.monotonic() + wait_ms / 1000
        while True:
            try:
                self._sock.send_multipart(msg, flags=zmq.NOBLOCK, copy=False)
                return
            except zmq.Again:
                self._socket.check()
                if deadline is not None and time.monotonic() >= deadline:
                    raise
            self._sock.poll(50, zmq.POLLOUT)

    def _write(self, block: np.ndarray) -> None:
        if self.dtype == "int16":
            payload = np.clip(np.rint(block * 32767.0), -32768, 32767).astype("<i2")
        else:
            payload = np.array(block, dtype="<f4", order="C")  # a private copy: sent zero-copy
        flags = wire.START if self._seq == 0 else 0
        self._send(wire.encode(self._header(flags), payload), int(block.shape[0]))

    def _close(self) -> None:
        assert self._sock is not None
        try:
            if self.policy == "block" and self.send_timeout is None:
                # never hang in close: give the END message the linger time
                self._sock.setsockopt(zmq.SNDTIMEO, int(self.linger * 1000))
            self._send(wire.encode_control(self._header(wire.END)), 0)
        except (InputError, zmq.ZMQError):
            pass  # the consumer is gone; nothing more to tell it
        finally:
            self._socket.close()
            self._sock = None

    def _abort(self) -> None:
        self._socket.close(0)
        self._sock = None


