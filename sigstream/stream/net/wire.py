"""Wire format v1: one chunk of one stream as a two-frame ZeroMQ message.

N: frames (samples per channel), C: channels.

A message is exactly two ZeroMQ frames (message parts):

1. a 64-byte **header**, little-endian, laid out as below;
2. a **payload**: N x C samples in C order (frame-major: all channels of frame 0,
   then frame 1, ...), little-endian, as float32 (dtype code 1) or int16
   (dtype code 2). Control messages (dtype code 0) carry no samples: an empty
   payload, or a UTF-8 JSON object for ERROR and STATS replies.

Header (64 bytes, all integers unsigned, ``struct`` format ``"<4sBBBBHHIQQdQ16x"``):

======  ====  =========  =============================================================
offset  size  type       field
======  ====  =========  =============================================================
0       4     char[4]    magic, the ASCII bytes ``SIGS``
4       1     u8         version, 1
5       1     u8         flags: bit0 START, bit1 END, bit2 RESET, bit3 ERROR, bit4 STATS;
                         bits 5-7 must be 0
6       1     u8         dtype: 0 control (no samples / JSON), 1 float32, 2 int16
7       1     u8         reserved, write 0, ignore on read
8       2     u16        channels C (>= 1 for samples; 0 allowed for control)
10      2     u16        reserved, write 0, ignore on read
12      4     u32        frames N (1 ... max for samples; 0 for control)
16      8     u64        stream id (chosen by the client; unique per connection)
24      8     u64        sequence number (per stream, +1 per message modulo 2**64,
                         from any start)
32      8     f64        sample rate in Hz (IEEE 754; 0 = unspecified; finite, >= 0)
40      8     u64        capture timestamp, ns since the Unix epoch (0 = unknown);
                         echoed unchanged in replies, for latency measurement
48      16    bytes      reserved, write 0, ignore on read
======  ====  =========  =============================================================

Payload size must be exactly ``N * C * itemsize`` (4 for float32, 2 for int16).
int16 samples ``k`` decode to float32 ``k / 32768``. Non-finite float32 samples
(NaN, +-inf) are rejected unless the receiver opts in. ERROR replies have the
ERROR flag, dtype 0, N = 0 and a JSON payload ``{"code": "...", "message": "..."}``
(``code`` is one of :data:`REASONS` or a server reason such as
``"channels_mismatch"``); STATS requests have the STATS flag, dtype 0, N = 0 and an
empty payload; STATS replies carry a JSON object. A request's control payload is
empty or a JSON object (anything else is rejected, ``bad_json``). An ERROR reply
names the stream and sequence number whenever the first frame was a valid header
(e.g. for ``frame_count``). Nothing on the wire is ever unpickled or evaluated.

:func:`encode` builds a message, :func:`decode` validates and parses one and
raises :class:`WireError` (with a short ``reason`` code) for anything malformed.

This module is the only place that knows the byte layout. Hot paths that cannot
afford a :class:`Header` per message use its raw helpers instead of their own
``struct`` formats or offsets: :func:`unpack_fields` (the ten fields as a plain
tuple, unvalidated), :func:`pack_header` (a header from its fields, for replies),
:func:`restamp` (a copy of header bytes with another stream id and extra flags, for
a router) and the offsets :data:`FLAGS_OFFSET` and :data:`STREAM_ID_OFFSET`.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "MAGIC", "VERSION", "SEQ_MODULUS", "HEADER_SIZE", "HEADER_FORMAT", "MAX_FRAMES",
    "MAX_JSON_BYTES",
    "START", "END", "RESET", "ERROR", "STATS", "KNOWN_FLAGS",
    "DTYPE_CONTROL", "DTYPE_FLOAT32", "DTYPE_INT16", "REASONS",
    "Header", "WireError", "encode", "encode_with_header", "encode_control", "encode_error",
    "encode_json",
    "decode", "decode_header", "parse_json",
    "FIELDS", "FLAGS_OFFSET", "STREAM_ID_OFFSET", "unpack_fields", "pack_header", "restamp",
]

MAGIC = b"SIGS"
VERSION = 1
HEADER_FORMAT = "<4sBBBBHHIQQdQ16x"
HEADER_SIZE = 64
_FIELDS = struct.Struct("<4sBBBxHxxIQQdQ16x")  # HEADER_FORMAT with the reserved fields as padding
assert _FIELDS.size == struct.calcsize(HEADER_FORMAT) == HEADER_SIZE
_U64 = struct.Struct("<Q")

FIELDS = ("magic", "version", "flags", "dtype", "channels", "frames", "stream_id", "seq",
          "sample_rate", "timestamp_ns")
"""The header fields in byte order, as :func:`unpack_fields` returns them."""
FLAGS_OFFSET = 5
"""Byte offset of the flags (u8)."""
STREAM_ID_OFFSET = 16
"""Byte offset of the stream id (u64, little-endian)."""

START, END, RESET, ERROR, STATS = 0x01, 0x02, 0x04, 0x08, 0x10
KNOWN_FLAGS = START | END | RESET | ERROR | STATS

DTYPE_CONTROL, DTYPE_FLOAT32, DTYPE_INT16 = 0, 1, 2
_ITEMSIZE = {DTYPE_FLOAT32: 4, DTYPE_INT16: 2}
_NP_DTYPE: dict[int, np.dtype] = {DTYPE_FLOAT32: np.dtype("<f4"), DTYPE_INT16: np.dtype("<i2")}

SEQ_MODULUS = 1 << 64
"""Sequence numbers are u64: the one after ``2**64 - 1`` is 0."""

MAX_FRAMES = 1 << 16
"""Default largest N a receiver accepts in one message."""
MAX_JSON_BYTES = 1 << 16
"""Largest JSON payload of a control message."""

REASONS = {
    "frame_count": "a message must have exactly 2 frames (header, payload)",
    "header_size": f"the header frame must be exactly {HEADER_SIZE} bytes",
    "bad_magic": "the header does not start with b'SIGS'",
    "bad_version": f"unsupported wire format version (this side speaks {VERSION})",
    "bad_flags": "unknown flag bits set",
    "bad_dtype": "unknown dtype code (1 = float32, 2 = int16, 0 = control)",
    "bad_channels": "channel count must be >= 1",
    "bad_frames": "frame count must be >= 1 for samples and 0 for control messages",
    "too_large": "frame count or payload larger than the receiver accepts",
    "size_mismatch": "payload size differs from frames * channels * itemsize",
    "bad_sample_rate": "sample rate must be finite and >= 0",
    "non_finite": "payload holds NaN or infinite samples",
    "bad_json": "control payload is not a UTF-8 JSON object",
}
"""Reason codes :func:`decode` raises, with a one-line explanation each."""


class WireError(ValueError):
    """A malformed message. ``reason`` is a short code (see :data:`REASONS`).

    ``header`` is the parsed header when the header itself was valid (so a reply
    can name the stream and sequence number), else None.
    """

    def __init__(self, reason: str, message: str, header: Header | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.header = header


class Header(NamedTuple):
    """The fields of a v1 header (see the module docstring for the byte layout)."""

    stream_id: int = 0
    seq: int = 0
    flags: int = 0
    channels: int = 0
    frames: int = 0
    sample_rate: float = 0.0
    timestamp_ns: int = 0
    dtype: int = DTYPE_FLOAT32
    version: int = VERSION

    @property
    def start(self) -> bool:
        return bool(self.flags & START)

    @property
    def end(self) -> bool:
        return bool(self.flags & END)

    @property
    def reset(self) -> bool:
        return bool(self.flags & RESET)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & ERROR)

    @property
    def is_stats(self) -> bool:
        return bool(self.flags & STATS)

    @property
    def is_control(self) -> bool:
        return self.dtype == DTYPE_CONTROL

    def pack(self) -> bytes:
        """The 64 header bytes."""
        try:
            return _FIELDS.pack(MAGIC, self.version, self.flags, self.dtype, self.channels,
                                self.frames, self.stream_id, self.seq, float(self.sample_rate),
                                self.timestamp_ns)
        except struct.error as err:
            raise ValueError(f"header field out of range: {err} ({self})") from None


def _buffer(frame: Any) -> Any:
    """bytes / memoryview / zmq.Frame -> something ``len`` and numpy can read."""
    buf = getattr(frame, "buffer", None)  # zmq.Frame (recv with copy=False)
    return frame if buf is None else buf


def encode(header: Header, payload: Any = None) -> list[Any]:
    """``[header bytes, payload buffer]``, ready for ``send_multipart(..., copy=False)``.

    ``payload`` is an (N, C) or (N,) array (float32 or int16 are sent as they are,
    other real dtypes as float32), or bytes / None for a control message. The
    header's dtype, channels and frames are taken from the payload. The returned
    payload buffer is the array itself when it is already little-endian and
    C-contiguous (zero-copy): do not modify it until it has been sent.
    """
    return encode_with_header(header, payload)[1]


def encode_with_header(header: Header, payload: Any = None) -> tuple[Header, list[Any]]:
    """``(header as sent, [header bytes, payload buffer])``; see :func:`encode`."""
    if payload is None or isinstance(payload, (bytes, bytearray, memoryview)):
        data = b"" if payload is None else payload
        h = header._replace(dtype=DTYPE_CONTROL, frames=0)
        return h, [h.pack(), data]
    arr = np.asarray(payload)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"payload must have shape (frames, channels), got {arr.shape}")
    if arr.dtype == np.int16:
        code = DTYPE_INT16
    elif arr.dtype.kind in "biuf":
        code = DTYPE_FLOAT32
    else:
        raise ValueError(f"payload must hold real numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=_NP_DTYPE[code])
    h = header._replace(dtype=code, frames=int(arr.shape[0]), channels=int(arr.shape[1]))
    return h, [h.pack(), arr]


def encode_json(header: Header, obj: dict, flags: int) -> list[Any]:
    """A control message with ``flags`` and a JSON payload (ERROR / STATS replies)."""
    data = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    return encode(header._replace(flags=flags, channels=0), data)


def encode_error(header: Header | None, code: str, message: str,
                 reset: bool = False) -> list[Any]:
    """An ERROR reply echoing ``header``'s stream id, sequence number and timestamp.

    The request's START / END / RESET bits are not echoed: a rejected message started,
    ended and reset nothing. ``reset``: the stream's state is gone all the same (a
    router whose worker died), so the ERROR carries RESET."""
    h = header or Header()
    if not (math.isfinite(h.sample_rate) and h.sample_rate >= 0):
        h = h._replace(sample_rate=0.0)  # never echo a value the receiver must reject
    flags = ERROR | (RESET if reset else 0)
    return encode_json(h._replace(version=VERSION), {"code": code, "message": message}, flags)


def encode_control(header: Header) -> list[Any]:
    """A control message (no samples): START / END / RESET only, or a STATS request."""
    return encode(header, None)


def decode_header(data: Any) -> Header:
    """Parse and validate the header frame alone (magic, version, flags, dtype, sizes)."""
    buf = _buffer(data)
    size = len(buf) if not isinstance(buf, memoryview) else buf.nbytes
    if size != HEADER_SIZE:
        raise WireError("header_size", f"header frame has {size} bytes, expected {HEADER_SIZE}")
    magic, version, flags, dtype, channels, frames, stream_id, seq, rate, stamp = \
        _FIELDS.unpack_from(buf)
    if magic != MAGIC:
        raise WireError("bad_magic", f"magic is {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise WireError("bad_version", f"version {version}; this side speaks {VERSION}")
    h = Header(stream_id, seq, flags, channels, frames, rate, stamp, dtype, version)
    if flags & ~KNOWN_FLAGS:
        raise WireError("bad_flags", f"unknown flag bits 0x{flags & ~KNOWN_FLAGS:02x}", h)
    if not (math.isfinite(rate) and rate >= 0.0):
        raise WireError("bad_sample_rate", f"sample rate {rate!r} is not finite and >= 0", h)
    if dtype == DTYPE_CONTROL:
        if frames != 0:
            raise WireError("bad_frames", f"control message (dtype 0) with {frames} frames", h)
    elif dtype in _ITEMSIZE:
        if channels < 1:
            raise WireError("bad_channels", "channel count is 0", h)
        if frames < 1:
            raise WireError("bad_frames", "frame count is 0", h)
    else:
        raise WireError("bad_dtype", f"dtype code {dtype}; use 1 (float32) or 2 (int16)", h)
    return h


def decode(frames: Any, *, max_frames: int = MAX_FRAMES,
           allow_non_finite: bool = False) -> tuple[Header, np.ndarray]:
    """Validate a two-frame message; return ``(header, payload)``.

    For samples the payload is a float32 (N, C) array (int16 scaled by 1/32768);
    it may be a read-only view of the received buffer. For control messages
    (dtype 0) it is a uint8 array of the raw payload bytes (see :func:`parse_json`).
    Raises :class:`WireError` for anything malformed.
    """
    if len(frames) != 2:
        header = None
        if frames:  # name the stream in the reply when the first frame is a valid header
            try:
                header = decode_header(frames[0])
            except WireError as err:
                header = err.header
        raise WireError("frame_count", f"message has {len(frames)} frame(s), expected 2",
                        header)
    h = decode_header(frames[0])
    buf = _buffer(frames[1])
    size = len(buf) if not isinstance(buf, memoryview) else buf.nbytes
    if h.dtype == DTYPE_CONTROL:
        if size > MAX_JSON_BYTES:
            raise WireError("too_large", f"control payload of {size} bytes "
                                         f"(at most {MAX_JSON_BYTES})", h)
        return h, np.frombuffer(buf, dtype=np.uint8)
    if h.frames > max_frames:
        raise WireError("too_large", f"{h.frames} frames in one message; at most {max_frames}", h)
    expected = h.frames * h.channels * _ITEMSIZE[h.dtype]
    if size != expected:
        raise WireError("size_mismatch", f"payload has {size} bytes; {h.frames} frames x "
                                         f"{h.channels} channels of dtype code {h.dtype} "
                                         f"need {expected}", h)
    arr = np.frombuffer(buf, dtype=_NP_DTYPE[h.dtype]).reshape(h.frames, h.channels)
    if h.dtype == DTYPE_INT16:
        arr = arr.astype(np.float32) * np.float32(1.0 / 32768.0)
    else:
        if arr.dtype != np.float32:  # big-endian host
            arr = arr.astype(np.float32)
        if not allow_non_finite and not np.isfinite(arr).all():
            bad = int(np.argmin(np.isfinite(arr).reshape(-1)))
            frame, channel = divmod(bad, h.channels)
            raise WireError("non_finite", f"non-finite sample {float(arr[frame, channel])!r} "
                                          f"at frame {frame}, channel {channel}", h)
    return h, arr


def parse_json(payload: Any) -> dict:
    """The JSON object of a control payload (ERROR / STATS); WireError("bad_json") if not."""
    raw = payload.tobytes() if isinstance(payload, np.ndarray) else bytes(payload)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise WireError("bad_json", f"control payload is not UTF-8 JSON ({err})") from None
    if not isinstance(obj, dict):
        raise WireError("bad_json", f"control payload is a JSON {type(obj).__name__}, "
                                    "expected an object")
    return obj


# -- raw helpers for hot paths (no validation, no Header objects) ---------------------------------

unpack_fields = _FIELDS.unpack_from
"""``unpack_fields(buf, offset=0)``: the header's ten :data:`FIELDS` as a plain tuple
``(magic, version, flags, dtype, channels, frames, stream_id, seq, sample_rate,
timestamp_ns)``, reserved bytes skipped. Nothing is validated: a caller takes its own
fast path only for values it checked, and hands everything else to :func:`decode`."""

pack_header = functools.partial(_FIELDS.pack, MAGIC, VERSION)
"""``pack_header(flags, dtype, channels, frames, stream_id, seq, sample_rate,
timestamp_ns)``: the 64 header bytes of a v1 message (reserved bytes zero), the same
bytes as :meth:`Header.pack` without building a Header; ``struct.error`` for a value
out of range. For replies on a hot path."""


def restamp(header: Any, stream_id: int, flags: int = 0) -> bytearray:
    """A copy of the 64 ``header`` bytes with ``stream_id`` written in and ``flags`` OR-ed in.

    Every other byte is kept as it was (a router forwards what it does not own unchanged).
    """
    out = bytearray(header)
    _U64.pack_into(out, STREAM_ID_OFFSET, stream_id)
    if flags:
        out[FLAGS_OFFSET] |= flags
    return out
