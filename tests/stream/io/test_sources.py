"""Tests for sigstream.stream.io.sources (N: frames, C: channels)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from sigstream.core.errors import ConfigError, InputError
from sigstream.stream.io.sources import ArraySource, NpySource, Source, WavSource


def drain(source: Source, size: int) -> np.ndarray:
    """Read a source to its end with blocks of at most ``size`` frames; check block invariants."""
    blocks = []
    while (block := source.read(size)) is not None:
        assert block.dtype == np.float32
        assert block.flags["C_CONTIGUOUS"]
        assert block.ndim == 2 and block.shape[1] == source.channels
        assert 1 <= block.shape[0] <= size
        blocks.append(block)
    # the end is sticky
    assert source.read(size) is None
    assert source.read(1) is None
    if not blocks:
        return np.empty((0, source.channels), dtype=np.float32)
    return np.concatenate(blocks)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# -- ArraySource ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_array_source_mono_round_trip(rng: np.random.Generator, size: int) -> None:
    x = rng.standard_normal(50)
    src = ArraySource(x, sample_rate=16000)
    assert src.channels == 1
    assert src.sample_rate == 16000.0
    assert src.live is False
    out = drain(src, size)
    assert out.shape == (50, 1)
    np.testing.assert_array_equal(out[:, 0], x.astype(np.float32))
    assert src.frames_read == 50


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_array_source_multichannel_round_trip(rng: np.random.Generator, size: int) -> None:
    x = rng.standard_normal((45, 3)).astype(np.float32)
    with ArraySource(x) as src:
        assert src.channels == 3
        assert src.sample_rate is None
        out = drain(src, size)
    np.testing.assert_array_equal(out, x)
    assert src.frames_read == 45


def test_array_source_block_sizes() -> None:
    src = ArraySource(np.arange(20, dtype=np.int16))
    sizes = []
    while (block := src.read(7)) is not None:
        sizes.append(block.shape[0])
    assert sizes == [7, 7, 6]


def test_array_source_blocks_are_copies() -> None:
    x = np.zeros((10, 2), dtype=np.float32)
    src = ArraySource(x)
    block = src.read(4)
    assert block is not None
    block[:] = 5.0
    assert not x.any()


def test_array_source_empty_ends_immediately() -> None:
    src = ArraySource(np.zeros((0, 2)))
    assert src.channels == 2
    assert src.read(10) is None
    assert src.read(10) is None
    assert src.frames_read == 0


def test_array_source_close_ends() -> None:
    src = ArraySource(np.ones(10))
    src.close()
    assert src.read(5) is None
    src.close()  # idempotent


@pytest.mark.parametrize("bad", [0, -3, 2.5, None, True])
def test_array_source_bad_max_frames(bad: object) -> None:
    src = ArraySource(np.ones(10))
    with pytest.raises(ConfigError, match="max_frames"):
        src.read(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "fast"])
def test_array_source_bad_sample_rate(bad: object) -> None:
    with pytest.raises(ConfigError, match="sample_rate"):
        ArraySource(np.ones(4), sample_rate=bad)  # type: ignore[arg-type]


def test_array_source_non_finite_names_index() -> None:
    x = np.zeros((10, 2))
    x[6, 1] = np.nan
    x[8, 0] = np.inf
    with pytest.raises(InputError, match=r"NaN.*frame 6, channel 1"):
        ArraySource(x)
    y = np.zeros(5, dtype=np.float32)
    y[3] = -np.inf
    with pytest.raises(InputError, match=r"-inf.*frame 3, channel 0"):
        ArraySource(y)


def test_array_source_float32_overflow_rejected() -> None:
    x = np.array([0.0, 1e300])
    with pytest.raises(InputError, match=r"frame 1.*float32 range"):
        ArraySource(x)


@pytest.mark.parametrize(
    "data, pattern",
    [
        (np.zeros((2, 3, 4)), "3-D"),
        (np.array(["a", "b"]), "dtype"),
        (np.array([1 + 2j, 3j]), "complex"),
        (np.array([None, 1.0], dtype=object), "dtype"),
        (np.zeros((5, 0)), "no channels"),
        (np.float32(3.0), "0-D"),
    ],
)
def test_array_source_bad_data(data: np.ndarray, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        ArraySource(data)


# -- NpySource --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(37,), (37, 2)])
@pytest.mark.parametrize("size", [1, 7, 100])
def test_npy_round_trip(tmp_path, rng: np.random.Generator, shape, size: int) -> None:
    x = rng.standard_normal(shape)
    path = tmp_path / "x.npy"
    np.save(path, x)
    with NpySource(path) as src:
        assert src.sample_rate is None
        assert src.channels == (1 if len(shape) == 1 else shape[1])
        out = drain(src, size)
    np.testing.assert_array_equal(out, x.astype(np.float32).reshape(37, -1))
    assert src.frames_read == 37


def test_npy_explicit_sample_rate(tmp_path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.ones(4, dtype=np.int32))
    src = NpySource(str(path), sample_rate=8000)
    assert src.sample_rate == 8000.0
    np.testing.assert_array_equal(drain(src, 3), np.ones((4, 1), dtype=np.float32))


def test_npy_empty_is_allowed(tmp_path) -> None:
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros((0, 2), dtype=np.float32))
    src = NpySource(path)
    assert src.channels == 2
    assert src.read(10) is None
    assert src.read(10) is None


def test_npz_with_sample_rate(tmp_path, rng: np.random.Generator) -> None:
    x = rng.standard_normal((20, 2)).astype(np.float32)
    path = tmp_path / "x.npz"
    np.savez(path, x=x, sample_rate=22050)
    src = NpySource(path)
    assert src.sample_rate == 22050.0
    assert src.channels == 2
    np.testing.assert_array_equal(drain(src, 7), x)
    # an explicit rate that agrees is fine; one that differs is an error
    assert NpySource(path, sample_rate=22050.0).sample_rate == 22050.0
    with pytest.raises(InputError, match=r"22050 Hz.*16000 Hz"):
        NpySource(path, sample_rate=16000)


def test_npz_only_array_and_no_rate(tmp_path) -> None:
    path = tmp_path / "y.npz"
    np.savez_compressed(path, samples=np.arange(6.0))
    src = NpySource(path, sample_rate=100)
    assert src.sample_rate == 100.0
    np.testing.assert_array_equal(drain(src, 4)[:, 0], np.arange(6.0, dtype=np.float32))
    assert NpySource(path).sample_rate is None


def test_npz_ambiguous_and_bad_rate(tmp_path) -> None:
    path = tmp_path / "two.npz"
    np.savez(path, a=np.ones(3), b=np.ones(3))
    with pytest.raises(InputError, match=r"two\.npz'.*several arrays.*'x'"):
        NpySource(path)
    path = tmp_path / "rate.npz"
    np.savez(path, x=np.ones(3), sample_rate=np.array([1.0, 2.0]))
    with pytest.raises(InputError, match="sample_rate"):
        NpySource(path)
    np.savez(path, x=np.ones(3), sample_rate=-5)
    with pytest.raises(InputError, match="positive"):
        NpySource(path)
    np.savez(path, sample_rate=16000)
    with pytest.raises(InputError, match="no sample array"):
        NpySource(path)


def test_npy_missing_file(tmp_path) -> None:
    path = tmp_path / "nope.npy"
    with pytest.raises(InputError, match=r"cannot read '.*nope\.npy': file not found"):
        NpySource(path)


def test_npy_directory(tmp_path) -> None:
    with pytest.raises(InputError, match="directory"):
        NpySource(tmp_path)


def test_npy_garbage_bytes(tmp_path) -> None:
    path = tmp_path / "garbage.npy"
    path.write_bytes(b"this is not a numpy file at all" * 10)
    with pytest.raises(InputError, match=r"'.*garbage\.npy'.*not a \.npy or \.npz"):
        NpySource(path)


def test_npy_empty_file(tmp_path) -> None:
    path = tmp_path / "zero.npy"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"zero\.npy"):
        NpySource(path)


def test_npy_truncated(tmp_path) -> None:
    path = tmp_path / "trunc.npy"
    np.save(path, np.ones(1000))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError, match=r"trunc\.npy.*corrupt or truncated"):
        NpySource(path)


def test_npz_corrupt(tmp_path) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    with pytest.raises(InputError, match=r"bad\.npz"):
        NpySource(path)


def test_npy_three_dimensional(tmp_path) -> None:
    path = tmp_path / "cube.npy"
    np.save(path, np.zeros((4, 3, 2)))
    with pytest.raises(InputError, match=r"'.*cube\.npy'.*3-D"):
        NpySource(path)


def test_npy_nan_value(tmp_path) -> None:
    x = np.zeros((8, 2))
    x[5, 1] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, x)
    with pytest.raises(InputError, match=r"'.*nan\.npy'.*NaN.*frame 5, channel 1"):
        NpySource(path)


def test_npy_object_dtype(tmp_path) -> None:
    path = tmp_path / "obj.npy"
    np.save(path, np.array([1.0, "a", None], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"'.*obj\.npy'.*object"):
        NpySource(path)
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([1.0, None], dtype=object))
    with pytest.raises(InputError, match=r"'.*obj\.npz'.*object"):
        NpySource(path)


def test_npy_non_numeric_dtype(tmp_path) -> None:
    path = tmp_path / "str.npy"
    np.save(path, np.array(["1.0", "2.0"]))
    with pytest.raises(InputError, match=r"'.*str\.npy'.*dtype"):
        NpySource(path)


# -- WavSource --------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [16000, 44100])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [1, 7, 5000])
def test_wav_int16(tmp_path, rng: np.random.Generator, rate, channels, size) -> None:
    ints = rng.integers(-32768, 32768, size=(301, channels), dtype=np.int16)
    ints[0] = -32768
    ints[1] = 32767
    path = tmp_path / "pcm16.wav"
    sf.write(path, ints, rate, subtype="PCM_16")
    with WavSource(path) as src:
        assert src.sample_rate == float(rate)
        assert src.channels == channels
        assert src.live is False
        assert src.total_frames == 301
        out = drain(src, size)
    expected = (ints.astype(np.float64) / 32768.0).astype(np.float32)
    np.testing.assert_array_equal(out, expected)
    assert out.min() >= -1.0 and out.max() < 1.0
    assert src.frames_read == 301


@pytest.mark.parametrize("rate", [16000, 44100])
@pytest.mark.parametrize("channels", [1, 3])
def test_wav_float32_exact(tmp_path, rng: np.random.Generator, rate, channels) -> None:
    x = (rng.standard_normal((257, channels)) * 1.5).astype(np.float32)  # beyond [-1, 1] too
    path = tmp_path / "float.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    src = WavSource(str(path))
    assert (src.sample_rate, src.channels) == (float(rate), channels)
    np.testing.assert_array_equal(drain(src, 64), x)
    src.close()


def test_wav_flac(tmp_path) -> None:
    ints = np.arange(-500, 500, dtype=np.int16).reshape(-1, 2)
    path = tmp_path / "a.flac"
    sf.write(path, ints, 8000)
    src = WavSource(path)
    assert src.sample_rate == 8000.0 and src.channels == 2
    np.testing.assert_array_equal(drain(src, 100), ints / np.float32(32768))


def test_wav_non_finite_rejected(tmp_path) -> None:
    x = np.zeros((100, 2), dtype=np.float32)
    x[70, 1] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    src = WavSource(path)
    assert src.read(50) is not None
    with pytest.raises(InputError, match=r"'.*nan\.wav'.*NaN.*frame 70, channel 1"):
        src.read(50)
    src.close()


def test_wav_does_not_load_whole_file(tmp_path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros((100_000, 1), dtype=np.float32), 16000, subtype="FLOAT")
    src = WavSource(path)
    block = src.read(10)
    assert block is not None and block.shape == (10, 1)
    assert src._file.tell() == 10  # only what was asked for was read
    src.close()
    assert src.read(10) is None


def test_wav_missing_file(tmp_path) -> None:
    with pytest.raises(InputError, match=r"cannot read '.*x\.wav': file not found"):
        WavSource(tmp_path / "x.wav")


def test_wav_directory(tmp_path) -> None:
    with pytest.raises(InputError, match="directory"):
        WavSource(tmp_path)


def test_wav_garbage(tmp_path) -> None:
    path = tmp_path / "junk.wav"
    path.write_bytes(b"RIFF but not really a wav file" * 3)
    with pytest.raises(InputError, match=r"cannot read '.*junk\.wav': not a readable audio"):
        WavSource(path)
