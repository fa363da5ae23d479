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


_METHODS = {"dft": "DFT extrapolation", "dft_hamming": "DFT extrapolation (Hamming window)",
            "linear_prediction": "linear prediction", "lp_oracle": "linear prediction (oracle)",
            "periods_oracle": "sinusoids at the true periods (oracle)",
            "persistence": "persistence (last value)",
            "seasonal_naive": "seasonal naive (one season earlier)",
            "global_ar": "global autoregression", "ar_lstm": "LSTM model (autoregressive)",
            "seq2seq_gru": "GRU model (sequence to sequence)", "mlp_gru": "MLP-GRU model"}


def method_label(name: str) -> str:
    """A method's result key in words for legends: ``dft_hamming`` -> "DFT extrapolation
    (Hamming window)", ``shipped_fast`` -> "shipped model (fast preset)", ``mlp_gru'+memory``
    -> "MLP-GRU model #2 with memory"; other names with their underscores as spaces."""
    base, memory = name, ""
    if base.endswith("+memory"):
        base, memory = base[: -len("+memory")], " with memory"
    primes = len(base) - len(base.rstrip("'"))
    base = base.rstrip("'")
    if base.startswith("shipped_"):
        text = f"shipped model ({base.removeprefix('shipped_')} preset)"
    else:
        text = _METHODS.get(base, base.replace("_", " "))
    return text + (f" #{primes + 1}" if primes else "") + memory


def _legend_below(fig, axes, ncol: int = 4) -> None:  # noqa: ANN001
    """One legend for every labelled artist of ``axes`` (first label wins), in rows under
    the panels, where it covers no data."""
    seen: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen), loc="outside lower center",
               ncol=min(ncol, len(seen)), fontsize=8, frameon=False)


def write_figures(models: dict, result: dict, folder: str, seed: int = 7) -> list[str]:
    plt = _plt()
    lookback, horizon = result["lookback"], result["horizon"]
    files = []
    total = lookback + horizon
    fig, axes = plt.subplots(2, 2, figsize=(15, 8.5), squeeze=False, layout="constrained")
    for ax, (k, noisy) in zip(axes.T.ravel(), EXAMPLES, strict=True):
        h = generate(HarmonicsConfig(num_samples=total, num_components=k,
                                     noise=result["noise_std"] if noisy else 0.0), 1, seed)
        sig, clean = h.signal[0], h.clean[0]
        row = next(r for r in result["conditions"]
                   if r["components"] == (f"{k[0]}-{k[1]}" if isinstance(k, tuple) else str(k))
                   and (r["noise"] > 0) == noisy)
        x = torch.from_numpy(sig[None, :lookback])
        t_future = np.arange(lookback, total)
        ax.axvspan(0, lookback - 1, color="grey", alpha=0.25, label="lookback (model input)")
        ax.plot(np.arange(total), sig, color="black", lw=1, label="true signal")
        if noisy:
            ax.plot(np.arange(total), clean, color="black", lw=1, ls=":",
                    label="true signal without noise")
        ax.plot(np.arange(total), dft_reconstruction(sig, lookback), "-x", ms=3, lw=0.8,
                label=method_label("dft"))
        lp = lp_forecast(x, row["lp_order"], horizon, row["lp_method"])[0].numpy()
        ax.plot(t_future, lp, "-o", ms=3, label=method_label("linear_prediction"))
        for name, model in models.items():
            model.eval()
            with torch.inference_mode():
                y = model.forecast(x)[0].numpy()
            ax.plot(t_future, y, "-s", ms=3, label=f"forecast: {method_label(name)}")
        ax.set_xlim(max(0, lookback - 40), total - 1)
        periods = sorted(int(v) for v in set(h.periods[0].tolist()) - {0})
        shown = ", ".join(map(str, periods[:12])) + (", ..." if len(periods) > 12 else "")
        ax.set_title(f"{h.components[0]} components, periods {shown}"
                     + (f", noise {result['noise_std']:g}" if noisy else "")
                     + f"\n(linear prediction: {row['lp_method']}, order {row['lp_order']})",
                     fontsize=9)
        ax.set_xlabel("time (samples)")
        ax.set_ylabel("amplitude (a.u.)")
    fig.suptitle(f"Forecasts of {horizon} samples after a lookback of {lookback}")
    _legend_below(fig, axes.ravel())
    files.append(_save(fig, folder, "forecaster_examples.png"))
    plt.close(fig)

    conds = result["conditions"]
    names = list(result["baselines"]) + list(result["models"])
    cols = max(1, -(-len(conds) // 2))
    fig, axes = plt.subplots(2, cols, figsize=(min(3.2 * cols, 16.0), 6.8), squeeze=False,
                             layout="constrained")
    for ax, r in zip(axes.T.ravel(), conds, strict=False):
        steps = np.arange(1, horizon + 1)
        for name in names:
            ax.semilogy(steps, np.maximum(r["scores"][name]["mse_per_step"], 1e-9), "-o", ms=3,
                        label=method_label(name))
        ax.set_title(f"{r['components']} components" + (", noisy" if r["noise"] else ""),
                     fontsize=9)
        ax.set_xlabel("horizon step (samples)")
        ax.set_ylabel("MSE (a.u.²)")
    for ax in axes.T.ravel()[len(conds):]:
        ax.set_visible(False)
    fig.suptitle("Forecast error per horizon step")
    _legend_below(fig, axes.ravel())
    files.append(_save(fig, folder, "forecaster_mse_per_step.png"))
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True, layout="constrained")
    for ax, noisy in zip(axes, (False, True), strict=True):
        rows = [r for r in conds if (r["noise"] > 0) == noisy]
        labels = [r["components"] for r in rows]
        for name in names:
            ax.semilogy(labels, [max(r["scores"][name]["mse"], 1e-9) for r in rows], "-o",
                        label=method_label(name))
        noise = max((r["noise"] for r in rows), default=0.0)
        ax.set_title(f"with noise {noise:g}" if noisy else "no noise")
        ax.set_xlabel("number of components")
        ax.set_ylabel(f"MSE (a.u.²), mean over {horizon} steps")
    fig.suptitle("Forecast error against the number of components")
    _legend_below(fig, axes)
    files.append(_save(fig, folder, "forecaster_mse_by_components.png"))
    plt.close(fig)
    return files


def _save(fig, folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    fig.savefig(path, dpi=110)
    return path
