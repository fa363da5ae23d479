"""Truncated backpropagation through time with the state carried, as the model streams.

B: batch (sequences), T: time, C: channels.

The state is carried from window to window in time order (never shuffled across time)
and detached at window boundaries, so a recurrent model is trained as it streams.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sigstream.core import state as st
from sigstream.core.contract import StreamingModule

__all__ = ["run_sequence"]


def run_sequence(model: StreamingModule, x: Tensor, y: Tensor, tbptt: int,
                 loss_fn: Callable[[Tensor, Tensor], Tensor],
                 update: Callable[[Tensor], None] | None = None,
                 step_size: int | None = None) -> float:
    """One pass over (B, T, C) sequences ``x`` with (B, T, K) targets ``y`` in time order;
    trains when ``update`` (e.g. :meth:`~sigstream.models.training.loop.Loop.update`) is
    given, once per window of ``tbptt`` samples.

    ``step_size`` feeds the model that many samples per ``step`` call (1 for the
    sample-by-sample stateful variant); otherwise each window is one call. Returns the
    mean loss per sample.
    """
    state = model.init_state(x.shape[0])
    total, count = 0.0, 0
    t_len = x.shape[1]
    for start in range(0, t_len, tbptt):
        stop = min(start + tbptt, t_len)
        n = step_size or (stop - start)
        outs = []
        for s in range(start, stop, n):
            out, state = model.step(x[:, s:min(s + n, stop)], state)
            outs.append(out)
        out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]  # (B, window, K)
        loss = loss_fn(out, y[:, start:stop])
        if update is not None:
            update(loss)
        state = st.map_state(lambda t: t.detach(), state)
        total += float(loss.detach()) * (stop - start)
        count += stop - start
    return total / max(count, 1)
