"""Training the SensorAugmentor on the vibration task; fine-tuning and encoder transfer.

N: windows, W: window length.

One run: seeded data (``make_splits``: 80/10/10), the normaliser fitted on the training
split, Adam with mini-batches shuffled by a seeded generator, the loss of
:func:`~sigstream.models.augmentor.model.augmentor_loss`, validation every epoch, plateau LR
halving, gradient clipping, the best checkpoint (by validation loss) written as it improves,
early stopping, a progress bar and ``history.json``. Deterministic for a given seed on a
given thread count.

Fine-tuning: ``init`` starts from a checkpoint (its normaliser kept); ``freeze="encoder"``
trains only the reconstructor and actuator head, at ``lr * finetune_lr_factor``. When the
checkpoint's window differs from ``window``, the encoder is transferred with
:func:`~sigstream.models.augmentor.model.transfer_encoder` and the new heads start fresh.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.augmentor.data import VibrationConfig, VibrationSet, make_splits, redraw_noise
from sigstream.models.augmentor.model import (
    AugmentorConfig,
    AugmentorStream,
    SensorAugmentor,
    augmentor_loss,
    transfer_encoder,
)
from sigstream.models.checkpoint import save_checkpoint
from sigstream.models.metrics import psnr
from sigstream.models.training.loop import progress_bar

__all__ = ["AugmentorTrainConfig", "TrainHistory", "train", "load_augmentor", "evaluate_loss"]

CHECKPOINT_NAME = "augmentor.pt"


@dataclass(frozen=True)
class AugmentorTrainConfig:
    """Data: ``windows`` windows from ``data_seed`` (split 80/10/10) with the sensor model
    ``data`` (VibrationConfig field overrides). Model: ``window``, ``hidden``, ``resblocks``,
    ``dropout``, ``hop``, ``bank``. Optimisation: ``epochs`` maximum, ``batch``, ``lr``, plateau
    halving after ``lr_patience`` epochs, early stop after ``patience``; ``redraw_noise``:
    each epoch after the first draws fresh low-quality noise and drift for the training
    windows (validation and test data never change); ``max_minutes``
    stops cleanly after that much wall time (0: no limit)."""

    windows: int = 20000
    data_seed: int = 0
    data: tuple[tuple[str, str], ...] = ()
    seed: int = 0
    window: int = 128
    hidden: int = 256
    resblocks: int = 3
    dropout: float = 0.1
    hop: int = 32
    bank: int = 101
    epochs: int = 200
    batch: int = 128
    lr: float = 2e-3
    min_lr: float = 1e-5
    lr_patience: int = 6
    lr_factor: float = 0.5
    weight_decay: float = 0.0
    clip: float = 1.0
    patience: int = 20
    redraw_noise: bool = True
    max_minutes: float = 0.0
    init: str | None = None
    freeze: str | None = None
    finetune_lr_factor: float = 0.1
    progress: bool = True

    def validate(self) -> None:
        if self.windows < 10:
            raise ConfigError(f"need at least 10 windows, got {self.windows}")
        if self.epochs < 1 or self.batch < 1 or self.patience < 1:
            raise ConfigError("epochs, batch and patience must be >= 1")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.freeze is not None and self.freeze != "encoder":
            raise ConfigError(f"cannot freeze {self.freeze!r}; freezable: encoder")
        if self.freeze is not None and self.init is None:
            raise ConfigError("--freeze needs --init CHECKPOINT (a trained encoder to keep)")
        self.vibration()

    def vibration(self) -> VibrationConfig:
        from sigstream.models.registry import make_config

        cfg = make_config(VibrationConfig, dict(self.data))
        cfg = dataclasses.replace(cfg, window=self.window)
        cfg.validate()
        return cfg

    def model_config(self) -> AugmentorConfig:
        return AugmentorConfig(window=self.window, hidden=self.hidden,
                               resblocks=self.resblocks, dropout=self.dropout,
                               hop=min(self.hop, self.window), bank=self.bank,
                               sample_rate=self.vibration().sample_rate)


@dataclass
class TrainHistory:
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = math.inf
    stopped_early: bool = False
    stopped_by_time: bool = False
    seconds: float = 0.0
    frozen: list[str] = field(default_factory=list)
    transferred_from_window: int | None = None


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


def _initial_model(cfg: AugmentorTrainConfig, history: TrainHistory) -> AugmentorStream:
    mcfg = cfg.model_config()
    if cfg.init is None:
        return AugmentorStream(mcfg)
    source = load_augmentor(cfg.init)
    src_net = source.net
    if src_net.config.window == cfg.window:
        # keep the source architecture (hidden, resblocks); take dropout/hop from the run
        keep = dataclasses.replace(src_net.config, hop=mcfg.hop, dropout=cfg.dropout,
                                   sample_rate=mcfg.sample_rate)
        model = AugmentorStream(keep)
        model.net.load_state_dict(src_net.state_dict())
        return model
    history.transferred_from_window = src_net.config.window
    net = transfer_encoder(src_net, cfg.window, dropout=cfg.dropout, hop=mcfg.hop,
                           sample_rate=mcfg.sample_rate)
    return AugmentorStream(net.config, net=net)


def train(cfg: AugmentorTrainConfig, out_dir: str) -> tuple[AugmentorStream, TrainHistory, str]:
    """Train (or fine-tune) and write ``augmentor.pt`` (best) and ``history.json`` to
    ``out_dir``; returns (best model in eval mode, history, checkpoint path)."""
    cfg.validate()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, CHECKPOINT_NAME)
    hist = TrainHistory()
    torch.manual_seed(cfg.seed)
    vib = cfg.vibration()
    splits = make_splits(cfg.windows, vib, seed=cfg.data_seed)
    model = _initial_model(cfg, hist)
    net = model.net
    if cfg.init is None:
        net.fit_normaliser(splits.train.lq, splits.train.hq, splits.train.actuator)
    elif hist.transferred_from_window is not None:  # new heads: their output scale is new
        in_mean, in_std = float(net.in_mean), float(net.in_std)
        net.fit_normaliser(splits.train.lq, splits.train.hq, splits.train.actuator)
        net.in_mean.fill_(in_mean)
        net.in_std.fill_(in_std)
    lr = cfg.lr
    if cfg.freeze:
        hist.frozen = net.freeze(cfg.freeze)
        lr = cfg.lr * cfg.finetune_lr_factor
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.min_lr)
    lq, hq, act = _tensors(splits.train)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = lq.shape[0]
    meta = {"trainer": "sigstream.models.augmentor.train", "train_config": _jsonable(cfg),
            "data": dataclasses.asdict(vib), "windows": cfg.windows,
            "window_model": {"window": net.config.window, "hop": model.hop,
                             "latency": model.latency}}

    def save(epoch: int) -> None:
        save_checkpoint(path, "augmentor", model.config, model, norm=net.norm_dict(),
                        meta={**meta, "epoch": epoch, "val": hist.best_val})

    t0 = time.perf_counter()
    stale = 0
    bar = progress_bar(cfg.epochs, cfg.progress, every=5)
    for epoch in bar:
        net.train()
        if cfg.redraw_noise and epoch > 0:
            seed = int(np.random.SeedSequence([cfg.seed, epoch]).generate_state(1)[0])
            lq = torch.from_numpy(redraw_noise(splits.train, vib, seed).lq)
        order = torch.randperm(n, generator=gen)
        tot = {"loss": 0.0, "recon": 0.0, "encoding": 0.0, "actuator": 0.0}
        for i in range(0, n, cfg.batch):
            idx = order[i:i + cfg.batch]
            out = net(lq[idx], hq[idx])
            loss, parts = augmentor_loss(out, hq[idx], act[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip)
            opt.step()
            for k in tot:
                tot[k] += parts[k] * len(idx)
        train_parts = {f"train_{k}": v / n for k, v in tot.items()}
        val = evaluate_loss(net, splits.val)
        cur_lr = opt.param_groups[0]["lr"]
        sched.step(val["loss"])
        row = {"epoch": epoch, **train_parts, **{f"val_{k}": v for k, v in val.items()},
               "train_loss": train_parts["train_loss"], "val_loss": val["loss"], "lr": cur_lr,
               "seconds": time.perf_counter() - t0}
        hist.epochs.append(row)
        if val["loss"] < hist.best_val:
            hist.best_val, hist.best_epoch, stale = val["loss"], epoch, 0
            save(epoch)
        else:
            stale += 1
        bar.set_postfix(train=f"{train_parts['train_loss']:.4f}", val=f"{val['loss']:.4f}",
                        psnr=f"{val['psnr']:.2f}", lr=f"{cur_lr:.1e}")
        bar.log_line(epoch, train=train_parts["train_loss"], val=val["loss"],
                     val_psnr=val["psnr"], lr=cur_lr)
        if stale >= cfg.patience:
            hist.stopped_early = True
            break
        if cfg.max_minutes and time.perf_counter() - t0 > 60 * cfg.max_minutes:
            hist.stopped_by_time = True
            break
    bar.close()
    hist.seconds = time.perf_counter() - t0
    with open(os.path.join(out_dir, "history.json"), "w") as fh:
        json.dump(dataclasses.asdict(hist), fh, indent=1)
    if os.path.isfile(path):
        _store_history(path, hist)
    best = load_augmentor(path)
    return best, hist, path


def _store_history(path: str, hist: TrainHistory) -> None:
    """Keep a compact copy of the training curves inside the best checkpoint (for plots)."""
    from sigstream.models.checkpoint import read_checkpoint

    payload = read_checkpoint(path)
    keys = ("epoch", "train_loss", "val_loss", "val_recon", "val_psnr", "lr")
    payload["meta"]["history"] = [{k: float(r[k]) for k in keys} for r in hist.epochs]
    payload["meta"]["best_epoch"] = hist.best_epoch
    tmp = path + ".partial"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _jsonable(cfg: AugmentorTrainConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["data"] = {k: v for k, v in cfg.data}
    return d
