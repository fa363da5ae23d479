"""ZeroMQ sources, sinks and clients speaking wire format v1 (:mod:`sigstream.stream.net.wire`).

N: frames, C: channels.

- :class:`ZmqSource` receives one stream on a PULL (bind or connect) or SUB
  (connect) socket and hands its samples to a pipeline as (n, C) float32 blocks.
- :class:`ZmqSink` sends a pipeline's output on a PUSH or PUB socket, one message
  per block, with a ``block`` (wait) or ``drop`` (count and discard) policy when
  the consumer is slower.
- :class:`Client` / :class:`AsyncClient` talk to a
  :class:`~sigstream.stream.net.server.Server` over a DEALER socket: send chunks of
  any number of streams, receive the model's output for each, ask for stats.
- :func:`parse_zmq_spec` reads ``zmq:ENDPOINT[,key=value...]`` specs.

Binding a socket on anything but a loopback address (127.0.0.0/8, ::1,
localhost) or a local transport (``ipc://``, ``inproc://``) is refused with a
:class:`~sigstream.core.errors.ConfigError` unless ``insecure=True``: the
wire format is not authenticated. Messages are parsed with :func:`wire.decode`;
nothing is unpickled.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from sigstream.core.errors import ConfigError, InputError
from sigstream.stream.io.sinks import Sink
from sigstream.stream.io.sources import Source
from sigstream.stream.net import wire
from sigstream.stream.net.wire import Header, WireError

__all__ = [
    "ZmqSpec", "parse_zmq_spec", "ZmqSource", "ZmqSink", "Client", "AsyncClient",
    "is_loopback_endpoint", "check_bind_allowed", "bind_socket",
]

_LOCAL_TRANSPORTS = ("inproc://", "ipc://")


# -- endpoints ------------------------------------------------------------------------------------


def endpoint_host(endpoint: str) -> str | None:
    """The host part of a ``tcp://HOST:PORT`` endpoint (brackets removed), else None."""
    if not endpoint.startswith("tcp://"):
        return None
    rest = endpoint[len("tcp://"):]
    if ";" in rest:  # "source;destination" (connect only): the destination counts
        rest = rest.rsplit(";", 1)[1]
    host, sep, _port = rest.rpartition(":")
    if not sep:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ``inproc://``, ``ipc://`` and TCP on 127.0.0.0/8, ::1 or localhost."""
    if endpoint.startswith(_LOCAL_TRANSPORTS):
        return True
    host = endpoint_host(endpoint)
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name, a host name: not provably loopback


def check_bind_allowed(endpoint: str, *, curve: bool = False, insecure: bool = False) -> None:
    """ConfigError unless ``endpoint`` is loopback, or CURVE keys are set, or ``insecure``."""
    if not isinstance(endpoint, str) or "://" not in endpoint:
        raise ConfigError(f"bad endpoint {endpoint!r}; expected e.g. tcp://127.0.0.1:5555")
    if is_loopback_endpoint(endpoint) or curve or insecure:
        return
    raise ConfigError(
        f"refusing to bind {endpoint}: it is not a loopback address and the stream is not "
        "encrypted; bind 127.0.0.1, give CURVE keys (--curve-secret FILE), or pass --insecure"
    )


def bind_socket(sock: zmq.Socket, endpoint: str) -> str:
    """Bind and return the actual endpoint (``tcp://127.0.0.1:*`` picks a free port).

    A busy port or an unusable address raises a one-line ConfigError; the socket is
    left open (the caller closes it).
    """
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as err:
        if err.errno == zmq.EADDRINUSE:
            raise ConfigError(f"address {endpoint} is in use; pick another port") from None
        raise ConfigError(f"cannot bind {endpoint}: {err.strerror}") from None
    last = sock.getsockopt(zmq.LAST_ENDPOINT)
    return last.decode() if isinstance(last, bytes) and last else endpoint


def _connect(sock: zmq.Socket, endpoint: str) -> str:
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as err:
        raise ConfigError(f"cannot connect to {endpoint}: {err.strerror}") from None
    return endpoint


def _setup(sock: zmq.Socket, endpoint: str, mode: str) -> str:
    if endpoint.startswith("tcp://") and ":" in (endpoint_host(endpoint) or ""):
        sock.setsockopt(zmq.IPV6, 1)
    return bind_socket(sock, endpoint) if mode == "bind" else _connect(sock, endpoint)


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
                         insecure=self.insecure)

    def make_sink(self) -> ZmqSink:
        if self.is_source:
            raise ConfigError(f"a {self.pattern.upper()} socket cannot be a sink; use "
                              "pattern=push or pattern=pub")
        return ZmqSink(self.endpoint, mode=self.mode, pattern=self.pattern, hwm=self.hwm,
                       policy=self.policy, stream_id=self.stream_id or 0,
                       send_timeout=self.timeout, dtype=self.dtype, insecure=self.insecure)


_SPEC_KEYS = ("mode", "pattern", "hwm", "policy", "channels", "rate", "timeout", "stream",
              "nonfinite", "dtype", "insecure")


def parse_zmq_spec(spec: str, role: str | None = None) -> ZmqSpec:
    """Parse ``zmq:ENDPOINT[,key=value...]``; ``role`` ("source"/"sink") sets the default pattern.

    Keys: ``mode=bind|connect`` (default: bind for pull, connect for sub and push, bind for
    pub), ``pattern=pull|sub|push|pub``, ``hwm=N`` (high-water mark, messages),
    ``policy=block|drop`` (sinks), ``channels=C`` and ``rate=HZ`` (what a source delivers),
    ``timeout=S`` (a source ends after S s without a message; a blocking sink fails after
    S s), ``stream=ID`` (a sink's stream id; a source accepts only that stream),
    ``nonfinite=reject|pass``, ``dtype=float32|int16`` (sinks), ``insecure=1`` (allow a
    non-loopback bind). Example: ``zmq:tcp://127.0.0.1:5555,mode=bind,pattern=pull,hwm=1000``.
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
                   allow_non_finite=nonfinite == "pass", dtype=dtype, insecure=insecure)


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
    """

    live = True

    def __init__(self, endpoint: str, *, mode: str | None = None, pattern: str = "pull",
                 channels: int = 1, sample_rate: float | None = None, hwm: int = 1000,
                 timeout: float | None = None, poll_interval: float = 0.05,
                 stream_id: int | None = None, allow_non_finite: bool = False,
                 max_frames: int = wire.MAX_FRAMES, insecure: bool = False,
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
        if mode == "bind":
            check_bind_allowed(endpoint, insecure=insecure)
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
        ctx = context or zmq.Context.instance()
        self._sock = ctx.socket(zmq.PULL if pattern == "pull" else zmq.SUB)
        try:
            self._sock.setsockopt(zmq.RCVHWM, int(hwm))
            self._sock.setsockopt(zmq.LINGER, 0)
            if pattern == "sub":
                self._sock.setsockopt(zmq.SUBSCRIBE, b"")
            self.endpoint = _setup(self._sock, endpoint, mode)
        except BaseException:
            self._sock.close(0)
            raise

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
        self._sock.close(0)


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
    sends ``round(x * 32767)`` clipped to int16.
    """

    def __init__(self, endpoint: str, *, mode: str | None = None, pattern: str = "push",
                 hwm: int = 1000, policy: str = "block", stream_id: int = 0,
                 send_timeout: float | None = None, linger: float = 1.0,
                 dtype: str = "float32", insecure: bool = False,
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
        if self.mode == "bind":
            check_bind_allowed(endpoint, insecure=insecure)
        self.endpoint = endpoint
        self.pattern, self.hwm, self.policy = pattern, int(hwm), policy
        self.stream_id, self.send_timeout, self.linger = int(stream_id), send_timeout, linger
        self.dtype = dtype
        self.dropped = 0
        self.dropped_messages = 0
        self.messages = 0
        self._seq = 0
        self._context = context
        self._sock: zmq.Socket | None = None

    def _open(self, sample_rate: float | None, channels: int) -> None:
        ctx = self._context or zmq.Context.instance()
        sock = ctx.socket(zmq.PUSH if self.pattern == "push" else zmq.PUB)
        try:
            sock.setsockopt(zmq.SNDHWM, self.hwm)
            sock.setsockopt(zmq.LINGER, int(self.linger * 1000))
            if self.send_timeout is not None:
                sock.setsockopt(zmq.SNDTIMEO, max(0, int(self.send_timeout * 1000)))
            self.endpoint = _setup(sock, self.endpoint, self.mode)
        except BaseException:
            sock.close(0)
            raise
        self._sock = sock

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
                self._sock.send_multipart(msg, copy=False)
            except zmq.Again:
                raise InputError(f"no receiver took a message on {self.endpoint} within "
                                 f"{self.send_timeout:g} s; is the consumer running?") from None
        self.messages += 1

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
            self._sock.close()
            self._sock = None

    def _abort(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None


# -- clients --------------------------------------------------------------------------------------


class _ClientBase:
    """What :class:`Client` and :class:`AsyncClient` share: headers, sequence numbers, replies."""

    def __init__(self, endpoint: str, stream_id: int, sample_rate: float, channels: int,
                 server_public_key: bytes | str | None, public_key: bytes | None,
                 secret_key: bytes | None) -> None:
        self.endpoint = endpoint
        self.stream_id = int(stream_id)
        self.sample_rate = float(sample_rate or 0.0)
        self.channels = int(channels)
        self._next_seq: dict[int, int] = {}
        self._curve = (server_public_key, public_key, secret_key)
        self._backlog: collections.deque = collections.deque()

    def _configure(self, sock: zmq.Socket, hwm: int) -> None:
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
        sock.setsockopt(zmq.LINGER, 500)
        server_key, public, secret = self._curve
        if server_key is not None:
            if public is None or secret is None:
                public, secret = zmq.curve_keypair()
            sock.setsockopt(zmq.CURVE_SERVERKEY, _key(server_key))
            sock.setsockopt(zmq.CURVE_PUBLICKEY, _key(public))
            sock.setsockopt(zmq.CURVE_SECRETKEY, _key(secret))
        if self.endpoint.startswith("tcp://") and ":" in (endpoint_host(self.endpoint) or ""):
            sock.setsockopt(zmq.IPV6, 1)

    def _message(self, chunk: Any, start: bool, end: bool, reset: bool,
                 stream_id: int | None, seq: int | None,
                 timestamp_ns: int | None) -> tuple[Header, list[Any]]:
        sid = self.stream_id if stream_id is None else int(stream_id)
        if seq is None:
            seq = self._next_seq.get(sid, 0)
        self._next_seq[sid] = seq + 1
        flags = (wire.START if start else 0) | (wire.END if end else 0) | \
            (wire.RESET if reset else 0)
        h = Header(stream_id=sid, seq=seq, flags=flags, channels=self.channels,
                   sample_rate=self.sample_rate,
                   timestamp_ns=time.time_ns() if timestamp_ns is None else timestamp_ns)
        if chunk is None:
            if not flags:
                raise ValueError("a message without samples needs start, end or reset")
            return wire.encode_with_header(h, None)
        h, msg = wire.encode_with_header(h, chunk)
        if h.frames == 0:
            raise WireError("bad_frames", "a chunk needs at least one frame (send None with "
                                          "end=True to close a stream)", h)
        return h, msg

    def _stats_request(self) -> list[Any]:
        return wire.encode_control(Header(flags=wire.STATS, timestamp_ns=time.time_ns()))

    @staticmethod
    def _parse(parts: list[bytes]) -> tuple[Header, Any]:
        if parts and len(parts) == 3 and len(parts[0]) == 0:
            parts = parts[1:]  # a REQ-style empty delimiter
        h, data = wire.decode(parts, max_frames=1 << 31, allow_non_finite=True)
        if h.is_control:
            if h.is_error or h.is_stats:
                return h, wire.parse_json(data)
            return h, np.empty((0, h.channels), dtype=np.float32)
        return h, data


_ZERO_COPY_BYTES = 1 << 16


def _key(key: bytes | str) -> bytes:
    return key.encode() if isinstance(key, str) else key


class Client(_ClientBase):
    """A DEALER connection to a :class:`~sigstream.stream.net.server.Server`.

    ``stream_id``, ``sample_rate`` and ``channels`` are the defaults of every
    :meth:`send`; one client may carry any number of streams (``send(...,
    stream_id=k)``), each with its own sequence numbers. Sends never wait for
    replies: pipeline as many chunks as you like, then :meth:`recv` the replies,
    which come back per stream in the order sent. ``server_public_key`` (Z85)
    turns on CURVE encryption (a fresh client key pair unless
    ``public_key``/``secret_key`` are given).
    """

    def __init__(self, endpoint: str, stream_id: int = 0, sample_rate: float = 0.0,
                 channels: int = 1, *, hwm: int = 10000, context: zmq.Context | None = None,
                 server_public_key: bytes | str | None = None, public_key: bytes | None = None,
                 secret_key: bytes | None = None, send_timeout: float | None = 10.0) -> None:
        super().__init__(endpoint, stream_id, sample_rate, channels, server_public_key,
                         public_key, secret_key)
        ctx = context or zmq.Context.instance()
        self._sock = ctx.socket(zmq.DEALER)
        try:
            self._configure(self._sock, hwm)
            if send_timeout is not None:  # a DEALER with no connected peer blocks in send
                self._sock.setsockopt(zmq.SNDTIMEO, int(send_timeout * 1000))
            _connect(self._sock, endpoint)
        except BaseException:
            self._sock.close(0)
            raise

    def send(self, chunk: Any = None, start: bool = False, end: bool = False,
             reset: bool = False, *, stream_id: int | None = None, seq: int | None = None,
             timestamp_ns: int | None = None) -> Header:
        """Send one chunk ((N, C) or (N,) float32/int16 array; None: a control message).

        Sequence numbers count up per stream from 0 unless ``seq`` is given. Returns
        the header sent. Large float32 arrays (over 64 KiB) are sent zero-copy: do not
        modify them until the message has left (pass a copy if unsure).
        """
        h, msg = self._message(chunk, start, end, reset, stream_id, seq, timestamp_ns)
        try:  # zero-copy only pays from 64 KiB on; below, pyzmq copies faster
            self._sock.send_multipart(msg, copy=_ZERO_COPY_BYTES <= h.frames * h.channels * 4)
        except zmq.Again:
            raise TimeoutError(f"could not send to {self.endpoint}: no server connected "
                               "(or its queue is full) within the send timeout") from None
        return h

    @property
    def socket(self) -> zmq.Socket:
        """The DEALER socket (for a ``zmq.Poller`` over several clients)."""
        return self._sock

    def send_raw(self, frames: list[bytes]) -> None:
        """Send arbitrary frames (for testing servers against malformed input)."""
        self._sock.send_multipart(frames)

    def poll(self, timeout: float | None = 0.0) -> bool:
        """True if a reply is ready within ``timeout`` s (None: wait forever)."""
        if self._backlog:
            return True
        ms = None if timeout is None else max(0, int(timeout * 1000))
        return bool(self._sock.poll(ms, zmq.POLLIN))

    def recv(self, timeout: float | None = 5.0) -> tuple[Header, Any]:
        """The next reply: ``(header, payload)``; TimeoutError after ``timeout`` s.

        The payload is a float32 (N, C) array for model output, a dict for ERROR
        replies (``{"code", "message"}``, ``header.is_error``) and STATS replies, and
        an empty (0, C) array for control acknowledgements (e.g. a bare END).
        """
        if self._backlog:
            return self._backlog.popleft()
        if not self.poll(timeout):
            raise TimeoutError(f"no reply from {self.endpoint} within {timeout} s")
        return self._parse(self._sock.recv_multipart())

    def request_stats(self, timeout: float = 5.0) -> dict:
        """Ask the server for its stats; other replies received meanwhile stay queued."""
        self._sock.send_multipart(self._stats_request())
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(max(1, int(left * 1000)), zmq.POLLIN):
                raise TimeoutError(f"no stats reply from {self.endpoint} within {timeout} s")
            h, payload = self._parse(self._sock.recv_multipart())
            if h.is_stats and not h.is_error:
                return payload
            self._backlog.append((h, payload))

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_ClientBase):
    """:class:`Client` for asyncio (``zmq.asyncio``): ``await send(...)``, ``await recv()``."""

    def __init__(self, endpoint: str, stream_id: int = 0, sample_rate: float = 0.0,
                 channels: int = 1, *, hwm: int = 10000, context: Any = None,
                 server_public_key: bytes | str | None = None, public_key: bytes | None = None,
                 secret_key: bytes | None = None) -> None:
        import zmq.asyncio

        super().__init__(endpoint, stream_id, sample_rate, channels, server_public_key,
                         public_key, secret_key)
        ctx = context or zmq.asyncio.Context.instance()
        self._sock = ctx.socket(zmq.DEALER)
        try:
            self._configure(self._sock, hwm)
            _connect(self._sock, endpoint)
        except BaseException:
            self._sock.close(0)
            raise

    async def send(self, chunk: Any = None, start: bool = False, end: bool = False,
                   reset: bool = False, *, stream_id: int | None = None, seq: int | None = None,
                   timestamp_ns: int | None = None) -> Header:
        h, msg = self._message(chunk, start, end, reset, stream_id, seq, timestamp_ns)
        await self._sock.send_multipart(msg, copy=False)
        return h

    async def recv(self, timeout: float | None = 5.0) -> tuple[Header, Any]:
        if self._backlog:
            return self._backlog.popleft()
        ms = None if timeout is None else max(0, int(timeout * 1000))
        if not await self._sock.poll(ms, zmq.POLLIN):
            raise TimeoutError(f"no reply from {self.endpoint} within {timeout} s")
        return self._parse(await self._sock.recv_multipart())

    async def request_stats(self, timeout: float = 5.0) -> dict:
        await self._sock.send_multipart(self._stats_request())
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not await self._sock.poll(max(1, int(left * 1000)), zmq.POLLIN):
                raise TimeoutError(f"no stats reply from {self.endpoint} within {timeout} s")
            h, payload = self._parse(await self._sock.recv_multipart())
            if h.is_stats and not h.is_error:
                return payload
            self._backlog.append((h, payload))

    def close(self) -> None:
        self._sock.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

