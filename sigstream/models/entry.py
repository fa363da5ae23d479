"""What a model family declares to the registry: one :class:`ModelEntry` per built-in model.

A family package (``sigstream/models/<family>/``) lists its entries in ``ENTRIES``;
:mod:`sigstream.models.registry` finds every family package by itself, so adding a
family is adding its folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sigstream.core.contract import StreamingModule


@dataclass(frozen=True)
class ModelEntry:
    """A built-in model: how to build it, its default config and its shipped weights.

    ``weights`` is a file name (``str.format`` fields from the config, e.g.
    ``"extractor-{preset}.pt"``) in the ``weights/`` folder of the family package that
    declares the entry; the registry fills in ``weights_dir``.
    """

    name: str
    description: str
    config_type: type
    build: Callable[[Any], StreamingModule]
    synth: str = "sines"  # default synthetic source for demos and benchmarks
    weights: str | None = None  # file name in the family's weights/ folder, if weights ship
    stream_options: tuple[str, ...] = ()  # options that change how it streams, not weights
    train: str | None = None  # the command that trains it (for error messages)
    weights_dir: str | None = None  # set by the registry: <family package>/weights
