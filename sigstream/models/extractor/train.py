"""``sigstream train extractor``: train a frequency extractor and save its best checkpoint.

B: batch (sequences), T: time, K: components.

Data. Training sequences come from the preset's generator seeded with 1; every
epoch draws a fresh set from that seeded stream (epoch e uses seed (1, seed, e)), so
the model cannot memorise one noise draw — with a single fixed draw of the
``seed`` preset the test error rises while the training error falls, because
the noise is the only thing that tells samples apart. Validation uses seed 3,
the test set (``sigstream eval``) seed 2.

Schedule. ``realistic``: truncated BPTT over whole sequences in windows of
``tbptt`` samples, state carried, ReduceLROnPlateau, early stopping; 150 epochs
unless ``--epochs`` says otherwise.
``seed``: the targets are fixed functions of time, so the model must become a
clock started at the sequence start; it learns on growing prefixes of the
sequence (a curriculum, :class:`PrefixCurriculum`: 100 samples, then x1.5 whenever the
validation error on the current prefix is below ``advance_mse``) up to the full 10,000;
20 updates per epoch, 400 epochs unless ``--epochs`` says otherwise.

The ``stateful`` variant is fed one sample per ``step`` call (L = 1) with the
loss accumulated over ``tbptt`` samples; ``sequence`` and ``multi`` are fed
windows of ``tbptt`` samples. Everything is seeded by ``--seed``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from sigstream.core.errors import InputError
from sigstream.models.checkpoint import read_checkpoint, save_checkpoint
from sigstream.models.extractor.data import DataConfig, generate
from sigstream.models.extractor.model import ExtractorConfig, FrequencyExtractor
from sigstream.models.layers.recurrent import chrono_init
from sigstream.models.training.bptt import run_sequence
from sigstream.models.training.callbacks import Curriculum
from sigstream.models.training.config import FitConfig, check, opt, part, resolve
from sigstream.models.training.loop import Callback, Loop, Task, TrainResult, fit

__all__ = ["ExtractorTrainData", "ExtractorTrainConfig", "ExtractorTask", "PrefixCurriculum",
           "train", "build_model"]

TRAIN_SEED, VAL_SEED = 1, 3
SEED_UPDATES = 20  # updates per epoch of the seed preset's curriculum
SEED_DRAW = 4  # sequences per update of the seed preset
EPOCHS = {"realistic": 150, "seed": 400}  # when --epochs is not given


@dataclass(frozen=True)
class ExtractorTrainData:
    """The training data: fresh sets of ``mixture`` sequences every epoch."""

    DERIVED: ClassVar[tuple[str, ...]] = ("mixture.sequences",)
    mixture: DataConfig = part(DataConfig, "the mixture")
    train_sequences: int = opt(32, "training sequences per epoch (realistic preset; the seed "
                               "preset draws 4 sequences per update)", low=1)
    val_sequences: int = opt(8, "validation sequences (realistic preset; seed: 1)", low=1)
    batch: int = opt(8, "sequences per update (realistic preset)", low=1)

    def validate(self) -> None:
        check(self)


@dataclass(frozen=True)
class ExtractorTrainConfig:
    """Everything ``sigstream train extractor`` takes; the model's preset, frequencies and
    sample rate are the data's."""

    DERIVED: ClassVar[tuple[str, ...]] = ("model.preset", "model.freqs", "model.sample_rate")
    model: ExtractorConfig = part(lambda: ExtractorConfig(frontend="bandpass"), "the LSTM")
    data: ExtractorTrainData = part(ExtractorTrainData, "training data")
    fit: FitConfig = part(lambda: FitConfig(lr=3e-3, patience=20, lr_patience=8),
                          "optimisation")
    tbptt: int = opt(1000, "truncated-BPTT window in samples", low=1)
    advance_mse: float = opt(0.01, "seed preset: grow the training prefix x1.5 when the "
                             "validation MSE on it is below this", above=0)
    init: str | None = opt(None, "start from this checkpoint (and, for the seed preset, its "
                           "prefix)", metavar="CHECKPOINT")

    def resolved(self) -> ExtractorTrainConfig:
        m = self.data.mixture
        model = dataclasses.replace(self.model, preset=m.preset, freqs=m.freqs,
                                    sample_rate=m.sample_rate)
        fit_cfg = self.fit if self.fit.epochs is not None else dataclasses.replace(
            self.fit, epochs=EPOCHS.get(m.preset, EPOCHS["seed"]))
        return dataclasses.replace(self, model=model, fit=fit_cfg)

    def validate(self) -> None:
        check(self)


def build_model(cfg: ExtractorTrainConfig) -> FrequencyExtractor:
    model = FrequencyExtractor(cfg.model)
    chrono_init(model.lstm, t_max=1000.0)  # time constants up to the slowest period (1 s)
    return model


def _tensors(data) -> tuple[Tensor, Tensor]:  # noqa: ANN001
    return torch.from_numpy(data.inputs), torch.from_numpy(data.targets)


def _load_init(model: FrequencyExtractor, path: str) -> int | None:
    """Start from a checkpoint's weights and normalisation; returns the prefix it reached."""
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


class PrefixCurriculum(Curriculum):
    """The seed preset's curriculum: train on the first ``length`` samples; when the
    validation MSE on them is below ``advance_mse``, grow the prefix x1.5 (up to ``total``),
    take the learning rate x0.85 (longer sequences: gentler steps) and save the checkpoint
    (``--init`` resumes from its prefix). fit() tracks the best value only on the full
    length."""

    def __init__(self, length: int, total: int, advance_mse: float, min_lr: float) -> None:
        self.length, self.total = length, total
        self.advance_mse, self.min_lr = advance_mse, min_lr

    @property
    def tracking(self) -> bool:  # type: ignore[override]
        return self.length >= self.total

    final = tracking

    def on_epoch_end(self, loop: Loop, row: dict) -> None:
        if self.length >= self.total or not row["val_loss"] < self.advance_mse:
            return
        self.length = min(self.total, int(self.length * 1.5))
        for g in loop.optimizer.param_groups:
            g["lr"] = max(self.min_lr, g["lr"] * 0.85)
        loop.save_checkpoint()

    def state_dict(self) -> dict:
        return {"length": self.length}

    def load_state_dict(self, state: dict) -> None:
        self.length = int(state["length"])


class ExtractorTask(Task):
    """B: batch (sequences), T: time; inputs (B, T, 1), targets (B, T, K)."""

    checkpoint_name = "extractor.pt"
    label = "validation MSE"

    def __init__(self, cfg: ExtractorTrainConfig) -> None:
        self.cfg = cfg
        self.model = build_model(cfg)
        mix = cfg.data.mixture
        self.seed_preset = mix.preset == "seed"
        self.n_train = 1 if self.seed_preset else cfg.data.train_sequences
        n_val = 1 if self.seed_preset else cfg.data.val_sequences
        first = generate(dataclasses.replace(mix, sequences=self.n_train), TRAIN_SEED)
        self.model.set_normalisation(float(first.mixture.mean()), float(first.mixture.std()))
        self.val = _tensors(generate(dataclasses.replace(mix, sequences=n_val), VAL_SEED))
        total = self.val[0].shape[1]
        length = 100 if self.seed_preset else total
        if cfg.init:
            length = min(total, _load_init(self.model, cfg.init) or length)
        self.curriculum = PrefixCurriculum(length, total, cfg.advance_mse, cfg.fit.min_lr)
        self.step = 1 if cfg.model.variant == "stateful" else None
        self.log_every = 10

    def callbacks(self) -> list[Callback]:
        return [self.curriculum] if self.seed_preset else []

    def _train_data(self, index: int) -> tuple[Tensor, Tensor]:
        cfg = self.cfg
        seed = TRAIN_SEED if index == 0 else int(
            np.random.SeedSequence([TRAIN_SEED, cfg.fit.seed, index]).generate_state(1)[0])
        mix = cfg.data.mixture
        n = self.n_train * (SEED_DRAW if self.seed_preset else 1)
        return _tensors(generate(dataclasses.replace(
            mix, sequences=n, seconds=self.curriculum.length / mix.sample_rate), seed))

    def train_epoch(self, loop: Loop) -> dict:
        loss_fn = torch.nn.functional.mse_loss
        self.model.train()
        if self.seed_preset:
            t = self.curriculum.length
            losses = [run_sequence(self.model, *self._train_data(loop.epoch * SEED_UPDATES + i + 1),
                                   t, loss_fn, loop.update, self.step)
                      for i in range(SEED_UPDATES)]
            return {"train_loss": float(np.mean(losses)), "prefix": t}
        x, y = self._train_data(loop.epoch)
        size = self.cfg.data.batch
        losses = [run_sequence(self.model, x[i:i + size], y[i:i + size], self.cfg.tbptt,
                               loss_fn, loop.update, self.step)
                  for i in range(0, x.shape[0], size)]
        return {"train_loss": float(np.mean(losses))}

    def validate(self, loop: Loop) -> dict:
        model = loop.eval_model
        model.eval()
        t = self.curriculum.length
        with torch.no_grad():
            val = float(torch.nn.functional.mse_loss(model(self.val[0][:, :t]),
                                                     self.val[1][:, :t]))
        return {"val_loss": val}

    def save(self, path: str, loop: Loop) -> None:
        m = loop.eval_model
        save_checkpoint(path, "extractor", m.config, m,
                        norm={"mean": float(m.in_mean), "std": float(m.in_std)},
                        meta={"train": asdict(self.cfg), "best_epoch": loop.best_epoch,
                              "best_val_mse": loop.best_val, "history": loop.epochs,
                              "prefix": self.curriculum.length})

    def load(self, path: str) -> FrequencyExtractor:
        from sigstream.models.registry import load_checkpoint

        return load_checkpoint(path)


def train(cfg: ExtractorTrainConfig, out_dir: str, *,
          callbacks: tuple[Callback, ...] = ()) -> TrainResult:
    """Train; writes ``extractor.pt`` (best checkpoint) and ``history.json`` into ``out_dir``.

    The seed preset's curriculum has always decayed the learning rate after
    ``lr_patience`` epochs without a strict improvement, ReduceLROnPlateau's
    ``patience=lr_patience - 1, threshold=0``; it keeps doing so, so a seed gives the
    weights it gave."""
    cfg = resolve(cfg)
    cfg.validate()
    torch.manual_seed(cfg.fit.seed)
    task = ExtractorTask(cfg)
    fit_cfg = cfg.fit
    if task.seed_preset and fit_cfg.lr_patience is not None:
        fit_cfg = dataclasses.replace(fit_cfg, lr_patience=max(0, fit_cfg.lr_patience - 1),
                                      lr_threshold=0.0)
    return fit(task, fit_cfg, out_dir, run_config=cfg, callbacks=callbacks)
