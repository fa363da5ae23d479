"""Evaluate a frequency extractor against the causal band-pass baseline, side by side.

S: sequences, T: time, K: components.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from sigstream.models.baselines import bandpass
from sigstream.models.extractor.data import PRESETS, DataConfig, ExtractorData, generate
from sigstream.models.extractor.model import FrequencyExtractor
from sigstream.models.training.family import Evaluation, one_checkpoint

TRAIN_SEED, TEST_SEED, VAL_SEED = 1, 2, 3
SEQUENCES = {"seed": 1, "realistic": 16}


@dataclass(frozen=True)
class EvalData:
    train: ExtractorData
    test: ExtractorData


def eval_data(preset: str, snr_db: float = 0.0) -> EvalData:
    n = SEQUENCES[preset]
    cfg = DataConfig(preset=preset, sequences=n, snr_db=snr_db)
    return EvalData(generate(cfg, TRAIN_SEED), generate(cfg, TEST_SEED))


def predict(model: FrequencyExtractor, data: ExtractorData) -> np.ndarray:
    """(S, T, K) offline output (equal to the streamed output, see the tests)."""
    model.eval()
    with torch.inference_mode():
        return model(torch.from_numpy(data.inputs)).numpy()


def _metrics(pred: np.ndarray, target: np.ndarray, freqs: tuple[float, ...]) -> dict:
    per = []
    for k, f in enumerate(freqs):
        p, t = pred[..., k].ravel(), target[..., k].ravel()
        corr = float(np.corrcoef(p, t)[0, 1]) if p.std() > 0 and t.std() > 0 else 0.0
        per.append({"freq_hz": f, "mse": float(np.mean((p - t) ** 2)), "corr": corr})
    return {"mse": float(np.mean((pred - target) ** 2)), "per_freq": per}


def evaluate(model: FrequencyExtractor, preset: str, snr_db: float = 0.0) -> dict:
    """Train/test metrics of the model and of the tuned band-pass baseline on the same data."""
    data = eval_data(preset, snr_db)
    freqs, fs = data.train.freqs, data.train.sample_rate
    gain = float(len(freqs))  # the mixture is the mean of the components
    bands = bandpass.tune(freqs, data.train.mixture, data.train.targets, fs, gain)
    result: dict = {"preset": preset, "snr_db": snr_db if preset == "realistic" else None,
                    "freqs_hz": list(freqs), "sample_rate": fs,
                    "sequences": {"train": data.train.mixture.shape[0],
                                  "test": data.test.mixture.shape[0]},
                    "samples_per_sequence": data.train.mixture.shape[1]}
    for name, fn in (
        ("model", lambda d: predict(model, d)),
        ("baseline", lambda d: bandpass.apply(bands, d.mixture, fs, gain)),
    ):
        train = _metrics(fn(data.train), data.train.targets, freqs)
        test = _metrics(fn(data.test), data.test.targets, freqs)
        result[name] = {
            "train_mse": train["mse"], "test_mse": test["mse"],
            "test_train_ratio": test["mse"] / train["mse"] if train["mse"] > 0 else math.inf,
            "per_freq": [
                {"freq_hz": a["freq_hz"], "train_mse": a["mse"], "test_mse": b["mse"],
                 "test_corr": b["corr"]}
                for a, b in zip(train["per_freq"], test["per_freq"], strict=True)
            ],
        }
    result["baseline"]["bands"] = [
        {"freq_hz": b.freq, "order": b.order, "bandwidth_hz": b.bandwidth} for b in bands
    ]
    result["model"]["variant"] = model.config.variant
    result["model_over_baseline_test_mse"] = [
        m["test_mse"] / b["test_mse"] if b["test_mse"] > 0 else math.inf
        for m, b in zip(result["model"]["per_freq"], result["baseline"]["per_freq"], strict=True)
    ]
    return result


def table(result: dict) -> str:
    """A plain-text side-by-side table of the evaluation."""
    m, b = result["model"], result["baseline"]
    lines = [
        f"preset {result['preset']}"
        + (f" at {result['snr_db']:g} dB SNR" if result["snr_db"] is not None else "")
        + f"; model variant {m['variant']}",
        f"{'':>10} {'train MSE':>10} {'test MSE':>10} {'test/train':>10}",
        f"{'model':>10} {m['train_mse']:10.5f} {m['test_mse']:10.5f} {m['test_train_ratio']:10.3f}",
        f"{'band-pass':>10} {b['train_mse']:10.5f} {b['test_mse']:10.5f} "
        f"{b['test_train_ratio']:10.3f}",
        "",
        f"{'freq':>6} {'model MSE':>10} {'model r':>8} {'bp MSE':>10} {'bp r':>8} "
        f"{'model/bp':>9}",
    ]
    for pm, pb, ratio in zip(m["per_freq"], b["per_freq"], result["model_over_baseline_test_mse"],
                             strict=True):
        lines.append(f"{pm['freq_hz']:5g}Hz {pm['test_mse']:10.5f} {pm['test_corr']:8.4f} "
                     f"{pb['test_mse']:10.5f} {pb['test_corr']:8.4f} {ratio:9.3f}")
    return "\n".join(lines)


# -- sigstream eval extractor -----------------------------------------------------------------
@dataclass(frozen=True)
class ExtractorEvalConfig:
    """What ``sigstream eval extractor`` takes besides ``--checkpoint``/``--json``/
    ``--figures``."""

    preset: str | None = field(default=None, metadata={
        "help": "evaluate on the data of this preset: seed | realistic (none: the "
                "checkpoint's preset)", "choices": PRESETS})
    snr_db: float = field(default=0.0, metadata={"help": "realistic preset SNR in dB",
                                                 "aliases": ("--snr",)})


def run(cfg: ExtractorEvalConfig, checkpoints: tuple[str, ...],
        figures: str | None) -> Evaluation:
    """Evaluate the checkpoint (or the shipped weights of the preset) and the band-pass
    baseline on the same held-out data; figures into ``figures`` when given."""
    from sigstream.core.errors import ConfigError, InputError
    from sigstream.models.registry import build_model, load_checkpoint

    path = one_checkpoint(checkpoints, "extractor")
    if path:
        model = load_checkpoint(path)
        if not isinstance(model, FrequencyExtractor):
            raise InputError(f"{path!r} is not an extractor checkpoint")
        preset = cfg.preset or model.config.preset
    else:
        preset = cfg.preset or "realistic"
        if preset in PRESETS:
            model = build_model(f"extractor:preset={preset}")
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose seed or realistic")
    result = evaluate(model, preset, cfg.snr_db)
    files: list[str] = []
    if figures:
        from sigstream.models.baselines.bandpass import BandSpec
        from sigstream.models.extractor.plots import write_figures

        bands = [BandSpec(b["freq_hz"], b["order"], b["bandwidth_hz"])
                 for b in result["baseline"]["bands"]]
        files = write_figures(model, eval_data(preset, cfg.snr_db), figures, bands=bands)
    return Evaluation(result, table(result), files)
