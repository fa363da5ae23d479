"""Evaluate forecasters on real series against classical baselines, side by side.

N: windows, L: lookback, H: horizon, C: context (max(L, season)).

For every series (the test split of ``sigstream data series``, or a user's own ``.npy``):

1. z-scoring by the mean and standard deviation of its first 70 % (its *training prefix*;
   a constant prefix gets std 1), so every MSE is in z-units (squared standard deviations
   of the training prefix) and series are comparable;
2. rolling origins over the last 30 %: every origin t whose targets t+1 .. t+H lie there
   (the lookback may reach back into the prefix), stride 1 — or the smallest stride that
   keeps at most ``max_windows`` origins (recorded); windows holding a gap (NaN, in the
   lookback, the seasonal context or the target) are skipped and counted;
3. every method on the same windows: each forecaster passed in (``name -> fn((N, L)
   float32 z-scored windows) -> (N, H)``), persistence, seasonal naive (reads one season
   back: the context C = max(L, season) may be longer than the lookback), a global AR(p)
   fitted on the training prefix (order by AIC up to min(48, L - 1)), DFT extrapolation
   (without and with a Hamming window) and linear prediction on each lookback, its method
   (Burg or least squares) and order picked on rolling windows *inside the training
   prefix* of the same series (at most 500);
4. MSE per horizon step and its mean over the H steps.

``targets``: per forecaster, whether its mean MSE is below persistence, seasonal naive and
the global AR on every series.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.baselines.forecast import dft_extrapolation_matrix, lp_forecast, select_order
from sigstream.models.forecaster.real_baselines import GlobalAR, persistence, seasonal_naive
from sigstream.models.forecaster.series import (
    TRAIN_FRACTION,
    Series,
    count_origins,
    windows_of,
    zscore,
    zscore_stats,
)

__all__ = ["SCHEMA", "BASELINES", "TARGET_BASELINES", "evaluate", "evaluate_series", "table",
           "write_figures", "load_user_series", "model_forecast", "run_real"]

SCHEMA = "sigstream-forecaster-real-eval/1"
BASELINES = ("persistence", "seasonal_naive", "global_ar", "dft", "dft_hamming",
             "linear_prediction")
TARGET_BASELINES = ("persistence", "seasonal_naive", "global_ar")
LP_ORDERS = tuple(range(8, 97, 8))
LP_VAL_WINDOWS = 500
AR_MAX_ORDER = 48
MAX_WINDOWS = 5000
SHORT = {"persistence": "persist", "seasonal_naive": "seas.naive", "global_ar": "globalAR",
         "dft": "DFT", "dft_hamming": "DFT+Hamm", "linear_prediction": "LP"}

Forecast = Callable[[np.ndarray], np.ndarray]


def model_forecast(model, batch: int = 256) -> Forecast:
    """A forecaster's window path as a forecast function: (N, L) float32 -> (N, H)."""
    def fn(windows: np.ndarray) -> np.ndarray:
        model.eval()
        x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        with torch.inference_mode():
            return torch.cat([model.forecast(x[i:i + batch])
                              for i in range(0, x.shape[0], batch)]).double().numpy()
    return fn


class StreamForecast:
    """A forecaster with long memory (``memory=P``) as a forecast function: it streams the
    whole z-scored series (float32, NaN gaps included) through the stage, as a live stream
    would see it, and returns the rows at the origins. ``streams`` tells
    :func:`evaluate_series` to call it with ``(z, origins)`` instead of windows."""

    streams = True

    def __init__(self, model, chunk: int = 4096) -> None:
        self.model, self.chunk = model, chunk

    def __call__(self, z: np.ndarray, origins: np.ndarray) -> np.ndarray:
        m = self.model
        m.eval()
        x = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))[None, :, None]
        with torch.inference_mode():
            state = m.init_state(1)
            outs = []
            for i in range(0, x.shape[1], self.chunk):
                y, state = m.step(x[:, i:i + self.chunk], state)
                outs.append(y[0])
            return torch.cat(outs).double().numpy()[origins]


def _scores(pred: np.ndarray, target: np.ndarray) -> dict:
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape != target.shape:
        raise ConfigError(f"a forecast has shape {pred.shape}, expected {target.shape}")
    finite = np.isfinite(pred).all(axis=1)
    err = (pred - target) ** 2
    per_step = err.mean(axis=0)
    mse = float(per_step.mean())
    return {"mse": mse if math.isfinite(mse) else None,
            "mse_per_step": [float(v) if math.isfinite(v) else None for v in per_step],
            "non_finite_windows": int((~finite).sum())}


def _lp_choice(z: np.ndarray, lookback: int, horizon: int) -> dict:
    """Linear prediction's method and order, picked on rolling windows whose targets lie in
    the training prefix (at most LP_VAL_WINDOWS of them, evenly strided)."""
    orders = tuple(p for p in LP_ORDERS if p <= lookback - 2) or (max(1, lookback - 2),)
    n_val = count_origins(z.size, lookback, horizon, 0.0, TRAIN_FRACTION)
    val = None
    if n_val:
        val = windows_of(z, lookback, horizon, start_frac=0.0, end_frac=TRAIN_FRACTION,
                         stride=max(1, math.ceil(n_val / LP_VAL_WINDOWS)))
    if val is None or not val.origins.size:
        order = min(40, orders[-1])
        return {"method": "burg", "order": order, "validated": False, "windows": 0,
                "validation_mse": None}
    c = select_order(torch.from_numpy(val.lookback.astype(np.float32)),
                     torch.from_numpy(val.target.astype(np.float32)), orders)
    return {"method": c["method"], "order": c["order"], "validated": True,
            "windows": int(val.origins.size),
            "validation_mse": c["mse"] if math.isfinite(c["mse"]) else None}


def evaluate_series(series: Series, forecasters: dict[str, Forecast], lookback: int = 100,
                    horizon: int = 10, max_windows: int = MAX_WINDOWS,
                    ar_max_order: int = AR_MAX_ORDER, criterion: str = "aic") -> dict:
    """Every forecaster and every baseline on one series' evaluation part (z-units)."""
    values = np.asarray(series.values, dtype=np.float64)
    n = values.size
    if n < lookback + horizon:
        raise InputError(f"series {series.name!r} has {n} samples: forecasting needs at least "
                         f"lookback + horizon = {lookback + horizon}")
    gaps = int((~np.isfinite(values)).sum())
    values = np.where(np.isfinite(values), values, np.nan)
    stats = zscore_stats(values)
    z = zscore(values, stats)
    season = series.season if series.season and series.season > 1 else None
    context = max(lookback, season or 0)
    note = ""
    if context > lookback and count_origins(n, context, horizon) == 0:
        context, season = lookback, None
        note = "too short for one season of context before the evaluation part: persistence"
    total = count_origins(n, context, horizon)
    stride = max(1, math.ceil(total / max_windows))
    w = windows_of(Series(series.name, z), context, horizon, stride=stride)
    if not w.origins.size:
        raise InputError(f"series {series.name!r}: no rolling-origin window of its last "
                         f"{1 - TRAIN_FRACTION:.0%} is free of gaps (NaN) ({w.skipped} skipped)")
    ctx, target = w.lookback, w.target
    x64 = ctx[:, ctx.shape[1] - lookback:]
    x32 = np.ascontiguousarray(x64, dtype=np.float32)
    split = math.ceil(TRAIN_FRACTION * n - 1e-9)
    ar = GlobalAR(max_order=min(ar_max_order, lookback - 1), criterion=criterion).fit(z[:split])
    lp = _lp_choice(z, lookback, horizon)
    xt = torch.from_numpy(x32)
    preds = {
        "persistence": persistence(x64, horizon),
        "seasonal_naive": seasonal_naive(ctx, horizon, season),
        "global_ar": ar.forecast(x64, horizon),
        "dft": (xt @ dft_extrapolation_matrix(lookback, horizon, "none").float()).numpy(),
        "dft_hamming": (xt @ dft_extrapolation_matrix(lookback, horizon, "hamming").float()
                        ).numpy(),
        "linear_prediction": lp_forecast(xt, lp["order"], horizon, lp["method"]).numpy(),
    }
    for name, fn in forecasters.items():
        if name in preds:
            raise ConfigError(f"a forecaster is named like a baseline: {name!r}")
        preds[name] = np.asarray(fn(z, w.origins) if getattr(fn, "streams", False)
                                 else fn(x32))
    scores = {name: _scores(p, target) for name, p in preds.items()}
    ranked = [k for k in scores if scores[k]["mse"] is not None]
    best = min(ranked, key=lambda k: scores[k]["mse"]) if ranked else None
    return {"name": series.name, "domain": series.domain, "sampling": series.sampling,
            "season": series.season, "source": series.source, "licence": series.licence,
            "length": n, "gaps": gaps, "train_prefix": split,
            "zscore": {"mean": stats[0], "std": stats[1]},
            "context": context, "windows": int(w.origins.size), "stride": stride,
            "skipped_windows": w.skipped,
            "first_origin": int(w.origins[0]), "last_origin": int(w.origins[-1]),
            "seasonal_naive_note": note or None, "global_ar": ar.describe(),
            "linear_prediction": lp, "scores": scores, "best": best}


def evaluate(series: Sequence[Series], forecasters: dict[str, Forecast], lookback: int = 100,
             horizon: int = 10, max_windows: int = MAX_WINDOWS, progress: bool = False,
             **kw) -> dict:
    """:func:`evaluate_series` on every series; ``targets`` per forecaster."""
    if not series:
        raise InputError("no series to evaluate")
    from sigstream.core.progress import iterate

    shown = iterate(series, "eval forecaster", "series") if progress else series
    rows = [evaluate_series(s, forecasters, lookback, horizon, max_windows, **kw)
            for s in shown]
    methods = list(BASELINES) + list(forecasters)
    mean = {m: (float(np.mean([r["scores"][m]["mse"] for r in rows]))
                if all(r["scores"][m]["mse"] is not None for r in rows) else None)
            for m in methods}
    return {"schema": SCHEMA, "lookback": lookback, "horizon": horizon,
            "train_fraction": TRAIN_FRACTION, "max_windows": max_windows,
            "units": "MSE of z-scored values (z-units: squared standard deviations of each "
                     "series' training prefix)",
            "baselines": list(BASELINES), "forecasters": list(forecasters),
            "series": rows, "mean_over_series": mean,
            "targets": targets(rows, list(forecasters))}


def targets(rows: list[dict], names: list[str]) -> dict:
    """Per forecaster and series: mean MSE below persistence, seasonal naive and global AR."""
    out: dict = {}
    for name in names:
        per = {}
        for r in rows:
            s = r["scores"]
            mse = s[name]["mse"]
            per[r["name"]] = {b: (mse is not None and s[b]["mse"] is not None
                                  and mse < s[b]["mse"]) for b in TARGET_BASELINES}
        out[name] = {"per_series": per,
                     "pass": bool(per) and all(all(v.values()) for v in per.values())}
    return out


def _cell(v: float | None) -> str:
    return "         n/a" if v is None else f"{v:12.4g}"


def table(result: dict) -> str:
    """Series rows x method columns of mean MSE (z-units); ``*`` marks each row's best."""
    names = list(result["baselines"]) + list(result["forecasters"])
    head = f"{'series':>14} {'windows':>8} " + " ".join(
        f"{SHORT.get(n, n)[:12]:>13}" for n in names)
    lines = [f"MSE in z-units (training-prefix standard deviations squared), mean over "
             f"horizon steps 1-{result['horizon']}, lookback {result['lookback']}, rolling "
             f"origins over the last {1 - result['train_fraction']:.0%} of each series; "
             "* = best", head]
    for r in result["series"]:
        cells = " ".join(_cell(r["scores"][n]["mse"]) + ("*" if n == r["best"] else " ")
                         for n in names)
        lines.append(f"{r['name'][:14]:>14} {r['windows']:>8d} {cells}")
    mean = result["mean_over_series"]
    ok = [n for n in names if mean[n] is not None]
    best = min(ok, key=lambda n: mean[n]) if ok else None
    lines.append(f"{'mean':>14} {'':>8} " + " ".join(
        _cell(mean[n]) + ("*" if n == best else " ") for n in names))
    lines.append("")
    for r in result["series"]:
        ar, lp = r["global_ar"], r["linear_prediction"]
        lines.append(
            f"{r['name']}: {r['domain']}, {r['length']} samples x {r['sampling']}, season "
            f"{r['season'] or '-'}; stride {r['stride']}, {r['skipped_windows']} windows "
            f"skipped (gaps); global AR order {ar['order']} ({ar['criterion'].upper()}); LP "
            f"{lp['method']} {lp['order']}" + ("" if lp["validated"] else " (not validated)")
            + (f"; seasonal naive: {r['seasonal_naive_note']}" if r["seasonal_naive_note"]
               else ""))
    for name, t in result["targets"].items():
        items = "; ".join(
            f"{s}: " + ", ".join(f"{'<' if ok else 'NOT <'} {SHORT[b]}" for b, ok in v.items())
            for s, v in t["per_series"].items())
        lines.append(f"targets {name}: {'pass' if t['pass'] else 'not met'} ({items})")
    return "\n".join(lines)


def write_figures(result: dict, folder: str) -> list[str]:
    """``forecaster_real_mse.png`` (bars of mean MSE per series and method, log scale) and
    ``forecaster_real_mse_per_step.png`` (MSE per horizon step, one panel per series)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sigstream.core.files import write_atomic
    from sigstream.models.forecaster.plots import method_label

    names = list(result["baselines"]) + list(result["forecasters"])
    rows = result["series"]
    files = []
    # 16 x 10 in at most (it grew with the series: 19 x 4.8 in for six)
    width = min(16.0, max(7.0, 1.6 * len(rows) * len(names) / 4))
    ncol = max(1, min(len(names), int(width // 2.6)))  # legend columns that fit the width
    fig, ax = plt.subplots(figsize=(width, 5.6), layout="constrained")
    width = 0.8 / len(names)
    xs = np.arange(len(rows))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for i, name in enumerate(names):
        vals = [r["scores"][name]["mse"] for r in rows]
        heights = [v if v is not None else np.nan for v in vals]
        ax.bar(xs + (i - (len(names) - 1) / 2) * width, heights, width,
               label=method_label(name),
               color=cmap(i), edgecolor=["black" if r["best"] == name else "none"
                                         for r in rows])
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{r['name']}\n({r['domain']}, {r['sampling']})" for r in rows],
                       fontsize=8)
    ax.set_xlabel("series (test split)")
    ax.set_ylabel(f"MSE (z-units$^2$), mean over\nhorizon steps 1-{result['horizon']}")
    ax.set_title(f"Forecast error on real series\n(lookback {result['lookback']}, last "
                 f"{1 - result['train_fraction']:.0%} of each series; black edge: best)",
                 fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.legend(loc="outside lower center", fontsize=8, ncol=ncol, frameon=False)
    files.append(_save(fig, folder, "forecaster_real_mse.png", write_atomic))
    plt.close(fig)

    cols = min(len(rows), 4)
    nrow = math.ceil(len(rows) / cols)
    width = max(3.6 * cols, 8.0)
    ncol = max(1, min(len(names), int(width // 2.6)))
    fig, axes = plt.subplots(nrow, cols, figsize=(width, min(3.2 * nrow + 1.2, 10.0)),
                             squeeze=False, layout="constrained")
    steps = np.arange(1, result["horizon"] + 1)
    for ax, r in zip(axes.ravel(), rows, strict=False):
        for i, name in enumerate(names):
            per = [v if v is not None else np.nan for v in r["scores"][name]["mse_per_step"]]
            ax.semilogy(steps, per, "-o", ms=3, color=cmap(i), label=method_label(name))
        ax.set_title(f"{r['name']} ({r['sampling']})", fontsize=9)
        ax.set_xlabel("horizon step (samples)")
        ax.set_ylabel("MSE (z-units$^2$)")
        ax.grid(alpha=0.3, which="both")
    for ax in axes.ravel()[len(rows):]:
        ax.set_visible(False)
    fig.suptitle("Forecast error per horizon step on real series (test split)", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", fontsize=8, ncol=ncol,
               frameon=False)
    files.append(_save(fig, folder, "forecaster_real_mse_per_step.png", write_atomic))
    plt.close(fig)
    return files


def _save(fig, folder: str, name: str, write_atomic) -> str:
    path = os.path.join(folder, name)
    write_atomic(path, lambda fh: fig.savefig(fh, dpi=110, format="png"))
    return path


# -- a user's own series ---------------------------------------------------------------------------
def load_user_series(path: str, season: int | None = None) -> Series:
    """A 1-D ``.npy`` series (shape (T,), (T, 1) or (1, T)) of real numbers, read like
    ``train forecaster --data`` reads it; non-finite values are gaps (windows holding one
    are skipped and counted)."""
    from sigstream.models.forecaster.user_series import read_npy

    if not Path(path).is_file():
        raise InputError(f"--data {path!r}: no such file")
    columns = read_npy(Path(path))
    if len(columns) != 1:
        raise InputError(f"--data {path!r} must be one series (shape (T,) or (T, 1)), got "
                         f"{len(columns)} columns")
    if season is not None and season < 1:
        raise ConfigError(f"--season must be >= 1, got {season}")
    return Series(Path(path).stem, columns[0], "user data", "unknown", season,
                  "user", f"file {path}", "the user's")


def run_real(models: dict, *, real: bool, series_dir: str | None, data: str | None,
             season: int | None, max_windows: int, figures: str | None,
             split: str = "test"):
    """``sigstream eval forecaster --real | --series DIR | --data FILE.npy``: every model (as
    the synthetic evaluation loads them) and the baselines on the real test series and/or
    the user's series."""
    from sigstream.models.forecaster.series import default_root, load_series
    from sigstream.models.training.family import Evaluation

    first = next(iter(models.values()))
    lookback, horizon = first.lookback, first.horizon
    series: list[Series] = []
    if data:
        user = load_user_series(data, season)
    if real or series_dir:
        series += load_series(series_dir, split)
    if data:
        series.append(user)
    names = [s.name for s in series]
    if len(set(names)) != len(names):
        raise InputError(f"--data {data!r} has the name of a test series: rename the file")
    fns: dict[str, Forecast] = {
        name: (StreamForecast(m) if getattr(m.config, "memory", 0) else model_forecast(m))
        for name, m in models.items()}
    result = evaluate(series, fns, lookback, horizon, max_windows=max_windows,
                      progress=True)
    result["models"] = {name: {"variant": m.config.variant, "analytic": m.config.analytic,
                               "memory": m.config.memory,
                               "parameters": sum(p.numel() for p in m.parameters())}
                        for name, m in models.items()}
    result["data"] = {"series_dir": (str(series_dir or default_root()) if real or series_dir
                                     else None),
                      "real": bool(real or series_dir), "user_file": data,
                      "split": split if real or series_dir else None}
    files = write_figures(result, figures) if figures else []
    return Evaluation(result, table(result), files)
