"""Lock-free single-producer / single-consumer ring buffer for real-time samples."""

from __future__ import annotations

import operator

import numpy as np

from sigstream.core.errors import BufferOverflow, ConfigError, InputError

__all__ = ["POLICIES", "RingBuffer"]

#: Accepted values of ``RingBuffer(policy=...)``.
POLICIES = ("error", "drop_oldest")

# How often ``read_into`` retries after a concurrent overwrite invalidated part of a copy.
_MAX_ATTEMPTS = 4


class RingBuffer:
    """SPSC ring buffer of float32 frames.   N: frames, C: channels.

    Storage is one preallocated ``(capacity, C)`` float32 array. Frame number ``i``
    (counting every frame ever written) lives in slot ``i % capacity``.

    Two monotonically increasing integers describe the state: ``_w`` (frames ever
    written) and ``_r`` (frames ever consumed, i.e. returned or skipped). Only the
    producer thread assigns ``_w`` (and ``_w_claim``), only the consumer thread assigns
    ``_r``; a Python int assignment is atomic under the GIL, so no locks are needed
    and ``available = _w - _r`` is always a consistent (if slightly stale) view.

    Producer (``write``): announce ``_w_claim = _w + N``, copy the frames into their
    slots (at most two ``np.copyto`` calls for the wrap-around), THEN publish
    ``_w += N``. A reader therefore never sees a frame before its data is in place.

    Consumer (``read`` / ``read_into``): read ``_w`` once; ``available = _w - _r``. With
    ``drop_oldest`` the producer may have lapped the consumer: if ``available >
    capacity`` the overwritten frames are skipped (``_r = _w - capacity``). Copy the
    frames out, then re-read the producer's claim (seqlock style): frames with index
    below ``_w_claim - capacity`` may have been overwritten while being copied, so they
    are discarded from the front of the result. The claim (set *before* the copy into
    the slots) rather than ``_w`` (set after) is re-read, so a write that is still in
    progress is noticed too. Finally publish ``_r``.

    With the ``error`` policy the producer only ever writes into slots the consumer
    has released, so nothing is ever overwritten or discarded. ``write`` and
    ``read_into`` allocate no sample memory (only small numpy view objects).

    Counters (exact whenever both threads are idle):
    ``total_written == total_read + dropped + available`` (plus frames removed by
    ``clear``).
    """

    __slots__ = (
        "_buf",
        "_capacity",
        "_channels",
        "_drop",
        "_overruns",
        "_policy",
        "_r",
        "_skipped",
        "_total_read",
        "_underrun_frames",
        "_underruns",
        "_w",
        "_w_claim",
    )

    def __init__(self, capacity: int, channels: int, policy: str = "error") -> None:
        capacity = _positive_int(capacity, "capacity")
        channels = _positive_int(channels, "channels")
        if policy not in POLICIES:
            raise ConfigError(
                f"unknown ring buffer policy {policy!r}; use one of {', '.join(POLICIES)}"
            )
        self._capacity = capacity
        self._channels = channels
        self._policy = policy
        self._drop = policy == "drop_oldest"
        self._buf = np.zeros((capacity, channels), dtype=np.float32)
        # Producer-owned.
        self._w = 0
        self._w_claim = 0
        self._overruns = 0
        # Consumer-owned.
        self._r = 0
        self._skipped = 0
        self._total_read = 0
        self._underruns = 0
        self._underrun_frames = 0

    def __repr__(self) -> str:
        return (
            f"RingBuffer(capacity={self._capacity}, channels={self._channels}, "
            f"policy={self._policy!r}, available={self.available})"
        )

    # ------------------------------------------------------------------ state
    @property
    def capacity(self) -> int:
        """Maximum number of frames held."""
        return self._capacity

    @property
    def channels(self) -> int:
        """Samples per frame (C)."""
        return self._channels

    @property
    def policy(self) -> str:
        """``"error"`` or ``"drop_oldest"``."""
        return self._policy

    @property
    def available(self) -> int:
        """Frames ready to read (never more than ``capacity``)."""
        r = self._r
        return min(self._w - r, self._capacity)

    @property
    def free(self) -> int:
        """Frames that can be written without overflow: ``capacity - available``."""
        return self._capacity - self.available

    @property
    def overruns(self) -> int:
        """Writes that did not fit (rejected, or that overwrote unread data)."""
        return self._overruns

    @property
    def dropped(self) -> int:
        """Frames lost to ``drop_oldest``, including overwritten ones not yet noticed."""
        return self._skipped + max(0, self._w - self._r - self._capacity)

    @property
    def underruns(self) -> int:
        """``read_into`` calls that found fewer frames than requested."""
        return self._underruns

    @property
    def underrun_frames(self) -> int:
        """Frames that ``read_into`` had to fill in because data was missing."""
        return self._underrun_frames

    @property
    def total_written(self) -> int:
        """Frames ever accepted by ``write``."""
        return self._w

    @property
    def total_read(self) -> int:
        """Frames ever returned by ``read`` / ``read_into``."""
        return self._total_read

    # --------------------------------------------------------------- producer
    def write(self, data: np.ndarray) -> int:
        """Append frames ``data`` (N, C) (or (N,) when C == 1); producer thread only.

        Other dtypes are cast to float32. Returns the number of frames accepted (N).
        ``error`` policy: raises :class:`BufferOverflow` and writes nothing if
        N > ``free``. ``drop_oldest``: always accepts N; the oldest unread frames are
        overwritten, and if N > ``capacity`` only the last ``capacity`` are stored.
        """
        src = self._frames(data, "data")
        if not np.can_cast(src.dtype, np.float32, "same_kind"):
            raise InputError(f"cannot store {src.dtype} samples in a float32 ring buffer")
        n = src.shape[0]
        if n == 0:
            return 0
        cap = self._capacity
        w = self._w
        used = w - self._r  # _r may only grow meanwhile: this is conservative
        if not self._drop:
            free = cap - used
            if n > free:
                self._overruns += 1
                raise BufferOverflow(
                    f"ring buffer overflow: cannot write {n} frames, only {free} of "
                    f"{cap} free; read faster or use a larger capacity"
                )
        else:
            if used + n > cap:
                self._overruns += 1
            if n > cap:
                src = src[n - cap :]  # the first n - cap frames are overwritten at once
        end = w + n
        self._w_claim = end  # announce before touching any slot (see class docstring)
        m = src.shape[0]
        i = (end - m) % cap
        first = min(m, cap - i)
        np.copyto(self._buf[i : i + first], src[:first], casting="same_kind")
        if first < m:
            np.copyto(self._buf[: m - first], src[first:], casting="same_kind")
        self._w = end  # publish
        return n

    # --------------------------------------------------------------- consumer
    def read(self, n: int) -> np.ndarray:
        """Return a new (m, C) float32 array with m = min(n, available) frames.

        Allocates; meant for worker threads. Consumer thread only.
        """
        n = operator.index(n)
        if n < 0:
            raise ValueError(f"cannot read a negative number of frames ({n})")
        out = np.empty((min(n, self.available), self._channels), dtype=np.float32)
        got = self._fill(out)
        return out if got == out.shape[0] else out[:got]

    def read_into(self, out: np.ndarray, fill: float = 0.0) -> int:
        """Fill ``out`` (M, C) (or (M,) when C == 1) in place without allocating.

        First the available frames (up to M), the rest with ``fill``. Returns the
        number of frames really read; a short read counts one underrun event and
        ``M - read`` underrun frames. Consumer thread only.
        """
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
        dst = self._frames(out, "out")
        got = self._fill(dst)
        missing = dst.shape[0] - got
        if missing:
            dst[got:] = fill
            self._underruns += 1
            self._underrun_frames += missing
        return got

    def clear(self) -> None:
        """Discard every available frame. Consumer thread only."""
        w = self._w
        lost = w - self._r - self._capacity
        if lost > 0:
            self._skipped += lost  # already overwritten: those count as dropped
        self._r = w

    # ---------------------------------------------------------------- helpers
    def _fill(self, dst: np.ndarray) -> int:
        """Copy up to len(dst) frames to the front of ``dst``; return how many."""
        want = dst.shape[0]
        filled = 0
        for _ in range(_MAX_ATTEMPTS):
            got, discarded = self._consume(dst[filled:])
            filled += got
            if filled == want or not discarded:
                break
        return filled

    def _consume(self, dst: np.ndarray) -> tuple[int, int]:
        """One seqlock-checked copy into ``dst``; returns (frames kept, frames discarded)."""
        cap = self._capacity
        buf = self._buf
        w = self._w  # read once
        r = self._r
        avail = w - r
        if avail > cap:  # lapped by the producer (drop_oldest only)
            self._skipped += avail - cap
            r = w - cap
            avail = cap
        m = min(dst.shape[0], avail)
        if m == 0:
            self._r = r
            return 0, 0
        i = r % cap
        first = min(m, cap - i)
        np.copyto(dst[:first], buf[i : i + first])
        if first < m:
            np.copyto(dst[first:m], buf[: m - first])
        # Frames below claim - cap may have been overwritten during the copy.
        bad = self._w_claim - cap - r
        if bad > 0:
            bad = min(bad, m)
            kept = m - bad
            if kept:
                np.copyto(dst[:kept], dst[bad:m])  # rare path; numpy handles the overlap
            self._skipped += bad
        else:
            bad = 0
            kept = m
        self._total_read += kept
        self._r = r + m  # publish
        return kept, bad

    def _frames(self, a: np.ndarray, name: str) -> np.ndarray:
        """View ``a`` as (N, C); (N,) is accepted when C == 1."""
        a = np.asarray(a)
        if a.ndim == 1 and self._channels == 1:
            return a[:, np.newaxis]
        if a.ndim != 2 or a.shape[1] != self._channels:
            raise InputError(
                f"{name} must have shape (N, {self._channels})"
                + (" or (N,)" if self._channels == 1 else "")
                + f", got {a.shape}"
            )
        return a


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"ring buffer {name} must be a positive integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ConfigError(f"ring buffer {name} must be a positive integer, got {value!r}") from None
    if value < 1:
        raise ConfigError(f"ring buffer {name} must be at least 1, got {value}")
    return value
