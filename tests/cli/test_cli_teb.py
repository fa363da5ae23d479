"""sigstream train teb / eval teb, in-process, on tiny settings."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from _support.cli import sigstream as sig


def one_line_error(p: subprocess.CompletedProcess, fragment: str) -> None:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], p.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("teb")
    p = sig("train", "teb", "--out", str(out), "--epochs", "2", "--train-records", "4",
            "--val-records", "2", "--minutes", "5", "--batch", "2", "--decode-steps", "4",
            "--plot-every", "1", "--quiet")
    assert p.returncode == 0, p.stderr
    assert "best validation NLL" in p.stderr
    return out


def test_train_writes_checkpoint_history_and_plots(trained: Path) -> None:
    hist = json.loads((trained / "history.json").read_text())
    assert len(hist["epochs"]) == 2 and hist["config"]["model"]["preset"] == "small"
    payload = torch.load(trained / "teb.pt", weights_only=True)
    assert payload["model"] == "teb" and payload["meta"]["in_channels"] == 2
    assert payload["config"]["model"]["latent"] == 16
    pdfs = sorted(f.name for f in (trained / "plots").iterdir())
    assert pdfs == ["teb_epoch000.pdf", "teb_epoch001.pdf"]


def test_eval_json_and_figures(trained: Path, tmp_path: Path) -> None:
    p = sig("eval", "teb", "--checkpoint", str(trained / "teb.pt"), "--records", "2",
            "--minutes", "5", "--json", str(tmp_path / "r.json"),
            "--figures", str(tmp_path / "figs"))
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    for key in ("model", "persistence", "linear_ar"):
        assert set(r[key]) >= {"nll", "mse", "coverage_50", "coverage_95", "n"}
        assert 0 <= r[key]["coverage_50"] <= r[key]["coverage_95"] <= 1
        assert r[key]["n"] == r["model"]["n"] > 0  # scored on the same samples
    # a 2-epoch model on 4 records is not the shipped one (whose 1e-5 parity is tested in
    # tests/models/test_teb_vae.py); here: the check ran and reports consistently
    s = r["streaming"]
    assert s["steps"] == 75 and 0 <= s["max_abs_diff"] < 1e-3
    assert s["equal_to_1e-5"] == (s["max_abs_diff"] <= 1e-5)
    assert set(r["targets"]) == {"nll_below_persistence", "nll_below_linear_ar",
                                 "coverage_95_in_0.90_0.98", "streamed_equals_offline_1e-5"}
    assert "persistence" in p.stdout and "linear AR" in p.stdout
    figs = sorted(f.name for f in (tmp_path / "figs").iterdir())
    assert figs == ["teb_forecast.pdf", "teb_nll_by_horizon.png"]
    pdf = (tmp_path / "figs" / "teb_forecast.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


@pytest.mark.parametrize(("args", "fragment"), [
    (["train", "teb", "--preset", "huge"], "unknown TEB preset 'huge'"),
    (["eval", "teb", "--checkpoint", "/nonexistent/teb.pt"], "file not found"),
])
def test_bad_input(args: list[str], fragment: str, tmp_path: Path) -> None:
    if args[0] == "train":
        args = [*args, "--out", str(tmp_path / "o")]
    one_line_error(sig(*args), fragment)
