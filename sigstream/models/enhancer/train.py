"""Training of the causal enhancer on audio-like synthetic data.

N: clips, T: samples, C: channels (1).

Data (:mod:`sigstream.models.enhancer.data`). A pool of ``clips`` clean clips of
``seconds`` each is drawn once from seed ``seed``; every epoch re-degrades the whole
pool with fresh noise, SNR (uniform over ``snr_low..snr_high`` dB), low-pass and drift
(seed derived from ``(seed, epoch)``), so the model never sees the same noisy clip
twice. Validation: ``val_clips`` clips of a disjoint seed at 0, 5 and 10 dB.

Loss: the negative mean per-clip SNR (dB) of the output against the clean clip — the
figure the evaluation reports — so loud and quiet clips weigh the same. Adam,
gradient clipping, plateau halving of the learning rate, early stopping after
``patience`` epochs without a better validation SNR, and the best checkpoint saved as
``enhancer.pt`` with ``history.json`` beside it. Deterministic for a given seed on one
thread.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.checkpoint import save_checkpoint
from sigstream.models.enhancer.data import AudioDataConfig, degrade_clips, make_clips
from sigstream.models.enhancer.model import CausalEnhancer, EnhancerConfig
from sigstream.models.training.loop import History, progress_bar

__all__ = ["CausalTrainConfig", "train", "snr_loss", "grow_taps", "CHECKPOINT"]

CHECKPOINT = "enhancer.pt"


@dataclass(frozen=True)
class CausalTrainConfig:
    """epochs: maximum passes over the clip pool; batch: clips per update; rate: model
    sample rate (Hz); seconds: clip length; hidden, dropout, frame, window, taps: the
    model (:class:`EnhancerConfig`); init: a checkpoint to start from; ema: decay of an
    exponential moving average of the weights per update (0: off), which is then what is
    validated and saved."""

    epochs: int = 24
    seed: int = 0
    lr: float = 2e-3
    batch: int = 32
    hidden: int = 64
    dropout: float = 0.05
    rate: float = 16000.0
    seconds: float = 1.0
    patience: int = 6
    progress: bool = True
    clips: int = 640
    val_clips: int = 48
    snr_low: float = -5.0
    snr_high: float = 20.0
    frame: int = 16
    window: int = 256
    taps: int = 128
    clip: float = 1.0
    lr_patience: int = 2
    speech: bool = True
    init: str | None = None
    ema: float = 0.0

    def model_config(self) -> EnhancerConfig:
        return EnhancerConfig(sample_rate=self.rate, frame=self.frame, window=self.window,
                              taps=self.taps, hidden=self.hidden, dropout=self.dropout)

    def data_config(self) -> AudioDataConfig:
        return AudioDataConfig(sample_rate=self.rate, seconds=self.seconds,
                               snr_range=(self.snr_low, self.snr_high), speech=self.speech)

    def validate(self) -> None:
        self.model_config().validate()
        for name in ("epochs", "batch", "clips", "val_clips", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, "
                                  f"got {getattr(self, name)}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"--ema must be in [0, 1), got {self.ema}")
        if self.lr <= 0 or self.seconds <= 0:
            raise ConfigError("--lr and --seconds must be > 0")
        if self.snr_low > self.snr_high:
            raise ConfigError(f"snr_low {self.snr_low} is above snr_high {self.snr_high}")
        if self.seconds * self.rate < self.window:
            raise ConfigError(f"clips of {self.seconds} s are shorter than the analysis window")


def snr_loss(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Negative mean SNR in dB over clips; estimate, clean: (N, T, 1)."""
    sig = clean.pow(2).sum(dim=(1, 2))
    err = (estimate - clean).pow(2).sum(dim=(1, 2))
    return -(10 * torch.log10((sig + 1e-10) / (err + 1e-10))).mean()


def grow_taps(state: dict, taps: int) -> dict:
    """A state dict of an enhancer with fewer FIR taps, rewritten for ``taps``: the old taps
    keep their rows of the head, the new (longer-lag) taps get zero rows and the offset
    stays last, so the grown model computes exactly what the old one did. Checkpoints
    with the same tap count (or more, which load_state_dict then rejects) are returned as
    they are."""
    w, b = state.get("head.weight"), state.get("head.bias")
    if w is None or b is None or w.shape[0] - 1 >= taps:
        return state
    old = w.shape[0] - 1
    w2 = w.new_zeros(taps + 1, w.shape[1])
    b2 = b.new_zeros(taps + 1)
    w2[:old], b2[:old] = w[:old], b[:old]
    w2[taps], b2[taps] = w[old], b[old]
    state["head.weight"], state["head.bias"] = w2, b2
    return state


def _load_init(model: CausalEnhancer, path: str) -> None:
    from sigstream.models.checkpoint import read_checkpoint

    payload = read_checkpoint(path)
    if payload["model"] != "enhancer":
        raise InputError(f"{path!r} is a {payload['model']} checkpoint, not a causal enhancer")
    state = grow_taps(dict(payload["state_dict"]), model.taps)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"{path!r} does not fit this enhancer config: "
                         f"{str(exc).splitlines()[0][:160]}") from None


def train(cfg: CausalTrainConfig, out_dir: str) -> tuple[CausalEnhancer, History, str]:
    """Train; writes ``enhancer.pt`` (best checkpoint) and ``history.json`` into ``out_dir``."""
    cfg.validate()
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = CausalEnhancer(cfg.model_config())
    if cfg.init:
        _load_init(model, cfg.init)
    data_cfg = cfg.data_config()
    _, clean_np, _ = make_clips(data_cfg, cfg.clips, seed=cfg.seed)
    val_noisy, val_clean, _ = make_clips(data_cfg, cfg.val_clips, seed=cfg.seed + 7919,
                                         snrs=(0.0, 5.0, 10.0))
    clean = torch.from_numpy(clean_np)
    # what is validated and saved: the model itself, or a moving average of its weights
    averaged = copy.deepcopy(model) if cfg.ema else model
    val_x, val_y = torch.from_numpy(val_noisy), torch.from_numpy(val_clean)
    with torch.no_grad():
        val_in = -float(snr_loss(val_x, val_y))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5,
                                                       patience=cfg.lr_patience, min_lr=1e-5)
    gen = torch.Generator().manual_seed(cfg.seed)
    ckpt = os.path.join(out_dir, CHECKPOINT)
    hist = History()
    t0 = time.perf_counter()
    bar = progress_bar(cfg.epochs, cfg.progress, every=1)
    stale = 0
    for epoch in bar:
        seed = int(np.random.SeedSequence([cfg.seed, epoch]).generate_state(1)[0])
        noisy = torch.from_numpy(degrade_clips(data_cfg, clean_np, seed))
        order = torch.randperm(cfg.clips, generator=gen)
        model.train()
        losses = []
        for i in range(0, cfg.clips, cfg.batch):
            idx = order[i:i + cfg.batch]
            loss = snr_loss(model(noisy[idx]), clean[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            if cfg.ema:
                with torch.no_grad():
                    for avg, p in zip(averaged.parameters(), model.parameters(), strict=True):
                        avg.lerp_(p, 1.0 - cfg.ema)
            losses.append(float(loss.detach()))
        model.eval()
        averaged.eval()
        with torch.no_grad():
            val_out = -float(snr_loss(averaged(val_x), val_y))
        train_snr = -float(np.mean(losses))
        lr = opt.param_groups[0]["lr"]
        val_loss = -val_out
        sched.step(val_loss)
        hist.epochs.append({"epoch": epoch, "train_loss": -train_snr, "val_loss": val_loss,
                            "train_snr_db": train_snr, "val_snr_db": val_out,
                            "val_snr_in_db": val_in, "lr": lr,
                            "seconds": time.perf_counter() - t0})
        if val_loss < hist.best_val:
            hist.best_val, hist.best_epoch, stale = val_loss, epoch, 0
            save_checkpoint(ckpt, "enhancer", averaged.config, averaged, meta={
                "train": asdict(cfg), "best_epoch": epoch, "val_snr_in_db": val_in,
                "val_snr_out_db": val_out, "history": hist.epochs})
        else:
            stale += 1
        bar.set_postfix(train=f"{train_snr:.2f}dB", val=f"{val_out:.2f}dB", lr=f"{lr:.1e}")
        bar.log_line(epoch, train_snr_db=train_snr, val_snr_db=val_out, val_in_db=val_in,
                     lr=lr)
        if stale >= cfg.patience:
            hist.stopped_early = True
            break
    bar.close()
    hist.seconds = time.perf_counter() - t0
    if not math.isfinite(hist.best_val):
        raise InputError("training produced no finite validation loss")
    with open(os.path.join(out_dir, "history.json"), "w") as fh:
        json.dump({"config": asdict(cfg), "epochs": hist.epochs, "best_epoch": hist.best_epoch,
                   "best_val_loss": hist.best_val, "stopped_early": hist.stopped_early,
                   "seconds": hist.seconds}, fh, indent=2)
    from sigstream.models.registry import load_checkpoint

    return load_checkpoint(ckpt), hist, ckpt
