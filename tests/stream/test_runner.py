"""StreamRunner: batched streams equal separate streams; mask reset; add/remove streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hs

from sigstream.core import state as st
from sigstream.core.contract import StreamingModule, StreamSequential
from sigstream.core.testing import chunkings, stream_in_chunks
from sigstream.models.baselines.butterworth import Butterworth, ButterworthConfig
from sigstream.models.layers.recurrent import StatefulLSTM
from sigstream.stream.runner import StreamRunner


def model() -> StreamSequential:
    torch.manual_seed(0)
    return StreamSequential(StatefulLSTM(2, 8, 2)).eval()


def test_batched_equals_one_by_one() -> None:
    m = model()
    x = torch.randn(4, 50, 2)
    runner = StreamRunner(m, batch=4)
    outs = [runner.step(x[:, i:i + 10]) for i in range(0, 50, 10)]
    batched = torch.cat(outs, 1)
    for b in range(4):
        single = stream_in_chunks(m, x[b:b + 1], [25, 25])
        torch.testing.assert_close(batched[b:b + 1], single, atol=1e-5, rtol=1e-5)


def test_numpy_in_numpy_out() -> None:
    runner = StreamRunner(model(), batch=2)
    y = runner.step(np.zeros((2, 5, 2), dtype=np.float32))
    assert isinstance(y, np.ndarray) and y.shape == (2, 5, 8)


def test_reset_one_stream_with_mask() -> None:
    m = model()
    x = torch.randn(3, 40, 2)
    runner = StreamRunner(m, batch=3)
    runner.step(x[:, :20])
    runner.reset([1])  # stream 1 starts afresh, the others carry on
    y = runner.step(x[:, 20:])
    fresh = stream_in_chunks(m, x[1:2, 20:], [20])
    carried = stream_in_chunks(m, x[0:1], [20, 20])[:, 20:]
    torch.testing.assert_close(y[1:2], fresh, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y[0:1], carried, atol=1e-5, rtol=1e-5)
    runner.reset(np.array([False, False, True]))
    with pytest.raises(ValueError, match="mask"):
        runner.reset(np.array([True, False]))


def test_add_and_remove_streams() -> None:
    m = model()
    x = torch.randn(3, 30, 2)
    runner = StreamRunner(m, batch=0)
    assert runner.add_streams(2) == [0, 1]
    runner.step(x[:2, :10])
    assert runner.add_streams(1) == [2]
    y = runner.step(x[:, 10:20])
    torch.testing.assert_close(y[2:3], stream_in_chunks(m, x[2:3, 10:20], [10]))
    runner.remove_streams([0])
    assert runner.batch == 2
    y = runner.step(x[1:, 20:30])
    torch.testing.assert_close(y[0:1], stream_in_chunks(m, x[1:2, :30], [10, 10, 10])[:, 20:],
                               atol=1e-5, rtol=1e-5)
    runner.remove_streams([0, 1])
    assert runner.batch == 0


def test_validation_messages() -> None:
    runner = StreamRunner(Butterworth(ButterworthConfig(channels=2)), batch=2)
    with pytest.raises(ValueError, match="channel"):
        runner.step(np.zeros((2, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="streams"):
        runner.step(np.zeros((1, 4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        runner.step(np.zeros((4, 2), dtype=np.float32))


def test_butterworth_batched_reset_matches_scipy() -> None:
    from scipy import signal

    bw = Butterworth(ButterworthConfig(kind="bandpass", low=3, high=30, order=3))
    x = np.random.default_rng(0).standard_normal((2, 300, 1)).astype(np.float32)
    runner = StreamRunner(bw, batch=2)
    runner.step(x[:, :100])
    runner.reset([0])
    y = runner.step(x[:, 100:])
    ref0 = signal.sosfilt(bw.sos, x[0, 100:, 0].astype(np.float64))
    ref1 = signal.sosfilt(bw.sos, x[1, :, 0].astype(np.float64))[100:]
    np.testing.assert_allclose(y[0, :, 0], ref0, atol=1e-5)
    np.testing.assert_allclose(y[1, :, 0], ref1, atol=1e-5)


@given(data=hs.data())
def test_runner_streamed_equals_offline_any_chunking(data) -> None:
    m = model()
    b = data.draw(hs.integers(1, 4), label="batch")
    x = torch.randn(b, 40, 2)
    runner = StreamRunner(m, batch=b)
    outs, pos = [], 0
    for n in data.draw(chunkings(40), label="sizes"):
        outs.append(runner.step(x[:, pos:pos + n].numpy()))
        pos += n
    with torch.inference_mode():
        offline = m(x).numpy()
    np.testing.assert_allclose(np.concatenate(outs, axis=1), offline, atol=1e-5, rtol=1e-5)


# -- stepping a subset of the streams (rows=) ----------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_rows_steps_only_those_streams(backend: str) -> None:
    """Streams stepped at different times (any subset per step) equal each stream alone."""
    from sigstream.export.backends import on_backend

    m = model()
    runner = StreamRunner(on_backend(m, backend, name="lstm"), batch=4)
    x = np.random.default_rng(1).standard_normal((4, 40, 2)).astype(np.float32)
    pos = [0, 0, 0, 0]
    outs: list[list[np.ndarray]] = [[], [], [], []]
    for rows, n in [([0, 2], 5), ([1], 3), ([3, 1, 0], 4), ([0, 1, 2, 3], 6), ([2], 10),
                    ([], 0), ([3], 1)]:
        chunk = np.stack([x[r, pos[r]:pos[r] + n] for r in rows]) if rows else \
            np.zeros((0, n, 2), np.float32)
        y = runner.step(chunk, rows=rows)
        assert y.shape == (len(rows), n, 8)
        for i, r in enumerate(rows):
            outs[r].append(y[i])
            pos[r] += n
    with torch.inference_mode():
        for r in range(4):
            offline = m(torch.from_numpy(x[r:r + 1, :pos[r]])).numpy()[0]
            np.testing.assert_allclose(np.concatenate(outs[r]), offline, atol=1e-5, rtol=1e-5)


def test_rows_leave_other_streams_untouched_and_write_in_place() -> None:
    runner = StreamRunner(model(), batch=3)
    runner.step(np.random.default_rng(2).standard_normal((3, 7, 2)).astype(np.float32))
    before = [leaf.clone() for leaf in st.leaves(runner.state)]
    runner.step(np.ones((1, 4, 2), np.float32), rows=[1])
    after = st.leaves(runner.state)
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a[[0, 2]], b[[0, 2]], atol=0, rtol=0)
        assert not torch.equal(a[1], b[1])
    ids = [id(leaf) for leaf in after]
    runner.step(np.ones((2, 4, 2), np.float32), rows=[2, 0])
    assert [id(leaf) for leaf in st.leaves(runner.state)] == ids  # written in place


class _KeepsLastInput(StreamingModule):
    """y = x; the state is a view of the input's last frame (an aliasing model)."""

    in_channels = out_channels = 1

    def init_state(self, batch: int) -> tuple:
        return (torch.zeros(batch, 1, 1),)

    def step(self, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        return x, (x[:, -1:],)


def test_rows_never_write_into_the_callers_arrays() -> None:
    """A state that is a view of the caller's chunk (or of the output it was given) is copied
    before a rows step writes into it."""
    runner = StreamRunner(_KeepsLastInput(), batch=2)
    x = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
    y = runner.step(x)
    kept_x, kept_y = x.copy(), y.copy()
    runner.step(np.full((1, 2, 1), -9.0, np.float32), rows=[0])
    np.testing.assert_array_equal(x, kept_x)
    np.testing.assert_array_equal(y, kept_y)
    assert runner.state[0][:, 0, 0].tolist() == [-9.0, 5.0]
    # once rows steps are in use, full steps record what they expose: the same holds again
    x2 = np.arange(6, 12, dtype=np.float32).reshape(2, 3, 1)
    y2 = runner.step(x2)
    kept_x2, kept_y2 = x2.copy(), y2.copy()
    runner.step(np.full((1, 1, 1), -7.0, np.float32), rows=[1])
    np.testing.assert_array_equal(x2, kept_x2)
    np.testing.assert_array_equal(y2, kept_y2)
    assert runner.state[0][:, 0, 0].tolist() == [8.0, -7.0]


def test_rows_and_reset_validation() -> None:
    runner = StreamRunner(model(), batch=3)
    runner.reset([])  # an empty selection is a no-op
    runner.reset(np.array([], dtype=int))
    with pytest.raises(ValueError, match="out of range"):
        runner.step(np.zeros((1, 2, 2), np.float32), rows=[3])
    with pytest.raises(ValueError, match="distinct"):
        runner.step(np.zeros((2, 2, 2), np.float32), rows=[1, 1])
    with pytest.raises(ValueError, match="step takes 2"):
        runner.step(np.zeros((1, 2, 2), np.float32), rows=[0, 1])
    with pytest.raises(ValueError, match="out of range"):
        runner.reset([5])
