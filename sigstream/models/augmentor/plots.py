"""Figures for ``sigstream eval enhancer --arch augmentor --figures DIR`` (PNG, matplotlib Agg).

N: windows, W: window length, T: time.

* ``augmentor_examples.png`` — test windows: low-quality input, high-quality target and the
  enhanced output (Monte-Carlo dropout mean) with its ±2σ band;
* ``augmentor_spectrograms.png`` — spectrograms of a long stream: low-quality,
  high-quality and enhanced (streamed through ``OverlapCrossfade``, latency compensated);
* ``augmentor_training.png`` — training curves (losses, validation PSNR, learning rate) from
  the history stored in the checkpoint, when it has one;
* ``augmentor_baselines.png`` — PSNR and SSIM of the model, the input and every baseline.

With ``--data PAIRS`` (:func:`write_pairs_figures`): the examples, baselines and training
figures from the pair's held-out last 30 %, and ``augmentor_reliability.png`` (nominal vs
empirical coverage of the MC-dropout intervals, raw and calibrated). On the synthetic task
the reliability curves are in the JSON result (``uncertainty.reliability_*``).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from sigstream.models.augmentor.model import AugmentorStream
from sigstream.models.uncertainty import mc_dropout

__all__ = ["write_augmentor_figures", "write_pairs_figures", "reliability_figure"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _examples(model: AugmentorStream, lq: np.ndarray, hq: np.ndarray, rate: float,
              passes: int, path: str, scale_95: float | None = None) -> None:
    plt = _plt()
    net = model.net
    x = torch.from_numpy(np.ascontiguousarray(lq, np.float32))
    mean, std = mc_dropout(lambda v: net(v).reconstruction, x, max(passes, 1), module=net,
                           seed=0)
    mean, std = mean.numpy(), std.numpy()
    t = np.arange(lq.shape[1]) / rate
    fig, axes = plt.subplots(len(lq), 1, figsize=(10, min(2.6 * len(lq) + 0.8, 10.0)),
                             sharex=True, squeeze=False, layout="constrained")
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(t, lq[i], color="0.6", lw=0.8, label="low quality (input)")
        ax.plot(t, hq[i], color="C0", lw=1.2, label="high quality (target)")
        ax.plot(t, mean[i], color="C3", lw=1.2, ls="--", label="enhanced (MC mean)")
        if scale_95 is None:
            half, what = 2 * std[i], f"±2σ ({passes} MC-dropout passes)"
        else:
            half = 1.959964 * scale_95 * std[i]
            what = f"calibrated 95 % interval (σ x {scale_95:.3g}, {passes} passes)"
        ax.fill_between(t, mean[i] - half, mean[i] + half, color="C3", alpha=0.25,
                        label=what)
        ax.grid(alpha=0.3)
        ax.set(xlabel="time (s)", ylabel="amplitude (a.u.)")
        ax.set_title(f"test window {i + 1}", fontsize=9, loc="left")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("SensorAugmentor on test windows")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _spectrograms(model: AugmentorStream, lq: np.ndarray, hq: np.ndarray, rate: float,
                  path: str) -> None:
    from scipy import signal

    plt = _plt()
    with torch.no_grad():
        y = model(torch.from_numpy(lq)[None, :, None])[0, :, 0].numpy()
    lat = model.latency
    y = y[lat:]
    n = len(y)
    sigs = [("low quality (input)", lq[:n]), ("high quality (target)", hq[:n]),
            (f"enhanced (streamed, latency {lat} samples compensated)", y)]
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    vmin = vmax = None
    for ax, (title, s) in zip(axes, sigs, strict=True):
        f, tt, sxx = signal.spectrogram(s, fs=rate, nperseg=128, noverlap=96)
        db = 10 * np.log10(sxx + 1e-12)
        if vmin is None:
            vmax = float(np.max(db))
            vmin = vmax - 60
        mesh = ax.pcolormesh(tt, f, db, shading="auto", vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set(xlabel="time (s)", ylabel="frequency (Hz)")
        fig.colorbar(mesh, ax=ax, label="power (dB)")
    fig.suptitle("Spectrograms of a long stream")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _training(history: list[dict], path: str) -> None:
    plt = _plt()
    ep = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(ep, [r["train_loss"] for r in history], label="train loss")
    axes[0].plot(ep, [r["val_loss"] for r in history], label="validation loss")
    if "val_recon" in history[0]:
        axes[0].plot(ep, [r["val_recon"] for r in history], ls="--",
                     label="validation reconstruction loss")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8, loc="best")
    axes[0].set_title("losses", fontsize=9)
    axes[0].set(xlabel="epoch", ylabel="loss (a.u., log scale)")
    if "val_psnr" in history[0]:
        axes[1].plot(ep, [r["val_psnr"] for r in history], color="C2")
    else:
        axes[1].text(0.5, 0.5, "no PSNR in this history", ha="center",
                     transform=axes[1].transAxes)
    axes[1].set_title("validation PSNR", fontsize=9)
    axes[1].set(xlabel="epoch", ylabel="PSNR (dB)")
    axes[2].plot(ep, [r["lr"] for r in history], color="C4")
    axes[2].set_yscale("log")
    axes[2].set_title("learning rate", fontsize=9)
    axes[2].set(xlabel="epoch", ylabel="learning rate (log scale)")
    fig.suptitle("SensorAugmentor training")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reliability_figure(curves: dict[str, dict], path: str, title: str) -> None:
    """Nominal vs empirical coverage: one line per entry of ``curves`` (label ->
    ``{"nominal": [...], "empirical": [...]}``), the diagonal and the 0.90-0.98 band at
    the nominal 95 %."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1, label="perfect calibration")
    for i, (label, c) in enumerate(curves.items()):
        ax.plot(c["nominal"], c["empirical"], marker="o", ms=3.5, color=f"C{i}", label=label)
    ax.errorbar([0.95], [0.94], yerr=[[0.04], [0.04]], fmt="none", ecolor="C3", capsize=4,
                lw=1.5, label="target at 95 %: 0.90-0.98")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage of the central interval (fraction)")
    ax.set_ylabel("empirical coverage, held-out samples (fraction)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _reliability(result: dict, path: str, what: str) -> None:
    u = result["uncertainty"]
    reliability_figure(
        {f"MC dropout, raw (95 %: {u['coverage_95_raw']:.3f})": u["reliability_raw"],
         f"calibrated (95 %: {u['coverage_95_calibrated']:.3f})":
             u["reliability_calibrated"]},
        path, f"SensorAugmentor: MC-dropout intervals ({u['passes']} passes)\non {what}")


def _bars(result: dict, path: str) -> None:
    plt = _plt()
    names = ["SensorAugmentor", "input"]
    vals = [result["model"], result["noisy_input"]]
    for k, v in result["baselines"].items():
        if "psnr" in v:
            names.append(k.replace("_", " ") + (" (causal)" if v["causal"] else ""))
            vals.append(v)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, key, title, label in (
            (axes[0], "psnr", "PSNR (higher is better)", "PSNR (dB)"),
            (axes[1], "ssim", "SSIM (higher is better)", "SSIM (1 = identical to target)")):
        ax.bar(range(len(names)), [v[key] for v in vals],
               color=["C3"] + ["0.6"] + ["C0"] * (len(names) - 2))
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set(xlabel="method", ylabel=label)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("vibration test set" if result.get("task") != "pairs"
                 else "held-out last 30 % of the pair")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_augmentor_figures(model: AugmentorStream, folder: str, vib, splits,  # noqa: ANN001
                            result: dict | None = None, passes: int = 20,
                            examples: int = 3) -> list[str]:
    """Write the figures into ``folder`` from the evaluation's data (``vib``: the sensor
    model, ``splits``: its windows); returns their paths."""
    from sigstream.models.augmentor.data import generate_stream

    os.makedirs(folder, exist_ok=True)
    rate = vib.sample_rate
    files = []
    p = os.path.join(folder, "augmentor_examples.png")
    _examples(model, splits.test.lq[:examples], splits.test.hq[:examples], rate, passes, p)
    files.append(p)
    s = generate_stream(60.0, vib, seed=12345)
    p = os.path.join(folder, "augmentor_spectrograms.png")
    _spectrograms(model, s.lq, s.hq, rate, p)
    files.append(p)
    return files + _training_and_bars(model, result, folder)


def _training_and_bars(model: AugmentorStream, result: dict | None, folder: str) -> list[str]:
    """The training curves (if the checkpoint holds its history) and the baseline bars
    (with a result); the files written."""
    files = []
    history = (getattr(model, "meta", {}) or {}).get("history")
    if history:
        p = os.path.join(folder, "augmentor_training.png")
        _training(history, p)
        files.append(p)
    if result is not None:
        p = os.path.join(folder, "augmentor_baselines.png")
        _bars(result, p)
        files.append(p)
    return files


def write_pairs_figures(model: AugmentorStream, folder: str, pairs,  # noqa: ANN001
                        result: dict, passes: int = 20, examples: int = 3) -> list[str]:
    """The figures of an evaluation on the user's pair (its held-out last 30 %)."""
    from sigstream.models.augmentor.pairs import pair_windows, split_bounds

    os.makedirs(folder, exist_ok=True)
    w = model.net.config.window
    a, z = split_bounds(pairs.length)["test"]
    test = pair_windows(pairs.low[a:z], pairs.high[a:z], w, w)
    pick = np.linspace(0, test.size - 1, min(examples, test.size)).astype(int)
    files = []
    p = os.path.join(folder, "augmentor_examples.png")
    scale = result.get("uncertainty", {}).get("calibration", {}).get("scale_95")
    _examples(model, test.lq[pick], test.hq[pick], result["sample_rate"], passes, p, scale)
    files.append(p)
    files += _training_and_bars(model, result, folder)
    if "uncertainty" in result:
        p = os.path.join(folder, "augmentor_reliability.png")
        _reliability(result, p, "the held-out 30 % of the pair")
        files.append(p)
    return files
