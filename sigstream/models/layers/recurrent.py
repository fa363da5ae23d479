"""Stateful recurrent layers (LSTM, GRU) whose hidden state is batch-first stream state.

B: batch (streams), T: time, C: channels.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from sigstream.core.contract import StreamingModule

__all__ = ["GRUState", "LSTMState", "StatefulGRU", "StatefulLSTM", "chrono_init"]


class LSTMState(NamedTuple):
    """h, c: (B, layers, hidden)."""

    h: Tensor
    c: Tensor


class GRUState(NamedTuple):
    """h: (B, layers, hidden)."""

    h: Tensor


class StatefulLSTM(StreamingModule):
    """Multi-layer unidirectional LSTM whose (h, c) is carried as batch-first state."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True,
                           dropout=dropout if num_layers > 1 else 0.0)
        self.in_channels, self.out_channels = input_size, hidden_size
        self.hop, self.latency = 1, 0

    def init_state(self, batch: int) -> LSTMState:
        w = self.rnn.weight_ih_l0
        z = torch.zeros(batch, self.rnn.num_layers, self.rnn.hidden_size,
                        dtype=w.dtype, device=w.device)
        return LSTMState(z, z.clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]

    def step(self, x: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        if not torch.jit.is_tracing():
            if x.shape[1] == 0:  # RNNs refuse empty input
                return x.new_zeros(x.shape[0], 0, self.out_channels), state
        else:  # a graph: aten::lstm refuses T = 0, which a decimating stage before this one
            # may pass on, and ONNX Runtime's LSTM returns zeros, not the state, for it; a
            # scripted call keeps the guard in the graph (an If node in ONNX)
            y, h, c = _scripted_lstm()(x, state.h, state.c, list(self.rnn._flat_weights),
                                       self.rnn.num_layers)
            return y, LSTMState(h, c)
        hc = (state.h.transpose(0, 1).contiguous(), state.c.transpose(0, 1).contiguous())
        y, (h, c) = self.rnn(x, hc)  # h, c: (layers, B, hidden)
        return y, LSTMState(h.transpose(0, 1), c.transpose(0, 1))


def _lstm_empty_safe(x: Tensor, h: Tensor, c: Tensor, weights: list[Tensor],
                     layers: int) -> tuple[Tensor, Tensor, Tensor]:
    """A batch-first ``nn.LSTM`` call on (B, layers, H) states that passes T = 0 through;
    scripted, so that a traced graph keeps the branch."""
    if x.shape[1] == 0:
        return x.new_zeros(x.shape[0], 0, h.shape[2]), h, c
    y, h2, c2 = torch.lstm(x, [h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous()],
                           weights, True, layers, 0.0, False, False, True)
    return y, h2.transpose(0, 1), c2.transpose(0, 1)


_SCRIPTED: list = []


def _scripted_lstm():  # noqa: ANN202 - a torch.jit.ScriptFunction
    """:func:`_lstm_empty_safe` scripted, once, on first use (only exports need it)."""
    if not _SCRIPTED:
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated",
                                    category=DeprecationWarning)
            _SCRIPTED.append(torch.jit.script(_lstm_empty_safe))
    return _SCRIPTED[0]


class StatefulGRU(StreamingModule):
    """Multi-layer unidirectional GRU whose h is carried as batch-first state."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden_size, num_layers, batch_first=True,
                          dropout=dropout if num_layers > 1 else 0.0)
        self.in_channels, self.out_channels = input_size, hidden_size
        self.hop, self.latency = 1, 0

    def init_state(self, batch: int) -> GRUState:
        w = self.rnn.weight_ih_l0
        return GRUState(torch.zeros(batch, self.rnn.num_layers, self.rnn.hidden_size,
                                    dtype=w.dtype, device=w.device))

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]

    def step(self, x: Tensor, state: GRUState) -> tuple[Tensor, GRUState]:
        if not torch.jit.is_tracing() and x.shape[1] == 0:
            return x.new_zeros(x.shape[0], 0, self.out_channels), state
        y, h = self.rnn(x, state.h.transpose(0, 1).contiguous())  # h: (layers, B, hidden)
        return y, GRUState(h.transpose(0, 1))


def chrono_init(lstm: nn.LSTM, t_max: float, generator: torch.Generator | None = None) -> None:
    """Chrono initialisation (Tallec & Ollivier, 2018) of an ``nn.LSTM``'s gate biases.

    Forget-gate biases ``log(U(1, t_max - 1))`` and input-gate biases their
    negatives give the cells time constants spread up to ``t_max`` steps — what
    a sample-rate LSTM needs to hold slow oscillations (hundreds of samples per
    period) from the first epoch.
    """
    h = lstm.hidden_size
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith("bias_ih"):
                p.zero_()
            elif name.startswith("bias_hh"):
                p.zero_()
                forget = torch.log(torch.empty(h).uniform_(1.0, t_max - 1.0, generator=generator))
                p[h:2 * h] = forget  # gate order: input, forget, cell, output
                p[0:h] = -forget
