"""The interfaces :func:`~sigstream.models.training.loop.fit` and the families share: the
:class:`Task` a family implements, the :class:`Callback` hooks, the :class:`Loop` state both
see, and the one result type :class:`TrainResult`."""

from __future__ import annotations

import abc
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from sigstream.models.training.config import FitConfig

__all__ = ["Task", "Callback", "Loop", "TrainResult", "STOPS"]

STOPS = ("epochs", "schedule", "patience", "budget", "interrupt")
"""Why a run ended: its epochs ran out, its curriculum finished, no improvement for
``patience`` epochs, the wall-time budget, Ctrl-C."""


class Callback:
    """Hooks :func:`fit` calls, in the order of its callback list; override what you need.

    ``state_dict``/``load_state_dict`` carry what a resumed run needs (plain values and
    tensors only)."""

    tracking: bool = True
    """Whether fit() tracks the best validation value (and patience) now."""
    final: bool = True
    """Whether the schedule is in its last stage: learning-rate plateaus act only then."""

    def on_fit_start(self, loop: Loop) -> None: ...

    def on_epoch_start(self, loop: Loop) -> None: ...

    def on_update(self, loop: Loop) -> None: ...

    def on_epoch_end(self, loop: Loop, row: dict) -> None: ...

    def on_monitor_reset(self, loop: Loop) -> None: ...

    def on_fit_end(self, loop: Loop, result: TrainResult) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class Task(abc.ABC):
    """What a family gives :func:`fit`: its model and how to train, validate and save it."""

    model: nn.Module
    """What the optimiser trains."""
    checkpoint_name: str = "model.pt"
    monitor: str = "val_loss"
    """The history key fit() watches; lower is better."""
    label: str = "validation loss"
    """How the summary line names the monitored value."""
    log_every: int = 1
    """Plain progress lines (not a terminal) every this many epochs."""
    progress_keys: tuple[str, ...] = ()
    """History keys the progress shows besides ``train_loss``, the monitor and ``lr``."""
    resumable: bool = False
    """Whether fit() writes ``resume.pt`` after every epoch (``--resume`` continues it);
    the task's ``state_dict`` must then hold all it keeps besides the model."""

    def parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser updates (those that require gradients)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    @abc.abstractmethod
    def train_epoch(self, loop: Loop) -> dict[str, Any]:
        """One epoch of updates (each through ``loop.update``); returns training figures."""

    @abc.abstractmethod
    def validate(self, loop: Loop) -> dict[str, Any]:
        """Validation figures of ``loop.eval_model``, including ``self.monitor``."""

    @abc.abstractmethod
    def save(self, path: str, loop: Loop) -> None:
        """Write the checkpoint of ``loop.eval_model`` to ``path``."""

    @abc.abstractmethod
    def load(self, path: str) -> nn.Module:
        """The model a checkpoint written by :meth:`save` holds, in eval mode."""

    def callbacks(self) -> list[Callback]:
        """The task's own callbacks (a curriculum, figures); they run before the standard
        ones that can stop the run."""
        return []

    def planned_epochs(self, config: FitConfig) -> int | None:
        """How many epochs the run will take at most, for the progress bar."""
        return config.epochs

    def state_dict(self) -> dict:
        """What a resumed run needs besides the model (e.g. generator states)."""
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: B027 - optional, like callbacks'
        """Restore what :meth:`state_dict` returned."""


@dataclass
class TrainResult:
    """What every trainer returns. ``epochs``: one history row per epoch (``epoch``,
    training and validation figures, ``lr``, ``seconds``); ``best_epoch`` is -1 when no
    epoch was tracked (e.g. a curriculum that never reached its last stage); ``extra``:
    what the family adds to ``history.json`` (the forecaster's stages, the frozen parts of
    a fine-tuned augmentor)."""

    model: Any
    checkpoint: str
    epochs: list[dict]
    monitor: str
    best_epoch: int
    best_val: float
    stopped_by: str
    seconds: float
    updates: int
    label: str = "validation loss"
    extra: dict = field(default_factory=dict)

    @property
    def stopped_early(self) -> bool:
        return self.stopped_by == "patience"

    def summary(self) -> str:
        """One line for the end of ``sigstream train``."""
        why = {"patience": " (stopped early)", "budget": " (stopped by the time budget)",
               "interrupt": " (interrupted)"}.get(self.stopped_by, "")
        best = (f"best {self.label} {self.best_val:.5g} at epoch {self.best_epoch}"
                if self.best_epoch >= 0 else f"no {self.label} tracked yet")
        last = self.epochs[-1].get("train_loss") if self.epochs else None
        return (f"trained {len(self.epochs)} epochs ({self.updates} updates) in "
                f"{self.seconds:.0f} s; {best}{why}"
                + (f"; last train loss {last:.5g}" if last is not None else ""))


class Loop:
    """The state of one run, handed to the task and the callbacks."""

    def __init__(self, task: Task, config: FitConfig, out_dir: str,
                 callbacks: Sequence[Callback]) -> None:
        self.task, self.config, self.out_dir = task, config, out_dir
        self.checkpoint = os.path.join(out_dir, task.checkpoint_name)
        self.params = task.parameters()
        self.optimizer = torch.optim.Adam(self.params, lr=config.lr,
                                          weight_decay=config.weight_decay)
        self.callbacks = list(callbacks)
        self.eval_model: nn.Module = task.model
        """The model validated and saved: ``task.model`` or its moving average."""
        self.epoch = 0
        self.updates = 0
        self.epochs: list[dict] = []
        self.best_val = math.inf
        self.best_epoch = -1
        self.stale = 0
        self.tracked = False
        """Whether this epoch's value was tracked (set before ``on_epoch_end``)."""
        self.improved = False
        self.stopped_by: str | None = None
        self.extra: dict = {}
        self._start = time.perf_counter()
        self._before = 0.0  # seconds of earlier sessions of a resumed run

    # -- for tasks and callbacks ---------------------------------------------------------
    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def seconds(self) -> float:
        """Training time of the whole run so far (earlier sessions included)."""
        return self._before + time.perf_counter() - self._start

    @property
    def session_seconds(self) -> float:
        return time.perf_counter() - self._start

    @property
    def tracking(self) -> bool:
        return all(cb.tracking for cb in self.callbacks)

    @property
    def final(self) -> bool:
        return all(cb.final for cb in self.callbacks)

    def update(self, loss: Tensor) -> None:
        """One optimiser step on ``loss``: zero, backward, clip (``config.clip``), step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.clip)
        self.optimizer.step()
        self.updates += 1
        for cb in self.callbacks:
            cb.on_update(self)

    def stop(self, reason: str) -> None:
        """End the run after this epoch (the first reason given is kept)."""
        if reason not in STOPS:
            raise ValueError(f"unknown stop reason {reason!r}")
        self.stopped_by = self.stopped_by or reason

    def reset_monitor(self) -> None:
        """Start tracking afresh (a new curriculum stage): best, patience and plateaus."""
        self.best_val, self.best_epoch, self.stale = math.inf, -1, 0
        for cb in self.callbacks:
            cb.on_monitor_reset(self)

    def save_checkpoint(self) -> None:
        self.task.save(self.checkpoint, self)

    # -- fit() internals -----------------------------------------------------------------
    def _observe(self, value: float) -> None:
        self.tracked, self.improved = self.tracking, False
        if not self.tracked:
            return
        if value < self.best_val:
            self.best_val, self.best_epoch, self.stale = value, self.epoch, 0
            self.improved = True
        else:
            self.stale += 1

    def _state(self, config: dict, done: bool) -> dict:
        return {"config": config, "model": self.task.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "callbacks": {k: state for k, cb in self._keyed()
                              if (state := cb.state_dict())},
                "task": self.task.state_dict(), "rng": torch.get_rng_state(),
                "loop": {"epoch": self.epoch, "updates": self.updates, "best_val": self.best_val,
                         "best_epoch": self.best_epoch, "stale": self.stale,
                         "seconds": self.seconds, "stopped_by": self.stopped_by or "",
                         "done": done},
                "history": json.dumps(self.epochs), "extra": json.dumps(self.extra)}

    def _keyed(self) -> list[tuple[str, Callback]]:
        """Callbacks keyed by class and occurrence, for resume.pt: a resumed run may add or
        drop callbacks that keep no state."""
        seen: dict[str, int] = {}
        out = []
        for cb in self.callbacks:
            name = type(cb).__qualname__
            seen[name] = seen.get(name, -1) + 1
            out.append((f"{name}#{seen[name]}", cb))
        return out

    def _restore(self, saved: dict) -> bool:
        self.task.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        states = saved["callbacks"]
        for key, cb in self._keyed():
            if key in states:
                cb.load_state_dict(states[key])
        self.task.load_state_dict(saved["task"])
        torch.set_rng_state(saved["rng"])
        s = saved["loop"]
        self.epoch, self.updates, self.stale = s["epoch"], s["updates"], s["stale"]
        self.best_val, self.best_epoch, self._before = s["best_val"], s["best_epoch"], s["seconds"]
        self.epochs, self.extra = json.loads(saved["history"]), json.loads(saved["extra"])
        if s["done"]:
            self.stopped_by = s["stopped_by"] or "epochs"
        return bool(s["done"])


