"""State helpers work on nested NamedTuples of torch tensors and numpy arrays alike."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from sigstream.core import state as st


class Inner(NamedTuple):
    a: object
    b: object


def tree(kind: str, batch: int = 3):
    mk = (lambda *s: torch.arange(int(np.prod(s)), dtype=torch.float32).reshape(s)) \
        if kind == "torch" else (lambda *s: np.arange(np.prod(s), dtype=np.float32).reshape(s))
    return (Inner(mk(batch, 2), mk(batch, 4, 5)), mk(batch))


def test_names_leaves_unflatten() -> None:
    s = tree("numpy")
    assert st.leaf_names(s) == ["0.a", "0.b", "1"]
    assert st.leaf_names(Inner(1, 2)) == ["a", "b"]
    rebuilt = st.unflatten(s, st.leaves(s))
    assert isinstance(rebuilt[0], Inner)
    assert st.state_size(s) == 2 + 20 + 1
    assert st.batch_size(s) == 3


def test_where_select_concat_both_backends() -> None:
    for kind in ("torch", "numpy"):
        s = tree(kind)
        zero = st.map_state(lambda x: x * 0, s)
        mixed = st.where(np.array([True, False, True]), zero, s)
        leaf = np.asarray(mixed[0].b)
        assert np.all(leaf[0] == 0) and np.all(leaf[2] == 0) and np.any(leaf[1] != 0)
        picked = st.select(s, [2, 0])
        assert st.batch_size(picked) == 2
        assert st.batch_size(st.concat([s, picked])) == 5
