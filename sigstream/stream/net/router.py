"""A stream-affine router in front of several ``sigstream serve`` workers (scale-out).

Clients connect to the router's ROUTER socket exactly as they would to
:class:`~sigstream.stream.net.server.Server` (wire format v1, :mod:`sigstream.stream.net.wire`);
they cannot tell the difference, except for the RESET flag after a failover (below)
and the router's own STATS reply. Behind it, one DEALER socket per worker connects
to that worker's endpoint; the workers are plain ``serve`` processes or threads.

Placement: a stream is keyed by (client identity, stream id), like in ``serve``.
A new stream goes to the worker that owns its key on a consistent-hash ring
(:class:`HashRing`: ``vnodes`` points per worker, 64-bit BLAKE2b hashes, so the
placement is the same in every process and run; removing a worker moves only
that worker's streams, adding one takes only ~1/N of the key space). A stream
then stays on its worker as long as that worker is alive ("sticky"): a worker
that rejoins receives new streams and streams that lose their worker, but live
streams are not moved back (that would throw away their state a second time).

Id rewriting: different clients may use the same stream id, and all streams of
one worker arrive on the router's single DEALER connection to it, so on the way
to the worker the router overwrites the header's stream id (bytes 16-24) with a
router-unique u64 (counting up from 1; 0 is reserved for liveness probes) that
it allocates per (client identity, stream id) *and per assignment to a worker*:
a stream that moves gets a new id, so a worker never continues stale state and
late replies of a worker given up on are recognised and dropped. On the way back
the client's stream id is written into the reply header and the reply is sent to
the client's identity (plus a REQ socket's empty delimiter). Every other byte of
both frames is forwarded unchanged; replies are matched to requests by (router
id, sequence number), so nothing is duplicated, and a stream's replies keep the
order the worker sends them in (the order the client sent its chunks).

Worker health: the router tracks every request in flight per worker. A worker
is declared dead when

- its oldest request has been in flight longer than ``worker_timeout`` and
  nothing was heard from the worker for that long, and then a liveness probe
  (a STATS request) gets no answer within ``probe_timeout``; or
- it is explicitly unreachable: its connection drops (a ZeroMQ socket monitor
  reports the disconnect; on loopback a killed or stopped process is noticed
  within milliseconds), or it never connected within ``connect_timeout`` of
  the router's start.

A dead worker leaves the ring and its DEALER socket is closed (dropping anything
still queued for it). Each of its streams moves to the next worker on the ring
under a fresh router id: the chunks in flight are re-sent to the new worker in
order, and if the client had already received output from the old worker, the
first re-sent chunk (or, with nothing in flight, the stream's next chunk) carries
the RESET flag, and so does its reply. The client thereby learns that its state
was lost: **outputs after a failover restart from a fresh state**, that is, they
equal processing the input from that chunk on, as if it were a new stream. With
no worker alive, every request (and everything in flight) gets an ERROR reply
``no_workers`` at once: clients never hang. A request a live, responsive worker
leaves unanswered for ``request_timeout`` gets an ERROR ``timeout``.

Dead workers are probed again every ``rejoin_interval`` seconds (on a fresh
socket); one that answers rejoins the ring. A STATS request to the router is
answered by the router with JSON: per-worker alive flags, stream counts,
requests in flight, failovers, and forwarded / replied counts.

Security: like ``serve``, the router binds only loopback (127.0.0.0/8, ::1,
localhost, ipc://, inproc://) unless CURVE is configured (``curve_secret_file``,
optionally ``curve_clients_dir``) or ``insecure=True``; the check runs before any
socket exists. Towards the workers the router is a CURVE client when
``curve_worker_key`` (the workers' public certificate or Z85 key) is given: it
connects with its own certificate (``curve_secret_file``; else a fresh key pair),
so a worker running ``serve --curve-secret ... --curve-clients DIR`` admits the
router when DIR holds the router's public certificate. A worker whose CURVE
handshake fails (a wrong key on either side) never receives a message: it is
declared dead with the reason ``CURVE handshake failed``. The client socket, its
options, CURVE and the reply accounting are
:class:`~sigstream.stream.net.service.Front`'s, shared with ``serve``.
"""

from __future__ import annotations

import collections
import errno
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

import zmq
from zmq.utils.monitor import recv_monitor_message

from sigstream.core.errors import ConfigError
from sigstream.stream.net import wire
from sigstream.stream.net.ring import HashRing, stream_key
from sigstream.stream.net.service import (
    Front,
    ServiceStats,
    ThreadedService,
    check_config,
    split_envelope,
)
from sigstream.stream.net.sockets import (
    HANDSHAKE_FAILED,
    CurveClient,
    CurveServer,
    SocketOptions,
    close_monitored,
    connect_socket,
    load_public_key,
    make_socket,
)
from sigstream.stream.net.wire import Header, WireError

__all__ = ["RouterConfig", "Router", "RouterStats", "HashRing", "stream_key", "ROUTER_REASONS"]

ROUTER_REASONS = {
    "no_workers": "no worker is alive to serve the stream; retry later",
    "worker_busy": "the stream's worker has too many queued messages (high-water mark)",
    "timeout": "the worker did not answer this message within request_timeout",
    "too_many_streams": "the router holds max_streams streams already",
    "client_quota": "this client holds max_streams_per_client streams already",
    "stopping": "the router stopped before the worker answered",
    "internal": "the router failed on this message",
}
"""Reason codes the router adds to the server's
(:data:`sigstream.stream.net.server.SERVER_REASONS`)."""

_PROBE_ID = 0
# a worker counts as connected once it can receive: after the TCP connect, or with CURVE
# after the handshake (a wrong key fails it, and nothing sent would ever arrive)
_MONITOR_EVENTS = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED
_MONITOR_EVENTS_CURVE = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED | HANDSHAKE_FAILED
_CURVE_FAILED = ("CURVE handshake failed (a wrong --worker-key, or the worker does not admit "
                 "the router's key)")


# -- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouterConfig:
    """Router settings.

    vnodes: ring points per worker; worker_timeout: seconds a request may be in
    flight (with nothing heard from its worker) before the worker is probed;
    probe_timeout: seconds a probe may go unanswered before the worker is dead
    (a worker answers probes between model calls, so keep worker_timeout +
    probe_timeout above the longest model call);
    connect_timeout: seconds after start for a worker to connect, else dead;
    rejoin_interval: seconds between probes of dead workers, which rejoin when
    they answer (0: never); request_timeout: seconds before an unanswered
    request on a live worker gets an ERROR ``timeout`` (0: never); idle_timeout:
    seconds without a message before the router forgets a stream (0: never);
    max_streams: streams held at once; max_batch: messages taken per socket and
    loop iteration; max_message_bytes: ZMQ_MAXMSGSIZE of the client socket (keep
    it <= the workers', else a worker drops the router's connection); hwm:
    high-water marks; insecure: allow a non-loopback bind without CURVE;
    curve_secret_file: a ``zmq.auth`` certificate with the router's secret key (CURVE
    on the client socket, and the router's own key pair towards CURVE workers);
    curve_clients_dir: directory of authorised client public certificates (without it
    any client knowing the router's key may connect); curve_worker_key: the workers'
    public certificate file or Z85 key (the router connects to every worker as a
    CURVE client; without it, plain ZeroMQ); stats_every: seconds between one-line
    stats on stderr (0: off); log_events: print worker deaths and rejoins on stderr;
    poll_interval: seconds between health checks when idle; drain_timeout: how long
    a graceful stop waits for replies in flight; linger: seconds to flush replies at
    close.
    """

    vnodes: int = 64
    worker_timeout: float = 1.0
    probe_timeout: float = 1.0
    connect_timeout: float = 2.0
    rejoin_interval: float = 1.0
    request_timeout: float = 30.0
    idle_timeout: float = 60.0
    max_streams: int = 65536
    max_streams_per_client: int = 0
    max_batch: int = 1024
    max_message_bytes: int = 16 * 1024 * 1024
    hwm: int = 10000
    insecure: bool = False
    curve_secret_file: str | None = None
    curve_clients_dir: str | None = None
    curve_worker_key: str | None = None
    stats_every: float = 0.0
    log_events: bool = False
    poll_interval: float = 0.05
    drain_timeout: float = 2.0
    linger: float = 1.0

    def validate(self) -> None:
        check_config(self, counts=("vnodes", "max_streams", "max_batch", "max_message_bytes",
                                   "hwm"),
                     positive_seconds=("worker_timeout", "probe_timeout", "connect_timeout",
                                       "poll_interval"),
                     seconds=("rejoin_interval", "request_timeout", "idle_timeout",
                              "stats_every", "drain_timeout", "linger"))
        if not 0 <= self.max_streams_per_client <= self.max_streams:
            raise ConfigError(f"max_streams_per_client must lie in 0 .. max_streams "
                              f"({self.max_streams}), got {self.max_streams_per_client}")

    @property
    def quota(self) -> int:
        """Streams one client identity may hold (max_streams_per_client, or half of
        max_streams when that is 0)."""
        return self.max_streams_per_client or max(1, self.max_streams // 2)


@dataclass
class RouterStats(ServiceStats):
    """The router's counters: the service's plus its own.

    forwarded / replied: requests sent to workers and replies passed back; resent:
    requests re-sent after a failover; failovers: workers that died after serving;
    streams_moved: streams re-homed by a failover; streams_expired: streams
    forgotten after idle_timeout; stale_replies: replies of a worker or assignment
    given up on (dropped); bad_replies: replies that are not wire format (dropped).
    """

    forwarded: int = 0
    replied: int = 0
    resent: int = 0
    failovers: int = 0
    streams_moved: int = 0
    streams_expired: int = 0
    stale_replies: int = 0
    bad_replies: int = 0


# -- bookkeeping ----------------------------------------------------------------------------------


class _Pending:
    """One client request in flight at a worker."""

    __slots__ = ("token", "stream", "envelope", "header", "raw", "payload", "sent_at",
                 "forced_reset", "worker")

    def __init__(self, token: int, stream: _Stream, envelope: list[bytes], header: Header,
                 raw: bytes, payload: bytes, now: float) -> None:
        self.token = token
        self.stream = stream
        self.envelope = envelope
        self.header = header  # as the client sent it (its stream id)
        self.raw = raw
        self.payload = payload
        self.sent_at = now
        self.forced_reset = False
        self.worker: _Worker | None = None


class _Stream:
    """A client stream: its worker, router id, and requests in flight (in send order)."""

    __slots__ = ("identity", "stream_id", "key", "rid", "worker", "pending", "state_seen",
                 "reset_next", "last_seen")

    def __init__(self, identity: bytes, stream_id: int, now: float) -> None:
        self.identity = identity
        self.stream_id = stream_id
        self.key = stream_key(identity, stream_id)
        self.rid = 0
        self.worker: _Worker | None = None
        self.pending: collections.deque[_Pending] = collections.deque()
        self.state_seen = False  # the client got output computed from the worker's state
        self.reset_next = False  # the next request must carry RESET (its state was lost)
        self.last_seen = now


class _Worker:
    """One back-end ``serve`` worker and its DEALER connection."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.sock: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        self.alive = True
        self.connected = False
        self.ever_connected = False
        self.connect_deadline = 0.0
        self.pending: collections.OrderedDict[int, _Pending] = collections.OrderedDict()
        self.streams: set[_Stream] = set()
        self.last_heard = 0.0
        self.probe_at: float | None = None
        self.next_rejoin = 0.0
        self.reason = ""
        self.forwarded = 0
        self.replied = 0
        self.deaths = 0
        self.rejoins = 0
        self.probes = 0


# -- the router -----------------------------------------------------------------------------------


class Router(ThreadedService):
    """Route the streams of many clients over several ``serve`` workers; see the module doc.

    ``bind`` is the client-facing endpoint (``tcp://127.0.0.1:*`` picks a free
    port; :attr:`endpoint` is the bound address); ``workers`` the workers'
    endpoints (a list, or one comma-separated string). Use :meth:`serve_forever`
    (blocks; :meth:`stop` from another thread or a signal handler ends it) or
    :meth:`start` (binds, then routes in a background thread) / :meth:`stop`.

    Raises ConfigError before any socket is created for a non-loopback ``bind``
    without CURVE or ``insecure``, for a bad config, a bad worker list, or an
    unreadable key.
    """

    _thread_name = "sigstream-router"

    def __init__(self, bind: str = "tcp://127.0.0.1:5555",
                 workers: Iterable[str] | str = (), config: RouterConfig | None = None) -> None:
        cfg = config or RouterConfig()
        cfg.validate()
        curve = CurveServer.configure(cfg.curve_secret_file, cfg.curve_clients_dir, "router")
        self.counters = RouterStats()
        self.front = Front(bind, SocketOptions(hwm=cfg.hwm, linger=cfg.linger,
                                               max_message_bytes=cfg.max_message_bytes,
                                               router_mandatory=True),
                           self.counters, curve=curve, insecure=cfg.insecure)
        self._worker_curve = _worker_curve(cfg.curve_worker_key, curve)
        endpoints = _parse_workers(workers)
        self.config = cfg
        self.bind_address = bind
        self.ring = HashRing(endpoints, cfg.vnodes)
        self._workers = [_Worker(e) for e in endpoints]
        self._by_endpoint = {w.endpoint: w for w in self._workers}

        self._ctx: zmq.Context | None = None
        self._poller = zmq.Poller()
        self._init_lifecycle()

        self._streams: dict[tuple[bytes, int], _Stream] = {}
        self._per_client: dict[bytes, int] = {}  # identity -> streams it holds
        self._rids: dict[int, _Stream] = {}
        self._next_rid = 1
        self._next_token = 1
        self._probe_seq = 0

    # -- sockets ----------------------------------------------------------------------------------
    def bind(self) -> str:
        """Bind the client socket and connect to the workers; returns the bound endpoint."""
        if self.front.sock is not None:
            return self.front.endpoint or self.bind_address
        cfg = self.config
        ctx = zmq.Context()
        self._ctx = ctx
        try:
            endpoint = self.front.open(ctx)
            self._poller.register(self.front.sock, zmq.POLLIN)
            now = time.monotonic()
            for w in self._workers:
                self._open(w)
                w.last_heard = now
                w.connect_deadline = now + cfg.connect_timeout
        except BaseException:
            self._close()
            raise
        return endpoint

    def _open(self, w: _Worker) -> None:
        """A fresh DEALER (and monitor) connected to worker ``w``; closes any previous one."""
        self._close_worker(w)
        assert self._ctx is not None
        curve = self._worker_curve
        sock = make_socket(self._ctx, zmq.DEALER, w.endpoint,
                           SocketOptions(hwm=self.config.hwm, linger=0), curve)
        try:
            monitor = sock.get_monitor_socket(_MONITOR_EVENTS if curve is None
                                              else _MONITOR_EVENTS_CURVE)
            try:
                connect_socket(sock, w.endpoint, "worker")
            except ConfigError:
                sock.disable_monitor()
                monitor.close(0)
                raise
        except BaseException:
            sock.close(0)
            raise
        w.sock, w.monitor, w.connected = sock, monitor, False
        self._poller.register(sock, zmq.POLLIN)
        self._poller.register(monitor, zmq.POLLIN)

    def _close_worker(self, w: _Worker) -> None:
        for sock in (w.monitor, w.sock):
            if sock is not None:
                self._poller.unregister(sock)
        close_monitored(w.sock, w.monitor, 0)
        w.sock = w.monitor = None
        w.connected = False

    def _close(self) -> None:
        for w in self._workers:
            self._close_worker(w)
        if self.front.sock is not None:
            try:
                self._poller.unregister(self.front.sock)
            except KeyError:
                pass
        self.front.close()
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    # -- running ----------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Route until :meth:`stop`; then wait for replies in flight (drain_timeout), close."""
        self.bind()
        cfg = self.config
        poll_ms = max(1, int(cfg.poll_interval * 1000))
        self._start_housekeeping()
        self._serving.set()
        try:
            while not self._stop.is_set():
                self._iteration(poll_ms)
            deadline = time.monotonic() + cfg.drain_timeout
            while self._in_flight() and time.monotonic() < deadline:
                self._iteration(poll_ms)
            for w in self._workers:
                for p in list(w.pending.values()):
                    self._drop_pending(p)
                    self._reply_pending_error(p, "stopping",
                                              "the router stopped before the worker answered")
        finally:
            self._serving.clear()
            self._close()

    def _in_flight(self) -> int:
        return sum(len(w.pending) for w in self._workers)

    # -- one loop iteration -----------------------------------------------------------------------
    def _iteration(self, poll_ms: int) -> int:
        try:
            events = dict(self._poller.poll(poll_ms))
        except zmq.ZMQError as err:  # pragma: no cover - EINTR from a signal
            if err.errno != errno.EINTR:
                raise
            events = {}
        n = 0
        for w in self._workers:
            if w.sock is not None and w.sock in events:
                n += self._drain_worker(w)
            if w.monitor is not None and w.monitor in events:
                self._drain_monitor(w)
        if self.front.sock is not None and self.front.sock in events:
            n += self._drain_front()
        self._check_workers(time.monotonic())
        self._housekeeping()
        return n

    def _drain_front(self) -> int:
        front = self.front.sock
        assert front is not None
        n = 0
        while n < self.config.max_batch:
            try:
                parts = front.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            try:
                self._on_request(parts)
            except Exception as err:  # never let one message stop the router
                self.front.reply_error(parts[:1], None, "internal", f"router error: {err}")
        return n

    def _drain_worker(self, w: _Worker) -> int:
        n = 0
        while w.sock is not None and n < self.config.max_batch:
            try:
                parts = w.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            try:
                self._on_reply(w, parts)
            except Exception:  # a reply we cannot route is dropped, never fatal
                self.counters.bad_replies += 1
        return n

    def _drain_monitor(self, w: _Worker) -> None:
        while w.monitor is not None:
            try:
                event = recv_monitor_message(w.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind = event["event"]
            if kind in (zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_SUCCEEDED):
                w.connected = w.ever_connected = True
            elif kind & HANDSHAKE_FAILED:
                w.connected = False
                if w.alive:
                    self._declare_dead(w, _CURVE_FAILED, time.monotonic())
                    return
            elif kind == zmq.EVENT_DISCONNECTED:
                curve_never_up = self._worker_curve is not None and not w.connected
                w.connected = False
                if w.alive:
                    self._drain_worker(w)  # replies that arrived before the drop still count
                    self._declare_dead(w, _CURVE_FAILED if curve_never_up else "connection lost",
                                       time.monotonic())
                    return

    # -- requests ---------------------------------------------------------------------------------
    def _on_request(self, parts: list[bytes]) -> None:
        self.counters.received += 1
        envelope, body = split_envelope(parts)
        if len(body) != 2:  # answered here; the stream is named when the header is valid
            try:
                wire.decode(body)
            except WireError as err:
                self.front.reply_error(envelope, err.header, err.reason, err.message)
            return
        try:
            h = wire.decode_header(body[0])
        except WireError as err:
            if (err.header is None or err.header.is_stats
                    or (envelope[0], err.header.stream_id) not in self._streams):
                # answered here: a stream the router does not hold gets no state for it
                self.front.reply_error(envelope, err.header, err.reason, err.message)
                return
            h = err.header  # the worker answers with the same error, in the stream's order
        else:
            if h.is_stats:
                try:
                    wire.decode(body)
                except WireError as err:
                    self.front.reply_error(envelope, err.header, err.reason, err.message)
                    return
                self.front.reply_stats(envelope, h, self.stats())
                return
        self._forward(envelope, h, body[0], body[1])

    def _forward(self, envelope: list[bytes], h: Header, raw: bytes, payload: bytes) -> None:
        now = time.monotonic()
        key = (envelope[0], h.stream_id)
        stream = self._streams.get(key)
        if stream is None:
            if len(self._streams) >= self.config.max_streams:
                self.front.reply_error(envelope, h, "too_many_streams",
                                       f"the router holds {self.config.max_streams} streams; "
                                       "end some (END flag) or try later")
                return
            held = self._per_client.get(envelope[0], 0)
            if held >= self.config.quota:
                self.front.reply_error(envelope, h, "client_quota",
                                       f"this client holds {held} streams, its quota; end "
                                       "some (END flag) or try later")
                return
            self._per_client[envelope[0]] = held + 1
            stream = self._streams[key] = _Stream(envelope[0], h.stream_id, now)
        stream.last_seen = now
        w = stream.worker
        if w is None or not w.alive:
            w = self._assign(stream)
            if w is None:
                # its state is gone: say so (RESET) on every reply until served
                self.front.reply_error(envelope, h, "no_workers",
                                       "no worker is alive; retry later",
                                       reset=stream.reset_next)
                if not stream.pending and not stream.reset_next:
                    self._forget(stream)
                return
        p = _Pending(self._next_token, stream, envelope, h, raw, payload, now)
        self._next_token += 1
        if stream.reset_next:
            p.forced_reset, stream.reset_next = True, False
        stream.pending.append(p)
        self._send_to(w, p)

    def _assign(self, stream: _Stream) -> _Worker | None:
        """Put ``stream`` on its ring owner under a fresh router id; None if no worker is alive."""
        self._unassign(stream)
        name = self.ring.lookup(stream.key)
        if name is None:
            return None
        w = self._by_endpoint[name]
        stream.rid = self._next_rid
        self._next_rid += 1
        self._rids[stream.rid] = stream
        stream.worker = w
        w.streams.add(stream)
        return w

    def _unassign(self, stream: _Stream) -> None:
        if stream.rid:
            self._rids.pop(stream.rid, None)
            stream.rid = 0
        if stream.worker is not None:
            stream.worker.streams.discard(stream)
            stream.worker = None

    def _forget(self, stream: _Stream) -> None:
        self._unassign(stream)
        if self._streams.pop((stream.identity, stream.stream_id), None) is not None:
            n = self._per_client.get(stream.identity, 0) - 1
            if n > 0:
                self._per_client[stream.identity] = n
            else:
                self._per_client.pop(stream.identity, None)

    def _send_to(self, w: _Worker, p: _Pending) -> bool:
        """Send ``p`` to ``w`` under its stream's router id; on a full queue answer an error."""
        p.worker = w
        w.pending[p.token] = p
        header = wire.restamp(p.raw, p.stream.rid, wire.RESET if p.forced_reset else 0)
        assert w.sock is not None
        try:
            w.sock.send_multipart([header, p.payload], zmq.NOBLOCK)
        except zmq.Again:
            self._drop_pending(p)
            self._reply_pending_error(p, "worker_busy", f"worker {w.endpoint} has "
                                      f"{self.config.hwm} messages queued; retry later")
            return False
        w.forwarded += 1
        self.counters.forwarded += 1
        return True

    def _drop_pending(self, p: _Pending) -> None:
        if p.worker is not None:
            p.worker.pending.pop(p.token, None)
        try:
            p.stream.pending.remove(p)
        except ValueError:
            pass

    # -- replies ----------------------------------------------------------------------------------
    def _on_reply(self, w: _Worker, parts: list[bytes]) -> None:
        now = time.monotonic()
        w.last_heard = now
        w.ever_connected = True
        if len(parts) != 2:
            self.counters.bad_replies += 1
            return
        try:
            h = wire.decode_header(parts[0])
        except WireError as err:
            if err.header is None:
                self.counters.bad_replies += 1
                return
            h = err.header
        if h.is_stats and not h.is_error:
            self._probe_answered(w, now)
            return
        stream = self._rids.get(h.stream_id)
        if stream is None or stream.worker is not w:
            self.counters.stale_replies += 1
            return
        p = next((q for q in stream.pending if q.header.seq == h.seq), None)
        if p is None:
            self.counters.stale_replies += 1
            return
        self._drop_pending(p)
        header = wire.restamp(parts[0], stream.stream_id, wire.RESET if p.forced_reset else 0)
        w.replied += 1
        self.counters.replied += 1
        self.front.send(p.envelope + [header, parts[1]])
        if not h.is_error:
            stream.state_seen = True
            if h.end and not stream.pending:
                self._forget(stream)  # the worker freed it too
        elif not stream.state_seen and not stream.pending and not stream.reset_next:
            self._forget(stream)  # the worker refused a stream it never held: keep nothing

    def _reply_pending_error(self, p: _Pending, code: str, message: str) -> None:
        """An ERROR in place of a request's reply; RESET if the reply would have carried it."""
        self.front.reply_error(p.envelope, p.header, code, message, reset=p.forced_reset)

    # -- health -----------------------------------------------------------------------------------
    def _probe(self, w: _Worker, now: float) -> None:
        self._probe_seq += 1
        w.probe_at = now
        w.probes += 1
        msg = wire.encode_control(Header(stream_id=_PROBE_ID, seq=self._probe_seq,
                                         flags=wire.STATS, timestamp_ns=time.time_ns()))
        if w.sock is not None:
            try:
                w.sock.send_multipart(msg, zmq.NOBLOCK)
            except zmq.Again:
                pass  # unanswered: counts against the worker

    def _probe_answered(self, w: _Worker, now: float) -> None:
        w.probe_at = None
        if w.alive:
            return
        w.alive = True
        w.rejoins += 1
        w.reason = ""
        w.last_heard = now
        self.ring.add(w.endpoint)
        self._log(f"worker {w.endpoint} answers again; back on the ring")

    def _check_workers(self, now: float) -> None:
        cfg = self.config
        for w in self._workers:
            if not w.alive:
                if cfg.rejoin_interval and now >= w.next_rejoin:
                    w.next_rejoin = now + max(cfg.rejoin_interval, cfg.probe_timeout)
                    try:
                        self._open(w)  # a fresh socket: nothing stale queued, nothing late back
                    except ConfigError:
                        continue
                    self._probe(w, now)
                continue
            if not w.ever_connected and now > w.connect_deadline:
                self._declare_dead(w, f"not connected within {cfg.connect_timeout:g} s", now)
                continue
            if w.probe_at is not None:
                if w.last_heard >= w.probe_at:
                    w.probe_at = None
                elif now - w.probe_at > cfg.probe_timeout:
                    self._declare_dead(w, f"no answer to a probe within {cfg.probe_timeout:g} s "
                                          f"({len(w.pending)} requests in flight)", now)
                    continue
            if not w.pending:
                continue
            oldest = next(iter(w.pending.values()))
            if (w.probe_at is None and now - oldest.sent_at > cfg.worker_timeout
                    and now - w.last_heard > cfg.worker_timeout):
                self._probe(w, now)
            if cfg.request_timeout:
                while w.pending:
                    p = next(iter(w.pending.values()))
                    if now - p.sent_at <= cfg.request_timeout:
                        break
                    self._drop_pending(p)
                    self._reply_pending_error(p, "timeout", f"worker {w.endpoint} did not "
                                              f"answer within {cfg.request_timeout:g} s")

    def _declare_dead(self, w: _Worker, reason: str, now: float) -> None:
        """Take ``w`` off the ring and move its streams (with their requests in flight)."""
        if not w.alive:
            return
        w.alive = False
        if w.ever_connected:  # a worker that never came up is not a failover
            w.deaths += 1
            self.counters.failovers += 1
        w.reason = reason
        w.probe_at = None
        w.next_rejoin = now + self.config.rejoin_interval
        self.ring.remove(w.endpoint)
        self._close_worker(w)  # drops whatever is still queued for it
        streams = sorted(w.streams, key=lambda s: s.rid)
        w.pending.clear()
        for p in (p for s in streams for p in s.pending):
            p.worker = None
        self._log(f"worker {w.endpoint} is dead ({reason}); moving {len(streams)} stream(s)")
        for stream in streams:
            self._move(stream, now)

    def _move(self, stream: _Stream, now: float) -> None:
        """Re-home a dead worker's stream; its requests in flight follow, the first with RESET."""
        need_reset = (stream.state_seen or stream.reset_next
                      or any(p.forced_reset for p in stream.pending))
        stream.state_seen = False
        w = self._assign(stream)
        if w is None:
            pending = list(stream.pending)
            stream.pending.clear()
            for p in pending:
                p.forced_reset = need_reset
                self._reply_pending_error(p, "no_workers", "the stream's worker died and no "
                                                           "other worker is alive")
            stream.reset_next = need_reset
            if not need_reset:
                self._forget(stream)
            return
        self.counters.streams_moved += 1
        if not stream.pending:
            stream.reset_next = need_reset
            return
        stream.reset_next = False
        for i, p in enumerate(list(stream.pending)):
            p.forced_reset = need_reset and i == 0
            p.sent_at = now
            self.counters.resent += 1
            self._send_to(w, p)

    def _sweep(self, now: float) -> None:
        idle = self.config.idle_timeout
        if idle <= 0:
            return
        stale = [s for s in self._streams.values()
                 if not s.pending and now - s.last_seen > idle]
        for s in stale:
            self._forget(s)
        self.counters.streams_expired += len(stale)

    def _log(self, message: str) -> None:
        if self.config.log_events:
            print(f"route: {message}", file=sys.stderr, flush=True)

    # -- introspection ----------------------------------------------------------------------------
    def assignments(self) -> dict[tuple[bytes, int], str | None]:
        """(client identity, stream id) -> worker endpoint (None: no worker). A snapshot."""
        streams = list(self._streams.values())
        return {(s.identity, s.stream_id): (s.worker.endpoint if s.worker else None)
                for s in streams}

    def stats(self) -> dict:
        """Counters as a JSON-ready dict (the STATS reply)."""
        workers = [{
            "endpoint": w.endpoint,
            "alive": w.alive,
            "connected": w.connected,
            "streams": len(w.streams),
            "in_flight": len(w.pending),
            "forwarded": w.forwarded,
            "replied": w.replied,
            "failovers": w.deaths,
            "rejoins": w.rejoins,
            "probes": w.probes,
            "reason": w.reason or None,
        } for w in self._workers]
        k = self.counters
        errors = dict(k.rejected)
        return {
            "schema": "sigstream-router-stats/1",
            "uptime_s": k.uptime_s(),
            "streams": len(self._streams),
            "workers_alive": sum(w["alive"] for w in workers),
            "workers": workers,
            "requests": k.received,
            "forwarded": k.forwarded,
            "replied": k.replied,
            "in_flight": sum(w["in_flight"] for w in workers),
            "failovers": k.failovers,
            "streams_moved": k.streams_moved,
            "resent": k.resent,
            "streams_expired": k.streams_expired,
            "errors": errors,
            "errors_total": sum(errors.values()),
            "stale_replies": k.stale_replies,
            "bad_replies": k.bad_replies,
            "replies_dropped": k.replies_dropped,
            "unroutable": k.unroutable,
        }

    def stats_line(self) -> str:
        """One line for a terminal."""
        k = self.counters
        alive = sum(w.alive for w in self._workers)
        return (f"route: streams {len(self._streams)}  workers {alive}/{len(self._workers)} "
                f"alive  forwarded {k.forwarded}  replied {k.replied}  failovers "
                f"{k.failovers}  errors {k.rejected_total}")


def _worker_curve(worker_key: str | None, own: CurveServer | None) -> CurveClient | None:
    """CURVE towards the workers: their public key, and the router's own key pair (its
    client-socket certificate if it has one, else a fresh pair)."""
    if worker_key is None:
        return None
    if own is None:
        return CurveClient.load(worker_key, what="worker")
    return CurveClient(load_public_key(worker_key, "worker"), own.public, own.secret)


def _parse_workers(workers: Iterable[str] | str) -> list[str]:
    items = workers.split(",") if isinstance(workers, str) else list(workers)
    endpoints = [str(e).strip() for e in items if str(e).strip()]
    if not endpoints:
        raise ConfigError("give at least one worker endpoint, e.g. tcp://127.0.0.1:5601")
    for e in endpoints:
        if "://" not in e:
            raise ConfigError(f"bad worker endpoint {e!r}; expected e.g. tcp://127.0.0.1:5601")
    dupes = sorted({e for e in endpoints if endpoints.count(e) > 1})
    if dupes:
        raise ConfigError(f"worker endpoint(s) given twice: {', '.join(dupes)}")
    return endpoints
