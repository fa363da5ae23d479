"""`sigstream train augmentor --data PAIRS` / `eval augmentor --data PAIRS` end to end on a tiny
pair (JSON, table, figures incl. the reliability plot), the `augmentor` alias, bad input as
one error line, and `sigstream data sensors` refusing held-out data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _support.cli import sigstream

from sigstream.models.augmentor.data import VibrationConfig, degrade

TINY = ["--window", "32", "--hidden", "16", "--resblocks", "1", "--bank", "0", "--hop", "8",
        "--epochs", "2", "--calib-passes", "3", "--pair-stride", "8", "--quiet"]


@pytest.fixture(scope="module")
def pair_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_pairs")
    t = np.arange(2400) / 100.0
    high = np.stack([np.sin(2 * np.pi * 2.0 * t), np.cos(2 * np.pi * 3.5 * t)], axis=1)
    np.savez(d / "pairs.npz", low=degrade(high, VibrationConfig(), seed=1),
             high=high.astype(np.float32), rate=np.float64(100.0))
    return d / "pairs.npz"


def test_train_and_eval_on_a_pair(pair_file, tmp_path) -> None:
    out = tmp_path / "run"
    r = sigstream("train", "augmentor", "--data", str(pair_file), "--out", str(out), *TINY)
    assert r.returncode == 0, r.stderr
    assert (out / "augmentor.pt").exists() and f"wrote {out / 'augmentor.pt'}" in r.stderr
    r = sigstream("eval", "augmentor", "--checkpoint", str(out / "augmentor.pt"), "--data",
                  str(pair_file), "--uncertainty", "3", "--json", str(tmp_path / "r.json"),
                  "--figures", str(tmp_path / "figs"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["task"] == "pairs" and res["trained_on"] == str(pair_file)
    assert res["split"]["test"] == [1680, 2400]
    assert "butterworth_zero_phase" in res["baselines"] and "stream" in res
    assert res["uncertainty"]["calibration"]["origin"].startswith("the checkpoint's")
    assert "PSNR margin over the best baseline" in r.stdout and "degraded input" in r.stdout
    names = {p.rsplit("/", 1)[-1] for p in res["figures"]}
    assert {"augmentor_reliability.png", "augmentor_baselines.png",
            "augmentor_examples.png", "augmentor_training.png"} <= names
    assert all((tmp_path / "figs" / n).stat().st_size > 1000 for n in names)
    # the long spelling evaluates the same way
    r2 = sigstream("eval", "enhancer", "--arch", "augmentor", "--checkpoint",
                   str(out / "augmentor.pt"), "--data", str(pair_file), "--stream-seconds", "0")
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout.splitlines()[2] == r.stdout.splitlines()[2]  # the model's row


def _bad(tmp_path, **arrays) -> str:
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    return str(p)


@pytest.mark.parametrize(("command", "make", "fragment"), [
    ("train", lambda d: _bad(d, low=np.zeros(3000), high=np.zeros(2999)), "lengths differ"),
    ("eval", lambda d: _bad(d, low=np.zeros(3000), high=np.zeros(2999)), "lengths differ"),
    ("train", lambda d: _bad(d, low=np.zeros(200), high=np.zeros(200)), "too short"),
    ("eval", lambda d: _bad(d, low=np.zeros(200), high=np.zeros(200)), "too short"),
    ("train", lambda d: _bad(d, low=np.full(3000, np.nan), high=np.zeros(3000)), "NaN"),
    ("train", lambda d: _bad(d, high=np.zeros(3000)), "has no array 'low'"),
    ("train", lambda d: _bad(d, low=np.zeros((3000, 2)), high=np.zeros((3000, 1))),
     "channel counts differ"),
    ("train", lambda d: str(d / "none.npz"), "no such file"),
    ("train", lambda d: "lq_noise", "expected KEY=VALUE"),
])
def test_bad_pairs_are_one_error_line(tmp_path, command: str, make, fragment: str) -> None:
    argv = [command, "augmentor", "--data", make(tmp_path)]
    argv += ["--out", str(tmp_path / "o"), *TINY] if command == "train" else []
    r = sigstream(*argv)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], r.stderr


def test_data_sensors_refuses_held_out_sources(tmp_path) -> None:
    for source in ("aeon:BasicMotions", "obspy:example", "scipy.datasets:electrocardiogram"):
        r = sigstream("data", "sensors", "--out", str(tmp_path), "--source", source)
        assert r.returncode == 2
        assert "held out for the project's independent evaluation" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "pairs.npz").exists()


def test_data_sensors_builds_the_pair(tmp_path) -> None:
    pytest.importorskip("sktime", reason="the sensors extra (pip install 'sigstream[sensors]')")
    r = sigstream("data", "sensors", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "80000 samples x 6 channels at 100 Hz" in r.stdout
    assert (tmp_path / "pairs.npz").exists() and (tmp_path / "manifest.json").exists()
