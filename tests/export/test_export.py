"""Every built-in model, both formats: parity with eager torch, dynamic B and T, metadata."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable

import numpy as np
import pytest
import torch

from sigstream.core import state as st
from sigstream.core.contract import Identity, StreamingModule, StreamSequential
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
