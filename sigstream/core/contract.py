"""The streaming contract every streamable model and stage implements.

B: batch (independent streams), T: time (frames), C: channels.

Tensors at every public boundary are ``(B, T, C)`` float32. A streamable module
has

* ``hop``: ``step`` accepts T that is a multiple of ``hop`` (1 for sample-causal models);
* ``latency``: algorithmic latency in input samples (0 for causal models);
* ``decimation``: input samples per output sample (1 unless the module down-samples);
* ``init_state(batch)``: the state of ``batch`` fresh streams, a NamedTuple of
  batch-first tensors;
* ``step(x, state) -> (y, new_state)``: pure, never mutates ``state`` or the module;
* ``forward(x)``: the whole signal offline, from a fresh state.

A decimating module with ``hop`` 1 (the TEB-VAE: one row per 16 samples) emits a row
when the last sample of each group arrives, counting groups from each stream's own start.
Streams batched in one ``step`` may then sit at different phases of the grid (one was
reset or added mid-group) and complete different numbers of rows, at most one apart:
``step`` returns the largest number for every stream, and the rows past a stream's own
count are NaN padding; :class:`~sigstream.stream.runner.StreamRunner` keeps the phases
and says how many rows each stream got (``counts``, ``split``).

Invariant (tested for every model and stage): for any split of ``x`` along time
into pieces whose lengths are multiples of ``hop``, concatenating the ``step``
outputs equals ``forward(x)``; and output up to time t never depends on input
after t (beyond ``latency`` samples).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, cast

from torch import Tensor, nn

from sigstream.core.protocol import State, Streamable, chain, check_chunk

__all__ = ["NoState", "State", "Streamable", "StreamingModule", "Identity", "StreamSequential",
           "check_chunk"]



class NoState(NamedTuple):
    """State of a stateless module."""


class StreamingModule(nn.Module):
    """Base class for torch modules that follow the streaming contract.

    Subclasses set ``in_channels``/``out_channels`` and implement ``init_state``
    and ``step``; they override ``forward`` when the offline computation can be
    done in one pass (the invariant tests then compare two implementations).
    """

    hop: int = 1
    latency: int = 0
    decimation: int = 1
    in_channels: int = 0
    out_channels: int = 0
    sample_rate: float | None = None

    def init_state(self, batch: int) -> State:
        raise NotImplementedError

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Offline: the whole signal ``x`` (B, T, C) from a fresh state -> (B, T', C')."""
        y, _ = self.step(x, self.init_state(x.shape[0]))
        return y

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError naming the expectation if ``x`` is not a valid chunk."""
        check_chunk(x, self.in_channels, self.hop)


class Identity(StreamingModule):
    """Passes its input through unchanged; used to measure runtime overhead."""

    def __init__(self, channels: int = 1, sample_rate: float | None = None) -> None:
        super().__init__()
        self.in_channels = self.out_channels = channels
        self.sample_rate = sample_rate

    def init_state(self, batch: int) -> NoState:
        return NoState()

    def step(self, x: Tensor, state: NoState) -> tuple[Tensor, NoState]:
        return x, state

    def forward(self, x: Tensor) -> Tensor:
        return x


class StreamSequential(StreamingModule):
    """Streamable modules in series; the state is the tuple of the children's states.

    ``hop`` is the smallest chunk every child can take (children after a
    decimating child see ``decimation`` times fewer samples); ``latency`` adds
    up, in input samples.
    """

    def __init__(self, *modules: StreamingModule) -> None:
        super().__init__()
        if not modules:
            raise ValueError("StreamSequential needs at least one module")
        self.layers = nn.ModuleList(modules)
        self.hop, self.latency, self.decimation = chain(modules)
        self.in_channels = modules[0].in_channels
        self.out_channels = modules[-1].out_channels

    @property
    def _stages(self) -> Iterable[StreamingModule]:
        """``layers``, typed: an ``nn.ModuleList`` iterates as plain ``nn.Module``."""
        return cast("Iterable[StreamingModule]", self.layers)

    def init_state(self, batch: int) -> tuple:
        return tuple(m.init_state(batch) for m in self._stages)

    def step(self, x: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        new = []
        for m, s in zip(self._stages, state, strict=True):
            x, s = m.step(x, s)
            new.append(s)
        return x, tuple(new)

    def forward(self, x: Tensor) -> Tensor:
        for m in self.layers:
            x = m(x)
        return x
