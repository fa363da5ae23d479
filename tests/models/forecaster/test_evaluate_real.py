"""Evaluation on real series: the numbers on constructed cases, and ``sigstream eval
forecaster --series/--data`` end to end on tiny series (JSON, table, figures, bad input)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _support.cli import sigstream as sig

from sigstream.core.errors import InputError
from sigstream.models.checkpoint import save_checkpoint
from sigstream.models.forecaster import series as sr
from sigstream.models.forecaster.evaluate_real import (
    BASELINES,
    SCHEMA,
    evaluate,
    evaluate_series,
    load_user_series,
    table,
)
from sigstream.models.forecaster.real_baselines import persistence

L, H = 24, 3


def _persist(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[:, -1:], H, axis=1)


def _zero(x: np.ndarray) -> np.ndarray:
    return np.zeros((x.shape[0], H))


def _tiny(n: int = 300, offset: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return offset + np.sin(2 * np.pi * t / 12) + 0.3 * rng.standard_normal(n)


def test_scores_are_the_mse_of_z_scored_rolling_windows() -> None:
    s = sr.Series("tiny", _tiny(), "test domain", "1h", 12)
    r = evaluate_series(s, {"persist_fn": _persist, "zero": _zero}, L, H)
    z = sr.zscore(s.values, sr.zscore_stats(s.values))
    w = sr.windows_of(z, L, H)
    assert r["windows"] == len(w.origins) == sr.count_origins(300, L, H) and r["stride"] == 1
    want = ((persistence(w.lookback, H) - w.target) ** 2).mean(axis=0)
    np.testing.assert_allclose(r["scores"]["persistence"]["mse_per_step"], want, rtol=1e-12)
    # a forecaster returning the persistence forecast scores the same (float32 input)
    assert r["scores"]["persist_fn"]["mse"] == pytest.approx(r["scores"]["persistence"]["mse"],
                                                             rel=1e-6)
    assert r["scores"]["zero"]["mse"] == pytest.approx(float((w.target ** 2).mean()))
    # on a period-12 sine with a little noise, seasonal naive and the AR beat persistence
    sc = {k: v["mse"] for k, v in r["scores"].items()}
    assert sc["seasonal_naive"] < sc["persistence"] and sc["global_ar"] < sc["persistence"]
    assert r["best"] == min(sc, key=sc.get)
    assert r["global_ar"]["order"] >= 2 and r["linear_prediction"]["validated"]


def test_evaluate_two_series_targets_and_table() -> None:
    series = [sr.Series("a", _tiny(), "d1", "1h", 12),
              sr.Series("b", np.cumsum(np.random.default_rng(1).standard_normal(400)), "d2",
                        "1d", None)]
    res = evaluate(series, {"persist_fn": lambda x: _persist(x) + 1.0}, L, H, max_windows=40)
    assert res["schema"] == SCHEMA and [r["name"] for r in res["series"]] == ["a", "b"]
    assert res["series"][1]["stride"] == 3 and res["series"][1]["windows"] <= 40
    # without a season, seasonal naive is persistence
    b = res["series"][1]["scores"]
    assert b["seasonal_naive"]["mse"] == b["persistence"]["mse"]
    # persistence shifted by 1 (z-units) is worse than persistence: the target is not met
    t = res["targets"]["persist_fn"]
    assert t["pass"] is False and t["per_series"]["a"]["persistence"] is False
    text = table(res)
    assert "persist_fn" in text and "*" in text and "targets persist_fn: not met" in text
    assert len(res["mean_over_series"]) == len(BASELINES) + 1


def test_seasonal_context_longer_than_the_lookback() -> None:
    """A season longer than the lookback (the call centre's 169) is read from the series."""
    t = np.arange(3000)
    x = np.sin(2 * np.pi * t / 50) + 0.01 * np.random.default_rng(0).standard_normal(3000)
    r = evaluate_series(sr.Series("long", x, "d", "5min", 50), {}, L, H)
    assert r["context"] == 50
    assert r["scores"]["seasonal_naive"]["mse"] < 0.01 < r["scores"]["persistence"]["mse"]


def test_gaps_constant_and_offsets() -> None:
    x = _tiny(400)
    x[[300, 350]] = np.nan
    r = evaluate_series(sr.Series("gappy", x, "d", "1h", 12), {}, L, H)
    assert r["gaps"] == 2 and r["skipped_windows"] == 2 * (L + H)
    assert all(v["mse"] is not None for v in r["scores"].values())
    const = evaluate_series(sr.Series("flat", np.full(300, 7.0)), {"zero": _zero}, L, H)
    assert const["zscore"] == {"mean": 7.0, "std": 1.0}
    assert const["scores"]["persistence"]["mse"] == 0.0 == const["scores"]["zero"]["mse"]
    assert const["scores"]["global_ar"]["mse"] == pytest.approx(0.0, abs=1e-20)
    base = evaluate_series(sr.Series("s", _tiny()), {}, L, H)
    big = evaluate_series(sr.Series("s", _tiny(offset=1e6)), {}, L, H)
    for k in ("persistence", "seasonal_naive", "global_ar"):
        assert big["scores"][k]["mse"] == pytest.approx(base["scores"][k]["mse"], rel=1e-6)


def test_bad_series() -> None:
    with pytest.raises(InputError, match="has 26 samples: forecasting needs at least"):
        evaluate_series(sr.Series("short", np.ones(26)), {}, L, H)
    x = _tiny()
    x[200:] = np.nan
    with pytest.raises(InputError, match="free of gaps"):
        evaluate_series(sr.Series("holes", x), {}, L, H)


def test_load_user_series(tmp_path: Path) -> None:
    np.save(tmp_path / "col.npy", np.arange(200.0)[:, None])
    s = load_user_series(str(tmp_path / "col.npy"), 7)
    assert s.name == "col" and s.values.shape == (200,) and s.season == 7
    np.save(tmp_path / "two.npy", np.zeros((10, 2)))
    with pytest.raises(InputError, match="one series"):
        load_user_series(str(tmp_path / "two.npy"))
    np.save(tmp_path / "txt.npy", np.array(["a", "b"]))
    with pytest.raises(InputError, match="real numbers"):
        load_user_series(str(tmp_path / "txt.npy"))
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(InputError, match="not a readable"):
        load_user_series(str(tmp_path / "junk.npy"))
    with pytest.raises(InputError, match="no such file"):
        load_user_series(str(tmp_path / "nope.npy"))


# -- the command line --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    from sigstream.models.forecaster.model import ForecasterConfig, HarmonicForecaster

    torch.manual_seed(0)
    cfg = ForecasterConfig(lookback=L, horizon=H, hidden=8, embed=16, analytic=False)
    path = str(tmp_path_factory.mktemp("ck") / "fc.pt")
    save_checkpoint(path, "forecaster", cfg, HarmonicForecaster(cfg))
    return path


def _fake_dir(root: Path) -> Path:
    data = {"sea": _tiny(300), "walk": np.cumsum(np.random.default_rng(2).standard_normal(260)),
            "other": _tiny(200, seed=5)}

    def read(src: sr.Source) -> tuple[np.ndarray, str, str]:
        return data[src.dataset].copy(), src.dataset, hashlib.sha256(b"x").hexdigest()

    prov = sr.Provider("fake", "CC0", read, lambda: "0", lambda: b"licence")
    src = [sr.Source("sea", "test", "fake", "sea", "x", "weather", "1h", 12, "CC0", ""),
           sr.Source("walk", "test", "fake", "walk", "x", "finance", "1bd", None, "CC0", ""),
           sr.Source("o_val", "val", "fake", "other", "x", "d", "1h", 12, "CC0", ""),
           sr.Source("o_train", "train", "fake", "other", "x", "d", "1h", 12, "CC0", "")]
    sr.build(root, sources=src, providers={"fake": prov})
    return root


def test_cli_eval_on_real_series_writes_json_table_and_figures(tmp_path: Path,
                                                                checkpoint: str) -> None:
    folder = _fake_dir(tmp_path / "series")
    r = sig("eval", "forecaster", "--checkpoint", checkpoint, "--series", str(folder),
            "--json", str(tmp_path / "r.json"), "--figures", str(tmp_path / "figs"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["schema"] == SCHEMA and [s["name"] for s in res["series"]] == ["sea", "walk"]
    assert res["forecasters"] == ["mlp_gru"] and res["models"]["mlp_gru"]["analytic"] is False
    assert set(res["series"][0]["scores"]) == set(BASELINES) | {"mlp_gru"}
    assert res["data"]["series_dir"] == str(folder) and res["data"]["real"] is True
    assert len(res["series"][0]["scores"]["mlp_gru"]["mse_per_step"]) == H
    assert "sea" in r.stdout and "walk" in r.stdout and "targets mlp_gru" in r.stdout
    pngs = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert pngs == ["forecaster_real_mse.png", "forecaster_real_mse_per_step.png"]
    assert all((tmp_path / "figs" / p).stat().st_size > 5000 for p in pngs)
    assert res["figures"] == [str(tmp_path / "figs" / p) for p in pngs]


def test_cli_eval_on_a_users_series_with_gaps(tmp_path: Path, checkpoint: str) -> None:
    x = _tiny(300, offset=1e6)
    x[[250, 280]] = np.nan
    np.save(tmp_path / "mine.npy", x)
    r = sig("eval", "forecaster", "--checkpoint", checkpoint, "--data",
            str(tmp_path / "mine.npy"), "--season", "12", "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    (s,) = json.loads((tmp_path / "r.json").read_text())["series"]
    # origins 209..296: the gap at 250 spoils origins 247..273 (27), the one at 280 277..296 (20)
    assert (s["name"], s["gaps"], s["skipped_windows"], s["season"]) == ("mine", 2, 47, 12)
    assert s["zscore"]["mean"] == pytest.approx(1e6, abs=1)
    assert s["scores"]["seasonal_naive"]["mse"] < s["scores"]["persistence"]["mse"]
    assert "2 windows" not in r.stdout and "47 windows skipped" in r.stdout


def test_cli_eval_with_both_real_and_user_series(tmp_path: Path, checkpoint: str) -> None:
    folder = _fake_dir(tmp_path / "series")
    np.save(tmp_path / "mine.npy", _tiny(200))
    r = sig("eval", "forecaster", "--checkpoint", checkpoint, "--series", str(folder), "--data",
            str(tmp_path / "mine.npy"), "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    names = [s["name"] for s in json.loads((tmp_path / "r.json").read_text())["series"]]
    assert names == ["sea", "walk", "mine"]


@pytest.mark.parametrize(("setup", "args", "message"), [
    ("short", ["--data", "{d}/short.npy"], "has 20 samples: forecasting needs at least "
                                             "lookback + horizon = 27"),
    ("none", ["--series", "{d}/nothing"], "no forecaster series at"),
    ("none", ["--season", "12"], "--season is the seasonal period of --data"),
    ("none", ["--data", "{d}/missing.npy"], "no such file"),
    ("none", ["--memory", "4"], "--memory scores real series"),
])
def test_cli_eval_bad_input_is_one_error_line(tmp_path: Path, checkpoint: str, setup: str,
                                              args: list[str], message: str) -> None:
    np.save(tmp_path / "short.npy", np.ones(20))
    r = sig("eval", "forecaster", "--checkpoint", checkpoint,
            *[a.format(d=tmp_path) for a in args])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr


def test_cli_split_val_scores_the_validation_series(tmp_path: Path, checkpoint: str) -> None:
    """--split val: choose between models on the validation series, never looking at test."""
    folder = _fake_dir(tmp_path / "series")
    r = sig("eval", "forecaster", "--checkpoint", checkpoint, "--series", str(folder),
            "--split", "val", "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    assert [s["name"] for s in res["series"]] == ["o_val"] and res["data"]["split"] == "val"
    r = sig("eval", "forecaster", "--checkpoint", checkpoint, "--series", str(folder),
            "--split", "train")
    assert r.returncode != 0 and "split" in r.stderr


def test_cli_eval_memory_streams_the_whole_series(tmp_path: Path, checkpoint: str) -> None:
    """--memory P scores each model a second time with memory=P, streamed over the whole
    series: on a long seasonal series the untrained network's forecasts are poor and the
    memory's AR fit carries the forecast close to the global AR fit."""
    np.save(tmp_path / "mine.npy", _tiny(3000, offset=50.0))
    r = sig("eval", "forecaster", "--checkpoint", checkpoint, "--data",
            str(tmp_path / "mine.npy"), "--memory", "23", "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["forecasters"] == ["mlp_gru", "mlp_gru+memory"]
    assert res["models"]["mlp_gru+memory"]["memory"] == 23
    assert res["models"]["mlp_gru"]["memory"] == 0
    sc = res["series"][0]["scores"]
    assert sc["mlp_gru+memory"]["mse"] < 0.5 * sc["mlp_gru"]["mse"]
    assert sc["mlp_gru+memory"]["mse"] < 1.2 * sc["global_ar"]["mse"]
