"""Figures of ``sigstream eval enhancer`` (matplotlib, Agg backend, PNG).

* ``enhancer_<metric>.png`` for SI-SDRi, PESQ-WB, STOI and ESTOI: grouped bars, one
  group per input SNR (and one for all mixtures), one bar per method.
* ``enhancer_spectrograms.png``: clean, noisy, RNNoise and the model on one test
  mixture (real noise when the test set has it, near 5 dB), in dB, time in s,
  frequency in kHz.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["write_figures", "metric_bars", "spectrograms", "BAR_METRICS"]

BAR_METRICS = ("si_sdri", "pesq_wb", "stoi", "estoi")
_AXIS = {"si_sdri": "SI-SDR improvement (dB)", "pesq_wb": "PESQ-WB (MOS-LQO)",
         "stoi": "STOI (0-1, higher is better)", "estoi": "ESTOI (0-1, higher is better)",
         "si_sdr": "SI-SDR (dB)"}
_TITLE = {"si_sdri": "SI-SDR improvement over the noisy input", "pesq_wb": "wide-band PESQ",
          "stoi": "short-time objective intelligibility (STOI)",
          "estoi": "extended STOI (ESTOI)", "si_sdr": "SI-SDR"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_bars(res: dict, metric: str, path: str) -> str:
    """Grouped bars of ``metric`` per input SNR (and over all) by method; writes ``path``."""
    plt = _pyplot()
    every = list(res["methods"])  # colours by method, the same in every figure
    keys = [k for k in every if not (metric == "si_sdri" and k == "noisy")]
    groups = [(f"{s} dB", v) for s, v in res["per_snr"].items()] + [("all", res["overall"])]
    width = 0.8 / max(len(keys), 1)
    fig, ax = plt.subplots(figsize=(min(16.0, max(8.0, 0.25 * len(groups) * len(keys) + 3)),
                                    5.0))
    x = np.arange(len(groups))
    for i, k in enumerate(keys):
        vals = [g["methods"][k].get(metric) for _, g in groups]
        heights = [np.nan if v is None else v for v in vals]
        causal = res["methods"][k].get("causal", True)
        ax.bar(x - 0.4 + width * (i + 0.5), heights, width, label=res["methods"][k]["label"],
               color=f"C{every.index(k) % 10}", hatch=None if causal else "//",
               edgecolor="white", linewidth=0.5)
    ax.set_xticks(x, [name for name, _ in groups])
    ax.set_xlabel("input SNR (dB)")
    ax.set_ylabel(_AXIS.get(metric, metric))
    n = res["overall"]["mixtures"]
    ax.set_title(f"{_TITLE.get(metric, metric)}\n{n} test mixtures; hatched bars: not causal",
                 fontsize=11)
    ax.axhline(0, color="0.3", lw=0.6)
    if metric in ("stoi", "estoi"):
        ax.set_ylim(0, 1)
    elif metric == "pesq_wb":  # MOS-LQO starts at 1.04
        top = max([v for _, g in groups for v in (g["methods"][k].get(metric) for k in keys)
                   if v is not None], default=4.64)
        ax.set_ylim(1.0, min(4.64, top + 0.25))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3,
              frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def spectrograms(example: dict, path: str, *, floor_db: float = 80.0) -> str:
    """Clean / noisy / RNNoise / model spectrograms of ``example`` (from
    :func:`sigstream.models.enhancer.evaluate.evaluate`); writes ``path``."""
    from scipy import signal

    from sigstream.models.enhancer.quality import si_sdr

    plt = _pyplot()
    rate = float(example["rate"])
    labels = example["labels"]
    rows = [("clean speech", example["clean"]), ("noisy input", example["noisy"])]
    outputs = example["outputs"]
    order = ["rnnoise"] + [k for k in outputs if k.startswith("model")]
    rows += [(labels.get(k, k), outputs[k]) for k in order if k in outputs]
    nper = int(2 ** round(np.log2(0.021 * rate)))
    specs = []
    for _, sig in rows:
        f, t, s = signal.spectrogram(np.asarray(sig, np.float64), fs=rate, window="hann",
                                     nperseg=nper, noverlap=3 * nper // 4, scaling="spectrum")
        specs.append(10 * np.log10(s + 1e-20))
    top = max(float(s.max()) for s in specs)
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, min(2.3 * len(rows), 10.0)),
                             sharex=True, squeeze=False)
    clean = example["clean"]
    for ax, (name, sig), s in zip(axes[:, 0], rows, specs, strict=True):
        mesh = ax.pcolormesh(t, f / 1000, s, shading="auto", cmap="magma",
                             vmin=top - floor_db, vmax=top)
        score = "" if sig is clean else f"  (SI-SDR {si_sdr(clean, sig):.1f} dB)"
        ax.set_title(name + score, fontsize=10, loc="left")
        ax.set(xlabel="time (s)", ylabel="frequency (kHz)")
        fig.colorbar(mesh, ax=ax, label="power (dB)", pad=0.01)
    fig.suptitle(f"{example['kind']} noise ({example['noise_source']}) at "
                 f"{example['snr_db']:g} dB input SNR, talker {example['talker']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_figures(res: dict, example: dict, out_dir: str) -> list[str]:
    """Every figure of the module docstring into ``out_dir``; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [metric_bars(res, m, os.path.join(out_dir, f"enhancer_{m}.png"))
             for m in BAR_METRICS if m in res["metrics"]]
    if example:
        paths.append(spectrograms(example, os.path.join(out_dir, "enhancer_spectrograms.png")))
    return paths
