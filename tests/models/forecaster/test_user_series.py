"""Training the forecaster on the user's own series: ``train forecaster --data PATH``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _support.cli import sigstream as sig

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.forecaster import user_series as us
from sigstream.models.forecaster.train import ForecasterTrainConfig
from sigstream.models.training.config import build

L, H = 24, 3


def _series(n: int = 400, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    return 1e3 + np.sin(2 * np.pi * t / 9.5) + 0.1 * np.random.default_rng(seed).standard_normal(n)


def test_windows_never_reach_past_their_part_and_skip_gaps() -> None:
    x = np.arange(400, dtype=np.float64)  # a window's values are its indices
    x[100] = np.nan
    pool = us.SeriesPool([("ramp", x)], L, H)
    assert pool.train.size and pool.val.size
    tr = pool.train_windows(5000, np.random.SeedSequence(1))
    va = pool.val_windows(10_000)
    for b, lo, hi in ((tr, 0, 240), (va, 240, 280)):
        both = np.concatenate([b.lookback.numpy(), b.target.numpy()], axis=1)
        assert np.isfinite(both).all()  # the gap at 100 is in no window
        assert not ((both[:, 0] <= 100) & (both[:, -1] >= 100)).any()
        assert (b.target.numpy() >= lo).all() and (b.target.numpy() < hi).all()
        np.testing.assert_array_equal(np.diff(both, axis=1), 1.0)  # contiguous samples
    # every validation origin is used once and the last 30 % (280..399) is never read
    assert len(va.target) == len(pool.val) and va.target.numpy().max() == 279
    assert tr.target.numpy().max() == 239 and tr.noisy.all()


def test_load_arrays_columns_folders_and_bad_files(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", _series())
    np.save(tmp_path / "two.npy", np.stack([_series(300, 1), _series(300, 2)], axis=1))
    names = [n for n, _ in us.load_arrays(str(tmp_path))]
    assert names == ["one", "two[0]", "two[1]"]
    assert [n for n, _ in us.load_arrays(str(tmp_path / "one.npy"))] == ["one"]
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    with pytest.raises(InputError, match="1-D .* or 2-D"):
        us.load_arrays(str(tmp_path / "cube.npy"))
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    with pytest.raises(InputError, match="real numbers"):
        us.load_arrays(str(tmp_path / "text.npy"))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match="not a readable .npy"):
        us.load_arrays(str(tmp_path / "junk.npy"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .npy file"):
        us.load_arrays(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="no such file or folder"):
        us.load_arrays(str(tmp_path / "nope.npy"))


def test_too_short_or_all_gaps_is_one_clear_error() -> None:
    with pytest.raises(InputError, match="needs about 45 or more"):
        us.SeriesPool([("s", _series(40))], L, H)
    gappy = _series(400)
    gappy[::20] = np.nan
    with pytest.raises(InputError, match="no gap-free window"):
        us.SeriesPool([("s", gappy)], L, H)


def _cfg(**kw) -> ForecasterTrainConfig:
    base = dict(variant="mlp_gru", lookback=L, horizon=H, hidden=8, embed=16, batch=16,
                stages=(5,), final_steps=20, val_every=10, val_windows_per_stage=64,
                burg_orders=(4, 8), ls_orders=(14,), progress=False)
    return build(ForecasterTrainConfig, **{**base, **kw})


def test_config_checks_the_data_and_init_before_training(tmp_path: Path) -> None:
    np.save(tmp_path / "short.npy", _series(40))
    with pytest.raises(InputError, match="short.npy"):
        _cfg(data=str(tmp_path / "short.npy")).validate()
    with pytest.raises(ConfigError, match="no such checkpoint"):
        _cfg(init=str(tmp_path / "missing.pt")).validate()
    np.save(tmp_path / "ok.npy", _series())
    cfg = _cfg(data=str(tmp_path / "ok.npy"))
    cfg.validate()
    b = cfg.data.train_windows(5, 7, L, H, np.random.SeedSequence(0))
    assert b.lookback.shape == (7, L) and float(b.lookback.mean()) > 900  # the user's data


def test_cli_trains_on_a_users_series_and_evaluates_its_last_30_percent(tmp_path: Path) -> None:
    np.save(tmp_path / "mine.npy", _series(600))
    out = tmp_path / "run"
    r = sig("train", "forecaster", "--data", str(tmp_path / "mine.npy"), "--lookback", "24",
            "--horizon", "3", "--hidden", "8", "--embed", "16", "--burg-orders", "4,8",
            "--ls-orders", "14", "--stages", "5", "--final-steps", "20", "--val-every", "10",
            "--batch", "16", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    r = sig("eval", "forecaster", "--checkpoint", str(out / "forecaster.pt"), "--data",
            str(tmp_path / "mine.npy"), "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    assert "mine" in r.stdout and "persist" in r.stdout
    # a shipped preset's weights do not fit a lookback of 24: one line naming the tensor
    r = sig("train", "forecaster", "--data", str(tmp_path / "mine.npy"), "--lookback", "24",
            "--horizon", "3", "--burg-orders", "4,8", "--init", "fast", "--ls-orders", "none",
            "--quiet", "--out",
            str(tmp_path / "run2"))
    assert r.returncode != 0 and "does not fit these options" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
