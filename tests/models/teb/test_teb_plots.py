"""The TEB-VAE figures read in clinical units: labelled axes (bpm, mmHg, minutes), legends
in words, a caption explaining the 95 % band, and a correct bpm conversion."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sigstream.models.teb.data import FHR_CENTER, FHR_SCALE, UP_CENTER, UP_SCALE, normalise  # noqa: E402
from sigstream.models.teb.plots import (  # noqa: E402
    build_teb_figure,
    fhr_to_bpm,
    logvar_to_sd_bpm,
    nan_mean,
    place_on_timeline,
    plot_teb_forward,
    up_to_mmhg,
)

INTERNAL = re.compile(r"_|\b(mu|lv|logvar|log_var|y_raw|up_raw|sigma|z)\b")


def arrays(n: int = 4800, steps: int = 300, seed: int = 0) -> dict:
    """Plot inputs in normalised units: FHR around 0 (140 bpm) with a sensor-loss run."""
    rng = np.random.default_rng(seed)
    y = 0.2 * rng.normal(size=(2, n))
    up = rng.normal(size=(2, n))
    y[:, 1000:1100] = np.nan  # 25 s of FHR sensor loss
    up[:, 2000:2100] = np.nan
    mu = place_on_timeline(0.1 * rng.normal(size=(2, steps, 480)).astype(np.float32), 16, n)
    lv = place_on_timeline(np.full((2, steps, 480), -3.0, np.float32), 16, n)
    return {"y_raw": y, "up_raw": up, "mu_pr_means": nan_mean(mu, 1),
            "log_var_means": nan_mean(lv, 1), "mu_pr": mu, "logvar_pr": lv,
            "z": rng.normal(size=(2, steps, 16))}


@pytest.fixture
def fig():  # noqa: ANN201
    f = build_teb_figure(**arrays(), sample=1, title="test record")
    yield f
    plt.close(f)


def colorbar_axes(f) -> list:  # noqa: ANN001
    return [im.colorbar.ax for a in f.axes for im in a.images if im.colorbar is not None]


def test_every_panel_has_units(fig) -> None:  # noqa: ANN001
    cbars = colorbar_axes(fig)
    data_axes = [a for a in fig.axes if a not in cbars]
    assert len(data_axes) == 5  # 4 panels and the UP axis on the right of the first
    ylabels = [a.get_ylabel() for a in data_axes]
    assert all(lab.strip() for lab in ylabels), ylabels
    for a in fig.axes[:4]:  # the panels, top to bottom
        assert a.get_xlabel() == "time (min)"
        assert a.get_xlim() == pytest.approx((0.0, 20.0))  # 4,800 samples at 4 Hz
    fhr_axes = [lab for lab in ylabels if "bpm" in lab]
    assert len(fhr_axes) == 3 and all("heart rate" in lab for lab in fhr_axes)
    assert sum("mmHg" in lab for lab in ylabels) == 1
    assert "latent dimension" in ylabels
    # the latent heat map: time in minutes (4-s steps: 300 steps = 20 min) and a colour bar
    heat = next(a for a in data_axes if a.get_ylabel() == "latent dimension")
    left, right, _, _ = heat.images[0].get_extent()
    assert (left, right) == pytest.approx((0.0, 20.0))
    assert len(cbars) == 1 and "latent value" in cbars[0].get_ylabel()


def test_fits_a_screen(fig) -> None:  # noqa: ANN001
    """At most 16 x 10 in (it was 13 x 14 in: taller than a screen)."""
    w, h = fig.get_size_inches()
    assert w <= 16 and h <= 10, (w, h)


def test_legends_in_words(fig) -> None:  # noqa: ANN001
    texts = [t.get_text() for a in fig.axes if a.get_legend() for t in a.get_legend().texts]
    assert texts, "no legends"
    for t in texts:
        assert not INTERNAL.search(t), f"internal name in legend: {t!r}"
    joined = " | ".join(texts)
    for phrase in ("observed FHR", "uterine pressure", "forecast mean",
                   "95 % band (mean ± 1.96 σ)", "missing (sensor loss)"):
        assert phrase in joined, phrase


def test_no_missing_entry_without_missing_samples() -> None:
    a = arrays()
    a["y_raw"] = np.nan_to_num(a["y_raw"])
    a["up_raw"] = np.nan_to_num(a["up_raw"])
    f = build_teb_figure(**a)
    try:
        texts = [t.get_text() for ax in f.axes if ax.get_legend()
                 for t in ax.get_legend().texts]
        assert not any("missing" in t for t in texts)
    finally:
        plt.close(f)


def test_caption_explains_band(fig) -> None:  # noqa: ANN001
    caption = " ".join(t.get_text() for t in fig.texts).replace("\n", " ")
    assert "95 %" in caption and "1.96 σ" in caption
    assert "2 min" in caption and "4-s step" in caption
    assert "last one it has observed" in caption
    assert fig.get_suptitle() == "test record"


def test_bpm_and_mmhg_conversion_round_trips_normalise() -> None:
    assert fhr_to_bpm(np.array(0.0)) == pytest.approx(140.0)
    assert fhr_to_bpm(np.array([1.0, -1.5])) == pytest.approx([160.0, 110.0])
    assert up_to_mmhg(np.array(1.0)) == pytest.approx(50.0)
    bpm, mmhg = np.array([95.0, 140.0, 172.5]), np.array([10.0, 25.0, 80.0])
    f, u = normalise(bpm, mmhg)
    np.testing.assert_allclose(fhr_to_bpm(f), bpm, rtol=1e-6)
    np.testing.assert_allclose(up_to_mmhg(u), mmhg, rtol=1e-6)
    # log-variance of normalised FHR -> sd in bpm: lv = 2 ln(0.5) is sd 0.5 -> 10 bpm
    assert logvar_to_sd_bpm(np.array(2 * np.log(0.5))) == pytest.approx(0.5 * FHR_SCALE)
    assert (FHR_CENTER, FHR_SCALE, UP_CENTER, UP_SCALE) == (140.0, 20.0, 25.0, 25.0)


def test_plotted_values_are_in_bpm(fig) -> None:  # noqa: ANN001
    a = arrays()
    observed = next(ln for ln in fig.axes[0].lines if ln.get_label() == "observed FHR")
    np.testing.assert_allclose(observed.get_ydata(), FHR_CENTER + FHR_SCALE * a["y_raw"][1])
    mean = next(ln for ln in fig.axes[1].lines if ln.get_label().startswith("forecast mean"))
    np.testing.assert_allclose(mean.get_ydata(),
                               FHR_CENTER + FHR_SCALE * a["mu_pr_means"][1], rtol=1e-6)
    up = next(ln for ax in fig.axes for ln in ax.lines
              if ln.get_label() == "uterine pressure")
    np.testing.assert_allclose(up.get_ydata(), UP_CENTER + UP_SCALE * a["up_raw"][1])
    # the band: lv = -3 everywhere -> sd = 20 e^-1.5 bpm; 95 % half-width 1.96 sd
    band = next(c for c in fig.axes[1].collections if "95 %" in c.get_label())
    ys = band.get_paths()[0].vertices[:, 1]
    mid = 3000
    lo = FHR_CENTER + FHR_SCALE * a["mu_pr_means"][1, mid] - 1.96 * 20 * np.exp(-1.5)
    assert np.min(np.abs(ys - lo)) < 0.01


def test_conversion_parameters_are_used(tmp_path) -> None:  # noqa: ANN001
    a = arrays()
    f = build_teb_figure(**a, fhr_center=0.0, fhr_scale=1.0)
    try:
        observed = next(ln for ln in f.axes[0].lines if ln.get_label() == "observed FHR")
        np.testing.assert_allclose(observed.get_ydata(), a["y_raw"][0])
    finally:
        plt.close(f)
    path = plot_teb_forward(**a, path=str(tmp_path / "p.pdf"), fhr_scale=10.0)
    pdf = (tmp_path / "p.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and path.endswith("p.pdf")
    box = re.search(rb"/MediaBox \[ *0 0 ([\d.]+) ([\d.]+) *\]", pdf)
    assert box and float(box[1]) <= 16 * 72 and float(box[2]) <= 10 * 72, box  # points
    assert plt.get_fignums() == []


def test_short_record_without_plot_steps() -> None:
    """A 1-minute record has no step >= 30: panel (c) shows only the observed trace."""
    f = build_teb_figure(**arrays(n=240, steps=15))
    try:
        assert f.axes[2].get_ylabel() == "fetal heart rate (bpm)"
        assert all(ln.get_label() == "observed FHR" for ln in f.axes[2].lines)
    finally:
        plt.close(f)
