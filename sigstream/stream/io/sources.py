"""Block sources: where streamed samples come from.

N: frames, C: channels. Every block a source returns is a float32, C-contiguous
array of shape (N, C). :meth:`Source.read` returns ``None`` at the end of the
input, and again on every later call.

- :class:`ArraySource` streams an in-memory array.
- :class:`NpySource` streams a ``.npy`` / ``.npz`` file (loaded into memory).
- :class:`WavSource` streams WAV/FLAC/OGG/... through :class:`soundfile.SoundFile`
  block by block, without loading the whole file.

Bad files and data raise :class:`~sigstream.core.errors.InputError`, whose
message names the file and what to do; invalid arguments raise
:class:`~sigstream.core.errors.ConfigError`.
"""

from __future__ import annotations

import abc
import math
import operator
import os
import zipfile
from types import TracebackType
from typing import IO

import numpy as np
import soundfile as sf

from sigstream.core.errors import ConfigError, InputError

__all__ = ["Source", "ArraySource", "NpySource", "WavSource"]

PathLike = str | os.PathLike

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def _show(path: PathLike) -> str:
    """The path as the user gave it, for messages."""
    return os.fsdecode(os.fspath(path))


def _check_sample_rate(sample_rate: object, what: str = "sample_rate") -> float | None:
    """Validate an optional sample rate argument; ConfigError if not a positive finite number."""
    if sample_rate is None:
        return None
    if isinstance(sample_rate, bool):
        raise ConfigError(f"{what} must be a positive number of Hz, got {sample_rate!r}")
    try:
        rate = float(sample_rate)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a positive number of Hz, got {sample_rate!r}") from None
    if not math.isfinite(rate) or rate <= 0:
        raise ConfigError(f"{what} must be a positive number of Hz, got {sample_rate!r}")
    return rate


def _describe_non_finite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "+inf" if value > 0 else "-inf"


def _first_non_finite(block: np.ndarray) -> tuple[int, int, float] | None:
    """(frame, channel, value) of the first non-finite sample of an (N, C) block, or None.

    N: frames, C: channels.
    """
    finite = np.isfinite(block)
    if finite.all():
        return None
    flat = int(np.argmin(finite.reshape(-1)))
    frame, channel = divmod(flat, block.shape[1])
    return frame, channel, float(block[frame, channel])


def _to_frames(data: object, name: str, allow_nan: bool = False) -> np.ndarray:
    """Turn (T,) or (T, C) numeric data into a validated float32 C-contiguous (T, C) array.

    N: frames, C: channels (here T: total frames). Raises InputError naming ``name``
    for a wrong shape, a non-numeric dtype or a non-finite value.
    """
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as err:
        raise InputError(f"{name}: not a numeric array ({err})") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise InputError(
            f"{name}: complex samples ({arr.dtype}) are not supported; "
            "store the real part or the magnitude instead"
        )
    if kind not in "biuf":
        raise InputError(
            f"{name}: samples must be numbers, got dtype {arr.dtype}; "
            "save a numeric (e.g. float32) array instead"
        )
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    elif arr.ndim != 2:
        raise InputError(
            f"{name}: expected a 1-D (frames,) or 2-D (frames, channels) array, "
            f"got {arr.ndim}-D with shape {arr.shape}"
        )
    if arr.shape[1] == 0:
        raise InputError(f"{name}: array of shape {arr.shape} has no channels")
    check = (lambda a: _first_non_finite(np.nan_to_num(a, nan=0.0, posinf=np.inf,
                                                       neginf=-np.inf))) if allow_nan \
        else _first_non_finite
    if kind == "f" and arr.dtype != np.float32:
        bad = check(arr)
        if bad is not None:
            frame, channel, value = bad
            raise InputError(
                f"{name}: non-finite sample ({_describe_non_finite(value)}) at frame "
                f"{frame}, channel {channel}; remove or replace non-finite values"
            )
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    bad = check(out)
    if bad is not None:
        frame, channel, value = bad
        if arr.dtype == np.float32:
            raise InputError(
                f"{name}: non-finite sample ({_describe_non_finite(value)}) at frame "
                f"{frame}, channel {channel}; remove or replace non-finite values"
            )
        raise InputError(
            f"{name}: sample {arr[frame, channel].item()!r} at frame {frame}, channel "
            f"{channel} is outside the float32 range; rescale the data"
        )
    return out


def _read_error(shown: str, err: OSError) -> InputError:
    """A one-line InputError for an OSError raised while opening ``shown``."""
    if isinstance(err, FileNotFoundError):
        reason = "file not found"
    elif isinstance(err, IsADirectoryError):
        reason = "is a directory, not a file"
    elif isinstance(err, PermissionError):
        reason = "permission denied"
    else:
        reason = str(err.strerror or err)
    return InputError(f"cannot read '{shown}': {reason}")


class Source(abc.ABC):
    """A stream of (N, C) float32 blocks; N: frames, C: channels.

    Subclasses implement :meth:`_read` (and optionally :meth:`_close`); the public
    :meth:`read` validates ``max_frames``, keeps :attr:`frames_read` and makes the
    end of input sticky. Use as a context manager to close it.
    """

    sample_rate: float | None = None
    """Sample rate in Hz, or None if unknown (e.g. a bare ``.npy``)."""
    channels: int = 0
    """Number of channels C of every block."""
    live: bool = False
    """True only for real-time sources (microphone, network); file sources are False."""
    frames_read: int = 0
    """Frames returned by :meth:`read` so far."""
    total_frames: int | None = None
    """Total frames of the input if known up front (files, arrays); None otherwise."""

    _ended: bool = False
    _closed: bool = False

    def read(self, max_frames: int) -> np.ndarray | None:
        """Return the next (n, C) float32 block with 1 <= n <= max_frames, or None at the end.

        N: frames, C: channels. Once None has been returned (or after :meth:`close`)
        every later call returns None.
        """
        try:
            limit = operator.index(max_frames)
        except TypeError:
            raise ConfigError(
                f"max_frames must be a positive integer, got {max_frames!r}"
            ) from None
        if isinstance(max_frames, bool) or limit < 1:
            raise ConfigError(f"max_frames must be a positive integer, got {max_frames!r}")
        if self._ended or self._closed:
            return None
        block = self._read(limit)
        if block is None or block.shape[0] == 0:
            self._ended = True
            return None
        self.frames_read += block.shape[0]
        return block

    @abc.abstractmethod
    def _read(self, max_frames: int) -> np.ndarray | None:
        """Return up to ``max_frames`` frames as an (n, C) float32 block; None or n == 0 at end.

        N: frames, C: channels.
        """

    def close(self) -> None:
        """Release resources; later reads return None. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Subclass hook for :meth:`close`; called once."""

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ArraySource(Source):
    """Stream an in-memory array of shape (T,) or (T, C) in blocks; N: frames, C: channels.

    The data is converted to float32 (without a copy when it already is float32 and
    C-contiguous); each returned block is a fresh copy, so consumers may modify it.
    Raises InputError for a wrong shape, non-numeric dtype or non-finite value
    (naming the first bad frame and channel); ``name`` is used in those messages.
    ``allow_nan``: NaN passes (a model that reads NaN as a missing sample); infinities
    are still refused.
    """

    def __init__(
        self,
        data: np.ndarray,
        sample_rate: float | None = None,
        *,
        name: str = "input array",
        allow_nan: bool = False,
    ) -> None:
        self.sample_rate = _check_sample_rate(sample_rate)
        self._data = _to_frames(data, name, allow_nan)
        self.channels = int(self._data.shape[1])
        self.total_frames = int(self._data.shape[0])
        """Total number of frames T in the array."""
        self.frames_read = 0
        self._pos = 0

    def _read(self, max_frames: int) -> np.ndarray | None:
        start = self._pos
        stop = min(start + max_frames, self._data.shape[0])
        if stop <= start:
            return None
        self._pos = stop
        return self._data[start:stop].copy()

    def _close(self) -> None:
        self._data = np.empty((0, self.channels), dtype=np.float32)


def _npz_rate(npz: np.lib.npyio.NpzFile, shown: str) -> float | None:
    """The optional scalar ``sample_rate`` entry of an .npz archive."""
    if "sample_rate" not in npz.files:
        return None
    try:
        raw = np.asarray(npz["sample_rate"])
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read '{shown}': bad 'sample_rate' entry ({err})") from None
    if raw.size != 1 or raw.dtype.kind not in "iuf":
        raise InputError(
            f"cannot read '{shown}': 'sample_rate' must be a single number, "
            f"got dtype {raw.dtype} with shape {raw.shape}"
        )
    rate = float(raw.reshape(-1)[0])
    if not math.isfinite(rate) or rate <= 0:
        raise InputError(
            f"cannot read '{shown}': 'sample_rate' must be a positive number of Hz, got {rate!r}"
        )
    return rate


def _npz_array(npz: np.lib.npyio.NpzFile, shown: str) -> np.ndarray:
    """The sample array of an .npz archive: key ``x``, else its only non-``sample_rate`` entry."""
    keys = [k for k in npz.files if k != "sample_rate"]
    if "x" in npz.files:
        key = "x"
    elif len(keys) == 1:
        key = keys[0]
    elif not keys:
        raise InputError(f"cannot read '{shown}': the .npz archive holds no sample array")
    else:
        raise InputError(
            f"cannot read '{shown}': the .npz archive holds several arrays "
            f"({', '.join(sorted(keys))}); store the samples under key 'x'"
        )
    try:
        return npz[key]
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise InputError(
                f"cannot read '{shown}': array '{key}' holds Python objects (object dtype); "
                "save a numeric array instead"
            ) from None
        raise InputError(f"cannot read '{shown}': array '{key}' is corrupt ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read '{shown}': array '{key}' is corrupt ({err})") from None


class NpySource(ArraySource):
    """Stream a ``.npy`` or ``.npz`` file; N: frames, C: channels.

    A ``.npy`` holds a (T,) or (T, C) numeric array. A ``.npz`` holds the samples
    under key ``x`` (or as its only array) and optionally a scalar ``sample_rate``.
    The file type is detected from its content, not its name. An explicit
    ``sample_rate`` argument is used when the file has none; if both are given they
    must agree (InputError otherwise). The file is loaded into memory with
    ``allow_pickle=False``; an empty array (0 frames) is valid and ends at once.
    """

    def __init__(self, path: PathLike, sample_rate: float | None = None,
                 allow_nan: bool = False) -> None:
        self.path = path
        shown = _show(path)
        explicit = _check_sample_rate(sample_rate)
        try:
            with open(path, "rb") as fh:
                magic = fh.read(6)
                fh.seek(0)
                if magic == _NPY_MAGIC:
                    data, file_rate = self._load_npy(fh, shown), None
                elif magic[:4] in _ZIP_MAGICS:
                    try:
                        with np.load(fh, allow_pickle=False) as npz:
                            file_rate = _npz_rate(npz, shown)
                            data = _npz_array(npz, shown)
                    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
                        raise InputError(
                            f"cannot read '{shown}': not a valid .npz archive ({err})"
                        ) from None
                else:
                    raise InputError(
                        f"cannot read '{shown}': not a .npy or .npz file; "
                        "save the samples with numpy.save or numpy.savez"
                    )
        except OSError as err:
            raise _read_error(shown, err) from None

        if (
            explicit is not None
            and file_rate is not None
            and not math.isclose(explicit, file_rate, rel_tol=1e-9)
        ):
            raise InputError(
                f"'{shown}' says its sample rate is {file_rate:g} Hz but {explicit:g} Hz was "
                "requested; drop the explicit sample rate or fix the file"
            )
        rate = explicit if explicit is not None else file_rate
        super().__init__(data, rate, name=f"cannot use '{shown}'", allow_nan=allow_nan)

    @staticmethod
    def _load_npy(fh: IO[bytes], shown: str) -> np.ndarray:
        try:
            return np.load(fh, allow_pickle=False)
        except ValueError as err:
            if "allow_pickle" in str(err):
                raise InputError(
                    f"cannot read '{shown}': it holds Python objects (object dtype); "
                    "save a numeric array instead"
                ) from None
            raise InputError(
                f"cannot read '{shown}': corrupt or truncated .npy file ({err})"
            ) from None
        except (EOFError, OSError) as err:
            raise InputError(
                f"cannot read '{shown}': corrupt or truncated .npy file ({err})"
            ) from None


class WavSource(Source):
    """Stream a WAV file (or FLAC, OGG, ... anything soundfile reads); N: frames, C: channels.

    Blocks are read with :class:`soundfile.SoundFile` as float32 (integer PCM is
    scaled the soundfile way, e.g. int16 ``k`` becomes ``k / 32768``), one block at
    a time, so the file is never loaded whole. Non-finite samples (possible in float
    files) raise InputError naming the frame and channel.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = path
        self._shown = shown = _show(path)
        self.frames_read = 0
        try:
            # libsndfile only says "System error." for these; probe with Python first
            with open(path, "rb"):
                pass
        except OSError as err:
            raise _read_error(shown, err) from None
        try:
            self._file = sf.SoundFile(path, mode="r")
        except (RuntimeError, OSError, TypeError, ValueError) as err:
            detail = getattr(err, "error_string", None) or str(err)
            raise InputError(
                f"cannot read '{shown}': not a readable audio file ({detail}); "
                "use WAV, FLAC or OGG, or a .npy file"
            ) from None
        self.sample_rate = float(self._file.samplerate)
        self.channels = int(self._file.channels)
        self.total_frames = int(self._file.frames)
        """Total number of frames as reported by the file header (may be approximate for OGG)."""

    def _read(self, max_frames: int) -> np.ndarray | None:
        try:
            block = self._file.read(max_frames, dtype="float32", always_2d=True)
        except (RuntimeError, OSError) as err:
            detail = getattr(err, "error_string", None) or str(err)
            raise InputError(
                f"cannot read '{self._shown}': read failed after frame "
                f"{self.frames_read} ({detail})"
            ) from None
        if block.shape[0] == 0:
            return None
        block = np.ascontiguousarray(block, dtype=np.float32)
        bad = _first_non_finite(block)
        if bad is not None:
            frame, channel, value = bad
            raise InputError(
                f"cannot use '{self._shown}': non-finite sample ({_describe_non_finite(value)}) "
                f"at frame {self.frames_read + frame}, channel {channel}; "
                "remove or replace non-finite values"
            )
        return block

    def _close(self) -> None:
        self._file.close()


class GeneratorSource(Source):
    """Frames from a synthetic generator: any object with ``read(n) -> (noisy, clean)``
    returning (n, C) arrays, plus ``sample_rate`` and ``channels``. N: frames, C: channels.

    ``total_frames`` bounds the stream (None: endless). With ``keep_reference`` the
    clean signal and the delivered noisy signal are kept, for live quality figures.
    """

    def __init__(self, generator: object, total_frames: int | None = None, *,
                 keep_reference: bool = False) -> None:
        self._gen = generator
        self.sample_rate = _check_sample_rate(getattr(generator, "sample_rate", None))
        self.channels = int(generator.channels)  # type: ignore[attr-defined]
        self.total_frames = total_frames
        self.frames_read = 0
        self._keep = keep_reference
        self._noisy: list[np.ndarray] = []
        self._clean: list[np.ndarray] = []

    def _read(self, max_frames: int) -> np.ndarray | None:
        n = max_frames
        if self.total_frames is not None:
            n = min(n, self.total_frames - self.frames_read)
        if n <= 0:
            return None
        noisy, clean = self._gen.read(n)  # type: ignore[attr-defined]
        if self._keep:
            self._noisy.append(noisy)
            self._clean.append(clean)
        return np.ascontiguousarray(noisy, dtype=np.float32)

    def reference(self) -> np.ndarray:
        """(T, C) clean signal of everything delivered so far (keep_reference only)."""
        return _joined(self._clean, self.channels)

    def consumed(self) -> np.ndarray:
        """(T, C) noisy signal delivered so far (keep_reference only)."""
        return _joined(self._noisy, self.channels)


def _joined(parts: list[np.ndarray], channels: int) -> np.ndarray:
    if len(parts) > 1:
        parts[:] = [np.concatenate(parts)]  # amortise: later calls join only the new parts
    return parts[0] if parts else np.zeros((0, channels), dtype=np.float32)
