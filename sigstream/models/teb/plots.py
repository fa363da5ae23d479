"""The TEB-VAE's 4-panel forecast plot (PDF), usable as a training callback and from eval.

B: batch, L: decimated steps (300), T: raw samples (4,800), H: horizon (480), Z: latent.

The arrays are in the model's normalised units; the figure shows FHR in bpm and UP in
mmHg, converted with the constants of :mod:`sigstream.models.teb.data`
(:func:`fhr_to_bpm`, :func:`up_to_mmhg`, :func:`logvar_to_sd_bpm`).

Inputs as the seed names them: ``y_raw``, ``up_raw``, ``mu_pr_means``, ``log_var_means``
(B, T); ``mu_pr``, ``logvar_pr`` (B, L, T): each step's H-sample forecast placed on the raw
timeline (step l at raw samples 16 (l + 1) ...), NaN elsewhere; ``z`` (B, L, Z).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from sigstream.models.teb.data import FHR_CENTER, FHR_SCALE, UP_CENTER, UP_SCALE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Z95 = 1.959963984540054  # two-sided 95 % normal quantile

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


def fhr_to_bpm(x: np.ndarray, center: float = FHR_CENTER, scale: float = FHR_SCALE
               ) -> np.ndarray:
    """Normalised FHR -> bpm: the inverse of :func:`~sigstream.models.teb.data.normalise`
    (``bpm = center + scale * x``; 0 -> 140 bpm, 1 -> 160 bpm with the defaults)."""
    return center + scale * np.asarray(x, dtype=np.float64)


def up_to_mmhg(x: np.ndarray, center: float = UP_CENTER, scale: float = UP_SCALE
               ) -> np.ndarray:
    """Normalised UP -> mmHg (``mmHg = center + scale * x``; 0 -> 25 mmHg by default)."""
    return center + scale * np.asarray(x, dtype=np.float64)


def logvar_to_sd_bpm(log_var: np.ndarray, scale: float = FHR_SCALE) -> np.ndarray:
    """Log-variance of normalised FHR -> standard deviation in bpm (``scale * e^(lv/2)``)."""
    return scale * np.exp(0.5 * np.asarray(log_var, dtype=np.float64))


def _shade_missing(ax, t: np.ndarray, missing: np.ndarray, label: str,  # noqa: ANN001
                   color: str = "0.6", alpha: float = 0.3) -> None:
    """Full-height shading over the runs where ``missing`` is True (one legend entry)."""
    if missing.any():
        dt = float(t[1] - t[0]) if t.size > 1 else 0.0
        ax.fill_between(t + dt / 2, 0, 1, where=missing, step="mid", color=color,
                        alpha=alpha, lw=0, transform=ax.get_xaxis_transform(), label=label)


def _limits(observed: np.ndarray, *forecast: np.ndarray, pad: float = 0.05
            ) -> tuple[float, float] | None:
    """y limits spanning all of ``observed`` and the 0.5-99.5 % range of the finite
    ``forecast`` values (a few absurd band edges, e.g. from an untrained model, do not
    squash the trace), padded."""
    parts = [observed[np.isfinite(observed)]]
    rest = np.concatenate([a[np.isfinite(a)] for a in forecast]) if forecast else np.empty(0)
    if rest.size:
        parts.append(np.percentile(rest, [0.5, 99.5]))
    finite = np.concatenate(parts)
    if finite.size == 0:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    span = max(hi - lo, 1.0)
    return lo - pad * span, hi + pad * span


def _legend(ax, handles=None, labels=None) -> None:  # noqa: ANN001
    kw = {} if handles is None else {"handles": handles, "labels": labels}
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
              borderaxespad=0.0, **kw)


def build_teb_figure(y_raw: np.ndarray, up_raw: np.ndarray, mu_pr_means: np.ndarray,
                     log_var_means: np.ndarray, mu_pr: np.ndarray, logvar_pr: np.ndarray,
                     z: np.ndarray, sample: int = 0, steps: Sequence[int] = PLOT_STEPS,
                     sample_rate: float = 4.0, title: str | None = None,
                     decimation: int = 16, fhr_center: float = FHR_CENTER,
                     fhr_scale: float = FHR_SCALE, up_center: float = UP_CENTER,
                     up_scale: float = UP_SCALE) -> Figure:
    """The open matplotlib Figure of :func:`plot_teb_forward` (inputs normalised as in
    :mod:`sigstream.models.teb.data`; shown in bpm and mmHg with ``fhr_*`` / ``up_*``).

    Panels: (a) observed FHR (bpm) and UP (mmHg, right axis); (b) observed FHR, the
    forecast mean averaged over the steps whose forecast covers each sample and the 95 %
    band mean +- 1.96 sigma (sigma from the averaged log-variance); (c) the single forecasts
    issued at ``steps``, each with its own band; (d) the latent z per step. Missing
    samples are shaded; a caption under the panels explains the band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = fhr_to_bpm(np.asarray(y_raw)[sample], fhr_center, fhr_scale)
    up = up_to_mmhg(np.asarray(up_raw)[sample], up_center, up_scale)
    n = y.shape[-1]
    t = np.arange(n) / sample_rate / 60.0  # minutes
    mean = fhr_to_bpm(np.asarray(mu_pr_means)[sample], fhr_center, fhr_scale)
    sd = logvar_to_sd_bpm(np.asarray(log_var_means)[sample], fhr_scale)
    mu_all, lv_all = np.asarray(mu_pr)[sample], np.asarray(logvar_pr)[sample]
    picked = [s for s in steps if s < mu_all.shape[0]]
    covered = np.isfinite(mu_all).any(axis=-1)
    horizon = int(np.isfinite(mu_all).sum(axis=-1).max()) if covered.any() else 0
    horizon_min = horizon / sample_rate / 60.0
    step_s = decimation / sample_rate
    fhr_missing, up_missing = np.isnan(y), np.isnan(up)

    from matplotlib.layout_engine import ConstrainedLayoutEngine

    # 16 x 10 in at most: the figure fits a screen (it was 13 x 14 in)
    fig, axes = plt.subplots(4, 1, figsize=(15, 10), sharex=True, layout=ConstrainedLayoutEngine(
        rect=(0.0, 0.09, 1.0, 0.91), h_pad=0.05))  # the bottom 9 %: the caption
    fig.suptitle(title or "TEB-VAE forecasts of fetal heart rate", fontsize=13)
    obs_kw = {"lw": 0.7, "color": "k"}

    # (a) the observed traces
    ax = axes[0]
    ax.plot(t, y, label="observed FHR", **obs_kw)
    ax.set_ylabel("fetal heart rate (bpm)")
    twin = ax.twinx()
    twin.plot(t, up, lw=0.8, color="C1", label="uterine pressure")
    twin.set_ylabel("uterine pressure (mmHg)", color="C1")
    twin.tick_params(axis="y", colors="C1")
    _shade_missing(ax, t, fhr_missing, "FHR missing (sensor loss)")
    _shade_missing(ax, t, up_missing, "UP missing (sensor loss)", color="C1", alpha=0.15)
    ax.set_title("(a) observed CTG: fetal heart rate and uterine pressure", loc="left",
                 fontsize=10)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax.legend(h1[:1] + h2 + h1[1:], l1[:1] + l2 + l1[1:], loc="upper left",
              bbox_to_anchor=(1.07, 1.0), fontsize=8, frameon=False, borderaxespad=0.0)

    # (b) every sample's average forecast and band
    ax = axes[1]
    ax.fill_between(t, mean - Z95 * sd, mean + Z95 * sd, color="C3", alpha=0.25, lw=0,
                    label="95 % band (mean ± 1.96 σ)")
    ax.plot(t, y, label="observed FHR", **obs_kw)
    ax.plot(t, mean, lw=0.9, color="C3",
            label="forecast mean (average over the\nsteps covering each sample)")
    _shade_missing(ax, t, fhr_missing, "missing (sensor loss)")
    lim = _limits(y, mean, mean - Z95 * sd, mean + Z95 * sd)
    if lim:
        ax.set_ylim(*lim)
    ax.set_ylabel("fetal heart rate (bpm)")
    ax.set_title(f"(b) forecast of every sample, averaged over the up to "
                 f"{max(horizon // decimation, 1)} forecasts that cover it", loc="left",
                 fontsize=10)
    _legend(ax)

    # (c) single forecasts issued every few minutes
    ax = axes[2]
    ax.plot(t, y, label="observed FHR", **obs_kw)
    for i, s in enumerate(picked):
        m = fhr_to_bpm(mu_all[s], fhr_center, fhr_scale)
        d = logvar_to_sd_bpm(lv_all[s], fhr_scale)
        ax.fill_between(t, m - Z95 * d, m + Z95 * d, color="C2", alpha=0.25, lw=0,
                        label="95 % band (mean ± 1.96 σ)" if i == 0 else None)
        ax.plot(t, m, lw=0.9, color="C2",
                label=f"{horizon_min:g}-min forecast mean" if i == 0 else None)
        ax.axvline(decimation * (s + 1) / sample_rate / 60.0, color="C2", lw=0.6, ls=":",
                   label="forecast issued (last\nobserved sample)" if i == 0 else None)
    _shade_missing(ax, t, fhr_missing, "missing (sensor loss)")
    shown = [y] + [fhr_to_bpm(mu_all[s], fhr_center, fhr_scale) + k * Z95
                   * logvar_to_sd_bpm(lv_all[s], fhr_scale) for s in picked for k in (-1, 1)]
    lim = _limits(*shown)
    if lim:
        ax.set_ylim(*lim)
    ax.set_ylabel("fetal heart rate (bpm)")
    every = (picked[1] - picked[0]) * step_s / 60.0 if len(picked) > 1 else None
    ax.set_title("(c) single forecasts as they were issued" +
                 (f", one every {every:g} min" if every else ""), loc="left", fontsize=10)
    _legend(ax)

    # (d) latent state
    ax = axes[3]
    zz = np.asarray(z)[sample]
    im = ax.imshow(zz.T, aspect="auto", origin="lower", interpolation="nearest",
                   extent=(0, zz.shape[0] * step_s / 60.0, -0.5, zz.shape[1] - 0.5),
                   cmap="viridis")
    cax = ax.inset_axes((1.01, 0.0, 0.015, 1.0))  # beside the map, panels stay aligned
    fig.colorbar(im, cax=cax, label="latent value (posterior\nmean, dimensionless)")
    ax.set_ylabel("latent dimension")
    ax.set_title(f"(d) latent state z, one column per {step_s:g}-s step", loc="left",
                 fontsize=10)

    for a in axes:
        a.set_xlabel("time (min)")
        a.tick_params(labelbottom=True)
        a.set_xlim(0, n / sample_rate / 60.0)
    for a in axes[:3]:
        a.grid(alpha=0.3, lw=0.5)

    typical = float(np.nanmedian(sd)) if np.isfinite(sd).any() else float("nan")
    caption = (
        f"How to read the forecasts. After every {step_s:g}-s step ({decimation} samples at "
        f"{sample_rate:g} Hz) the model forecasts the next {horizon_min:g} min of FHR, "
        f"starting with the sample right after the last one it has observed; each forecast "
        f"sample is a Gaussian with a mean and a standard deviation σ. "
        f"The 95 % band is mean ± 1.96 σ: if the model is calibrated, 95 % of the observed "
        f"FHR samples fall inside it. In (b) each sample's mean is the average of the means "
        f"of all forecasts covering it (issued 0 to {horizon_min:g} min earlier) and σ comes "
        f"from the average of their log-variances (median σ here: {typical:.1f} bpm). "
        f"In (c) each forecast starts at a dotted line and keeps its own band, widening "
        f"with the horizon. Shading: samples missing through sensor loss (not forecast "
        f"targets). FHR = {fhr_center:g} + {fhr_scale:g} × model units, "
        f"UP = {up_center:g} + {up_scale:g} × model units.")
    fig.text(0.01, 0.005, textwrap.fill(caption, 215), ha="left", va="bottom", fontsize=8.5)
    return fig


def plot_teb_forward(y_raw: np.ndarray, up_raw: np.ndarray, mu_pr_means: np.ndarray,
                     log_var_means: np.ndarray, mu_pr: np.ndarray, logvar_pr: np.ndarray,
                     z: np.ndarray, path: str, sample: int = 0,
                     steps: Sequence[int] = PLOT_STEPS, sample_rate: float = 4.0,
                     title: str | None = None, decimation: int = 16,
                     fhr_center: float = FHR_CENTER, fhr_scale: float = FHR_SCALE,
                     up_center: float = UP_CENTER, up_scale: float = UP_SCALE) -> str:
    """Four stacked panels for batch row ``sample`` (see :func:`build_teb_figure`), saved
    as PDF at ``path``; the figure is closed."""
    import matplotlib.pyplot as plt

    fig = build_teb_figure(y_raw, up_raw, mu_pr_means, log_var_means, mu_pr, logvar_pr, z,
                           sample=sample, steps=steps, sample_rate=sample_rate, title=title,
                           decimation=decimation, fhr_center=fhr_center,
                           fhr_scale=fhr_scale, up_center=up_center, up_scale=up_scale)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    try:
        fig.savefig(path, format="pdf")
    finally:
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
        self.written.append(plot_teb_forward(
            **arrays, path=path, decimation=model.config.decimation,
            title=f"TEB-VAE forecasts of fetal heart rate, epoch {epoch} "
                  f"(validation record {self.sample})"))
