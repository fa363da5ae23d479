"""One model on any backend: eager torch, or exported to TorchScript / ONNX and loaded back.

:func:`load_model` turns what a user names (a built-in model, a checkpoint, an exported
file) into something streamable on the chosen backend; ``sigstream run``, ``serve`` and
the benchmarks all go through it and :func:`on_backend`, and every export by format
through :func:`export_file`.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from sigstream.core.errors import ConfigError

FORMATS = ("onnx", "torchscript")
BACKENDS = ("torch", *FORMATS)


def export_file(model: Any, path: str, fmt: str, *, name: str, meta: dict | None = None) -> dict:
    """Export ``model``'s step to ``path`` as ``fmt`` (onnx | torchscript); returns its metadata."""
    if fmt == "onnx":
        from sigstream.export.onnx import export_onnx

        return export_onnx(model, path, name=name, meta=meta)
    if fmt == "torchscript":
        from sigstream.export.torchscript import export_torchscript

        return export_torchscript(model, path, name=name, meta=meta)
    from sigstream.core.errors import ConfigError

    raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def on_backend(model: Any, backend: str, *, name: str, threads: int = 1) -> Any:
    """``model`` itself for ``torch``; otherwise a runner of its export (same surface)."""
    if backend == "torch":
        return model
    if backend not in BACKENDS:
        from sigstream.core.errors import ConfigError

        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from sigstream.export.runtime import load_runner

    return load_runner(export_bytes(model, backend, name=name), threads=threads)


def export_bytes(model: Any, fmt: str, *, name: str) -> bytes:
    """``model``'s export as ``fmt`` (onnx | torchscript), as the bytes of its file."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx" if fmt == "onnx" else "model.ts")
        export_file(model, path, fmt, name=name)
        with open(path, "rb") as fh:
            return fh.read()


EXPORTED = {".onnx": "onnx", ".ts": "torchscript"}  # an exported file's suffix -> its runtime


def resolve_backend(spec: str, backend: str | None) -> str:
    """The backend ``spec`` runs on: an exported file's own runtime (ConfigError if
    ``backend`` names another), else ``backend`` or torch."""
    own = EXPORTED.get(os.path.splitext(spec)[1].lower()) if os.path.isfile(spec) else None
    if own is None:
        return backend or "torch"
    if backend not in (None, own):
        raise ConfigError(f"{spec!r} is an exported {own} file and runs on {own}; drop "
                          f"--backend {backend} or give --backend {own}")
    return own


def load_model(spec: str, backend: str = "torch", *, threads: int = 1) -> Any:
    """A streamable model for ``spec`` on ``backend`` (torch | torchscript | onnx).

    ``spec`` is a built-in name (``"extractor"``, ``"butterworth:kind=bandpass,low=3,high=9"``),
    a checkpoint path, or an exported file (``.onnx`` / ``.ts``), which is loaded as it is
    (its own runtime). Registry models and checkpoints are built in torch and, for another
    backend, exported and loaded back. The result has ``hop``, ``latency``, ``init_state``
    and ``step`` whatever the backend; wrap it in a
    :class:`~sigstream.stream.runner.StreamRunner` to stream.
    """
    if os.path.isfile(spec) and os.path.splitext(spec)[1] in (".onnx", ".ts"):
        from sigstream.export.runtime import load_runner

        return load_runner(spec, threads=threads)
    from sigstream.models.registry import build_model

    model = build_model(spec)
    return on_backend(model, backend, name=os.path.basename(spec).split(":")[0],
                      threads=threads)


def export_model(model: Any, path: str | os.PathLike, *, format: str | None = None,
           name: str | None = None) -> dict:
    """Export a model's streaming step to ``path``; returns the metadata stored in the file.

    ``model``: a streamable torch model or a spec :func:`load_model` understands (built-in
    name or checkpoint path). ``format``: ``"onnx"`` or ``"torchscript"`` (default: from
    the suffix, ``.onnx`` -> onnx, ``.ts``/``.pt`` -> torchscript). ``name``: the name
    stored in the file (default: the spec's, or the model class name). Load the file
    with :func:`sigstream.export.runtime.load_runner`. ``sigstream export`` adds a parity
    check against the eager model before it keeps the file.
    """
    if isinstance(model, str):
        from sigstream.models.registry import build_model

        name = name or os.path.basename(model).split(":")[0]
        model = build_model(model)
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    fmt = format or {".onnx": "onnx", ".ts": "torchscript", ".pt": "torchscript"}.get(suffix)
    if fmt is None:
        from sigstream.core.errors import ConfigError

        raise ConfigError(f"cannot tell the export format from {os.fspath(path)!r}; name it "
                          ".onnx or .ts, or pass format='onnx' | 'torchscript'")
    return export_file(model, os.fspath(path), fmt, name=name or type(model).__name__.lower())
