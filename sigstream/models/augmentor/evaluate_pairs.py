"""Evaluating the SensorAugmentor on the user's own pair: the held-out last 30 %.

N: windows, W: window length, T: time, C: channels.

``evaluate_on_pairs(model, pairs)`` scores, on the last 30 % of the pair (never seen in
training: :mod:`~sigstream.models.augmentor.pairs`):

* **windows**: back-to-back W-sample windows of every channel: the model, the degraded
  input itself and each classical baseline (the project's Wiener, causal Butterworth with
  drift removal, Savitzky-Golay and spectral gating, plus a zero-phase Butterworth
  low-pass), each baseline's parameter tuned on the validation part (the last 15 % of the
  first 70 %) over a grid scaled to the pair's rate; MSE, MAE, RMSE, PSNR, SSIM, SNR and
  SNR improvement (``models/metrics.py``, per window, averaged);
* **stream**: each channel's held-out stretch streamed through the model's
  ``OverlapCrossfade`` (compared after the stated latency) and the baselines run on the
  continuous stretch (no window edges), scored per W-sample frame;
* with ``uncertainty=n``: Monte-Carlo dropout (n passes) on the test windows: raw coverage
  of the nominal 95 % interval (``mean ± 1.96 sigma``) and of ±2σ, and the coverage of the
  calibrated interval (:mod:`~sigstream.models.calibration`; the calibration stored in the
  checkpoint by training, else fitted now on the validation windows), with the reliability
  curves (nominal vs empirical coverage) raw and calibrated.

The headline is ``psnr_margin_db``: model PSNR minus the best baseline's PSNR (target: at
least 3 dB on a real sensor pair).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from sigstream.models.augmentor.data import VibrationSet, frame
from sigstream.models.augmentor.model import AugmentorStream
from sigstream.models.augmentor.pairs import (
    SensorPairs,
    min_samples,
    pair_windows,
    split_bounds,
)
from sigstream.models.baselines import enhance as eb
from sigstream.models.metrics import summarize

__all__ = ["ZeroPhaseLowpass", "pair_grids", "tuned_pair_baselines", "evaluate_on_pairs",
           "pairs_table", "TARGET_MARGIN_DB", "uncertainty_report"]

TARGET_MARGIN_DB = 3.0


@dataclass(frozen=True)
class ZeroPhaseLowpass:
    """Butterworth low-pass of ``order`` at ``cutoff_hz`` run forwards and backwards
    (``sosfiltfilt``: no delay, not causal)."""

    cutoff_hz: float = 5.0
    order: int = 4
    name: str = "butterworth_zero_phase"
    causal: ClassVar[bool] = False

    def __call__(self, x: np.ndarray, rate: float) -> np.ndarray:
        from scipy import signal

        from sigstream.core.errors import ConfigError

        a = np.asarray(x, dtype=np.float64)
        if not 0 < self.cutoff_hz < rate / 2:
            raise ConfigError(f"cutoff must be in (0, {rate / 2}) Hz, got {self.cutoff_hz}")
        sos = signal.butter(self.order, self.cutoff_hz, "lowpass", fs=rate, output="sos")
        pad = min(3 * (2 * len(sos) + 1), a.shape[-1] - 1)
        return signal.sosfiltfilt(sos, a, axis=-1, padlen=max(pad, 0))


def pair_grids(rate: float, window: int) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """Each baseline's tuned parameter and its grid at ``rate`` (cut-offs as fractions of
    Nyquist; smoothing windows up to the model's window)."""
    nyq = rate / 2
    span = window / rate
    cut = tuple(round(nyq * f, 6) for f in (0.02, 0.04, 0.06, 0.08, 0.1, 0.14, 0.2, 0.3,
                                             0.4, 0.6, 0.8, 0.96))
    secs = tuple(s for s in (0.03, 0.05, 0.07, 0.09, 0.13, 0.19, 0.27, 0.39, 0.55)
                 if s < span)
    return {"wiener": ("window_s", secs), "butterworth": ("cutoff_hz", cut),
            "savgol": ("window_s", secs), "spectral_gate": ("prop_decrease",
                                                            (0.25, 0.5, 0.75, 1.0)),
            "butterworth_zero_phase": ("cutoff_hz", cut)}


def tuned_pair_baselines(val: VibrationSet, rate: float, window: int) -> list[dict]:
    """Every baseline with its parameter tuned on the validation windows (by mean PSNR)."""
    return eb.tune_all((eb.WienerBaseline(), eb.ButterworthBaseline(), eb.SavgolBaseline(),
                        eb.SpectralGateBaseline(), ZeroPhaseLowpass()), pair_grids(rate, window),
                       val.lq.astype(np.float64), val.hq, rate)


def _enhance(model: AugmentorStream, lq: np.ndarray, batch: int = 4096) -> np.ndarray:
    net = model.net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(lq), batch):
            x = torch.from_numpy(np.ascontiguousarray(lq[i:i + batch], np.float32))
            out.append(net(x).reconstruction.numpy())
    return np.concatenate(out) if out else np.zeros_like(lq)


def _stream(model: AugmentorStream, low: np.ndarray, high: np.ndarray, bases: list[dict],
            rate: float, window: int) -> dict:
    """(T, C) held-out stretch: the model streamed, the baselines on the whole stretch."""
    lat = model.latency
    x = torch.from_numpy(np.ascontiguousarray(low.T[:, :, None], np.float32))  # (C, T, 1)
    with torch.no_grad():
        y = model(x)[:, lat:, 0].numpy()  # output t estimates input t - latency
    n = y.shape[1]
    ref, noisy = frame(high.T[:, :n], window, window), frame(low.T[:, :n], window, window)
    ref, noisy = ref.reshape(-1, window), noisy.reshape(-1, window)
    res: dict[str, Any] = {
        "latency_samples": lat, "latency_s": lat / rate, "frames": int(ref.shape[0]),
        "model": summarize(ref, frame(y, window, window).reshape(-1, window), noisy),
        "noisy_input": summarize(ref, noisy, noisy), "baselines": {}}
    for b in bases:
        if b["baseline"] is None:
            continue
        yb = b["baseline"](low.T.astype(np.float64), rate)[:, :n]
        res["baselines"][b["name"]] = summarize(
            ref, frame(yb, window, window).reshape(-1, window), noisy)
    return res


def uncertainty_report(model: AugmentorStream, test: VibrationSet, val: VibrationSet,
                       passes: int, seed: int = 0) -> dict:
    """MC-dropout coverage on ``test``, raw and calibrated (the checkpoint's calibration, or
    one fitted now on ``val``), with reliability curves."""
    from sigstream.models.augmentor.train import calibrate, mc_windows
    from sigstream.models.calibration import Calibration, coverage, reliability

    stored = (getattr(model, "meta", {}) or {}).get("calibration")
    if stored and int(stored.get("passes", -1)) == int(passes):
        cal_dict, origin = stored, ("the checkpoint's (fitted on the validation windows "
                                    "after training)")
    else:  # the spread of n passes depends on n: fit for this n
        cal_dict = calibrate(model, val, passes, seed=seed + 1)
        origin = ("fitted now on the validation windows: " + (
            f"the checkpoint's is for {stored.get('passes')} passes" if stored
            else "none in the checkpoint"))
    cal = Calibration.from_dict(cal_dict)
    mean, std = mc_windows(model, test.lq, passes, seed)
    return {
        "passes": passes, "mean_std": float(np.mean(std)),
        "coverage_2sigma": coverage(mean, std, test.hq, 0.9544997361036416),
        "coverage_95_raw": coverage(mean, std, test.hq, 0.95),
        "coverage_95_calibrated": coverage(mean, std, test.hq, 0.95, cal),
        "target_coverage_95": [0.90, 0.98],
        "calibration": {"origin": origin, "scale_95": cal.scale, "n": cal.n,
                        "passes": cal_dict.get("passes")},
        "reliability_raw": reliability(mean, std, test.hq),
        "reliability_calibrated": reliability(mean, std, test.hq, calibration=cal),
        "mc_mean": summarize(test.hq, mean, test.lq),
    }


def evaluate_on_pairs(model: AugmentorStream, pairs: SensorPairs, *, uncertainty: int = 0,
                      stream: bool = True, mc_seed: int = 0) -> dict:
    """All figures on the held-out last 30 % of ``pairs`` (module docstring); JSON-ready."""
    from sigstream.core.errors import InputError

    w = model.net.config.window
    rate = float(pairs.rate if pairs.rate is not None else model.net.config.sample_rate)
    if pairs.rate is not None and abs(pairs.rate - model.net.config.sample_rate) > 1e-9:
        raise InputError(f"--data is at {pairs.rate:g} Hz but the checkpoint was trained at "
                         f"{model.net.config.sample_rate:g} Hz; resample the pair or train "
                         f"on this rate")
    if pairs.length < min_samples(w):
        raise InputError(f"--data: the pair is too short: {pairs.length} samples; need at "
                         f"least {min_samples(w)} for {w}-sample windows")
    b = split_bounds(pairs.length)
    (va, vz), (ta, tz) = b["val"], b["test"]
    val = pair_windows(pairs.low[va:vz], pairs.high[va:vz], w, max(w // 2, 1))
    test = pair_windows(pairs.low[ta:tz], pairs.high[ta:tz], w, w)
    t0 = time.perf_counter()
    rec = _enhance(model, test.lq)
    per_window_ms = 1000 * (time.perf_counter() - t0) / max(test.size, 1)
    result: dict[str, Any] = {
        "arch": "augmentor", "task": "pairs", "data": pairs.source,
        "sample_rate": rate, "window": w, "hop": model.hop,
        "latency_samples": model.latency, "latency_s": model.latency / rate,
        "channels": pairs.channels, "samples": pairs.length,
        "split": {k: list(v) for k, v in b.items()},
        "test_windows": test.size, "val_windows": val.size,
        "reference": "the 'high' recording (held-out last 30 %)",
        "model": summarize(test.hq, rec, test.lq),
        "noisy_input": summarize(test.hq, test.lq, test.lq),
        "model_ms_per_window": per_window_ms,
    }
    trained_on = (getattr(model, "meta", {}) or {}).get("pairs")
    if trained_on:
        result["trained_on"] = trained_on.get("source")
    bases = tuned_pair_baselines(val, rate, w)
    score_baselines(result, bases, test, rate)
    result["psnr_over_input_db"] = result["model"]["psnr"] - result["noisy_input"]["psnr"]
    result["target_margin_db"] = TARGET_MARGIN_DB
    result["target_met"] = bool(result["psnr_margin_db"] >= TARGET_MARGIN_DB)
    if uncertainty:
        result["uncertainty"] = uncertainty_report(model, test, val, int(uncertainty), mc_seed)
    if stream:
        result["stream"] = _stream(model, pairs.low[ta:tz], pairs.high[ta:tz], bases, rate, w)
    return result


def pairs_table(result: dict) -> str:
    """A plain-text table of the headline figures."""
    lines = [f"held-out last 30 % of {result['data']}: {result['test_windows']} windows of "
             f"{result['window']} samples at {result['sample_rate']:g} Hz "
             f"({result['channels']} channel(s) pooled); reference = the 'high' recording",
             *method_lines(result, "degraded input", 32, "tuned on validation", "g")]
    lines.append(f"PSNR margin over the best baseline ({result['best_baseline']}): "
                 f"{result['psnr_margin_db']:+.2f} dB (target >= {result['target_margin_db']:g}"
                 f" dB: {'met' if result['target_met'] else 'NOT met'}); over the input "
                 f"{result['psnr_over_input_db']:+.2f} dB")
    if "uncertainty" in result:
        lines.append(uncertainty_line(result["uncertainty"]))
    if "stream" in result:
        s = result["stream"]
        best_s = max(s["baselines"].items(), key=lambda kv: kv[1]["psnr"], default=None)
        lines.append(
            f"held-out stream (through OverlapCrossfade, latency {s['latency_samples']} "
            f"samples = {s['latency_s']:.2f} s; baselines on the continuous signal): PSNR "
            f"{s['model']['psnr']:.2f} dB, input {s['noisy_input']['psnr']:.2f} dB"
            + (f", best baseline {best_s[0]} {best_s[1]['psnr']:.2f} dB" if best_s else ""))
    return "\n".join(lines)


def method_lines(result: dict, input_label: str, width: int, tuned: str,
                 param_format: str = "") -> list[str]:
    """The rows of an augmentor table: header, the model, the input, every baseline with
    the parameters it was tuned to (``param_format``: their format spec), then the
    baselines that were skipped and why."""
    rows = [("SensorAugmentor", result["model"], "-"), (input_label, result["noisy_input"], "-")]
    for name, v in result["baselines"].items():
        if "skipped" not in v:
            rows.append((name + (" (causal)" if v["causal"] else ""), v,
                         ", ".join(f"{k}={format(p, param_format)}"
                                   for k, p in v["param"].items())))
    lines = [f"{'method':<{width}}{'PSNR dB':>9}{'SSIM':>8}{'SNR dB':>8}{'SNRi dB':>9}"
             f"{'RMSE':>8}  {tuned}"]
    for name, v, p in rows:
        lines.append(f"{name:<{width}}{v['psnr']:>9.2f}{v['ssim']:>8.3f}{v['snr']:>8.2f}"
                     f"{v['snr_improvement']:>9.2f}{v['rmse']:>8.4f}  {p}")
    lines += [f"{name}: {v['skipped']}" for name, v in result["baselines"].items()
              if "skipped" in v]
    return lines


def uncertainty_line(u: dict) -> str:
    return (f"MC dropout ({u['passes']} passes): mean std {u['mean_std']:.4f}; coverage of "
            f"the nominal 95 % interval: raw {100 * u['coverage_95_raw']:.1f} %, calibrated "
            f"{100 * u['coverage_95_calibrated']:.1f} % (sigma x "
            f"{u['calibration']['scale_95']:.2f}, {u['calibration']['origin']}); raw ±2σ "
            f"{100 * u['coverage_2sigma']:.1f} %; PSNR of the MC mean "
            f"{u['mc_mean']['psnr']:.2f} dB")


def score_baselines(result: dict, bases: list[dict], test: Any, rate: float) -> None:
    """Score every tuned baseline (``tuned_baselines``' dicts) on ``test`` (``.lq``,
    ``.hq``) into ``result["baselines"]``, and the best of them against
    ``result["model"]``: ``best_baseline`` and ``psnr_margin_db``."""
    result["baselines"] = {}
    for b in bases:
        if b["baseline"] is None:
            result["baselines"][b["name"]] = {"causal": b["causal"], "skipped": b["skipped"]}
            continue
        y = b["baseline"](test.lq.astype(np.float64), rate)
        result["baselines"][b["name"]] = {"causal": b["causal"], "param": b["param"],
                                          **summarize(test.hq, y, test.lq)}
    ran = {k: v for k, v in result["baselines"].items() if "psnr" in v}
    best = max(ran, key=lambda k: ran[k]["psnr"])
    result["best_baseline"] = best
    result["psnr_margin_db"] = result["model"]["psnr"] - ran[best]["psnr"]
