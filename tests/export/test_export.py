"""Every built-in model, both formats: parity with eager torch, dynamic B and T, metadata."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hs

from sigstream.core import state as st
from sigstream.core.contract import Identity, StreamingModule, StreamSequential
from sigstream.core.testing import chunkings
from sigstream.export.common import example_inputs
from sigstream.export.runtime import (
    META_KEY,
    TS_META_FILE,
    OnnxRunner,
    TorchScriptRunner,
    load_runner,
    read_meta,
)
from sigstream.models.baselines.butterworth import Butterworth, ButterworthConfig
from sigstream.models.baselines.savgol import SavgolConfig, savgol_stream
from sigstream.models.extractor.model import ExtractorConfig, FrequencyExtractor
from sigstream.models.layers.conv import CausalConv1d, CausalResidualBlock
from sigstream.models.layers.recurrent import StatefulGRU


def _extractor(variant: str, frontend: str = "none") -> Callable[[], StreamingModule]:
    def build() -> StreamingModule:
        torch.manual_seed(1)
        m = FrequencyExtractor(ExtractorConfig(variant=variant, hidden=16, frontend=frontend))
        m.set_normalisation(0.25, 1.5)
        m.norm = {"mean": 0.25, "std": 1.5}
        return m

    return build


def _sequential() -> StreamingModule:
    torch.manual_seed(2)
    return StreamSequential(
        CausalConv1d(2, 8, 3, dilation=2, stride=1),
        CausalResidualBlock(8, 3, dilation=4),
        StatefulGRU(8, 6),
    )


def _decimating() -> StreamingModule:
    """Decimation 6 = 3 * 2, with stride-1 layers after each strided conv (they see T' = 0)."""
    torch.manual_seed(3)
    return StreamSequential(
        CausalConv1d(2, 6, 3, dilation=2, stride=3),
        CausalResidualBlock(6, 3, dilation=2),
        CausalConv1d(6, 4, 2, stride=2),
        CausalResidualBlock(4, 3, mode="standard"),
    )


CASES: dict[str, Callable[[], StreamingModule]] = {
    "butterworth-lowpass": lambda: Butterworth(ButterworthConfig()),
    "butterworth-bandpass-2ch": lambda: Butterworth(
        ButterworthConfig(kind="bandpass", order=3, low=3.0, high=9.0, channels=2)),
    "butterworth-narrow": lambda: Butterworth(
        ButterworthConfig(kind="bandpass", order=6, low=0.5, high=1.5)),
    "savgol": lambda: savgol_stream(SavgolConfig()),
    "identity": lambda: Identity(2, 1000.0),
    "extractor-stateful": _extractor("stateful"),
    "extractor-sequence": _extractor("sequence"),
    "extractor-multi": _extractor("multi"),
    "extractor-oscillator": _extractor("multi", "oscillator"),
    "sequential": _sequential,
    "decimating": _decimating,
}
FORMATS = ("onnx", "torchscript")


def build_case(case: str) -> StreamingModule:
    return CASES[case]().eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(case, fmt) -> (model, path, returned_meta)``, each exported once per module."""
    from sigstream.export.onnx import export_onnx
    from sigstream.export.torchscript import export_torchscript

    folder = tmp_path_factory.mktemp("exports")
    cache: dict[tuple[str, str], tuple] = {}

    def get(case: str, fmt: str):
        if (case, fmt) not in cache:
            model = build_case(case)
            path = folder / f"{case}.{'onnx' if fmt == 'onnx' else 'pt'}"
            export = export_onnx if fmt == "onnx" else export_torchscript
            meta = export(model, path, name=case, meta={"case": case})
            cache[case, fmt] = (model, path, meta)
        return cache[case, fmt]

    return get


pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore:Exporting a model to ONNX with a batch_size:UserWarning"),
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:DeprecationWarning"),
]
ATOL = 1e-4
MATRIX = [pytest.param(c, f, id=f"{c}-{f}") for c in CASES for f in FORMATS]


def _eager_step(model, x: np.ndarray, state):
    with torch.inference_mode():
        y, state = model.step(torch.from_numpy(x), state)
    return y.numpy(), state


def _assert_state_close(runner_state, eager_state) -> None:
    eager = st.leaves(eager_state)
    assert len(runner_state) == len(eager)
    for got, want in zip(runner_state, eager, strict=True):
        assert got.dtype == want.numpy().dtype
        np.testing.assert_allclose(got, want.numpy(), atol=ATOL, rtol=0)


@pytest.mark.parametrize(("case", "fmt"), MATRIX)
def test_parity_over_consecutive_chunks(exported, case: str, fmt: str) -> None:
    model, path, _ = exported(case, fmt)
    runner = load_runner(path)
    assert isinstance(runner, OnnxRunner if fmt == "onnx" else TorchScriptRunner)
    rng = np.random.default_rng(0)
    units = [1, 0, 3, 1, 50, 0, 2, *rng.integers(0, 24, size=28)]  # 35 chunks, in hops
    s_run, s_eager = runner.init_state(2), model.init_state(2)
    c = model.in_channels
    for u in units:
        x = rng.standard_normal((2, int(u) * model.hop, c)).astype(np.float32)
        y, s_run = runner.step(x, s_run)
        y_ref, s_eager = _eager_step(model, x, s_eager)
        assert y.shape == y_ref.shape and y.dtype == np.float32
        np.testing.assert_allclose(y, y_ref, atol=ATOL, rtol=0)
    _assert_state_close(s_run, s_eager)


@pytest.mark.parametrize(("case", "fmt"), MATRIX)
def test_dynamic_batch_and_time(exported, case: str, fmt: str) -> None:
    model, path, _ = exported(case, fmt)
    runner = load_runner(path)
    example_t = example_inputs(model)[0].shape[1]
    rng = np.random.default_rng(1)
    for b in (1, 3):
        for units in (1, 5, 37):
            t = units * model.hop
            assert t != example_t
            x = rng.standard_normal((b, t, model.in_channels)).astype(np.float32)
            y, s = runner.step(x, runner.init_state(b))
            y_ref, s_ref = _eager_step(model, x, model.init_state(b))
            np.testing.assert_allclose(y, y_ref, atol=ATOL, rtol=0)
            _assert_state_close(s, s_ref)


@pytest.mark.parametrize(("case", "fmt"), MATRIX)
def test_metadata_round_trip(exported, case: str, fmt: str) -> None:
    model, path, returned = exported(case, fmt)
    runner = load_runner(path)
    meta = runner.meta
    assert meta == returned == read_meta(path)
    assert meta["format"] == "sigstream-export" and meta["version"] == 1
    assert meta["kind"] == fmt and meta["name"] == case and meta["meta"] == {"case": case}
    for key in ("hop", "latency", "decimation", "in_channels", "out_channels"):
        assert meta[key] == getattr(model, key) == getattr(runner, key)
    assert runner.sample_rate == model.sample_rate
    init = model.init_state(1)
    assert meta["state"]["names"] == runner.state_names == st.leaf_names(init)
    assert meta["state"]["shapes"] == [list(leaf.shape[1:]) for leaf in st.leaves(init)]
    assert meta["state"]["dtypes"] == [str(leaf.dtype)[6:] for leaf in st.leaves(init)]
    config = getattr(model, "config", None)
    if dataclasses.is_dataclass(config):
        assert meta["config"] == json.loads(json.dumps(dataclasses.asdict(config)))
    assert meta["norm"] == getattr(model, "norm", {})
    fresh = runner.init_state(4)
    assert fresh._fields == tuple(runner.state_fields)
    for got, want in zip(fresh, st.leaves(model.init_state(4)), strict=True):
        np.testing.assert_array_equal(got, want.numpy())
        assert got.dtype == want.numpy().dtype


def test_metadata_is_stored_where_documented(exported) -> None:
    import onnx

    _, onnx_path, _ = exported("extractor-multi", "onnx")
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    meta = json.loads(props[META_KEY])
    assert meta["norm"] == {"mean": 0.25, "std": 1.5}
    assert meta["config"]["variant"] == "multi" and meta["config"]["hidden"] == 16
    assert meta["state"]["names"] == ["h", "c"] and meta["state"]["shapes"] == [[1, 1, 16]] * 2
    _, ts_path, _ = exported("butterworth-bandpass-2ch", "torchscript")
    extra = {TS_META_FILE: ""}
    torch.jit.load(str(ts_path), _extra_files=extra)
    meta = json.loads(extra[TS_META_FILE])
    assert meta["state"]["dtypes"] == ["float64"] and meta["state"]["shapes"] == [[3, 2, 2]]


def test_onnx_graph_names(exported) -> None:
    import onnx

    _, path, _ = exported("sequential", "onnx")
    graph = onnx.load(str(path)).graph
    leaves = ["0_buf", "0_rem", "1_buf", "1_rem", "2_h"]
    assert [i.name for i in graph.input] == ["x", *leaves]
    assert [o.name for o in graph.output] == ["y", *(f"{n}_out" for n in leaves)]
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in graph.input}
    assert dims["x"] == ["B", "T", 2] and dims["2_h"] == ["B", 1, 6]
    _, path, _ = exported("extractor-stateful", "onnx")
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["x", "h", "c"]


@pytest.mark.parametrize("case", ["extractor-sequence", "butterworth-bandpass-2ch", "savgol"])
def test_torchscript_round_trip_through_bytesio(case: str) -> None:
    from sigstream.export.torchscript import export_torchscript

    model = build_case(case)
    buf = io.BytesIO()
    meta = export_torchscript(model, buf, name=case)
    buf.seek(0)
    runner = load_runner(buf)
    assert runner.meta == meta and runner.kind == "torchscript"
    again = load_runner(buf.getvalue())  # bytes work too
    rng = np.random.default_rng(2)
    s1, s2, s_ref = runner.init_state(2), again.init_state(2), model.init_state(2)
    for u in (1, 4, 9, 2):
        x = rng.standard_normal((2, u * model.hop, model.in_channels)).astype(np.float32)
        y1, s1 = runner.step(x, s1)
        y2, s2 = again.step(x, s2)
        y_ref, s_ref = _eager_step(model, x, s_ref)
        np.testing.assert_allclose(y1, y_ref, atol=ATOL, rtol=0)
        np.testing.assert_array_equal(y1, y2)


class _WindowNet(torch.nn.Module):
    """A non-causal window model (N, W, C) -> (N, W, C) mixing its whole window."""

    def __init__(self, window: int) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.mix = torch.nn.Linear(window, window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mix(x.transpose(1, 2)).transpose(1, 2))


@pytest.mark.parametrize(("window", "hop"), [(16, 16), (7, 3), (48, 47)])
@pytest.mark.parametrize("fmt", FORMATS)
def test_crossfade_shapes_export(tmp_path, window: int, hop: int, fmt: str) -> None:
    from sigstream.core.crossfade import OverlapCrossfade
    from sigstream.export.onnx import export_onnx
    from sigstream.export.torchscript import export_torchscript

    model = OverlapCrossfade(_WindowNet(window), window, hop, in_channels=2).eval()
    path = tmp_path / f"cf.{fmt}"
    (export_onnx if fmt == "onnx" else export_torchscript)(model, path, name="crossfade")
    runner = load_runner(path)
    rng = np.random.default_rng(5)
    s_run, s_eager = runner.init_state(3), model.init_state(3)
    for u in [1, 0, 4, 2, 9, 1, 3]:
        x = rng.standard_normal((3, u * hop, 2)).astype(np.float32)
        y, s_run = runner.step(x, s_run)
        y_ref, s_eager = _eager_step(model, x, s_eager)
        np.testing.assert_allclose(y, y_ref, atol=ATOL, rtol=0)
    _assert_state_close(s_run, s_eager)


# -- decimation: output counts follow each stream's phase in the graphs too ----------------
# 30 chunks: single samples, chunks that leave partial groups of 3 and of 6, whole groups
DECIMATING_SIZES = [1, 1, 1, 2, 5, 5, 5, 1, 7, 4, 6, 11, 1, 3, 2, 13, 8, 1, 1, 6, 17, 9, 1,
                    5, 12, 2, 23, 1, 4, 10]


@pytest.mark.parametrize("fmt", FORMATS)
def test_decimating_export_streams_like_eager_and_offline(exported, fmt: str) -> None:
    model, path, _ = exported("decimating", fmt)
    runner = load_runner(path)
    x = np.random.default_rng(6).standard_normal((2, sum(DECIMATING_SIZES), 2)).astype(
        np.float32)
    s_run, s_eager, outs, pos = runner.init_state(2), model.init_state(2), [], 0
    for n in DECIMATING_SIZES:
        y, s_run = runner.step(x[:, pos:pos + n], s_run)
        y_ref, s_eager = _eager_step(model, x[:, pos:pos + n], s_eager)
        assert y.shape == y_ref.shape  # 0, 1 or more frames, as the phase says
        np.testing.assert_allclose(y, y_ref, atol=1e-5, rtol=0)
        outs.append(y)
        pos += n
    _assert_state_close(s_run, s_eager)
    with torch.inference_mode():
        offline = model(torch.from_numpy(x)).numpy()
    assert offline.shape[1] == sum(DECIMATING_SIZES) // 6
    np.testing.assert_allclose(np.concatenate(outs, axis=1), offline, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def traced_decimating():
    from sigstream.export.torchscript import trace_step

    model = build_case("decimating")
    return model, trace_step(model)


def _traced_steps(traced, x: torch.Tensor, state: list, sizes: list[int]):
    """Concatenated outputs of the traced step over ``sizes``; returns (y, state leaves)."""
    outs, pos = [], 0
    with torch.inference_mode():
        for n in sizes:
            y, *state = traced(x[:, pos:pos + n], *state)
            outs.append(y)
            pos += n
    return torch.cat(outs, dim=1), state


@given(data=hs.data())
def test_traced_decimation_streams_like_offline(traced_decimating, data) -> None:
    """The traced step, over any chunking (empty and 1-sample chunks included)."""
    model, traced = traced_decimating
    batch = data.draw(hs.integers(1, 3), label="batch")
    sizes = data.draw(chunkings(60), label="sizes")
    x = torch.randn(batch, 60, 2, generator=torch.Generator().manual_seed(batch))
    y, _ = _traced_steps(traced, x, st.leaves(model.init_state(batch)), sizes)
    with torch.inference_mode():
        torch.testing.assert_close(y, model(x), atol=1e-5, rtol=1e-5)


@given(data=hs.data())
def test_traced_decimation_at_different_phases(traced_decimating, data) -> None:
    """Streams brought to their own phases one by one, then stepped together by the traced
    graph in chunks that are multiples of the decimation: each equals its offline output."""
    model, traced = traced_decimating
    prefixes = data.draw(hs.lists(hs.integers(0, 17), min_size=3, max_size=3), label="prefixes")
    sizes = data.draw(chunkings(48, 6), label="sizes")
    x = torch.randn(3, 18 + 48, 2, generator=torch.Generator().manual_seed(7))
    heads, states = [], []
    for b, p in enumerate(prefixes):
        y, leaves = _traced_steps(traced, x[b:b + 1], st.leaves(model.init_state(1)), [p])
        heads.append(y)
        states.append(leaves)
    tail = torch.stack([x[b, p:p + 48] for b, p in enumerate(prefixes)])  # (3, 48, 2)
    state = [torch.cat(leaf, dim=0) for leaf in zip(*states, strict=True)]
    y, _ = _traced_steps(traced, tail, state, sizes)
    with torch.inference_mode():
        for b, p in enumerate(prefixes):
            want = model(x[b:b + 1, :p + 48])
            torch.testing.assert_close(torch.cat([heads[b], y[b:b + 1]], dim=1), want,
                                       atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["torch", *FORMATS])
def test_runner_reset_off_the_stride_grid(backend: str) -> None:
    """A stream reset at a sample that is not a multiple of the stride: stepped on with chunks
    that are multiples of the decimation, every stream equals its own offline output; a chunk
    that would give the streams different frame counts is refused, and nothing changes."""
    from sigstream.export.backends import on_backend
    from sigstream.stream.runner import StreamRunner

    model = build_case("decimating")
    runner = StreamRunner(on_backend(model, backend, name="decimating"), batch=3)
    x = np.random.default_rng(8).standard_normal((3, 10 + 60, 2)).astype(np.float32)
    before = [runner.step(x[:, a:b]) for a, b in ((0, 4), (4, 5), (5, 10))]
    runner.reset([1])  # at sample 10: phase 1 of the stride-3 conv, 1 of the stride-2 one
    after, pos = [], 10
    for n in (6, 12, 6, 18, 6, 12):
        if pos == 34:
            refused = (ValueError, "multiple of the stride") if backend == "torch" else (
                Exception, "(?i)out of (data )?(range|bounds)")
            with pytest.raises(refused[0], match=refused[1]):
                runner.step(x[:, pos:pos + 5])
        after.append(runner.step(x[:, pos:pos + n]))
        pos += n
    head, tail = np.concatenate(before, axis=1), np.concatenate(after, axis=1)
    assert tail.shape == (3, 10, 4)
    with torch.inference_mode():
        for b in (0, 2):
            want = model(torch.from_numpy(x[b:b + 1])).numpy()[0]
            np.testing.assert_allclose(np.concatenate([head[b], tail[b]]), want, atol=1e-5,
                                       rtol=0)
        np.testing.assert_allclose(head[1], model(torch.from_numpy(x[1:2, :10])).numpy()[0],
                                   atol=1e-5, rtol=0)
        np.testing.assert_allclose(tail[1], model(torch.from_numpy(x[1:2, 10:])).numpy()[0],
                                   atol=1e-5, rtol=0)
