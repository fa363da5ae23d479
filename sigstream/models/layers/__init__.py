"""Causal, streamable building blocks with explicit, batch-first state.

B: batch (streams), T: time, C: channels. Every block takes and returns ``(B, T, C)``
float32 and implements the streaming contract of :mod:`sigstream.core.contract`:
``forward`` computes the whole signal in one pass, ``step`` carries state across
chunks, and the two agree to 1e-5.

- :mod:`~sigstream.models.layers.conv`: ``CausalConv1d`` (dilation, groups, stride),
  ``CausalResidualBlock``;
- :mod:`~sigstream.models.layers.recurrent`: ``StatefulLSTM``, ``StatefulGRU``,
  ``chrono_init``;
- :mod:`~sigstream.models.layers.blocks`: the TEB-VAE's encoder and decoder blocks.
"""

from sigstream.models.layers.conv import (
    CausalConv1d,
    CausalResidualBlock,
    ConvState,
    ResidualBlockState,
)
from sigstream.models.layers.recurrent import (
    GRUState,
    LSTMState,
    StatefulGRU,
    StatefulLSTM,
    chrono_init,
)

__all__ = ["CausalConv1d", "CausalResidualBlock", "ConvState", "ResidualBlockState",
           "GRUState", "LSTMState", "StatefulGRU", "StatefulLSTM", "chrono_init"]
