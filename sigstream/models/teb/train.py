"""Training the TEB-VAE on synthetic CTG records, and its checkpoint format.

B: batch (records), L: decimated steps (300 for 20-minute records), T: raw samples (4,800),
H: horizon (480).

Data. Training records come from :func:`~sigstream.models.teb.data.generate` with seed 1,
validation records with seed 3 (``sigstream eval teb`` uses seed 2). Features are
computed once by the fixed front-end; the target is the normalised FHR with NaN where
it is missing.

Schedule. Adam with plateau halving of the learning rate, gradient clipping at 1, early
stopping on the validation NLL (deterministic, posterior mean, every step decoded). Each
update takes ``batch`` records; the encoders run over all L steps, the decoder only over
``decode_steps`` steps drawn at random from ``[warmup, L)`` (it is pointwise in time, so
this is an unbiased, much cheaper estimate of the same loss). Everything is seeded.

Checkpoint. One :func:`~sigstream.models.checkpoint.save_checkpoint` file (model name
``"teb"``) holding a :class:`~sigstream.models.teb.model.TebStreamer` (front-end + model):
config ``{"model": TebConfig, "frontend": FrontEndConfig}`` as dicts, the state dict and
metadata (training config, history, best epoch). :func:`load_teb` rebuilds it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from torch import Tensor

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.checkpoint import read_checkpoint, save_checkpoint
from sigstream.models.teb.data import CtgConfig, generate
from sigstream.models.teb.frontend import FrontEndConfig, TebFrontEnd
from sigstream.models.teb.model import SeqVaeTeb, TebConfig, TebStreamer, preset
from sigstream.models.training.loop import progress_bar

TRAIN_SEED, VAL_SEED, TEST_SEED = 1, 3, 2


@dataclass(frozen=True)
class TebBundleConfig:
    """What a TEB checkpoint needs to rebuild its streamer."""

    model: TebConfig = field(default_factory=TebConfig)
    frontend: FrontEndConfig = field(default_factory=FrontEndConfig)


@dataclass(frozen=True)
class TebTrainConfig:
    preset: str = "small"
    epochs: int = 40
    seed: int = 0
    train_records: int = 192
    val_records: int = 32
    minutes: float = 20.0
    batch: int = 16
    decode_steps: int = 48
    lr: float = 2e-3
    patience: int = 8
    lr_patience: int = 3
    clip: float = 1.0
    kld_beta: float = 1.0
    max_minutes: float = 0.0  # wall-clock budget (0: none); stops after the epoch that exceeds
    plot_every: int = 0  # write the 4-panel PDF every N epochs (0: never)
    progress: bool = True

    def validate(self) -> None:
        preset(self.preset)
        for name in ("epochs", "train_records", "val_records", "batch", "decode_steps",
                     "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or self.kld_beta < 0 or self.max_minutes < 0 or self.plot_every < 0:
            raise ConfigError("lr must be > 0; kld_beta, max_minutes, plot_every >= 0")
        if self.minutes * 60 * 4 / 16 <= preset(self.preset).warmup:
            raise ConfigError("records are too short: they must be longer than the warmup "
                              f"({preset(self.preset).warmup} steps of 4 s)")


@dataclass
class TebData:
    """y_st (B, L, C_st), y_ph (B, L, C_ph), x_ph (B, L, C_x), y_raw and up_raw (B, T)
    normalised with NaN where missing."""

    y_st: Tensor
    y_ph: Tensor
    x_ph: Tensor
    y_raw: Tensor
    up_raw: Tensor

    def __len__(self) -> int:
        return self.y_st.shape[0]

    def subset(self, idx) -> TebData:  # noqa: ANN001
        return TebData(*(getattr(self, f.name)[idx] for f in fields(self)))


def make_data(frontend: TebFrontEnd, records: int, seed: int, minutes: float = 20.0,
              chunk: int = 64) -> TebData:
    """Generate records and their features (front-end run offline, in chunks of records)."""
    d = generate(CtgConfig(records=records, minutes=minutes), seed)
    f, u = d.normalised()
    raw = torch.from_numpy(np.stack([f, u], axis=-1))  # (B, T, 2)
    with torch.no_grad():
        feats = torch.cat([frontend(raw[i:i + chunk]) for i in range(0, records, chunk)])
    y_st, y_ph, x_ph = frontend.split(feats)
    return TebData(y_st.contiguous(), y_ph.contiguous(), x_ph.contiguous(),
                   raw[..., 0].contiguous(), raw[..., 1].contiguous())


def build(train_cfg: TebTrainConfig, frontend_cfg: FrontEndConfig | None = None
          ) -> TebStreamer:
    fe = TebFrontEnd(frontend_cfg or FrontEndConfig())
    fc = fe.config
    cfg = preset(train_cfg.preset, x_channels=fc.per_signal, y_st_channels=fc.st_channels,
                 y_ph_channels=fc.ph_channels, kld_beta=train_cfg.kld_beta)
    return TebStreamer(SeqVaeTeb(cfg), fe)


def save_teb(path: str, streamer: TebStreamer, meta: dict | None = None) -> None:
    cfg = TebBundleConfig(streamer.model.config, streamer.frontend.config)
    save_checkpoint(path, "teb", cfg, streamer, meta=meta)


def load_teb(path: str) -> TebStreamer:
    """Rebuild a TEB streamer (front-end + model) from a checkpoint, in eval mode."""
    payload = read_checkpoint(path)
    if payload["model"] != "teb":
        raise InputError(f"{path!r} is a {payload['model']!r} checkpoint, not a TEB-VAE")

    def tup(d: dict) -> dict:
        return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

    try:
        cfg = payload["config"]
        streamer = TebStreamer(SeqVaeTeb(TebConfig(**tup(cfg["model"]))),
                               TebFrontEnd(FrontEndConfig(**tup(cfg["frontend"]))))
        streamer.load_state_dict(payload["state_dict"])
    except (TypeError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"checkpoint {path!r} does not fit the TEB-VAE: {first[:160]}") from None
    streamer.meta = payload.get("meta", {})
    return streamer.eval()


@torch.no_grad()
def evaluate_nll(model: SeqVaeTeb, data: TebData, batch: int = 32) -> float:
    """Mean NLL per valid forecast sample (steps >= warmup), posterior mean, all steps."""
    from sigstream.models.teb.model import future_targets, gaussian_nll

    was = model.training
    model.eval()
    total, count = 0.0, 0
    cfg = model.config
    for i in range(0, len(data), batch):
        d = data.subset(slice(i, i + batch))
        out = model(d.y_st, d.y_ph, d.x_ph, sample=False)
        target, valid = future_targets(d.y_raw, d.y_st.shape[1], cfg.decimation, cfg.horizon)
        valid[:, :cfg.warmup] = False
        n = int(valid.sum())
        total += float(gaussian_nll(out["raw_signal_mu"], out["raw_signal_logvar"], target,
                                    valid)) * n
        count += n
    model.train(was)
    return total / max(count, 1)


def train(cfg: TebTrainConfig, out_dir: str,
          callback: Callable[[int, SeqVaeTeb], None] | None = None
          ) -> tuple[TebStreamer, dict, str]:
    """Train; writes ``teb.pt`` (best checkpoint) and ``history.json`` into ``out_dir``."""
    cfg.validate()
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(cfg.seed)
    streamer = build(cfg)
    model = streamer.model
    train_data = make_data(streamer.frontend, cfg.train_records, TRAIN_SEED, cfg.minutes)
    val_data = make_data(streamer.frontend, cfg.val_records, VAL_SEED, cfg.minutes)
    model.set_normalisation(train_data.x_ph, train_data.y_st, train_data.y_ph)
    if callback is None and cfg.plot_every:
        from sigstream.models.teb.plots import PlotCallback

        callback = PlotCallback(cfg.plot_every, os.path.join(out_dir, "plots"), val_data)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5,
                                                       patience=cfg.lr_patience, min_lr=1e-5)
    gen = torch.Generator().manual_seed(cfg.seed)
    n_steps = train_data.y_st.shape[1]
    warm = model.config.warmup
    ckpt = os.path.join(out_dir, "teb.pt")
    hist: dict = {"config": asdict(cfg), "epochs": [], "best_epoch": -1, "best_val_nll": None,
                  "stopped_early": False}
    best, stale = float("inf"), 0
    t0 = time.perf_counter()
    bar = progress_bar(cfg.epochs, cfg.progress, every=1)
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(train_data), generator=gen)
        sums = {"total_loss": 0.0, "reconstruction_loss": 0.0, "kld_loss": 0.0}
        n_batches = 0
        for i in range(0, len(train_data), cfg.batch):
            d = train_data.subset(perm[i:i + cfg.batch])
            k = min(cfg.decode_steps, n_steps - warm)
            steps = torch.randperm(n_steps - warm, generator=gen)[:k].sort().values + warm
            out = model(d.y_st, d.y_ph, d.x_ph, steps=steps)
            losses = model.compute_loss(out, d.y_raw)
            opt.zero_grad(set_to_none=True)
            losses["total_loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            for key in sums:
                sums[key] += float(losses[key].detach())
            n_batches += 1
        row = {k: v / n_batches for k, v in sums.items()}
        val = evaluate_nll(model, val_data)
        lr = opt.param_groups[0]["lr"]
        sched.step(val)
        row.update(epoch=epoch, val_nll=val, lr=lr, seconds=time.perf_counter() - t0)
        hist["epochs"].append(row)
        if val < best:
            best, stale = val, 0
            hist.update(best_epoch=epoch, best_val_nll=val)
            save_teb(ckpt, streamer, meta={"train": asdict(cfg), "best_epoch": epoch,
                                           "best_val_nll": val})
        else:
            stale += 1
        if callback is not None:
            callback(epoch, model)
        bar.set_postfix(loss=f"{row['total_loss']:.4f}", val=f"{val:.4f}", lr=f"{lr:.1e}")
        bar.log_line(epoch, loss=row["total_loss"], kld=row["kld_loss"], val_nll=val, lr=lr)
        if stale >= cfg.patience:
            hist["stopped_early"] = True
            break
        if cfg.max_minutes and time.perf_counter() - t0 > 60 * cfg.max_minutes:
            hist["stopped_budget"] = True
            break
    bar.close()
    hist["seconds"] = time.perf_counter() - t0
    with open(os.path.join(out_dir, "history.json"), "w") as fh:
        json.dump(hist, fh, indent=2)
    return load_teb(ckpt), hist, ckpt
