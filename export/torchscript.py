"""TorchScript export of a streamable model's ``step``, and the pieces both exporters share.

B: batch (streams), T: time, C: channels.

The exported function is flat: ``(x, *state_leaves) -> (y, *new_state_leaves)``,
with the leaves in the order of :func:`sigstream.stream.state.leaves`, so any
state structure (NamedTuple, nested tuples of NamedTuples) goes through. The
module is traced with ``torch.jit.trace`` on a B = 2 example: the graph keeps B
and T dynamic (sizes are traced), Python branches are fixed to the example's
(T > 0; runners never call the graph with an empty chunk). The metadata (see
:mod:`sigstream.export.runtime`) is stored as the extra file ``sigstream.json``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
import torch
from torch import Tensor, nn

from sigstream.export.runtime import FORMAT, TS_META_FILE, VERSION, onnx_name
from sigstream.stream import state as st

__all__ = ["export_torchscript", "trace_step", "StepWrapper", "build_meta", "example_inputs"]

EXAMPLE_BATCH = 2


class StepWrapper(nn.Module):
    """``forward(x, *leaves) -> (y, *new_leaves)``: a model's ``step`` on flat tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.template = model.init_state(1)  # structure only; the values are never used

    def forward(self, x: Tensor, *leaves: Tensor) -> tuple[Tensor, ...]:
        state = st.unflatten(self.template, list(leaves))
        y, new = self.model.step(x, state)
        return (y, *st.leaves(new))


def example_inputs(model: nn.Module, batch: int = EXAMPLE_BATCH) -> tuple[Tensor, ...]:
    """A random (B, T, C) chunk (T >= 100, a multiple of the hop) and ``init_state(B)``'s leaves."""
    hop = int(model.hop)
    t = hop * -(-100 // hop)
    limit = getattr(model, "max_chunk", None)
    if limit:
        t = min(t, max(hop, int(limit) // hop * hop))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, t, int(model.in_channels) or 1, generator=gen)
    return (x, *st.leaves(model.init_state(batch)))


def _dtype_name(x: Tensor) -> str:
    return str(x.dtype).removeprefix("torch.")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


def build_meta(model: nn.Module, name: str, kind: str, meta: dict | None = None,
               **extra: Any) -> dict:
    """The metadata dict both formats store (JSON-ready)."""
    init = model.init_state(1)
    names, leaves = st.leaf_names(init), st.leaves(init)
    clash = {"x", "y"} & {onnx_name(n) for n in names}
    if clash or len({onnx_name(n) for n in names}) != len(names):
        raise ValueError(f"state leaf names {names} clash with each other or with 'x'/'y'")
    zeros = all(not bool(torch.any(leaf != 0)) for leaf in leaves)
    config = getattr(model, "config", None)
    out = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "name": name,
        "hop": int(model.hop),
        "latency": int(model.latency),
        "decimation": int(getattr(model, "decimation", 1)),
        "sample_rate": None if model.sample_rate is None else float(model.sample_rate),
        "in_channels": int(model.in_channels),
        "out_channels": int(model.out_channels),
        "max_chunk": int(model.max_chunk) if getattr(model, "max_chunk", None) else None,
        "state": {
            "names": names,
            "shapes": [list(leaf.shape[1:]) for leaf in leaves],
            "dtypes": [_dtype_name(leaf) for leaf in leaves],
            # per-stream initial values (of B = 1), or None when every leaf starts at zero
            "init": None if zeros else [leaf[0].detach().cpu().tolist() for leaf in leaves],
        },
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None,
        "norm": getattr(model, "norm", {}) or {},
        "meta": {**(getattr(model, "meta", None) or {}), **(meta or {})},
        "torch": torch.__version__,
        **extra,
    }
    return json.loads(json.dumps(out, default=_jsonable))


@contextmanager
def eval_no_grad(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the duration; the training flag is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it into place.

    The file gets the usual permissions (0666 minus the umask), like ``open(path, "wb")``.
    """
    path = os.fspath(path)
    tmp = temp_name(path)
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def temp_name(path: str | os.PathLike) -> str:
    """A fresh hidden name in ``path``'s folder for a file that is renamed to ``path`` later."""
    folder, base = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(folder, f".{base}.{os.getpid()}-{secrets.token_hex(4)}.partial")


_TS_DEPRECATION = r"`torch\.jit\.\w+` is deprecated"


def trace_step(model: nn.Module) -> torch.jit.ScriptModule:
    """The traced :class:`StepWrapper` of ``model`` (eval mode, B = 2 example)."""
    wrapper = StepWrapper(model)
    with eval_no_grad(model), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_TS_DEPRECATION, category=DeprecationWarning)
        # torch's own RNN code checks the hidden size with a Python comparison while traced
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean",
                                module=r"torch\.nn\.modules\.rnn")
        return torch.jit.trace(wrapper, example_inputs(model), check_trace=False)


def export_torchscript(model: nn.Module, path_or_buffer: str | os.PathLike | IO[bytes], *,
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
