"""``sigstream data sensors``'s recipe: held-out sources refused, the .ts reader, and the
real BasicMotions pair (sktime, the sensors extra): shape, split, provenance, determinism."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.augmentor.data import VibrationConfig, degrade
from sigstream.models.augmentor.pairs import load_pairs
from sigstream.models.augmentor.sensors import (
    HELD_OUT,
    SOURCES,
    _package_dir,
    build_sensor_pairs,
    check_source,
    read_ts,
)


@pytest.mark.parametrize("source", ["aeon:BasicMotions", "seglearn:watch", "obspy:example",
                                    "heartpy:data", "statsmodels:co2", "scipy:ecg",
                                    "scipy.datasets:electrocardiogram", "AEON:x",
                                    "electrocardiogram"])
def test_held_out_sources_are_refused(source: str) -> None:
    with pytest.raises(ConfigError, match="held out for the project's independent "
                                          "evaluation"):
        check_source(source)


@pytest.mark.parametrize("package", sorted(HELD_OUT))
def test_held_out_packages_are_never_read(package: str) -> None:
    with pytest.raises(ConfigError, match="held out"):
        _package_dir(package)


def test_unknown_source_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown source 'sktime:Nope'; choose one of: "
                                          "sktime:BasicMotions"):
        check_source("sktime:Nope")
    assert check_source("sktime:BasicMotions") is SOURCES["sktime:BasicMotions"]


def test_read_ts_multivariate(tmp_path) -> None:
    p = tmp_path / "x.ts"
    p.write_text("#comment\n@problemName x\n@dimensions 2\n@data\n"
                 "1,2,3:4,5,6:Walking\n7,8,9:10,11,12:Standing\n")
    arr, labels = read_ts(p)
    assert arr.shape == (2, 2, 3) and labels == ["Walking", "Standing"]
    assert arr[1, 1].tolist() == [10.0, 11.0, 12.0]
    (tmp_path / "e.ts").write_text("@data\n")
    with pytest.raises(InputError, match="no @data rows"):
        read_ts(tmp_path / "e.ts")


def test_basic_motions_pair(tmp_path) -> None:
    pytest.importorskip("sktime", reason="the sensors extra (pip install 'sigstream[sensors]')")
    path = build_sensor_pairs(tmp_path / "a", seed=0)
    m = json.loads(path.read_text())
    pairs = load_pairs(str(tmp_path / "a" / "pairs.npz"))
    assert pairs.low.shape == (80000, 6) and pairs.rate == 100.0
    assert m["pairs"]["split"]["test"] == [56000, 80000]
    # provenance: the source files' hashes, package version and licence are recorded
    src = m["source"]
    assert src["package"] == "sktime" and src["native_rate_hz"] == 10.0
    assert "BSD" in src["package_licence"] and len(src["files"]) == 2
    assert all(len(f["sha256"]) == 64 for f in src["files"])
    pairs_bytes = (tmp_path / "a" / "pairs.npz").read_bytes()
    assert m["pairs"]["sha256"] == hashlib.sha256(pairs_bytes).hexdigest()
    # every activity in the held-out last 30 % (24 recordings of 10 s)
    held = [r["activity"] for r in m["recipe"]["recordings"][56:]]
    assert sorted(set(held)) == ["Badminton", "Running", "Standing", "Walking"]
    assert all(held.count(a) == 6 for a in set(held))
    # z-scored on the first 70 %; the low recording is exactly degrade(high, seed)
    dev = pairs.high[:56000]
    np.testing.assert_allclose(dev.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(dev.std(0), 1, atol=1e-3)
    np.testing.assert_allclose(pairs.low, degrade(pairs.high.astype(np.float64),
                                                  VibrationConfig(), seed=0), atol=1e-5)
    # deterministic: the same seed gives the same bytes, another seed another pair
    build_sensor_pairs(tmp_path / "b", seed=0)
    assert (tmp_path / "b" / "pairs.npz").read_bytes() == pairs_bytes
    with pytest.raises(ConfigError, match="whole multiple of 10 Hz"):
        build_sensor_pairs(tmp_path / "c", rate=25.0)
