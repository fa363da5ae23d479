"""Training the speech enhancer: a tiny smoke run on a hand-made corpus, and its loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sigstream.models.enhancer.train_speech import align, si_sdr, speech_loss

RATE = 48000


def _voice(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A speech-like clip: a gliding harmonic voice with syllable-rate envelopes."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t), 0, None) ** 2
    return (0.5 * x * env / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """A corpus in the recipe's layout: two talkers per split, one real noise per split."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    clips = []
    for split in ("train", "val", "test"):
        for g in range(2):
            group = f"fake:{split}{g}"
            for i in range(3):
                path = f"speech/{split}/{group.replace(':', '_')}/{i}.wav"
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                x = _voice(rng, 0.6)
                sf.write(str(root / path), x, RATE, subtype="PCM_16")
                clips.append({"path": path, "kind": "speech", "split": split, "source": group,
                              "group": group, "seconds": len(x) / RATE})
        path = f"noise/{split}/fake_sfx/0.wav"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        n = (0.3 * rng.standard_normal(RATE)).astype(np.float32)
        sf.write(str(root / path), n, RATE, subtype="PCM_16")
        clips.append({"path": path, "kind": "noise", "split": split, "source": "fake:sfx",
                      "group": "sfx", "seconds": 1.0})
    (root / "manifest.json").write_text(json.dumps(
        {"version": 2, "sample_rate": RATE, "clips": clips, "sources": {}}))
    return root


def test_si_sdr_is_scale_invariant_and_exact() -> None:
    ref = torch.randn(2, 4800)
    noise = torch.randn(2, 4800)
    noise = noise - (noise * ref).sum(-1, keepdim=True) / ref.pow(2).sum(-1, keepdim=True) * ref
    est = 3.0 * ref + 0.1 * noise * ref.norm(dim=-1, keepdim=True) / noise.norm(dim=-1,
                                                                                keepdim=True)
    want = 10 * np.log10(9.0 / 0.01)  # (3 |ref|)^2 / (0.1 |ref|)^2
    torch.testing.assert_close(si_sdr(est, ref), torch.full((2,), float(want)), atol=1e-2,
                               rtol=0)


def test_loss_is_lowest_for_the_clean_signal() -> None:
    clean = torch.from_numpy(_voice(np.random.default_rng(1), 0.5))[None]
    noisy = clean + 0.1 * torch.randn_like(clean)
    best, _ = speech_loss(clean, clean, 0.05)
    worse, parts = speech_loss(noisy, clean, 0.05)
    assert float(best) < float(worse)
    assert parts["si_sdr"] < 40


def test_align_delays_by_the_latency() -> None:
    from sigstream.models.enhancer.speech import SpeechConfig, SpeechEnhancer

    m = SpeechEnhancer(SpeechConfig(hop=8, window=16, bands=4, df_bins=4, hidden=4))
    x = torch.arange(40.0)[None]
    y = align(m, x)
    assert torch.equal(y[0, m.latency:], x[0, :40 - m.latency])
    assert torch.equal(y[0, :m.latency], torch.zeros(m.latency))


def test_tiny_training_runs_and_writes_a_loadable_checkpoint(corpus_dir, tmp_path) -> None:
    """Through the command line: a few updates of a small model on the hand-made corpus."""
    from sigstream.cli.main import main
    from sigstream.models.registry import load_checkpoint

    out = tmp_path / "run"
    code = main(["train", "enhancer", "--corpus", str(corpus_dir), "--out", str(out),
                 "--epochs", "2", "--steps", "3", "--batch", "2", "--clip-seconds", "0.3",
                 "--val-per-condition", "1", "--val-seconds", "0.3", "--hidden", "16",
                 "--layers", "1", "--bands", "8", "--df-bins", "16", "--quiet"])
    assert code == 0
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["epochs"]) == 2
    assert all(np.isfinite(e["val_si_sdr_db"]) for e in hist["epochs"])
    model = load_checkpoint(str(out / "enhancer.pt"))
    assert model.sample_rate == RATE and model.latency == 479
    assert model.config.hidden == 16
    with torch.no_grad():
        y = model(torch.zeros(1, 1000, 1))
    assert torch.equal(y, torch.zeros_like(y))


def test_missing_corpus_is_one_clear_error(tmp_path, capsys) -> None:
    from sigstream.cli.main import main

    code = main(["train", "enhancer", "--corpus", str(tmp_path / "none"), "--out",
                 str(tmp_path / "o"), "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0
    assert "sigstream data speech" in err and len(err.strip().splitlines()) == 1


def test_select_pesq_and_stoi_picks_the_checkpoint_by_them(corpus_dir, tmp_path) -> None:
    """--select pesq+stoi scores every validation clip with PESQ-WB and STOI; the monitored
    loss is minus their sum, and the saved checkpoint is the epoch where it is lowest."""
    from sigstream.cli.main import main

    out = tmp_path / "run"
    code = main(["train", "enhancer", "--corpus", str(corpus_dir), "--out", str(out),
                 "--epochs", "2", "--steps", "2", "--batch", "2", "--clip-seconds", "0.3",
                 "--val-per-condition", "1", "--val-seconds", "1.5", "--hidden", "16",
                 "--layers", "1", "--bands", "8", "--df-bins", "16", "--select", "pesq+stoi",
                 "--quiet"])
    assert code == 0
    hist = json.loads((out / "history.json").read_text())
    rows = hist["epochs"]
    for row in rows:
        assert 1.0 <= row["val_pesq_wb"] <= 4.7 and 0.0 <= row["val_stoi"] <= 1.0
        assert row["val_loss"] == pytest.approx(-(row["val_pesq_wb"] + row["val_stoi"]))
    best = min(range(len(rows)), key=lambda i: rows[i]["val_loss"])
    assert torch.load(out / "enhancer.pt", weights_only=False)["meta"]["best_epoch"] == best


def test_select_is_checked(tmp_path, capsys) -> None:
    from sigstream.cli.main import main

    code = main(["train", "enhancer", "--out", str(tmp_path / "o"), "--select", "mos"])
    err = capsys.readouterr().err
    assert code != 0
    assert "select 'mos'" in err and "pesq+stoi" in err and len(err.strip().splitlines()) == 1
