"""``sigstream train forecaster``: curriculum training of a harmonic forecaster.

B: batch (windows), L: lookback, H: horizon.

Data: windows drawn on the fly (:class:`~sigstream.models.forecaster.data.HarmonicsWindows`),
batch ``i`` of stage ``s`` from ``SeedSequence([seed, s, i])``; half of them carry
N(0, 0.1) noise. The loss is the MSE against the clean continuation. Validation
windows come from seed 3 (evaluation uses seed 2).

Curriculum: the component count is drawn from ``1 .. stage`` for each stage in
``stages`` (default 3, 7, 15, 30, 45). Every ``val_every`` updates the
validation MSE of the current stage is measured; a stage ends after
``steps_per_stage`` updates or ``patience`` validations without improvement;
the last stage (all counts up to 45) runs up to ``final_steps`` and its best
model is kept. The learned linear candidate is initialised by ridge least
squares on 16,384 training windows. ``--minutes`` bounds the wall time.

Files in ``out``: ``forecaster.pt`` (best checkpoint of the last stage reached,
a normal sigstream checkpoint), ``resume.pt`` (model, optimiser, stage, step,
history: ``--resume`` continues from it exactly where it stopped) and
``history.json``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.checkpoint import save_checkpoint
from sigstream.models.forecaster.data import HarmonicsConfig, windows
from sigstream.models.forecaster.model import (
    ForecasterConfig,
    HarmonicForecaster,
    default_ls_orders,
)
from sigstream.models.training.loop import progress_bar

VAL_SEED = 3
NOISE = 0.1


@dataclass(frozen=True)
class ForecasterTrainConfig:
    variant: str = "mlp_gru"
    lookback: int = 100
    horizon: int = 10
    hidden: int = 64
    embed: int = 256
    analytic: bool = True
    burg_orders: tuple[int, ...] = (12, 32, 80)
    ls_orders: tuple[int, ...] | None = None  # None: default_ls_orders(lookback)
    teacher_forcing: float = 0.0
    seed: int = 0
    batch: int = 128
    lr: float = 2e-3
    stages: tuple[int, ...] = (3, 7, 15, 30, 45)
    steps_per_stage: int = 600
    final_steps: int = 6000
    val_every: int = 100
    val_windows: int = 1024
    patience: int = 8
    noise_fraction: float = 0.5
    clean_weight: float = 1.0  # loss weight of noise-free windows (noisy ones weigh 1)
    minutes: float = 0.0  # wall-time limit (0: none)
    progress: bool = True

    def model_config(self) -> ForecasterConfig:
        ls = () if not self.analytic else (
            default_ls_orders(self.lookback) if self.ls_orders is None else self.ls_orders)
        return ForecasterConfig(variant=self.variant, lookback=self.lookback,
                                horizon=self.horizon, hidden=self.hidden, embed=self.embed,
                                analytic=self.analytic, burg_orders=self.burg_orders,
                                ls_orders=ls, preset="accurate" if ls else "fast",
                                teacher_forcing=self.teacher_forcing)

    def validate(self) -> None:
        self.model_config().validate()
        if not self.stages or any(s < 1 for s in self.stages):
            raise ConfigError(f"stages must be component counts >= 1, got {self.stages}")
        if not self.clean_weight > 0:
            raise ConfigError(f"clean_weight must be > 0, got {self.clean_weight}")
        if min(self.batch, self.steps_per_stage, self.final_steps, self.val_every,
               self.val_windows, self.patience) < 1:
            raise ConfigError("batch, steps, val_every, val_windows and patience must be >= 1")


def _stage_data(cfg: ForecasterTrainConfig, stage: int) -> HarmonicsConfig:
    return HarmonicsConfig(num_components=(1, cfg.stages[stage]), noise=NOISE,
                           noise_fraction=cfg.noise_fraction)


def _batch(cfg: ForecasterTrainConfig, stage: int, i: int, n: int | None = None):
    return windows(_stage_data(cfg, stage), n or cfg.batch, cfg.lookback, cfg.horizon,
                   np.random.SeedSequence([cfg.seed, stage, i]))


def init_linear(model: HarmonicForecaster, cfg: ForecasterTrainConfig) -> None:
    """Ridge least-squares fit of the linear candidate on RMS-normalised training windows."""
    if not cfg.analytic:
        return
    w = windows(HarmonicsConfig(num_components=(1, max(cfg.stages)), noise=NOISE,
                                noise_fraction=cfg.noise_fraction), 16384, cfg.lookback,
                cfg.horizon, np.random.SeedSequence([cfg.seed, 999]))
    scale = torch.sqrt((w.lookback ** 2).mean(dim=1, keepdim=True)) + 1e-6
    x, y = (w.lookback / scale).double(), (w.target / scale).double()
    gram = x.T @ x
    gram += 1e-3 * torch.trace(gram) / gram.shape[0] * torch.eye(gram.shape[0], dtype=gram.dtype)
    with torch.no_grad():
        model.linear.weight.copy_(torch.linalg.solve(gram, x.T @ y).T.float())


def weighted_mse(pred: torch.Tensor, batch, clean_weight: float) -> torch.Tensor:
    """Mean squared error with noise-free windows weighted ``clean_weight`` (noisy: 1).

    Noisy windows' errors are about a hundred times the clean ones', so a plain mean
    hardly rewards getting clean signals right; a weight above 1 evens that out.
    """
    per_window = ((pred - batch.target) ** 2).mean(dim=1)  # (N,)
    if clean_weight == 1.0:
        return per_window.mean()
    w = torch.where(batch.noisy, 1.0, clean_weight).to(per_window.dtype)
    return (w * per_window).sum() / w.sum()


def validate(model: HarmonicForecaster, val, clean_weight: float = 1.0) -> tuple[float, float]:
    """(plain MSE, the training loss) on validation windows."""
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model.forecast(val.lookback[i:i + 512])
                          for i in range(0, val.lookback.shape[0], 512)])
    return (float(torch.mean((pred - val.target) ** 2)),
            float(weighted_mse(pred, val, clean_weight)))


def train(cfg: ForecasterTrainConfig, out_dir: str, resume: bool = False
          ) -> tuple[HarmonicForecaster, dict, str]:
    """Train (or continue with ``resume``); returns the best model, the history and its path."""
    cfg.validate()
    os.makedirs(out_dir, exist_ok=True)
    ckpt, resume_path = os.path.join(out_dir, "forecaster.pt"), os.path.join(out_dir, "resume.pt")
    torch.manual_seed(cfg.seed)
    model = HarmonicForecaster(cfg.model_config())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    hist = {"config": asdict(cfg), "validations": [], "stages": [], "seconds": 0.0}
    stage, step, best, stale = 0, 0, math.inf, 0
    if resume:
        if not os.path.isfile(resume_path):
            raise InputError(f"nothing to resume: {resume_path!r} not found")
        saved = torch.load(resume_path, map_location="cpu", weights_only=True)
        loose = ("minutes", "progress")
        now = {k: v for k, v in json.loads(json.dumps(asdict(cfg))).items() if k not in loose}
        if {k: v for k, v in saved["config"].items() if k not in loose} != now:
            raise ConfigError(f"{resume_path!r} was written with other training options; "
                              f"resume with the same options (see its history.json)")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        stage, step, best, stale = saved["stage"], saved["step"], saved["best"], saved["stale"]
        hist = json.loads(saved["history"])
        if saved.get("done"):
            return _finish(model, hist, ckpt, out_dir)
    else:
        init_linear(model, cfg)
    t0 = time.perf_counter() - hist["seconds"]
    session_start = time.perf_counter()
    total = sum(cfg.steps_per_stage for _ in cfg.stages[:-1]) + cfg.final_steps
    bar = progress_bar(total, cfg.progress, every=cfg.val_every)
    bar._bar.update(sum(s["steps"] for s in hist["stages"]) + step)
    n_stages = len(cfg.stages)
    done = False
    vals: dict[int, object] = {}
    while not done:
        last = stage == n_stages - 1
        limit = cfg.final_steps if last else cfg.steps_per_stage
        if stage not in vals:
            vals[stage] = windows(_stage_data(cfg, stage), cfg.val_windows, cfg.lookback,
                                  cfg.horizon, np.random.SeedSequence([VAL_SEED, stage]))
        val = vals[stage]
        model.train()
        batch = _batch(cfg, stage, step)
        pred = model.forecast(batch.lookback, batch.target)
        loss = weighted_mse(pred, batch, cfg.clean_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        hist["updates"] = hist.get("updates", 0) + 1
        bar._bar.update(1)
        timed_out = cfg.minutes > 0 and time.perf_counter() - session_start > cfg.minutes * 60
        if step % cfg.val_every == 0 or step >= limit or timed_out:
            v_mse, v = validate(model, val, cfg.clean_weight)
            hist["validations"].append({"stage": stage, "components": cfg.stages[stage],
                                        "step": step, "train_loss": float(loss.detach()),
                                        "val_mse": v_mse, "val_loss": v,
                                        "lr": opt.param_groups[0]["lr"],
                                        "seconds": time.perf_counter() - t0})
            bar.set_postfix(stage=f"1-{cfg.stages[stage]}", train=f"{float(loss.detach()):.5f}",
                            val=f"{v:.5f}")
            bar.log_line(step, stage=cfg.stages[stage], train=float(loss.detach()), val=v)
            if v < best:
                best, stale = v, 0
                save_checkpoint(ckpt, "forecaster", model.config, model, meta={
                    "train": asdict(cfg), "stage_components": cfg.stages[stage],
                    "step": step, "val_mse": v_mse, "val_loss": v})
            else:
                stale += 1
                if last and stale % 3 == 0:
                    for g in opt.param_groups:
                        g["lr"] = max(g["lr"] * 0.5, 1e-5)
            if step >= limit or stale >= cfg.patience:
                hist["stages"].append({"components": cfg.stages[stage], "steps": step,
                                       "best_val_mse": best})
                if last:
                    done = True
                else:
                    stage, step, best, stale = stage + 1, 0, math.inf, 0
            hist["seconds"] = time.perf_counter() - t0
            done = done or timed_out
            torch.save({"config": json.loads(json.dumps(asdict(cfg))),
                        "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "stage": stage, "step": step, "best": best, "stale": stale,
                        "history": json.dumps(hist), "done": done and not timed_out},
                       resume_path)
    bar.close()
    hist["stopped_by_time"] = bool(timed_out)
    return _finish(model, hist, ckpt, out_dir)


def _finish(model, hist: dict, ckpt: str, out_dir: str):
    from sigstream.models.registry import load_checkpoint

    with open(os.path.join(out_dir, "history.json"), "w") as fh:
        json.dump(hist, fh, indent=2)
    if not os.path.isfile(ckpt):
        save_checkpoint(ckpt, "forecaster", model.config, model)
    return load_checkpoint(ckpt), hist, ckpt
