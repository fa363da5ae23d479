"""Checkpoints: one file holding everything needed to rebuild a model.

Contents (plain containers and tensors only, so ``torch.load(weights_only=True)``
reads it): format tag and version, the registry name, the config as a dict,
the ``state_dict``, normalisation stats, and metadata (hop, latency, sample
rate, channels, plus whatever the trainer adds).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

from sigstream.core.contract import StreamingModule
from sigstream.core.errors import InputError
from sigstream.core.files import write_atomic

FORMAT = "sigstream-checkpoint"
VERSION = 1


def save_checkpoint(path: str, name: str, config: Any, model: StreamingModule,
                    norm: dict | None = None, meta: dict | None = None) -> None:
    """Write atomically (temporary file, then rename)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": name,
        "config": dataclasses.asdict(config),
        "state_dict": model.state_dict(),
        "norm": norm or {},
        "meta": {
            "hop": model.hop, "latency": model.latency, "sample_rate": model.sample_rate,
            "in_channels": model.in_channels, "out_channels": model.out_channels,
            **(meta or {}),
        },
    }
    write_atomic(path, lambda fh: torch.save(payload, fh))


def read_checkpoint(path: str) -> dict:
    """The raw payload, validated; InputError for anything that is not a sigstream checkpoint."""
    if not os.path.isfile(path):
        raise InputError(f"cannot read checkpoint {path!r}: file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not ours"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path!r} is not a sigstream checkpoint ({first[:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path!r} is not a sigstream checkpoint")
    if payload.get("version") != VERSION:
        raise InputError(
            f"{path!r} has checkpoint version {payload.get('version')}, this sigstream reads "
            f"version {VERSION}"
        )
    return payload
