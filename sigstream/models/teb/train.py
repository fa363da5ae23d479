"""Training the TEB-VAE on synthetic CTG records, and its checkpoint format.

B: batch (records), L: decimated steps (300 for 20-minute records), T: raw samples (4,800),
H: horizon (480).

Data. Training records come from :func:`~sigstream.models.teb.data.generate` with seed 1,
validation records with seed 3 (``sigstream eval teb`` uses seed 2). Features are
computed once by the fixed front-end; the target is the normalised FHR with NaN where
it is missing.

Schedule (:func:`~sigstream.models.training.loop.fit`). Adam with ReduceLROnPlateau,
gradient clipping at 1, early stopping on the validation NLL (deterministic, posterior
mean, every step decoded). Each update takes ``batch`` records; the encoders run over all
L steps, the decoder only over ``decode_steps`` steps drawn at random from ``[warmup, L)``
(it is pointwise in time, so this is an unbiased, much cheaper estimate of the same
loss). Everything is seeded.

Checkpoint. One :func:`~sigstream.models.checkpoint.save_checkpoint` file (model name
``"teb"``) holding a :class:`~sigstream.models.teb.model.TebStreamer` (front-end + model):
config ``{"model": TebConfig, "frontend": FrontEndConfig}`` as dicts, the state dict and
metadata (training config, history, best epoch). :func:`load_teb` rebuilds it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.checkpoint import read_checkpoint, save_checkpoint
from sigstream.models.teb.data import CtgConfig, generate
from sigstream.models.teb.frontend import FrontEndConfig, TebFrontEnd
from sigstream.models.teb.model import PRESETS, SeqVaeTeb, TebConfig, TebStreamer, preset
from sigstream.models.training.callbacks import EveryEpoch
from sigstream.models.training.config import FitConfig, check, opt, part, resolve
from sigstream.models.training.loop import Callback, Loop, Task, TrainResult, fit

TRAIN_SEED, VAL_SEED, TEST_SEED = 1, 3, 2
SHIPPED = "teb.pt"  # what training writes into its --out folder


def shipped_weights(preset: str = "small") -> str:
    """The path of the shipped TEB-VAE weights of a preset (``weights/teb-PRESET.pt`` of
    this package; ``--model teb:preset=PRESET``)."""
    from importlib import resources

    return str(resources.files("sigstream.models.teb") / "weights" / f"teb-{preset}.pt")


@dataclass(frozen=True)
class TebModelOptions:
    """The model is a :func:`~sigstream.models.teb.model.preset` of dimensions plus the
    loss's KL weight; the channel counts are the front-end's."""

    preset: str = opt("small", "which preset to train, as --model teb:preset=P loads it: "
                      "small (shipped dimensions, CPU-trainable) | seed (the source "
                      "document's dimensions)",
                      choices=PRESETS)
    kld_beta: float = opt(1.0, "KL weight", low=0)

    def validate(self) -> None:
        preset(self.preset)
        check(self)


@dataclass(frozen=True)
class TebTrainData:
    """Synthetic CTG records (:class:`CtgConfig`): training and validation sets."""

    DERIVED: ClassVar[tuple[str, ...]] = ("ctg.records",)
    ctg: CtgConfig = part(CtgConfig, "training data")
    train_records: int = opt(192, "training records (seed 1)", low=1)
    val_records: int = opt(32, "validation records (seed 3)", low=1)
    batch: int = opt(16, "records per update", low=1)

    def validate(self) -> None:
        self.ctg.validate()
        check(self)


@dataclass(frozen=True)
class TebTrainConfig:
    """Everything ``sigstream train teb`` takes."""

    model: TebModelOptions = part(TebModelOptions, "the TEB-VAE")
    data: TebTrainData = part(TebTrainData, "training data")
    decode_steps: int = opt(48, "steps decoded per record and update", low=1)
    plot_every: int = opt(0, "write the 4-panel PDF of a validation record to OUT/plots "
                          "every N epochs (0: never)", low=0, metavar="N")
    fit: FitConfig = part(lambda: FitConfig(epochs=40, lr=2e-3, patience=8, lr_patience=3),
                          "optimisation")

    def validate(self) -> None:
        check(self)
        warmup = preset(self.model.preset).warmup
        if self.data.ctg.minutes * 60 * 4 / 16 <= warmup:
            raise ConfigError(f"records are too short: --record-minutes must make them longer than "
                              f"the warmup ({warmup} steps of 4 s)")


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
              chunk: int = 64, ctg: CtgConfig | None = None) -> TebData:
    """Generate records and their features (front-end run offline, in chunks of records);
    ``ctg``: the recipe (its ``records`` replaced), else the default one of ``minutes``."""
    cfg = dataclasses.replace(ctg, records=records) if ctg else CtgConfig(records=records,
                                                                          minutes=minutes)
    d = generate(cfg, seed)
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
    cfg = preset(train_cfg.model.preset, x_channels=fc.per_signal,
                 y_st_channels=fc.st_channels, y_ph_channels=fc.ph_channels,
                 kld_beta=train_cfg.model.kld_beta)
    return TebStreamer(SeqVaeTeb(cfg), fe)


def save_teb(path: str, streamer: TebStreamer, meta: dict | None = None,
             preset: str = "small") -> None:
    """One checkpoint that :func:`load_teb` reads back as a :class:`TebStreamer` and the
    registry (``--model PATH``) as ``teb``: its config is a
    :class:`~sigstream.models.teb.stream.TebModelConfig` holding the dimensions."""
    from sigstream.models.teb.stream import TebModelConfig

    cfg = TebModelConfig(preset=preset, model=asdict(streamer.model.config),
                         frontend=asdict(streamer.frontend.config))
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


class TebTask(Task):
    """Features y_st (B, L, C_st), y_ph (B, L, C_ph), x_ph (B, L, C_x); raw FHR (B, T)."""

    checkpoint_name = SHIPPED
    monitor = "val_nll"
    label = "validation NLL"
    progress_keys = ("kld_loss",)

    def __init__(self, cfg: TebTrainConfig, out_dir: str) -> None:
        self.cfg = cfg
        self.streamer = build(cfg)
        self.model = self.streamer.model
        d = cfg.data
        self.train_data = make_data(self.streamer.frontend, d.train_records, TRAIN_SEED,
                                    ctg=d.ctg)
        self.val_data = make_data(self.streamer.frontend, d.val_records, VAL_SEED, ctg=d.ctg)
        self.model.set_normalisation(self.train_data.x_ph, self.train_data.y_st,
                                     self.train_data.y_ph)
        self.out_dir = out_dir
        self.gen = torch.Generator().manual_seed(cfg.fit.seed)

    def callbacks(self) -> list[Callback]:
        if not self.cfg.plot_every:
            return []
        from sigstream.models.teb.plots import PlotCallback

        plots = PlotCallback(self.cfg.plot_every, os.path.join(self.out_dir, "plots"),
                             self.val_data)
        return [EveryEpoch(lambda loop, row: plots(loop.epoch, loop.eval_model))]

    def train_epoch(self, loop: Loop) -> dict:
        model, data, cfg = self.model, self.train_data, self.cfg
        model.train()
        n_steps, warm = data.y_st.shape[1], model.config.warmup
        perm = torch.randperm(len(data), generator=self.gen)
        sums = {"total_loss": 0.0, "reconstruction_loss": 0.0, "kld_loss": 0.0}
        n_batches = 0
        for i in range(0, len(data), cfg.data.batch):
            d = data.subset(perm[i:i + cfg.data.batch])
            k = min(cfg.decode_steps, n_steps - warm)
            steps = torch.randperm(n_steps - warm, generator=self.gen)[:k].sort().values + warm
            out = model(d.y_st, d.y_ph, d.x_ph, steps=steps)
            losses = model.compute_loss(out, d.y_raw)
            loop.update(losses["total_loss"])
            for key in sums:
                sums[key] += float(losses[key].detach())
            n_batches += 1
        row = {k: v / n_batches for k, v in sums.items()}
        return {**row, "train_loss": row["total_loss"]}

    def validate(self, loop: Loop) -> dict:
        return {"val_nll": evaluate_nll(loop.eval_model, self.val_data)}

    def save(self, path: str, loop: Loop) -> None:
        streamer = TebStreamer(loop.eval_model, self.streamer.frontend)
        save_teb(path, streamer, meta={"train": asdict(self.cfg), "best_epoch": loop.best_epoch,
                                       "best_val_nll": loop.best_val},
                 preset=self.cfg.model.preset)

    def load(self, path: str) -> TebStreamer:
        return load_teb(path)

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])


def train(cfg: TebTrainConfig, out_dir: str, *,
          callbacks: tuple[Callback, ...] = ()) -> TrainResult:
    """Train; writes ``teb.pt`` (best checkpoint), ``history.json`` and, with
    ``plot_every``, ``plots/`` into ``out_dir``."""
    cfg = resolve(cfg)
    cfg.validate()
    torch.manual_seed(cfg.fit.seed)
    return fit(TebTask(cfg, out_dir), cfg.fit, out_dir, run_config=cfg, callbacks=callbacks)
