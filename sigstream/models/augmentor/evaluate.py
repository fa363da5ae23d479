"""Evaluating the SensorAugmentor on the vibration task, side by side with classical baselines.

N: windows, W: window length, T: time.

``evaluate_augmentor`` measures, on the held-out test split of the data the checkpoint was
trained on (same generator seed and sensor model, so never a training window):

* the model's enhanced windows against the high-quality windows: MSE, MAE, RMSE, PSNR,
  SSIM, SNR and SNR improvement over the low-quality input (``models/metrics.py``);
* the actuator commands: MSE, MAE, RMSE per command;
* each classical baseline (``models/enhance_baselines.py``) with its parameter tuned on
  the validation split, on the same test windows, and the untouched low-quality input;
* the long-stream version: a continuous signal streamed through ``OverlapCrossfade``
  (output compared after the stated latency), model and baselines scored per 128-sample
  frame;
* with ``uncertainty=n``: Monte-Carlo dropout over ``n`` passes (mean spread, how often the
  high-quality sample lies within ±2σ, PSNR of the MC mean), and the coverage of the
  nominal 95 % interval raw and calibrated (:mod:`~sigstream.models.calibration`: the
  calibration the checkpoint stores, else one fitted on the validation split), with
  reliability curves.

With ``--data PAIRS`` the evaluation is on the user's own pair instead (its held-out last
30 %): :mod:`~sigstream.models.augmentor.evaluate_pairs`.

The headline is ``psnr_margin_db``: model PSNR minus the best baseline's PSNR (the issue's
target is at least 6 dB).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sigstream.models.augmentor.data import (
    VibrationConfig,
    VibrationSet,
    VibrationSplits,
    frame,
    generate_stream,
    make_splits,
)
from sigstream.models.augmentor.model import AugmentorStream
from sigstream.models.baselines import enhance as eb
from sigstream.models.metrics import mae, mse, summarize
from sigstream.models.training.family import Evaluation, load_model, one_checkpoint

__all__ = ["vibration_config_of", "test_data", "enhance_windows", "tuned_baselines",
           "evaluate_augmentor", "table", "TARGET_MARGIN_DB"]

TARGET_MARGIN_DB = 6.0

# parameter grids tuned on the validation split (by mean PSNR)
GRIDS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "wiener": ("window_s", (0.03, 0.05, 0.07, 0.09, 0.13)),
    "butterworth": ("cutoff_hz", (10.0, 20.0, 30.0, 35.0, 40.0, 45.0, 48.0)),
    "savgol": ("window_s", (0.05, 0.07, 0.09, 0.11, 0.15, 0.21)),
    "spectral_gate": ("prop_decrease", (0.25, 0.5, 0.75, 1.0)),
}


def vibration_config_of(model: AugmentorStream) -> tuple[VibrationConfig, int, int]:
    """(sensor model, windows, data seed) the checkpoint was trained on (defaults if unknown)."""
    meta = getattr(model, "meta", {}) or {}
    data = dict(meta.get("data", {}))
    fields = VibrationConfig.__dataclass_fields__
    kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                              for k, v in data.items() if k in fields}
    kwargs["window"] = model.net.config.window
    kwargs.setdefault("sample_rate", model.net.config.sample_rate)
    seed = meta.get("data_seed", meta.get("train_config", {}).get("data_seed", 0))
    return VibrationConfig(**kwargs), int(meta.get("windows", 20000)), int(seed)


def test_data(model: AugmentorStream, windows: int | None = None,
              data_seed: int | None = None) -> tuple[VibrationConfig, VibrationSplits]:
    vib, n, seed = vibration_config_of(model)
    return vib, make_splits(windows or n, vib, seed=seed if data_seed is None else data_seed)


def enhance_windows(model: AugmentorStream, lq: np.ndarray,
                    batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(N, W) -> enhanced (N, W), actuator (N, A); eval mode, no dropout."""
    net = model.net.eval()
    rec, act = [], []
    with torch.no_grad():
        for i in range(0, len(lq), batch):
            out = net(torch.from_numpy(np.ascontiguousarray(lq[i:i + batch], np.float32)))
            rec.append(out.reconstruction.numpy())
            act.append(out.actuator.numpy())
    return np.concatenate(rec), np.concatenate(act)


def tuned_baselines(val_lq: np.ndarray, val_hq: np.ndarray, rate: float) -> list[dict]:
    """Each baseline with its grid parameter tuned on validation data
    (:func:`~sigstream.models.baselines.enhance.tune_all`)."""
    return eb.tune_all((eb.WienerBaseline(), eb.ButterworthBaseline(), eb.SavgolBaseline(),
                        eb.SpectralGateBaseline()), GRIDS, val_lq, val_hq, rate)


def _actuator_metrics(true: np.ndarray, pred: np.ndarray) -> dict:
    names = ("damping", "stiffness")
    res = {}
    for i in range(true.shape[1]):
        e = mse(true[:, i], pred[:, i])
        res[names[i] if i < 2 else f"command_{i}"] = {
            "mse": float(e), "mae": float(mae(true[:, i], pred[:, i])),
            "rmse": float(np.sqrt(e))}
    return res


def _stream_eval(model: AugmentorStream, vib: VibrationConfig, baselines: list[dict],
                 seconds: float, seed: int) -> dict:
    s = generate_stream(seconds, vib, seed=seed)
    rate, w, lat = vib.sample_rate, vib.window, model.latency
    with torch.no_grad():
        y = model(torch.from_numpy(s.lq)[None, :, None])[0, :, 0].numpy()
    y = y[lat:]  # output t is the estimate of input t - latency
    n = len(y)
    ref, noisy = frame(s.hq[:n], w, w), frame(s.lq[:n], w, w)
    res: dict[str, Any] = {"seconds": seconds, "seed": seed, "latency_samples": lat,
           "latency_s": lat / rate, "frames": int(ref.shape[0]),
           "model": summarize(ref, frame(y, w, w), noisy),
           "noisy_input": summarize(ref, noisy, noisy), "baselines": {}}
    for b in baselines:
        if b["baseline"] is None:
            continue
        yb = b["baseline"](s.lq[None].astype(np.float64), rate)[0][:n]
        res["baselines"][b["name"]] = summarize(ref, frame(yb, w, w), noisy)
    return res


def evaluate_augmentor(model: AugmentorStream, *, uncertainty: int = 0,
                       windows: int | None = None, data_seed: int | None = None,
                       stream_seconds: float = 300.0, stream_seed: int = 12345,
                       mc_seed: int = 0) -> dict:
    """All figures for one augmentor (see the module docstring); JSON-ready."""
    vib, splits = test_data(model, windows, data_seed)
    test, val = splits.test, splits.val
    rate = vib.sample_rate
    t0 = time.perf_counter()
    rec, act = enhance_windows(model, test.lq)
    per_window_ms = 1000 * (time.perf_counter() - t0) / test.size
    result: dict[str, Any] = {
        "arch": "augmentor",
        "task": "vibration",
        "sample_rate": rate,
        "window": vib.window,
        "hop": model.hop,
        "latency_samples": model.latency,
        "latency_s": model.latency / rate,
        "test_windows": test.size,
        "reference": "high-quality windows (clean + N(0, 0.02))",
        "model": summarize(test.hq, rec, test.lq),
        "actuator": _actuator_metrics(test.actuator, act),
        "noisy_input": summarize(test.hq, test.lq, test.lq),
        "model_ms_per_window": per_window_ms,
        "parameters": int(sum(p.numel() for p in model.net.parameters())),
    }
    from sigstream.models.augmentor.evaluate_pairs import score_baselines

    bases = tuned_baselines(val.lq, val.hq, rate)
    score_baselines(result, bases, test, rate)
    result["target_margin_db"] = TARGET_MARGIN_DB
    result["target_met"] = bool(result["psnr_margin_db"] >= TARGET_MARGIN_DB)
    if uncertainty:
        result["uncertainty"] = _mc_eval(model, test, val, int(uncertainty), mc_seed)
    if stream_seconds > 0:
        result["stream"] = _stream_eval(model, vib, bases, stream_seconds, stream_seed)
    return result


def _mc_eval(model: AugmentorStream, test: VibrationSet, val: VibrationSet, n: int,
             seed: int) -> dict:
    from sigstream.models.augmentor.evaluate_pairs import uncertainty_report

    return uncertainty_report(model, test, val, n, seed)


def table(result: dict) -> str:
    """A plain-text table of the headline figures."""
    from sigstream.models.augmentor.evaluate_pairs import method_lines, uncertainty_line

    lines = [f"vibration test set: {result['test_windows']} windows of {result['window']} "
             f"samples at {result['sample_rate']:g} Hz; reference = {result['reference']}",
             *method_lines(result, "low-quality input", 26, "tuned")]
    lines.append(f"PSNR margin over the best baseline ({result['best_baseline']}): "
                 f"{result['psnr_margin_db']:+.2f} dB (target >= {result['target_margin_db']:g}"
                 f" dB: {'met' if result['target_met'] else 'NOT met'})")
    a = result["actuator"]
    lines.append("actuator RMSE: " + ", ".join(f"{k} {v['rmse']:.4f}" for k, v in a.items()))
    if "uncertainty" in result:
        lines.append(uncertainty_line(result["uncertainty"]))
    if "stream" in result:
        s = result["stream"]
        best_s = max(s["baselines"].items(), key=lambda kv: kv[1]["psnr"], default=None)
        lines.append(
            f"long stream ({s['seconds']:g} s through OverlapCrossfade, latency "
            f"{s['latency_samples']} samples = {s['latency_s']:.2f} s): PSNR "
            f"{s['model']['psnr']:.2f} dB, input {s['noisy_input']['psnr']:.2f} dB"
            + (f", best baseline {best_s[0]} {best_s[1]['psnr']:.2f} dB" if best_s else ""))
    return "\n".join(lines)


# -- sigstream eval enhancer --arch augmentor -------------------------------------------------
@dataclass(frozen=True)
class AugmentorEvalConfig:
    """What ``sigstream eval enhancer --arch augmentor`` takes besides ``--checkpoint``/
    ``--json``/``--figures``."""

    uncertainty: int = field(default=0, metadata={
        "help": "Monte-Carlo dropout with N passes: mean spread and ±2σ coverage", "low": 0,
        "metavar": "N"})
    stream_seconds: float = field(default=300.0, metadata={
        "help": "length of the long-stream evaluation (0: skip)", "low": 0})
    data: str | None = field(default=None, metadata={
        "help": "your own pair (PAIRS.npz or LOW,HIGH, as for training): score the model, "
                "the degraded input and the classical baselines on its held-out last 30 %%",
        "metavar": "DIR"})

    def validate(self) -> None:
        from sigstream.models.training.config import check

        check(self)


def run(cfg: AugmentorEvalConfig, checkpoints: tuple[str, ...],
        figures: str | None) -> Evaluation:
    """The checkpoint (or the shipped weights) and the classical baselines on the same
    held-out windows and stream; figures into ``figures`` when given."""
    from sigstream.models.augmentor.plots import write_augmentor_figures

    model = load_model(one_checkpoint(checkpoints, "enhancer"), "augmentor", "augmentor")
    if cfg.data:
        from sigstream.models.augmentor.evaluate_pairs import evaluate_on_pairs, pairs_table
        from sigstream.models.augmentor.pairs import load_pairs
        from sigstream.models.augmentor.plots import write_pairs_figures

        pairs = load_pairs(cfg.data)
        res = evaluate_on_pairs(model, pairs, uncertainty=cfg.uncertainty,
                                stream=cfg.stream_seconds > 0)
        files = write_pairs_figures(model, figures, pairs, res,
                                    passes=cfg.uncertainty or 20) if figures else []
        return Evaluation(res, pairs_table(res), files)
    res = evaluate_augmentor(model, uncertainty=cfg.uncertainty,
                             stream_seconds=cfg.stream_seconds)
    files = write_augmentor_figures(model, figures, *test_data(model), res,
                                    passes=cfg.uncertainty or 20) if figures else []
    return Evaluation(res, table(res), files)

