"""Progress on stderr: plain lines at most every few seconds off a terminal, and nothing
before the first item is done (so an early error stays the only line)."""

from __future__ import annotations

import io

import pytest

from sigstream.core import progress


def test_plain_lines_off_a_terminal(monkeypatch) -> None:  # noqa: ANN001
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    clock = iter([0.0, 1.0, 6.0, 7.0, 7.5]).__next__  # start, then after items 1..4
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    assert list(progress.iterate([10, 20, 30, 40], "eval x", "condition")) == [10, 20, 30, 40]
    assert err.getvalue().splitlines() == ["eval x: 2/4 conditions, 6.0 s",
                                           "eval x: 4/4 conditions, 7.5 s"]


def test_nothing_is_printed_before_the_first_item_is_done(monkeypatch) -> None:  # noqa: ANN001
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)

    def failing():
        raise ValueError("bad input")
        yield  # pragma: no cover

    with pytest.raises(ValueError, match="bad input"):
        list(progress.iterate(failing(), "eval x", "series"))
    assert err.getvalue() == ""


def test_note_says_how_long(monkeypatch) -> None:  # noqa: ANN001
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr(progress.time, "perf_counter", lambda: 12.5)
    progress.note("eval teb", "model done", since=10.0)
    progress.note("eval teb", "start")
    assert err.getvalue().splitlines() == ["eval teb: model done (2.5 s)", "eval teb: start"]
