"""The server's per-stream sessions as a pure state machine: no sockets, no model.

A session is one remote stream, keyed by (client identity, stream id). The
:class:`SessionTable` decides what each message of a stream means for it and keeps
the sequence bookkeeping; the server only carries the decisions out (stepping the
model, resetting or freeing a state row, replying). Both of the server's paths
consult it: the general path through :meth:`SessionTable.admit`, the fast path of
steady-state chunks through :meth:`SessionTable.advance`.

:meth:`~SessionTable.admit` takes a header that passed validation (wire format and
the model's channels, hop and rate) and returns a :class:`Verdict`:

========================================  ==================================================
the message                               verdict
========================================  ==================================================
END control message, no session           ACK; nothing is created (closing what is not held)
first message, ``max_streams`` reached    REJECT ``too_many_streams``
first message, the client holds           REJECT ``client_quota`` (other clients are still
``max_streams_per_client``                served)
first message of a stream                 ``created`` (fresh state), any sequence number;
                                          ``reset`` too when that number is not 0 and the
                                          message is no START: a stream that continues
                                          where this server holds nothing (its session
                                          expired, the server restarted, the client
                                          reconnected under a new identity) starts afresh,
                                          and its reply must say so (RESET)
START on a live session                   ``restart``: ``reset``, any sequence number
sequence number = the one expected        continue
sequence number > expected                a gap: ``missing`` counted; ``reset`` with
                                          ``reset_on_gap``
sequence number = expected - 1            REJECT ``duplicate`` (nothing changes)
sequence number < expected - 1            REJECT ``out_of_order`` (nothing changes)
RESET flag on a live session              ``reset``
END flag                                  ``free`` once answered (:meth:`~SessionTable.close`)
samples / a control message               STEP (model call) / ACK (flags echoed)
========================================  ==================================================

Whatever is not rejected sets the next expected sequence number to ``seq + 1`` (modulo
2**64: sequence numbers are u64, and 2**64 - 1 is followed by 0) and
the session's ``last_seen`` to ``now``. :meth:`~SessionTable.advance` is the fast
path: it accepts only the expected sequence number of a live session (anything else
goes through ``admit``); :meth:`~SessionTable.rollback` gives a sequence number back
when its chunk is rejected after all (non-finite samples found in a batch).
:meth:`~SessionTable.expire` removes sessions idle longer than ``idle_timeout``.
:class:`SessionCounters` counts what happened (opened, closed, expired, resets,
gaps, missing); rejections are counted by whoever sends the ERROR reply.

Per-client policy belongs here too: it is a decision on a key and a header. A client
(one identity) holds at most ``max_streams_per_client`` sessions, so one client cannot
fill the table and deny service to the others.
"""

from __future__ import annotations

import enum
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from sigstream.stream.net.wire import SEQ_MODULUS, Header

__all__ = ["Action", "Key", "Session", "SessionCounters", "SessionSettings", "SessionTable",
           "Verdict"]

Key = tuple[bytes, int]
"""(client identity, stream id)."""


@dataclass(frozen=True)
class SessionSettings:
    """max_streams: sessions held at once; max_streams_per_client: sessions one client
    identity holds at once (0: half of max_streams); reset_on_gap: a jump in sequence
    numbers resets the stream; idle_timeout: seconds without a message before a session
    expires (0: never)."""

    max_streams: int = 4096
    reset_on_gap: bool = False
    idle_timeout: float = 60.0
    max_streams_per_client: int = 0

    @property
    def quota(self) -> int:
        """Sessions one client may hold."""
        return self.max_streams_per_client or max(1, self.max_streams // 2)


@dataclass
class SessionCounters:
    """streams_opened / closed (END) / expired (idle); resets: state resets (restart,
    RESET, gap with reset_on_gap); gaps: sequence jumps; missing: numbers skipped."""

    streams_opened: int = 0
    streams_closed: int = 0
    streams_expired: int = 0
    resets: int = 0
    gaps: int = 0
    missing: int = 0


class Session:
    """One stream's bookkeeping. ``row`` belongs to the caller (the server's state row)."""

    __slots__ = ("key", "row", "next_seq", "last_seen", "chunks")

    def __init__(self, key: Key, now: float) -> None:
        self.key = key
        self.row = -1
        self.next_seq = 0
        self.last_seen = now
        self.chunks = 0

    def __repr__(self) -> str:
        return (f"Session(key={self.key!r}, row={self.row}, next_seq={self.next_seq}, "
                f"last_seen={self.last_seen})")


class Action(enum.Enum):
    STEP = "step"  # samples for the model, then a reply with its output
    ACK = "ack"  # a control message, answered with its flags echoed
    REJECT = "reject"  # an ERROR reply; the session is untouched


class Verdict(NamedTuple):
    """What :meth:`SessionTable.admit` decided for one message.

    session: the stream's session (None for a rejection and for an END on a stream
    that is not held); created: a new session (give it a fresh state); restart:
    START on a live session; reset: reset its state before this message (restart,
    RESET flag, or a gap with reset_on_gap); missing: sequence numbers skipped (0:
    no gap); free: END, free the session once answered; code / message: the reason
    of a rejection.
    """

    action: Action
    session: Session | None = None
    created: bool = False
    restart: bool = False
    reset: bool = False
    missing: int = 0
    free: bool = False
    code: str = ""
    message: str = ""


class SessionTable:
    """The live sessions and the decisions on their messages; see the module docstring."""

    def __init__(self, settings: SessionSettings | None = None,
                 counters: SessionCounters | None = None) -> None:
        self.settings = settings or SessionSettings()
        self.counters = counters if counters is not None else SessionCounters()
        self._sessions: dict[Key, Session] = {}
        self._per_client: dict[bytes, int] = {}  # identity -> sessions it holds

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, key: object) -> bool:
        return key in self._sessions

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def get(self, key: Key) -> Session | None:
        return self._sessions.get(key)

    # -- decisions --------------------------------------------------------------------------------
    def admit(self, key: Key, header: Header, now: float) -> Verdict:
        """Decide what ``header`` (a validated message of stream ``key``) means; apply it."""
        h = header
        action = Action.ACK if h.is_control else Action.STEP
        session = self._sessions.get(key)
        if session is None:
            if h.is_control and h.end and not h.start:
                return Verdict(Action.ACK)  # closing a stream that holds nothing
            limit = self.settings.max_streams
            if len(self._sessions) >= limit:
                return Verdict(Action.REJECT, code="too_many_streams",
                               message=f"the server holds {limit} streams; end some (END "
                                       "flag) or try later")
            quota = self.settings.quota
            held = self._per_client.get(key[0], 0)
            if held >= quota:
                return Verdict(Action.REJECT, code="client_quota",
                               message=f"this client holds {held} streams, its quota; end "
                                       "some (END flag) or try later")
            self._per_client[key[0]] = held + 1
            session = self._sessions[key] = Session(key, now)
            self.counters.streams_opened += 1
            lost = h.seq != 0 and not h.start  # it continues a state this server lacks
            if lost:
                self.counters.resets += 1
            verdict = Verdict(action, session, created=True, reset=lost, free=h.end)
        elif h.start:  # a restart: fresh state, any sequence number
            self.counters.resets += 1
            verdict = Verdict(action, session, restart=True, reset=True, free=h.end)
        else:
            expected = session.next_seq
            if h.seq == (expected - 1) % SEQ_MODULUS or h.seq < expected:
                code = ("duplicate" if h.seq == (expected - 1) % SEQ_MODULUS
                        else "out_of_order")
                return Verdict(Action.REJECT, code=code,
                               message=f"sequence number {h.seq}; expected {expected}")
            missing = h.seq - expected
            if missing:
                self.counters.gaps += 1
                self.counters.missing += missing
            reset = h.reset or bool(missing and self.settings.reset_on_gap)
            if reset:
                self.counters.resets += 1
            verdict = Verdict(action, session, reset=reset, missing=missing, free=h.end)
        session.next_seq = (h.seq + 1) % SEQ_MODULUS  # u64: 2**64 - 1 is followed by 0
        session.last_seen = now
        return verdict

    def advance(self, key: Key, seq: int, now: float) -> Session | None:
        """The fast path: the live session of ``key`` if ``seq`` is the number it expects
        (then accepted, as :meth:`admit` would for a chunk without flags), else None."""
        session = self._sessions.get(key)
        if session is None or seq != session.next_seq:
            return None
        session.next_seq = (seq + 1) % SEQ_MODULUS
        session.last_seen = now
        return session

    def rollback(self, session: Session, seq: int) -> None:
        """The chunk ``seq`` accepted last was rejected after all: expect ``seq`` again."""
        session.next_seq = seq

    # -- freeing ----------------------------------------------------------------------------------
    def close(self, sessions: Iterable[Session]) -> None:
        """Free sessions that ended (END answered)."""
        for s in sessions:
            if self._sessions.pop(s.key, None) is not None:
                self._release(s.key)
                self.counters.streams_closed += 1

    def _release(self, key: Key) -> None:
        n = self._per_client.get(key[0], 0) - 1
        if n > 0:
            self._per_client[key[0]] = n
        else:
            self._per_client.pop(key[0], None)

    def held_by(self, identity: bytes) -> int:
        """Sessions the client ``identity`` holds."""
        return self._per_client.get(identity, 0)

    def expire(self, now: float, busy: Container[Key] = ()) -> list[Session]:
        """Remove and return the sessions idle for longer than ``idle_timeout`` (none when
        it is 0), except those whose key is in ``busy`` (messages still queued)."""
        idle = self.settings.idle_timeout
        if idle <= 0:
            return []
        stale = [s for key, s in self._sessions.items()
                 if now - s.last_seen > idle and key not in busy]
        for s in stale:
            del self._sessions[s.key]
            self._release(s.key)
        self.counters.streams_expired += len(stale)
        return stale
