"""The callbacks :func:`~sigstream.models.training.loop.fit` builds from a
:class:`~sigstream.models.training.config.FitConfig`, and the bases a task builds on.

Order in a run: :class:`MovingAverage` (``ema``), :class:`Plateau` (``lr_patience``), the
task's own (a :class:`Curriculum`, :class:`EveryEpoch` figures), those passed to fit(),
:class:`EarlyStopping`, :class:`Budget` (``max_minutes``), :class:`Progress`,
:class:`TrainingPlots` (``plots``).
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable

import torch

from sigstream.models.training.base import Callback, Loop, Task, TrainResult
from sigstream.models.training.config import FitConfig

__all__ = ["Curriculum", "MovingAverage", "Plateau", "EarlyStopping", "Budget", "Progress",
           "TrainingPlots", "EveryEpoch"]


class Curriculum(Callback):
    """A schedule of stages. While ``tracking`` is False fit() tracks no best value (and
    counts no patience); learning-rate plateaus act only while ``final``. A subclass moves
    through its stages in ``on_epoch_end`` and calls ``loop.reset_monitor()`` when a stage
    should be judged afresh, ``loop.stop("schedule")`` when the last one is done."""

    tracking = True
    final = True


class MovingAverage(Callback):
    """An exponential moving average of the weights, updated after every optimiser step
    (``avg += (1 - decay) * (p - avg)``; buffers copied), which becomes what is validated
    and saved (``loop.eval_model``)."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.model: torch.nn.Module | None = None

    def on_fit_start(self, loop: Loop) -> None:
        self.model = copy.deepcopy(loop.task.model)
        loop.eval_model = self.model

    @torch.no_grad()
    def on_update(self, loop: Loop) -> None:
        assert self.model is not None
        for avg, p in zip(self.model.parameters(), loop.task.model.parameters(), strict=True):
            avg.lerp_(p, 1.0 - self.decay)
        for avg, b in zip(self.model.buffers(), loop.task.model.buffers(), strict=True):
            avg.copy_(b)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict() if self.model is not None else {}}

    def load_state_dict(self, state: dict) -> None:
        if self.model is not None:
            self.model.load_state_dict(state["model"])


class Plateau(Callback):
    """``torch.optim.lr_scheduler.ReduceLROnPlateau`` on the monitored value, stepped on the
    epochs fit() tracks while the schedule is ``final``; a monitor reset starts it afresh."""

    def __init__(self, config: FitConfig) -> None:
        self.config = config
        self.scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None

    def _new(self, loop: Loop) -> None:
        c = self.config
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            loop.optimizer, factor=c.lr_factor, patience=c.lr_patience or 0,
            threshold=c.lr_threshold, min_lr=c.min_lr)

    def on_fit_start(self, loop: Loop) -> None:
        self._new(loop)

    def on_monitor_reset(self, loop: Loop) -> None:
        self._new(loop)

    def on_epoch_end(self, loop: Loop, row: dict) -> None:
        if loop.tracked and loop.final and self.scheduler is not None:
            self.scheduler.step(row[loop.task.monitor])

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler is not None and state:
            self.scheduler.load_state_dict(state)


class EarlyStopping(Callback):
    """Stop after ``patience`` tracked epochs without a new best value."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, loop: Loop, row: dict) -> None:
        if loop.tracked and loop.stale >= self.patience:
            loop.stop("patience")


class Budget(Callback):
    """Stop after the epoch in which this session's wall time exceeds ``minutes``."""

    def __init__(self, minutes: float) -> None:
        self.minutes = minutes

    def on_epoch_end(self, loop: Loop, row: dict) -> None:
        if loop.session_seconds > 60.0 * self.minutes:
            loop.stop("budget")


def _short(value: object) -> str:
    return f"{value:.5g}" if isinstance(value, float) else str(value)


class Progress(Callback):
    """A tqdm bar over epochs on a terminal; elsewhere (a pipe, a file) one plain line on
    stderr every ``task.log_every`` epochs; nothing when ``enabled`` is False. It shows
    ``train_loss``, the monitored value, the learning rate and the task's
    ``progress_keys``."""

    def __init__(self, enabled: bool, total: int | None, task: Task) -> None:
        self.enabled, self.total = enabled, total
        self.keys = ("train_loss", task.monitor, *task.progress_keys)
        self.every = max(1, task.log_every)
        self.bar = None

    def on_fit_start(self, loop: Loop) -> None:
        self.tty = self.enabled and sys.stderr.isatty()
        if self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, unit="epoch", dynamic_ncols=True,
                            file=sys.stderr)

    def on_epoch_end(self, loop: Loop, row: dict) -> None:
        shown = {k: row[k] for k in self.keys if k in row}
        shown["lr"] = row["lr"]
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({k: _short(v) for k, v in shown.items()})
        elif self.enabled and (loop.epoch % self.every == 0 or loop.stopped_by):
            items = " ".join(f"{k} {_short(v)}" for k, v in shown.items())
            print(f"epoch {loop.epoch}: {items}", file=sys.stderr, flush=True)

    def on_fit_end(self, loop: Loop, result: TrainResult) -> None:
        if self.bar is not None:
            self.bar.close()


class TrainingPlots(Callback):
    """At the end: ``OUT/training.png``, the training and validation curves and the
    learning rate per epoch."""

    def on_fit_end(self, loop: Loop, result: TrainResult) -> None:
        if result.stopped_by == "interrupt" or not result.epochs:
            return
        from sigstream.models.training.plots import plot_history

        plot_history(result.epochs, result.monitor, os.path.join(loop.out_dir, "training.png"))


class EveryEpoch(Callback):
    """Call ``fn(loop, row)`` at the end of every epoch (a task's figures, a test's probe)."""

    def __init__(self, fn: Callable[[Loop, dict], None]) -> None:
        self.fn = fn

    def on_epoch_end(self, loop: Loop, row: dict) -> None:
        self.fn(loop, row)
