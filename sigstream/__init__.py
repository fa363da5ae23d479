"""sigstream: real-time streaming signal processing with small neural models.

The public API, for streaming a model in your own program::

    import numpy as np
    import sigstream

    model = sigstream.load_model("butterworth:kind=lowpass,high=50")  # or a checkpoint / .onnx
    runner = sigstream.StreamRunner(model, batch=2)      # two independent streams
    for chunk in np.split(np.random.randn(2, 1000, 1).astype(np.float32), 10, axis=1):
        y = runner.step(chunk)                           # == the offline output, piece by piece
    runner.reset([1])                                    # stream 1 starts afresh

    sigstream.export_model("extractor", "extractor.onnx")  # the streaming step as ONNX
    onnx_model = sigstream.load_runner("extractor.onnx") # ONNX Runtime, no torch needed

(``sigstream.export`` is the export sub-package; the function is ``export_model``.)
Names are imported on first use, so ``import sigstream`` stays light (no torch until a
torch model is built). ``python -m sigstream`` is the command line.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "__version__", "load_model", "StreamRunner", "Pipeline", "PipelineConfig", "export_model",
    "load_runner", "StreamingModule", "StreamSequential", "SigstreamError", "ConfigError",
    "InputError",
]

_WHERE = {
    "load_model": "sigstream.export.backends",
    "export_model": "sigstream.export.backends",
    "load_runner": "sigstream.export.runtime",
    "StreamRunner": "sigstream.stream.runner",
    "Pipeline": "sigstream.stream.pipeline",
    "PipelineConfig": "sigstream.stream.pipeline",
    "StreamingModule": "sigstream.core.contract",
    "StreamSequential": "sigstream.core.contract",
    "SigstreamError": "sigstream.core.errors",
    "ConfigError": "sigstream.core.errors",
    "InputError": "sigstream.core.errors",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("sigstream")
        except PackageNotFoundError:  # pragma: no cover - a bare checkout
            return "0+unknown"
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'sigstream' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
