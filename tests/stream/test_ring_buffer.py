"""Tests for sigstream.stream.ring_buffer.RingBuffer.   N: frames, C: channels."""

from __future__ import annotations

import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

from sigstream.core.errors import BufferOverflow, ConfigError, InputError
from sigstream.stream.ring_buffer import RingBuffer


def frames(start: int, n: int, channels: int = 1) -> np.ndarray:
    """(n, C) float32 frames whose channel c holds ``index * 10 + c``."""
    idx = np.arange(start, start + n, dtype=np.float32)[:, None]
    return (idx * 10 + np.arange(channels, dtype=np.float32)).astype(np.float32)


# ------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("capacity", "channels", "policy"),
    [(0, 1, "error"), (-5, 1, "error"), (8, 0, "error"), (8, 1, "block"), (2.5, 1, "error")],
)
def test_rejects_bad_config(capacity, channels, policy):
    with pytest.raises(ConfigError):
        RingBuffer(capacity, channels, policy)


def test_initial_state():
    rb = RingBuffer(16, 2, "drop_oldest")
    assert (rb.capacity, rb.channels, rb.policy) == (16, 2, "drop_oldest")
    assert (rb.available, rb.free) == (0, 16)
    counters = (rb.overruns, rb.dropped, rb.underruns, rb.underrun_frames)
    assert counters == (0, 0, 0, 0)
    assert (rb.total_written, rb.total_read) == (0, 0)


# ---------------------------------------------------------------------- round trip
def test_round_trip_multichannel():
    rb = RingBuffer(10, 3)
    data = frames(0, 7, 3)
    assert rb.write(data) == 7
    assert (rb.available, rb.free) == (7, 3)
    out = rb.read(4)
    assert out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_array_equal(out, data[:4])
    np.testing.assert_array_equal(rb.read(10), data[4:])
    assert (rb.available, rb.total_written, rb.total_read) == (0, 7, 7)


def test_mono_accepts_1d_input_and_output():
    rb = RingBuffer(8, 1)
    assert rb.write(np.arange(5, dtype=np.float32)) == 5
    out = np.full(6, 9.0, dtype=np.float32)
    assert rb.read_into(out) == 5
    np.testing.assert_array_equal(out, [0, 1, 2, 3, 4, 0])


def test_wraparound_many_times_matches_reference():
    rng = np.random.default_rng(1)
    rb = RingBuffer(37, 2)
    ref = rng.standard_normal((20_000, 2)).astype(np.float32)
    wpos = rpos = 0
    got = []
    while rpos < len(ref):
        n = min(int(rng.integers(0, 38)), rb.free, len(ref) - wpos)
        assert rb.write(ref[wpos : wpos + n]) == n
        wpos += n
        m = int(rng.integers(0, 40))
        if rng.random() < 0.5:
            chunk = rb.read(m)
        else:
            out = np.empty((m, 2), dtype=np.float32)
            chunk = out[: rb.read_into(out)]
        got.append(chunk)
        rpos += len(chunk)
    np.testing.assert_array_equal(np.concatenate(got), ref)
    assert rb.total_written == rb.total_read == len(ref)
    assert rb.dropped == 0 and rb.overruns == 0


def test_casts_other_dtypes():
    rb = RingBuffer(8, 2)
    rb.write(np.array([[1.5, -2.0], [3.0, 4.0]], dtype=np.float64))
    rb.write(np.array([[7, 8]], dtype=np.int16))
    out = rb.read(8)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1.5, -2.0], [3.0, 4.0], [7.0, 8.0]])


@pytest.mark.parametrize("shape", [(4,), (4, 3), (4, 2, 1)])
def test_rejects_wrong_shape(shape):
    rb = RingBuffer(8, 2)
    with pytest.raises(InputError):
        rb.write(np.zeros(shape, dtype=np.float32))
    with pytest.raises(InputError):
        rb.read_into(np.zeros(shape, dtype=np.float32))
    assert rb.total_written == 0


# --------------------------------------------------------------------- error policy
def test_error_policy_overflow_writes_nothing():
    rb = RingBuffer(8, 2)
    rb.write(frames(0, 6, 2))
    with pytest.raises(BufferOverflow, match=r"3 frames.*only 2 of 8") as exc:
        rb.write(frames(6, 3, 2))
    assert "\n" not in str(exc.value)
    assert (rb.overruns, rb.available, rb.total_written, rb.dropped) == (1, 6, 6, 0)
    rb.write(frames(6, 2, 2))  # exactly fits
    with pytest.raises(BufferOverflow):
        rb.write(frames(8, 1, 2))
    assert rb.overruns == 2
    np.testing.assert_array_equal(rb.read(100), frames(0, 8, 2))


def test_read_more_than_available_returns_only_available():
    rb = RingBuffer(8, 1)
    rb.write(np.arange(3, dtype=np.float32))
    out = rb.read(100)
    assert out.shape == (3, 1)
    np.testing.assert_array_equal(out[:, 0], [0, 1, 2])
    assert rb.read(5).shape == (0, 1)
    assert rb.underruns == 0  # only read_into counts underruns


# ---------------------------------------------------------------- drop_oldest policy
def test_drop_oldest_keeps_newest_in_order():
    rb = RingBuffer(8, 2, "drop_oldest")
    for start in range(0, 20, 5):  # 20 frames in chunks of 5
        assert rb.write(frames(start, 5, 2)) == 5
    assert (rb.available, rb.free, rb.dropped, rb.total_written) == (8, 0, 12, 20)
    assert rb.overruns == 3  # every write after the first overwrote unread frames
    np.testing.assert_array_equal(rb.read(100), frames(12, 8, 2))
    assert (rb.dropped, rb.total_read, rb.available) == (12, 8, 0)


def test_drop_oldest_write_larger_than_capacity():
    rb = RingBuffer(8, 1, "drop_oldest")
    rb.write(np.arange(3, dtype=np.float32))
    assert rb.write(np.arange(3, 23, dtype=np.float32)) == 20
    assert (rb.available, rb.dropped, rb.overruns, rb.total_written) == (8, 15, 1, 23)
    np.testing.assert_array_equal(rb.read(8)[:, 0], np.arange(15, 23))
    assert rb.total_written == rb.total_read + rb.dropped


def test_drop_oldest_dropped_exact_and_consistent():
    rng = np.random.default_rng(2)
    rb = RingBuffer(16, 1, "drop_oldest")
    written = 0
    received = []
    for _ in range(500):
        n = int(rng.integers(0, 40))
        rb.write(np.arange(written, written + n, dtype=np.float32))
        written += n
        assert rb.available == min(16, written - rb.total_read - rb.dropped)
        assert rb.total_written == rb.total_read + rb.dropped + rb.available
        received.append(rb.read(int(rng.integers(0, 20)))[:, 0])
    got = np.concatenate(received)
    assert np.all(np.diff(got) > 0)
    assert len(got) + rb.dropped + rb.available == written


def test_reader_discards_frames_overwritten_by_a_write_in_progress():
    """White-box: the producer announced a write and overwrote 3 slots, unpublished."""
    rb = RingBuffer(8, 1, "drop_oldest")
    rb.write(np.arange(8, dtype=np.float32))
    # First half of write([8, 9, 10]): claim, then copy into the slots of frames 0..2.
    rb._w_claim = 11
    rb._buf[:3, 0] = [8, 9, 10]
    out = np.full(8, -1.0, dtype=np.float32)
    assert rb.read_into(out) == 5
    np.testing.assert_array_equal(out, [3, 4, 5, 6, 7, 0, 0, 0])
    assert (rb.dropped, rb.total_read, rb.underruns, rb.underrun_frames) == (3, 5, 1, 3)
    rb._w = 11  # second half: publish
    np.testing.assert_array_equal(rb.read(8)[:, 0], [8, 9, 10])
    assert rb.total_written == rb.total_read + rb.dropped


# -------------------------------------------------------------------------- read_into
def test_read_into_zero_fill_and_underrun_counters():
    rb = RingBuffer(16, 2)
    rb.write(frames(0, 3, 2))
    out = np.full((5, 2), 7.0, dtype=np.float32)
    assert rb.read_into(out) == 3
    np.testing.assert_array_equal(out[:3], frames(0, 3, 2))
    np.testing.assert_array_equal(out[3:], 0.0)
    assert (rb.underruns, rb.underrun_frames, rb.total_read) == (1, 2, 3)
    assert rb.read_into(out) == 0  # empty: all fill
    np.testing.assert_array_equal(out, 0.0)
    assert (rb.underruns, rb.underrun_frames) == (2, 7)
    rb.write(frames(3, 5, 2))
    assert rb.read_into(out) == 5  # exactly enough: no underrun
    assert (rb.underruns, rb.underrun_frames) == (2, 7)


def test_read_into_fill_value():
    rb = RingBuffer(4, 1)
    rb.write(np.array([1.0, 2.0], dtype=np.float32))
    out = np.zeros((4, 1), dtype=np.float32)
    assert rb.read_into(out, fill=-0.5) == 2
    np.testing.assert_array_equal(out[:, 0], [1.0, 2.0, -0.5, -0.5])


def test_read_into_fills_the_given_array_in_place():
    rb = RingBuffer(8, 2)
    rb.write(frames(0, 4, 2))
    out = np.zeros((4, 2), dtype=np.float32)
    ptr = out.__array_interface__["data"][0]
    result = rb.read_into(out)
    assert isinstance(result, int) and result == 4
    assert out.__array_interface__["data"][0] == ptr
    np.testing.assert_array_equal(out, frames(0, 4, 2))
    # a strided view is filled in place too (it writes through to its base)
    base = np.zeros((4, 4), dtype=np.float32)
    rb.write(frames(4, 4, 2))
    assert rb.read_into(base[:, ::2]) == 4
    np.testing.assert_array_equal(base[:, ::2], frames(4, 4, 2))
    np.testing.assert_array_equal(base[:, 1::2], 0.0)
    with pytest.raises(TypeError):
        rb.read_into([[0.0, 0.0]])


def test_hot_path_does_not_allocate_sample_memory():
    rb = RingBuffer(8192, 2)
    chunk = np.ones((5000, 2), dtype=np.float32)  # 40 kB per call
    out = np.empty_like(chunk)
    rb.write(chunk)
    rb.read_into(out)
    tracemalloc.start()
    try:
        for _ in range(20):  # wraps around the buffer many times
            rb.write(chunk)
            rb.read_into(out)
        rb.read_into(out)  # underrun path (fill) too
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < chunk.nbytes // 8, peak


def test_clear():
    rb = RingBuffer(4, 1, "drop_oldest")
    rb.write(np.arange(10, dtype=np.float32))  # 6 dropped, 4 available
    rb.clear()
    assert (rb.available, rb.free, rb.dropped, rb.total_read) == (0, 4, 6, 0)
    rb.write(np.array([42.0], dtype=np.float32))
    np.testing.assert_array_equal(rb.read(4)[:, 0], [42.0])


# ---------------------------------------------------------------------------- threads
def _run_threads(*targets, timeout: float) -> None:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "threads did not finish in time"


def test_threads_error_policy_moves_10m_frames_intact():
    total = 10_000_000  # float32 is exact for integers below 2**24
    rb = RingBuffer(4096, 1)
    src = np.arange(total, dtype=np.float32)
    rng = np.random.default_rng(3)
    wsizes = rng.integers(1, 1500, size=1024).tolist()
    rsizes = rng.integers(1, 1000, size=1024).tolist()
    deadline = time.monotonic() + 20
    errors: list[str] = []
    received = [0]

    def producer() -> None:
        pos = k = 0
        while pos < total and not errors:
            free = rb.free
            if free == 0:
                if time.monotonic() > deadline:
                    errors.append("producer timed out")
                time.sleep(0)
                continue
            n = min(free, wsizes[k & 1023], total - pos)
            k += 1
            rb.write(src[pos : pos + n])
            pos += n

    def consumer() -> None:
        out = np.empty((1000, 1), dtype=np.float32)
        pos = k = 0
        while pos < total and not errors:
            m = rsizes[k & 1023]
            k += 1
            view = out[:m]
            got = rb.read_into(view, fill=-1.0)
            if not np.array_equal(view[:got, 0], src[pos : pos + got]):
                errors.append(f"wrong data in frames {pos}..{pos + got}")
            pos += got
            if got < m:
                if not (view[got:] == -1.0).all():
                    errors.append("fill value not applied")
                if time.monotonic() > deadline:
                    errors.append("consumer timed out")
                time.sleep(0)
        received[0] = pos

    _run_threads(producer, consumer, timeout=25)
    assert not errors, errors[:3]
    assert received[0] == total
    assert rb.total_written == rb.total_read == total
    assert (rb.available, rb.dropped, rb.overruns) == (0, 0, 0)


@pytest.fixture
def fast_thread_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the threads as often as possible
    yield
    sys.setswitchinterval(old)


@pytest.mark.usefixtures("fast_thread_switching")
@pytest.mark.parametrize("yield_every", [0, 4], ids=["greedy-producer", "yielding-producer"])
def test_threads_drop_oldest_never_reorders_or_duplicates(yield_every):
    """A greedy producer is often preempted mid-write (exercises the seqlock check);
    a yielding one gives many more interleaved reads."""
    total = 2_000_000
    rb = RingBuffer(256, 1, "drop_oldest")
    src = np.arange(total, dtype=np.float32)
    rng = np.random.default_rng(4)
    wsizes = rng.integers(1, 400, size=1024).tolist()  # some writes exceed capacity
    rsizes = rng.integers(1, 64, size=1024).tolist()
    deadline = time.monotonic() + 20
    done = threading.Event()
    errors: list[str] = []
    chunks: list[np.ndarray] = []

    def producer() -> None:
        pos = k = 0
        while pos < total:
            n = min(wsizes[k & 1023], total - pos)
            k += 1
            rb.write(src[pos : pos + n])
            pos += n
            if yield_every and not k % yield_every:
                time.sleep(0)
        done.set()

    def consumer() -> None:
        out = np.empty((64, 1), dtype=np.float32)
        last = -1.0
        k = 0
        while time.monotonic() < deadline:
            finished = done.is_set()  # checked before reading: then all data is in
            m = rsizes[k & 1023]
            k += 1
            if k & 1:
                chunk = rb.read(m)[:, 0]
            else:
                chunk = out[: rb.read_into(out[:m]), 0].copy()
            if len(chunk):
                if chunk[0] <= last or np.any(np.diff(chunk) <= 0):
                    errors.append(f"reordered or duplicated after {last}: {chunk[:8]}")
                    return
                last = chunk[-1]
                chunks.append(chunk)
            elif finished:
                return
        errors.append("consumer timed out")

    _run_threads(producer, consumer, timeout=25)
    assert not errors, errors
    got = np.concatenate(chunks)
    assert got[-1] == total - 1  # the newest frame always survives
    assert len(got) == rb.total_read
    assert rb.total_written == total
    assert len(got) + rb.dropped == total
    assert rb.dropped > 0 and rb.overruns > 0
    np.testing.assert_array_equal(got, src[got.astype(np.int64)])  # exact sample values
