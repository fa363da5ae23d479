"""``teb`` in the model registry: the TEB-VAE on raw CTG, in clinical units.

B: batch (streams), T: raw samples at 4 Hz, L: steps of 16 samples (4 s), H: horizon (480
samples = 2 minutes), K = ceil(H / every): forecast samples kept per row.

Input (B, T, 2): ``[FHR in bpm, UP in mmHg]`` at 4 Hz, NaN where a sensor gave nothing.
A sample outside the physiological range (FHR outside 50-240 bpm, UP outside 0-200 mmHg,
exact zeros as CTG monitors write for signal loss, infinities) counts as missing, like NaN.

Output (B, L, 2K), one row per completed step of 16 samples: the forecast mean of the next
480 samples in bpm (every ``every``-th one: samples 1, 1 + every, ... after the step's
last sample), then their log-variances in log(bpm^2). Before a stream has seen any valid
FHR sample its rows are NaN: there is nothing to forecast from (an all-missing record
gives NaN rows only).

Streaming: ``hop`` 1 (any chunk), ``decimation`` 16, ``latency`` 0. A stream's steps are
counted from its own start, so streams batched in one runner may sit at different phases
(one reset at any sample): they then complete different numbers of steps in one chunk,
and the rows past a stream's own count are NaN padding
(:class:`~sigstream.stream.runner.StreamRunner` keeps the counts; see
:meth:`~sigstream.models.teb.model.TebStreamer.step`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from sigstream.core.errors import ConfigError
from sigstream.models.teb.data import FHR_CENTER, FHR_SCALE, UP_CENTER, UP_SCALE
from sigstream.models.teb.frontend import FrontEndConfig, TebFrontEnd
from sigstream.models.teb.model import (
    PRESETS,
    SeqVaeTeb,
    TebConfig,
    TebStreamer,
    TebStreamState,
    preset,
)

__all__ = ["TebModelConfig", "TebForecaster", "TebForecasterState", "FHR_RANGE", "UP_RANGE"]

FHR_RANGE = (50.0, 240.0)  # bpm; outside: missing
UP_RANGE = (0.0, 200.0)  # mmHg; outside (and exactly 0): missing


@dataclass(frozen=True)
class TebModelConfig:
    """``teb:preset=small|seed,every=N``. ``model``/``frontend`` hold the dimensions a
    checkpoint was trained with (``None``: the preset's, with the default front-end)."""

    preset: str = field(default="small", metadata={
        "help": "which shipped weights: small (1.1 MB) | seed (the seed's dimensions)",
        "choices": PRESETS})
    every: int = field(default=1, metadata={
        "help": "keep every N-th forecast sample of the 480 (output 2 x ceil(480 / N) "
                "columns); how the model streams, not its weights"})
    model: Any = None
    frontend: Any = None
    sample_rate: float = 4.0

    def validate(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown TEB preset {self.preset!r}; choose one of {PRESETS}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"every must be a whole number >= 1, got {self.every!r}")
        if float(self.sample_rate) != 4.0:
            raise ConfigError(f"the TEB-VAE runs at 4 Hz (CTG); got sample_rate="
                              f"{self.sample_rate:g}: resample the record to 4 Hz")

    def dimensions(self) -> tuple[TebConfig, FrontEndConfig]:
        fe = FrontEndConfig(**_tuples(self.frontend)) if self.frontend else FrontEndConfig()
        if self.model:
            return TebConfig(**_tuples(self.model)), fe
        return preset(self.preset, x_channels=fe.per_signal, y_st_channels=fe.st_channels,
                      y_ph_channels=fe.ph_channels), fe


def _tuples(d: Any) -> dict:
    if not isinstance(d, dict):
        d = asdict(d)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


class TebForecasterState(NamedTuple):
    """stream: the TebStreamer's state; seen: (B,) 1.0 once a valid FHR sample arrived."""

    stream: TebStreamState
    seen: Tensor


class TebForecaster(TebStreamer):
    """Raw CTG (B, T, 2) in bpm / mmHg -> (B, T // 16, 2K) forecast means (bpm) and
    log-variances (log bpm^2); see the module docstring."""

    def __init__(self, config: TebModelConfig | None = None) -> None:
        cfg = config or TebModelConfig()
        cfg.validate()
        model_cfg, fe_cfg = cfg.dimensions()
        super().__init__(SeqVaeTeb(model_cfg), TebFrontEnd(fe_cfg))
        self.config = cfg
        self.every = int(cfg.every)
        self.kept = math.ceil(self.h / self.every)
        self.out_channels = 2 * self.kept
        self.sample_rate = float(cfg.sample_rate)
        self.accepts_nan = True  # NaN is a missing sample: file sources may hold it
        self.nan_meaning = ("no forecast: no valid FHR sample (50-240 bpm) had arrived yet; "
                            "an all-missing record gives NaN rows only")
        self.register_buffer("_cols", torch.arange(0, self.h, self.every), persistent=False)

    def init_state(self, batch: int) -> TebForecasterState:  # type: ignore[override]
        w = self.model.x_mean
        return TebForecasterState(super().init_state(batch),
                                  torch.zeros(batch, dtype=w.dtype, device=w.device))

    # -- units ------------------------------------------------------------------------------
    @staticmethod
    def _normalise(x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, 2) raw -> normalised (NaN where missing) and FHR validity (B, T)."""
        f, u = x[..., 0], x[..., 1]
        f_ok = torch.isfinite(f) & (f >= FHR_RANGE[0]) & (f <= FHR_RANGE[1])
        u_ok = torch.isfinite(u) & (u > UP_RANGE[0]) & (u <= UP_RANGE[1])
        nan = torch.full_like(f, float("nan"))
        fn = torch.where(f_ok, (f - FHR_CENTER) / FHR_SCALE, nan)
        un = torch.where(u_ok, (u - UP_CENTER) / UP_SCALE, nan)
        return torch.stack([fn, un], dim=-1), f_ok

    def _clinical(self, rows: Tensor) -> Tensor:
        """(B, L, Z + 2H) rows [z, mean, variance] (normalised) -> (B, L, 2K) bpm, log bpm^2."""
        _, mean, var = self.split_rows(rows)
        mean = mean.index_select(-1, self._cols) * FHR_SCALE + FHR_CENTER
        logvar = torch.log(var.index_select(-1, self._cols)) + 2.0 * math.log(FHR_SCALE)
        return torch.cat([mean, logvar], dim=-1)

    def _gate(self, y: Tensor, seen_at: Tensor) -> Tensor:
        """NaN rows where no valid FHR sample had arrived by the step's last sample."""
        return torch.where(seen_at.unsqueeze(-1), y, torch.full_like(y, float("nan")))

    # -- the contract -----------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        xn, f_ok = self._normalise(x)
        rows = super().forward(xn)  # (B, L, Z + 2H)
        n = rows.shape[1]
        ends = torch.arange(n, device=x.device) * self.decimation + (self.decimation - 1)
        seen = torch.cumsum(f_ok.long(), dim=1) > 0  # (B, T)
        return self._gate(self._clinical(rows), seen[:, ends])

    def step(self, x: Tensor, state: TebForecasterState  # type: ignore[override]
             ) -> tuple[Tensor, TebForecasterState]:
        xn, f_ok = self._normalise(x)
        phase = state.stream.frontend.lowpass.rem  # (B,) before the chunk
        rows, stream = super().step(xn, state.stream)  # (B, n, Z + 2H), NaN padding
        b, t, n = x.shape[0], x.shape[1], rows.shape[1]
        # the chunk index of each row's last sample (row j ends 15 - phase + 16 j samples in)
        ends = (self.decimation - 1 - phase).unsqueeze(1) + \
            torch.arange(n, device=x.device).unsqueeze(0) * self.decimation  # (B, n)
        valid = torch.cumsum(f_ok.long(), dim=1)  # (B, T)
        valid = torch.cat([valid.new_zeros(b, 1), valid], dim=1)  # (B, T + 1); 0: before
        at = torch.gather(valid, 1, (ends + 1).clamp(min=0, max=t))  # valid samples so far
        seen_at = (state.seen.unsqueeze(1) > 0) | (at > 0)  # (B, n)
        seen = torch.maximum(state.seen, (valid[:, -1] > 0).to(state.seen.dtype))
        return self._gate(self._clinical(rows), seen_at), TebForecasterState(stream, seen)

    @staticmethod
    def example_input(rng: Any, batch: int, frames: int) -> Any:
        """(B, T, 2) float32 CTG-like test input for parity checks: FHR ~ 140 +- 15 bpm, UP
        ~ 25 +- 15 mmHg, about 5 % of the samples missing (NaN)."""
        import numpy as np

        x = np.stack([140 + 15 * rng.standard_normal((batch, frames)),
                      np.abs(25 + 15 * rng.standard_normal((batch, frames))) + 1], axis=-1)
        x[rng.random(x.shape) < 0.05] = np.nan
        return x.astype(np.float32)

    def describe(self) -> dict:
        """What a row holds, for ``models --json`` and the docs."""
        return {"input": ["FHR (bpm)", "UP (mmHg)"], "rate_hz": self.sample_rate,
                "step_samples": self.decimation, "horizon_samples": self.h,
                "every": self.every, "columns": {"mean_bpm": [0, self.kept],
                                                 "logvar_log_bpm2": [self.kept, 2 * self.kept]}}
