"""TorchScript export of a streamable model's ``step``.

B: batch (streams), T: time, C: channels.

The exported function is flat: ``(x, *state_leaves) -> (y, *new_state_leaves)``,
with the leaves in the order of :func:`sigstream.core.state.leaves`, so any
state structure (NamedTuple, nested tuples of NamedTuples) goes through. The
module is traced with ``torch.jit.trace`` on a B = 2 example: the graph keeps B
and T dynamic (sizes are traced), Python branches are fixed to the example's
(T > 0; runners never call the graph with an empty chunk). The metadata (see
:mod:`sigstream.export.runtime`) is stored as the extra file ``sigstream.json``.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from typing import IO

import torch

from sigstream.core.contract import StreamingModule
from sigstream.core.files import write_atomic
from sigstream.export.common import (
    StepWrapper,
    build_meta,
    eval_no_grad,
    example_inputs,
    ignore_fixed_shape_tracer_warnings,
)
from sigstream.export.runtime import TS_META_FILE

__all__ = ["export_torchscript", "trace_step"]

_TS_DEPRECATION = r"`torch\.jit\.\w+` is deprecated"


def trace_step(model: StreamingModule) -> torch.jit.ScriptModule:
    """The traced :class:`StepWrapper` of ``model`` (eval mode, B = 2 example)."""
    wrapper = StepWrapper(model)
    with eval_no_grad(model), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_TS_DEPRECATION, category=DeprecationWarning)
        ignore_fixed_shape_tracer_warnings()
        return torch.jit.trace(wrapper, example_inputs(model), check_trace=False)


def export_torchscript(model: StreamingModule, path_or_buffer: str | os.PathLike | IO[bytes], *,
                       name: str, meta: dict | None = None) -> dict:
    """Trace ``model.step`` and save it with its metadata; returns the metadata.

    ``path_or_buffer``: a file path (written atomically) or a writable binary buffer.
    Load it with :func:`sigstream.export.runtime.load_runner`.
    """
    traced = trace_step(model)
    info = build_meta(model, name, "torchscript", meta)
    extra = {TS_META_FILE: json.dumps(info)}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_TS_DEPRECATION, category=DeprecationWarning)
        torch.jit.save(traced, buf, _extra_files=extra)
    if isinstance(path_or_buffer, str | os.PathLike):
        write_atomic(path_or_buffer, buf.getvalue())
    else:
        path_or_buffer.write(buf.getvalue())
    return info
