"""``sigstream train teb`` and ``sigstream eval teb``."""

from __future__ import annotations

import argparse
import os
import sys

from sigstream.cli.args import positive_float, positive_int
from sigstream.core.errors import ConfigError, InputError

SHIPPED = "teb.pt"


def add_parsers(train: argparse._SubParsersAction, evaluate: argparse._SubParsersAction) -> None:
    t = train.add_parser("teb", help="the TEB-VAE forecasting FHR from synthetic CTG",
                         description="Train the TEB-VAE on synthetic cardiotocography records. "
                                     "Deterministic for a given --seed.")
    t.set_defaults(func=cmd_train)
    t.add_argument("--out", required=True, metavar="DIR",
                   help="folder for teb.pt (best checkpoint), history.json and plots/")
    t.add_argument("--preset", default="small",
                   help="model dimensions: small (shipped, CPU-trainable) | seed (small)")
    t.add_argument("--epochs", type=positive_int, default=40, help="maximum epochs (40)")
    t.add_argument("--seed", type=int, default=0, help="random seed (0)")
    t.add_argument("--train-records", type=positive_int, default=192,
                   help="20-minute training records (192)")
    t.add_argument("--val-records", type=positive_int, default=32,
                   help="validation records (32)")
    t.add_argument("--minutes", type=positive_float, default=20.0,
                   help="record length in minutes (20: 300 steps of 16 samples)")
    t.add_argument("--batch", type=positive_int, default=16, help="records per update (16)")
    t.add_argument("--decode-steps", type=positive_int, default=48,
                   help="steps decoded per record and update (48)")
    t.add_argument("--lr", type=positive_float, default=2e-3, help="learning rate (2e-3)")
    t.add_argument("--kld-beta", type=float, default=1.0, help="KL weight (1)")
    t.add_argument("--patience", type=positive_int, default=8,
                   help="epochs without validation improvement before stopping (8)")
    t.add_argument("--max-minutes", type=float, default=0.0,
                   help="wall-clock budget; stop after the epoch that exceeds it (0: none)")
    t.add_argument("--plot-every", type=int, default=0, metavar="N",
                   help="write the 4-panel PDF to OUT/plots every N epochs (0: never)")
    t.add_argument("--threads", type=positive_int, default=1, help="torch threads (1)")
    t.add_argument("--quiet", action="store_true", help="no progress output")

    e = evaluate.add_parser("teb", help="the TEB-VAE forecasting FHR from synthetic CTG",
                            description="Evaluate the TEB-VAE on held-out records; persistence "
                                        "and a linear AR baseline are measured in the same run.")
    e.set_defaults(func=cmd_eval)
    e.add_argument("--checkpoint", metavar="PATH",
                   help="a teb checkpoint (default: the shipped teb weights)")
    e.add_argument("--records", type=positive_int, default=64,
                   help="held-out 20-minute records (64)")
    e.add_argument("--minutes", type=positive_float, default=20.0,
                   help="record length in minutes (20)")
    e.add_argument("--json", metavar="PATH", help="write the results as JSON")
    e.add_argument("--figures", metavar="DIR",
                   help="write teb_forecast.pdf (4 panels) and teb_nll_by_horizon.png into DIR")
    e.add_argument("--threads", type=positive_int, default=1, help="torch threads (1)")


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from sigstream.models.teb.train import TebTrainConfig, train

    torch.set_num_threads(args.threads)
    cfg = TebTrainConfig(
        preset=args.preset, epochs=args.epochs, seed=args.seed,
        train_records=args.train_records, val_records=args.val_records, minutes=args.minutes,
        batch=args.batch, decode_steps=args.decode_steps, lr=args.lr, kld_beta=args.kld_beta,
        patience=args.patience, max_minutes=args.max_minutes, plot_every=args.plot_every,
        progress=not args.quiet)
    cfg.validate()
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {args.out!r}: {exc.strerror}") from None
    _, hist, path = train(cfg, args.out)
    last = hist["epochs"][-1]
    print(f"trained {len(hist['epochs'])} epochs in {hist['seconds']:.0f} s; best validation "
          f"NLL {hist['best_val_nll']:.4f} at epoch {hist['best_epoch']}"
          + (" (stopped early)" if hist["stopped_early"] else "")
          + f"; last train loss {last['total_loss']:.4f}", file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def default_checkpoint() -> str:
    from importlib import resources

    return str(resources.files("sigstream.models.teb") / "weights" / SHIPPED)


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from sigstream.cli.output import write_json
    from sigstream.models.teb.evaluate import evaluate, table, write_figures
    from sigstream.models.teb.train import load_teb

    torch.set_num_threads(args.threads)
    path = args.checkpoint or default_checkpoint()
    if not args.checkpoint and not os.path.isfile(path):
        raise ConfigError("no TEB-VAE weights ship with this install; train them with "
                          "`sigstream train teb --out DIR` and pass --checkpoint DIR/teb.pt")
    streamer = load_teb(path)
    if args.figures:
        try:
            os.makedirs(args.figures, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create {args.figures!r}: {exc.strerror}") from None
    result = evaluate(streamer, records=args.records, minutes=args.minutes)
    result["checkpoint"] = path
    print(table(result))
    if args.figures:
        files = write_figures(streamer, args.figures, result=result, minutes=args.minutes)
        result["figures"] = files
        print(f"wrote {len(files)} figures to {args.figures}", file=sys.stderr)
    if args.json:
        write_json(args.json, result)
    return 0
