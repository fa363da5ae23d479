"""A ZeroMQ ROUTER server that runs one streaming model for many remote streams.

B: batch (streams), T: time (frames), C: channels.

Clients (:class:`~sigstream.stream.net.client.Client`, or any DEALER / REQ socket
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

Lifecycle (decided by :class:`~sigstream.stream.net.sessions.SessionTable`, a
state machine without sockets or model): the START flag or a stream's first
message creates its state (START on a live stream restarts it: state reset, any
sequence number accepted); RESET resets it; END frees it after its reply;
``idle_timeout`` frees streams that went quiet (a client that vanished). Sequence
numbers must increase by one: a jump is counted as a gap (and resets the stream
when ``reset_on_gap``); a repeated or older number is rejected (``duplicate`` /
``out_of_order``).

The steady state of a stream (a float32 chunk without flags, the expected sequence
number, the model's channels, hop and rate) takes a fast path: its header is read
with :func:`wire.unpack_fields`, the chunks of one frame count are stacked straight
from the received bytes, and replies are packed with :func:`wire.pack_header`.

Security: binding anything but loopback (127.0.0.0/8, ::1, localhost, ipc://,
inproc://) needs CURVE keys (``curve_secret_file``) or ``insecure=True``; the
check runs before any socket exists. The client socket, its options, CURVE and
the reply accounting are :class:`~sigstream.stream.net.service.Front`'s.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import operator
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from sigstream.core.errors import ConfigError
from sigstream.stream.net import wire
from sigstream.stream.net.service import (
    Front,
    ServiceStats,
    ThreadedService,
    check_config,
    split_envelope,
)
from sigstream.stream.net.sessions import (
    Action,
    Key,
    Session,
    SessionCounters,
    SessionSettings,
    SessionTable,
)
from sigstream.stream.net.sockets import CurveServer, SocketOptions
from sigstream.stream.net.throttle import Throttle
from sigstream.stream.net.wire import Header, WireError
from sigstream.stream.runner import StreamRunner
from sigstream.stream.stats import TimingWindow

__all__ = ["ServerConfig", "Server", "ServerStats", "SERVER_REASONS"]

SERVER_REASONS = {
    "channels_mismatch": "the chunk's channel count differs from the model's in_channels",
    "hop_mismatch": "the chunk's frame count is not a multiple of the model's hop",
    "rate_mismatch": "the chunk's sample rate differs from the model's",
    "duplicate": "sequence number already processed for this stream",
    "out_of_order": "sequence number older than the last one processed",
    "unexpected_flags": "ERROR flag from a client, or a control message without START/END/RESET",
    "too_many_streams": "the server holds max_streams streams already",
    "client_quota": "this client holds max_streams_per_client streams already",
    "rate_limited": "this client sent more new-stream, malformed or STATS messages than "
                    "new_stream_rate allows; the rest of this second's are dropped unanswered",
    "internal": "the model failed on this chunk",
}
"""Reason codes the server adds to :data:`sigstream.stream.net.wire.REASONS`."""

_ECHO = wire.START | wire.END | wire.RESET
_NOBLOCK, _RCVMORE = int(zmq.NOBLOCK), int(zmq.RCVMORE)  # plain ints: enum ops cost µs
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)
_row_of = operator.itemgetter(0)  # the row of a fast-path entry (see Server._drain)
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
    max_streams_per_client: streams one client identity holds at once (0: half of
    max_streams), so one client cannot take every slot;
    new_stream_rate, new_stream_burst: per client identity, messages per second (and at
    once) that hold no stream state yet (new streams, malformed messages, STATS); the
    rest are dropped before decoding, the first per second answered ``rate_limited``
    (:mod:`sigstream.stream.net.throttle`); rate 0: no limit; burst 0: the per-client
    stream quota;
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
    max_streams_per_client: int = 0
    new_stream_rate: float = 1000.0
    new_stream_burst: int = 0
    allow_non_finite: bool = False
    curve_secret_file: str | None = None
    curve_clients_dir: str | None = None
    insecure: bool = False
    hwm: int = 10000
    poll_interval: float = 0.05
    drain_timeout: float = 2.0
    linger: float = 1.0

    def validate(self) -> None:
        check_config(self, counts=("max_batch", "max_frames", "max_message_bytes",
                                   "max_streams", "hwm"),
                     positive_seconds=("poll_interval",),
                     seconds=("idle_timeout", "stats_every", "drain_timeout", "linger"),
                     finite=False)
        if self.max_streams_per_client < 0 or self.max_streams_per_client > self.max_streams:
            raise ConfigError(f"max_streams_per_client must lie in 0 .. max_streams "
                              f"({self.max_streams}), got {self.max_streams_per_client}")
        if not (0 <= self.new_stream_rate < math.inf) or self.new_stream_burst < 0:
            raise ConfigError(f"new_stream_rate must be finite and >= 0 and new_stream_burst "
                              f">= 0, got {self.new_stream_rate}, {self.new_stream_burst}")


@dataclass
class ServerStats(ServiceStats, SessionCounters):
    """The server's counters: the service's and the sessions', plus its model calls.

    chunks / samples_in / samples_out: what went through the model; batches: model
    calls; batched_chunks: chunks in them; batch_hist: calls per batch-size bucket;
    compute: the duration of each call.
    """

    chunks: int = 0
    samples_in: int = 0
    samples_out: int = 0
    batches: int = 0
    batched_chunks: int = 0
    batch_hist: collections.Counter = field(default_factory=collections.Counter)
    compute: TimingWindow = field(default_factory=lambda: TimingWindow(16384))
    throttled: int = 0

    def add_batch(self, b: int, frames: int, seconds: float) -> None:
        """A model call of ``b`` chunks of ``frames`` frames that took ``seconds``."""
        self.compute.add(seconds)
        self.batches += 1
        self.batched_chunks += b
        self.batch_hist[_bucket(b)] += 1
        self.chunks += b
        self.samples_in += b * frames


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


class Server(ThreadedService):
    """Serve a streaming model to many clients over one ROUTER socket.

    ``model`` is a streamable model (``hop``, ``in_channels``, ``init_state``,
    ``step``; torch or numpy/ONNX), a :class:`StreamRunner`, or a zero-argument
    factory returning either. Use :meth:`serve_forever` (blocks; :meth:`stop` from
    another thread or a signal handler ends it gracefully) or :meth:`start` (binds,
    then serves in a background thread) / :meth:`stop`. :attr:`endpoint` is the
    bound address (``tcp://127.0.0.1:*`` picks a free port); :attr:`counters` the
    live :class:`ServerStats`, :meth:`stats` them as the STATS reply.

    Raises ConfigError before any socket is created for a non-loopback ``bind``
    without CURVE keys or ``insecure``, for a bad config, or an unreadable key file.
    """

    _thread_name = "sigstream-server"

    def __init__(self, model: Any, bind: str = "tcp://127.0.0.1:5555",
                 config: ServerConfig | None = None) -> None:
        cfg = config or ServerConfig()
        cfg.validate()
        self.config = cfg
        curve = CurveServer.configure(cfg.curve_secret_file, cfg.curve_clients_dir)
        self.counters = ServerStats()
        self.front = Front(bind, SocketOptions(hwm=cfg.hwm, linger=cfg.linger,
                                               max_message_bytes=cfg.max_message_bytes,
                                               router_mandatory=True),
                           self.counters, curve=curve, insecure=cfg.insecure)
        self.bind_address = bind
        self.sessions = SessionTable(SessionSettings(cfg.max_streams, cfg.reset_on_gap,
                                                     cfg.idle_timeout,
                                                     cfg.max_streams_per_client),
                                     self.counters)
        self.runner = _make_runner(model)
        self.runner.validate = False  # every message is validated on arrival
        if getattr(self.runner.model, "accepts_nan", False) and not cfg.allow_non_finite:
            # a model that reads NaN (and out-of-range values) as missing samples: pass them
            self.config = cfg = dataclasses.replace(cfg, allow_non_finite=True)
        self.hop = self.runner.hop
        self.in_channels = self.runner.in_channels
        rate = getattr(self.runner.model, "sample_rate", None)
        self.model_rate = float(rate) if isinstance(rate, (int, float)) and rate else 0.0

        self._ctx: zmq.Context | None = None
        self._init_lifecycle()
        self._rows: list[Session] = []  # row index -> session
        self._queues: dict[Key, collections.deque] = {}
        self._fast: dict[int, list[tuple]] = {}  # frames -> this iteration's fast-path chunks
        self._fast_keys: set[Key] = set()
        self.throttle = (Throttle(cfg.new_stream_rate,
                                  cfg.new_stream_burst or self.sessions.settings.quota)
                         if cfg.new_stream_rate > 0 else None)

    # -- sockets ----------------------------------------------------------------------------------
    def bind(self) -> str:
        """Create the ROUTER socket and bind it; returns the bound endpoint. Idempotent."""
        if self.front.sock is not None:
            return self.front.endpoint or self.bind_address
        ctx = zmq.Context()
        try:
            endpoint = self.front.open(ctx)
        except BaseException:
            ctx.term()
            raise
        self._ctx = ctx
        return endpoint

    def _close(self) -> None:
        self.front.close()
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    # -- running ----------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Serve until :meth:`stop`; then drain in-flight messages, reply, and close."""
        self.bind()
        _sync_torch_threads()
        cfg = self.config
        poll_ms = max(1, int(cfg.poll_interval * 1000))
        self._start_housekeeping()
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
        sock = self.front.sock
        assert sock is not None
        n = 0
        if sock.poll(poll_ms, zmq.POLLIN):
            n = self._drain(sock)
            if self._fast:
                self._process_fast()
            if self._queues:
                self._process()
        self._housekeeping()
        return n

    def _drain(self, sock: zmq.Socket) -> int:
        """Receive the ready messages (at most ``max_batch``); returns how many.

        The steady state of a stream — a float32 chunk with no flags, the next
        sequence number, the model's channels, hop and rate — is checked here
        with a few integer comparisons and goes to the fast lists (one chunk per
        stream per iteration, grouped by frame count, each entry ``(row, session,
        identity, payload, stream id, seq, sample rate, timestamp)``); anything else
        (a new stream, flags, a gap, a second chunk of the same stream, a malformed
        message) takes the general path through :meth:`_receive`, which validates
        everything.
        """
        recv, more = sock.recv, sock.get
        unpack, advance = wire.unpack_fields, self.sessions.advance
        throttle, sessions = self.throttle, self.sessions
        queues, fast, fast_keys = self._queues, self._fast, self._fast_keys
        counters = self.counters
        cfg = self.config
        limit, max_frames = cfg.max_batch, cfg.max_frames
        in_ch, hop, rate_ok = self.in_channels, self.hop, self.model_rate
        magic_ok, version_ok, f32 = wire.MAGIC, wire.VERSION, wire.DTYPE_FLOAT32
        now = time.monotonic()
        n = 0
        while n < limit:
            # ask before each receive after the first (which poll announced): a receive on
            # an empty socket raises zmq.Again, whose construction costs ~10 us a message
            if n and not more(_EVENTS) & _POLLIN:  # type: ignore[operator]  # EVENTS is an int
                break
            try:
                parts = [recv(_NOBLOCK)]
            except zmq.Again:
                break
            while more(_RCVMORE):
                parts.append(recv(_NOBLOCK))
            n += 1
            if len(parts) == 3 and len(parts[1]) == wire.HEADER_SIZE and in_ch:
                ident, head, payload = parts
                magic, version, flags, dtype, ch, frames, sid, seq, rate, stamp = unpack(head)
                key = (ident, sid)
                if (flags == 0 and dtype == f32 and ch == in_ch
                        and 0 < frames <= max_frames and frames % hop == 0
                        and len(payload) == frames * ch * 4 and magic == magic_ok
                        and version == version_ok
                        and (rate == rate_ok or (rate == 0.0 or not rate_ok)
                             and 0.0 <= rate < math.inf)
                        and key not in fast_keys and key not in queues):
                    session = advance(key, seq, now)
                    if session is not None:
                        counters.received += 1
                        fast_keys.add(key)
                        group = fast.get(frames)
                        if group is None:
                            group = fast[frames] = []
                        group.append((session.row, session, ident, payload, sid, seq, rate,
                                      stamp))
                        continue
            if throttle is not None:
                ident = parts[0]
                head = parts[1] if len(parts) > 1 else b""
                if not (len(head) == wire.HEADER_SIZE
                        and (ident, unpack(head)[6]) in sessions) and not throttle.allow(
                            ident, now):
                    counters.throttled += 1
                    if throttle.notice(ident, now):
                        self.front.reply_error([ident], None, "rate_limited",
                                               SERVER_REASONS["rate_limited"])
                    continue
            try:
                self._receive(parts)
            except Exception as err:  # never let one message stop the server
                self.front.reply_error([parts[0]], None, "internal", f"server error: {err}")
        return n

    # -- receiving --------------------------------------------------------------------------------
    def _receive(self, parts: list[bytes]) -> None:
        self.counters.received += 1
        envelope, body = split_envelope(parts)
        cfg = self.config
        try:
            h, data = wire.decode(body, max_frames=cfg.max_frames,
                                  allow_non_finite=cfg.allow_non_finite)
        except WireError as err:
            if err.header is not None and not err.header.is_stats:
                self._enqueue(envelope, err.header, None, (err.reason, err.message))
            else:
                self.front.reply_error(envelope, err.header, err.reason, err.message)
            return
        if h.is_error:
            self.front.reply_error(envelope, h, "unexpected_flags", "clients must not send ERROR")
            return
        if h.is_control and len(data):  # a request's payload: empty or a JSON object
            try:
                wire.parse_json(data)
            except WireError as err:
                if h.is_stats:
                    self.front.reply_error(envelope, h, err.reason, err.message)
                else:
                    self._enqueue(envelope, h, None, (err.reason, err.message))
                return
        if h.is_stats:
            self.front.reply_stats(envelope, h, self.stats())
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
        front, sessions = self.front, self.sessions
        while self._queues:
            now = time.monotonic()
            new: list[Session] = []
            resets: list[Session] = []
            groups: dict[int, list[tuple[Session, _Item]]] = {}
            acks: list[tuple[_Item, bool]] = []
            ended: list[Session] = []
            for key in list(self._queues):
                queue = self._queues[key]
                item = queue.popleft()
                if not queue:
                    del self._queues[key]
                h = item.header
                if item.error is not None:
                    front.reply_error(item.envelope, h, *item.error)
                    continue
                verdict = sessions.admit(key, h, now)
                if verdict.action is Action.REJECT:
                    front.reply_error(item.envelope, h, verdict.code, verdict.message)
                    continue
                session = verdict.session
                if verdict.reset and not h.flags & (wire.RESET | wire.START):
                    # the state starts afresh though the client did not ask: the reply says so
                    item.header = h = h._replace(flags=h.flags | wire.RESET)
                if verdict.created:
                    new.append(session)  # type: ignore[arg-type]
                elif verdict.reset:
                    resets.append(session)  # type: ignore[arg-type]
                if verdict.free:
                    ended.append(session)  # type: ignore[arg-type]
                if verdict.action is Action.ACK:
                    acks.append((item, verdict.free))
                else:
                    groups.setdefault(h.frames, []).append((session, item))  # type: ignore
            if new:
                rows = self.runner.add_streams(len(new))
                for session, row in zip(new, rows, strict=True):
                    session.row = row
                    self._rows.append(session)
            if resets:
                self.runner.reset(sorted({s.row for s in resets}))
            for frames, members in groups.items():
                self._step_group(frames, members)
            for item, _ in acks:
                h = item.header
                out = Header(h.stream_id, h.seq, h.flags & _ECHO, 0, 0, h.sample_rate,
                             h.timestamp_ns)
                front.send(item.envelope + wire.encode_control(out))
            if ended:
                sessions.close(ended)
                self._free_rows(ended)

    def _process_fast(self) -> None:
        """One model call per frame count for the fast-path chunks; reply to each.

        Chunks are stacked in row order straight from the received bytes (one
        join, no per-chunk array); the non-finite check runs once on the stack,
        and only if it fails are the offending chunks found, rejected and taken
        out (their sequence numbers stay expected, as on the general path).
        """
        groups, self._fast = self._fast, {}
        self._fast_keys.clear()
        ch = self.in_channels
        for frames, members in groups.items():
            members.sort(key=_row_of)
            x = np.frombuffer(bytearray().join([m[3] for m in members]), dtype="<f4")
            x = x.reshape(len(members), frames, ch)
            if not self.config.allow_non_finite and not np.isfinite(x).all():
                members, x = self._reject_non_finite(frames, members, x)
                if not members:
                    continue
            if x.dtype != np.float32:  # big-endian host
                x = x.astype(np.float32)
            self._step_fast(frames, members, x)

    def _reject_non_finite(self, frames: int, members: list[tuple], x: np.ndarray
                           ) -> tuple[list[tuple], np.ndarray]:
        finite = np.isfinite(x)
        good = finite.reshape(len(members), -1).all(axis=1)
        for i in np.flatnonzero(~good):
            _, session, ident, _, sid, seq, rate, stamp = members[i]
            self.sessions.rollback(session, seq)  # a rejected chunk is not processed
            bad = int(np.argmin(finite[i].reshape(-1)))
            frame, channel = divmod(bad, self.in_channels)
            h = Header(sid, seq, 0, self.in_channels, frames, rate, stamp)
            self.front.reply_error([ident], h, "non_finite",
                                   f"non-finite sample {float(x[i, frame, channel])!r} at "
                                   f"frame {frame}, channel {channel}")
        keep = np.flatnonzero(good)
        return [members[i] for i in keep], x[keep]

    def _step_fast(self, frames: int, members: list[tuple], x: np.ndarray) -> None:
        rows = [m[0] for m in members]
        b = len(members)
        t0 = time.perf_counter()
        try:
            y = self._step_rows(rows, x)
        except Exception as err:  # a model failure answers these chunks, the server lives on
            for _, _, ident, _, sid, seq, rate, stamp in members:
                h = Header(sid, seq, 0, self.in_channels, frames, rate, stamp)
                self.front.reply_error([ident], h, "internal",
                                       f"the model failed: {type(err).__name__}: {err}")
            return
        counters = self.counters
        counters.add_batch(b, frames, time.perf_counter() - t0)
        y = np.ascontiguousarray(y, dtype="<f4")
        pack, send = wire.pack_header, self.front.send_reply
        counts = self.runner.counts
        lost = self._take_lost(rows)
        if lost or (counts is not None and (counts != y.shape[1]).any()):
            # streams at other phases, or whose state a remote runner lost (reply RESET)
            for i, (row, session, ident, _, sid, seq, rate, stamp) in enumerate(members):
                session.chunks += 1
                t_i = int(counts[i]) if counts is not None else int(y.shape[1])
                c_i = int(y.shape[2])
                counters.samples_out += t_i
                dtype = wire.DTYPE_FLOAT32 if t_i else wire.DTYPE_CONTROL
                send(ident, pack(wire.RESET if row in lost else 0, dtype, c_i if t_i else 0,
                                 t_i, sid, seq, rate, stamp), y[i, :t_i].tobytes())
            return
        t_out, c_out = int(y.shape[1]), int(y.shape[2])
        counters.samples_out += b * t_out
        dtype = wire.DTYPE_FLOAT32 if t_out else wire.DTYPE_CONTROL
        if not t_out:
            c_out = 0
        data = y.tobytes()
        size = len(data) // b
        for i, (_, session, ident, _, sid, seq, rate, stamp) in enumerate(members):
            session.chunks += 1
            send(ident, pack(0, dtype, c_out, t_out, sid, seq, rate, stamp),
                 data[i * size:(i + 1) * size])

    def _step_group(self, frames: int, members: list[tuple[Session, _Item]]) -> None:
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
                self.front.reply_error(item.envelope, item.header, "internal",
                                       f"the model failed: {type(err).__name__}: {err}")
            return
        self.counters.add_batch(b, frames, time.perf_counter() - t0)
        y = np.ascontiguousarray(y, dtype=np.float32)
        parts = self.runner.split(y)  # each stream's own rows (a decimating model's differ)
        self.counters.samples_out += sum(int(p.shape[0]) for p in parts)
        lost = self._take_lost(rows)
        for i, (session, item) in enumerate(members):
            h = item.header
            session.chunks += 1
            flags = h.flags & _ECHO | (wire.RESET if session.row in lost else 0)
            out = Header(h.stream_id, h.seq, flags, 0, 0, h.sample_rate, h.timestamp_ns)
            payload = parts[i] if parts[i].shape[0] else None
            self.front.send(item.envelope + wire.encode(out, payload))

    def _take_lost(self, rows: list[int]) -> set[int]:
        """Which of the just-stepped ``rows`` a remote runner's restart started afresh (their
        replies carry RESET; counted as resets); always empty for a local runner."""
        take = getattr(self.runner, "take_lost", None)
        lost: set[int] = take(rows) if take is not None else set()
        self.counters.resets += len(lost)
        return lost

    def _step_rows(self, rows: list[int], x: np.ndarray) -> np.ndarray:
        """Step only the runner rows ``rows`` (sorted) with the (len(rows), T, C) chunk ``x``."""
        return self.runner.step(x, rows=rows)

    def _free_rows(self, sessions: list[Session]) -> None:
        """Drop the state rows of freed sessions; the rows after them shift down."""
        gone = {s.row for s in sessions}
        self.runner.remove_streams(sorted(gone))
        self._rows = [s for s in self._rows if s.row not in gone]
        for i, s in enumerate(self._rows):
            s.row = i

    def _sweep(self, now: float) -> None:
        stale = self.sessions.expire(now, busy=self._queues)
        if stale:
            self._free_rows(stale)

    # -- stats ------------------------------------------------------------------------------------
    def stats(self) -> dict:
        """Counters and timings as a JSON-ready dict (the STATS reply)."""
        k = self.counters
        c = k.compute.percentiles_us()
        return {
            "schema": "sigstream-server-stats/1",
            "uptime_s": k.uptime_s(),
            "streams": len(self.sessions),
            "streams_opened": k.streams_opened,
            "streams_closed": k.streams_closed,
            "streams_expired": k.streams_expired,
            "messages": k.received,
            "chunks": k.chunks,
            "samples_in": k.samples_in,
            "samples_out": k.samples_out,
            "rejected": dict(k.rejected),
            "rejected_total": k.rejected_total,
            "gaps": k.gaps,
            "missing": k.missing,
            "resets": k.resets,
            "replies_dropped": k.replies_dropped,
            "throttled": k.throttled,
            "unroutable": k.unroutable,
            "batches": k.batches,
            "batch_size": {
                "mean": k.batched_chunks / k.batches if k.batches else 0.0,
                "histogram": dict(sorted(k.batch_hist.items(),
                                         key=lambda kv: int(kv[0].split("-")[0]))),
            },
            "compute_us": {"p50": c["p50_us"], "p99": c["p99_us"], "max": c["max_us"]},
            **({"engine": describe()} if (describe := getattr(self.runner, "describe", None))
               else {}),
        }

    def stats_line(self) -> str:
        """One line for a terminal."""
        k = self.counters
        c = k.compute.percentiles_us()
        mean = k.batched_chunks / k.batches if k.batches else 0.0
        return (f"serve: streams {len(self.sessions)}  chunks {k.chunks}  samples "
                f"{k.samples_in}  rejected {k.rejected_total}  gaps {k.gaps}  "
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
    if not isinstance(obj, StreamRunner) and hasattr(obj, "take_lost"):
        return obj  # a runner whose state lives elsewhere (sigstream.cli.ray_serve)
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
