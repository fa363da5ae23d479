"""Figures for ``sigstream eval extractor --figures DIR`` (PNG, matplotlib Agg).

T: time, K: components.
"""

from __future__ import annotations

import os

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_figures(model, data, folder: str, seconds: float = 2.0,  # noqa: ANN001
                  bands: list | None = None) -> list[str]:
    """Five figures on the first test sequence of ``data`` (the evaluation's
    ``EvalData``: train and test sets); returns the file paths.

    ``bands``: the baseline's tuned band-passes (``evaluate``'s result) to avoid tuning again.
    """
    import torch

    from sigstream.models.baselines import bandpass

    plt = _plt()
    test = data.test
    preset = test.preset
    fs = test.sample_rate
    freqs = test.freqs
    gain = float(len(freqs))
    if bands is None:
        bands = bandpass.tune(freqs, data.train.mixture, data.train.targets, fs, gain)
    model.eval()
    with torch.inference_mode():
        pred = model(torch.from_numpy(test.inputs[:1])).numpy()[0]  # (T, K)
    base = bandpass.apply(bands, test.mixture[:1], fs, gain)[0]
    target = test.targets[0]
    mix = test.mixture[0]
    n = min(len(mix), int(seconds * fs))
    t = np.arange(len(mix)) / fs
    files: list[str] = []

    def save(fig, name: str) -> None:
        path = os.path.join(folder, name)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        files.append(path)

    k1 = 1 if len(freqs) > 1 else 0
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(t[:n], mix[:n], color="0.75", lw=0.8, label="mixture S(t)")
    ax.plot(t[:n], target[:n, k1], color="tab:green", lw=2, label="target")
    ax.plot(t[:n], pred[:n, k1], color="tab:blue", lw=1.2, label="model")
    ax.plot(t[:n], base[:n, k1], color="tab:orange", lw=1, ls="--", label="band-pass")
    ax.set(title=f"{freqs[k1]:g} Hz component ({preset} preset, first test sequence)",
           xlabel="time (s)", ylabel="amplitude")
    ax.legend(loc="upper right", ncol=4, fontsize=8)
    save(fig, "extractor_one_frequency.png")

    fig, axes = plt.subplots(2, 2, figsize=(12, 6), sharex=True)
    for k, ax in enumerate(axes.ravel()[: len(freqs)]):
        ax.plot(t[:n], target[:n, k], color="tab:green", lw=2, label="target")
        ax.plot(t[:n], pred[:n, k], color="tab:blue", lw=1.2, label="model")
        ax.plot(t[:n], base[:n, k], color="tab:orange", lw=1, ls="--", label="band-pass")
        mse = float(np.mean((pred[:, k] - target[:, k]) ** 2))
        ax.set_title(f"{freqs[k]:g} Hz  (model MSE {mse:.4f})", fontsize=10)
    axes[0, 0].legend(fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.suptitle(f"All components ({preset} preset)")
    fig.tight_layout()
    save(fig, "extractor_all_frequencies.png")

    hist = getattr(model, "meta", {}).get("history") or []
    fig, ax = plt.subplots(figsize=(8, 4))
    if hist:
        ep = [h["epoch"] for h in hist]
        ax.semilogy(ep, [h["train_loss"] for h in hist], label="train MSE")
        ax.semilogy(ep, [h["val_loss"] for h in hist], label="validation MSE")
        ax.set(xlabel="epoch", ylabel="MSE", title="Training curves")
        ax2 = ax.twinx()
        ax2.semilogy(ep, [h["lr"] for h in hist], color="0.5", ls=":", label="learning rate")
        ax2.set_ylabel("learning rate")
        lines = ax.get_lines() + ax2.get_lines()
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8)
    else:
        ax.text(0.5, 0.5, "no training history in this checkpoint", ha="center")
    save(fig, "extractor_training_curves.png")

    fig, axes = plt.subplots(1, len(freqs), figsize=(3.2 * len(freqs), 3), sharey=True)
    spec_f = np.fft.rfftfreq(len(mix), 1 / fs)
    lim = spec_f <= max(freqs) * 1.6
    for k, ax in enumerate(np.atleast_1d(axes)):
        for series, label, style in ((target[:, k], "target", "-"), (pred[:, k], "model", "-"),
                                     (base[:, k], "band-pass", "--")):
            mag = np.abs(np.fft.rfft(series)) / len(series)
            ax.semilogy(spec_f[lim], mag[lim] + 1e-9, ls=style, lw=1, label=label)
        ax.set_title(f"{freqs[k]:g} Hz", fontsize=10)
        ax.set_xlabel("frequency (Hz)")
    np.atleast_1d(axes)[0].set_ylabel("|FFT| / N")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle("Spectrum of output vs target")
    fig.tight_layout()
    save(fig, "extractor_fft.png")

    fig, axes = plt.subplots(1, len(freqs), figsize=(3.2 * len(freqs), 3), sharey=True)
    for k, ax in enumerate(np.atleast_1d(axes)):
        e_m = pred[:, k] - target[:, k]
        e_b = base[:, k] - target[:, k]
        bins = np.linspace(-1.5, 1.5, 61)
        ax.hist(e_b, bins=bins, alpha=0.5, color="tab:orange", label="band-pass")
        ax.hist(e_m, bins=bins, alpha=0.6, color="tab:blue", label="model")
        ax.set_title(f"{freqs[k]:g} Hz", fontsize=10)
        ax.set_xlabel("output - target")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle("Error distribution")
    fig.tight_layout()
    save(fig, "extractor_errors.png")
    return files
