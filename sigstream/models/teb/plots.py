"""The TEB-VAE's 4-panel forecast plot (PDF), usable as a training callback and from eval.

B: batch, L: decimated steps (300), T: raw samples (4,800), H: horizon (480), Z: latent.

Inputs as the seed names them: ``y_raw``, ``up_raw``, ``mu_pr_means``, ``log_var_means``
(B, T); ``mu_pr``, ``logvar_pr`` (B, L, T): each step's H-sample forecast placed on the raw
timeline (step l at raw samples 16 (l + 1) ...), NaN elsewhere; ``z`` (B, L, Z).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

PLOT_STEPS = tuple(range(30, 300, 30))  # 30, 60, ..., 270


def nan_aware_sum(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """Sum along ``axis`` treating NaN as absent; where every term is NaN the result is NaN.

    ``[[1, nan], [2, nan]]`` summed over axis 0 gives ``[3, nan]``; ``[1, nan]`` gives 1.
    """
    a = np.asarray(a, dtype=np.float64)
    all_nan = np.isnan(a).all(axis=axis)
    total = np.nansum(a, axis=axis)
    return np.where(all_nan, np.nan, total)


def place_on_timeline(values: np.ndarray, decimation: int, length: int) -> np.ndarray:
    """(B, L, H) per-step forecasts -> (B, L, length): step l's H values at raw samples
    ``decimation * (l + 1) + h`` (those before ``length``), NaN elsewhere."""
    b, n_steps, h = values.shape
    out = np.full((b, n_steps, length), np.nan, dtype=np.float32)
    for step in range(n_steps):
        start = decimation * (step + 1)
        stop = min(start + h, length)
        if stop > start:
            out[:, step, start:stop] = values[:, step, :stop - start]
    return out


def nan_mean(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; NaN where every term is NaN (no warning)."""
    count = (~np.isnan(a)).sum(axis=axis)
    total = np.nansum(a, axis=axis)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def forecast_arrays(model, y_st, y_ph, x_ph, y_raw, up_raw) -> dict:  # noqa: ANN001
    """Run ``model`` (SeqVaeTeb, posterior mean) and build the plot's inputs as numpy arrays.

    ``mu_pr_means`` / ``log_var_means``: at each raw sample, the mean over the steps whose
    forecast covers it of the mean / the log-variance (NaN where none does)."""
    import torch

    with torch.no_grad():
        out = model(y_st, y_ph, x_ph, sample=False)
    cfg = model.config
    t = y_raw.shape[-1]
    mu = place_on_timeline(out["raw_signal_mu"].numpy(), cfg.decimation, t)
    lv = place_on_timeline(out["raw_signal_logvar"].numpy(), cfg.decimation, t)
    return {"y_raw": np.asarray(y_raw), "up_raw": np.asarray(up_raw), "mu_pr": mu,
            "logvar_pr": lv, "mu_pr_means": nan_mean(mu, axis=1),
            "log_var_means": nan_mean(lv, axis=1), "z": out["z"].numpy()}


def plot_teb_forward(y_raw: np.ndarray, up_raw: np.ndarray, mu_pr_means: np.ndarray,
                     log_var_means: np.ndarray, mu_pr: np.ndarray, logvar_pr: np.ndarray,
                     z: np.ndarray, path: str, sample: int = 0,
                     steps: Sequence[int] = PLOT_STEPS, sample_rate: float = 4.0,
                     title: str | None = None) -> str:
    """Four stacked panels for batch row ``sample``, saved as PDF at ``path``; the figure is
    closed. (1) target FHR and source UP; (2) target, mean reconstruction and +-2 sigma from
    ``log_var_means``; (3) target and the NaN-aware sum of the forecasts started at
    ``steps`` (30, 60, ..., 270); (4) ``z`` as an image (steps x latent channels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, up = np.asarray(y_raw)[sample], np.asarray(up_raw)[sample]
    t = np.arange(y.shape[-1]) / sample_rate / 60.0  # minutes
    mean, lv = np.asarray(mu_pr_means)[sample], np.asarray(log_var_means)[sample]
    sd = np.exp(0.5 * lv)
    picked = [s for s in steps if s < np.asarray(mu_pr).shape[1]]
    summed = nan_aware_sum(np.asarray(mu_pr)[sample, picked], axis=0)
    fig, axes = plt.subplots(4, 1, figsize=(11, 12), constrained_layout=True)
    ax = axes[0]
    ax.plot(t, y, lw=0.8, label="FHR (y_raw, normalised)")
    ax.plot(t, up, lw=0.8, label="UP (up_raw, normalised)")
    ax.set_title(title or "TEB-VAE forecasts")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    ax.plot(t, y, lw=0.8, color="k", label="target")
    ax.plot(t, mean, lw=0.9, color="C3", label="mean reconstruction (mu_pr_means)")
    ax.fill_between(t, mean - 2 * sd, mean + 2 * sd, color="C3", alpha=0.25,
                    label="+-2 sigma (log_var_means)")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    ax.plot(t, y, lw=0.8, color="k", label="target")
    ax.plot(t, summed, lw=0.9, color="C2",
            label=f"NaN-aware sum of forecasts from steps {picked[0]}..{picked[-1]}"
            if picked else "no forecast steps")
    for s in picked:
        ax.axvline(16 * (s + 1) / sample_rate / 60.0, color="C2", lw=0.4, ls=":")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[3]
    zz = np.asarray(z)[sample]
    im = ax.imshow(zz.T, aspect="auto", origin="lower", interpolation="nearest",
                   extent=(0, zz.shape[0], -0.5, zz.shape[1] - 0.5), cmap="viridis")
    fig.colorbar(im, ax=ax, label="z")
    ax.set_xlabel("decimated step (16 raw samples = 4 s)")
    ax.set_ylabel("latent channel")
    for a in axes[:3]:
        a.set_xlabel("minutes")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format="pdf")
    plt.close(fig)
    return path


class PlotCallback:
    """``callback(epoch, model)``: every ``every`` epochs, plot one record of ``data`` (a
    :class:`~sigstream.models.teb.train.TebData`) to ``out_dir/teb_epoch{E:03d}.pdf``."""

    def __init__(self, every: int, out_dir: str, data, sample: int = 0) -> None:  # noqa: ANN001
        self.every, self.out_dir, self.data, self.sample = every, out_dir, data, sample
        self.written: list[str] = []

    def __call__(self, epoch: int, model) -> None:  # noqa: ANN001
        if self.every <= 0 or epoch % self.every:
            return
        was = model.training
        model.eval()
        d = self.data.subset(slice(self.sample, self.sample + 1))
        arrays = forecast_arrays(model, d.y_st, d.y_ph, d.x_ph, d.y_raw.numpy(),
                                 d.up_raw.numpy())
        model.train(was)
        path = os.path.join(self.out_dir, f"teb_epoch{epoch:03d}.pdf")
        self.written.append(plot_teb_forward(**arrays, path=path, title=f"epoch {epoch}"))
