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
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sigstream.core.contract import StreamingModule
from sigstream.core.errors import ConfigError, InputError
from sigstream.models.checkpoint import read_checkpoint
from sigstream.models.entry import ModelEntry

__all__ = ["MODELS", "ModelEntry", "get_entry", "build_model", "make_config", "parse_options",
           "weights_path", "shipped_weights", "load_checkpoint"]


def _discover() -> dict[str, ModelEntry]:
    """Every ``ENTRIES`` of the packages under ``sigstream.models`` (the baselines first, then
    the families in name order), each with its package's ``weights/`` folder."""
    import importlib
    import pkgutil

    import sigstream.models as pkg

    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.ispkg)
    names.sort(key=lambda n: n != "baselines")
    found: dict[str, ModelEntry] = {}
    for name in names:
        module = importlib.import_module(f"{pkg.__name__}.{name}")
        folder = os.path.join(os.path.dirname(os.path.abspath(module.__file__ or "")), "weights")
        for entry in getattr(module, "ENTRIES", ()):
            if entry.name in found:
                raise RuntimeError(f"model name {entry.name!r} is declared twice "
                                   f"(again in {module.__name__})")
            found[entry.name] = dataclasses.replace(entry, weights_dir=folder)
    return found


MODELS: Mapping[str, ModelEntry] = MappingProxyType(_discover())


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
        return load_checkpoint(spec)
    entry = get_entry(name)
    overrides = parse_options(opts)
    config = make_config(entry.config_type, overrides)
    if entry.weights:
        return _pretrained(entry, config, set(overrides))
    model = entry.build(config)
    model.eval()
    return model


def weights_path(entry: ModelEntry, config: Any) -> str | None:
    """The shipped weights file for this config, or None when the model needs none."""
    if not entry.weights:
        return None
    return os.path.join(entry.weights_dir or "", entry.weights.format(**dataclasses.asdict(config)))


def shipped_weights(entry: ModelEntry) -> list[str]:
    """File names of the weights that ship for this model (any config)."""
    import glob
    import re

    if not entry.weights:
        return []
    pattern = re.sub(r"\{[^}]*\}", "*", entry.weights)
    found = glob.glob(os.path.join(entry.weights_dir or "", pattern))
    return sorted(os.path.basename(p) for p in found)


def _pretrained(entry: ModelEntry, config: Any, asked: set[str]) -> StreamingModule:
    """Shipped weights for ``config``; options the user set must match how they were trained."""

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


def load_checkpoint(path: str, overrides: dict | None = None) -> StreamingModule:
    """Rebuild the model a checkpoint describes, in eval mode; ``overrides`` replace
    config options that do not change the weights (e.g. how the model streams)."""
    payload = read_checkpoint(path)
    name = payload["model"]
    if name == "enhancer" and "taps" in payload["config"]:
        name = "audio-enhancer"  # written before the 48 kHz speech enhancer took the name
    entry = get_entry(name)
    try:
        saved = {k: tuple(v) if isinstance(v, list) else v for k, v in payload["config"].items()}
        config = entry.config_type(**{**saved, **(overrides or {})})
        model = entry.build(config)
        model.load_state_dict(payload["state_dict"])
    except (TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(
            f"checkpoint {path!r} does not fit model {entry.name!r}: {first[:160]}"
        ) from None
    model.norm = payload.get("norm", {})
    model.meta = payload.get("meta", {})
    model.eval()
    return model
