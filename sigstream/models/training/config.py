"""Training configurations: frozen dataclasses whose fields carry their own help, bounds and
choices, composed of parts; and :class:`FitConfig`, the settings :func:`~.loop.fit` reads.

Torch-free, so the command line can describe every option without importing torch.

Convention (one source of truth per option):

* A configuration is a frozen dataclass. A field whose default is itself a dataclass
  instance is a *part* (:func:`part`): a family's training configuration is its model
  config, its data config and a :class:`FitConfig`, plus a few fields of its own.
* An option is a leaf field, named by its field name: ``model.hidden`` is ``--hidden``,
  ``fit.lr`` is ``--lr``. Names are unique within a configuration (:func:`options` refuses
  two leaves of one name), so a flat ``name=value`` set addresses it (:func:`build`,
  :func:`with_options`), as the command line does.
* ``field(metadata=...)`` keys (:func:`opt` writes them):

  ``help``      the help text, stated once (without the default: whoever shows it adds it)
  ``choices``   the fixed set of values
  ``low``, ``high``      inclusive bounds; ``above``, ``below``: exclusive bounds
  ``metavar``   the name of the value in help
  ``aliases``   other spellings of the option (``--snr`` for ``snr_db``)
  ``option``    the option's spelling when it is not ``--`` + the field name (a name that
                means one thing in every command: ``--clip-seconds`` for ``seconds``)
  ``renamed``   former spellings, still accepted with a warning naming the new one
  ``negative``  booleans: spellings that set it False besides ``--no-NAME``

* A configuration class lists in ``DERIVED`` (a ClassVar of dotted paths, relative to the
  class) the fields its ``resolved()`` sets from other options, e.g. the model's sample
  rate from the data's; they are not options.
* ``validate()`` raises :class:`~sigstream.core.errors.ConfigError` with one line naming the
  option and what to do; :func:`check` does the part that metadata describes.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sigstream.core.errors import ConfigError

__all__ = ["opt", "part", "Leaf", "leaves", "options", "with_options", "build", "check",
           "resolve", "option_name", "FitConfig"]

_MISSING = dataclasses.MISSING


def opt(default: Any, help: str, **meta: Any) -> Any:  # noqa: A002 - the natural name
    """A configuration field with its help text and metadata (see the module docstring)."""
    return field(default=default, metadata={"help": help, **meta})


def part(factory: Callable[[], Any], help: str) -> Any:  # noqa: A002
    """A field holding a configuration part (a dataclass), built by ``factory``."""
    return field(default_factory=factory, metadata={"help": help})


def option_name(name: str, meta: Mapping[str, Any] | None = None) -> str:
    """``snr_db`` -> ``--snr-db``: how errors and the command line spell an option (its
    ``option`` metadata when the field has one)."""
    return (meta or {}).get("option") or "--" + name.replace("_", "-")


class Leaf(NamedTuple):
    """One option of a configuration: its name, dotted path, dataclass field, type, value."""

    name: str
    path: str
    field: dataclasses.Field
    type: Any
    value: Any

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.field.metadata


def _is_config(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _derived(config: Any) -> tuple[str, ...]:
    return tuple(getattr(type(config), "DERIVED", ()))


def leaves(config: Any, prefix: str = "", skip: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every option of ``config`` (an instance), depth first in field order; parts are
    walked through their current value, so a part may be any dataclass; ``DERIVED`` fields
    are left out."""
    hints = typing.get_type_hints(type(config))
    skip = skip + tuple(prefix + p for p in _derived(config))
    for f in dataclasses.fields(config):
        path = prefix + f.name
        if path in skip:
            continue
        value = getattr(config, f.name)
        if _is_config(value):
            yield from leaves(value, path + ".", skip)
        else:
            yield Leaf(f.name, path, f, hints[f.name], value)


def parts(config: Any, prefix: str = "") -> Iterator[tuple[str, Any, dataclasses.Field]]:
    """``(dotted path, value, field)`` of every part of ``config``, depth first."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if _is_config(value):
            yield prefix + f.name, value, f
            yield from parts(value, prefix + f.name + ".")


def options(config: Any) -> dict[str, Leaf]:
    """The options of ``config`` by name; two leaves of one name are a programming error."""
    found: dict[str, Leaf] = {}
    for leaf in leaves(config):
        if leaf.name in found:
            raise TypeError(f"{type(config).__name__}: option {leaf.name!r} is both "
                            f"{found[leaf.name].path} and {leaf.path}; rename one or list "
                            f"one in DERIVED")
        found[leaf.name] = leaf
    return found


def _replace(config: Any, path: list[str], value: Any) -> Any:
    head, rest = path[0], path[1:]
    if not rest:
        return dataclasses.replace(config, **{head: value})
    return dataclasses.replace(config, **{head: _replace(getattr(config, head), rest, value)})


def _get(config: Any, path: list[str]) -> Any:
    for name in path:
        config = getattr(config, name)
    return config


def with_options(config: Any, values: Mapping[str, Any] | None = None, /, **kw: Any) -> Any:
    """``config`` with options replaced. Keys are option names (``hidden``), dotted paths
    (``model.hidden``) or an element of a tuple option (``data.audio.snr_range[0]``)."""
    by_name = options(config)
    elements = []
    for key, value in {**(values or {}), **kw}.items():
        key, sep, index = key.partition("[")
        if key in by_name:
            key = by_name[key].path
        elif "." not in key and not sep:
            raise ConfigError(f"unknown option {key!r} for {type(config).__name__}; "
                              f"options: {', '.join(by_name)}")
        if sep:
            elements.append((key.split("."), int(index.rstrip("]")), value))
        else:
            config = _replace(config, key.split("."), value)
    for path, i, value in elements:
        old = list(_get(config, path))
        old[i] = value
        config = _replace(config, path, tuple(old))
    return config


def build(config_type: type, **values: Any) -> Any:
    """``config_type()`` with options set by name: ``build(ExtractorTrainConfig, hidden=8)``."""
    return with_options(config_type(), values)


def resolve(config: Any) -> Any:
    """``config.resolved()`` when the class derives fields, else ``config``."""
    fn = getattr(config, "resolved", None)
    return fn() if callable(fn) else config


def _bound_error(name: str, meta: Mapping[str, Any], value: Any) -> str | None:
    name = option_name(name, meta)
    if "low" in meta and value < meta["low"]:
        return f"{name} must be >= {meta['low']:g}, got {value}"
    if "high" in meta and value > meta["high"]:
        return f"{name} must be <= {meta['high']:g}, got {value}"
    if "above" in meta and not value > meta["above"]:
        return f"{name} must be > {meta['above']:g}, got {value}"
    if "below" in meta and not value < meta["below"]:
        return f"{name} must be < {meta['below']:g}, got {value}"
    if isinstance(value, float) and math.isnan(value):
        return f"{name} must be a number, got nan"
    return None


def check(config: Any) -> None:
    """Validate ``config`` by its metadata: each part by its own ``validate()`` (or, without
    one, by this function), then the bounds and choices of the fields that are not parts,
    every item of a tuple alike. Raises ConfigError naming the option."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if _is_config(value):
            if callable(getattr(value, "validate", None)):
                value.validate()
            else:
                check(value)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if _is_config(value) or value is None:
            continue
        choices = f.metadata.get("choices")
        for item in value if isinstance(value, tuple) else (value,):
            if choices is not None and item not in choices:
                raise ConfigError(f"unknown {f.name} {item!r}; choose one of "
                                  f"{', '.join(map(str, choices))}")
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                error = _bound_error(f.name, f.metadata, item)
                if error:
                    raise ConfigError(error)


def type_args(tp: Any) -> tuple[Any, bool]:
    """``(inner type, optional)`` of a field type: ``int | None`` -> ``(int, True)``."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


# -- the settings of fit() --------------------------------------------------------------------
@dataclass(frozen=True)
class FitConfig:
    """How :func:`~sigstream.models.training.loop.fit` trains: an epoch is one round of
    training and validation (the forecaster's: ``--val-every`` updates). Every family gives
    its own defaults (``part(lambda: FitConfig(lr=2e-3, ...))``)."""

    epochs: int | None = opt(None, "maximum epochs, an epoch being one round of training and "
                             "validation (none: the trainer's own schedule)", low=1, metavar="N")
    lr: float = opt(1e-3, "learning rate (Adam)", above=0)
    weight_decay: float = opt(0.0, "Adam weight decay", low=0)
    clip: float = opt(1.0, "gradient-norm clipping (0: off)", low=0)
    patience: int = opt(10, "epochs without validation improvement before stopping", low=1,
                        metavar="N")
    lr_patience: int | None = opt(3, "epochs without improvement before the learning rate is "
                                  "multiplied by --lr-factor (ReduceLROnPlateau's patience; "
                                  "none: a constant rate)", low=0, metavar="N")
    lr_factor: float = opt(0.5, "learning-rate factor on a plateau", above=0, below=1)
    min_lr: float = opt(1e-5, "the learning rate never drops below this", low=0)
    lr_threshold: float = opt(1e-4, "relative improvement that counts as one for the "
                              "learning-rate schedule", low=0)
    ema: float = opt(0.0, "validate and save an exponential moving average of the weights with "
                     "this decay per update, e.g. 0.99 (0: off)", low=0, below=1,
                     metavar="DECAY")
    max_minutes: float = opt(0.0, "wall-time budget in minutes: stop after the epoch that "
                             "exceeds it, keeping the best checkpoint (0: none)", low=0,
                             metavar="MIN")
    plots: bool = opt(False, "write OUT/training.png (losses and learning rate per epoch) "
                      "when training ends")
    seed: int = opt(0, "random seed: initial weights, data draws, shuffling")
    progress: bool = opt(True, "progress output (a bar on a terminal, plain lines otherwise)",
                         negative=("--quiet",))

    def validate(self) -> None:
        check(self)
