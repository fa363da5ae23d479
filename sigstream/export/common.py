"""What both exporters share: the flat step wrapper, example inputs and the metadata.

B: batch (streams), T: time, C: channels.

The exported function is flat: ``(x, *state_leaves) -> (y, *new_state_leaves)``,
with the leaves in the order of :func:`sigstream.core.state.leaves`, so any state
structure (NamedTuple, nested tuples of NamedTuples) goes through.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sigstream.core import state as st
from sigstream.core.contract import StreamingModule
from sigstream.export.runtime import FORMAT, VERSION, onnx_name

__all__ = ["StepWrapper", "example_inputs", "build_meta", "eval_no_grad", "EXAMPLE_BATCH",
           "ignore_fixed_shape_tracer_warnings"]

EXAMPLE_BATCH = 2


class StepWrapper(nn.Module):
    """``forward(x, *leaves) -> (y, *new_leaves)``: a model's ``step`` on flat tensors."""

    def __init__(self, model: StreamingModule) -> None:
        super().__init__()
        self.model = model
        self.template = model.init_state(1)  # structure only; the values are never used

    def forward(self, x: Tensor, *leaves: Tensor) -> tuple[Tensor, ...]:
        state = st.unflatten(self.template, list(leaves))
        y, new = self.model.step(x, state)
        return (y, *st.leaves(new))


def example_inputs(model: StreamingModule, batch: int = EXAMPLE_BATCH) -> tuple[Tensor, ...]:
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


def build_meta(model: StreamingModule, name: str, kind: str, meta: dict | None = None,
               **extra: Any) -> dict:
    """The metadata dict both formats store (JSON-ready)."""
    init = model.init_state(1)
    names, leaves = st.leaf_names(init), st.leaves(init)
    clash = {"x", "y"} & {onnx_name(n) for n in names}
    if clash or len({onnx_name(n) for n in names}) != len(names):
        raise ValueError(f"state leaf names {names} clash with each other or with 'x'/'y'")
    zeros = all(not bool(torch.any(leaf != 0)) for leaf in leaves)
    config = getattr(model, "config", None)
    max_chunk = getattr(model, "max_chunk", None)
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
        "max_chunk": int(max_chunk) if max_chunk else None,
        "accepts_nan": bool(getattr(model, "accepts_nan", False)),
        "state": {
            "names": names,
            "shapes": [list(leaf.shape[1:]) for leaf in leaves],
            "dtypes": [_dtype_name(leaf) for leaf in leaves],
            # per-stream initial values (of B = 1), or None when every leaf starts at zero
            "init": None if zeros else [leaf[0].detach().cpu().tolist() for leaf in leaves],
        },
        "config": (dataclasses.asdict(config)
                   if dataclasses.is_dataclass(config) and not isinstance(config, type)
                   else None),
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


def ignore_fixed_shape_tracer_warnings() -> None:
    """Inside ``warnings.catch_warnings()``: silence the tracer's notes on Python comparisons
    of sizes that no input changes (both exporters trace)."""
    import warnings

    message = "Converting a tensor to a Python boolean"
    # the upsampling block compares lengths fixed by the model's horizon, not by the data,
    # and so does torch's interpolate, which it calls; torch's own RNN code checks the
    # hidden size with a Python comparison
    for module in (r"sigstream\.models\.layers\.blocks", r"torch\.nn\.functional",
                   r"torch\.nn\.modules\.rnn"):
        warnings.filterwarnings("ignore", message=message, module=module)
