"""``sigstream train MODEL`` and ``sigstream eval MODEL``: one plug-in module per model.

Each module named in ``TRAINERS`` defines ``add_parsers(train, evaluate)``, which
adds its model's sub-command to both sub-parser groups and sets ``func`` on
each; ``main`` calls ``args.func(args)``. Modules import torch lazily, inside
their commands, so building the parser stays fast.
"""

from __future__ import annotations

import argparse
import importlib

TRAINERS = (
    "sigstream.cli.train_extractor",
    "sigstream.cli.train_forecaster",
    "sigstream.cli.train_teb",
    "sigstream.cli.train_enhancer",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a model (progress, validation, early stopping)",
                       description="Train a built-in model. Deterministic for a given --seed.")
    e = sub.add_parser("eval", help="evaluate a model against the classical baselines",
                       description="Evaluate on held-out data; the classical baselines are "
                                   "measured on the same data in the same run.")
    train = t.add_subparsers(dest="model", metavar="MODEL", required=True)
    evaluate = e.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name in TRAINERS:
        importlib.import_module(name).add_parsers(train, evaluate)
