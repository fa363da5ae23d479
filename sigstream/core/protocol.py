"""The backend-neutral side of the streaming contract (no torch import).

B: batch (streams), T: time, C: channels. See :mod:`sigstream.core.contract`
for the full contract and the torch base class.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

State = Any  # a NamedTuple (possibly nested) of batch-first tensors or arrays


@runtime_checkable
class Streamable(Protocol):
    """Anything a :class:`~sigstream.stream.runner.StreamRunner` can drive (torch or not)."""

    hop: int
    latency: int

    def init_state(self, batch: int) -> State: ...

    def step(self, x: Any, state: State) -> tuple[Any, State]: ...


def check_chunk(x: Any, channels: int, hop: int) -> None:
    """Validate a (B, T, C) chunk: rank, channel count and T a multiple of ``hop``."""
    shape = tuple(x.shape)
    if len(shape) != 3:
        raise ValueError(f"expected a (B, T, C) chunk, got shape {shape}")
    if channels and shape[2] != channels:
        raise ValueError(f"expected {channels} channel(s), got {shape[2]} (shape {shape})")
    if shape[1] % hop:
        raise ValueError(f"chunk length {shape[1]} is not a multiple of the hop {hop}")
