"""Training loop for streamable sequence models: truncated BPTT with carried state.

B: batch (sequences), T: time, C: channels.

The state is carried from window to window in time order (never shuffled
across time) and detached at window boundaries, so the model is trained as it
streams. Per epoch: a progress bar, validation, a learning-rate schedule
(plateau halving), gradient clipping, best-checkpoint saving and early
stopping. Deterministic for a given seed on a given thread count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from sigstream.core import state as st
from sigstream.core.contract import StreamingModule


@dataclass(frozen=True)
class FitConfig:
    """epochs: maximum; patience: epochs without improvement before stopping;
    tbptt: window length for truncated backpropagation (1 = one sample per step)."""

    epochs: int = 60
    lr: float = 3e-3
    min_lr: float = 1e-5
    lr_patience: int = 3
    lr_factor: float = 0.5
    patience: int = 10
    clip: float = 1.0
    tbptt: int = 500
    batch: int = 0  # sequences per update (0: all of an epoch's sequences at once)
    seed: int = 0
    progress: bool = True


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = math.inf
    stopped_early: bool = False
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


class progress_bar:  # noqa: N801 - used like tqdm
    """tqdm on a terminal; on a pipe or file, one plain line every ``every`` epochs."""

    def __init__(self, epochs: int, enabled: bool, every: int = 10) -> None:
        import sys

        from tqdm.auto import tqdm

        self.tty = enabled and sys.stderr.isatty()
        self.plain = enabled and not self.tty
        self.every = every
        self._bar = tqdm(range(epochs), disable=not self.tty, unit="epoch", dynamic_ncols=True)

    def __iter__(self):
        return iter(self._bar)

    def set_postfix(self, **kw: object) -> None:
        self._bar.set_postfix(**kw)

    def log_line(self, epoch: int, **kw: float) -> None:
        if self.plain and epoch % self.every == 0:
            import sys

            items = " ".join(f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}"
                             for k, v in kw.items())
            print(f"epoch {epoch}: {items}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self._bar.close()


def run_sequence(model: StreamingModule, x: Tensor, y: Tensor, tbptt: int,
                 loss_fn: Callable[[Tensor, Tensor], Tensor],
                 optimizer: torch.optim.Optimizer | None = None, clip: float = 1.0,
                 step_size: int | None = None) -> float:
    """One pass over (B, T, C) sequences in time order; trains when ``optimizer`` is given.

    ``step_size`` feeds the model that many samples per ``step`` call (1 for the
    sample-by-sample stateful variant); losses are accumulated over ``tbptt``
    samples before each backward pass. Returns the mean loss per sample.
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
        out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        loss = loss_fn(out, y[:, start:stop])
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
        state = st.map_state(lambda t: t.detach(), state)
        total += float(loss.detach()) * (stop - start)
        count += stop - start
    return total / max(count, 1)


def fit(model: StreamingModule,
        train_data: Callable[[int], tuple[Tensor, Tensor]],
        val_data: tuple[Tensor, Tensor],
        config: FitConfig,
        on_best: Callable[[int, History], None] | None = None,
        step_size: int | None = None,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None) -> History:
    """Train ``model``; ``train_data(epoch)`` returns that epoch's (x, y) (B, T, C) tensors.

    ``on_best`` is called whenever validation improves (e.g. to save a checkpoint).
    """
    loss_fn = loss_fn or torch.nn.functional.mse_loss
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr)
    hist = History()
    t0 = time.perf_counter()
    bar = progress_bar(config.epochs, config.progress)
    stale = 0
    for epoch in bar:
        model.train()
        x, y = train_data(epoch)
        size = config.batch or x.shape[0]
        losses = [run_sequence(model, x[i:i + size], y[i:i + size], config.tbptt, loss_fn, opt,
                               config.clip, step_size) for i in range(0, x.shape[0], size)]
        train_loss = float(np.mean(losses))
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(model(val_data[0]), val_data[1]))
        lr = opt.param_groups[0]["lr"]
        sched.step(val_loss)
        hist.epochs.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                            "lr": lr, "seconds": time.perf_counter() - t0})
        if val_loss < hist.best_val:
            hist.best_val, hist.best_epoch, stale = val_loss, epoch, 0
            if on_best is not None:
                on_best(epoch, hist)
        else:
            stale += 1
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", lr=f"{lr:.1e}")
        bar.log_line(epoch, train=train_loss, val=val_loss, lr=lr)
        if stale >= config.patience:
            hist.stopped_early = True
            break
    bar.close()
    hist.seconds = time.perf_counter() - t0
    return hist
