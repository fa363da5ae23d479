"""Helpers for stream state: NamedTuples (possibly nested) of batch-first arrays.

B: batch (streams), T: time, C: channels.

A state is a tree whose inner nodes are tuples or NamedTuples and whose leaves
are ``torch.Tensor`` or ``numpy.ndarray`` with the stream axis first. These
helpers treat torch and numpy leaves alike, so the same runner code drives an
eager torch model and an ONNX Runtime session (which never imports torch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeGuard

import numpy as np

State = Any  # a NamedTuple / tuple tree of batch-first tensors or arrays


class _NamedTupleLike(Protocol):
    _fields: tuple[str, ...]


def _is_namedtuple(obj: Any) -> TypeGuard[_NamedTupleLike]:
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "dim")


def map_state(fn: Callable[..., Any], state: State, *others: State) -> State:
    """Apply ``fn`` leaf by leaf to one or more states of the same structure."""
    if isinstance(state, tuple):
        children = [
            map_state(fn, *items) for items in zip(state, *others, strict=True)
        ]
        return type(state)(*children) if _is_namedtuple(state) else tuple(children)
    return fn(state, *others)


def leaves(state: State) -> list[Any]:
    """The leaves of a state in a fixed depth-first order."""
    if isinstance(state, tuple):
        out: list[Any] = []
        for child in state:
            out.extend(leaves(child))
        return out
    return [state]


def leaf_names(state: State, prefix: str = "") -> list[str]:
    """Dotted names of the leaves, in the order of :func:`leaves` (``"conv.buf"``, ``"1.h"``)."""
    if isinstance(state, tuple):
        fields = state._fields if _is_namedtuple(state) else [str(i) for i in range(len(state))]
        out: list[str] = []
        for name, child in zip(fields, state, strict=True):
            out.extend(leaf_names(child, f"{prefix}{name}."))
        return out
    return [prefix[:-1] if prefix else "state"]


def unflatten(template: State, flat: Sequence[Any]) -> State:
    """Rebuild a state with the structure of ``template`` from a flat leaf list."""
    it = iter(flat)
    result = map_state(lambda _leaf: next(it), template)
    if next(it, None) is not None:
        raise ValueError("more leaves than the template has")
    return result


def state_size(state: State) -> int:
    """Number of scalars per stream (leaf elements divided by the batch size)."""
    total = 0
    for leaf in leaves(state):
        n = int(np.prod(leaf.shape[1:])) if len(leaf.shape) > 1 else 1
        total += n
    return total


def batch_size(state: State) -> int | None:
    """The shared leading dimension of all leaves, or None for a state with no leaves."""
    sizes = {int(leaf.shape[0]) for leaf in leaves(state)}
    if not sizes:
        return None
    if len(sizes) != 1:
        raise ValueError(f"state leaves disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def concat(states: Sequence[State]) -> State:
    """Stack states of several stream groups along B."""
    def _cat(*xs: Any) -> Any:
        if _is_torch(xs[0]):
            import torch

            return torch.cat(xs, dim=0)
        return np.concatenate(xs, axis=0)

    return map_state(_cat, *states)


def select(state: State, index: Any) -> State:
    """Pick streams along B (an int list, slice or boolean mask)."""
    def _sel(x: Any) -> Any:
        if _is_torch(x):
            import torch

            idx = index if isinstance(index, slice) else torch.as_tensor(index)
            return x[idx]
        return x[index]

    return map_state(_sel, state)


def assign(state: State, rows: Any, new: State) -> None:
    """In place: ``state[rows] = new`` leaf by leaf (``rows`` an index array of len(new's B)).

    The caller owns ``state``'s leaves (no one else holds views of them); torch leaves of an
    inference-mode state are written inside inference mode.
    """
    def _put(a: Any, b: Any) -> None:
        if _is_torch(a):
            import torch

            idx = torch.as_tensor(rows, dtype=torch.long, device=a.device)
            with torch.inference_mode(a.is_inference()):
                a.index_copy_(0, idx, b.to(a.dtype))
        else:
            a[rows] = b

    def _walk(a: Any, b: Any) -> None:
        if isinstance(a, tuple):
            for x, y in zip(a, b, strict=True):
                _walk(x, y)
        else:
            _put(a, b)

    _walk(state, new)


def private(state: State, *others: Any) -> State:
    """``state`` with every leaf that shares memory with one of ``others`` (arrays or tensors,
    e.g. the chunk a step read and the output it returned) replaced by a copy, so that the
    state can be written in place without touching them. Cheap: pointer comparisons only."""
    def _span(x: Any) -> tuple[int, int] | None:
        if _is_torch(x):
            storage = x.untyped_storage()
            return storage.data_ptr(), storage.data_ptr() + storage.nbytes()
        if isinstance(x, np.ndarray):
            lo = hi = x.__array_interface__["data"][0]
            for n, stride in zip(x.shape, x.strides, strict=True):
                lo, hi = lo + min(0, (n - 1) * stride), hi + max(0, (n - 1) * stride)
            return lo, hi + x.itemsize
        return None

    spans = [s for s in (_span(o) for o in others) if s is not None]

    def _own(leaf: Any) -> Any:
        mine = _span(leaf)
        if mine is None or not any(mine[0] < hi and lo < mine[1] for lo, hi in spans):
            if isinstance(leaf, np.ndarray) and not leaf.flags.writeable:
                return leaf.copy()
            return leaf
        return leaf.clone() if _is_torch(leaf) else np.array(leaf, copy=True)

    return map_state(_own, state)


def where(mask: Any, if_true: State, if_false: State) -> State:
    """Per-stream select: leaf-wise ``mask[b] ? if_true[b] : if_false[b]``; mask has shape (B,)."""
    def _where(a: Any, b: Any) -> Any:
        shape = (-1,) + (1,) * (len(a.shape) - 1)
        if _is_torch(a):
            import torch

            # a tensor mask stays a tensor (``as_tensor`` would freeze it into a traced graph)
            m = (mask.to(device=a.device, dtype=torch.bool) if isinstance(mask, torch.Tensor)
                 else torch.as_tensor(mask, dtype=torch.bool, device=a.device)).reshape(shape)
            return torch.where(m, a, b)
        return np.where(np.asarray(mask, dtype=bool).reshape(shape), a, b)

    return map_state(_where, if_true, if_false)
