"""``sigstream train forecaster``: curriculum training of a harmonic forecaster.

B: batch (windows), L: lookback, H: horizon.

Data (``ForecasterTrainConfig.data``, a :class:`WindowData`): windows drawn on the fly
by :class:`SyntheticWindows` (:func:`~sigstream.models.forecaster.data.windows`); batch
``i`` of stage ``s`` from ``SeedSequence([seed, s, i])``; half of them carry N(0, 0.1)
noise. The loss is the MSE against the clean continuation (noise-free windows weighted
``clean_weight``). Validation windows come from seed 3 (evaluation uses seed 2).

Curriculum (:class:`StageCurriculum`): the component count is drawn from ``1 .. stage``
for each stage in ``stages`` (default 3, 7, 15, 30, 45). An epoch is ``val_every``
updates and one validation of the current stage; a stage ends after ``steps_per_stage``
updates or ``patience`` validations without improvement, and the next one is judged
afresh; the last stage (all counts up to 45) runs up to ``final_steps``, halving the
learning rate after 3 validations without improvement, and its best model is kept. The
learned linear candidate is initialised by ridge least squares on 16,384 training
windows. ``--max-minutes`` bounds the wall time of a session.

Files in ``out``: ``forecaster.pt`` (best checkpoint of the last stage reached, a normal
sigstream checkpoint), ``resume.pt`` (``--resume`` continues from it exactly where it
stopped) and ``history.json``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
import torch

from sigstream.core.errors import ConfigError
from sigstream.models.checkpoint import save_checkpoint
from sigstream.models.forecaster.data import HarmonicsConfig, WindowBatch, mixed_windows
from sigstream.models.forecaster.model import (
    PRESETS,
    ForecasterConfig,
    HarmonicForecaster,
    default_ls_orders,
)
from sigstream.models.forecaster.user_series import pool
from sigstream.models.training.callbacks import Curriculum
from sigstream.models.training.config import FitConfig, check, opt, part, resolve
from sigstream.models.training.loop import Callback, Loop, Task, TrainResult, fit

__all__ = ["WindowData", "SyntheticWindows", "StageSchedule", "ForecasterTrainConfig",
           "ForecasterTask", "StageCurriculum", "train", "init_linear", "weighted_mse",
           "validate"]

VAL_SEED = 3
INIT_WINDOWS = 16384  # windows of the ridge fit of the linear candidate


class WindowData(Protocol):
    """Where the forecaster's windows come from. :class:`SyntheticWindows` draws sums of
    harmonics; a source of recorded signals (split into training and validation parts)
    implements the same methods, with ``components`` free to ignore, and takes its place
    in ``ForecasterTrainConfig.data``: the task and fit() stay as they are."""

    batch: int

    def train_windows(self, components: int, n: int, lookback: int, horizon: int,
                      seed: np.random.SeedSequence) -> WindowBatch:
        """``n`` training windows (``lookback`` past, ``horizon`` future) of up to
        ``components`` components, drawn from ``seed``."""

    def val_windows(self, components: int, lookback: int, horizon: int,
                    stage: int) -> WindowBatch:
        """The validation windows of a curriculum stage (the same every time)."""


@dataclass(frozen=True)
class SyntheticWindows:
    """Synthetic sums of harmonics (:class:`HarmonicsConfig`), drawn on the fly."""

    DERIVED: ClassVar[tuple[str, ...]] = ("signals.num_samples", "signals.num_components")
    signals: HarmonicsConfig = part(lambda: HarmonicsConfig(noise=0.1, noise_fraction=0.5),
                                    "training signals")
    batch: int = opt(128, "windows per update", low=1)
    val_windows_per_stage: int = opt(1024, "validation windows per stage (seed 3)", low=1)
    rich: float = opt(0.3, "share of windows with what real series have besides harmonics "
                      "(level, trend, non-integer periods, AR noise, random walk, level "
                      "shifts; data.rich_windows); 0: harmonics only", low=0.0, high=1.0)
    data: str | None = opt(None, "train on your own series instead of synthetic ones: a .npy "
                           "file (1-D: one series; 2-D time x series) or a folder of them. "
                           "Windows whose targets lie in a series' first 60 percent train, "
                           "60-70 percent validate; the last 30 percent is left for `eval "
                           "forecaster --data`. NaN are gaps. With --init accurate|fast it "
                           "fine-tunes the shipped weights", metavar="PATH")

    def validate(self) -> None:
        check(self)

    def _signals(self, components: int) -> HarmonicsConfig:
        return dataclasses.replace(self.signals, num_components=(1, components))

    def train_windows(self, components: int, n: int, lookback: int, horizon: int,
                      seed: np.random.SeedSequence) -> WindowBatch:
        if self.data:
            return pool(self.data, lookback, horizon).train_windows(n, seed)
        return mixed_windows(self._signals(components), n, lookback, horizon, self.rich, seed)

    def val_windows(self, components: int, lookback: int, horizon: int,
                    stage: int) -> WindowBatch:
        if self.data:
            return pool(self.data, lookback, horizon).val_windows(self.val_windows_per_stage)
        return mixed_windows(self._signals(components), self.val_windows_per_stage, lookback,
                             horizon, self.rich, np.random.SeedSequence([VAL_SEED, stage]))


@dataclass(frozen=True)
class StageSchedule:
    """The curriculum: one stage per largest component count."""

    stages: tuple[int, ...] = opt((3, 7, 15, 30, 45), "largest component count of each stage",
                                  low=1)
    steps_per_stage: int = opt(600, "updates per stage before the last", low=1)
    final_steps: int = opt(6000, "updates of the last stage", low=1)
    val_every: int = opt(100, "updates between validations (one epoch)", low=1)

    def validate(self) -> None:
        if not self.stages:
            raise ConfigError("--stages needs at least one component count, e.g. 3,7,15")
        check(self)

    def limit(self, stage: int) -> int:
        return self.final_steps if stage == len(self.stages) - 1 else self.steps_per_stage


@dataclass(frozen=True)
class ForecasterTrainConfig:
    """Everything ``sigstream train forecaster`` takes; the model's least-squares orders
    and preset follow from ``ls_orders`` and ``analytic``."""

    DERIVED: ClassVar[tuple[str, ...]] = ("model.ls_orders", "model.preset")
    model: ForecasterConfig = part(ForecasterConfig, "the forecaster")
    ls_orders: tuple[int, ...] | None = opt(
        None, "AR orders of the minimum-norm least-squares candidates, each in lookback/2 .. "
        "lookback-2; none for no such candidates (unset: 0.56, 0.64 and 0.72 of the "
        "lookback, 56,64,72 at 100)")
    data: SyntheticWindows = part(SyntheticWindows, "training data")
    curriculum: StageSchedule = part(StageSchedule, "curriculum")
    clean_weight: float = opt(1.0, "loss weight of noise-free windows, noisy ones weighing 1: "
                              "their errors are ~100x smaller, so a plain mean hardly rewards "
                              "them", above=0)
    fit: FitConfig = part(lambda: FitConfig(lr=2e-3, patience=8, lr_patience=2,
                                            lr_threshold=0.0), "optimisation")
    init: str | None = opt(None, "start from the weights of this forecaster checkpoint, or of "
                           "a shipped preset (accurate, fast); same variant, sizes and "
                           "candidates", metavar="CKPT")

    def resolved(self) -> ForecasterTrainConfig:
        m = self.model
        ls = () if not m.analytic else (
            default_ls_orders(m.lookback) if self.ls_orders is None else self.ls_orders)
        model = dataclasses.replace(m, ls_orders=ls, preset="accurate" if ls else "fast")
        return dataclasses.replace(self, model=model)

    def validate(self) -> None:
        if not self.clean_weight > 0:
            raise ConfigError(f"--clean-weight (clean_weight) must be > 0, got "
                              f"{self.clean_weight}")
        check(self)
        if self.data.data:  # one clear line now rather than at the first update
            pool(self.data.data, self.model.lookback, self.model.horizon)
        if self.init and self.init not in PRESETS and not os.path.isfile(self.init):
            raise ConfigError(f"--init {self.init!r}: no such checkpoint (or give a shipped "
                              f"preset: {', '.join(PRESETS)})")


def init_linear(model: HarmonicForecaster, cfg: ForecasterTrainConfig) -> None:
    """Ridge least-squares fit of the linear candidate on normalised training windows."""
    if not cfg.model.analytic:
        return
    w = cfg.data.train_windows(max(cfg.curriculum.stages), INIT_WINDOWS, cfg.model.lookback,
                               cfg.model.horizon, np.random.SeedSequence([cfg.fit.seed, 999]))
    x, y, _ = model.normalise(w.lookback, w.target)
    x, y = x.double(), y.double()  # (N, L), (N, H)
    gram = x.T @ x  # (L, L)
    gram += 1e-3 * torch.trace(gram) / gram.shape[0] * torch.eye(gram.shape[0], dtype=gram.dtype)
    with torch.no_grad():
        model.linear.weight.copy_(torch.linalg.solve(gram, x.T @ y).T.float())


def init_from(model: HarmonicForecaster, path: str) -> None:
    """``model``'s weights from the forecaster checkpoint at ``path`` (or a shipped preset's,
    ``accurate`` or ``fast``); ConfigError unless every tensor has the model's shape."""
    from sigstream.models.checkpoint import read_checkpoint

    if path in PRESETS:
        path = str(Path(__file__).parent / "weights" / f"forecaster-{path}.pt")
    old = read_checkpoint(path)
    if old["model"] != "forecaster":
        raise ConfigError(f"--init {path!r} is a {old['model']} checkpoint, not a forecaster")
    src = old["state_dict"]
    for name, new in model.state_dict().items():
        if name not in src or src[name].shape != new.shape:
            got = tuple(src[name].shape) if name in src else "nothing"
            raise ConfigError(f"--init {path!r} does not fit these options: {name} is {got}, "
                              f"the model needs {tuple(new.shape)} (another variant, size "
                              f"or candidate set)")
    model.load_state_dict({k: src[k] for k in model.state_dict()})


def weighted_mse(pred: torch.Tensor, batch: WindowBatch, clean_weight: float) -> torch.Tensor:
    """Mean squared error of (N, H) forecasts with noise-free windows weighted
    ``clean_weight`` (noisy: 1).

    Noisy windows' errors are about a hundred times the clean ones', so a plain mean
    hardly rewards getting clean signals right; a weight above 1 evens that out.
    """
    per_window = ((pred - batch.target) ** 2).mean(dim=1)  # (N,)
    if clean_weight == 1.0:
        return per_window.mean()
    w = torch.where(batch.noisy, 1.0, clean_weight).to(per_window.dtype)
    return (w * per_window).sum() / w.sum()


def normalised_loss(model: HarmonicForecaster, batch: WindowBatch, clean_weight: float,
                    forcing: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(the training loss, (N, H) forecasts in the windows' own units): the weighted MSE in
    each window's normalised units (mean removed, divided by its deviation), so every window
    counts alike whatever its level and scale."""
    win, tgt, level = model.normalise(batch.lookback, batch.target)
    assert tgt is not None
    pred = model.forecast_normalised(win, tgt if forcing else None, batch.lookback, level)
    loss = weighted_mse(pred, batch._replace(target=tgt), clean_weight)
    mean, std = level
    return loss, (pred.detach().double() * std + mean).to(batch.target.dtype)


def validate(model: HarmonicForecaster, val: WindowBatch,
             clean_weight: float = 1.0) -> tuple[float, float]:
    """(plain MSE in the windows' own units, the training loss) on validation windows."""
    model.eval()
    losses, preds = [], []
    with torch.no_grad():
        for i in range(0, val.lookback.shape[0], 512):
            part = WindowBatch(*(t[i:i + 512] for t in val))
            loss, pred = normalised_loss(model, part, clean_weight)
            losses.append(float(loss) * part.lookback.shape[0])
            preds.append(pred)
    pred = torch.cat(preds)
    return (float(torch.mean((pred - val.target) ** 2)),
            sum(losses) / val.lookback.shape[0])


class StageCurriculum(Curriculum):
    """Moves through ``schedule.stages``: a stage ends after its updates or after
    ``patience`` validations without improvement; the next one is judged afresh
    (``loop.reset_monitor()``); the last one ending ends the run. ``history.json`` gets
    ``stages``: the component count, updates and best validation loss of each."""

    def __init__(self, schedule: StageSchedule, patience: int) -> None:
        self.schedule, self.patience = schedule, patience
        self.stage, self.step = 0, 0

    @property
    def final(self) -> bool:  # type: ignore[override]
        return self.stage == len(self.schedule.stages) - 1

    @property
    def components(self) -> int:
        return self.schedule.stages[self.stage]

    def updates_this_epoch(self) -> int:
        every, limit = self.schedule.val_every, self.schedule.limit(self.stage)
        return min(every - self.step % every, limit - self.step)

    def on_fit_start(self, loop: Loop) -> None:
        loop.extra.setdefault("stages", [])

    def on_epoch_end(self, loop: Loop, row: dict) -> None:
        done = self.step >= self.schedule.limit(self.stage)
        if not (done or loop.stale >= self.patience):
            return
        loop.extra["stages"].append({"components": self.components, "steps": self.step,
                                     "best_val_loss": loop.best_val})
        if self.final:
            if done:
                loop.stop("schedule")
            return  # out of patience: early stopping ends the run
        self.stage, self.step = self.stage + 1, 0
        loop.reset_monitor()

    def state_dict(self) -> dict:
        return {"stage": self.stage, "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.stage, self.step = int(state["stage"]), int(state["step"])


class ForecasterTask(Task):
    """Windows: lookback (B, L), target (B, H)."""

    checkpoint_name = "forecaster.pt"
    resumable = True
    progress_keys = ("components", "val_mse")

    def __init__(self, cfg: ForecasterTrainConfig) -> None:
        self.cfg = cfg
        self.model = HarmonicForecaster(cfg.model)
        self.curriculum = StageCurriculum(cfg.curriculum, cfg.fit.patience)
        self._val: dict[int, WindowBatch] = {}

    def callbacks(self) -> list[Callback]:
        return [self.curriculum]

    def planned_epochs(self, config: FitConfig) -> int | None:
        s = self.cfg.curriculum
        most = sum(math.ceil(s.limit(i) / s.val_every) for i in range(len(s.stages)))
        return most if config.epochs is None else min(most, config.epochs)

    def train_epoch(self, loop: Loop) -> dict:
        cfg, c = self.cfg, self.curriculum
        self.model.train()
        for _ in range(c.updates_this_epoch()):
            batch = cfg.data.train_windows(c.components, cfg.data.batch, cfg.model.lookback,
                                           cfg.model.horizon,
                                           np.random.SeedSequence([cfg.fit.seed, c.stage,
                                                                   c.step]))
            loss, _ = normalised_loss(self.model, batch, cfg.clean_weight, forcing=True)
            loop.update(loss)
            c.step += 1
        return {"stage": c.stage, "components": c.components, "step": c.step,
                "train_loss": float(loss.detach())}

    def validate(self, loop: Loop) -> dict:
        c, cfg = self.curriculum, self.cfg
        if c.stage not in self._val:
            self._val[c.stage] = cfg.data.val_windows(c.components, cfg.model.lookback,
                                                      cfg.model.horizon, c.stage)
        v_mse, v = validate(loop.eval_model, self._val[c.stage], cfg.clean_weight)
        return {"val_mse": v_mse, "val_loss": v}

    def save(self, path: str, loop: Loop) -> None:
        m, row = loop.eval_model, loop.epochs[-1] if loop.epochs else {}
        save_checkpoint(path, "forecaster", m.config, m, meta={
            "train": asdict(self.cfg), "stage_components": self.curriculum.components,
            "step": self.curriculum.step, "val_mse": row.get("val_mse"),
            "val_loss": row.get("val_loss")})

    def load(self, path: str) -> HarmonicForecaster:
        from sigstream.models.registry import load_checkpoint

        return load_checkpoint(path)


def train(cfg: ForecasterTrainConfig, out_dir: str, *, resume: bool = False,
          callbacks: tuple[Callback, ...] = ()) -> TrainResult:
    """Train (or continue with ``resume``); writes ``forecaster.pt``, ``resume.pt`` and
    ``history.json`` into ``out_dir``."""
    cfg = resolve(cfg)
    cfg.validate()
    torch.manual_seed(cfg.fit.seed)
    task = ForecasterTask(cfg)
    if not resume and cfg.init:
        init_from(task.model, cfg.init)
    elif not resume:
        init_linear(task.model, cfg)
    return fit(task, cfg.fit, out_dir, run_config=cfg, callbacks=callbacks, resume=resume)
