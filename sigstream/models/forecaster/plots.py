"""Figures for ``sigstream eval forecaster --figures DIR`` (PNG, matplotlib Agg).

L: lookback, H: horizon.

* ``forecaster_examples.png`` — test signals of four conditions: the signal, the
  lookback shaded, the DFT reconstruction (inside the lookback it equals the
  signal; past it, it repeats the lookback), linear prediction and every model's
  forecast;
* ``forecaster_mse_per_step.png`` — MSE per horizon step for every condition,
  models and baselines side by side;
* ``forecaster_mse_by_components.png`` — mean MSE against the component count.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from sigstream.models.baselines.forecast import lp_forecast
from sigstream.models.forecaster.data import HarmonicsConfig, generate

EXAMPLES = (((3, 7), False), ((3, 7), True), (45, False), (45, True))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def dft_reconstruction(signal: np.ndarray, lookback: int) -> np.ndarray:
    """The Fourier series of the first ``lookback`` samples, evaluated over the whole signal."""
    spec = np.fft.rfft(signal[:lookback])
    k = np.arange(spec.size)
    n = np.arange(signal.size)
    weight = np.full(spec.size, 2.0)
    weight[0] = 1.0
    if lookback % 2 == 0:
        weight[-1] = 1.0
    basis = np.exp(2j * np.pi * np.outer(n, k) / lookback)
    return (basis @ (weight * spec)).real / lookback


def write_figures(models: dict, result: dict, folder: str, seed: int = 7) -> list[str]:
    plt = _plt()
    lookback, horizon = result["lookback"], result["horizon"]
    files = []
    total = lookback + horizon
    fig, axes = plt.subplots(len(EXAMPLES), 1, figsize=(14, 3 * len(EXAMPLES)))
    for ax, (k, noisy) in zip(axes, EXAMPLES, strict=True):
        h = generate(HarmonicsConfig(num_samples=total, num_components=k,
                                     noise=result["noise_std"] if noisy else 0.0), 1, seed)
        sig, clean = h.signal[0], h.clean[0]
        row = next(r for r in result["conditions"]
                   if r["components"] == (f"{k[0]}-{k[1]}" if isinstance(k, tuple) else str(k))
                   and (r["noise"] > 0) == noisy)
        x = torch.from_numpy(sig[None, :lookback])
        t_future = np.arange(lookback, total)
        ax.axvspan(0, lookback - 1, color="grey", alpha=0.25, label="lookback")
        ax.plot(np.arange(total), sig, color="black", lw=1, label="signal")
        if noisy:
            ax.plot(np.arange(total), clean, color="black", lw=1, ls=":", label="clean")
        ax.plot(np.arange(total), dft_reconstruction(sig, lookback), "-x", ms=3, lw=0.8,
                label="DFT reconstruction")
        lp = lp_forecast(x, row["lp_order"], horizon, row["lp_method"])[0].numpy()
        ax.plot(t_future, lp, "-o", ms=3, label=f"LP ({row['lp_method']} {row['lp_order']})")
        for name, model in models.items():
            model.eval()
            with torch.inference_mode():
                y = model.forecast(x)[0].numpy()
            ax.plot(t_future, y, "-s", ms=3, label=name)
        ax.set_xlim(lookback - 40, total - 1)
        periods = sorted(int(v) for v in set(h.periods[0].tolist()) - {0})
        shown = ", ".join(map(str, periods[:12])) + (", ..." if len(periods) > 12 else "")
        ax.set_title(f"{h.components[0]} components, periods {shown}"
                     + (f", noise {result['noise_std']:g}" if noisy else ""), fontsize=9)
        ax.set_xlabel("t [samples]")
        ax.set_ylabel("amplitude")
        ax.legend(loc="upper left", fontsize=7, ncol=4)
    fig.tight_layout()
    files.append(_save(fig, folder, "forecaster_examples.png"))
    plt.close(fig)

    conds = result["conditions"]
    names = list(result["baselines"]) + list(result["models"])
    fig, axes = plt.subplots(2, len(conds) // 2, figsize=(3.2 * len(conds) // 2, 6),
                             squeeze=False)
    for ax, r in zip(axes.T.ravel(), conds, strict=True):
        steps = np.arange(1, horizon + 1)
        for name in names:
            ax.semilogy(steps, np.maximum(r["scores"][name]["mse_per_step"], 1e-9), "-o", ms=3,
                        label=name)
        ax.set_title(f"{r['components']} components" + (", noisy" if r["noise"] else ""),
                     fontsize=9)
        ax.set_xlabel("horizon step")
    axes[0, 0].set_ylabel("MSE")
    axes[1, 0].set_ylabel("MSE")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    files.append(_save(fig, folder, "forecaster_mse_per_step.png"))
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, noisy in zip(axes, (False, True), strict=True):
        rows = [r for r in conds if (r["noise"] > 0) == noisy]
        labels = [r["components"] for r in rows]
        for name in names:
            ax.semilogy(labels, [max(r["scores"][name]["mse"], 1e-9) for r in rows], "-o",
                        label=name)
        ax.set_title("with noise 0.1" if noisy else "no noise")
        ax.set_xlabel("components")
    axes[0].set_ylabel(f"MSE, mean over {horizon} steps")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    files.append(_save(fig, folder, "forecaster_mse_by_components.png"))
    plt.close(fig)
    return files


def _save(fig, folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    fig.savefig(path, dpi=110)
    return path
