"""Pipeline: re-blocking, drain at end and on stop, pacing, stats, errors abort the sink."""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest
import torch
from scipy import signal

from sigstream.core.contract import Identity
from sigstream.core.errors import ConfigError, InputError
from sigstream.models.baselines.butterworth import Butterworth, ButterworthConfig
from sigstream.models.baselines.savgol import SavgolConfig, savgol_stream
from sigstream.stream.io.sinks import ArraySink, NpySink
from sigstream.stream.io.sources import ArraySource, Source
from sigstream.stream.pipeline import Pipeline, PipelineConfig
from sigstream.stream.stage import ModelStage


class RaggedSource(Source):
    """Delivers an array in pseudo-random chunk sizes, ignoring the requested size pattern."""

    def __init__(self, data: np.ndarray, rate: float = 1000.0, seed: int = 0) -> None:
        self._data, self.sample_rate, self.channels = data, rate, data.shape[1]
        self._pos, self._rng = 0, np.random.default_rng(seed)

    def _read(self, max_frames: int) -> np.ndarray | None:
        n = int(self._rng.integers(1, max_frames + 1))
        out = self._data[self._pos:self._pos + n]
        self._pos += len(out)
        return out.copy() if len(out) else None


def signal_2ch(n: int = 3001) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, 2)).astype(np.float32)


@pytest.mark.parametrize("block", [1, 37, 256, 1024, 5000])
def test_butterworth_pipeline_equals_sosfilt(block: int) -> None:
    x = signal_2ch()
    cfg = ButterworthConfig(kind="bandpass", low=2, high=50, channels=2)
    sink = ArraySink()
    stats = Pipeline(RaggedSource(x), [ModelStage(Butterworth(cfg))], sink,
                     PipelineConfig(block=block)).run()
    ref = signal.sosfilt(cfg.sos(), x.astype(np.float64), axis=0)
    np.testing.assert_allclose(sink.data, ref, atol=1e-5, rtol=0)
    assert stats.samples_in == stats.samples_out == len(x)
    assert stats.chunks == -(-len(x) // block)
    assert stats.compute.count == stats.chunks


class MixedSource(Source):
    """Whole blocks, now and then a third of one, every 11th block read-only; keeps what it
    handed out, to check that nobody wrote into it."""

    def __init__(self, data: np.ndarray, block: int) -> None:
        self._data, self.sample_rate, self.channels = data, 1000.0, data.shape[1]
        self._pos, self._block, self._k = 0, block, 0
        self.given: list[tuple[np.ndarray, np.ndarray]] = []
        self.asked: list[int] = []

    def _read(self, max_frames: int) -> np.ndarray | None:
        self._k += 1
        self.asked.append(max_frames)
        n = max_frames if self._k % 7 != 3 else max(1, self._block // 3)
        out = self._data[self._pos:self._pos + n].copy()
        self._pos += len(out)
        if self._k % 11 == 0:
            out.setflags(write=False)
        self.given.append((out, out.copy()))
        return out if len(out) else None


def test_whole_blocks_skip_the_ring_and_the_output_is_the_same() -> None:
    """A writable source block of exactly ``block`` frames while the ring is empty goes
    straight to the stages (no copy through the ring) and is not written; after a short
    read the pipeline asks for what completes the block, so whole blocks follow again. The
    output equals sosfilt over the whole input, every frame once, in order."""
    block = 64
    x = signal_2ch(4000)
    cfg = ButterworthConfig(kind="bandpass", low=2, high=50, channels=2)
    sink = ArraySink()
    src = MixedSource(x, block)
    pipe = Pipeline(src, [ModelStage(Butterworth(cfg))], sink, PipelineConfig(block=block))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's warning on a read-only array
        stats = pipe.run()
    ref = signal.sosfilt(cfg.sos(), x.astype(np.float64), axis=0)
    np.testing.assert_allclose(sink.data, ref, atol=1e-5, rtol=0)
    assert stats.samples_in == stats.samples_out == len(x)
    assert all(np.array_equal(a, b) for a, b in src.given)
    assert 64 - 21 in src.asked  # the rest of a block after a third of one
    # the ring carried the short reads, their completions and the read-only blocks only
    assert 0 < pipe.ring.total_read < len(x) // 2


@pytest.mark.parametrize("length", [0, 5, 160, 1001])
def test_window_model_pipeline_drains_partial_block(length: int) -> None:
    model = savgol_stream(SavgolConfig(window=32, hop=8, length=9, order=2))
    x = np.random.default_rng(2).standard_normal((length, 1)).astype(np.float32)
    sink = ArraySink()
    Pipeline(ArraySource(x, 1000.0), [ModelStage(model)], sink, PipelineConfig(block=16)).run()
    with torch.inference_mode():
        offline = model(torch.from_numpy(x)[None])[0].numpy()
    assert sink.data.shape[0] == length  # every sample that entered left
    np.testing.assert_allclose(sink.data.reshape(-1, 1) if length else sink.data[:0],
                               offline, atol=1e-5)


def test_block_not_multiple_of_hop() -> None:
    model = savgol_stream(SavgolConfig(window=32, hop=8, length=9, order=2))
    with pytest.raises(ConfigError, match="multiple of the model's hop 8; use --block 24"):
        Pipeline(ArraySource(np.zeros((10, 1)), 1000.0), [ModelStage(model)], ArraySink(),
                 PipelineConfig(block=21))


def test_channel_and_rate_mismatch() -> None:
    bw = ModelStage(Butterworth(ButterworthConfig(channels=1, sample_rate=1000.0)))
    with pytest.raises(InputError, match="2 channel"):
        Pipeline(ArraySource(np.zeros((10, 2)), 1000.0), [bw], ArraySink())
    with pytest.raises(InputError, match="16000 Hz but the model expects 1000 Hz"):
        Pipeline(ArraySource(np.zeros((10, 1)), 16000.0), [bw], ArraySink())


class FailingStage:
    hop, latency, in_channels, out_channels = 1, 0, 1, 1

    def __init__(self, fail_after: int) -> None:
        self.calls, self.fail_after = 0, fail_after

    def process(self, block: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls > self.fail_after:
            raise RuntimeError("boom")
        return block


def test_error_aborts_sink_and_leaves_no_file(tmp_path) -> None:
    out = tmp_path / "out.npy"
    with pytest.raises(RuntimeError, match="boom"):
        Pipeline(ArraySource(np.zeros((1000, 1)), 1000.0), [FailingStage(3)], NpySink(out),
                 PipelineConfig(block=100)).run()
    assert list(tmp_path.iterdir()) == []


def test_stop_drains_everything_that_entered() -> None:
    x = np.arange(100000, dtype=np.float32)[:, None]
    sink = ArraySink()
    pipe = Pipeline(ArraySource(x, 1000.0), [ModelStage(Identity(1))], sink,
                    PipelineConfig(block=64, realtime=True))
    timer = threading.Timer(0.3, pipe.stop)
    timer.start()
    stats = pipe.run()
    timer.cancel()
    n = stats.samples_in
    assert 0 < n < len(x)  # it stopped early ...
    np.testing.assert_array_equal(sink.data, x[:n])  # ... and wrote every sample that entered
    assert stats.samples_out == n


def test_realtime_pacing_and_stats() -> None:
    x = np.zeros((300, 1), dtype=np.float32)  # 0.3 s at 1 kHz
    statuses = []
    pipe = Pipeline(ArraySource(x, 1000.0), [ModelStage(Identity(1))], ArraySink(),
                    PipelineConfig(block=30, realtime=True, status_interval=0.05))
    t0 = time.perf_counter()
    stats = pipe.run(on_status=lambda s: statuses.append(s.chunks))
    wall = time.perf_counter() - t0
    assert wall >= 0.29  # paced: cannot finish before the signal's own duration
    assert statuses and statuses == sorted(statuses)
    summary = stats.summary()
    assert summary["samples_in"] == 300 and summary["chunks"] == 10
    assert summary["compute"]["p50_us"] > 0 and summary["latency"]["p99_us"] > 0
    assert summary["real_time_factor"] >= 0.95


def test_max_frames() -> None:
    sink = ArraySink()
    stats = Pipeline(ArraySource(np.ones((1000, 1)), 1000.0), [], sink,
                     PipelineConfig(block=64, max_frames=300)).run()
    assert stats.samples_in == 300 and sink.data.shape == (300, 1)
