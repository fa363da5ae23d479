"""ONNX export of a streamable model's ``step``.

B: batch (streams), T: time, C: channels.

Graph inputs: ``x`` (B, T, C_in) float32 and one per state leaf, named after the
leaf with dots replaced by ``_`` (``h``, ``c``, ``zi``, ``in_tail``, ``0_buf``);
outputs: ``y`` (B, T', C_out) and ``<leaf>_out`` for every new state leaf. B and
T are dynamic (B only, for the states). The metadata (see
:mod:`sigstream.export.runtime`) is one JSON string under the key
``"sigstream"`` of the model's ``metadata_props``.

The TorchScript-based exporter (``dynamo=False``) is used: it keeps the time
axis of ``nn.LSTM`` dynamic, where torch's default dynamo exporter fixes it to
the example's length.
"""

from __future__ import annotations

import io
import json
import os
import warnings

import onnx
import torch

from sigstream.core import state as st
from sigstream.core.contract import StreamingModule
from sigstream.core.files import write_atomic
from sigstream.export.common import (
    StepWrapper,
    build_meta,
    eval_no_grad,
    example_inputs,
    ignore_fixed_shape_tracer_warnings,
)
from sigstream.export.runtime import META_KEY, onnx_name

__all__ = ["export_onnx", "DEFAULT_OPSET"]

DEFAULT_OPSET = 17

# the legacy exporter's own deprecation notices; every other warning stays visible
_DEPRECATIONS = (
    r"You are using the legacy TorchScript-based ONNX export",
    r"The feature will be removed",
    r"`torch\.jit\.\w+` is deprecated",
)


def export_onnx(model: StreamingModule, path: str | os.PathLike, *, name: str,
                meta: dict | None = None, opset: int = DEFAULT_OPSET) -> dict:
    """Export ``model.step`` to ONNX at ``path`` (written atomically); returns the metadata.

    Load it with :func:`sigstream.export.runtime.load_runner`.
    """
    names = [onnx_name(n) for n in st.leaf_names(model.init_state(1))]
    info = build_meta(model, name, "onnx", meta, opset=int(opset))
    inputs = ["x", *names]
    outputs = ["y", *(f"{n}_out" for n in names)]
    dynamic = {"x": {0: "B", 1: "T"}, "y": {0: "B", 1: "T_out"}}
    dynamic.update({n: {0: "B"} for n in names})
    dynamic.update({f"{n}_out": {0: "B"} for n in names})
    buf = io.BytesIO()
    with eval_no_grad(model), warnings.catch_warnings():
        for message in _DEPRECATIONS:
            warnings.filterwarnings("ignore", message=message, category=DeprecationWarning)
        # the exporter warns about LSTM batch sizes unless h0/c0 are graph inputs: they are
        warnings.filterwarnings("ignore", message=r"Exporting a model to ONNX with a batch_size",
                                category=UserWarning)
        # the exporter's note that it leaves strided slices unfolded (they run as they are)
        warnings.filterwarnings("ignore", message=r"Constant folding - Only steps=1",
                                category=UserWarning)
        # index arrays here are non-negative by construction (the warning's only caveat)
        warnings.filterwarnings("ignore", message=r"Exporting aten::index operator of advanced",
                                category=UserWarning)
        ignore_fixed_shape_tracer_warnings()
        # torch.onnx.export annotates ``f`` as a path only, but its (legacy, dynamo=False)
        # exporter writes to a binary buffer too (torch.serialization._open_file_like)
        torch.onnx.export(
            StepWrapper(model), example_inputs(model), buf,  # type: ignore[arg-type]
            dynamo=False,
            input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
            opset_version=int(opset), do_constant_folding=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(info)
    proto.doc_string = f"sigstream export of {name!r}: step(x, *state) -> (y, *new_state)"
    onnx.checker.check_model(proto)
    write_atomic(path, proto.SerializeToString())
    return info
