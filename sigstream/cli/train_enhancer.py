"""``sigstream train enhancer`` and ``sigstream eval enhancer`` (--arch augmentor | causal).

``augmentor``: the SensorAugmentor window model on the vibration task
(``sigstream.models.augmentor.train`` / ``enhancer_eval``); ``causal``: the zero-lookahead
causal enhancer on audio-like data (``sigstream.models.enhancer.train`` /
``causal_enhancer_eval``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

from sigstream.cli.args import non_negative_int, positive_float, positive_int
from sigstream.core.errors import ConfigError, InputError

ARCHES = ("augmentor", "causal")


def _arch(text: str) -> str:
    if text not in ARCHES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(ARCHES)}, got {text!r}")
    return text


def _eval_arch(text: str) -> str:
    if text not in (*ARCHES, "both"):
        raise argparse.ArgumentTypeError(f"expected augmentor, causal or both, got {text!r}")
    return text


def add_parsers(train: argparse._SubParsersAction, evaluate: argparse._SubParsersAction) -> None:
    t = train.add_parser(
        "enhancer", help="signal enhancers: SensorAugmentor (vibration) or the causal enhancer",
        description="Train an enhancer. --arch augmentor: the SensorAugmentor window model on "
                    "the vibration task (128-sample windows, 100 Hz). --arch causal: the "
                    "zero-lookahead causal enhancer on audio-like data. Deterministic for a "
                    "given --seed and thread count. Options left out take each architecture's "
                    "default.")
    t.set_defaults(func=cmd_train)
    t.add_argument("--arch", type=_arch, default="augmentor",
                   help="augmentor | causal (augmentor)")
    t.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the best checkpoint and history.json")
    t.add_argument("--seed", type=int, default=0, help="random seed (0)")
    t.add_argument("--epochs", type=positive_int, help="maximum epochs")
    t.add_argument("--lr", type=positive_float, help="learning rate")
    t.add_argument("--batch", type=positive_int, help="batch size")
    t.add_argument("--hidden", type=positive_int, help="latent / hidden size")
    t.add_argument("--dropout", type=float, help="dropout (needed for --uncertainty)")
    t.add_argument("--patience", type=positive_int,
                   help="epochs without validation improvement before stopping")
    t.add_argument("--init", metavar="CHECKPOINT", help="start from this checkpoint")
    t.add_argument("--threads", type=positive_int, default=1, help="torch threads (1)")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    a = t.add_argument_group("augmentor")
    a.add_argument("--freeze", metavar="PART",
                   help="with --init: freeze PART (encoder: train only the reconstructor "
                        "and actuator head, at --lr x --finetune-lr-factor)")
    a.add_argument("--finetune-lr-factor", type=positive_float,
                   help="learning-rate factor when freezing (0.1)")
    a.add_argument("--window", type=positive_int,
                   help="window length in samples (128); with --init of another window "
                        "length the encoder is transferred")
    a.add_argument("--hop", type=positive_int, help="streaming hop (32): latency = window - hop")
    a.add_argument("--resblocks", type=non_negative_int, help="residual blocks (3)")
    a.add_argument("--bank", type=non_negative_int,
                   help="sinusoid-bank frequencies (101; 0: the plain MLP of the source)")
    a.add_argument("--windows", type=positive_int,
                   help="windows generated, split 80/10/10 (20000)")
    a.add_argument("--data-seed", type=int, help="seed of the data set (0)")
    a.add_argument("--data", metavar="KEY=VAL,...",
                   help="sensor-model overrides (VibrationConfig fields), e.g. "
                        "lq_noise=0.3,lowpass_k=0.2")
    a.add_argument("--max-minutes", type=positive_float, help="stop after this wall time")
    c = t.add_argument_group("causal")
    c.add_argument("--rate", type=positive_float, help="sample rate in Hz (16000)")
    c.add_argument("--seconds", type=positive_float, help="clip length in seconds")
    c.add_argument("--clips", type=positive_int, help="training clips")
    c.add_argument("--snr-low", type=float, help="lowest training SNR in dB")
    c.add_argument("--snr-high", type=float, help="highest training SNR in dB")
    c.add_argument("--no-speech", action="store_true", help="no espeak-ng speech clips")
    c.add_argument("--ema", type=float,
                   help="validate and save an exponential moving average of the weights with "
                        "this decay per update, e.g. 0.99 (off)")
    c.add_argument("--taps", type=positive_int,
                   help="FIR taps (128); with --init of fewer taps the filter is grown: the "
                        "new taps start at zero, so training starts from the same output")

    e = evaluate.add_parser(
        "enhancer", help="signal enhancers against the classical baselines",
        description="Evaluate an enhancer on held-out data with MSE, MAE, RMSE, PSNR, SSIM, "
                    "SNR and SNR improvement; the classical baselines (Wiener, causal "
                    "Butterworth with drift removal, Savitzky-Golay, spectral gating) run on "
                    "the same data in the same run.")
    e.set_defaults(func=cmd_eval)
    e.add_argument("--arch", type=_eval_arch, default="augmentor",
                   help="augmentor | causal | both (augmentor)")
    e.add_argument("--checkpoint", metavar="PATH",
                   help="a checkpoint (default: the shipped weights); not with --arch both")
    e.add_argument("--uncertainty", type=non_negative_int, default=0, metavar="N",
                   help="Monte-Carlo dropout with N passes: mean spread and ±2σ coverage (0)")
    e.add_argument("--json", metavar="PATH", help="write the results as JSON")
    e.add_argument("--figures", metavar="DIR", help="write PNG figures into DIR")
    e.add_argument("--seed", type=int, default=0, help="held-out data seed, causal (0)")
    e.add_argument("--stream-seconds", type=float, default=300.0,
                   help="length of the long-stream evaluation, augmentor (300; 0: skip)")
    e.add_argument("--threads", type=positive_int, default=1, help="torch threads (1)")


def _given(args: argparse.Namespace, mapping: dict[str, str]) -> dict[str, Any]:
    """Config kwargs for the options the user gave (argparse dest -> config field)."""
    return {field: getattr(args, dest) for dest, field in mapping.items()
            if getattr(args, dest, None) is not None}


def _makedirs(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {path!r}: {exc.strerror}") from None


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    if args.dropout is not None and not 0.0 <= args.dropout < 1.0:
        raise ConfigError(f"--dropout must be in [0, 1), got {args.dropout}")
    common = {"seed": "seed", "epochs": "epochs", "lr": "lr", "batch": "batch",
              "hidden": "hidden", "dropout": "dropout", "patience": "patience", "init": "init"}
    if args.arch == "augmentor":
        causal_only = [o for o in ("rate", "seconds", "clips", "snr_low", "snr_high", "taps",
                                   "ema")
                       if getattr(args, o) is not None] + (["no_speech"] if args.no_speech
                                                           else [])
        if causal_only:
            raise ConfigError(f"--{causal_only[0].replace('_', '-')} is an option of "
                              f"--arch causal")
        from sigstream.models.augmentor.train import AugmentorTrainConfig, train

        kw = _given(args, {**common, "freeze": "freeze",
                           "finetune_lr_factor": "finetune_lr_factor", "window": "window",
                           "hop": "hop", "resblocks": "resblocks", "bank": "bank",
                           "windows": "windows",
                           "data_seed": "data_seed", "max_minutes": "max_minutes"})
        if args.data:
            from sigstream.models.registry import parse_options

            kw["data"] = tuple(parse_options(args.data).items())
        cfg = AugmentorTrainConfig(progress=not args.quiet, **kw)
    else:
        aug_only = [o for o in ("freeze", "finetune_lr_factor", "window", "hop", "resblocks",
                                "bank", "windows", "data_seed", "data", "max_minutes")
                    if getattr(args, o) is not None]
        if aug_only:
            raise ConfigError(f"--{aug_only[0].replace('_', '-')} is an option of "
                              f"--arch augmentor")
        from sigstream.models.enhancer.train import CausalTrainConfig, train

        kw = _given(args, {**common, "rate": "rate", "seconds": "seconds", "clips": "clips",
                           "snr_low": "snr_low", "snr_high": "snr_high", "taps": "taps",
                           "ema": "ema"})
        if args.no_speech:
            kw["speech"] = False
        fields = {f.name for f in dataclasses.fields(CausalTrainConfig)}
        cfg = CausalTrainConfig(**{k: v for k, v in kw.items() if k in fields},
                                progress=not args.quiet)
    cfg.validate()
    _makedirs(args.out)
    _, hist, path = train(cfg, args.out)
    epochs = getattr(hist, "epochs", [])
    last = epochs[-1] if epochs else {}
    print(f"trained {len(epochs)} epochs in {hist.seconds:.0f} s; best validation loss "
          f"{hist.best_val:.5f} at epoch {hist.best_epoch}"
          + (" (stopped early)" if hist.stopped_early else "")
          + (f"; last train loss {last.get('train_loss', float('nan')):.5f}" if last else ""),
          file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _load(arch: str, checkpoint: str | None) -> Any:
    from sigstream.models.checkpoint import read_checkpoint
    from sigstream.models.registry import build_model, load_checkpoint

    name = "augmentor" if arch == "augmentor" else "enhancer"
    if not checkpoint:
        return build_model(name)
    saved = read_checkpoint(checkpoint)["model"]
    if saved != name:
        raise InputError(f"{checkpoint!r} is a {saved} checkpoint, not --arch {arch}")
    return load_checkpoint(checkpoint)


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from sigstream.cli.output import write_json

    torch.set_num_threads(args.threads)
    if args.arch == "both" and args.checkpoint:
        raise ConfigError("--checkpoint needs one --arch (augmentor or causal), not both")
    arches = ARCHES if args.arch == "both" else (args.arch,)
    if args.figures:
        _makedirs(args.figures)
    results: dict[str, Any] = {}
    for arch in arches:
        model = _load(arch, args.checkpoint)
        if arch == "augmentor":
            from sigstream.models.augmentor.evaluate import evaluate_augmentor, table

            res = evaluate_augmentor(model, uncertainty=args.uncertainty,
                                     stream_seconds=args.stream_seconds)
            print(table(res))
            if args.figures:
                from sigstream.models.augmentor.plots import write_augmentor_figures

                res["figures"] = write_augmentor_figures(
                    model, args.figures, res, passes=args.uncertainty or 20)
        else:
            from sigstream.models.enhancer import evaluate as ce

            res = ce.evaluate(model, seed=args.seed, uncertainty=args.uncertainty)
            print(_causal_table(res))
            if args.figures:
                res["figures"] = ce.write_figures(model, args.figures, seed=args.seed,
                                                  uncertainty=args.uncertainty)
        if args.figures:
            print(f"wrote {len(res['figures'])} figures to {args.figures}", file=sys.stderr)
        results[arch] = res
    if args.json:
        write_json(args.json, results[arches[0]] if len(arches) == 1 else results)
    return 0


def _causal_table(res: dict) -> str:
    lines = ["causal enhancer, held-out audio-like clips: SNR improvement (dB)",
             f"{'method':<28}{'SNR in':>8}{'SNR out':>9}{'SNRi':>8}"]
    rows = [("causal enhancer", res["model"])] + list(res["baselines"].items())
    for name, v in rows:
        if "snr_improvement_db" not in v:
            continue
        lines.append(f"{name:<28}{v['snr_in_db']:>8.2f}{v['snr_out_db']:>9.2f}"
                     f"{v['snr_improvement_db']:>8.2f}")
    if "margin_db" in res:
        lines.append(f"margin over the best causal baseline ({res.get('best_baseline')}): "
                     f"{res['margin_db']:+.2f} dB (target >= {res.get('target_margin_db', 3)} "
                     f"dB: {'met' if res.get('meets_target') else 'NOT met'})")
    if "uncertainty" in res:
        u = res["uncertainty"]
        lines.append(f"MC dropout ({u['passes']} passes): mean std {u['mean_std']:.4f}, "
                     f"clean within ±2σ {100 * u['coverage_2sigma']:.1f}%")
    return "\n".join(lines)
