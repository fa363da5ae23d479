"""The public API at ``import sigstream`` and ``python -m sigstream``."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import numpy as np
import pytest
import torch

import sigstream


def test_names_and_version() -> None:
    assert sigstream.__version__ == version("sigstream")
    for name in sigstream.__all__:
        assert getattr(sigstream, name) is not None, name
    assert set(sigstream.__all__) <= set(dir(sigstream))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sigstream.nope  # noqa: B018


def test_import_is_light() -> None:
    """``import sigstream`` (and the command line's --help) load no torch."""
    code = ("import sys, sigstream, sigstream.cli.main as m; m.build_parser(); "
            "print(sorted(k for k in ('torch', 'zmq', 'onnxruntime') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_load_model_stream_and_reset_like_offline() -> None:
    model = sigstream.load_model("butterworth:kind=lowpass,high=50")
    x = np.random.default_rng(0).standard_normal((2, 600, 1)).astype(np.float32)
    runner = sigstream.StreamRunner(model, batch=2)
    y = np.concatenate([runner.step(c) for c in np.split(x, 6, axis=1)], axis=1)
    with torch.inference_mode():
        np.testing.assert_allclose(y, model(torch.from_numpy(x)).numpy(), atol=1e-5)
    runner.reset([1])
    y1 = runner.step(x[:, :100])
    with torch.inference_mode():
        np.testing.assert_allclose(y1[1], model(torch.from_numpy(x[1:2, :100])).numpy()[0],
                                   atol=1e-5)


@pytest.mark.parametrize("suffix", [".onnx", ".ts"])
def test_export_and_load_runner(tmp_path, suffix: str) -> None:
    path = tmp_path / f"m{suffix}"
    meta = sigstream.export_model("extractor", path)
    assert meta["name"] == "extractor" and meta["kind"] == ("onnx" if suffix == ".onnx"
                                                              else "torchscript")
    runner = sigstream.StreamRunner(sigstream.load_runner(str(path)), batch=1)
    eager = sigstream.StreamRunner(sigstream.load_model("extractor"), batch=1)
    x = np.random.default_rng(1).standard_normal((1, 300, 1)).astype(np.float32)
    for chunk in np.split(x, [1, 7, 100], axis=1):
        np.testing.assert_allclose(runner.step(chunk), eager.step(chunk), atol=1e-4)
    with pytest.raises(sigstream.ConfigError, match="export format"):
        sigstream.export_model("extractor", tmp_path / "m.bin")


def test_python_dash_m() -> None:
    p = subprocess.run([sys.executable, "-m", "sigstream", "--version"], capture_output=True,
                       text=True)
    assert p.returncode == 0 and p.stdout.strip() == f"sigstream {sigstream.__version__}"
