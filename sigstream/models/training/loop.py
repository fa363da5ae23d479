"""The one training loop: :func:`fit` runs a family's :class:`Task` epoch by epoch.

An epoch is one round of training and validation: ``task.train_epoch(loop)`` makes some
updates through :meth:`Loop.update` (zero the gradients, backward, clip, Adam step, then
every callback's ``on_update``), ``task.validate(loop)`` measures the model that is
validated and saved (:attr:`Loop.eval_model`: the model itself, or its moving average).
fit() then keeps the history, tracks the best value of ``task.monitor`` (lower is better,
strictly), saves the best checkpoint through ``task.save`` and lets the callbacks act.

What every trainer gets from :class:`~sigstream.models.training.config.FitConfig`, each a
callback in :mod:`~sigstream.models.training.callbacks`: progress (tqdm on a terminal,
plain lines otherwise), ``ReduceLROnPlateau`` (``lr_patience``), early stopping
(``patience``), an exponential moving average of the weights (``ema``), a wall-time
budget (``max_minutes``) and training plots at the end (``plots``). A task adds its own
(a curriculum, per-epoch figures). A curriculum is a callback whose ``tracking`` says
whether fit() tracks the best value yet, and whose ``final`` says whether the schedule is
in its last stage (learning-rate plateaus act only then); it may call
:meth:`Loop.reset_monitor` when a stage starts afresh.

Ends. A run ends after ``epochs`` epochs, when a callback calls :meth:`Loop.stop`
(patience, budget, a finished curriculum) or on Ctrl-C: fit() catches KeyboardInterrupt,
keeps the best checkpoint (saving the current model only when no epoch improved), writes
``history.json`` and returns with ``stopped_by == "interrupt"``. A resumable task gets
``OUT/resume.pt`` after every epoch (model, average, optimiser, callbacks, task state,
history, RNG); ``fit(..., resume=True)`` continues from it exactly where it stopped.

Every trainer returns one :class:`TrainResult`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from typing import Any

import torch

from sigstream.core.errors import ConfigError, InputError
from sigstream.core.files import write_atomic
from sigstream.models.training import callbacks as cbs
from sigstream.models.training.base import Callback, Loop, Task, TrainResult
from sigstream.models.training.config import FitConfig

__all__ = ["fit", "Task", "Callback", "Loop", "TrainResult", "RESUME", "HISTORY"]

RESUME = "resume.pt"
HISTORY = "history.json"
_RESUMABLE_STOPS = ("budget", "interrupt")
_LOOSE = ("max_minutes", "progress", "plots")  # FitConfig fields a resumed run may change


def _jsonable(config: Any) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config))) if config is not None else {}


def _comparable(config: dict) -> dict:
    """The options a resumed run must share with the first: all but the loose ones."""
    out = {k: v for k, v in config.items() if k not in _LOOSE}
    if isinstance(out.get("fit"), dict):
        out["fit"] = {k: v for k, v in out["fit"].items() if k not in _LOOSE}
    return out


def fit(task: Task, config: FitConfig, out_dir: str, *, run_config: Any = None,
        callbacks: Iterable[Callback] = (), resume: bool = False) -> TrainResult:
    """Train ``task`` with ``config``; writes ``task.checkpoint_name`` (the best model),
    ``history.json`` (``run_config`` included) and, for a resumable task, ``resume.pt``
    into ``out_dir``. ``resume`` continues from ``out_dir/resume.pt``; the options must
    be the same except the budget and the output settings."""
    os.makedirs(out_dir, exist_ok=True)
    standard_first = [cbs.MovingAverage(config.ema)] if config.ema else []
    standard = [cbs.Plateau(config) if config.lr_patience is not None else None,
                *task.callbacks(), *callbacks, cbs.EarlyStopping(config.patience),
                cbs.Budget(config.max_minutes) if config.max_minutes else None,
                cbs.Progress(config.progress, task.planned_epochs(config), task),
                cbs.TrainingPlots() if config.plots else None]
    loop = Loop(task, config, out_dir, [c for c in [*standard_first, *standard] if c])
    resume_path = os.path.join(out_dir, RESUME)
    settings = _jsonable(run_config)
    for cb in loop.callbacks:
        cb.on_fit_start(loop)
    done = False
    if resume:
        done = loop._restore(_read_resume(resume_path, settings))
    try:
        while not done and loop.stopped_by is None:
            if config.epochs is not None and loop.epoch >= config.epochs:
                loop.stop("epochs")
                break
            for cb in loop.callbacks:
                cb.on_epoch_start(loop)
            lr = loop.lr
            row = {"epoch": loop.epoch, **task.train_epoch(loop)}
            row.update(task.validate(loop))
            row.update(lr=lr, seconds=loop.seconds)
            loop._observe(float(row[task.monitor]))
            loop.epochs.append(row)
            if loop.improved:
                loop.save_checkpoint()
            for cb in loop.callbacks:
                cb.on_epoch_end(loop, row)
            loop.epoch += 1
            if task.resumable:
                stop = loop.stopped_by
                state = loop._state(settings, done=stop is not None
                                    and stop not in _RESUMABLE_STOPS)
                write_atomic(resume_path, lambda fh, s=state: torch.save(s, fh))
    except KeyboardInterrupt:
        loop.stop("interrupt")
    return _finish(loop, settings)


def _read_resume(path: str, settings: dict) -> dict:
    if not os.path.isfile(path):
        raise InputError(f"nothing to resume: {path!r} not found")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if _comparable(saved["config"]) != _comparable(settings):
        raise ConfigError(f"{path!r} was written with other training options; resume with "
                          f"the same options (see its {HISTORY})")
    return saved


def _finish(loop: Loop, settings: dict) -> TrainResult:
    """Keep the best checkpoint (the current model when no epoch improved), store the
    history in it and in ``history.json``, run ``on_fit_end`` and load the best model."""
    task = loop.task
    if loop.best_epoch < 0 or not os.path.isfile(loop.checkpoint):
        loop.save_checkpoint()
    _annotate(loop.checkpoint, {"history": loop.epochs, "best_epoch": loop.best_epoch,
                                "stopped_by": loop.stopped_by or "epochs"})
    result = TrainResult(model=None, checkpoint=loop.checkpoint, epochs=loop.epochs,
                         monitor=task.monitor, best_epoch=loop.best_epoch,
                         best_val=loop.best_val, stopped_by=loop.stopped_by or "epochs",
                         seconds=loop.seconds, updates=loop.updates, label=task.label,
                         extra=loop.extra)
    history = {"config": settings, "monitor": task.monitor, "epochs": loop.epochs,
               "best_epoch": loop.best_epoch, "best_val": loop.best_val,
               "stopped_by": result.stopped_by, "stopped_early": result.stopped_early,
               "seconds": result.seconds, "updates": loop.updates, **loop.extra}
    write_atomic(os.path.join(loop.out_dir, HISTORY),
                 (json.dumps(history, indent=1) + "\n").encode())
    for cb in loop.callbacks:
        cb.on_fit_end(loop, result)
    result.model = task.load(loop.checkpoint)
    return result


def _annotate(path: str, meta: dict) -> None:
    """Add ``meta`` to the metadata of the sigstream checkpoint at ``path`` (atomically)."""
    from sigstream.models.checkpoint import read_checkpoint

    payload = read_checkpoint(path)
    payload["meta"].update(meta)
    write_atomic(path, lambda fh: torch.save(payload, fh))
