"""``sigstream train extractor`` and ``sigstream eval extractor``."""

from __future__ import annotations

import argparse
import os
import sys

from sigstream.cli.args import positive_float, positive_int
from sigstream.core.errors import ConfigError, InputError


def add_parsers(train: argparse._SubParsersAction, evaluate: argparse._SubParsersAction) -> None:
    t = train.add_parser("extractor", help="the LSTM frequency extractor",
                         description="Train the frequency extractor. Deterministic for a given "
                                     "--seed.")
    t.set_defaults(func=cmd_train)
    t.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the best checkpoint and history.json")
    t.add_argument("--preset", default="seed", help="data preset: seed | realistic (seed)")
    t.add_argument("--variant", default="multi",
                   help="stateful | sequence | multi (multi)")
    t.add_argument("--epochs", type=positive_int, help="maximum epochs (preset default)")
    t.add_argument("--seed", type=int, default=0, help="random seed (0)")
    t.add_argument("--hidden", type=positive_int, default=64, help="LSTM hidden size (64)")
    t.add_argument("--layers", type=positive_int, default=1, help="LSTM layers (1)")
    t.add_argument("--dropout", type=float, default=0.0, help="dropout between layers (0)")
    t.add_argument("--frontend", default="none",
                   help="none | bandpass (causal band-pass features) | oscillator (a "
                        "learnable phase reference, for the seed preset) (none)")
    t.add_argument("--lr", type=positive_float, default=3e-3, help="learning rate (3e-3)")
    t.add_argument("--tbptt", type=positive_int, default=1000,
                   help="truncated-BPTT window in samples (1000)")
    t.add_argument("--batch", type=positive_int, default=8,
                   help="sequences per update, realistic preset (8)")
    t.add_argument("--snr", type=float, default=0.0, help="realistic preset SNR in dB (0)")
    t.add_argument("--init", metavar="CHECKPOINT",
                   help="start from this checkpoint (and, for the seed preset, its prefix)")
    t.add_argument("--patience", type=positive_int, default=20,
                   help="epochs without validation improvement before stopping (20)")
    t.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (1: small recurrent models run fastest on one)")
    t.add_argument("--quiet", action="store_true", help="no progress output")

    e = evaluate.add_parser("extractor", help="the LSTM frequency extractor",
                            description="Evaluate the extractor on held-out data; the band-pass "
                                        "baseline is measured on the same data in the same run.")
    e.set_defaults(func=cmd_eval)
    e.add_argument("--checkpoint", metavar="PATH", help="a checkpoint (default: shipped "
                                                        "weights for the preset)")
    e.add_argument("--preset", help="data preset: seed | realistic (default: the "
                                    "checkpoint's)")
    e.add_argument("--snr", type=float, default=0.0, help="realistic preset SNR in dB (0)")
    e.add_argument("--json", metavar="PATH", help="write the results as JSON")
    e.add_argument("--figures", metavar="DIR", help="write PNG figures into DIR")


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from sigstream.models.extractor.train import ExtractorTrainConfig, train

    torch.set_num_threads(args.threads)
    cfg = ExtractorTrainConfig(
        preset=args.preset, variant=args.variant, epochs=args.epochs, seed=args.seed,
        hidden=args.hidden, layers=args.layers, dropout=args.dropout,
        frontend=args.frontend, init=args.init, lr=args.lr,
        tbptt=args.tbptt, batch=args.batch, snr_db=args.snr, patience=args.patience,
        progress=not args.quiet)
    cfg.validate()
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {args.out!r}: {exc.strerror}") from None
    _, hist, path = train(cfg, args.out)
    last = hist.epochs[-1] if hist.epochs else {}
    print(f"trained {len(hist.epochs)} epochs in {hist.seconds:.0f} s; best validation MSE "
          f"{hist.best_val:.5f} at epoch {hist.best_epoch}"
          + (" (stopped early)" if hist.stopped_early else "")
          + (f"; last train loss {last.get('train_loss', float('nan')):.5f}" if last else ""),
          file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from sigstream.cli.output import write_json
    from sigstream.models.extractor.evaluate import evaluate, table
    from sigstream.models.extractor.model import FrequencyExtractor
    from sigstream.models.registry import build_model, load_checkpoint

    if args.checkpoint:
        model = load_checkpoint(args.checkpoint)
        if not isinstance(model, FrequencyExtractor):
            raise InputError(f"{args.checkpoint!r} is not an extractor checkpoint")
        preset = args.preset or model.config.preset
    else:
        preset = args.preset or "seed"
        model = build_model(f"extractor:preset={preset}")
    if preset not in ("seed", "realistic"):
        raise ConfigError(f"unknown preset {preset!r}; choose seed or realistic")
    if args.figures:
        try:
            os.makedirs(args.figures, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create {args.figures!r}: {exc.strerror}") from None
    result = evaluate(model, preset, args.snr)
    print(table(result))
    if args.figures:
        from sigstream.models.baselines.bandpass import BandSpec
        from sigstream.models.extractor.plots import write_figures

        bands = [BandSpec(b["freq_hz"], b["order"], b["bandwidth_hz"])
                 for b in result["baseline"]["bands"]]
        files = write_figures(model, preset, args.snr, args.figures, bands=bands)
        result["figures"] = files
        print(f"wrote {len(files)} figures to {args.figures}", file=sys.stderr)
    if args.json:
        write_json(args.json, result)
    return 0
