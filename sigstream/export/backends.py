"""One model on any backend: eager torch, or exported to TorchScript / ONNX and loaded back.

``sigstream run``, ``serve`` and the benchmarks all go through :func:`on_backend`, and
every export by format through :func:`export_file`.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

FORMATS = ("onnx", "torchscript")
BACKENDS = ("torch", *FORMATS)


def export_file(model: Any, path: str, fmt: str, *, name: str, meta: dict | None = None) -> dict:
    """Export ``model``'s step to ``path`` as ``fmt`` (onnx | torchscript); returns its metadata."""
    if fmt == "onnx":
        from sigstream.export.onnx import export_onnx as export
    elif fmt == "torchscript":
        from sigstream.export.torchscript import export_torchscript as export
    else:
        from sigstream.core.errors import ConfigError

        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return export(model, path, name=name, meta=meta)


def on_backend(model: Any, backend: str, *, name: str, threads: int = 1) -> Any:
    """``model`` itself for ``torch``; otherwise a runner of its export (same surface)."""
    if backend == "torch":
        return model
    if backend not in BACKENDS:
        from sigstream.core.errors import ConfigError

        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from sigstream.export.runtime import load_runner

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx" if backend == "onnx" else "model.ts")
        export_file(model, path, backend, name=name)
        with open(path, "rb") as fh:
            return load_runner(fh.read(), threads=threads)
