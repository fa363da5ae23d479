"""The tensor-only Butterworth path (used for export) equals scipy's sosfilt and the eager step."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hs
from scipy import signal

from sigstream.core.testing import chunkings, stream_in_chunks
from sigstream.export.onnx import export_onnx
from sigstream.export.torchscript import export_torchscript, trace_step
from sigstream.models.baselines.butterworth import Butterworth, ButterworthConfig, state_space

CONFIGS = [
    ButterworthConfig(kind="lowpass", order=4, high=40.0),
    ButterworthConfig(kind="highpass", order=2, low=5.0, channels=2),
    ButterworthConfig(kind="bandpass", order=3, low=3.0, high=9.0, channels=3),
    ButterworthConfig(kind="bandstop", order=2, low=45.0, high=55.0),
    ButterworthConfig(kind="bandpass", order=6, low=0.5, high=1.5),  # narrow, slow poles
    ButterworthConfig(kind="bandstop", order=16, low=40.0, high=60.0),  # 16 sections, N = 32
]
IDS = [f"{c.kind}{c.order}" for c in CONFIGS]


def _signal(b: int, t: int, c: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((b, t, c))
                            .astype(np.float32))


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_state_space_impulse_response_is_sosfilt(cfg: ButterworthConfig) -> None:
    a, b, c, d = state_space(cfg.sos())
    impulse = np.zeros(200)
    impulse[0] = 1
    ref = signal.sosfilt(cfg.sos(), impulse)
    s, out = np.zeros(a.shape[0]), []
    for u in impulse:
        out.append(c @ s + d * u)
        s = a @ s + b * u
    np.testing.assert_allclose(out, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@given(data=hs.data())
def test_native_streamed_equals_sosfilt_and_eager(cfg: ButterworthConfig, data) -> None:
    native = Butterworth(cfg, native=True)
    eager = Butterworth(cfg)
    b = data.draw(hs.integers(1, 3), label="batch")
    t = 700
    x = _signal(b, t, cfg.channels, seed=b)
    sizes = data.draw(chunkings(t), label="sizes")
    with torch.inference_mode():
        y = stream_in_chunks(native, x, sizes)
        y_eager = stream_in_chunks(eager, x, sizes)
    ref = signal.sosfilt(cfg.sos(), x.numpy().astype(np.float64), axis=1)
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(y.numpy(), y_eager.numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_native_state_equals_sosfilt_zi(cfg: ButterworthConfig) -> None:
    model = Butterworth(cfg, native=True)
    x = _signal(2, model.max_chunk + 300, cfg.channels)  # longer than one native call
    state = model.init_state(2)
    with torch.inference_mode():
        for a, b in [(0, 1), (1, 64), (64, 65), (65, 200), (200, x.shape[1])]:
            _, state = model.step(x[:, a:b], state)
    s = cfg.sos().shape[0]
    _, zf = signal.sosfilt(cfg.sos(), x.numpy().astype(np.float64), axis=1,
                           zi=np.zeros((s, 2, 2, cfg.channels)))
    assert state.zi.dtype == torch.float64 and state.zi.shape == (2, s, 2, cfg.channels)
    scale = max(1.0, float(np.abs(zf).max()))
    np.testing.assert_allclose(state.zi.numpy(), zf.transpose(1, 0, 2, 3), atol=1e-9 * scale,
                               rtol=0)


def test_native_forward_and_empty_chunk() -> None:
    cfg = ButterworthConfig(kind="bandpass", order=4, low=3, high=30, channels=2)
    native, eager = Butterworth(cfg, native=True), Butterworth(cfg)
    x = _signal(2, 333, 2)
    np.testing.assert_allclose(native(x).numpy(), eager(x).numpy(), atol=1e-5, rtol=0)
    state = native.init_state(2)
    y, same = native.step(x[:, :0], state)
    assert y.shape == (2, 0, 2) and same is state


def test_max_chunk_bounds_the_tables() -> None:
    small = Butterworth(ButterworthConfig(order=2))
    big = Butterworth(ButterworthConfig(kind="bandstop", order=16, low=40, high=60))
    assert small.max_chunk == 4096
    assert big.max_chunk * 2 * big.sos.shape[0] <= 64 * 2048
    assert big.state_dict() == {}  # tables are not weights: checkpoints stay as they were


def test_traced_step_takes_any_length_up_to_max_chunk() -> None:
    model = Butterworth(ButterworthConfig(kind="highpass", order=3, low=2.0, channels=2))
    traced = trace_step(model)
    for b, t in [(1, 1), (3, 63), (2, 64), (1, 65), (2, 1000), (1, model.max_chunk)]:
        x = _signal(b, t, 2, seed=t)
        shape = model.init_state(b).zi.shape  # (B, S, 2, C)
        zi = torch.from_numpy(np.random.default_rng(t).standard_normal(tuple(shape)))
        y, z = traced(x, zi)
        y_ref, z_ref = model.step(x, type(model.init_state(1))(zi))
        np.testing.assert_allclose(y.numpy(), y_ref.numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(z.numpy(), z_ref.zi.numpy(), atol=1e-9, rtol=0)


def test_exporters_hide_only_their_deprecation_warnings(tmp_path) -> None:
    from sigstream.models.layers.recurrent import StatefulGRU

    class Chatty(StatefulGRU):
        """A GRU whose step converts a tensor to a Python bool: a warning of its own."""

        def step(self, x, state):
            if bool(x.shape[1] > 0):  # traced: a TracerWarning raised in this file
                return super().step(x, state)
            return super().step(x, state)

    model = Chatty(1, 4).eval()
    for export, name in [(export_onnx, "m.onnx"), (export_torchscript, "m.pt")]:
        before = list(warnings.filters)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            export(model, tmp_path / name, name="extractor")
            kinds = {r.category.__name__ for r in rec}
            assert not any(issubclass(r.category, DeprecationWarning) for r in rec), kinds
            assert "TracerWarning" in kinds  # the model's own tracer warning is still reported
        assert warnings.filters == before
