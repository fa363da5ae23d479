"""sigstream train / eval / run for the extractor, through a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

EXE = Path(sys.executable).with_name("sigstream")
CMD = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "sigstream.cli.main"]


def sig(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def one_line_error(p: subprocess.CompletedProcess, fragment: str) -> None:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], p.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train")
    p = sig("train", "extractor", "--preset", "realistic", "--epochs", "2", "--hidden", "8",
            "--tbptt", "2500", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "best validation MSE" in p.stderr
    return out


def test_train_writes_checkpoint_and_history(trained: Path) -> None:
    hist = json.loads((trained / "history.json").read_text())
    assert len(hist["epochs"]) == 2 and hist["config"]["preset"] == "realistic"
    payload = torch.load(trained / "extractor.pt", weights_only=True)
    assert payload["model"] == "extractor" and payload["meta"]["hop"] == 1


def test_eval_json_and_figures(trained: Path, tmp_path: Path) -> None:
    p = sig("eval", "extractor", "--checkpoint", str(trained / "extractor.pt"),
            "--json", str(tmp_path / "r.json"), "--figures", str(tmp_path / "figs"))
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["preset"] == "realistic" and len(r["model"]["per_freq"]) == 4
    assert "band-pass" in p.stdout
    pngs = sorted(f.name for f in (tmp_path / "figs").iterdir())
    assert pngs == ["extractor_all_frequencies.png", "extractor_errors.png", "extractor_fft.png",
                    "extractor_one_frequency.png", "extractor_training_curves.png"]
    assert all((tmp_path / "figs" / f).stat().st_size > 5000 for f in pngs)


def test_run_with_checkpoint_streams(trained: Path, tmp_path: Path) -> None:
    p = sig("run", "--model", str(trained / "extractor.pt"), "--source",
            "synth:mixture,seconds=2", "--sink", f"npy:{tmp_path / 'y.npy'}", "--block", "37")
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "y.npy").shape == (2000, 4)


@pytest.mark.parametrize(("args", "fragment"), [
    (["train", "extractor", "--preset", "fancy"], "unknown preset 'fancy'"),
    (["train", "extractor", "--variant", "bidirectional"], "unknown variant"),
    (["eval", "extractor", "--preset", "fancy"], "fancy"),
    (["eval", "extractor", "--checkpoint", "/nonexistent/x.pt"], "file not found"),
])
def test_bad_input(args: list[str], fragment: str, tmp_path: Path) -> None:
    if args[0] == "train":
        args = [*args, "--out", str(tmp_path / "o")]
    one_line_error(sig(*args), fragment)


def test_checkpoint_from_another_model(tmp_path: Path) -> None:
    from sigstream.models.baselines.butterworth import Butterworth
    from sigstream.models.checkpoint import save_checkpoint

    bw = Butterworth()
    save_checkpoint(str(tmp_path / "bw.pt"), "butterworth", bw.config, bw)
    one_line_error(sig("eval", "extractor", "--checkpoint", str(tmp_path / "bw.pt")),
                   "not an extractor checkpoint")


def test_checkpoint_with_incompatible_shape(trained: Path, tmp_path: Path) -> None:
    payload = torch.load(trained / "extractor.pt", weights_only=True)
    payload["config"]["hidden"] = 32  # the weights are hidden 8
    torch.save(payload, tmp_path / "bad.pt")
    one_line_error(sig("eval", "extractor", "--checkpoint", str(tmp_path / "bad.pt")),
                   "does not fit model 'extractor'")


def test_source_rate_must_match(trained: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", x=np.zeros((100, 1), np.float32), sample_rate=8000.0)
    one_line_error(sig("run", "--model", str(trained / "extractor.pt"), "--source",
                       f"npy:{tmp_path / 'x.npz'}", "--sink", "null"),
                   "8000 Hz but the model expects 1000 Hz")
