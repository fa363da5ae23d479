"""Training the SensorAugmentor on the vibration task; fine-tuning and encoder transfer.

N: windows, W: window length.

One run (:func:`~sigstream.models.training.loop.fit`): seeded data (``make_splits``:
80/10/10), the normaliser fitted on the training split, Adam with mini-batches shuffled by
a seeded generator, the loss of :func:`~sigstream.models.augmentor.model.augmentor_loss`,
validation every epoch, ReduceLROnPlateau, gradient clipping, the best checkpoint (by
validation loss) written as it improves, early stopping, a progress bar and
``history.json``. Deterministic for a given seed on a given thread count.

Fine-tuning: ``init`` starts from a checkpoint (its normaliser kept); ``freeze="encoder"``
trains only the reconstructor and actuator head, at ``lr * finetune_lr_factor``. When the
checkpoint's window differs from ``window``, the encoder is transferred with
:func:`~sigstream.models.augmentor.model.transfer_encoder` and the new heads start fresh.

Data (``AugmentorTrainConfig.data``): :class:`VibrationData`, windows of the synthetic
sensor model. A source of recorded low/high-quality pairs would provide the same
``splits(window)`` and ``redraw(train, epoch_seed)`` and take its place, with fit() and
the task untouched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.augmentor.data import (
    VibrationConfig,
    VibrationSet,
    VibrationSplits,
    make_splits,
    redraw_noise,
)
from sigstream.models.augmentor.model import (
    AugmentorConfig,
    AugmentorStream,
    SensorAugmentor,
    augmentor_loss,
    transfer_encoder,
)
from sigstream.models.checkpoint import save_checkpoint
from sigstream.models.metrics import psnr
from sigstream.models.training.config import FitConfig, check, opt, part, resolve
from sigstream.models.training.loop import Callback, Loop, Task, TrainResult, fit

__all__ = ["VibrationData", "AugmentorTrainConfig", "AugmentorTask", "train",
           "load_augmentor", "evaluate_loss"]

CHECKPOINT_NAME = "augmentor.pt"
ACTUATORS = 2  # the commands the data defines: damping, stiffness


@dataclass(frozen=True)
class VibrationData:
    """Windows of the sensor model, split 80/10/10 (train/validation/test)."""

    DERIVED: ClassVar[tuple[str, ...]] = ("sensor.window",)
    sensor: VibrationConfig = part(VibrationConfig, "the sensor model")
    windows: int = opt(20000, "windows generated, split 80/10/10", low=10)
    data_seed: int = opt(0, "seed of the data set")
    redraw_noise: bool = opt(True, "every epoch after the first draws fresh low-quality noise "
                             "and drift for the training windows")
    batch: int = opt(128, "windows per update", low=1)

    def validate(self) -> None:
        if self.windows < 10:
            raise ConfigError(f"--windows: need at least 10 windows, got {self.windows}")
        self.sensor.validate()
        check(self)

    def splits(self) -> VibrationSplits:
        return make_splits(self.windows, self.sensor, seed=self.data_seed)

    def redraw(self, train: VibrationSet, seed: int) -> np.ndarray:
        """Fresh (N, W) low-quality inputs for the training windows."""
        return redraw_noise(train, self.sensor, seed).lq


@dataclass(frozen=True)
class AugmentorTrainConfig:
    """Everything ``sigstream train enhancer --arch augmentor`` takes; the sensor window is
    the model's, the model's sample rate the sensor's, its hop at most its window."""

    DERIVED: ClassVar[tuple[str, ...]] = ("model.sample_rate", "model.actuators",
                                          "model.actuator")
    model: AugmentorConfig = part(AugmentorConfig, "the SensorAugmentor")
    data: VibrationData = part(VibrationData, "training data")
    fit: FitConfig = part(lambda: FitConfig(epochs=200, lr=2e-3, patience=20, lr_patience=6),
                          "optimisation")
    init: str | None = opt(None, "start from this checkpoint", metavar="CHECKPOINT")
    freeze: str | None = opt(None, "with --init: freeze PART (encoder: train only the "
                             "reconstructor and actuator head, at --lr x "
                             "--finetune-lr-factor)", choices=("encoder",), metavar="PART")
    finetune_lr_factor: float = opt(0.1, "learning-rate factor when freezing", above=0)

    def resolved(self) -> AugmentorTrainConfig:
        sensor = dataclasses.replace(self.data.sensor, window=self.model.window)
        model = dataclasses.replace(self.model, sample_rate=sensor.sample_rate,
                                    hop=min(self.model.hop, self.model.window),
                                    actuators=ACTUATORS, actuator=False)
        return dataclasses.replace(self, model=model,
                                   data=dataclasses.replace(self.data, sensor=sensor))

    def validate(self) -> None:
        if self.freeze is not None and self.freeze != "encoder":
            raise ConfigError(f"cannot freeze {self.freeze!r}; freezable: encoder")
        if self.freeze is not None and self.init is None:
            raise ConfigError("--freeze needs --init CHECKPOINT (a trained encoder to keep)")
        check(self)


def load_augmentor(path: str) -> AugmentorStream:
    """An augmentor checkpoint as its streamable model (InputError for anything else)."""
    from sigstream.models.registry import load_checkpoint

    model = load_checkpoint(path)
    if not isinstance(model, AugmentorStream):
        raise InputError(f"{path!r} is not an augmentor checkpoint")
    return model


def _tensors(data: VibrationSet) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in
                 (data.lq, data.hq, data.actuator))


def evaluate_loss(net: SensorAugmentor, data: VibrationSet,
                  batch: int = 2048) -> dict[str, float]:
    """Mean loss parts and PSNR of ``net`` (eval mode, no dropout) over ``data``."""
    net.eval()
    lq, hq, act = _tensors(data)
    sums: dict[str, float] = {}
    recons = []
    with torch.no_grad():
        for i in range(0, data.size, batch):
            out = net(lq[i:i + batch], hq[i:i + batch])
            _, parts = augmentor_loss(out, hq[i:i + batch], act[i:i + batch])
            n = out.reconstruction.shape[0]
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * n
            recons.append(out.reconstruction.numpy())
    res = {k: v / data.size for k, v in sums.items()}
    res["psnr"] = float(np.mean(psnr(data.hq, np.concatenate(recons))))
    return res


class AugmentorTask(Task):
    """Windows: low-quality in, high-quality out, (N, W); actuator targets (N, 2)."""

    checkpoint_name = CHECKPOINT_NAME
    progress_keys = ("val_psnr",)
    log_every = 5

    def __init__(self, cfg: AugmentorTrainConfig) -> None:
        self.cfg = cfg
        self.splits = cfg.data.splits()
        self.frozen: list[str] = []
        self.transferred_from: int | None = None
        self.stream = self._initial_model()
        net = self.model = self.stream.net
        train = self.splits.train
        if cfg.init is None:
            net.fit_normaliser(train.lq, train.hq, train.actuator)
        elif self.transferred_from is not None:  # new heads: their output scale is new
            in_mean, in_std = float(net.in_mean), float(net.in_std)
            net.fit_normaliser(train.lq, train.hq, train.actuator)
            net.in_mean.fill_(in_mean)
            net.in_std.fill_(in_std)
        if cfg.freeze:
            self.frozen = net.freeze(cfg.freeze)
        self.lq, self.hq, self.act = _tensors(train)
        self.gen = torch.Generator().manual_seed(cfg.fit.seed)

    def _initial_model(self) -> AugmentorStream:
        cfg, mcfg = self.cfg, self.cfg.model
        if cfg.init is None:
            return AugmentorStream(mcfg)
        src_net = load_augmentor(cfg.init).net
        if src_net.config.window == mcfg.window:
            # keep the source architecture (hidden, resblocks); take dropout/hop from the run
            keep = dataclasses.replace(src_net.config, hop=mcfg.hop, dropout=mcfg.dropout,
                                       sample_rate=mcfg.sample_rate)
            model = AugmentorStream(keep)
            model.net.load_state_dict(src_net.state_dict())
            return model
        self.transferred_from = src_net.config.window
        net = transfer_encoder(src_net, mcfg.window, dropout=mcfg.dropout, hop=mcfg.hop,
                               sample_rate=mcfg.sample_rate)
        return AugmentorStream(net.config, net=net)

    def train_epoch(self, loop: Loop) -> dict:
        cfg, net = self.cfg, self.model
        net.train()
        if cfg.data.redraw_noise and loop.epoch > 0:
            seed = int(np.random.SeedSequence([cfg.fit.seed, loop.epoch]).generate_state(1)[0])
            self.lq = torch.from_numpy(cfg.data.redraw(self.splits.train, seed))
        n = self.lq.shape[0]
        order = torch.randperm(n, generator=self.gen)
        tot = {"loss": 0.0, "recon": 0.0, "encoding": 0.0, "actuator": 0.0}
        for i in range(0, n, cfg.data.batch):
            idx = order[i:i + cfg.data.batch]
            out = net(self.lq[idx], self.hq[idx])
            loss, parts = augmentor_loss(out, self.hq[idx], self.act[idx])
            loop.update(loss)
            for k in tot:
                tot[k] += parts[k] * len(idx)
        return {f"train_{k}": v / n for k, v in tot.items()}

    def validate(self, loop: Loop) -> dict:
        val = evaluate_loss(loop.eval_model, self.splits.val)
        return {**{f"val_{k}": v for k, v in val.items()}, "val_loss": val["loss"]}

    def save(self, path: str, loop: Loop) -> None:
        net = loop.eval_model
        model = self.stream if net is self.model else AugmentorStream(self.stream.config,
                                                                      net=net)
        cfg = self.cfg
        save_checkpoint(path, "augmentor", model.config, model, norm=net.norm_dict(), meta={
            "trainer": "sigstream.models.augmentor.train", "train": dataclasses.asdict(cfg),
            "data": dataclasses.asdict(cfg.data.sensor), "windows": cfg.data.windows,
            "data_seed": cfg.data.data_seed,
            "window_model": {"window": net.config.window, "hop": model.hop,
                             "latency": model.latency},
            "epoch": loop.epoch, "val": loop.best_val})

    def load(self, path: str) -> AugmentorStream:
        return load_augmentor(path)

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])


def train(cfg: AugmentorTrainConfig, out_dir: str, *,
          callbacks: tuple[Callback, ...] = ()) -> TrainResult:
    """Train (or fine-tune) and write ``augmentor.pt`` (best) and ``history.json`` to
    ``out_dir``. ``result.extra``: ``frozen`` (the frozen parameters) and
    ``transferred_from_window`` (the window of an ``init`` checkpoint of another length)."""
    cfg = resolve(cfg)
    cfg.validate()
    torch.manual_seed(cfg.fit.seed)
    task = AugmentorTask(cfg)
    fit_cfg = cfg.fit
    if cfg.freeze:
        fit_cfg = dataclasses.replace(fit_cfg, lr=fit_cfg.lr * cfg.finetune_lr_factor)
    extra = _Extra({"frozen": task.frozen, "transferred_from_window": task.transferred_from})
    return fit(task, fit_cfg, out_dir, run_config=cfg, callbacks=(extra, *callbacks))


class _Extra(Callback):
    """Puts the fine-tuning facts into the history."""

    def __init__(self, facts: dict) -> None:
        self.facts = facts

    def on_fit_start(self, loop: Loop) -> None:
        loop.extra.update(self.facts)
