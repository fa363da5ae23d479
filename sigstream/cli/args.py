"""Argument types and Ctrl-C handling shared by the ``sigstream`` commands."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import threading
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from sigstream.core.errors import ConfigError
from sigstream.models.training.config import (
    leaves,
    option_name,
    parts,
    type_args,
    with_options,
)


def _number(text: str, cast: type, ok, what: str, shown: str) -> Any:
    """``cast(text)`` if ``ok`` of it, else an ArgumentTypeError naming ``what`` and ``shown``."""
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {shown}, got "
                                         f"{value if cast is int else repr(text)}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a whole number", "a number >= 1")


MAX_BLOCK = 1 << 24  # frames per chunk: 64 MiB a channel in float32


def block_size(text: str) -> int:
    """A chunk length in frames: 1 .. MAX_BLOCK (a larger one only exhausts memory)."""
    return _number(text, int, lambda v: 1 <= v <= MAX_BLOCK, "a whole number",
                   f"a number in 1 .. {MAX_BLOCK:,}")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a whole number", "a number >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < float("inf"), "a number", "a number > 0")


def non_negative_float(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v < float("inf"), "a number", "a number >= 0")


def seconds(text: str) -> float:
    """A finite number of seconds >= 0 (0 usually means "off")."""
    return _number(text, float, lambda v: 0 <= v < float("inf"), "a number of seconds",
                   "a number of seconds >= 0")


def positive_seconds(text: str) -> float:
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


@contextmanager
def sigint_stops(service: Any) -> Iterator[None]:
    """In the main thread, the first Ctrl-C stops ``service`` gracefully; a second aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()
        service.stop(timeout=0)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# -- options generated from configuration dataclasses -----------------------------------------
# A configuration (sigstream.models.training.config) describes its options; these turn them
# into argparse arguments: the type from the annotation (bools as --flag/--no-flag, tuples
# comma-separated with "none" for the empty one, "X | None" taking "none"), the default and
# the help from the field, shown once. Arguments default to SUPPRESS, so the namespace holds
# only what the user gave; the command applies it to the configuration's own defaults.

_SPELLED = "_spelled"


def _record(namespace: argparse.Namespace, dest: str, spelling: str | None) -> None:
    spelled = dict(getattr(namespace, _SPELLED, {}))
    spelled[dest] = spelling
    setattr(namespace, _SPELLED, spelled)


def spelled(namespace: argparse.Namespace) -> dict[str, str]:
    """dest -> the option string the user typed, for the generated options given."""
    return dict(getattr(namespace, _SPELLED, {}))


class Flag(argparse.Action):
    """A boolean option: its spellings set True, ``--no-...`` and ``negative`` ones False."""

    def __init__(self, option_strings: list[str], dest: str, negative: tuple[str, ...] = (),
                 **kw: Any) -> None:
        kw.pop("nargs", None)
        self.negative = tuple(f"--no-{s[2:]}" for s in option_strings) + tuple(negative)
        super().__init__([*option_strings, *self.negative], dest, nargs=0, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, option_string not in self.negative)
        _record(namespace, self.dest, option_string)

    def format_usage(self) -> str:
        return " | ".join(self.option_strings)


class Store(argparse.Action):
    """``store`` that records the spelling used."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        _record(namespace, self.dest, option_string)


class Renamed(argparse.Action):
    """A former spelling of an option (hidden from help): stores like the option under
    its new name ``new``, which it records as the spelling used (so errors name the new
    one), and says on stderr that the name changed."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kw: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        import sys

        print(f"{parser.prog}: warning: {option_string} is now called {self.new}; the old "
              f"name still works but will be removed", file=sys.stderr)
        setattr(namespace, self.dest, values)
        _record(namespace, self.dest, self.new)


def renamed_argument(parser: argparse.ArgumentParser | Any, old: str | tuple[str, ...],
                     action: argparse.Action) -> None:
    """Accept ``old`` spellings (hidden, with a warning) for the argument ``action``."""
    parser.add_argument(*((old,) if isinstance(old, str) else old), action=Renamed,
                        new=action.option_strings[0], dest=action.dest, type=action.type,
                        metavar=action.metavar, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)


def _scalar(tp: Any, what: str) -> Any:
    if tp is bool:
        def boolean(text: str) -> bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise argparse.ArgumentTypeError(f"expected on or off for {what}, got {text!r}")
        return boolean
    if tp in (int, float):
        def number(text: str) -> Any:
            try:
                return tp(text)
            except ValueError:
                kind = "a whole number" if tp is int else "a number"
                raise argparse.ArgumentTypeError(f"expected {kind} for {what}, "
                                                 f"got {text!r}") from None
        return number
    return str


def value_type(tp: Any, what: str = "the option", sep: str = ",") -> Any:
    """The argparse ``type`` for a field type: ``int``, ``float``, ``str``, ``bool`` (on/off),
    ``X | None`` (``none`` -> None), ``tuple[X, ...]`` and ``tuple[X, X]`` (items separated by
    ``sep``; ``none`` or nothing is the empty tuple)."""
    inner, optional = type_args(tp)
    if typing.get_origin(inner) is tuple:
        args = typing.get_args(inner)
        fixed = None if len(args) == 2 and args[1] is Ellipsis else len(args)
        item = _scalar(args[0], what)

        def items(text: str) -> tuple:
            if text.strip().lower() in ("", "none"):
                out: tuple = ()
            else:
                out = tuple(item(t.strip()) for t in text.split(sep))
            if fixed is not None and len(out) != fixed:
                raise argparse.ArgumentTypeError(
                    f"expected {fixed} values separated by {sep!r} for {what}, got {text!r}")
            return out
        return items
    scalar = _scalar(inner, what)
    if optional:
        return lambda text: None if text.strip().lower() == "none" else scalar(text)
    return scalar


def format_default(value: Any) -> str:
    """A value as the command line spells it (tuples comma-separated, booleans on/off)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(format_default(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _metavar(name: str, tp: Any, meta: Any) -> str:
    if "metavar" in meta:
        return meta["metavar"]
    if "choices" in meta:
        return "{" + ",".join(map(str, meta["choices"])) + "}"
    inner, _ = type_args(tp)
    base = name.upper().split("_")[-1]
    if not base[:1].isalpha() or inner is int or typing.get_args(inner)[:1] == (int,):
        base = "N"  # counts, sizes, orders
    if typing.get_origin(inner) is tuple:
        args = typing.get_args(inner)
        n = 2 if args[-1] is Ellipsis else len(args)
        return ",".join([base] * n) + (",..." if args[-1] is Ellipsis else "")
    return base


@dataclass
class ConfigOption:
    """One generated argument: its option strings, where its value goes in each family's
    configuration (``targets``: family key -> dotted path, ``[i]`` for a tuple item, or a
    part for ``KEY=VALUE`` overrides) and each family's default."""

    dest: str
    strings: list[str]
    kind: str  # "value" | "flag" | "no" (sets a flag False) | "overrides" (KEY=VALUE,...)
    type: Any
    help: str
    metavar: str | None
    negative: tuple[str, ...] = ()
    targets: dict[str, str] = dc_field(default_factory=dict)
    defaults: dict[str, Any] = dc_field(default_factory=dict)
    group: str = ""
    shows_default: bool = True
    renamed: tuple[str, ...] = ()  # former spellings: accepted with a warning, not in help


def config_options(config: Any, aliases: Any = None, key: str = "",
                   renamed: Any = None) -> list[ConfigOption]:
    """The arguments of one configuration instance (its values are the defaults).

    ``aliases`` (dotted path -> extra spellings) adds spellings: to the option itself, or,
    for a tuple item (``path[i]``) or a part (``KEY=VALUE,...``), as arguments of their own.
    ``renamed`` (dotted path -> former spellings) adds spellings that still work but warn
    (as the ``renamed`` metadata of a field does).
    """
    aliases = dict(aliases or {})
    renamed = dict(renamed or {})
    part_help = {path: f.metadata.get("help", path) for path, _, f in parts(config)}
    out: list[ConfigOption] = []
    by_path: dict[str, ConfigOption] = {}
    for leaf in leaves(config):
        meta = leaf.meta
        if "help" not in meta:
            raise TypeError(f"{type(config).__name__}.{leaf.path} has no help "
                            f"(field(metadata={{'help': ...}}))")
        strings = [option_name(leaf.name, meta), *meta.get("aliases", ()),
                   *aliases.pop(leaf.path, ())]
        is_flag = leaf.type is bool
        top = leaf.path.split(".")[0]
        option = ConfigOption(
            dest=f"cfg:{leaf.name}", strings=strings, kind="flag" if is_flag else "value",
            type=None if is_flag else value_type(leaf.type, strings[0]),
            help=meta["help"], metavar=None if is_flag else _metavar(leaf.name, leaf.type, meta),
            negative=tuple(meta.get("negative", ())), targets={key: leaf.path},
            defaults={key: leaf.value},
            group=part_help.get(top, "") if "." in leaf.path else "",
            renamed=(*meta.get("renamed", ()), *renamed.pop(leaf.path, ())))
        out.append(option)
        by_path[leaf.path] = option
    for path, spellings in aliases.items():
        base, sep, index = path.partition("[")
        if sep:
            owner = by_path.get(base)
            if owner is None:
                raise TypeError(f"alias {spellings} names {path!r}, not an option")
            item = typing.get_args(type_args(owner_type(config, base))[0])[0]
            out.append(ConfigOption(
                dest=f"alias:{spellings[0]}", strings=list(spellings), kind="value",
                type=value_type(item, spellings[0]),
                help=f"item {int(index.rstrip(']')) + 1} of {owner.strings[0]}",
                metavar="X", targets={key: path},
                defaults={key: None}, group=owner.group, shows_default=False))
        elif path in part_help:
            out.append(ConfigOption(
                dest=f"alias:{spellings[0]}", strings=list(spellings), kind="overrides",
                type=str, help=f"{part_help[path]}: options as KEY=VALUE,... (tuple items "
                f"separated by /), e.g. " + _overrides_example(config, path),
                metavar="KEY=VALUE,...", targets={key: path}, defaults={key: None},
                group=part_help.get(path.split(".")[0], ""), shows_default=False))
        else:
            raise TypeError(f"alias {spellings} names {path!r}, not an option or a part")
    return out


def owner_type(config: Any, path: str) -> Any:
    """The annotated type of the field at dotted ``path`` of ``config``."""
    *head, name = path.split(".")
    for part_name in head:
        config = getattr(config, part_name)
    return typing.get_type_hints(type(config))[name]


def _overrides_example(config: Any, path: str) -> str:
    target = config
    for name in path.split("."):
        target = getattr(target, name)
    names = [f.name for f in dataclasses.fields(target)][-2:]
    return ",".join(f"{n}={format_default(getattr(target, n)).replace(',', '/')}"
                    for n in names)


def merge_options(per_key: dict[str, list[ConfigOption]]) -> list[ConfigOption]:
    """The arguments of several families sharing one command (``--arch``): options of the
    same first spelling are one argument (kinds and value names must agree); another
    spelling stays on it when every family that has the option has that spelling, and is
    an argument of its own otherwise (so ``--rate`` stays an option of one family only).
    One spelling for two different options is a programming error."""
    merged: dict[str, ConfigOption] = {}
    extra: dict[str, dict[str, set[str]]] = {}  # first spelling -> other spelling -> keys
    helps: dict[str, dict[str, str]] = {}  # first spelling -> key -> help
    for key, options in per_key.items():
        for o in options:
            first = o.strings[0]
            m = merged.get(first)
            if m is None:
                m = merged[first] = ConfigOption(**{**o.__dict__, "strings": [first],
                                                    "negative": (), "targets": {},
                                                    "defaults": {}})
            elif m.kind != o.kind or m.metavar != o.metavar:
                raise TypeError(f"{first} means different things for different families "
                                f"({m.metavar} vs {o.metavar}); give them other names")
            m.renamed = tuple(dict.fromkeys((*m.renamed, *o.renamed)))
            m.targets.update(o.targets)
            m.defaults.update(o.defaults)
            helps.setdefault(first, {})[key] = o.help
            for s in [*o.strings[1:], *(f"!{n}" for n in o.negative)]:
                extra.setdefault(first, {}).setdefault(s, set()).add(key)
    for first, by_key in helps.items():
        if len(set(by_key.values())) > 1:  # one name, a different meaning per family
            merged[first].help = "; ".join(f"{k}: {h}" for k, h in by_key.items())
    out: list[ConfigOption] = []
    for first, m in merged.items():
        out.append(m)
        for s, keys in extra.get(first, {}).items():
            negative = s.startswith("!")
            name = s.lstrip("!")
            if keys == set(m.targets):
                if negative:
                    m.negative = (*m.negative, name)
                else:
                    m.strings.append(name)
                continue
            out.append(ConfigOption(
                dest=f"alias:{name}", strings=[name], kind=m.kind if not negative else "no",
                type=m.type, help=f"same as {'--no-' + first[2:] if negative else first}",
                metavar=m.metavar, targets={k: m.targets[k] for k in keys},
                defaults={k: m.defaults[k] for k in keys}, group=m.group,
                shows_default=False))
    seen: dict[str, str] = {}
    for o in out:
        flags = [*o.strings, *o.renamed,
                 *(f"--no-{x[2:]}" for x in o.strings if o.kind == "flag")]
        for s in [*flags, *o.negative]:
            if s in seen:
                raise TypeError(f"option {s} is spelled twice ({seen[s]} and {o.dest})")
            seen[s] = o.dest
    return out


def _help(o: ConfigOption) -> str:
    if not o.shows_default:
        return o.help
    shown = {k: v for k, v in o.defaults.items() if v is not None}
    values = {format_default(v) for v in shown.values()}
    if not shown:
        return o.help
    if len(values) == 1 and len(shown) == len(o.defaults):
        return f"{o.help} (default: {values.pop()})"
    return o.help + " (default: " + ", ".join(
        f"{format_default(v)} for {k}" for k, v in shown.items()) + ")"


def add_config_options(parser: argparse.ArgumentParser | Any,
                       options: list[ConfigOption]) -> None:
    """Add ``options`` to ``parser`` (or an argument group), defaults suppressed."""
    for o in options:
        common = {"dest": o.dest, "default": argparse.SUPPRESS, "help": _help(o)}
        if o.kind == "flag":
            action = parser.add_argument(*o.strings, action=Flag, negative=o.negative, **common)
        elif o.kind == "no":  # a spelling that sets a flag False, for some families only
            action = parser.add_argument(*o.strings, action=Store, nargs=0, const=False,
                                         **common)
        else:
            action = parser.add_argument(*o.strings, action=Store, type=o.type,
                                         metavar=o.metavar, **common)
        if o.renamed:
            if o.kind != "value":
                raise TypeError(f"renamed spellings {o.renamed} of a flag are not supported")
            renamed_argument(parser, o.renamed, action)


def given_options(namespace: argparse.Namespace, options: list[ConfigOption],
                  keys: list[str], what: str = "--arch") -> dict[str, dict[str, Any]]:
    """What the user gave, per family key in ``keys``: {dotted path: value}. An option that
    none of the chosen families has is a ConfigError naming the family that has it."""
    spellings = spelled(namespace)
    out: dict[str, dict[str, Any]] = {k: {} for k in keys}
    for o in options:
        if not hasattr(namespace, o.dest):
            continue
        value = getattr(namespace, o.dest)
        used = spellings.get(o.dest) or o.strings[0]
        chosen = [k for k in keys if k in o.targets]
        if not chosen:
            owners = " or ".join(f"{what} {k}" for k in o.targets)
            raise ConfigError(f"{used} is an option of {owners}")
        for k in chosen:
            if o.kind == "overrides":
                out[k].update(_overrides(value, o.targets[k], used))
            else:
                out[k][o.targets[k]] = False if o.kind == "no" else value
    return out


def _overrides(text: str, path: str, spelling: str) -> dict[str, Any]:
    """``KEY=VALUE,...`` for the part at ``path``: {path.KEY: value} (values parsed later by
    the caller's configuration: see :func:`apply_options`)."""
    out: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad {spelling} item {item!r}: expected KEY=VALUE")
        out[f"{path}.{key.strip()}"] = _Raw(value.strip(), spelling)
    return out


@dataclass(frozen=True)
class _Raw:
    """A ``KEY=VALUE`` value still to be parsed by its field's type."""

    text: str
    spelling: str


def apply_options(config: Any, values: dict[str, Any]) -> Any:
    """``config`` with the given values (dotted paths; ``KEY=VALUE`` items parsed by their
    field's type, tuple items separated by ``/``); unknown keys are a ConfigError."""
    parsed: dict[str, Any] = {}
    for path, value in values.items():
        if isinstance(value, _Raw):
            head, _, name = path.rpartition(".")
            target = config
            for part_name in head.split("."):
                target = getattr(target, part_name)
            names = [f.name for f in dataclasses.fields(target)]
            if name not in names:
                raise ConfigError(f"unknown key {name!r} in {value.spelling}; keys: "
                                  f"{', '.join(names)}")
            try:
                value = value_type(owner_type(config, path), f"{value.spelling} {name}",
                                   sep="/")(value.text)
            except argparse.ArgumentTypeError as exc:
                raise ConfigError(str(exc)) from None
        parsed[path] = value
    return with_options(config, parsed)
