"""sigstream train / eval / run for the forecaster, through the CLI entry point.

In-process (``sigstream.cli.main.main``) to keep the start-up cost of several
interpreters out of the test budget; tests/cli/test_cli_train.py covers what only a
subprocess shows (Ctrl-C, the command line without torch).
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from sigstream.cli.main import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fc")
    code = main(["train", "forecaster", "--lookback", "24", "--horizon", "3", "--hidden", "8",
                 "--embed", "16", "--no-analytic", "--stages", "2,4", "--steps-per-stage", "5",
                 "--final-steps", "10", "--val-every", "5", "--batch", "16", "--quiet",
                 "--out", str(out)])
    assert code == 0
    return out


def test_train_writes_checkpoint_history_and_resume(trained: Path) -> None:
    hist = json.loads((trained / "history.json").read_text())
    assert [s["components"] for s in hist["stages"]] == [2, 4]
    payload = torch.load(trained / "forecaster.pt", weights_only=True)
    assert payload["model"] == "forecaster" and payload["meta"]["out_channels"] == 3
    assert (trained / "resume.pt").exists()


def test_eval_json_and_figures(trained: Path, tmp_path: Path, capsys) -> None:
    code = main(["eval", "forecaster", "--checkpoint", str(trained / "forecaster.pt"),
                 "--per-condition", "16", "--json", str(tmp_path / "r.json"),
                 "--figures", str(tmp_path / "figs")])
    assert code == 0
    out = capsys.readouterr().out
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["schema"] == "sigstream-forecaster-eval/1" and len(r["conditions"]) == 10
    assert set(r["conditions"][0]["scores"]) == {"dft", "dft_hamming", "linear_prediction",
                                                 "mlp_gru"}
    assert "DFT" in out and "targets mlp_gru" in out
    pngs = sorted(f.name for f in (tmp_path / "figs").iterdir())
    assert pngs == ["forecaster_examples.png", "forecaster_mse_by_components.png",
                    "forecaster_mse_per_step.png"]
    assert all((tmp_path / "figs" / f).stat().st_size > 5000 for f in pngs)


def test_run_to_npy_and_zmq(trained: Path, tmp_path: Path) -> None:
    from sigstream.stream.net.pipes import ZmqSource

    x = np.sin(np.arange(300) * 0.3).astype(np.float32)[:, None]
    np.save(tmp_path / "x.npy", x)
    ckpt = str(trained / "forecaster.pt")
    assert main(["run", "--model", ckpt, "--source", f"npy:{tmp_path / 'x.npy'}",
                 "--sink", f"npy:{tmp_path / 'y.npy'}", "--block", "37", "--quiet"]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (300, 3)  # one row of `horizon` forecasts per input sample
    from sigstream.models.registry import load_checkpoint

    with torch.inference_mode():
        offline = load_checkpoint(ckpt)(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(y, offline, atol=1e-5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = ZmqSource(f"tcp://127.0.0.1:{port}", mode="bind", pattern="pull", channels=3,
                    timeout=60.0)
    codes: list[int] = []
    run = threading.Thread(target=lambda: codes.append(main([
        "run", "--model", ckpt, "--source", f"npy:{tmp_path / 'x.npy'}",
        "--sink", f"zmq:tcp://127.0.0.1:{port},mode=connect,pattern=push",
        "--block", "50", "--quiet"])))
    run.start()
    try:
        got = []
        while (block := src.read(1000)) is not None:  # the sink's END ends the source
            got.append(block)
    finally:
        run.join(60)
        src.close()
    assert codes == [0]
    np.testing.assert_allclose(np.concatenate(got), y, atol=1e-6)


def test_time_budget_stops_and_resume_finishes(trained: Path, tmp_path: Path, capsys) -> None:
    """--max-minutes stops after the first epoch; --resume
    continues to exactly the run that no budget would have given."""
    args = ["train", "forecaster", "--lookback", "24", "--horizon", "3", "--hidden", "8",
            "--embed", "16", "--no-analytic", "--stages", "2,4", "--steps-per-stage", "5",
            "--final-steps", "10", "--val-every", "5", "--batch", "16", "--quiet",
            "--out", str(tmp_path)]
    assert main([*args, "--max-minutes", "1e-9"]) == 0
    err = capsys.readouterr().err
    assert "(stopped by the time budget)" in err and "--resume continues" in err
    assert len(json.loads((tmp_path / "history.json").read_text())["epochs"]) == 1
    assert main([*args, "--resume"]) == 0
    resumed = json.loads((tmp_path / "history.json").read_text())
    whole = json.loads((trained / "history.json").read_text())
    assert [e["val_loss"] for e in resumed["epochs"]] == [e["val_loss"] for e in whole["epochs"]]
    assert resumed["stages"] == whole["stages"]


def test_bad_variant_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["train", "forecaster", "--variant", "transformer",
                 "--out", str(tmp_path / "o")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "variant" in lines[0]
