"""SensorAugmentor: a window model from low-quality sensor windows to high-quality ones.

N: windows, W: window length, H: latent size, A: actuator commands (2), B/T/C: the stream
layout of the streaming wrapper.

Architecture (the source document's): an **encoder** ``Linear(W, H) + ReLU`` followed by a
post-encoding residual block gives the latent encoding; ``resblocks`` residual blocks
(``Linear-ReLU-Dropout-Linear`` + skip, ReLU) process it; a **reconstructor**
``Linear(H, H)-ReLU-Linear(H, W)`` gives the high-quality window and an **actuator head**
``Linear(H, A)`` the actuator commands (damping, stiffness).

One addition (``bank=K``, default 101: every 0.5 Hz at 100 Hz; ``bank=0`` is the plain
version): a fixed bank of K sinusoids from 0 Hz to Nyquist. Its coefficients ``c_k, s_k``
(the window projected on ``cos``/``sin`` at each frequency, scaled 2/W: the amplitude of a
tone there) give the encoder the magnitude spectrum as extra input, and the reconstructor
adds a gated re-synthesis ``sum_k g_k (c_k cos + s_k sin)`` with gains ``g = Linear(H, K)``
from the latent. Why: the plain MLP learns the strong 5-20 Hz component but leaves out the
weak 25-40 Hz one (attenuated 3.5-5x, under noise twice its size): 84% of its test error
was in that band. Picking the right few frequencies and re-synthesising them with the
inverse gain is a gating the latent learns quickly, and the projection onto those
frequencies keeps only their share of the noise.

``forward(x_lq, x_hq=None)`` returns :class:`AugmentorOutput` (reconstruction, actuator
commands, the encoding of ``x_lq`` and, when ``x_hq`` is given, of ``x_hq``). Inputs and
outputs are in sensor units: the normaliser fitted on the training data (scalar mean/std of
the low-quality input and of the high-quality target) lives in buffers, so it is saved in
the checkpoint's ``state_dict`` (and, readable, in its ``norm``) and travels into exports.

Loss: reconstruction MSE + 0.1 encoding MSE (latent of low-quality vs high-quality window)
+ 0.5 actuator MSE (:func:`augmentor_loss`).

Streaming: the window model is not causal inside its window; :func:`augmentor_stream` wraps
it in :class:`~sigstream.core.crossfade.OverlapCrossfade`: windows of W samples every
``hop`` samples, crossfaded, **latency W - hop samples** (96 samples = 0.96 s at 100 Hz
with the defaults W = 128, hop = 32). With ``actuator=True`` the stream has three output
channels: the enhanced signal and the two actuator commands (each window's commands held
over its window and crossfaded between windows).

Transfer to another window length: :func:`transfer_encoder` (see its docstring).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sigstream.core.crossfade import OverlapCrossfade
from sigstream.core.errors import ConfigError

__all__ = ["AugmentorConfig", "AugmentorOutput", "ResidualBlock", "SensorAugmentor",
           "AugmentorWindow", "augmentor_stream", "augmentor_loss", "transfer_encoder",
           "FREEZABLE"]


@dataclass(frozen=True)
class AugmentorConfig:
    """The :class:`SensorAugmentor` (W: ``window``, H: ``hidden``, A: ``actuators``); each
    field's help is in its metadata. ``resblocks`` counts the blocks after the
    post-encoding one; the bank's frequencies are evenly spaced from 0 to Nyquist."""

    window: int = field(default=128, metadata={
        "help": "window length in samples; with --init of another window length the encoder "
                "is transferred"})
    hidden: int = field(default=256, metadata={"help": "latent size"})
    resblocks: int = field(default=3, metadata={"help": "residual blocks"})
    actuators: int = field(default=2, metadata={"help": "actuator commands"})
    dropout: float = field(default=0.1, metadata={
        "help": "dropout in every residual block (needed for --uncertainty)"})
    hop: int = field(default=32, metadata={"help": "streaming hop: latency = window - hop"})
    sample_rate: float = field(default=100.0, metadata={"help": "sample rate (Hz)"})
    actuator: bool = field(default=False, metadata={
        "help": "stream the actuator commands as extra output channels"})
    bank: int = field(default=101, metadata={
        "help": "sinusoid-bank frequencies (0: the plain MLP of the source)"})

    def validate(self) -> None:
        if self.window < 2:
            raise ConfigError(f"augmentor window must be >= 2 samples, got {self.window}")
        if self.hidden < 1 or self.resblocks < 0 or self.actuators < 1:
            raise ConfigError("augmentor needs hidden >= 1, resblocks >= 0, actuators >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 1 <= self.hop <= self.window:
            raise ConfigError(f"need 1 <= hop <= window, got hop={self.hop}, "
                              f"window={self.window}")
        if not self.sample_rate > 0:
            raise ConfigError(f"sample_rate must be > 0, got {self.sample_rate}")
        if self.bank < 0 or self.bank == 1:
            raise ConfigError(f"bank must be 0 (off) or >= 2 frequencies, got {self.bank}")


class AugmentorOutput(NamedTuple):
    """reconstruction (N, W); actuator (N, A); encoded_lq (N, H); encoded_hq (N, H) or None."""

    reconstruction: Tensor
    actuator: Tensor
    encoded_lq: Tensor
    encoded_hq: Tensor | None


class ResidualBlock(nn.Module):
    """(N, H) -> (N, H): relu(x + Linear(Dropout(relu(Linear(x)))))."""

    def __init__(self, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.fc2(self.drop(F.relu(self.fc1(x)))))


# Parts that `--freeze encoder` freezes: everything but the reconstruction heads
# (reconstructor, bank gates) and the actuator head.
FREEZABLE = {"encoder": ("encoder", "post_encoding_resblock", "resblocks")}


class SensorAugmentor(nn.Module):
    """(N, W) low-quality windows -> AugmentorOutput, in sensor units."""

    def __init__(self, config: AugmentorConfig = AugmentorConfig()) -> None:
        super().__init__()
        config.validate()
        self.config = config
        w, h, k = config.window, config.hidden, config.bank
        self.encoder = nn.Sequential(nn.Linear(w + k, h), nn.ReLU())
        self.post_encoding_resblock = ResidualBlock(h, config.dropout)
        if k:  # sinusoid bank: K frequencies from 0 to Nyquist, in Hz, for any window length
            arg = 2 * np.pi * np.arange(w)[:, None] * np.linspace(0.0, 0.5, k)[None, :]
            self.register_buffer("bank_cos", torch.from_numpy(np.cos(arg)).float(),
                                 persistent=False)  # (W, K)
            self.register_buffer("bank_sin", torch.from_numpy(np.sin(arg)).float(),
                                 persistent=False)
            self.gates = nn.Linear(h, k)
            nn.init.zeros_(self.gates.weight)
            nn.init.zeros_(self.gates.bias)
        self.resblocks = nn.Sequential(*[ResidualBlock(h, config.dropout)
                                         for _ in range(config.resblocks)])
        self.hq_reconstructor = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, w))
        self.actuator_head = nn.Linear(h, config.actuators)
        # normaliser (scalar): x_norm = (x - mean) / std; fitted on training data
        for name, value in (("in_mean", 0.0), ("in_std", 1.0), ("out_mean", 0.0),
                            ("out_std", 1.0)):
            self.register_buffer(name, torch.tensor(value))
        self.register_buffer("act_mean", torch.zeros(config.actuators))
        self.register_buffer("act_std", torch.ones(config.actuators))

    # -- normaliser
    def fit_normaliser(self, x_lq: np.ndarray, x_hq: np.ndarray,
                       actuator: np.ndarray | None = None) -> dict:
        """Fit mean/std on training data (arrays of any shape); returns ``norm`` dict."""
        self.in_mean.fill_(float(np.mean(x_lq)))
        self.in_std.fill_(max(float(np.std(x_lq)), 1e-8))
        self.out_mean.fill_(float(np.mean(x_hq)))
        self.out_std.fill_(max(float(np.std(x_hq)), 1e-8))
        if actuator is not None:
            a = np.asarray(actuator, dtype=np.float64).reshape(-1, self.config.actuators)
            self.act_mean.copy_(torch.from_numpy(a.mean(0)).float())
            self.act_std.copy_(torch.from_numpy(np.maximum(a.std(0), 1e-8)).float())
        return self.norm_dict()

    def norm_dict(self) -> dict:
        return {"in_mean": float(self.in_mean), "in_std": float(self.in_std),
                "out_mean": float(self.out_mean), "out_std": float(self.out_std),
                "act_mean": [float(v) for v in self.act_mean],
                "act_std": [float(v) for v in self.act_std]}

    def _analyse(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(N, W) sensor units -> normalised window z (N, W), bank coefficients c, s (N, K)."""
        z = (x - self.in_mean) / self.in_std
        if not self.config.bank:
            return z, z[:, :0], z[:, :0]
        scale = 2.0 / self.config.window
        return z, (z @ self.bank_cos) * scale, (z @ self.bank_sin) * scale

    def _encode(self, z: Tensor, c: Tensor, s: Tensor) -> Tensor:
        feats = torch.cat([z, torch.sqrt(c * c + s * s + 1e-6)], dim=-1) if self.config.bank \
            else z  # (N, W + K)
        return self.post_encoding_resblock(self.encoder(feats))

    def encode(self, x: Tensor) -> Tensor:
        """(N, W) sensor units -> (N, H) latent."""
        return self._encode(*self._analyse(x))

    def forward(self, x_lq: Tensor, x_hq: Tensor | None = None) -> AugmentorOutput:
        z, c, s = self._analyse(x_lq)
        enc_lq = self._encode(z, c, s)
        feats = self.resblocks(enc_lq)
        recon = self.hq_reconstructor(feats)  # (N, W), normalised units
        if self.config.bank:  # gated re-synthesis of the bank's sinusoids
            g = self.gates(feats)  # (N, K)
            recon = recon + (g * c) @ self.bank_cos.T + (g * s) @ self.bank_sin.T
        recon = recon * self.out_std + self.out_mean
        act = self.actuator_head(feats) * self.act_std + self.act_mean
        enc_hq = self.encode(x_hq) if x_hq is not None else None
        return AugmentorOutput(recon, act, enc_lq, enc_hq)

    def freeze(self, part: str) -> list[str]:
        """Freeze a named part (``"encoder"``: all but reconstructor and actuator head);
        returns the frozen parameter names."""
        if part not in FREEZABLE:
            raise ConfigError(f"cannot freeze {part!r}; freezable: {', '.join(FREEZABLE)}")
        frozen = []
        for mod_name in FREEZABLE[part]:
            for p_name, p in getattr(self, mod_name).named_parameters():
                p.requires_grad_(False)
                frozen.append(f"{mod_name}.{p_name}")
        return frozen


def augmentor_loss(out: AugmentorOutput, x_hq: Tensor, actuator: Tensor,
                   w_enc: float = 0.1, w_act: float = 0.5) -> tuple[Tensor, dict[str, float]]:
    """Reconstruction MSE + ``w_enc`` encoding MSE + ``w_act`` actuator MSE; returns (loss,
    its parts as floats)."""
    recon = F.mse_loss(out.reconstruction, x_hq)
    enc = (F.mse_loss(out.encoded_lq, out.encoded_hq) if out.encoded_hq is not None
           else recon.new_zeros(()))
    act = F.mse_loss(out.actuator, actuator)
    total = recon + w_enc * enc + w_act * act
    return total, {"loss": float(total.detach()), "recon": float(recon.detach()),
                   "encoding": float(enc.detach()), "actuator": float(act.detach())}


class AugmentorWindow(nn.Module):
    """(N, W, 1) -> (N, W, 1) enhanced window, or (N, W, 1 + A) with the actuator commands
    held over the window when ``actuator`` is set."""

    def __init__(self, net: SensorAugmentor, actuator: bool = False) -> None:
        super().__init__()
        self.net = net
        self.actuator = bool(actuator)
        self.in_channels = 1
        self.out_channels = 1 + (net.config.actuators if actuator else 0)

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x[..., 0])  # (N, W)
        y = out.reconstruction[..., None]  # (N, W, 1)
        if not self.actuator:
            return y
        held = out.actuator[:, None, :].expand(-1, y.shape[1], -1)  # (N, W, A)
        return torch.cat([y, held], dim=-1)


class AugmentorStream(OverlapCrossfade):
    """The streamable SensorAugmentor (OverlapCrossfade around :class:`AugmentorWindow`)."""

    def __init__(self, config: AugmentorConfig = AugmentorConfig(),
                 net: SensorAugmentor | None = None) -> None:
        config.validate()
        net = net if net is not None else SensorAugmentor(config)
        super().__init__(AugmentorWindow(net, config.actuator), config.window, config.hop,
                         in_channels=1)
        self.config = config
        self.sample_rate = config.sample_rate

    @property
    def net(self) -> SensorAugmentor:
        return self.model.net


def augmentor_stream(config: AugmentorConfig = AugmentorConfig()) -> AugmentorStream:
    """Registry factory: hop ``config.hop``, latency ``config.window - config.hop`` samples."""
    return AugmentorStream(config)


def _resample_rows(w: Tensor, new_len: int, axis: int) -> Tensor:
    """Linear interpolation of ``w`` along ``axis`` onto ``new_len`` evenly spaced points
    spanning the same [0, 1] interval."""
    moved = w.detach().double().movedim(axis, -1).cpu().numpy()
    old = np.linspace(0.0, 1.0, moved.shape[-1])
    new = np.linspace(0.0, 1.0, new_len)
    flat = moved.reshape(-1, moved.shape[-1])
    out = np.stack([np.interp(new, old, row) for row in flat]).reshape(*moved.shape[:-1],
                                                                      new_len)
    return torch.from_numpy(out).to(w.dtype).movedim(-1, axis)


def transfer_encoder(source: SensorAugmentor, window: int, **changes: object) -> SensorAugmentor:
    """A new SensorAugmentor for windows of ``window`` samples whose encoder comes from
    ``source``.

    The other sensor is taken to have the same sample rate (its windows are longer or
    shorter stretches of signal). The latent size and every latent-space layer
    (post-encoding block, residual blocks) are copied unchanged, as is the input
    normaliser. The encoder's weights on the sinusoid-bank magnitudes are copied exactly:
    the bank is the same set of frequencies in Hz and its magnitudes are tone amplitudes
    whatever the window length, so that half of the encoder keeps its meaning. Its weights
    on the raw samples (one W-sample template per latent unit) are stretched to ``window``
    samples by linear interpolation and scaled by ``W / window`` (an initialisation, to be
    fine-tuned). The reconstructor, gates and actuator head (length- and sensor-specific)
    start fresh; ``changes`` overrides other config fields (e.g. ``actuators=3``). Freeze
    the encoder (``model.freeze("encoder")``, ``--freeze encoder``) to train only the heads.
    """
    cfg = dataclasses.replace(source.config, window=int(window), **changes)
    cfg = dataclasses.replace(cfg, hop=min(cfg.hop, cfg.window))
    if cfg.hidden != source.config.hidden:
        raise ConfigError("transfer keeps the latent size: hidden must match the source's "
                          f"({source.config.hidden})")
    if cfg.resblocks != source.config.resblocks:
        raise ConfigError("transfer keeps the residual blocks: resblocks must match the "
                          f"source's ({source.config.resblocks})")
    target = SensorAugmentor(cfg)
    if cfg.bank != source.config.bank or cfg.sample_rate != source.config.sample_rate:
        raise ConfigError("transfer keeps the sinusoid bank: bank and sample_rate must match "
                          "the source's")
    src_lin, dst_lin = source.encoder[0], target.encoder[0]
    w_src, w_dst = source.config.window, cfg.window
    with torch.no_grad():
        time_part = _resample_rows(src_lin.weight[:, :w_src], w_dst, axis=1) * (w_src / w_dst)
        dst_lin.weight[:, :w_dst].copy_(time_part)
        # same frequencies in Hz, magnitudes are amplitudes: copied as they are
        dst_lin.weight[:, w_dst:].copy_(src_lin.weight[:, w_src:])
        dst_lin.bias.copy_(src_lin.bias)
        target.post_encoding_resblock.load_state_dict(source.post_encoding_resblock.state_dict())
        target.resblocks.load_state_dict(source.resblocks.state_dict())
        target.in_mean.copy_(source.in_mean)
        target.in_std.copy_(source.in_std)
    return target
