"""Held-out evaluation of the TEB-VAE against two Gaussian baselines, measured in one run.

B: records, L: decimated steps, T: raw samples, H: horizon (480), P: AR lags.

Every method forecasts, at every step l >= warmup (30), the H normalised FHR samples after
raw sample ``16 (l + 1) - 1`` as independent Gaussians, and is scored on the same valid
samples (observed, inside the record):

* ``model``: the TEB-VAE (posterior mean; its own mean and variance);
* ``persistence``: the last observed value (hold-last over dropouts), with a variance per
  horizon sample estimated from its residuals on training records;
* ``linear_ar``: a direct multi-horizon linear autoregression on the last P = 64 raw
  samples (hold-last imputed) plus a bias, fitted by ridge least squares on training
  records, with a residual variance per horizon sample. It sees the FHR only.

Metrics: NLL per sample (``0.5 log 2 pi`` included, normalised units: FHR / 20 bpm), MSE
of the mean (also in bpm^2), coverage of the central 50 % and 95 % intervals. The report
also streams test records through :class:`~sigstream.models.teb.model.TebStreamer` in
uneven chunks and gives the largest difference from the offline forward.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from sigstream.core.errors import ConfigError
from sigstream.models.teb.data import FHR_SCALE
from sigstream.models.teb.model import TebStreamer, future_targets
from sigstream.models.teb.train import TEST_SEED, TRAIN_SEED, TebData, make_data
from sigstream.models.training.family import Evaluation

Z50, Z95 = 0.6744897501960817, 1.959963984540054
AR_LAGS = 64


def hold_last(y: np.ndarray) -> np.ndarray:
    """(B, T) with NaN -> each NaN replaced by the last observed value (0 before the first)."""
    valid = ~np.isnan(y)
    idx = np.where(valid, np.arange(y.shape[1])[None, :], -1)
    idx = np.maximum.accumulate(idx, axis=1)
    picked = np.take_along_axis(np.nan_to_num(y), np.maximum(idx, 0), axis=1)
    return np.where(idx >= 0, picked, 0.0)


def gaussian_metrics(mu: np.ndarray, var: np.ndarray, target: np.ndarray,
                     valid: np.ndarray) -> dict:
    """NLL, MSE (normalised and bpm^2), 50 % / 95 % coverage over the ``valid`` entries."""
    m, v, y = mu[valid].astype(np.float64), var[valid].astype(np.float64), target[valid]
    err2 = (y - m) ** 2
    nll = 0.5 * (math.log(2 * math.pi) + np.log(v) + err2 / v)
    sd = np.sqrt(v)
    return {"nll": float(nll.mean()), "mse": float(err2.mean()),
            "mse_bpm2": float(err2.mean() * FHR_SCALE ** 2),
            "coverage_50": float((np.abs(y - m) <= Z50 * sd).mean()),
            "coverage_95": float((np.abs(y - m) <= Z95 * sd).mean()), "n": int(valid.sum())}


def _targets(y_raw: np.ndarray, n_steps: int, dec: int, h: int, warmup: int):
    target, valid = future_targets(torch.from_numpy(y_raw), n_steps, dec, h)
    valid = valid.numpy().copy()
    valid[:, :warmup] = False
    return target.numpy(), valid


def _anchor_and_lags(y_raw: np.ndarray, n_steps: int, dec: int, lags: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """anchor (B, L): last imputed value at each step; lags (B, L, P), newest first."""
    filled = hold_last(y_raw)
    ends = dec * (np.arange(n_steps) + 1) - 1  # (L,)
    pos = np.clip(ends[:, None] - np.arange(lags)[None, :], 0, None)  # (L, P)
    return filled[:, ends], filled[:, pos]


def _min_minutes(dec: int, h: int, warmup: int) -> float:
    """Record length giving 15 steps after the warmup whose whole horizon lies inside."""
    return math.ceil((dec * (warmup + 15) + h) / 4.0 / 60.0)


class Baselines:
    """Persistence and linear AR, fitted on training records."""

    def __init__(self, train_y: np.ndarray, n_steps: int, dec: int, h: int, warmup: int,
                 lags: int = AR_LAGS, ridge: float = 1e-3) -> None:
        self.n_steps, self.dec, self.h, self.warmup, self.lags = n_steps, dec, h, warmup, lags
        target, valid = _targets(train_y, n_steps, dec, h, warmup)
        anchor, lagged = _anchor_and_lags(train_y, n_steps, dec, lags)
        resid = np.where(valid, target - anchor[..., None], 0.0)
        self.persist_var = (resid ** 2).sum((0, 1)) / np.maximum(valid.sum((0, 1)), 1)  # (H,)
        full = valid[:, warmup:].all(-1).reshape(-1)  # rows with a fully observed horizon
        if full.sum() < 4 * (lags + 1):
            raise ConfigError(
                f"too few fully observed forecast windows ({int(full.sum())}) to fit the linear "
                f"AR baseline; use longer records (at least {_min_minutes(dec, h, warmup):g} "
                "minutes) or more of them")
        x = self._design(lagged[:, warmup:]).reshape(-1, lags + 1)[full]
        # regress the change from the anchor: the same model, better conditioned
        y = (target[:, warmup:] - anchor[:, warmup:, None]).reshape(-1, h)[full]
        xtx = x.T @ x + ridge * len(x) * np.eye(lags + 1)
        self.coef = np.linalg.solve(xtx, x.T @ y)  # (P + 1, H)
        pred = self.predict_ar(train_y)
        r = np.where(valid, target - pred, 0.0)
        self.ar_var = (r ** 2).sum((0, 1)) / np.maximum(valid.sum((0, 1)), 1)

    @staticmethod
    def _design(lagged: np.ndarray) -> np.ndarray:
        anchor = lagged[..., :1]
        return np.concatenate([lagged - anchor, np.ones_like(anchor)], axis=-1)

    def predict_persistence(self, y_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        anchor, _ = _anchor_and_lags(y_raw, self.n_steps, self.dec, 1)
        mu = np.repeat(anchor[..., None], self.h, axis=-1)
        return mu, np.broadcast_to(self.persist_var, mu.shape)

    def predict_ar(self, y_raw: np.ndarray) -> np.ndarray:
        anchor, lagged = _anchor_and_lags(y_raw, self.n_steps, self.dec, self.lags)
        return anchor[..., None] + self._design(lagged) @ self.coef


@torch.no_grad()
def model_forecasts(streamer: TebStreamer, data: TebData, batch: int = 32
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(B, L, H) mean and variance of the model (posterior mean)."""
    model = streamer.model.eval()
    mus, vs = [], []
    for i in range(0, len(data), batch):
        d = data.subset(slice(i, i + batch))
        out = model(d.y_st, d.y_ph, d.x_ph, sample=False)
        mus.append(out["raw_signal_mu"].numpy())
        vs.append(torch.exp(out["raw_signal_logvar"]).numpy())
    return np.concatenate(mus), np.concatenate(vs)


@torch.no_grad()
def streaming_check(streamer: TebStreamer, raw: torch.Tensor,
                    chunks: tuple[int, ...] = (1, 16, 7, 100, 0, 333, 48)) -> dict:
    """Stream ``raw`` (B, T, 2) in cycling chunk sizes; compare with the offline forward."""
    streamer.eval()
    offline = streamer(raw)
    state = streamer.init_state(raw.shape[0])
    outs, pos, k, n_calls = [], 0, 0, 0
    t0 = time.perf_counter()
    while pos < raw.shape[1]:
        n = chunks[k % len(chunks)]
        y, state = streamer.step(raw[:, pos:pos + n], state)
        outs.append(y)
        pos += n
        k += 1
        n_calls += 1
    seconds = time.perf_counter() - t0
    streamed = torch.cat(outs, dim=1)
    z, mu, var = (a.sub(b).abs().max().item() for a, b in zip(
        streamer.split_rows(streamed), streamer.split_rows(offline), strict=True))
    worst = max(z, mu, var)
    # one step of 16 samples for a single stream, median of repeats
    s1 = streamer.init_state(1)
    times = []
    for i in range(40):
        t1 = time.perf_counter()
        _, s1 = streamer.step(raw[:1, 16 * i:16 * (i + 1)], s1)
        times.append(time.perf_counter() - t1)
    return {"records": int(raw.shape[0]), "steps": int(offline.shape[1]),
            "chunk_sizes": list(chunks), "max_abs_diff_z": z, "max_abs_diff_mean": mu,
            "max_abs_diff_variance": var, "max_abs_diff": worst,
            "equal_to_1e-5": bool(worst <= 1e-5) and streamed.shape == offline.shape,
            "stream_seconds_all_records": seconds,
            "step_ms_one_stream_16_samples_median": 1000 * float(np.median(times))}


def evaluate(streamer: TebStreamer, records: int = 64, baseline_records: int = 64,
             minutes: float = 20.0, progress: bool = False) -> dict:
    """Model vs persistence vs linear AR on ``records`` held-out records (seed 2); with
    ``progress``, a line on stderr at each stage."""
    from sigstream.core.progress import note

    cfg = streamer.model.config
    start = time.perf_counter()
    test = make_data(streamer.frontend, records, TEST_SEED, minutes)
    train = make_data(streamer.frontend, baseline_records, TRAIN_SEED, minutes)
    if progress:
        note("eval teb", f"{records} held-out records of {minutes:g} min made; the model "
             "forecasts them", start)
    n_steps = test.y_st.shape[1]
    y_test = test.y_raw.numpy().astype(np.float64)
    target, valid = _targets(y_test, n_steps, cfg.decimation, cfg.horizon, cfg.warmup)
    t0 = time.perf_counter()
    mu, var = model_forecasts(streamer, test)
    model_s = time.perf_counter() - t0
    if progress:
        note("eval teb", "model done; baselines and the streaming check", start)
    base = Baselines(train.y_raw.numpy().astype(np.float64), n_steps, cfg.decimation,
                     cfg.horizon, cfg.warmup)
    p_mu, p_var = base.predict_persistence(y_test)
    a_mu = base.predict_ar(y_test)
    a_var = np.broadcast_to(base.ar_var, a_mu.shape)
    result = {
        "data": {"records": records, "seed": TEST_SEED, "minutes": minutes,
                 "steps": n_steps, "horizon": cfg.horizon, "warmup": cfg.warmup,
                 "missing_fraction_fhr": float(np.isnan(y_test).mean()),
                 "baseline_training_records": baseline_records},
        "model": {**gaussian_metrics(mu, var, target, valid), "seconds": model_s},
        "persistence": gaussian_metrics(p_mu, p_var, target, valid),
        "linear_ar": {**gaussian_metrics(a_mu, a_var, target, valid), "lags": base.lags},
        "per_horizon_minute": _per_minute(mu, var, p_mu, p_var, a_mu, a_var, target, valid),
    }
    raw = torch.stack([test.y_raw[:4], test.up_raw[:4]], dim=-1)
    result["streaming"] = streaming_check(streamer, raw)
    m = result["model"]
    result["targets"] = {
        "nll_below_persistence": m["nll"] < result["persistence"]["nll"],
        "nll_below_linear_ar": m["nll"] < result["linear_ar"]["nll"],
        "coverage_95_in_0.90_0.98": 0.90 <= m["coverage_95"] <= 0.98,
        "streamed_equals_offline_1e-5": result["streaming"]["equal_to_1e-5"],
    }
    result["config"] = {"model": dict(streamer.model.config_dict()),
                        "meta": getattr(streamer, "meta", {})}
    return result


def _per_minute(mu, var, p_mu, p_var, a_mu, a_var, target, valid) -> list[dict]:  # noqa: ANN001
    rows = []
    h = target.shape[-1]
    for lo in range(0, h, 240):  # 240 samples = 1 minute
        sl = np.zeros(h, dtype=bool)
        sl[lo:lo + 240] = True
        v = valid & sl
        rows.append({"minutes": f"{lo / 240:.0f}-{(lo + 240) / 240:.0f}",
                     "model_nll": gaussian_metrics(mu, var, target, v)["nll"],
                     "persistence_nll": gaussian_metrics(p_mu, p_var, target, v)["nll"],
                     "linear_ar_nll": gaussian_metrics(a_mu, a_var, target, v)["nll"]})
    return rows


def table(result: dict) -> str:
    lines = ["| method | NLL | MSE (norm.) | MSE (bpm^2) | 50 % coverage | 95 % coverage |",
             "|---|---:|---:|---:|---:|---:|"]
    for key, name in (("model", "TEB-VAE"), ("persistence", "persistence"),
                      ("linear_ar", f"linear AR({result['linear_ar']['lags']})")):
        r = result[key]
        lines.append(f"| {name} | {r['nll']:.4f} | {r['mse']:.4f} | {r['mse_bpm2']:.2f} | "
                     f"{r['coverage_50']:.3f} | {r['coverage_95']:.3f} |")
    s = result["streaming"]
    lines.append("")
    lines.append(f"streamed vs offline ({s['records']} records, chunks {s['chunk_sizes']}): "
                 f"max |diff| {s['max_abs_diff']:.2e} "
                 f"({'<= 1e-5' if s['equal_to_1e-5'] else '> 1e-5'}); one 16-sample step "
                 f"{s['step_ms_one_stream_16_samples_median']:.2f} ms")
    return "\n".join(lines)


def write_figures(streamer: TebStreamer, out_dir: str, record: int = 0,
                  result: dict | None = None, minutes: float = 20.0) -> list[str]:
    """The 4-panel PDF for one held-out record (and a per-horizon NLL PNG if ``result``)."""
    import os
    import textwrap

    from sigstream.models.teb.data import FHR_CENTER
    from sigstream.models.teb.plots import forecast_arrays, plot_teb_forward

    test = make_data(streamer.frontend, record + 1, TEST_SEED, minutes)
    d = test.subset(slice(record, record + 1))
    arrays = forecast_arrays(streamer.model.eval(), d.y_st, d.y_ph, d.x_ph, d.y_raw.numpy(),
                             d.up_raw.numpy())
    files = [plot_teb_forward(**arrays, path=os.path.join(out_dir, "teb_forecast.pdf"),
                              decimation=streamer.model.config.decimation,
                              title=f"TEB-VAE forecasts of fetal heart rate, held-out record "
                                    f"{record} (seed {TEST_SEED})")]
    if result is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = result["per_horizon_minute"]
        from matplotlib.layout_engine import ConstrainedLayoutEngine

        fig, ax = plt.subplots(figsize=(7, 4.6), layout=ConstrainedLayoutEngine(
            rect=(0.0, 0.15, 1.0, 0.85)))  # the bottom 15 %: the caption
        x = np.arange(len(rows))
        for i, (key, name) in enumerate((("model_nll", "TEB-VAE"),
                                         ("persistence_nll", "persistence (last observed "
                                                             "value)"),
                                         ("linear_ar_nll", "linear autoregression (FHR "
                                                           "only)"))):
            ax.bar(x + (i - 1) * 0.27, [r[key] for r in rows], width=0.27, label=name)
        ax.set_xticks(x, [r["minutes"].replace("-", "–") for r in rows])
        ax.set_xlabel("forecast horizon (min)")
        ax.set_ylabel("NLL (nats per sample)")
        ax.axhline(0, color="k", lw=0.5)
        ax.grid(axis="y", alpha=0.3, lw=0.5)
        data = result.get("data", {})
        ax.set_title("Forecast negative log-likelihood by horizon (lower is better)"
                     + (f"\n{data['records']} held-out records of {data['minutes']:g} min"
                        if "records" in data and "minutes" in data else ""), fontsize=10)
        ax.legend(fontsize=8, loc="best")
        fig.text(0.01, 0.01, textwrap.fill(
            "NLL of the observed FHR under each method's Gaussian forecast, averaged over "
            "the scored samples (observed, after the warm-up) in each 1-min slice of the "
            "horizon, i.e. by how long after the forecast was issued they come. "
            f"FHR in the model's units (bpm − {FHR_CENTER:g}) / {FHR_SCALE:g}, as "
            f"in the results table; add ln {FHR_SCALE:g} ≈ {math.log(FHR_SCALE):.2f} for "
            "nats per sample with FHR in bpm.", 110), ha="left", va="bottom", fontsize=7.5)
        path = os.path.join(out_dir, "teb_nll_by_horizon.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        files.append(path)
    return files


# -- sigstream eval teb -----------------------------------------------------------------------
@dataclass(frozen=True)
class TebEvalConfig:
    """What ``sigstream eval teb`` takes besides ``--checkpoint``/``--json``/``--figures``."""

    records: int = field(default=64, metadata={"help": "held-out records", "low": 1})
    minutes: float = field(default=20.0, metadata={"help": "record length in minutes",
                                                   "above": 0, "option": "--record-minutes",
                                                   "renamed": ("--minutes",)})

    def validate(self) -> None:
        from sigstream.models.training.config import check

        check(self)


def run(cfg: TebEvalConfig, checkpoints: tuple[str, ...], figures: str | None) -> Evaluation:
    """The checkpoint (or the shipped weights) against persistence and a linear AR
    baseline on held-out records; the 4-panel PDF and NLL per horizon into ``figures``."""
    import os

    from sigstream.models.teb.train import load_teb, shipped_weights
    from sigstream.models.training.family import one_checkpoint

    given = one_checkpoint(checkpoints, "teb")
    path = given or shipped_weights()
    if not given and not os.path.isfile(path):
        raise ConfigError("no TEB-VAE weights ship with this install; train them with "
                          "`sigstream train teb --out DIR` and pass --checkpoint DIR/teb.pt")
    streamer = load_teb(path)
    result = evaluate(streamer, records=cfg.records, minutes=cfg.minutes, progress=True)
    result["checkpoint"] = path
    files = write_figures(streamer, figures, result=result, minutes=cfg.minutes) if figures \
        else []
    return Evaluation(result, table(result), files)
