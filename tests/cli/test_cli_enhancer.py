"""``sigstream train enhancer`` / ``sigstream eval enhancer``, in-process (tiny)."""

from __future__ import annotations

import json
import os

import pytest
from _support.cli import sigstream as _run

TINY = ["--windows", "300", "--window", "32", "--hop", "8", "--hidden", "16",
        "--resblocks", "1", "--batch", "32", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("enh")
    r = _run("train", "enhancer", "--arch", "augmentor", "--out", str(out), "--epochs", "3",
             "--seed", "1", *TINY)
    assert r.returncode == 0, r.stderr
    return out


def test_train_writes_checkpoint_and_history(trained) -> None:
    assert os.path.isfile(trained / "augmentor.pt")
    hist = json.loads((trained / "history.json").read_text())
    assert len(hist["epochs"]) == 3 and hist["best_val"] > 0


def test_eval_json_figures_uncertainty(trained, tmp_path) -> None:
    js, figs = tmp_path / "r.json", tmp_path / "figs"
    r = _run("eval", "enhancer", "--arch", "augmentor", "--checkpoint",
             str(trained / "augmentor.pt"), "--json", str(js), "--figures", str(figs),
             "--uncertainty", "3", "--stream-seconds", "20")
    assert r.returncode == 0, r.stderr
    res = json.loads(js.read_text())
    for key in ("mse", "mae", "rmse", "psnr", "ssim", "snr", "snr_improvement"):
        assert key in res["model"]
    assert {"wiener", "butterworth", "savgol", "spectral_gate"} <= set(res["baselines"])
    assert res["baselines"]["butterworth"]["causal"] is True
    assert res["test_windows"] == 30 and res["latency_samples"] == 24
    assert res["uncertainty"]["passes"] == 3 and res["uncertainty"]["mean_std"] > 0
    assert res["psnr_margin_db"] == pytest.approx(
        res["model"]["psnr"] - res["baselines"][res["best_baseline"]]["psnr"])
    names = sorted(os.listdir(figs))
    assert names == ["augmentor_baselines.png", "augmentor_examples.png",
                     "augmentor_spectrograms.png", "augmentor_training.png"]
    assert "PSNR margin" in r.stdout


def test_finetune_with_frozen_encoder(trained, tmp_path) -> None:
    import torch

    from sigstream.cli.main import main

    code = main(["train", "enhancer", "--arch", "augmentor", "--init",
                 str(trained / "augmentor.pt"), "--freeze",
                 "encoder", "--out", str(tmp_path), "--epochs", "2", "--data",
                 "lq_noise=0.3,lowpass_k=0.2", *TINY])
    assert code == 0
    a = torch.load(trained / "augmentor.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "augmentor.pt", weights_only=True)["state_dict"]
    enc = [k for k in a if ".encoder." in k or "resblock" in k]
    assert enc and all(torch.equal(a[k], b[k]) for k in enc)
    assert not torch.equal(a["model.net.hq_reconstructor.2.weight"],
                           b["model.net.hq_reconstructor.2.weight"])


@pytest.mark.parametrize(("args", "words"), [
    (["train", "enhancer", "--arch", "augmentor", "--out", "x", "--freeze", "encoder"],
     "--freeze needs --init"),
    (["train", "enhancer", "--arch", "augmentor", "--out", "x", "--freeze", "decoder",
      "--init", "y.pt"],
     "cannot freeze"),
    (["train", "enhancer", "--arch", "causal", "--out", "x", "--freeze", "encoder"],
     "--arch augmentor"),
    (["train", "enhancer", "--out", "x", "--rate", "8000"], "--arch causal"),
    (["train", "enhancer", "--out", "x", "--taps", "256"], "--taps is an option of --arch causal"),
    (["eval", "enhancer", "--arch", "all", "--checkpoint", "x.pt"], "one --arch"),
    (["eval", "enhancer", "--checkpoint", "missing.pt"], "file not found"),
])
def test_user_errors_are_one_line(args, words: str, capsys, tmp_path, monkeypatch) -> None:
    from sigstream.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "x")  # nothing created before the error


def test_train_causal_with_its_own_options(tmp_path) -> None:
    """--arch causal: the generated options (--frame, --window, --val-clips) and the old
    spellings (--rate, --snr-low, --snr-high, --no-speech, --ema) reach the trainer."""
    import torch

    r = _run("train", "enhancer", "--arch", "causal", "--out", str(tmp_path), "--epochs", "2",
             "--clips", "16", "--val-clips", "6", "--batch", "8", "--clip-seconds", "0.25",
             "--rate", "8000", "--snr-low", "0", "--snr-high", "10", "--hidden", "8",
             "--frame", "8", "--window", "32", "--taps", "16", "--no-speech", "--ema", "0.5",
             "--quiet")
    assert r.returncode == 0, r.stderr
    assert "best validation loss" in r.stderr and r.stderr.count("\n") == 2  # quiet
    hist = json.loads((tmp_path / "history.json").read_text())
    assert len(hist["epochs"]) == 2 and hist["config"]["fit"]["ema"] == 0.5
    assert hist["config"]["data"]["audio"]["snr_range"] == [0.0, 10.0]
    payload = torch.load(tmp_path / "audio-enhancer.pt", weights_only=True)
    assert payload["config"]["sample_rate"] == 8000.0 and payload["config"]["taps"] == 16
