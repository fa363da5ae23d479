"""StreamRunner: owns the state of B streams and steps them together.

B: batch (streams), T: time, C: channels.

Models hold no per-stream data; the runner does. It keeps one batched state for
all its streams, steps them in one model call, resets single streams with a
mask (``where(mask, init, state)``), and adds or removes streams. Any object
with ``init_state(batch)`` / ``step(x, state)`` can be driven: an eager torch
:class:`~sigstream.core.contract.StreamingModule`, a TorchScript module or an
ONNX Runtime session wrapper, which works on numpy arrays.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from sigstream.core import state as st
from sigstream.core.protocol import Streamable, check_chunk


class StreamRunner:
    """Step ``batch`` independent streams of one model in lockstep.

    ``step(x)`` takes a (B, T, C) chunk — a numpy array or a torch tensor —
    and returns the model's output as the same kind of array. T must be a
    multiple of the model's ``hop``.
    """

    def __init__(self, model: Streamable, batch: int = 1, *, validate: bool = True) -> None:
        if batch < 0:
            raise ValueError("batch must be >= 0")
        self.model = model
        self.hop = int(getattr(model, "hop", 1))
        self.latency = int(getattr(model, "latency", 0))
        self.in_channels = int(getattr(model, "in_channels", 0))
        self.validate = validate
        self._torch = _is_torch_model(model)
        self.state = self._init(batch)
        self._batch = batch

    # -- streams -----------------------------------------------------------------
    @property
    def batch(self) -> int:
        return self._batch

    def _init(self, batch: int) -> Any:
        if self._torch:
            import torch

            with torch.inference_mode():
                return self.model.init_state(batch)
        return self.model.init_state(batch)

    def reset(self, streams: int | Sequence[int] | Sequence[bool] | np.ndarray) -> None:
        """Return the chosen streams (indices or a (B,) boolean mask) to their initial state."""
        mask = np.zeros(self._batch, dtype=bool)
        idx = np.asarray(streams)
        if idx.dtype == bool:
            if idx.shape != (self._batch,):
                raise ValueError(f"reset mask must have shape ({self._batch},), got {idx.shape}")
            mask = idx
        else:
            mask[idx] = True
        if not mask.any():
            return
        self.state = st.where(mask, self._init(self._batch), self.state)

    def add_streams(self, n: int = 1) -> list[int]:
        """Append ``n`` fresh streams; returns their indices."""
        first = self._batch
        fresh = self._init(n)
        self.state = fresh if self._batch == 0 else st.concat([self.state, fresh])
        self._batch += n
        return list(range(first, first + n))

    def remove_streams(self, indices: Sequence[int]) -> None:
        """Drop streams; the remaining ones keep their order (and shift down)."""
        keep = np.ones(self._batch, dtype=bool)
        keep[np.asarray(indices, dtype=int)] = False
        self.state = st.select(self.state, keep) if keep.any() else self._init(0)
        self._batch = int(keep.sum())

    # -- stepping ----------------------------------------------------------------
    def step(self, x: Any) -> Any:
        """Advance every stream by one chunk ``x`` (B, T, C); returns (B, T', C')."""
        if self.validate:
            check_chunk(x, self.in_channels, self.hop)
            if x.shape[0] != self._batch:
                raise ValueError(f"chunk has {x.shape[0]} streams, the runner holds {self._batch}")
        if not self._torch:
            y, self.state = self.model.step(x, self.state)
            return y
        import torch

        as_numpy = isinstance(x, np.ndarray)
        with torch.inference_mode():
            xt = torch.from_numpy(x) if as_numpy else x
            y, self.state = self.model.step(xt, self.state)
        return y.numpy() if as_numpy else y


def _is_torch_model(model: Any) -> bool:
    torch = sys.modules.get("torch")  # never import torch here: ONNX runners must work without it
    if torch is None:
        return False
    return isinstance(model, (torch.nn.Module, torch.jit.ScriptModule))
