"""The one registry of built-in models: name -> factory, default config, shipped weights.

``sigstream models``, ``--model NAME`` and the export and bench code all look
models up here. ``--model`` takes ``NAME``, ``NAME:key=value,key=value`` (config
overrides, e.g. ``butterworth:kind=bandpass,low=3,high=9``) or the path of a
checkpoint file.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sigstream.models.butterworth import Butterworth, ButterworthConfig
from sigstream.models.savgol import SavgolConfig, savgol_stream
from sigstream.stream.contract import Identity, StreamingModule
from sigstream.stream.errors import ConfigError


@dataclass(frozen=True)
class IdentityConfig:
    channels: int = 1
    sample_rate: float = 1000.0


@dataclass(frozen=True)
class ModelEntry:
    """A built-in model: how to build it, its default config and its shipped weights."""

    name: str
    description: str
    config_type: type
    build: Callable[[Any], StreamingModule]
    synth: str = "sines"  # default synthetic source for demos and benchmarks
    weights: str | None = None  # file name under models/weights, if pretrained weights ship


MODELS: Mapping[str, ModelEntry] = MappingProxyType({
    "butterworth": ModelEntry(
        "butterworth", "causal Butterworth IIR filter (scipy sos), the classical baseline",
        ButterworthConfig, Butterworth,
    ),
    "savgol": ModelEntry(
        "savgol", "Savitzky-Golay smoothing per window, crossfaded (a window-model baseline)",
        SavgolConfig, savgol_stream,
    ),
    "identity": ModelEntry(
        "identity", "passes samples through unchanged (measures runtime overhead)",
        IdentityConfig, lambda c: Identity(c.channels, c.sample_rate),
    ),
})


def get_entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; built-in models: {', '.join(MODELS)} (or a checkpoint path)"
        ) from None


def _coerce(value: str, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if typ in (int, float, str):
            return typ(value)
        if origin is tuple:
            inner = typing.get_args(typ)[0]
            return tuple(inner(v) for v in value.split("/") if v)
        if origin is typing.Union or str(origin) == "types.UnionType":
            args = [a for a in typing.get_args(typ) if a is not type(None)]
            if value.lower() == "none":
                return None
            return _coerce(value, args[0], key)
    except ValueError:
        raise ConfigError(f"bad value {value!r} for {key!r}: expected {typ}") from None
    return value


def make_config(config_type: type, overrides: Mapping[str, str]) -> Any:
    """The default config of ``config_type`` with string overrides parsed to field types."""
    hints = typing.get_type_hints(config_type)
    fields = {f.name for f in dataclasses.fields(config_type)}
    kwargs = {}
    for key, raw in overrides.items():
        if key not in fields:
            raise ConfigError(
                f"unknown option {key!r} for {config_type.__name__}; options: {', '.join(fields)}"
            )
        kwargs[key] = _coerce(raw, hints[key], key)
    return config_type(**kwargs)


def parse_options(text: str) -> dict[str, str]:
    """``"a=1,b=x"`` -> ``{"a": "1", "b": "x"}``."""
    out: dict[str, str] = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad option {part!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def build_model(spec: str) -> StreamingModule:
    """A model in eval mode from ``NAME``, ``NAME:key=value,...`` or a checkpoint path."""
    name, _, opts = spec.partition(":")
    if name not in MODELS and (os.sep in spec or os.path.splitext(spec)[1] or os.path.exists(spec)):
        from sigstream.models.checkpoint import load_checkpoint

        return load_checkpoint(spec)
    entry = get_entry(name)
    config = make_config(entry.config_type, parse_options(opts))
    model = entry.build(config)
    model.eval()
    return model
