"""Tests for sigstream.stream.net.sessions: every decision of the session state machine.

No sockets and no model: headers in, verdicts and counters out.
"""

from __future__ import annotations

import dataclasses

import pytest

from sigstream.stream.net import wire
from sigstream.stream.net.sessions import (
    Action,
    SessionCounters,
    SessionSettings,
    SessionTable,
    Verdict,
)
from sigstream.stream.net.wire import Header

A, B = (b"client-a", 1), (b"client-b", 1)


def chunk(seq: int, flags: int = 0, stream_id: int = 1) -> Header:
    return Header(stream_id=stream_id, seq=seq, flags=flags, channels=1, frames=4)


def control(seq: int, flags: int) -> Header:
    return Header(stream_id=1, seq=seq, flags=flags, dtype=wire.DTYPE_CONTROL)


def counts(table: SessionTable) -> dict[str, int]:
    return dataclasses.asdict(table.counters)


def test_first_message_creates_a_session_with_any_sequence_number() -> None:
    table = SessionTable()
    v = table.admit(A, chunk(7), now=1.0)
    # a stream that continues (7, no START) where nothing is held: fresh state, and the
    # verdict says it was reset, so that the reply carries RESET
    assert v == Verdict(Action.STEP, v.session, created=True, reset=True)
    s = v.session
    assert s is not None and s.key == A and s.next_seq == 8 and s.last_seen == 1.0
    assert A in table and len(table) == 1 and table.get(A) is s
    assert counts(table) == dict(streams_opened=1, streams_closed=0, streams_expired=0,
                                 resets=1, gaps=0, missing=0)
    # START or RESET on a new session: nothing to reset, it is fresh
    v = table.admit(B, chunk(0, wire.START | wire.RESET), now=1.0)
    assert v.created and not v.reset and not v.restart
    v = table.admit((b"c", 1), chunk(0), now=1.0)  # a new stream from 0: nothing lost
    assert v.created and not v.reset
    v = table.admit((b"d", 1), chunk(9, wire.START), now=1.0)  # a START from any number
    assert v.created and not v.reset
    assert table.counters.resets == 1


def test_the_expected_sequence_number_continues() -> None:
    table = SessionTable()
    s = table.admit(A, chunk(0), 1.0).session
    v = table.admit(A, chunk(1), 2.0)
    assert v == Verdict(Action.STEP, s)
    assert s.next_seq == 2 and s.last_seen == 2.0


def test_start_on_a_live_session_restarts_it_with_any_sequence_number() -> None:
    table = SessionTable()
    s = table.admit(A, chunk(5), 1.0).session
    v = table.admit(A, chunk(0, wire.START), 2.0)  # older than expected: fine on START
    assert v == Verdict(Action.STEP, s, restart=True, reset=True)
    assert s.next_seq == 1
    v = table.admit(A, chunk(100, wire.START | wire.RESET), 3.0)  # one reset, not two
    assert v.restart and v.reset and v.missing == 0
    assert table.counters.resets == 3 and table.counters.gaps == 0  # 5 without START: 1


def test_reset_flag_resets_a_live_session() -> None:
    table = SessionTable()
    s = table.admit(A, chunk(0), 1.0).session
    v = table.admit(A, chunk(1, wire.RESET), 2.0)
    assert v == Verdict(Action.STEP, s, reset=True)
    assert table.counters.resets == 1


@pytest.mark.parametrize("reset_on_gap", [False, True])
def test_a_gap_counts_the_missing_numbers_and_resets_when_asked(reset_on_gap: bool) -> None:
    table = SessionTable(SessionSettings(reset_on_gap=reset_on_gap))
    s = table.admit(A, chunk(0), 1.0).session
    v = table.admit(A, chunk(4), 2.0)
    assert v == Verdict(Action.STEP, s, reset=reset_on_gap, missing=3)
    assert s.next_seq == 5
    assert (table.counters.gaps, table.counters.missing) == (1, 3)
    assert table.counters.resets == (1 if reset_on_gap else 0)
    v = table.admit(A, chunk(7, wire.RESET), 3.0)  # a gap and RESET: one reset
    assert v.reset and v.missing == 2
    assert table.counters.resets == (2 if reset_on_gap else 1)
    assert (table.counters.gaps, table.counters.missing) == (2, 5)


def test_duplicate_and_out_of_order_are_rejected_and_change_nothing() -> None:
    table = SessionTable()
    s = table.admit(A, chunk(0), 1.0).session
    table.admit(A, chunk(1), 2.0)
    before = counts(table)
    v = table.admit(A, chunk(1), 3.0)
    assert v == Verdict(Action.REJECT, code="duplicate", message="sequence number 1; expected 2")
    v = table.admit(A, chunk(0, wire.RESET | wire.END), 4.0)
    assert v.action is Action.REJECT and v.code == "out_of_order" and v.session is None
    assert s.next_seq == 2 and s.last_seen == 2.0 and counts(table) == before
    assert A in table  # the END of a rejected message frees nothing


def test_end_frees_after_the_reply_and_an_end_for_nothing_is_acknowledged() -> None:
    table = SessionTable()
    s = table.admit(A, chunk(0), 1.0).session
    v = table.admit(A, chunk(1, wire.END), 2.0)
    assert v == Verdict(Action.STEP, s, free=True)
    assert A in table  # freed only when the caller has answered
    table.close([s])
    assert A not in table and table.counters.streams_closed == 1
    table.close([s])  # twice: counted once
    assert table.counters.streams_closed == 1
    # a bare END for a stream the table does not hold: acknowledged, nothing created
    v = table.admit(A, control(2, wire.END), 3.0)
    assert v == Verdict(Action.ACK)
    assert len(table) == 0 and table.counters.streams_opened == 1
    # START|END as a control message does create (and then free) a session
    v = table.admit(A, control(0, wire.START | wire.END), 4.0)
    assert v.action is Action.ACK and v.created and v.free and v.session is not None


def test_control_messages_are_acknowledged_and_advance_the_sequence() -> None:
    table = SessionTable()
    v = table.admit(A, control(0, wire.START), 1.0)
    assert v.action is Action.ACK and v.created
    s = v.session
    v = table.admit(A, control(1, wire.RESET), 2.0)
    assert v == Verdict(Action.ACK, s, reset=True)
    assert s.next_seq == 2
    v = table.admit(A, chunk(2), 3.0)
    assert v.action is Action.STEP and not v.reset


def test_too_many_streams_is_rejected_until_one_is_freed() -> None:
    table = SessionTable(SessionSettings(max_streams=2))
    a = table.admit(A, chunk(0), 1.0).session
    table.admit(B, chunk(0), 1.0)
    v = table.admit((b"client-c", 1), chunk(0), 1.0)
    assert v.action is Action.REJECT and v.code == "too_many_streams" and "2 streams" in v.message
    assert len(table) == 2 and table.counters.streams_opened == 2
    assert table.admit(A, chunk(1), 1.0).action is Action.STEP  # live sessions go on
    table.close([a])
    assert table.admit((b"client-c", 1), chunk(0), 2.0).created


def test_the_same_stream_id_of_two_clients_is_two_sessions() -> None:
    table = SessionTable()
    a = table.admit((b"one", 3), chunk(0, stream_id=3), 1.0).session
    b = table.admit((b"two", 3), chunk(9, stream_id=3), 1.0).session
    assert a is not b and (a.next_seq, b.next_seq) == (1, 10)


def test_fast_path_advance_and_rollback() -> None:
    table = SessionTable()
    assert table.advance(A, 0, 1.0) is None  # no session: the general path creates it
    s = table.admit(A, chunk(0), 1.0).session
    assert table.advance(A, 2, 2.0) is None  # a gap: the general path counts it
    assert table.advance(A, 0, 2.0) is None  # a duplicate: the general path rejects it
    assert s.next_seq == 1 and s.last_seen == 1.0
    assert table.advance(A, 1, 3.0) is s
    assert s.next_seq == 2 and s.last_seen == 3.0
    table.rollback(s, 1)  # its chunk turned out to be non-finite: 1 is expected again
    assert s.next_seq == 1
    assert table.admit(A, chunk(1), 4.0) == Verdict(Action.STEP, s)
    assert counts(table) == dict(streams_opened=1, streams_closed=0, streams_expired=0,
                                 resets=0, gaps=0, missing=0)


def test_idle_sessions_expire_unless_busy_or_disabled() -> None:
    table = SessionTable(SessionSettings(idle_timeout=10.0))
    a = table.admit(A, chunk(0), 0.0).session
    table.admit(B, chunk(0), 0.0)
    table.admit((b"late", 1), chunk(0), 5.0)
    assert table.expire(10.0) == []  # exactly idle_timeout: not yet
    stale = table.expire(12.0, busy={B})
    assert stale == [a] and A not in table and B in table
    assert table.counters.streams_expired == 1
    assert [s.key for s in table.expire(16.0)] == [B, (b"late", 1)]
    assert table.counters.streams_expired == 3 and len(table) == 0
    never = SessionTable(SessionSettings(idle_timeout=0))
    never.admit(A, chunk(0), 0.0)
    assert never.expire(1e9) == [] and len(never) == 1


def test_counters_can_be_shared_with_a_service() -> None:
    @dataclasses.dataclass
    class Stats(SessionCounters):
        chunks: int = 0

    stats = Stats()
    table = SessionTable(counters=stats)
    table.admit(A, chunk(0), 0.0)
    table.admit(A, chunk(3), 0.0)
    assert (stats.streams_opened, stats.gaps, stats.missing, stats.chunks) == (1, 1, 2, 0)
    assert list(table) == [table.get(A)]


def test_sequence_numbers_wrap_after_the_largest_u64() -> None:
    """u64 sequence numbers: 2**64 - 1 is followed by 0 (not an endless out_of_order), and a
    repeat of 2**64 - 1 after the wrap is a duplicate."""
    table = SessionTable()
    last = wire.SEQ_MODULUS - 1
    table.admit(A, chunk(last - 1), now=1.0)
    assert table.admit(A, chunk(last), now=1.0).action is Action.STEP
    v = table.admit(A, chunk(0), now=1.0)
    assert v.action is Action.STEP and v.missing == 0
    assert table.admit(A, chunk(0), now=1.0).code == "duplicate"
    assert table.admit(A, chunk(1), now=1.0).action is Action.STEP
    assert table.advance(A, 2, now=1.0) is not None
    table.admit(B, chunk(last), now=1.0)
    assert table.admit(B, chunk(last), now=1.0).code == "duplicate"
    assert table.advance(B, 0, now=1.0) is not None  # the fast path wraps too
    assert counts(table)["gaps"] == 0


def test_one_client_cannot_take_every_slot() -> None:
    """A client holds at most its quota (default half of max_streams); another client is
    still admitted; ending or expiring streams gives the quota back."""
    table = SessionTable(SessionSettings(max_streams=8, idle_timeout=10.0))
    assert table.settings.quota == 4
    for sid in range(4):
        assert table.admit((b"greedy", sid), chunk(0), now=1.0).action is Action.STEP
    v = table.admit((b"greedy", 99), chunk(0), now=1.0)
    assert v.action is Action.REJECT and v.code == "client_quota" and "4 streams" in v.message
    assert table.held_by(b"greedy") == 4 and len(table) == 4
    for sid in range(4):  # the others are served
        assert table.admit((b"polite", sid), chunk(0), now=1.0).action is Action.STEP
    v = table.admit((b"third", 0), chunk(0), now=1.0)
    assert v.code == "too_many_streams"  # the table itself is full now
    table.close([table.get((b"greedy", 0))])
    assert table.held_by(b"greedy") == 3
    assert table.admit((b"greedy", 99), chunk(0), now=2.0).action is Action.STEP
    table.admit((b"polite", 0), chunk(1), now=20.0)  # keeps one polite stream alive
    gone = table.expire(now=20.0)
    assert len(gone) == 7 and table.held_by(b"greedy") == 0 and table.held_by(b"polite") == 1


def test_an_explicit_quota() -> None:
    table = SessionTable(SessionSettings(max_streams=8, max_streams_per_client=1))
    assert table.admit((b"c", 0), chunk(0), now=0.0).action is Action.STEP
    assert table.admit((b"c", 1), chunk(0), now=0.0).code == "client_quota"
