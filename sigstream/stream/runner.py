"""StreamRunner: owns the state of B streams and steps them together.

B: batch (streams), T: time, C: channels.

Models hold no per-stream data; the runner does. It keeps one batched state for
all its streams, steps them in one model call, resets single streams with a
mask (``where(mask, init, state)``), and adds or removes streams. Any object
with ``init_state(batch)`` / ``step(x, state)`` can be driven: an eager torch
:class:`~sigstream.core.contract.StreamingModule`, a TorchScript module or an
ONNX Runtime session wrapper, which works on numpy arrays.

A decimating model with hop 1 (``decimation`` D > 1) gives stream b ``(phase_b + T) // D``
output rows for a chunk of T, where ``phase_b`` counts its samples since its last output;
streams reset or added off the D-sample grid sit at other phases than the rest, so their
counts differ by one. Such a model returns the largest count for every stream, stream b's
rows past its own count being padding (NaN); the runner keeps the phases and gives each
step's counts in :attr:`StreamRunner.counts` (:meth:`StreamRunner.split` cuts the rows).
"""

from __future__ import annotations

import sys
import weakref
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
        self.decimation = int(getattr(model, "decimation", 1) or 1)
        # phases matter only when a chunk may end inside a group (hop not a multiple of D)
        self._phased = self.decimation > 1 and self.hop % self.decimation != 0
        self.phase = np.zeros(batch, dtype=np.int64)  # samples since each stream's last output
        # output rows of each stepped stream in the last step (None: all of them, always so
        # unless the model decimates with a hop that is not a multiple of its decimation)
        self.counts: np.ndarray | None = None
        self.validate = validate
        self._torch = _is_torch_model(model)
        self.state = self._init(batch)
        self._batch = batch
        self._exposed: tuple[weakref.ref, weakref.ref] | None = None
        # set by the first ``rows`` step: only then do full steps record what they expose
        # (a runner that always steps every stream pays nothing for in-place writes)
        self._partial = False

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
        """Return the chosen streams (indices or a (B,) boolean mask) to their initial state.

        An empty selection is a no-op.
        """
        idx = np.asarray(streams)
        if idx.dtype == bool:
            if idx.shape != (self._batch,):
                raise ValueError(f"reset mask must have shape ({self._batch},), got {idx.shape}")
            mask = idx
        else:
            if idx.size == 0:
                return
            mask = np.zeros(self._batch, dtype=bool)
            mask[self._rows(idx)] = True
        if not mask.any():
            return
        self.state = st.where(mask, self._init(self._batch), self.state)
        self.phase[mask] = 0

    def add_streams(self, n: int = 1) -> list[int]:
        """Append ``n`` fresh streams; returns their indices."""
        first = self._batch
        fresh = self._init(n)
        self.state = fresh if self._batch == 0 else st.concat([self.state, fresh])
        self.phase = np.concatenate([self.phase, np.zeros(n, dtype=np.int64)])
        self._batch += n
        return list(range(first, first + n))

    def remove_streams(self, indices: Sequence[int]) -> None:
        """Drop streams; the remaining ones keep their order (and shift down)."""
        keep = np.ones(self._batch, dtype=bool)
        keep[np.asarray(indices, dtype=int)] = False
        self.state = st.select(self.state, keep) if keep.any() else self._init(0)
        self.phase = self.phase[keep]
        self._batch = int(keep.sum())

    # -- stepping ----------------------------------------------------------------
    def step(self, x: Any, rows: Sequence[int] | np.ndarray | None = None) -> Any:
        """Advance streams by one chunk ``x`` (B, T, C); returns (B, T', C').

        ``rows=None``: every stream, B == :attr:`batch`. ``rows``: only those streams (distinct
        indices, B == len(rows), row i of ``x`` belongs to stream ``rows[i]``); the others keep
        their state untouched. The stepped rows are written into the runner's state in
        place, so a step of k streams costs O(k x state), not O(all streams).
        """
        if rows is None:
            if self.validate:
                self._check(x, self._batch)
            y, self.state = self._step(x, self.state)
            self._advance(slice(None), x.shape[1])
            if self._partial:  # the new state may share memory with x or y, which the caller
                # holds: remember them, so that the next ``rows`` step copies such leaves first
                self._exposed = (weakref.ref(x), weakref.ref(y))
            return y
        idx = self._rows(rows)
        if self.validate:
            self._check(x, len(idx))
            if len(np.unique(idx)) != len(idx):
                raise ValueError(f"rows must be distinct stream indices, got {idx.tolist()}")
        if len(idx) == self._batch and (idx == np.arange(self._batch)).all():
            return self.step(x)
        y, new = self._step(x, st.select(self.state, idx))
        if not self._partial:  # the first rows step: what full steps exposed is unknown,
            self.state = st.map_state(_copy, self.state)  # so own every leaf (once)
            self._partial = True
        elif self._exposed is not None:
            alive = [a for a in (ref() for ref in self._exposed) if a is not None]
            self.state = st.private(self.state, *alive)
            self._exposed = None
        st.assign(self.state, idx, new)
        self._advance(idx, x.shape[1])
        return y

    def _advance(self, idx: Any, t: int) -> None:
        """Move the stepped streams' phases on by ``t`` samples and record their counts."""
        if self._phased:
            total = self.phase[idx] + t
            self.counts = total // self.decimation
            self.phase[idx] = total % self.decimation

    def split(self, y: Any) -> list[Any]:
        """The last step's output ``y`` (B, T', C') cut to each stream's own rows: a list of
        B arrays (rows ``:counts[b]``; all T' rows unless the model decimates)."""
        counts = self.counts if self.counts is not None else [y.shape[1]] * y.shape[0]
        return [y[b, :int(n)] for b, n in enumerate(counts)]

    def _rows(self, rows: Any) -> np.ndarray:
        idx = np.asarray(rows)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise ValueError(f"rows must be a 1-D list of stream indices, got {rows!r}")
        idx = idx.astype(np.intp, copy=False)
        if idx.size and (idx.min() < 0 or idx.max() >= self._batch):
            raise ValueError(f"stream index out of range: the runner holds {self._batch} "
                             f"streams, got {idx.tolist()}")
        return idx

    def _check(self, x: Any, streams: int) -> None:
        check_chunk(x, self.in_channels, self.hop)
        if x.shape[0] != streams:
            raise ValueError(f"chunk has {x.shape[0]} streams, the step takes {streams}"
                             + ("" if streams == self._batch else
                                f" (rows of the {self._batch} the runner holds)"))

    def _step(self, x: Any, state: Any) -> tuple[Any, Any]:
        if not self._torch:
            return self.model.step(x, state)
        import torch

        as_numpy = isinstance(x, np.ndarray)
        with torch.inference_mode():
            xt = torch.from_numpy(x) if as_numpy else x
            y, new = self.model.step(xt, state)
        return (y.numpy() if as_numpy else y), new


def _is_torch_model(model: Any) -> bool:
    torch = sys.modules.get("torch")  # never import torch here: ONNX runners must work without it
    if torch is None:
        return False
    return isinstance(model, (torch.nn.Module, torch.jit.ScriptModule))


def _copy(leaf: Any) -> Any:
    return leaf.copy() if isinstance(leaf, np.ndarray) else leaf.clone()
