"""Training of the causal enhancer on audio-like synthetic data.

N: clips, T: samples, C: channels (1).

Data (:mod:`sigstream.models.enhancer.data`). A pool of ``clips`` clean clips of
``seconds`` each is drawn once from seed ``seed``; every epoch re-degrades the whole
pool with fresh noise, SNR (uniform over ``--snr-range``, dB), low-pass and drift
(seed derived from ``(seed, epoch)``), so the model never sees the same noisy clip
twice. Validation: ``val_clips`` clips of a disjoint seed at 0, 5 and 10 dB.

Loss: the negative mean per-clip SNR (dB) of the output against the clean clip — the
figure the evaluation reports — so loud and quiet clips weigh the same. Trained by
:func:`~sigstream.models.training.loop.fit`: Adam, gradient clipping, ReduceLROnPlateau,
early stopping after ``patience`` epochs without a better validation SNR, optionally a
moving average of the weights (``--ema``), and the best checkpoint saved as
``enhancer.pt`` with ``history.json`` beside it. Deterministic for a given seed on one
thread.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.checkpoint import save_checkpoint
from sigstream.models.enhancer.data import AudioDataConfig, degrade_clips, make_clips
from sigstream.models.enhancer.model import CausalEnhancer, EnhancerConfig
from sigstream.models.training.config import FitConfig, check, opt, part, resolve
from sigstream.models.training.loop import Callback, Loop, Task, TrainResult, fit

__all__ = ["ClipData", "CausalTrainConfig", "CausalTask", "train", "snr_loss", "grow_taps",
           "CHECKPOINT"]

CHECKPOINT = "audio-enhancer.pt"
VAL_SEED_OFFSET = 7919  # validation clips: seed + this
VAL_SNRS = (0.0, 5.0, 10.0)


@dataclass(frozen=True)
class ClipData:
    """A pool of clean clips drawn once, degraded afresh every epoch; validation clips of
    another seed at 0, 5 and 10 dB."""

    DERIVED: ClassVar[tuple[str, ...]] = ("audio.heldout",)
    audio: AudioDataConfig = part(AudioDataConfig, "training data")
    clips: int = opt(640, "training clips", low=1)
    val_clips: int = opt(48, "validation clips", low=1)
    batch: int = opt(32, "clips per update", low=1)

    def validate(self) -> None:
        lo, hi = self.audio.snr_range
        if lo > hi:
            raise ConfigError(f"--snr-range: the lowest SNR {lo} is above the highest {hi}")
        if not self.audio.seconds > 0 or not self.audio.sample_rate > 0:
            raise ConfigError("--clip-seconds and --sample-rate (--rate) must be > 0")
        check(self)


@dataclass(frozen=True)
class CausalTrainConfig:
    """Everything ``sigstream train enhancer --arch causal`` takes; the model's sample rate
    is the data's."""

    DERIVED: ClassVar[tuple[str, ...]] = ("model.sample_rate",)
    model: EnhancerConfig = part(EnhancerConfig, "the causal enhancer")
    data: ClipData = part(ClipData, "training data")
    fit: FitConfig = part(lambda: FitConfig(epochs=24, lr=2e-3, patience=6, lr_patience=2),
                          "optimisation")
    init: str | None = opt(None, "start from this checkpoint", metavar="CHECKPOINT")

    def resolved(self) -> CausalTrainConfig:
        return dataclasses.replace(self, model=dataclasses.replace(
            self.model, sample_rate=self.data.audio.sample_rate))

    def validate(self) -> None:
        check(self)
        if self.data.audio.seconds * self.data.audio.sample_rate < self.model.window:
            raise ConfigError(f"clips of {self.data.audio.seconds} s are shorter than the "
                              f"analysis window ({self.model.window} samples): raise "
                              f"--clip-seconds")


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
    if payload["model"] != "audio-enhancer":
        raise InputError(f"{path!r} is a {payload['model']} checkpoint, not a causal enhancer")
    state = grow_taps(dict(payload["state_dict"]), model.taps)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"{path!r} does not fit this enhancer config: "
                         f"{str(exc).splitlines()[0][:160]}") from None


class CausalTask(Task):
    """Clips: noisy and clean (N, T, 1)."""

    checkpoint_name = CHECKPOINT
    progress_keys = ("val_snr_db",)

    def __init__(self, cfg: CausalTrainConfig) -> None:
        self.cfg = cfg
        self.model = CausalEnhancer(cfg.model)
        if cfg.init:
            _load_init(self.model, cfg.init)
        d, seed = cfg.data, cfg.fit.seed
        _, self.clean_np, _ = make_clips(d.audio, d.clips, seed=seed)
        val_noisy, val_clean, _ = make_clips(d.audio, d.val_clips, seed=seed + VAL_SEED_OFFSET,
                                             snrs=VAL_SNRS)
        self.clean = torch.from_numpy(self.clean_np)
        self.val_x, self.val_y = torch.from_numpy(val_noisy), torch.from_numpy(val_clean)
        with torch.no_grad():
            self.val_in = -float(snr_loss(self.val_x, self.val_y))
        self.gen = torch.Generator().manual_seed(seed)

    def train_epoch(self, loop: Loop) -> dict:
        cfg = self.cfg
        seed = int(np.random.SeedSequence([cfg.fit.seed, loop.epoch]).generate_state(1)[0])
        noisy = torch.from_numpy(degrade_clips(cfg.data.audio, self.clean_np, seed))
        order = torch.randperm(cfg.data.clips, generator=self.gen)
        self.model.train()
        losses = []
        for i in range(0, cfg.data.clips, cfg.data.batch):
            idx = order[i:i + cfg.data.batch]
            loss = snr_loss(self.model(noisy[idx]), self.clean[idx])
            loop.update(loss)
            losses.append(float(loss.detach()))
        train_snr = -float(np.mean(losses))
        return {"train_loss": -train_snr, "train_snr_db": train_snr}

    def validate(self, loop: Loop) -> dict:
        self.model.eval()
        loop.eval_model.eval()
        with torch.no_grad():
            val_out = -float(snr_loss(loop.eval_model(self.val_x), self.val_y))
        return {"val_loss": -val_out, "val_snr_db": val_out, "val_snr_in_db": self.val_in}

    def save(self, path: str, loop: Loop) -> None:
        m, row = loop.eval_model, loop.epochs[-1]
        save_checkpoint(path, "audio-enhancer", m.config, m, meta={
            "train": asdict(self.cfg), "best_epoch": loop.best_epoch,
            "val_snr_in_db": self.val_in, "val_snr_out_db": row["val_snr_db"],
            "history": loop.epochs})

    def load(self, path: str) -> CausalEnhancer:
        from sigstream.models.registry import load_checkpoint

        return load_checkpoint(path)

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])


def train(cfg: CausalTrainConfig, out_dir: str, *,
          callbacks: tuple[Callback, ...] = ()) -> TrainResult:
    """Train; writes ``enhancer.pt`` (best checkpoint) and ``history.json`` into ``out_dir``."""
    cfg = resolve(cfg)
    cfg.validate()
    torch.manual_seed(cfg.fit.seed)
    result = fit(CausalTask(cfg), cfg.fit, out_dir, run_config=cfg, callbacks=callbacks)
    if result.stopped_by != "interrupt" and not math.isfinite(result.best_val):
        raise InputError("training produced no finite validation loss")
    return result
