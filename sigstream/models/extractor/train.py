"""``sigstream train extractor``: train a frequency extractor and save its best checkpoint.

B: batch (sequences), T: time, K: components.

Data. Training sequences come from the preset's generator seeded with 1; every
epoch draws a fresh set from that seeded stream (epoch e uses seed (1, e)), so
the model cannot memorise one noise draw — with a single fixed draw of the
``seed`` preset the test error rises while the training error falls, because
the noise is the only thing that tells samples apart. Validation uses seed 3,
the test set (``sigstream eval``) seed 2.

Schedule. ``realistic``: truncated BPTT over whole sequences in windows of
``tbptt`` samples, state carried, plateau LR halving, early stopping.
``seed``: the targets are fixed functions of time, so the model must become a
clock started at the sequence start; it learns on growing prefixes of the
sequence (a curriculum: 100 samples, then x1.5 whenever the validation error
on the current prefix is below ``advance_mse``) up to the full 10,000.

The ``stateful`` variant is fed one sample per ``step`` call (L = 1) with the
loss accumulated over ``tbptt`` samples; ``sequence`` and ``multi`` are fed
windows of ``tbptt`` samples. Everything is seeded by ``--seed``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch

from sigstream.core.errors import ConfigError
from sigstream.models.checkpoint import save_checkpoint
from sigstream.models.extractor.data import PRESETS, DataConfig, generate
from sigstream.models.extractor.model import ExtractorConfig, FrequencyExtractor
from sigstream.models.layers.recurrent import chrono_init
from sigstream.models.training.loop import FitConfig, History, fit, seed_everything

TRAIN_SEED, VAL_SEED = 1, 3


@dataclass(frozen=True)
class ExtractorTrainConfig:
    preset: str = "seed"
    variant: str = "multi"
    epochs: int | None = None  # None: the preset's default
    seed: int = 0
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0
    frontend: str = "none"
    lr: float = 3e-3
    tbptt: int = 1000
    batch: int = 8
    snr_db: float = 0.0
    train_sequences: int = 32
    val_sequences: int = 8
    patience: int = 20
    lr_patience: int = 8
    advance_mse: float = 0.01
    init: str | None = None  # a checkpoint to start from (weights, normalisation, prefix)
    progress: bool = True

    def validate(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {PRESETS}")
        ExtractorConfig(variant=self.variant, hidden=self.hidden, layers=self.layers,
                        dropout=self.dropout, frontend=self.frontend).validate()
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError("--epochs must be >= 1")

    def default_epochs(self) -> int:
        if self.epochs is not None:
            return self.epochs
        return 150 if self.preset == "realistic" else 400


def build_model(cfg: ExtractorTrainConfig) -> FrequencyExtractor:
    model = FrequencyExtractor(ExtractorConfig(
        variant=cfg.variant, hidden=cfg.hidden, layers=cfg.layers, dropout=cfg.dropout,
        preset=cfg.preset, frontend=cfg.frontend))
    chrono_init(model.lstm, t_max=1000.0)  # time constants up to the slowest period (1 s)
    return model


def _tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(data.inputs), torch.from_numpy(data.targets)


def _load_init(model: FrequencyExtractor, path: str) -> int | None:
    """Start from a checkpoint's weights and normalisation; returns the prefix it reached."""
    from sigstream.core.errors import InputError
    from sigstream.models.checkpoint import read_checkpoint

    payload = read_checkpoint(path)
    if payload["model"] != "extractor":
        raise InputError(f"{path!r} is a {payload['model']} checkpoint, not an extractor")
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise InputError(f"{path!r} does not fit this extractor config: "
                         f"{str(exc).splitlines()[0][:160]}") from None
    prefix = payload.get("meta", {}).get("prefix")
    return int(prefix) if prefix else None


def train(cfg: ExtractorTrainConfig, out_dir: str) -> tuple[FrequencyExtractor, History, str]:
    """Train; writes ``extractor.pt`` (best checkpoint) and ``history.json`` into ``out_dir``."""
    cfg.validate()
    os.makedirs(out_dir, exist_ok=True)
    seed_everything(cfg.seed)
    model = build_model(cfg)
    n_train = 1 if cfg.preset == "seed" else cfg.train_sequences
    n_val = 1 if cfg.preset == "seed" else cfg.val_sequences
    first = generate(DataConfig(preset=cfg.preset, sequences=n_train, snr_db=cfg.snr_db),
                     TRAIN_SEED)
    model.set_normalisation(float(first.mixture.mean()), float(first.mixture.std()))
    val_full = _tensors(generate(DataConfig(preset=cfg.preset, sequences=n_val,
                                            snr_db=cfg.snr_db), VAL_SEED))
    total_t = val_full[0].shape[1]
    length = {"t": 100 if cfg.preset == "seed" else total_t}
    if cfg.init:
        length["t"] = min(total_t, _load_init(model, cfg.init) or length["t"])

    def train_data(epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        seed = TRAIN_SEED if epoch == 0 else int(
            np.random.SeedSequence([TRAIN_SEED, cfg.seed, epoch]).generate_state(1)[0])
        data = generate(DataConfig(preset=cfg.preset, sequences=n_train * (4 if cfg.preset
                                   == "seed" else 1), snr_db=cfg.snr_db,
                                   seconds=length["t"] / 1000.0), seed)
        return _tensors(data)

    ckpt = os.path.join(out_dir, "extractor.pt")

    def val_data() -> tuple[torch.Tensor, torch.Tensor]:
        t = length["t"]
        return val_full[0][:, :t], val_full[1][:, :t]

    def on_best(epoch: int, hist: History) -> None:
        save_checkpoint(ckpt, "extractor", model.config, model,
                        norm={"mean": float(model.in_mean), "std": float(model.in_std)},
                        meta={"train": asdict(cfg), "best_epoch": epoch,
                              "best_val_mse": hist.best_val, "history": hist.epochs,
                              "prefix": length["t"]})

    fit_cfg = FitConfig(epochs=cfg.default_epochs(), lr=cfg.lr, patience=cfg.patience,
                        lr_patience=cfg.lr_patience,
                        tbptt=cfg.tbptt, batch=cfg.batch, seed=cfg.seed, progress=cfg.progress)
    step = 1 if cfg.variant == "stateful" else None
    if cfg.preset == "realistic":
        hist = fit(model, train_data, val_data(), fit_cfg, on_best=on_best, step_size=step)
    else:
        hist = _curriculum(model, train_data, val_data, fit_cfg, length, total_t,
                           cfg.advance_mse, on_best, step)
    with open(os.path.join(out_dir, "history.json"), "w") as fh:
        json.dump({"config": asdict(cfg), "epochs": hist.epochs, "best_epoch": hist.best_epoch,
                   "best_val_mse": hist.best_val, "stopped_early": hist.stopped_early,
                   "seconds": hist.seconds}, fh, indent=2)
    from sigstream.models.registry import load_checkpoint

    return load_checkpoint(ckpt), hist, ckpt


def _curriculum(model, train_data, val_data, fit_cfg: FitConfig, length: dict, total_t: int,
                advance_mse: float, on_best, step) -> History:
    """Grow the training prefix; early stopping only counts once the full length is reached."""
    import time

    from sigstream.models.training.loop import progress_bar, run_sequence

    loss_fn = torch.nn.functional.mse_loss
    opt = torch.optim.Adam(model.parameters(), lr=fit_cfg.lr)
    hist = History()
    t0 = time.perf_counter()
    stale = 0
    iters = 20  # updates per epoch
    bar = progress_bar(fit_cfg.epochs, fit_cfg.progress)
    for epoch in bar:
        model.train()
        losses = []
        for i in range(iters):
            x, y = train_data(epoch * iters + i + 1)
            losses.append(run_sequence(model, x, y, length["t"], loss_fn, opt, fit_cfg.clip,
                                       step))
        model.eval()
        xv, yv = val_data()
        with torch.no_grad():
            val = float(loss_fn(model(xv), yv))
        lr = opt.param_groups[0]["lr"]
        hist.epochs.append({"epoch": epoch, "train_loss": float(np.mean(losses)),
                            "val_loss": val, "lr": lr, "prefix": length["t"],
                            "seconds": time.perf_counter() - t0})
        bar.set_postfix(prefix=length["t"], train=f"{np.mean(losses):.4f}", val=f"{val:.4f}",
                        lr=f"{lr:.1e}")
        bar.log_line(epoch, prefix=length["t"], train=float(np.mean(losses)), val=val, lr=lr)
        if length["t"] < total_t:
            if val < advance_mse:
                length["t"] = min(total_t, int(length["t"] * 1.5))
                for g in opt.param_groups:  # longer sequences: gentler steps
                    g["lr"] = max(fit_cfg.min_lr, g["lr"] * 0.85)
                on_best(epoch, hist)  # keep what the curriculum has reached (resumable)
            continue
        if val < hist.best_val:
            hist.best_val, hist.best_epoch, stale = val, epoch, 0
            on_best(epoch, hist)
        else:
            stale += 1
            if stale % fit_cfg.lr_patience == 0:
                for g in opt.param_groups:
                    g["lr"] = max(fit_cfg.min_lr, g["lr"] * fit_cfg.lr_factor)
        if stale >= fit_cfg.patience:
            hist.stopped_early = True
            break
    bar.close()
    if hist.best_epoch < 0:  # never reached the full length: keep the last model
        on_best(fit_cfg.epochs - 1, hist)
    hist.seconds = time.perf_counter() - t0
    return hist
