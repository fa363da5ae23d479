"""The backend-neutral side of the streaming contract (no torch import).

B: batch (streams), T: time, C: channels. See :mod:`sigstream.core.contract`
for the full contract and the torch base class.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from sigstream.core.state import State


@runtime_checkable
class Streamable(Protocol):
    """Anything a :class:`~sigstream.stream.runner.StreamRunner` can drive (torch or not)."""

    hop: int
    latency: int

    def init_state(self, batch: int) -> State: ...

    def step(self, x: Any, state: State) -> tuple[Any, State]: ...


def chain(parts: Iterable[Any]) -> tuple[int, int, int]:
    """``(hop, latency, decimation)`` of streamable parts in series, in input samples.

    ``hop`` is the smallest chunk every part can take (parts after a decimating part see
    ``decimation`` times fewer samples; a hop-1 part takes whatever reaches it);
    ``latency`` adds up in input samples; ``decimation`` multiplies.
    """
    hop, latency, dec = 1, 0, 1
    for part in parts:
        h = int(part.hop)
        if h > 1:
            hop = math.lcm(hop, h * dec)
        latency += int(part.latency) * dec
        dec *= int(getattr(part, "decimation", 1))
    return hop, latency, dec


def check_chunk(x: Any, channels: int, hop: int) -> None:
    """Validate a (B, T, C) chunk: rank, channel count and T a multiple of ``hop``."""
    shape = tuple(x.shape)
    if len(shape) != 3:
        raise ValueError(f"expected a (B, T, C) chunk, got shape {shape}")
    if channels and shape[2] != channels:
        raise ValueError(f"expected {channels} channel(s), got {shape[2]} (shape {shape})")
    if shape[1] % hop:
        raise ValueError(f"chunk length {shape[1]} is not a multiple of the hop {hop}")
