"""Evaluation of the causal enhancer on held-out audio-like data, against causal baselines.

N: clips, T: samples, C: channels (1).

:func:`evaluate` draws held-out clips (phrases and voices never used in training; see
:func:`sigstream.models.enhancer.data.heldout_clips`) at each input SNR in ``snrs`` and
reports, per SNR and averaged: input SNR, output SNR and SNR improvement of the model
and of every causal classical baseline, measured on the same clips in the same run. All
outputs are compared with the clean clip sample for sample, without delay compensation:
a causal system has to deliver the clean signal now, so a filter's group delay counts
as error for it as it would for the model (whose latency is 0).

Baselines (all causal, zero lookahead):

* ``butterworth_bandpass``: a causal Butterworth band-pass (``scipy.signal.butter`` +
  ``sosfilt``): a high-pass that removes drift and hum and a low-pass that removes
  high-frequency noise. Order (2, 4) and both cut-offs (each possibly off) are chosen on
  a grid for the best mean SNR improvement on a separate tuning set (same generator,
  another seed), so the baseline gets its best fixed setting.
* every baseline of :mod:`sigstream.models.baselines.enhance` whose ``causal`` attribute
  is true (the Butterworth low-pass with drift removal), with its low-pass cut-off and
  drift high-pass tuned on the same tuning set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import signal

from sigstream.models.enhancer.data import heldout_clips
from sigstream.models.training.family import Evaluation, load_model, one_checkpoint

__all__ = ["evaluate", "write_figures", "tune_butterworth", "butterworth_baseline",
           "CausalEvalConfig", "run", "table"]

_ORDERS = (2, 4)
_LOWPASS = (1500.0, 2500.0, 3500.0, 5000.0, None)
_HIGHPASS = (None, 40.0, 80.0, 150.0)


def _snr(clean: np.ndarray, est: np.ndarray) -> np.ndarray:
    """(N, T) -> (N,) SNR in dB."""
    err = np.sum((est - clean) ** 2, axis=-1)
    return 10 * np.log10(np.sum(clean**2, axis=-1) / np.maximum(err, 1e-20))


def butterworth_baseline(x: np.ndarray, rate: float, order: int, low: float | None,
                         high: float | None) -> np.ndarray:
    """Causal Butterworth: high-pass at ``low`` and/or low-pass at ``high`` (Hz); (N, T)."""
    y = np.asarray(x, dtype=np.float64)
    if low:
        y = signal.sosfilt(signal.butter(order, low, "highpass", fs=rate, output="sos"), y,
                           axis=-1)
    if high:
        y = signal.sosfilt(signal.butter(order, high, "lowpass", fs=rate, output="sos"), y,
                           axis=-1)
    return y


def tune_butterworth(noisy: np.ndarray, clean: np.ndarray, rate: float) -> dict:
    """The (order, low, high) with the best mean SNR improvement on (N, T) tuning clips."""
    base = _snr(clean, noisy)
    best: dict = {"order": 0, "low": None, "high": None, "gain_db": 0.0}  # identity
    for order in _ORDERS:
        for low in _HIGHPASS:
            for high in _LOWPASS:
                if low is None and high is None:
                    continue
                gain = float(np.mean(_snr(clean, butterworth_baseline(
                    noisy, rate, order, low, high)) - base))
                if gain > best["gain_db"]:
                    best = {"order": order, "low": low, "high": high, "gain_db": gain}
    return best


def _run_model(model: Any, noisy: np.ndarray, uncertainty: int, batch: int = 8,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, T) -> enhanced (N, T) and, with uncertainty > 0, its MC-dropout std."""
    outs, stds = [], []
    for i in range(0, len(noisy), batch):
        x = torch.from_numpy(np.ascontiguousarray(noisy[i:i + batch, :, None], np.float32))
        mean, std = model.enhance(x, uncertainty=uncertainty, seed=seed + i)
        outs.append(mean[..., 0].numpy())
        if std is not None:
            stds.append(std[..., 0].numpy())
    return np.concatenate(outs), (np.concatenate(stds) if stds else None)


def _helper_baselines(tune_x: np.ndarray, tune_y: np.ndarray, rate: float) -> dict[str, Any]:
    """The causal baselines of :mod:`sigstream.models.baselines.enhance` (when present), each
    tuned on the tuning clips: name -> (callable (N, T) -> (N, T), setting)."""
    try:
        from sigstream.models.baselines import enhance as eb
    except ImportError:
        return {}
    base = _snr(tune_y, tune_x)

    def score(target: np.ndarray, est: np.ndarray) -> float:
        return float(np.mean(_snr(target, est) - base))

    found: dict[str, Any] = {}
    for b in eb.causal_baselines(eb.default_baselines(rate)):
        if isinstance(b, eb.ButterworthBaseline):  # tune the low-pass, then the drift high-pass
            b, _ = eb.tune(b, "cutoff_hz", (1500.0, 2500.0, 3500.0, 5000.0, 7000.0),
                           tune_x, tune_y, rate, score)
            b, _ = eb.tune(b, "drift_hz", (0.0, 0.5, 20.0, 40.0, 80.0, 150.0),
                           tune_x, tune_y, rate, score)
        name = str(getattr(b, "name", type(b).__name__))
        found[name] = (lambda x, b=b: b(x, rate), _setting(b))
    return found


def _setting(b: Any) -> dict:
    import dataclasses

    if dataclasses.is_dataclass(b) and not isinstance(b, type):
        return {k: v for k, v in dataclasses.asdict(b).items() if k != "name"}
    return {}


def _stats(clean: np.ndarray, noisy: np.ndarray, est: np.ndarray, levels: np.ndarray,
           snrs: tuple[float, ...], noises: np.ndarray | None = None) -> dict:
    s_in, s_out = _snr(clean, noisy), _snr(clean, est)

    def row(k: np.ndarray) -> dict:
        return {"clips": int(k.sum()), "snr_in_db": float(s_in[k].mean()),
                "snr_out_db": float(s_out[k].mean()),
                "snr_improvement_db": float((s_out[k] - s_in[k]).mean())}

    out = {"per_snr": {f"{s:g}": row(levels == s) for s in snrs},
           "snr_in_db": float(s_in.mean()), "snr_out_db": float(s_out.mean()),
           "snr_improvement_db": float((s_out - s_in).mean())}
    if noises is not None:
        out["per_noise"] = {str(n): row(noises == n) for n in sorted(set(noises.tolist()))}
    return out


def evaluate(model: Any, *, seed: int = 0, snrs: tuple[float, ...] = (0.0, 5.0, 10.0),
             uncertainty: int = 0, per_snr: int = 16, seconds: float = 2.0,
             speech: bool = True) -> dict:
    """Model and causal baselines on held-out clips at each input SNR in ``snrs``.

    Returns a JSON-ready dict: ``model`` and ``baselines[name]`` each with ``snr_in_db``,
    ``snr_out_db``, ``snr_improvement_db`` (means over all clips), ``per_snr`` and
    ``per_noise`` (the same per noise kind);
    ``best_baseline``, ``margin_db`` (model improvement minus the best baseline's),
    ``target_margin_db`` (3) and ``meets_target``; with ``uncertainty > 0`` the mean
    MC-dropout std and the fraction of clean samples inside the ±2σ band.
    """
    rate = float(model.sample_rate or 16000.0)
    noisy, clean, info = heldout_clips(seed, snrs, per_snr, seconds, rate, speech)
    noisy, clean = noisy[..., 0].astype(np.float64), clean[..., 0].astype(np.float64)
    levels = np.array([i["snr_db"] for i in info])
    kinds = np.array([i["noise"] for i in info])
    tune_x, tune_y, _ = heldout_clips(seed + 500, snrs, max(4, per_snr // 2), seconds, rate,
                                      speech)
    bw = tune_butterworth(tune_x[..., 0].astype(np.float64), tune_y[..., 0].astype(np.float64),
                          rate)
    enhanced, std = _run_model(model, noisy.astype(np.float32), uncertainty, seed=seed)
    result: dict = {
        "data": {"seed": seed, "snrs": list(snrs), "clips_per_snr": per_snr,
                 "seconds": seconds, "sample_rate": rate,
                 "sources": sorted({i["source"] for i in info}),
                 "noises": sorted({i["noise"] for i in info})},
        "latency_samples": int(model.latency), "lookahead_samples": int(model.latency),
        "model": _stats(clean, noisy, enhanced.astype(np.float64), levels, snrs, kinds),
        "baselines": {},
    }
    bw_out = (butterworth_baseline(noisy, rate, bw["order"], bw["low"], bw["high"])
              if bw["order"] else noisy)
    result["baselines"]["butterworth_bandpass"] = {
        **_stats(clean, noisy, bw_out, levels, snrs, kinds),
        "setting": {k: bw[k] for k in ("order", "low", "high")}, "causal": True}
    helpers = _helper_baselines(tune_x[..., 0].astype(np.float64),
                                tune_y[..., 0].astype(np.float64), rate)
    for name, (fn, setting) in helpers.items():
        out = np.asarray(fn(noisy), np.float64)
        result["baselines"][name] = {**_stats(clean, noisy, out, levels, snrs, kinds),
                                     "setting": setting, "causal": True}
    scored = {k: v["snr_improvement_db"] for k, v in result["baselines"].items()
              if "snr_improvement_db" in v}
    best = max(scored, key=lambda k: scored[k])
    result["best_baseline"] = best
    result["margin_db"] = result["model"]["snr_improvement_db"] - scored[best]
    result["target_margin_db"] = 3.0
    result["meets_target"] = bool(result["margin_db"] >= 3.0)
    if std is not None:
        from sigstream.models.calibration import coverage, fit_calibration, reliability

        inside = np.abs(clean - enhanced) <= 2 * std
        # calibrated on the baselines' tuning clips (another seed, never scored)
        cal_mean, cal_std = _run_model(model, tune_x[..., 0].astype(np.float32), uncertainty,
                                       seed=seed + 500)
        assert cal_std is not None
        cal = fit_calibration(cal_mean, cal_std, tune_y[..., 0])
        result["uncertainty"] = {
            "passes": int(uncertainty), "mean_std": float(std.mean()),
            "coverage_2sigma": float(inside.mean()),
            "coverage_95_raw": coverage(enhanced, std, clean, 0.95),
            "coverage_95_calibrated": coverage(enhanced, std, clean, 0.95, cal),
            "calibration": cal.to_dict(),
            "reliability_raw": reliability(enhanced, std, clean),
            "reliability_calibrated": reliability(enhanced, std, clean, calibration=cal)}
    return result


def write_figures(model: Any, out_dir: str, *, seed: int = 0, uncertainty: int = 0,
                  snr_db: float = 5.0, speech: bool = True) -> list[str]:
    """PNG figures of one held-out clip at ``snr_db``: waveforms (low / clean / enhanced,
    with a ±2σ band when ``uncertainty > 0``), spectrograms of the three, and the
    training curves when the model carries its training history. Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    rate = float(model.sample_rate or 16000.0)
    noisy, clean, info = heldout_clips(seed, (snr_db,), 2, 2.0, rate, speech)
    k = next((i for i, d in enumerate(info) if d["source"] == "speech"), 0)
    x, c = noisy[k:k + 1, :, 0], clean[k, :, 0]
    y, std = _run_model(model, x, uncertainty, seed=seed)
    y = y[0]
    t = np.arange(len(c)) / rate
    paths = []

    fig, axes = plt.subplots(2, 1, figsize=(11, 6.5), layout="constrained")
    zoom = slice(int(0.8 * rate), int(0.85 * rate))
    for ax, sl in ((axes[0], slice(None)), (axes[1], zoom)):
        ax.plot(t[sl], x[0, sl], lw=0.6, color="0.6", label="low quality (input)")
        ax.plot(t[sl], c[sl], lw=0.9, color="k", label="clean")
        ax.plot(t[sl], y[sl], lw=0.9, color="C3", label="enhanced (causal)")
        if std is not None:
            ax.fill_between(t[sl], y[sl] - 2 * std[0, sl], y[sl] + 2 * std[0, sl],
                            color="C3", alpha=0.25, lw=0, label="±2σ (MC dropout)")
        ax.set(xlabel="time (s)", ylabel="amplitude (full scale 1)")
    s_in, s_out = float(_snr(c[None], x)[0]), float(_snr(c[None], y[None])[0])
    axes[0].set_title(f"{info[k]['source']} in {info[k]['noise']} noise at {snr_db:g} dB: "
                      f"SNR {s_in:.1f} -> {s_out:.1f} dB")
    axes[1].set_title("50 ms zoom")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8,
               frameon=False)
    paths.append(os.path.join(out_dir, "enhancer_waveforms.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True, layout="constrained")
    for ax, sig, title in zip(axes, (x[0], c, y), ("low quality (input)", "clean",
                                                   "enhanced (causal)"), strict=True):
        f, tt, s = signal.spectrogram(sig, fs=rate, nperseg=256, noverlap=192)
        mesh = ax.pcolormesh(tt, f, 10 * np.log10(s + 1e-12), shading="auto", vmin=-110,
                             vmax=-40)
        ax.set(title=title, xlabel="time (s)", ylabel="frequency (Hz)")
        fig.colorbar(mesh, ax=ax, label="power (dB)", pad=0.01)
    fig.suptitle(f"Spectrograms of the {snr_db:g} dB clip")
    paths.append(os.path.join(out_dir, "enhancer_spectrograms.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    history = (getattr(model, "meta", None) or {}).get("history")
    if history:
        fig, ax = plt.subplots(figsize=(7, 4))
        ep = [h["epoch"] for h in history]
        ax.plot(ep, [h["train_snr_db"] for h in history], label="train SNR out")
        ax.plot(ep, [h["val_snr_db"] for h in history], label="validation SNR out")
        ax.plot(ep, [h["val_snr_in_db"] for h in history], "--", label="validation SNR in")
        ax.set(xlabel="epoch", ylabel="SNR (dB)", title="Causal enhancer training")
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        fig.tight_layout()
        paths.append(os.path.join(out_dir, "enhancer_training.png"))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


# -- sigstream eval enhancer --arch causal ----------------------------------------------------
@dataclass(frozen=True)
class CausalEvalConfig:
    """What ``sigstream eval enhancer --arch causal`` takes besides ``--checkpoint``/
    ``--json``/``--figures``."""

    uncertainty: int = field(default=0, metadata={
        "help": "Monte-Carlo dropout with N passes: mean spread and ±2σ coverage", "low": 0,
        "metavar": "N"})
    seed: int = field(default=0, metadata={"help": "held-out data seed"})

    def validate(self) -> None:
        from sigstream.models.training.config import check

        check(self)


def run(cfg: CausalEvalConfig, checkpoints: tuple[str, ...],
        figures: str | None) -> Evaluation:
    """The checkpoint (or the shipped weights) and the causal baselines on held-out clips;
    figures into ``figures`` when given."""
    model = load_model(one_checkpoint(checkpoints, "enhancer"), "audio-enhancer", "causal")
    res = evaluate(model, seed=cfg.seed, uncertainty=cfg.uncertainty)
    files = write_figures(model, figures, seed=cfg.seed, uncertainty=cfg.uncertainty) \
        if figures else []
    return Evaluation(res, table(res), files)


def table(res: dict) -> str:
    """The SNR-improvement table of :func:`evaluate`'s result."""
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
                     f"clean within ±2σ {100 * u['coverage_2sigma']:.1f}%; nominal 95 % "
                     f"interval covers {100 * u['coverage_95_raw']:.1f}% raw, "
                     f"{100 * u['coverage_95_calibrated']:.1f}% calibrated (split conformal "
                     f"on other clips, sigma x {u['calibration']['scale_95']:.2f})")
    return "\n".join(lines)
