"""Tests for sigstream.stream.io.sinks (N: frames, C: channels)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from sigstream.core.errors import ConfigError, InputError
from sigstream.stream.io.sinks import ArraySink, NpySink, NullSink, Sink, WavSink
from sigstream.stream.io.sources import NpySource, Source, WavSource


def blocks_of(x: np.ndarray, size: int) -> list[np.ndarray]:
    return [x[i : i + size] for i in range(0, x.shape[0], size)]


def read_all(source: Source) -> np.ndarray:
    parts = []
    while (block := source.read(1000)) is not None:
        parts.append(block)
    source.close()
    return np.concatenate(parts) if parts else np.empty((0, source.channels), np.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(99)


# -- ArraySink / NullSink ---------------------------------------------------------------------


def test_array_sink_collects_and_counts(rng: np.random.Generator) -> None:
    x = rng.standard_normal((1000, 2)).astype(np.float32)
    sink = ArraySink()
    sink.open(16000, 2)
    assert sink.data.shape == (0, 2)
    for block in blocks_of(x, 7):
        sink.write(block)
    assert sink.frames_written == 1000
    sink.close()
    assert sink.sample_rate == 16000.0 and sink.channels == 2
    np.testing.assert_array_equal(sink.data, x)
    assert sink.data.dtype == np.float32 and sink.data.flags["C_CONTIGUOUS"]


def test_array_sink_copies_blocks() -> None:
    sink = ArraySink()
    sink.open(None, 1)
    block = np.ones((4, 1), dtype=np.float32)
    sink.write(block)
    block[:] = 7.0
    np.testing.assert_array_equal(sink.data, np.ones((4, 1), dtype=np.float32))
    snapshot = sink.data
    sink.write(np.full((10_000, 1), 2.0, dtype=np.float32))  # forces the buffer to grow
    np.testing.assert_array_equal(snapshot, np.ones((4, 1), dtype=np.float32))
    assert sink.data.shape == (10_004, 1)


def test_array_sink_empty_and_never_opened() -> None:
    sink = ArraySink()
    assert sink.data.shape == (0, 0)
    with ArraySink() as sink:
        sink.open(8000, 3)
    assert sink.data.shape == (0, 3) and sink.data.dtype == np.float32
    assert sink.frames_written == 0


def test_array_sink_converts_dtype_and_ignores_empty() -> None:
    sink = ArraySink()
    sink.open(None, 2)
    sink.write(np.array([[1, 2], [3, 4]], dtype=np.int32))
    sink.write(np.zeros((0, 2), dtype=np.float32))
    sink.write(np.asfortranarray(np.ones((3, 2))))
    assert sink.frames_written == 5
    assert sink.data.dtype == np.float32
    np.testing.assert_array_equal(sink.data[:2], [[1, 2], [3, 4]])


def test_null_sink_counts() -> None:
    with NullSink() as sink:
        sink.open(48000, 1)
        for n in (5, 0, 17, 1):
            sink.write(np.zeros((n, 1), dtype=np.float32))
        assert sink.frames_written == 23
    assert sink.frames_written == 23
    assert isinstance(sink, Sink)


@pytest.mark.parametrize(
    "block, pattern",
    [
        (np.zeros((4, 3), np.float32), "3 channel"),
        (np.zeros(4, np.float32), "shape"),
        (np.zeros((2, 2, 2), np.float32), "shape"),
        (np.array([[None, None]], dtype=object), "real numbers"),
        (np.zeros((2, 2), np.complex64), "real numbers"),
        ([[0.0, 0.0]], "numpy arrays"),
    ],
)
def test_sink_rejects_bad_blocks(block, pattern: str) -> None:
    sink = NullSink()
    sink.open(None, 2)
    with pytest.raises(InputError, match=pattern):
        sink.write(block)
    assert sink.frames_written == 0


@pytest.mark.parametrize("rate, channels", [(0, 1), (-1.0, 1), (float("nan"), 1), (100, 0)])
def test_sink_open_validates(rate, channels) -> None:
    with pytest.raises(ConfigError):
        ArraySink().open(rate, channels)


def test_sink_lifecycle_misuse() -> None:
    sink = ArraySink()
    with pytest.raises(RuntimeError):
        sink.write(np.zeros((1, 1), np.float32))
    sink.open(None, 1)
    with pytest.raises(RuntimeError):
        sink.open(None, 1)
    sink.close()
    sink.close()  # idempotent
    sink.abort()  # no-op after a successful close
    with pytest.raises(RuntimeError):
        sink.write(np.zeros((1, 1), np.float32))


# -- NpySink ----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_npy_sink_round_trip(tmp_path, rng: np.random.Generator, channels: int) -> None:
    x = rng.standard_normal((5000, channels)).astype(np.float32)
    path = tmp_path / "out.npy"
    with NpySink(path) as sink:
        sink.open(16000, channels)
        for block in blocks_of(x, 333):
            sink.write(block)
        assert sink.frames_written == 5000
    loaded = np.load(path)
    assert loaded.dtype == np.float32 and loaded.shape == (5000, channels)
    np.testing.assert_array_equal(loaded, x)
    np.testing.assert_array_equal(read_all(NpySource(path)), x)
    assert sorted(os.listdir(tmp_path)) == ["out.npy"]


def test_npz_sink_round_trip(tmp_path, rng: np.random.Generator) -> None:
    x = rng.standard_normal((100, 2)).astype(np.float32)
    path = tmp_path / "out.npz"
    with NpySink(path) as sink:
        sink.open(22050, 2)
        sink.write(x)
    with np.load(path) as npz:
        assert sorted(npz.files) == ["sample_rate", "x"]
        assert float(npz["sample_rate"]) == 22050.0
    src = NpySource(path)
    assert src.sample_rate == 22050.0
    np.testing.assert_array_equal(read_all(src), x)


def test_npz_sink_without_rate(tmp_path) -> None:
    path = tmp_path / "norate.npz"
    with NpySink(path) as sink:
        sink.open(None, 1)
        sink.write(np.ones((3, 1), np.float32))
    with np.load(path) as npz:
        assert npz.files == ["x"]
    assert NpySource(path).sample_rate is None


def test_npy_sink_empty_output(tmp_path) -> None:
    path = tmp_path / "empty.npy"
    with NpySink(path) as sink:
        sink.open(None, 2)
    assert np.load(path).shape == (0, 2)


def test_npy_sink_keeps_exact_name(tmp_path) -> None:
    path = tmp_path / "result.data"
    with NpySink(path) as sink:
        sink.open(None, 1)
        sink.write(np.ones((2, 1), np.float32))
    assert sorted(os.listdir(tmp_path)) == ["result.data"]  # np.save did not append .npy
    np.testing.assert_array_equal(np.load(path), np.ones((2, 1), np.float32))


# -- WavSink ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [16000, 44100])
@pytest.mark.parametrize("channels", [1, 3])
def test_wav_sink_float_round_trip(tmp_path, rng: np.random.Generator, rate, channels) -> None:
    x = (rng.standard_normal((2000, channels)) * 2).astype(np.float32)
    path = tmp_path / "out.wav"
    with WavSink(path) as sink:
        assert sink.subtype == "FLOAT"
        sink.open(rate, channels)
        for block in blocks_of(x, 256):
            sink.write(block)
    info = sf.info(path)
    assert (info.format, info.subtype, info.samplerate) == ("WAV", "FLOAT", rate)
    src = WavSource(path)
    assert (src.sample_rate, src.channels) == (float(rate), channels)
    np.testing.assert_array_equal(read_all(src), x)


@pytest.mark.parametrize("channels", [1, 3])
def test_wav_sink_pcm16_round_trip(tmp_path, rng: np.random.Generator, channels) -> None:
    x = rng.uniform(-1.0, 1.0, size=(3000, channels)).astype(np.float32)
    path = tmp_path / "pcm.wav"
    with WavSink(path, subtype="pcm_16") as sink:
        sink.open(16000.0, channels)
        sink.write(x)
    assert sf.info(path).subtype == "PCM_16"
    y = read_all(WavSource(path))
    assert y.shape == x.shape
    # soundfile writes round(x * 32767) and reads k / 32768
    np.testing.assert_allclose(y, x, rtol=0, atol=1.5 / 32768)
    ints, _ = sf.read(path, dtype="int16", always_2d=True)
    np.testing.assert_array_equal(y, ints / np.float32(32768))


def test_wav_sink_pcm16_clips(tmp_path) -> None:
    path = tmp_path / "clip.wav"
    with WavSink(path, subtype="PCM_16") as sink:
        sink.open(8000, 1)
        sink.write(np.array([[1.5], [-3.0], [1.0], [-1.0], [0.0]], np.float32))
    ints, _ = sf.read(path, dtype="int16")
    np.testing.assert_array_equal(ints, [32767, -32768, 32767, -32768, 0])


def test_wav_sink_flac_by_extension(tmp_path) -> None:
    path = tmp_path / "out.flac"
    sink = WavSink(path)
    assert (sink.format, sink.subtype) == ("FLAC", "PCM_16")
    with sink:
        sink.open(16000, 2)
        sink.write(np.full((10, 2), 0.25, np.float32))
    assert sf.info(path).format == "FLAC"
    np.testing.assert_array_equal(read_all(WavSource(path)), np.full((10, 2), 0.25, np.float32))


def test_wav_sink_needs_sample_rate(tmp_path) -> None:
    sink = WavSink(tmp_path / "out.wav")
    with pytest.raises(ConfigError, match="WAV output needs a sample rate"):
        sink.open(None, 1)
    with pytest.raises(ConfigError, match="whole number"):
        WavSink(tmp_path / "out.wav").open(16000.5, 1)
    assert os.listdir(tmp_path) == []


def test_wav_sink_bad_subtype(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"subtype 'PCM_99'.*FLOAT"):
        WavSink(tmp_path / "out.wav", subtype="PCM_99")


# -- output errors and atomicity --------------------------------------------------------------

FILE_SINKS = [
    pytest.param(lambda p: NpySink(p), "out.npy", id="npy"),
    pytest.param(lambda p: NpySink(p), "out.npz", id="npz"),
    pytest.param(lambda p: WavSink(p), "out.wav", id="wav-float"),
    pytest.param(lambda p: WavSink(p, subtype="PCM_16"), "out.wav", id="wav-pcm16"),
]


@pytest.mark.parametrize("make, name", FILE_SINKS)
def test_missing_directory(tmp_path, make, name) -> None:
    path = tmp_path / "no" / "such" / name
    sink = make(path)
    with pytest.raises(InputError, match=r"cannot write '.*': directory '.*such' does not exist"):
        sink.open(16000, 1)
    sink.abort()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("make, name", FILE_SINKS)
def test_output_is_directory(tmp_path, make, name) -> None:
    (tmp_path / name).mkdir()
    with pytest.raises(InputError, match="is a directory"):
        make(tmp_path / name).open(16000, 1)


@pytest.mark.parametrize("make, name", FILE_SINKS)
def test_parent_is_a_file(tmp_path, make, name) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        make(tmp_path / "file" / name).open(16000, 1)


@pytest.mark.parametrize("make, name", FILE_SINKS)
def test_final_path_absent_while_writing(tmp_path, make, name) -> None:
    path = tmp_path / name
    sink = make(path)
    sink.open(16000, 2)
    sink.write(np.zeros((100, 2), np.float32))
    assert not path.exists()
    temps = os.listdir(tmp_path)
    assert len(temps) == 1 and temps[0].startswith(".") and temps[0].endswith(".part")
    sink.write(np.zeros((100, 2), np.float32))
    assert not path.exists()
    sink.close()
    assert os.listdir(tmp_path) == [name]
    sink.close()
    sink.abort()  # after a successful close the output stays
    assert os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("make, name", FILE_SINKS)
def test_abort_removes_everything(tmp_path, make, name) -> None:
    sink = make(tmp_path / name)
    sink.open(16000, 1)
    sink.write(np.zeros((50, 1), np.float32))
    sink.abort()
    assert os.listdir(tmp_path) == []
    sink.abort()  # idempotent
    sink.close()  # no-op after abort
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("make, name", FILE_SINKS)
def test_exit_with_exception_aborts(tmp_path, make, name) -> None:
    with pytest.raises(KeyError):
        with make(tmp_path / name) as sink:
            sink.open(16000, 1)
            sink.write(np.zeros((50, 1), np.float32))
            raise KeyError("boom")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("make, name", FILE_SINKS)
def test_existing_output_replaced_only_at_close(tmp_path, make, name) -> None:
    path = tmp_path / name
    path.write_bytes(b"old")
    sink = make(path)
    sink.open(16000, 1)
    sink.write(np.ones((10, 1), np.float32) * 0.5)
    assert path.read_bytes() == b"old"
    sink.abort()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == [name]
    with make(path) as sink:
        sink.open(16000, 1)
        sink.write(np.ones((10, 1), np.float32) * 0.5)
    assert path.read_bytes() != b"old"
    assert os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("make, name", FILE_SINKS)
def test_failed_close_cleans_up(tmp_path, make, name) -> None:
    path = tmp_path / name
    sink = make(path)
    sink.open(16000, 1)
    sink.write(np.zeros((10, 1), np.float32))
    path.mkdir()  # the rename onto the final path will fail
    (path / "keep").write_text("x")
    with pytest.raises(InputError, match="cannot write"):
        sink.close()
    assert sorted(os.listdir(tmp_path)) == [name]
    assert os.listdir(path) == ["keep"]


@pytest.mark.parametrize("make, name", FILE_SINKS)
def test_output_permissions_follow_umask(tmp_path, make, name) -> None:
    umask = os.umask(0o022)
    try:
        with make(tmp_path / name) as sink:
            sink.open(16000, 1)
            sink.write(np.zeros((10, 1), np.float32))
    finally:
        os.umask(umask)
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
