"""Exported runners: torch-free ONNX runtime, bad files, bad chunks, StreamRunner, long chunks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from scipy import signal

from sigstream.core.contract import StreamingModule
from sigstream.core.errors import InputError
from sigstream.export.onnx import export_onnx
from sigstream.export.runtime import FORMAT, META_KEY, load_runner, read_meta
from sigstream.export.torchscript import export_torchscript
from sigstream.models.baselines.butterworth import Butterworth, ButterworthConfig
from sigstream.models.baselines.savgol import SavgolConfig, savgol_stream
from sigstream.models.extractor.model import ExtractorConfig, FrequencyExtractor
from sigstream.stream.runner import StreamRunner

pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore:Exporting a model to ONNX with a batch_size:UserWarning"),
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"),
]


def _extractor(variant: str = "stateful") -> FrequencyExtractor:
    torch.manual_seed(3)
    return FrequencyExtractor(ExtractorConfig(variant=variant, hidden=16)).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runtime")
    out = {}
    for key, model in {
        "extractor": _extractor(),
        "butterworth": Butterworth(ButterworthConfig(kind="bandpass", order=3, low=3, high=30)),
        "savgol": savgol_stream(SavgolConfig()),
    }.items():
        path = folder / f"{key}.onnx"
        export_onnx(model, path, name=key)
        out[key] = (model.eval(), path)
    return out


def test_onnx_runner_never_imports_torch(files, tmp_path) -> None:
    inputs = np.random.default_rng(0).standard_normal((6, 2, 20, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", inputs)
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from sigstream.export.runtime import load_runner
        from sigstream.stream.runner import StreamRunner
        xs = np.load({str(tmp_path / "x.npy")!r})
        for key in ("extractor", "butterworth"):
            runner = load_runner(sys.argv[1] if key == "extractor" else sys.argv[2])
            state, outs = runner.init_state(2), []
            for x in xs:
                y, state = runner.step(x, state)
                outs.append(y)
            np.save({str(tmp_path)!r} + f"/{{key}}.npy", np.concatenate(outs, axis=1))
            StreamRunner(runner, batch=2).step(xs[0])
        assert "torch" not in sys.modules, "torch was imported"
        print("ok")
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(files["extractor"][1]), str(files["butterworth"][1])],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    x = torch.from_numpy(np.concatenate(list(inputs), axis=1))
    for key in ("extractor", "butterworth"):
        model = files[key][0]
        with torch.inference_mode():
            ref = model.step(x, model.init_state(2))[0].numpy()
        np.testing.assert_allclose(np.load(tmp_path / f"{key}.npy"), ref, atol=1e-4, rtol=0)


def test_stream_runner_with_mask_reset_equals_eager(files) -> None:
    for key in ("extractor", "butterworth", "savgol"):
        model, path = files[key]
        hop = model.hop
        x = np.random.default_rng(1).standard_normal((3, 40 * hop, 1)).astype(np.float32)
        onnx_runner = StreamRunner(load_runner(path), batch=3)
        eager = StreamRunner(model, batch=3)
        outs_o, outs_e = [], []
        for i, (a, b) in enumerate([(0, 7), (7, 20), (20, 21), (21, 40)]):
            if i == 2:
                onnx_runner.reset([False, True, False])
                eager.reset([False, True, False])
            if i == 3:
                onnx_runner.reset([0, 2])
                eager.reset([0, 2])
            chunk = x[:, a * hop:b * hop]
            outs_o.append(onnx_runner.step(chunk))
            outs_e.append(eager.step(chunk))
        np.testing.assert_allclose(np.concatenate(outs_o, 1), np.concatenate(outs_e, 1),
                                   atol=1e-4, rtol=0)
        # and the reset stream really restarted: equals a fresh single stream
        fresh = StreamRunner(model, batch=1).step(x[1:2, 20 * hop:21 * hop])
        np.testing.assert_allclose(outs_o[2][1:2], fresh, atol=1e-4, rtol=0)


def test_state_dtypes_follow_metadata(files) -> None:
    bw = load_runner(files["butterworth"][1])
    assert bw.init_state(2).zi.dtype == np.float64 and bw.init_state(2).zi.shape == (2, 3, 2, 1)
    ex = load_runner(files["extractor"][1])
    assert ex.init_state(1).h.dtype == np.float32 and ex.init_state(1).h.shape == (1, 4, 1, 16)


def test_long_chunks_are_split_at_max_chunk(files) -> None:
    model, path = files["butterworth"]
    runner = load_runner(path)
    assert runner.meta["max_chunk"] == model.max_chunk
    n = model.max_chunk * 2 + 123
    x = np.random.default_rng(2).standard_normal((2, n, 1)).astype(np.float32)
    y, state = runner.step(x, runner.init_state(2))
    ref, zf = signal.sosfilt(model.sos, x.astype(np.float64), axis=1,
                             zi=np.zeros((model.sos.shape[0], 2, 2, 1)))
    np.testing.assert_allclose(y, ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(state.zi, zf.transpose(1, 0, 2, 3), atol=1e-8, rtol=0)


def test_empty_chunk_keeps_state(files) -> None:
    runner = load_runner(files["extractor"][1])
    state = runner.init_state(2)
    _, state = runner.step(np.ones((2, 3, 1), np.float32), state)
    y, same = runner.step(np.zeros((2, 0, 1), np.float32), state)
    assert y.shape == (2, 0, 4) and y.dtype == np.float32
    assert all(a is b for a, b in zip(same, state, strict=True))


def test_step_is_pure(files) -> None:
    runner = load_runner(files["extractor"][1])
    x = np.random.default_rng(3).standard_normal((1, 5, 1)).astype(np.float32)
    s0 = runner.init_state(1)
    y1, s1 = runner.step(x, s0)
    y2, _ = runner.step(x, s1)
    y3, _ = runner.step(x, s1)  # the same state twice gives the same output
    np.testing.assert_array_equal(y2, y3)
    assert not np.array_equal(y1, y2)
    assert all(not leaf.any() for leaf in s0)


@pytest.mark.parametrize(("shape", "dtype", "match"), [
    ((1, 5, 2), np.float64, r"expected \(B, T, 1\) float32 with T a multiple of 16, "
                            r"got \(1, 5, 2\) float64"),
    ((1, 16, 1), np.float64, r"got \(1, 16, 1\) float64"),
    ((1, 17, 1), np.float32, r"T a multiple of 16, got \(1, 17, 1\) float32"),
    ((16, 1), np.float32, r"got \(16, 1\) float32"),
    ((1, 16, 3), np.float32, r"expected \(B, T, 1\)"),
])
def test_bad_chunks_raise_value_error(files, shape, dtype, match) -> None:
    runner = load_runner(files["savgol"][1])
    with pytest.raises(ValueError, match=match):
        runner.step(np.zeros(shape, dtype=dtype), runner.init_state(1))


def test_bad_chunk_messages_for_hop_one_and_state(files) -> None:
    runner = load_runner(files["extractor"][1])
    with pytest.raises(ValueError, match=r"expected \(B, T, 1\) float32, got \(2, 3, 1\) int64"):
        runner.step(np.zeros((2, 3, 1), dtype=np.int64), runner.init_state(2))
    with pytest.raises(ValueError, match=r"got Tensor"):
        runner.step(torch.zeros(1, 3, 1), runner.init_state(1))
    with pytest.raises(ValueError, match="state holds 1 streams, the chunk 2"):
        runner.step(np.zeros((2, 3, 1), np.float32), runner.init_state(1))
    with pytest.raises(ValueError, match="2 leaves"):
        runner.step(np.zeros((1, 3, 1), np.float32), runner.init_state(1)[:1])


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and text
    return text


def test_garbage_and_missing_files_raise_input_error(tmp_path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(InputError, match="not a sigstream export") as err:
        load_runner(garbage)
    _one_line(err)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(InputError):
        load_runner(empty)
    with pytest.raises(InputError, match="file not found") as err:
        load_runner(tmp_path / "missing.onnx")
    _one_line(err)
    text = tmp_path / "notes.pt"
    text.write_text("hello\n" * 50)
    with pytest.raises(InputError):
        load_runner(text)


def _plain_onnx(path, props: dict | None = None) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "T", 1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "plain", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for k, v in (props or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))


def test_valid_onnx_without_metadata_raises_input_error(tmp_path) -> None:
    path = tmp_path / "plain.onnx"
    _plain_onnx(path)
    with pytest.raises(InputError, match="no sigstream metadata") as err:
        load_runner(path)
    _one_line(err)
    _plain_onnx(path, {META_KEY: "{not json"})
    with pytest.raises(InputError, match="not JSON"):
        load_runner(path)
    _plain_onnx(path, {META_KEY: json.dumps({"format": "something-else"})})
    with pytest.raises(InputError, match="not a sigstream export"):
        load_runner(path)
    _plain_onnx(path, {META_KEY: json.dumps({"format": FORMAT, "version": 99})})
    with pytest.raises(InputError, match="version 99"):
        read_meta(path)


def test_zip_without_metadata_raises_input_error(tmp_path) -> None:
    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"nothing")
    with pytest.raises(InputError, match="no sigstream metadata") as err:
        load_runner(path)
    _one_line(err)
    # a TorchScript file saved without our metadata
    traced = torch.jit.trace(torch.nn.Linear(1, 1), torch.zeros(1, 1))
    plain = tmp_path / "plain.pt"
    traced.save(str(plain))
    with pytest.raises(InputError, match="no sigstream metadata"):
        load_runner(plain)


def test_torchscript_with_metadata_but_damaged_archive(tmp_path) -> None:
    path = tmp_path / "model.pt"
    export_torchscript(_extractor(), path, name="extractor")
    with zipfile.ZipFile(path) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith("extra/sigstream.json"))
        meta = zf.read(meta_name)
    broken = tmp_path / "broken.pt"
    with zipfile.ZipFile(broken, "w") as zf:  # metadata present, no TorchScript inside
        zf.writestr(meta_name, meta)
    with pytest.raises(InputError, match="not a loadable TorchScript export"):
        load_runner(broken)


def test_threads_option(files) -> None:
    with pytest.raises(ValueError, match="threads"):
        load_runner(files["extractor"][1], threads=0)
    runner = load_runner(files["extractor"][1], threads=2)
    opts = runner.session.get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1


class _Counter(StreamingModule):
    """A toy model whose state does not start at zero: y = x * n, n += T (n starts at 1)."""

    in_channels = out_channels = 1

    def init_state(self, batch: int) -> tuple:
        return (torch.ones(batch, 1, dtype=torch.float64),)

    def step(self, x: torch.Tensor, state: tuple) -> tuple:
        (n,) = state
        y = x * n[:, None].to(x.dtype)
        return y, (n + x.shape[1],)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_non_zero_initial_state_round_trips(tmp_path, fmt) -> None:
    model = _Counter()
    path = tmp_path / f"counter.{fmt}"
    (export_onnx if fmt == "onnx" else export_torchscript)(model, path, name="counter")
    runner = load_runner(path)
    assert runner.meta["state"]["init"] == [[1.0]] and runner.state_names == ["0"]
    state = runner.init_state(3)
    assert state._fields == ("s0",) and state.s0.dtype == np.float64
    np.testing.assert_array_equal(state.s0, np.ones((3, 1)))
    x = np.ones((3, 4, 1), np.float32)
    y, state = runner.step(x, state)
    y, state = runner.step(x, state)
    np.testing.assert_array_equal(y, np.full((3, 4, 1), 5.0, np.float32))
    np.testing.assert_array_equal(state.s0, np.full((3, 1), 9.0))


def test_malformed_metadata_is_an_input_error(tmp_path) -> None:
    path = tmp_path / "plain.onnx"
    _plain_onnx(path, {META_KEY: json.dumps({
        "format": FORMAT, "version": 1, "name": "x", "hop": 1, "latency": 0, "decimation": 1,
        "in_channels": 1, "out_channels": 1, "state": {"names": ["h"]}})})
    with pytest.raises(InputError, match="malformed sigstream metadata") as err:
        load_runner(path)
    _one_line(err)
