"""TEB-VAE: a causal sequence VAE forecasting the raw FHR with uncertainty, streamable.

B: batch, L: decimated steps (one per ``decimation`` = 16 raw samples), T: raw samples,
H: forecast horizon in raw samples (480 = 2 minutes at 4 Hz), Z: latent size (16),
C_x / C_st / C_ph: feature channels of the source path and of the two target modalities.

All tensors are batch-first and time-major, ``(B, L, C)`` (the seed's ``(B, C, L)`` is
transposed here, as everywhere in sigstream).

Model (every part causal: step l sees inputs of steps <= l only)

* :class:`SourceEncoder`: UP features ``x_ph`` -> deterministic ``mu_x`` (B, L, Z):
  channel reduction, a linear path (ResidualMLP) and a conv path (depthwise gated causal
  residual blocks, kernels 9, 7, 5, 3), fused, a unidirectional LSTM (128 x 3), MLP heads.
* :class:`TargetEncoder`: FHR features ``y_st`` and ``y_ph`` (two modalities, each with
  its own reduction, linear and conv paths, kernels 11 ... 3), fused, LSTM, heads
  ``mu_y`` (B, L, Z) and ``logvar_y`` (B, L, 2Z): the first Z are the prior's log-variance
  (prior p(z|y) = N(mu_y, exp(logvar_y[:Z]))), the last Z are conditioning features.
* :class:`ConditionalEncoder`: ``[mu_x, logvar_y[Z:]]`` -> posterior q(z|x,y):
  ``mu_post``, ``logvar_post`` (B, L, Z).
* :class:`Decoder`: z (B, L, Z) -> the next H raw samples' mean and log-variance
  (B, L, H), log-variance clamped to [-10, 10]. The forecast of step l covers raw samples
  ``16 (l + 1) ... 16 (l + 1) + H - 1``: it starts right after the last sample step l saw.
  With ``anchor_channel`` set (default 0, the front-end's "instant value" of the FHR), the
  mean is that last observed FHR value plus the decoder's output (a residual forecast).

Sampling: in training mode ``z = mu_post + eps * sigma_post``; in eval mode, and always
when streaming, ``z = mu_post`` (deterministic), so streamed and offline outputs agree.

Loss (:meth:`SeqVaeTeb.compute_loss`): Gaussian NLL per forecast sample (with the
``0.5 log 2 pi`` constant) averaged over the valid samples of steps ``>= warmup`` (30);
a target sample is invalid when it is missing (NaN) or past the end of ``y_raw``. When
``warmup`` is at least the number of steps (or no target is valid) the reconstruction and
KL losses are exactly zero (still attached to the graph). KL(q(z|x,y) || p(z|y)) is summed
over Z, averaged over batch and steps ``>= warmup`` and divided by H, so at
``kld_beta = 1`` the total is the negative ELBO per forecast sample.

Streaming: :class:`SourceEncoder` and :class:`TargetEncoder` carry NamedTuple states
(conv histories, LSTM h/c); :class:`ConditionalEncoder` and :class:`Decoder` are
pointwise in time (empty state). :class:`TebStreamer` chains the front-end and the model:
each new group of 16 raw samples yields one row ``[z (Z), mean (H), variance (H)]``,
equal to the offline computation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import torch
from torch import Tensor, nn

from sigstream.core import state as st
from sigstream.core.contract import NoState, StreamingModule
from sigstream.core.errors import ConfigError, InputError
from sigstream.models.layers.blocks import (
    ChannelReductionBlock,
    FastTemporalSmoother,
    ResidualMLP,
    UpsamplingBlock,
    geometric_schedule,
    init_weights,
)
from sigstream.models.layers.conv import CausalResidualBlock
from sigstream.models.layers.recurrent import LSTMState, StatefulLSTM

LOGVAR_MIN, LOGVAR_MAX = -10.0, 10.0
LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class TebConfig:
    """Dimensions of the TEB-VAE. ``TebConfig()`` has the seed's dimensions (latent 16,
    LSTM 128 x 3, decoder 176 wide, conv refinement 24-48-32-24, post 20) with the
    front-end's default channel counts; :func:`preset` gives ``seed`` and ``small``."""

    x_channels: int = 19
    y_st_channels: int = 9
    y_ph_channels: int = 10
    reduce_source: tuple[int, ...] = (32,)
    reduce_target: tuple[int, ...] = (64, 32)
    source_kernels: tuple[int, ...] = (9, 7, 5, 3)
    target_kernels: tuple[int, ...] = (11, 9, 7, 5, 3)
    fusion: int = 50
    lstm_hidden: int = 128
    lstm_layers: int = 3
    latent: int = 16
    cond_width: int = 35
    decoder_width: int = 176
    horizon: int = 480
    decimation: int = 16
    expand: str = "mlp"  # "mlp" (the seed's MLP to H + conv refinement) | "upsample"
    refine: tuple[int, ...] = (24, 48, 32, 24)
    post: int = 20
    smoother_kernel: int = 11
    warmup: int = 30
    kld_beta: float = 1.0
    dropout: float = 0.1
    anchor_channel: int = 0  # y_st channel added to the mean (-1: none)

    def validate(self) -> None:
        if self.expand not in ("mlp", "upsample"):
            raise ConfigError(f"unknown expand {self.expand!r}; choose mlp or upsample")
        if min(self.x_channels, self.y_st_channels, self.y_ph_channels, self.latent,
               self.lstm_hidden, self.lstm_layers, self.horizon, self.decimation,
               self.fusion, self.cond_width, self.decoder_width, self.post) < 1:
            raise ConfigError("every TEB-VAE size must be >= 1")
        if not (self.reduce_source and self.reduce_target):
            raise ConfigError("reduce_source and reduce_target need at least one stage")
        if self.warmup < 0 or self.kld_beta < 0 or not 0 <= self.dropout < 1:
            raise ConfigError("warmup and kld_beta must be >= 0, dropout in [0, 1)")
        if self.anchor_channel >= self.y_st_channels:
            raise ConfigError("anchor_channel must index a y_st channel (or be -1)")


PRESETS = ("seed", "small")


def preset(name: str, **overrides: object) -> TebConfig:
    """``seed``: the seed's dimensions. ``small``: the shipped, CPU-trainable config
    (reduction 16, kernels 5/3, LSTM 64 x 2, decoder 64 wide with upsampling heads)."""
    if name == "seed":
        cfg = TebConfig()
    elif name == "small":
        cfg = TebConfig(reduce_source=(16,), reduce_target=(24, 16), source_kernels=(5, 3),
                        target_kernels=(5, 3), fusion=32, lstm_hidden=64, lstm_layers=2,
                        cond_width=24, decoder_width=64, expand="upsample", refine=(),
                        post=8, smoother_kernel=11, dropout=0.05)
    else:
        raise ConfigError(f"unknown TEB preset {name!r}; choose one of {PRESETS}")
    cfg = replace(cfg, **overrides)  # type: ignore[arg-type]
    cfg.validate()
    return cfg


# --------------------------------------------------------------------------------------------
def _reduction(in_ch: int, stages: tuple[int, ...], dropout: float) -> nn.ModuleList:
    blocks, width = [], in_ch
    for out in stages:
        blocks.append(ChannelReductionBlock(width, out, kernel_size=3, dropout=dropout))
        width = out
    return nn.ModuleList(blocks)


class _Branch(nn.Module):
    """One modality: reduction stages, a linear path and a causal conv path, fused.

    (B, L, C_in) -> (B, L, width); state: (reduction states, conv states).
    """

    def __init__(self, in_ch: int, stages: tuple[int, ...], kernels: tuple[int, ...],
                 lin_dims: list[int], dropout: float, out: int | None = None) -> None:
        super().__init__()
        self.reduce = _reduction(in_ch, stages, dropout)
        r = stages[-1]
        self.linear = ResidualMLP(r, lin_dims, dropout)
        self.convs = nn.ModuleList(
            CausalResidualBlock(r, k, mode="depthwise", gated=True, dilation=1 + i // 2,
                                dropout=dropout) for i, k in enumerate(kernels))
        self.conv_proj = nn.Linear(r, r)
        self.out_dim = out or 2 * r
        self.fuse = ResidualMLP(2 * r, [self.out_dim], dropout) if out else None

    def init_state(self, batch: int) -> tuple[tuple, tuple]:
        return (tuple(b.init_state(batch) for b in self.reduce),
                tuple(c.init_state(batch) for c in self.convs))

    def forward(self, x: Tensor) -> Tensor:
        for b in self.reduce:
            x = b(x)
        h = x
        for c in self.convs:
            h = c(h)
        y = torch.cat([self.linear(x), self.conv_proj(h)], dim=-1)  # (B, L, 2r)
        return self.fuse(y) if self.fuse is not None else y

    def step(self, x: Tensor, state: tuple[tuple, tuple]) -> tuple[Tensor, tuple[tuple, tuple]]:
        rs, cs = [], []
        for b, s in zip(self.reduce, state[0], strict=True):
            x, s = b.step(x, s)
            rs.append(s)
        h = x
        for c, s in zip(self.convs, state[1], strict=True):
            h, s = c.step(h, s)
            cs.append(s)
        y = torch.cat([self.linear(x), self.conv_proj(h)], dim=-1)
        y = self.fuse(y) if self.fuse is not None else y
        return y, (tuple(rs), tuple(cs))


class SourceState(NamedTuple):
    """branch: (reduction ConvStates, residual-block states); lstm: LSTMState (B, layers, H)."""

    branch: tuple
    lstm: LSTMState


class SourceEncoder(StreamingModule):
    """(B, L, C_x) source features -> mu_x (B, L, Z), deterministic and causal."""

    def __init__(self, cfg: TebConfig) -> None:
        super().__init__()
        r, d = cfg.reduce_source[-1], cfg.dropout
        self.branch = _Branch(cfg.x_channels, cfg.reduce_source, cfg.source_kernels,
                              [max(1, round(r * 0.8)), r, r], d)
        self.fuse = ResidualMLP(2 * r, geometric_schedule(2 * r, cfg.fusion, 1), d)
        self.lstm = StatefulLSTM(cfg.fusion, cfg.lstm_hidden, cfg.lstm_layers, dropout=d)
        mid = max(cfg.latent, round(cfg.lstm_hidden * 0.41))
        self.out = ResidualMLP(cfg.lstm_hidden, geometric_schedule(cfg.lstm_hidden, mid, 3), d)
        self.head = ResidualMLP(mid, geometric_schedule(mid, cfg.latent, 4), d)
        self.in_channels, self.out_channels = cfg.x_channels, cfg.latent
        self.hop, self.latency = 1, 0

    def init_state(self, batch: int) -> SourceState:
        return SourceState(self.branch.init_state(batch), self.lstm.init_state(batch))

    def forward(self, x: Tensor, return_intermediate: bool = False):  # noqa: ANN201
        h = self.lstm(self.fuse(self.branch(x)))
        mu = self.head(self.out(h))
        return (mu, {"lstm_output": h}) if return_intermediate else mu

    def step(self, x: Tensor, state: SourceState) -> tuple[Tensor, SourceState]:
        f, bs = self.branch.step(x, state.branch)
        h, ls = self.lstm.step(self.fuse(f), state.lstm)
        return self.head(self.out(h)), SourceState(bs, ls)

    def get_sequence_encoding(self, x: Tensor, timestep: int) -> Tensor:
        """Causal encoding of ``x`` (B, L, C_x) up to ``timestep`` (inclusive): only
        ``x[:, :timestep + 1]`` is read; returns mu_x (B, timestep + 1, Z), whose last
        row is the encoding at ``timestep``."""
        if not 0 <= timestep < x.shape[1]:
            raise InputError(f"timestep must lie in [0, {x.shape[1] - 1}], got {timestep}")
        return self.forward(x[:, :timestep + 1])


class TargetState(NamedTuple):
    """st, ph: per-modality branch states; lstm: LSTMState (B, layers, H)."""

    st: tuple
    ph: tuple
    lstm: LSTMState


class TargetEncoder(StreamingModule):
    """(B, L, C_st + C_ph) = [y_st, y_ph] -> [mu_y (Z), logvar_y (2Z)] (B, L, 3Z), causal.

    :meth:`encode` takes the two modalities separately and returns ``(mu_y, logvar_y)``.
    """

    def __init__(self, cfg: TebConfig) -> None:
        super().__init__()
        r, d = cfg.reduce_target[-1], cfg.dropout
        self.c_st, self.z = cfg.y_st_channels, cfg.latent
        self.st = _Branch(cfg.y_st_channels, cfg.reduce_target, cfg.target_kernels,
                          [r, r, r], d, out=r)
        self.ph = _Branch(cfg.y_ph_channels, cfg.reduce_target, cfg.target_kernels,
                          [r, r], d, out=r)
        self.fuse = ResidualMLP(2 * r, geometric_schedule(2 * r, cfg.fusion, 2), d)
        self.lstm = StatefulLSTM(cfg.fusion, cfg.lstm_hidden, cfg.lstm_layers, dropout=d)
        trunk = max(2 * cfg.latent, round(cfg.lstm_hidden * 0.52))
        self.trunk = ResidualMLP(cfg.lstm_hidden, [trunk], d)
        self.mu = ResidualMLP(trunk, geometric_schedule(trunk, cfg.latent, 5), d)
        self.logvar = ResidualMLP(trunk, geometric_schedule(trunk, 2 * cfg.latent, 5), d)
        self.in_channels = cfg.y_st_channels + cfg.y_ph_channels
        self.out_channels = 3 * cfg.latent
        self.hop, self.latency = 1, 0

    def init_state(self, batch: int) -> TargetState:
        return TargetState(self.st.init_state(batch), self.ph.init_state(batch),
                           self.lstm.init_state(batch))

    def _heads(self, h: Tensor) -> Tensor:
        t = self.trunk(h)
        return torch.cat([self.mu(t), self.logvar(t)], dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        f = torch.cat([self.st(x[..., :self.c_st]), self.ph(x[..., self.c_st:])], dim=-1)
        return self._heads(self.lstm(self.fuse(f)))

    def step(self, x: Tensor, state: TargetState) -> tuple[Tensor, TargetState]:
        a, s_st = self.st.step(x[..., :self.c_st], state.st)
        b, s_ph = self.ph.step(x[..., self.c_st:], state.ph)
        h, ls = self.lstm.step(self.fuse(torch.cat([a, b], dim=-1)), state.lstm)
        return self._heads(h), TargetState(s_st, s_ph, ls)

    def encode(self, y_st: Tensor, y_ph: Tensor) -> tuple[Tensor, Tensor]:
        """(B, L, C_st), (B, L, C_ph) -> mu_y (B, L, Z), logvar_y (B, L, 2Z)."""
        out = self.forward(torch.cat([y_st, y_ph], dim=-1))
        return out[..., :self.z], out[..., self.z:]

    def get_encoder_features(self, y_st: Tensor, y_ph: Tensor) -> Tensor:
        """mu_y (B, L, Z) without sampling."""
        return self.encode(y_st, y_ph)[0]


class ConditionalEncoder(StreamingModule):
    """(B, L, 2Z) = [mu_x, c_logvar] -> [mu_post, logvar_post] (B, L, 2Z); pointwise in time
    (empty state)."""

    def __init__(self, cfg: TebConfig) -> None:
        super().__init__()
        c, z, d = cfg.cond_width, cfg.latent, cfg.dropout
        dims = [round(c * 55 / 35), round(c * 47 / 35), round(c * 41 / 35), c]
        self.body = ResidualMLP(2 * z, dims, d)
        self.mu = ResidualMLP(c, geometric_schedule(c, z, 4), d)
        self.logvar = ResidualMLP(c, geometric_schedule(c, z, 4), d)
        self.in_channels = self.out_channels = 2 * z
        self.hop, self.latency = 1, 0

    def init_state(self, batch: int) -> NoState:
        return NoState()

    def forward(self, x: Tensor) -> Tensor:
        h = self.body(x)
        return torch.cat([self.mu(h), self.logvar(h).clamp(LOGVAR_MIN, LOGVAR_MAX)], dim=-1)

    def step(self, x: Tensor, state: NoState) -> tuple[Tensor, NoState]:
        return self.forward(x), state


class Decoder(nn.Module):
    """z (B, L, Z) -> raw_signal_mu, raw_signal_logvar (B, L, H); pointwise in time.

    ``expand="mlp"`` (seed): MLPs 16 -> 128 -> 176 -> H, a conv refinement along the
    horizon (1 -> refine... channels, LayerNorm, GELU), a per-sample MLP to ``post``
    channels. ``expand="upsample"``: a linear map to ``post`` channels x ceil(H / 16)
    samples, then two x4 :class:`UpsamplingBlock` to exactly H. Both end with a
    :class:`FastTemporalSmoother` and two conv heads (post -> 16 -> 8 -> 1) for the mean
    and the log-variance (clamped to [-10, 10]).
    """

    def __init__(self, cfg: TebConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dw, d, h = cfg.decoder_width, cfg.dropout, cfg.horizon
        first = max(cfg.latent, round(dw * 128 / 176))
        self.latent_mlp = ResidualMLP(cfg.latent, geometric_schedule(cfg.latent, first, 6), d)
        self.deep = ResidualMLP(first, geometric_schedule(first, dw, 3), d)
        if cfg.expand == "mlp":
            self.expand = ResidualMLP(dw, geometric_schedule(dw, h, 10), d)
            layers: list[nn.Module] = []
            width = 1
            for c in cfg.refine:
                layers.append(_ConvNorm(width, c, 5))
                width = c
            self.refine = nn.Sequential(*layers)
            self.post = ResidualMLP(width, geometric_schedule(width, cfg.post, 3), d)
        else:
            self.coarse = -(-h // 16)
            self.expand = nn.Linear(dw, cfg.post * self.coarse)
            self.up1 = UpsamplingBlock(cfg.post, cfg.post, 4, dropout=d)
            self.up2 = UpsamplingBlock(cfg.post, cfg.post, 4, dropout=d)
        self.smoother = FastTemporalSmoother(cfg.post, cfg.smoother_kernel, d)
        self.head_mu = _head(cfg.post)
        self.head_logvar = _head(cfg.post)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        lead = z.shape[:-1]
        h = self.cfg.horizon
        if not torch.jit.is_tracing() and z.numel() == 0:  # an empty chunk: no rows
            empty = z.new_zeros(*lead, h)
            return empty, empty.clone()
        traced = torch.jit.is_tracing() and z.dim() == 3
        if traced:  # a graph may see L = 0, and an ONNX Reshape reads a 0 in a shape as
            # "keep this axis": decode one spare step per stream, dropped at the end
            n = z.shape[1]
            z = torch.cat([z, z[:, :1].new_zeros(z.shape[0], 1, z.shape[2])], dim=1)
            lead = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])  # (N, Z)
        f = self.deep(self.latent_mlp(flat))  # (N, dw)
        if self.cfg.expand == "mlp":
            s = self.expand(f).unsqueeze(-1)  # (N, H, 1)
            s = self.post(self.refine(s))  # (N, H, post)
        else:
            s = self.expand(f).reshape(f.shape[0], self.coarse, self.cfg.post)  # (N, H/16, post)
            s = self.up2(self.up1(s, self.coarse * 4), h)  # (N, H, post)
        s = self.smoother(s).transpose(1, 2)  # (N, post, H)
        mu = self.head_mu(s).reshape(*lead, h)
        logvar = self.head_logvar(s).reshape(*lead, h).clamp(LOGVAR_MIN, LOGVAR_MAX)
        if traced:
            mu, logvar = mu[:, :n], logvar[:, :n]
        return mu, logvar

    def compute_loss(self, predictions: dict, target_raw_signal: Tensor,
                     warmup_period: int = 30, steps: Tensor | None = None) -> Tensor:
        """Mean Gaussian NLL of the valid future samples of steps >= ``warmup_period``;
        exactly 0 (attached to the graph) when there is none."""
        mu, logvar = predictions["raw_signal_mu"], predictions["raw_signal_logvar"]
        target, valid = future_targets(target_raw_signal, mu.shape[1] if steps is None
                                       else None, self.cfg.decimation, self.cfg.horizon, steps)
        step_idx = (torch.arange(mu.shape[1], device=mu.device) if steps is None else steps)
        valid = valid & (step_idx >= warmup_period).view(1, -1, 1)
        return gaussian_nll(mu, logvar, target, valid)


class _ConvNorm(nn.Module):
    """(N, L, C_in) -> (N, L, C_out): conv along the horizon, LayerNorm, GELU."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, k, padding=k // 2, padding_mode="replicate")
        self.norm = nn.LayerNorm(c_out)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x.transpose(1, 2)).transpose(1, 2)))


def _head(c: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c, 16, 3, padding=1, padding_mode="replicate"), nn.GELU(),
                         nn.Conv1d(16, 8, 1), nn.GELU(), nn.Conv1d(8, 1, 1))


def future_targets(y_raw: Tensor, n_steps: int | None, decimation: int, horizon: int,
                   steps: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The H raw samples after each step: (B, S, H) values and validity (NaN or past the end
    of ``y_raw`` -> invalid, value 0). ``y_raw``: (B, T) or (B, T, 1); S = ``n_steps`` or
    ``len(steps)``."""
    if y_raw.dim() == 3:
        y_raw = y_raw[..., 0]
    b, t = y_raw.shape
    idx = steps if steps is not None else torch.arange(n_steps, device=y_raw.device)
    pos = decimation * (idx.view(-1, 1) + 1) + torch.arange(horizon, device=y_raw.device)
    inside = pos < t
    vals = y_raw[:, pos.clamp(max=max(t - 1, 0))] if t else y_raw.new_full(
        (b, *pos.shape), float("nan"))  # (B, S, H)
    valid = inside.unsqueeze(0) & ~torch.isnan(vals)
    return torch.where(valid, vals, torch.zeros_like(vals)), valid


def gaussian_nll(mu: Tensor, logvar: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``0.5 (log 2 pi + logvar + (target - mu)^2 / exp(logvar))`` where ``valid``."""
    n = valid.sum()
    if int(n) == 0:
        return (mu.sum() + logvar.sum()) * 0.0
    nll = 0.5 * (LOG_2PI + logvar + (target - mu) ** 2 * torch.exp(-logvar))
    return torch.where(valid, nll, torch.zeros_like(nll)).sum() / n


class TebState(NamedTuple):
    """source: SourceState; target: TargetState (the other parts are stateless)."""

    source: SourceState
    target: TargetState


class SeqVaeTeb(nn.Module):
    """The TEB-VAE: features (B, L, C) of three paths -> latents and raw-signal forecasts.

    Input features are standardised by per-channel buffers (``set_normalisation``); the
    anchor is read from the raw (unstandardised) ``y_st``.
    """

    def __init__(self, config: TebConfig | None = None) -> None:
        super().__init__()
        cfg = config or TebConfig()
        cfg.validate()
        self.config = cfg
        self.source_encoder = SourceEncoder(cfg)
        self.target_encoder = TargetEncoder(cfg)
        self.conditional_encoder = ConditionalEncoder(cfg)
        self.decoder = Decoder(cfg)
        for name, c in (("x", cfg.x_channels), ("st", cfg.y_st_channels),
                        ("ph", cfg.y_ph_channels)):
            self.register_buffer(f"{name}_mean", torch.zeros(c))
            self.register_buffer(f"{name}_std", torch.ones(c))
        init_weights(self)

    # -- normalisation ----------------------------------------------------------------------
    def set_normalisation(self, x_ph: Tensor, y_st: Tensor, y_ph: Tensor) -> None:
        """Per-channel mean and std from training features (B, L, C)."""
        with torch.no_grad():
            for name, f in (("x", x_ph), ("st", y_st), ("ph", y_ph)):
                flat = f.reshape(-1, f.shape[-1])
                getattr(self, f"{name}_mean").copy_(flat.mean(0))
                getattr(self, f"{name}_std").copy_(flat.std(0).clamp(min=1e-4))

    def _norm(self, x_ph: Tensor, y_st: Tensor, y_ph: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return ((x_ph - self.x_mean) / self.x_std, (y_st - self.st_mean) / self.st_std,
                (y_ph - self.ph_mean) / self.ph_std)

    def _check(self, y_st: Tensor, y_ph: Tensor, x_ph: Tensor) -> None:
        cfg = self.config
        for name, t, c in (("y_st", y_st, cfg.y_st_channels), ("y_ph", y_ph, cfg.y_ph_channels),
                           ("x_ph", x_ph, cfg.x_channels)):
            if t.dim() != 3 or t.shape[-1] != c:
                raise InputError(f"{name} must have shape (B, L, {c}), got {tuple(t.shape)}")
        if not y_st.shape[:2] == y_ph.shape[:2] == x_ph.shape[:2]:
            raise InputError("y_st, y_ph and x_ph must share (B, L)")

    # -- the model --------------------------------------------------------------------------
    def _latents(self, mu_x: Tensor, mu_y: Tensor, logvar_y: Tensor, sample: bool) -> dict:
        z_dim = self.config.latent
        post = self.conditional_encoder(torch.cat([mu_x, logvar_y[..., z_dim:]], dim=-1))
        mu_post, logvar_post = post[..., :z_dim], post[..., z_dim:]
        z = mu_post + torch.randn_like(mu_post) * torch.exp(0.5 * logvar_post) if sample \
            else mu_post
        return {"mu_x": mu_x, "mu_y": mu_y, "logvar_y": logvar_y,
                "logvar_prior": logvar_y[..., :z_dim].clamp(LOGVAR_MIN, LOGVAR_MAX),
                "mu_post": mu_post, "logvar_post": logvar_post, "z": z}

    def _decode(self, out: dict, y_st: Tensor, steps: Tensor | None) -> dict:
        z = out["z"] if steps is None else out["z"][:, steps]
        mu, logvar = self.decoder(z)
        a = self.config.anchor_channel
        if a >= 0:
            anchor = y_st[..., a:a + 1]
            mu = mu + (anchor if steps is None else anchor[:, steps])
        out.update(raw_signal_mu=mu, raw_signal_logvar=logvar, steps=steps)
        return out

    def forward(self, y_st: Tensor, y_ph: Tensor, x_ph: Tensor, y_raw: Tensor | None = None,
                sample: bool | None = None, steps: Tensor | None = None) -> dict:
        """y_st (B, L, C_st), y_ph (B, L, C_ph), x_ph (B, L, C_x) -> dict with ``mu_x``,
        ``mu_y`` (B, L, Z), ``logvar_y`` (B, L, 2Z), ``logvar_prior``, ``mu_post``,
        ``logvar_post``, ``z`` (B, L, Z), ``raw_signal_mu`` and ``raw_signal_logvar``
        (B, L, H) (only the rows of ``steps`` when given, a training speed-up: the decoder
        is pointwise in time). ``sample`` defaults to ``self.training``. With ``y_raw`` the
        dict also holds ``losses`` (:meth:`compute_loss`)."""
        self._check(y_st, y_ph, x_ph)
        xn, stn, phn = self._norm(x_ph, y_st, y_ph)
        mu_x = self.source_encoder(xn)
        mu_y, logvar_y = self.target_encoder.encode(stn, phn)
        out = self._latents(mu_x, mu_y, logvar_y, self.training if sample is None else sample)
        out = self._decode(out, y_st, steps)
        if y_raw is not None:
            out["losses"] = self.compute_loss(out, y_raw)
        return out

    def compute_loss(self, forward_outputs: dict, y_raw: Tensor,
                     compute_kld_loss: bool = True) -> dict:
        """The seed's loss dictionary; ``y_raw`` (B, T) or (B, T, 1), NaN = missing."""
        cfg = self.config
        steps = forward_outputs.get("steps")
        nll = self.decoder.compute_loss(forward_outputs, y_raw, cfg.warmup, steps)
        mu_q, lv_q = forward_outputs["mu_post"], forward_outputs["logvar_post"]
        mu_p, lv_p = forward_outputs["mu_y"], forward_outputs["logvar_prior"]
        if compute_kld_loss and mu_q.shape[1] > cfg.warmup:
            kl = 0.5 * (lv_p - lv_q + (torch.exp(lv_q) + (mu_q - mu_p) ** 2)
                        * torch.exp(-lv_p) - 1.0)
            kld = kl[:, cfg.warmup:].sum(-1).mean() / cfg.horizon
        else:
            kld = (mu_q.sum() + mu_p.sum()) * 0.0
        return {"total_loss": nll + cfg.kld_beta * kld, "reconstruction_loss": nll,
                "kld_loss": kld}

    @torch.no_grad()
    def predict_raw_signal(self, x_ph: Tensor, y_st: Tensor, y_ph: Tensor) -> dict:
        """Deterministic (posterior-mean) forecasts: ``raw_signal_mu``, ``raw_signal_logvar``
        (B, L, H) and ``z`` (B, L, Z)."""
        out = self.forward(y_st, y_ph, x_ph, sample=False)
        return {k: out[k] for k in ("raw_signal_mu", "raw_signal_logvar", "z")}

    @torch.no_grad()
    def predict_single_timestep(self, x_ph: Tensor, y_st: Tensor, y_ph: Tensor,
                                raw_timestep: int, raw_signal_length: int | None = None) -> dict:
        """Forecast the H raw samples after raw sample ``raw_timestep`` (the newest observed).

        Uses decimated step ``l = (raw_timestep + 1) // 16 - 1`` (the last step complete at
        ``raw_timestep``) and reads only features of steps ``<= l``. Returns
        ``raw_signal_mu``, ``raw_signal_logvar`` (B, H), ``decimated_timestep`` (l),
        ``forecast_start`` (the raw index of the first forecast sample, 16 (l + 1)) and
        ``z_single`` (B, 1, Z).
        """
        dec = self.config.decimation
        length = raw_signal_length or y_st.shape[1] * dec
        if not 0 <= raw_timestep < length:
            raise InputError(f"raw_timestep must lie in [0, {length - 1}], got {raw_timestep}")
        step = (raw_timestep + 1) // dec - 1
        if step < 0:
            raise InputError(f"raw_timestep {raw_timestep} precedes the first complete step "
                             f"(raw sample {dec - 1})")
        step = min(step, y_st.shape[1] - 1)
        out = self.forward(y_st[:, :step + 1], y_ph[:, :step + 1], x_ph[:, :step + 1],
                           sample=False)
        return {"raw_signal_mu": out["raw_signal_mu"][:, -1],
                "raw_signal_logvar": out["raw_signal_logvar"][:, -1],
                "decimated_timestep": step, "forecast_start": dec * (step + 1),
                "z_single": out["z"][:, -1:]}

    # -- streaming --------------------------------------------------------------------------
    def init_state(self, batch: int) -> TebState:
        return TebState(self.source_encoder.init_state(batch),
                        self.target_encoder.init_state(batch))

    def encode_step(self, y_st: Tensor, y_ph: Tensor, x_ph: Tensor, state: TebState
                    ) -> tuple[dict, TebState]:
        """One chunk of feature steps (B, l, C) -> the latents of those steps (posterior
        mean; the dict of :meth:`forward` without the forecasts) and the new state."""
        xn, stn, phn = self._norm(x_ph, y_st, y_ph)
        mu_x, s_src = self.source_encoder.step(xn, state.source)
        t, s_tgt = self.target_encoder.step(torch.cat([stn, phn], dim=-1), state.target)
        z_dim = self.config.latent
        return self._latents(mu_x, t[..., :z_dim], t[..., z_dim:], sample=False), \
            TebState(s_src, s_tgt)

    def step_features(self, y_st: Tensor, y_ph: Tensor, x_ph: Tensor, state: TebState
                      ) -> tuple[dict, TebState]:
        """:meth:`encode_step` and the forecasts: the dict of :meth:`forward` for those
        steps and the new state. (The streaming contract's ``step(x, state)`` on raw
        samples is :class:`TebStreamer`'s.)"""
        out, new = self.encode_step(y_st, y_ph, x_ph, state)
        return self._decode(out, y_st, None), new

    def config_dict(self) -> dict:
        return asdict(self.config)


class TebStreamState(NamedTuple):
    """frontend: the front-end's state (or an empty tuple); model: TebState."""

    frontend: tuple
    model: TebState


class TebStreamer(StreamingModule):
    """Raw samples in, one forecast row per decimated step out.

    x: (B, T, 2) normalised [FHR, UP] at 4 Hz (NaN = missing) -> (B, T // 16, Z + 2H) rows
    ``[z, mean, variance]`` (variance = exp(log-variance)), posterior mean. ``hop`` 1: any
    chunk length; partial groups of 16 wait in the front-end's state. Without a front-end
    the input is the feature stream (B, L, C_st + C_ph + C_x) and there is no decimation.
    """

    def __init__(self, model: SeqVaeTeb, frontend: StreamingModule | None = None) -> None:
        super().__init__()
        self.model, self.frontend = model, frontend
        cfg = model.config
        self.z, self.h = cfg.latent, cfg.horizon
        self.c_st, self.c_ph = cfg.y_st_channels, cfg.y_ph_channels
        self.in_channels = frontend.in_channels if frontend is not None else (
            cfg.y_st_channels + cfg.y_ph_channels + cfg.x_channels)
        self.out_channels = self.row_width = cfg.latent + 2 * cfg.horizon
        self.hop, self.latency = 1, 0
        self.decimation = frontend.decimation if frontend is not None else 1
        self.sample_rate = getattr(frontend, "sample_rate", None)

    def _split(self, feats: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.frontend is not None:
            return self.frontend.split(feats)
        a, b = self.c_st, self.c_st + self.c_ph
        return feats[..., :a], feats[..., a:b], feats[..., b:]

    def init_state(self, batch: int) -> TebStreamState:
        fe = self.frontend.init_state(batch) if self.frontend is not None else ()
        return TebStreamState(fe, self.model.init_state(batch))

    @staticmethod
    def _as_rows(out: dict) -> Tensor:
        """A forward/decode dict -> rows (B, n, Z + 2H): [z, mean, variance]."""
        return torch.cat([out["z"], out["raw_signal_mu"], torch.exp(out["raw_signal_logvar"])],
                         dim=-1)

    def _rows(self, z: Tensor, y_st: Tensor) -> Tensor:
        """Latents z (B, n, Z) and the raw y_st of their steps -> rows (B, n, Z + 2H)."""
        return self._as_rows(self.model._decode({"z": z}, y_st, None))

    def forward(self, x: Tensor) -> Tensor:
        feats = self.frontend(x) if self.frontend is not None else x
        if feats.shape[1] == 0:  # shorter than one step: no rows (RNNs refuse empty input)
            return x.new_zeros(x.shape[0], 0, self.row_width)
        y_st, y_ph, x_ph = self._split(feats)
        return self._as_rows(self.model(y_st, y_ph, x_ph, sample=False))

    def _encode(self, feats: Tensor, state: TebState) -> tuple[Tensor, Tensor, TebState]:
        y_st, y_ph, x_ph = self._split(feats)
        out, new = self.model.encode_step(y_st, y_ph, x_ph, state)
        return out["z"], y_st, new

    def step(self, x: Tensor, state: TebStreamState) -> tuple[Tensor, TebStreamState]:
        """x (B, T, 2) -> (B, T', Z + 2H), any T and any per-stream phases.

        Stream b completes ``n_b = (phase_b + T) // 16`` steps; T' is the largest n_b. The
        n_b differ by one at most (streams reset off the 16-sample grid), so the encoders
        run twice: over the T' - 1 steps every stream completes, then over the last one; a
        stream that does not complete the last step keeps the state of the first run, and
        its last row is NaN (padding). The decoder (pointwise in time) runs once. With equal
        phases, eager runs the encoders once."""
        if self.frontend is None:
            z, y_st, ms = self._encode(x, state.model)
            return self._rows(z, y_st), TebStreamState((), ms)
        phase = state.frontend.lowpass.rem  # (B,) samples since each stream's last step
        feats, fe = self.frontend.step(x, state.frontend)
        n = feats.shape[1]
        if not torch.jit.is_tracing():
            if n == 0:
                return x.new_zeros(x.shape[0], 0, self.row_width), TebStreamState(
                    fe, state.model)
            lo, hi = (int(v) for v in torch.aminmax(phase)) if x.shape[0] else (0, 0)
            if lo == hi or x.shape[1] % self.decimation == 0:  # every stream completes n
                z, y_st, ms = self._encode(feats, state.model)
                return self._rows(z, y_st), TebStreamState(fe, ms)
        counts = torch.div(phase + x.shape[1], self.decimation, rounding_mode="floor")
        z1, a1, s1 = self._encode(feats[:, :n - 1], state.model)  # n - 1 steps (0 if n == 0)
        z2, a2, s2 = self._encode(feats[:, n - 1:], s1)  # the last step (none if n == 0)
        ms = st.where(counts >= n, s2, s1)  # streams that complete the last step take s2
        rows = self._rows(torch.cat([z1, z2], dim=1), torch.cat([a1, a2], dim=1))
        idx = torch.arange(rows.shape[1], device=x.device).unsqueeze(0)  # (1, n)
        keep = (idx < counts.unsqueeze(1)).unsqueeze(-1)  # (B, n, 1)
        return torch.where(keep, rows, torch.full_like(rows, float("nan"))), \
            TebStreamState(fe, ms)

    def split_rows(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, L, Z + 2H) -> z (B, L, Z), mean (B, L, H), variance (B, L, H)."""
        return rows[..., :self.z], rows[..., self.z:self.z + self.h], rows[..., self.z + self.h:]
