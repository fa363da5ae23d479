"""Causal convolutions with explicit, batch-first state.

``CausalConv1d`` and ``CausalResidualBlock``.

B: batch (streams), T: time, C: channels. Every block takes and returns
``(B, T, C)`` float32 and implements the streaming contract of
:mod:`sigstream.core.contract`: ``forward`` computes the whole signal in one
pass, ``step`` carries state across chunks, and the two agree exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sigstream.core.contract import StreamingModule

__all__ = ["CausalConv1d", "CausalResidualBlock", "ConvState", "ResidualBlockState"]


class ConvState(NamedTuple):
    """State of a :class:`CausalConv1d`.

    buf: (B, C_in, context + stride - 1) the most recent input frames, newest last.
    rem: (B,) int64, each stream's decimation phase: input frames it received since its
    last output (0 <= rem < stride; always 0 when stride == 1).
    """

    buf: Tensor
    rem: Tensor


class CausalConv1d(StreamingModule):
    """Causal 1-D convolution with dilation, groups and stride (decimation).

    B: batch (streams), T: time, C: channels; (B, T, C_in) -> (B, T', C_out).

    Output frame ``j`` depends on input frames ``<= (j + 1) * stride - 1``: it is
    emitted as soon as the last frame of its group of ``stride`` inputs arrives,
    so any chunk length works (``hop = 1``); inputs that do not complete a group
    wait in the state (``rem``). Offline, T inputs give ``T // stride`` outputs.
    The left context is ``(kernel_size - 1) * dilation`` frames of zeros at the
    start of a stream.

    Every stream keeps its own phase (``rem``), so a batch may hold streams at
    different phases (a stream reset off the stride grid, a stream added later).
    The (B, T', C_out) output must stay rectangular, so one ``step`` takes any T
    when all the phases are equal, and T a multiple of ``stride`` at any phases.
    Anything else raises ``ValueError`` in eager mode: step such streams separately.

    While traced (``torch.jit.trace``, the ONNX export) ``step`` reads no state value
    into Python: the phases and the output count T' stay tensors, so an exported
    graph matches eager for every chunking. T' may be 0; the layers of this module
    take an empty chunk inside a graph too. A graph cannot raise: a call the rule
    above refuses fails with the runtime's index error instead (TorchScript
    ``RuntimeError`` "index out of range", ONNX Runtime "indices element out of data
    bounds"), and the caller's state is untouched.

    ``ragged=True`` lifts the rule: a step at any phases and any T returns T' = the largest
    count of outputs any stream completes, ``max_b (rem_b + T) // stride`` (counts differ
    by at most one); stream b's rows past its own count are padding, computed from
    clamped indices (finite, meaningless). The state is right for every stream (it holds
    input frames only). A module that uses this keeps each stream's count itself.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        dilation: int = 1,
        groups: int = 1,
        stride: int = 1,
        bias: bool = True,
        ragged: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or dilation < 1 or stride < 1:
            raise ValueError("kernel_size, dilation and stride must be >= 1")
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride=stride, dilation=dilation,
            groups=groups, bias=bias,
        )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride = self.decimation = stride
        self.ragged = ragged
        self.context = (kernel_size - 1) * dilation  # frames of history each output needs
        self.hop, self.latency = 1, 0

    def init_state(self, batch: int) -> ConvState:
        w = self.conv.weight
        buf = torch.zeros(batch, self.in_channels, self.context + self.stride - 1,
                          dtype=w.dtype, device=w.device)
        return ConvState(buf, torch.zeros(batch, dtype=torch.long, device=w.device))

    def forward(self, x: Tensor) -> Tensor:
        xc = x.transpose(1, 2)  # (B, C, T)
        xc = F.pad(xc, (self.context, 0))[..., self.stride - 1:]
        if xc.shape[-1] < self.context + 1:  # fewer than `stride` inputs: no output yet
            return x.new_zeros(x.shape[0], 0, self.out_channels)
        return self.conv(xc).transpose(1, 2)  # (B, T // stride, C_out)

    def step(self, x: Tensor, state: ConvState) -> tuple[Tensor, ConvState]:
        s, t = self.stride, x.shape[1]
        keep = self.context + s - 1
        if s > 1:
            rem = (state.rem + t) % s  # (B,) the phases after the chunk
            if _tracing():
                return self._decimate(x, state.buf, state.rem, rem, check=not self.ragged)
            # eager: read the phases (a graph cannot: see _decimate)
            lo, hi = (int(v) for v in torch.aminmax(state.rem)) if x.shape[0] else (0, 0)
            if lo != hi:
                if t % s and not self.ragged:
                    raise ValueError(
                        f"streams at different decimation phases need chunks that are a "
                        f"multiple of the stride {s} (got {t}); step them separately")
                return self._decimate(x, state.buf, state.rem, rem, check=False)
        full = torch.cat([state.buf, x.transpose(1, 2)], dim=-1)  # (B, C, ctx + s - 1 + T)
        buf = full[..., full.shape[-1] - keep:] if keep else full[..., :0]
        if s > 1:  # one phase r = lo
            n_out = (lo + t) // s
            if not n_out:
                return x.new_zeros(x.shape[0], 0, self.out_channels), ConvState(buf, rem)
            # the valid history starts at s - 1 - r; group ends are s - 1 further on
            y = self.conv(full[..., 2 * (s - 1) - lo:])[..., :n_out]  # (B, C_out, T')
            return y.transpose(1, 2), ConvState(buf, rem)
        # no phase: every input frame completes an output
        if _tracing():  # a graph also takes T = 0 (which a decimating layer before this one
            # passes on): a zero frame at each end, whose two outputs are dropped
            conv = self.conv
            if _onnx_double(full):
                y = _conv_matmul(conv, full, t)
            else:
                y = F.conv1d(full, conv.weight, conv.bias, 1, 1, conv.dilation, conv.groups)
                y = y[..., 1:t + 1]  # (B, C_out, T)
        elif t:
            y = self.conv(full)  # (B, C_out, T)
        else:
            y = full.new_zeros(x.shape[0], self.out_channels, 0)
        return y.transpose(1, 2), ConvState(buf, torch.zeros_like(state.rem))

    def _decimate(self, x: Tensor, buf: Tensor, rem: Tensor, new_rem: Tensor, *,
                  check: bool) -> tuple[Tensor, ConvState]:
        """A strided step with a phase per stream, in tensor ops only.

        x: (B, T, C_in) the chunk; buf: (B, C_in, ctx + s - 1) the history; rem, new_rem: (B,)
        the phases before and after the chunk. Returns (y (B, T', C_out), new state).

        Stream b completes ``(rem[b] + T) // s`` groups; its first one ends ``s - 1 - rem[b]``
        frames into the chunk, so its first window starts ``2 (s - 1) - rem[b]`` frames into
        history + chunk. One gather of whole frames aligns every stream's windows and one
        strided conv computes them. T' is stream 0's count as a 0-d tensor, so a traced
        graph keeps it dynamic; it is every stream's count when all phases are equal or
        ``T % s == 0``. ``check``: when neither holds (phases differ and ``new_rem != rem``),
        the gather indices are pushed out of range, so that a traced graph, which cannot
        raise, fails as eager does.
        """
        s, ctx = self.stride, self.context
        b, t, c = x.shape
        full = torch.cat([buf.transpose(1, 2), x], dim=1)  # (B, L, C_in), L = ctx + s - 1 + T
        length = full.shape[1]
        r0 = rem[:1]  # (1,) stream 0's phase, or (0,) when B == 0
        if self.ragged:  # the most any stream completes: max over B of (rem + T) // s
            top = torch.cat([rem, rem.new_zeros(1)]).max()  # 0 when B == 0
            n_out = torch.div(top + t, s, rounding_mode="trunc")
        else:
            n_out = torch.div(r0 + t, s, rounding_mode="trunc").sum()  # 0-d (0 when B == 0)
        # ctx + 1 + s (T' - 1) frames give T' outputs; at least one window, as conv needs
        width = ctx + 1 + s * (n_out - 1).clamp(min=0)
        start = 2 * (s - 1) - rem  # (B,)
        # (B, width) frame indices; only the dropped window of T' = 0 can run past the end
        idx = (start.unsqueeze(1) + torch.arange(width, device=x.device)).clamp(max=length - 1)
        rows = idx + torch.arange(b, device=x.device).unsqueeze(1) * length  # rows of (B L, C)
        if check:
            refused = ((rem != r0) & (new_rem[:1] != r0)).any()
            rows = rows + refused.long() * (b * length)
        win = full.flatten(0, 1).index_select(0, rows.flatten())  # (B * width, C_in)
        win = win.reshape(b, -1, c).transpose(1, 2)  # (B, C_in, width)
        if _onnx_double(win):
            y = _conv_matmul(self.conv, win, n_out).transpose(1, 2)
        else:
            y = self.conv(win)[..., :n_out].transpose(1, 2)  # (B, T', C_out)
        new_buf = full[:, -(ctx + s - 1):].transpose(1, 2)  # (B, C_in, ctx + s - 1)
        return y, ConvState(new_buf, new_rem)


def _onnx_double(x: Tensor) -> bool:
    """A float64 convolution in an ONNX export: ONNX Runtime has no double Conv kernel."""
    return x.dtype == torch.float64 and torch.onnx.is_in_onnx_export()


def _conv_matmul(conv: nn.Conv1d, x: Tensor, n_out: Tensor | int) -> Tensor:
    """``conv(x)[..., :n_out]`` for x (B, C_in, L) as one gather of windows and one MatMul
    (-> (B, C_out, n_out)): the same sums in another order, for ONNX graphs in float64.
    Grouped with one input channel per group (depthwise, or a filter bank per channel)."""
    k, d, s, g = conv.kernel_size[0], conv.dilation[0], conv.stride[0], conv.groups
    if conv.in_channels != g:
        raise NotImplementedError("float64 ONNX convolutions need one input channel per group")
    # at least one window: ONNX Runtime cannot reshape the empty tensors of n_out = 0
    n_win = n_out.clamp(min=1) if isinstance(n_out, Tensor) else max(int(n_out), 1)
    starts = torch.arange(n_win, device=x.device) * s  # (n,)
    idx = starts.unsqueeze(1) + torch.arange(k, device=x.device).unsqueeze(0) * d  # (n, K)
    idx = idx.clamp(max=x.shape[-1] - 1)  # the spare window of n_out = 0 may run past the end
    win = x[:, :, idx]  # (B, G, n, K)
    w = conv.weight.reshape(g, -1, k).transpose(1, 2)  # (G, K, C_out/G)
    y = torch.matmul(win, w).permute(0, 1, 3, 2).flatten(1, 2)[..., :n_out]  # (B, C_out, n)
    return y if conv.bias is None else y + conv.bias.view(1, -1, 1)


def _tracing() -> bool:
    """True while torch.jit.trace, the TorchScript-based ONNX exporter or torch.compile runs:
    then ``step`` must not read state values into Python."""
    if torch.jit.is_tracing():
        return True
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


class ResidualBlockState(NamedTuple):
    """State of a two-convolution (``mode="standard"``) :class:`CausalResidualBlock`.

    conv1, conv2: the :class:`ConvState` of the first and second causal convolution.
    """

    conv1: ConvState
    conv2: ConvState


class CausalResidualBlock(StreamingModule):
    """A causal residual block; (B, T, C_in) -> (B, T, C_out).

    B: batch, T: time, C_in: ``channels``, C_out: ``out_channels`` (default ``channels``).

    Three modes, all causal (output frame t uses input frames <= t only):

    * ``"pointwise"`` (default, the original block): ``x + pointwise(act(conv(x)))``, one
      dilated causal conv ``channels -> hidden``; state: the conv's :class:`ConvState`.
    * ``"standard"``: pre-norm ``LayerNorm -> conv1 -> LayerNorm -> act -> conv2``, two
      dilated causal convs ``channels -> hidden -> out``; state: :class:`ResidualBlockState`.
    * ``"depthwise"``: pre-norm ``LayerNorm -> depthwise conv -> LayerNorm -> act ->
      pointwise (hidden) -> act -> pointwise (out)``; state: the depthwise conv's
      :class:`ConvState`.

    In the new modes ``hidden`` defaults to ``round(channels * expansion)`` (expansion > 1
    widens, < 1 contracts), ``gated=True`` doubles the last layer and applies a GLU-style
    sigmoid gate (``a * sigmoid(b)``), and the skip path is a linear projection when
    ``out_channels != channels``.
    """

    MODES = ("pointwise", "standard", "depthwise")

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        *,
        dilation: int = 1,
        hidden: int | None = None,
        groups: int = 1,
        activation: type[nn.Module] = nn.GELU,
        mode: str = "pointwise",
        out_channels: int | None = None,
        expansion: float = 1.0,
        gated: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {self.MODES}")
        out = out_channels or channels
        if mode == "pointwise" and (out != channels or gated):
            raise ValueError("mode 'pointwise' keeps the channel count and has no gate; "
                             "use mode 'standard' or 'depthwise'")
        if expansion <= 0:
            raise ValueError("expansion must be > 0")
        self.mode, self.gated = mode, gated
        self.act = activation()
        self.in_channels, self.out_channels = channels, out
        self.hop, self.latency = 1, 0
        if mode == "pointwise":
            hidden = hidden or channels
            self.conv = CausalConv1d(channels, hidden, kernel_size, dilation=dilation,
                                     groups=groups)
            self.pointwise = nn.Linear(hidden, channels)
            return
        hidden = hidden or max(1, round(channels * expansion))
        last = 2 * out if gated else out
        self.norm1 = nn.LayerNorm(channels)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Linear(channels, out) if out != channels else nn.Identity()
        if mode == "standard":
            self.conv = CausalConv1d(channels, hidden, kernel_size, dilation=dilation,
                                     groups=groups)
            self.norm2 = nn.LayerNorm(hidden)
            self.conv2 = CausalConv1d(hidden, last, kernel_size, dilation=dilation,
                                      groups=groups if last % groups == 0 else 1)
        else:
            self.conv = CausalConv1d(channels, channels, kernel_size, dilation=dilation,
                                     groups=channels)
            self.norm2 = nn.LayerNorm(channels)
            self.pw1 = nn.Linear(channels, hidden)
            self.pw2 = nn.Linear(hidden, last)

    def init_state(self, batch: int) -> ConvState | ResidualBlockState:
        if self.mode == "standard":
            return ResidualBlockState(self.conv.init_state(batch), self.conv2.init_state(batch))
        return self.conv.init_state(batch)

    def _gate(self, h: Tensor) -> Tensor:
        if not self.gated:
            return h
        a, b = h.chunk(2, dim=-1)
        return a * torch.sigmoid(b)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "pointwise":
            return x + self.pointwise(self.act(self.conv(x)))
        h = self.act(self.norm2(self.conv(self.norm1(x))))
        if self.mode == "standard":
            h = self.conv2(self.drop(h))
        else:
            h = self.pw2(self.drop(self.act(self.pw1(h))))
        return self.skip(x) + self.drop(self._gate(h))

    def step(self, x: Tensor, state: ConvState | ResidualBlockState
             ) -> tuple[Tensor, ConvState | ResidualBlockState]:
        if self.mode == "pointwise":
            h, state = self.conv.step(x, state)
            return x + self.pointwise(self.act(h)), state
        if self.mode == "standard":
            h, s1 = self.conv.step(self.norm1(x), state.conv1)
            h, s2 = self.conv2.step(self.drop(self.act(self.norm2(h))), state.conv2)
            return self.skip(x) + self.drop(self._gate(h)), ResidualBlockState(s1, s2)
        h, state = self.conv.step(self.norm1(x), state)
        h = self.pw2(self.drop(self.act(self.pw1(self.act(self.norm2(h))))))
        return self.skip(x) + self.drop(self._gate(h)), state
