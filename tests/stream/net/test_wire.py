"""Tests for sigstream.stream.net.wire: the v1 byte layout, round trips, every decode error."""

from __future__ import annotations

import json
import pickle
import struct

import numpy as np
import pytest
import zmq

from sigstream.stream.net import wire
from sigstream.stream.net.wire import Header, WireError


def message(x: np.ndarray | None = None, **fields) -> list[bytes]:
    """An encoded message as plain bytes (what a peer would receive)."""
    h = Header(stream_id=7, seq=3, flags=wire.START, sample_rate=1000.0, timestamp_ns=123)
    frames = wire.encode(h._replace(**fields), x)
    return [bytes(frames[0]), bytes(memoryview(frames[1]))]


def raw_header(**fields) -> bytes:
    """A header packed field by field, bypassing Header's checks."""
    values = dict(magic=b"SIGS", version=1, flags=0, dtype=1, channels=1, frames=4,
                  stream_id=1, seq=0, rate=1000.0, stamp=0)
    values.update(fields)
    return struct.pack("<4sBBBBHHIQQdQ16x", values["magic"], values["version"],
                       values["flags"], values["dtype"], 0, values["channels"], 0,
                       values["frames"], values["stream_id"], values["seq"], values["rate"],
                       values["stamp"])


@pytest.mark.parametrize("channels", [1, 3])
def test_float32_round_trip(channels: int) -> None:
    x = np.random.default_rng(0).standard_normal((50, channels)).astype(np.float32)
    h, y = wire.decode(message(x))
    np.testing.assert_array_equal(y, x)
    assert y.dtype == np.float32 and y.shape == (50, channels)
    assert (h.stream_id, h.seq, h.flags, h.channels, h.frames) == (7, 3, wire.START, channels, 50)
    assert (h.sample_rate, h.timestamp_ns, h.dtype, h.version) == (1000.0, 123, 1, 1)
    assert h.start and not (h.end or h.reset or h.is_error or h.is_stats or h.is_control)


@pytest.mark.parametrize("channels", [1, 3])
def test_int16_round_trip_scales_by_32768(channels: int) -> None:
    k = np.random.default_rng(1).integers(-32768, 32768, (40, channels)).astype(np.int16)
    k[0, 0], k[1, 0] = -32768, 32767
    h, y = wire.decode(message(k))
    assert h.dtype == wire.DTYPE_INT16 and h.channels == channels
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, k.astype(np.float32) / 32768)
    assert y[0, 0] == -1.0 and y[1, 0] == np.float32(32767 / 32768)


def test_one_dimensional_payload_is_one_channel_and_other_dtypes_become_float32() -> None:
    h, y = wire.decode(message(np.arange(5, dtype=np.float64)))
    assert h.channels == 1 and h.dtype == wire.DTYPE_FLOAT32
    np.testing.assert_array_equal(y[:, 0], np.arange(5, dtype=np.float32))


def test_header_byte_layout_matches_the_documented_table() -> None:
    h = Header(stream_id=0x0102030405060708, seq=0x1112131415161718, flags=0x13, channels=3,
               frames=0x0A0B0C0D, sample_rate=48000.0, timestamp_ns=0x2122232425262728,
               dtype=2)
    b = h.pack()
    assert len(b) == wire.HEADER_SIZE == 64
    assert b[0:4] == b"SIGS"
    assert b[4] == 1 and b[5] == 0x13 and b[6] == 2 and b[7] == 0
    assert int.from_bytes(b[8:10], "little") == 3 and b[10:12] == b"\0\0"
    assert int.from_bytes(b[12:16], "little") == 0x0A0B0C0D
    assert int.from_bytes(b[16:24], "little") == 0x0102030405060708
    assert int.from_bytes(b[24:32], "little") == 0x1112131415161718
    assert struct.unpack("<d", b[32:40])[0] == 48000.0
    assert int.from_bytes(b[40:48], "little") == 0x2122232425262728
    assert b[48:64] == bytes(16)


def test_payload_is_sent_zero_copy_and_reserved_bytes_are_ignored() -> None:
    x = np.ones((8, 2), np.float32)
    frames = wire.encode(Header(), x)
    assert frames[1] is x  # already little-endian float32, C order: no copy
    hdr = bytearray(frames[0])
    hdr[7] = hdr[10] = hdr[60] = 0xFF  # reserved
    h, y = wire.decode([bytes(hdr), x.tobytes()])
    assert h.channels == 2 and h.frames == 8
    np.testing.assert_array_equal(y, x)


def test_decode_takes_zmq_frames_and_memoryviews() -> None:
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    hdr, payload = message(x)
    _, y = wire.decode([zmq.Frame(hdr), zmq.Frame(payload)])
    np.testing.assert_array_equal(y, x)
    _, y = wire.decode([memoryview(hdr), memoryview(payload)])
    np.testing.assert_array_equal(y, x)


def test_control_error_and_stats_messages() -> None:
    h = Header(stream_id=5, seq=9, flags=wire.END, timestamp_ns=77)
    err = wire.encode_error(h, "non_finite", "NaN at frame 0")
    got, payload = wire.decode([bytes(err[0]), bytes(err[1])])
    # a rejected END ended nothing: the ERROR does not echo START / END / RESET
    assert got.is_error and not (got.end or got.start or got.reset) and got.is_control
    assert (got.stream_id, got.seq, got.frames, got.timestamp_ns) == (5, 9, 0, 77)
    lost, _ = wire.decode([bytes(b) for b in wire.encode_error(h, "no_workers", "x", True)])
    assert lost.is_error and lost.reset and not lost.end  # the state is gone: RESET
    assert wire.parse_json(payload) == {"code": "non_finite", "message": "NaN at frame 0"}
    req = wire.encode_control(Header(flags=wire.STATS))
    got, payload = wire.decode(req)
    assert got.is_stats and got.dtype == 0 and payload.size == 0
    rep = wire.encode_json(Header(), {"chunks": 3}, wire.STATS)
    assert wire.parse_json(wire.decode(rep)[1]) == {"chunks": 3}


def test_parse_json_rejects_anything_but_a_json_object_and_never_unpickles() -> None:
    for bad in (pickle.dumps({"a": 1}), b"\xff\xfe", b"[1, 2]", b"{"):
        with pytest.raises(WireError) as info:
            wire.parse_json(bad)
        assert info.value.reason == "bad_json"
    assert wire.parse_json(json.dumps({"x": 1}).encode()) == {"x": 1}


def test_encode_rejects_bad_payloads_and_fields() -> None:
    with pytest.raises(ValueError):
        wire.encode(Header(), np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError):
        wire.encode(Header(), np.array(["a"]))
    with pytest.raises(ValueError):
        wire.encode(Header(stream_id=-1), np.zeros(3, np.float32))


GOOD = np.zeros((4, 1), np.float32).tobytes()

DECODE_ERRORS = {
    "one frame": ([raw_header()], "frame_count"),
    "three frames": ([raw_header(), GOOD, b""], "frame_count"),
    "truncated header": ([raw_header()[:40], GOOD], "header_size"),
    "oversized header": ([raw_header() + b"\0", GOOD], "header_size"),
    "bad magic": ([raw_header(magic=b"SIGX"), GOOD], "bad_magic"),
    "unknown version": ([raw_header(version=2), GOOD], "bad_version"),
    "unknown flag bit": ([raw_header(flags=0x20), GOOD], "bad_flags"),
    "unknown dtype": ([raw_header(dtype=3), GOOD], "bad_dtype"),
    "zero channels": ([raw_header(channels=0), b""], "bad_channels"),
    "zero frames": ([raw_header(frames=0), b""], "bad_frames"),
    "control with frames": ([raw_header(dtype=0, frames=4), b""], "bad_frames"),
    "huge frame count": ([raw_header(frames=wire.MAX_FRAMES + 1), GOOD], "too_large"),
    "huge control payload": ([raw_header(dtype=0, frames=0), bytes(wire.MAX_JSON_BYTES + 1)],
                             "too_large"),
    "short payload": ([raw_header(), GOOD[:-1]], "size_mismatch"),
    "long payload": ([raw_header(), GOOD + b"\0\0\0\0"], "size_mismatch"),
    "int16 size": ([raw_header(dtype=2), GOOD], "size_mismatch"),
    "NaN sample rate": ([raw_header(rate=float("nan")), GOOD], "bad_sample_rate"),
    "negative sample rate": ([raw_header(rate=-1.0), GOOD], "bad_sample_rate"),
    "NaN sample": ([raw_header(), np.array([0, np.nan, 0, 0], "<f4").tobytes()], "non_finite"),
    "inf sample": ([raw_header(), np.array([0, 0, np.inf, 0], "<f4").tobytes()], "non_finite"),
    "-inf sample": ([raw_header(), np.array([-np.inf, 0, 0, 0], "<f4").tobytes()],
                    "non_finite"),
}


@pytest.mark.parametrize("case", list(DECODE_ERRORS))
def test_decode_errors(case: str) -> None:
    frames, reason = DECODE_ERRORS[case]
    with pytest.raises(WireError) as info:
        wire.decode(frames)
    assert info.value.reason == reason
    assert reason in wire.REASONS
    assert str(info.value).startswith(reason + ": ")


def test_errors_after_the_header_carry_it() -> None:
    with pytest.raises(WireError) as info:
        wire.decode([raw_header(stream_id=42, seq=8), GOOD[:-4]])
    assert info.value.header is not None
    assert (info.value.header.stream_id, info.value.header.seq) == (42, 8)
    with pytest.raises(WireError) as info:
        wire.decode([raw_header(magic=b"XXXX"), GOOD])
    assert info.value.header is None


def test_max_frames_is_configurable() -> None:
    frames = message(np.zeros((100, 1), np.float32))
    assert wire.decode(frames, max_frames=100)[0].frames == 100
    with pytest.raises(WireError, match="too_large"):
        wire.decode(frames, max_frames=99)


def test_non_finite_samples_pass_when_allowed() -> None:
    x = np.array([[np.nan], [np.inf], [-np.inf], [1.0]], np.float32)
    _, y = wire.decode(message(x), allow_non_finite=True)
    np.testing.assert_array_equal(y, x)
    with pytest.raises(WireError, match="frame 0, channel 0"):
        wire.decode(message(x))


# -- raw helpers for hot paths --------------------------------------------------------------------


def test_raw_helpers_speak_the_documented_layout() -> None:
    h = Header(stream_id=2**64 - 1, seq=2**40 + 5, flags=wire.END | wire.RESET, channels=3,
               frames=70_000, sample_rate=44100.5, timestamp_ns=2**63 + 9, dtype=wire.DTYPE_INT16)
    raw = h.pack()
    assert raw == struct.pack(wire.HEADER_FORMAT, b"SIGS", 1, h.flags, h.dtype, 0, 3, 0, 70_000,
                              h.stream_id, h.seq, 44100.5, h.timestamp_ns)
    fields = wire.unpack_fields(raw)
    assert len(fields) == len(wire.FIELDS) == 10
    assert dict(zip(wire.FIELDS, fields, strict=True)) == dict(
        magic=b"SIGS", version=1, flags=h.flags, dtype=h.dtype, channels=3, frames=70_000,
        stream_id=h.stream_id, seq=h.seq, sample_rate=44100.5, timestamp_ns=h.timestamp_ns)
    assert wire.pack_header(*fields[2:]) == raw  # magic and version are filled in
    assert wire.decode_header(raw) == h
    # reserved bytes (7, 10-11, 48-63) are skipped on read and zero on write
    dirty = bytearray(raw)
    dirty[7], dirty[10], dirty[11], dirty[50] = 1, 2, 3, 4
    assert wire.unpack_fields(bytes(dirty)) == fields
    assert wire.unpack_fields(b"\xff" * 8 + raw, 8) == fields
    with pytest.raises(struct.error):
        wire.pack_header(0, 1, 1, 1, -1, 0, 0.0, 0)


def test_offsets_and_restamp_rewrite_only_the_stream_id_and_flags() -> None:
    raw = raw_header(stream_id=7, seq=11, flags=wire.START, stamp=99)
    assert raw[wire.FLAGS_OFFSET] == wire.START
    assert int.from_bytes(raw[wire.STREAM_ID_OFFSET:wire.STREAM_ID_OFFSET + 8], "little") == 7
    out = wire.restamp(raw, 2**64 - 2, wire.RESET)
    assert isinstance(out, bytearray) and len(out) == wire.HEADER_SIZE
    h = wire.decode_header(bytes(out))
    assert (h.stream_id, h.flags, h.seq, h.timestamp_ns) == (2**64 - 2, wire.START | wire.RESET,
                                                             11, 99)
    changed = [i for i in range(wire.HEADER_SIZE) if out[i] != raw[i]]
    assert set(changed) <= {wire.FLAGS_OFFSET, *range(wire.STREAM_ID_OFFSET,
                                                      wire.STREAM_ID_OFFSET + 8)}
    assert wire.restamp(memoryview(raw), 7) == raw  # same id, no flags: the same bytes
