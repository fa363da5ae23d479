"""Monte-Carlo dropout: mean and spread of ``n`` stochastic forward passes of any torch module.

B: batch, ...: whatever the model returns per batch element.

Only the dropout layers are switched to training mode during the passes (``nn.Dropout``,
``Dropout1d/2d/3d``, ``AlphaDropout``, ``FeatureAlphaDropout`` and recurrent layers with
inter-layer ``dropout > 0``); everything else — batch-norm in particular, whose running
statistics must neither be used in batch mode nor updated — stays in eval mode. The
module's training flags are restored afterwards, also when a pass raises.

A model without active dropout gives ``std == 0`` exactly: every pass is the same
deterministic computation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["dropout_layers", "has_dropout", "dropout_enabled", "mc_dropout"]

_DROPOUT_TYPES: tuple[type, ...] = (nn.modules.dropout._DropoutNd,)


def dropout_layers(module: nn.Module) -> list[nn.Module]:
    """The sub-modules of ``module`` whose training mode turns dropout on (p > 0)."""
    found = []
    for m in module.modules():
        if isinstance(m, _DROPOUT_TYPES) and getattr(m, "p", 0.0) > 0:
            found.append(m)
        elif isinstance(m, nn.RNNBase) and float(m.dropout) > 0 and int(m.num_layers) > 1:
            found.append(m)
    return found


def has_dropout(module: nn.Module) -> bool:
    """Whether Monte-Carlo dropout can give any spread for this module."""
    return bool(dropout_layers(module))


@contextlib.contextmanager
def dropout_enabled(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block: ``module`` in eval mode except its dropout layers; restored after."""
    saved = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        for m in dropout_layers(module):
            m.train()
        yield module
    finally:
        for m, flag in saved:
            m.training = flag


def _owner(fn_or_model: Any, module: nn.Module | None) -> nn.Module:
    if module is not None:
        return module
    if isinstance(fn_or_model, nn.Module):
        return fn_or_model
    owner = getattr(fn_or_model, "__self__", None)  # a bound method such as model.step
    if isinstance(owner, nn.Module):
        return owner
    raise TypeError("mc_dropout needs a torch module: pass a module, a bound method of one, "
                    "or module=...")


def _stack_stats(outs: list[Any]) -> tuple[Any, Any]:
    first = outs[0]
    if isinstance(first, Tensor):
        s = torch.stack([o.detach() for o in outs])  # (n, ...)
        return s.mean(0), s.std(0, correction=0)
    if isinstance(first, np.ndarray):
        a = np.stack(outs)
        return a.mean(0), a.std(0)
    if isinstance(first, (tuple, list)):
        pairs = [_stack_stats([o[i] for o in outs]) for i in range(len(first))]
        means, stds = [p[0] for p in pairs], [p[1] for p in pairs]
        if hasattr(first, "_fields"):  # NamedTuple
            return type(first)(*means), type(first)(*stds)
        return type(first)(means), type(first)(stds)
    raise TypeError(f"mc_dropout cannot average outputs of type {type(first).__name__}")


def mc_dropout(fn_or_model: nn.Module | Callable[..., Any], x: Any, n: int, *,
               module: nn.Module | None = None, seed: int | None = None,
               batched: bool = False) -> tuple[Any, Any]:
    """Mean and standard deviation of ``n`` passes ``fn_or_model(x)`` with dropout active.

    ``fn_or_model``: a module (called as ``model(x)``) or any callable; a bound method of a
    module finds its module itself, any other callable needs ``module=``. The output may be
    a tensor, an array, or a (named) tuple/list of them; mean and std (population,
    ``correction=0``, so ``n == 1`` gives zeros) have the same structure. ``seed`` makes the
    dropout masks reproducible without touching the global RNG. ``batched=True`` runs the
    ``n`` passes as one call on ``n`` stacked copies of ``x`` along dim 0 (faster; valid
    when batch elements are independent, which holds in eval mode); ``x`` must be a tensor.
    """
    if int(n) < 1:
        raise ValueError(f"mc_dropout needs n >= 1 passes, got {n}")
    n = int(n)
    owner = _owner(fn_or_model, module)
    rng = torch.random.fork_rng() if seed is not None else contextlib.nullcontext()
    with rng, torch.no_grad(), dropout_enabled(owner):
        if seed is not None:
            torch.manual_seed(seed)
        if batched:
            if not isinstance(x, Tensor):
                raise TypeError("batched=True needs a tensor input")
            b = x.shape[0]
            out = fn_or_model(torch.cat([x] * n, dim=0))  # (n * B, ...)
            outs = _split(out, b, n)
        else:
            outs = [fn_or_model(x) for _ in range(n)]
    return _stack_stats(outs)


def _split(out: Any, b: int, n: int) -> list[Any]:
    if isinstance(out, Tensor):
        return list(out.reshape(n, b, *out.shape[1:]).unbind(0))
    if isinstance(out, (tuple, list)):
        parts = [_split(o, b, n) for o in out]
        if hasattr(out, "_fields"):
            return [type(out)(*[p[i] for p in parts]) for i in range(n)]
        return [type(out)([p[i] for p in parts]) for i in range(n)]
    raise TypeError(f"mc_dropout(batched=True) cannot split outputs of type {type(out).__name__}")
