"""``sigstream train MODEL`` and ``sigstream eval MODEL``: one driver for every family.

The families come from :func:`sigstream.models.training.family.discover` (each declares a
:class:`~sigstream.models.training.family.Trainable` in its ``__init__.py``); their options
are generated from their configuration dataclasses (:mod:`sigstream.cli.args`), with the
types, defaults and help stated once, in the fields. A model's sub-command builds its
options only when it is the one being run (or asked for ``--help``), so the rest of the
command line never imports torch.

Common to every model: ``train`` takes ``--out DIR`` (required) and ``--threads N``
(plus ``--resume`` where the family is resumable); ``eval`` takes ``--checkpoint PATH``
(repeatable where the family evaluates several), ``--json PATH``, ``--figures DIR`` and
``--threads N``. Families sharing a command are chosen with ``--arch``; options of
another arch than the chosen one are an error naming their arch.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable
from typing import Any

from sigstream.cli.args import (
    add_config_options,
    apply_options,
    config_options,
    given_options,
    merge_options,
    positive_int,
)
from sigstream.core.errors import ConfigError, InputError

_EVERY = ("both", "all")  # --arch value that evaluates every family of a command
# MODEL names that stand for `COMMAND --arch ARCH` (train and eval)
_ALIASES = {"augmentor": ("enhancer", "augmentor")}


class LazyParser(argparse.ArgumentParser):
    """A sub-command parser whose arguments are added by ``populate(parser)`` the first
    time it parses or prints its help."""

    def __init__(self, *args: Any, populate: Callable[[LazyParser], None] | None = None,
                 **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._populate = populate

    def _ensure(self) -> None:
        if self._populate is not None:
            populate, self._populate = self._populate, None
            populate(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._ensure()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ensure()
        return super().format_help()

    def format_usage(self) -> str:
        self._ensure()
        return super().format_usage()


def _examples(group: list, kind: str) -> str:
    lines = [t.example if kind == "train" else t.eval_example for t in group]
    return "example" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join(
        f"  {line}" for line in lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from sigstream.models.training.family import discover

    families = discover()
    every = "\n".join(f"  {t.example}" for g in families.values() for t in g)
    every_eval = "\n".join(f"  {t.eval_example}" for g in families.values() for t in g)
    fmt = argparse.RawDescriptionHelpFormatter
    t = sub.add_parser("train", help="train a model (progress, validation, early stopping)",
                       description=textwrap.fill(
                           "Train a built-in model. Deterministic for a given --seed (and "
                           "thread count). Ctrl-C stops it, keeping the best checkpoint and "
                           "the history. `sigstream train MODEL --help` lists its options.",
                           80),
                       epilog="examples:\n" + every, formatter_class=fmt)
    e = sub.add_parser("eval", help="evaluate a model against the classical baselines",
                       description=textwrap.fill(
                           "Evaluate on held-out data; the classical baselines are measured "
                           "on the same data in the same run.", 80),
                       epilog="examples:\n" + every_eval, formatter_class=fmt)
    train = t.add_subparsers(dest="model", metavar="MODEL", required=True,
                             parser_class=LazyParser)
    evaluate = e.add_subparsers(dest="model", metavar="MODEL", required=True,
                                parser_class=LazyParser)
    for command, group in families.items():
        summary = group[0].summary if len(group) == 1 else " | ".join(
            f"--arch {g.arch}: {g.summary}" for g in group)
        train.add_parser(command, help=summary, epilog=_examples(group, "train"),
                         formatter_class=fmt,
                         populate=lambda p, g=group: _populate(p, g, "train"))
        evaluate.add_parser(command, help=summary, epilog=_examples(group, "eval"),
                            formatter_class=fmt,
                            populate=lambda p, g=group: _populate(p, g, "eval"))
    for alias, (command, arch) in _ALIASES.items():
        one = [t for t in families.get(command, []) if t.key == arch]
        if not one or alias in families:
            continue
        for sub_, kind in ((train, "train"), (evaluate, "eval")):
            sub_.add_parser(alias, help=f"same as `{kind} {command} --arch {arch}`",
                            epilog=_examples(one, kind), formatter_class=fmt,
                            populate=lambda p, g=one, k=kind: _populate(p, g, k))


def _populate(parser: LazyParser, group: list, kind: str) -> None:
    from sigstream.models.training.family import resolve

    first = group[0]
    desc = [(t.description if kind == "train" else t.eval_description) or t.summary
            for t in group]
    parser.description = "\n\n".join(textwrap.fill(d, 80) for d in (
        desc if len(group) == 1 else [f"--arch {t.arch}: {d}"
                                      for t, d in zip(group, desc, strict=True)]))
    per_key = {}
    for t in group:
        config = resolve(t.config if kind == "train" else t.eval_config)()
        train = kind == "train"
        per_key[t.key] = config_options(config, t.aliases if train else t.eval_aliases, t.key,
                                        t.renamed if train else t.eval_renamed)
    options = merge_options(per_key)
    run = parser.add_argument_group("run")
    if len(group) > 1:
        choices = [t.key for t in group] + ([_every(group)] if kind == "eval" else [])
        run.add_argument("--arch", default=first.key, type=_choice(choices),
                         metavar="{" + ",".join(choices) + "}",
                         help=f"which model (default: {first.key})")
    if kind == "train":
        run.add_argument("--out", required=True, metavar="DIR",
                         help="folder for the best checkpoint and history.json"
                              + (" (and resume.pt)" if any(t.resumable for t in group) else ""))
        if any(t.resumable for t in group):
            run.add_argument("--resume", action="store_true",
                             help="continue from DIR/resume.pt (same options; a larger "
                                  "--max-minutes is fine)")
    else:
        run.add_argument("--checkpoint", action="append", default=[], metavar="PATH",
                         help="a checkpoint (default: the shipped weights)"
                              + ("; not with --arch " + _every(group) if len(group) > 1
                                 else ""))
        run.add_argument("--json", metavar="PATH", help="write the results as JSON")
        run.add_argument("--figures", metavar="DIR", help="write figures into DIR")
        run.add_argument("--quiet", action="store_true",
                         help="no progress lines: only the results table (stdout) and errors")
    run.add_argument("--threads", type=positive_int, default=1,
                     help="torch threads (default: 1; small recurrent models run fastest "
                          "on one)")
    groups: dict[str, Any] = {}
    for o in options:
        title = o.group or ("training" if kind == "train" else "evaluation")
        if len(group) > 1:
            owners = sorted(o.targets)
            title = "every --arch" if len(owners) == len(group) else "--arch " + ", ".join(
                owners)
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        add_config_options(groups[title], [o])
    parser.set_defaults(func=_run, _driver=(kind, group, options))


def _every(group: list) -> str:
    return _EVERY[0] if len(group) == 2 else _EVERY[1]


def _choice(choices: list[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}, "
                                             f"got {text!r}")
        return text
    return parse


def _makedirs(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {path!r}: {exc.strerror}") from None


def build_config(trainable: Any, values: dict[str, Any], kind: str = "train") -> Any:
    """The family's configuration with the given values, resolved and validated."""
    from sigstream.models.training.config import resolve as resolved
    from sigstream.models.training.family import resolve

    config = apply_options(resolve(trainable.config if kind == "train"
                                   else trainable.eval_config)(), values)
    config = resolved(config)
    if callable(getattr(config, "validate", None)):
        config.validate()
    return config


def _chosen(args: argparse.Namespace, group: list) -> list:
    arch = getattr(args, "arch", group[0].key)
    return list(group) if arch in _EVERY else [t for t in group if t.key == arch]


def configs(args: argparse.Namespace) -> dict[str, Any]:
    """The configurations (family key -> resolved, validated config) that parsed
    ``sigstream train|eval MODEL ...`` arguments ask for."""
    kind, group, options = args._driver
    chosen = _chosen(args, group)
    if kind == "eval" and len(chosen) > 1 and args.checkpoint:
        raise ConfigError(f"--checkpoint needs one --arch "
                          f"({' or '.join(t.key for t in group)}), not {_every(group)}")
    if kind == "train" and getattr(args, "resume", False) and not chosen[0].resumable:
        raise ConfigError(f"--resume is an option of --arch "
                          f"{', '.join(t.key for t in group if t.resumable)}")
    values = given_options(args, options, [t.key for t in chosen])
    return {t.key: build_config(t, values[t.key], kind) for t in chosen}


def _run(args: argparse.Namespace) -> int:
    import torch

    kind, group, _ = args._driver
    chosen = {t.key: t for t in _chosen(args, group)}
    configs_ = configs(args)
    torch.set_num_threads(args.threads)
    return (_train if kind == "train" else _evaluate)(args, chosen, configs_)


def _train(args: argparse.Namespace, chosen: dict, configs_: dict) -> int:
    from sigstream.models.training.family import resolve

    ((key, trainable),) = chosen.items()
    _makedirs(args.out)
    extra = {"resume": True} if getattr(args, "resume", False) else {}
    result = resolve(trainable.train)(configs_[key], args.out, **extra)
    print(result.summary(), file=sys.stderr)
    if result.stopped_by in ("budget", "interrupt") and trainable.resumable:
        print("--resume continues this run", file=sys.stderr)
    print(f"wrote {result.checkpoint}", file=sys.stderr)
    return 130 if result.stopped_by == "interrupt" else 0


def _quiet(enabled: bool) -> Any:
    """For ``eval --quiet``: what the evaluation writes on stderr (progress lines, bars) is
    dropped; an error still reaches the user as the command's one error line, because it
    is raised, not printed."""
    import contextlib
    import io

    return contextlib.redirect_stderr(io.StringIO()) if enabled else contextlib.nullcontext()


def _evaluate(args: argparse.Namespace, chosen: dict, configs_: dict) -> int:
    from sigstream.cli.output import write_json
    from sigstream.models.training.family import resolve

    if args.figures:
        _makedirs(args.figures)
    import time

    results: dict[str, Any] = {}
    for key, t in chosen.items():
        start = time.perf_counter()
        with _quiet(args.quiet):
            ev = resolve(t.evaluate)(configs_[key], tuple(args.checkpoint), args.figures)
        if not args.quiet:
            print(f"eval {key}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        print(ev.table)
        if args.figures:
            ev.result["figures"] = ev.figures
            if not args.quiet:
                print(f"wrote {len(ev.figures)} figures to {args.figures}", file=sys.stderr)
        results[key] = ev.result
    if args.json:
        write_json(args.json, next(iter(results.values())) if len(results) == 1 else results)
    return 0
