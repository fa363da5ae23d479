"""Training the SensorAugmentor on a user's pair and evaluating it on the held-out 30 %:
what the checkpoint records (the pair, the calibration), the evaluation's figures, the rate
check, and the synthetic task's `--data KEY=VALUE` spelling."""

from __future__ import annotations

import numpy as np
import pytest

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.augmentor.data import VibrationConfig, degrade
from sigstream.models.augmentor.evaluate_pairs import evaluate_on_pairs, pairs_table
from sigstream.models.augmentor.pairs import check_pairs, load_pairs
from sigstream.models.augmentor.train import AugmentorTrainConfig, load_augmentor, train
from sigstream.models.training.config import build, resolve

RATE = 50.0


def _pair(n: int = 3000, channels: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    high = np.stack([np.sin(2 * np.pi * rng.uniform(1, 5) * t + rng.uniform(0, 6))
                     for _ in range(channels)], axis=1)
    low = degrade(high, VibrationConfig(sample_rate=RATE, f2=(10.0, 20.0)), seed=seed)
    return low, high.astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    low, high = _pair()
    path = d / "pairs.npz"
    np.savez(path, low=low, high=high, rate=np.float64(RATE))
    cfg = build(AugmentorTrainConfig, pairs=str(path), window=32, hidden=24, resblocks=1,
                bank=0, dropout=0.2, hop=8, epochs=3, progress=False, calib_passes=4,
                pair_stride=4)
    result = train(cfg, str(d / "run"))
    return path, result


def test_checkpoint_records_the_pair_and_the_calibration(trained) -> None:
    path, result = trained
    model = load_augmentor(result.checkpoint)
    meta = model.meta
    assert model.net.config.sample_rate == RATE  # the rate came from the file
    assert meta["pairs"]["source"] == str(path) and meta["pairs"]["channels"] == 2
    assert meta["pairs"]["split"]["test"] == [2100, 3000]
    assert len(meta["pairs"]["sha256"]["pairs.npz"]) == 64
    cal = meta["calibration"]
    assert cal["passes"] == 4 and cal["fitted_on"] == "validation windows"
    assert cal["scale_95"] > 0 and cal["n"] == cal["windows"] * 32
    assert 0.0 <= cal["raw_coverage_95"] <= 1.0
    assert [e["epoch"] for e in meta["history"]] == [0, 1, 2]


def test_evaluation_on_the_held_out_part(trained) -> None:
    path, result = trained
    model = load_augmentor(result.checkpoint)
    pairs = load_pairs(str(path))
    res = evaluate_on_pairs(model, pairs, uncertainty=4)
    assert res["test_windows"] == 2 * (900 // 32) and res["split"]["val"] == [1785, 2100]
    for name in ("wiener", "butterworth", "savgol", "butterworth_zero_phase"):
        assert "psnr" in res["baselines"][name], name
    ran = {k: v["psnr"] for k, v in res["baselines"].items() if "psnr" in v}
    assert res["best_baseline"] == max(ran, key=ran.get)
    assert res["psnr_margin_db"] == pytest.approx(res["model"]["psnr"] - max(ran.values()))
    assert res["noisy_input"]["snr_improvement"] == 0.0
    u = res["uncertainty"]
    assert u["calibration"]["origin"].startswith("the checkpoint's")  # same passes: reused
    assert len(u["reliability_calibrated"]["empirical"]) == len(u["reliability_raw"]["nominal"])
    assert 0.0 <= u["coverage_95_calibrated"] <= 1.0
    assert res["stream"]["frames"] > 0 and "wiener" in res["stream"]["baselines"]
    text = pairs_table(res)
    assert "degraded input" in text and "calibrated" in text
    other = evaluate_on_pairs(model, pairs, uncertainty=3, stream=False)
    assert "fitted now" in other["uncertainty"]["calibration"]["origin"]
    assert "stream" not in other


def test_calibration_brings_coverage_near_nominal_on_held_out_windows(trained) -> None:
    """The raw MC-dropout intervals under-cover; the calibrated ones (fitted on the
    validation part) cover far closer to 95 % on the held-out part."""
    path, result = trained
    res = evaluate_on_pairs(load_augmentor(result.checkpoint), load_pairs(str(path)),
                            uncertainty=4, stream=False)
    u = res["uncertainty"]
    assert u["coverage_95_raw"] < 0.8
    assert abs(u["coverage_95_calibrated"] - 0.95) < abs(u["coverage_95_raw"] - 0.95)
    assert 0.85 <= u["coverage_95_calibrated"] <= 0.995


def test_evaluation_refuses_another_rate_or_a_short_pair(trained) -> None:
    _, result = trained
    model = load_augmentor(result.checkpoint)
    low, high = _pair()
    with pytest.raises(InputError, match="at 100 Hz but the checkpoint was trained at 50 Hz"):
        evaluate_on_pairs(model, check_pairs(low, high, 100.0))
    with pytest.raises(InputError, match="too short"):
        evaluate_on_pairs(model, check_pairs(low[:200], high[:200], None))


def test_data_key_value_still_sets_the_synthetic_sensor_model() -> None:
    cfg = resolve(build(AugmentorTrainConfig, pairs="lq_noise=0.3,f1=4/9"))
    assert cfg.data.pairs is None and cfg.data.sensor.lq_noise == 0.3
    assert cfg.data.sensor.f1 == (4.0, 9.0)
    for text, fragment in (("lq_nois=1", "unknown key 'lq_nois' in --data"),
                           ("f1=3", "expected 2 values separated by '/'"),
                           ("window=x", "expected a whole number")):
        with pytest.raises(ConfigError, match=fragment):
            resolve(build(AugmentorTrainConfig, pairs=text))
    with pytest.raises(ConfigError, match="expected KEY=VALUE .* or a pairs file"):
        build(AugmentorTrainConfig, pairs="lq_noise").validate()


def test_a_pairs_file_whose_name_holds_an_equals_sign_is_a_file(tmp_path) -> None:
    low, high = _pair(2000, 1)
    path = tmp_path / "run=1.npz"
    np.savez(path, low=low, high=high, rate=np.float64(RATE))
    cfg = resolve(build(AugmentorTrainConfig, pairs=str(path)))
    cfg.validate()
    assert cfg.data.pairs == str(path) and cfg.model.sample_rate == RATE
