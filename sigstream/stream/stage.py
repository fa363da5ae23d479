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


class ChannelMapStage:
    """``stage`` fed a choice of the input's channels: ``pick`` (0-based indices, in that
    order) or ``mix`` (the mean of all channels, one channel). ``in_channels`` is the
    input's channel count; everything else is ``stage``'s."""

    def __init__(self, stage: Any, in_channels: int, pick: list[int] | None = None,
                 mix: bool = False) -> None:
        if (pick is None) == (not mix):
            raise ValueError("ChannelMapStage needs exactly one of pick or mix")
        self.stage = stage
        self.runner = getattr(stage, "runner", None)  # the pipeline asks it about the model
        self.pick = None if pick is None else np.asarray(pick, dtype=np.intp)
        self.mix = mix
        self.in_channels = int(in_channels)
        self.out_channels = stage.out_channels
        self.hop = stage.hop
        self.latency = stage.latency
        self.decimation = int(getattr(stage, "decimation", 1))
        self.sample_rate = getattr(stage, "sample_rate", None)

    def process(self, block: np.ndarray) -> np.ndarray:
        if self.mix:
            x = block.mean(axis=1, keepdims=True, dtype=np.float32)
        else:
            x = np.ascontiguousarray(block[:, self.pick])
        return self.stage.process(x)

    def reset(self) -> None:
        reset = getattr(self.stage, "reset", None)
        if callable(reset):
            reset()
