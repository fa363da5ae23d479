"""Building blocks of the TEB-VAE (and of other models where they fit).

N: rows (batch x steps), B: batch, T / L: time or horizon, C: channels, D: features.

* :class:`ResidualMLP`: pre-norm MLP with a residual skip (a projection when the widths
  differ); works on the last axis of any tensor.
* :func:`geometric_schedule`: layer widths on a geometric progression.
* :class:`ChannelReductionBlock`: per-frame channel attention, then a depthwise causal
  convolution and a pointwise projection (B, T, C_in) -> (B, T, C_out); streamable.
* :class:`FastTemporalSmoother`: depthwise Gaussian-initialised smoothing with a learnable
  blend, along a forecast horizon (N, L, C) -> (N, L, C) (not along stream time).
* :class:`UpsamplingBlock`: transposed conv, anti-aliasing grouped conv, exact output length,
  (N, L, C_in) -> (N, L * factor, C_out) (along a forecast horizon, not stream time).
* :func:`init_weights`: Xavier for linear and convolution weights, orthogonal LSTM
  weights with forget-gate bias 1, LayerNorm 1/0; blocks with a special initialisation
  (the smoother's Gaussian kernel) re-apply it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from sigstream.core.contract import StreamingModule
from sigstream.models.layers.conv import CausalConv1d, ConvState


def geometric_schedule(input_size: int, output_size: int, n_hidden: int,
                       round_fn: Callable[[float], float] = round) -> list[int]:
    """Widths ``[h_1, ..., h_n, output_size]`` with ``h_k = input_size * r**k`` and
    ``input_size * r**(n_hidden + 1) = output_size``; every width is at least 1."""
    if input_size < 1 or output_size < 1 or n_hidden < 0:
        raise ValueError("geometric_schedule needs sizes >= 1 and n_hidden >= 0")
    r = (output_size / input_size) ** (1.0 / (n_hidden + 1))
    hidden = [max(1, int(round_fn(input_size * r ** k))) for k in range(1, n_hidden + 1)]
    return [*hidden, output_size]


class ResidualMLP(nn.Module):
    """(..., D_in) -> (..., dims[-1]): ``skip(x) + f(LayerNorm(x))``.

    ``f`` is ``[Linear -> LayerNorm -> GELU -> Dropout]`` for every width in ``dims`` but
    the last, then a plain ``Linear`` to ``dims[-1]`` (so the output can take any sign).
    ``skip`` is the identity when ``D_in == dims[-1]`` and a linear projection otherwise
    (``skip=False`` drops it). ``post_norm=True`` adds LayerNorm + GELU after the sum.
    """

    def __init__(self, in_dim: int, dims: Sequence[int], dropout: float = 0.0, *,
                 skip: bool = True, post_norm: bool = False) -> None:
        super().__init__()
        if not dims:
            raise ValueError("ResidualMLP needs at least one output width")
        self.in_dim, self.out_dim = in_dim, int(dims[-1])
        self.norm = nn.LayerNorm(in_dim)
        layers: list[nn.Module] = []
        width = in_dim
        for d in dims[:-1]:
            layers += [nn.Linear(width, d), nn.LayerNorm(d), nn.GELU(), nn.Dropout(dropout)]
            width = d
        layers.append(nn.Linear(width, self.out_dim))
        self.body = nn.Sequential(*layers)
        if not skip:
            self.skip: nn.Module | None = None
        elif in_dim == self.out_dim:
            self.skip = nn.Identity()
        else:
            self.skip = nn.Linear(in_dim, self.out_dim, bias=False)
        self.post = nn.Sequential(nn.LayerNorm(self.out_dim), nn.GELU()) if post_norm else None

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(self.norm(x))
        if self.skip is not None:
            y = y + self.skip(x)
        return self.post(y) if self.post is not None else y


class ChannelReductionBlock(StreamingModule):
    """(B, T, C_in) -> (B, T, C_out): channel attention, depthwise causal conv, pointwise.

    The attention weights of frame t come from frame t alone (``sigmoid(W2 GELU(W1 x_t))``):
    the seed's global average pool over the sequence would look at the future, which a
    causal streaming model cannot. Then a depthwise causal conv (``groups=C_in``), a
    pointwise projection, LayerNorm, GELU and dropout. State: the conv's ConvState.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 reduction: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        mid = max(1, in_channels // reduction)
        self.attn = nn.Sequential(nn.Linear(in_channels, mid), nn.GELU(),
                                  nn.Linear(mid, in_channels), nn.Sigmoid())
        self.depthwise = CausalConv1d(in_channels, in_channels, kernel_size, groups=in_channels)
        self.pointwise = nn.Linear(in_channels, out_channels)
        self.out = nn.Sequential(nn.LayerNorm(out_channels), nn.GELU(), nn.Dropout(dropout))
        self.in_channels, self.out_channels = in_channels, out_channels
        self.hop, self.latency = 1, 0

    def init_state(self, batch: int) -> ConvState:
        return self.depthwise.init_state(batch)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.pointwise(self.depthwise(x * self.attn(x))))

    def step(self, x: Tensor, state: ConvState) -> tuple[Tensor, ConvState]:
        h, state = self.depthwise.step(x * self.attn(x), state)
        return self.out(self.pointwise(h)), state


def gaussian_kernel(size: int, sigma: float | None = None) -> Tensor:
    """A normalised Gaussian window of ``size`` taps (sigma defaults to size / 6)."""
    sigma = sigma or size / 6.0
    n = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-0.5 * (n / sigma) ** 2)
    return k / k.sum()


class FastTemporalSmoother(nn.Module):
    """(N, L, C) -> (N, L, C): Gaussian-initialised depthwise smoothing with a learnable blend.

    ``s = smooth(x); s = s + enhance(s); y = (1 - a) * x + a * s`` with
    ``a = sigmoid(blend)`` (0.5 at start), ``enhance`` = conv 1x1 C -> 2C, GELU, dropout,
    conv 1x1 2C -> C (zero-initialised output, so it starts as pure smoothing). Applied
    along the forecast horizon of one step (all of which is produced at once), so it uses
    centred ("same") padding; it never sees stream time.
    """

    def __init__(self, channels: int, kernel_size: int = 11, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError("FastTemporalSmoother needs an odd kernel_size")
        self.smooth = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2,
                                groups=channels, padding_mode="replicate")
        self.enhance = nn.Sequential(nn.Conv1d(channels, 2 * channels, 1), nn.GELU(),
                                     nn.Dropout(dropout), nn.Conv1d(2 * channels, channels, 1))
        self.blend = nn.Parameter(torch.zeros(()))
        self.custom_init()

    def custom_init(self) -> None:
        """The Gaussian smoothing kernel, zero enhancement output, blend 0.5."""
        with torch.no_grad():
            k = gaussian_kernel(self.smooth.kernel_size[0])
            self.smooth.weight.copy_(k.expand_as(self.smooth.weight))
            self.smooth.bias.zero_()
            self.enhance[-1].weight.zero_()
            self.enhance[-1].bias.zero_()
            self.blend.zero_()

    def forward(self, x: Tensor) -> Tensor:
        xc = x.transpose(1, 2)  # (N, C, L)
        s = self.smooth(xc)
        s = s + self.enhance(s)
        a = torch.sigmoid(self.blend)
        return ((1 - a) * xc + a * s).transpose(1, 2)


class UpsamplingBlock(nn.Module):
    """(N, L, C_in) -> (N, length or L * factor, C_out): learnable upsampling.

    ``ConvTranspose1d`` (kernel ``2 * factor``, stride ``factor``), cropped or padded to the
    exact length; an anti-aliasing depthwise conv (groups = C_out, Gaussian-initialised);
    GroupNorm (``min(8, C_out)`` groups, reduced until it divides C_out), GELU, dropout; plus
    a residual path: 1x1 projection (when C_in != C_out) and linear interpolation.
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int,
                 antialias_kernel: int = 5, dropout: float = 0.0) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError("factor must be >= 1")
        self.factor = factor
        self.up = nn.ConvTranspose1d(in_channels, out_channels, 2 * factor, stride=factor,
                                     padding=factor // 2)
        self.antialias = nn.Conv1d(out_channels, out_channels, antialias_kernel,
                                   padding=antialias_kernel // 2, groups=out_channels)
        groups = min(8, out_channels)
        while out_channels % groups:
            groups -= 1
        self.norm = nn.GroupNorm(groups, out_channels)
        self.act = nn.Sequential(nn.GELU(), nn.Dropout(dropout))
        self.proj = (nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels
                     else nn.Identity())
        self.custom_init()

    def custom_init(self) -> None:
        with torch.no_grad():
            k = gaussian_kernel(self.antialias.kernel_size[0], sigma=1.0)
            self.antialias.weight.copy_(k.expand_as(self.antialias.weight))
            self.antialias.bias.zero_()

    def forward(self, x: Tensor, length: int | None = None) -> Tensor:
        xc = x.transpose(1, 2)  # (N, C_in, L)
        n = length or xc.shape[-1] * self.factor
        y = self.up(xc)
        y = y[..., :n] if y.shape[-1] >= n else nn.functional.pad(y, (0, n - y.shape[-1]),
                                                                   mode="replicate")
        y = self.act(self.norm(self.antialias(y)))
        skip = nn.functional.interpolate(self.proj(xc), size=n, mode="linear",
                                         align_corners=False)
        return (y + skip).transpose(1, 2)  # (N, n, C_out)


def init_weights(model: nn.Module) -> nn.Module:
    """Xavier-uniform for Linear/Conv weights (zero biases), orthogonal LSTM weights with zero
    biases and forget-gate bias 1, LayerNorm weight 1 / bias 0. Parameters that do not
    require gradients (fixed filters) are left alone; modules with ``custom_init`` re-apply
    it afterwards. Returns ``model``."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.ConvTranspose1d)):
                if m.weight.requires_grad:
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        m.bias.zero_()
            elif isinstance(m, (nn.LSTM, nn.GRU)):
                for name, p in m.named_parameters():
                    if name.startswith("weight"):
                        nn.init.orthogonal_(p)
                    elif name.startswith("bias"):
                        p.zero_()
                        if isinstance(m, nn.LSTM) and name.startswith("bias_ih"):
                            h = m.hidden_size
                            p[h:2 * h] = 1.0  # gate order: input, forget, cell, output
            elif isinstance(m, (nn.LayerNorm, nn.GroupNorm)) and m.weight is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()
        for m in model.modules():
            if hasattr(m, "custom_init") and callable(m.custom_init):
                m.custom_init()
    return model


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ChannelReductionBlock", "FastTemporalSmoother", "ResidualMLP", "UpsamplingBlock",
           "gaussian_kernel", "geometric_schedule", "init_weights", "n_parameters"]
