"""``sigstream train forecaster`` and ``sigstream eval forecaster``."""

from __future__ import annotations

import argparse
import os
import sys

from sigstream.cli.args import positive_float, positive_int
from sigstream.core.errors import ConfigError, InputError


def _stages(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated counts, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected counts >= 1, got {text!r}")
    return out


def _orders(text: str) -> tuple[int, ...]:
    return () if text.strip().lower() == "none" else _stages(text)


def add_parsers(train: argparse._SubParsersAction, evaluate: argparse._SubParsersAction) -> None:
    t = train.add_parser("forecaster", help="the harmonic forecaster (curriculum up to 45 "
                                            "components)",
                         description="Curriculum training of a harmonic forecaster: the number "
                                     "of components grows stage by stage. Deterministic for a "
                                     "given --seed; --resume continues an interrupted run.")
    t.set_defaults(func=cmd_train)
    t.add_argument("--out", required=True, metavar="DIR",
                   help="folder for forecaster.pt, resume.pt and history.json")
    t.add_argument("--variant", default="mlp_gru", help="ar_lstm | seq2seq_gru | mlp_gru "
                                                         "(mlp_gru)")
    t.add_argument("--lookback", type=positive_int, default=100, help="lookback samples (100)")
    t.add_argument("--horizon", type=positive_int, default=10, help="forecast samples (10)")
    t.add_argument("--hidden", type=positive_int, default=64, help="recurrent size (64)")
    t.add_argument("--embed", type=positive_int, default=256, help="MLP width (256)")
    t.add_argument("--no-analytic", action="store_true",
                   help="no analytic candidates: the network alone")
    t.add_argument("--burg-orders", type=_stages, default=(12, 32, 80),
                   help="AR orders of the Burg candidates, each <= lookback - 2 (12,32,80)")
    t.add_argument("--ls-orders", type=_orders,
                   help="AR orders of the minimum-norm least-squares candidates, each in "
                        "lookback/2 .. lookback-1; 'none' for no such candidates (0.56, 0.64 "
                        "and 0.72 of the lookback: 56,64,72)")
    t.add_argument("--clean-weight", type=positive_float, default=1.0,
                   help="loss weight of noise-free windows, noisy ones weighing 1: their "
                        "errors are ~100x smaller, so a plain mean hardly rewards them (1)")
    t.add_argument("--teacher-forcing", type=float, default=0.0,
                   help="seq2seq_gru: probability of feeding the truth while training (0)")
    t.add_argument("--stages", type=_stages, default=(3, 7, 15, 30, 45),
                   help="largest component count of each stage (3,7,15,30,45)")
    t.add_argument("--steps-per-stage", type=positive_int, default=600,
                   help="updates per stage before the last (600)")
    t.add_argument("--final-steps", type=positive_int, default=6000,
                   help="updates of the last stage (6000)")
    t.add_argument("--batch", type=positive_int, default=128, help="windows per update (128)")
    t.add_argument("--lr", type=positive_float, default=2e-3, help="learning rate (2e-3)")
    t.add_argument("--val-every", type=positive_int, default=100,
                   help="updates between validations (100)")
    t.add_argument("--patience", type=positive_int, default=8,
                   help="validations without improvement before a stage ends (8)")
    t.add_argument("--minutes", type=positive_float, help="stop after this many minutes "
                                                          "(resumable)")
    t.add_argument("--seed", type=int, default=0, help="random seed (0)")
    t.add_argument("--resume", action="store_true", help="continue from DIR/resume.pt")
    t.add_argument("--threads", type=positive_int, default=1, help="torch threads (1)")
    t.add_argument("--quiet", action="store_true", help="no progress output")

    e = evaluate.add_parser("forecaster", help="the harmonic forecaster",
                            description="MSE per horizon step for 3-7, 10, 20, 30 and 45 "
                                        "components, with and without noise: every model given "
                                        "and the DFT and linear-prediction baselines, measured "
                                        "in the same run on the same windows.")
    e.set_defaults(func=cmd_eval)
    e.add_argument("--checkpoint", action="append", metavar="PATH",
                   help="a forecaster checkpoint; repeat for several (default: both shipped "
                        "presets, accurate and fast)")
    e.add_argument("--windows", type=positive_int, default=1000,
                   help="test windows per condition (1000)")
    e.add_argument("--json", metavar="PATH", help="write the results as JSON")
    e.add_argument("--figures", metavar="DIR", help="write PNG figures into DIR")
    e.add_argument("--threads", type=positive_int, default=1, help="torch threads (1)")


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from sigstream.models.forecaster.train import ForecasterTrainConfig, train

    torch.set_num_threads(args.threads)
    cfg = ForecasterTrainConfig(
        variant=args.variant, lookback=args.lookback, horizon=args.horizon, hidden=args.hidden,
        embed=args.embed, analytic=not args.no_analytic, burg_orders=args.burg_orders,
        ls_orders=args.ls_orders, clean_weight=args.clean_weight,
        teacher_forcing=args.teacher_forcing,
        seed=args.seed, batch=args.batch, lr=args.lr, stages=args.stages,
        steps_per_stage=args.steps_per_stage, final_steps=args.final_steps,
        val_every=args.val_every, patience=args.patience, minutes=args.minutes or 0.0,
        progress=not args.quiet)
    cfg.validate()
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {args.out!r}: {exc.strerror}") from None
    _, hist, path = train(cfg, args.out, resume=args.resume)
    vals = hist["validations"]
    last = vals[-1] if vals else {}
    print(f"trained {hist.get('updates', 0)} updates, {len(hist['stages'])} stage(s) "
          f"completed, in {hist['seconds']:.0f} s; last validation MSE "
          f"{last.get('val_mse', float('nan')):.5f} (1-{last.get('components', '?')} "
          f"components)" + (" (stopped by --minutes; --resume continues)"
                            if hist.get("stopped_by_time") else ""), file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from sigstream.cli.output import write_json
    from sigstream.models.forecaster.evaluate import evaluate, table
    from sigstream.models.forecaster.model import PRESETS, HarmonicForecaster
    from sigstream.models.registry import build_model, load_checkpoint

    torch.set_num_threads(args.threads)
    models = {}
    for path in args.checkpoint or []:
        m = load_checkpoint(path)
        if not isinstance(m, HarmonicForecaster):
            raise InputError(f"{path!r} is not a forecaster checkpoint")
        name = m.config.variant
        while name in models:
            name += "'"
        models[name] = m
    if not models:  # both shipped presets, side by side
        for preset in PRESETS:
            models[f"shipped_{preset}"] = build_model(f"forecaster:preset={preset}")
    shapes = {(m.lookback, m.horizon) for m in models.values()}
    if len(shapes) != 1:
        raise ConfigError(f"the checkpoints disagree on (lookback, horizon): {sorted(shapes)}")
    if args.figures:
        try:
            os.makedirs(args.figures, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create {args.figures!r}: {exc.strerror}") from None
    result = evaluate(models, n_windows=args.windows, n_val=min(500, args.windows),
                      progress=sys.stderr.isatty())
    print(table(result))
    if args.figures:
        from sigstream.models.forecaster.plots import write_figures

        files = write_figures(models, result, args.figures)
        result["figures"] = files
        print(f"wrote {len(files)} figures to {args.figures}", file=sys.stderr)
    if args.json:
        write_json(args.json, result)
    return 0
