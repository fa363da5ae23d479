"""A ZeroMQ ROUTER server that runs one streaming model for many remote streams.

B: batch (streams), T: time (frames), C: channels.

Clients (:class:`~sigstream.stream.net.zmq_io.Client`, or any DEALER / REQ socket
speaking :mod:`sigstream.stream.net.wire` v1) send chunks of their streams; a stream
is keyed by (client identity, stream id). All streams live in ONE
:class:`~sigstream.stream.runner.StreamRunner` (one row of its batched state per
stream). Each loop iteration drains the ready messages (up to ``max_batch``),
queues them per stream, and then works in rounds: each round takes at most one
item per stream, groups the chunks of equal frame count T into one
``step`` of shape (B, T, C) with B = the number of those streams, and replies to
every stream, in the order its messages arrived, with the model's output (the
request's header fields echoed, payload = output). Bad input of any kind gets an
ERROR reply naming the reason and is counted; it never stops the server or
touches other streams.

Lifecycle: the START flag or a stream's first message creates its state (START
on a live stream restarts it: state reset, any sequence number accepted); RESET
resets it; END frees it after its reply; ``idle_timeout`` frees streams that went
quiet (a client that vanished). Sequence numbers must increase by one: a jump is
counted as a gap (and resets the stream when ``reset_on_gap``); a repeated or
older number is rejected (``duplicate`` / ``out_of_order``).

Security: binding anything but loopback (127.0.0.0/8, ::1, localhost, ipc://,
inproc://) needs CURVE keys (``curve_secret_file``) or ``insecure=True``; the
check runs before any socket exists.
"""

from __future__ import annotations

import collections
import math
import operator
import os
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from sigstream.core.errors import ConfigError
from sigstream.stream.net import wire
from sigstream.stream.net.service import ThreadedService
from sigstream.stream.net.wire import Header, WireError
from sigstream.stream.net.zmq_io import bind_socket, check_bind_allowed, endpoint_host
from sigstream.stream.runner import StreamRunner
from sigstream.stream.stats import TimingWindow

__all__ = ["ServerConfig", "Server", "SERVER_REASONS"]

SERVER_REASONS = {
    "channels_mismatch": "the chunk's channel count differs from the model's in_channels",
    "hop_mismatch": "the chunk's frame count is not a multiple of the model's hop",
    "rate_mismatch": "the chunk's sample rate differs from the model's",
    "duplicate": "sequence number already processed for this stream",
    "out_of_order": "sequence number older than the last one processed",
    "unexpected_flags": "ERROR flag from a client, or a control message without START/END/RESET",
    "too_many_streams": "the server holds max_streams streams already",
    "internal": "the model failed on this chunk",
}
"""Reason codes the server adds to :data:`sigstream.stream.net.wire.REASONS`."""

_ECHO = wire.START | wire.END | wire.RESET
_HEADER_STRUCT = struct.Struct(wire.HEADER_FORMAT)
_NOBLOCK, _RCVMORE = int(zmq.NOBLOCK), int(zmq.RCVMORE)  # plain ints: enum ops cost µs
_SNDMORE_NOBLOCK = int(zmq.SNDMORE) | int(zmq.NOBLOCK)
_row_of = operator.itemgetter(0)
_DRAIN_QUIET = 0.1  # s without a message that ends a graceful stop's drain


@dataclass(frozen=True)
class ServerConfig:
    """Server settings.

    max_batch: messages drained per loop iteration (so at most this many streams per
    model call); idle_timeout: seconds without a message before a stream is freed
    (0: never); reset_on_gap: reset a stream whose sequence numbers jump;
    stats_every: seconds between one-line stats on stderr (0: off); max_frames:
    largest T per message; max_message_bytes: ZMQ_MAXMSGSIZE (a peer sending a larger
    frame is disconnected by ZeroMQ); max_streams: streams held at once;
    allow_non_finite: pass NaN/Inf samples to the model instead of rejecting them;
    curve_secret_file: a ``zmq.auth`` certificate with the server's secret key
    (enables CURVE); curve_clients_dir: directory of authorised client public
    certificates (without it any client knowing the server key may connect);
    insecure: allow a non-loopback bind without CURVE; hwm: per-peer high-water
    marks; poll_interval: seconds between checks of :meth:`Server.stop` when idle;
    drain_timeout: how long a graceful stop keeps serving in-flight messages;
    linger: seconds to flush replies at close.
    """

    max_batch: int = 1024
    idle_timeout: float = 60.0
    reset_on_gap: bool = False
    stats_every: float = 0.0
    max_frames: int = wire.MAX_FRAMES
    max_message_bytes: int = 16 * 1024 * 1024
    max_streams: int = 4096
    allow_non_finite: bool = False
    curve_secret_file: str | None = None
    curve_clients_dir: str | None = None
    insecure: bool = False
    hwm: int = 10000
    poll_interval: float = 0.05
    drain_timeout: float = 2.0
    linger: float = 1.0

    def validate(self) -> None:
        for name in ("max_batch", "max_frames", "max_message_bytes", "max_streams", "hwm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("idle_timeout", "stats_every", "drain_timeout", "linger"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if not (isinstance(self.poll_interval, (int, float)) and self.poll_interval > 0):
            raise ConfigError(f"poll_interval must be > 0 s, got {self.poll_interval!r}")
        if self.max_message_bytes < wire.HEADER_SIZE:
            raise ConfigError(f"max_message_bytes must be >= {wire.HEADER_SIZE}")


class _Stream:
    """Per-stream bookkeeping; the model state itself is row ``row`` of the runner."""

    __slots__ = ("key", "row", "next_seq", "last_seen", "chunks")

    def __init__(self, key: tuple[bytes, int], now: float) -> None:
        self.key = key
        self.row = -1
        self.next_seq = 0
        self.last_seen = now
        self.chunks = 0


class _Item:
    """One queued message of a stream: a chunk, a control message, or a deferred error."""

    __slots__ = ("header", "data", "error", "envelope")

    def __init__(self, header: Header, data: Any, error: tuple[str, str] | None,
                 envelope: list[bytes]) -> None:
        self.header, self.data, self.error, self.envelope = header, data, error, envelope


def _bucket(b: int) -> str:
    """Power-of-two histogram bucket label of a batch size: 1, 2, 3-4, 5-8, ..."""
    if b <= 2:
        return str(b)
    hi = 1 << (b - 1).bit_length()
    return f"{hi // 2 + 1}-{hi}"


def _load_curve(path: str) -> tuple[bytes, bytes]:
    import zmq.auth

    if not zmq.has("curve"):
        raise ConfigError("this libzmq has no CURVE support; rebuild pyzmq with libsodium")
    if not os.path.isfile(path):
        raise ConfigError(f"CURVE secret key file {path!r} not found; create one with "
                          "zmq.auth.create_certificates(DIR, 'server')")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read CURVE certificate {path!r}: {err}") from None
    if not secret:
        raise ConfigError(f"{path!r} holds no secret key; pass the server's "
                          ".key_secret file")
    return public, secret


class Server(ThreadedService):
    """Serve a streaming model to many clients over one ROUTER socket.

    ``model`` is a streamable model (``hop``, ``in_channels``, ``init_state``,
    ``step``; torch or numpy/ONNX), a :class:`StreamRunner`, or a zero-argument
    factory returning either. Use :meth:`serve_forever` (blocks; :meth:`stop` from
    another thread or a signal handler ends it gracefully) or :meth:`start` (binds,
    then serves in a background thread) / :meth:`stop`. :attr:`endpoint` is the
    bound address (``tcp://127.0.0.1:*`` picks a free port).

    Raises ConfigError before any socket is created for a non-loopback ``bind``
    without CURVE keys or ``insecure``, for a bad config, or an unreadable key file.
    """

    _thread_name = "sigstream-server"

    def __init__(self, model: Any, bind: str = "tcp://127.0.0.1:5555",
                 config: ServerConfig | None = None) -> None:
        cfg = config or ServerConfig()
        cfg.validate()
        self.config = cfg
        self._curve = _load_curve(cfg.curve_secret_file) if cfg.curve_secret_file else None
        if cfg.curve_clients_dir and not os.path.isdir(cfg.curve_clients_dir):
            raise ConfigError(f"CURVE clients directory {cfg.curve_clients_dir!r} not found")
        check_bind_allowed(bind, curve=self._curve is not None, insecure=cfg.insecure)
        self.bind_address = bind
        self.endpoint: str | None = None
        self.runner = _make_runner(model)
        self.runner.validate = False  # every message is validated on arrival
        self.hop = self.runner.hop
        self.in_channels = self.runner.in_channels
        rate = getattr(self.runner.model, "sample_rate", None)
        self.model_rate = float(rate) if isinstance(rate, (int, float)) and rate else 0.0

        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._auth: Any = None
        self._init_lifecycle()

        self._streams: dict[tuple[bytes, int], _Stream] = {}
        self._rows: list[tuple[bytes, int]] = []  # row index -> key
        self._queues: dict[tuple[bytes, int], collections.deque] = {}
        self._fast: list[tuple] = []  # steady-state chunks of this iteration (see _drain)
        self._fast_keys: set[tuple[bytes, int]] = set()
        self._t0 = time.monotonic()
        self._next_sweep = 0.0
        self._next_print = 0.0
        # counters
        self.messages = 0
        self.chunks = 0
        self.samples_in = 0
        self.samples_out = 0
        self.rejected: collections.Counter = collections.Counter()
        self.gaps = 0
        self.missing = 0
        self.resets = 0
        self.streams_opened = 0
        self.streams_closed = 0
        self.streams_expired = 0
        self.batches = 0
        self.batched_chunks = 0
        self.batch_hist: collections.Counter = collections.Counter()
        self.replies_dropped = 0
        self.unroutable = 0
        self.compute = TimingWindow(16384)

    # -- sockets ----------------------------------------------------------------------------------
    def bind(self) -> str:
        """Create the ROUTER socket and bind it; returns the bound endpoint. Idempotent."""
        if self._sock is not None:
            return self.endpoint or self.bind_address
        cfg = self.config
        check_bind_allowed(self.bind_address, curve=self._curve is not None,
                           insecure=cfg.insecure)
        ctx = zmq.Context()
        sock = None
        try:
            if self._curve is not None and cfg.curve_clients_dir:
                from zmq.auth.thread import ThreadAuthenticator

                self._auth = ThreadAuthenticator(ctx)
                self._auth.start()
                self._auth.configure_curve(domain="*", location=cfg.curve_clients_dir)
            sock = ctx.socket(zmq.ROUTER)
            sock.setsockopt(zmq.MAXMSGSIZE, cfg.max_message_bytes)
            sock.setsockopt(zmq.SNDHWM, cfg.hwm)
            sock.setsockopt(zmq.RCVHWM, cfg.hwm)
            sock.setsockopt(zmq.LINGER, int(cfg.linger * 1000))
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            if self._curve is not None:
                sock.setsockopt(zmq.CURVE_SERVER, 1)
                sock.setsockopt(zmq.CURVE_PUBLICKEY, self._curve[0])
                sock.setsockopt(zmq.CURVE_SECRETKEY, self._curve[1])
            if ":" in (endpoint_host(self.bind_address) or ""):
                sock.setsockopt(zmq.IPV6, 1)
            self.endpoint = bind_socket(sock, self.bind_address)
        except BaseException:
            if sock is not None:
                sock.close(0)
            if self._auth is not None:
                self._auth.stop()
                self._auth = None
            ctx.term()
            raise
        self._ctx, self._sock = ctx, sock
        return self.endpoint

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    # -- running ----------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Serve until :meth:`stop`; then drain in-flight messages, reply, and close."""
        self.bind()
        sock = self._sock
        assert sock is not None
        _sync_torch_threads()
        cfg = self.config
        poll_ms = max(1, int(cfg.poll_interval * 1000))
        now = time.monotonic()
        self._next_sweep = now + self._sweep_interval()
        self._next_print = now + cfg.stats_every if cfg.stats_every else float("inf")
        self._serving.set()
        try:
            while not self._stop.is_set():
                self._iteration(poll_ms)
            # graceful: whatever is in flight is still served, until quiet or the deadline
            deadline = time.monotonic() + cfg.drain_timeout
            while time.monotonic() < deadline:
                quiet_ms = int(min(_DRAIN_QUIET, max(0.0, deadline - time.monotonic())) * 1000)
                if self._iteration(max(1, quiet_ms)) == 0:
                    break
        finally:
            self._serving.clear()
            self._close()

    # -- one loop iteration -----------------------------------------------------------------------
    def _iteration(self, poll_ms: int) -> int:
        sock = self._sock
        assert sock is not None
        n = 0
        if sock.poll(poll_ms, zmq.POLLIN):
            n = self._drain(sock)
            if self._fast:
                self._process_fast()
            if self._queues:
                self._process()
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
            self._next_sweep = now + self._sweep_interval()
        if now >= self._next_print:
            print(self.stats_line(), file=sys.stderr, flush=True)
            self._next_print = now + self.config.stats_every
        return n

    def _drain(self, sock: zmq.Socket) -> int:
        """Receive the ready messages (at most ``max_batch``); returns how many.

        The steady state of a stream — a float32 chunk with no flags, the next
        sequence number, the model's channels, hop and rate — is checked here
        with a few integer comparisons and goes to the fast list (one per
        stream per iteration); anything else (a new stream, flags, a gap, a
        second chunk of the same stream, a malformed message) takes the general
        path through :meth:`_receive`, which validates everything.
        """
        recv, more = sock.recv, sock.get
        unpack = _HEADER_STRUCT.unpack_from
        streams, queues = self._streams, self._queues
        fast, fast_keys = self._fast, self._fast_keys
        cfg = self.config
        limit, max_frames = cfg.max_batch, cfg.max_frames
        in_ch, hop, rate_ok = self.in_channels, self.hop, self.model_rate
        now = time.monotonic()
        n = 0
        while n < limit:
            try:
                parts = [recv(_NOBLOCK)]
            except zmq.Again:
                break
            while more(_RCVMORE):
                parts.append(recv(_NOBLOCK))
            n += 1
            if len(parts) == 3 and len(parts[1]) == wire.HEADER_SIZE and in_ch:
                ident, head, payload = parts
                (magic, version, flags, dtype, _r0, ch, _r1, frames, sid, seq, rate,
                 stamp) = unpack(head)
                key = (ident, sid)
                if (flags == 0 and dtype == wire.DTYPE_FLOAT32 and ch == in_ch
                        and 0 < frames <= max_frames and frames % hop == 0
                        and len(payload) == frames * ch * 4 and magic == wire.MAGIC
                        and version == wire.VERSION
                        and (rate == rate_ok or (rate == 0.0 or not rate_ok)
                             and 0.0 <= rate < math.inf)
                        and key not in fast_keys and key not in queues):
                    stream = streams.get(key)
                    if stream is not None and seq == stream.next_seq:
                        self.messages += 1
                        stream.next_seq = seq + 1
                        stream.last_seen = now
                        fast_keys.add(key)
                        fast.append((stream.row, stream, ident, payload, frames, sid, seq,
                                     rate, stamp))
                        continue
            try:
                self._receive(parts)
            except Exception as err:  # never let one message stop the server
                self._reply_error([parts[0]], None, "internal", f"server error: {err}")
        return n

    def _sweep_interval(self) -> float:
        idle = self.config.idle_timeout
        return min(1.0, idle / 4) if idle > 0 else 1.0

    # -- receiving --------------------------------------------------------------------------------
    def _receive(self, parts: list[bytes]) -> None:
        self.messages += 1
        envelope, body = parts[:1], parts[1:]
        if len(body) == 3 and len(body[0]) == 0:  # a REQ socket's empty delimiter
            envelope, body = parts[:2], parts[2:]
        cfg = self.config
        try:
            h, data = wire.decode(body, max_frames=cfg.max_frames,
                                  allow_non_finite=cfg.allow_non_finite)
        except WireError as err:
            if err.header is not None and not err.header.is_stats:
                self._enqueue(envelope, err.header, None, (err.reason, err.message))
            else:
                self._reply_error(envelope, err.header, err.reason, err.message)
            return
        if h.is_error:
            self._reply_error(envelope, h, "unexpected_flags", "clients must not send ERROR")
            return
        if h.is_stats:
            self._send(envelope + wire.encode_json(h, self.stats(), wire.STATS))
            return
        error = None
        if h.is_control:
            if not h.flags & _ECHO:
                error = ("unexpected_flags", "a message without samples needs START, END "
                                             "or RESET (or STATS)")
        elif self.in_channels and h.channels != self.in_channels:
            error = ("channels_mismatch", f"{h.channels} channel(s); the model takes "
                                          f"{self.in_channels}")
        elif h.frames % self.hop:
            error = ("hop_mismatch", f"{h.frames} frames is not a multiple of the model's "
                                     f"hop {self.hop}")
        elif self.model_rate and h.sample_rate and h.sample_rate != self.model_rate:
            error = ("rate_mismatch", f"{h.sample_rate:g} Hz; the model runs at "
                                      f"{self.model_rate:g} Hz")
        self._enqueue(envelope, h, None if error else data, error)

    def _enqueue(self, envelope: list[bytes], h: Header, data: Any,
                 error: tuple[str, str] | None) -> None:
        key = (envelope[0], h.stream_id)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = collections.deque()
        queue.append(_Item(h, data, error, envelope))

    # -- processing -------------------------------------------------------------------------------
    def _process(self) -> None:
        """Work off the queues in rounds of at most one item per stream."""
        cfg = self.config
        while self._queues:
            now = time.monotonic()
            new: list[_Stream] = []
            resets: list[_Stream] = []
            groups: dict[int, list[tuple[_Stream, _Item]]] = {}
            acks: list[tuple[_Stream | None, _Item]] = []
            for key in list(self._queues):
                queue = self._queues[key]
                item = queue.popleft()
                if not queue:
                    del self._queues[key]
                h = item.header
                if item.error is not None:
                    self._reply_error(item.envelope, h, *item.error)
                    continue
                stream = self._streams.get(key)
                if stream is None:
                    if h.is_control and h.end and not h.start:
                        acks.append((None, item))  # closing a stream that holds nothing
                        continue
                    if len(self._streams) >= cfg.max_streams:
                        self._reply_error(item.envelope, h, "too_many_streams",
                                          f"the server holds {cfg.max_streams} streams; "
                                          "end some (END flag) or try later")
                        continue
                    stream = self._streams[key] = _Stream(key, now)
                    new.append(stream)
                    self.streams_opened += 1
                elif h.start:
                    resets.append(stream)  # a restart: fresh state, any sequence number
                else:
                    if h.seq < stream.next_seq:
                        code = "duplicate" if h.seq == stream.next_seq - 1 else "out_of_order"
                        self._reply_error(item.envelope, h, code,
                                          f"sequence number {h.seq}; expected "
                                          f"{stream.next_seq}")
                        continue
                    if h.seq > stream.next_seq:
                        self.gaps += 1
                        self.missing += h.seq - stream.next_seq
                        if cfg.reset_on_gap:
                            resets.append(stream)
                    if h.reset and (not resets or resets[-1] is not stream):
                        resets.append(stream)
                stream.next_seq = h.seq + 1
                stream.last_seen = now
                if h.is_control:
                    acks.append((stream, item))
                else:
                    groups.setdefault(h.frames, []).append((stream, item))
            if new:
                rows = self.runner.add_streams(len(new))
                for stream, row in zip(new, rows, strict=True):
                    stream.row = row
                    self._rows.append(stream.key)
            if resets:
                self.resets += len(resets)
                self.runner.reset(sorted({s.row for s in resets}))
            for frames, members in groups.items():
                self._step_group(frames, members)
            ended: list[_Stream] = []
            for stream, item in acks:
                h = item.header
                out = Header(h.stream_id, h.seq, h.flags & _ECHO, 0, 0, h.sample_rate,
                             h.timestamp_ns)
                self._send(item.envelope + wire.encode_control(out))
                if stream is not None and h.end:
                    ended.append(stream)
            for members in groups.values():
                ended.extend(s for s, item in members if item.header.end)
            if ended:
                self.streams_closed += len(ended)
                self._free(ended)

    def _process_fast(self) -> None:
        """One model call per frame count for the fast-path chunks; reply to each.

        Chunks are stacked in row order straight from the received bytes (one
        join, no per-chunk array); the non-finite check runs once on the stack,
        and only if it fails are the offending chunks found, rejected and taken
        out (their sequence numbers stay expected, as on the general path).
        """
        items, self._fast = self._fast, []
        self._fast_keys.clear()
        groups: dict[int, list[tuple]] = {}
        for item in items:
            groups.setdefault(item[4], []).append(item)
        ch = self.in_channels
        for frames, members in groups.items():
            members.sort(key=_row_of)
            x = np.frombuffer(bytearray().join([m[3] for m in members]), dtype="<f4")
            x = x.reshape(len(members), frames, ch)
            if not self.config.allow_non_finite and not np.isfinite(x).all():
                members, x = self._reject_non_finite(members, x)
                if not members:
                    continue
            if x.dtype != np.float32:  # big-endian host
                x = x.astype(np.float32)
            self._step_fast(frames, members, x)

    def _reject_non_finite(self, members: list[tuple], x: np.ndarray
                           ) -> tuple[list[tuple], np.ndarray]:
        finite = np.isfinite(x)
        good = finite.reshape(len(members), -1).all(axis=1)
        for i in np.flatnonzero(~good):
            row, stream, ident, _, frames, sid, seq, rate, stamp = members[i]
            stream.next_seq = seq  # a rejected chunk is not processed
            bad = int(np.argmin(finite[i].reshape(-1)))
            frame, channel = divmod(bad, self.in_channels)
            h = Header(sid, seq, 0, self.in_channels, frames, rate, stamp)
            self._reply_error([ident], h, "non_finite",
                              f"non-finite sample {float(x[i, frame, channel])!r} at frame "
                              f"{frame}, channel {channel}")
        keep = np.flatnonzero(good)
        return [members[i] for i in keep], x[keep]

    def _step_fast(self, frames: int, members: list[tuple], x: np.ndarray) -> None:
        rows = [m[0] for m in members]
        b = len(members)
        t0 = time.perf_counter()
        try:
            y = self._step_rows(rows, x)
        except Exception as err:  # a model failure answers these chunks, the server lives on
            for _, _, ident, _, _, sid, seq, rate, stamp in members:
                h = Header(sid, seq, 0, self.in_channels, frames, rate, stamp)
                self._reply_error([ident], h, "internal",
                                  f"the model failed: {type(err).__name__}: {err}")
            return
        self.compute.add(time.perf_counter() - t0)
        self.batches += 1
        self.batched_chunks += b
        self.batch_hist[_bucket(b)] += 1
        self.chunks += b
        self.samples_in += b * frames
        y = np.ascontiguousarray(y, dtype="<f4")
        t_out, c_out = int(y.shape[1]), int(y.shape[2])
        self.samples_out += b * t_out
        dtype = wire.DTYPE_FLOAT32 if t_out else wire.DTYPE_CONTROL
        if not t_out:
            c_out = 0
        data = y.tobytes()
        size = len(data) // b
        pack, send = _HEADER_STRUCT.pack, self._sock.send  # type: ignore[union-attr]
        magic, version = wire.MAGIC, wire.VERSION
        for i, (_, stream, ident, _, _, sid, seq, rate, stamp) in enumerate(members):
            stream.chunks += 1
            head = pack(magic, version, 0, dtype, 0, c_out, 0, t_out, sid, seq, rate, stamp)
            try:
                send(ident, _SNDMORE_NOBLOCK)
            except zmq.Again:
                self.replies_dropped += 1  # the client does not read its replies
                continue
            except zmq.ZMQError as err:
                if err.errno == zmq.EHOSTUNREACH:
                    self.unroutable += 1  # the client is gone
                    continue
                raise
            send(head, _SNDMORE_NOBLOCK)  # the rest of a started message is always accepted
            send(data[i * size:(i + 1) * size], _NOBLOCK)

    def _step_group(self, frames: int, members: list[tuple[_Stream, _Item]]) -> None:
        """One model call for the chunks of equal length ``frames``; reply to each stream."""
        members.sort(key=lambda m: m[0].row)
        rows = [s.row for s, _ in members]
        b = len(members)
        channels = members[0][1].header.channels
        x = np.empty((b, frames, channels), dtype=np.float32)
        for i, (_, item) in enumerate(members):
            x[i] = item.data
        t0 = time.perf_counter()
        try:
            y = self._step_rows(rows, x)
        except Exception as err:  # a model failure answers these chunks, the server lives on
            for _, item in members:
                self._reply_error(item.envelope, item.header, "internal",
                                  f"the model failed: {type(err).__name__}: {err}")
            return
        self.compute.add(time.perf_counter() - t0)
        self.batches += 1
        self.batched_chunks += b
        self.batch_hist[_bucket(b)] += 1
        self.chunks += b
        self.samples_in += b * frames
        y = np.ascontiguousarray(y, dtype=np.float32)
        self.samples_out += int(y.shape[0] * y.shape[1])
        for i, (stream, item) in enumerate(members):
            h = item.header
            stream.chunks += 1
            out = Header(h.stream_id, h.seq, h.flags & _ECHO, 0, 0, h.sample_rate,
                         h.timestamp_ns)
            payload = y[i] if y.shape[1] else None
            self._send(item.envelope + wire.encode(out, payload))

    def _step_rows(self, rows: list[int], x: np.ndarray) -> np.ndarray:
        """Step only the runner rows ``rows`` (sorted) with the (len(rows), T, C) chunk ``x``."""
        return self.runner.step(x, rows=rows)

    def _free(self, streams: list[_Stream]) -> None:
        rows = sorted(s.row for s in streams)
        self.runner.remove_streams(rows)
        for s in streams:
            del self._streams[s.key]
        gone = set(rows)
        self._rows = [k for i, k in enumerate(self._rows) if i not in gone]
        for i, key in enumerate(self._rows):
            self._streams[key].row = i

    def _sweep(self, now: float) -> None:
        idle = self.config.idle_timeout
        if idle <= 0:
            return
        stale = [s for key, s in self._streams.items()
                 if now - s.last_seen > idle and key not in self._queues]
        if stale:
            self.streams_expired += len(stale)
            self._free(stale)

    # -- replies ----------------------------------------------------------------------------------
    def _send(self, parts: list[Any]) -> None:
        sock = self._sock
        assert sock is not None
        try:
            sock.send_multipart(parts, flags=_NOBLOCK, copy=False)
        except zmq.Again:
            self.replies_dropped += 1  # the client does not read its replies
        except zmq.ZMQError as err:
            if err.errno == zmq.EHOSTUNREACH:
                self.unroutable += 1  # the client is gone
            else:
                raise

    def _reply_error(self, envelope: list[bytes], h: Header | None, code: str,
                     message: str) -> None:
        self.rejected[code] += 1
        self._send(envelope + wire.encode_error(h, code, message))

    # -- stats ------------------------------------------------------------------------------------
    def stats(self) -> dict:
        """Counters and timings as a JSON-ready dict (the STATS reply)."""
        c = self.compute.percentiles_us()
        return {
            "schema": "sigstream-server-stats/1",
            "uptime_s": round(time.monotonic() - self._t0, 3),
            "streams": len(self._streams),
            "streams_opened": self.streams_opened,
            "streams_closed": self.streams_closed,
            "streams_expired": self.streams_expired,
            "messages": self.messages,
            "chunks": self.chunks,
            "samples_in": self.samples_in,
            "samples_out": self.samples_out,
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "gaps": self.gaps,
            "missing": self.missing,
            "resets": self.resets,
            "replies_dropped": self.replies_dropped,
            "unroutable": self.unroutable,
            "batches": self.batches,
            "batch_size": {
                "mean": self.batched_chunks / self.batches if self.batches else 0.0,
                "histogram": dict(sorted(self.batch_hist.items(),
                                         key=lambda kv: int(kv[0].split("-")[0]))),
            },
            "compute_us": {"p50": c["p50_us"], "p99": c["p99_us"], "max": c["max_us"]},
        }

    def stats_line(self) -> str:
        """One line for a terminal."""
        c = self.compute.percentiles_us()
        mean = self.batched_chunks / self.batches if self.batches else 0.0
        return (f"serve: streams {len(self._streams)}  chunks {self.chunks}  samples "
                f"{self.samples_in}  rejected {sum(self.rejected.values())}  gaps {self.gaps}  "
                f"batch mean {mean:.1f}  compute p50 {c['p50_us']:.0f} us "
                f"p99 {c['p99_us']:.0f} us")


def _sync_torch_threads() -> None:
    """Apply the process's torch thread count to this thread.

    OpenMP keeps the thread count per OS thread: a thread that never called
    ``torch.set_num_threads`` uses every core, whatever the main thread set, and on
    a loaded machine its small parallel regions can stall for hundreds of ms.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(torch.get_num_threads())


def _make_runner(obj: Any, _depth: int = 0) -> StreamRunner:
    if isinstance(obj, StreamRunner):
        if obj.batch:
            obj.remove_streams(list(range(obj.batch)))
        return obj
    if not isinstance(obj, type) and hasattr(obj, "init_state") and hasattr(obj, "step"):
        return StreamRunner(obj, batch=0)
    if callable(obj) and _depth == 0:
        factory: Callable[[], Any] = obj
        return _make_runner(factory(), 1)
    raise ConfigError(f"cannot serve {type(obj).__name__}: need a streamable model (hop, "
                      "init_state, step), a StreamRunner, or a factory returning one")
