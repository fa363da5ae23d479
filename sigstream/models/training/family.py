"""What a model family declares for ``sigstream train`` and ``sigstream eval``.

A family package (``sigstream/models/<family>/``) sets ``TRAINING`` in its ``__init__.py``
to one :class:`Trainable` (or a tuple of them); :func:`discover` finds every one, and the
command line builds ``sigstream train COMMAND`` and ``sigstream eval COMMAND`` from them.
Adding a family is adding its folder: nothing in ``sigstream/cli/`` names a family.

References are ``"module:attribute"`` strings, imported only when that family's command
runs, so ``sigstream --help`` stays free of torch. What they must point at:

``config``       the training configuration class: a frozen dataclass of parts
                 (:mod:`~sigstream.models.training.config`) with ``validate()`` (and
                 ``resolved()`` when it lists ``DERIVED`` fields); its default instance
                 holds the defaults.
``train``        ``train(config, out_dir, *, resume=False) -> TrainResult``
                 (:class:`~sigstream.models.training.loop.TrainResult`); ``resume`` only
                 when ``resumable``.
``eval_config``  the evaluation options (a frozen dataclass; may have no fields).
``evaluate``     ``run(config, checkpoints, figures) -> Evaluation``: ``checkpoints`` is
                 the tuple of ``--checkpoint`` paths (empty: the shipped weights),
                 ``figures`` the folder for figures or None.

Families that share a command are its ``--arch`` choices (``sigstream train enhancer
--arch causal``); the one with ``default_arch`` is taken when ``--arch`` is left out.
``aliases`` maps dotted paths of the configuration to other spellings of their options
(names the command line had before the option was generated, e.g.
``{"data.mixture.snr_db": ("--snr",)}``); a path with ``[i]`` names one item of a tuple
option, and a path naming a part makes the spelling take ``KEY=VALUE,...`` for that part.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sigstream.core.errors import ConfigError

__all__ = ["Trainable", "Evaluation", "discover", "resolve", "one_checkpoint", "load_model"]


@dataclass(frozen=True)
class Trainable:
    """One trainable family, as ``sigstream train``/``eval`` see it (module docstring)."""

    command: str
    summary: str
    config: str
    train: str
    eval_config: str
    evaluate: str
    example: str
    eval_example: str
    description: str = ""
    eval_description: str = ""
    arch: str | None = None
    default_arch: bool = False
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    eval_aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    renamed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # former spellings
    eval_renamed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    resumable: bool = False

    @property
    def key(self) -> str:
        """The name of this family within its command (its arch, or the command)."""
        return self.arch or self.command


@dataclass
class Evaluation:
    """What a family's ``run`` returns: the JSON-able result, the table printed on stdout
    and the figure files written (if any)."""

    result: dict
    table: str
    figures: list[str] = field(default_factory=list)


def resolve(ref: str) -> Any:
    """Import ``"package.module:attribute"``."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def discover() -> dict[str, list[Trainable]]:
    """Every family's ``TRAINING`` (a family: a package of ``sigstream.models`` with a
    ``train`` module), grouped by command (commands in name order; within one, the
    default arch first). Imports the family packages only, which stay torch-free."""
    import pkgutil

    import sigstream.models as pkg

    found: dict[str, list[Trainable]] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        folder = os.path.join(getattr(info.module_finder, "path", ""), info.name)
        if not info.ispkg or "train" not in {m.name for m in pkgutil.iter_modules([folder])}:
            continue  # a family folder has a train module (layers/, baselines/ have none)
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        declared = getattr(module, "TRAINING", ())
        for t in declared if isinstance(declared, tuple) else (declared,):
            found.setdefault(t.command, []).append(t)
    for command, group in found.items():
        group.sort(key=lambda t: not t.default_arch)
        if len(group) > 1 and (not all(t.arch for t in group) or not group[0].default_arch):
            raise RuntimeError(f"command {command!r} is declared by several families: each "
                               f"needs an arch and one of them default_arch=True")
    return dict(sorted(found.items()))


def one_checkpoint(checkpoints: tuple[str, ...], command: str) -> str | None:
    """The single ``--checkpoint`` of an evaluation that takes at most one."""
    if len(checkpoints) > 1:
        raise ConfigError(f"`sigstream eval {command}` takes one --checkpoint, got "
                          f"{len(checkpoints)}")
    return checkpoints[0] if checkpoints else None


def load_model(path: str | None, name: str, arch: str) -> Any:
    """The shipped weights of the registry model ``name``, or the checkpoint at ``path``
    when it holds that model (InputError naming ``--arch arch`` otherwise)."""
    from sigstream.core.errors import InputError
    from sigstream.models.checkpoint import read_checkpoint
    from sigstream.models.registry import build_model, load_checkpoint

    if not path:
        return build_model(name)
    saved = read_checkpoint(path)["model"]
    if saved != name:
        raise InputError(f"{path!r} is a {saved} checkpoint, not --arch {arch}")
    return load_checkpoint(path)
