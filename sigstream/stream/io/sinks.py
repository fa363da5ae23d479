"""Block sinks: where streamed samples go.

N: frames, C: channels. A sink is opened once with the stream's sample rate and
channel count, then receives float32 (N, C) blocks through :meth:`Sink.write`, and
is finished with either :meth:`Sink.close` (success) or :meth:`Sink.abort` (error).
Used as a context manager, it closes on normal exit and aborts on an exception.

File sinks are atomic: they write to a hidden temporary file next to the target
(``.<name>.<random>.part``) and move it into place with :func:`os.replace` only in
:meth:`Sink.close`, so the target path never holds a partial file; :meth:`Sink.abort`
deletes the temporary file.

- :class:`ArraySink` collects blocks in memory (:attr:`ArraySink.data`).
- :class:`NullSink` discards blocks and only counts them.
- :class:`NpySink` writes a ``.npy`` (or ``.npz`` with ``x`` and ``sample_rate``).
- :class:`WavSink` streams WAV (FLOAT or PCM_16, ...) through :class:`soundfile.SoundFile`.
"""

from __future__ import annotations

import abc
import contextlib
import math
import operator
import os
from types import TracebackType

import numpy as np
import soundfile as sf

from sigstream.core.errors import ConfigError, InputError
from sigstream.core.files import temp_name

__all__ = ["Sink", "ArraySink", "NullSink", "NpySink", "WavSink"]

PathLike = str | os.PathLike

_NEW, _OPEN, _CLOSED, _ABORTED = "new", "open", "closed", "aborted"


def _show(path: PathLike) -> str:
    """The path as the user gave it, for messages."""
    return os.fsdecode(os.fspath(path))


class Sink(abc.ABC):
    """Receiver of (N, C) float32 blocks; N: frames, C: channels.

    Lifecycle: :meth:`open` once, :meth:`write` any number of times, then
    :meth:`close` (output complete) or :meth:`abort` (output discarded). Subclasses
    implement the ``_open`` / ``_write`` / ``_close`` / ``_abort`` hooks; the public
    methods check the order of calls and the blocks, and count :attr:`frames_written`.
    """

    sample_rate: float | None = None
    """Sample rate in Hz given to :meth:`open` (None if unknown)."""
    channels: int | None = None
    """Channel count C given to :meth:`open` (None before that)."""
    frames_written: int = 0
    """Frames accepted by :meth:`write` so far."""

    _state: str = _NEW

    # -- public API ---------------------------------------------------------------------------

    def open(self, sample_rate: float | None, channels: int) -> None:
        """Prepare for (N, C) blocks with C = ``channels``; called once before the first write.

        N: frames, C: channels. Raises ConfigError for an invalid rate or channel
        count, InputError if the output cannot be created (missing directory, ...).
        """
        if self._state != _NEW:
            raise RuntimeError(f"{type(self).__name__}.open() called twice (state: {self._state})")
        rate = _check_rate(sample_rate)
        try:
            count = operator.index(channels)
        except TypeError:
            raise ConfigError(f"channels must be a positive integer, got {channels!r}") from None
        if isinstance(channels, bool) or count < 1:
            raise ConfigError(f"channels must be a positive integer, got {channels!r}")
        self._open(rate, count)
        self.sample_rate = rate
        self.channels = count
        self.frames_written = 0
        self._state = _OPEN

    def write(self, block: np.ndarray) -> None:
        """Append one (N, C) block; N: frames, C: channels.

        Non-float32 real numeric blocks are converted to float32; a wrong shape,
        channel count or dtype raises InputError. Empty blocks (N == 0) are ignored.
        """
        if self._state != _OPEN:
            raise RuntimeError(
                f"{type(self).__name__}.write() needs an open sink (state: {self._state})"
            )
        block = self._check_block(block)
        if block.shape[0] == 0:
            return
        self._write(block)
        self.frames_written += int(block.shape[0])

    def close(self) -> None:
        """Finish the output; a file output appears complete only now.

        Closing a sink that was never opened does nothing (no output is created).
        Idempotent, and a no-op after :meth:`abort`. If finishing fails, the partial
        output is removed (as by :meth:`abort`) and the error is raised.
        """
        if self._state == _NEW:
            self._state = _CLOSED
            return
        if self._state != _OPEN:
            return
        try:
            self._close()
        except BaseException:
            self._state = _ABORTED
            with contextlib.suppress(Exception):
                self._abort()
            raise
        self._state = _CLOSED

    def abort(self) -> None:
        """Discard the output after an error: remove any partial file. Idempotent.

        A no-op after a successful :meth:`close` (the finished output is kept).
        """
        if self._state in (_CLOSED, _ABORTED):
            return
        was_open = self._state == _OPEN
        self._state = _ABORTED
        if was_open:
            self._abort()

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- hooks --------------------------------------------------------------------------------

    def _open(self, sample_rate: float | None, channels: int) -> None:  # noqa: B027
        """Hook: acquire resources; must clean up after itself if it raises."""

    @abc.abstractmethod
    def _write(self, block: np.ndarray) -> None:
        """Hook: consume a validated, non-empty (N, C) float32 block; N: frames, C: channels."""

    def _close(self) -> None:  # noqa: B027
        """Hook: finalise the output."""

    def _abort(self) -> None:  # noqa: B027
        """Hook: release resources and remove partial output; must not raise for cleanup."""

    # -- helpers ------------------------------------------------------------------------------

    def _check_block(self, block: np.ndarray) -> np.ndarray:
        """Validate an (N, C) block; return it C-contiguous float32. N: frames, C: channels."""
        if not isinstance(block, np.ndarray):
            raise InputError(
                f"output blocks must be numpy arrays of shape (frames, channels), "
                f"got {type(block).__name__}"
            )
        if block.ndim != 2:
            raise InputError(
                f"output blocks must have shape (frames, channels), got shape {block.shape}"
            )
        if block.shape[1] != self.channels:
            raise InputError(
                f"output block has {block.shape[1]} channel(s) but the output was opened "
                f"with {self.channels}; keep the channel count constant"
            )
        if block.dtype == np.float32:
            return np.ascontiguousarray(block)
        if block.dtype.kind not in "biuf":
            raise InputError(f"output blocks must hold real numbers, got dtype {block.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):
            return np.ascontiguousarray(block, dtype=np.float32)


def _check_rate(sample_rate: object) -> float | None:
    if sample_rate is None:
        return None
    message = f"sample_rate must be a positive number of Hz or None, got {sample_rate!r}"
    if isinstance(sample_rate, bool):
        raise ConfigError(message)
    try:
        rate = float(sample_rate)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(message) from None
    if not math.isfinite(rate) or rate <= 0:
        raise ConfigError(message)
    return rate


class _Frames:
    """Growable (T, C) float32 buffer with amortised doubling; N: frames, C: channels."""

    def __init__(self, channels: int) -> None:
        self._buf = np.empty((0, channels), dtype=np.float32)
        self._n = 0

    def append(self, block: np.ndarray) -> None:
        """Copy an (N, C) block to the end in O(N) amortised time."""
        need = self._n + block.shape[0]
        if need > self._buf.shape[0]:
            capacity = max(need, 2 * self._buf.shape[0], 4096)
            grown = np.empty((capacity, self._buf.shape[1]), dtype=np.float32)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : need] = block
        self._n = need

    def view(self) -> np.ndarray:
        """The (T, C) frames collected so far (a view; later appends never change it)."""
        return self._buf[: self._n]


class ArraySink(Sink):
    """Collect blocks in memory; :attr:`data` is the (T, C) float32 result.

    N: frames, C: channels (T: total frames written).
    """

    def __init__(self) -> None:
        self._frames: _Frames | None = None

    @property
    def data(self) -> np.ndarray:
        """All frames written so far as a (T, C) float32 array; (0, C) if none.

        N: frames, C: channels. Shape (0, 0) if the sink was never opened. The array is a
        view of the internal buffer; later writes do not change it.
        """
        if self._frames is None:
            return np.empty((0, self.channels or 0), dtype=np.float32)
        return self._frames.view()

    def _open(self, sample_rate: float | None, channels: int) -> None:
        self._frames = _Frames(channels)

    def _write(self, block: np.ndarray) -> None:
        assert self._frames is not None
        self._frames.append(block)


class NullSink(Sink):
    """Discard every block; only :attr:`frames_written` is kept. N: frames, C: channels."""

    def _write(self, block: np.ndarray) -> None:
        pass


def _create_temp(path: PathLike) -> str:
    """Create an empty hidden temporary file next to ``path`` and return its name.

    Raises InputError if the directory is missing, ``path`` is a directory, or the
    directory is not writable.
    """
    shown = _show(path)
    final = os.fspath(path)
    directory = os.path.dirname(final)
    shown_dir = os.fsdecode(directory) if directory else "."
    if directory and not os.path.isdir(directory):
        if os.path.exists(directory):
            raise InputError(f"cannot write '{shown}': '{shown_dir}' is not a directory")
        raise InputError(
            f"cannot write '{shown}': directory '{shown_dir}' does not exist; create it first"
        )
    if os.path.isdir(final):
        raise InputError(f"cannot write '{shown}': is a directory; give a file name")
    for _ in range(100):
        temp = temp_name(final)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except PermissionError:
            raise InputError(
                f"cannot write '{shown}': permission denied in directory '{shown_dir}'"
            ) from None
        except OSError as err:
            raise InputError(f"cannot write '{shown}': {err.strerror or err}") from None
        os.close(fd)
        return temp
    raise InputError(f"cannot write '{shown}': could not create a temporary file in '{shown_dir}'")


def _remove(path: str | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _fsync(path: str) -> None:
    """Best effort: flush a finished file to disk before it is renamed into place."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _commit(temp: str, path: PathLike) -> None:
    """Move the finished temporary file onto ``path`` atomically."""
    _fsync(temp)
    try:
        os.replace(temp, path)
    except OSError as err:
        raise InputError(f"cannot write '{_show(path)}': {err.strerror or err}") from None


class NpySink(Sink):
    """Write all blocks to ``path`` with :func:`numpy.save` at :meth:`close`.

    N: frames, C: channels. The file holds one (T, C) float32 array. A path ending in
    ``.npz`` gets an archive with key ``x`` and, when known, ``sample_rate`` (float64);
    otherwise a plain ``.npy`` is written (even if the name has another suffix).
    Blocks are collected in memory in a doubling buffer (O(N) per write); the file
    is written to a temporary file in the same directory and renamed at close.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = path
        self._npz = _show(path).lower().endswith(".npz")
        self._temp: str | None = None
        self._frames: _Frames | None = None

    def _open(self, sample_rate: float | None, channels: int) -> None:
        self._temp = _create_temp(self.path)
        self._frames = _Frames(channels)

    def _write(self, block: np.ndarray) -> None:
        assert self._frames is not None
        self._frames.append(block)

    def _close(self) -> None:
        assert self._temp is not None and self._frames is not None
        data = self._frames.view()
        try:
            with open(self._temp, "wb") as fh:
                if self._npz:
                    if self.sample_rate is None:
                        np.savez(fh, x=data)
                    else:
                        np.savez(fh, x=data, sample_rate=np.float64(self.sample_rate))
                else:
                    np.save(fh, data, allow_pickle=False)
        except OSError as err:
            raise InputError(f"cannot write '{_show(self.path)}': {err.strerror or err}") from None
        _commit(self._temp, self.path)
        self._temp = None
        self._frames = None

    def _abort(self) -> None:
        _remove(self._temp)
        self._temp = None
        self._frames = None


def _format_for(path: PathLike) -> str:
    """soundfile major format from the file extension; WAV when unknown."""
    ext = os.path.splitext(_show(path))[1].lstrip(".").upper()
    return ext if ext in sf.available_formats() and ext != "RAW" else "WAV"


class WavSink(Sink):
    """Stream blocks into a WAV file with :class:`soundfile.SoundFile`; N: frames, C: channels.

    ``subtype`` is a soundfile subtype such as ``"FLOAT"`` (the default, lossless for
    float32 data) or ``"PCM_16"``. With integer subtypes soundfile clips values
    outside [-1, 1] to full scale (no wrap-around) and quantises: it writes
    ``round(x * 32767)`` for PCM_16 and reads ``k / 32768`` back. A path ending in
    ``.flac``, ``.ogg``, ... selects that container (default subtype then
    soundfile's default for it, unless it supports FLOAT). Blocks go to a temporary
    file in the same directory, renamed onto ``path`` only at :meth:`close`.
    An integer sample rate is required (ConfigError otherwise, at :meth:`open`).
    """

    def __init__(self, path: PathLike, subtype: str | None = None) -> None:
        self.path = path
        self.format = _format_for(path)
        if subtype is None:
            if sf.check_format(self.format, "FLOAT"):
                subtype = "FLOAT"
            else:
                subtype = sf.default_subtype(self.format)
        if not isinstance(subtype, str) or not sf.check_format(self.format, subtype.upper()):
            valid = [
                s for s in sf.available_subtypes(self.format) if sf.check_format(self.format, s)
            ]
            raise ConfigError(
                f"subtype {subtype!r} is not valid for {self.format} output; "
                f"use one of: {', '.join(valid)}"
            )
        self.subtype = subtype.upper()
        self._temp: str | None = None
        self._file: sf.SoundFile | None = None

    def _open(self, sample_rate: float | None, channels: int) -> None:
        if sample_rate is None:
            raise ConfigError(
                f"WAV output needs a sample rate; the input has none (e.g. a bare .npy) - "
                f"give the sample rate explicitly, or write .npy output instead of "
                f"'{_show(self.path)}'"
            )
        if sample_rate != int(sample_rate):
            raise ConfigError(
                f"WAV output needs a whole number of Hz, got sample rate {sample_rate:g}"
            )
        temp = _create_temp(self.path)
        try:
            self._file = sf.SoundFile(
                temp,
                mode="w",
                samplerate=int(sample_rate),
                channels=channels,
                format=self.format,
                subtype=self.subtype,
            )
        except (RuntimeError, OSError, TypeError, ValueError) as err:
            _remove(temp)
            detail = getattr(err, "error_string", None) or str(err)
            raise InputError(
                f"cannot write '{_show(self.path)}' ({self.format}, {self.subtype}, "
                f"{channels} channel(s), {int(sample_rate)} Hz): {detail}"
            ) from None
        self._temp = temp

    def _write(self, block: np.ndarray) -> None:
        assert self._file is not None
        try:
            self._file.write(block)
        except (RuntimeError, OSError) as err:
            detail = getattr(err, "error_string", None) or str(err)
            raise InputError(
                f"cannot write '{_show(self.path)}': {detail} (is the disk full?)"
            ) from None

    def _close(self) -> None:
        assert self._file is not None and self._temp is not None
        try:
            self._file.close()
        except (RuntimeError, OSError) as err:
            detail = getattr(err, "error_string", None) or str(err)
            raise InputError(f"cannot write '{_show(self.path)}': {detail}") from None
        self._file = None
        _commit(self._temp, self.path)
        self._temp = None

    def _abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        _remove(self._temp)
        self._temp = None
