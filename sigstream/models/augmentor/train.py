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
sensor model, or, with ``--data PAIRS`` (``pairs.npz`` or ``LOW,HIGH``), the user's own
aligned recordings (:mod:`~sigstream.models.augmentor.pairs`): windows of the first 70 %
for training, its last 15 % for validation, the last 30 % never touched (held out for
``sigstream eval enhancer --arch augmentor --data PAIRS``). ``--data KEY=VALUE,...`` (or
``--sensor KEY=VALUE,...``) still sets options of the synthetic sensor model.

Uncertainty calibration: after training, ``calib_passes`` Monte-Carlo dropout passes over
the validation windows fit a :class:`~sigstream.models.calibration.Calibration` (split
conformal on ``|target - mean| / sigma``), stored in the checkpoint's metadata
(``calibration``) and applied by the evaluation.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

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
from sigstream.models.augmentor.pairs import SensorPairs as Pairs
from sigstream.models.checkpoint import save_checkpoint
from sigstream.models.metrics import psnr
from sigstream.models.training.config import FitConfig, check, opt, part, resolve
from sigstream.models.training.loop import Callback, Loop, Task, TrainResult, fit

__all__ = ["VibrationData", "AugmentorTrainConfig", "AugmentorTask", "train",
           "load_augmentor", "evaluate_loss", "parse_sensor_overrides", "calibrate",
           "mc_windows"]

CHECKPOINT_NAME = "augmentor.pt"
ACTUATORS = 2  # the commands the data defines: damping, stiffness


_FILE_SUFFIXES = (".npz", ".npy", ".wav", ".flac", ".ogg", ".aiff", ".aif")


def _looks_like_file(text: str) -> bool:
    return ("," in text or os.sep in text or text.lower().endswith(_FILE_SUFFIXES)
            or os.path.exists(text))


def parse_sensor_overrides(text: str, spelling: str = "--data") -> dict:
    """``KEY=VALUE,...`` for :class:`VibrationConfig` (tuples as ``A/B``) -> field values;
    one ConfigError line for an unknown key or a bad value."""

    hints = typing.get_type_hints(VibrationConfig)
    out: dict = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = (p.strip() for p in item.partition("="))
        if not sep or not key:
            raise ConfigError(f"bad {spelling} item {item!r}: expected KEY=VALUE")
        if key not in hints:
            raise ConfigError(f"unknown key {key!r} in {spelling}; keys: "
                              f"{', '.join(VibrationConfig.__dataclass_fields__)}")
        tp = hints[key]
        is_tuple = typing.get_origin(tp) is tuple
        cast = typing.get_args(tp)[0] if is_tuple else tp
        parts_ = value.split("/") if is_tuple else [value]
        if is_tuple and len(parts_) != 2:
            raise ConfigError(f"expected 2 values separated by '/' for {spelling} {key}, got "
                              f"{value!r}")
        try:
            vals = [cast(p.strip()) for p in parts_]
        except ValueError:
            kind = "a whole number" if cast is int else "a number"
            raise ConfigError(f"expected {kind} for {spelling} {key}, got {value!r}") from None
        out[key] = tuple(vals) if is_tuple else vals[0]
    return out


@dataclass(frozen=True)
class VibrationData:
    """Windows of the sensor model, split 80/10/10 (train/validation/test), or, with
    ``pairs``, of the user's own aligned recordings (module docstring)."""

    DERIVED: ClassVar[tuple[str, ...]] = ("sensor.window",)
    sensor: VibrationConfig = part(VibrationConfig, "the sensor model")
    pairs: str | None = opt(None, "train on your own aligned recordings: PAIRS.npz (arrays "
                            "'low' and 'high', (T,) or (T, C), optional 'rate') or LOW,HIGH "
                            "(two .npy or WAV files); windows of the first 70 %% (its last "
                            "15 %% validates), the last 30 %% held out for eval. Also takes "
                            "KEY=VALUE,... for the synthetic sensor model (as --sensor)",
                            metavar="PAIRS|KEY=VALUE,...", aliases=("--data",))
    pair_stride: int = opt(8, "with --data PAIRS: a training window starts every N samples",
                           low=1)
    pair_flip: bool = opt(False, "with --data PAIRS: also train on every window negated (low "
                          "and high together; for degradations that commute with sign)")
    windows: int = opt(20000, "windows generated, split 80/10/10", low=10)
    data_seed: int = opt(0, "seed of the data set")
    redraw_noise: bool = opt(True, "every epoch after the first draws fresh low-quality noise "
                             "and drift for the training windows (synthetic data only)")
    batch: int = opt(128, "windows per update", low=1)

    def with_overrides(self) -> VibrationData:
        """``pairs`` given as ``KEY=VALUE,...``: applied to the sensor model (pairs -> None)."""
        text = (self.pairs or "").strip()
        if not text or "=" not in text or all(os.path.isfile(p.strip())
                                              for p in text.split(",")):
            return self  # no overrides, or files whose names hold a '='
        sensor = dataclasses.replace(self.sensor, **parse_sensor_overrides(text))
        return dataclasses.replace(self, sensor=sensor, pairs=None)

    def validate(self) -> None:
        if self.windows < 10:
            raise ConfigError(f"--windows: need at least 10 windows, got {self.windows}")
        if self.pairs and "=" not in self.pairs and not _looks_like_file(self.pairs):
            raise ConfigError(f"bad --data item {self.pairs!r}: expected KEY=VALUE (sensor "
                              f"model) or a pairs file (PAIRS.npz, or LOW,HIGH)")
        if self.pairs:  # the synthetic signal's frequency ranges do not apply
            if self.sensor.window < 8:
                raise ConfigError(f"--window must be >= 8 samples, got {self.sensor.window}")
            check(dataclasses.replace(self, sensor=None))  # type: ignore[arg-type]
        else:
            self.sensor.validate()
            check(self)

    def load(self) -> Pairs:
        from sigstream.models.augmentor.pairs import load_pairs

        assert self.pairs is not None
        return load_pairs(self.pairs)

    def splits(self) -> VibrationSplits:
        if self.pairs:
            from sigstream.models.augmentor.pairs import pair_splits

            return pair_splits(self.load(), self.sensor.window, self.pair_stride,
                               self.pair_flip)
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
    calib_passes: int = opt(20, "Monte-Carlo dropout passes over the validation windows to "
                            "calibrate the uncertainty after training (0: skip)", low=0)

    def resolved(self) -> AugmentorTrainConfig:
        data = self.data.with_overrides()
        sensor = dataclasses.replace(data.sensor, window=self.model.window)
        if data.pairs and _looks_like_file(data.pairs):
            from sigstream.models.augmentor.pairs import load_pairs

            rate = load_pairs(data.pairs).rate  # the file's rate, when it has one
            if rate is not None:
                sensor = dataclasses.replace(sensor, sample_rate=rate)
        model = dataclasses.replace(self.model, sample_rate=sensor.sample_rate,
                                    hop=min(self.model.hop, self.model.window),
                                    actuators=ACTUATORS, actuator=False)
        return dataclasses.replace(self, model=model,
                                   data=dataclasses.replace(data, sensor=sensor))

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
        if cfg.data.redraw_noise and not cfg.data.pairs and loop.epoch > 0:
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
        val = evaluate_loss(typing.cast(SensorAugmentor, loop.eval_model), self.splits.val)
        return {**{f"val_{k}": v for k, v in val.items()}, "val_loss": val["loss"]}

    def save(self, path: str, loop: Loop) -> None:
        net = typing.cast(SensorAugmentor, loop.eval_model)
        model = self.stream if net is self.model else AugmentorStream(self.stream.config,
                                                                      net=net)
        cfg = self.cfg
        extra: dict[str, Any] = {}
        if cfg.data.pairs:
            if not hasattr(self, "_pairs_meta"):
                from sigstream.models.augmentor.pairs import describe

                self._pairs_meta = describe(cfg.data.load(), cfg.data.pairs)
            extra["pairs"] = self._pairs_meta
        save_checkpoint(path, "augmentor", model.config, model, norm=net.norm_dict(), meta={
            **extra,
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
    result = fit(task, fit_cfg, out_dir, run_config=cfg, callbacks=(extra, *callbacks))
    if cfg.calib_passes > 0 and result.stopped_by != "interrupt" and result.model is not None:
        cal = calibrate(result.model, task.splits.val, cfg.calib_passes, seed=cfg.fit.seed)
        from sigstream.models.training.loop import _annotate

        _annotate(result.checkpoint, {"calibration": cal})
        result.model.meta = {**(getattr(result.model, "meta", {}) or {}), "calibration": cal}
        result.extra["calibration_scale_95"] = cal["scale_95"]
    return result


def mc_windows(model: AugmentorStream, lq: np.ndarray, passes: int, seed: int = 0,
               batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo dropout over (N, W) windows: mean and std (N, W) of ``passes`` passes."""
    from sigstream.models.uncertainty import mc_dropout

    net = model.net
    means, stds = [], []
    for i in range(0, len(lq), batch):
        x = torch.from_numpy(np.ascontiguousarray(lq[i:i + batch], np.float32))
        m, s = mc_dropout(lambda v: net(v).reconstruction, x, passes, module=net,
                          seed=seed + i)
        means.append(m.numpy())
        stds.append(s.numpy())
    return np.concatenate(means), np.concatenate(stds)


def calibrate(model: AugmentorStream, val: VibrationSet, passes: int, seed: int = 0) -> dict:
    """The MC-dropout calibration fitted on validation windows (JSON-ready dict, with the
    passes and the raw coverage it corrects)."""
    from sigstream.models.calibration import coverage, fit_calibration

    mean, std = mc_windows(model, val.lq, passes, seed)
    cal = fit_calibration(mean, std, val.hq)
    return {**cal.to_dict(), "passes": int(passes), "fitted_on": "validation windows",
            "windows": int(val.size),
            "raw_coverage_95": coverage(mean, std, val.hq, 0.95)}


class _Extra(Callback):
    """Puts the fine-tuning facts into the history."""

    def __init__(self, facts: dict) -> None:
        self.facts = facts

    def on_fit_start(self, loop: Loop) -> None:
        loop.extra.update(self.facts)
