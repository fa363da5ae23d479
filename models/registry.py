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

from sigstream.models.augmentor import AugmentorConfig, augmentor_stream
from sigstream.models.butterworth import Butterworth, ButterworthConfig
from sigstream.models.causal_enhancer import CausalEnhancer, EnhancerConfig
from sigstream.models.extractor import ExtractorConfig, FrequencyExtractor
from sigstream.models.forecaster import ForecasterConfig, HarmonicForecaster
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
    stream_options: tuple[str, ...] = ()  # options that change how it streams, not weights
    train: str | None = None  # the command that trains it (for error messages)


MODELS: Mapping[str, ModelEntry] = MappingProxyType({
    "butterworth": ModelEntry(
        "butterworth", "causal Butterworth IIR filter (scipy sos), the classical baseline",
        ButterworthConfig, Butterworth,
    ),
    "extractor": ModelEntry(
        "extractor", "LSTM frequency extractor: 1, 3, 5, 7 Hz components of a 1 kHz mixture",
        ExtractorConfig, FrequencyExtractor, synth="mixture", weights="extractor-{preset}.pt",
    ),
    "savgol": ModelEntry(
        "savgol", "Savitzky-Golay smoothing per window, crossfaded (a window-model baseline)",
        SavgolConfig, savgol_stream,
    ),
    "enhancer": ModelEntry(
        "enhancer", "causal enhancer, zero lookahead: frame-rate GRU steering a per-sample FIR "
        "(16 kHz audio-like signals)", EnhancerConfig, CausalEnhancer,
        weights="enhancer.pt", train="sigstream train enhancer --arch causal",
    ),
    "augmentor": ModelEntry(
        "augmentor", "SensorAugmentor: 128-sample vibration windows, low- to high-quality "
        "(+ actuator commands with actuator=true), crossfaded (100 Hz)",
        AugmentorConfig, augmentor_stream, weights="augmentor.pt",
        stream_options=("hop", "actuator"),
        train="sigstream train enhancer --arch augmentor",
    ),
    "forecaster": ModelEntry(
        "forecaster", "harmonic forecaster: the next `horizon` samples at every sample, (B, T, H)",
        ForecasterConfig, HarmonicForecaster, weights="forecaster-{preset}.pt",
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
    """The default config of ``config_type`` with string overrides parsed to field types,
    validated."""
    hints = typing.get_type_hints(config_type)
    fields = {f.name for f in dataclasses.fields(config_type)}
    kwargs = {}
    for key, raw in overrides.items():
        if key not in fields:
            raise ConfigError(
                f"unknown option {key!r} for {config_type.__name__}; options: {', '.join(fields)}"
            )
        kwargs[key] = _coerce(raw, hints[key], key)
    config = config_type(**kwargs)
    if callable(getattr(config, "validate", None)):
        config.validate()  # a bad option reads as itself, not as "no weights ship"
    return config


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
    overrides = parse_options(opts)
    config = make_config(entry.config_type, overrides)
    if entry.weights:
        return _pretrained(entry, config, set(overrides))
    model = entry.build(config)
    model.eval()
    return model


WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")


def weights_path(entry: ModelEntry, config: Any) -> str | None:
    """The shipped weights file for this config, or None when the model needs none."""
    if not entry.weights:
        return None
    return os.path.join(WEIGHTS_DIR, entry.weights.format(**dataclasses.asdict(config)))


def shipped_weights(entry: ModelEntry) -> list[str]:
    """File names of the weights that ship for this model (any config)."""
    import glob
    import re

    if not entry.weights:
        return []
    pattern = re.sub(r"\{[^}]*\}", "*", entry.weights)
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(WEIGHTS_DIR, pattern)))


def _pretrained(entry: ModelEntry, config: Any, asked: set[str]) -> StreamingModule:
    """Shipped weights for ``config``; options the user set must match how they were trained."""
    from sigstream.models.checkpoint import load_checkpoint, read_checkpoint

    path = weights_path(entry, config)
    train = entry.train or f"sigstream train {entry.name}"
    if path is None or not os.path.isfile(path):
        raise ConfigError(
            f"no pretrained weights ship for {entry.name} with {_diff(config)}; train one with "
            f"`{train}` and pass --model PATH"
        )
    saved = read_checkpoint(path)["config"]
    wanted = dataclasses.asdict(config)
    differ = [k for k in sorted(asked) if _norm(saved.get(k)) != _norm(wanted[k])]
    mismatch = [k for k in differ if k not in entry.stream_options]
    if mismatch:
        raise ConfigError(
            f"the shipped {entry.name} weights were trained with "
            + ", ".join(f"{k}={_norm(saved.get(k))}" for k in mismatch)
            + f"; train your own for {', '.join(f'{k}={_norm(wanted[k])}' for k in mismatch)}"
            f" with `{train}` and pass --model PATH"
        )
    return load_checkpoint(path, {k: wanted[k] for k in differ})  # stream options only


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _diff(config: Any) -> str:
    default = type(config)()
    changed = {k: v for k, v in dataclasses.asdict(config).items()
               if dataclasses.asdict(default)[k] != v}
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "its default config"
