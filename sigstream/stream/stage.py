"""Stages: what a pipeline runs between its source and its sink.

N: frames, C: channels.

A stage takes one block ``(N, C)`` float32 (N a multiple of ``hop``) and returns
the corresponding output block. :class:`ModelStage` adapts any streamable model
(torch, TorchScript or ONNX Runtime, through :class:`StreamRunner`) for one
stream; the pipeline never needs to know which.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from sigstream.stream.runner import StreamRunner


class Stage(Protocol):
    hop: int
    latency: int
    in_channels: int
    out_channels: int

    def process(self, block: np.ndarray) -> np.ndarray: ...


class ModelStage:
    """One stream of a streamable model: ``process((N, C)) -> (N', C')``."""

    def __init__(self, model: Any) -> None:
        self.runner = StreamRunner(model, batch=1, validate=False)
        self.hop = self.runner.hop
        self.latency = self.runner.latency
        self.decimation = int(getattr(model, "decimation", 1))
        self.in_channels = int(getattr(model, "in_channels", 0))
        self.out_channels = int(getattr(model, "out_channels", 0)) or self.in_channels
        self.sample_rate = getattr(model, "sample_rate", None)

    def process(self, block: np.ndarray) -> np.ndarray:
        y = self.runner.step(block[None])  # (1, N, C) -> (1, N', C')
        return y[0]

    def reset(self) -> None:
        self.runner.reset([0])
