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


def _grid(plt, panels: int, cols: int, cell: tuple[float, float], **kw):  # noqa: ANN001, ANN202
    """A grid of ``panels`` axes, at most ``cols`` a row, that fits a screen (16 x 10 in at
    most, the legend row included); cells past ``panels`` hidden. Returns the figure and
    the axes in reading order."""
    cols = max(1, min(cols, panels))
    rows = -(-panels // cols)
    size = (min(cell[0] * cols, 16.0), min(cell[1] * rows + 0.8, 10.0))
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, layout="constrained",
                             **kw)
    flat = list(axes.ravel())
    for ax in flat[panels:]:
        ax.set_visible(False)
    return fig, flat


def _legend_below(fig, ax) -> None:  # noqa: ANN001
    """The legend of ``ax``'s lines in one row under the panels (not over the data)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8,
               frameon=False)


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
        fig.savefig(path, dpi=110)  # constrained layout: everything inside the figure
        plt.close(fig)
        files.append(path)

    k1 = 1 if len(freqs) > 1 else 0
    amp = "amplitude (a.u.)"
    fig, ax = plt.subplots(figsize=(10, 4), layout="constrained")
    ax.plot(t[:n], mix[:n], color="0.75", lw=0.8, label="mixture S(t)")
    ax.plot(t[:n], target[:n, k1], color="tab:green", lw=2, label="target")
    ax.plot(t[:n], pred[:n, k1], color="tab:blue", lw=1.2, label="model")
    ax.plot(t[:n], base[:n, k1], color="tab:orange", lw=1, ls="--", label="band-pass")
    ax.set(title=f"{freqs[k1]:g} Hz component ({preset} preset, first test sequence)",
           xlabel="time (s)", ylabel=amp)
    _legend_below(fig, ax)
    save(fig, "extractor_one_frequency.png")

    fig, axes = _grid(plt, len(freqs), 2, (6.0, 3.0), sharex=True)
    for k, ax in enumerate(axes[: len(freqs)]):
        ax.plot(t[:n], target[:n, k], color="tab:green", lw=2, label="target")
        ax.plot(t[:n], pred[:n, k], color="tab:blue", lw=1.2, label="model")
        ax.plot(t[:n], base[:n, k], color="tab:orange", lw=1, ls="--", label="band-pass")
        mse = float(np.mean((pred[:, k] - target[:, k]) ** 2))
        ax.set_title(f"{freqs[k]:g} Hz  (model MSE {mse:.4f})", fontsize=10)
        ax.set(xlabel="time (s)", ylabel=amp)
    fig.suptitle(f"All components ({preset} preset)")
    _legend_below(fig, axes[0])
    save(fig, "extractor_all_frequencies.png")

    hist = getattr(model, "meta", {}).get("history") or []
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    ax.set(xlabel="epoch", ylabel="MSE (a.u.², log scale)", title="Training curves")
    if hist:
        ep = [h["epoch"] for h in hist]
        ax.semilogy(ep, [h["train_loss"] for h in hist], label="train MSE")
        ax.semilogy(ep, [h["val_loss"] for h in hist], label="validation MSE")
        ax2 = ax.twinx()
        ax2.semilogy(ep, [h["lr"] for h in hist], color="0.5", ls=":", label="learning rate")
        ax2.set_ylabel("learning rate (log scale)")
        lines = ax.get_lines() + ax2.get_lines()
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no training history in this checkpoint", ha="center",
                transform=ax.transAxes)
    save(fig, "extractor_training_curves.png")

    fig, axes = _grid(plt, len(freqs), 4, (3.4, 3.0), sharey=True)
    spec_f = np.fft.rfftfreq(len(mix), 1 / fs)
    lim = spec_f <= max(freqs) * 1.6
    for k, ax in enumerate(axes[: len(freqs)]):
        for series, label, style in ((target[:, k], "target", "-"), (pred[:, k], "model", "-"),
                                     (base[:, k], "band-pass", "--")):
            mag = np.abs(np.fft.rfft(series)) / len(series)
            ax.semilogy(spec_f[lim], mag[lim] + 1e-9, ls=style, lw=1, label=label)
        ax.set_title(f"{freqs[k]:g} Hz", fontsize=10)
        ax.set(xlabel="frequency (Hz)", ylabel="|FFT| / N (a.u.)")
    fig.suptitle("Spectrum of output vs target")
    _legend_below(fig, axes[0])
    save(fig, "extractor_fft.png")

    fig, axes = _grid(plt, len(freqs), 4, (3.4, 3.0), sharey=True)
    bins = np.linspace(-1.5, 1.5, 61)
    for k, ax in enumerate(axes[: len(freqs)]):
        e_m = pred[:, k] - target[:, k]
        e_b = base[:, k] - target[:, k]
        ax.hist(e_b, bins=bins, alpha=0.5, color="tab:orange", label="band-pass")
        ax.hist(e_m, bins=bins, alpha=0.6, color="tab:blue", label="model")
        ax.set_title(f"{freqs[k]:g} Hz", fontsize=10)
        ax.set(xlabel="error: output − target (a.u.)", ylabel="count (samples)")
    fig.suptitle(f"Error distribution over the {len(mix):,} samples of the sequence")
    _legend_below(fig, axes[0])
    save(fig, "extractor_errors.png")
    return files
