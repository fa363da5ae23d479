"""Every figure the models write reads on its own (issue 21, "figures a reader understands"):
each plotting entry point runs on tiny synthetic inputs (untrained or fake models, no
training, no downloads) and every figure it saves is checked as a matplotlib object:

* every visible axes has an x and a y label (an axis hidden by matplotlib, as the x axis
  of a ``twinx`` axes, needs none), and the labels use words, not ``snake_case`` names;
* every image-type artist (``imshow``, ``pcolormesh``, ``specgram``) has a colour bar, and
  every colour bar has a label;
* legend texts contain no underscore, and no legend hides more than a few per cent of the
  points of any line it lies over;
* the figure, as saved, is at most 16 x 10 inches, and no title, axis label, caption or
  legend is cut off at its edge.

The files are written at 30 dpi to keep the test fast (the checks measure in inches and
points, not pixels). ``test_the_checker_finds_what_a_reader_misses`` shows each check
failing on a bare figure.

The bench's plot grid is checked in tests/bench/test_bench.py.
"""

from __future__ import annotations

import os
import re
import types
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import PolyQuadMesh, QuadMesh  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

MAX_INCHES = (16.0, 10.0)
COVERED = 0.03  # at most this fraction of a line's visible points may lie under a legend
SNAKE = re.compile(r"[A-Za-z0-9]_[A-Za-z0-9]")


# -- capturing and checking figures ----------------------------------------------------------
@pytest.fixture
def saved(monkeypatch) -> list[tuple[Figure, dict]]:  # noqa: ANN001
    """Every Figure saved while the test runs, with the savefig keywords."""
    seen: list[tuple[Figure, dict]] = []
    save = Figure.savefig

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        target = args[0] if args else kwargs.get("fname")
        kind = kwargs.get("format") or (os.path.splitext(os.fspath(target))[1].lstrip(".")
                                         if isinstance(target, (str, os.PathLike)) else "png")
        # the file is written, coarse (fast), at the figure's own dpi: a PNG saved without
        # bbox_inches="tight" leaves the layout as measured at that dpi (no second draw)
        self.set_dpi(30)
        kwargs["dpi"] = "figure"
        seen.append((self, {**kwargs, "drawn": kind == "png"
                            and kwargs.get("bbox_inches") != "tight"}))
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    yield seen
    plt.close("all")


def _colorbar_axes(fig: Figure) -> set:
    return {ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None}


def _images(ax) -> list:  # noqa: ANN001
    """imshow / specgram (AxesImage), pcolormesh (QuadMesh) and pcolor (PolyQuadMesh)."""
    return [a for a in ax.get_children() if isinstance(a, (AxesImage, QuadMesh, PolyQuadMesh))]


def _without_math(text: str) -> str:
    return re.sub(r"\$[^$]*\$", "", text)


def _legends(fig: Figure) -> list:
    return [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)


def _covered_fraction(renderer, legend, ax) -> float:  # noqa: ANN001
    """The largest fraction of one line's in-axes points of ``ax`` under ``legend``."""
    box = legend.get_window_extent(renderer)
    area = ax.get_window_extent(renderer)
    worst = 0.0
    for line in ax.get_lines():
        if not isinstance(line, Line2D) or not line.get_visible():
            continue
        xy = np.asarray(line.get_xydata(), float)  # converted (e.g. categorical) data
        if xy.size == 0:
            continue
        pts = line.get_transform().transform(xy)
        pts = pts[np.isfinite(pts).all(axis=1)]
        inside = ((pts[:, 0] >= area.x0) & (pts[:, 0] <= area.x1)
                  & (pts[:, 1] >= area.y0) & (pts[:, 1] <= area.y1))
        pts = pts[inside]
        if len(pts) < 2:
            continue
        under = ((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1)
                 & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1))
        worst = max(worst, float(under.mean()))
    return worst


def problems(fig: Figure, kwargs: dict) -> list[str]:
    """What a reader would miss in ``fig`` (empty when it reads on its own)."""
    out: list[str] = []
    canvas = FigureCanvasAgg(fig)  # a closed pyplot figure has lost its canvas
    if not kwargs.get("drawn"):  # the layout as saved (constrained / tight layout applied)
        fig.draw_without_rendering()
    renderer = canvas.get_renderer()
    w, h = fig.get_size_inches()
    if kwargs.get("bbox_inches") == "tight":
        tight = fig.get_tightbbox(renderer)
        w, h = tight.width, tight.height
    if w > MAX_INCHES[0] + 1e-6 or h > MAX_INCHES[1] + 1e-6:
        out.append(f"{w:.1f} x {h:.1f} in, more than {MAX_INCHES[0]:g} x {MAX_INCHES[1]:g}")
    if kwargs.get("bbox_inches") != "tight":  # else the saved area grows to hold them
        texts = [*_legends(fig), *fig.texts] + ([fig._suptitle] if fig._suptitle else [])
        for ax in fig.axes:
            if ax.get_visible():
                texts += [ax.title, ax._left_title, ax.xaxis.label, ax.yaxis.label]
        for art in texts:
            if not art.get_visible() or (hasattr(art, "get_text") and not art.get_text()):
                continue
            box = art.get_window_extent(renderer)
            if (box.x0 < -1 or box.y0 < -1 or box.x1 > fig.bbox.x1 + 1
                    or box.y1 > fig.bbox.y1 + 1):
                what = art.get_text() if hasattr(art, "get_text") else "a legend"
                out.append(f"cut off at the figure's edge: {what[:40]!r}")
    cbars = _colorbar_axes(fig)
    for cax in cbars:
        if not (cax.get_ylabel().strip() or cax.get_xlabel().strip()):
            out.append("a colour bar without a label")
    data_axes = [ax for ax in fig.axes
                 if ax not in cbars and ax.get_visible() and ax.axison]
    for i, ax in enumerate(data_axes):
        name = f"axes {i} ({ax.get_title() or ax.get_title(loc='left') or 'untitled'!r})"
        for which, axis, label in (("x", ax.xaxis, ax.get_xlabel()),
                                   ("y", ax.yaxis, ax.get_ylabel())):
            if axis.get_visible() and not label.strip():
                out.append(f"{name}: no {which} label")
            if SNAKE.search(_without_math(label)):
                out.append(f"{name}: {which} label not in words: {label!r}")
        for art in _images(ax):
            if getattr(art, "colorbar", None) is None:
                out.append(f"{name}: {type(art).__name__} without a colour bar")
    for legend in _legends(fig):
        for t in legend.get_texts():
            if "_" in _without_math(t.get_text()):
                out.append(f"legend text not in words: {t.get_text()!r}")
        for i, ax in enumerate(data_axes):
            frac = _covered_fraction(renderer, legend, ax)
            if frac > COVERED:
                out.append(f"a legend covers {frac:.0%} of a line in axes {i} "
                           f"({ax.get_title() or ax.get_title(loc='left')!r})")
    return out


def check_all(saved: list[tuple[Figure, dict]], expected: int) -> None:
    assert len(saved) == expected, f"{len(saved)} figures saved, expected {expected}"
    assert plt.get_fignums() == [], "the plotting function left figures open"
    report = {}
    for k, (fig, kwargs) in enumerate(saved):
        found = problems(fig, kwargs)
        if found:
            report[f"figure {k} ({fig.get_suptitle() or fig.axes[0].get_title()!r})"] = found
    assert not report, "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in report.items())


def test_the_checker_finds_what_a_reader_misses(saved, tmp_path: Path) -> None:  # noqa: ANN001
    """The checks themselves: a bare plot fails on each count."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(20, 4))
    a.plot(np.arange(50), np.zeros(50), label="y_hat")
    a.legend(loc="center")
    b.imshow(np.zeros((4, 4)))
    b.set_xlabel("time (s)")
    fig.legend(["a long legend entry far to the right"], loc="center left",
               bbox_to_anchor=(0.9, 0.5))
    fig.savefig(tmp_path / "bad.png")
    found = " | ".join(problems(*saved[0]))
    for what in ("20.0 x 4.0 in", "axes 0 ('untitled'): no x label", "no y label",
                 "AxesImage without a colour bar", "legend text not in words: 'y_hat'",
                 "a legend covers", "cut off at the figure's edge: 'a legend'"):
        assert what in found, (what, found)
    plt.close(fig)


# -- training curves -------------------------------------------------------------------------
def test_training_curves(saved, tmp_path: Path) -> None:  # noqa: ANN001
    from sigstream.models.training.plots import plot_history

    rows = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_nll": 1.2 / (e + 1),
             "lr": 1e-3 * 0.5 ** e} for e in range(6)]
    plot_history(rows, "val_nll", str(tmp_path / "training.png"))
    check_all(saved, 1)
    assert (tmp_path / "training.png").read_bytes().startswith(b"\x89PNG")


# -- extractor -------------------------------------------------------------------------------
class _FakeExtractor(torch.nn.Module):
    """(B, T, 1) -> (B, T, K): a scaled copy of the mixture in every component."""

    def __init__(self, k: int, history: bool) -> None:
        super().__init__()
        self.k = k
        self.meta = {"history": [{"epoch": e, "train_loss": 0.1 / (e + 1),
                                  "val_loss": 0.12 / (e + 1), "lr": 1e-3}
                                 for e in range(4)]} if history else {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, -1, self.k) / self.k


def test_extractor_figures(saved, tmp_path: Path) -> None:  # noqa: ANN001
    from sigstream.models.baselines.bandpass import BandSpec
    from sigstream.models.extractor.data import FREQS, ExtractorData
    from sigstream.models.extractor.plots import write_figures

    fs, n = 100.0, 400
    t = np.arange(n) / fs
    rng = np.random.default_rng(0)
    targets = np.stack([np.sin(2 * np.pi * f * t) for f in FREQS], axis=-1)[None]
    mixture = targets.sum(-1) + 0.1 * rng.standard_normal((1, n))
    test = ExtractorData(mixture.astype(np.float32), targets.astype(np.float32), FREQS, fs,
                         "seed", 0)
    data = types.SimpleNamespace(train=test, test=test)
    bands = [BandSpec(f, 2, 1.0) for f in FREQS]
    files = write_figures(_FakeExtractor(len(FREQS), history=True), data, str(tmp_path),
                          bands=bands)
    assert [Path(p).name for p in files] == [
        "extractor_one_frequency.png", "extractor_all_frequencies.png",
        "extractor_training_curves.png", "extractor_fft.png", "extractor_errors.png"]
    check_all(saved, 5)


# -- augmentor -------------------------------------------------------------------------------
def _augmentor():  # noqa: ANN202
    from sigstream.models.augmentor.data import VibrationConfig, make_splits
    from sigstream.models.augmentor.model import AugmentorConfig, AugmentorStream

    torch.manual_seed(0)
    model = AugmentorStream(AugmentorConfig(window=32, hidden=16, resblocks=1, hop=8,
                                            dropout=0.2)).eval()
    model.meta = {"history": [{"epoch": e, "train_loss": 1.0 / (e + 1),
                               "val_loss": 1.1 / (e + 1), "val_recon": 1.0 / (e + 1),
                               "val_psnr": 10.0 + e, "lr": 1e-3} for e in range(4)]}
    vib = VibrationConfig(window=32)
    return model, vib, make_splits(40, vib, seed=1)


def _augmentor_result(task: str = "vibration") -> dict:
    return {"task": task, "sample_rate": 100.0,
            "model": {"psnr": 20.0, "ssim": 0.8}, "noisy_input": {"psnr": 12.0, "ssim": 0.5},
            "baselines": {"wiener": {"causal": False, "psnr": 15.0, "ssim": 0.6},
                          "butterworth": {"causal": True, "psnr": 14.0, "ssim": 0.6},
                          "spectral_gate": {"causal": False, "psnr": 13.0, "ssim": 0.55},
                          "savgol": {"causal": False, "skipped": "too short"}}}


def test_augmentor_figures(saved, tmp_path: Path) -> None:  # noqa: ANN001
    from sigstream.models.augmentor.plots import write_augmentor_figures

    model, vib, splits = _augmentor()
    files = write_augmentor_figures(model, str(tmp_path), vib, splits, _augmentor_result(),
                                    passes=3)
    assert [Path(p).name for p in files] == [
        "augmentor_examples.png", "augmentor_spectrograms.png", "augmentor_training.png",
        "augmentor_baselines.png"]
    check_all(saved, 4)


def test_augmentor_pairs_figures(saved, tmp_path: Path) -> None:  # noqa: ANN001
    from sigstream.models.augmentor.pairs import SensorPairs
    from sigstream.models.augmentor.plots import write_pairs_figures

    model, _, _ = _augmentor()
    rng = np.random.default_rng(0)
    high = np.sin(np.arange(600) / 3.0)[:, None].astype(np.float32)
    low = (high + 0.2 * rng.standard_normal(high.shape)).astype(np.float32)
    levels = [0.5, 0.8, 0.9, 0.95]
    result = _augmentor_result("pairs") | {"uncertainty": {
        "passes": 3, "coverage_95_raw": 0.7, "coverage_95_calibrated": 0.94,
        "calibration": {"scale_95": 1.6},
        "reliability_raw": {"nominal": levels, "empirical": [0.3, 0.5, 0.6, 0.7]},
        "reliability_calibrated": {"nominal": levels, "empirical": [0.5, 0.8, 0.9, 0.94]}}}
    files = write_pairs_figures(model, str(tmp_path), SensorPairs(low, high, 100.0, "test"),
                                result, passes=3)
    assert [Path(p).name for p in files] == [
        "augmentor_examples.png", "augmentor_training.png", "augmentor_baselines.png",
        "augmentor_reliability.png"]
    check_all(saved, 4)


# -- enhancer: speech evaluation and the causal enhancer -------------------------------------
def test_enhancer_metric_bars_and_spectrograms(saved, tmp_path: Path) -> None:  # noqa: ANN001
    from sigstream.models.enhancer.plots import BAR_METRICS, write_figures

    methods = {"noisy": {"label": "noisy input", "causal": True},
               "rnnoise": {"label": "RNNoise", "causal": True},
               "model:tiny": {"label": "this model (tiny)", "causal": True},
               "wiener": {"label": "scipy Wiener filter (non-causal)", "causal": False}}

    def means(offset: float) -> dict:
        return {"mixtures": 4, "methods": {
            k: {"si_sdri": offset + i, "pesq_wb": 1.5 + 0.3 * i, "stoi": 0.6 + 0.05 * i,
                "estoi": 0.5 + 0.05 * i} for i, k in enumerate(methods)}}

    res = {"methods": methods, "metrics": list(BAR_METRICS),
           "per_snr": {"0": means(0.0), "5": means(1.0)}, "overall": means(0.5)}
    rate = 16000
    rng = np.random.default_rng(0)
    clean = np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate) * np.hanning(rate // 2)
    noisy = clean + 0.1 * rng.standard_normal(clean.size)
    example = {"rate": rate, "clean": clean, "noisy": noisy, "snr_db": 5.0, "kind": "white",
               "noise_source": "white-0", "talker": "test-talker0",
               "outputs": {"rnnoise": 0.9 * noisy, "model:tiny": clean + 0.02 * noisy,
                           "wiener": 0.5 * noisy},
               "labels": {k: v["label"] for k, v in methods.items()}}
    files = write_figures(res, example, str(tmp_path))
    assert len(files) == 5
    check_all(saved, 5)


class _FakeEnhancer:
    """What evaluate_audio.write_figures uses of a causal enhancer."""

    sample_rate = 8000.0
    meta = {"history": [{"epoch": e, "train_snr_db": 5.0 + e, "val_snr_db": 4.0 + e,
                         "val_snr_in_db": 2.0} for e in range(4)]}

    def enhance(self, x: torch.Tensor, uncertainty: int = 0, seed: int = 0):  # noqa: ANN201
        std = torch.full_like(x, 0.01) if uncertainty else None
        return 0.8 * x, std


def test_causal_enhancer_figures(saved, tmp_path: Path) -> None:  # noqa: ANN001
    from sigstream.models.enhancer.evaluate_audio import write_figures

    files = write_figures(_FakeEnhancer(), str(tmp_path), uncertainty=2, speech=False)
    assert [Path(p).name for p in files] == [
        "enhancer_waveforms.png", "enhancer_spectrograms.png", "enhancer_training.png"]
    check_all(saved, 3)


# -- TEB-VAE ---------------------------------------------------------------------------------
def test_teb_forecast_pdf_and_nll_by_horizon(saved, tmp_path: Path) -> None:  # noqa: ANN001
    from sigstream.models.teb.evaluate import write_figures
    from sigstream.models.teb.frontend import FrontEndConfig, TebFrontEnd
    from sigstream.models.teb.model import SeqVaeTeb, TebStreamer, preset

    torch.manual_seed(0)
    model = SeqVaeTeb(preset("small", lstm_hidden=16, lstm_layers=1, horizon=48,
                             decoder_width=24, warmup=10))
    streamer = TebStreamer(model, TebFrontEnd(FrontEndConfig(max_taps=128))).eval()

    rows = [{"minutes": f"{m}-{m + 1}", "model_nll": 1.0 + 0.1 * m,
             "persistence_nll": 1.3 + 0.2 * m, "linear_ar_nll": 1.1 + 0.15 * m}
            for m in range(2)]
    result = {"per_horizon_minute": rows, "data": {"records": 2, "minutes": 3.0}}
    files = write_figures(streamer, str(tmp_path), result=result, minutes=3.0)
    assert [Path(p).name for p in files] == ["teb_forecast.pdf", "teb_nll_by_horizon.png"]
    check_all(saved, 2)


# -- forecaster ------------------------------------------------------------------------------
class _FakeForecaster:
    """A forecaster that repeats the last lookback value."""

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon

    def eval(self) -> _FakeForecaster:
        return self

    def forecast(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1:].expand(-1, self.horizon)


def _scores(names: list[str], horizon: int, scale: float) -> dict:
    return {n: {"mse": scale * (i + 1), "mse_per_step": [scale * (i + 1) * (s + 1) / horizon
                                                         for s in range(horizon)]}
            for i, n in enumerate(names)}


def test_forecaster_figures(saved, tmp_path: Path) -> None:  # noqa: ANN001
    from sigstream.models.forecaster.evaluate import BASELINES, COMPONENTS, NOISE
    from sigstream.models.forecaster.plots import write_figures

    lookback, horizon = 100, 10
    models = {"shipped_fast": _FakeForecaster(horizon),
              "shipped_accurate": _FakeForecaster(horizon)}
    names = list(BASELINES) + list(models)
    conds = [{"components": f"{k[0]}-{k[1]}" if isinstance(k, tuple) else str(k),
              "noise": NOISE if noisy else 0.0, "lp_method": "burg", "lp_order": 16,
              "scores": _scores(names, horizon, 0.01 * (j + 1))}
             for j, k in enumerate(COMPONENTS) for noisy in (False, True)]
    result = {"lookback": lookback, "horizon": horizon, "noise_std": NOISE,
              "baselines": list(BASELINES), "models": {n: {} for n in models},
              "conditions": conds}
    files = write_figures(models, result, str(tmp_path))
    assert [Path(p).name for p in files] == [
        "forecaster_examples.png", "forecaster_mse_per_step.png",
        "forecaster_mse_by_components.png"]
    check_all(saved, 3)


@pytest.mark.parametrize("series", [1, 6])
def test_forecaster_real_series_figures(saved, tmp_path: Path, series: int) -> None:  # noqa: ANN001
    from sigstream.models.forecaster.evaluate_real import BASELINES, write_figures

    horizon = 10
    names = list(BASELINES) + ["shipped_fast", "mlp_gru+memory"]
    rows = [{"name": f"series{i}", "domain": "energy", "sampling": "hourly",
             "scores": _scores(names, horizon, 0.1 * (i + 1)), "best": "global_ar"}
            for i in range(series)]
    rows[0]["scores"]["dft"] = {"mse": None, "mse_per_step": [None] * horizon}
    result = {"baselines": list(BASELINES), "forecasters": names[len(BASELINES):],
              "series": rows, "horizon": horizon, "lookback": 100, "train_fraction": 0.7}
    files = write_figures(result, str(tmp_path))
    assert [Path(p).name for p in files] == ["forecaster_real_mse.png",
                                             "forecaster_real_mse_per_step.png"]
    check_all(saved, 2)


# -- sigstream demo --------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [16000.0, 100.0])
def test_demo_before_after_figure(saved, tmp_path: Path, rate: float) -> None:  # noqa: ANN001
    from sigstream.cli.commands.demo import _save_figure

    n = int(2 * rate) if rate < 8000 else 8000
    t = np.arange(n) / rate
    clean = np.sin(2 * np.pi * (440.0 if rate >= 8000 else 3.0) * t)
    noisy = clean + 0.3 * np.random.default_rng(0).standard_normal(n)
    _save_figure(str(tmp_path / "demo.png"), noisy, 0.5 * (noisy + clean), clean, rate,
                 0.0, 6.0, "tiny model", lag=2)
    check_all(saved, 1)
