"""Clients of a :class:`~sigstream.stream.net.server.Server` (or a router in front of servers).

N: frames, C: channels.

:class:`Client` / :class:`AsyncClient` talk to the server over a DEALER socket
speaking wire format v1 (:mod:`sigstream.stream.net.wire`): send chunks of any number
of streams, receive the model's output for each, ask for stats. Sends never wait for
replies; replies come back per stream in the order sent. ``server_public_key`` turns
on CURVE (see :class:`~sigstream.stream.net.sockets.CurveClient`). Replies are parsed
with :func:`wire.decode`; nothing is unpickled.

Lost replies are visible: a reply echoes its request's stream id and sequence number, and
a stream's replies come back in the order sent, so a reply that skips requests sent
before it means their replies were dropped (a server drops replies to a client whose
queue is full, at the high-water mark). :attr:`Client.lost` counts them per stream and
:attr:`Client.lost_total` over all streams; resend what you need or reset the stream.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import numpy as np
import zmq

from sigstream.stream.net import wire
from sigstream.stream.net.sockets import CurveClient, SocketOptions, open_socket
from sigstream.stream.net.wire import Header, WireError

__all__ = ["Client", "AsyncClient"]


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
        self._curve = (None if server_public_key is None
                       else CurveClient.create(server_public_key, public_key, secret_key))
        self._backlog: collections.deque = collections.deque()
        # per stream: the sequence numbers sent and not yet answered, in order
        self._inflight: dict[int, collections.deque] = {}
        self._inflight_set: dict[int, set] = {}
        self.lost: dict[int, int] = {}  # stream id -> replies dropped before reaching us
        self.lost_total = 0

    def _open(self, ctx: Any, hwm: int, send_timeout: float | None = None) -> Any:
        """A connected DEALER of ``ctx`` (a ``zmq.asyncio`` one for :class:`AsyncClient`)."""
        options = SocketOptions(hwm=hwm, linger=0.5, send_timeout=send_timeout)
        sock, _ = open_socket(ctx, zmq.DEALER, self.endpoint, "connect", options, self._curve)
        return sock

    def _message(self, chunk: Any, start: bool, end: bool, reset: bool,
                 stream_id: int | None, seq: int | None,
                 timestamp_ns: int | None) -> tuple[Header, list[Any]]:
        sid = self.stream_id if stream_id is None else int(stream_id)
        if seq is None:
            seq = self._next_seq.get(sid, 0)
        self._next_seq[sid] = (seq + 1) % wire.SEQ_MODULUS
        flags = (wire.START if start else 0) | (wire.END if end else 0) | \
            (wire.RESET if reset else 0)
        self._inflight.setdefault(sid, collections.deque()).append(seq)
        self._inflight_set.setdefault(sid, set()).add(seq)
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

    def unanswered(self, stream_id: int | None = None) -> int:
        """Requests of a stream (default: the client's) sent and not answered yet: in
        flight, or dropped after the last reply received (visible once a later reply of
        the stream arrives)."""
        sid = self.stream_id if stream_id is None else int(stream_id)
        return len(self._inflight.get(sid, ()))

    def _answered(self, h: Header) -> None:
        """Account for the reply ``h``: requests of its stream sent before it and still
        unanswered lost their replies."""
        pending = self._inflight_set.get(h.stream_id)
        if not pending or h.seq not in pending:
            return  # a stats reply, or an answer to a message sent raw
        queue = self._inflight[h.stream_id]
        dropped = 0
        while queue:
            seq = queue.popleft()
            pending.discard(seq)
            if seq == h.seq:
                break
            dropped += 1
        if dropped:
            self.lost[h.stream_id] = self.lost.get(h.stream_id, 0) + dropped
            self.lost_total += dropped

    def _parse(self, parts: list[bytes]) -> tuple[Header, Any]:
        if parts and len(parts) == 3 and len(parts[0]) == 0:
            parts = parts[1:]  # a REQ-style empty delimiter
        h, data = wire.decode(parts, max_frames=1 << 31, allow_non_finite=True)
        if not h.is_stats:
            self._answered(h)
        if h.is_control:
            if h.is_error or h.is_stats:
                return h, wire.parse_json(data)
            return h, np.empty((0, h.channels), dtype=np.float32)
        return h, data


_ZERO_COPY_BYTES = 1 << 16


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
        # a DEALER with no connected peer blocks in send: hence the send timeout
        self._sock = self._open(context or zmq.Context.instance(), hwm, send_timeout)

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
        self._sock = self._open(context or zmq.asyncio.Context.instance(), hwm)

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

